// cos and sin of a RoPE angle in double, by the same IEEE operations on every
// CPU: no libm (whose results differ between C libraries, architectures and
// even FMA and non-FMA builds of one glibc), no fused multiply-add (the build
// has -ffp-contract=off). The table build (lib/tables/rope_table.cc) and the
// on-the-fly mode (row_synthesis-inl.h, whose vector form repeats these
// operations in this order) use them, so tables are the same bits everywhere.
//
// Accuracy: within 3 units of 2^-53 (tests/plan_test.cc), far below the f32
// rounding that follows (a table entry differs from the correctly rounded f32
// of the exact value only when that value lies that close to a midpoint
// between floats).
#ifndef ROTARY_DISPATCH_COS_SIN_DOUBLE_H_
#define ROTARY_DISPATCH_COS_SIN_DOUBLE_H_

#include <cmath>

namespace rotary {

// ---- Reduction of a = p * w to a quarter turn ----
// a = k pi / 2 + r with |r| <= pi / 4 (up to rounding), by Cody-Waite with
// pi / 2 in three parts, the first two of at most 19 significant bits, so that
// k * part is exact for |k| < 2^34 quarter turns: every angle of a position
// below 2^31 and a frequency below 4 pi (lib/config/config.cc rejects larger
// ones). a - k * kHalfPi1 is exact (Sterbenz), and so is the next difference
// (below 1, on the grid of a's ulp or of 2^-34, whichever is coarser): the
// errors are the last product's and difference's roundings and the addition
// of the product's error, a few units of 2^-53 (tests/plan_test.cc).
constexpr double kTwoOverPi = 0x1.45f306dc9c883p-1;
constexpr double kHalfPi1 = 0x1.921f800000000p+0;   // 18 significant bits
constexpr double kHalfPi2 = 0x1.aa22000000000p-19;  // the next bits, 16 significant
constexpr double kHalfPi3 = 0x1.68c234c4c6629p-39;  // the rest, rounded
constexpr double kMaxInvFreq = 4 * 3.14159265358979323846;

// sin x = x + x^3 P(x^2), cos x = 1 + x^2 Q(x^2) on |x| <= pi / 4: P of degree 5
// and Q (whose constant term is -1/2) of degree 6, near-minimax least-squares
// fits (docs/tools/fit_cos_sin.py recomputes them), within 0.04 units of 2^-53
// of sin and cos before the rounding of their own evaluation.
constexpr double kSinTerms[] = {-0x1.5555555555548p-3, 0x1.111111110f756p-7,  -0x1.a01a019bf1926p-13,
                                0x1.71de355eba24ap-19, -0x1.ae5e5455fb300p-26, 0x1.5d8e344cc1f46p-33};
constexpr double kCosTerms[] = {-0.5,
                                0x1.555555555554ap-5,
                                -0x1.6c16c16c14e93p-10,
                                0x1.a01a019c6ed3ep-16,
                                -0x1.27e4f7dd0485ep-22,
                                0x1.1ee9cf46eb804p-29,
                                -0x1.8fa09cbf37c50p-37};
constexpr int kSinTermCount = sizeof(kSinTerms) / sizeof(kSinTerms[0]);
constexpr int kCosTermCount = sizeof(kCosTerms) / sizeof(kCosTerms[0]);

struct CosSin {
  double cos;
  double sin;
};

// cos and sin of the exact angle p * w (integer p < 2^31, w < kMaxInvFreq):
// reduced to a quarter turn, plus the product's own rounding error, exact from
// a fused multiply-add (std::fma is correctly rounded on every platform).
inline CosSin CosSinOfAngle(double p, double w) {
  const double a = p * w;
  const double k = std::nearbyint(a * kTwoOverPi);
  const double x = (((a - k * kHalfPi1) - k * kHalfPi2) - k * kHalfPi3) + std::fma(p, w, -a);
  const double x2 = x * x;
  double ps = kSinTerms[kSinTermCount - 1], pc = kCosTerms[kCosTermCount - 1];
  for (int i = kSinTermCount - 2; i >= 0; --i) ps = ps * x2 + kSinTerms[i];
  for (int i = kCosTermCount - 2; i >= 0; --i) pc = pc * x2 + kCosTerms[i];
  const double s = x + x * (x2 * ps);
  const double c = 1.0 + x2 * pc;
  // The quadrant, k mod 4 (exact: k is an integer below 2^53).
  switch (static_cast<int>(k - 4 * std::floor(k * 0.25))) {
    case 1: return {-s, c};
    case 2: return {-c, -s};
    case 3: return {s, -c};
    default: return {c, s};
  }
}

}  // namespace rotary

#endif  // ROTARY_DISPATCH_COS_SIN_DOUBLE_H_
