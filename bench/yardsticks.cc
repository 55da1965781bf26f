#include "bench/yardsticks.h"

#include <cmath>

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "bench/yardsticks.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep

#include "hwy/highway.h"

#include "dispatch/convert-inl.h"

namespace rotary_bench {
// Whether the CPU rounds bf16 in hardware (rotary's AVX3_ZEN4 target is
// supported): then the yardsticks round bf16 that way too.
bool CpuRoundsBF16();
}  // namespace rotary_bench

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

void StreamRange(void* x, int dtype, size_t n, float a, float b) {
  if (dtype == ROTARY_F32) StreamWidened<F32Storage>(static_cast<float*>(x), n, a, b);
  if (dtype == ROTARY_F16) StreamWidened<F16Storage>(static_cast<uint16_t*>(x), n, a, b);
  if (dtype != ROTARY_BF16) return;
#if ROTARY_NATIVE_BF16
  if (CpuRoundsBF16()) return StreamBF16<BF16NativeStorage>(static_cast<uint16_t*>(x), n, a, b);
#endif
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

void ConvertRange(const float* src, void* dst, int dtype, size_t n) {
  if (dtype == ROTARY_F16) ConvertTyped<F16Storage>(src, static_cast<uint16_t*>(dst), n);
  if (dtype != ROTARY_BF16) return;
#if ROTARY_NATIVE_BF16
  if (CpuRoundsBF16()) return ConvertTyped<BF16NativeStorage>(src, static_cast<uint16_t*>(dst), n);
#endif
  ConvertTyped<BF16Storage>(src, static_cast<uint16_t*>(dst), n);
}

// NOLINTNEXTLINE(google-readability-namespace-comments)
}  // namespace HWY_NAMESPACE
}  // namespace rotary_bench
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include <string>

#include "lib/scheduler.h"
#include "rotary/rotary.hpp"

namespace rotary_bench {
HWY_EXPORT(StreamRange);
HWY_EXPORT(ConvertRange);

bool CpuRoundsBF16() {
  static const bool supported = [] {
    for (const std::string& name : rotary::supported_targets()) {
      if (name == "AVX3_ZEN4") return true;
    }
    return false;
  }();
  return supported;
}

namespace {
int64_t ElementBytes(rotary_dtype dtype) { return dtype == ROTARY_F32 ? 4 : 2; }
// Scheduled as rotary schedules the same elements (lib/scheduler.h).
int64_t ElementCost(rotary_dtype dtype) { return rotary::ElementCost(static_cast<rotary::DtypeIndex>(dtype)); }
}  // namespace

void StreamInPlace(void* x, rotary_dtype dtype, int64_t rows, int64_t elements_per_row, float a, float b) {
  char* base = static_cast<char*>(x);
  const int64_t row_bytes = elements_per_row * ElementBytes(dtype);
  rotary::ForEachRowRange(rows, 2 * elements_per_row * ElementCost(dtype), [&](int64_t begin, int64_t end) {
    HWY_DYNAMIC_DISPATCH(StreamRange)(base + begin * row_bytes, dtype,
                                      static_cast<size_t>((end - begin) * elements_per_row), a, b);
  });
}

void ConvertingCopy(const float* src, void* dst, rotary_dtype dst_dtype, int64_t rows, int64_t elements_per_row) {
  char* out = static_cast<char*>(dst);
  const int64_t out_row_bytes = elements_per_row * ElementBytes(dst_dtype);
  const int64_t cost_per_row = elements_per_row * (ElementCost(ROTARY_F32) + ElementCost(dst_dtype));
  rotary::ForEachRowRange(rows, cost_per_row, [&](int64_t begin, int64_t end) {
    HWY_DYNAMIC_DISPATCH(ConvertRange)(src + begin * elements_per_row, out + begin * out_row_bytes, dst_dtype,
                                       static_cast<size_t>((end - begin) * elements_per_row));
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
  const int half = dim / 2;
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t position = offset + r % seq;
    const float* c = &cos_table[position * half];
    const float* s = &sin_table[position * half];
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

}  // namespace rotary_bench
#endif  // HWY_ONCE
