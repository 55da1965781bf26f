// Splits one call over its rows (one (b, s) index each): inline on the caller's
// thread when the call is too small to gain from threads (decode: no pool
// wake-up, no allocation, no lock), otherwise oneTBB parallel_for in the
// caller's task arena (so task_arena / global_control limits are respected).
#ifndef ROTARY_LIB_SCHEDULER_H_
#define ROTARY_LIB_SCHEDULER_H_

#include <algorithm>
#include <cstdint>

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>
#include <tbb/task_arena.h>

namespace rotary {

// Below this many bytes touched, one thread is faster than waking others.
constexpr int64_t kParallelMinBytes = int64_t{256} << 10;
// Work per task: large enough to amortize task overhead, small enough to balance.
constexpr int64_t kGrainBytes = int64_t{64} << 10;

// Calls fn(row_begin, row_end) over disjoint ranges covering [0, rows). Each
// row is computed by the same code whichever way it is split, so results are
// bit-identical for any number of threads.
template <typename Fn>
void ForEachRowRange(int64_t rows, int64_t bytes_per_row, const Fn& fn) {
  const int64_t total_bytes = rows * bytes_per_row;
  if (rows < 2 || total_bytes < kParallelMinBytes || tbb::this_task_arena::max_concurrency() < 2) {
    fn(int64_t{0}, rows);
    return;
  }
  const int64_t grain = std::max<int64_t>(1, kGrainBytes / std::max<int64_t>(1, bytes_per_row));
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, rows, grain),
                    [&fn](const tbb::blocked_range<int64_t>& r) { fn(r.begin(), r.end()); });
}

}  // namespace rotary

#endif  // ROTARY_LIB_SCHEDULER_H_
