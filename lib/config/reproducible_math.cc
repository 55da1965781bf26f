#include "lib/config/reproducible_math.h"

#include <cmath>

namespace rotary {
namespace {

// ln 2 = kLn2Hi + kLn2Lo, kLn2Hi of 42 significant bits: e * kLn2Hi is exact
// for every exponent |e| < 2^11.
constexpr double kLn2Hi = 0x1.62e42fefa3800p-1;
constexpr double kLn2Lo = 0x1.ef35793c76730p-45;
constexpr double kInvLn2 = 0x1.71547652b82fep+0;
constexpr double kHalfSqrt2 = 0x1.6a09e667f3bcdp-1;

// A value hi + lo with |lo| <= ulp(hi) / 2: about 106 significant bits.
struct DoubleDouble {
  double hi;
  double lo;
};

// a + b exactly, as hi + lo (Knuth's TwoSum: any order of magnitudes).
DoubleDouble TwoSum(double a, double b) {
  const double s = a + b;
  const double bb = s - a;
  return {s, (a - (s - bb)) + (b - bb)};
}

// ln x as a double-double, relative error about 2^-60: x = m 2^e with m in
// [sqrt(1/2), sqrt(2)), ln m = 2 atanh(s) = 2 (s + s^3 / 3 + s^5 / 5 + ...) for
// s = (m - 1) / (m + 1), |s| <= 0.172; the leading 2 s carried in double-double.
DoubleDouble LogDoubleDouble(double x) {
  int e = 0;
  double m = std::frexp(x, &e);  // m in [0.5, 1)
  if (m < kHalfSqrt2) {
    m *= 2;
    --e;
  }
  const double f = m - 1;  // exact (Sterbenz)
  const DoubleDouble u = TwoSum(2.0, f);
  const double s = f / u.hi;
  // s = f / (u.hi + u.lo) to double-double: the remainder f - s u is exact
  // from a fused multiply-add for s * u.hi and small for s * u.lo.
  const double remainder = std::fma(-s, u.hi, f) - s * u.lo;
  const double s_lo = remainder / u.hi;
  const double s2 = s * s;
  // s^3 (2/3 + 2/5 s^2 + ...): 11 terms leave under 2^-62 of ln m.
  double tail = 2.0 / 23;
  for (int k = 21; k >= 3; k -= 2) tail = tail * s2 + 2.0 / k;
  tail = tail * s2 * s;
  // e ln 2 + 2 s + (2 s_lo + tail + e kLn2Lo), summed from the large terms down.
  const DoubleDouble head = TwoSum(static_cast<double>(e) * kLn2Hi, 2 * s);
  return TwoSum(head.hi, head.lo + (2 * s_lo + tail + static_cast<double>(e) * kLn2Lo));
}

// exp(z.hi + z.lo): z.hi = k ln 2 + r with |r| <= ln 2 / 2 (r exact, Sterbenz),
// exp(r + z.lo - k kLn2Lo) by its Taylor series to r^14 / 14!, then times 2^k.
double ExpDoubleDouble(DoubleDouble z) {
  const double k = std::nearbyint(z.hi * kInvLn2);
  const double r = (z.hi - k * kLn2Hi) + (z.lo - k * kLn2Lo);
  // exp(r) = 1 + r q(r), q = 1 + r / 2! + r^2 / 3! + ... by Horner.
  static constexpr double kInvFactorial[] = {1.0,
                                             1.0 / 2,
                                             1.0 / 6,
                                             1.0 / 24,
                                             1.0 / 120,
                                             1.0 / 720,
                                             1.0 / 5040,
                                             1.0 / 40320,
                                             1.0 / 362880,
                                             1.0 / 3628800,
                                             1.0 / 39916800,
                                             1.0 / 479001600,
                                             1.0 / 6227020800,
                                             1.0 / 87178291200};
  double q = kInvFactorial[13];
  for (int n = 12; n >= 0; --n) q = q * r + kInvFactorial[n];
  return std::ldexp(1.0 + r * q, static_cast<int>(k));
}

}  // namespace

double ReproducibleLog(double x) {
  const DoubleDouble l = LogDoubleDouble(x);
  return l.hi + l.lo;
}

double ReproduciblePow(double x, double y) {
  const DoubleDouble l = LogDoubleDouble(x);
  // y (l.hi + l.lo) to double-double: the product's error exactly by fma.
  const double hi = y * l.hi;
  const double lo = std::fma(y, l.hi, -hi) + y * l.lo;
  return ExpDoubleDouble(TwoSum(hi, lo));
}

}  // namespace rotary
