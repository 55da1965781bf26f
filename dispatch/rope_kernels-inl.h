// Per-target RoPE kernels. Included once per Highway target through
// hwy/foreach_target.h; everything here lives in rotary::HWY_NAMESPACE.
//
// Math (ROPE_MATH.md §1.2, §1.5): a pair (a, c) at angle t becomes
//   forward: a' = a cos t - c sin t,   c' = a sin t + c cos t
//   inverse: a' = a cos t + c sin t,   c' = c cos t - a sin t
// computed in f32 whatever the storage (f32, f16, bf16), rounded once on store.
// The table row of a position holds the cos values then the sin values, in the
// layout of the pairing (see TableLayout). One row is read per (b, s) and
// applied to every head of that row, of q and k alike.

// Per-target include guard (Highway's convention for -inl.h files).
#if defined(ROTARY_DISPATCH_ROPE_KERNELS_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef ROTARY_DISPATCH_ROPE_KERNELS_INL_H_
#undef ROTARY_DISPATCH_ROPE_KERNELS_INL_H_
#else
#define ROTARY_DISPATCH_ROPE_KERNELS_INL_H_
#endif

#include <cstring>
#include <tuple>
#include <utility>

#include "dispatch/convert-inl.h"
#include "dispatch/kernel_api.h"
#include "dispatch/row_synthesis-inl.h"
#include "hwy/cache_control.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace rotary {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// How far ahead of the current element large (memory-bound) calls prefetch.
// The half-split pattern (x[i] with x[i + pairs]) defeats part of the hardware
// prefetcher; asking for the lines ~8 KiB ahead keeps enough misses in flight
// for one core to reach streaming bandwidth. Prefetches never fault, so running
// past the end of the tensor is harmless.
constexpr size_t kPrefetchBytes = 8192;

template <bool kPrefetch, typename T>
HWY_INLINE void PrefetchAhead(const T* p) {
  if (kPrefetch) hwy::Prefetch(p + kPrefetchBytes / sizeof(T));
}

// Heads are rotated kHeadGroup at a time (heads h .. h + kHeadGroup - 1 of one
// row), so every cos/sin vector loaded from the table serves several heads.
constexpr size_t kHeadGroup = 4;

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

// Up to N elements through stack buffers, so that no lane outside the head is
// read or written (the caller's memory may end right there).
template <class S>
struct TailBuffer {
  HWY_ALIGN typename S::T data[kMaxLanes] = {};

  void Read(const typename S::T* from, size_t count) { std::memcpy(data, from, count * sizeof(data[0])); }
  void Write(typename S::T* to, size_t count) const { std::memcpy(to, data, count * sizeof(data[0])); }
};

HWY_INLINE VF LoadTail(const float* from, size_t count) {
  TailBuffer<F32Storage> buffer;
  buffer.Read(from, count);
  return hn::Load(DF(), buffer.data);
}

// ---- NeoX / half-split: pair i is (x[i], x[i + pairs]); table row: cos t_i, then sin t_i ----

template <class Src, class Dst, bool kInverse>
HWY_INLINE void RotateNeoxTail(const typename Src::T* x, typename Dst::T* y, const float* HWY_RESTRICT cos,
                               const float* HWY_RESTRICT sin, VF scale, size_t i, size_t pairs) {
  const size_t rest = pairs - i;
  TailBuffer<Src> in_a, in_c;
  in_a.Read(x + i, rest);
  in_c.Read(x + pairs + i, rest);
  VF a = LoadF32(Src(), in_a.data);
  VF c = LoadF32(Src(), in_c.data);
  RotatePairs<kInverse>(a, c, hn::Mul(LoadTail(cos + i, rest), scale), hn::Mul(LoadTail(sin + i, rest), scale));
  TailBuffer<Dst> out_a, out_c;
  StoreF32(Dst(), a, out_a.data);
  StoreF32(Dst(), c, out_c.data);
  out_a.Write(y + i, rest);
  out_c.Write(y + pairs + i, rest);
}

// kHeads heads, `x_stride` / `y_stride` elements apart; x == y when in place.
template <class Src, class Dst, bool kInverse, bool kPrefetch, size_t kHeads>
HWY_INLINE void RotateNeoxHeads(const typename Src::T* x0, int64_t x_stride, typename Dst::T* y0, int64_t y_stride,
                                const float* HWY_RESTRICT cos, const float* HWY_RESTRICT sin, VF scale,
                                size_t pairs) {
  const DF d;
  const size_t N = hn::Lanes(d);
  size_t i = 0;
  for (; i + N <= pairs; i += N) {
    const VF cs = hn::Mul(hn::LoadU(d, cos + i), scale);
    const VF sn = hn::Mul(hn::LoadU(d, sin + i), scale);
    for (size_t h = 0; h < kHeads; ++h) {
      const typename Src::T* x = x0 + static_cast<int64_t>(h) * x_stride;
      typename Dst::T* y = y0 + static_cast<int64_t>(h) * y_stride;
      PrefetchAhead<kPrefetch>(x + i);
      PrefetchAhead<kPrefetch>(x + pairs + i);
      VF a = LoadF32(Src(), x + i);
      VF c = LoadF32(Src(), x + pairs + i);
      RotatePairs<kInverse>(a, c, cs, sn);
      StoreF32(Dst(), a, y + i);
      StoreF32(Dst(), c, y + pairs + i);
    }
  }
  if (i == pairs) return;
  for (size_t h = 0; h < kHeads; ++h) {
    RotateNeoxTail<Src, Dst, kInverse>(x0 + static_cast<int64_t>(h) * x_stride, y0 + static_cast<int64_t>(h) * y_stride,
                                       cos, sin, scale, i, pairs);
  }
}

// ---- Interleaved / GPT-J: pair i is (x[2i], x[2i + 1]) ----
// The table row is laid out per component (TableLayout::kPerComponent):
// cos_dup[k] = cos t_(k/2), sin_alt[k] = -sin t_(k/2) for even k and
// +sin t_(k/2) for odd k, so that
//   y = x * cos_dup + swap_adjacent(x) * sin_alt
// costs one in-lane swap per vector instead of de- and re-interleaving.

#if HWY_TARGET != HWY_SCALAR
template <bool kInverse>
HWY_INLINE VF RotateAdjacent(VF v, VF cos_dup, VF sin_alt) {
  const VF swapped = hn::Reverse2(DF(), v);
  return kInverse ? hn::NegMulAdd(swapped, sin_alt, hn::Mul(v, cos_dup))
                  : hn::MulAdd(swapped, sin_alt, hn::Mul(v, cos_dup));
}

template <class Src, class Dst, bool kInverse>
HWY_INLINE void RotateInterleavedTail(const typename Src::T* x, typename Dst::T* y, const float* HWY_RESTRICT cos_dup,
                                      const float* HWY_RESTRICT sin_alt, VF scale, size_t k, size_t n) {
  const size_t rest = n - k;  // even, below N
  TailBuffer<Src> in;
  in.Read(x + k, rest);
  const VF cs = hn::Mul(LoadTail(cos_dup + k, rest), scale);
  const VF sn = hn::Mul(LoadTail(sin_alt + k, rest), scale);
  TailBuffer<Dst> out;
  StoreF32(Dst(), RotateAdjacent<kInverse>(LoadF32(Src(), in.data), cs, sn), out.data);
  out.Write(y + k, rest);
}
#endif

template <class Src, class Dst, bool kInverse, bool kPrefetch, size_t kHeads>
HWY_INLINE void RotateInterleavedHeads(const typename Src::T* x0, int64_t x_stride, typename Dst::T* y0,
                                       int64_t y_stride, const float* HWY_RESTRICT cos_dup,
                                       const float* HWY_RESTRICT sin_alt, VF scale, size_t pairs) {
  const DF d;
  const size_t n = 2 * pairs;
#if HWY_TARGET == HWY_SCALAR
  // One lane cannot hold a pair: rotate pair by pair (sin_alt[k + 1] is +sin).
  for (size_t k = 0; k < n; k += 2) {
    const VF cs = hn::Mul(hn::Set(d, cos_dup[k]), scale);
    const VF sn = hn::Mul(hn::Set(d, sin_alt[k + 1]), scale);
    for (size_t h = 0; h < kHeads; ++h) {
      const typename Src::T* x = x0 + static_cast<int64_t>(h) * x_stride;
      typename Dst::T* y = y0 + static_cast<int64_t>(h) * y_stride;
      VF a = LoadF32(Src(), x + k);
      VF c = LoadF32(Src(), x + k + 1);
      RotatePairs<kInverse>(a, c, cs, sn);
      StoreF32(Dst(), a, y + k);
      StoreF32(Dst(), c, y + k + 1);
    }
  }
  (void)kPrefetch;
#else
  const size_t N = hn::Lanes(d);  // even on every target but SCALAR
  size_t k = 0;
  for (; k + N <= n; k += N) {
    const VF cs = hn::Mul(hn::LoadU(d, cos_dup + k), scale);
    const VF sn = hn::Mul(hn::LoadU(d, sin_alt + k), scale);
    for (size_t h = 0; h < kHeads; ++h) {
      const typename Src::T* x = x0 + static_cast<int64_t>(h) * x_stride;
      PrefetchAhead<kPrefetch>(x + k);
      StoreF32(Dst(), RotateAdjacent<kInverse>(LoadF32(Src(), x + k), cs, sn),
               y0 + static_cast<int64_t>(h) * y_stride + k);
    }
  }
  if (k == n) return;
  for (size_t h = 0; h < kHeads; ++h) {
    RotateInterleavedTail<Src, Dst, kInverse>(x0 + static_cast<int64_t>(h) * x_stride,
                                              y0 + static_cast<int64_t>(h) * y_stride, cos_dup, sin_alt, scale, k, n);
  }
#endif
}

// ---- The components past rotary_dim: y = scale * x, converted ----

template <class Src, class Dst>
HWY_INLINE void ScaleCopy(const typename Src::T* x, typename Dst::T* y, VF scale, size_t count) {
  const DF d;
  const size_t N = hn::Lanes(d);
  size_t k = 0;
  for (; k + N <= count; k += N) StoreF32(Dst(), hn::Mul(LoadF32(Src(), x + k), scale), y + k);
  if (k == count) return;
  TailBuffer<Src> in;
  in.Read(x + k, count - k);
  TailBuffer<Dst> out;
  StoreF32(Dst(), hn::Mul(LoadF32(Src(), in.data), scale), out.data);
  out.Write(y + k, count - k);
}

// ---- Rows ----

template <int kPairing, class Src, class Dst, bool kInverse, bool kPrefetch, size_t kHeads>
HWY_INLINE void RotateHeads(const typename Src::T* x, int64_t x_stride, typename Dst::T* y, int64_t y_stride,
                            const float* cos, const float* sin, VF scale, size_t pairs) {
  if (kPairing == kNeoxPairs) {
    RotateNeoxHeads<Src, Dst, kInverse, kPrefetch, kHeads>(x, x_stride, y, y_stride, cos, sin, scale, pairs);
  } else {
    RotateInterleavedHeads<Src, Dst, kInverse, kPrefetch, kHeads>(x, x_stride, y, y_stride, cos, sin, scale, pairs);
  }
}

// One f32 head in place (what the kernel tests sweep).
template <int kPairing, bool kInverse, bool kPrefetch = false>
HWY_INLINE void RotateHead(float* x, const float* cos, const float* sin, size_t pairs) {
  RotateHeads<kPairing, F32Storage, F32Storage, kInverse, kPrefetch, 1>(x, 0, x, 0, cos, sin, hn::Set(DF(), 1.0f),
                                                                        pairs);
}

// All heads of one operand at row (b, s).
template <int kPairing, class Src, class Dst, bool kInverse, bool kPrefetch>
HWY_INLINE void RotateOperandRow(const Operand& op, int64_t b, int64_t s, const float* cos, const float* sin,
                                 size_t pairs, size_t head_dim) {
  const typename Src::T* x =
      static_cast<const typename Src::T*>(op.src) + b * op.src_stride_batch + s * op.src_stride_seq;
  typename Dst::T* y = static_cast<typename Dst::T*>(op.dst) + b * op.dst_stride_batch + s * op.dst_stride_seq;
  const int64_t xs = op.src_stride_head, ys = op.dst_stride_head;
  const VF scale = hn::Set(DF(), op.scale);
  int64_t h = 0;
  for (; h + static_cast<int64_t>(kHeadGroup) <= op.heads; h += kHeadGroup) {
    RotateHeads<kPairing, Src, Dst, kInverse, kPrefetch, kHeadGroup>(x + h * xs, xs, y + h * ys, ys, cos, sin, scale,
                                                                     pairs);
  }
  for (; h < op.heads; ++h) {
    RotateHeads<kPairing, Src, Dst, kInverse, kPrefetch, 1>(x + h * xs, xs, y + h * ys, ys, cos, sin, scale, pairs);
  }
  if (op.write_rest && head_dim > 2 * pairs) {
    for (h = 0; h < op.heads; ++h) {
      ScaleCopy<Src, Dst>(x + h * xs + 2 * pairs, y + h * ys + 2 * pairs, scale, head_dim - 2 * pairs);
    }
  }
}

// Rows [row_begin, row_end) of a job; row = b * seq + s. The table row of each
// (b, s) is looked up (or, with row_buffer, synthesized into it) once and
// applied to all heads of every operand. Not inlined, so the full-table and
// synthesized paths share one copy.
template <int kPairing, bool kInverse, class Src, class Dst, bool kPrefetch>
HWY_NOINLINE void RotateRowRange(const RowJob& job, int64_t row_begin, int64_t row_end, float* row_buffer) {
  int64_t b = row_begin / job.seq;
  int64_t s = row_begin % job.seq;
  for (int64_t row = row_begin; row < row_end; ++row) {
    const float* cos = row_buffer ? SynthesizeRow(job.table, job.Position(b, s), row_buffer)
                                  : job.table.Row(job.Position(b, s));
    const float* sin = cos + job.table.row_floats / 2;
    for (int o = 0; o < job.num_operands; ++o) {
      RotateOperandRow<kPairing, Src, Dst, kInverse, kPrefetch>(job.operands[o], b, s, cos, sin, job.pairs,
                                                                job.head_dim);
    }
    if (++s == job.seq) {
      s = 0;
      ++b;
    }
  }
}

template <int kPairing, bool kInverse, class Src, class Dst>
HWY_NOINLINE void RotateSynthesizedRows(const RowJob& job, int64_t row_begin, int64_t row_end) {
  HWY_ALIGN float row_buffer[kMaxRowFloats];
  if (job.prefetch) {
    RotateRowRange<kPairing, kInverse, Src, Dst, true>(job, row_begin, row_end, row_buffer);
  } else {
    RotateRowRange<kPairing, kInverse, Src, Dst, false>(job, row_begin, row_end, row_buffer);
  }
}

template <int kPairing, bool kInverse, class Src, class Dst>
void RotateRows(const RowJob& job, int64_t row_begin, int64_t row_end) {
  if (job.table.mode != RowSource::kFull) {
    RotateSynthesizedRows<kPairing, kInverse, Src, Dst>(job, row_begin, row_end);
  } else if (job.prefetch) {
    RotateRowRange<kPairing, kInverse, Src, Dst, true>(job, row_begin, row_end, nullptr);
  } else {
    RotateRowRange<kPairing, kInverse, Src, Dst, false>(job, row_begin, row_end, nullptr);
  }
}

// ---- This target's entry in the kernel registry ----

using StorageTypes = std::tuple<F32Storage, F16Storage, BF16Storage>;  // in DtypeIndex order

template <int kPairing, int kDirection, size_t... kPair>
constexpr void FillStoragePairs(KernelTable& table, std::index_sequence<kPair...>) {
  ((table.rotate[kPairing][kDirection][kPair / kNumDtypes][kPair % kNumDtypes] =
        &RotateRows<kPairing, kDirection == kInverse, std::tuple_element_t<kPair / kNumDtypes, StorageTypes>,
                    std::tuple_element_t<kPair % kNumDtypes, StorageTypes>>),
   ...);
}

constexpr KernelTable MakeKernelTable() {
  KernelTable table{};
  constexpr auto kAllPairs = std::make_index_sequence<kNumDtypes * kNumDtypes>();
  FillStoragePairs<kNeoxPairs, kForward>(table, kAllPairs);
  FillStoragePairs<kNeoxPairs, kInverse>(table, kAllPairs);
  FillStoragePairs<kInterleavedPairs, kForward>(table, kAllPairs);
  FillStoragePairs<kInterleavedPairs, kInverse>(table, kAllPairs);
  return table;
}

// NOLINTNEXTLINE(google-readability-namespace-comments)
}  // namespace HWY_NAMESPACE
}  // namespace rotary
HWY_AFTER_NAMESPACE();

#endif  // per-target include guard
