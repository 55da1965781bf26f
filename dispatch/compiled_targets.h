// The kernel targets compiled into this build (filled in by kernels_all_targets.cc).
#ifndef ROTARY_DISPATCH_COMPILED_TARGETS_H_
#define ROTARY_DISPATCH_COMPILED_TARGETS_H_

#include <cstddef>
#include <cstdint>

#include "dispatch/kernel_api.h"

namespace rotary {

struct CompiledTarget {
  int64_t hwy_target;  // Highway's bit for the target (HWY_AVX2, HWY_NEON, ...)
  const char* name;    // Highway's name for it ("AVX2", "NEON", ...)
  KernelTable kernels;
};

// Best target first.
extern const CompiledTarget kCompiledTargets[];
extern const size_t kNumCompiledTargets;

}  // namespace rotary

#endif  // ROTARY_DISPATCH_COMPILED_TARGETS_H_
