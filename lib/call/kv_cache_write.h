// The KV-cache write of a call (rotary_apply_options' k_cache, v_src, v_cache
// and slot_mapping; docs/math.md §9): the caches, v and the slots checked
// against the call's q and k, then turned into two more kernel operands: k
// rotated into its cache slots, v converted into its own.
#ifndef ROTARY_LIB_CALL_KV_CACHE_WRITE_H_
#define ROTARY_LIB_CALL_KV_CACHE_WRITE_H_

#include <cstdint>

#include "lib/call/call_operands.h"
#include "lib/call/rope.h"
#include "rotary/rotary.h"

namespace rotary {

struct CacheWriteArgs {
  const rotary_tensor* k_cache = nullptr;
  const rotary_tensor* v_src = nullptr;
  const rotary_tensor* v_cache = nullptr;
  const int64_t* slots = nullptr;
  int32_t format = ROTARY_CACHE_TENSOR;  // rotary_cache_format, as the caller's int
  double k_scale = 0.0, v_scale = 0.0;   // FP8 only; 0: 1

  bool Any() const {
    return k_cache != nullptr || v_src != nullptr || v_cache != nullptr || slots != nullptr ||
           format != ROTARY_CACHE_TENSOR || k_scale != 0.0 || v_scale != 0.0;
  }
};

// call holds q alone (ValidateOperands of q); k is the caller's k (src, and a
// dst that must be NULL). Appends the operands of k and v, or throws Error
// naming the first bad argument: a missing or extra tensor, caches whose
// shapes do not match k's and v's heads and each other's blocks, a slot at or
// beyond num_blocks * block_size or used twice, a cache overlapping q, k, v
// or the other cache, an unknown format, a scale that is not a finite float
// > 0 (or given for a format without one), q8_0 with head_dim not a multiple
// of 32.
void AttachCacheWrite(const CacheWriteArgs& cache, const TensorArgs& q, const TensorArgs& k, CallOperands& call,
                      int32_t head_dim);

}  // namespace rotary

#endif  // ROTARY_LIB_CALL_KV_CACHE_WRITE_H_
