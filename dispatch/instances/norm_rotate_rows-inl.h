// The body of every dispatch/instances/norm_rotate_<source>.cc: for one
// Highway target, the explicit instantiations of NormRotateRows for both
// pairings, the source storage ROTARY_INSTANCE_SOURCE and every destination
// storage. Compiled with -ffp-contract=off (qk_norm_kernels-inl.h says why).

// Per-target include guard (Highway's convention for -inl.h files).
#if defined(ROTARY_DISPATCH_INSTANCES_NORM_ROTATE_ROWS_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef ROTARY_DISPATCH_INSTANCES_NORM_ROTATE_ROWS_INL_H_
#undef ROTARY_DISPATCH_INSTANCES_NORM_ROTATE_ROWS_INL_H_
#else
#define ROTARY_DISPATCH_INSTANCES_NORM_ROTATE_ROWS_INL_H_
#endif

#include "dispatch/kernel_entry_points-inl.h"
#include "dispatch/qk_norm_kernels-inl.h"

HWY_BEFORE_NAMESPACE();
namespace rotary {
namespace HWY_NAMESPACE {

#define ROTARY_INSTANTIATE(PAIRING, SRC, DST) \
  template void NormRotateRows<PAIRING, SRC, DST>(const RowJob&, int64_t, int64_t);
ROTARY_FOR_EACH_DESTINATION(ROTARY_INSTANTIATE, kNeoxPairs, ROTARY_INSTANCE_SOURCE)
ROTARY_FOR_EACH_DESTINATION(ROTARY_INSTANTIATE, kInterleavedPairs, ROTARY_INSTANCE_SOURCE)
#undef ROTARY_INSTANTIATE

// NOLINTNEXTLINE(google-readability-namespace-comments)
}  // namespace HWY_NAMESPACE
}  // namespace rotary
HWY_AFTER_NAMESPACE();

#endif  // per-target include guard
