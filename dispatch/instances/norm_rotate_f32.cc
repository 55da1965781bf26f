// The qk-norm row kernels that read f32, for every Highway target (norm_rotate_rows-inl.h).
#define ROTARY_INSTANCE_SOURCE F32Storage
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "dispatch/instances/norm_rotate_rows-inl.h"
#include "hwy/foreach_target.h"  // IWYU pragma: keep

#include "dispatch/instances/norm_rotate_rows-inl.h"
