// Per-target synthesis of one cos/sin row for the table modes that store no
// row per position (RowSource::kCompact, kOnTheFly) and for a caller's
// borrowed arrays (kBorrowed). The kernel builds the row
// of a (b, s) once, in the full layout its pairing reads (TableLayout), into a
// stack buffer, then runs the same head loop as for a stored row: the cost per
// head is the full table's, and the synthesis is shared by every head of q and k.
//
// Compact: p = hi * K + lo, and with the high row (scaled by m) and the low row
// (unscaled), each exact in double and rounded to f32,
//   cos(p w) = cos_hi cos_lo - sin_hi sin_lo,   sin(p w) = sin_hi cos_lo + cos_hi sin_lo,
// each a product rounded, then a fused multiply-add (fused_multiply_add-inl.h).
// On the fly: cos and sin of the exact angle p * w in double (cos_sin_double.h,
// N / 2 angles a vector where the target has f64 vectors, by the same
// operations in the same order as the scalar form), times the attention
// factor, rounded once to f32: a full table's row, up to the last double bits.
// Every mode gives the same bits on every target.

// Per-target include guard (Highway's convention for -inl.h files).
#if defined(ROTARY_DISPATCH_ROW_SYNTHESIS_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef ROTARY_DISPATCH_ROW_SYNTHESIS_INL_H_
#undef ROTARY_DISPATCH_ROW_SYNTHESIS_INL_H_
#else
#define ROTARY_DISPATCH_ROW_SYNTHESIS_INL_H_
#endif

#include "dispatch/convert-inl.h"
#include "dispatch/cos_sin_double.h"
#include "dispatch/fused_multiply_add-inl.h"
#include "dispatch/kernel_api.h"
#include "dispatch/kernel_entry_points-inl.h"
#include "dispatch/partial_vectors-inl.h"
#include "dispatch/row_layout-inl.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace rotary {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

HWY_INLINE void SynthesizeCompactRow(const TableView& t, int64_t position, float* HWY_RESTRICT row) {
  const size_t pairs = t.pairs;
  const int64_t hi = position >> t.compact_shift;
  const int64_t lo = position & ((int64_t{1} << t.compact_shift) - 1);
  const float* high = t.chunks[hi >> t.chunk_shift].load(std::memory_order_acquire) +
                      (hi & ((int64_t{1} << t.chunk_shift) - 1)) * static_cast<int64_t>(2 * pairs);
  const float* low = t.low_rows + lo * static_cast<int64_t>(2 * pairs);
  const size_t N = hn::Lanes(DF());
  for (size_t i = 0; i < pairs; i += N) {
    const size_t count = pairs - i < N ? pairs - i : N;
    const VF ch = LoadPart(high + i, count, i), sh = LoadPart(high + pairs + i, count, pairs + i);
    const VF cl = LoadPart(low + i, count, i), sl = LoadPart(low + pairs + i, count, pairs + i);
    StoreRowPart(t.layout, t.pairs, row, i, count, FusedMulSub(ch, cl, hn::Mul(sh, sl)),
                 FusedMulAdd(sh, cl, hn::Mul(ch, sl)));
  }
}

// cos and sin of pairs [i, i + count) of the row of position p (count <= N),
// times the attention factor, rounded once to f32: one pair at a time, the
// scalar form of VectorOnTheFly, for the remainder of a row and for targets
// without f64 vectors. Lanes from count on are zero.
HWY_INLINE void ScalarOnTheFly(const TableView& t, double p, size_t i, size_t count, VF& c, VF& s) {
  HWY_ALIGN float cos_part[kMaxLanes], sin_part[kMaxLanes];
  for (size_t j = 0; j < hn::Lanes(DF()); ++j) {
    const CosSin cs = j < count ? CosSinOfAngle(p, t.inv_freq[i + j]) : CosSin{0.0, 0.0};
    cos_part[j] = static_cast<float>(cs.cos * t.scale);
    sin_part[j] = static_cast<float>(cs.sin * t.scale);
  }
  c = hn::Load(DF(), cos_part);
  s = hn::Load(DF(), sin_part);
}

#if HWY_TARGET != HWY_SCALAR && HWY_HAVE_FLOAT64
using DD = hn::RepartitionToWide<DF>;  // N / 2 doubles
using DHalf = hn::Rebind<float, DD>;   // N / 2 floats: half of DF
using VD = hn::Vec<DD>;

// p * w - a exactly, for a = p * w rounded: the rounding error of the product.
HWY_INLINE VD ProductError(VD p, VD w, VD a) {
#if HWY_NATIVE_FMA
  return hn::MulSub(p, w, a);  // one rounding of an exact difference: exact
#else
  // Dekker: split each factor into halves of 26 bits, whose products are exact.
  const DD dd;
  const auto splitter = hn::Set(dd, 134217729.0);  // 2^27 + 1
  const auto tp = hn::Mul(p, splitter), tw = hn::Mul(w, splitter);
  const auto p_hi = hn::Sub(tp, hn::Sub(tp, p)), w_hi = hn::Sub(tw, hn::Sub(tw, w));
  const auto p_lo = hn::Sub(p, p_hi), w_lo = hn::Sub(w, w_hi);
  const auto err = hn::Add(hn::Add(hn::Sub(hn::Mul(p_hi, w_hi), a), hn::Mul(p_hi, w_lo)), hn::Mul(p_lo, w_hi));
  return hn::Add(err, hn::Mul(p_lo, w_lo));
#endif
}

// CosSinOfAngle (cos_sin_double.h) for N / 2 angles p * w, operation for
// operation (Mul then Add, never a fused multiply-add), times the attention
// factor, rounded to f32.
HWY_INLINE void HalfOnTheFly(VD p, VD w, VD scale, hn::Vec<DHalf>& c_out, hn::Vec<DHalf>& s_out) {
  const DD dd;
  const VD a = hn::Mul(p, w);
  const VD k = hn::Round(hn::Mul(a, hn::Set(dd, kTwoOverPi)));
  const VD reduced =
      hn::Sub(hn::Sub(hn::Sub(a, hn::Mul(k, hn::Set(dd, kHalfPi1))), hn::Mul(k, hn::Set(dd, kHalfPi2))),
              hn::Mul(k, hn::Set(dd, kHalfPi3)));
  const VD x = hn::Add(reduced, ProductError(p, w, a));
  const VD x2 = hn::Mul(x, x);
  VD ps = hn::Set(dd, kSinTerms[kSinTermCount - 1]), pc = hn::Set(dd, kCosTerms[kCosTermCount - 1]);
  for (int i = kSinTermCount - 2; i >= 0; --i) ps = hn::Add(hn::Mul(ps, x2), hn::Set(dd, kSinTerms[i]));
  for (int i = kCosTermCount - 2; i >= 0; --i) pc = hn::Add(hn::Mul(pc, x2), hn::Set(dd, kCosTerms[i]));
  const VD sin_x = hn::Add(x, hn::Mul(x, hn::Mul(x2, ps)));
  const VD cos_x = hn::Add(hn::Set(dd, 1.0), hn::Mul(x2, pc));
  // Quadrant n = k mod 4: (cos, sin) = (c, s), (-s, c), (-c, -s), (s, -c).
  const VD n = hn::Sub(k, hn::Mul(hn::Set(dd, 4.0), hn::Floor(hn::Mul(k, hn::Set(dd, 0.25)))));
  const auto odd = hn::Eq(hn::Abs(hn::Sub(n, hn::Set(dd, 2.0))), hn::Set(dd, 1.0));
  const VD c0 = hn::IfThenElse(odd, sin_x, cos_x), s0 = hn::IfThenElse(odd, cos_x, sin_x);
  const auto negate_cos = hn::Eq(hn::Abs(hn::Sub(n, hn::Set(dd, 1.5))), hn::Set(dd, 0.5));  // n = 1 or 2
  const auto negate_sin = hn::Gt(n, hn::Set(dd, 1.5));                                     // n = 2 or 3
  c_out = hn::DemoteTo(DHalf(), hn::Mul(hn::IfThenElse(negate_cos, hn::Neg(c0), c0), scale));
  s_out = hn::DemoteTo(DHalf(), hn::Mul(hn::IfThenElse(negate_sin, hn::Neg(s0), s0), scale));
}

// cos and sin of pairs [i, i + N): two halves of N / 2 doubles.
HWY_INLINE void VectorOnTheFly(const TableView& t, double p, size_t i, VF& c, VF& s) {
  const DD dd;
  const size_t half = hn::Lanes(dd);
  const VD pv = hn::Set(dd, p), scale = hn::Set(dd, t.scale);
  hn::Vec<DHalf> c_lo, s_lo, c_hi, s_hi;
  HalfOnTheFly(pv, hn::LoadU(dd, t.inv_freq + i), scale, c_lo, s_lo);
  HalfOnTheFly(pv, hn::LoadU(dd, t.inv_freq + i + half), scale, c_hi, s_hi);
  c = hn::Combine(DF(), c_hi, c_lo);
  s = hn::Combine(DF(), s_hi, s_lo);
}
#endif

HWY_INLINE void SynthesizeOnTheFlyRow(const TableView& t, int64_t position, float* HWY_RESTRICT row) {
  const size_t pairs = t.pairs;
  const size_t N = hn::Lanes(DF());
  const double p = static_cast<double>(position);  // exact: positions < 2^31
  for (size_t i = 0; i < pairs; i += N) {
    const size_t count = pairs - i < N ? pairs - i : N;
    VF c, s;
#if HWY_TARGET != HWY_SCALAR && HWY_HAVE_FLOAT64
    if (count == N) {
      VectorOnTheFly(t, p, i, c, s);
    } else
#endif
    {
      ScalarOnTheFly(t, p, i, count, c, s);
    }
    StoreRowPart(t.layout, t.pairs, row, i, count, c, s);
  }
}

// Borrowed: the caller's cos and sin of `position`, stored as S, converted
// into the layout's row; for the inverse, the inverse of the caller's
// rotation, (c, -s) / (c^2 + s^2), so that an attention factor it carries is
// undone too (each step rounded once, no contraction: the same on every target).
template <class S>
HWY_INLINE void SynthesizeBorrowedRowOf(const TableView& t, int64_t position, float* HWY_RESTRICT row) {
  using T = typename S::T;
  const T* cos = static_cast<const T*>(t.borrowed_cos) + position * t.borrowed_stride;
  const T* sin = static_cast<const T*>(t.borrowed_sin) + position * t.borrowed_stride;
  const size_t N = hn::Lanes(DF());
  for (size_t i = 0; i < t.pairs; i += N) {
    const size_t count = t.pairs - i < N ? t.pairs - i : N;
    VF c = count == N ? LoadF32(S(), cos + i) : LoadTailF32<S>(cos + i, count, i);
    VF s = count == N ? LoadF32(S(), sin + i) : LoadTailF32<S>(sin + i, count, i);
    if (t.borrowed_inverse) {
      const VF norm = hn::Add(hn::Mul(c, c), hn::Mul(s, s));
      c = hn::Div(c, norm);
      s = hn::Neg(hn::Div(s, norm));
    }
    StoreRowPart(t.layout, t.pairs, row, i, count, c, s);
  }
}

HWY_INLINE void SynthesizeBorrowedRow(const TableView& t, int64_t position, float* HWY_RESTRICT row) {
  switch (t.borrowed_dtype) {
    case kF16:
      return SynthesizeBorrowedRowOf<F16Storage>(t, position, row);
    case kBF16:
      return SynthesizeBorrowedRowOf<BF16Storage>(t, position, row);
    default:
      return SynthesizeBorrowedRowOf<F32Storage>(t, position, row);
  }
}

// The row of `position` for a view whose mode is not kFull, written to `row`
// (t.row_floats floats). Not inline: compiled by dispatch/instances/table_rows.cc
// only, one copy per target, off the full-table path.
HWY_NOINLINE const float* SynthesizeRow(const TableView& t, int64_t position, float* HWY_RESTRICT row) {
  switch (t.mode) {
    case RowSource::kCompact:
      SynthesizeCompactRow(t, position, row);
      break;
    case RowSource::kBorrowed:
      SynthesizeBorrowedRow(t, position, row);
      break;
    default:
      SynthesizeOnTheFlyRow(t, position, row);
      break;
  }
  return row;
}

// NOLINTNEXTLINE(google-readability-namespace-comments)
}  // namespace HWY_NAMESPACE
}  // namespace rotary
HWY_AFTER_NAMESPACE();

#endif  // per-target include guard
