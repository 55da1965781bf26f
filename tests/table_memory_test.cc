// Table memory: blocks below and above a huge page are 64-byte aligned and
// writable over their whole length, and move like unique owners; a long table
// built in one block (huge pages) holds the same rows, bit for bit, as one
// grown a chunk at a time. Zeroed blocks (chunk directories) are zero and,
// where mapped, cost resident memory only for the pages written.
#include <cstdint>
#include <cstring>
#include <fstream>
#include <utility>
#include <vector>

#include <gtest/gtest.h>
#include <unistd.h>

#include "lib/plan/frequency_plan.h"
#include "lib/tables/rope_table.h"
#include "lib/tables/table_memory.h"
#include "rotary/rotary.h"

namespace {

using rotary::RopeTable;
using rotary::TableLayout;
using rotary::TableMemory;

TEST(TableMemory, BlocksAreAlignedAndWritable) {
  for (const size_t bytes : {size_t{64}, size_t{4096} + 4, size_t{1} << 20, (size_t{5} << 20) + 4096 + 12}) {
    TableMemory block = TableMemory::Allocate(bytes);
    ASSERT_NE(block.data(), nullptr) << bytes;
    EXPECT_EQ(block.bytes(), bytes);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(block.data()) % 64, 0u) << bytes;
    std::memset(block.data(), 0x5a, bytes);
    EXPECT_EQ(reinterpret_cast<unsigned char*>(block.data())[bytes - 1], 0x5a);
  }
}

// Resident bytes of this process (Linux), or -1.
int64_t ResidentBytes() {
  std::ifstream statm("/proc/self/statm");
  int64_t size = 0, resident = -1;
  if (!(statm >> size >> resident)) return -1;
  return resident * static_cast<int64_t>(sysconf(_SC_PAGESIZE));
}

TEST(TableMemory, ZeroedBlocksAreZeroAndLargeOnesCostOnlyWrittenPages) {
  for (const size_t bytes : {size_t{64}, size_t{4096} + 8, size_t{1} << 20, size_t{16} << 20}) {
    TableMemory block = TableMemory::AllocateZeroed(bytes);
    ASSERT_NE(block.raw(), nullptr) << bytes;
    EXPECT_EQ(reinterpret_cast<uintptr_t>(block.raw()) % 64, 0u) << bytes;
    const unsigned char* p = static_cast<const unsigned char*>(block.raw());
    EXPECT_EQ(p[0], 0) << bytes;
    EXPECT_EQ(p[bytes / 2], 0) << bytes;
    EXPECT_EQ(p[bytes - 1], 0) << bytes;
  }
  // A 2^31-position table's directory: 16 MiB, of which a table writes a few entries.
  const int64_t before = ResidentBytes();
  if (before < 0) GTEST_SKIP() << "no /proc/self/statm";
  std::vector<TableMemory> directories;
  for (int i = 0; i < 8; ++i) {
    directories.push_back(TableMemory::AllocateZeroed(size_t{16} << 20));
    ASSERT_NE(directories.back().raw(), nullptr);
    static_cast<char*>(directories.back().raw())[i * 4096] = 1;
  }
  EXPECT_LT(ResidentBytes() - before, int64_t{8} << 20) << "8 x 16 MiB directories should stay mostly virtual";
}

TEST(TableMemory, MovesOwnership) {
  TableMemory a = TableMemory::Allocate(size_t{3} << 20);
  float* const data = a.data();
  ASSERT_NE(data, nullptr);
  TableMemory b = std::move(a);
  EXPECT_EQ(a.data(), nullptr);
  EXPECT_EQ(a.bytes(), 0u);
  EXPECT_EQ(b.data(), data);
  TableMemory c = TableMemory::Allocate(64);
  c = std::move(b);  // frees c's block, takes b's
  EXPECT_EQ(c.data(), data);
  EXPECT_EQ(b.data(), nullptr);
}

// 16384 rows of head_dim 128 in both layouts (8 and 16 MiB, one block) against
// the same rows built chunk by chunk (1024 rows, 512 KiB or 1 MiB blocks).
TEST(TableMemory, OneBlockTableEqualsChunkByChunkTable) {
  constexpr int64_t kPositions = 16384;
  rotary_config config;
  rotary_config_init(&config);
  config.head_dim = 128;
  for (const TableLayout layout : {TableLayout::kPerPair, TableLayout::kPerComponent}) {
    RopeTable whole(rotary::MakeFrequencyPlan(config), layout, kPositions);
    RopeTable grown(rotary::MakeFrequencyPlan(config), layout, kPositions);
    ASSERT_TRUE(whole.EnsureRange(0, kPositions - 1));
    for (int64_t p = 0; p < kPositions; p += RopeTable::kChunkRows) ASSERT_TRUE(grown.EnsureRange(p, p));
    EXPECT_EQ(whole.bytes(), grown.bytes());
    const rotary::TableView a = whole.View();
    const rotary::TableView b = grown.View();
    for (int64_t p = 0; p < kPositions; ++p) {
      ASSERT_EQ(std::memcmp(a.Row(p), b.Row(p), a.row_floats * sizeof(float)), 0) << "position " << p;
    }
    EXPECT_EQ(whole.Release(), grown.Release());
  }
}

}  // namespace
