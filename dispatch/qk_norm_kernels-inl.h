// Per-target qk-norm kernels: the definition of NormRotateRows (declared in
// kernel_entry_points-inl.h), instantiated per source storage by
// dispatch/instances/norm_rotate_<source>.cc for every Highway target.
//
// Per (b, s) row and operand, the heads are converted to f32 into a buffer
// that stays in L1, a group at a time; each head (or, for a whole-token norm,
// all heads together) is RMS-normalized there, u = (x * r) * (w + offset),
// and the group is rotated from the buffer to the destination by the plain
// kernels' head loops (RotateOperandRow) with the q scale. The tensor is thus
// read once and written once, as by the plain rotation.
//
// The factor r must have the same bits on every target, whatever its vector
// width (docs/math.md §8.3): 16 lane sums of squares in index order, a fixed
// tree, a correctly rounded sqrt and a division. The translation units that
// compile this file are built with -ffp-contract=off (CMakeLists.txt): a
// fused multiply-add of `sum + x * x` would round once where §8.3 rounds twice.

// Per-target include guard (Highway's convention for -inl.h files).
#if defined(ROTARY_DISPATCH_QK_NORM_KERNELS_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef ROTARY_DISPATCH_QK_NORM_KERNELS_INL_H_
#undef ROTARY_DISPATCH_QK_NORM_KERNELS_INL_H_
#else
#define ROTARY_DISPATCH_QK_NORM_KERNELS_INL_H_
#endif

#include <algorithm>
#include <cmath>

#include "dispatch/convert-inl.h"
#include "dispatch/kernel_api.h"
#include "dispatch/kernel_entry_points-inl.h"
#include "dispatch/partial_vectors-inl.h"
#include "dispatch/rope_kernels-inl.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace rotary {
namespace HWY_NAMESPACE {

// The lane sums of §8.3: component d adds to sum d mod 16.
constexpr size_t kNormLanes = 16;

constexpr size_t RoundUpToNormLanes(size_t n) { return (n + kNormLanes - 1) / kNormLanes * kNormLanes; }

// Floats of normalized heads a group holds at most (16 KiB: the group is
// written, read back and rotated while it is in L1).
constexpr size_t kNormGroupFloats = 4096;

// The sum of squares of u[0, padded) (padded a multiple of 16, the padding
// zeros) in §8.3's order: sum j of the 16 gets u[j]^2, u[j + 16]^2, ... in
// index order, each square and each sum rounded; then the fixed tree. Lanes
// j..j+N of the vectors below are those sums, K vectors at a time: a zero
// square added to a lane sum leaves it unchanged, so the padding is neutral.
template <size_t K>
HWY_INLINE void AddSquaresOfLanes(const float* HWY_RESTRICT u, size_t padded, float* HWY_RESTRICT lane_sums) {
  const hn::CappedTag<float, kNormLanes> d;
  const size_t N = hn::Lanes(d);
  for (size_t j = 0; j < kNormLanes; j += K * N) {
    auto s0 = hn::Zero(d), s1 = hn::Zero(d), s2 = hn::Zero(d), s3 = hn::Zero(d);
    for (size_t k = j; k < padded; k += kNormLanes) {
      const auto v0 = hn::LoadU(d, u + k);
      s0 = hn::Add(s0, hn::Mul(v0, v0));
      if (K > 1) {
        const auto v1 = hn::LoadU(d, u + k + N);
        s1 = hn::Add(s1, hn::Mul(v1, v1));
      }
      if (K > 2) {
        const auto v2 = hn::LoadU(d, u + k + 2 * N);
        const auto v3 = hn::LoadU(d, u + k + 3 * N);
        s2 = hn::Add(s2, hn::Mul(v2, v2));
        s3 = hn::Add(s3, hn::Mul(v3, v3));
      }
    }
    hn::StoreU(s0, d, lane_sums + j);
    if (K > 1) hn::StoreU(s1, d, lane_sums + j + N);
    if (K > 2) {
      hn::StoreU(s2, d, lane_sums + j + 2 * N);
      hn::StoreU(s3, d, lane_sums + j + 3 * N);
    }
  }
}

HWY_INLINE float SumOfSquares(const float* HWY_RESTRICT u, size_t padded) {
  const size_t N = hn::Lanes(hn::CappedTag<float, kNormLanes>());
  HWY_ALIGN float lane_sums[kNormLanes];
  // Independent sums in flight: one vector's add latency per 16 components
  // would bound the loop, not the loads.
  if (4 * N <= kNormLanes) {
    AddSquaresOfLanes<4>(u, padded, lane_sums);
  } else if (2 * N <= kNormLanes) {
    AddSquaresOfLanes<2>(u, padded, lane_sums);
  } else {
    AddSquaresOfLanes<1>(u, padded, lane_sums);
  }
  for (size_t h = kNormLanes / 2; h >= 1; h /= 2) {
    for (size_t j = 0; j < h; ++j) lane_sums[j] = lane_sums[j] + lane_sums[j + h];
  }
  return lane_sums[0];
}

// RMS-normalizes u[0, n) in place (u[n, RoundUpToNormLanes(n)) zeros):
// r = 1 / sqrt(sum / n + eps), u = (u * r) * (w + offset), in §8.3's order.
HWY_INLINE void NormalizeInPlace(float* HWY_RESTRICT u, size_t n, const float* HWY_RESTRICT w, float offset,
                                 float eps) {
  const float mean_square = SumOfSquares(u, RoundUpToNormLanes(n)) / static_cast<float>(n);
  const float r = 1.0f / std::sqrt(mean_square + eps);  // never an approximate rsqrt
  const DF d;
  const size_t N = hn::Lanes(d);
  const VF vr = hn::Set(d, r), voffset = hn::Set(d, offset);
  size_t k = 0;
  for (; k + N <= n; k += N) {
    const VF gain = hn::Add(hn::LoadU(d, w + k), voffset);
    hn::StoreU(hn::Mul(hn::Mul(hn::LoadU(d, u + k), vr), gain), d, u + k);
  }
  for (; k < n; ++k) u[k] = (u[k] * r) * (w[k] + offset);  // the same two products
}

// The n elements at x as f32 into u[0, n). May write up to a vector past
// u + n (the buffer has that slack; later heads overwrite it).
template <class Src>
HWY_INLINE void LoadHeadF32(const typename Src::T* HWY_RESTRICT x, size_t n, float* HWY_RESTRICT u) {
  const DF d;
  const size_t N = hn::Lanes(d);
  size_t k = 0;
  for (; k + N <= n; k += N) hn::StoreU(LoadF32(Src(), x + k), d, u + k);
  if (k != n) hn::StoreU(LoadTailF32<Src>(x + k, n - k, k), d, u + k);
}

// How an operand's heads are buffered: `heads` at a time, `stride` floats apart.
struct NormGroup {
  size_t heads;
  size_t stride;
};

HWY_INLINE NormGroup NormGroupOf(const Operand& op, size_t head_dim) {
  const size_t heads = static_cast<size_t>(op.heads);
  // A whole-token norm needs every head of the row before the first is scaled.
  if (op.norm_whole_token) return {heads, head_dim};
  const size_t stride = RoundUpToNormLanes(head_dim);
  return {std::min(heads, std::max<size_t>(1, kNormGroupFloats / stride)), stride};
}

// Floats of the buffer the operands of a job need, with a vector of slack.
HWY_INLINE size_t NormBufferFloats(const RowJob& job) {
  size_t floats = 0;
  for (int o = 0; o < job.num_operands; ++o) {
    const NormGroup group = NormGroupOf(job.operands[o], job.head_dim);
    const size_t heads_floats = group.heads * group.stride;
    floats = std::max(floats, RoundUpToNormLanes(heads_floats));
  }
  return floats + hn::MaxLanes(DF());
}

// Rotates the normalized heads of a group from the buffer (normalized.src) to
// the destination. Not inlined, and templated on the destination only: the
// norm kernels of every source storage share one copy per pairing and
// destination (the linker merges the copies of the per-source translation units).
template <int kPairing, class Dst>
HWY_NOINLINE void RotateNormalizedHeads(const Operand& normalized, const float* cos, const float* sin, size_t pairs,
                                        size_t head_dim, bool one_at_a_time) {
  RotateOperandRow<kPairing, F32Storage, Dst>(normalized, 0, 0, cos, sin, pairs, head_dim, one_at_a_time);
}

// Heads [first, first + heads) of one operand's row at x, as f32 into
// `buffer` (group.stride apart), normalized if op.norm_weight. Not inlined,
// and templated on the source only: one copy per source storage serves
// every pairing and destination.
template <class Src>
HWY_NOINLINE void LoadNormalizedHeads(const Operand& op, const void* row, int64_t first, size_t heads,
                                      NormGroup group, size_t head_dim, float* HWY_RESTRICT buffer) {
  const typename Src::T* x = static_cast<const typename Src::T*>(row);
  for (size_t h = 0; h < heads; ++h) {
    float* u = buffer + h * group.stride;
    LoadHeadF32<Src>(x + (first + static_cast<int64_t>(h)) * op.src_stride_head, head_dim, u);
    std::fill(u + head_dim, u + group.stride, 0.0f);  // per head: its lane sums' padding
  }
  if (op.norm_weight == nullptr) return;
  if (op.norm_whole_token) {
    const size_t n = heads * head_dim;
    std::fill(buffer + n, buffer + RoundUpToNormLanes(n), 0.0f);
    NormalizeInPlace(buffer, n, op.norm_weight, op.norm_offset, op.norm_eps);
    return;
  }
  for (size_t h = 0; h < heads; ++h) {
    NormalizeInPlace(buffer + h * group.stride, head_dim, op.norm_weight, op.norm_offset, op.norm_eps);
  }
}

// The storage-specific halves of a norm kernel (LoadNormalizedHeads<Src>,
// RotateNormalizedHeads<kPairing, Dst>): the row loop below calls them
// through pointers, so that it is compiled once per target, not once per
// pairing and storage pair.
using LoadNormalizedFn = void (*)(const Operand& op, const void* row, int64_t first, size_t heads, NormGroup group,
                                  size_t head_dim, float* HWY_RESTRICT buffer);
using RotateNormalizedFn = void (*)(const Operand& normalized, const float* cos, const float* sin, size_t pairs,
                                    size_t head_dim, bool one_at_a_time);

// All heads of one operand at row (b, s): normalized into `buffer` a group at
// a time, then rotated from it with the table row (cos, sin).
HWY_INLINE void NormRotateOperandRow(const Operand& op, int64_t b, int64_t s, const float* cos, const float* sin,
                                     const RowJob& job, LoadNormalizedFn load, RotateNormalizedFn rotate,
                                     size_t src_bytes, size_t dst_bytes, float* HWY_RESTRICT buffer) {
  const char* x = static_cast<const char*>(op.src) +
                  (b * op.src_stride_batch + s * op.src_stride_seq) * static_cast<int64_t>(src_bytes);
  char* y = static_cast<char*>(op.dst) + (b * op.dst_stride_batch + s * op.dst_stride_seq) * static_cast<int64_t>(dst_bytes);
  const NormGroup group = NormGroupOf(op, job.head_dim);
  for (int64_t first = 0; first < op.heads; first += static_cast<int64_t>(group.heads)) {
    const size_t heads = std::min(group.heads, static_cast<size_t>(op.heads - first));
    load(op, x, first, heads, group, job.head_dim, buffer);
    Operand normalized = op;
    normalized.src = buffer;
    normalized.src_stride_batch = normalized.src_stride_seq = 0;
    normalized.src_stride_head = static_cast<int64_t>(group.stride);
    normalized.dst = y + first * op.dst_stride_head * static_cast<int64_t>(dst_bytes);
    normalized.dst_stride_batch = normalized.dst_stride_seq = 0;
    normalized.heads = static_cast<int64_t>(heads);
    normalized.write_rest = true;  // components past rotary_dim are normalized too
    rotate(normalized, cos, sin, job.pairs, job.head_dim, job.streaming);
  }
}

inline HWY_NOINLINE void NormRotateRowRange(const RowJob& job, int64_t row_begin, int64_t row_end, LoadNormalizedFn load,
                                            RotateNormalizedFn rotate, size_t src_bytes, size_t dst_bytes) {
  const size_t row_floats = ScratchRows(job) * ScratchRowFloats(job.table.row_floats);
  WithScratch(row_floats + NormBufferFloats(job), [&](float* scratch) {
    float* const row_scratch = row_floats ? scratch : nullptr;
    float* const buffer = scratch + row_floats;
    int64_t b = row_begin / job.seq;
    int64_t s = row_begin % job.seq;
    for (int64_t row = row_begin; row < row_end; ++row) {
      const float* cos = RowOf(job, b, s, row_scratch);
      const float* sin = cos + job.table.row_floats / 2;
      for (int o = 0; o < job.num_operands; ++o) {
        NormRotateOperandRow(job.operands[o], b, s, cos, sin, job, load, rotate, src_bytes, dst_bytes, buffer);
      }
      if (++s == job.seq) {
        s = 0;
        ++b;
      }
    }
  });
}

template <int kPairing, class Src, class Dst>
void NormRotateRows(const RowJob& job, int64_t row_begin, int64_t row_end) {
  NormRotateRowRange(job, row_begin, row_end, &LoadNormalizedHeads<Src>, &RotateNormalizedHeads<kPairing, Dst>,
                     sizeof(typename Src::T), sizeof(typename Dst::T));
}

// NOLINTNEXTLINE(google-readability-namespace-comments)
}  // namespace HWY_NAMESPACE
}  // namespace rotary
HWY_AFTER_NAMESPACE();

#endif  // per-target include guard
