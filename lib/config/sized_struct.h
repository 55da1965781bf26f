// Structs of the C ABI that can grow (rotary_config, rotary_qk_norm): their
// first field, struct_size, is the size of the struct in the caller's header,
// set by the header's inline init function. Fields are only ever appended.
#ifndef ROTARY_LIB_CONFIG_SIZED_STRUCT_H_
#define ROTARY_LIB_CONFIG_SIZED_STRUCT_H_

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "lib/error.h"

namespace rotary {

// Sets the first `size` bytes of *out: the fields that fit their values in
// `defaults` (an older header's struct is a prefix of this one), a newer
// header's extra fields 0, and struct_size = size.
template <class T>
void InitSized(T* out, size_t size, T defaults) {
  if (out == nullptr || size < sizeof(uint32_t)) return;
  defaults.struct_size = static_cast<uint32_t>(size < UINT32_MAX ? size : UINT32_MAX);
  if (size == sizeof(T)) {  // this header's struct: a copy of constant size (see ReadSized)
    std::memcpy(out, &defaults, sizeof(T));
    return;
  }
  std::memset(out, 0, size);
  std::memcpy(out, &defaults, size < sizeof(T) ? size : sizeof(T));
}

// The caller's struct as this library's, into *out: the fields it has,
// defaults() for those its (older) header lacks. Throws Error if caller is
// NULL, its struct_size is below min_size (the first release's struct) or was
// not set by `init_name`, or a newer header's fields hold anything but 0.
// A caller built with this header (the usual case, and every call of
// rotary_apply_with) costs one copy of constant size, which the compiler does
// with vector moves: no zero-filled defaults, no call to memcpy, whose string
// stores and fills (rep movs / rep stos) take longer to start than a decode
// call spends on its arguments.
template <class T, class Defaults>
void ReadSized(const T* caller, T* out, Defaults defaults, size_t min_size, const char* name,
               const char* init_name) {
  if (caller == nullptr) Fail(Status::kInvalidArgument, name, " is NULL");
  uint32_t size;
  std::memcpy(&size, caller, sizeof(size));
  if (size < min_size || size > (1u << 20)) {
    Fail(Status::kInvalidArgument, name, ".struct_size = ", size, " was not set by ", init_name, " (",
         size == 0 ? "an uninitialized or zero-filled struct" : "an impossible size", ")");
  }
  if (size == sizeof(T)) {
    std::memcpy(out, caller, sizeof(T));
    return;
  }
  // A newer header's fields this library does not know must be at their default, 0.
  const unsigned char* bytes = reinterpret_cast<const unsigned char*>(caller);
  for (size_t i = sizeof(T); i < size; ++i) {
    if (bytes[i] != 0) {
      Fail(Status::kUnsupported, name, " byte ", i, " (of ", size, ") is set: a field of a newer rotary.h than ",
           "this library (", sizeof(T), " bytes) knows");
    }
  }
  *out = defaults();
  std::memcpy(out, caller, size < sizeof(T) ? size : sizeof(T));
  out->struct_size = sizeof(T);
}

}  // namespace rotary

#endif  // ROTARY_LIB_CONFIG_SIZED_STRUCT_H_
