// Per-target synthesis of one cos/sin row for the table modes that store no
// row per position (RowSource::kCompact, kOnTheFly) and for a caller's
// borrowed arrays (kBorrowed). The kernel builds the row
// of a (b, s) once, in the full layout its pairing reads (TableLayout), into a
// stack buffer, then runs the same head loop as for a stored row: the cost per
// head is the full table's, and the synthesis is shared by every head of q and k.
//
// Compact: p = hi * K + lo, and with the high row (scaled by m) and the low row
// (unscaled), each exact in double and rounded to f32,
//   cos(p w) = cos_hi cos_lo - sin_hi sin_lo,   sin(p w) = sin_hi cos_lo + cos_hi sin_lo.
// On the fly: r = p * w reduced mod 2 pi in double (angle_reduction.h, N / 2
// angles a vector where the target has f64 vectors), with the rounding error
// of the double product p * w added back (it is exact: a fused multiply-add,
// or Dekker's product on targets without one), split
// as r = rf + e with rf = f32(r); Highway's f32 Sin/Cos of rf (3 ulp, valid far
// beyond |rf| <= pi), corrected to first order for e:
//   cos r = cos rf - e sin rf,   sin r = sin rf + e cos rf.

// Per-target include guard (Highway's convention for -inl.h files).
#if defined(ROTARY_DISPATCH_ROW_SYNTHESIS_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef ROTARY_DISPATCH_ROW_SYNTHESIS_INL_H_
#undef ROTARY_DISPATCH_ROW_SYNTHESIS_INL_H_
#else
#define ROTARY_DISPATCH_ROW_SYNTHESIS_INL_H_
#endif

#include "dispatch/angle_reduction.h"
#include "dispatch/convert-inl.h"
#include "dispatch/kernel_api.h"
#include "dispatch/kernel_entry_points-inl.h"
#include "dispatch/partial_vectors-inl.h"
#include "dispatch/row_layout-inl.h"
#include "hwy/contrib/math/math-inl.h"
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
    StoreRowPart(t.layout, t.pairs, row, i, count, hn::MulSub(ch, cl, hn::Mul(sh, sl)), hn::MulAdd(sh, cl, hn::Mul(ch, sl)));
  }
}

// The f32 parts (rf, e) of the reduced angles p * inv_freq[i + j], j < count,
// into `reduced` and `residual` (zero beyond count): one at a time in double.
HWY_INLINE void ReduceAnglesScalar(double p, const double* inv_freq, size_t count, float* reduced, float* residual) {
  for (size_t j = 0; j < hn::Lanes(DF()); ++j) {
    const double hi = j < count ? p * inv_freq[j] : 0.0;
    const double r = j < count ? ReduceAngle(hi) + std::fma(p, inv_freq[j], -hi) : 0.0;
    reduced[j] = static_cast<float>(r);
    residual[j] = static_cast<float>(r - static_cast<double>(reduced[j]));
  }
}

#if HWY_TARGET != HWY_SCALAR && HWY_HAVE_FLOAT64
using DD = hn::RepartitionToWide<DF>;  // N / 2 doubles
using DHalf = hn::Rebind<float, DD>;   // N / 2 floats: half of DF

// p * w - a exactly, for a = p * w rounded: the rounding error of the product.
HWY_INLINE hn::Vec<DD> ProductError(hn::Vec<DD> p, hn::Vec<DD> w, hn::Vec<DD> a) {
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

// The same as ReduceAngle (plus the product's rounding error, `lo`) for N / 2
// angles, split into f32 parts; false if an angle is too large for the fast
// reduction (then the caller goes scalar).
HWY_INLINE bool ReduceHalf(hn::Vec<DD> a, hn::Vec<DD> lo, hn::Vec<DHalf>& rf, hn::Vec<DHalf>& e) {
  const DD dd;
  const auto k = hn::Round(hn::Mul(a, hn::Set(dd, kInvTwoPi)));
  if (!hn::AllTrue(dd, hn::Lt(hn::Abs(k), hn::Set(dd, kMaxTurns)))) return false;
  const auto reduced = hn::NegMulAdd(k, hn::Set(dd, kTwoPi3),
                                     hn::NegMulAdd(k, hn::Set(dd, kTwoPi2), hn::NegMulAdd(k, hn::Set(dd, kTwoPi1), a)));
  const auto r = hn::Add(reduced, lo);
  rf = hn::DemoteTo(DHalf(), r);
  e = hn::DemoteTo(DHalf(), hn::Sub(r, hn::PromoteTo(dd, rf)));
  return true;
}

// N reduced angles of pairs [i, i + N): false if any is too large.
HWY_INLINE bool ReduceAnglesVector(double p, const double* inv_freq, VF& rf, VF& e) {
  const DD dd;
  const size_t half = hn::Lanes(dd);
  const auto pv = hn::Set(dd, p);
  const auto w_lo = hn::LoadU(dd, inv_freq), w_hi = hn::LoadU(dd, inv_freq + half);
  const auto a_lo = hn::Mul(pv, w_lo), a_hi = hn::Mul(pv, w_hi);
  hn::Vec<DHalf> rf_lo, rf_hi, e_lo, e_hi;
  if (!ReduceHalf(a_lo, ProductError(pv, w_lo, a_lo), rf_lo, e_lo) ||
      !ReduceHalf(a_hi, ProductError(pv, w_hi, a_hi), rf_hi, e_hi)) {
    return false;
  }
  rf = hn::Combine(DF(), rf_hi, rf_lo);
  e = hn::Combine(DF(), e_hi, e_lo);
  return true;
}
#endif

HWY_INLINE void SynthesizeOnTheFlyRow(const TableView& t, int64_t position, float* HWY_RESTRICT row) {
  const DF d;
  const size_t pairs = t.pairs;
  const size_t N = hn::Lanes(d);
  const double p = static_cast<double>(position);  // exact: positions < 2^31
  const VF scale = hn::Set(d, t.scale);
  HWY_ALIGN float reduced[kMaxLanes], residual[kMaxLanes];
  for (size_t i = 0; i < pairs; i += N) {
    const size_t count = pairs - i < N ? pairs - i : N;
    VF rf, e;
#if HWY_TARGET != HWY_SCALAR && HWY_HAVE_FLOAT64
    if (count < N || !ReduceAnglesVector(p, t.inv_freq + i, rf, e))
#endif
    {
      ReduceAnglesScalar(p, t.inv_freq + i, count, reduced, residual);
      rf = hn::Load(d, reduced);
      e = hn::Load(d, residual);
    }
    const VF c = hn::Cos(d, rf), s = hn::Sin(d, rf);
    StoreRowPart(t.layout, t.pairs, row, i, count, hn::Mul(hn::NegMulAdd(s, e, c), scale), hn::Mul(hn::MulAdd(c, e, s), scale));
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
