// What rotary-info reports, through the C ABI: the version, why the active
// target is active, and how many tables a rope object holds.
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "rotary/rotary.h"
#include "rotary/rotary.hpp"

namespace {

TEST(InfoTest, VersionIsTheProjectVersion) {
  EXPECT_STREQ(rotary_version(), ROTARY_EXPECTED_VERSION);
  EXPECT_EQ(rotary::version(), ROTARY_EXPECTED_VERSION);
}

// Each gtest case is its own process (gtest_discover_tests), and ctest runs
// these without ROTARY_TARGET, so the process starts on the default.
TEST(InfoTest, TargetSourceFollowsSetTarget) {
  EXPECT_STREQ(rotary_target_source(), "default");
  const std::string last = rotary_target_name(rotary_target_count() - 1);  // the baseline: runs everywhere
  ASSERT_EQ(rotary_set_target(last.c_str()), ROTARY_OK);
  EXPECT_STREQ(rotary_target_source(), "rotary_set_target");
  EXPECT_EQ(rotary::target_source(), "rotary_set_target");
  // A failed call changes nothing, the source included.
  EXPECT_EQ(rotary_set_target("NOT_A_TARGET"), ROTARY_UNSUPPORTED);
  EXPECT_STREQ(rotary_target_source(), "rotary_set_target");
  EXPECT_EQ(rotary_active_target(), last);
  // "auto" is the default again.
  ASSERT_EQ(rotary_set_target("auto"), ROTARY_OK);
  EXPECT_STREQ(rotary_target_source(), "default");
}

TEST(InfoTest, TableCountAndBytes) {
  EXPECT_EQ(rotary_table_count(nullptr), 0);

  std::vector<float> x(2 * 64, 1.0f);
  const rotary::Tensor one_row(x.data(), 1, 1, 1, 64);

  const rotary::Rope plain(rotary::Config().head_dim(64).max_positions(16));
  EXPECT_EQ(plain.table_count(), 1);
  EXPECT_EQ(plain.table_bytes(), 0);  // built on the first apply
  plain.apply(one_row, 0);
  const int64_t warm = plain.table_bytes();
  EXPECT_GT(warm, 0);
  plain.apply(one_row, 1000000);  // a far position: more rows of the same table
  EXPECT_EQ(plain.table_count(), 1);
  EXPECT_GT(plain.table_bytes(), warm);
  plain.apply_inverse(one_row, 0);  // the inverse reads a table of its own: the negated angles
  EXPECT_EQ(plain.table_count(), 2);

  // Dynamic NTK: a call past L0 has a plan (and table) of its own.
  const rotary::Rope dynamic(rotary::Config().head_dim(64).dynamic_ntk(2, 256));
  dynamic.apply(one_row, 10);
  EXPECT_EQ(dynamic.table_count(), 1);
  dynamic.apply(one_row, 1000);
  EXPECT_EQ(dynamic.table_count(), 2);

  // YaRN (m != 1): apply_inverse has its own table, of the negated angles scaled by 1/m.
  const rotary::Rope yarn(rotary::Config().head_dim(64).yarn(4, 256));
  yarn.apply(one_row, 0);
  yarn.apply_inverse(one_row, 0);
  EXPECT_EQ(yarn.table_count(), 2);
}

}  // namespace
