#include "lib/call/tensor_layout.h"

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "lib/config/enum_value.h"
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

// Each dimension's stride at least the span of everything inside it, taking
// them from the smallest stride up (a stable insertion sort: no allocation on
// a decode call's path): then no two heads of the view overlap.
struct HeadsCheck {
  enum Verdict { kApart, kOverlap, kOverflow } verdict;
  int64_t span;       // kApart: the extent; kOverlap: what `blamed` steps over
  const Dim* blamed;  // the dimension that failed
  const char* inner;  // the dimension inside it
};

template <int kDims>
HeadsCheck HeadsApart(Dim (&dims)[kDims], int64_t head_elements) {
  for (int i = 1; i < kDims; ++i) {
    for (int j = i; j > 0 && dims[j].stride < dims[j - 1].stride; --j) std::swap(dims[j], dims[j - 1]);
  }
  HeadsCheck check{HeadsCheck::kApart, head_elements, nullptr, "head_dim"};
  for (const Dim& d : dims) {
    if (d.size == 1) continue;
    check.blamed = &d;
    if (d.stride < check.span) {
      check.verdict = HeadsCheck::kOverlap;
      return check;
    }
    if (!MulAdd(d.stride, d.size - 1, check.span, &check.span)) {
      check.verdict = HeadsCheck::kOverflow;
      return check;
    }
    check.inner = d.size_name;
  }
  return check;
}

// Two views laid out alike (sizes, strides, head and element sizes), one
// starting `gap` elements after the other, as one view with an extra
// dimension of 2 at stride gap: FlashInfer's k and v halves of each block
// ([blocks, 2, block_size, heads, head_dim]), a [2, blocks, ...] cache's
// halves, equal numbers of k and v heads side by side in QKV rows.
bool AlikeAndApart(const TensorLayout& a, const TensorLayout& b) {
  if (a.element_bytes != b.element_bytes || a.head_elements != b.head_elements || a.batch != b.batch ||
      a.seq != b.seq || a.heads != b.heads) {
    return false;
  }
  if ((a.batch > 1 && a.stride_batch != b.stride_batch) || (a.seq > 1 && a.stride_seq != b.stride_seq) ||
      (a.heads > 1 && a.stride_head != b.stride_head)) {
    return false;
  }
  const uintptr_t a_begin = reinterpret_cast<uintptr_t>(a.data), b_begin = reinterpret_cast<uintptr_t>(b.data);
  const uintptr_t gap_bytes = a_begin <= b_begin ? b_begin - a_begin : a_begin - b_begin;
  const uintptr_t element = static_cast<uintptr_t>(a.element_bytes);
  if (gap_bytes % element != 0 || gap_bytes / element > static_cast<uintptr_t>(INT64_MAX)) return false;
  Dim dims[4] = {{"heads", "stride_head", a.heads, a.stride_head},
                 {"seq", "stride_seq", a.seq, a.stride_seq},
                 {"batch", "stride_batch", a.batch, a.stride_batch},
                 {"pair", "gap", 2, static_cast<int64_t>(gap_bytes / element)}};
  return HeadsApart(dims, a.head_elements).verdict == HeadsCheck::kApart;
}

}  // namespace

bool SameView(const TensorLayout& a, const TensorLayout& b) {
  auto stride = [](int64_t size, int64_t s) { return size > 1 ? s : 0; };  // unused dims don't matter
  return a.data == b.data && a.dtype == b.dtype && a.batch == b.batch && a.seq == b.seq && a.heads == b.heads &&
         stride(a.batch, a.stride_batch) == stride(b.batch, b.stride_batch) &&
         stride(a.seq, a.stride_seq) == stride(b.seq, b.stride_seq) &&
         stride(a.heads, a.stride_head) == stride(b.heads, b.stride_head);
}

bool MayOverlapInOneBuffer(const TensorLayout& a, const TensorLayout& b, int32_t head_dim) {
  const uintptr_t a_begin = a.begin(), b_begin = b.begin();
  if (AlikeAndApart(a, b)) return false;

  // Side by side in the rows of one buffer: the same rows, and within a row
  // the heads of one end before the heads of the other begin.
  if (a.element_bytes == 1 || b.element_bytes == 1) return true;  // bytes: only ever separate memory
  if (a.dtype != b.dtype || a.batch != b.batch || a.seq != b.seq) return true;
  if (a.batch > 1 && a.stride_batch != b.stride_batch) return true;
  if (a.seq > 1 && a.stride_seq != b.stride_seq) return true;
  const TensorLayout& first = a_begin <= b_begin ? a : b;
  const TensorLayout& second = a_begin <= b_begin ? b : a;
  const uintptr_t gap_bytes = (a_begin <= b_begin ? b_begin - a_begin : a_begin - b_begin);
  if (gap_bytes % a.element_bytes != 0) return true;
  const int64_t gap = static_cast<int64_t>(gap_bytes / a.element_bytes);
  auto row_span = [&](const TensorLayout& t) { return (t.heads - 1) * t.stride_head + head_dim; };
  if (gap < row_span(first)) return true;
  // The pair's heads of one (b, s) fill a slot; the slots are disjoint if,
  // taking batch and seq from the smaller stride up (either may be outer:
  // sequence-first buffers are [S, B, ...]), each stride is at least the span
  // of everything inside it, as ValidateTensor checks for one tensor.
  Dim rows[2] = {{"seq", "stride_seq", a.seq, a.stride_seq}, {"batch", "stride_batch", a.batch, a.stride_batch}};
  if (rows[1].stride < rows[0].stride) std::swap(rows[0], rows[1]);
  int64_t span = 0;
  if (!MulAdd(1, gap, row_span(second), &span)) return true;
  for (const Dim& d : rows) {
    if (d.size == 1) continue;
    if (d.stride < span || !MulAdd(d.stride, d.size - 1, span, &span)) return true;
  }
  return false;
}

namespace {

// x's heads (head_elements elements of element_bytes each) disjoint and inside the address space.
TensorLayout ValidateLayout(const rotary_tensor* x, int64_t head_elements, int64_t element_bytes, const char* name) {

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

  const HeadsCheck check = HeadsApart(dims, head_elements);
  if (check.verdict == HeadsCheck::kOverlap) {
    Fail(Status::kInvalidArgument, name, ".", check.blamed->stride_name, " = ", check.blamed->stride,
         " makes heads overlap: the ", check.inner, " it steps over spans ", check.span, " elements");
  }
  if (check.verdict == HeadsCheck::kOverflow) {
    Fail(Status::kInvalidArgument, name, ": the extent of ", check.blamed->size_name, " x ",
         check.blamed->stride_name, " overflows int64");
  }
  const int64_t span = check.span;
  const int64_t max_elements = static_cast<int64_t>(PTRDIFF_MAX / element_bytes);
  if (span > max_elements) {
    Fail(Status::kInvalidArgument, name, " spans ", span, " elements, more than the address space holds");
  }
  const uintptr_t start = reinterpret_cast<uintptr_t>(x->data);
  if (start + static_cast<uintptr_t>(span) * static_cast<uintptr_t>(element_bytes) < start) {
    Fail(Status::kInvalidArgument, name, ".data + its extent wraps around the address space");
  }

  return TensorLayout{x->data,         x->dtype,      x->batch,       x->seq, x->heads,
                      x->stride_batch,  x->stride_seq, x->stride_head, span,   element_bytes,
                      head_elements};
}

}  // namespace

TensorLayout ValidateTensor(const rotary_tensor* x, int32_t head_dim, const char* name) {
  if (x == nullptr) Fail(Status::kInvalidArgument, "tensor ", name, " is NULL");
  if (x->data == nullptr) Fail(Status::kInvalidArgument, name, ".data is NULL");
  const int32_t dtype = EnumValue(x->dtype);
  if (dtype != ROTARY_F32 && dtype != ROTARY_F16 && dtype != ROTARY_BF16) {
    Fail(Status::kInvalidArgument, name, ".dtype must be ROTARY_F32, ROTARY_F16 or ROTARY_BF16, got ",
         dtype);
  }
  return ValidateLayout(x, head_dim, static_cast<int64_t>(DtypeBytes(x->dtype)), name);
}

TensorLayout ValidateByteTensor(const rotary_tensor* x, int64_t head_bytes, const char* name) {
  if (x == nullptr) Fail(Status::kInvalidArgument, "tensor ", name, " is NULL");
  if (x->data == nullptr) Fail(Status::kInvalidArgument, name, ".data is NULL");
  return ValidateLayout(x, head_bytes, 1, name);
}

}  // namespace rotary
