// Per-target loads and stores between tensor storage (f32, f16, bf16) and f32
// vectors. Rounding is to nearest even, once, on store; Inf and NaN survive both
// ways (NaN stays NaN, made quiet). Highway 1.0.3's own f32 -> bf16 truncates on
// every target and its emulated f16 (targets without F16C/NEON/SVE) truncates
// and turns Inf/NaN into finite values, so those paths are written here.
//
// Included by rope_kernels-inl.h inside rotary::HWY_NAMESPACE.

#if defined(ROTARY_DISPATCH_CONVERT_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef ROTARY_DISPATCH_CONVERT_INL_H_
#undef ROTARY_DISPATCH_CONVERT_INL_H_
#else
#define ROTARY_DISPATCH_CONVERT_INL_H_
#endif

#include <cstdint>

#include "hwy/highway.h"

// Arm's vector targets: NEON and the SVE ones.
#undef ROTARY_ARM_VECTORS
#if HWY_TARGET == HWY_NEON || (HWY_TARGET & (HWY_SVE | HWY_SVE2 | HWY_SVE_256 | HWY_SVE2_128))
#define ROTARY_ARM_VECTORS 1
#else
#define ROTARY_ARM_VECTORS 0
#endif

// Targets whose hardware converts f16 exactly (round to nearest even, Inf/NaN kept).
#undef ROTARY_NATIVE_F16
#if (HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX2) || ROTARY_ARM_VECTORS
#define ROTARY_NATIVE_F16 1
#else
#define ROTARY_NATIVE_F16 0
#endif

HWY_BEFORE_NAMESPACE();
namespace rotary {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using DF = hn::ScalableTag<float>;
using VF = hn::Vec<DF>;

// Storage types, as kernel template parameters. f16 and bf16 are raw uint16_t bits.
struct F32Storage {
  using T = float;
};
struct F16Storage {
  using T = uint16_t;
};
struct BF16Storage {
  using T = uint16_t;
};
// bf16 output rounded by the CPU (AVX512_BF16): see "bf16 rounding in hardware" below.
struct BF16NativeStorage {
  using T = uint16_t;
};

namespace convert {
using DU32 = hn::RebindToUnsigned<DF>;
using DI32 = hn::RebindToSigned<DF>;
using DU16 = hn::Rebind<uint16_t, DF>;

HWY_INLINE hn::Vec<DU32> LoadU16AsU32(const uint16_t* p) { return hn::PromoteTo(DU32(), hn::LoadU(DU16(), p)); }

// Values below 2^16 only: narrows without saturating anything.
HWY_INLINE void StoreU32AsU16(hn::Vec<DU32> v, uint16_t* p) {
  hn::StoreU(hn::DemoteTo(DU16(), hn::BitCast(DI32(), v)), DU16(), p);
}

HWY_INLINE VF BF16ToF32(const uint16_t* p) { return hn::BitCast(DF(), hn::ShiftLeft<16>(LoadU16AsU32(p))); }

// The bf16 of v in the upper half of each lane (the lower half is garbage),
// rounded to nearest even: add 0x7FFF plus the lowest kept bit, then truncate.
// A NaN is kept with its quiet bit set instead (the increment could carry
// into its exponent). The float compare is deliberate: an integer-only NaN
// test made bf16 loops 25% slower on AMD Zen 4, whose integer vector pipes
// are the busier ones here. On Arm, 6 instructions a vector instead of 8: the
// lowest kept bit shifted up to bit 31 and back down, so that the second
// shift and the addition are one instruction (usra on NEON and SVE2), and the
// select on "not NaN" (v == v), which NEON's IsNaN negates once more.
HWY_INLINE hn::Vec<DU32> RoundedToUpperHalf(VF v) {
  const DU32 du;
  const auto bits = hn::BitCast(du, v);
#if ROTARY_ARM_VECTORS
  const auto rounded = hn::Add(hn::Add(bits, hn::Set(du, 0x7FFFu)), hn::ShiftRight<31>(hn::ShiftLeft<15>(bits)));
  return hn::IfThenElse(hn::RebindMask(du, hn::Eq(v, v)), rounded, hn::Or(bits, hn::Set(du, 0x00400000u)));
#else
  const auto rounded = hn::Add(bits, hn::Add(hn::Set(du, 0x7FFFu), hn::And(hn::ShiftRight<16>(bits), hn::Set(du, 1u))));
  return hn::IfThenElse(hn::RebindMask(du, hn::IsNaN(v)), hn::Or(bits, hn::Set(du, 0x00400000u)), rounded);
#endif
}

HWY_INLINE void F32ToBF16(VF v, uint16_t* p) { StoreU32AsU16(hn::ShiftRight<16>(RoundedToUpperHalf(v)), p); }

#if ROTARY_NATIVE_F16
using DH = hn::Rebind<hwy::float16_t, DF>;

HWY_INLINE VF F16ToF32(const uint16_t* p) {
  return hn::PromoteTo(DF(), hn::LoadU(DH(), reinterpret_cast<const hwy::float16_t*>(p)));
}
HWY_INLINE void F32ToF16(VF v, uint16_t* p) {
  hn::StoreU(hn::DemoteTo(DH(), v), DH(), reinterpret_cast<hwy::float16_t*>(p));
}
#else
HWY_INLINE VF F16ToF32(const uint16_t* p) {
  const DU32 du;
  const DF d;
  const auto h = LoadU16AsU32(p);
  const auto sign = hn::ShiftLeft<16>(hn::And(h, hn::Set(du, 0x8000u)));
  const auto exponent = hn::And(hn::ShiftRight<10>(h), hn::Set(du, 0x1Fu));
  const auto mantissa = hn::And(h, hn::Set(du, 0x3FFu));
  const auto normal = hn::Or(hn::ShiftLeft<23>(hn::Add(exponent, hn::Set(du, 127u - 15u))), hn::ShiftLeft<13>(mantissa));
  const auto inf_nan = hn::Or(hn::Set(du, 0x7F800000u), hn::ShiftLeft<13>(mantissa));
  // Subnormal (and zero): mantissa * 2^-24, exact in f32.
  const auto subnormal =
      hn::BitCast(du, hn::Mul(hn::ConvertTo(d, hn::BitCast(DI32(), mantissa)), hn::Set(d, 1.0f / 16777216.0f)));
  const auto magnitude = hn::IfThenElse(hn::Eq(exponent, hn::Zero(du)), subnormal,
                                        hn::IfThenElse(hn::Eq(exponent, hn::Set(du, 0x1Fu)), inf_nan, normal));
  return hn::BitCast(d, hn::Or(magnitude, sign));
}

// Round to nearest even (after F. Giesen's float_to_half_fast3_rtne).
HWY_INLINE void F32ToF16(VF v, uint16_t* p) {
  const DU32 du;
  const DI32 di;
  const DF d;
  const auto bits = hn::BitCast(du, v);
  const auto sign = hn::ShiftRight<16>(hn::And(bits, hn::Set(du, 0x80000000u)));
  const auto f = hn::And(bits, hn::Set(du, 0x7FFFFFFFu));  // below 2^31: compare as signed
  const auto fi = hn::BitCast(di, f);
  // Too large for f16 (or Inf/NaN): Inf, or a quiet NaN.
  const auto inf_nan = hn::IfThenElse(hn::RebindMask(du, hn::Gt(fi, hn::Set(di, 0x7F800000))), hn::Set(du, 0x7E00u),
                                      hn::Set(du, 0x7C00u));
  // Below the smallest normal: let an f32 addition do the rounding of the subnormal.
  const auto magic = hn::Set(du, 0x3F000000u);  // (127 - 15 + 23 - 10 + 1) << 23
  const auto subnormal = hn::Sub(hn::BitCast(du, hn::Add(hn::BitCast(d, f), hn::BitCast(d, magic))), magic);
  // Normal: rebias the exponent, round the 13 dropped bits to nearest even.
  const auto odd = hn::And(hn::ShiftRight<13>(f), hn::Set(du, 1u));
  const auto normal = hn::ShiftRight<13>(hn::Add(hn::Add(f, hn::Set(du, 0xC8000FFFu)), odd));
  const auto magnitude =
      hn::IfThenElse(hn::RebindMask(du, hn::Gt(fi, hn::Set(di, 0x47800000 - 1))), inf_nan,
                     hn::IfThenElse(hn::RebindMask(du, hn::Lt(fi, hn::Set(di, 0x38800000))), subnormal, normal));
  StoreU32AsU16(hn::Or(magnitude, sign), p);
}
#endif
}  // namespace convert

// bf16 two at a time: the two bf16 elements in each 32-bit lane become f32
// lanes by bit operations (the even one shifted up, the odd one with its low
// half masked off) and go back the same way, so nothing is widened, narrowed
// or moved across lanes: half the work per element of LoadF32/StoreF32, whose
// widening and rounding made bf16 loops compute-bound. 2N elements per call,
// split into the even and odd elements. Not on SCALAR (one lane holds no
// pair), and only on little-endian hosts, where the even element is the low
// half of its 32-bit lane (Highway also builds for s390x and aarch64_be).
#undef ROTARY_BF16_LANES
#if HWY_TARGET != HWY_SCALAR && defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define ROTARY_BF16_LANES 1
#else
#define ROTARY_BF16_LANES 0
#endif

#if ROTARY_BF16_LANES
namespace bf16_lanes {
using DU = hn::RebindToUnsigned<DF>;
using D16 = hn::Repartition<uint16_t, DF>;  // two bf16 per f32 lane

HWY_INLINE void Load(const uint16_t* p, VF& even, VF& odd) {
  const DU du;
  const auto raw = hn::BitCast(du, hn::LoadU(D16(), p));
  even = hn::BitCast(DF(), hn::ShiftLeft<16>(raw));
  odd = hn::BitCast(DF(), hn::And(raw, hn::Set(du, 0xFFFF0000u)));
}

// Word 2j of the result is the upper half of lane j of even, word 2j + 1 that
// of odd (little-endian: a lane's upper half is its odd word).
HWY_INLINE void Store(VF even, VF odd, uint16_t* p) {
  const D16 d16;
#if ROTARY_ARM_VECTORS
  // The odd words of both, alternating: one trn2 (Highway 1.0.3 has it only
  // as detail::InterleaveOdd), where shift, mask and or take three.
  const auto joined = hn::detail::InterleaveOdd(hn::BitCast(d16, convert::RoundedToUpperHalf(even)),
                                                hn::BitCast(d16, convert::RoundedToUpperHalf(odd)));
#else
  const DU du;
  const auto joined = hn::BitCast(d16, hn::Or(hn::ShiftRight<16>(convert::RoundedToUpperHalf(even)),
                                              hn::And(convert::RoundedToUpperHalf(odd), hn::Set(du, 0xFFFF0000u))));
#endif
  hn::StoreU(joined, d16, p);
}
}  // namespace bf16_lanes
#endif

// N elements of storage -> f32 lanes.
HWY_INLINE VF LoadF32(F32Storage, const float* p) { return hn::LoadU(DF(), p); }
HWY_INLINE VF LoadF32(F16Storage, const uint16_t* p) { return convert::F16ToF32(p); }
HWY_INLINE VF LoadF32(BF16Storage, const uint16_t* p) { return convert::BF16ToF32(p); }

// f32 lanes -> N elements of storage, rounded once to nearest even.
HWY_INLINE void StoreF32(F32Storage, VF v, float* p) { hn::StoreU(v, DF(), p); }
HWY_INLINE void StoreF32(F16Storage, VF v, uint16_t* p) { convert::F32ToF16(v, p); }
HWY_INLINE void StoreF32(BF16Storage, VF v, uint16_t* p) { convert::F32ToBF16(v, p); }

// 2N consecutive elements from two f32 vectors, lo then hi. For bf16 (where
// lanes can hold pairs) the rounded upper halves of both are gathered by one
// permute, instead of shifting and narrowing each vector: the KV-cache write
// (f32 -> bf16) is bound by this conversion.
template <class S>
HWY_INLINE void StoreF32Pair(S, VF lo, VF hi, typename S::T* p) {
  StoreF32(S(), lo, p);
  StoreF32(S(), hi, p + hn::Lanes(DF()));
}
#if ROTARY_BF16_LANES
HWY_INLINE void StoreF32Pair(BF16Storage, VF lo, VF hi, uint16_t* p) {
  const bf16_lanes::D16 d16;
  const auto upper_lo = hn::BitCast(d16, convert::RoundedToUpperHalf(lo));
  const auto upper_hi = hn::BitCast(d16, convert::RoundedToUpperHalf(hi));
  hn::StoreU(hn::ConcatOdd(d16, upper_hi, upper_lo), d16, p);  // little-endian: the odd u16 is the upper half
}
#endif

// ---- bf16 rounding in hardware: AVX512_BF16 (AMD Zen 4, Intel Sapphire Rapids and later) ----
// VCVTNE2PS2BF16 rounds two f32 vectors to bf16, to nearest even, in one
// instruction, where RoundedToUpperHalf takes six operations a vector (and
// the pair a permute): bf16 loops were bound by that rounding. NaNs come out
// quiet with their upper bits, as from RoundedToUpperHalf, but the instruction
// reads denormal inputs as zero: a vector (pair) holding a denormal is rounded
// the software way instead, so the result is the same, bit for bit. Only a
// result with a zero lane is checked for them (a denormal becomes a zero, and
// no normal input does): testing every input (with VFPCLASSPS) cost a third of
// the speed on Zen 4.
// Highway 1.0.3 has no op for it and no AVX-512 target of it requires the
// feature, so the instruction is written in inline assembly (which needs no
// compiler target flag), BF16NativeStorage has loads and stores only when
// compiling for the best AVX-512 target built (AVX3; AVX3_DL where a build
// opts into it), and the kernels built with it are registered as their own
// target, AVX3_ZEN4, which the registry offers only where CPUID reports
// AVX512_BF16 (lib/target_registry.cc).
#undef ROTARY_NATIVE_BF16
#if HWY_TARGET == HWY_AVX3_DL || (HWY_TARGET == HWY_AVX3 && !(HWY_TARGETS & HWY_AVX3_DL))
#define ROTARY_NATIVE_BF16 1
namespace native_bf16 {
using D16 = hn::Repartition<uint16_t, DF>;  // 2N lanes
using DHalf16 = hn::Rebind<uint16_t, DF>;   // N lanes

// Denormal lanes by their bits (exponent zero, mantissa not), not by
// VFPCLASSPS, which calls them zero when the caller has set MXCSR.DAZ.
HWY_INLINE __mmask16 DenormalLanes(VF v) {
  const __m512i bits = _mm512_castps_si512(v.raw);
  return _mm512_mask_test_epi32_mask(_mm512_testn_epi32_mask(bits, _mm512_set1_epi32(0x7F800000)), bits,
                                     _mm512_set1_epi32(0x007FFFFF));
}

// Whether some lane of a rounded result is +-0: only then can an input have
// been a denormal.
HWY_INLINE bool HasZero(hn::Vec512<uint16_t> rounded) {
  return _mm512_testn_epi16_mask(rounded.raw, _mm512_set1_epi16(0x7FFF)) != 0;
}
HWY_INLINE bool HasZero(hn::Vec256<uint16_t> rounded) {
  return _mm256_testn_epi16_mask(rounded.raw, _mm256_set1_epi16(0x7FFF)) != 0;
}

// Whether `rounded` (the instruction's bf16 of `lo`, then `hi` if given) may
// differ from the software rounding: the instruction reads denormal inputs as
// zero. The zero test comes first: it is one instruction, and almost never true.
HWY_INLINE bool NeedsSoftwareRounding(hn::Vec<DHalf16> rounded, VF lo) {
  return HasZero(rounded) && DenormalLanes(lo) != 0;
}
HWY_INLINE bool NeedsSoftwareRounding(hn::Vec<D16> rounded, VF lo, VF hi) {
  return HasZero(rounded) && (DenormalLanes(lo) | DenormalLanes(hi)) != 0;
}

// bf16(lo[0..N)), then bf16(hi[0..N)).
HWY_INLINE hn::Vec<D16> RoundPair(VF lo, VF hi) {
  __m512i out;
  // AT&T order: the first source is the one that fills the lower half.
  asm("vcvtne2ps2bf16 %2, %1, %0" : "=v"(out) : "v"(hi.raw), "v"(lo.raw));
  return hn::Vec<D16>{out};
}

HWY_INLINE hn::Vec<DHalf16> Round(VF v) {
  __m256i out;
  asm("vcvtneps2bf16 %1, %0" : "=v"(out) : "v"(v.raw));
  return hn::Vec<DHalf16>{out};
}
}  // namespace native_bf16

HWY_INLINE VF LoadF32(BF16NativeStorage, const uint16_t* p) { return convert::BF16ToF32(p); }

HWY_INLINE void StoreF32(BF16NativeStorage, VF v, uint16_t* p) {
  const auto rounded = native_bf16::Round(v);
  if (HWY_UNLIKELY(native_bf16::NeedsSoftwareRounding(rounded, v))) return convert::F32ToBF16(v, p);
  hn::StoreU(rounded, native_bf16::DHalf16(), p);
}

HWY_INLINE void StoreF32Pair(BF16NativeStorage, VF lo, VF hi, uint16_t* p) {
  const auto rounded = native_bf16::RoundPair(lo, hi);
  if (HWY_UNLIKELY(native_bf16::NeedsSoftwareRounding(rounded, lo, hi))) {
    return StoreF32Pair(BF16Storage(), lo, hi, p);
  }
  hn::StoreU(rounded, native_bf16::D16(), p);
}

namespace bf16_lanes {
// The even and odd elements rounded together ([even | odd]), then put back in
// element order with one permute: output word 2j is word j (from `even`), word
// 2j + 1 is word N + j (from `odd`).
HWY_INLINE void Store(BF16NativeStorage, VF even, VF odd, uint16_t* p) {
  const auto rounded = native_bf16::RoundPair(even, odd);
  if (HWY_UNLIKELY(native_bf16::NeedsSoftwareRounding(rounded, even, odd))) {
    return Store(even, odd, p);
  }
  alignas(64) static constexpr uint16_t kElementOrder[32] = {0, 16, 1, 17, 2,  18, 3,  19, 4,  20, 5,
                                                             21, 6, 22, 7, 23, 8,  24, 9,  25, 10, 26,
                                                             11, 27, 12, 28, 13, 29, 14, 30, 15, 31};
  const __m512i order = _mm512_load_si512(kElementOrder);
  _mm512_storeu_si512(p, _mm512_permutexvar_epi16(order, rounded.raw));
}
}  // namespace bf16_lanes
#else
#define ROTARY_NATIVE_BF16 0
#endif

#if ROTARY_BF16_LANES
namespace bf16_lanes {
// Overloads by destination storage, for the kernels templated on it.
HWY_INLINE void Store(BF16Storage, VF even, VF odd, uint16_t* p) { Store(even, odd, p); }
}  // namespace bf16_lanes
#endif

// NOLINTNEXTLINE(google-readability-namespace-comments)
}  // namespace HWY_NAMESPACE
}  // namespace rotary
HWY_AFTER_NAMESPACE();

#endif  // per-target include guard
