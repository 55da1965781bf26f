// Bad input the C ABI cannot see, caught by the C++ API: a contiguous Tensor's
// head_dim against the rope's, and a positions vector's length against the
// tensor's rows. Each throws rotary::Error and leaves the caller's memory as it was.
#include <cstdint>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "rotary/rotary.hpp"

namespace {

// Throws rotary::Error with kInvalidArgument and a message mentioning `mention`.
template <class Call>
void ExpectInvalidArgument(Call call, const std::string& mention) {
  try {
    call();
    ADD_FAILURE() << "no exception";
  } catch (const rotary::Error& e) {
    EXPECT_EQ(e.status(), rotary::Status::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find(mention), std::string::npos) << e.what();
  }
}

TEST(CppApi, TensorHeadDimMustMatchTheRopes) {
  const rotary::Rope rope(rotary::Config().head_dim(128));
  // A 64-element head in a 128-float buffer: the rest must stay untouched.
  std::vector<float> buffer(128, 1.0f);
  const std::vector<float> before = buffer;
  const rotary::Tensor small(buffer.data(), 1, 1, 1, 64);
  ExpectInvalidArgument([&] { rope.apply(small, 5); }, "head_dim 64");
  ExpectInvalidArgument([&] { rope.apply_inverse(small, 5); }, "head_dim 64");
  std::vector<float> out(128);
  const rotary::Tensor right(out.data(), 1, 1, 1, 128);
  ExpectInvalidArgument([&] { rope.apply_to(small, right, 5); }, "src");
  ExpectInvalidArgument([&] { rope.apply_to(right, small, 5); }, "dst");
  ExpectInvalidArgument([&] { rope.apply_qk(right, small, 5); }, "k");
  // head_dim 0 is a head_dim too (its zero strides alone pass the C checks for one head).
  ExpectInvalidArgument([&] { rope.apply(rotary::Tensor(buffer.data(), 1, 1, 1, 0), 5); }, "head_dim 0");
  EXPECT_EQ(buffer, before);

  // Strided views do not carry a head_dim; a matching contiguous one works.
  std::vector<float> x(2 * 128, 1.0f);
  EXPECT_NO_THROW(rope.apply(rotary::Tensor(x.data(), 1, 2, 1, 128), 5));
  EXPECT_NO_THROW(rope.apply(rotary::Tensor(x.data(), 1, 2, 1, 256, 128, 128), 5));
}

TEST(CppApi, PositionsVectorMustHaveOneIdPerRow) {
  const rotary::Rope rope(rotary::Config().head_dim(8));
  std::vector<float> x(4 * 8, 1.0f);
  const std::vector<float> before = x;
  const rotary::Tensor view(x.data(), 2, 2, 1, 8);  // 4 rows
  // An empty vector is not "no positions": its data() may be null.
  ExpectInvalidArgument([&] { rope.apply(view, std::vector<int64_t>{}); }, "0 ids for batch * seq = 2 * 2");
  ExpectInvalidArgument([&] { rope.apply(view, std::vector<int64_t>{7}); }, "1 ids");
  ExpectInvalidArgument([&] { rope.apply(view, std::vector<int64_t>(5, 7)); }, "5 ids");
  ExpectInvalidArgument([&] { rope.apply_packed_qkv(x.data(), rotary::Dtype::kF32, 1, 1, 1, 1, std::vector<int64_t>{1, 2}); },
                        "2 ids for batch * seq = 1 * 1");
  EXPECT_EQ(x, before);
  EXPECT_NO_THROW(rope.apply(view, std::vector<int64_t>{0, 1, 2, 3}));
  EXPECT_NE(x, before);
}

}  // namespace
