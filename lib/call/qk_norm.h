// qk-norm of a call (rotary_qk_norm, docs/math.md §8): the caller's struct
// read and checked, then attached to the kernel operands it normalizes.
#ifndef ROTARY_LIB_CALL_QK_NORM_H_
#define ROTARY_LIB_CALL_QK_NORM_H_

#include <cstddef>

#include "lib/call/call_operands.h"
#include "rotary/rotary.h"

namespace rotary {

struct NormArgs {
  const float* weight[2];  // of q and k; nullptr: that tensor is not normalized
  float eps;               // rounded to f32, > 0
  float offset;            // rounded to f32
  bool whole_token;
};

// rotary_qk_norm_init_sized.
void InitQkNorm(rotary_qk_norm* norm, size_t size);

// Throws Error if norm is NULL, was not set by rotary_qk_norm_init, or holds
// a bad eps or weight_offset.
NormArgs ReadQkNorm(const rotary_qk_norm* norm);

// Checks the weights of call's operands (finite, as many as each normalizes)
// and makes the operands normalize. Throws Error naming the first bad weight.
void AttachNorm(const NormArgs& norm, CallOperands& call, int32_t head_dim);

}  // namespace rotary

#endif  // ROTARY_LIB_CALL_QK_NORM_H_
