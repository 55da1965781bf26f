// The body of every dispatch/instances/norm_rotate_<pairing>.cc: for one
// Highway target, the explicit instantiations of NormRotateRows for the
// pairing ROTARY_INSTANCE_PAIRING and every source and destination storage.
// By pairing, not by source as the rotation kernels: a norm kernel's heavy
// part (the rotation from the f32 buffer) depends on the pairing and the
// destination only, so each translation unit compiles it once.

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

// The plain kernels the norm kernels fall back on are compiled in
// instances/rotate_<pairing>_f32.cc, not again here.
#define ROTARY_EXTERN(PAIRING, SRC, DST) extern template void RotateRows<PAIRING, SRC, DST>(const RowJob&, int64_t, int64_t);
ROTARY_FOR_EACH_DESTINATION(ROTARY_EXTERN, ROTARY_INSTANCE_PAIRING, F32Storage)
#undef ROTARY_EXTERN

#define ROTARY_INSTANTIATE(PAIRING, SRC, DST) \
  template void NormRotateRows<PAIRING, SRC, DST>(const RowJob&, int64_t, int64_t);
ROTARY_FOR_EACH_DESTINATION(ROTARY_INSTANTIATE, ROTARY_INSTANCE_PAIRING, F32Storage)
ROTARY_FOR_EACH_DESTINATION(ROTARY_INSTANTIATE, ROTARY_INSTANCE_PAIRING, F16Storage)
ROTARY_FOR_EACH_DESTINATION(ROTARY_INSTANTIATE, ROTARY_INSTANCE_PAIRING, BF16Storage)
#undef ROTARY_INSTANTIATE

// NOLINTNEXTLINE(google-readability-namespace-comments)
}  // namespace HWY_NAMESPACE
}  // namespace rotary
HWY_AFTER_NAMESPACE();

#endif  // per-target include guard
