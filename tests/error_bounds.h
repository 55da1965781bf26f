// Error bounds of the f32 rotation, from the error analysis below; every f32
// accuracy check of the C++ suites uses these instead of a constant of its own.
//
// u = 2^-24, the unit roundoff of f32. X = max |x| over the input, m = the
// attention factor the table carries (1/m for the inverse), g = an output
// scale (q_scale). The float64 reference rotates by the exact angle p * w
// (tests/reference.h), as the library's tables do. One output component
//   y = m (a cos t - b sin t)   (or m (a sin t + b cos t))
// is computed from row entries c~, s~ with a product and a fused multiply-add
// (FMA targets), or two products and a subtraction (SSE4, SCALAR), each
// rounded once:
//   |y~ - y| <= |a| |c~ - m cos t| + |b| |s~ - m sin t|   the entries' error
//            +  u m (|a cos t| + |b sin t|)                the products' roundings
//            +  u |y|                                     the final rounding
// with |a cos t| + |b sin t| <= sqrt(2) X and |y| <= sqrt(2) m X:
//   full table: entries within 0.5 ulp, so |c~ - m cos t| <= u m |cos t|,
//     and the entries' error is <= sqrt(2) u m X:   3 sqrt(2) = 4.24 u m X
//     a scale g rounds the row once more (2 u):     4 sqrt(2) = 5.66 u m g X
//   compact and on the fly: entries within 4 u m absolute (kernel_test):
//                                                  8 + 2 sqrt(2) = 10.83 u m X
//     with a scale, 5 u m g:                      10 + 2 sqrt(2) = 12.83 u m g X
// Inputs are exact (f16 and bf16 widen exactly), so f16/bf16 outputs are one
// rounding of a value within the same bound (ExpectOneRoundingOf).
// Measured on every x86 target (tests/table_mode_test.cc prints it): 2.2-2.7
// u m X with the full table, 3.1-3.4 compact and on the fly.
#ifndef ROTARY_TESTS_ERROR_BOUNDS_H_
#define ROTARY_TESTS_ERROR_BOUNDS_H_

#include <cmath>

namespace rotary_test {

constexpr double kF32Unit = 1.0 / (1 << 24);

enum class Rows { kFull, kSynthesized };

// The bound on one f32 output component's |y~ - y|, the analysis above
// rounded up to whole units of u m g X.
inline double F32Bound(double max_abs_x, double attention_factor = 1.0, double scale = 1.0,
                       Rows rows = Rows::kFull) {
  const double units = rows == Rows::kFull ? (scale == 1.0 ? 5 : 6) : (scale == 1.0 ? 11 : 13);
  return units * kF32Unit * max_abs_x * std::fabs(attention_factor * scale);
}

// |inverse(apply(x)) - x|: apply's error, carried through the inverse (which
// divides by m), plus the inverse's own on its input, whose largest value is
// at most sqrt(2) m X (a rotated pair mixes two components).
inline double RoundTripBound(double max_abs_x, Rows rows = Rows::kFull) {
  return F32Bound(max_abs_x, 1.0, 1.0, rows) + F32Bound(std::sqrt(2.0) * max_abs_x, 1.0, 1.0, rows);
}

}  // namespace rotary_test

#endif  // ROTARY_TESTS_ERROR_BOUNDS_H_
