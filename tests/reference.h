// The float64 oracle of every test: RoPE written for clarity, straight from
// docs/math.md §1, sharing no code with the library.
#ifndef ROTARY_TESTS_REFERENCE_H_
#define ROTARY_TESTS_REFERENCE_H_

#include <cmath>
#include <cstdint>
#include <unordered_map>
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

// cos and sin of each pair's exact angle at pair_positions[i] (one position
// for every pair in plain RoPE; multi-axis RoPE, docs/math.md §7, gives each
// pair its axis's): computed once per (b, s) and applied to all its heads.
struct ReferenceAngles {
  std::vector<double> cos, sin;
};
inline ReferenceAngles ReferencePairAngles(const RefRope& r, const int64_t* pair_positions) {
  const int pairs = r.rotary_dim / 2;
  const std::vector<double> w = r.inv_freq.empty() ? ReferenceInvFreq(r.rotary_dim, r.base) : r.inv_freq;
  ReferenceAngles angles{std::vector<double>(pairs), std::vector<double>(pairs)};
  for (int i = 0; i < pairs; ++i) ExactCosSin(pair_positions[i], w[i], &angles.cos[i], &angles.sin[i]);
  return angles;
}

// Rotates one head `in` (head_dim values) by `angles`; `out` may equal `in`.
// Forward is m R(t); inverse is its exact inverse (1/m) R(-t) (docs/math.md §1.5).
inline void ReferenceRotateHeadWithAngles(const RefRope& r, const ReferenceAngles& angles, const double* in,
                                          double* out, bool inverse = false) {
  const int pairs = r.rotary_dim / 2;
  const double m = inverse ? 1.0 / r.scale : r.scale;
  std::vector<double> result(in, in + r.head_dim);  // components >= rotary_dim pass through
  for (int i = 0; i < pairs; ++i) {
    const int first = r.interleaved ? 2 * i : i;
    const int second = r.interleaved ? 2 * i + 1 : i + pairs;
    const double cos_t = angles.cos[i], sin_t = inverse ? -angles.sin[i] : angles.sin[i];
    const double a = in[first], c = in[second];
    result[first] = m * (a * cos_t - c * sin_t);
    result[second] = m * (a * sin_t + c * cos_t);
  }
  for (int k = 0; k < r.head_dim; ++k) out[k] = result[k];
}

// Plain RoPE: every pair at `position`. The angles of the positions asked for
// are kept per thread while the frequencies stay the same: tests rotate every
// head of a row, and the same rows for each storage type and table mode, and
// the angles' libm calls were most of their time under qemu.
inline void ReferenceRotateHead(const RefRope& r, const double* in, double* out, int64_t position,
                                bool inverse = false) {
  struct Cache {
    RefRope plan{0, 0, false};
    std::unordered_map<int64_t, ReferenceAngles> by_position;
  };
  thread_local Cache cache;
  if (r.rotary_dim != cache.plan.rotary_dim || r.base != cache.plan.base || r.inv_freq != cache.plan.inv_freq ||
      cache.by_position.size() > 4096) {
    cache.plan = r;
    cache.by_position.clear();
  }
  auto it = cache.by_position.find(position);
  if (it == cache.by_position.end()) {
    const std::vector<int64_t> pair_positions(static_cast<size_t>(r.rotary_dim / 2), position);
    it = cache.by_position.emplace(position, ReferencePairAngles(r, pair_positions.data())).first;
  }
  ReferenceRotateHeadWithAngles(r, it->second, in, out, inverse);
}

}  // namespace rotary_test

#endif  // ROTARY_TESTS_REFERENCE_H_
