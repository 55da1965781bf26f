// The float64 oracle of every test: RoPE written for clarity, straight from
// ROPE_MATH.md §1, sharing no code with the library.
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

// Rotates one head `in` (head_dim values) at `position`; `out` may equal `in`.
// Forward is m R(t); inverse is its exact inverse (1/m) R(-t) (ROPE_MATH.md §1.5).
inline void ReferenceRotateHead(const RefRope& r, const double* in, double* out, int64_t position,
                                bool inverse = false) {
  const int pairs = r.rotary_dim / 2;
  const std::vector<double> w = r.inv_freq.empty() ? ReferenceInvFreq(r.rotary_dim, r.base) : r.inv_freq;
  const double m = inverse ? 1.0 / r.scale : r.scale;
  std::vector<double> result(in, in + r.head_dim);  // components >= rotary_dim pass through
  for (int i = 0; i < pairs; ++i) {
    const int first = r.interleaved ? 2 * i : i;
    const int second = r.interleaved ? 2 * i + 1 : i + pairs;
    const double angle = (inverse ? -1.0 : 1.0) * static_cast<double>(position) * w[i];
    const double a = in[first], c = in[second];
    result[first] = m * (a * std::cos(angle) - c * std::sin(angle));
    result[second] = m * (a * std::sin(angle) + c * std::cos(angle));
  }
  for (int k = 0; k < r.head_dim; ++k) out[k] = result[k];
}

}  // namespace rotary_test

#endif  // ROTARY_TESTS_REFERENCE_H_
