// Per-target arithmetic of a full table's rows; lib/rope_table.cc owns the
// memory, the exact base angles (libm, once per kStepRows positions) and the
// parallel split. The row of position base + j, from the exact cos/sin of the
// base angle a and of the step angle b = j * w:
//   cos(a + b) = cos a cos b - sin a sin b,   sin(a + b) = sin a cos b + cos a sin b,
// in double, times the attention factor, rounded once to f32. Every target does
// the same IEEE operations in the same order (a multiply and a subtract, never
// a fused multiply-add; the remainder of a row in scalar code), so every target
// builds the same table, bit for bit (tests/kernel_test.cc checks it).
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

#include "dispatch/kernel_api.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace rotary {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// Pair i of one row: the scalar form of the vector loop below, and its remainder.
HWY_INLINE void BuildPairScalar(const RowBuild& b, const double* step_cos, const double* step_sin, size_t i,
                                float* HWY_RESTRICT row) {
  const float c = static_cast<float>(b.scale * (b.base_cos[i] * step_cos[i] - b.base_sin[i] * step_sin[i]));
  const float s = static_cast<float>(b.scale * (b.base_sin[i] * step_cos[i] + b.base_cos[i] * step_sin[i]));
  if (b.layout == TableLayout::kPerPair) {
    row[i] = c;
    row[b.pairs + i] = s;
  } else {
    row[2 * i] = row[2 * i + 1] = c;
    row[2 * b.pairs + 2 * i] = -s;
    row[2 * b.pairs + 2 * i + 1] = s;
  }
}

// Rows of steps [step_begin, step_end) of one base, the first at `row`, one
// every b.row_floats floats. Not inlined: called once per task, off the apply path.
inline HWY_NOINLINE void BuildTableRows(const RowBuild& b, int64_t step_begin, int64_t step_end,
                                        float* HWY_RESTRICT row) {
  const size_t pairs = b.pairs;
  for (int64_t j = step_begin; j < step_end; ++j, row += b.row_floats) {
    const double* step_cos = b.step_cos + static_cast<size_t>(j) * pairs;
    const double* step_sin = b.step_sin + static_cast<size_t>(j) * pairs;
    size_t i = 0;
#if HWY_TARGET != HWY_SCALAR && HWY_HAVE_FLOAT64
    using D64 = hn::ScalableTag<double>;
    const D64 dd;
    const hn::Rebind<float, D64> df;  // as many floats: half a vector
    const size_t N = hn::Lanes(dd);
    const auto scale = hn::Set(dd, b.scale);
    for (; i + N <= pairs; i += N) {
      const auto base_cos = hn::LoadU(dd, b.base_cos + i), base_sin = hn::LoadU(dd, b.base_sin + i);
      const auto cos_step = hn::LoadU(dd, step_cos + i), sin_step = hn::LoadU(dd, step_sin + i);
      const auto c = hn::DemoteTo(
          df, hn::Mul(scale, hn::Sub(hn::Mul(base_cos, cos_step), hn::Mul(base_sin, sin_step))));
      const auto s = hn::DemoteTo(
          df, hn::Mul(scale, hn::Add(hn::Mul(base_sin, cos_step), hn::Mul(base_cos, sin_step))));
      if (b.layout == TableLayout::kPerPair) {
        hn::StoreU(c, df, row + i);
        hn::StoreU(s, df, row + pairs + i);
      } else {
        hn::StoreInterleaved2(c, c, df, row + 2 * i);
        hn::StoreInterleaved2(hn::Neg(s), s, df, row + 2 * pairs + 2 * i);
      }
    }
#endif
    for (; i < pairs; ++i) BuildPairScalar(b, step_cos, step_sin, i, row);
  }
}

// NOLINTNEXTLINE(google-readability-namespace-comments)
}  // namespace HWY_NAMESPACE
}  // namespace rotary
HWY_AFTER_NAMESPACE();

#endif  // per-target include guard
