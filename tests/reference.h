// The float64 oracle of every test: RoPE written for clarity, straight from
// docs/math.md §1, sharing no code with the library.
#ifndef ROTARY_TESTS_REFERENCE_H_
#define ROTARY_TESTS_REFERENCE_H_

#include <cmath>
#include <cstdint>
#include <vector>

namespace rotary_test {

struct RefRope {
  int head_dim;
  int rotary_dim;
  bool interleaved;
  double base = 10000.0;
  // A scaled scheme's plan (tests/reference_plans.h): frequencies used in place
  // of base^(-2i/R) when not empty, and the attention factor m on cos and sin.
  std::vector<double> inv_freq = {};
  double scale = 1.0;
};

// inv_freq[i] = base^(-2i / rotary_dim).
inline std::vector<double> ReferenceInvFreq(int rotary_dim, double base) {
  std::vector<double> w(rotary_dim / 2);
  for (int i = 0; i < rotary_dim / 2; ++i) w[i] = std::pow(base, -2.0 * i / rotary_dim);
  return w;
}

// cos and sin of the exact angle position * w. The double product p * w is
// rounded: at position 2^31 and w = 1 by up to 2^-22 rad, which would put an
// error of 4 f32 ulps into the oracle itself. Split the product exactly,
// p * w = hi + lo (lo from a fused multiply-add, exact for integer p < 2^53),
// and correct libm's cos/sin of hi (exactly reduced) to first order in lo
// (|lo| <= 2^-53 |hi|: its square is below double precision).
inline void ExactCosSin(int64_t position, double w, double* cos_out, double* sin_out) {
  const double p = static_cast<double>(position);
  const double hi = p * w;
  const double lo = std::fma(p, w, -hi);
  const double c = std::cos(hi), s = std::sin(hi);
  *cos_out = c - s * lo;
  *sin_out = s + c * lo;
}

// Rotates one head `in` (head_dim values), pair i at pair_positions[i] (one
// position for every pair in plain RoPE; multi-axis RoPE, docs/math.md §7,
// gives each pair its axis's); `out` may equal `in`. Forward is m R(t);
// inverse is its exact inverse (1/m) R(-t) (docs/math.md §1.5).
inline void ReferenceRotateHeadPerPair(const RefRope& r, const double* in, double* out,
                                       const int64_t* pair_positions, bool inverse = false) {
  const int pairs = r.rotary_dim / 2;
  const std::vector<double> w = r.inv_freq.empty() ? ReferenceInvFreq(r.rotary_dim, r.base) : r.inv_freq;
  const double m = inverse ? 1.0 / r.scale : r.scale;
  std::vector<double> result(in, in + r.head_dim);  // components >= rotary_dim pass through
  for (int i = 0; i < pairs; ++i) {
    const int first = r.interleaved ? 2 * i : i;
    const int second = r.interleaved ? 2 * i + 1 : i + pairs;
    double cos_t, sin_t;
    ExactCosSin(pair_positions[i], w[i], &cos_t, &sin_t);
    if (inverse) sin_t = -sin_t;
    const double a = in[first], c = in[second];
    result[first] = m * (a * cos_t - c * sin_t);
    result[second] = m * (a * sin_t + c * cos_t);
  }
  for (int k = 0; k < r.head_dim; ++k) out[k] = result[k];
}

// Plain RoPE: every pair at `position`.
inline void ReferenceRotateHead(const RefRope& r, const double* in, double* out, int64_t position,
                                bool inverse = false) {
  const std::vector<int64_t> pair_positions(static_cast<size_t>(r.rotary_dim / 2), position);
  ReferenceRotateHeadPerPair(r, in, out, pair_positions.data(), inverse);
}

}  // namespace rotary_test

#endif  // ROTARY_TESTS_REFERENCE_H_
