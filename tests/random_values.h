// Uniform random test inputs. Not std::uniform_real_distribution: libstdc++
// draws its values through long double arithmetic, which is software quad
// precision on aarch64, and filling tensors that way was the larger part of the
// tests' time under qemu. The values only need to be spread and reproducible.
#ifndef ROTARY_TESTS_RANDOM_VALUES_H_
#define ROTARY_TESTS_RANDOM_VALUES_H_

#include <cstdint>
#include <random>

namespace rotary_test {

// A value in [lo, hi) with 53 random bits: the top 32 bits of the fraction from
// one draw, the low 21 from the next.
template <class Rng>
double UniformValue(Rng& rng, double lo, double hi) {
  const uint64_t high = static_cast<uint32_t>(rng()), low = static_cast<uint32_t>(rng()) >> 11;
  const double unit = static_cast<double>((high << 21) | low) * 0x1p-53;
  return lo + (hi - lo) * unit;
}

}  // namespace rotary_test

#endif  // ROTARY_TESTS_RANDOM_VALUES_H_
