// Many threads calling apply on shared rope objects, with random positions up
// to 1,000,000 that force table growth while others read: every result must be
// bit-identical to the same call made alone on a fresh rope. ThreadSanitizer
// runs this in CI (ci/sanitize.sh picks tests named *Stress*).
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <future>
#include <random>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <tbb/global_control.h>
#include <tbb/task_arena.h>
#include <tbb/task_group.h>
#include "rotary/rotary.hpp"
#include "tests/slow_build.h"

namespace {

struct Call {
  int rope;                       // which shared rope object
  int64_t batch, seq, heads;
  std::vector<int64_t> positions;  // batch * seq, below kPositionRange
  std::vector<float> input, expected;
  bool inverse;
};

rotary::Config ConfigOf(int rope) {
  // Different pairings, dims and one scaled plan, so tables differ per rope.
  switch (rope) {
    case 0: return rotary::Config().head_dim(64).max_positions(16);
    case 1: return rotary::Config().head_dim(128).pairing(rotary::Pairing::kInterleaved).max_positions(1);
    default: return rotary::Config().head_dim(96).rotary_dim(64).base(500000).max_positions(100);
  }
}

TEST(StressTest, EightThreadsOnSharedRopesMatchSingleThreaded) {
#ifdef ROTARY_TESTS_EMULATED
  constexpr int kCallsPerThread = 8;  // qemu runs cost ~50x: still 8 threads racing to grow the tables
#else
  constexpr int kCallsPerThread = 40;  // TSan included: the races it looks for need many calls
#endif
  constexpr int kThreads = 8, kRopes = 3;
  // Positions up to 1,000,000: ~1000 table chunks per rope to grow. Slow
  // builds (TSan instruments every store of a chunk's build) draw from the
  // first 100 chunks, so calls race over the same chunks more often, not less.
  constexpr uint64_t kPositionRange = rotary_test::kSlowBuild ? 100000 : 1000000;
  std::mt19937_64 rng(42);
  std::vector<std::vector<Call>> work(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    for (int c = 0; c < kCallsPerThread; ++c) {
      Call call;
      call.rope = static_cast<int>(rng() % kRopes);
      call.batch = 1 + rng() % 2;
      call.seq = 1 + rng() % 5;
      call.heads = 1 + rng() % 6;
      call.inverse = rng() % 4 == 0;
      for (int64_t i = 0; i < call.batch * call.seq; ++i) call.positions.push_back(static_cast<int64_t>(rng() % kPositionRange));
      const int32_t dim = ConfigOf(call.rope).c.head_dim;
      call.input.resize(call.batch * call.seq * call.heads * dim);
      for (float& v : call.input) v = static_cast<float>(static_cast<int64_t>(rng() % 2001) - 1000) / 500.0f;
      work[t].push_back(std::move(call));
    }
  }
  // Single-threaded answers, on rope objects of their own that are gone before
  // the shared ones exist (so the shared ones start from empty tables and grow
  // them concurrently). One per config, not one per call: a table row is the
  // same bits whenever it is built, and building a fresh table for each of the
  // 320 calls was most of this test's time under TSan.
  {
    std::vector<rotary::Rope> alone;
    for (int r = 0; r < kRopes; ++r) alone.emplace_back(ConfigOf(r));
    for (auto& calls : work) {
      for (Call& call : calls) {
        call.expected = call.input;
        const rotary::Tensor view(call.expected.data(), call.batch, call.seq, call.heads,
                                  ConfigOf(call.rope).c.head_dim);
        rotary::Rope& rope = alone[call.rope];
        call.inverse ? rope.apply_inverse(view, call.positions) : rope.apply(view, call.positions);
      }
    }
  }

  std::vector<rotary::Rope> shared;
  for (int r = 0; r < kRopes; ++r) shared.emplace_back(ConfigOf(r));
  std::vector<std::thread> threads;
  std::vector<int> mismatches(kThreads, 0);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (Call& call : work[t]) {
        std::vector<float> x = call.input;
        const rotary::Tensor view(x.data(), call.batch, call.seq, call.heads, ConfigOf(call.rope).c.head_dim);
        call.inverse ? shared[call.rope].apply_inverse(view, call.positions) : shared[call.rope].apply(view, call.positions);
        if (std::memcmp(x.data(), call.expected.data(), x.size() * sizeof(float)) != 0) ++mismatches[t];
      }
    });
  }
  for (std::thread& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(mismatches[t], 0) << "thread " << t;
}

// A caller's oneTBB tasks that apply one rope at positions whose rows are not
// built yet, while the caller's own thread builds rows: the build's
// parallel_for must not let that thread run the caller's waiting tasks (they
// would take the table's build lock a second time on the same thread). Before
// the fix it deadlocked in 2 of 3 runs of 30 trials with 2 MiB chunks.
//
// The watchdog only catches a real hang: slow builds (TSan instruments every
// store of the table build; qemu) do a few trials of small chunks, and the
// limit is tens of times their normal time. The time taken is printed, so a
// slowdown shows long before the watchdog trips.
TEST(StressTest, TableGrowthInsideCallersTbbTasksDoesNotDeadlock) {
  constexpr bool kSlow = rotary_test::kSlowBuild;
  constexpr int kTrials = kSlow ? 4 : 30;
  constexpr int kTasks = 12;            // each applies in a chunk of its own
  constexpr int64_t kChunkRows = 1024;  // the table's chunk (rows are built in chunks of 1024)
  // Native: 2 MiB chunks, builds long enough for threads to steal from each other.
  constexpr int64_t kHeadDim = kSlow ? 64 : 512;
  constexpr auto kWatchdog = std::chrono::minutes(5);
  const auto start = std::chrono::steady_clock::now();
  auto run = std::async(std::launch::async, [&] {
    rotary::Rope rope(rotary::Config().head_dim(kHeadDim).max_positions(1).position_limit(int64_t{1} << 24));
    tbb::global_control parallelism(tbb::global_control::max_allowed_parallelism, 4);
    tbb::task_arena arena(4);
    int64_t next_chunk = 1;
    for (int trial = 0; trial < kTrials; ++trial) {
      arena.execute([&] {
        const int64_t first = next_chunk;
        next_chunk += kTasks + 1;
        auto apply_at = [&](int64_t chunk) {
          std::vector<float> x(kHeadDim, 1.0f);
          rope.apply(rotary::Tensor(x.data(), 1, 1, 1, kHeadDim), chunk * kChunkRows);
        };
        std::atomic<bool> spawned{false}, release{false};
        tbb::task_group outer;
        outer.run([&] {
          tbb::task_group inner;
          for (int i = 1; i <= kTasks; ++i) inner.run([&, i] { apply_at(first + i); });
          spawned = true;
          while (!release) std::this_thread::sleep_for(std::chrono::milliseconds(1));
          inner.wait();
        });
        while (!spawned) std::this_thread::sleep_for(std::chrono::microseconds(100));
        apply_at(first);  // builds a chunk while the caller's tasks wait
        release = true;
        outer.wait();
      });
      rotary::cache_trim();  // no call reads the rows now: free them
    }
  });
  if (run.wait_for(kWatchdog) != std::future_status::ready) {
    ADD_FAILURE() << "table growth inside the caller's TBB tasks deadlocked: " << kTrials << " trials of "
                  << kTasks + 1 << " chunks of " << kHeadDim * kChunkRows * 4 << " bytes did not finish in "
                  << std::chrono::duration_cast<std::chrono::seconds>(kWatchdog).count() << " s";
    std::_Exit(1);  // the deadlocked threads cannot be joined
  }
  run.get();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("%d trials of %d chunks of %lld KiB took %.2f s (watchdog %lld s)\n", kTrials, kTasks + 1,
              static_cast<long long>(kHeadDim * kChunkRows * 4 / 1024), seconds,
              static_cast<long long>(std::chrono::duration_cast<std::chrono::seconds>(kWatchdog).count()));
}

}  // namespace
