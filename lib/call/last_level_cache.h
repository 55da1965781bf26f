// The size of this CPU's last-level cache: calls whose bytes exceed it stream
// from DRAM, and the kernels visit memory in the order that streams best.
#ifndef ROTARY_LIB_CALL_LAST_LEVEL_CACHE_H_
#define ROTARY_LIB_CALL_LAST_LEVEL_CACHE_H_

#include <cstdint>

namespace rotary {

// Bytes of the largest cache of CPU 0 (from Linux sysfs, else glibc's sysconf),
// read once; 8 MiB when neither tells.
int64_t LastLevelCacheBytes();

}  // namespace rotary

#endif  // ROTARY_LIB_CALL_LAST_LEVEL_CACHE_H_
