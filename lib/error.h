// How rotary reports failure inside the library: throw rotary::Error (the C++
// API's exception, carrying a status); the C ABI turns it into a status code
// and this thread's last-error text.
#ifndef ROTARY_LIB_ERROR_H_
#define ROTARY_LIB_ERROR_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include "rotary/rotary.hpp"

namespace rotary {
namespace error_detail {

// The message is built by these out-of-line appends, one call per part, so
// that each distinct list of Fail's argument types costs a few calls at its
// call site instead of a function of its own around an ostringstream.
// Numbers read as std::ostream prints them (floating point as "%g").
void AppendText(std::string& message, std::string_view text);
void AppendSigned(std::string& message, int64_t value);
void AppendUnsigned(std::string& message, uint64_t value);
void AppendFloating(std::string& message, double value);
[[noreturn]] void Throw(Status status, std::string&& message);

template <typename Part>
void AppendPart(std::string& message, const Part& part) {
  if constexpr (std::is_same_v<Part, char>) {  // a character, as std::ostream prints it
    AppendText(message, std::string_view(&part, 1));
  } else if constexpr (std::is_integral_v<Part>) {  // bool too: 1 or 0
    if constexpr (std::is_signed_v<Part>) {
      AppendSigned(message, static_cast<int64_t>(part));
    } else {
      AppendUnsigned(message, static_cast<uint64_t>(part));
    }
  } else if constexpr (std::is_floating_point_v<Part>) {
    AppendFloating(message, static_cast<double>(part));
  } else {
    AppendText(message, std::string_view(part));
  }
}

}  // namespace error_detail

// Throws Error(status, concatenation of parts): text, integers and floating
// point numbers.
template <typename... Parts>
[[noreturn]] void Fail(Status status, const Parts&... parts) {
  std::string message;
  (error_detail::AppendPart(message, parts), ...);
  error_detail::Throw(status, std::move(message));
}

void SetLastError(const std::string& message);
const char* LastError();

}  // namespace rotary

#endif  // ROTARY_LIB_ERROR_H_
