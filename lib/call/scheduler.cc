#include "lib/call/scheduler.h"

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>
#include <tbb/task_arena.h>

namespace rotary {

void ParallelFor(int64_t count, int64_t grain, RangeFn fn, Waiting waiting) {
  const auto loop = [&] {
    tbb::parallel_for(tbb::blocked_range<int64_t>(0, count, grain),
                      [&fn](const tbb::blocked_range<int64_t>& r) { fn(r.begin(), r.end()); });
  };
  if (waiting == Waiting::kOwnTasksOnly) {
    // Isolated: while it waits for the loop, this thread runs only the loop's
    // own tasks, never another waiting task of the arena.
    tbb::this_task_arena::isolate(loop);
  } else {
    loop();
  }
}

bool ArenaHasThreads() { return tbb::this_task_arena::max_concurrency() > 1; }

}  // namespace rotary
