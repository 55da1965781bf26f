// Per-target RoPE kernels (f32). Included once per Highway target through
// hwy/foreach_target.h; everything here lives in rotary::HWY_NAMESPACE.
//
// Math (ROPE_MATH.md §1.2, §1.5): a pair (a, c) at angle t becomes
//   forward: a' = a cos t - c sin t,   c' = a sin t + c cos t
//   inverse: a' = a cos t + c sin t,   c' = c cos t - a sin t
// The table row of a position holds `pairs` cos values then `pairs` sin values.
// One row is read per (b, s) and applied to every head of that row.

// Per-target include guard (Highway's convention for -inl.h files).
#if defined(ROTARY_DISPATCH_ROPE_KERNELS_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef ROTARY_DISPATCH_ROPE_KERNELS_INL_H_
#undef ROTARY_DISPATCH_ROPE_KERNELS_INL_H_
#else
#define ROTARY_DISPATCH_ROPE_KERNELS_INL_H_
#endif

#include <cstring>

#include "dispatch/kernel_api.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace rotary {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using DF = hn::ScalableTag<float>;
using VF = hn::Vec<DF>;

// Largest vector of any target, in floats: bounds the stack buffers of tails.
constexpr size_t kMaxLanes = HWY_MAX_BYTES / sizeof(float);

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

// NeoX / half-split: pair i is (x[i], x[i + pairs]).
template <bool kInverse>
HWY_INLINE void RotateHeadNeox(float* HWY_RESTRICT x, const float* HWY_RESTRICT cos,
                               const float* HWY_RESTRICT sin, size_t pairs) {
  const DF d;
  const size_t N = hn::Lanes(d);
  float* HWY_RESTRICT x_hi = x + pairs;
  size_t i = 0;
  for (; i + N <= pairs; i += N) {
    VF a = hn::LoadU(d, x + i);
    VF c = hn::LoadU(d, x_hi + i);
    RotatePairs<kInverse>(a, c, hn::LoadU(d, cos + i), hn::LoadU(d, sin + i));
    hn::StoreU(a, d, x + i);
    hn::StoreU(c, d, x_hi + i);
  }
  if (i == pairs) return;
  // Tail of fewer than N pairs: go through stack buffers so that no lane outside
  // the head is ever read or written (the caller's memory may end right here).
  const size_t rest = pairs - i;
  HWY_ALIGN float buf_a[kMaxLanes] = {}, buf_c[kMaxLanes] = {};
  HWY_ALIGN float buf_cos[kMaxLanes] = {}, buf_sin[kMaxLanes] = {};
  std::memcpy(buf_a, x + i, rest * sizeof(float));
  std::memcpy(buf_c, x_hi + i, rest * sizeof(float));
  std::memcpy(buf_cos, cos + i, rest * sizeof(float));
  std::memcpy(buf_sin, sin + i, rest * sizeof(float));
  VF a = hn::Load(d, buf_a);
  VF c = hn::Load(d, buf_c);
  RotatePairs<kInverse>(a, c, hn::Load(d, buf_cos), hn::Load(d, buf_sin));
  hn::Store(a, d, buf_a);
  hn::Store(c, d, buf_c);
  std::memcpy(x + i, buf_a, rest * sizeof(float));
  std::memcpy(x_hi + i, buf_c, rest * sizeof(float));
}

// Interleaved / GPT-J: pair i is (x[2i], x[2i + 1]).
template <bool kInverse>
HWY_INLINE void RotateHeadInterleaved(float* HWY_RESTRICT x, const float* HWY_RESTRICT cos,
                                      const float* HWY_RESTRICT sin, size_t pairs) {
  const DF d;
  const size_t N = hn::Lanes(d);
  size_t i = 0;
  for (; i + N <= pairs; i += N) {
    VF a, c;
    hn::LoadInterleaved2(d, x + 2 * i, a, c);
    RotatePairs<kInverse>(a, c, hn::LoadU(d, cos + i), hn::LoadU(d, sin + i));
    hn::StoreInterleaved2(a, c, d, x + 2 * i);
  }
  if (i == pairs) return;
  const size_t rest = pairs - i;
  HWY_ALIGN float buf_x[2 * kMaxLanes] = {};
  HWY_ALIGN float buf_cos[kMaxLanes] = {}, buf_sin[kMaxLanes] = {};
  std::memcpy(buf_x, x + 2 * i, 2 * rest * sizeof(float));
  std::memcpy(buf_cos, cos + i, rest * sizeof(float));
  std::memcpy(buf_sin, sin + i, rest * sizeof(float));
  VF a, c;
  hn::LoadInterleaved2(d, buf_x, a, c);
  RotatePairs<kInverse>(a, c, hn::Load(d, buf_cos), hn::Load(d, buf_sin));
  hn::StoreInterleaved2(a, c, d, buf_x);
  std::memcpy(x + 2 * i, buf_x, 2 * rest * sizeof(float));
}

template <int kPairing, bool kInverse>
HWY_INLINE void RotateHead(float* x, const float* cos, const float* sin, size_t pairs) {
  if (kPairing == kNeoxPairs) {
    RotateHeadNeox<kInverse>(x, cos, sin, pairs);
  } else {
    RotateHeadInterleaved<kInverse>(x, cos, sin, pairs);
  }
}

// Rows [row_begin, row_end) of a job; row = b * seq + s. The table row of each
// (b, s) is looked up once and applied to all heads of that row.
template <int kPairing, bool kInverse>
void RotateRows(const RowJob& job, int64_t row_begin, int64_t row_end) {
  int64_t b = row_begin / job.seq;
  int64_t s = row_begin % job.seq;
  for (int64_t row = row_begin; row < row_end; ++row) {
    const float* cos = job.table.Row(job.Position(b, s));
    const float* sin = cos + job.pairs;
    float* head = job.data + b * job.stride_batch + s * job.stride_seq;
    for (int64_t h = 0; h < job.heads; ++h, head += job.stride_head) {
      RotateHead<kPairing, kInverse>(head, cos, sin, job.pairs);
    }
    if (++s == job.seq) {
      s = 0;
      ++b;
    }
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
