/* The fuzz target calls the entry points that take an enum by value through
 * here, in C, because a C caller may pass any int where C++ may not. */
#include "rotary/rotary.h"

rotary_status fuzz_packed_qkv_views(void* data, int dtype, int64_t batch, int64_t seq, int64_t q_heads,
                                    int64_t kv_heads, int32_t head_dim, rotary_tensor* q, rotary_tensor* k,
                                    rotary_tensor* v) {
  return rotary_packed_qkv_views(data, (rotary_dtype)dtype, batch, seq, q_heads, kv_heads, head_dim, q, k, v);
}

rotary_status fuzz_apply_packed_qkv(const rotary_rope* rope, void* data, int dtype, int64_t batch, int64_t seq,
                                    int64_t q_heads, int64_t kv_heads, const int64_t* positions, int64_t offset,
                                    float q_scale) {
  return rotary_apply_packed_qkv(rope, data, (rotary_dtype)dtype, batch, seq, q_heads, kv_heads, positions, offset,
                                 q_scale);
}
