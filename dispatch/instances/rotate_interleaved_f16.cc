// The interleaved row kernels that read f16, for every Highway target (rotate_rows-inl.h).
#define ROTARY_INSTANCE_PAIRING kInterleavedPairs
#define ROTARY_INSTANCE_SOURCE F16Storage
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "dispatch/instances/rotate_rows-inl.h"
#include "hwy/foreach_target.h"  // IWYU pragma: keep

#include "dispatch/instances/rotate_rows-inl.h"
