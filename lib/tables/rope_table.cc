#include "lib/tables/rope_table.h"

#include <algorithm>
#include <cmath>

#include "dispatch/cos_sin_double.h"
#include "lib/call/scheduler.h"
#include "lib/error.h"
#include "lib/target_registry.h"

namespace rotary {
namespace {

// Rows per parallel task when building: enough sin/cos work to pay for a task.
constexpr int64_t kBuildGrainRows = 64;

TableMemory AllocateDirectory(int64_t chunks) {
  const size_t bytes = static_cast<size_t>(chunks) * sizeof(std::atomic<const float*>);
  TableMemory directory = TableMemory::AllocateZeroed(bytes);
  if (directory.raw() == nullptr) {
    Fail(Status::kOutOfMemory, "cannot allocate the ", bytes, "-byte chunk directory of a cos/sin table");
  }
  return directory;
}

// cos and sin of the exact angle position * w, not of its double rounding
// (at position 2^31 the rounded product is off by up to 2^-22 rad, four f32
// ulps of the result), by the same operations on every CPU (cos_sin_double.h).
void ExactCosSin(double position, double w, double* cos_out, double* sin_out) {
  const CosSin cs = CosSinOfAngle(position, w);
  *cos_out = cs.cos;
  *sin_out = cs.sin;
}

}  // namespace

RopeTable::RopeTable(FrequencyPlan plan, TableLayout layout, int64_t position_limit, int chunk_shift)
    : plan_(std::move(plan)),
      layout_(layout),
      position_limit_(position_limit),
      chunk_shift_(std::max(chunk_shift, kMinChunkShift)),
      row_floats_(RowFloats(layout, plan_.inv_freq.size())),
      directory_(AllocateDirectory((position_limit + chunk_rows() - 1) >> chunk_shift_)),
      // Zero bytes are null pointers in the atomics (lock-free, as the
      // platform's pointers): every entry starts unbuilt.
      chunks_(static_cast<std::atomic<const float*>*>(directory_.raw())) {
  static_assert(std::atomic<const float*>::is_always_lock_free, "directory entries are plain pointers");
  const size_t pairs = plan_.inv_freq.size();
  step_cos_.resize(kStepRows * pairs);
  step_sin_.resize(kStepRows * pairs);
  for (int64_t j = 0; j < kStepRows; ++j) {
    for (size_t i = 0; i < pairs; ++i) {
      ExactCosSin(static_cast<double>(j), plan_.inv_freq[i], &step_cos_[j * pairs + i], &step_sin_[j * pairs + i]);
    }
  }
}

RopeTable::~RopeTable() { Release(); }

bool RopeTable::EnsureRangeSlow(int64_t first, int64_t last) const {
  std::vector<int64_t> missing;
  for (int64_t c = first >> chunk_shift_; c <= (last >> chunk_shift_); ++c) {
    if (!HasChunk(c)) missing.push_back(c);
  }
  if (missing.empty()) return false;
  BuildChunks(std::move(missing));
  return true;
}

bool RopeTable::EnsurePositions(const int64_t* positions, int64_t count, int64_t offset, int shift) const {
  std::vector<int64_t> missing;
  for (int64_t i = 0; i < count; ++i) {
    const int64_t c = ((positions[i] + offset) >> shift) >> chunk_shift_;
    if (!HasChunk(c)) missing.push_back(c);
  }
  if (missing.empty()) return false;
  std::sort(missing.begin(), missing.end());
  missing.erase(std::unique(missing.begin(), missing.end()), missing.end());
  BuildChunks(std::move(missing));
  return true;
}

int64_t RopeTable::Release() const {
  std::lock_guard<std::mutex> lock(build_mutex_);
  for (const Block& block : blocks_) {
    for (int64_t c : block.chunks) chunks_[c].store(nullptr, std::memory_order_relaxed);
  }
  blocks_.clear();
  return bytes_.exchange(0, std::memory_order_relaxed);
}

void RopeTable::BuildChunks(std::vector<int64_t> missing) const {
  std::lock_guard<std::mutex> lock(build_mutex_);
  // Another thread may have built some while we waited for the lock.
  missing.erase(std::remove_if(missing.begin(), missing.end(), [&](int64_t c) { return HasChunk(c); }),
                missing.end());
  if (missing.empty()) return;

  // One block for all of them (a long table's build gets huge pages), allocated
  // first, and its slot reserved, so that running out of memory leaves the
  // table as it was.
  const int64_t chunk_floats = chunk_rows() * row_floats_;
  const size_t bytes = static_cast<size_t>(chunk_floats) * sizeof(float) * missing.size();
  TableMemory block = TableMemory::Allocate(bytes);
  if (block.data() == nullptr) {
    Fail(Status::kOutOfMemory, "cannot allocate ", bytes, " bytes of cos/sin table for ",
         missing.size() * chunk_rows(), " rows");
  }
  if (blocks_.size() == blocks_.capacity()) blocks_.reserve(2 * blocks_.size() + 1);
  float* const base = block.data();

  const int64_t rows = static_cast<int64_t>(missing.size()) * chunk_rows();
  // Own tasks only: otherwise oneTBB lets this thread, while it waits for the
  // loop, take any waiting task, such as a caller's task that applies this
  // table at an unbuilt position, which would lock build_mutex_ a second time
  // on this thread: a deadlock.
  ParallelFor(
      rows, kBuildGrainRows,
      [&](int64_t begin, int64_t end_row) {
        // A task's range may span two chunks: fill chunk by chunk.
        for (int64_t row = begin; row < end_row;) {
          const int64_t k = row >> chunk_shift_;
          const int64_t in_chunk = row & (chunk_rows() - 1);
          const int64_t end = std::min(end_row - (row - in_chunk), chunk_rows());
          FillRows(base + k * chunk_floats, missing[k] << chunk_shift_, in_chunk, end);
          row += end - in_chunk;
        }
      },
      Waiting::kOwnTasksOnly);

  for (size_t k = 0; k < missing.size(); ++k) {
    chunks_[missing[k]].store(base + k * chunk_floats, std::memory_order_release);
  }
  blocks_.push_back(Block{std::move(block), std::move(missing)});  // cannot throw: reserved, moved
  bytes_.fetch_add(static_cast<int64_t>(bytes), std::memory_order_relaxed);
}

// Rows of positions first_position + [row_begin, row_end) from an exact base
// angle every kStepRows positions (ExactCosSin) and the exact steps j * w,
// combined by angle addition in double in
// the active target's kernel (dispatch/table_build-inl.h): a few ulps of 1e-16,
// far below the f32 rounding of the result, and 64 times fewer sin/cos calls
// than evaluating every entry.
void RopeTable::FillRows(float* chunk, int64_t first_position, int64_t row_begin, int64_t row_end) const {
  const size_t pairs = plan_.inv_freq.size();
  std::vector<double> base_cos(pairs), base_sin(pairs);
  RowBuild build{base_cos.data(), base_sin.data(), step_cos_.data(), step_sin_.data(), pairs, plan_.scale,
                 layout_,         row_floats_};
  const RowBuildKernel build_rows = ActiveKernels().build_rows;
  // Bases sit at multiples of kStepRows (first_position is one), whatever range
  // this task was given: a row's value depends on its position alone, so every
  // way of splitting the build gives the same table, bit for bit.
  for (int64_t block = row_begin - row_begin % kStepRows; block < row_end; block += kStepRows) {
    // Exact for integer positions < 2^53.
    const double base_position = static_cast<double>(first_position + block);
    for (size_t i = 0; i < pairs; ++i) ExactCosSin(base_position, plan_.inv_freq[i], &base_cos[i], &base_sin[i]);
    const int64_t first = std::max(block, row_begin);
    build_rows(build, first - block, std::min(row_end, block + kStepRows) - block, chunk + first * row_floats_);
  }
}

}  // namespace rotary
