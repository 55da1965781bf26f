// Per-target RoPE kernels: the definition of RotateRows (declared in
// kernel_entry_points-inl.h), instantiated per pairing and source storage by
// the files in dispatch/instances/, once per Highway target through
// hwy/foreach_target.h; everything here lives in rotary::HWY_NAMESPACE.
//
// Math (docs/math.md): a pair (a, c) at angle t becomes
//   a' = a cos t - c sin t,   c' = a sin t + c cos t
// computed in f32 whatever the storage (f32, f16, bf16), rounded once on store:
// a' = fma(-c, sin t, a cos t), c' = fma(a, sin t, c cos t), the product inside
// the fused multiply-add not rounded, on every target (fused_multiply_add-inl.h).
// The inverse rotation is this one with the table of the negated angles
// (lib/tables/plan_tables.h): the kernels know one direction.
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

#include <algorithm>
#include <memory>
#include <type_traits>
#include <utility>

#include "dispatch/convert-inl.h"
#include "dispatch/fused_multiply_add-inl.h"
#include "dispatch/kernel_api.h"
#include "dispatch/kernel_entry_points-inl.h"
#include "dispatch/partial_vectors-inl.h"
#include "hwy/cache_control.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace rotary {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// Orders of visiting the heads of a row. With 32 vector registers (AVX-512),
// a table row (or scaled row chunk) of 2, 4 or 8 vectors per half is held in
// registers and the heads go front to back (see "Table row held in
// registers"). Otherwise RowJob::streaming picks one of two:
// - cache-resident calls rotate kHeadGroup heads per cos/sin vector loaded, so
//   table loads do not compete with the data for the L1 ports (one table load
//   per data load cost ~25% of L2 bandwidth on AMD Zen 4);
// - calls streaming from DRAM rotate one head at a time, front to back, so the
//   lines of the tensor are touched in address order, the pattern hardware
//   prefetchers follow best: interleaving the heads of a group cost 30-50% of
//   DRAM bandwidth on Zen 4 (software prefetching did not win it back).
constexpr size_t kHeadGroup = 4;

// GCC folds a loaded vector into each instruction that uses it (a * cos and
// c * cos + a * sin both read `a` from memory; one head at a time, cos and
// sin too), doubling the loads; on AMD Zen 4, whose L1 serves one 512-bit
// load per cycle, that cost 20-35% of the bandwidth of L2- and L3-resident
// calls. An empty asm keeps the loaded value in a register (x86 SIMD targets,
// where it was measured).
HWY_INLINE VF InRegister(VF v) {
#if HWY_ARCH_X86 && HWY_TARGET != HWY_SCALAR && HWY_TARGET != HWY_EMU128
  asm("" : "+v"(v.raw));
#endif
  return v;
}

// Rotates lane-wise pairs (a[j], c[j]) by the angles whose cos/sin are (cs, sn).
HWY_INLINE void RotatePairs(VF& a, VF& c, VF cs, VF sn) {
  FusedMulAdd2</*kNegateFirst=*/true>(c, sn, Product(a, cs), a, sn, Product(c, cs), a, c);
}

// ---- NeoX / half-split: pair i is (x[i], x[i + half]); table: cos t_i, then sin t_i ----
// A head is rotated in chunks of pairs (see RotateOperandRow), so the chunk's
// first pair is x[0] and its partner sits `half` (= rotary_dim / 2) further.

// The last partial vector of each half of one head. Not inlined: inlined into
// every head loop it made the kernels compile 40% longer and the library
// larger, for a fifth at most of a partial-rotary call's time.
template <class Src, class Dst>
HWY_NOINLINE void RotateNeoxTail(const typename Src::T* x, typename Dst::T* y, const float* HWY_RESTRICT cos,
                                 const float* HWY_RESTRICT sin, size_t i, size_t count, size_t half) {
  const size_t rest = count - i;
  VF a = LoadTailF32<Src>(x + i, rest, i);
  VF c = LoadTailF32<Src>(x + half + i, rest, half + i);
  RotatePairs(a, c, LoadPart(cos + i, rest, i), LoadPart(sin + i, rest, i));
  StoreTailF32<Dst>(a, y + i, rest);
  StoreTailF32<Dst>(c, y + half + i, rest);
}

// bf16 stored two vectors at a time on Arm: StoreF32Pair joins their rounded
// upper halves with one uzp2 and one full-width store, where StoreF32 narrows
// each vector (ushr, sqxtun, a half-width store): 3 vector µops fewer per 2N
// elements on Neoverse N1.
template <class Dst>
constexpr bool kStoresPairs = ROTARY_ARM_VECTORS && std::is_same_v<Dst, BF16Storage>;

// Pairs [0, count) of kHeads heads, `xs` / `ys` elements apart; x == y when in place.
template <class Src, class Dst, size_t kHeads>
HWY_INLINE void RotateNeoxHeads(const typename Src::T* x, int64_t xs, typename Dst::T* y, int64_t ys,
                                const float* HWY_RESTRICT cos, const float* HWY_RESTRICT sin, size_t count,
                                size_t half) {
  const DF d;
  const size_t N = hn::Lanes(d);
  size_t i = 0;
  if constexpr (kStoresPairs<Dst>) {
    for (; i + 2 * N <= count; i += 2 * N) {
      const VF cs0 = hn::LoadU(d, cos + i), cs1 = hn::LoadU(d, cos + i + N);
      const VF sn0 = hn::LoadU(d, sin + i), sn1 = hn::LoadU(d, sin + i + N);
      for (size_t h = 0; h < kHeads; ++h) {
        const typename Src::T* xh = x + static_cast<int64_t>(h) * xs + i;
        typename Dst::T* yh = y + static_cast<int64_t>(h) * ys + i;
        VF a0 = LoadF32(Src(), xh), a1 = LoadF32(Src(), xh + N);
        VF c0 = LoadF32(Src(), xh + half), c1 = LoadF32(Src(), xh + half + N);
        RotatePairs(a0, c0, cs0, sn0);
        RotatePairs(a1, c1, cs1, sn1);
        StoreF32Pair(Dst(), a0, a1, yh);
        StoreF32Pair(Dst(), c0, c1, yh + half);
      }
    }
  }
  for (; i + N <= count; i += N) {
    const VF cs = InRegister(hn::LoadU(d, cos + i));  // used twice per head
    const VF sn = InRegister(hn::LoadU(d, sin + i));
    for (size_t h = 0; h < kHeads; ++h) {
      const typename Src::T* xh = x + static_cast<int64_t>(h) * xs;
      typename Dst::T* yh = y + static_cast<int64_t>(h) * ys;
      VF a = InRegister(LoadF32(Src(), xh + i));
      VF c = InRegister(LoadF32(Src(), xh + half + i));
      RotatePairs(a, c, cs, sn);
      StoreF32(Dst(), a, yh + i);
      StoreF32(Dst(), c, yh + half + i);
    }
  }
  if (i == count) return;
  for (size_t h = 0; h < kHeads; ++h) {
    RotateNeoxTail<Src, Dst>(x + static_cast<int64_t>(h) * xs, y + static_cast<int64_t>(h) * ys, cos, sin,
                                       i, count, half);
  }
}

// ---- Interleaved / GPT-J: pair i is (x[2i], x[2i + 1]) ----
// The table row is laid out per component (TableLayout::kPerComponent):
// cos_dup[k] = cos t_(k/2), sin_alt[k] = -sin t_(k/2) for even k and
// +sin t_(k/2) for odd k, so that
//   y = x * cos_dup + swap_adjacent(x) * sin_alt
// costs one in-lane swap per vector instead of de- and re-interleaving.

#if HWY_TARGET != HWY_SCALAR
HWY_INLINE VF RotateAdjacent(VF v, VF cos_dup, VF sin_alt) {
  return FusedMulAdd(hn::Reverse2(DF(), v), sin_alt, Product(v, cos_dup));
}

// The last partial vector of one head (not inlined, as RotateNeoxTail).
template <class Src, class Dst>
HWY_NOINLINE void RotateInterleavedTail(const typename Src::T* x, typename Dst::T* y,
                                        const float* HWY_RESTRICT cos_dup, const float* HWY_RESTRICT sin_alt, size_t k,
                                        size_t n) {
  const size_t rest = n - k;  // even, below N
  const VF rotated = RotateAdjacent(LoadTailF32<Src>(x + k, rest, k), LoadPart(cos_dup + k, rest, k),
                                              LoadPart(sin_alt + k, rest, k));
  StoreTailF32<Dst>(rotated, y + k, rest);
}
#endif

// Arm's structure loads and stores (ld2/st2), on NEON and SVE.
#undef ROTARY_PAIR_LOADS
#define ROTARY_PAIR_LOADS ROTARY_ARM_VECTORS

#if ROTARY_PAIR_LOADS
// 2N elements of f32 or f16 storage as their even and odd elements in f32
// (ld2), and back (st2), converted as LoadF32 / StoreF32 convert; bf16, whose
// lanes hold the pairs, by bf16_lanes.
template <class S>
constexpr bool kPairLoads = std::is_same_v<S, F32Storage> || std::is_same_v<S, F16Storage> ||
                            (ROTARY_BF16_LANES && std::is_same_v<S, BF16Storage>);
using DU16Half = hn::Rebind<uint16_t, DF>;
using DF16Half = hn::Rebind<hwy::float16_t, DF>;

HWY_INLINE void LoadPairsF32(F32Storage, const float* p, VF& even, VF& odd) {
  hn::LoadInterleaved2(DF(), p, even, odd);
}
HWY_INLINE void LoadPairsF32(F16Storage, const uint16_t* p, VF& even, VF& odd) {
  hn::Vec<DU16Half> e, o;
  hn::LoadInterleaved2(DU16Half(), p, e, o);
  even = hn::PromoteTo(DF(), hn::BitCast(DF16Half(), e));
  odd = hn::PromoteTo(DF(), hn::BitCast(DF16Half(), o));
}
// st2 stores two consecutive registers. Through Highway's StoreInterleaved2
// GCC 12 computes the rotated pair elsewhere and copies both into such a
// register pair first (two movs on NEON, two movprfx on SVE): two vector µops
// more per store, in loops the vector pipes bind (docs/performance.md, the
// Arm model). With the pair pinned to v30/v31 (z30/z31: caller-saved) for a
// st2 of our own, GCC computes the products into them and rotates in place.
#if HWY_TARGET == HWY_NEON
HWY_INLINE void StorePairsF32(F32Storage, VF even, VF odd, float* p) {
  register float32x4_t first asm("v30") = even.raw;
  register float32x4_t second asm("v31") = odd.raw;
  asm("st2 {v30.4s, v31.4s}, %0" : "=Q"(*reinterpret_cast<float(*)[8]>(p)) : "w"(first), "w"(second));
}
#else
HWY_INLINE void StorePairsF32(F32Storage, VF even, VF odd, float* p) {
  register svfloat32_t first asm("z30") = even;
  register svfloat32_t second asm("z31") = odd;
  // Highway's predicate for DF (its lanes; on the length-agnostic SVE the
  // largest power of two). The memory operand covers two of the longest SVE
  // vectors (2048 bits) and is read too, so that GCC keeps every store
  // around it.
  asm("st2w {z30.s, z31.s}, %[pg], [%[p]]"
      : "+m"(*reinterpret_cast<float(*)[128]>(p))
      : [pg] "Upl"(hn::detail::MakeMask(DF())), [p] "r"(p), "w"(first), "w"(second));
}
#endif
HWY_INLINE void StorePairsF32(F16Storage, VF even, VF odd, uint16_t* p) {
  hn::StoreInterleaved2(hn::BitCast(DU16Half(), hn::DemoteTo(DF16Half(), even)),
                        hn::BitCast(DU16Half(), hn::DemoteTo(DF16Half(), odd)), DU16Half(), p);
}
#if ROTARY_BF16_LANES
HWY_INLINE void LoadPairsF32(BF16Storage, const uint16_t* p, VF& even, VF& odd) { bf16_lanes::Load(p, even, odd); }
HWY_INLINE void StorePairsF32(BF16Storage, VF even, VF odd, uint16_t* p) { bf16_lanes::Store(even, odd, p); }
#endif
#endif

// x86's two-source shuffles take the pairs of 2N components apart into their
// first and second elements, and unpack joins them back, within each 128-bit
// block, one instruction per vector each way. The interleaved kernels then
// rotate as the neox ones do, with one cos and one sin vector per 2N
// components (split from the row once per row chunk: SplitRowChunk) instead
// of two table vectors and a lane swap per N; the same products and fused
// adds of the same values, so the same bits. Streaming from DRAM, that form
// (four vectors read per 2N components instead of six) keeps up with the
// stream loop where the swap form did not (measured on AVX2, Zen 5). Not on
// SSE4 and SSSE3: their emulated fused multiply-add bounds them even from
// DRAM, and the shuffles only add to it.
#undef ROTARY_SPLIT_PAIRS
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX2
#define ROTARY_SPLIT_PAIRS 1
// Per block: even = (v0[0], v0[2], v1[0], v1[2]), odd = (v0[1], v0[3], v1[1], v1[3]).
HWY_INLINE void SplitPairs(VF v0, VF v1, VF& even, VF& odd) {
#if HWY_TARGET <= HWY_AVX3
  even = VF{_mm512_shuffle_ps(v0.raw, v1.raw, _MM_SHUFFLE(2, 0, 2, 0))};
  odd = VF{_mm512_shuffle_ps(v0.raw, v1.raw, _MM_SHUFFLE(3, 1, 3, 1))};
#else
  even = VF{_mm256_shuffle_ps(v0.raw, v1.raw, _MM_SHUFFLE(2, 0, 2, 0))};
  odd = VF{_mm256_shuffle_ps(v0.raw, v1.raw, _MM_SHUFFLE(3, 1, 3, 1))};
#endif
}

// The inverse of SplitPairs (InterleaveLower/Upper work per block).
HWY_INLINE void JoinPairs(VF even, VF odd, VF& v0, VF& v1) {
  v0 = hn::InterleaveLower(DF(), even, odd);
  v1 = hn::InterleaveUpper(DF(), even, odd);
}
#else
#define ROTARY_SPLIT_PAIRS 0
#endif

// Pairs [0, count) (components [0, 2 * count)) of kHeads heads, `xs` / `ys` elements apart.
template <class Src, class Dst, size_t kHeads>
HWY_INLINE void RotateInterleavedHeads(const typename Src::T* x, int64_t xs, typename Dst::T* y, int64_t ys,
                                       const float* HWY_RESTRICT cos_dup, const float* HWY_RESTRICT sin_alt,
                                       size_t count) {
  const DF d;
  const size_t n = 2 * count;
#if HWY_TARGET == HWY_SCALAR
  // One lane cannot hold a pair: rotate pair by pair (sin_alt[k + 1] is +sin).
  for (size_t k = 0; k < n; k += 2) {
    const VF cs = hn::Set(d, cos_dup[k]);
    const VF sn = hn::Set(d, sin_alt[k + 1]);
    for (size_t h = 0; h < kHeads; ++h) {
      const typename Src::T* xh = x + static_cast<int64_t>(h) * xs;
      typename Dst::T* yh = y + static_cast<int64_t>(h) * ys;
      VF a = LoadF32(Src(), xh + k);
      VF c = LoadF32(Src(), xh + k + 1);
      RotatePairs(a, c, cs, sn);
      StoreF32(Dst(), a, yh + k);
      StoreF32(Dst(), c, yh + k + 1);
    }
  }
#else
  const size_t N = hn::Lanes(d);  // even on every target but SCALAR
  size_t k = 0;
#if !HWY_NATIVE_FMA
  // Two vectors of a head per emulated fused multiply-add (FusedMulAdd2).
  for (; k + 2 * N <= n; k += 2 * N) {
    const VF cs0 = hn::LoadU(d, cos_dup + k), cs1 = hn::LoadU(d, cos_dup + k + N);
    const VF sn0 = hn::LoadU(d, sin_alt + k), sn1 = hn::LoadU(d, sin_alt + k + N);
    for (size_t h = 0; h < kHeads; ++h) {
      const typename Src::T* xh = x + static_cast<int64_t>(h) * xs + k;
      VF v0 = LoadF32(Src(), xh), v1 = LoadF32(Src(), xh + N);
      FusedMulAdd2(hn::Reverse2(d, v0), sn0, hn::Mul(v0, cs0), hn::Reverse2(d, v1), sn1, hn::Mul(v1, cs1), v0, v1);
      StoreF32Pair(Dst(), v0, v1, y + static_cast<int64_t>(h) * ys + k);
    }
  }
#endif
  for (; k + N <= n; k += N) {
    const VF cs = hn::LoadU(d, cos_dup + k);
    const VF sn = hn::LoadU(d, sin_alt + k);
    for (size_t h = 0; h < kHeads; ++h) {
      StoreF32(Dst(), RotateAdjacent(InRegister(LoadF32(Src(), x + static_cast<int64_t>(h) * xs + k)), cs, sn),
               y + static_cast<int64_t>(h) * ys + k);
    }
  }
  if (k == n) return;
  for (size_t h = 0; h < kHeads; ++h) {
    RotateInterleavedTail<Src, Dst>(x + static_cast<int64_t>(h) * xs, y + static_cast<int64_t>(h) * ys,
                                              cos_dup, sin_alt, k, n);
  }
#endif
}

// ---- Copies: y = f(x), converted ----

// f of each vector of x[0, count), stored into y converted.
template <class Src, class Dst, class F>
HWY_INLINE void MapCopy(const typename Src::T* x, typename Dst::T* y, size_t count, const F& f) {
  const DF d;
  const size_t N = hn::Lanes(d);
  size_t k = 0;
  for (; k + N <= count; k += N) StoreF32(Dst(), f(LoadF32(Src(), x + k)), y + k);
  if (k == count) return;
  StoreTailF32<Dst>(f(LoadTailF32<Src>(x + k, count - k, k)), y + k, count - k);
}

// The components past rotary_dim: y = scale * x.
template <class Src, class Dst>
HWY_INLINE void ScaleCopy(const typename Src::T* x, typename Dst::T* y, VF scale, size_t count) {
  MapCopy<Src, Dst>(x, y, count, [&scale](VF v) { return hn::Mul(v, scale); });
}

// bf16 in and out: the kernels that take bf16 apart two per lane (bf16_lanes).
// Dst is BF16Storage or, on AVX3_ZEN4, BF16NativeStorage (rounded by the CPU).
template <class Src, class Dst>
constexpr bool kBF16ToBF16 = std::is_same<Src, BF16Storage>::value &&
                             (std::is_same<Dst, BF16Storage>::value || std::is_same<Dst, BF16NativeStorage>::value);

// Interleaved pairs taken apart by SplitPairs (x86), in any storage but bf16
// to bf16 (whose bf16_lanes split the pairs already).
template <int kPairing, class Src, class Dst>
constexpr bool kSplitPairsOf = ROTARY_SPLIT_PAIRS && kPairing == kInterleavedPairs && !kBF16ToBF16<Src, Dst>;

// Interleaved pairs on Arm (NEON, SVE), taken apart by LoadPairsF32 (f32 and
// f16 by the structure loads ld2/st2, bf16 by bf16_lanes) and rotated as neox
// pairs, with one cos and one sin vector per 2N components: the swap form (a
// lane swap and two table vectors per N) ran well over the stream loop's
// instructions per element (docs/performance.md). The table entries come split
// once per row chunk (SplitRowChunk), not by an ld2 of cos_dup and of sin_alt
// for every 2N components, which throws half of each load away and costs 2
// vector µops a Q-form ld2 on Neoverse N1, the pipes that bind these loops.
#if ROTARY_PAIR_LOADS
template <int kPairing, class Src, class Dst>
constexpr bool kPairLoadsOf = kPairing == kInterleavedPairs && kPairLoads<Src> && kPairLoads<Dst>;
#else
template <int kPairing, class Src, class Dst>
constexpr bool kPairLoadsOf = false;
#endif

// ---- Elements split into even and odd lanes: bf16 two per 32-bit lane, interleaved pairs ----
// A vector of 2N bf16 elements is taken apart into its even and odd elements
// as two f32 vectors by bit operations and joined back after rounding, with
// no widening, narrowing or lane swap (half the work of LoadF32/StoreF32).
// Interleaved pairs in other storage are loaded as two vectors and split by
// SplitPairs (x86), or by ld2 (Arm). The table entries of those elements are
// split the same way: once per row chunk into a stack buffer (SplitRowChunk),
// or once per row into registers (RotateBF16HeadsWithRowInRegisters). Not on
// SCALAR, where a lane cannot hold a pair.
#if ROTARY_BF16_LANES
// Where the entries of the even and odd elements of 2N land: in element
// order (bf16_lanes: lane j holds elements 2j and 2j + 1), or per 128-bit
// block as SplitPairs leaves them.
enum SplitOrder { kElementOrder, kBlockOrder };

template <SplitOrder kOrder>
HWY_INLINE void SplitEvenOdd(VF lo, VF hi, VF& even, VF& odd) {
#if ROTARY_SPLIT_PAIRS
  if constexpr (kOrder == kBlockOrder) {
    SplitPairs(lo, hi, even, odd);
    return;
  }
#endif
  even = hn::ConcatEven(DF(), hi, lo);
  odd = hn::ConcatOdd(DF(), hi, lo);
}

// The cos/sin of the 2N elements [at, at + 2N) of a head, split into the
// entries of the even and the odd elements. Neox: element k of a half pairs
// with cos[k] and sin[k]. Interleaved: lane j holds pair j, whose cos is
// cos_dup[2j] and whose +sin is sin_alt[2j + 1]; even and odd lanes share them.
// (Plain variables, not a struct: SVE vectors cannot be members.)
template <int kPairing, SplitOrder kOrder = kElementOrder>
HWY_INLINE void LoadSplitTable(const float* cos, const float* sin, size_t at, VF& cos_even, VF& cos_odd,
                               VF& sin_even, VF& sin_odd) {
  const DF d;
  const size_t N = hn::Lanes(d);
  SplitEvenOdd<kOrder>(hn::LoadU(d, cos + at), hn::LoadU(d, cos + at + N), cos_even, cos_odd);
  SplitEvenOdd<kOrder>(hn::LoadU(d, sin + at), hn::LoadU(d, sin + at + N), sin_even, sin_odd);
  cos_even = InRegister(cos_even);
  sin_odd = InRegister(sin_odd);
  if (kPairing == kNeoxPairs) {
    cos_odd = InRegister(cos_odd);
    sin_even = InRegister(sin_even);
  } else {
    cos_odd = cos_even;
    sin_even = sin_odd;
  }
}

// Elements [at, at + 2N) of one bf16 head (and their neox partners `half` further).
template <int kPairing, class Dst>
HWY_INLINE void RotateBF16Elements(const uint16_t* x, uint16_t* y, size_t at, size_t half, VF cos_even, VF cos_odd,
                                   VF sin_even, VF sin_odd) {
  VF a_even, a_odd;
  bf16_lanes::Load(x + at, a_even, a_odd);
  if (kPairing == kNeoxPairs) {
    VF c_even, c_odd;
    bf16_lanes::Load(x + half + at, c_even, c_odd);
    RotatePairs(a_even, c_even, cos_even, sin_even);
    RotatePairs(a_odd, c_odd, cos_odd, sin_odd);
    bf16_lanes::Store(Dst(), c_even, c_odd, y + half + at);
  } else {
    RotatePairs(a_even, a_odd, cos_even, sin_odd);
  }
  bf16_lanes::Store(Dst(), a_even, a_odd, y + at);
}

#if ROTARY_SPLIT_PAIRS
// Components [at, at + 2N) of one interleaved head, its pairs split by SplitPairs.
template <class Src, class Dst>
HWY_INLINE void RotateSplitPairElements(const typename Src::T* x, typename Dst::T* y, size_t at, VF cos, VF sin) {
  const size_t N = hn::Lanes(DF());
  VF first, second;
  SplitPairs(InRegister(LoadF32(Src(), x + at)), InRegister(LoadF32(Src(), x + at + N)), first, second);
  RotatePairs(first, second, cos, sin);
  VF lo, hi;
  JoinPairs(first, second, lo, hi);
  StoreF32Pair(Dst(), lo, hi, y + at);
}
#endif

#if ROTARY_PAIR_LOADS
// Components [at, at + 2N) of one interleaved head, its pairs split by ld2.
template <class Src, class Dst>
HWY_INLINE void RotatePairLoadElements(const typename Src::T* x, typename Dst::T* y, size_t at, VF cos, VF sin) {
  VF first, second;
  LoadPairsF32(Src(), x + at, first, second);
  RotatePairs(first, second, cos, sin);
  StorePairsF32(Dst(), first, second, y + at);
}
#endif

// The table entries of a row chunk split once per row chunk, so that every
// head group reads them with plain loads. Splitting per head group instead
// (two shuffles per vector, four vectors per 2N elements) made AVX2 bf16
// 0.53-0.65 of its stream loop. Per 2N-element chunk u the buffer holds
// cos_even, sin_odd, cos_odd, sin_even (neox) or cos, sin (interleaved, whose
// even and odd lanes share both), N floats each.
struct SplitRowChunk {
  static constexpr size_t kFloats = 512;  // per half of the row: 4 KiB of stack
  HWY_ALIGN float entries[2 * kFloats];

  template <int kPairing>
  static constexpr size_t kVectorsPerChunk = kPairing == kNeoxPairs ? 4 : 2;

  // Splits the whole 2N-element chunks of [0, floats) per half, floats <= kFloats.
  template <int kPairing, SplitOrder kOrder>
  void Fill(const float* cos, const float* sin, size_t floats) {
    const DF d;
    const size_t N = hn::Lanes(d);
    float* to = entries;
    for (size_t at = 0; at + 2 * N <= floats; at += 2 * N) {
      VF cos_even, cos_odd, sin_even, sin_odd;
      LoadSplitTable<kPairing, kOrder>(cos, sin, at, cos_even, cos_odd, sin_even, sin_odd);
      hn::Store(cos_even, d, to);
      hn::Store(sin_odd, d, to + N);
      if (kPairing == kNeoxPairs) {
        hn::Store(cos_odd, d, to + 2 * N);
        hn::Store(sin_even, d, to + 3 * N);
      }
      to += kVectorsPerChunk<kPairing> * N;
    }
  }

  // The entries of the 2N elements from `at` (a multiple of 2N) on.
  template <int kPairing>
  void Load(size_t at, VF& cos_even, VF& cos_odd, VF& sin_even, VF& sin_odd) const {
    const DF d;
    const size_t N = hn::Lanes(d);
    // Each vector of the chunk as a base plus the offset, so that SVE takes
    // every address in one instruction from the index the data use too.
    const size_t off = at * (kVectorsPerChunk<kPairing> / 2);  // floats of the chunk per element: 2 or 1
    cos_even = InRegister(hn::Load(d, entries + off));
    sin_odd = InRegister(hn::Load(d, entries + N + off));
    if (kPairing == kNeoxPairs) {
      cos_odd = InRegister(hn::Load(d, entries + 2 * N + off));
      sin_even = InRegister(hn::Load(d, entries + 3 * N + off));
    } else {
      cos_odd = cos_even;
      sin_even = sin_odd;
    }
  }
};

// Elements [first, first + chunks * 2N) of kHeads heads, `xs` / `ys` elements
// apart, with the split table of those elements.
template <int kPairing, class Src, class Dst, size_t kHeads>
HWY_INLINE void RotateSplitChunks(const typename Src::T* x, int64_t xs, typename Dst::T* y, int64_t ys,
                                  const SplitRowChunk& split, size_t first, size_t chunks, size_t half) {
  // One index for the table and every head (SVE addresses each by a base
  // register plus the index, scaled).
  const size_t step = 2 * hn::Lanes(DF());
  x += first;
  y += first;
  for (size_t at = 0; at < chunks * step; at += step) {
    VF cos_even, cos_odd, sin_even, sin_odd;
    split.Load<kPairing>(at, cos_even, cos_odd, sin_even, sin_odd);
    for (size_t h = 0; h < kHeads; ++h) {
      const typename Src::T* xh = x + static_cast<int64_t>(h) * xs;
      typename Dst::T* yh = y + static_cast<int64_t>(h) * ys;
      if constexpr (kBF16ToBF16<Src, Dst>) {
        RotateBF16Elements<kPairing, Dst>(xh, yh, at, half, cos_even, cos_odd, sin_even, sin_odd);
      } else if constexpr (kPairLoadsOf<kPairing, Src, Dst>) {
#if ROTARY_PAIR_LOADS
        RotatePairLoadElements<Src, Dst>(xh, yh, at, cos_even, sin_odd);
#endif
      } else {
#if ROTARY_SPLIT_PAIRS
        RotateSplitPairElements<Src, Dst>(xh, yh, at, cos_even, sin_odd);
#endif
      }
    }
  }
}

// The whole 2N-element chunks of `floats` elements per half (neox) or head
// (interleaved) of all heads, kHeadGroup heads at a time (one at a time if
// one_at_a_time), with the table split once per row chunk; returns how many
// elements per half (head) that covered.
template <int kPairing, class Src, class Dst>
HWY_INLINE size_t RotateAllSplitChunks(const typename Src::T* x, int64_t xs, typename Dst::T* y, int64_t ys,
                                       int64_t heads, const float* cos, const float* sin, size_t floats, size_t half,
                                       bool one_at_a_time) {
  constexpr SplitOrder kOrder = kSplitPairsOf<kPairing, Src, Dst> ? kBlockOrder : kElementOrder;
  const size_t step = 2 * hn::Lanes(DF());
  const size_t whole = floats / step * step;
  SplitRowChunk split;
  for (size_t first = 0; first < whole; first += SplitRowChunk::kFloats) {
    const size_t chunks = std::min(SplitRowChunk::kFloats, whole - first) / step;
    split.Fill<kPairing, kOrder>(cos + first, sin + first, chunks * step);
    int64_t h = 0;
    if constexpr (!kSplitPairsOf<kPairing, Src, Dst>) {  // split pairs: one head at a time (RotateAllHeads)
      for (; !one_at_a_time && h + static_cast<int64_t>(kHeadGroup) <= heads; h += kHeadGroup) {
        RotateSplitChunks<kPairing, Src, Dst, kHeadGroup>(x + h * xs, xs, y + h * ys, ys, split, first, chunks,
                                                          half);
      }
    }
    for (; h < heads; ++h) {
      RotateSplitChunks<kPairing, Src, Dst, 1>(x + h * xs, xs, y + h * ys, ys, split, first, chunks, half);
    }
  }
  return whole;
}
#endif

// ---- Heads ----

// Elements of x, and floats of each half of a table row, per rotated pair.
template <int kPairing>
constexpr size_t kFloatsPerPair = kPairing == kNeoxPairs ? 1 : 2;

// Pairs [0, count) of kHeads heads, from the chunk of the table row at (cos,
// sin); `half` is the neox partner distance (rotary_dim / 2).
template <int kPairing, class Src, class Dst, size_t kHeads>
HWY_INLINE void RotateHeads(const typename Src::T* x, int64_t xs, typename Dst::T* y, int64_t ys, const float* cos,
                            const float* sin, size_t count, size_t half) {
  if (kPairing == kNeoxPairs) {
    RotateNeoxHeads<Src, Dst, kHeads>(x, xs, y, ys, cos, sin, count, half);
  } else {
    RotateInterleavedHeads<Src, Dst, kHeads>(x, xs, y, ys, cos, sin, count);
  }
}

// ---- Table row held in registers ----
// With 32 vector registers (AVX-512), a row chunk of up to kMaxRowVectors
// vectors per half (cos, sin) fits in registers next to the data. It is then
// loaded once per row instead of once per head or head group, and the heads
// are rotated one after another, front to back: only the tensor is read from
// memory, in address order, whatever the size of the call.
#undef ROTARY_ROW_IN_REGISTERS
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3
#define ROTARY_ROW_IN_REGISTERS 1
constexpr size_t kMaxRowVectors = 8;  // 16 of the 32 registers hold the row

// Any storage: each vector is widened to f32 on load and narrowed on store.
template <int kPairing, class Src, class Dst, size_t kVectors>
HWY_INLINE void RotateWidenedHeadsWithRowInRegisters(const typename Src::T* x, int64_t xs, typename Dst::T* y,
                                                     int64_t ys, int64_t heads, const float* cos, const float* sin,
                                                     size_t half) {
  const DF d;
  const size_t N = hn::Lanes(d);
  VF cs[kVectors], sn[kVectors];
  for (size_t v = 0; v < kVectors; ++v) {
    cs[v] = InRegister(hn::LoadU(d, cos + v * N));
    sn[v] = InRegister(hn::LoadU(d, sin + v * N));
  }
  static_assert(kVectors % 2 == 0, "stored two vectors at a time (StoreF32Pair)");
  for (int64_t h = 0; h < heads; ++h) {  // indexed: no pointer is formed past the last head
    const typename Src::T* xh = x + h * xs;
    typename Dst::T* yh = y + h * ys;
    for (size_t v = 0; v < kVectors; v += 2) {
      if (kPairing == kNeoxPairs) {
        VF a0 = InRegister(LoadF32(Src(), xh + v * N)), a1 = InRegister(LoadF32(Src(), xh + (v + 1) * N));
        VF c0 = InRegister(LoadF32(Src(), xh + half + v * N)), c1 = InRegister(LoadF32(Src(), xh + half + (v + 1) * N));
        RotatePairs(a0, c0, cs[v], sn[v]);
        RotatePairs(a1, c1, cs[v + 1], sn[v + 1]);
        StoreF32Pair(Dst(), a0, a1, yh + v * N);
        StoreF32Pair(Dst(), c0, c1, yh + half + v * N);
      } else {
        StoreF32Pair(Dst(), RotateAdjacent(InRegister(LoadF32(Src(), xh + v * N)), cs[v], sn[v]),
                     RotateAdjacent(InRegister(LoadF32(Src(), xh + (v + 1) * N)), cs[v + 1], sn[v + 1]),
                     yh + v * N);
      }
    }
  }
}

// bf16 in and out: the row is split for bf16_lanes once per row.
template <int kPairing, class Dst, size_t kVectors>
HWY_INLINE void RotateBF16HeadsWithRowInRegisters(const uint16_t* x, int64_t xs, uint16_t* y, int64_t ys,
                                                  int64_t heads, const float* cos, const float* sin, size_t half) {
  static_assert(kVectors % 2 == 0, "a vector of bf16 spans two vectors of the row");
  const size_t step = 2 * hn::Lanes(DF());
  constexpr size_t kChunks = kVectors / 2;
  VF cos_even[kChunks], cos_odd[kChunks], sin_even[kChunks], sin_odd[kChunks];
  for (size_t u = 0; u < kChunks; ++u) {
    LoadSplitTable<kPairing>(cos, sin, u * step, cos_even[u], cos_odd[u], sin_even[u], sin_odd[u]);
  }
  for (int64_t h = 0; h < heads; ++h) {
    for (size_t u = 0; u < kChunks; ++u) {
      RotateBF16Elements<kPairing, Dst>(x + h * xs, y + h * ys, u * step, half, cos_even[u], cos_odd[u],
                                                  sin_even[u], sin_odd[u]);
    }
  }
}

// All heads of a row chunk of kVectors vectors per half.
template <int kPairing, class Src, class Dst, size_t kVectors>
HWY_NOINLINE void RotateHeadsWithRowInRegisters(const typename Src::T* x, int64_t xs, typename Dst::T* y,
                                                int64_t ys, int64_t heads, const float* cos, const float* sin,
                                                size_t half) {
  if constexpr (kBF16ToBF16<Src, Dst>) {
    RotateBF16HeadsWithRowInRegisters<kPairing, Dst, kVectors>(x, xs, y, ys, heads, cos, sin, half);
  } else {
    RotateWidenedHeadsWithRowInRegisters<kPairing, Src, Dst, kVectors>(x, xs, y, ys, heads, cos, sin, half);
  }
}

// Rotates the heads with the row in registers and returns true when the
// chunk is 2, 4 or 8 whole vectors per half: on AVX-512, rotary_dim 64, 128 or
// 256 neox, 32, 64 or 128 interleaved (and scaled chunks of those sizes).
template <int kPairing, class Src, class Dst>
HWY_INLINE bool RotateAllHeadsWithRowInRegisters(const typename Src::T* x, int64_t xs, typename Dst::T* y,
                                                 int64_t ys, int64_t heads, const float* cos, const float* sin,
                                                 size_t count, size_t half) {
  const size_t N = hn::Lanes(DF());
  const size_t floats = count * kFloatsPerPair<kPairing>;
  if (floats % N != 0) return false;
  switch (floats / N) {
    case 2:
      RotateHeadsWithRowInRegisters<kPairing, Src, Dst, 2>(x, xs, y, ys, heads, cos, sin, half);
      return true;
    case 4:
      RotateHeadsWithRowInRegisters<kPairing, Src, Dst, 4>(x, xs, y, ys, heads, cos, sin, half);
      return true;
    case kMaxRowVectors:
      RotateHeadsWithRowInRegisters<kPairing, Src, Dst, kMaxRowVectors>(x, xs, y, ys, heads, cos, sin,
                                                                                  half);
      return true;
    default:
      return false;
  }
}
#else
#define ROTARY_ROW_IN_REGISTERS 0
#endif

// Pairs [0, count) of `heads` heads, kHeadGroup at a time, or one at a time
// (streaming from DRAM: see kHeadGroup).
template <int kPairing, class Src, class Dst>
HWY_INLINE void RotateAllHeads(const typename Src::T* x, int64_t xs, typename Dst::T* y, int64_t ys, int64_t heads,
                               const float* cos, const float* sin, size_t count, size_t half, bool one_at_a_time) {
#if ROTARY_ROW_IN_REGISTERS
  if (RotateAllHeadsWithRowInRegisters<kPairing, Src, Dst>(x, xs, y, ys, heads, cos, sin, count, half)) {
    return;
  }
#endif
#if ROTARY_BF16_LANES
  // Split elements first; what is left (under 2N elements) as below. x86's
  // split pairs only when streaming: in cache their shuffles cost more than
  // the table loads they save (measured on AVX2).
  constexpr bool kAlwaysSplit = kBF16ToBF16<Src, Dst> || kPairLoadsOf<kPairing, Src, Dst>;
  if constexpr (kAlwaysSplit || kSplitPairsOf<kPairing, Src, Dst>) {
    if (kAlwaysSplit || one_at_a_time) {
      constexpr size_t kPer = kFloatsPerPair<kPairing>;
      const size_t done = RotateAllSplitChunks<kPairing, Src, Dst>(x, xs, y, ys, heads, cos, sin, count * kPer,
                                                                   half, one_at_a_time);
      if (done == count * kPer) return;
      x += done;
      y += done;
      cos += done;
      sin += done;
      count -= done / kPer;
    }
  }
#endif
  int64_t h = 0;
  for (; !one_at_a_time && h + static_cast<int64_t>(kHeadGroup) <= heads; h += kHeadGroup) {
    RotateHeads<kPairing, Src, Dst, kHeadGroup>(x + h * xs, xs, y + h * ys, ys, cos, sin, count, half);
  }
  for (; h < heads; ++h) {
    RotateHeads<kPairing, Src, Dst, 1>(x + h * xs, xs, y + h * ys, ys, cos, sin, count, half);
  }
}

// A chunk of a table row multiplied by an output scale, on the stack: the
// scale is applied once per row, not once per head and vector.
struct ScaledRowChunk {
  static constexpr size_t kFloats = 512;  // per half (cos or sin): 4 KiB of stack in all
  HWY_ALIGN float cos[kFloats];
  HWY_ALIGN float sin[kFloats];

  void Fill(const float* from_cos, const float* from_sin, size_t floats, float scale) {
    const DF d;
    const VF v_scale = hn::Set(d, scale);
    const size_t N = hn::Lanes(d);
    size_t k = 0;
    for (; k + N <= floats; k += N) {
      hn::Store(hn::Mul(hn::LoadU(d, from_cos + k), v_scale), d, cos + k);
      hn::Store(hn::Mul(hn::LoadU(d, from_sin + k), v_scale), d, sin + k);
    }
    for (; k < floats; ++k) {  // the same single f32 product as the lanes above
      cos[k] = from_cos[k] * scale;
      sin[k] = from_sin[k] * scale;
    }
  }
};

// ---- Rows ----

// All heads of one operand at row (b, s), row = b * seq + s, with the table
// row (cos, sin): into the operand's [batch, seq] destination, or into its KV
// cache slot (none for a negative slot); converted only if copy_only.
template <int kPairing, class Src, class Dst>
HWY_INLINE void RotateOperandRow(const Operand& op, int64_t b, int64_t s, int64_t row, const float* cos,
                                 const float* sin, size_t pairs, size_t head_dim, bool one_at_a_time) {
  const typename Src::T* x =
      static_cast<const typename Src::T*>(op.src) + b * op.src_stride_batch + s * op.src_stride_seq;
  typename Dst::T* y = static_cast<typename Dst::T*>(op.dst);
  if (op.dst_slots == nullptr) {
    y += b * op.dst_stride_batch + s * op.dst_stride_seq;
  } else {
    const int64_t slot = op.dst_slots[row];
    if (slot < 0) return;
    y += slot / op.block_size * op.dst_stride_batch + slot % op.block_size * op.dst_stride_seq;
  }
  const int64_t xs = op.src_stride_head, ys = op.dst_stride_head;
  if (op.copy_only) {  // v: the values as they are (its scale is 1), converted to the cache's storage
    // The same storage (bf16 rounded by the CPU is bf16 too): the bytes.
    if constexpr (std::is_same<Src, Dst>::value ||
                  (std::is_same<Src, BF16Storage>::value && std::is_same<Dst, BF16NativeStorage>::value)) {
      for (int64_t h = 0; h < op.heads; ++h) std::memcpy(y + h * ys, x + h * xs, head_dim * sizeof(*x));
    } else {
      const auto as_it_is = [](VF v) { return v; };
      for (int64_t h = 0; h < op.heads; ++h) MapCopy<Src, Dst>(x + h * xs, y + h * ys, head_dim, as_it_is);
    }
    return;
  }
  // With a scale, the row is scaled a chunk at a time and heads longer than a
  // chunk are rotated chunk by chunk, all heads per chunk; without, the whole
  // row is one chunk. One call site: the head loops are compiled once.
  constexpr size_t kPer = kFloatsPerPair<kPairing>;
  const bool scaled_row = op.scale != 1.0f;
  const size_t chunk_pairs = scaled_row ? ScaledRowChunk::kFloats / kPer : pairs;
  ScaledRowChunk scaled;
  for (size_t first = 0; first < pairs; first += chunk_pairs) {
    const size_t count = std::min(chunk_pairs, pairs - first);
    const size_t at = first * kPer;  // the chunk's first element in a head
    const float* chunk_cos = cos + at;
    const float* chunk_sin = sin + at;
    if (scaled_row) {
      scaled.Fill(chunk_cos, chunk_sin, count * kPer, op.scale);
      chunk_cos = scaled.cos;
      chunk_sin = scaled.sin;
    }
    RotateAllHeads<kPairing, Src, Dst>(x + at, xs, y + at, ys, op.heads, chunk_cos, chunk_sin, count, pairs,
                                       one_at_a_time);
  }
  if (op.write_rest && head_dim > 2 * pairs) {
    const VF scale = hn::Set(DF(), op.scale);
    for (int64_t h = 0; h < op.heads; ++h) {
      ScaleCopy<Src, Dst>(x + h * xs + 2 * pairs, y + h * ys + 2 * pairs, scale, head_dim - 2 * pairs);
    }
  }
}

// RotateOperandRow as a function of its own: the one copy of an operand's
// head loops that both the job kernels below call (an OperandRowKernel).
template <int kPairing, class Src, class Dst>
HWY_NOINLINE void RotateOperandRowEntry(const Operand& op, int64_t b, int64_t s, int64_t row, const float* cos,
                                        const float* sin, size_t pairs, size_t head_dim, bool one_at_a_time) {
  RotateOperandRow<kPairing, Src, Dst>(op, b, s, row, cos, sin, pairs, head_dim, one_at_a_time);
}

// The table row of (b, s): a stored row, or one built into `scratch` (Kernel
// RowsScratch): synthesized (compact, on the fly) or, when the token's axis
// positions differ, gathered from the rows of each axis (GatherAxisRow). A
// token whose axes agree reads the plain row of its position.
HWY_INLINE const float* RowOf(const RowJob& job, int64_t b, int64_t s, float* scratch) {
  const int64_t p = job.Position(b, s);
  if (HWY_UNLIKELY(job.num_axes > 1)) {
    int64_t positions[kMaxAxes] = {p};
    bool agree = true;
    for (int a = 1; a < job.num_axes; ++a) {
      positions[a] = job.Position(b, s, a);
      agree &= positions[a] == p;
    }
    if (!agree) return GatherAxisRow(job, positions, scratch);
  }
  return job.table.mode == RowSource::kFull ? job.table.Row(p) : SynthesizeRow(job.table, p, scratch);
}

// Rows of scratch a job's built rows need (0: every row is stored): one for a
// synthesized or gathered row, plus one per axis for the synthesized rows a
// multi-axis gather reads.
HWY_INLINE size_t ScratchRows(const RowJob& job) {
  const size_t axis_rows = job.table.mode == RowSource::kFull ? 0 : static_cast<size_t>(job.num_axes);
  return job.num_axes > 1 ? 1 + axis_rows : job.table.mode == RowSource::kFull ? 0 : 1;
}

// Whether the row loops (ForEachRowOfJob's two orders, qk-norm's
// NormRotateRowRange) request each stored table row one row ahead: for calls
// streaming from DRAM with interleaved pairs, whose kernels split (x86's
// SplitPairs, Arm's ld2 kernels, bf16 lanes) or load (AVX-512's row in
// registers) a whole row of 2 * rotary_dim floats before its first head, so
// that its DRAM latency, not overlapped with the data's, stalled every row.
// Neox rows are half as long and read as the first head goes (AVX2: slower
// with the request).
HWY_INLINE bool RequestsNextTableRow(const RowJob& job) {
  return job.streaming && job.table.mode == RowSource::kFull && job.num_axes <= 1 &&
         job.table.layout == TableLayout::kPerComponent;
}

// Requests a table row of the job into L1 (its cache lines, in order).
HWY_INLINE void RequestTableRow(const RowJob& job, const float* row) {
  const char* bytes = reinterpret_cast<const char*>(row);
  const size_t size = static_cast<size_t>(job.table.row_floats) * sizeof(float);
  for (size_t line = 0; line < size; line += 64) hwy::Prefetch(bytes + line);
}

// The (b, s) of a row of a job.
struct RowIndex {
  int64_t b, s;
};

// The row after (b, s): the next token of the sequence, or the next
// sequence's first.
HWY_INLINE RowIndex RowAfter(const RowJob& job, int64_t b, int64_t s) {
  return s + 1 < job.seq ? RowIndex{b, s + 1} : RowIndex{b + 1, 0};
}

// Requests the table row of the row after (b, s), which the caller knows to
// be in the job.
HWY_INLINE void RequestTableRowAfter(const RowJob& job, int64_t b, int64_t s) {
  const RowIndex next = RowAfter(job, b, s);
  RequestTableRow(job, job.table.Row(job.Position(next.b, next.s)));
}

// Rows a KV-cache write takes at a time, each operand over all of them before
// the next (see ForEachRowOfJob). 64 rows of a table of head_dim 128 are
// 32-64 KiB, which stay in L2 while each operand reads them.
constexpr int64_t kRowsPerOperandRun = 64;

// Whether a job writes a KV cache: some operand goes to cache slots.
HWY_INLINE bool WritesCacheSlots(const RowJob& job) {
  for (int o = 0; o < job.num_operands; ++o) {
    if (job.operands[o].dst_slots != nullptr) return true;
  }
  return false;
}

// Rows [row_begin, row_end) of a job; row = b * seq + s. operand_row(op, b, s,
// row, cos, sin) runs one operand's row: the same RotateOperandRowEntry for
// every operand (RotateRows), or each operand's own (RotateRowsPerOperand).
// A KV-cache write with stored table rows goes kRowsPerOperandRun rows at a
// time, each operand over all of them before the next: each operand's memory
// is then read and written in long runs that the hardware prefetchers follow.
// Row by row, q, k, v and their two caches switched between their streams
// every few KiB, which from DRAM was the slower order (docs/performance.md,
// Log). Every other job goes row by row, finding each row's table row (RowOf)
// once for all operands: built rows (synthesized, gathered) live in one row of
// scratch, a call of one row has one order either way, and q and k alone, two
// streams in place, measured no faster in runs. Either order computes every
// (operand, row) by the same code, into memory no other operand reads or
// writes (validated), so the bits do not depend on it. operand_row reaches the
// head loops through a pointer: both orders share one copy. (The qk-norm row
// loop, NormRotateRowRange, is row by row too: it requests each group's
// successor in the same operand while rotating.)
template <class OperandRow>
HWY_INLINE void ForEachRowOfJob(const RowJob& job, int64_t row_begin, int64_t row_end, float* scratch,
                                const OperandRow& operand_row) {
  int64_t b = row_begin / job.seq;
  int64_t s = row_begin % job.seq;
  if (row_end - row_begin > 1 && ScratchRows(job) == 0 && WritesCacheSlots(job)) {
    struct RunRow {  // a row of the run, found once for all operands
      int64_t b, s;
      const float* cos;
    } run[kRowsPerOperandRun];
    const int64_t half = job.table.row_floats / 2;
    const bool request_next_row = RequestsNextTableRow(job);  // by the first operand, which reads them first
    for (int64_t first = row_begin; first < row_end; first += kRowsPerOperandRun) {
      const int64_t count = std::min(row_end - first, kRowsPerOperandRun);
      for (int64_t i = 0; i < count; ++i) {
        run[i] = RunRow{b, s, job.table.Row(job.Position(b, s))};
        if (++s == job.seq) {
          s = 0;
          ++b;
        }
      }
      for (int o = 0; o < job.num_operands; ++o) {
        for (int64_t i = 0; i < count; ++i) {
          if (request_next_row && o == 0 && i + 1 < count) RequestTableRow(job, run[i + 1].cos);
          operand_row(job.operands[o], run[i].b, run[i].s, first + i, run[i].cos, run[i].cos + half);
        }
      }
    }
    return;
  }
  const bool request_next_row = RequestsNextTableRow(job);
  for (int64_t row = row_begin; row < row_end; ++row) {
    const float* cos = RowOf(job, b, s, scratch);
    const float* sin = cos + job.table.row_floats / 2;
    if (request_next_row && row + 1 < row_end) RequestTableRowAfter(job, b, s);
    for (int o = 0; o < job.num_operands; ++o) operand_row(job.operands[o], b, s, row, cos, sin);
    if (++s == job.seq) {
      s = 0;
      ++b;
    }
  }
}

// Runs body(scratch) with `floats` floats of scratch, 64-byte aligned. The
// scratch lives on the stack, sized for this call (1 KiB for a row at head_dim
// 128 interleaved; five rows for a 4-axis compact call) instead of for the
// largest rows (kMaxRowFloats: 32 KiB each), because the caller's thread may
// have a small stack (musl's default is 128 KiB). Past 64 KiB (multi-axis
// calls with synthesized rows of thousands of pairs, whole-token qk-norm of
// many heads) it is on the heap, once per row range.
template <class Body>
HWY_NOINLINE void WithScratch(size_t floats, const Body& body) {
  constexpr size_t kAlign = 64;
  const size_t bytes = floats * sizeof(float) + kAlign;
  std::unique_ptr<char[]> heap;
#if defined(__GNUC__)
  void* const raw = bytes <= 64 * 1024 ? __builtin_alloca(bytes) : (heap.reset(new char[bytes]), heap.get());
#else
  heap.reset(new char[bytes]);
  void* const raw = heap.get();
#endif
  body(reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(raw) + kAlign - 1) & ~uintptr_t{kAlign - 1}));
}

// Runs range(job, row_begin, row_end, scratch) with the scratch rows the job's
// table rows need (none for a stored table read by one-axis positions).
template <class Range>
HWY_INLINE void WithRowScratch(const RowJob& job, int64_t row_begin, int64_t row_end, const Range& range) {
  const size_t rows = ScratchRows(job);
  if (rows != 0) {
    WithScratch(rows * ScratchRowFloats(job.table.row_floats),
                [&](float* scratch) { range(job, row_begin, row_end, scratch); });
  } else {
    range(job, row_begin, row_end, nullptr);
  }
}

// The row loop is not a template of the pairing and storages: it calls the
// operand row kernel through a pointer, once per operand and row, so one copy
// per target serves all of them (RotateRowsWith).
template <int kPairing, class Src, class Dst>
void RotateRows(const RowJob& job, int64_t row_begin, int64_t row_end) {
  RotateRowsWith(job, row_begin, row_end, &RotateOperandRowEntry<kPairing, Src, Dst>);
}

// NOLINTNEXTLINE(google-readability-namespace-comments)
}  // namespace HWY_NAMESPACE
}  // namespace rotary
HWY_AFTER_NAMESPACE();

#endif  // per-target include guard
