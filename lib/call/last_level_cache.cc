#include "lib/call/last_level_cache.h"

#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <string>

#include "lib/byte_size.h"

namespace rotary {
namespace {

constexpr int64_t kUnknownCacheBytes = int64_t{8} << 20;

int64_t DetectLastLevelCacheBytes() {
  int64_t largest = 0;
  for (int index = 0; index < 16; ++index) {
    std::ifstream file("/sys/devices/system/cpu/cpu0/cache/index" + std::to_string(index) + "/size");
    std::string text;
    if (!(file >> text)) break;
    largest = std::max(largest, ParseByteSize(text.c_str()));  // "32768K"; -1 if unreadable
  }
#if defined(_SC_LEVEL3_CACHE_SIZE) && defined(_SC_LEVEL2_CACHE_SIZE)
  if (largest == 0) largest = std::max<int64_t>(sysconf(_SC_LEVEL3_CACHE_SIZE), sysconf(_SC_LEVEL2_CACHE_SIZE));
#endif
  return largest > 0 ? largest : kUnknownCacheBytes;
}

}  // namespace

int64_t LastLevelCacheBytes() {
  static const int64_t bytes = DetectLastLevelCacheBytes();
  return bytes;
}

}  // namespace rotary
