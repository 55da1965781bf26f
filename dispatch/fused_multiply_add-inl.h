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
#else
using DD = hn::RepartitionToWide<DF>;  // N / 2 doubles
using DHalf = hn::Rebind<float, DD>;   // N / 2 floats
using DU64 = hn::RebindToUnsigned<DD>;

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

HWY_INLINE hn::Mask<DD> HalfNeedsExactPath(hn::Vec<DD> s) {
  const DD dd;
  const DU64 du;
  const auto halfway = hn::RebindMask(dd, hn::Eq(hn::And(hn::BitCast(du, s), hn::Set(du, kLowBits)),
                                                 hn::Set(du, kHalfway)));
  const auto subnormal = hn::And(hn::Lt(hn::Abs(s), hn::Set(dd, kMinNormalF32)), hn::Ne(s, hn::Zero(dd)));
#if HWY_TARGET == HWY_EMU128
  // Highway's emulated DemoteTo clamps Inf and values beyond f32's range to
  // the largest float: those lanes (and NaN) take the exact path, as IEEE rounds them.
  const auto beyond = hn::Not(hn::Le(hn::Abs(s), hn::Set(dd, static_cast<double>(hwy::HighestValue<float>()))));
  return hn::Or(hn::Or(halfway, subnormal), beyond);
#else
  return hn::Or(halfway, subnormal);
#endif
}

// Not inlined: inlined at each of the kernels' call sites it made the library
// 7% larger and its build 14% longer, for a 10-20% gain on targets that are
// slow here anyway (SCALAR's one-lane form is small and stays inline).
inline HWY_NOINLINE VF MulAdd(VF m, VF x, VF a) {
  const DF d;
  const DD dd;
  const DHalf dh;
  const auto lo = HalfSum(hn::LowerHalf(dh, m), hn::LowerHalf(dh, x), hn::LowerHalf(dh, a));
  const auto hi = HalfSum(hn::UpperHalf(dh, m), hn::UpperHalf(dh, x), hn::UpperHalf(dh, a));
  if (HWY_UNLIKELY(!hn::AllFalse(dd, hn::Or(HalfNeedsExactPath(lo), HalfNeedsExactPath(hi))))) {
    return ExactLanes(m, x, a);
  }
  return hn::Combine(d, hn::DemoteTo(dh, hi), hn::DemoteTo(dh, lo));
}
#endif

}  // namespace fma_emulation
#endif  // !HWY_NATIVE_FMA

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

// NOLINTNEXTLINE(google-readability-namespace-comments)
}  // namespace HWY_NAMESPACE
}  // namespace rotary
HWY_AFTER_NAMESPACE();

#endif  // per-target include guard
