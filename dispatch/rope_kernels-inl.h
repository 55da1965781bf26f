// Per-target RoPE kernels (f32). Included once per Highway target through
// hwy/foreach_target.h; everything here lives in rotary::HWY_NAMESPACE.
//
// Math (ROPE_MATH.md §1.2, §1.5): a pair (a, c) at angle t becomes
//   forward: a' = a cos t - c sin t,   c' = a sin t + c cos t
//   inverse: a' = a cos t + c sin t,   c' = c cos t - a sin t
// The table row of a position holds the cos values then the sin values, in the
// layout of the pairing (see TableLayout). One row is read per (b, s) and
// applied to every head of that row.

// Per-target include guard (Highway's convention for -inl.h files).
#if defined(ROTARY_DISPATCH_ROPE_KERNELS_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef ROTARY_DISPATCH_ROPE_KERNELS_INL_H_
#undef ROTARY_DISPATCH_ROPE_KERNELS_INL_H_
#else
#define ROTARY_DISPATCH_ROPE_KERNELS_INL_H_
#endif

#include <cstring>

#include "dispatch/kernel_api.h"
#include "hwy/cache_control.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace rotary {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using DF = hn::ScalableTag<float>;
using VF = hn::Vec<DF>;

// Largest vector of any target, in floats: bounds the stack buffers of tails.
constexpr size_t kMaxLanes = HWY_MAX_BYTES / sizeof(float);

// How far ahead of the current element large (memory-bound) calls prefetch.
// The half-split pattern (x[i] with x[i + pairs]) defeats part of the hardware
// prefetcher; asking for the lines ~8 KiB ahead keeps enough misses in flight
// for one core to reach streaming bandwidth. Prefetches never fault, so running
// past the end of the tensor is harmless.
constexpr size_t kPrefetchFloats = 8192 / sizeof(float);

template <bool kPrefetch>
HWY_INLINE void PrefetchAhead(const float* p) {
  if (kPrefetch) hwy::Prefetch(p + kPrefetchFloats);
}

// Rotates lane-wise pairs (a[j], c[j]) by the angles whose cos/sin are (cs, sn).
template <bool kInverse>
HWY_INLINE void RotatePairs(VF& a, VF& c, VF cs, VF sn) {
  if (kInverse) {
    const VF a_new = hn::MulAdd(c, sn, hn::Mul(a, cs));
    c = hn::NegMulAdd(a, sn, hn::Mul(c, cs));
    a = a_new;
  } else {
    const VF a_new = hn::NegMulAdd(c, sn, hn::Mul(a, cs));
    c = hn::MulAdd(a, sn, hn::Mul(c, cs));
    a = a_new;
  }
}

// Heads are rotated kHeads at a time (heads h .. h + kHeads - 1 of one row,
// `stride` floats apart), so that every cos/sin vector loaded from the table is
// applied to several heads: the table row costs a fraction of a load per vector.
constexpr size_t kHeadGroup = 4;

// Rotates pairs [i, pairs) of one NeoX head, fewer than one vector of them,
// through stack buffers so that no lane outside the head is read or written
// (the caller's memory may end right there).
template <bool kInverse>
HWY_INLINE void RotateNeoxTail(float* HWY_RESTRICT x, const float* HWY_RESTRICT cos,
                               const float* HWY_RESTRICT sin, size_t i, size_t pairs) {
  const DF d;
  const size_t rest = pairs - i;
  HWY_ALIGN float buf_a[kMaxLanes] = {}, buf_c[kMaxLanes] = {};
  HWY_ALIGN float buf_cos[kMaxLanes] = {}, buf_sin[kMaxLanes] = {};
  std::memcpy(buf_a, x + i, rest * sizeof(float));
  std::memcpy(buf_c, x + pairs + i, rest * sizeof(float));
  std::memcpy(buf_cos, cos + i, rest * sizeof(float));
  std::memcpy(buf_sin, sin + i, rest * sizeof(float));
  VF a = hn::Load(d, buf_a);
  VF c = hn::Load(d, buf_c);
  RotatePairs<kInverse>(a, c, hn::Load(d, buf_cos), hn::Load(d, buf_sin));
  hn::Store(a, d, buf_a);
  hn::Store(c, d, buf_c);
  std::memcpy(x + i, buf_a, rest * sizeof(float));
  std::memcpy(x + pairs + i, buf_c, rest * sizeof(float));
}

// NeoX / half-split: pair i is (x[i], x[i + pairs]). Table row: cos t_i, sin t_i.
template <bool kInverse, bool kPrefetch, size_t kHeads>
HWY_INLINE void RotateNeoxHeads(float* HWY_RESTRICT x0, int64_t stride, const float* HWY_RESTRICT cos,
                                const float* HWY_RESTRICT sin, size_t pairs) {
  const DF d;
  const size_t N = hn::Lanes(d);
  size_t i = 0;
  for (; i + N <= pairs; i += N) {
    const VF cs = hn::LoadU(d, cos + i), sn = hn::LoadU(d, sin + i);
    for (size_t h = 0; h < kHeads; ++h) {
      float* HWY_RESTRICT x = x0 + static_cast<int64_t>(h) * stride;
      PrefetchAhead<kPrefetch>(x + i);
      PrefetchAhead<kPrefetch>(x + pairs + i);
      VF a = hn::LoadU(d, x + i);
      VF c = hn::LoadU(d, x + pairs + i);
      RotatePairs<kInverse>(a, c, cs, sn);
      hn::StoreU(a, d, x + i);
      hn::StoreU(c, d, x + pairs + i);
    }
  }
  if (i == pairs) return;
  for (size_t h = 0; h < kHeads; ++h) RotateNeoxTail<kInverse>(x0 + static_cast<int64_t>(h) * stride, cos, sin, i, pairs);
}

#if HWY_TARGET != HWY_SCALAR
// y = x * cos_dup + swap_adjacent(x) * sin_alt (see RotateInterleavedHeads).
template <bool kInverse>
HWY_INLINE VF RotateAdjacent(VF v, VF cos_dup, VF sin_alt) {
  const VF swapped = hn::Reverse2(DF(), v);
  return kInverse ? hn::NegMulAdd(swapped, sin_alt, hn::Mul(v, cos_dup))
                  : hn::MulAdd(swapped, sin_alt, hn::Mul(v, cos_dup));
}

// Floats [k, n) of one interleaved head (an even number below one vector),
// through stack buffers as in RotateNeoxTail.
template <bool kInverse>
HWY_INLINE void RotateInterleavedTail(float* HWY_RESTRICT x, const float* HWY_RESTRICT cos_dup,
                                      const float* HWY_RESTRICT sin_alt, size_t k, size_t n) {
  const DF d;
  const size_t rest = n - k;
  HWY_ALIGN float buf_x[kMaxLanes] = {}, buf_cos[kMaxLanes] = {}, buf_sin[kMaxLanes] = {};
  std::memcpy(buf_x, x + k, rest * sizeof(float));
  std::memcpy(buf_cos, cos_dup + k, rest * sizeof(float));
  std::memcpy(buf_sin, sin_alt + k, rest * sizeof(float));
  hn::Store(RotateAdjacent<kInverse>(hn::Load(d, buf_x), hn::Load(d, buf_cos), hn::Load(d, buf_sin)), d, buf_x);
  std::memcpy(x + k, buf_x, rest * sizeof(float));
}
#endif

// Interleaved / GPT-J: pair i is (x[2i], x[2i + 1]). The table row is laid out
// per component (TableLayout::kPerComponent): cos_dup[k] = cos t_(k/2) and
// sin_alt[k] = -sin t_(k/2) for even k, +sin t_(k/2) for odd k, so that
//   y = x * cos_dup + swap_adjacent(x) * sin_alt
// costs one in-lane swap per vector instead of de- and re-interleaving.
template <bool kInverse, bool kPrefetch, size_t kHeads>
HWY_INLINE void RotateInterleavedHeads(float* HWY_RESTRICT x0, int64_t stride, const float* HWY_RESTRICT cos_dup,
                                       const float* HWY_RESTRICT sin_alt, size_t pairs) {
  const size_t n = 2 * pairs;
#if HWY_TARGET == HWY_SCALAR
  // One lane cannot hold a pair: rotate pair by pair.
  for (size_t h = 0; h < kHeads; ++h) {
    float* x = x0 + static_cast<int64_t>(h) * stride;
    for (size_t k = 0; k < n; k += 2) {
      const float a = x[k], c = x[k + 1], cs = cos_dup[k];
      const float sn = kInverse ? -sin_alt[k + 1] : sin_alt[k + 1];
      x[k] = a * cs - c * sn;
      x[k + 1] = a * sn + c * cs;
    }
  }
#else
  const DF d;
  const size_t N = hn::Lanes(d);  // even on every target but SCALAR
  size_t k = 0;
  for (; k + N <= n; k += N) {
    const VF cs = hn::LoadU(d, cos_dup + k), sn = hn::LoadU(d, sin_alt + k);
    for (size_t h = 0; h < kHeads; ++h) {
      float* HWY_RESTRICT x = x0 + static_cast<int64_t>(h) * stride;
      PrefetchAhead<kPrefetch>(x + k);
      hn::StoreU(RotateAdjacent<kInverse>(hn::LoadU(d, x + k), cs, sn), d, x + k);
    }
  }
  if (k == n) return;
  for (size_t h = 0; h < kHeads; ++h) {
    RotateInterleavedTail<kInverse>(x0 + static_cast<int64_t>(h) * stride, cos_dup, sin_alt, k, n);
  }
#endif
}

template <int kPairing, bool kInverse, bool kPrefetch, size_t kHeads>
HWY_INLINE void RotateHeads(float* x0, int64_t stride, const float* cos, const float* sin, size_t pairs) {
  if (kPairing == kNeoxPairs) {
    RotateNeoxHeads<kInverse, kPrefetch, kHeads>(x0, stride, cos, sin, pairs);
  } else {
    RotateInterleavedHeads<kInverse, kPrefetch, kHeads>(x0, stride, cos, sin, pairs);
  }
}

// One head (what the kernel tests sweep).
template <int kPairing, bool kInverse, bool kPrefetch = false>
HWY_INLINE void RotateHead(float* x, const float* cos, const float* sin, size_t pairs) {
  RotateHeads<kPairing, kInverse, kPrefetch, 1>(x, 0, cos, sin, pairs);
}

// Rows [row_begin, row_end) of a job; row = b * seq + s. The table row of each
// (b, s) is looked up once and applied to all heads of that row.
template <int kPairing, bool kInverse, bool kPrefetch>
void RotateRowRange(const RowJob& job, int64_t row_begin, int64_t row_end) {
  int64_t b = row_begin / job.seq;
  int64_t s = row_begin % job.seq;
  const int64_t stride = job.stride_head;
  for (int64_t row = row_begin; row < row_end; ++row) {
    const float* cos = job.table.Row(job.Position(b, s));
    const float* sin = cos + job.table.row_floats / 2;
    float* head = job.data + b * job.stride_batch + s * job.stride_seq;
    int64_t h = 0;
    for (; h + static_cast<int64_t>(kHeadGroup) <= job.heads; h += kHeadGroup, head += kHeadGroup * stride) {
      RotateHeads<kPairing, kInverse, kPrefetch, kHeadGroup>(head, stride, cos, sin, job.pairs);
    }
    for (; h < job.heads; ++h, head += stride) {
      RotateHeads<kPairing, kInverse, kPrefetch, 1>(head, stride, cos, sin, job.pairs);
    }
    if (++s == job.seq) {
      s = 0;
      ++b;
    }
  }
}

template <int kPairing, bool kInverse>
void RotateRows(const RowJob& job, int64_t row_begin, int64_t row_end) {
  if (job.prefetch) {
    RotateRowRange<kPairing, kInverse, true>(job, row_begin, row_end);
  } else {
    RotateRowRange<kPairing, kInverse, false>(job, row_begin, row_end);
  }
}

// This target's entry in the kernel registry.
constexpr KernelTable MakeKernelTable() {
  KernelTable table{};
  table.rotate[kNeoxPairs][kForward] = &RotateRows<kNeoxPairs, false>;
  table.rotate[kNeoxPairs][kInverse] = &RotateRows<kNeoxPairs, true>;
  table.rotate[kInterleavedPairs][kForward] = &RotateRows<kInterleavedPairs, false>;
  table.rotate[kInterleavedPairs][kInverse] = &RotateRows<kInterleavedPairs, true>;
  return table;
}

// NOLINTNEXTLINE(google-readability-namespace-comments)
}  // namespace HWY_NAMESPACE
}  // namespace rotary
HWY_AFTER_NAMESPACE();

#endif  // per-target include guard
