#include "bench/yardsticks.h"

#include <cmath>
#include <cstring>

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "bench/yardsticks.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep

#include "hwy/highway.h"

#include "dispatch/convert-inl.h"

HWY_BEFORE_NAMESPACE();
namespace rotary_bench {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;
// rotary's own loads/stores: the yardsticks convert f16/bf16 exactly as rotary
// does (rounded to nearest even), so they do the same work per element.
using rotary::HWY_NAMESPACE::BF16NativeStorage;
using rotary::HWY_NAMESPACE::BF16Storage;
using rotary::HWY_NAMESPACE::DF;
using rotary::HWY_NAMESPACE::F16Storage;
using rotary::HWY_NAMESPACE::F32Storage;
using rotary::HWY_NAMESPACE::LoadF32;
using rotary::HWY_NAMESPACE::StoreF32;
using rotary::HWY_NAMESPACE::StoreF32Pair;
using rotary::HWY_NAMESPACE::VF;

// N elements at a time through LoadF32/StoreF32 (widened to f32 and back).
template <class S>
void StreamWidened(typename S::T* HWY_RESTRICT x, size_t n, float a, float b) {
  const DF d;
  const size_t N = hn::Lanes(d);
  const auto va = hn::Set(d, a), vb = hn::Set(d, b);
  // Benchmark sizes are multiples of every vector length: no tail.
  for (size_t i = 0; i + N <= n; i += N) StoreF32(S(), hn::MulAdd(va, LoadF32(S(), x + i), vb), x + i);
}

// bf16 with the kernels' cheapest conversion (two bf16 per f32 lane, by bit
// operations; rounded by the CPU where it can): the yardstick must be the
// memory limit, not a rounding loop. Out = BF16Storage or BF16NativeStorage.
template <class Out>
void StreamBF16(uint16_t* HWY_RESTRICT x, size_t n, float a, float b) {
  size_t i = 0;
#if ROTARY_BF16_LANES
  const DF d;
  const size_t N = hn::Lanes(d);
  const auto va = hn::Set(d, a), vb = hn::Set(d, b);
  for (; i + 2 * N <= n; i += 2 * N) {
    VF even, odd;
    rotary::HWY_NAMESPACE::bf16_lanes::Load(x + i, even, odd);
    rotary::HWY_NAMESPACE::bf16_lanes::Store(Out(), hn::MulAdd(va, even, vb), hn::MulAdd(va, odd, vb), x + i);
  }
#endif
  StreamWidened<BF16Storage>(x + i, n - i, a, b);  // what is left, and every element on SCALAR
}

// native_bf16: the active target rounds bf16 in hardware (AVX3_ZEN4), so the
// yardstick does too.
void StreamRange(void* x, int dtype, size_t n, float a, float b, bool native_bf16) {
  if (dtype == ROTARY_F32) StreamWidened<F32Storage>(static_cast<float*>(x), n, a, b);
  if (dtype == ROTARY_F16) StreamWidened<F16Storage>(static_cast<uint16_t*>(x), n, a, b);
  if (dtype != ROTARY_BF16) return;
#if ROTARY_NATIVE_BF16
  if (native_bf16) return StreamBF16<BF16NativeStorage>(static_cast<uint16_t*>(x), n, a, b);
#endif
  (void)native_bf16;
  StreamBF16<BF16Storage>(static_cast<uint16_t*>(x), n, a, b);
}

template <class S>
void ConvertTyped(const float* HWY_RESTRICT src, typename S::T* HWY_RESTRICT dst, size_t n) {
  const size_t N = hn::Lanes(DF());
  // Two vectors at a time, as rotary's kernels store them (StoreF32Pair);
  // benchmark sizes are multiples of two vectors on every target: no tail.
  for (size_t i = 0; i + 2 * N <= n; i += 2 * N) {
    StoreF32Pair(S(), LoadF32(F32Storage(), src + i), LoadF32(F32Storage(), src + i + N), dst + i);
  }
}

void ConvertRange(const float* src, void* dst, int dtype, size_t n, bool native_bf16) {
  if (dtype == ROTARY_F16) ConvertTyped<F16Storage>(src, static_cast<uint16_t*>(dst), n);
  if (dtype != ROTARY_BF16) return;
#if ROTARY_NATIVE_BF16
  if (native_bf16) return ConvertTyped<BF16NativeStorage>(src, static_cast<uint16_t*>(dst), n);
#endif
  (void)native_bf16;
  ConvertTyped<BF16Storage>(src, static_cast<uint16_t*>(dst), n);
}

// A plain RMSNorm pass over `heads` heads of `dim` elements, in place: what a
// backend runs before RoPE without qk-norm fused (one accumulator of fused
// multiply-adds per head, its lanes summed; x * r * w stored converted).
template <class S>
void RmsNormTyped(typename S::T* HWY_RESTRICT x, size_t heads, size_t dim, const float* HWY_RESTRICT w, float eps) {
  const DF d;
  const size_t N = hn::Lanes(d);
  for (size_t h = 0; h < heads; ++h, x += dim) {
    VF sum = hn::Zero(d);
    for (size_t i = 0; i + N <= dim; i += N) {
      const VF v = LoadF32(S(), x + i);
      sum = hn::MulAdd(v, v, sum);
    }
    const VF r = hn::Set(d, 1.0f / std::sqrt(hn::GetLane(hn::SumOfLanes(d, sum)) / static_cast<float>(dim) + eps));
    for (size_t i = 0; i + N <= dim; i += N) {
      StoreF32(S(), hn::Mul(hn::Mul(LoadF32(S(), x + i), r), hn::LoadU(d, w + i)), x + i);
    }
  }
}

void RmsNormRange(void* x, int dtype, size_t heads, size_t dim, const float* w, float eps, bool native_bf16) {
  if (dtype == ROTARY_F32) RmsNormTyped<F32Storage>(static_cast<float*>(x), heads, dim, w, eps);
  if (dtype == ROTARY_F16) RmsNormTyped<F16Storage>(static_cast<uint16_t*>(x), heads, dim, w, eps);
  if (dtype != ROTARY_BF16) return;
#if ROTARY_NATIVE_BF16
  if (native_bf16) return RmsNormTyped<BF16NativeStorage>(static_cast<uint16_t*>(x), heads, dim, w, eps);
#endif
  (void)native_bf16;
  RmsNormTyped<BF16Storage>(static_cast<uint16_t*>(x), heads, dim, w, eps);
}

// ---- The separate paged KV-cache write (PagedKvWrite) ----

using DU = hn::RebindToUnsigned<DF>;
using DI = hn::RebindToSigned<DF>;

// bytes (a multiple of a vector) loaded and stored back unchanged. `zero` is 0
// but unknown to the compiler, which would otherwise drop the store of what
// was just loaded from the same address.
void CopyOntoItself(uint8_t* HWY_RESTRICT p, size_t bytes, uint32_t zero) {
  const DU du;
  const size_t step = hn::Lanes(du) * sizeof(uint32_t);
  const auto z = hn::Set(du, zero);
  for (size_t i = 0; i + step <= bytes; i += step) {
    uint32_t* at = reinterpret_cast<uint32_t*>(p + i);
    hn::StoreU(hn::Xor(hn::LoadU(du, at), z), du, at);
  }
}

// A head whose cache has the source's type: its bytes as they are.
HWY_INLINE void CopyHead(const uint8_t* HWY_RESTRICT x, uint8_t* HWY_RESTRICT y, size_t bytes) {
  const hn::ScalableTag<uint8_t> d8;
  const size_t N = hn::Lanes(d8);
  size_t i = 0;
  for (; i + N <= bytes; i += N) hn::StoreU(hn::LoadU(d8, x + i), d8, y + i);
  if (i < bytes) std::memcpy(y + i, x + i, bytes - i);
}

// A head of tensor storage Src into Dst (f32, f16, bf16), rounded to nearest
// even, two vectors at a time as rotary's kernels and ConvertTyped store them.
template <class Src, class Dst>
HWY_INLINE void ConvertHead(const typename Src::T* HWY_RESTRICT x, typename Dst::T* HWY_RESTRICT y, size_t dim) {
  const size_t N = hn::Lanes(DF());
  for (size_t i = 0; i + 2 * N <= dim; i += 2 * N) {
    StoreF32Pair(Dst(), LoadF32(Src(), x + i), LoadF32(Src(), x + i + N), y + i);
  }
}

// OCP FP8 with kMantissa mantissa bits and exponent bias kBias, whose largest
// finite value has the f32 bits kMaxBits.
template <int kMantissa, int kBias, uint32_t kMaxBits>
struct Fp8Rule {
  static constexpr uint32_t kMax = kMaxBits;
  static constexpr int kDropped = 23 - kMantissa;  // f32 mantissa bits that go
  static constexpr uint32_t kMinNormal = static_cast<uint32_t>(128 - kBias) << 23;  // 2^(1 - kBias)
  // A power of two whose f32 ulp is the step of the subnormals, 2^(1 - kBias - kMantissa).
  static constexpr uint32_t kSubnormalMagic = static_cast<uint32_t>(127 + 24 - kBias - kMantissa) << 23;
  // Added to a normal value's bits: the exponent rebiased, and half a code step less one.
  static constexpr uint32_t kRebiasHalf =
      (static_cast<uint32_t>(kBias - 127) << 23) + (uint32_t{1} << (kDropped - 1)) - 1u;
};
using E4M3Rule = Fp8Rule<3, 7, 0x43E00000u>;   // 448
using E5M2Rule = Fp8Rule<2, 15, 0x47600000u>;  // 57344

// The codes of x / scale in the low byte of each lane.
template <class Rule>
HWY_INLINE hn::Vec<DU> Fp8Codes(VF x, VF scale) {
  const DF d;
  const DU du;
  const VF z = hn::Div(x, scale);
  const auto sign = hn::ShiftRight<24>(hn::And(hn::BitCast(du, z), hn::Set(du, 0x80000000u)));
  const VF a = hn::Min(hn::Abs(z), hn::BitCast(d, hn::Set(du, Rule::kMax)));  // saturated (a NaN: below)
  // Subnormal: an f32 addition of the magic power of two rounds a to the subnormal step, to nearest even.
  const auto magic = hn::Set(du, Rule::kSubnormalMagic);
  const auto subnormal = hn::Sub(hn::BitCast(du, hn::Add(a, hn::BitCast(d, magic))), magic);
  // Normal: rebias, and round the dropped bits to nearest even (a carry moves into the exponent).
  const auto bits = hn::BitCast(du, a);
  const auto odd = hn::And(hn::ShiftRight<Rule::kDropped>(bits), hn::Set(du, 1u));
  const auto normal = hn::ShiftRight<Rule::kDropped>(hn::Add(hn::Add(bits, hn::Set(du, Rule::kRebiasHalf)), odd));
  const auto is_normal = hn::RebindMask(du, hn::Ge(a, hn::BitCast(d, hn::Set(du, Rule::kMinNormal))));
  const auto code = hn::Or(hn::IfThenElse(is_normal, normal, subnormal), sign);
  return hn::IfThenElse(hn::RebindMask(du, hn::IsNaN(z)), hn::Or(hn::Set(du, 0x7Fu), sign), code);
}

template <class Src, class Rule>
HWY_INLINE void Fp8Head(const typename Src::T* HWY_RESTRICT x, uint8_t* HWY_RESTRICT y, size_t dim, float scale) {
  const DF d;
  const hn::Rebind<uint8_t, DF> d8;
  const size_t N = hn::Lanes(d);
  const VF s = hn::Set(d, scale);
  for (size_t i = 0; i + N <= dim; i += N) {
    hn::StoreU(hn::DemoteTo(d8, hn::BitCast(DI(), Fp8Codes<Rule>(LoadF32(Src(), x + i), s))), d8, y + i);
  }
}

// IEEE binary16 bits of a finite f >= 0 or +Inf, rounded to nearest even.
HWY_INLINE uint16_t HalfBits(float f) {
  uint32_t x;
  std::memcpy(&x, &f, sizeof x);
  if (x >= 0x477FF000u) return 0x7C00;  // 65520 and up, and Inf: Inf
  if (x < 0x38800000u) return static_cast<uint16_t>(std::nearbyint(f * 16777216.0f));  // subnormal: units of 2^-24
  const uint32_t rebiased = x - 0x38000000u;
  return static_cast<uint16_t>((rebiased + 0x0FFFu + ((rebiased >> 13) & 1u)) >> 13);
}

// One ggml block_q8_0 record of 32 values, as quantize_row_q8_0_ref makes it:
// d = amax / 127, id = 1 / d (0 if d is 0), half(d) little-endian, then
// roundf(x * id) (half away from zero) as int8.
template <class Src>
HWY_INLINE void Q8Record(const typename Src::T* HWY_RESTRICT x, uint8_t* HWY_RESTRICT record) {
  const DF d;
  const hn::Rebind<int8_t, DF> d8;
  const size_t N = hn::Lanes(d);
  VF amax = hn::Zero(d);
  for (size_t i = 0; i < 32; i += N) {
    const VF a = hn::Abs(LoadF32(Src(), x + i));
    amax = hn::Max(amax, hn::IfThenZeroElse(hn::IsNaN(a), a));
  }
  const float scale = hn::GetLane(hn::MaxOfLanes(d, amax)) / 127.0f;
  const float inverse = scale != 0.0f ? 1.0f / scale : 0.0f;
  const uint16_t half = HalfBits(scale);
  record[0] = static_cast<uint8_t>(half & 0xFF);
  record[1] = static_cast<uint8_t>(half >> 8);
  const VF id = hn::Set(d, inverse), one = hn::Set(d, 1.0f), point_five = hn::Set(d, 0.5f);
  for (size_t i = 0; i < 32; i += N) {
    const VF p = hn::Mul(LoadF32(Src(), x + i), id);
    const VF t = hn::Trunc(p);  // p - t is exact: the fraction
    VF q = hn::IfThenElse(hn::Ge(hn::Abs(hn::Sub(p, t)), point_five), hn::Add(t, hn::CopySign(one, p)), t);
    q = hn::IfThenZeroElse(hn::IsNaN(p), q);
    hn::StoreU(hn::DemoteTo(d8, hn::ConvertTo(DI(), q)), d8, reinterpret_cast<int8_t*>(record + 2 + i));
  }
}

constexpr rotary_dtype DtypeOf(F32Storage) { return ROTARY_F32; }
constexpr rotary_dtype DtypeOf(F16Storage) { return ROTARY_F16; }
constexpr rotary_dtype DtypeOf(BF16Storage) { return ROTARY_BF16; }

// A token's `heads` heads of x into its slot of the cache c.
template <class Src>
void WriteHeads(const typename Src::T* HWY_RESTRICT x, size_t heads, size_t dim, const PagedCache& c, int64_t slot,
                bool native_bf16) {
  uint8_t* row = static_cast<uint8_t*>(c.data) + slot / c.block_size * c.stride_block + slot % c.block_size * c.stride_row;
  const size_t head_stride = static_cast<size_t>(c.stride_head);
  const auto each_head = [&](const auto& write) {
    for (size_t h = 0; h < heads; ++h) write(x + h * dim, row + h * head_stride);
  };
  using T = typename Src::T;
  switch (c.format) {
    case ROTARY_CACHE_FP8_E4M3:
      return each_head([&](const T* in, uint8_t* out) { Fp8Head<Src, E4M3Rule>(in, out, dim, c.scale); });
    case ROTARY_CACHE_FP8_E5M2:
      return each_head([&](const T* in, uint8_t* out) { Fp8Head<Src, E5M2Rule>(in, out, dim, c.scale); });
    case ROTARY_CACHE_Q8_0:
      return each_head([&](const T* in, uint8_t* out) {
        for (size_t j = 0; j < dim; j += 32) Q8Record<Src>(in + j, out + j / 32 * 34);
      });
    case ROTARY_CACHE_TENSOR:
      break;
  }
  if (c.dtype == DtypeOf(Src())) {
    return each_head(
        [&](const T* in, uint8_t* out) { CopyHead(reinterpret_cast<const uint8_t*>(in), out, dim * sizeof(T)); });
  }
  if (c.dtype == ROTARY_F32) {
    return each_head([&](const T* in, uint8_t* out) { ConvertHead<Src, F32Storage>(in, reinterpret_cast<float*>(out), dim); });
  }
  if (c.dtype == ROTARY_F16) {
    return each_head(
        [&](const T* in, uint8_t* out) { ConvertHead<Src, F16Storage>(in, reinterpret_cast<uint16_t*>(out), dim); });
  }
#if ROTARY_NATIVE_BF16
  if (native_bf16) {
    return each_head([&](const T* in, uint8_t* out) {
      ConvertHead<Src, BF16NativeStorage>(in, reinterpret_cast<uint16_t*>(out), dim);
    });
  }
#endif
  (void)native_bf16;
  each_head([&](const T* in, uint8_t* out) { ConvertHead<Src, BF16Storage>(in, reinterpret_cast<uint16_t*>(out), dim); });
}

template <class Src>
void PagedKvRows(const PagedKvPass& p, int64_t begin, int64_t end, bool native_bf16, uint32_t zero) {
  using T = typename Src::T;
  const size_t dim = static_cast<size_t>(p.dim), kv_heads = static_cast<size_t>(p.kv_heads);
  const size_t q_row_bytes = static_cast<size_t>(p.q_heads) * dim * sizeof(T);
  for (int64_t r = begin; r < end; ++r) {
    if (p.q != nullptr) CopyOntoItself(static_cast<uint8_t*>(p.q) + r * q_row_bytes, q_row_bytes, zero);
    const int64_t slot = p.slots[r];
    if (slot < 0) continue;
    const size_t first = static_cast<size_t>(r) * kv_heads * dim;
    WriteHeads<Src>(static_cast<const T*>(p.k) + first, kv_heads, dim, p.k_cache, slot, native_bf16);
    WriteHeads<Src>(static_cast<const T*>(p.v) + first, kv_heads, dim, p.v_cache, slot, native_bf16);
  }
}

void PagedKvRange(const PagedKvPass& p, int64_t begin, int64_t end, bool native_bf16, uint32_t zero) {
  if (p.dtype == ROTARY_F32) PagedKvRows<F32Storage>(p, begin, end, native_bf16, zero);
  if (p.dtype == ROTARY_F16) PagedKvRows<F16Storage>(p, begin, end, native_bf16, zero);
  if (p.dtype == ROTARY_BF16) PagedKvRows<BF16Storage>(p, begin, end, native_bf16, zero);
}

// The loop a user would write (NaiveRope::Apply), compiled for this target.
void NaiveRows(float* HWY_RESTRICT x, const float* HWY_RESTRICT cos_table, const float* HWY_RESTRICT sin_table,
               int half, int64_t rows, int64_t seq, int64_t heads, int64_t offset, bool interleaved) {
  const int dim = 2 * half;
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t position = offset + r % seq;
    const float* c = cos_table + position * half;
    const float* s = sin_table + position * half;
    for (int64_t h = 0; h < heads; ++h) {
      float* v = x + (r * heads + h) * dim;
      for (int i = 0; i < half; ++i) {
        const int first = interleaved ? 2 * i : i;
        const int second = interleaved ? 2 * i + 1 : i + half;
        const float a = v[first], b = v[second];
        v[first] = a * c[i] - b * s[i];
        v[second] = a * s[i] + b * c[i];
      }
    }
  }
}

// NOLINTNEXTLINE(google-readability-namespace-comments)
}  // namespace HWY_NAMESPACE
}  // namespace rotary_bench
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include <cstring>

#include "lib/call/scheduler.h"
#include "lib/target_registry.h"

namespace rotary_bench {
HWY_EXPORT(StreamRange);
HWY_EXPORT(ConvertRange);
HWY_EXPORT(NaiveRows);
HWY_EXPORT(RmsNormRange);
HWY_EXPORT(PagedKvRange);

namespace {

// The yardsticks' code for rotary's active target: the entry of Highway's
// dispatch table that HWY_DYNAMIC_DISPATCH would take on a CPU whose best
// target were that one (the same index computation as hwy::ChosenTarget), so
// a case forced to AVX2 meets an AVX2 stream loop. `native_bf16`: the target
// rounds bf16 in hardware (AVX3_ZEN4).
struct ActiveYardstick {
  size_t index;
  bool native_bf16;
};

ActiveYardstick ForActiveTarget() {
  const char* name = rotary::ActiveTargetName();
  for (size_t i = 0; i < rotary::kNumCompiledTargets; ++i) {
    const rotary::CompiledTarget& t = rotary::kCompiledTargets[i];
    if (std::strcmp(t.name, name) != 0) continue;
    const int64_t mask = HWY_CHOSEN_TARGET_SHIFT(t.hwy_target) | HWY_CHOSEN_TARGET_MASK_SCALAR;
    return {hwy::Num0BitsBelowLS1Bit_Nonzero64(static_cast<uint64_t>(mask & HWY_CHOSEN_TARGET_MASK_TARGETS)),
            (t.extra_features & rotary::kAvx512Bf16) != 0};
  }
  rotary::ActiveKernels();  // throws: ROTARY_TARGET named a target this build or CPU cannot run
  return {0, false};
}

int64_t ElementBytes(rotary_dtype dtype) { return dtype == ROTARY_F32 ? 4 : 2; }
// Scheduled as rotary schedules the same elements (lib/call/scheduler.h).
int64_t ElementCost(rotary_dtype dtype) { return rotary::ElementCost(static_cast<rotary::DtypeIndex>(dtype)); }
}  // namespace

void StreamInPlace(void* x, rotary_dtype dtype, int64_t rows, int64_t elements_per_row, float a, float b) {
  char* base = static_cast<char*>(x);
  const int64_t row_bytes = elements_per_row * ElementBytes(dtype);
  const ActiveYardstick target = ForActiveTarget();
  const auto stream = HWY_DISPATCH_TABLE(StreamRange)[target.index];
  rotary::ForEachRowRange(rows, 2 * elements_per_row * ElementCost(dtype), [&](int64_t begin, int64_t end) {
    stream(base + begin * row_bytes, dtype, static_cast<size_t>((end - begin) * elements_per_row), a, b,
           target.native_bf16);
  });
}

void ConvertingCopy(const float* src, void* dst, rotary_dtype dst_dtype, int64_t rows, int64_t elements_per_row) {
  char* out = static_cast<char*>(dst);
  const int64_t out_row_bytes = elements_per_row * ElementBytes(dst_dtype);
  const int64_t cost_per_row = elements_per_row * (ElementCost(ROTARY_F32) + ElementCost(dst_dtype));
  const ActiveYardstick target = ForActiveTarget();
  const auto convert = HWY_DISPATCH_TABLE(ConvertRange)[target.index];
  rotary::ForEachRowRange(rows, cost_per_row, [&](int64_t begin, int64_t end) {
    convert(src + begin * elements_per_row, out + begin * out_row_bytes, dst_dtype,
            static_cast<size_t>((end - begin) * elements_per_row), target.native_bf16);
  });
}

void RmsNormInPlace(void* x, rotary_dtype dtype, int64_t rows, int64_t heads, int64_t dim, const float* weight,
                    float eps) {
  char* base = static_cast<char*>(x);
  const int64_t row_bytes = heads * dim * ElementBytes(dtype);
  const ActiveYardstick target = ForActiveTarget();
  const auto norm = HWY_DISPATCH_TABLE(RmsNormRange)[target.index];
  rotary::ForEachRowRange(rows, 2 * heads * dim * ElementCost(dtype), [&](int64_t begin, int64_t end) {
    norm(base + begin * row_bytes, dtype, static_cast<size_t>((end - begin) * heads), static_cast<size_t>(dim),
         weight, eps, target.native_bf16);
  });
}

namespace {
// 0, read at each pass: the compiler cannot know it (see CopyOntoItself).
volatile uint32_t opaque_zero = 0;

int64_t CacheElementCost(const PagedCache& c) {
  // An encoded cache is scheduled as rotary schedules it: like an f32 one.
  return c.format == ROTARY_CACHE_TENSOR ? ElementCost(c.dtype) : ElementCost(ROTARY_F32);
}
}  // namespace

void PagedKvWrite(const PagedKvPass& pass) {
  const ActiveYardstick target = ForActiveTarget();
  const auto write = HWY_DISPATCH_TABLE(PagedKvRange)[target.index];
  const uint32_t zero = opaque_zero;
  const int64_t cost_per_row =
      2 * pass.q_heads * pass.dim * ElementCost(pass.dtype) * (pass.q != nullptr ? 1 : 0) +
      pass.kv_heads * pass.dim * (2 * ElementCost(pass.dtype) + CacheElementCost(pass.k_cache) +
                                  CacheElementCost(pass.v_cache));
  rotary::ForEachRowRange(pass.rows, cost_per_row, [&](int64_t begin, int64_t end) {
    write(pass, begin, end, target.native_bf16, zero);
  });
}

NaiveRope::NaiveRope(int d, int64_t max_positions, double base) : dim(d) {
  const int half = dim / 2;
  cos_table.resize(max_positions * half);
  sin_table.resize(max_positions * half);
  for (int64_t p = 0; p < max_positions; ++p) {
    for (int i = 0; i < half; ++i) {
      const double angle = p * std::pow(base, -2.0 * i / dim);
      cos_table[p * half + i] = static_cast<float>(std::cos(angle));
      sin_table[p * half + i] = static_cast<float>(std::sin(angle));
    }
  }
}

void NaiveRope::Apply(float* x, int64_t rows, int64_t seq, int64_t heads, int64_t offset,
                      bool interleaved) const {
  HWY_DISPATCH_TABLE(NaiveRows)[ForActiveTarget().index](x, cos_table.data(), sin_table.data(), dim / 2, rows, seq,
                                                          heads, offset, interleaved);
}

}  // namespace rotary_bench
#endif  // HWY_ONCE
