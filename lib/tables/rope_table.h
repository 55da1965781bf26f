// The cos/sin table of one frequency plan, cached inside a rope object.
//
// Rows are positions; a row holds cos values then sin values in the layout of
// the pairing's kernel (TableLayout), each computed in double from
// p * inv_freq[i] and stored as f32. Rows live in
// fixed chunks of 2^chunk_shift positions (kChunkRows by default), built on first need and never moved or
// freed while the table lives (the chunks of one build share one TableMemory block), so:
//   - growing to longer positions builds only the missing chunks (nothing is
//     rebuilt, readers of existing rows are never disturbed);
//   - readers take no lock: a chunk pointer is published with a release store
//     after its rows are written, and read with an acquire load;
//   - memory is what was touched, bounded by position_limit;
//   - Release() gives all of it back (the table cache evicts this way, only
//     when no call is reading: see CachedTable), and later calls rebuild rows.
#ifndef ROTARY_LIB_TABLES_ROPE_TABLE_H_
#define ROTARY_LIB_TABLES_ROPE_TABLE_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "dispatch/kernel_api.h"
#include "lib/plan/frequency_plan.h"
#include "lib/tables/table_memory.h"

namespace rotary {

class RopeTable {
 public:
  static constexpr int kChunkShift = 10;  // the default
  static constexpr int64_t kChunkRows = int64_t{1} << kChunkShift;
  static constexpr int kMinChunkShift = 6;  // a chunk holds whole steps (kStepRows)

  // Rows of positions [0, position_limit), 2^chunk_shift rows a chunk.
  RopeTable(FrequencyPlan plan, TableLayout layout, int64_t position_limit, int chunk_shift = kChunkShift);
  ~RopeTable();
  RopeTable(const RopeTable&) = delete;
  RopeTable& operator=(const RopeTable&) = delete;

  // Makes the rows of positions [first, last] readable (0 <= first <= last < limit).
  // Returns whether it built any (the table grew).
  bool EnsureRange(int64_t first, int64_t last) const {
    // The steady state (decode: one position, its chunk built) without a call.
    if ((first >> chunk_shift_) == (last >> chunk_shift_) && HasChunk(first >> chunk_shift_)) return false;
    return EnsureRangeSlow(first, last);
  }
  // Whether rows first <= last are in the same or neighbouring chunks.
  bool WithinTwoChunks(int64_t first, int64_t last) const {
    return (last >> chunk_shift_) - (first >> chunk_shift_) <= 1;
  }
  // Makes the rows (positions[i] + offset) >> shift readable for i < count (all in range).
  bool EnsurePositions(const int64_t* positions, int64_t count, int64_t offset, int shift = 0) const;
  // Frees every row. The caller guarantees that nobody reads the table meanwhile.
  // Returns the bytes freed.
  int64_t Release() const;

  // A view of the stored rows (RowSource::kFull) in their layout.
  TableView View() const {
    TableView view{chunks_, chunk_shift_, row_floats_};
    view.layout = layout_;
    view.pairs = plan_.inv_freq.size();
    return view;
  }
  // The first chunk (nullptr until built), for views that combine tables.
  const float* FirstChunk() const { return chunks_[0].load(std::memory_order_acquire); }
  const std::atomic<const float*>* chunks() const { return chunks_; }
  int chunk_shift() const { return chunk_shift_; }
  const FrequencyPlan& plan() const { return plan_; }
  int64_t position_limit() const { return position_limit_; }
  int64_t bytes() const { return bytes_.load(std::memory_order_relaxed); }

 private:
  bool HasChunk(int64_t chunk) const {
    return chunks_[chunk].load(std::memory_order_acquire) != nullptr;
  }
  bool EnsureRangeSlow(int64_t first, int64_t last) const;
  void BuildChunks(std::vector<int64_t> missing) const;
  int64_t chunk_rows() const { return int64_t{1} << chunk_shift_; }
  void FillRows(float* chunk, int64_t first_position, int64_t row_begin, int64_t row_end) const;

  // Rows are built by angle addition from an exact base every kStepRows
  // positions: cos/sin(j * inv_freq[i]) for j < kStepRows, [j][i], in double.
  static constexpr int64_t kStepRows = 64;
  static_assert((int64_t{1} << kMinChunkShift) % kStepRows == 0, "chunks start at a base position");

  const FrequencyPlan plan_;
  const TableLayout layout_;
  std::vector<double> step_cos_, step_sin_;
  const int64_t position_limit_;
  const int chunk_shift_;
  const int64_t row_floats_;
  // The chunk directory: an entry per chunk up to the position limit, in
  // lazily zeroed memory, so that unused entries cost no resident memory.
  const TableMemory directory_;
  std::atomic<const float*>* const chunks_;
  mutable std::mutex build_mutex_;  // serializes builders only; readers never take it
  // The memory of every build and the chunks it holds (under build_mutex_):
  // Release() clears those entries only, never the whole directory.
  struct Block {
    TableMemory memory;
    std::vector<int64_t> chunks;
  };
  mutable std::vector<Block> blocks_;
  mutable std::atomic<int64_t> bytes_{0};
};

}  // namespace rotary

#endif  // ROTARY_LIB_TABLES_ROPE_TABLE_H_
