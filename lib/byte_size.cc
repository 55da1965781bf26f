#include "lib/byte_size.h"

#include <cstdint>

namespace rotary {

int64_t ParseByteSize(const char* text) {
  if (text == nullptr || *text < '0' || *text > '9') return -1;
  int64_t value = 0;
  const char* c = text;
  for (; *c >= '0' && *c <= '9'; ++c) {
    if (__builtin_mul_overflow(value, 10, &value) || __builtin_add_overflow(value, *c - '0', &value)) return -1;
  }
  int shift = 0;
  switch (*c) {
    case 'k': case 'K': shift = 10; ++c; break;
    case 'm': case 'M': shift = 20; ++c; break;
    case 'g': case 'G': shift = 30; ++c; break;
    case 't': case 'T': shift = 40; ++c; break;
    default: break;
  }
  if (shift != 0 && (*c == 'i' || *c == 'I')) ++c;  // KiB, MiB, ...
  if (*c == 'b' || *c == 'B') ++c;
  if (*c != '\0') return -1;
  if (value > (INT64_MAX >> shift)) return -1;
  return value << shift;
}

}  // namespace rotary
