// The rope object behind the opaque C handle: a validated config, the cached
// tables of its frequency plans, and apply = validate -> table -> schedule -> kernel.
#ifndef ROTARY_LIB_CALL_ROPE_H_
#define ROTARY_LIB_CALL_ROPE_H_

#include <cstdint>
#include <vector>

#include "dispatch/kernel_api.h"
#include "lib/config/config.h"
#include "lib/tables/plan_tables.h"
#include "rotary/rotary.h"

namespace rotary {

struct CallOperands;    // lib/call/call_operands.h
struct NormArgs;        // lib/call/qk_norm.h
struct CacheWriteArgs;  // lib/call/kv_cache_write.h

// One tensor of a call as the caller gave it: read from src, written to dst
// (dst == src: in place), every output component times scale.
struct TensorArgs {
  const rotary_tensor* src;
  const rotary_tensor* dst;
  float scale;
  const char* src_name;  // how messages name them, e.g. "q" and "q_out"
  const char* dst_name;
};

// Where the rows of a call are: (b, s) is at
//   (ids ? ids[(a * batch + b) * seq + s] : s) + offset + (batch_offsets ? batch_offsets[b] : 0)
// on axis a (axes arrays of ids; 1 gives every axis the same id).
struct PositionArgs {
  const int64_t* ids = nullptr;
  int32_t axes = 1;
  int64_t offset = 0;
  const int64_t* batch_offsets = nullptr;
};

}  // namespace rotary

struct rotary_rope {
 public:
  // A validated config, resolved (ValidateConfig); borrowed: the caller's
  // cos/sin arrays to read (ReadBorrowedTable), or nullptr for tables of its own.
  explicit rotary_rope(rotary::ResolvedConfig resolved, const rotary::BorrowedRows* borrowed = nullptr);

  // Rotates one tensor, or q and k (count == 2) at the same positions in one
  // pass (positions.axes is axis_count(), or 1 for the same id on every
  // axis). norm: qk-norm before the rotation, or nullptr. cache: k and v
  // written into a KV cache (tensors[1] is k, read only), or nullptr.
  // Thread-safe. Throws rotary::Error, having written nothing.
  void Apply(const rotary::TensorArgs* tensors, int count, const rotary::PositionArgs& positions,
             rotary::Direction direction, const rotary::NormArgs* norm = nullptr,
             const rotary::CacheWriteArgs* cache = nullptr) const;

  // Moves x, rotated at positions + offset, to positions + offset + delta:
  // the inverse at the old positions, then the forward rotation at the new
  // ones (llama.cpp's context shift), both checked before either writes.
  void Shift(const rotary_tensor* x, const int64_t* positions, int64_t offset, int64_t delta) const;

  int64_t table_bytes() const { return tables_.bytes(); }
  int32_t table_count() const { return tables_.count(); }
  rotary::RowSource table_mode() const { return tables_.mode(); }
  const rotary_config& config() const { return config_; }
  int32_t axis_count() const { return axis_count_; }

 private:
  // Validates the positions of a [batch, seq] call, picks the table of its
  // plan and makes the rows of its positions readable.
  rotary::TableRef PrepareTable(int64_t batch, int64_t seq, const rotary::PositionArgs& positions,
                                rotary::Direction direction) const;
  // Runs the row kernel of a validated call over its rows, with its table
  // (normalize: the qk-norm kernel, for operands with a norm attached).
  void Rotate(const rotary::KernelTable& kernels, const rotary::CallOperands& call, const rotary::CachedTable& table,
              const rotary::PositionArgs& positions, bool normalize = false) const;

  const rotary_config config_;  // its rotary_array pointers are the caller's: only tables_ reads them, at create
  const rotary::PlanTables tables_;
  const int32_t axis_count_;           // position ids per token (docs/math.md §7)
  const std::vector<float> row_axes_;           // axis_count_ > 1: RowJob::row_axes for the tables' layout
  const std::vector<rotary::AxisRun> axis_runs_;  // and RowJob::axis_runs
  const int32_t shortest_axis_run_;             // and RowJob::shortest_axis_run
};

#endif  // ROTARY_LIB_CALL_ROPE_H_
