#include "lib/call/last_level_cache.h"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <string>

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#define ROTARY_HAS_CPUID 1
#else
#define ROTARY_HAS_CPUID 0
#endif

#include "lib/byte_size.h"

namespace rotary {
namespace {

int64_t SysfsBytes() {
  int64_t largest = 0;
  for (int index = 0; index < 16; ++index) {
    std::ifstream file("/sys/devices/system/cpu/cpu0/cache/index" + std::to_string(index) + "/size");
    std::string text;
    if (!(file >> text)) break;
    largest = std::max(largest, ParseByteSize(text.c_str()));  // "32768K"; -1 if unreadable
  }
  return largest;
}

#if ROTARY_HAS_CPUID
// The largest data or unified cache that a deterministic cache parameters
// leaf (Intel: 4, AMD: 0x8000001D) lists; each subleaf is one cache instance.
int64_t LargestCacheOfLeaf(unsigned leaf) {
  const unsigned family = leaf & 0x80000000u;
  // unsigned in GCC's cpuid.h, int in clang's
  if (static_cast<unsigned>(__get_cpuid_max(family, nullptr)) < leaf) return 0;
  int64_t largest = 0;
  for (unsigned subleaf = 0; subleaf < 16; ++subleaf) {
    unsigned a = 0, b = 0, c = 0, d = 0;
    __cpuid_count(leaf, subleaf, a, b, c, d);
    const unsigned type = a & 31;  // 0: no more caches; 1 data, 2 instruction, 3 unified
    if (type == 0) break;
    if (type == 2) continue;
    const int64_t ways = (b >> 22) + 1, partitions = ((b >> 12) & 0x3ff) + 1, line = (b & 0xfff) + 1;
    largest = std::max(largest, ways * partitions * line * (int64_t{c} + 1));
  }
  return largest;
}
#endif

int64_t CpuidBytes() {
#if ROTARY_HAS_CPUID
  return std::max(LargestCacheOfLeaf(4), LargestCacheOfLeaf(0x8000001Du));
#else
  return 0;
#endif
}

int64_t SysconfBytes() {
#if defined(_SC_LEVEL3_CACHE_SIZE) && defined(_SC_LEVEL2_CACHE_SIZE)
  return std::max<int64_t>(sysconf(_SC_LEVEL3_CACHE_SIZE), sysconf(_SC_LEVEL2_CACHE_SIZE));
#else
  return 0;
#endif
}

CacheSizeReports ReportsOfThisMachine() {
  CacheSizeReports reports;
  const char* text = std::getenv("ROTARY_LAST_LEVEL_CACHE");
  reports.environment = text == nullptr ? 0 : ParseByteSize(text);  // not a size: ignored
  reports.sysfs = SysfsBytes();
  reports.cpuid = CpuidBytes();
  reports.sysconf = SysconfBytes();
  return reports;
}

}  // namespace

LastLevelCache ChooseLastLevelCache(const CacheSizeReports& reports) {
  if (reports.environment > 0) return {reports.environment, "ROTARY_LAST_LEVEL_CACHE"};
  if (reports.sysfs > 0) return {reports.sysfs, "sysfs"};
  if (reports.cpuid > 0) return {reports.cpuid, "cpuid"};
  if (reports.sysconf > kLargestUnverifiedCacheBytes) {
    return {kLargestUnverifiedCacheBytes, "sysconf reports a total: capped"};
  }
  if (reports.sysconf > 0) return {reports.sysconf, "sysconf"};
  return {kUnknownCacheBytes, "unknown (default)"};
}

const LastLevelCache& DetectedLastLevelCache() {
  static const LastLevelCache detected = ChooseLastLevelCache(ReportsOfThisMachine());
  return detected;
}

}  // namespace rotary
