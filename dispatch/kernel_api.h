// The contract between lib/ (which validates, plans and schedules) and the
// per-target kernels in dispatch/ (which only compute). Everything a kernel
// receives has been validated: pointers are valid, every position has a built
// table row, and no two heads overlap.
#ifndef ROTARY_DISPATCH_KERNEL_API_H_
#define ROTARY_DISPATCH_KERNEL_API_H_

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace rotary {

// How one table row (one position) is laid out: cos values, then as many sin
// values, in the order the kernel of the pairing reads them best.
enum class TableLayout {
  // NeoX: cos t_i for i < pairs, then sin t_i. Row: 2 * pairs floats.
  kPerPair,
  // Interleaved: per component k < 2 * pairs, cos t_(k/2), then sin t_(k/2)
  // negated on even k. Row: 4 * pairs floats (twice the memory, one shuffle
  // per vector instead of three).
  kPerComponent,
};

// Floats of one row of `pairs` pairs in `layout`.
constexpr int64_t RowFloats(TableLayout layout, size_t pairs) {
  return (layout == TableLayout::kPerPair ? 2 : 4) * static_cast<int64_t>(pairs);
}

// Where a call's cos/sin rows come from (rotary_table_mode, resolved).
enum class RowSource {
  // A stored row per position (TableView::Row).
  kFull,
  // Position p = hi * K + lo (K = 2^compact_shift): rows of the K low positions
  // (unscaled) and of the multiples of K (scaled), both kPerPair, combined per
  // (b, s) by angle addition into a row of `layout`.
  kCompact,
  // No rows: cos/sin of p * inv_freq[i], reduced exactly mod 2 pi in double,
  // evaluated in f32 per (b, s) into a row of `layout`.
  kOnTheFly,
  // The caller's cos/sin arrays (rotary_create_borrowed), converted per
  // (b, s) into a row of `layout`. (Arrays that already are f32 rows of
  // kPerPair are read in place as kFull instead.)
  kBorrowed,
};

// Read-only view of a position table, stored in fixed-size chunks of
// 2^chunk_shift rows so the table can grow without moving rows other threads read.
struct TableView {
  const std::atomic<const float*>* chunks;  // kFull: the rows; kCompact: the high rows
  int chunk_shift;
  int64_t row_floats;  // cos values then sin values: row_floats / 2 each (in `layout`)

  RowSource mode = RowSource::kFull;
  TableLayout layout = TableLayout::kPerPair;  // of the rows the kernel reads
  size_t pairs = 0;
  int compact_shift = 0;          // kCompact: log2 K
  const float* low_rows = nullptr;  // kCompact: K rows of 2 * pairs floats (cos, sin of lo * inv_freq)
  const double* inv_freq = nullptr;  // kOnTheFly: pairs values
  double scale = 1.0;                // kOnTheFly: the attention factor
  // kBorrowed: pair i of position p is cos[p * borrowed_stride + i],
  // sin[...] in storage borrowed_dtype (DtypeIndex); borrowed_inverse: the
  // row holds the inverse rotation, (cos, -sin) / (cos^2 + sin^2).
  const void* borrowed_cos = nullptr;
  const void* borrowed_sin = nullptr;
  int64_t borrowed_stride = 0;
  int borrowed_dtype = 0;
  bool borrowed_inverse = false;

  const float* Row(int64_t position) const {
    const float* chunk = chunks[position >> chunk_shift].load(std::memory_order_acquire);
    return chunk + (position & ((int64_t{1} << chunk_shift) - 1)) * row_floats;
  }
};

// Floats of the largest row a kernel synthesizes (kPerComponent, head_dim 4096).
constexpr size_t kMaxRowFloats = 4 * 2048;

// Position coordinates a token may have (multi-axis RoPE, docs/math.md §7:
// M-RoPE's t, h, w and ggml's extra axis e).
constexpr int kMaxAxes = 4;

// One tensor of a call: heads read from `src` and written to `dst` (the same
// memory when in place). Strides are in elements of each tensor's storage type.
struct Operand {
  const void* src;
  void* dst;
  int64_t src_stride_batch, src_stride_seq, src_stride_head;
  int64_t dst_stride_batch, dst_stride_seq, dst_stride_head;
  int64_t heads;
  float scale;      // multiplies every output component (1: none)
  bool write_rest;  // write components [rotary_dim, head_dim): out of place, scale != 1, or normalized

  // qk-norm (docs/math.md §8), read by the NormRowKernels only. nullptr: the
  // heads are rotated as they are. Otherwise the RMSNorm weight w: each head
  // (norm_whole_token: all heads of a (b, s) row together, OLMo 2) is
  // normalized, u = (x * r) * (w + norm_offset), before the rotation.
  const float* norm_weight = nullptr;
  float norm_offset = 0.0f;
  float norm_eps = 0.0f;
  bool norm_whole_token = false;

  // A paged KV cache as the destination (docs/math.md §9): row (b, s) goes to
  // slot = dst_slots[b * seq + s], at dst + (slot / block_size) *
  // dst_stride_batch + (slot % block_size) * dst_stride_seq; a negative slot
  // is not written. nullptr: dst is a [batch, seq] tensor.
  const int64_t* dst_slots = nullptr;
  int64_t block_size = 1;
  // Converted, not rotated (v into its cache; scale 1): every component copied
  // as it is, in the destination's storage.
  bool copy_only = false;
  // An FP8 cache stores fp8(y / cache_divisor) (the k or v scale).
  float cache_divisor = 1.0f;
  // The operand's own row function, in a job whose operands differ in
  // storage types (KernelTable::rotate_per_operand reads it).
  void (*row_kernel)(const Operand& op, int64_t b, int64_t s, int64_t row, const float* cos, const float* sin,
                     size_t pairs, size_t head_dim, bool streaming) = nullptr;
  // An operand of such a job with qk-norm: row_kernel is
  // KernelTable::normalize_operand, which normalizes the heads of the row
  // into an f32 buffer and runs this on it (the operand's own row kernel for
  // an f32 source).
  void (*normalized_row_kernel)(const Operand& op, int64_t b, int64_t s, int64_t row, const float* cos,
                                const float* sin, size_t pairs, size_t head_dim, bool streaming) = nullptr;
};

// Rotates (or, copy_only, converts) all heads of one operand at (b, s),
// row = b * seq + s, with the table row (cos, sin) of `pairs` pairs.
using OperandRowKernel = void (*)(const Operand& op, int64_t b, int64_t s, int64_t row, const float* cos,
                                  const float* sin, size_t pairs, size_t head_dim, bool streaming);

// Operands of one job: q and k, or q, k and v when k and v go into a KV cache.
constexpr int kMaxOperands = 3;

// Floats [begin, end) of a table row that read the row of one axis's
// position (multi-axis RoPE).
struct AxisRun {
  int32_t begin;
  int32_t end;
  int32_t axis;
};

// One apply over the (b, s) rows of up to two tensors (q and k) that share the
// positions, so each table row is read once for both.
struct RowJob {
  Operand operands[kMaxOperands];
  int num_operands;
  int64_t seq;
  size_t pairs;     // rotary_dim / 2
  size_t head_dim;  // components per head
  const int64_t* positions;  // nullptr: position = offset + s (on every axis)
  int64_t offset;
  const int64_t* batch_offsets;  // nullptr, or added to the positions of sequence b
  TableView table;
  bool streaming;  // the call streams from DRAM: visit heads in address order

  // Multi-axis RoPE (docs/math.md §7): 1 for plain RoPE. Otherwise positions
  // holds num_axes arrays of batch * seq (axis a's at a * axis_stride), and
  // pair i of a row reads the table row of its axis's position. row_axes
  // names that axis for each float of a row in the table's layout (0.0f to
  // num_axes - 1: compared in the vector type of the row it selects), and
  // axis_runs the cos half's as runs of equal axes, in row order (the sin
  // half repeats them): where every run is at least a vector long (sections,
  // vision's halves) a row is gathered by copying whole vectors of each run,
  // without selects.
  int num_axes;
  int64_t axis_stride;
  const float* row_axes;
  const AxisRun* axis_runs;
  int num_axis_runs;
  int32_t shortest_axis_run;  // floats in the shortest of axis_runs

  int64_t Position(int64_t b, int64_t s, int axis = 0) const {
    return (positions ? positions[axis * axis_stride + b * seq + s] : s) + offset +
           (batch_offsets ? batch_offsets[b] : 0);
  }
};

// Rotates rows [row_begin, row_end) of the job, row = b * seq + s.
using RowKernel = void (*)(const RowJob& job, int64_t row_begin, int64_t row_end);

enum PairingIndex { kNeoxPairs = 0, kInterleavedPairs = 1, kNumPairings = 2 };
// KV-cache formats that are not tensor storage (docs/math.md §9.3, §9.4):
// OCP FP8 E4M3 and E5M2 bytes, ggml q8_0 records (34 bytes per 32 values).
enum CacheEncodingIndex { kEncodeE4M3 = 0, kEncodeE5M2 = 1, kEncodeQ8_0 = 2, kNumCacheEncodings = 3 };
// Storage index: the same values as rotary_dtype.
enum DtypeIndex { kF32 = 0, kF16 = 1, kBF16 = 2, kNumDtypes = 3 };

// Rows of a full table that share one base position: cos/sin of the base
// angles and of the step angles j * inv_freq[i] (exact angles; their cos/sin
// from libm in double), see dispatch/table_build-inl.h.
struct RowBuild {
  const double* base_cos;  // pairs values
  const double* base_sin;
  const double* step_cos;  // [j][pairs]
  const double* step_sin;
  size_t pairs;
  double scale;  // the attention factor
  TableLayout layout;
  int64_t row_floats;  // RowFloats(layout, pairs)
};

// Writes the rows of steps [step_begin, step_end), the first at `row`.
using RowBuildKernel = void (*)(const RowBuild& build, int64_t step_begin, int64_t step_end, float* row);

// Writes the row of `position` of a view whose mode is not kFull to `row`
// (view.row_floats floats) and returns it.
using RowSynthesisKernel = const float* (*)(const TableView& view, int64_t position, float* row);

// Floats between the rows of a kernel's scratch buffer: a row, a vector of
// slack past it (the kernels' tail loads stay inside the row; insurance
// only), rounded to 64 bytes.
constexpr size_t ScratchRowFloats(int64_t row_floats) {
  return (static_cast<size_t>(row_floats) + 64 + 15) & ~size_t{15};
}

// The kernels of one Highway target: rotation (and qk-norm then rotation) by
// pairing, source and destination storage (one direction: the inverse reads a table of negated
// angles); the table build; the row synthesis of the compact and on-the-fly modes.
struct KernelTable {
  RowKernel rotate[kNumPairings][kNumDtypes][kNumDtypes];
  // One operand's row (what `rotate` runs for each operand), and the job
  // kernel that runs each operand's own (Operand::row_kernel): for calls whose
  // operands differ in storage types, such as q in place with k into an f16 cache.
  OperandRowKernel rotate_operand[kNumPairings][kNumDtypes][kNumDtypes];
  RowKernel rotate_per_operand;
  // One operand's row into a KV cache of an encoded format (an Operand whose
  // dst is bytes), by pairing, source storage and CacheEncodingIndex.
  OperandRowKernel rotate_operand_encoded[kNumPairings][kNumDtypes][kNumCacheEncodings];
  // The same with qk-norm before the rotation (Operand::norm_weight).
  RowKernel norm_rotate[kNumPairings][kNumDtypes][kNumDtypes];
  // qk-norm of one operand's row in a per-operand job (a KV-cache write), by
  // source storage: the normalized heads then go through the operand's
  // Operand::normalized_row_kernel.
  OperandRowKernel normalize_operand[kNumDtypes];
  RowBuildKernel build_rows;
  RowSynthesisKernel synthesize_row;
};

}  // namespace rotary

#endif  // ROTARY_DISPATCH_KERNEL_API_H_
