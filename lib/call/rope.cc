#include "lib/call/rope.h"

#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "lib/call/last_level_cache.h"
#include "lib/call/call_operands.h"
#include "lib/call/kv_cache_write.h"
#include "lib/call/qk_norm.h"
#include "lib/call/scheduler.h"
#include "lib/error.h"
#include "lib/target_registry.h"

using rotary::Fail;
using rotary::Status;

namespace {

// A borrowed table's positions are its rows (and the config's position_limit).
rotary::FrequencyScheme LimitedToRows(rotary::FrequencyScheme scheme, const rotary::BorrowedRows* borrowed) {
  if (borrowed != nullptr && borrowed->rows <= scheme.position_limit) {
    scheme.position_limit = borrowed->rows;
    scheme.position_limit_name = "table.rows";
  }
  return scheme;
}

int32_t ShortestRun(const std::vector<rotary::AxisRun>& runs) {
  int32_t shortest = INT32_MAX;
  for (const rotary::AxisRun& run : runs) shortest = std::min(shortest, run.end - run.begin);
  return shortest;
}

}  // namespace

rotary_rope::rotary_rope(rotary::ResolvedConfig resolved, const rotary::BorrowedRows* borrowed)
    : config_(resolved.config),
      tables_(config_, LimitedToRows(std::move(resolved.scheme), borrowed), borrowed),
      axis_count_(resolved.axes.count),
      row_axes_(resolved.axes.RowAxes(tables_.layout())),
      axis_runs_(rotary::PositionAxes::Runs(row_axes_)),
      shortest_axis_run_(ShortestRun(axis_runs_)) {}

rotary::TableRef rotary_rope::PrepareTable(int64_t batch, int64_t seq, const rotary::PositionArgs& positions,
                                           rotary::Direction direction) const {
  const int64_t limit = tables_.position_limit();
  const char* limit_name = tables_.position_limit_name();
  const int64_t offset = positions.offset;
  int64_t smallest = INT64_MAX;
  int64_t last = 0;  // the call's largest position: its length picks the plan
  // Each sequence's offset: offset + batch_offsets[b], checked once per sequence.
  const auto sequence_offset = [&](int64_t b) {
    if (positions.batch_offsets == nullptr) return offset;
    int64_t sum;
    if (__builtin_add_overflow(offset, positions.batch_offsets[b], &sum)) {
      Fail(Status::kOutOfRange, "offset + batch_offsets[", b, "] = ", offset, " + ", positions.batch_offsets[b],
           " overflows int64");
    }
    return sum;
  };
  if (positions.ids == nullptr) {
    for (int64_t b = 0; b < (positions.batch_offsets ? batch : 1); ++b) {
      const int64_t first = sequence_offset(b);
      const char* what = positions.batch_offsets ? "offset + batch_offsets[b]" : "offset";
      if (first < 0) Fail(Status::kOutOfRange, what, " = ", first, " is negative (positions are ", what, " + s), b = ", b);
      if (first > limit - seq) {
        const std::string sequence = positions.batch_offsets ? " (b = " + std::to_string(b) + ")" : "";
        Fail(Status::kOutOfRange, "position ", what, " + seq - 1 = ", first, " + ", seq - 1, " is not below ",
             limit_name, " = ", limit, sequence);
      }
      smallest = std::min(smallest, first);
      last = std::max(last, first + seq - 1);
    }
  } else {
    // Every axis's ids, one flat list: the tables hold rows by position,
    // whichever axis reads them, and a call's length is its largest position
    // on any axis (HF's dynamic_rope_update takes the max over all of them).
    // Checked by their range (cheap enough for every decode call); an id out
    // of range is then looked for to name it.
    const int64_t rows = batch * seq;
    // Without batch_offsets, one offset for all: the ids as one sequence.
    const int64_t sequences = positions.batch_offsets ? batch : 1;
    const int64_t per_sequence = positions.batch_offsets ? seq : rows;
    for (int64_t b = 0; b < sequences; ++b) {
      const int64_t add = sequence_offset(b);
      if (per_sequence == 0) continue;
      int64_t lo = INT64_MAX, hi = INT64_MIN;
      for (int32_t a = 0; a < positions.axes; ++a) {
        const int64_t* ids = positions.ids + a * rows + b * per_sequence;
        for (int64_t i = 0; i < per_sequence; ++i) {
          lo = std::min(lo, ids[i]);
          hi = std::max(hi, ids[i]);
        }
      }
      int64_t first = 0, final = 0;
      if (__builtin_add_overflow(lo, add, &first) || __builtin_add_overflow(hi, add, &final) || first < 0 ||
          final >= limit) {
        for (int32_t a = 0; a < positions.axes; ++a) {
          for (int64_t i = a * rows + b * per_sequence; i < a * rows + (b + 1) * per_sequence; ++i) {
            int64_t p;
            if (__builtin_add_overflow(positions.ids[i], add, &p) || p < 0 || p >= limit) {
              Fail(Status::kOutOfRange, "positions[", i, "] + ",
                   positions.batch_offsets ? "offset + batch_offsets[b]" : "offset", " = ", positions.ids[i], " + ",
                   add, " is outside [0, ", limit_name, " = ", limit, ")");
            }
          }
        }
      }
      smallest = std::min(smallest, first);
      last = std::max(last, final);
    }
  }
  return tables_.ForCall({positions.ids, batch * seq * positions.axes, offset, std::min(smallest, last), last,
                          positions.batch_offsets, batch, seq},
                         direction);
}

namespace {

// Whether every token's ids (axis-major, `rows` per axis) are the same on all axes.
bool AxesAgree(const int64_t* ids, int32_t axes, int64_t rows) {
  for (int32_t a = 1; a < axes; ++a) {
    if (!std::equal(ids, ids + rows, ids + a * rows)) return false;
  }
  return true;
}

// The kernels read the positions again while they write. Positions inside
// memory the call writes are copied first (into ids_copy, offsets_copy), so
// that rows rotated early cannot change the positions of later rows after
// they were checked (a table row out of range). Elsewhere they are read in
// place (no allocation on a decode call's path): the caller must not change
// them during the call.
rotary::PositionArgs PositionsToRead(const rotary::CallOperands& call, const rotary::PositionArgs& positions,
                                     std::vector<int64_t>& ids_copy, std::vector<int64_t>& offsets_copy) {
  rotary::PositionArgs read = positions;
  const int64_t id_count = call.rows() * positions.axes;
  if (positions.ids != nullptr && call.Writes(positions.ids, id_count)) {
    ids_copy.assign(positions.ids, positions.ids + id_count);
    read.ids = ids_copy.data();
  }
  if (positions.batch_offsets != nullptr && call.Writes(positions.batch_offsets, call.batch)) {
    offsets_copy.assign(positions.batch_offsets, positions.batch_offsets + call.batch);
    read.batch_offsets = offsets_copy.data();
  }
  return read;
}

}  // namespace

void rotary_rope::Apply(const rotary::TensorArgs* tensors, int count, const rotary::PositionArgs& positions,
                        rotary::Direction direction, const rotary::NormArgs* norm,
                        const rotary::CacheWriteArgs* cache) const {
  if (positions.axes != 1 && positions.axes != axis_count_) {
    Fail(Status::kInvalidArgument, "positions have ", positions.axes, " axes; this rope reads ", axis_count_,
         axis_count_ == 1 ? "" : " (or 1: the same id on every axis)");
  }
  const rotary::KernelTable& kernels = rotary::ActiveKernels();
  if (cache != nullptr) {
    if (count != 2) Fail(Status::kInvalidArgument, "a KV-cache write needs k_src (k is rotated into k_cache)");
    if (direction == rotary::kInverse) Fail(Status::kInvalidArgument, "a KV-cache write goes with the forward rotation");
  }
  rotary::CallOperands call = rotary::ValidateOperands(tensors, cache ? 1 : count, config_.head_dim);
  if (cache != nullptr) rotary::AttachCacheWrite(*cache, tensors[0], tensors[1], call, config_.head_dim);
  if (norm != nullptr) rotary::AttachNorm(*norm, call, config_.head_dim);
  std::vector<int64_t> ids_copy, offsets_copy;
  rotary::PositionArgs read = PositionsToRead(call, positions, ids_copy, offsets_copy);
  // Ids that agree on every axis for every token (a text-only call) are read
  // as one axis: plain RoPE's rows (the same rows, so the same bits), checked
  // and looked up once, and the kernels neither compare each row's axes nor
  // gather a row.
  if (read.ids != nullptr && read.axes > 1 && AxesAgree(read.ids, read.axes, call.rows())) read.axes = 1;
  const rotary::TableRef table = PrepareTable(call.batch, call.seq, read, direction);
  Rotate(kernels, call, *table, read, norm != nullptr);
}

void rotary_rope::Shift(const rotary_tensor* x, const int64_t* positions, int64_t offset, int64_t delta) const {
  const rotary::KernelTable& kernels = rotary::ActiveKernels();
  const rotary::TensorArgs t{x, x, 1.0f, "x", "x"};
  const rotary::CallOperands call = rotary::ValidateOperands(&t, 1, config_.head_dim);
  int64_t shifted;
  if (__builtin_add_overflow(offset, delta, &shifted)) {
    Fail(Status::kOutOfRange, "offset + delta = ", offset, " + ", delta, " overflows int64");
  }
  // Both position sets are checked (and their rows built) before either pass
  // writes; ids inside x are read from a copy (the first pass rewrites x).
  std::vector<int64_t> ids_copy, offsets_copy;
  const rotary::PositionArgs read = PositionsToRead(call, rotary::PositionArgs{positions, 1, offset, nullptr},
                                                    ids_copy, offsets_copy);
  const rotary::PositionArgs old_positions = read;
  rotary::PositionArgs new_positions = read;
  new_positions.offset = shifted;
  const rotary::TableRef back = PrepareTable(call.batch, call.seq, old_positions, rotary::kInverse);
  const rotary::TableRef forward = PrepareTable(call.batch, call.seq, new_positions, rotary::kForward);
  Rotate(kernels, call, *back, old_positions);
  Rotate(kernels, call, *forward, new_positions);
}

void rotary_rope::Rotate(const rotary::KernelTable& kernels, const rotary::CallOperands& call,
                         const rotary::CachedTable& table, const rotary::PositionArgs& positions,
                         bool normalize) const {
  rotary::RowJob job;  // every field the kernels read is set below (no zero fill: decode pays for each store)
  for (int i = 0; i < call.count; ++i) job.operands[i] = call.operands[i];
  job.num_operands = call.count;
  job.seq = call.seq;
  job.pairs = static_cast<size_t>(config_.rotary_dim / 2);
  job.head_dim = static_cast<size_t>(config_.head_dim);
  job.positions = positions.ids;
  job.offset = positions.offset;
  job.batch_offsets = positions.batch_offsets;
  job.table = table.View();
  // Without ids every axis is offset + s: one axis, plain RoPE's rows.
  job.num_axes = positions.ids ? positions.axes : 1;
  job.axis_stride = call.rows();
  job.row_axes = row_axes_.data();
  job.axis_runs = axis_runs_.data();
  job.num_axis_runs = static_cast<int>(axis_runs_.size());
  job.shortest_axis_run = shortest_axis_run_;
  // Bytes read + written beyond the last-level cache: most come from DRAM.
  job.streaming = call.rows() * call.bytes_per_row > rotary::LastLevelCacheBytes();

  rotary::RowKernel kernel = (normalize ? kernels.norm_rotate : kernels.rotate)[config_.pairing][call.src_dtype]
                                                                             [call.dst_dtype];
  if (call.per_operand) {  // a KV-cache write: each operand with its own storage types
    for (int i = 0; i < call.count; ++i) {
      const int encoding = call.operand_encoding[i];
      const auto from = [&](rotary::DtypeIndex src) {
        return encoding < 0 ? kernels.rotate_operand[config_.pairing][src][call.operand_dst[i]]
                            : kernels.rotate_operand_encoded[config_.pairing][src][encoding];
      };
      rotary::Operand& op = job.operands[i];
      if (normalize && op.norm_weight != nullptr) {  // normalized into f32, then rotated from there
        op.normalized_row_kernel = from(rotary::kF32);
        op.row_kernel = kernels.normalize_operand[call.operand_src[i]];
      } else {
        op.row_kernel = from(call.operand_src[i]);
      }
    }
    kernel = kernels.rotate_per_operand;
    if (normalize && job.operands[0].norm_weight != nullptr) {
      // q normalized: its own pass with the norm kernel, which normalizes as
      // it rotates (no buffer pass); then k and v into their caches. q's and
      // the caches' memory are apart, so the two passes move the bytes of one;
      // only the table rows are read twice.
      rotary::RowJob q_job = job;
      q_job.num_operands = 1;
      const rotary::RowKernel norm_kernel =
          kernels.norm_rotate[config_.pairing][call.operand_src[0]][call.operand_dst[0]];
      rotary::ForEachRowRange(call.rows(), call.cost_per_row,
                              [&](int64_t begin, int64_t end) { norm_kernel(q_job, begin, end); });
      for (int i = 1; i < call.count; ++i) job.operands[i - 1] = job.operands[i];
      job.num_operands = call.count - 1;
    }
  }
  rotary::ForEachRowRange(call.rows(), call.cost_per_row,
                          [&](int64_t begin, int64_t end) { kernel(job, begin, end); });
}
