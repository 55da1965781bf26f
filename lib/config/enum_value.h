// The integer a caller stored in a C enum field or argument. C lets callers put
// any int there; in C++, reading an enum object whose value lies outside the
// enum's range is undefined behaviour (UBSan's -fsanitize=enum flags it), so
// validation reads the bits, and the enum is used only once it is known valid.
#ifndef ROTARY_LIB_CONFIG_ENUM_VALUE_H_
#define ROTARY_LIB_CONFIG_ENUM_VALUE_H_

#include <cstdint>
#include <cstring>
#include <type_traits>

namespace rotary {

template <typename Enum>
int32_t EnumValue(const Enum& value) {
  static_assert(std::is_enum_v<Enum> && sizeof(Enum) == sizeof(int32_t), "a C enum");
  int32_t bits;
  std::memcpy(&bits, &value, sizeof(bits));
  return bits;
}

}  // namespace rotary

#endif  // ROTARY_LIB_CONFIG_ENUM_VALUE_H_
