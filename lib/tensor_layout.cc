#include "lib/tensor_layout.h"

#include <algorithm>
#include <cstddef>

#include "lib/error.h"

namespace rotary {
namespace {

struct Dim {
  const char* size_name;
  const char* stride_name;
  int64_t size;
  int64_t stride;
};

// a * b + c without overflow, or false.
bool MulAdd(int64_t a, int64_t b, int64_t c, int64_t* out) {
  int64_t product;
  return !__builtin_mul_overflow(a, b, &product) && !__builtin_add_overflow(product, c, out);
}

}  // namespace

size_t DtypeBytes(rotary_dtype dtype) { return dtype == ROTARY_F32 ? 4 : 2; }

TensorLayout ValidateTensor(const rotary_tensor* x, int32_t head_dim, const char* name) {
  if (x == nullptr) Fail(Status::kInvalidArgument, "tensor ", name, " is NULL");
  if (x->data == nullptr) Fail(Status::kInvalidArgument, name, ".data is NULL");
  if (x->dtype != ROTARY_F32 && x->dtype != ROTARY_F16 && x->dtype != ROTARY_BF16) {
    Fail(Status::kInvalidArgument, name, ".dtype must be ROTARY_F32, ROTARY_F16 or ROTARY_BF16, got ",
         static_cast<int>(x->dtype));
  }
  if (x->dtype != ROTARY_F32) {
    Fail(Status::kUnsupported, name, ".dtype ", x->dtype == ROTARY_F16 ? "ROTARY_F16" : "ROTARY_BF16",
         " is not supported yet; only ROTARY_F32");
  }

  // Innermost first, so that among equal strides the outer dimension is blamed.
  Dim dims[3] = {{"heads", "stride_head", x->heads, x->stride_head},
                 {"seq", "stride_seq", x->seq, x->stride_seq},
                 {"batch", "stride_batch", x->batch, x->stride_batch}};
  for (const Dim& d : dims) {
    if (d.size < 1) Fail(Status::kInvalidArgument, name, ".", d.size_name, " must be >= 1, got ", d.size);
    if (d.size > 1 && d.stride < 1) {
      Fail(Status::kInvalidArgument, name, ".", d.stride_name, " must be >= 1 when ", d.size_name, " = ",
           d.size, ", got ", d.stride);
    }
  }

  // Heads are disjoint if, taking the dimensions from the smallest stride up,
  // each stride is at least the span of everything inside it (head_dim first).
  std::stable_sort(std::begin(dims), std::end(dims), [](const Dim& a, const Dim& b) { return a.stride < b.stride; });
  int64_t span = head_dim;
  const char* inner = "head_dim";
  for (const Dim& d : dims) {
    if (d.size == 1) continue;
    if (d.stride < span) {
      Fail(Status::kInvalidArgument, name, ".", d.stride_name, " = ", d.stride,
           " makes heads overlap: the ", inner, " it steps over spans ", span, " elements");
    }
    if (!MulAdd(d.stride, d.size - 1, span, &span)) {
      Fail(Status::kInvalidArgument, name, ": the extent of ", d.size_name, " x ", d.stride_name,
           " overflows int64");
    }
    inner = d.size_name;
  }
  const int64_t max_elements = static_cast<int64_t>(PTRDIFF_MAX / DtypeBytes(x->dtype));
  if (span > max_elements) {
    Fail(Status::kInvalidArgument, name, " spans ", span, " elements, more than the address space holds");
  }
  const uintptr_t start = reinterpret_cast<uintptr_t>(x->data);
  if (start + static_cast<uintptr_t>(span) * DtypeBytes(x->dtype) < start) {
    Fail(Status::kInvalidArgument, name, ".data + its extent wraps around the address space");
  }

  return TensorLayout{x->data,  x->dtype,        x->batch,      x->seq,        x->heads,
                      x->stride_batch, x->stride_seq, x->stride_head, span};
}

}  // namespace rotary
