// How rotary reports failure inside the library: throw rotary::Error (the C++
// API's exception, carrying a status); the C ABI turns it into a status code
// and this thread's last-error text.
#ifndef ROTARY_LIB_ERROR_H_
#define ROTARY_LIB_ERROR_H_

#include <sstream>
#include <string>

#include "rotary/rotary.hpp"

namespace rotary {

// Throws Error(status, concatenation of parts).
template <typename... Parts>
[[noreturn]] void Fail(Status status, const Parts&... parts) {
  std::ostringstream message;
  (message << ... << parts);
  throw Error(status, message.str());
}

void SetLastError(const std::string& message);
const char* LastError();

}  // namespace rotary

#endif  // ROTARY_LIB_ERROR_H_
