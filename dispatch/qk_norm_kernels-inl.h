// Per-target qk-norm kernels: the definition of NormRotateRows (declared in
// kernel_entry_points-inl.h), instantiated per pairing by
// dispatch/instances/norm_rotate_<pairing>.cc for every Highway target.
//
// Per (b, s) row and operand, the heads are loaded a group at a time (up to
// 16 KiB; a whole-token norm: every head of the row) into a buffer that stays
// in L1, converted to f32 while their squares are summed; every head's factor
// r is taken; then u = (x * r) * (w + offset) is formed inside the rotation
// loop, which rotates it, scales it by q_scale and stores it converted (f32
// heads of whole blocks of 16 skip the buffer: summed and rotated from the
// tensor itself). Rows that loop does not cover (partial vectors, SCALAR)
// normalize the buffer first and rotate it with the plain kernels' head loops:
// the same bits. The tensor is read once and written once, as by the plain
// rotation.
//
// The factor r must have the same bits on every target, whatever its vector
// width (docs/math.md §8.3): 16 lane sums of squares in index order, a fixed
// tree, a correctly rounded sqrt and a division. The library is built with
// -ffp-contract=off (CMakeLists.txt): a fused multiply-add of `sum + x * x`
// would round once where §8.3 rounds twice.

// Per-target include guard (Highway's convention for -inl.h files).
#if defined(ROTARY_DISPATCH_QK_NORM_KERNELS_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef ROTARY_DISPATCH_QK_NORM_KERNELS_INL_H_
#undef ROTARY_DISPATCH_QK_NORM_KERNELS_INL_H_
#else
#define ROTARY_DISPATCH_QK_NORM_KERNELS_INL_H_
#endif

#include <algorithm>
#include <cmath>

#include "dispatch/convert-inl.h"
#include "dispatch/kernel_api.h"
#include "dispatch/kernel_entry_points-inl.h"
#include "dispatch/partial_vectors-inl.h"
#include "dispatch/rope_kernels-inl.h"
#include "hwy/cache_control.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace rotary {
namespace HWY_NAMESPACE {

// The lane sums of §8.3: component d adds to sum d mod 16.
constexpr size_t kNormLanes = 16;

constexpr size_t RoundUpToNormLanes(size_t n) { return (n + kNormLanes - 1) / kNormLanes * kNormLanes; }

// Floats of normalized heads a group holds at most (16 KiB: the group is
// written, read back and rotated while it is in L1).
constexpr size_t kNormGroupFloats = 4096;

// §8.3's fixed tree over the 16 lane sums: a_j += a_(j+h) for h = 8, 4, 2, 1.
HWY_INLINE float SumOfLaneSums(float* HWY_RESTRICT a) {
  for (size_t j = 0; j < 8; ++j) a[j] = a[j] + a[j + 8];
  for (size_t j = 0; j < 4; ++j) a[j] = a[j] + a[j + 4];
  a[0] = a[0] + a[2];
  a[1] = a[1] + a[3];
  return a[0] + a[1];
}

// The same tree over lane sums held in K vectors of N = 16 / K lanes
// (lanes of s0, then s1, ...), in registers where the target's shuffles
// allow: through memory, each head's tree stalled on loads of parts of
// wider stores.
template <size_t K, class D>
HWY_INLINE float TreeOfLaneSums(D d, hn::Vec<D> s0, hn::Vec<D> s1, hn::Vec<D> s2, hn::Vec<D> s3) {
#if HWY_TARGET != HWY_SCALAR && HWY_TARGET != HWY_EMU128 && (HWY_ARCH_X86 || HWY_TARGET == HWY_NEON)
  const auto last_two_steps = [](auto four) {  // h = 2, then h = 1, on lanes 0..3
    const auto pairs = hn::Add(four, hn::Shuffle1032(four));
    return hn::GetLane(hn::Add(pairs, hn::Shuffle2301(pairs)));
  };
  if constexpr (K == 1 && hn::MaxLanes(D()) == 16) {
    const hn::Half<D> d8;
    const hn::Half<decltype(d8)> d4;
    const auto eight = hn::Add(hn::LowerHalf(d8, s0), hn::UpperHalf(d8, s0));
    return last_two_steps(hn::Add(hn::LowerHalf(d4, eight), hn::UpperHalf(d4, eight)));
  } else if constexpr (K == 2 && hn::MaxLanes(D()) == 8) {
    const hn::Half<D> d4;
    const auto eight = hn::Add(s0, s1);
    return last_two_steps(hn::Add(hn::LowerHalf(d4, eight), hn::UpperHalf(d4, eight)));
  } else if constexpr (K == 4 && hn::MaxLanes(D()) == 4) {
    return last_two_steps(hn::Add(hn::Add(s0, s2), hn::Add(s1, s3)));
  }
#endif
  const size_t N = hn::Lanes(d);
  HWY_ALIGN float lane_sums[kNormLanes];
  hn::Store(s0, d, lane_sums);
  if (K > 1) hn::Store(s1, d, lane_sums + N);
  if (K > 2) {
    hn::Store(s2, d, lane_sums + 2 * N);
    hn::Store(s3, d, lane_sums + 3 * N);
  }
  return SumOfLaneSums(lane_sums);
}

// 1 / sqrt(sum / n + eps) (§8.3: a division as torch's mean, a correctly
// rounded square root, never an approximate rsqrt).
HWY_INLINE float FactorOfSum(float sum_of_squares, size_t n, float eps) {
  return 1.0f / std::sqrt(sum_of_squares / static_cast<float>(n) + eps);
}

// The sum of squares of u[0, padded) (padded a multiple of 16, the padding
// zeros) in §8.3's order: sum j of the 16 gets u[j]^2, u[j + 16]^2, ... in
// index order, each square and each sum rounded; then the fixed tree. A zero
// square added to a lane sum leaves it unchanged, so the padding is neutral.
// Lanes of the vectors below hold 16 / K of those sums each (K vectors of
// N = 16 / K lanes in flight).
template <size_t K>
HWY_INLINE float SumOfSquares(const float* HWY_RESTRICT u, size_t padded) {
  const hn::CappedTag<float, kNormLanes / K> d;
  const size_t N = hn::Lanes(d);
  HWY_ALIGN float lane_sums[kNormLanes];
  for (size_t j = 0; j < kNormLanes; j += K * N) {  // once, but on targets of fewer lanes (SCALAR)
    auto s0 = hn::Zero(d), s1 = hn::Zero(d), s2 = hn::Zero(d), s3 = hn::Zero(d);
    for (size_t k = j; k < padded; k += kNormLanes) {
      const auto v0 = hn::LoadU(d, u + k);
      s0 = hn::Add(s0, hn::Mul(v0, v0));
      if (K > 1) {
        const auto v1 = hn::LoadU(d, u + k + N);
        s1 = hn::Add(s1, hn::Mul(v1, v1));
      }
      if (K > 2) {
        const auto v2 = hn::LoadU(d, u + k + 2 * N);
        const auto v3 = hn::LoadU(d, u + k + 3 * N);
        s2 = hn::Add(s2, hn::Mul(v2, v2));
        s3 = hn::Add(s3, hn::Mul(v3, v3));
      }
    }
    if (K * N == kNormLanes) return TreeOfLaneSums<K>(d, s0, s1, s2, s3);
    hn::Store(s0, d, lane_sums + j);
    if (K > 1) hn::Store(s1, d, lane_sums + j + N);
    if (K > 2) {
      hn::Store(s2, d, lane_sums + j + 2 * N);
      hn::Store(s3, d, lane_sums + j + 3 * N);
    }
  }
  return SumOfLaneSums(lane_sums);
}

// The same sum of the n elements at x (n a multiple of 16), as they are
// converted to f32 and stored to u[0, n): one pass over the head. K vectors
// of this target's full width make 16 lanes (checked by the caller).
template <class Src, size_t K>
HWY_INLINE float LoadHeadAndSumSquares(const typename Src::T* HWY_RESTRICT x, size_t n, float* HWY_RESTRICT u) {
  const DF d;
  const size_t N = hn::Lanes(d);
  VF s0 = hn::Zero(d), s1 = hn::Zero(d), s2 = hn::Zero(d), s3 = hn::Zero(d);
  for (size_t k = 0; k < n; k += kNormLanes) {
    const VF v0 = LoadF32(Src(), x + k);
    hn::StoreU(v0, d, u + k);
    s0 = hn::Add(s0, hn::Mul(v0, v0));
    if (K > 1) {
      const VF v1 = LoadF32(Src(), x + k + N);
      hn::StoreU(v1, d, u + k + N);
      s1 = hn::Add(s1, hn::Mul(v1, v1));
    }
    if (K > 2) {
      const VF v2 = LoadF32(Src(), x + k + 2 * N);
      const VF v3 = LoadF32(Src(), x + k + 3 * N);
      hn::StoreU(v2, d, u + k + 2 * N);
      hn::StoreU(v3, d, u + k + 3 * N);
      s2 = hn::Add(s2, hn::Mul(v2, v2));
      s3 = hn::Add(s3, hn::Mul(v3, v3));
    }
  }
  return TreeOfLaneSums<K>(d, s0, s1, s2, s3);
}

// Whether this target's vectors may be 16 / K lanes of f32 (K vectors making
// the 16 lane sums): on fixed-width targets only one K can be, and the
// others are not compiled.
template <size_t K>
constexpr bool kMayTakeLaneSumsIn = HWY_HAVE_SCALABLE || hn::MaxLanes(DF()) * K == kNormLanes;

// Lane sums in flight: 16 / K vectors of up to 16 lanes, so that one
// vector's add latency per 16 components does not bound the loop.
HWY_INLINE float SumOfSquares(const float* HWY_RESTRICT u, size_t padded) {
  const size_t N = hn::Lanes(hn::CappedTag<float, kNormLanes>());
  if (4 * N <= kNormLanes) return SumOfSquares<4>(u, padded);
  if (2 * N <= kNormLanes) return SumOfSquares<2>(u, padded);
  return SumOfSquares<1>(u, padded);
}

// u[0, n) = (u * r) * gain, gain = w + offset (§8.3's order: two products).
HWY_INLINE void ScaleByFactorAndGain(float* HWY_RESTRICT u, size_t n, float r, const float* HWY_RESTRICT gain) {
  const DF d;
  const size_t N = hn::Lanes(d);
  const VF vr = hn::Set(d, r);
  size_t k = 0;
  for (; k + N <= n; k += N) hn::StoreU(hn::Mul(hn::Mul(hn::LoadU(d, u + k), vr), hn::LoadU(d, gain + k)), d, u + k);
  for (; k < n; ++k) u[k] = (u[k] * r) * gain[k];  // the same two products
}

// The n elements at x as f32 into u[0, n). May write up to a vector past
// u + n (the buffer has that slack; later heads overwrite it).
template <class Src>
HWY_INLINE void LoadHeadF32(const typename Src::T* HWY_RESTRICT x, size_t n, float* HWY_RESTRICT u) {
  const DF d;
  const size_t N = hn::Lanes(d);
  size_t k = 0;
  for (; k + N <= n; k += N) hn::StoreU(LoadF32(Src(), x + k), d, u + k);
  if (k != n) hn::StoreU(LoadTailF32<Src>(x + k, n - k, k), d, u + k);
}

// The n elements at x as f32 into u[0, RoundUpToNormLanes(n)) (zero padded),
// returning their sum of squares in §8.3's order.
template <class Src>
HWY_INLINE float LoadHeadSummingSquares(const typename Src::T* HWY_RESTRICT x, size_t n, float* HWY_RESTRICT u) {
  const size_t N = hn::Lanes(DF());
  if (n % kNormLanes == 0) {  // one pass; the usual head sizes (64, 128, 256)
    if constexpr (kMayTakeLaneSumsIn<1>) {
      if (N == kNormLanes) return LoadHeadAndSumSquares<Src, 1>(x, n, u);
    }
    if constexpr (kMayTakeLaneSumsIn<2>) {
      if (2 * N == kNormLanes) return LoadHeadAndSumSquares<Src, 2>(x, n, u);
    }
    if constexpr (kMayTakeLaneSumsIn<4>) {
      if (4 * N == kNormLanes) return LoadHeadAndSumSquares<Src, 4>(x, n, u);
    }
  }
  LoadHeadF32<Src>(x, n, u);
  std::fill(u + n, u + RoundUpToNormLanes(n), 0.0f);
  return SumOfSquares(u, RoundUpToNormLanes(n));
}

// How an operand's heads are buffered: `heads` at a time, `stride` floats apart.
struct NormGroup {
  size_t heads;
  size_t stride;
};

HWY_INLINE NormGroup NormGroupOf(const Operand& op, size_t head_dim) {
  const size_t heads = static_cast<size_t>(op.heads);
  // A whole-token norm needs every head of the row before the first is scaled.
  if (op.norm_whole_token) return {heads, head_dim};
  const size_t stride = RoundUpToNormLanes(head_dim);
  return {std::min(heads, std::max<size_t>(1, kNormGroupFloats / stride)), stride};
}

// Floats of the buffer the operands of a job need, with a vector of slack.
HWY_INLINE size_t NormBufferFloats(const RowJob& job) {
  size_t floats = 0;
  for (int o = 0; o < job.num_operands; ++o) {
    const NormGroup group = NormGroupOf(job.operands[o], job.head_dim);
    const size_t heads_floats = group.heads * group.stride;
    floats = std::max(floats, RoundUpToNormLanes(heads_floats));
  }
  return floats + hn::MaxLanes(DF());
}

// Heads [first, first + heads) of one operand's row at `row`, as f32 into
// `buffer` (group.stride apart), and the norm factor r of each into
// factors[h] (1 without a norm weight; one r for them all, whole-token).
// Not inlined, and templated on the source only: one copy per source
// storage serves every pairing and destination.
template <class Src>
HWY_NOINLINE void LoadHeadsAndFactors(const Operand& op, const void* row, int64_t first, size_t heads,
                                      NormGroup group, size_t head_dim, float* HWY_RESTRICT buffer,
                                      float* HWY_RESTRICT factors) {
  const typename Src::T* x = static_cast<const typename Src::T*>(row) + first * op.src_stride_head;
  if (op.norm_weight == nullptr || op.norm_whole_token) {
    for (size_t h = 0; h < heads; ++h) {
      LoadHeadF32<Src>(x + static_cast<int64_t>(h) * op.src_stride_head, head_dim, buffer + h * group.stride);
    }
    float r = 1.0f;
    if (op.norm_weight != nullptr) {  // the heads side by side (stride head_dim): one sum over all of them
      const size_t n = heads * head_dim;
      std::fill(buffer + n, buffer + RoundUpToNormLanes(n), 0.0f);
      r = FactorOfSum(SumOfSquares(buffer, RoundUpToNormLanes(n)), n, op.norm_eps);
    }
    std::fill(factors, factors + heads, r);
    return;
  }
  for (size_t h = 0; h < heads; ++h) {
    const float sum = LoadHeadSummingSquares<Src>(x + static_cast<int64_t>(h) * op.src_stride_head, head_dim,
                                                  buffer + h * group.stride);
    factors[h] = FactorOfSum(sum, head_dim, op.norm_eps);
  }
}

// The normalized heads of a group, u = (x * r) * gain, rotated and scaled
// from the buffer (or an f32 source: `buffer` may be the destination itself,
// in place) to the destination: the products are computed as each
// vector is rotated, with no pass of their own over the buffer. Rows whose
// rotated and passed-through parts are whole vectors (NormalizesInRotation);
// the same bits as ScaleByFactorAndGain then the plain rotation.
template <int kPairing, class Dst>
HWY_NOINLINE void RotateNormalizingHeads(const float* buffer, NormGroup group, size_t heads,
                                         const float* HWY_RESTRICT factors, const float* HWY_RESTRICT gain,
                                         size_t gain_stride, void* dst, int64_t dst_stride_head, const float* cos,
                                         const float* sin, size_t pairs, size_t head_dim, float scale,
                                         const char* prefetch, int64_t prefetch_stride, size_t prefetch_bytes) {
  const DF d;
  const size_t N = hn::Lanes(d);
  const size_t rotated = 2 * pairs;
  const VF vscale = hn::Set(d, scale);
  for (size_t h = 0; h < heads; ++h) {
    const float* x = buffer + h * group.stride;
    const float* g = gain + h * gain_stride;
    typename Dst::T* y = static_cast<typename Dst::T*>(dst) + static_cast<int64_t>(h) * dst_stride_head;
    const VF r = hn::Set(d, factors[h]);
    if (prefetch != nullptr) {  // spread over the heads: a burst of them would fill the load queue
      const char* head = prefetch + static_cast<int64_t>(h) * prefetch_stride;
      for (size_t at = 0; at < prefetch_bytes; at += 64) hwy::Prefetch(head + at);
    }
    const auto normalized = [&](size_t k) { return hn::Mul(hn::Mul(hn::LoadU(d, x + k), r), hn::LoadU(d, g + k)); };
    // Two vectors at a time where the part allows: stored as pairs
    // (StoreF32Pair: bf16 rounds both with one permute). Same values either way.
    if (kPairing == kNeoxPairs) {
      size_t i = 0;
      for (; pairs % (2 * N) == 0 && i < pairs; i += 2 * N) {
        VF a0 = normalized(i), c0 = normalized(pairs + i), a1 = normalized(i + N), c1 = normalized(pairs + i + N);
        RotatePairs(a0, c0, InRegister(hn::LoadU(d, cos + i)), InRegister(hn::LoadU(d, sin + i)));
        RotatePairs(a1, c1, InRegister(hn::LoadU(d, cos + i + N)), InRegister(hn::LoadU(d, sin + i + N)));
        StoreF32Pair(Dst(), a0, a1, y + i);
        StoreF32Pair(Dst(), c0, c1, y + pairs + i);
      }
      for (; i < pairs; i += N) {
        VF a = normalized(i), c = normalized(pairs + i);
        RotatePairs(a, c, InRegister(hn::LoadU(d, cos + i)), InRegister(hn::LoadU(d, sin + i)));
        StoreF32(Dst(), a, y + i);
        StoreF32(Dst(), c, y + pairs + i);
      }
    } else {
#if HWY_TARGET != HWY_SCALAR
      size_t k = 0;
      for (; rotated % (2 * N) == 0 && k < rotated; k += 2 * N) {
        StoreF32Pair(Dst(), RotateAdjacent(normalized(k), hn::LoadU(d, cos + k), hn::LoadU(d, sin + k)),
                     RotateAdjacent(normalized(k + N), hn::LoadU(d, cos + k + N), hn::LoadU(d, sin + k + N)), y + k);
      }
      for (; k < rotated; k += N) {
        StoreF32(Dst(), RotateAdjacent(normalized(k), hn::LoadU(d, cos + k), hn::LoadU(d, sin + k)), y + k);
      }
#endif
    }
    for (size_t k = rotated; k < head_dim; k += N) StoreF32(Dst(), hn::Mul(normalized(k), vscale), y + k);
  }
}

// Whether RotateNormalizingHeads covers a row: whole vectors in the rotated
// part (in the table's layout) and in the part past it, a row chunk that
// ScaledRowChunk holds, and a target whose lanes hold pairs.
HWY_INLINE bool NormalizesInRotation(int pairing, size_t pairs, size_t head_dim) {
  const size_t N = hn::Lanes(DF());
  const size_t floats = pairing == kNeoxPairs ? pairs : 2 * pairs;
  return HWY_TARGET != HWY_SCALAR && floats % N == 0 && (head_dim - 2 * pairs) % N == 0 &&
         floats <= ScaledRowChunk::kFloats;
}

// The storage-specific parts of a norm kernel (LoadHeadsAndFactors<Src>,
// RotateNormalizingHeads<kPairing, Dst>, and for the rows that loop does not
// cover the plain kernel RotateRows<kPairing, F32Storage, Dst>, compiled in
// instances/rotate_<pairing>_f32.cc): the row loop below calls them through
// pointers, so that it is compiled once per target, not once per pairing and
// storage pair.
struct NormKernelParts {
  void (*load)(const Operand& op, const void* row, int64_t first, size_t heads, NormGroup group, size_t head_dim,
               float* HWY_RESTRICT buffer, float* HWY_RESTRICT factors);
  void (*rotate_normalizing)(const float* buffer, NormGroup group, size_t heads,
                             const float* HWY_RESTRICT factors, const float* HWY_RESTRICT gain, size_t gain_stride,
                             void* dst, int64_t dst_stride_head, const float* cos, const float* sin, size_t pairs,
                             size_t head_dim, float scale, const char* prefetch, int64_t prefetch_stride,
                             size_t prefetch_bytes);
  RowKernel rotate_plain;
  int pairing;
  size_t src_bytes, dst_bytes;
};

// Floats of an operand's gain vector (w + offset; ones without a weight).
HWY_INLINE size_t GainFloats(const Operand& op, size_t head_dim) {
  return op.norm_weight != nullptr && op.norm_whole_token ? static_cast<size_t>(op.heads) * head_dim : head_dim;
}

// Calls streaming from DRAM: where the source heads after this group start
// (in this row, else the next row), to be requested while this group is
// rotated; nullptr otherwise. Without it, a group's loads wait on memory, then
// its arithmetic leaves the memory idle: the two add up instead of overlapping.
HWY_INLINE const char* NextGroupSource(const Operand& op, const char* row, int64_t first, size_t heads,
                                       size_t src_bytes, bool streaming) {
  if (!streaming) return nullptr;
  const int64_t next = first + static_cast<int64_t>(heads);
  return next < op.heads ? row + next * op.src_stride_head * static_cast<int64_t>(src_bytes)
                         : row + op.src_stride_seq * static_cast<int64_t>(src_bytes);
}

// All heads of one operand at row (b, s), a group at a time: loaded with
// their factors into `buffer`, then normalized as they are rotated with the
// table row (cos, sin), or normalized in the buffer and rotated from it
// (rows NormalizesInRotation does not cover).
HWY_INLINE void NormRotateOperandRow(const Operand& op, int64_t b, int64_t s, const float* cos, const float* sin,
                                     const RowJob& job, const NormKernelParts& parts, const float* HWY_RESTRICT gain,
                                     float* HWY_RESTRICT scaled_row, float* HWY_RESTRICT factors,
                                     float* HWY_RESTRICT buffer) {
  const char* x = static_cast<const char*>(op.src) +
                  (b * op.src_stride_batch + s * op.src_stride_seq) * static_cast<int64_t>(parts.src_bytes);
  char* y = static_cast<char*>(op.dst) +
            (b * op.dst_stride_batch + s * op.dst_stride_seq) * static_cast<int64_t>(parts.dst_bytes);
  const NormGroup group = NormGroupOf(op, job.head_dim);
  const size_t gain_stride = op.norm_weight != nullptr && op.norm_whole_token ? job.head_dim : 0;
  const bool in_rotation = NormalizesInRotation(parts.pairing, job.pairs, job.head_dim);
  if (in_rotation && op.scale != 1.0f) {  // the scale folded into the row once, as RotateOperandRow does
    const size_t half = static_cast<size_t>(job.table.row_floats / 2);
    ScaledRowChunk& chunk = *reinterpret_cast<ScaledRowChunk*>(scaled_row);
    chunk.Fill(cos, sin, half, op.scale);
    cos = chunk.cos;
    sin = chunk.sin;
  }
  // f32 sources whose heads are whole blocks of 16: summed and rotated straight
  // from the tensor, which the sums bring into L1 (no copy into the buffer).
  // In place, each vector is loaded before it is stored.
  const bool direct = in_rotation && parts.src_bytes == 4 && job.head_dim % kNormLanes == 0 &&
                      op.norm_weight != nullptr && !op.norm_whole_token;
  for (int64_t first = 0; first < op.heads; first += static_cast<int64_t>(group.heads)) {
    const size_t heads = std::min(group.heads, static_cast<size_t>(op.heads - first));
    char* y_first = y + first * op.dst_stride_head * static_cast<int64_t>(parts.dst_bytes);
    if (direct) {
      const float* xf = reinterpret_cast<const float*>(x) + first * op.src_stride_head;
      for (size_t h = 0; h < heads; ++h) {
        factors[h] = FactorOfSum(SumOfSquares(xf + static_cast<int64_t>(h) * op.src_stride_head, job.head_dim),
                                 job.head_dim, op.norm_eps);
      }
      const char* prefetch = NextGroupSource(op, x, first, heads, parts.src_bytes, job.streaming);
      parts.rotate_normalizing(xf, NormGroup{heads, static_cast<size_t>(op.src_stride_head)}, heads, factors,
                               gain + static_cast<size_t>(first) * gain_stride, gain_stride, y_first,
                               op.dst_stride_head, cos, sin, job.pairs, job.head_dim, op.scale, prefetch,
                               op.src_stride_head * 4, job.head_dim * 4);
      continue;
    }
    parts.load(op, x, first, heads, group, job.head_dim, buffer, factors);
    const char* prefetch = NextGroupSource(op, x, first, heads, parts.src_bytes, job.streaming);
    if (in_rotation) {
      parts.rotate_normalizing(buffer, group, heads, factors, gain + static_cast<size_t>(first) * gain_stride,
                               gain_stride, y_first, op.dst_stride_head, cos, sin, job.pairs, job.head_dim, op.scale,
                               prefetch, op.src_stride_head * static_cast<int64_t>(parts.src_bytes),
                               job.head_dim * parts.src_bytes);
      continue;
    }
    for (size_t h = 0; h < heads; ++h) {
      ScaleByFactorAndGain(buffer + h * group.stride, job.head_dim, factors[h],
                           gain + (static_cast<size_t>(first) + h) * gain_stride);
    }
    // The plain kernel on this row, with the buffer as its only operand.
    RowJob normalized = job;
    normalized.num_operands = 1;
    Operand& from_buffer = normalized.operands[0];
    from_buffer = op;
    from_buffer.src = buffer;
    from_buffer.src_stride_batch = from_buffer.src_stride_seq = 0;
    from_buffer.src_stride_head = static_cast<int64_t>(group.stride);
    from_buffer.dst = y_first;
    from_buffer.dst_stride_batch = from_buffer.dst_stride_seq = 0;
    from_buffer.heads = static_cast<int64_t>(heads);
    from_buffer.write_rest = true;  // components past rotary_dim are normalized too
    const int64_t row = b * job.seq + s;
    parts.rotate_plain(normalized, row, row + 1);
  }
}

inline HWY_NOINLINE void NormRotateRowRange(const RowJob& job, int64_t row_begin, int64_t row_end,
                                            const NormKernelParts& parts) {
  const size_t row_floats = ScratchRows(job) * ScratchRowFloats(job.table.row_floats);
  const size_t scaled_floats = sizeof(ScaledRowChunk) / sizeof(float);
  size_t gain_floats[2] = {0, 0};
  for (int o = 0; o < job.num_operands; ++o) {
    gain_floats[o] = RoundUpToNormLanes(GainFloats(job.operands[o], job.head_dim)) + hn::MaxLanes(DF());
  }
  // A factor per head of a group (a whole-token group is every head of the row).
  size_t factor_floats = 0;
  for (int o = 0; o < job.num_operands; ++o) {
    factor_floats = std::max(factor_floats, RoundUpToNormLanes(NormGroupOf(job.operands[o], job.head_dim).heads));
  }
  const size_t floats =
      row_floats + scaled_floats + gain_floats[0] + gain_floats[1] + factor_floats + NormBufferFloats(job);
  WithScratch(floats, [&](float* scratch) {
    float* const row_scratch = row_floats ? scratch : nullptr;
    float* const scaled_row = scratch + row_floats;
    // The gains w + offset, once per row range (§8.3: each rounded once, as in every product).
    float* gains[2] = {scaled_row + scaled_floats, scaled_row + scaled_floats + gain_floats[0]};
    for (int o = 0; o < job.num_operands; ++o) {
      const float* w = job.operands[o].norm_weight;
      const float offset = job.operands[o].norm_offset;
      float* gain = gains[o];
      const size_t n = GainFloats(job.operands[o], job.head_dim);
      if (w == nullptr) {
        std::fill(gain, gain + n, 1.0f);  // (x * 1) * 1: x, exactly
      } else {
        for (size_t d = 0; d < n; ++d) gain[d] = w[d] + offset;
      }
    }
    float* const factors = gains[1] + gain_floats[1];
    float* const buffer = factors + factor_floats;
    int64_t b = row_begin / job.seq;
    int64_t s = row_begin % job.seq;
    for (int64_t row = row_begin; row < row_end; ++row) {
      const float* cos = RowOf(job, b, s, row_scratch);
      const float* sin = cos + job.table.row_floats / 2;
      for (int o = 0; o < job.num_operands; ++o) {
        NormRotateOperandRow(job.operands[o], b, s, cos, sin, job, parts, gains[o], scaled_row, factors, buffer);
      }
      if (++s == job.seq) {
        s = 0;
        ++b;
      }
    }
  });
}

// One operand's row in a per-operand job (a KV-cache write) with qk-norm:
// every head of the row is loaded into an f32 buffer and normalized there, u =
// (x * r) * gain (§8.3: the products of ScaleByFactorAndGain, so the bits of
// NormRotateRows), then rotated from the buffer into the operand's
// destination, a tensor or a cache slot of any format, by its own row kernel
// for an f32 source (Operand::normalized_row_kernel). The whole row at once:
// the destination's slot is the row's, and a one-row buffer stays in L1.
template <class Src>
void NormalizeOperandRow(const Operand& op, int64_t b, int64_t s, int64_t row, const float* cos, const float* sin,
                         size_t pairs, size_t head_dim, bool streaming) {
  const size_t heads = static_cast<size_t>(op.heads);
  const NormGroup group{heads, op.norm_whole_token ? head_dim : RoundUpToNormLanes(head_dim)};
  const size_t gain_floats = RoundUpToNormLanes(GainFloats(op, head_dim));
  const size_t factor_floats = RoundUpToNormLanes(heads);
  const size_t buffer_floats = RoundUpToNormLanes(heads * group.stride) + hn::MaxLanes(DF());
  WithScratch(gain_floats + factor_floats + buffer_floats, [&](float* scratch) {
    float* const gain = scratch;
    float* const factors = gain + gain_floats;
    float* const buffer = factors + factor_floats;
    const size_t n = GainFloats(op, head_dim);
    for (size_t d = 0; d < n; ++d) gain[d] = op.norm_weight[d] + op.norm_offset;  // as NormRotateRowRange's
    const typename Src::T* x = static_cast<const typename Src::T*>(op.src) + b * op.src_stride_batch +
                               s * op.src_stride_seq;
    LoadHeadsAndFactors<Src>(op, x, 0, heads, group, head_dim, buffer, factors);
    const size_t gain_stride = op.norm_whole_token ? head_dim : 0;
    for (size_t h = 0; h < heads; ++h) {
      ScaleByFactorAndGain(buffer + h * group.stride, head_dim, factors[h], gain + h * gain_stride);
    }
    Operand normalized = op;
    normalized.src = buffer;
    normalized.src_stride_batch = normalized.src_stride_seq = 0;
    normalized.src_stride_head = static_cast<int64_t>(group.stride);
    normalized.write_rest = true;  // components past rotary_dim are normalized too
    op.normalized_row_kernel(normalized, b, s, row, cos, sin, pairs, head_dim, streaming);
  });
}

template <int kPairing, class Src, class Dst>
void NormRotateRows(const RowJob& job, int64_t row_begin, int64_t row_end) {
  static constexpr NormKernelParts kParts = {&LoadHeadsAndFactors<Src>, &RotateNormalizingHeads<kPairing, Dst>,
                                             &RotateRows<kPairing, F32Storage, Dst>, kPairing,
                                             sizeof(typename Src::T), sizeof(typename Dst::T)};
  NormRotateRowRange(job, row_begin, row_end, kParts);
}

// NOLINTNEXTLINE(google-readability-namespace-comments)
}  // namespace HWY_NAMESPACE
}  // namespace rotary
HWY_AFTER_NAMESPACE();

#endif  // per-target include guard
