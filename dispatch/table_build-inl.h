// Per-target arithmetic of a full table's rows; lib/tables/rope_table.cc owns the
// memory, the exact base angles (libm, once per kStepRows positions) and the
// parallel split. The row of position base + j, from the exact cos/sin of the
// base angle a and of the step angle b = j * w:
//   cos(a + b) = cos a cos b - sin a sin b,   sin(a + b) = sin a cos b + cos a sin b,
// in double, times the attention factor, rounded once to f32. Every target does
// the same IEEE operations in the same order (a multiply and a subtract, never
// a fused multiply-add; the remainder of a row in scalar code), so every target
// builds the same table, bit for bit (tests/kernel_test.cc checks it). Rows
// are written by StoreRowPart (row_layout-inl.h), as synthesized rows are.
//
// Why vectors: a 131072-position table is 8.4 M pairs; in scalar code their
// arithmetic and stores were 125 M instructions, 80% of the build.

// Per-target include guard (Highway's convention for -inl.h files).
#if defined(ROTARY_DISPATCH_TABLE_BUILD_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef ROTARY_DISPATCH_TABLE_BUILD_INL_H_
#undef ROTARY_DISPATCH_TABLE_BUILD_INL_H_
#else
#define ROTARY_DISPATCH_TABLE_BUILD_INL_H_
#endif

#include <cstddef>
#include <cstdint>

#include "dispatch/convert-inl.h"
#include "dispatch/kernel_api.h"
#include "dispatch/kernel_entry_points-inl.h"
#include "dispatch/row_layout-inl.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace rotary {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// cos and sin of pairs [i, i + count) of one row (count <= N), one pair at a
// time: the scalar form of VectorPairs, for the remainder of a row and for
// targets without f64 vectors. Lanes from count on are zero.
HWY_INLINE void ScalarPairs(const RowBuild& b, const double* step_cos, const double* step_sin, size_t i, size_t count,
                            VF& c, VF& s) {
  HWY_ALIGN float cos_part[kMaxLanes], sin_part[kMaxLanes];
  for (size_t j = 0; j < hn::Lanes(DF()); ++j) {
    const size_t k = i + j;
    cos_part[j] = j < count ? static_cast<float>(b.scale * (b.base_cos[k] * step_cos[k] - b.base_sin[k] * step_sin[k]))
                            : 0.0f;
    sin_part[j] = j < count ? static_cast<float>(b.scale * (b.base_sin[k] * step_cos[k] + b.base_cos[k] * step_sin[k]))
                            : 0.0f;
  }
  c = hn::Load(DF(), cos_part);
  s = hn::Load(DF(), sin_part);
}

#if HWY_TARGET != HWY_SCALAR && HWY_HAVE_FLOAT64
// cos and sin of pairs [k, k + Lanes(dh)) of one row, in double, rounded to f32.
template <class DH>
HWY_INLINE void HalfVectorPairs(DH dh, const RowBuild& b, const double* step_cos, const double* step_sin, size_t k,
                                hn::Vec<DH>& c, hn::Vec<DH>& s) {
  const hn::Rebind<double, DH> dd;
  const auto scale = hn::Set(dd, b.scale);
  const auto base_cos = hn::LoadU(dd, b.base_cos + k), base_sin = hn::LoadU(dd, b.base_sin + k);
  const auto cos_step = hn::LoadU(dd, step_cos + k), sin_step = hn::LoadU(dd, step_sin + k);
  c = hn::DemoteTo(dh, hn::Mul(scale, hn::Sub(hn::Mul(base_cos, cos_step), hn::Mul(base_sin, sin_step))));
  s = hn::DemoteTo(dh, hn::Mul(scale, hn::Add(hn::Mul(base_sin, cos_step), hn::Mul(base_cos, sin_step))));
}

// cos and sin of pairs [i, i + N) of one row: two halves of N / 2 doubles.
HWY_INLINE void VectorPairs(const RowBuild& b, const double* step_cos, const double* step_sin, size_t i, VF& c,
                            VF& s) {
  const hn::Rebind<float, hn::RepartitionToWide<DF>> dh;  // N / 2 floats: half of DF
  hn::Vec<decltype(dh)> c_lo, s_lo, c_hi, s_hi;
  HalfVectorPairs(dh, b, step_cos, step_sin, i, c_lo, s_lo);
  HalfVectorPairs(dh, b, step_cos, step_sin, i + hn::Lanes(dh), c_hi, s_hi);
  c = hn::Combine(DF(), c_hi, c_lo);
  s = hn::Combine(DF(), s_hi, s_lo);
}
#endif

// Rows of steps [step_begin, step_end) of one base, the first at `row`, one
// every b.row_floats floats. Not inlined: called once per task, off the apply
// path. Not inline either: compiled by dispatch/instances/table_rows.cc only.
HWY_NOINLINE void BuildTableRows(const RowBuild& b, int64_t step_begin, int64_t step_end,
                                        float* HWY_RESTRICT row) {
  const size_t pairs = b.pairs;
  const size_t N = hn::Lanes(DF());
  for (int64_t j = step_begin; j < step_end; ++j, row += b.row_floats) {
    const double* step_cos = b.step_cos + static_cast<size_t>(j) * pairs;
    const double* step_sin = b.step_sin + static_cast<size_t>(j) * pairs;
    for (size_t i = 0; i < pairs; i += N) {
      const size_t count = pairs - i < N ? pairs - i : N;
      VF c, s;
#if HWY_TARGET != HWY_SCALAR && HWY_HAVE_FLOAT64
      if (count == N) {
        VectorPairs(b, step_cos, step_sin, i, c, s);
      } else
#endif
      {
        ScalarPairs(b, step_cos, step_sin, i, count, c, s);
      }
      StoreRowPart(b.layout, pairs, row, i, count, c, s);
    }
  }
}

// NOLINTNEXTLINE(google-readability-namespace-comments)
}  // namespace HWY_NAMESPACE
}  // namespace rotary
HWY_AFTER_NAMESPACE();

#endif  // per-target include guard
