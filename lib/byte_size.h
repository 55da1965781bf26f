// Byte counts as people and Linux write them: "4096", "4K", "256MiB", "3MB",
// "2g" (binary units: K = 1024). One parser for ROTARY_CACHE_BUDGET and for
// the cache sizes sysfs reports ("32768K").
#ifndef ROTARY_LIB_BYTE_SIZE_H_
#define ROTARY_LIB_BYTE_SIZE_H_

#include <cstdint>

namespace rotary {

// Digits, then optionally K, M, G or T (either case, optionally followed by i),
// then optionally B, and nothing else. Returns -1 for anything else (NULL, a
// sign, spaces, an overflow of int64_t).
int64_t ParseByteSize(const char* text);

}  // namespace rotary

#endif  // ROTARY_LIB_BYTE_SIZE_H_
