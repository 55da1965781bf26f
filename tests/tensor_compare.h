// Comparisons of whole test tensors: against the float64 reference rotation,
// and against each other, over the heads (guards and pads are checked by
// TypedTensor::OnlyHeadsChanged instead).
#ifndef ROTARY_TESTS_TENSOR_COMPARE_H_
#define ROTARY_TESTS_TENSOR_COMPARE_H_

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include <gtest/gtest.h>

#include "tests/reference.h"
#include "tests/typed_tensor.h"

namespace rotary_test {

// Calls fn(b, s, h) for every head of a tensor of this shape.
template <typename Fn>
void ForEachHead(const Shape& s, const Fn& fn) {
  for (int64_t b = 0; b < s.batch; ++b)
    for (int64_t q = 0; q < s.seq; ++q)
      for (int64_t h = 0; h < s.heads; ++h) fn(b, q, h);
}

// |got - expected| as an error that std::max and `<=` cannot lose: a NaN, or
// an infinity where the other is finite, is an infinite error (fabs(NaN) would
// compare false with everything, so std::max would drop it and a tensor of
// NaN would score 0). Equal values, infinities included, are no error.
inline double AbsError(double got, double expected) {
  if (got == expected) return 0;
  const double e = std::fabs(got - expected);
  return std::isnan(e) ? std::numeric_limits<double>::infinity() : e;
}

// Largest |x| over the heads; NaN if any head holds a NaN, so a bound made
// from it fails every comparison instead of passing them.
inline double MaxAbs(const TypedTensor& x) {
  double m = 0;
  x.ForEach([&](int64_t b, int64_t q, int64_t h, int64_t k) {
    const double v = std::fabs(x.Get(b, q, h, k));
    m = std::isnan(v) || std::isnan(m) ? std::numeric_limits<double>::quiet_NaN() : std::max(m, v);
  });
  return m;
}

// Largest |got - reference(before)| over the tensor, for positions[b * seq + s]
// (AbsError: NaN and unexpected Inf count as infinite).
inline double MaxErrorVsReference(const TypedTensor& got, const TypedTensor& before, const RefRope& ref,
                                  const std::vector<int64_t>& positions, bool inverse = false) {
  const Shape& s = got.shape();
  double worst = 0;
  std::vector<double> expected(s.head_dim);
  ForEachHead(s, [&](int64_t b, int64_t q, int64_t h) {
    for (int64_t k = 0; k < s.head_dim; ++k) expected[k] = before.Get(b, q, h, k);
    ReferenceRotateHead(ref, expected.data(), expected.data(), positions[b * s.seq + q], inverse);
    for (int64_t k = 0; k < s.head_dim; ++k) {
      worst = std::max(worst, AbsError(got.Get(b, q, h, k), expected[k]));
    }
  });
  return worst;
}

// Largest |a - b| over the heads, e.g. inverse(apply(x)) against x (AbsError).
inline double MaxDifference(const TypedTensor& a, const TypedTensor& b) {
  double worst = 0;
  a.ForEach([&](int64_t bi, int64_t q, int64_t h, int64_t k) {
    worst = std::max(worst, AbsError(a.Get(bi, q, h, k), b.Get(bi, q, h, k)));
  });
  return worst;
}

// The same bytes, guards and pads included; else where the first difference is
// (EXPECT_EQ on the byte vectors would print them whole).
inline ::testing::AssertionResult SameBits(const TypedTensor& a, const TypedTensor& b) {
  if (a.bytes() == b.bytes()) return ::testing::AssertionSuccess();
  const auto diff = std::mismatch(a.bytes().begin(), a.bytes().end(), b.bytes().begin());
  return ::testing::AssertionFailure() << "first difference at byte " << (diff.first - a.bytes().begin()) << " of "
                                       << a.bytes().size();
}

}  // namespace rotary_test

#endif  // ROTARY_TESTS_TENSOR_COMPARE_H_
