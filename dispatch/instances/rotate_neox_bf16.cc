// The neox row kernels that read bf16, for every Highway target (rotate_rows-inl.h).
#define ROTARY_INSTANCE_PAIRING kNeoxPairs
#define ROTARY_INSTANCE_SOURCE BF16Storage
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "dispatch/instances/rotate_rows-inl.h"
#include "hwy/foreach_target.h"  // IWYU pragma: keep

#include "dispatch/instances/rotate_rows-inl.h"
