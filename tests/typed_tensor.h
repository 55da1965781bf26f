// A test tensor of any storage type (f32, f16, bf16) with padded strides inside
// guard elements, and how the kernel's single rounding to that type is checked.
#ifndef ROTARY_TESTS_TYPED_TENSOR_H_
#define ROTARY_TESTS_TYPED_TENSOR_H_

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "rotary/rotary.hpp"
#include "tests/random_values.h"
#include "tests/storage_reference.h"

namespace rotary_test {

// Guard elements hold a signalling NaN of their storage type: a bit pattern no
// computation produces (arithmetic makes only quiet NaNs), so a stray write
// shows even when it writes a NaN, and a guard read into a result makes that
// result NaN. This is the f32 one, also used around hand-made buffers.
inline float GuardValue() { return BitsFloat(0x7fa5a5a5u); }

// Writes the guard of storage `dtype` at p: in bf16 the top half of the f32
// guard; in f16, whose exponent is narrower, 0x7ca5.
inline void StoreGuard(void* p, rotary_dtype dtype) {
  if (dtype == ROTARY_F32) {
    const float guard = GuardValue();
    std::memcpy(p, &guard, 4);
    return;
  }
  const uint16_t guard = dtype == ROTARY_BF16 ? 0x7fa5 : 0x7ca5;
  std::memcpy(p, &guard, 2);
}

// The extents of a [batch, seq, heads, head_dim] tensor, and the elements of
// padding after each head, row and batch (0 = contiguous).
struct Shape {
  int64_t batch, seq, heads, head_dim;
  int64_t pad_head = 0, pad_seq = 0, pad_batch = 0;
};

// A [batch, seq, heads, head_dim] tensor of any storage type with padded
// strides, inside a buffer of guard elements. Pads and heads hold the guard
// until written, so a test can check that a call wrote nothing else.
class TypedTensor {
 public:
  // Guard elements before and after the tensor; an odd count, so that heads
  // do not start on a vector boundary (a caller's often do not).
  static constexpr int64_t kGuard = 19;

  // The same `pad` after each head, row and batch.
  TypedTensor(rotary_dtype dtype, int64_t batch, int64_t seq, int64_t heads, int64_t head_dim, int64_t pad = 3)
      : TypedTensor(dtype, Shape{batch, seq, heads, head_dim, pad, pad, pad}) {}
  TypedTensor(rotary_dtype dtype, const Shape& shape) : dtype_(dtype), shape_(shape) {
    stride_head_ = shape.head_dim + shape.pad_head;
    stride_seq_ = shape.heads * stride_head_ + shape.pad_seq;
    stride_batch_ = shape.seq * stride_seq_ + shape.pad_batch;
    bytes_.resize((2 * kGuard + shape.batch * stride_batch_) * ElementBytes());
    for (size_t at = 0; at < bytes_.size(); at += ElementBytes()) StoreGuard(&bytes_[at], dtype);
  }
  // f32, heads filled by FillRandom(seed, amplitude).
  TypedTensor(const Shape& shape, uint32_t seed, double amplitude = 1.0) : TypedTensor(ROTARY_F32, shape) {
    FillRandom(seed, amplitude);
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
  // Every head component a random value in [-amplitude, amplitude], rounded to
  // the storage type. Tests size their error bounds by these ranges: [-2, 2]
  // here by default, [-1, 1] from the Shape constructor.
  void FillRandom(uint32_t seed, double amplitude = 2.0) {
    std::mt19937 rng(seed);
    ForEach([&](int64_t b, int64_t s, int64_t h, int64_t k) {
      Set(b, s, h, k, UniformValue(rng, -amplitude, amplitude));
    });
  }
  template <typename Fn>
  void ForEach(Fn&& fn) const {
    for (int64_t b = 0; b < shape_.batch; ++b)
      for (int64_t s = 0; s < shape_.seq; ++s)
        for (int64_t h = 0; h < shape_.heads; ++h)
          for (int64_t k = 0; k < shape_.head_dim; ++k) fn(b, s, h, k);
  }
  rotary_tensor raw() {
    return rotary_tensor{&bytes_[kGuard * ElementBytes()], dtype_, shape_.batch, shape_.seq, shape_.heads,
                         stride_batch_, stride_seq_, stride_head_};
  }
  rotary::Tensor view() { return rotary::Tensor(raw()); }

  // Every element outside the heads' first `touched` components is, bit for
  // bit, as `before` has it.
  bool OnlyHeadsChanged(const TypedTensor& before, int64_t touched) const {
    std::vector<char> inside(bytes_.size() / ElementBytes(), 0);
    ForEach([&](int64_t b, int64_t s, int64_t h, int64_t k) { inside[Index(b, s, h, k)] = k < touched; });
    for (size_t e = 0; e < inside.size(); ++e) {
      if (!inside[e] && std::memcmp(&bytes_[e * ElementBytes()], &before.bytes_[e * ElementBytes()], ElementBytes())) {
        return false;
      }
    }
    return true;
  }
  // Every element outside the heads is as `before` has it.
  bool OnlyHeadsChanged(const TypedTensor& before) const { return OnlyHeadsChanged(before, shape_.head_dim); }

  const Shape& shape() const { return shape_; }
  // The whole buffer, guards included.
  const std::vector<uint8_t>& bytes() const { return bytes_; }
  rotary_dtype dtype() const { return dtype_; }

 private:
  rotary_dtype dtype_;
  Shape shape_;
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
// Returns whether it is (NaN never is), adding a failure when it is not; the
// check itself is plain arithmetic, as it runs once per element.
inline bool ExpectOneRoundingOf(rotary_dtype dtype, double got, double exact, double f32_bound, const char* what) {
  if (dtype == ROTARY_F32) {
    if (std::fabs(got - exact) <= f32_bound) return true;
    ADD_FAILURE() << what << ": got " << got << ", exact " << exact << ", allowed error " << f32_bound;
    return false;
  }
  const double low = RoundTo(dtype, exact - f32_bound), high = RoundTo(dtype, exact + f32_bound);
  if (got >= std::min(low, high) && got <= std::max(low, high)) return true;
  ADD_FAILURE() << what << ": got " << got << ", exact " << exact << ", allowed [" << low << ", " << high << "]";
  return false;
}

}  // namespace rotary_test

#endif  // ROTARY_TESTS_TYPED_TENSOR_H_
