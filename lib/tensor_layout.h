// Validation of a caller's rotary_tensor: after ValidateTensor succeeds, every
// (b, s, h) head lies inside the described memory and no two heads overlap, so
// kernels can write without checks.
#ifndef ROTARY_LIB_TENSOR_LAYOUT_H_
#define ROTARY_LIB_TENSOR_LAYOUT_H_

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

  int64_t rows() const { return batch * seq; }
};

// `name` is how messages refer to the tensor (e.g. "x").
TensorLayout ValidateTensor(const rotary_tensor* x, int32_t head_dim, const char* name);

size_t DtypeBytes(rotary_dtype dtype);

}  // namespace rotary

#endif  // ROTARY_LIB_TENSOR_LAYOUT_H_
