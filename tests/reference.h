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
};

// inv_freq[i] = base^(-2i / rotary_dim).
inline std::vector<double> ReferenceInvFreq(int rotary_dim, double base) {
  std::vector<double> w(rotary_dim / 2);
  for (int i = 0; i < rotary_dim / 2; ++i) w[i] = std::pow(base, -2.0 * i / rotary_dim);
  return w;
}

// Rotates one head `in` (head_dim values) at `position`; `out` may equal `in`.
inline void ReferenceRotateHead(const RefRope& r, const double* in, double* out, int64_t position,
                                bool inverse = false) {
  const int pairs = r.rotary_dim / 2;
  const std::vector<double> w = ReferenceInvFreq(r.rotary_dim, r.base);
  std::vector<double> result(in, in + r.head_dim);  // components >= rotary_dim pass through
  for (int i = 0; i < pairs; ++i) {
    const int first = r.interleaved ? 2 * i : i;
    const int second = r.interleaved ? 2 * i + 1 : i + pairs;
    const double angle = (inverse ? -1.0 : 1.0) * static_cast<double>(position) * w[i];
    const double a = in[first], c = in[second];
    result[first] = a * std::cos(angle) - c * std::sin(angle);
    result[second] = a * std::sin(angle) + c * std::cos(angle);
  }
  for (int k = 0; k < r.head_dim; ++k) out[k] = result[k];
}

}  // namespace rotary_test

#endif  // ROTARY_TESTS_REFERENCE_H_
