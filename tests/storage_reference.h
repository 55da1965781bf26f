// Scalar reference conversions between double/float and f16 / bf16 bits,
// written from the definitions (nearest representable value, ties to even),
// sharing no code with the library's vector conversions.
#ifndef ROTARY_TESTS_STORAGE_REFERENCE_H_
#define ROTARY_TESTS_STORAGE_REFERENCE_H_

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#include "rotary/rotary.h"

namespace rotary_test {

// The bits of a value and back (memcpy: no aliasing questions).
template <class To, class From>
inline To BitCast(From from) {
  static_assert(sizeof(To) == sizeof(From), "same size");
  To to;
  std::memcpy(&to, &from, sizeof(to));
  return to;
}
inline uint32_t FloatBits(float f) { return BitCast<uint32_t>(f); }
inline float BitsFloat(uint32_t u) { return BitCast<float>(u); }

// 2^e for a normal double exponent e (|e| <= 1022), from its bits: exact, and
// much cheaper than ldexp, which these per-element conversions called on every
// value (a fifth of some tests' time, more under qemu).
inline double PowerOfTwo(int e) { return BitCast<double>(static_cast<uint64_t>(e + 1023) << 52); }

// The exponent e of a normal double a > 0: a in [2^e, 2^(e+1)).
inline int ExponentOf(double a) { return static_cast<int>((BitCast<uint64_t>(a) >> 52) & 0x7FF) - 1023; }

// f16 bits -> value (exact in double).
inline double HalfToDouble(uint16_t h) {
  const int sign = h >> 15, exponent = (h >> 10) & 0x1F, mantissa = h & 0x3FF;
  double magnitude;
  if (exponent == 0x1F) {
    magnitude = mantissa ? std::numeric_limits<double>::quiet_NaN() : std::numeric_limits<double>::infinity();
  } else if (exponent == 0) {
    magnitude = mantissa * 0x1p-24;
  } else {
    magnitude = (1024 + mantissa) * PowerOfTwo(exponent - 25);
  }
  return sign ? -magnitude : magnitude;
}

// Nearest f16 (ties to even mantissa); beyond the largest finite value plus half
// an ulp: Inf; NaN: a NaN (any payload).
inline uint16_t DoubleToHalf(double v) {
  if (std::isnan(v)) return 0x7E00;
  const uint16_t sign = std::signbit(v) ? 0x8000 : 0;
  const double a = std::fabs(v);
  // Largest finite f16 is 65504; the next step (ulp 32) would be 65536.
  if (a >= 65520.0) return sign | 0x7C00;
  // The f16 step at a: 2^(e-10) for a in [2^e, 2^(e+1)), 2^-24 below 2^-14
  // (the subnormals). a in steps is exact (a power-of-two scaling), and
  // nearbyint rounds it to the nearest count, ties to even (the default mode).
  const int e = a < 0x1p-14 ? -14 : ExponentOf(a);
  const double steps = std::nearbyint(a * PowerOfTwo(10 - e));
  // Subnormals: the bits are the count of 2^-24 steps. Normals: the count is
  // 1024 + mantissa; a count of 2048 (rounded up to the next binade) carries
  // into the exponent field, as the bits of the next binade's first value.
  const int count = static_cast<int>(steps);
  const int bits = e == -14 && count < 1024 ? count : ((e + 15) << 10) + (count - 1024);
  return static_cast<uint16_t>(sign | bits);
}

inline double BFloat16ToDouble(uint16_t b) { return BitsFloat(static_cast<uint32_t>(b) << 16); }

// Nearest bf16 (ties to even); NaN: a quiet NaN.
inline uint16_t FloatToBFloat16(float v) {
  if (std::isnan(v)) return static_cast<uint16_t>((FloatBits(v) >> 16) | 0x0040);
  const uint32_t bits = FloatBits(v);
  const uint16_t toward_zero = static_cast<uint16_t>(bits >> 16);
  if ((bits & 0xFFFF) == 0) return toward_zero;  // exact (and Inf)
  // The step to the next bf16 magnitude, in double so it exists even past the f32 range.
  const int exponent = static_cast<int>((bits >> 23) & 0xFF);
  const double ulp = PowerOfTwo((exponent == 0 ? 1 : exponent) - 127 - 7);
  const double low = std::fabs(BFloat16ToDouble(toward_zero));
  const double a = std::fabs(static_cast<double>(v));
  const double d_low = a - low, d_high = low + ulp - a;
  const bool up = d_high < d_low || (d_high == d_low && (toward_zero & 1));
  return static_cast<uint16_t>(toward_zero + (up ? 1 : 0));  // carries into the exponent (up to Inf) as it should
}

inline size_t StorageBytes(rotary_dtype dtype) { return dtype == ROTARY_F32 ? 4 : 2; }

// The value stored at p in storage `dtype`, exactly.
inline double LoadStored(const void* p, rotary_dtype dtype) {
  if (dtype == ROTARY_F32) {
    float f;
    std::memcpy(&f, p, 4);
    return f;
  }
  uint16_t u;
  std::memcpy(&u, p, 2);
  return dtype == ROTARY_F16 ? HalfToDouble(u) : BFloat16ToDouble(u);
}

// Stores v at p, rounded to the nearest value of storage `dtype`.
inline void StoreRounded(void* p, rotary_dtype dtype, double v) {
  if (dtype == ROTARY_F32) {
    const float f = static_cast<float>(v);
    std::memcpy(p, &f, 4);
    return;
  }
  const uint16_t u = dtype == ROTARY_F16 ? DoubleToHalf(v) : FloatToBFloat16(static_cast<float>(v));
  std::memcpy(p, &u, 2);
}

}  // namespace rotary_test

#endif  // ROTARY_TESTS_STORAGE_REFERENCE_H_
