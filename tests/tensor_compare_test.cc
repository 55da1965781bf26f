// The comparators every accuracy check goes through must fail on NaN and on an
// unexpected infinity: a kernel that reads a NaN-filled pad into an output, or
// overflows, must not score an error of 0.
#include <cmath>
#include <limits>
#include <vector>

#include <gtest/gtest-spi.h>
#include <gtest/gtest.h>

#include "tests/reference.h"
#include "tests/tensor_compare.h"
#include "tests/typed_tensor.h"

namespace {

using rotary_test::AbsError;
using rotary_test::Shape;
using rotary_test::TypedTensor;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

TEST(Comparators, AbsErrorOfNaNOrUnexpectedInfIsInfinite) {
  EXPECT_EQ(AbsError(kNaN, 1.0), kInf);
  EXPECT_EQ(AbsError(1.0, kNaN), kInf);
  EXPECT_EQ(AbsError(kNaN, kNaN), kInf);
  EXPECT_EQ(AbsError(kInf, 1.0), kInf);
  EXPECT_EQ(AbsError(-kInf, kInf), kInf);
  EXPECT_EQ(AbsError(kInf, kInf), 0.0);
  EXPECT_EQ(AbsError(0.5, 0.25), 0.25);
}

TEST(Comparators, ANaNOutputFailsTheReferenceComparison) {
  const rotary_test::RefRope ref{8, 8, false};
  TypedTensor before(Shape{1, 2, 3, 8}, 1);
  const std::vector<int64_t> positions = {0, 5};
  for (int64_t poisoned : {0, 1, 7}) {  // one component; the rest exact
    TypedTensor got = before;
    std::vector<double> head(8);
    for (int64_t s = 0; s < 2; ++s)
      for (int64_t h = 0; h < 3; ++h) {
        for (int k = 0; k < 8; ++k) head[k] = before.Get(0, s, h, k);
        rotary_test::ReferenceRotateHead(ref, head.data(), head.data(), positions[s]);
        for (int k = 0; k < 8; ++k) got.Set(0, s, h, k, head[k]);
      }
    EXPECT_LE(rotary_test::MaxErrorVsReference(got, before, ref, positions), 1e-6);
    got.Set(0, 1, 2, poisoned, kNaN);
    EXPECT_EQ(rotary_test::MaxErrorVsReference(got, before, ref, positions), kInf) << poisoned;
    got.Set(0, 1, 2, poisoned, kInf);
    EXPECT_EQ(rotary_test::MaxErrorVsReference(got, before, ref, positions), kInf) << poisoned;
  }
}

TEST(Comparators, ANaNFailsTheDifferenceAndPoisonsTheBound) {
  TypedTensor a(Shape{2, 1, 2, 4}, 3);
  TypedTensor b = a;
  EXPECT_EQ(rotary_test::MaxDifference(a, b), 0.0);
  b.Set(1, 0, 1, 3, kNaN);
  EXPECT_EQ(rotary_test::MaxDifference(a, b), kInf);
  EXPECT_EQ(rotary_test::MaxDifference(b, a), kInf);
  // A bound made from a NaN input is NaN, and nothing compares below it.
  EXPECT_TRUE(std::isnan(rotary_test::MaxAbs(b)));
  EXPECT_FALSE(0.0 <= 4e-6 * rotary_test::MaxAbs(b));
}

TEST(Comparators, OneRoundingCheckFailsOnNaNAndInf) {
  for (rotary_dtype dtype : {ROTARY_F32, ROTARY_F16, ROTARY_BF16}) {
    EXPECT_NONFATAL_FAILURE(rotary_test::ExpectOneRoundingOf(dtype, kNaN, 0.5, 1e-6, "nan"), "nan");
    EXPECT_NONFATAL_FAILURE(rotary_test::ExpectOneRoundingOf(dtype, kInf, 0.5, 1e-6, "inf"), "inf");
    rotary_test::ExpectOneRoundingOf(dtype, rotary_test::RoundTo(dtype, 0.5), 0.5, 1e-6, "exact");
  }
}

}  // namespace
