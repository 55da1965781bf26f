#include "bench/yardsticks.h"

#include <cmath>

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "bench/yardsticks.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep

#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace rotary_bench {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

void StreamRange(float* HWY_RESTRICT x, size_t n, float a, float b) {
  const hn::ScalableTag<float> d;
  const size_t N = hn::Lanes(d);
  const auto va = hn::Set(d, a), vb = hn::Set(d, b);
  size_t i = 0;
  for (; i + N <= n; i += N) hn::StoreU(hn::MulAdd(va, hn::LoadU(d, x + i), vb), d, x + i);
  for (; i < n; ++i) x[i] = a * x[i] + b;
}

// NOLINTNEXTLINE(google-readability-namespace-comments)
}  // namespace HWY_NAMESPACE
}  // namespace rotary_bench
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include "lib/scheduler.h"

namespace rotary_bench {
HWY_EXPORT(StreamRange);

void StreamInPlace(float* x, int64_t rows, int64_t floats_per_row, float a, float b) {
  rotary::ForEachRowRange(rows, 2 * floats_per_row * static_cast<int64_t>(sizeof(float)),
                          [&](int64_t begin, int64_t end) {
                            HWY_DYNAMIC_DISPATCH(StreamRange)(x + begin * floats_per_row,
                                                              static_cast<size_t>((end - begin) * floats_per_row),
                                                              a, b);
                          });
}

NaiveRope::NaiveRope(int d, int64_t max_positions, double base) : dim(d) {
  const int half = dim / 2;
  cos_table.resize(max_positions * half);
  sin_table.resize(max_positions * half);
  for (int64_t p = 0; p < max_positions; ++p) {
    for (int i = 0; i < half; ++i) {
      const double angle = p * std::pow(base, -2.0 * i / dim);
      cos_table[p * half + i] = static_cast<float>(std::cos(angle));
      sin_table[p * half + i] = static_cast<float>(std::sin(angle));
    }
  }
}

void NaiveRope::Apply(float* x, int64_t rows, int64_t seq, int64_t heads, int64_t offset,
                      bool interleaved) const {
  const int half = dim / 2;
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t position = offset + r % seq;
    const float* c = &cos_table[position * half];
    const float* s = &sin_table[position * half];
    for (int64_t h = 0; h < heads; ++h) {
      float* v = x + (r * heads + h) * dim;
      for (int i = 0; i < half; ++i) {
        const int first = interleaved ? 2 * i : i;
        const int second = interleaved ? 2 * i + 1 : i + half;
        const float a = v[first], b = v[second];
        v[first] = a * c[i] - b * s[i];
        v[second] = a * s[i] + b * c[i];
      }
    }
  }
}

}  // namespace rotary_bench
#endif  // HWY_ONCE
