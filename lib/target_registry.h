// Which kernel target runs (the kernels and the list of compiled targets are
// dispatch/; choosing among them is the library's policy): what this CPU
// supports, the best by default, ROTARY_TARGET or a call forcing one, and why.
#ifndef ROTARY_LIB_TARGET_REGISTRY_H_
#define ROTARY_LIB_TARGET_REGISTRY_H_

#include <string>

#include "dispatch/compiled_targets.h"

namespace rotary {

bool CpuSupports(const CompiledTarget& target);

// Kernels of the active target. Throws Error(kUnsupported) when ROTARY_TARGET
// named a target that this build or CPU cannot run (and no call fixed it).
const KernelTable& ActiveKernels();

// Name of the active target, or "NONE" (see ActiveKernels).
const char* ActiveTargetName();

// Why that target is active: "default" (the best this CPU supports),
// "ROTARY_TARGET" (the environment variable named it) or "rotary_set_target".
const char* ActiveTargetSource();

// Makes `name` (case-insensitive; "" or "auto" = best supported) the active
// target for the process. Throws Error(kUnsupported) and changes nothing if the
// target is unknown or this CPU cannot run it.
void ForceTarget(const std::string& name);

}  // namespace rotary

#endif  // ROTARY_LIB_TARGET_REGISTRY_H_
