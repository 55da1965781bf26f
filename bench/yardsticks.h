// What rotary is measured against, in the same run (docs/performance.md (Method)):
//  - stream: an in-place x = a*x + b over the same bytes and storage type,
//    vectorized for rotary's active target (the one the case is forced to),
//    converting f16/bf16 exactly as that target's kernels do: the memory limit
//    for that size, storage type and ISA;
//  - converting copy: f32 -> f16/bf16 out of place, what a backend does anyway
//    when it writes k into a KV cache (on the active target too);
//  - RMSNorm pass: a plain per-head RMSNorm in place (on the active target),
//    the pass a backend runs before RoPE when qk-norm is not fused;
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
