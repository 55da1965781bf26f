// A test tensor of any storage type (f32, f16, bf16) with padded strides inside
// guard bytes, and how the kernel's single rounding to that type is checked.
#ifndef ROTARY_TESTS_TYPED_TENSOR_H_
#define ROTARY_TESTS_TYPED_TENSOR_H_

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "rotary/rotary.h"
#include "tests/random_values.h"
#include "tests/storage_reference.h"

namespace rotary_test {

// A [batch, seq, heads, head_dim] tensor of any storage type with padded
// strides, inside a buffer of guard bytes.
class TypedTensor {
 public:
  static constexpr int64_t kGuard = 16;  // elements before and after

  TypedTensor(rotary_dtype dtype, int64_t batch, int64_t seq, int64_t heads, int64_t head_dim, int64_t pad = 3)
      : dtype_(dtype), batch_(batch), seq_(seq), heads_(heads), head_dim_(head_dim) {
    stride_head_ = head_dim + pad;
    stride_seq_ = heads * stride_head_ + pad;
    stride_batch_ = seq * stride_seq_ + pad;
    bytes_.assign((2 * kGuard + batch * stride_batch_) * ElementBytes(), 0xA5);
  }

  size_t ElementBytes() const { return rotary_test::StorageBytes(dtype_); }
  int64_t Index(int64_t b, int64_t s, int64_t h, int64_t k) const {
    return kGuard + b * stride_batch_ + s * stride_seq_ + h * stride_head_ + k;
  }
  // The stored value, exactly.
  double Get(int64_t b, int64_t s, int64_t h, int64_t k) const {
    return rotary_test::LoadStored(&bytes_[Index(b, s, h, k) * ElementBytes()], dtype_);
  }
  // Stores v rounded to the storage type.
  void Set(int64_t b, int64_t s, int64_t h, int64_t k, double v) {
    rotary_test::StoreRounded(&bytes_[Index(b, s, h, k) * ElementBytes()], dtype_, v);
  }
  void FillRandom(uint32_t seed) {
    std::mt19937 rng(seed);
    ForEach([&](int64_t b, int64_t s, int64_t h, int64_t k) { Set(b, s, h, k, UniformValue(rng, -2.0, 2.0)); });
  }
  template <typename Fn>
  void ForEach(Fn&& fn) const {
    for (int64_t b = 0; b < batch_; ++b)
      for (int64_t s = 0; s < seq_; ++s)
        for (int64_t h = 0; h < heads_; ++h)
          for (int64_t k = 0; k < head_dim_; ++k) fn(b, s, h, k);
  }
  rotary_tensor raw() {
    return rotary_tensor{&bytes_[kGuard * ElementBytes()], dtype_, batch_, seq_, heads_,
                         stride_batch_, stride_seq_, stride_head_};
  }
  // Every byte outside the heads is as `before` has it.
  bool OnlyHeadsChanged(const TypedTensor& before) const {
    std::vector<char> inside(bytes_.size() / ElementBytes(), 0);
    ForEach([&](int64_t b, int64_t s, int64_t h, int64_t k) { inside[Index(b, s, h, k)] = 1; });
    for (size_t e = 0; e < inside.size(); ++e) {
      if (!inside[e] && std::memcmp(&bytes_[e * ElementBytes()], &before.bytes_[e * ElementBytes()], ElementBytes())) {
        return false;
      }
    }
    return true;
  }
  const std::vector<uint8_t>& bytes() const { return bytes_; }
  rotary_dtype dtype() const { return dtype_; }

 private:
  rotary_dtype dtype_;
  int64_t batch_, seq_, heads_, head_dim_;
  int64_t stride_head_, stride_seq_, stride_batch_;
  std::vector<uint8_t> bytes_;
};

// The storage value nearest to v.
inline double RoundTo(rotary_dtype dtype, double v) {
  if (dtype == ROTARY_F32) return static_cast<float>(v);
  if (dtype == ROTARY_F16) return rotary_test::HalfToDouble(rotary_test::DoubleToHalf(v));
  return rotary_test::BFloat16ToDouble(rotary_test::FloatToBFloat16(static_cast<float>(v)));
}

// The kernel computes in f32 (error <= f32_bound) and rounds once: the stored
// value is the rounding of something within f32_bound of the exact result.
inline void ExpectOneRoundingOf(rotary_dtype dtype, double got, double exact, double f32_bound, const char* what) {
  if (dtype == ROTARY_F32) {
    EXPECT_NEAR(got, exact, f32_bound) << what;
    return;
  }
  const double low = RoundTo(dtype, exact - f32_bound), high = RoundTo(dtype, exact + f32_bound);
  EXPECT_TRUE(got >= std::min(low, high) && got <= std::max(low, high))
      << what << ": got " << got << ", exact " << exact << ", allowed [" << low << ", " << high << "]";
}

}  // namespace rotary_test

#endif  // ROTARY_TESTS_TYPED_TENSOR_H_
