// Which reported cache size decides a call's head order (RowJob::streaming).
#include "lib/call/last_level_cache.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>

namespace {

using rotary::CacheSizeReports;
using rotary::ChooseLastLevelCache;

constexpr int64_t kMiB = int64_t{1} << 20;

TEST(LastLevelCache, PerInstanceSourcesAreTakenAsTheyAre) {
  CacheSizeReports r;
  r.sysfs = 96 * kMiB;  // an X3D CCD's L3: large, but one instance
  r.cpuid = 32 * kMiB;
  r.sysconf = 508 * kMiB;
  EXPECT_EQ(ChooseLastLevelCache(r).bytes, 96 * kMiB);
  EXPECT_EQ(std::string(ChooseLastLevelCache(r).source), "sysfs");
  r.sysfs = 0;
  EXPECT_EQ(ChooseLastLevelCache(r).bytes, 32 * kMiB);
  EXPECT_EQ(std::string(ChooseLastLevelCache(r).source), "cpuid");
  r.sysfs = -1;  // unreadable
  EXPECT_EQ(ChooseLastLevelCache(r).bytes, 32 * kMiB);
}

// A 2-vCPU VM on AMD EPYC reported the host's 508 MiB of L3 through sysconf
// alone: taken as is, a 64 MiB call counted as cache-resident and ran in the
// head-group order, the one that streams worst from DRAM.
TEST(LastLevelCache, AHostWideTotalFromSysconfIsCapped) {
  CacheSizeReports r;
  r.sysconf = 508 * kMiB;
  EXPECT_EQ(ChooseLastLevelCache(r).bytes, rotary::kLargestUnverifiedCacheBytes);
  EXPECT_LT(ChooseLastLevelCache(r).bytes, 64 * kMiB) << "prefill4k in f32 must count as streaming";
  r.sysconf = 16 * kMiB;
  EXPECT_EQ(ChooseLastLevelCache(r).bytes, 16 * kMiB);
  EXPECT_EQ(std::string(ChooseLastLevelCache(r).source), "sysconf");
}

TEST(LastLevelCache, TheEnvironmentOverridesAndNothingFallsBackToTheDefault) {
  CacheSizeReports r;
  EXPECT_EQ(ChooseLastLevelCache(r).bytes, rotary::kUnknownCacheBytes);
  r.sysfs = 32 * kMiB;
  r.environment = 256 * kMiB;
  EXPECT_EQ(ChooseLastLevelCache(r).bytes, 256 * kMiB);
  EXPECT_EQ(std::string(ChooseLastLevelCache(r).source), "ROTARY_LAST_LEVEL_CACHE");
  r.environment = -1;  // not a size: ignored
  EXPECT_EQ(ChooseLastLevelCache(r).bytes, 32 * kMiB);
}

TEST(LastLevelCache, ThisMachineReportsAPlausibleSize) {
  const rotary::LastLevelCache& llc = rotary::DetectedLastLevelCache();
  EXPECT_GE(llc.bytes, 64 * 1024) << llc.source;
  EXPECT_LE(llc.bytes, int64_t{4} << 30) << llc.source;
  EXPECT_EQ(rotary::LastLevelCacheBytes(), llc.bytes);
}

}  // namespace
