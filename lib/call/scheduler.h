// The one place rotary splits work over threads: a call over its rows (one
// (b, s) index each), and a table build over its rows. A call runs inline on
// the caller's thread when it is too small to gain from threads (decode: no
// pool wake-up, no allocation, no lock); otherwise both run as a oneTBB
// parallel_for in the caller's task arena (so task_arena / global_control
// limits are respected). Only scheduler.cc includes oneTBB.
#ifndef ROTARY_LIB_CALL_SCHEDULER_H_
#define ROTARY_LIB_CALL_SCHEDULER_H_

#include <algorithm>
#include <cstdint>

#include "dispatch/kernel_api.h"

namespace rotary {

// A borrowed callable fn(begin, end): what the parallel loop calls per range,
// without a template (or oneTBB) in every file that schedules work.
class RangeFn {
 public:
  template <typename Fn>
  RangeFn(const Fn& fn)  // NOLINT(google-explicit-constructor): a view, like std::string_view
      : object_(&fn), call_([](const void* f, int64_t begin, int64_t end) { (*static_cast<const Fn*>(f))(begin, end); }) {}
  void operator()(int64_t begin, int64_t end) const { call_(object_, begin, end); }

 private:
  const void* object_;
  void (*call_)(const void*, int64_t, int64_t);
};

// Whether a parallel loop's waiting thread may run other tasks meanwhile.
enum class Waiting {
  kAnyTask,
  // Only the loop's own: for a loop run under a lock that another task of
  // the arena may want (the table build), which would deadlock otherwise.
  kOwnTasksOnly,
};

// Calls fn over disjoint ranges covering [0, count), of about `grain` (>= 1)
// each, in parallel (oneTBB parallel_for in the caller's arena).
void ParallelFor(int64_t count, int64_t grain, RangeFn fn, Waiting waiting);

// Whether the caller's task arena has more than one thread.
bool ArenaHasThreads();

// The cost of reading or writing one element, in bytes of f32 traffic that
// take as long: f16 and bf16 elements are converted on the way, which makes
// them about as slow per element as f32 (measured on AMD Zen 4, decode16: f32
// 3.2 us a call, f16 4.6 us, bf16 7.0 us), not twice as fast as their bytes say.
constexpr int64_t ElementCost(DtypeIndex dtype) { return dtype == kF32 ? 4 : 8; }

// Up to this cost (about 12 us of one thread's work), the call runs on the
// caller's thread. On AMD Zen 4: decode16 in f32 (cost 512 KiB, 3.2 us) gained
// nothing from a second thread and q + k fused (640 KiB, 3.8 us) lost 15%.
// decode16 in f16 and bf16 (cost 1 MiB, 4.6-7 us) gained 15-60% on a quiet
// machine, but on a busy VM, where the worker's vCPU can be preempted, the
// same calls ran at half the one-thread speed in whole runs: a call that
// short cannot absorb a late worker, so it stays inline.
constexpr int64_t kParallelMinCost = int64_t{2} << 20;
// Cost per task: large enough to amortize task overhead, small enough to balance.
constexpr int64_t kGrainCost = int64_t{64} << 10;

// Calls fn(row_begin, row_end) over disjoint ranges covering [0, rows), a row
// costing cost_per_row (elements read and written times their ElementCost).
// Each row is computed by the same code whichever way it is split, so results
// are bit-identical for any number of threads.
template <typename Fn>
void ForEachRowRange(int64_t rows, int64_t cost_per_row, const Fn& fn) {
  if (rows < 2 || rows * cost_per_row <= kParallelMinCost || !ArenaHasThreads()) {
    fn(int64_t{0}, rows);
    return;
  }
  const int64_t grain = std::max<int64_t>(1, kGrainCost / std::max<int64_t>(1, cost_per_row));
  ParallelFor(rows, grain, fn, Waiting::kAnyTask);
}

}  // namespace rotary

#endif  // ROTARY_LIB_CALL_SCHEDULER_H_
