#include "lib/call/qk_norm.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "lib/config/sized_struct.h"
#include "lib/error.h"

namespace rotary {
namespace {

// A copy of one made once (rotary_qk_norm_init runs per call of the C++ API's norm path).
rotary_qk_norm DefaultQkNorm() {
  static const rotary_qk_norm kDefaults = [] {
    rotary_qk_norm norm{};
    norm.struct_size = sizeof(rotary_qk_norm);
    norm.eps = 1e-6;
    return norm;
  }();
  return kDefaults;
}

// The first release's struct: everything up to whole_token.
constexpr size_t kFirstQkNormSize = offsetof(rotary_qk_norm, whole_token) + sizeof(int32_t);

}  // namespace

void InitQkNorm(rotary_qk_norm* norm, size_t size) { InitSized(norm, size, DefaultQkNorm()); }

NormArgs ReadQkNorm(const rotary_qk_norm* caller) {
  rotary_qk_norm norm;
  ReadSized(caller, &norm, DefaultQkNorm, kFirstQkNormSize, "norm", "rotary_qk_norm_init");
  NormArgs args;
  args.weight[0] = norm.q_weight;
  args.weight[1] = norm.k_weight;
  args.eps = static_cast<float>(norm.eps);
  args.offset = static_cast<float>(norm.weight_offset);
  if (!std::isfinite(norm.eps) || !(args.eps > 0.0f)) {
    Fail(Status::kInvalidArgument, "norm.eps = ", norm.eps, " must be finite and > 0 as a float ",
         "(a head of zeros would divide by zero)");
  }
  if (!std::isfinite(args.offset)) {
    Fail(Status::kInvalidArgument, "norm.weight_offset = ", norm.weight_offset, " is not a finite float");
  }
  if (norm.whole_token != 0 && norm.whole_token != 1) {
    Fail(Status::kInvalidArgument, "norm.whole_token = ", norm.whole_token, " must be 0 or 1");
  }
  args.whole_token = norm.whole_token == 1;
  return args;
}

void AttachNorm(const NormArgs& norm, CallOperands& call, int32_t head_dim) {
  static const char* const kNames[2] = {"norm.q_weight", "norm.k_weight"};
  // q and k only: with a KV-cache write, v (operand 2) is copied as it is.
  for (int i = 0; i < std::min(call.count, 2); ++i) {
    Operand& op = call.operands[i];
    const float* weight = norm.weight[i];
    if (weight != nullptr) {
      const int64_t count = norm.whole_token ? op.heads * head_dim : head_dim;
      // An exponent of all ones (Inf, NaN), found by a loop the compiler
      // vectorizes: a decode call checks its weights every time.
      uint32_t non_finite = 0;
      for (int64_t d = 0; d < count; ++d) {
        uint32_t bits;
        std::memcpy(&bits, &weight[d], sizeof(bits));
        non_finite |= static_cast<uint32_t>((bits & 0x7f800000u) == 0x7f800000u);
      }
      for (int64_t d = 0; non_finite != 0 && d < count; ++d) {
        if (!std::isfinite(weight[d])) {
          Fail(Status::kInvalidArgument, kNames[i], "[", d, "] = ", weight[d], " is not finite");
        }
      }
      // The normalized components past rotary_dim are written, even in place.
      op.write_rest = true;
    }
    op.norm_weight = weight;
    op.norm_eps = norm.eps;
    op.norm_offset = norm.offset;
    op.norm_whole_token = norm.whole_token;
  }
}

}  // namespace rotary
