#include "bench/yardsticks.h"

#include <cmath>

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
