// The process-wide table cache: sharing between rope objects with equal plans,
// the byte budget and least-recently-used eviction, trim, tables in use, the
// ROTARY_CACHE_BUDGET syntax, and calls from many threads while a tiny budget
// evicts tables continuously (ThreadSanitizer runs *Stress* tests in CI).
#include <atomic>
#include <cstring>
#include <random>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "lib/byte_size.h"
#include "lib/tables/table_cache.h"
#include "rotary/rotary.hpp"
#include "tests/random_values.h"

namespace {

// Restores the budget a test changed.
class BudgetGuard {
 public:
  BudgetGuard() : budget_(rotary::cache_budget()) {}
  ~BudgetGuard() { rotary::set_cache_budget(budget_); }

 private:
  int64_t budget_;
};

// head_dim 64, neox: a row is 64 floats, a chunk of 1024 rows 256 KiB.
constexpr int64_t kChunkBytes = 1024 * 64 * 4;

rotary::Config SmallConfig(double base) { return rotary::Config().head_dim(64).base(base).max_positions(1); }

std::vector<float> Input(int64_t heads, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<float> x(heads * 64);
  for (float& v : x) v = static_cast<float>(rotary_test::UniformValue(rng, -2.0, 2.0));
  return x;
}

std::vector<float> Applied(const rotary::Rope& rope, int64_t position, uint32_t seed = 1) {
  std::vector<float> x = Input(4, seed);
  rope.apply(rotary::Tensor(x.data(), 1, 1, 4, 64), rotary::Positions(position));
  return x;
}

TEST(TableCache, EqualConfigsShareOneTableCountedOnce) {
  const int32_t tables = rotary::cache_tables();
  const int64_t bytes = rotary::cache_bytes();
  const rotary::Rope a(SmallConfig(12345.0)), b(SmallConfig(12345.0));
  EXPECT_EQ(rotary::cache_tables(), tables + 1);
  Applied(a, 10);
  EXPECT_EQ(a.table_bytes(), kChunkBytes);
  EXPECT_EQ(b.table_bytes(), kChunkBytes) << "b reads the table a built";
  EXPECT_EQ(rotary::cache_bytes(), bytes + kChunkBytes) << "counted once";
  // Same head_dim or not: the table depends on the rotated pairs only.
  const rotary::Rope wider(rotary::Config().head_dim(96).rotary_dim(64).base(12345.0).max_positions(1));
  EXPECT_EQ(rotary::cache_tables(), tables + 1);
  EXPECT_EQ(wider.table_bytes(), kChunkBytes);
}

TEST(TableCache, DifferentPlansDoNotShare) {
  const int32_t tables = rotary::cache_tables();
  const rotary::Rope a(SmallConfig(12345.0));
  const rotary::Rope base(SmallConfig(12346.0));
  const rotary::Rope pairing(SmallConfig(12345.0).pairing(rotary::Pairing::kInterleaved));
  const rotary::Rope mode(SmallConfig(12345.0).table_mode(rotary::TableMode::kCompact));
  const rotary::Rope scale(SmallConfig(12345.0).attention_factor(1.1));
  const rotary::Rope limit(SmallConfig(12345.0).position_limit(1 << 20));
  EXPECT_EQ(rotary::cache_tables(), tables + 6);
}

TEST(TableCache, TableLeavesWithItsLastRopeObject) {
  const int32_t tables = rotary::cache_tables();
  const int64_t bytes = rotary::cache_bytes();
  {
    const rotary::Rope a(SmallConfig(2222.0));
    {
      const rotary::Rope b(SmallConfig(2222.0));
      Applied(b, 3);
    }
    EXPECT_EQ(rotary::cache_tables(), tables + 1) << "a still holds it";
    EXPECT_EQ(a.table_bytes(), kChunkBytes);
  }
  EXPECT_EQ(rotary::cache_tables(), tables);
  EXPECT_EQ(rotary::cache_bytes(), bytes);
}

TEST(TableCache, BudgetEvictsTheLeastRecentlyUsedTable) {
  BudgetGuard guard;
  rotary::cache_trim();
  const rotary::Rope a(SmallConfig(3001.0)), b(SmallConfig(3002.0)), c(SmallConfig(3003.0));
  const std::vector<float> a_expected = Applied(a, 500), b_expected = Applied(b, 500);
  rotary::set_cache_budget(rotary::cache_bytes() + kChunkBytes - 1);  // room for a and b, not c as well
  Applied(a, 7);  // a is now the most recently used
  Applied(c, 7);  // over budget: b goes
  EXPECT_EQ(a.table_bytes(), kChunkBytes);
  EXPECT_EQ(b.table_bytes(), 0);
  EXPECT_EQ(c.table_bytes(), kChunkBytes);
  EXPECT_LE(rotary::cache_bytes(), rotary::cache_budget());
  // b rebuilds what it needs, bit for bit; a is the least recently used now.
  EXPECT_EQ(Applied(b, 500), b_expected);
  EXPECT_EQ(a.table_bytes(), 0);
  EXPECT_EQ(c.table_bytes(), kChunkBytes);
  EXPECT_EQ(Applied(a, 500), a_expected);
}

TEST(TableCache, LowerBudgetAndTrimFreeUnusedTables) {
  BudgetGuard guard;
  const rotary::Rope a(SmallConfig(4001.0)), b(SmallConfig(4002.0));
  const std::vector<float> expected = Applied(a, 100);
  Applied(b, 100);
  EXPECT_GE(rotary::cache_bytes(), 2 * kChunkBytes);
  rotary::set_cache_budget(rotary::cache_bytes() - 1);
  EXPECT_EQ(a.table_bytes() + b.table_bytes(), kChunkBytes) << "the least recently used one went";
  EXPECT_GE(rotary::cache_trim(), kChunkBytes);
  EXPECT_EQ(rotary::cache_bytes(), 0);
  EXPECT_EQ(rotary::cache_tables(), 2) << "the tables stay with their rope objects, without rows";
  EXPECT_EQ(Applied(a, 100), expected);
  EXPECT_THROW(rotary::set_cache_budget(-1), rotary::Error);
}

TEST(TableCache, ZeroBudgetStillServesEveryCall) {
  BudgetGuard guard;
  const rotary::Rope a(SmallConfig(5001.0));
  const std::vector<int64_t> positions = {0, 5000, 999999, 17};
  std::vector<std::vector<float>> expected;
  for (int64_t p : positions) expected.push_back(Applied(a, p));
  rotary::set_cache_budget(0);
  EXPECT_EQ(rotary::cache_bytes(), 0) << "nothing is being read: all evicted";
  for (size_t i = 0; i < positions.size(); ++i) EXPECT_EQ(Applied(a, positions[i]), expected[i]);
  // A table's own growth never evicts it (its call is reading it): the chunks
  // of these calls stay until the next budget change, trim, or another table's growth.
  EXPECT_EQ(rotary::cache_bytes(), 3 * kChunkBytes);
  rotary::cache_trim();
  EXPECT_EQ(rotary::cache_bytes(), 0);
}

// A pinned table (a call is reading it) is never released; once unpinned it is.
TEST(TableCache, TablesInUseSurviveEviction) {
  rotary::FrequencyPlan plan{{1.0, 0.5, 0.25}, 1.0};
  const std::shared_ptr<const rotary::CachedTable> table = rotary::TableCache::Instance().Acquire(
      rotary::TableSpec{plan, rotary::TableLayout::kPerPair, rotary::RowSource::kFull, 1 << 20, 0});
  const bool in_slot = table->Pin();
  EXPECT_TRUE(in_slot) << "the first pin of a thread takes its slot";
  table->EnsureRange(0, 5000);
  const int64_t bytes = table->bytes();
  EXPECT_GT(bytes, 0);
  EXPECT_EQ(table->TryRelease(), -1);
  rotary::cache_trim();
  EXPECT_EQ(table->bytes(), bytes) << "pinned: kept";

  // A nested pin (a call inside a call on this thread) counts too.
  const bool nested = table->Pin();
  EXPECT_FALSE(nested);
  table->Unpin(in_slot);
  EXPECT_EQ(table->TryRelease(), -1) << "still pinned by the nested call";
  // A pin from another thread.
  std::atomic<int> stage{0};
  std::thread other([&] {
    const bool other_slot = table->Pin();
    stage = 1;
    while (stage.load() != 2) std::this_thread::yield();
    table->Unpin(other_slot);
  });
  table->Unpin(nested);
  while (stage.load() != 1) std::this_thread::yield();
  EXPECT_EQ(table->TryRelease(), -1) << "pinned by another thread";
  stage = 2;
  other.join();

  EXPECT_GE(rotary::cache_trim(), bytes);
  EXPECT_EQ(table->bytes(), 0);
}

TEST(TableCache, DynamicPlanTablesAreInTheCacheToo) {
  const int32_t tables = rotary::cache_tables();
  const rotary::Rope rope(rotary::Config().head_dim(64).dynamic_ntk(2.0, 4096).max_positions(1));
  Applied(rope, 10);
  Applied(rope, 10000);  // a longer plan
  EXPECT_EQ(rope.table_count(), 2);
  EXPECT_EQ(rotary::cache_tables(), tables + 2);
  EXPECT_EQ(rotary::cache_bytes() >= rope.table_bytes(), true);
}

TEST(TableCache, BudgetSyntax) {
  using rotary::TableCache;
  EXPECT_EQ(rotary::ParseByteSize("0"), 0);
  EXPECT_EQ(rotary::ParseByteSize("1048576"), 1048576);
  EXPECT_EQ(rotary::ParseByteSize("4K"), 4096);
  EXPECT_EQ(rotary::ParseByteSize("4k"), 4096);
  EXPECT_EQ(rotary::ParseByteSize("256M"), int64_t{256} << 20);
  EXPECT_EQ(rotary::ParseByteSize("256MiB"), int64_t{256} << 20);
  EXPECT_EQ(rotary::ParseByteSize("3MB"), int64_t{3} << 20);
  EXPECT_EQ(rotary::ParseByteSize("2G"), int64_t{2} << 30);
  EXPECT_EQ(rotary::ParseByteSize("1T"), int64_t{1} << 40);
  EXPECT_EQ(rotary::ParseByteSize("100B"), 100);
  for (const char* bad : {"", "G", "-5", "1.5G", "12X", "12 M", " 12", "9223372036854775808",
                          "99999999999T", "1GG", "0x10"}) {
    EXPECT_EQ(rotary::ParseByteSize(bad), -1) << bad;
  }
  EXPECT_EQ(rotary::ParseByteSize(nullptr), -1);
}

TEST(TableCache, CompactShiftIsAboutTheSquareRoot) {
  EXPECT_EQ(rotary::CompactShift(1), 6);  // at least a whole build step (64 rows)
  EXPECT_EQ(rotary::CompactShift(4096), 6);
  EXPECT_EQ(rotary::CompactShift(4097), 7);
  EXPECT_EQ(rotary::CompactShift(131072), 9);
  EXPECT_EQ(rotary::CompactShift(1000000), 10);
  EXPECT_EQ(rotary::CompactShift(int64_t{1} << 31), 16);
}

// Threads apply with several configs (full and compact, both pairings) while
// the budget is a fraction of one table, so every growth evicts the others,
// and another thread trims and changes the budget; every result must equal the
// one computed alone. Under ASan this checks that no call reads freed rows,
// under TSan that the pin/release protocol has no race.
TEST(CacheStress, ConcurrentApplyWhileEvictingUnderASmallBudget) {
#ifdef ROTARY_TESTS_EMULATED
  constexpr int kCallsPerThread = 10;
#else
  constexpr int kCallsPerThread = 60;
#endif
  constexpr int kThreads = 4, kConfigs = 4;
  BudgetGuard guard;
  auto config_of = [](int c) {
    rotary::Config config = rotary::Config().head_dim(64).base(6000.0 + c).max_positions(1);
    if (c % 2) config.pairing(rotary::Pairing::kInterleaved);
    if (c >= 2) config.table_mode(rotary::TableMode::kCompact);
    return config;
  };
  struct Call {
    int config;
    std::vector<int64_t> positions;
    std::vector<float> input, expected;
  };
  std::mt19937_64 rng(9);
  std::vector<std::vector<Call>> work(kThreads);
  for (auto& calls : work) {
    for (int i = 0; i < kCallsPerThread; ++i) {
      Call call;
      call.config = static_cast<int>(rng() % kConfigs);
      for (int s = 0; s < 3; ++s) call.positions.push_back(static_cast<int64_t>(rng() % 1000000));
      call.input = Input(3 * 2, static_cast<uint32_t>(rng()));
      calls.push_back(std::move(call));
    }
  }
  for (auto& calls : work) {
    for (Call& call : calls) {
      const rotary::Rope alone(config_of(call.config));
      call.expected = call.input;
      alone.apply(rotary::Tensor(call.expected.data(), 1, 3, 2, 64), call.positions);
    }
  }
  rotary::cache_trim();

  std::vector<rotary::Rope> ropes;
  for (int c = 0; c < kConfigs; ++c) ropes.emplace_back(config_of(c));
  rotary::set_cache_budget(kChunkBytes / 4);
  std::atomic<bool> done{false};
  int64_t trimmed = 0;
  std::thread evictor([&] {
    for (int i = 0; !done.load(); ++i) {
      if (i % 2) {
        trimmed += rotary::cache_trim();
      } else {
        rotary::set_cache_budget(i % 4 ? 0 : kChunkBytes / 4);
      }
      std::this_thread::yield();
    }
  });
  std::vector<int> mismatches(kThreads, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (const Call& call : work[t]) {
        std::vector<float> x = call.input;
        ropes[call.config].apply(rotary::Tensor(x.data(), 1, 3, 2, 64), call.positions);
        if (std::memcmp(x.data(), call.expected.data(), x.size() * sizeof(float)) != 0) ++mismatches[t];
      }
    });
  }
  for (std::thread& th : threads) th.join();
  done.store(true);
  evictor.join();
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(mismatches[t], 0) << "thread " << t;
  EXPECT_GT(trimmed, 0) << "the trims freed nothing: the test did not evict while others applied";
  rotary::cache_trim();
  EXPECT_EQ(rotary::cache_bytes(), 0);
}

}  // namespace
