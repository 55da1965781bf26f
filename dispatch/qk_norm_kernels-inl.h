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

// §8.3's fixed tree over the 16 lane sums, a_j += a_(j+h) for h = 8, 4, 2, 1,
// runs in two halves: h = 8 and 4 per head, leaving its four partial sums
// a_0..a_3; h = 2 and 1 then across heads, a vector of heads at a time
// (FactorsOfPartials). One head's tree and factor are a chain of dependent
// operations (shuffles, adds, two divisions and a square root) that the
// heads' loop cannot overlap; across heads they are a few vector operations.
// Each lane's operations are the scalar ones, correctly rounded: same bits.

// Steps h = 8 and h = 4 on 16 lane sums in memory: a_0..a_3 to p[0, 4).
HWY_INLINE void FoldLaneSumsToFour(float* HWY_RESTRICT a, float* HWY_RESTRICT p) {
  for (size_t j = 0; j < 8; ++j) a[j] = a[j] + a[j + 8];
  for (size_t j = 0; j < 4; ++j) p[j] = a[j] + a[j + 4];
}

// Steps h = 2 and h = 1 on one head's four partial sums.
HWY_INLINE float SumOfFourPartials(const float* HWY_RESTRICT p) { return (p[0] + p[2]) + (p[1] + p[3]); }

// Steps h = 8 and h = 4 on lane sums held in K vectors of N = 16 / K lanes
// (lanes of s0, then s1, ...), in registers where the target's shuffles
// allow: a_0..a_3 to p[0, 4).
template <size_t K, class D>
HWY_INLINE void StoreFourPartials(D d, hn::Vec<D> s0, hn::Vec<D> s1, hn::Vec<D> s2, hn::Vec<D> s3,
                                  float* HWY_RESTRICT p) {
#if HWY_TARGET != HWY_SCALAR && HWY_TARGET != HWY_EMU128 && (HWY_ARCH_X86 || HWY_TARGET == HWY_NEON)
  if constexpr (K == 1 && hn::MaxLanes(D()) == 16) {
    const hn::Half<D> d8;
    const hn::Half<decltype(d8)> d4;
    const auto eight = hn::Add(hn::LowerHalf(d8, s0), hn::UpperHalf(d8, s0));
    return hn::StoreU(hn::Add(hn::LowerHalf(d4, eight), hn::UpperHalf(d4, eight)), d4, p);
  } else if constexpr (K == 2 && hn::MaxLanes(D()) == 8) {
    const hn::Half<D> d4;
    const auto eight = hn::Add(s0, s1);
    return hn::StoreU(hn::Add(hn::LowerHalf(d4, eight), hn::UpperHalf(d4, eight)), d4, p);
  } else if constexpr (K == 4 && hn::MaxLanes(D()) == 4) {
    return hn::StoreU(hn::Add(hn::Add(s0, s2), hn::Add(s1, s3)), d, p);
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
  FoldLaneSumsToFour(lane_sums, p);
}

// 1 / sqrt(sum / n + eps) (§8.3: a division as torch's mean, a correctly
// rounded square root, never an approximate rsqrt).
HWY_INLINE float FactorOfSum(float sum_of_squares, size_t n, float eps) {
  return 1.0f / std::sqrt(sum_of_squares / static_cast<float>(n) + eps);
}

// factors[h] = FactorOfSum(SumOfFourPartials(partials + 4 h), n, eps) for
// h < heads <= 16, a vector of heads at a time: the same operations in each
// lane (Highway's Div and Sqrt are the IEEE ones on every target). Writes
// factors up to a whole vector past `heads`; reads partials as far (zeros).
HWY_INLINE void FactorsOfPartials(const float* HWY_RESTRICT partials, size_t heads, size_t n, float eps,
                                  float* HWY_RESTRICT factors) {
  const hn::CappedTag<float, kNormLanes> d;
  const size_t N = hn::Lanes(d);
  const auto mean_divisor = hn::Set(d, static_cast<float>(n));
  const auto veps = hn::Set(d, eps);
  for (size_t h = 0; h < heads; h += N) {
    hn::Vec<decltype(d)> p0, p1, p2, p3;
    hn::LoadInterleaved4(d, partials + 4 * h, p0, p1, p2, p3);
    const auto sum = hn::Add(hn::Add(p0, p2), hn::Add(p1, p3));
    hn::StoreU(hn::Div(hn::Set(d, 1.0f), hn::Sqrt(hn::Add(hn::Div(sum, mean_divisor), veps))), d, factors + h);
  }
}

// The norm factor of each of `heads` heads of n components into
// factors[0, RoundUpToNormLanes(heads)), 16 heads at a time:
// partials_of writes them (below).
// partials_of(h, count, p) writes the partials of heads [h, h + count) to
// p[0, 4 count); count is `at_once` or 1.
template <class PartialsOf>
HWY_INLINE void FactorsOfHeads(size_t heads, size_t n, float eps, float* HWY_RESTRICT factors, size_t at_once,
                               const PartialsOf& partials_of) {
  HWY_ALIGN float partials[4 * kNormLanes];
  for (size_t first = 0; first < heads; first += kNormLanes) {
    const size_t count = std::min(kNormLanes, heads - first);
    size_t h = 0;
    for (; h + at_once <= count; h += at_once) partials_of(first + h, at_once, partials + 4 * h);
    for (; h < count; ++h) partials_of(first + h, 1, partials + 4 * h);
    std::fill(partials + 4 * count, partials + 4 * kNormLanes, 0.0f);
    FactorsOfPartials(partials, count, n, eps, factors + first);
  }
}

// The four partial sums of squares of u[0, padded) (padded a multiple of 16,
// the padding zeros) in §8.3's order: sum j of the 16 gets u[j]^2,
// u[j + 16]^2, ... in index order, each square and each sum rounded; then
// steps h = 8 and 4 of the tree. A zero square added to a lane sum leaves it
// unchanged, so the padding is neutral. Lanes of the vectors below hold
// 16 / K of those sums each (K vectors of N = 16 / K lanes in flight).
template <size_t K>
HWY_INLINE void PartialsOfSquares(const float* HWY_RESTRICT u, size_t padded, float* HWY_RESTRICT p) {
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
    if (K * N == kNormLanes) return StoreFourPartials<K>(d, s0, s1, s2, s3, p);
    hn::Store(s0, d, lane_sums + j);
    if (K > 1) hn::Store(s1, d, lane_sums + j + N);
    if (K > 2) {
      hn::Store(s2, d, lane_sums + j + 2 * N);
      hn::Store(s3, d, lane_sums + j + 3 * N);
    }
  }
  FoldLaneSumsToFour(lane_sums, p);
}

// The partials of 4 / K heads from 4 accumulators, accumulator a holding
// head a / K's lane sums (a % K) * N onwards: head h's to p[4 h, 4 h + 4).
template <size_t K, class D>
HWY_INLINE void StorePartialsOfHeads(D d, hn::Vec<D> s0, hn::Vec<D> s1, hn::Vec<D> s2, hn::Vec<D> s3,
                                     float* HWY_RESTRICT p) {
  if constexpr (K == 1) {
    StoreFourPartials<1>(d, s0, s0, s0, s0, p);
    StoreFourPartials<1>(d, s1, s1, s1, s1, p + 4);
    StoreFourPartials<1>(d, s2, s2, s2, s2, p + 8);
    StoreFourPartials<1>(d, s3, s3, s3, s3, p + 12);
  } else if constexpr (K == 2) {
    StoreFourPartials<2>(d, s0, s1, s0, s1, p);
    StoreFourPartials<2>(d, s2, s3, s2, s3, p + 4);
  } else {
    StoreFourPartials<4>(d, s0, s1, s2, s3, p);
  }
}

// PartialsOfSquares of 4 / K heads at once (`stride` floats apart; K
// vectors of N = 16 / K lanes make a head's lane sums, so 4 accumulators are
// in flight whatever the width): one head's chain of dependent adds would
// bound the loop by their latency. Head h's partials to p[4 h, 4 h + 4).
template <size_t K>
HWY_INLINE void PartialsOfSquaresOfHeads(const float* HWY_RESTRICT u, int64_t stride, size_t padded,
                                         float* HWY_RESTRICT p) {
  static_assert(K == 1 || K == 2 || K == 4, "4 / K heads");
  const hn::CappedTag<float, kNormLanes / K> d;
  const size_t N = hn::Lanes(d);
  // Accumulator a: head a / K, lanes (a % K) * N of its 16.
  const float* u0 = u + (0 / K) * stride + (0 % K) * N;
  const float* u1 = u + (1 / K) * stride + (1 % K) * N;
  const float* u2 = u + (2 / K) * stride + (2 % K) * N;
  const float* u3 = u + (3 / K) * stride + (3 % K) * N;
  auto s0 = hn::Zero(d), s1 = hn::Zero(d), s2 = hn::Zero(d), s3 = hn::Zero(d);
  for (size_t k = 0; k < padded; k += kNormLanes) {
    const auto v0 = hn::LoadU(d, u0 + k), v1 = hn::LoadU(d, u1 + k);
    const auto v2 = hn::LoadU(d, u2 + k), v3 = hn::LoadU(d, u3 + k);
    s0 = hn::Add(s0, hn::Mul(v0, v0));
    s1 = hn::Add(s1, hn::Mul(v1, v1));
    s2 = hn::Add(s2, hn::Mul(v2, v2));
    s3 = hn::Add(s3, hn::Mul(v3, v3));
  }
  StorePartialsOfHeads<K>(d, s0, s1, s2, s3, p);
}

// How many heads PartialsOfSquaresOfHeads sums at once here: 4 / K where K
// full vectors make a head's 16 lane sums (AVX-512: 4, AVX2: 2); 1 where K
// is 4 already (128-bit vectors) or the width is not fixed.
constexpr size_t kLaneSumVectors =
    HWY_HAVE_SCALABLE || HWY_TARGET == HWY_SCALAR ? 0 : kNormLanes / hn::MaxLanes(DF());
constexpr size_t kHeadsSummedAtOnce = kLaneSumVectors == 1 ? 4 : kLaneSumVectors == 2 ? 2 : 1;

// The n elements (a multiple of 16) of each of kHeads heads at x (xs
// elements apart) converted to f32 into u's rows (`stride` floats apart), and
// each head's four partial sums of squares in §8.3's order to p[4 h, 4 h + 4):
// one pass. K full vectors of this target make a head's 16 lane sums (checked
// by the caller), so K * kHeads accumulators are in flight, at most 4:
// accumulator a holds head a / K's lanes (a % K) * N onwards. Several heads
// at once keep 4 in flight on wide targets, where one head's chain of
// dependent adds would bound the loop by their latency.
template <class Src, size_t K, size_t kHeads>
HWY_INLINE void LoadHeadsAndPartials(const typename Src::T* HWY_RESTRICT x, int64_t xs, size_t n,
                                     float* HWY_RESTRICT u, size_t stride, float* HWY_RESTRICT p) {
  constexpr size_t kAccumulators = K * kHeads;
  static_assert(kAccumulators == 1 || kAccumulators == 2 || kAccumulators == 4, "1, 2 or 4 accumulators");
  const DF d;
  const size_t N = hn::Lanes(d);
  const auto source = [&](size_t a) { return x + static_cast<int64_t>(a / K) * xs + (a % K) * N; };
  const auto row = [&](size_t a) { return u + (a / K) * stride + (a % K) * N; };
  VF s0 = hn::Zero(d), s1 = hn::Zero(d), s2 = hn::Zero(d), s3 = hn::Zero(d);
  for (size_t k = 0; k < n; k += kNormLanes) {
    const VF v0 = LoadF32(Src(), source(0) + k);
    hn::StoreU(v0, d, row(0) + k);
    s0 = hn::Add(s0, hn::Mul(v0, v0));
    if constexpr (kAccumulators > 1) {
      const VF v1 = LoadF32(Src(), source(1) + k);
      hn::StoreU(v1, d, row(1) + k);
      s1 = hn::Add(s1, hn::Mul(v1, v1));
    }
    if constexpr (kAccumulators > 2) {
      const VF v2 = LoadF32(Src(), source(2) + k), v3 = LoadF32(Src(), source(3) + k);
      hn::StoreU(v2, d, row(2) + k);
      hn::StoreU(v3, d, row(3) + k);
      s2 = hn::Add(s2, hn::Mul(v2, v2));
      s3 = hn::Add(s3, hn::Mul(v3, v3));
    }
  }
  if constexpr (kHeads == 1) {
    StoreFourPartials<K>(d, s0, s1, s2, s3, p);
  } else {
    StorePartialsOfHeads<K>(d, s0, s1, s2, s3, p);
  }
}

// Whether this target's vectors may be 16 / K lanes of f32 (K vectors making
// the 16 lane sums): on fixed-width targets only one K can be, and the
// others are not compiled.
template <size_t K>
constexpr bool kMayTakeLaneSumsIn = HWY_HAVE_SCALABLE || hn::MaxLanes(DF()) * K == kNormLanes;

// Lane sums in flight: 16 / K vectors of up to 16 lanes, so that one
// vector's add latency per 16 components does not bound the loop.
HWY_INLINE void PartialsOfSquares(const float* HWY_RESTRICT u, size_t padded, float* HWY_RESTRICT p) {
  const size_t N = hn::Lanes(hn::CappedTag<float, kNormLanes>());
  if (4 * N <= kNormLanes) return PartialsOfSquares<4>(u, padded, p);
  if (2 * N <= kNormLanes) return PartialsOfSquares<2>(u, padded, p);
  return PartialsOfSquares<1>(u, padded, p);
}

// The whole sum of squares of u[0, padded) in §8.3's order (one sum: a
// whole-token norm).
HWY_INLINE float SumOfSquares(const float* HWY_RESTRICT u, size_t padded) {
  HWY_ALIGN float p[4];
  PartialsOfSquares(u, padded, p);
  return SumOfFourPartials(p);
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
// and their four partial sums of squares in §8.3's order to p[0, 4).
template <class Src>
HWY_INLINE void LoadHeadWithPartials(const typename Src::T* HWY_RESTRICT x, size_t n, float* HWY_RESTRICT u,
                                     float* HWY_RESTRICT p) {
  const size_t N = hn::Lanes(DF());
  if (n % kNormLanes == 0) {  // one pass; the usual head sizes (64, 128, 256)
    if constexpr (kMayTakeLaneSumsIn<1>) {
      if (N == kNormLanes) return LoadHeadsAndPartials<Src, 1, 1>(x, 0, n, u, 0, p);
    }
    if constexpr (kMayTakeLaneSumsIn<2>) {
      if (2 * N == kNormLanes) return LoadHeadsAndPartials<Src, 2, 1>(x, 0, n, u, 0, p);
    }
    if constexpr (kMayTakeLaneSumsIn<4>) {
      if (4 * N == kNormLanes) return LoadHeadsAndPartials<Src, 4, 1>(x, 0, n, u, 0, p);
    }
  }
  LoadHeadF32<Src>(x, n, u);
  std::fill(u + n, u + RoundUpToNormLanes(n), 0.0f);
  PartialsOfSquares(u, RoundUpToNormLanes(n), p);
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
  // Several heads at once where whole blocks of 16 are whole vectors of this target.
  const size_t at_once = head_dim % kNormLanes == 0 ? kHeadsSummedAtOnce : 1;
  FactorsOfHeads(heads, head_dim, op.norm_eps, factors, at_once, [&](size_t h, size_t count, float* HWY_RESTRICT p) {
    const typename Src::T* xh = x + static_cast<int64_t>(h) * op.src_stride_head;
    if constexpr (kHeadsSummedAtOnce > 1) {
      if (count > 1) {
        return LoadHeadsAndPartials<Src, 4 / kHeadsSummedAtOnce, kHeadsSummedAtOnce>(
            xh, op.src_stride_head, head_dim, buffer + h * group.stride, group.stride, p);
      }
    }
    LoadHeadWithPartials<Src>(xh, head_dim, buffer + h * group.stride, p);
  });
}

// The heads of a group whose normalized values u = (x * r) * gain are
// rotated (and scaled: the table chunk carries q's scale) as they are
// formed, with no pass of their own over the buffer: x is the buffer, or an
// f32 source (the destination itself, in place).
struct NormalizingHeads {
  const float* x;
  int64_t xs;  // floats from one head of x to the next
  size_t heads;
  const float* factors;  // r per head
  const float* gain;     // w + offset: one vector of head_dim floats (gain_stride 0), or one per head
  size_t gain_stride;
  void* y;
  int64_t ys;  // elements from one head of y to the next
  // The source of the heads after these, requested while these are rotated,
  // prefetch_bytes per head, prefetch_stride apart; nullptr where it does not
  // pay (NextGroupSource).
  const char* prefetch;
  int64_t prefetch_stride;
  size_t prefetch_bytes;
  bool streaming;  // from DRAM: the heads one at a time, in address order
};

// Requests head h's counterpart in the next group (spread over the heads: a
// burst of them would fill the load queue).
HWY_INLINE void PrefetchNextHeads(const NormalizingHeads& g, size_t h) {
  if (g.prefetch == nullptr) return;
  const char* head = g.prefetch + static_cast<int64_t>(h) * g.prefetch_stride;
  for (size_t at = 0; at < g.prefetch_bytes; at += 64) hwy::Prefetch(head + at);
}

// (x[k..] * r) * gain: §8.3's two products.
HWY_INLINE VF Normalized(const float* x, size_t k, VF r, VF gain) {
  return hn::Mul(hn::Mul(hn::LoadU(DF(), x + k), r), gain);
}

// The components past the rotated part of one head: u * scale.
template <class Dst>
HWY_INLINE void ScaleNormalizedRest(const float* x, VF r, const float* gain, typename Dst::T* y, size_t rotated,
                                    size_t head_dim, VF scale) {
  const DF d;
  for (size_t k = rotated; k < head_dim; k += hn::Lanes(d)) {
    StoreF32(Dst(), hn::Mul(Normalized(x, k, r, hn::LoadU(d, gain + k)), scale), y + k);
  }
}

// kHeads heads of the group from `first`, each table and gain vector loaded
// once for all of them (in cache: those loads would otherwise compete with
// the data's for the L1 ports, as kHeadGroup explains). Two vectors at a time
// where the part allows: stored as pairs (StoreF32Pair: bf16 rounds both with
// one permute). Same values either way.
template <int kPairing, class Dst, size_t kHeads>
HWY_INLINE void RotateNormalizingHeadGroup(const NormalizingHeads& g, size_t first, const float* cos, const float* sin,
                                           size_t pairs, size_t head_dim, VF scale) {
  const DF d;
  const size_t N = hn::Lanes(d);
  const float* x[kHeads];
  typename Dst::T* y[kHeads];
  const float* gain[kHeads];
  float factor[kHeads];  // broadcast where used: SVE vectors cannot be array elements
  for (size_t h = 0; h < kHeads; ++h) {
    x[h] = g.x + static_cast<int64_t>(first + h) * g.xs;
    y[h] = static_cast<typename Dst::T*>(g.y) + static_cast<int64_t>(first + h) * g.ys;
    gain[h] = g.gain + (first + h) * g.gain_stride;
    factor[h] = g.factors[first + h];
    PrefetchNextHeads(g, first + h);
  }
  const auto r = [&](size_t h) { return hn::Set(d, factor[h]); };
  const float* shared_gain = gain[0];  // kHeads > 1 only with one gain vector for all heads
  if (kPairing == kNeoxPairs) {
    size_t i = 0;
    for (; pairs % (2 * N) == 0 && i < pairs; i += 2 * N) {
      const VF cs0 = InRegister(hn::LoadU(d, cos + i)), sn0 = InRegister(hn::LoadU(d, sin + i));
      const VF cs1 = InRegister(hn::LoadU(d, cos + i + N)), sn1 = InRegister(hn::LoadU(d, sin + i + N));
      const VF ga0 = hn::LoadU(d, shared_gain + i), ga1 = hn::LoadU(d, shared_gain + i + N);
      const VF gc0 = hn::LoadU(d, shared_gain + pairs + i), gc1 = hn::LoadU(d, shared_gain + pairs + i + N);
      for (size_t h = 0; h < kHeads; ++h) {
        VF a0 = Normalized(x[h], i, r(h), ga0), c0 = Normalized(x[h], pairs + i, r(h), gc0);
        VF a1 = Normalized(x[h], i + N, r(h), ga1), c1 = Normalized(x[h], pairs + i + N, r(h), gc1);
        RotatePairs(a0, c0, cs0, sn0);
        RotatePairs(a1, c1, cs1, sn1);
        StoreF32Pair(Dst(), a0, a1, y[h] + i);
        StoreF32Pair(Dst(), c0, c1, y[h] + pairs + i);
      }
    }
    for (; i < pairs; i += N) {
      const VF cs = InRegister(hn::LoadU(d, cos + i)), sn = InRegister(hn::LoadU(d, sin + i));
      const VF ga = hn::LoadU(d, shared_gain + i), gc = hn::LoadU(d, shared_gain + pairs + i);
      for (size_t h = 0; h < kHeads; ++h) {
        VF a = Normalized(x[h], i, r(h), ga), c = Normalized(x[h], pairs + i, r(h), gc);
        RotatePairs(a, c, cs, sn);
        StoreF32(Dst(), a, y[h] + i);
        StoreF32(Dst(), c, y[h] + pairs + i);
      }
    }
  } else {
#if HWY_TARGET != HWY_SCALAR
    const size_t rotated = 2 * pairs;
    size_t k = 0;
    for (; rotated % (2 * N) == 0 && k < rotated; k += 2 * N) {
      const VF cs0 = InRegister(hn::LoadU(d, cos + k)), sn0 = InRegister(hn::LoadU(d, sin + k));
      const VF cs1 = InRegister(hn::LoadU(d, cos + k + N)), sn1 = InRegister(hn::LoadU(d, sin + k + N));
      const VF g0 = hn::LoadU(d, shared_gain + k), g1 = hn::LoadU(d, shared_gain + k + N);
      for (size_t h = 0; h < kHeads; ++h) {
        StoreF32Pair(Dst(), RotateAdjacent(Normalized(x[h], k, r(h), g0), cs0, sn0),
                     RotateAdjacent(Normalized(x[h], k + N, r(h), g1), cs1, sn1), y[h] + k);
      }
    }
    for (; k < rotated; k += N) {
      const VF cs = InRegister(hn::LoadU(d, cos + k)), sn = InRegister(hn::LoadU(d, sin + k));
      const VF gk = hn::LoadU(d, shared_gain + k);
      for (size_t h = 0; h < kHeads; ++h) StoreF32(Dst(), RotateAdjacent(Normalized(x[h], k, r(h), gk), cs, sn), y[h] + k);
    }
#endif
  }
  for (size_t h = 0; h < kHeads; ++h) ScaleNormalizedRest<Dst>(x[h], r(h), gain[h], y[h], 2 * pairs, head_dim, scale);
}

#if ROTARY_ROW_IN_REGISTERS
// AVX-512: the table chunk of kVectors vectors per half in registers, and the
// gain where it fits beside it (kGainInRegisters), the heads front to back:
// per vector of a head, the data's load is the only one (the plain kernels'
// "Table row held in registers").
template <int kPairing, class Dst, size_t kVectors>
HWY_NOINLINE void RotateNormalizingHeadsWithRowInRegisters(const NormalizingHeads& g, const float* cos,
                                                           const float* sin, size_t pairs, size_t head_dim,
                                                           VF scale) {
  static_assert(kVectors % 2 == 0, "stored two vectors at a time (StoreF32Pair)");
  constexpr bool kNeox = kPairing == kNeoxPairs;
  // The gain of a (and, neox, of c) beside the table, within 24 of the 32 registers.
  constexpr bool kGainInRegisters = (kNeox ? 4 : 3) * kVectors <= 24;
  constexpr size_t kGainVectors = kGainInRegisters ? kVectors : 1;
  const DF d;
  const size_t N = hn::Lanes(d);
  const size_t half = kNeox ? pairs : 0;  // where c starts in a head (neox)
  VF cs[kVectors], sn[kVectors], gain_a[kGainVectors], gain_c[kGainVectors];
  for (size_t v = 0; v < kVectors; ++v) {
    cs[v] = InRegister(hn::LoadU(d, cos + v * N));
    sn[v] = InRegister(hn::LoadU(d, sin + v * N));
  }
  if constexpr (kGainInRegisters) {
    for (size_t v = 0; v < kVectors; ++v) {
      gain_a[v] = InRegister(hn::LoadU(d, g.gain + v * N));
      if (kNeox) gain_c[v] = InRegister(hn::LoadU(d, g.gain + half + v * N));
    }
  }
  const auto a_gain = [&](size_t v) {
    if constexpr (kGainInRegisters) return gain_a[v]; else return hn::LoadU(d, g.gain + v * N);
  };
  const auto c_gain = [&](size_t v) {
    if constexpr (kGainInRegisters) return gain_c[v]; else return hn::LoadU(d, g.gain + half + v * N);
  };
  const float* const x0 = g.x;
  typename Dst::T* const y0 = static_cast<typename Dst::T*>(g.y);
  const int64_t xs = g.xs, ys = g.ys;
  const size_t heads = g.heads;
  for (size_t h = 0; h < heads; ++h) {
    const float* x = x0 + static_cast<int64_t>(h) * xs;
    typename Dst::T* y = y0 + static_cast<int64_t>(h) * ys;
    const VF r = hn::Set(d, g.factors[h]);
    PrefetchNextHeads(g, h);
    for (size_t v = 0; v < kVectors; v += 2) {
      if constexpr (kNeox) {
        VF a0 = Normalized(x, v * N, r, a_gain(v)), a1 = Normalized(x, (v + 1) * N, r, a_gain(v + 1));
        VF c0 = Normalized(x, half + v * N, r, c_gain(v)), c1 = Normalized(x, half + (v + 1) * N, r, c_gain(v + 1));
        RotatePairs(a0, c0, cs[v], sn[v]);
        RotatePairs(a1, c1, cs[v + 1], sn[v + 1]);
        StoreF32Pair(Dst(), a0, a1, y + v * N);
        StoreF32Pair(Dst(), c0, c1, y + half + v * N);
      } else {
        StoreF32Pair(Dst(), RotateAdjacent(Normalized(x, v * N, r, a_gain(v)), cs[v], sn[v]),
                     RotateAdjacent(Normalized(x, (v + 1) * N, r, a_gain(v + 1)), cs[v + 1], sn[v + 1]),
                     y + v * N);
      }
    }
    ScaleNormalizedRest<Dst>(x, r, g.gain, y, 2 * pairs, head_dim, scale);
  }
}
#endif

// All heads of a group, normalized as they are rotated: with the table in
// registers (AVX-512, one gain vector for all heads, a chunk of 2, 4 or 8
// vectors per half), else (other FMA targets) kHeadGroup heads per table
// vector loaded in cache and one at a time streaming, as the plain kernels
// visit heads. Rows whose rotated and passed-through parts are whole vectors
// (NormalizesInRotation); the same bits as ScaleByFactorAndGain then the
// plain rotation.
template <int kPairing, class Dst>
HWY_NOINLINE void RotateNormalizingHeads(const NormalizingHeads& g, const float* cos, const float* sin, size_t pairs,
                                         size_t head_dim, float scale) {
  const VF vscale = hn::Set(DF(), scale);
  [[maybe_unused]] const bool shared_gain = g.gain_stride == 0;  // (one gain vector for all heads)
#if ROTARY_ROW_IN_REGISTERS
  const size_t floats = pairs * kFloatsPerPair<kPairing>;
  if (shared_gain && floats % hn::Lanes(DF()) == 0) {
    switch (floats / hn::Lanes(DF())) {
      case 2:
        return RotateNormalizingHeadsWithRowInRegisters<kPairing, Dst, 2>(g, cos, sin, pairs, head_dim, vscale);
      case 4:
        return RotateNormalizingHeadsWithRowInRegisters<kPairing, Dst, 4>(g, cos, sin, pairs, head_dim, vscale);
      case kMaxRowVectors:
        return RotateNormalizingHeadsWithRowInRegisters<kPairing, Dst, kMaxRowVectors>(g, cos, sin, pairs, head_dim,
                                                                                       vscale);
      default:
        break;
    }
  }
#endif
  size_t h = 0;
  // Not with the table in registers (there, the rows of other sizes go one
  // head at a time) nor without FMA (whose emulation bounds the loop, not the
  // loads): less code to compile.
#if !ROTARY_ROW_IN_REGISTERS && HWY_NATIVE_FMA
  for (; shared_gain && !g.streaming && h + kHeadGroup <= g.heads; h += kHeadGroup) {
    RotateNormalizingHeadGroup<kPairing, Dst, kHeadGroup>(g, h, cos, sin, pairs, head_dim, vscale);
  }
#endif
  for (; h < g.heads; ++h) RotateNormalizingHeadGroup<kPairing, Dst, 1>(g, h, cos, sin, pairs, head_dim, vscale);
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
  void (*rotate_normalizing)(const NormalizingHeads& heads, const float* cos, const float* sin, size_t pairs,
                             size_t head_dim, float scale);
  RowKernel rotate_plain;
  int pairing;
  size_t src_bytes, dst_bytes;
};

// Floats of an operand's gain vector (w + offset; ones without a weight).
HWY_INLINE size_t GainFloats(const Operand& op, size_t head_dim) {
  return op.norm_weight != nullptr && op.norm_whole_token ? static_cast<size_t>(op.heads) * head_dim : head_dim;
}

// Where the source heads after this group start (in this row, else
// `next_row`: the next row of the range, or nullptr), to be requested while
// this group is rotated. Without it, a group's loads wait on memory (DRAM, or
// L3 for f32 heads summed straight from the tensor), then its arithmetic
// leaves the memory idle: the two add up instead of overlapping. Not for
// groups loaded into the buffer in cache: their conversions bound them, and
// the requests only add to that.
HWY_INLINE const char* NextGroupSource(const Operand& op, const char* row, const char* next_row, int64_t first,
                                       size_t heads, size_t src_bytes) {
  const int64_t next = first + static_cast<int64_t>(heads);
  return next < op.heads ? row + next * op.src_stride_head * static_cast<int64_t>(src_bytes) : next_row;
}

// All heads of one operand at row (b, s), a group at a time: loaded with
// their factors into `buffer`, then normalized as they are rotated with the
// table row (cos, sin), or normalized in the buffer and rotated from it
// (rows NormalizesInRotation does not cover).
// `last_row`: the range has no row after this one.
HWY_INLINE void NormRotateOperandRow(const Operand& op, int64_t b, int64_t s, bool last_row, const float* cos,
                                     const float* sin, const RowJob& job, const NormKernelParts& parts,
                                     const float* HWY_RESTRICT gain, float* HWY_RESTRICT scaled_row,
                                     float* HWY_RESTRICT factors, float* HWY_RESTRICT buffer) {
  const auto source_row = [&](int64_t row_b, int64_t row_s) {
    return static_cast<const char*>(op.src) +
           (row_b * op.src_stride_batch + row_s * op.src_stride_seq) * static_cast<int64_t>(parts.src_bytes);
  };
  const char* x = source_row(b, s);
  const RowIndex after = RowAfter(job, b, s);
  const char* next_x = last_row ? nullptr : source_row(after.b, after.s);
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
      FactorsOfHeads(heads, job.head_dim, op.norm_eps, factors, kHeadsSummedAtOnce,
                     [&](size_t h, size_t count, float* HWY_RESTRICT p) {
                       const float* u = xf + static_cast<int64_t>(h) * op.src_stride_head;
                       if (count == 1) return PartialsOfSquares(u, job.head_dim, p);
                       PartialsOfSquaresOfHeads<4 / kHeadsSummedAtOnce>(u, op.src_stride_head, job.head_dim, p);
                     });
      const NormalizingHeads from_source{xf, op.src_stride_head, heads, factors,
                                         gain + static_cast<size_t>(first) * gain_stride, gain_stride, y_first,
                                         op.dst_stride_head,
                                         NextGroupSource(op, x, next_x, first, heads, parts.src_bytes),
                                         op.src_stride_head * 4, job.head_dim * 4, job.streaming};
      parts.rotate_normalizing(from_source, cos, sin, job.pairs, job.head_dim, op.scale);
      continue;
    }
    parts.load(op, x, first, heads, group, job.head_dim, buffer, factors);
    if (in_rotation) {
      const NormalizingHeads from_buffer{buffer, static_cast<int64_t>(group.stride), heads, factors,
                                         gain + static_cast<size_t>(first) * gain_stride, gain_stride, y_first,
                                         op.dst_stride_head,
                                         job.streaming ? NextGroupSource(op, x, next_x, first, heads, parts.src_bytes)
                                                       : nullptr,
                                         op.src_stride_head * static_cast<int64_t>(parts.src_bytes),
                                         job.head_dim * parts.src_bytes, job.streaming};
      parts.rotate_normalizing(from_buffer, cos, sin, job.pairs, job.head_dim, op.scale);
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
    const bool request_next_row = RequestsNextTableRow(job);
    for (int64_t row = row_begin; row < row_end; ++row) {
      const float* cos = RowOf(job, b, s, row_scratch);
      const float* sin = cos + job.table.row_floats / 2;
      if (request_next_row && row + 1 < row_end) RequestTableRowAfter(job, b, s);
      for (int o = 0; o < job.num_operands; ++o) {
        NormRotateOperandRow(job.operands[o], b, s, row + 1 == row_end, cos, sin, job, parts, gains[o], scaled_row,
                             factors, buffer);
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
