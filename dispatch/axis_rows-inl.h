// Per-target gathering of a multi-axis row (M-RoPE, 2D vision RoPE; docs/math.md
// §7). Pair i of a token reads position p[axis(i)], so its cos/sin are those of
// the table row of that position: the kernel gathers one row per (b, s) from
// the rows of the token's axis positions, into a scratch buffer, then runs the
// same head loop as for a stored row. The values are the stored (or
// synthesized) ones, moved, never recomputed: a token whose axes are equal
// reads exactly plain RoPE's row, and pairs of mixed tokens exactly the values
// plain RoPE has at those positions.
//
// Where every run of floats of one axis is at least a vector long (sections,
// vision's halves) the gather copies whole vectors of each run
// (RowJob::axis_runs), in both halves of the row; where axes alternate
// (interleaved M-RoPE) it selects per float among the axes' rows by
// RowJob::row_axes, a vector at a time. Either is cheap next to rotating
// every head of q and k with the row.

// Per-target include guard (Highway's convention for -inl.h files).
#if defined(ROTARY_DISPATCH_AXIS_ROWS_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef ROTARY_DISPATCH_AXIS_ROWS_INL_H_
#undef ROTARY_DISPATCH_AXIS_ROWS_INL_H_
#else
#define ROTARY_DISPATCH_AXIS_ROWS_INL_H_
#endif

#include "dispatch/convert-inl.h"
#include "dispatch/kernel_api.h"
#include "dispatch/kernel_entry_points-inl.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace rotary {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

const float* GatherAxisRow(const RowJob& job, const int64_t* positions, float* HWY_RESTRICT scratch) {
  const TableView& t = job.table;
  const size_t stride = ScratchRowFloats(t.row_floats);
  const float* rows[kMaxAxes];
  for (int a = 0; a < job.num_axes; ++a) {
    const int64_t p = positions[a];
    rows[a] = t.mode == RowSource::kFull ? t.Row(p) : SynthesizeRow(t, p, scratch + (1 + a) * stride);
  }
  const DF d;
  const size_t N = hn::Lanes(d);
  const size_t floats = static_cast<size_t>(t.row_floats);
  if (static_cast<size_t>(job.shortest_axis_run) < N) {
    // Axes that alternate within a vector: a select per axis.
    size_t j = 0;
    for (; j + N <= floats; j += N) {
      const VF axis = hn::LoadU(d, job.row_axes + j);
      VF v = hn::LoadU(d, rows[0] + j);
      for (int a = 1; a < job.num_axes; ++a) {
        v = hn::IfThenElse(hn::Eq(axis, hn::Set(d, static_cast<float>(a))), hn::LoadU(d, rows[a] + j), v);
      }
      hn::StoreU(v, d, scratch + j);
    }
    for (; j < floats; ++j) scratch[j] = rows[static_cast<int>(job.row_axes[j])][j];
    return scratch;
  }
  // Each run by whole vectors, in the cos half and at the same place in the
  // sin half. The vector where a run ends and the next begins (the next is at
  // least a vector long) takes its lanes from both: the gathered row is stored
  // by the same vectors, from the start of each half, that the head loops load.
  const size_t half = floats / 2;
  size_t j = 0;
  for (int r = 0; r < job.num_axis_runs; ++r) {
    const size_t end = static_cast<size_t>(job.axis_runs[r].end);
    const float* from = rows[job.axis_runs[r].axis];
    for (; j + N <= end; j += N) {
      hn::StoreU(hn::LoadU(d, from + j), d, scratch + j);
      hn::StoreU(hn::LoadU(d, from + half + j), d, scratch + half + j);
    }
    if (j < end && r + 1 < job.num_axis_runs) {
      const float* next = rows[job.axis_runs[r + 1].axis];
      const auto mine = hn::FirstN(d, end - j);
      hn::StoreU(hn::IfThenElse(mine, hn::LoadU(d, from + j), hn::LoadU(d, next + j)), d, scratch + j);
      hn::StoreU(hn::IfThenElse(mine, hn::LoadU(d, from + half + j), hn::LoadU(d, next + half + j)), d,
                 scratch + half + j);
      j += N;
    }
  }
  for (; j < half; ++j) {  // the last partial vector of each half
    const float* from = rows[static_cast<int>(job.row_axes[j])];
    scratch[j] = from[j];
    scratch[half + j] = from[half + j];
  }
  return scratch;
}

// NOLINTNEXTLINE(google-readability-namespace-comments)
}  // namespace HWY_NAMESPACE
}  // namespace rotary
HWY_AFTER_NAMESPACE();

#endif  // per-target include guard
