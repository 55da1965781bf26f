// Per-target writers of the KV-cache formats that are not tensor storage
// (docs/math.md §9.3, §9.4): OCP FP8 (E4M3, E5M2) of y / scale, rounded to
// nearest even and saturating, and ggml's q8_0 blocks as its reference
// quantizer makes them. An operand's heads of one row are rotated (or, for v,
// converted) into an f32 buffer by the plain operand row kernel, then encoded
// into the row's cache slot: the f32 value is rounded once, into the format.
// Every step is an exactly rounded f32 operation or integer arithmetic, so the
// bytes are the same on every target.

// Per-target include guard (Highway's convention for -inl.h files).
#if defined(ROTARY_DISPATCH_CACHE_ENCODING_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef ROTARY_DISPATCH_CACHE_ENCODING_INL_H_
#undef ROTARY_DISPATCH_CACHE_ENCODING_INL_H_
#else
#define ROTARY_DISPATCH_CACHE_ENCODING_INL_H_
#endif

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "dispatch/convert-inl.h"
#include "dispatch/kernel_api.h"
#include "dispatch/kernel_entry_points-inl.h"
#include "dispatch/partial_vectors-inl.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace rotary {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using convert::DI32;
using convert::DU32;

// ---- FP8 ----

// The OCP format with kMantissa mantissa bits and exponent bias kBias, whose
// largest finite value has the bits kMaxBits as an f32.
template <int kMantissa, int kBias, uint32_t kMaxBits>
struct Fp8Format {
  static constexpr uint32_t kMaxFiniteBits = kMaxBits;
  static constexpr int kShift = 23 - kMantissa;  // f32 mantissa bits dropped
  static constexpr uint32_t kMinNormalBits = static_cast<uint32_t>(127 + 1 - kBias) << 23;
  // Added to a normal value's bits (mod 2^32): the exponent rebiased, and half
  // a code step less one (the rounding, with the kept bit's parity added too).
  static constexpr uint32_t kRebiasHalf =
      (static_cast<uint32_t>(kBias - 127) << 23) + (uint32_t{1} << (kShift - 1)) - 1u;
  // A power of two whose f32 ulp is the subnormals' step, 2^(1 - kBias - kMantissa):
  // adding it to a subnormal magnitude rounds that to a whole number of steps.
  static constexpr uint32_t kSubnormalMagicBits = static_cast<uint32_t>(127 + 24 - kBias - kMantissa) << 23;
};
using E4M3 = Fp8Format<3, 7, 0x43E00000u>;   // max 448 (0x7E)
using E5M2 = Fp8Format<2, 15, 0x47600000u>;  // max 57344 (0x7B)

// The codes of N values z = y / divisor, as bytes in the low 8 bits of each lane.
template <class Format>
HWY_INLINE hn::Vec<DU32> Fp8Codes(VF y, VF divisor) {
  const DF d;
  const DU32 du;
  const VF z = hn::Div(y, divisor);
  const auto sign = hn::And(hn::ShiftRight<24>(hn::BitCast(du, z)), hn::Set(du, 0x80u));
  // Saturate: |z| >= max (and inf) is the largest finite code. A NaN is replaced below.
  const VF a = hn::Min(hn::Abs(z), hn::BitCast(d, hn::Set(du, Format::kMaxFiniteBits)));
  const auto bits = hn::BitCast(du, a);
  // Normal: rebias, and drop kShift mantissa bits rounding to nearest even (a
  // carry moves into the exponent).
  const auto odd = hn::And(hn::ShiftRight<Format::kShift>(bits), hn::Set(du, 1u));
  const auto normal = hn::ShiftRight<Format::kShift>(hn::Add(hn::Add(bits, hn::Set(du, Format::kRebiasHalf)), odd));
  // Subnormal: one f32 addition rounds a to the subnormal step, to nearest
  // even; the magic's bits taken off leave the count of steps.
  const auto magic = hn::Set(du, Format::kSubnormalMagicBits);
  const auto subnormal = hn::Sub(hn::BitCast(du, hn::Add(a, hn::BitCast(d, magic))), magic);
  const auto is_normal = hn::RebindMask(du, hn::Ge(a, hn::BitCast(d, hn::Set(du, Format::kMinNormalBits))));
  const auto code = hn::Or(hn::IfThenElse(is_normal, normal, subnormal), sign);
  return hn::IfThenElse(hn::RebindMask(du, hn::IsNaN(z)), hn::Or(hn::Set(du, 0x7Fu), sign), code);
}

// The fp8 codes of y[i] / divisor for the whole vectors of y[0, count) to out;
// returns how many values that was.
template <class Format>
HWY_INLINE size_t EncodeFp8WholeVectors(const float* HWY_RESTRICT y, size_t count, VF divisor,
                                        uint8_t* HWY_RESTRICT out) {
  const DF d;
  const hn::Rebind<uint8_t, DF> d8;
  const size_t N = hn::Lanes(d);
  size_t i = 0;
  for (; i + N <= count; i += N) {
    hn::StoreU(hn::DemoteTo(d8, hn::BitCast(DI32(), Fp8Codes<Format>(hn::LoadU(d, y + i), divisor))), d8, out + i);
  }
  return i;
}

// `count` bytes of fp8 codes of y[i] / divisor, the last ones from a partial
// vector (copied through a buffer: a call).
template <class Format>
HWY_NOINLINE void EncodeFp8(const float* HWY_RESTRICT y, size_t count, float divisor, uint8_t* HWY_RESTRICT out) {
  const DF d;
  const hn::Rebind<uint8_t, DF> d8;
  const VF div = hn::Set(d, divisor);
  const size_t i = EncodeFp8WholeVectors<Format>(y, count, div, out);
  if (i == count) return;
  HWY_ALIGN float tail[kMaxLanes] = {};
  HWY_ALIGN uint8_t codes[kMaxLanes];
  std::memcpy(tail, y + i, (count - i) * sizeof(float));
  hn::Store(hn::DemoteTo(d8, hn::BitCast(DI32(), Fp8Codes<Format>(hn::Load(d, tail), div))), d8, codes);
  std::memcpy(out + i, codes, count - i);
}

// `heads` heads of head_dim values each (y, y + y_stride, ...), encoded to
// out, out + out_stride, ... Heads of whole vectors take a loop without calls,
// so the encoding's constants are made once for all heads, not once a head.
template <class Format>
HWY_INLINE void EncodeFp8Heads(const float* HWY_RESTRICT y, size_t y_stride, size_t heads, size_t head_dim,
                               float divisor, uint8_t* HWY_RESTRICT out, size_t out_stride) {
  const DF d;
  if (head_dim % hn::Lanes(d) != 0) {
    for (size_t h = 0; h < heads; ++h) EncodeFp8<Format>(y + h * y_stride, head_dim, divisor, out + h * out_stride);
    return;
  }
  const VF div = hn::Set(d, divisor);
  for (size_t h = 0; h < heads; ++h) {
    EncodeFp8WholeVectors<Format>(y + h * y_stride, head_dim, div, out + h * out_stride);
  }
}

// ---- q8_0 ----

constexpr size_t kQ8Block = 32;        // values per record
constexpr size_t kQ8RecordBytes = 34;  // f16 d, then 32 int8 quants

// half(d), little-endian whatever the host, into record[0..1].
HWY_INLINE void StoreRecordScale(uint16_t half, uint8_t* HWY_RESTRICT record) {
  record[0] = static_cast<uint8_t>(half & 0xFF);
  record[1] = static_cast<uint8_t>(half >> 8);
}

// roundf (half away from zero) of an f32 product, as the int8 ggml stores; 0
// for a NaN or infinite product (amax below 127 / FLT_MAX makes 1 / d infinite).
HWY_INLINE int8_t QuantOf(float p) {
  if (!std::isfinite(p)) return 0;
  const float t = std::trunc(p);
  const float r = std::fabs(p - t) == 0.5f ? t + std::copysign(1.0f, p) : std::nearbyint(p);
  return static_cast<int8_t>(r);
}

// ggml's quantize_row_q8_0_ref, one record of 32 values: amax over |x| (a
// NaN ignored), d = amax / 127, id = 1 / d (0 if d is 0), half(d) stored
// little-endian (round to nearest even), q = roundf(x * id) (half away from
// zero; a NaN or infinite product gives 0).
//
// The `records` records of 32 values at x, to out (34 bytes each). Whole
// vectors where they tile the 32 values: each record's amax, then d, id and
// half(d) of N records at once (the scalar form's two divisions per record
// were a chain of dependent operations that bounded the loop), then its
// quants. One value at a time otherwise. The same f32 operations either way
// (Div is the IEEE division in every lane), so the same bytes. (On SVE_256
// the vector form gave wrong records under Highway 1.0.3, found by the q8_0
// test under qemu; that target takes the scalar form.)
HWY_INLINE void EncodeQ8Records(const float* HWY_RESTRICT x, size_t records, uint8_t* HWY_RESTRICT out) {
  const DF d;
  const size_t N = hn::Lanes(d);
  if (HWY_TARGET == HWY_SVE_256 || N > kQ8Block || kQ8Block % N != 0) {
    for (size_t r = 0; r < records; ++r) {
      const float* v = x + r * kQ8Block;
      uint8_t* record = out + r * kQ8RecordBytes;
      float max_abs = 0.0f;
      for (size_t j = 0; j < kQ8Block; ++j) {
        if (!std::isnan(v[j])) max_abs = std::max(max_abs, std::fabs(v[j]));
      }
      const float scale = max_abs / 127.0f;
      const float inverse = scale != 0.0f ? 1.0f / scale : 0.0f;
      HWY_ALIGN uint16_t half[kMaxLanes];
      convert::F32ToF16(hn::Set(d, scale), half);
      StoreRecordScale(half[0], record);
      for (size_t j = 0; j < kQ8Block; ++j) record[2 + j] = static_cast<uint8_t>(QuantOf(v[j] * inverse));
    }
    return;
  }
  const hn::Rebind<int8_t, DF> d8;
  const auto one = hn::Set(d, 1.0f), point_five = hn::Set(d, 0.5f), infinity = hn::Inf(d);
  HWY_ALIGN float max_abs[kMaxLanes], inverses[kMaxLanes];
  HWY_ALIGN uint16_t halves[kMaxLanes];
  for (size_t first = 0; first < records; first += N) {
    const size_t count = std::min(N, records - first);
    for (size_t r = 0; r < count; ++r) {
      auto amax = hn::Zero(d);
      for (size_t i = 0; i < kQ8Block; i += N) {
        const auto a = hn::Abs(hn::LoadU(d, x + (first + r) * kQ8Block + i));
        amax = hn::Max(amax, hn::IfThenZeroElse(hn::IsNaN(a), a));
      }
      max_abs[r] = hn::GetLane(hn::MaxOfLanes(d, amax));
    }
    std::fill(max_abs + count, max_abs + N, 0.0f);  // lanes of no record: d = 0
    const auto scale = hn::Div(hn::Load(d, max_abs), hn::Set(d, 127.0f));
    const auto nonzero = hn::Ne(scale, hn::Zero(d));
    hn::Store(hn::IfThenElseZero(nonzero, hn::Div(one, scale)), d, inverses);
    convert::F32ToF16(scale, halves);
    for (size_t r = 0; r < count; ++r) {
      const float* v = x + (first + r) * kQ8Block;
      uint8_t* record = out + (first + r) * kQ8RecordBytes;
      StoreRecordScale(halves[r], record);
      const auto id = hn::Set(d, inverses[r]);
      for (size_t i = 0; i < kQ8Block; i += N) {
        // roundf: t = trunc(p), and one further from zero when the fraction
        // p - t (exact) is at least one half; 0 where p is not finite.
        const auto p = hn::Mul(hn::LoadU(d, v + i), id);
        const auto t = hn::Trunc(p);
        const auto away = hn::IfThenElseZero(hn::Ge(hn::Abs(hn::Sub(p, t)), point_five), one);
        const auto q = hn::IfThenElseZero(hn::Lt(hn::Abs(p), infinity), hn::Add(t, hn::CopySign(away, p)));
        hn::StoreU(hn::DemoteTo(d8, hn::ConvertTo(DI32(), q)), d8, reinterpret_cast<int8_t*>(record + 2 + i));
      }
    }
  }
}

// ---- The operand row kernels of the encoded formats ----

// `heads` heads of head_dim f32 values (values, values + values_stride, ...),
// encoded to out, out + out_stride, ...
template <int kEncoding>
HWY_INLINE void EncodeHeads(const float* HWY_RESTRICT values, size_t values_stride, size_t heads, size_t head_dim,
                            float divisor, uint8_t* HWY_RESTRICT out, size_t out_stride) {
  if (kEncoding == kEncodeQ8_0) {
    const size_t records = head_dim / kQ8Block;
    if (values_stride == head_dim && out_stride == records * kQ8RecordBytes) {
      // Heads back to back in both: one run of records, so that the vectors
      // of record scales are full (a head of 128 values has only 4 records).
      EncodeQ8Records(values, heads * records, out);
      return;
    }
    for (size_t h = 0; h < heads; ++h) EncodeQ8Records(values + h * values_stride, records, out + h * out_stride);
  } else if (kEncoding == kEncodeE4M3) {
    EncodeFp8Heads<E4M3>(values, values_stride, heads, head_dim, divisor, out, out_stride);
  } else {
    EncodeFp8Heads<E5M2>(values, values_stride, heads, head_dim, divisor, out, out_stride);
  }
}

// The operand's heads at (b, s), rotated (or converted: copy_only) in f32
// into a buffer a group of heads at a time by into_f32 (the operand row kernel
// of its pairing and source storage, to f32; source elements of src_bytes),
// then encoded into its cache slot (the operand's dst is bytes, its strides in
// bytes). An f32 operand that is only converted (v) is encoded from where it
// is. One copy per encoding: the pairing and the source only pick into_f32.
template <int kEncoding>
HWY_NOINLINE void EncodeOperandRow(const Operand& op, int64_t b, int64_t s, int64_t row, const float* cos,
                                   const float* sin, size_t pairs, size_t head_dim, bool one_at_a_time,
                                   OperandRowKernel into_f32, size_t src_bytes) {
  const int64_t slot = op.dst_slots[row];  // an encoded destination is always a cache
  if (slot < 0) return;
  uint8_t* y = static_cast<uint8_t*>(op.dst) + slot / op.block_size * op.dst_stride_batch +
               slot % op.block_size * op.dst_stride_seq;
  const auto source_head = [&](int64_t h) {
    return static_cast<const char*>(op.src) +
           static_cast<int64_t>(src_bytes) * (b * op.src_stride_batch + s * op.src_stride_seq + h * op.src_stride_head);
  };
  const size_t heads_stride = static_cast<size_t>(op.dst_stride_head);
  if (src_bytes == sizeof(float) && op.copy_only && op.scale == 1.0f) {
    EncodeHeads<kEncoding>(reinterpret_cast<const float*>(source_head(0)), static_cast<size_t>(op.src_stride_head),
                           static_cast<size_t>(op.heads), head_dim, op.cache_divisor, y, heads_stride);
    return;
  }
  constexpr size_t kBufferFloats = 4096;  // 16 KiB: stays in L1 between the two steps
  HWY_ALIGN float buffer[kBufferFloats];
  const int64_t group = static_cast<int64_t>(head_dim >= kBufferFloats ? 1 : kBufferFloats / head_dim);
  for (int64_t first = 0; first < op.heads; first += group) {
    // The group's heads, in f32, head_dim apart in the buffer.
    Operand heads = op;
    heads.src = source_head(first);
    heads.src_stride_batch = heads.src_stride_seq = 0;
    heads.dst = buffer;
    heads.dst_stride_batch = heads.dst_stride_seq = 0;
    heads.dst_stride_head = static_cast<int64_t>(head_dim);
    heads.heads = op.heads - first < group ? op.heads - first : group;
    heads.dst_slots = nullptr;
    heads.write_rest = true;
    into_f32(heads, 0, 0, 0, cos, sin, pairs, head_dim, one_at_a_time);
    EncodeHeads<kEncoding>(buffer, head_dim, static_cast<size_t>(heads.heads), head_dim, op.cache_divisor,
                           y + first * op.dst_stride_head, heads_stride);
  }
}

// An OperandRowKernel into a cache of an encoded format: EncodeOperandRow
// through the operand row kernel of kPairing from Src to f32.
template <int kPairing, class Src, int kEncoding>
HWY_NOINLINE void RotateOperandRowEncoded(const Operand& op, int64_t b, int64_t s, int64_t row, const float* cos,
                                          const float* sin, size_t pairs, size_t head_dim, bool one_at_a_time) {
  EncodeOperandRow<kEncoding>(op, b, s, row, cos, sin, pairs, head_dim, one_at_a_time,
                              &RotateOperandRowEntry<kPairing, Src, F32Storage>, sizeof(typename Src::T));
}

// NOLINTNEXTLINE(google-readability-namespace-comments)
}  // namespace HWY_NAMESPACE
}  // namespace rotary
HWY_AFTER_NAMESPACE();

#endif  // per-target include guard
