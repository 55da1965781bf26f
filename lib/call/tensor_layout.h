// Validation of a caller's rotary_tensor: after ValidateTensor succeeds, every
// (b, s, h) head lies inside the described memory and no two heads overlap, so
// kernels can write without checks.
#ifndef ROTARY_LIB_CALL_TENSOR_LAYOUT_H_
#define ROTARY_LIB_CALL_TENSOR_LAYOUT_H_

#include <cstddef>
#include <cstdint>

#include "rotary/rotary.h"

namespace rotary {

struct TensorLayout {
  void* data;
  rotary_dtype dtype;
  int64_t batch, seq, heads;
  int64_t stride_batch, stride_seq, stride_head;
  int64_t extent_elements;  // elements from data to one past the last one touched
  int64_t element_bytes;    // of dtype; 1 for a tensor of bytes (ValidateByteTensor)
  int64_t head_elements;    // elements of one head (head_dim, or a byte tensor's head bytes)

  int64_t rows() const { return batch * seq; }
  // The bytes [begin, end) the heads lie in.
  uintptr_t begin() const { return reinterpret_cast<uintptr_t>(data); }
  uintptr_t end() const { return begin() + static_cast<uintptr_t>(extent_elements * element_bytes); }
};

// `name` is how messages refer to the tensor (e.g. "x").
TensorLayout ValidateTensor(const rotary_tensor* x, int32_t head_dim, const char* name);

// The same for a tensor of bytes (an encoded KV cache): x->dtype is not read,
// strides are in bytes, and a head is head_bytes bytes.
TensorLayout ValidateByteTensor(const rotary_tensor* x, int64_t head_bytes, const char* name);

// The same memory seen the same way (an in-place call).
bool SameView(const TensorLayout& a, const TensorLayout& b);

// MayOverlap of two views whose byte ranges intersect.
bool MayOverlapInOneBuffer(const TensorLayout& a, const TensorLayout& b, int32_t head_dim);

// True if some element of a head of `a` is also one of a head of `b`, or might
// be: exact for separate buffers, for views side by side in the rows of one
// buffer (q, k and v of a fused QKV projection), and for two views laid out
// alike that interleave (the k and v of FlashInfer's [blocks, 2, ...] paged
// cache); conservative otherwise.
inline bool MayOverlap(const TensorLayout& a, const TensorLayout& b, int32_t head_dim) {
  // Separate memory (the usual case; a KV-cache write checks eleven pairs per call) without a call.
  if (a.end() <= b.begin() || b.end() <= a.begin()) return false;
  return MayOverlapInOneBuffer(a, b, head_dim);
}

inline size_t DtypeBytes(rotary_dtype dtype) { return dtype == ROTARY_F32 ? 4 : 2; }

}  // namespace rotary

#endif  // ROTARY_LIB_CALL_TENSOR_LAYOUT_H_
