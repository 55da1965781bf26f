// What rotary is measured against, in the same run (BENCHMARKS.md):
//  - stream: an in-place x = a*x + b over the same bytes, vectorized with the
//    best Highway target: the memory-bandwidth limit for that size;
//  - naive: the obvious scalar RoPE loop a user would write, reading cos/sin
//    from a precomputed table, compiled with the same flags.
#ifndef ROTARY_BENCH_YARDSTICKS_H_
#define ROTARY_BENCH_YARDSTICKS_H_

#include <cstddef>
#include <cstdint>
#include <vector>

namespace rotary_bench {

// x[i] = a * x[i] + b over [0, n), split over rows like rotary's scheduler.
void StreamInPlace(float* x, int64_t rows, int64_t floats_per_row, float a, float b);

// The loop a user would write: contiguous [rows, heads, dim], full rotary_dim.
struct NaiveRope {
  NaiveRope(int dim, int64_t max_positions, double base);
  // Row r = b * seq + s is at position offset + s.
  void Apply(float* x, int64_t rows, int64_t seq, int64_t heads, int64_t offset, bool interleaved) const;

  int dim;
  std::vector<float> cos_table, sin_table;  // [position][dim / 2]
};

}  // namespace rotary_bench

#endif  // ROTARY_BENCH_YARDSTICKS_H_
