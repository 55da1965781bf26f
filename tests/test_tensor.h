// A strided f32 test tensor inside a larger buffer filled with guard values, so
// tests can check that nothing outside the rotated components is ever written.
#ifndef ROTARY_TESTS_TEST_TENSOR_H_
#define ROTARY_TESTS_TEST_TENSOR_H_

#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "rotary/rotary.hpp"
#include "tests/random_values.h"

namespace rotary_test {

// A float whose bit pattern no computation produces by accident.
inline float GuardValue() {
  const uint32_t bits = 0x7fa5a5a5u;  // a signalling-NaN pattern
  float f;
  std::memcpy(&f, &bits, sizeof(f));
  return f;
}

struct Shape {
  int64_t batch, seq, heads, head_dim;
  // Extra elements after each head / row / batch (0 = contiguous).
  int64_t pad_head = 0, pad_seq = 0, pad_batch = 0;
};

class TestTensor {
 public:
  static constexpr int64_t kGuard = 19;  // elements of guard before and after

  TestTensor(const Shape& s, uint32_t seed, float amplitude = 1.0f) : shape_(s) {
    stride_head_ = s.head_dim + s.pad_head;
    stride_seq_ = s.heads * stride_head_ + s.pad_seq;
    stride_batch_ = s.seq * stride_seq_ + s.pad_batch;
    buffer_.assign(kGuard + s.batch * stride_batch_ + kGuard, GuardValue());
    std::mt19937 rng(seed);
    for (int64_t b = 0; b < s.batch; ++b)
      for (int64_t q = 0; q < s.seq; ++q)
        for (int64_t h = 0; h < s.heads; ++h)
          for (int64_t k = 0; k < s.head_dim; ++k) at(b, q, h, k) = static_cast<float>(UniformValue(rng, -amplitude, amplitude));
  }

  float& at(int64_t b, int64_t s, int64_t h, int64_t k) {
    return buffer_[kGuard + b * stride_batch_ + s * stride_seq_ + h * stride_head_ + k];
  }
  float* head(int64_t b, int64_t s, int64_t h) { return &at(b, s, h, 0); }

  rotary::Tensor view() {
    return rotary::Tensor(buffer_.data() + kGuard, shape_.batch, shape_.seq, shape_.heads, stride_batch_,
                          stride_seq_, stride_head_);
  }
  rotary_tensor raw() { return view().t; }

  const Shape& shape() const { return shape_; }
  const std::vector<float>& buffer() const { return buffer_; }

  // True if every element outside the heads' first `touched` components still
  // holds exactly what `before` held.
  bool OnlyHeadsChanged(const TestTensor& before, int64_t touched) const {
    std::vector<char> inside(buffer_.size(), 0);
    for (int64_t b = 0; b < shape_.batch; ++b)
      for (int64_t q = 0; q < shape_.seq; ++q)
        for (int64_t h = 0; h < shape_.heads; ++h)
          for (int64_t k = 0; k < touched; ++k)
            inside[kGuard + b * stride_batch_ + q * stride_seq_ + h * stride_head_ + k] = 1;
    for (size_t i = 0; i < buffer_.size(); ++i) {
      if (!inside[i] && std::memcmp(&buffer_[i], &before.buffer_[i], sizeof(float)) != 0) return false;
    }
    return true;
  }

 private:
  Shape shape_;
  int64_t stride_head_, stride_seq_, stride_batch_;
  std::vector<float> buffer_;
};

}  // namespace rotary_test

#endif  // ROTARY_TESTS_TEST_TENSOR_H_
