// The qk-norm row kernels of the neox pairing, for every Highway target (norm_rotate_rows-inl.h).
#define ROTARY_INSTANCE_PAIRING kNeoxPairs
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "dispatch/instances/norm_rotate_rows-inl.h"
#include "hwy/foreach_target.h"  // IWYU pragma: keep

#include "dispatch/instances/norm_rotate_rows-inl.h"
