#include "lib/call/rope.h"

#include <algorithm>
#include <utility>

#include "lib/call/last_level_cache.h"
#include "lib/call/call_operands.h"
#include "lib/call/qk_norm.h"
#include "lib/call/scheduler.h"
#include "lib/error.h"
#include "lib/target_registry.h"

using rotary::Fail;
using rotary::Status;

rotary_rope::rotary_rope(rotary::ResolvedConfig resolved)
    : config_(resolved.config),
      tables_(config_, std::move(resolved.scheme)),
      axis_count_(resolved.axes.count),
      row_axes_(resolved.axes.RowAxes(tables_.layout())),
      row_run_ends_(rotary::PositionAxes::RunEnds(row_axes_)) {}

rotary::TableRef rotary_rope::PrepareTable(int64_t batch, int64_t seq, const int64_t* positions, int32_t axes,
                                           int64_t offset, rotary::Direction direction) const {
  const int64_t limit = tables_.position_limit();
  const char* limit_name = tables_.position_limit_name();
  int64_t last = 0;  // the call's largest position: its length picks the plan
  if (positions == nullptr) {
    if (offset < 0) Fail(Status::kOutOfRange, "offset = ", offset, " is negative (positions are offset + s)");
    if (offset > limit - seq) {
      Fail(Status::kOutOfRange, "position offset + seq - 1 = ", offset, " + ", seq - 1, " is not below ",
           limit_name, " = ", limit);
    }
    last = offset + seq - 1;
  } else {
    // Every axis's ids, one flat list: the tables hold rows by position,
    // whichever axis reads them, and a call's length is its largest position
    // on any axis (HF's dynamic_rope_update takes the max over all of them).
    const int64_t count = batch * seq * axes;
    for (int64_t i = 0; i < count; ++i) {
      int64_t p;
      if (__builtin_add_overflow(positions[i], offset, &p) || p < 0 || p >= limit) {
        Fail(Status::kOutOfRange, "positions[", i, "] + offset = ", positions[i], " + ", offset,
             " is outside [0, ", limit_name, " = ", limit, ")");
      }
      last = std::max(last, p);
    }
  }

  return tables_.ForCall({positions, batch * seq * axes, offset, last}, direction);
}

void rotary_rope::Apply(const rotary::TensorArgs* tensors, int count, const int64_t* positions, int32_t axes,
                        int64_t offset, rotary::Direction direction, const rotary::NormArgs* norm) const {
  if (axes != 1 && axes != axis_count_) {
    Fail(Status::kInvalidArgument, "positions have ", axes, " axes; this rope reads ", axis_count_,
         axis_count_ == 1 ? "" : " (or 1: the same id on every axis)");
  }
  const rotary::KernelTable& kernels = rotary::ActiveKernels();
  rotary::CallOperands call = rotary::ValidateOperands(tensors, count, config_.head_dim);
  if (norm != nullptr) rotary::AttachNorm(*norm, call, config_.head_dim);
  const rotary::TableRef table = PrepareTable(call.batch, call.seq, positions, axes, offset, direction);
  Rotate(kernels, call, *table, positions, axes, offset, norm != nullptr);
}

void rotary_rope::Shift(const rotary_tensor* x, const int64_t* positions, int64_t offset, int64_t delta) const {
  const rotary::KernelTable& kernels = rotary::ActiveKernels();
  const rotary::TensorArgs t{x, x, 1.0f, "x", "x"};
  const rotary::CallOperands call = rotary::ValidateOperands(&t, 1, config_.head_dim);
  int64_t shifted;
  if (__builtin_add_overflow(offset, delta, &shifted)) {
    Fail(Status::kOutOfRange, "offset + delta = ", offset, " + ", delta, " overflows int64");
  }
  // Both position sets are checked (and their rows built) before either pass writes.
  const rotary::TableRef back = PrepareTable(call.batch, call.seq, positions, 1, offset, rotary::kInverse);
  const rotary::TableRef forward = PrepareTable(call.batch, call.seq, positions, 1, shifted, rotary::kForward);
  Rotate(kernels, call, *back, positions, 1, offset);
  Rotate(kernels, call, *forward, positions, 1, shifted);
}

void rotary_rope::Rotate(const rotary::KernelTable& kernels, const rotary::CallOperands& call,
                         const rotary::CachedTable& table, const int64_t* positions, int32_t axes,
                         int64_t offset, bool normalize) const {
  rotary::RowJob job;  // every field the kernels read is set below (no zero fill: decode pays for each store)
  for (int i = 0; i < call.count; ++i) job.operands[i] = call.operands[i];
  job.num_operands = call.count;
  job.seq = call.seq;
  job.pairs = static_cast<size_t>(config_.rotary_dim / 2);
  job.head_dim = static_cast<size_t>(config_.head_dim);
  job.positions = positions;
  job.offset = offset;
  job.table = table.View();
  // Without ids every axis is offset + s: one axis, plain RoPE's rows.
  job.num_axes = positions ? axes : 1;
  job.axis_stride = call.rows();
  job.row_axes = row_axes_.data();
  job.row_run_ends = row_run_ends_.data();
  // Bytes read + written beyond the last-level cache: most come from DRAM.
  job.streaming = call.rows() * call.bytes_per_row > rotary::LastLevelCacheBytes();

  const rotary::RowKernel kernel = (normalize ? kernels.norm_rotate : kernels.rotate)[config_.pairing][call.src_dtype]
                                                                                   [call.dst_dtype];
  rotary::ForEachRowRange(call.rows(), call.cost_per_row,
                          [&](int64_t begin, int64_t end) { kernel(job, begin, end); });
}
