// Per-target store of cos/sin values into one table row, in the layout the
// kernel of its pairing reads (TableLayout). Shared by the full table's build
// (table_build-inl.h) and the rows synthesized per call (row_synthesis-inl.h),
// so the layout is written in one place.

// Per-target include guard (Highway's convention for -inl.h files).
#if defined(ROTARY_DISPATCH_ROW_LAYOUT_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef ROTARY_DISPATCH_ROW_LAYOUT_INL_H_
#undef ROTARY_DISPATCH_ROW_LAYOUT_INL_H_
#else
#define ROTARY_DISPATCH_ROW_LAYOUT_INL_H_
#endif

#include <cstddef>

#include "dispatch/convert-inl.h"
#include "dispatch/kernel_api.h"
#include "dispatch/partial_vectors-inl.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace rotary {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// Stores the cos/sin of pairs [i, i + count) (count <= N) into `row`, a row of
// `pairs` pairs in `layout`.
HWY_INLINE void StoreRowPart(TableLayout layout, size_t pairs, float* HWY_RESTRICT row, size_t i, size_t count, VF cs,
                             VF sn) {
  const DF d;
  const size_t N = hn::Lanes(d);
  if (layout == TableLayout::kPerPair) {
    float* cos_out = row + i;
    float* sin_out = row + pairs + i;
    if (count == N) {
      hn::StoreU(cs, d, cos_out);
      hn::StoreU(sn, d, sin_out);
      return;
    }
    StoreTailF32<F32Storage>(cs, cos_out, count);
    StoreTailF32<F32Storage>(sn, sin_out, count);
    return;
  }
  // kPerComponent: cos_dup[2i] = cos_dup[2i + 1] = cos, sin_alt[2i] = -sin, sin_alt[2i + 1] = +sin.
  float* cos_dup = row + 2 * i;
  float* sin_alt = row + 2 * pairs + 2 * i;
  HWY_ALIGN float c[2 * kMaxLanes], s[2 * kMaxLanes];
  hn::StoreInterleaved2(cs, cs, d, count == N ? cos_dup : c);
  hn::StoreInterleaved2(hn::Neg(sn), sn, d, count == N ? sin_alt : s);
  if (count == N) return;
  CopyFewBytes<2 * kVectorBytes>(cos_dup, c, 2 * count * sizeof(float));
  CopyFewBytes<2 * kVectorBytes>(sin_alt, s, 2 * count * sizeof(float));
}

// NOLINTNEXTLINE(google-readability-namespace-comments)
}  // namespace HWY_NAMESPACE
}  // namespace rotary
HWY_AFTER_NAMESPACE();

#endif  // per-target include guard
