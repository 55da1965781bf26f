// The body of every dispatch/instances/rotate_<pairing>_<source>.cc: for one
// Highway target, the explicit instantiations of RotateRows for the pairing
// ROTARY_INSTANCE_PAIRING, the source storage ROTARY_INSTANCE_SOURCE and every
// destination storage. Six small translation units instead of one large one:
// they compile in parallel, and a change to one storage's code rebuilds less.

// Per-target include guard (Highway's convention for -inl.h files).
#if defined(ROTARY_DISPATCH_INSTANCES_ROTATE_ROWS_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef ROTARY_DISPATCH_INSTANCES_ROTATE_ROWS_INL_H_
#undef ROTARY_DISPATCH_INSTANCES_ROTATE_ROWS_INL_H_
#else
#define ROTARY_DISPATCH_INSTANCES_ROTATE_ROWS_INL_H_
#endif

#include "dispatch/kernel_entry_points-inl.h"
#include "dispatch/rope_kernels-inl.h"

HWY_BEFORE_NAMESPACE();
namespace rotary {
namespace HWY_NAMESPACE {

#define ROTARY_INSTANTIATE(PAIRING, SRC, DST)                                                                  \
  template void RotateRows<PAIRING, SRC, DST>(const RowJob&, int64_t, int64_t);                               \
  template void RotateOperandRowEntry<PAIRING, SRC, DST>(const Operand&, int64_t, int64_t, int64_t, const float*, \
                                                         const float*, size_t, size_t, bool);
ROTARY_FOR_EACH_DESTINATION(ROTARY_INSTANTIATE, ROTARY_INSTANCE_PAIRING, ROTARY_INSTANCE_SOURCE)
#undef ROTARY_INSTANTIATE

// NOLINTNEXTLINE(google-readability-namespace-comments)
}  // namespace HWY_NAMESPACE
}  // namespace rotary
HWY_AFTER_NAMESPACE();

#endif  // per-target include guard
