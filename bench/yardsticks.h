// What rotary is measured against, in the same run (docs/performance.md (Method)):
//  - stream: an in-place x = a*x + b over the same bytes and storage type,
//    vectorized for rotary's active target (the one the case is forced to),
//    converting f16/bf16 exactly as that target's kernels do: the memory limit
//    for that size, storage type and ISA;
//  - converting copy: f32 -> f16/bf16 out of place, what a backend does anyway
//    when it writes k into a KV cache (on the active target too);
//  - RMSNorm pass: a plain per-head RMSNorm in place (on the active target),
//    the pass a backend runs before RoPE when qk-norm is not fused;
//  - paged KV write: k and v converted into their slots of a paged cache (f16,
//    bf16, OCP FP8, ggml q8_0; on the active target), the pass a backend runs
//    after RoPE when the cache write is not fused, and with q copied onto
//    itself in the same pass, a copy of the bytes the fused call moves;
//  - naive: the obvious scalar RoPE loop a user would write, reading cos/sin
//    from a precomputed table, compiled for the active target as the compiler
//    would for a user's build for that ISA (auto-vectorized where it can).
#ifndef ROTARY_BENCH_YARDSTICKS_H_
#define ROTARY_BENCH_YARDSTICKS_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "rotary/rotary.h"

namespace rotary_bench {

// x = a * x + b over rows * elements_per_row elements of `dtype`, split over
// rows like rotary's scheduler (inline when small, TBB otherwise).
void StreamInPlace(void* x, rotary_dtype dtype, int64_t rows, int64_t elements_per_row, float a, float b);

// dst (f16 or bf16) = src (f32), rows * elements_per_row elements, split like StreamInPlace.
void ConvertingCopy(const float* src, void* dst, rotary_dtype dst_dtype, int64_t rows, int64_t elements_per_row);

// x[row][head] = x * r * weight per head of `dim` elements (weight: dim
// floats), rows * heads heads of `dtype`, split like StreamInPlace.
void RmsNormInPlace(void* x, rotary_dtype dtype, int64_t rows, int64_t heads, int64_t dim, const float* weight,
                    float eps);

// A paged KV cache in vLLM's terms: [num_blocks, block_size, kv_heads, head]
// with byte strides, a head being head_dim elements of `dtype`
// (ROTARY_CACHE_TENSOR), head_dim FP8 bytes, or head_dim / 32 ggml q8_0
// records of 34 bytes.
struct PagedCache {
  void* data = nullptr;
  rotary_cache_format format = ROTARY_CACHE_TENSOR;
  rotary_dtype dtype = ROTARY_F16;  // ROTARY_CACHE_TENSOR: the element type
  float scale = 1.0f;               // FP8: the cache holds fp8(x / scale)
  int64_t block_size = 16;
  int64_t stride_block = 0, stride_row = 0, stride_head = 0;  // bytes
};

// A plain pass over `rows` tokens: each token's k and v heads ([rows,
// kv_heads, dim], contiguous, of `dtype`) written into the token's slot of
// k_cache and v_cache (slot / block_size is the block, slot % block_size the
// row in it; a negative slot is skipped), converted as rotary_cache_format
// says: f16 and bf16 rounded to nearest even (copied when the cache has the
// source's type), FP8 of x / scale rounded to nearest even and saturating
// (NaN: 0x7F with x's sign), q8_0 as ggml's quantize_row_q8_0_ref (a NaN left
// out of the maximum and quantized to 0). With q, the token's q heads ([rows,
// q_heads, dim] of `dtype`) are read and written back unchanged in the same
// pass. dim is a multiple of 32 and of two vectors of every target. Split
// over rows like StreamInPlace.
struct PagedKvPass {
  void* q = nullptr;  // or nullptr: k and v only
  int64_t q_heads = 0;
  const void* k = nullptr;
  const void* v = nullptr;
  rotary_dtype dtype = ROTARY_F32;
  int64_t rows = 0, kv_heads = 0, dim = 0;
  const int64_t* slots = nullptr;  // rows of them
  PagedCache k_cache, v_cache;
};
void PagedKvWrite(const PagedKvPass& pass);

// The loop a user would write: f32, contiguous [rows, heads, dim], full rotary_dim.
struct NaiveRope {
  NaiveRope(int dim, int64_t max_positions, double base);
  // Row r = b * seq + s is at position offset + s.
  void Apply(float* x, int64_t rows, int64_t seq, int64_t heads, int64_t offset, bool interleaved) const;

  int dim;
  std::vector<float> cos_table, sin_table;  // [position][dim / 2]
};

}  // namespace rotary_bench

#endif  // ROTARY_BENCH_YARDSTICKS_H_
