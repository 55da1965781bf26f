// The kernel targets compiled into this build (listed by compiled_targets.cc).
#ifndef ROTARY_DISPATCH_COMPILED_TARGETS_H_
#define ROTARY_DISPATCH_COMPILED_TARGETS_H_

#include <cstddef>
#include <cstdint>

#include "dispatch/kernel_api.h"

namespace rotary {

// CPU features a target needs beyond those of its Highway target (which
// Highway checks), as bits.
enum ExtraCpuFeature : uint32_t {
  kAvx512Bf16 = 1,  // VCVTNE2PS2BF16 (AVX3_ZEN4: AVX-512 kernels rounding bf16 in hardware)
};

struct CompiledTarget {
  int64_t hwy_target;  // Highway's bit for the target (HWY_AVX2, HWY_NEON, ...)
  const char* name;    // Highway's name for it ("AVX2", "NEON", ...), or ours (AVX3_ZEN4)
  KernelTable kernels;
  uint32_t extra_features;  // ExtraCpuFeature bits
};

// Best target first.
extern const CompiledTarget kCompiledTargets[];
extern const size_t kNumCompiledTargets;

}  // namespace rotary

#endif  // ROTARY_DISPATCH_COMPILED_TARGETS_H_
