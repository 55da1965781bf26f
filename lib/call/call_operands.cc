#include "lib/call/call_operands.h"

#include <cmath>

#include "lib/call/scheduler.h"
#include "lib/call/tensor_layout.h"
#include "lib/error.h"

namespace rotary {
namespace {

const char* DtypeName(rotary_dtype dtype) {
  switch (dtype) {
    case ROTARY_F32:
      return "ROTARY_F32";
    case ROTARY_F16:
      return "ROTARY_F16";
    default:
      return "ROTARY_BF16";
  }
}

void CheckDisjoint(const TensorLayout& a, const char* a_name, const TensorLayout& b, const char* b_name,
                   int32_t head_dim) {
  if (MayOverlap(a, b, head_dim)) {
    Fail(Status::kInvalidArgument, a_name, " and ", b_name,
         " may overlap: out-of-place tensors must be separate memory, side by side in the rows of one buffer, ",
         "or exactly the same view (in place)");
  }
}

}  // namespace

CallOperands ValidateOperands(const TensorArgs* tensors, int count, int32_t head_dim) {
  // Nothing here is zero-filled first: every field read is assigned, and a
  // decode call spends a good part of its fixed cost in this function.
  TensorLayout src[2], dst[2];
  bool in_place[2];  // the same view read and written
  for (int i = 0; i < count; ++i) {
    const TensorArgs& t = tensors[i];
    src[i] = ValidateTensor(t.src, head_dim, t.src_name);
    in_place[i] = t.dst == t.src;
    dst[i] = in_place[i] ? src[i] : ValidateTensor(t.dst, head_dim, t.dst_name);
    if (!std::isfinite(t.scale)) Fail(Status::kInvalidArgument, "the scale of ", t.src_name, " is ", t.scale);
    if (in_place[i]) continue;
    if (dst[i].batch != src[i].batch || dst[i].seq != src[i].seq || dst[i].heads != src[i].heads) {
      Fail(Status::kInvalidArgument, t.dst_name, " is [", dst[i].batch, ", ", dst[i].seq, ", ", dst[i].heads,
           "] but ", t.src_name, " is [", src[i].batch, ", ", src[i].seq, ", ", src[i].heads, "] (batch, seq, heads)");
    }
    in_place[i] = SameView(src[i], dst[i]);  // two descriptors of one view
    if (!in_place[i]) CheckDisjoint(src[i], t.src_name, dst[i], t.dst_name, head_dim);
  }
  if (count == 2) {
    const TensorArgs& q = tensors[0];
    const TensorArgs& k = tensors[1];
    if (src[0].batch != src[1].batch || src[0].seq != src[1].seq) {
      Fail(Status::kInvalidArgument, q.src_name, " is [", src[0].batch, ", ", src[0].seq, "] but ", k.src_name,
           " is [", src[1].batch, ", ", src[1].seq, "] (batch, seq): q and k share positions");
    }
    if (src[0].dtype != src[1].dtype || dst[0].dtype != dst[1].dtype) {
      Fail(Status::kUnsupported, "q and k in one call must share storage types: ", q.src_name, " ",
           DtypeName(src[0].dtype), " -> ", DtypeName(dst[0].dtype), ", ", k.src_name, " ", DtypeName(src[1].dtype),
           " -> ", DtypeName(dst[1].dtype));
    }
    // What one operand writes, the other must neither read nor write.
    CheckDisjoint(dst[0], q.dst_name, dst[1], k.dst_name, head_dim);
    CheckDisjoint(dst[0], q.dst_name, src[1], k.src_name, head_dim);
    CheckDisjoint(dst[1], k.dst_name, src[0], q.src_name, head_dim);
  }

  CallOperands call;
  call.q_src = src[0];
  call.q_dst = dst[0];
  call.count = count;
  call.batch = src[0].batch;
  call.seq = src[0].seq;
  call.src_dtype = static_cast<DtypeIndex>(src[0].dtype);
  call.dst_dtype = static_cast<DtypeIndex>(dst[0].dtype);
  const int64_t element_bytes = static_cast<int64_t>(DtypeBytes(src[0].dtype) + DtypeBytes(dst[0].dtype));
  call.bytes_per_row = 0;
  call.cost_per_row = 0;
  for (int i = 0; i < count; ++i) {
    Operand& op = call.operands[i];
    op.src = src[i].data;
    op.dst = dst[i].data;
    op.src_stride_batch = src[i].stride_batch;
    op.src_stride_seq = src[i].stride_seq;
    op.src_stride_head = src[i].stride_head;
    op.dst_stride_batch = dst[i].stride_batch;
    op.dst_stride_seq = dst[i].stride_seq;
    op.dst_stride_head = dst[i].stride_head;
    op.heads = src[i].heads;
    op.scale = tensors[i].scale;
    op.write_rest = !in_place[i] || tensors[i].scale != 1.0f;
    call.bytes_per_row += op.heads * head_dim * element_bytes;
    call.cost_per_row += op.heads * head_dim * (ElementCost(call.src_dtype) + ElementCost(call.dst_dtype));
    call.AddWritten(dst[i].begin(), dst[i].end());
  }
  return call;
}

}  // namespace rotary
