// Exact argument reduction of a RoPE angle for the on-the-fly table mode
// (RowSource::kOnTheFly): the double product a = p * w is reduced mod 2 pi in
// double to r in about [-pi, pi], with an error of a few units of 2^-52, far
// below the f32 sin/cos evaluated on it. The caller adds the product's own
// rounding error, p * w - a, so the angle is exact, as the stored tables' is.
// Plain C++ (no per-target code): Cody-Waite with 2 pi split in three parts,
// the first two of 21 significant bits so that k * part is exact for
// |k| < 2^32; larger angles (only from huge custom frequencies) fall back to
// libm, which reduces exactly too.
#ifndef ROTARY_DISPATCH_ANGLE_REDUCTION_H_
#define ROTARY_DISPATCH_ANGLE_REDUCTION_H_

#include <cmath>

namespace rotary {

// The constants, shared with the vector version (row_synthesis-inl.h).
constexpr double kInvTwoPi = 0x1.45f306dc9c883p-3;
constexpr double kTwoPi1 = 0x1.921fb00000000p+2;   // 21 bits
constexpr double kTwoPi2 = 0x1.5110b00000000p-20;  // the next 21 bits
constexpr double kTwoPi3 = 0x1.18469898cc517p-42;  // the rest, rounded
constexpr double kMaxTurns = 4294967296.0;         // 2^32: k * kTwoPi1, k * kTwoPi2 stay exact

// a - k * 2 pi for the k = round(a / 2 pi): in [-pi, pi] up to rounding.
inline double ReduceAngle(double a) {
  const double k = std::nearbyint(a * kInvTwoPi);
  if (!(std::fabs(k) < kMaxTurns)) return std::atan2(std::sin(a), std::cos(a));
  // a - k * kTwoPi1 is exact (Sterbenz: both within a factor 2, or k = 0); the
  // later terms are small, so their rounding errors are too.
  return ((a - k * kTwoPi1) - k * kTwoPi2) - k * kTwoPi3;
}

}  // namespace rotary

#endif  // ROTARY_DISPATCH_ANGLE_REDUCTION_H_
