// Natural logarithm and power in double by the same IEEE operations on every
// CPU, for the frequencies and attention factors of the scaling schemes. libm's
// log and pow differ in the last bit between C libraries, architectures and
// even glibc's FMA and non-FMA code paths; a frequency one ulp apart moves a
// table entry at a large position by an f32 ulp, so the tables (and all output)
// would differ between machines. These use only +, -, *, /, std::fma (correctly
// rounded everywhere), and exact scaling by powers of two; the build has
// -ffp-contract=off. Accuracy: within about 2 ulps (tests/plan_test.cc).
#ifndef ROTARY_LIB_CONFIG_REPRODUCIBLE_MATH_H_
#define ROTARY_LIB_CONFIG_REPRODUCIBLE_MATH_H_

namespace rotary {

// ln x for finite x > 0.
double ReproducibleLog(double x);

// x^y for finite x > 0 and finite y whose result is a finite normal double.
double ReproduciblePow(double x, double y);

}  // namespace rotary

#endif  // ROTARY_LIB_CONFIG_REPRODUCIBLE_MATH_H_
