// Per-target fused multiply-add, rounded once on every target: the one
// arithmetic step whose result differs between CPUs that fuse (FMA: AVX2,
// AVX-512, NEON, SVE) and CPUs that round the product first (SSE4, SSSE3,
// EMU128, SCALAR). The rotation's canonical arithmetic is the fused one (the
// FMA targets' speed is kept); the others reproduce it exactly, so every
// target gives the same bits (docs/math.md "The same bits on every CPU").
//
// Without FMA: m * x of two floats is exact in double (48 significant bits),
// so m * x + a rounded to double, then to f32, is the fused result unless the
// double is exactly halfway between two floats and its own rounding was
// inexact (double rounding). Such lanes, and results in f32's subnormal
// range (whose halfway points sit elsewhere), are rare; a vector with one is
// redone lane by lane with std::fmaf, which is exact on every platform.
//
// Included inside rotary::HWY_NAMESPACE users (rope_kernels-inl.h, row_synthesis-inl.h).

#if defined(ROTARY_DISPATCH_FUSED_MULTIPLY_ADD_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef ROTARY_DISPATCH_FUSED_MULTIPLY_ADD_INL_H_
#undef ROTARY_DISPATCH_FUSED_MULTIPLY_ADD_INL_H_
#else
#define ROTARY_DISPATCH_FUSED_MULTIPLY_ADD_INL_H_
#endif

#include <cmath>
#include <cstdint>
#include <cstring>

#include "dispatch/convert-inl.h"
#include "dispatch/partial_vectors-inl.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace rotary {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

#if !HWY_NATIVE_FMA
namespace fma_emulation {

// Bits of a double below f32's 24-bit significand, and their pattern at a
// point halfway between two normal floats.
constexpr uint64_t kLowBits = (uint64_t{1} << 29) - 1;
constexpr uint64_t kHalfway = uint64_t{1} << 28;
constexpr double kMinNormalF32 = 0x1p-126;
// The high 32 bits of the doubles 2^-126 and (the largest float).
constexpr uint32_t kMinNormalHighWord = 0x38100000u;
constexpr uint32_t kLargestF32HighWord = 0x47EFFFFFu;

// Whether the double s may round to f32 differently from the exact value it
// was rounded from (see above): s is halfway between two floats, or a
// nonzero value below f32's smallest normal.
inline bool NeedsExactPath(double s) {
  uint64_t bits;
  std::memcpy(&bits, &s, sizeof(bits));
  return (bits & kLowBits) == kHalfway || (std::fabs(s) < kMinNormalF32 && s != 0.0);
}

#if HWY_TARGET == HWY_SCALAR
HWY_INLINE VF MulAdd(VF m, VF x, VF a) {
  const float mf = hn::GetLane(m), xf = hn::GetLane(x), af = hn::GetLane(a);
  const double s = static_cast<double>(mf) * static_cast<double>(xf) + static_cast<double>(af);
  return hn::Set(DF(), NeedsExactPath(s) ? std::fmaf(mf, xf, af) : static_cast<float>(s));
}
HWY_INLINE void MulAdd2(VF m0, VF x0, VF a0, VF m1, VF x1, VF a1, VF& r0, VF& r1) {
  r0 = MulAdd(m0, x0, a0);
  r1 = MulAdd(m1, x1, a1);
}
#else
using DD = hn::RepartitionToWide<DF>;  // N / 2 doubles
using DHalf = hn::Rebind<float, DD>;   // N / 2 floats

// The rare vectors: lane by lane, exactly. Not inlined: off the hot path
// (inline: one definition for the several instance files of a target).
inline HWY_NOINLINE VF ExactLanes(VF m, VF x, VF a) {
  const DF d;
  HWY_ALIGN float mv[kMaxLanes], xv[kMaxLanes], av[kMaxLanes];
  hn::Store(m, d, mv);
  hn::Store(x, d, xv);
  hn::Store(a, d, av);
  for (size_t j = 0; j < hn::Lanes(d); ++j) mv[j] = std::fmaf(mv[j], xv[j], av[j]);
  return hn::Load(d, mv);
}

// m * x + a of N / 2 lanes in double: the product exact, the sum rounded once.
HWY_INLINE hn::Vec<DD> HalfSum(hn::Vec<DHalf> m, hn::Vec<DHalf> x, hn::Vec<DHalf> a) {
  const DD dd;
  return hn::Add(hn::Mul(hn::PromoteTo(dd, m), hn::PromoteTo(dd, x)), hn::PromoteTo(dd, a));
}

// m * x + a of all N lanes in double, as its lower and upper halves.
HWY_INLINE void SumsInDouble(VF m, VF x, VF a, hn::Vec<DD>& lo, hn::Vec<DD>& hi) {
  const DHalf dh;
  lo = HalfSum(hn::LowerHalf(dh, m), hn::LowerHalf(dh, x), hn::LowerHalf(dh, a));
  hi = HalfSum(hn::UpperHalf(dh, m), hn::UpperHalf(dh, x), hn::UpperHalf(dh, a));
}

// The halves' doubles rounded to f32, as one vector.
HWY_INLINE VF RoundedToF32(hn::Vec<DD> lo, hn::Vec<DD> hi) {
  const DHalf dh;
  return hn::Combine(DF(), hn::DemoteTo(dh, hi), hn::DemoteTo(dh, lo));
}

// Which lanes of the doubles lo, hi (in some order) may round to f32
// differently from the exact value they were rounded from (as above). Tested on
// 32-bit words, four lanes per instruction: the pattern below f32's
// significand lies in each double's low word, and its sign and exponent in
// the high word, where 0 < |high| < the high word of 2^-126 is f32's
// subnormal range (s = 0 has a zero high word; no sum of f32 products is a
// double subnormal). 0 < v < t as one signed compare: v + (2^31 - 1) < t +
// (2^31 - 1), wrapped.
HWY_INLINE hn::Mask<hn::RebindToUnsigned<DF>> NeedsExactPath(hn::Vec<DD> lo, hn::Vec<DD> hi) {
  const hn::RebindToUnsigned<DF> du;
  const hn::RebindToSigned<DF> di;
  const auto lo32 = hn::BitCast(du, lo);
  const auto hi32 = hn::BitCast(du, hi);
  const auto low_words = hn::ConcatEven(du, hi32, lo32);
  const auto high_words = hn::And(hn::ConcatOdd(du, hi32, lo32), hn::Set(du, 0x7FFFFFFFu));
  const auto halfway = hn::Eq(hn::And(low_words, hn::Set(du, static_cast<uint32_t>(kLowBits))),
                              hn::Set(du, static_cast<uint32_t>(kHalfway)));
  constexpr uint32_t kBias = 0x7FFFFFFFu;
  const auto subnormal = hn::RebindMask(du, hn::Lt(hn::BitCast(di, hn::Add(high_words, hn::Set(du, kBias))),
                                                   hn::Set(di, static_cast<int32_t>(kMinNormalHighWord + kBias))));
#if HWY_TARGET == HWY_EMU128
  // Highway's emulated DemoteTo clamps Inf and values beyond f32's range to
  // the largest float: those lanes (and NaN, and a few below the largest
  // float: any lane may take the exact path) round as IEEE rounds them.
  const auto beyond = hn::Ge(high_words, hn::Set(du, kLargestF32HighWord));
  return hn::Or(hn::Or(halfway, subnormal), beyond);
#else
  return hn::Or(halfway, subnormal);
#endif
}

// One vector: compact row synthesis and the kernels' tails. Not inlined:
// at each of those call sites it would add code and build time for little
// (docs/performance.md; SCALAR's one-lane form is small and stays inline).
inline HWY_NOINLINE VF MulAdd(VF m, VF x, VF a) {
  hn::Vec<DD> lo, hi;
  SumsInDouble(m, x, a, lo, hi);
  if (HWY_UNLIKELY(!hn::AllFalse(hn::RebindToUnsigned<DF>(), NeedsExactPath(lo, hi)))) return ExactLanes(m, x, a);
  return RoundedToF32(lo, hi);
}

// m0 * x0 + a0 into r0 and m1 * x1 + a1 into r1, one test of the rare lanes
// for both: the kernels' loops, two outputs at a time (a rotated pair's, or
// two vectors of a head). Inlined there, so the loops keep their constants in
// registers (the spills and reloads around a call cost as much as the
// arithmetic); the price is library size (docs/performance.md).
HWY_INLINE void MulAdd2(VF m0, VF x0, VF a0, VF m1, VF x1, VF a1, VF& r0, VF& r1) {
  hn::Vec<DD> lo0, hi0, lo1, hi1;
  SumsInDouble(m0, x0, a0, lo0, hi0);
  SumsInDouble(m1, x1, a1, lo1, hi1);
  if (HWY_UNLIKELY(!hn::AllFalse(hn::RebindToUnsigned<DF>(),
                                 hn::Or(NeedsExactPath(lo0, hi0), NeedsExactPath(lo1, hi1))))) {
    r0 = ExactLanes(m0, x0, a0);
    r1 = ExactLanes(m1, x1, a1);
    return;
  }
  r0 = RoundedToF32(lo0, hi0);
  r1 = RoundedToF32(lo1, hi1);
}
#endif

}  // namespace fma_emulation
#endif  // !HWY_NATIVE_FMA

// a * b. Highway 1.0.3's length-agnostic SVE targets (SVE; SVE2, were it
// compiled) predicate every operation on the largest power-of-two lane count
// (svptrue_pat_b32(SV_POW2)), so GCC must keep FMUL's predicated form, which
// overwrites its first operand: an operand still needed later is copied by a
// movprfx first, in every rotation. Lanes past that count are never loaded or
// stored (Highway's loads zero them, its stores skip them) and the product is
// lane by lane, so it may cover every lane: the unpredicated FMUL that the
// fixed-length targets, whose predicate is all lanes, compile to.
HWY_INLINE VF Product(VF a, VF b) {
#if HWY_TARGET == HWY_SVE || HWY_TARGET == HWY_SVE2
  return svmul_f32_x(svptrue_b32(), a, b);
#else
  return hn::Mul(a, b);
#endif
}

// m * x + a, rounded once.
HWY_INLINE VF FusedMulAdd(VF m, VF x, VF a) {
#if HWY_NATIVE_FMA
  return hn::MulAdd(m, x, a);
#else
  return fma_emulation::MulAdd(m, x, a);
#endif
}

// a - m * x, rounded once (the negation is exact: the same bits as -m * x + a).
HWY_INLINE VF FusedNegMulAdd(VF m, VF x, VF a) {
#if HWY_NATIVE_FMA
  return hn::NegMulAdd(m, x, a);
#else
  return fma_emulation::MulAdd(hn::Neg(m), x, a);
#endif
}

// m * x - a, rounded once.
HWY_INLINE VF FusedMulSub(VF m, VF x, VF a) {
#if HWY_NATIVE_FMA
  return hn::MulSub(m, x, a);
#else
  return fma_emulation::MulAdd(m, x, hn::Neg(a));
#endif
}

// FusedMulAdd(m0, x0, a0) into r0 (FusedNegMulAdd with kNegateFirst: a
// rotated pair's first output) and FusedMulAdd(m1, x1, a1) into r1; r0 and
// r1 may be the inputs' variables.
template <bool kNegateFirst = false>
HWY_INLINE void FusedMulAdd2(VF m0, VF x0, VF a0, VF m1, VF x1, VF a1, VF& r0, VF& r1) {
#if HWY_NATIVE_FMA
  const VF first = kNegateFirst ? hn::NegMulAdd(m0, x0, a0) : hn::MulAdd(m0, x0, a0);
  r1 = hn::MulAdd(m1, x1, a1);
  r0 = first;
#else
  fma_emulation::MulAdd2(kNegateFirst ? hn::Neg(m0) : m0, x0, a0, m1, x1, a1, r0, r1);
#endif
}

// NOLINTNEXTLINE(google-readability-namespace-comments)
}  // namespace HWY_NAMESPACE
}  // namespace rotary
HWY_AFTER_NAMESPACE();

#endif  // per-target include guard
