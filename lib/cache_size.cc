#include "lib/cache_size.h"

#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <string>

namespace rotary {
namespace {

constexpr int64_t kUnknownCacheBytes = int64_t{8} << 20;

// "32768K", "1M", "512" (bytes) as sysfs writes cache sizes; 0 if unreadable.
int64_t ParseCacheSize(const std::string& text) {
  size_t used = 0;
  int64_t value = 0;
  try {
    value = std::stoll(text, &used);
  } catch (...) {
    return 0;
  }
  const std::string unit = text.substr(used, 1);
  if (unit == "K") return value << 10;
  if (unit == "M") return value << 20;
  if (unit == "G") return value << 30;
  return value;
}

int64_t DetectLastLevelCacheBytes() {
  int64_t largest = 0;
  for (int index = 0; index < 16; ++index) {
    std::ifstream file("/sys/devices/system/cpu/cpu0/cache/index" + std::to_string(index) + "/size");
    std::string text;
    if (!(file >> text)) break;
    largest = std::max(largest, ParseCacheSize(text));
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
