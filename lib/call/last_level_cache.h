// The size of the last-level cache one core's data can occupy: calls whose
// bytes exceed it stream from DRAM, and the kernels then visit memory in the
// order that streams best (RowJob::streaming). Picking the wrong side costs
// a large part of the call's speed on AVX2 either way (docs/performance.md),
// so the size must be the cache's own, not a total for the whole machine.
#ifndef ROTARY_LIB_CALL_LAST_LEVEL_CACHE_H_
#define ROTARY_LIB_CALL_LAST_LEVEL_CACHE_H_

#include <cstdint>

namespace rotary {

struct LastLevelCache {
  int64_t bytes;
  const char* source;  // where `bytes` came from, for reports (static text)
};

// What each source reported, in bytes; 0 or less when it reported nothing.
struct CacheSizeReports {
  int64_t environment = 0;  // ROTARY_LAST_LEVEL_CACHE
  int64_t sysfs = 0;        // Linux: the largest cache instance of CPU 0
  int64_t cpuid = 0;        // x86 deterministic cache parameters: one instance
  int64_t sysconf = 0;      // glibc: on x86 from CPUID leaf 2 / 0x80000006
};

// Reports of sizes over this, from a source that does not describe one cache
// instance (sysconf), are taken to be totals: 2-vCPU cloud VMs on AMD EPYC
// were seen to report the host's 508 MiB of L3 there, and no sysfs or
// deterministic leaf to say that one core reaches 32 MiB of it.
constexpr int64_t kLargestUnverifiedCacheBytes = int64_t{32} << 20;

// Used when no source reports anything.
constexpr int64_t kUnknownCacheBytes = int64_t{8} << 20;

// The first source that reported a size, in the order of the struct: the
// environment, then the per-instance sources, then sysconf capped at
// kLargestUnverifiedCacheBytes.
LastLevelCache ChooseLastLevelCache(const CacheSizeReports& reports);

// ChooseLastLevelCache of this machine's reports, read once per process.
const LastLevelCache& DetectedLastLevelCache();

inline int64_t LastLevelCacheBytes() { return DetectedLastLevelCache().bytes; }

}  // namespace rotary

#endif  // ROTARY_LIB_CALL_LAST_LEVEL_CACHE_H_
