#include "lib/error.h"

#include <cinttypes>
#include <cstdio>
#include <utility>

namespace rotary {
namespace {
thread_local std::string t_last_error;
}  // namespace

namespace error_detail {

void AppendText(std::string& message, std::string_view text) { message.append(text.data(), text.size()); }

void AppendSigned(std::string& message, int64_t value) {
  char digits[24];
  const int n = std::snprintf(digits, sizeof digits, "%" PRId64, value);
  message.append(digits, static_cast<size_t>(n));
}

void AppendUnsigned(std::string& message, uint64_t value) {
  char digits[24];
  const int n = std::snprintf(digits, sizeof digits, "%" PRIu64, value);
  message.append(digits, static_cast<size_t>(n));
}

void AppendFloating(std::string& message, double value) {
  char digits[32];  // "%g": at most 6 significant digits, sign, point and exponent
  const int n = std::snprintf(digits, sizeof digits, "%g", value);
  message.append(digits, static_cast<size_t>(n));
}

void Throw(Status status, std::string&& message) { throw Error(status, std::move(message)); }

}  // namespace error_detail

void SetLastError(const std::string& message) { t_last_error = message; }
const char* LastError() { return t_last_error.c_str(); }

}  // namespace rotary
