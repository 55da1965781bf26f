// Per-target loads and stores of a partial vector: the last fewer-than-N
// elements of a head, of its pass-through part, or of a table row chunk. No
// lane outside the caller's memory is read or written.
//
// Every head of a model whose rotary_dim is not a multiple of the vector
// (partial rotary: StableLM 25% of 80 = 20, GPT-NeoX-20B 25% of 96 = 24) takes
// this path, so it must cost about what a whole vector does: no zero-filled
// buffers or memcpy calls, and never a whole-vector load of what was copied in
// piece by piece, which stalls on store forwarding (that made such calls 5-8x
// slower than at rotary_dim 32 on AMD Zen 4; docs/performance.md).
//
// Included inside rotary::HWY_NAMESPACE users (row_synthesis-inl.h, rope_kernels-inl.h).

#if defined(ROTARY_DISPATCH_PARTIAL_VECTORS_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef ROTARY_DISPATCH_PARTIAL_VECTORS_INL_H_
#undef ROTARY_DISPATCH_PARTIAL_VECTORS_INL_H_
#else
#define ROTARY_DISPATCH_PARTIAL_VECTORS_INL_H_
#endif

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "dispatch/convert-inl.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace rotary {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// Largest vector of any target, in f32 lanes: bounds the stack buffers of tails.
constexpr size_t kMaxLanes = HWY_MAX_BYTES / sizeof(float);
// Bytes of this target's widest f32 vector (a power of two; an upper bound on SVE).
constexpr size_t kVectorBytes = hn::MaxLanes(DF()) * sizeof(float);

// SVE targets move tails the plain way: zero a buffer, memcpy the elements in,
// load it (and the reverse to store). Its predicated loads and stores would
// serve, but with them, and with the overlapping load below, the fixed-size
// SVE_256 and SVE2_128 kernels (GCC 12, Highway 1.0.3, under qemu) wrote wrong
// tails, while the scalable SVE and SVE2 kernels were right.
constexpr bool kPlainTails = (HWY_TARGET & (HWY_SVE | HWY_SVE2 | HWY_SVE_256 | HWY_SVE2_128)) != 0;

// Whether MaskedLoad of T lanes is a native masked load on this target, which
// reads no memory outside the mask (so it may run at the very end of the
// caller's memory): AVX-512 for all lane sizes, AVX2 for 32-bit lanes.
// Elsewhere Highway emulates it with a full load.
template <typename T>
constexpr bool kExactMaskedLoads =
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3
    true;
#elif HWY_TARGET == HWY_AVX2
    sizeof(T) == 4;
#else
    false;
#endif

// Whether BlendedStore is a native masked store that is also fast: AVX-512.
// AVX2's vmaskmovps store is exact but slow on AMD: on Zen 4 it made calls
// with tails about twice as slow as the copy below.
constexpr bool kFastMaskedStores =
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3
    true;
#else
    false;
#endif

namespace partial {
// Moves kSize bytes if that bit of `bytes` is set, then the smaller sizes: one
// load and store per set bit, with no loop and no call.
template <size_t kSize>
HWY_INLINE void CopyBits(uint8_t* HWY_RESTRICT to, const uint8_t* HWY_RESTRICT from, size_t bytes) {
  if (bytes & kSize) {
    std::memcpy(to, from, kSize);
    to += kSize;
    from += kSize;
  }
  if constexpr (kSize > 2) CopyBits<kSize / 2>(to, from, bytes);
}
}  // namespace partial

// Copies `bytes` (even, below kLimit, a power of two).
template <size_t kLimit>
HWY_INLINE void CopyFewBytes(void* HWY_RESTRICT to, const void* HWY_RESTRICT from, size_t bytes) {
  if constexpr (kPlainTails) {
    std::memcpy(to, from, bytes);
    return;
  }
  partial::CopyBits<kLimit / 2>(static_cast<uint8_t*>(to), static_cast<const uint8_t*>(from), bytes);
}

// One vector of storage elements (N of them, as LoadF32 and StoreF32 move).
template <class S>
struct VectorBuffer {
  using T = typename S::T;
  using D = hn::Rebind<T, DF>;
  static constexpr size_t kBytes = hn::MaxLanes(D()) * sizeof(T);  // a power of two
  HWY_ALIGN T data[hn::MaxLanes(D())];  // not zero-initialized: its users set the lanes they read
};

// The f32 values of the `count` (< N) storage elements at `from`, in lanes
// [0, count); the other lanes hold zeros or copies of those values. Reads no
// element outside [from - before, from + count): the `before` elements before
// `from` are the caller's too (the head or row read so far).
// A buffer filled piece by piece and then loaded whole would stall on store
// forwarding (about as long as the rest of the head's work), so: one masked
// load where the target has exact ones; else, when a whole vector fits
// before the end, that vector, its last `count` lanes moved to the front; else
// the buffer.
template <class S>
HWY_INLINE VF LoadTailF32(const typename S::T* from, size_t count, size_t before) {
  using Buffer = VectorBuffer<S>;
  const DF d;
  const typename Buffer::D ds;
  Buffer buffer;
  if constexpr (kPlainTails) {
    std::memset(buffer.data, 0, sizeof(buffer.data));
    CopyFewBytes<Buffer::kBytes>(buffer.data, from, count * sizeof(typename S::T));
    return LoadF32(S(), buffer.data);
  }
  if constexpr (kExactMaskedLoads<typename S::T>) {
    const auto loaded = hn::MaskedLoad(hn::FirstN(ds, count), ds, from);
    if constexpr (std::is_same<typename S::T, float>::value) return loaded;
    hn::Store(loaded, ds, buffer.data);
    return LoadF32(S(), buffer.data);
  }
  const size_t N = hn::Lanes(d);
  if (before >= N - count) {
    const hn::RebindToSigned<DF> di;
    const auto lanes = hn::Min(hn::Iota(di, static_cast<int32_t>(N - count)), hn::Set(di, static_cast<int32_t>(N - 1)));
    return hn::TableLookupLanes(LoadF32(S(), from + count - N), hn::IndicesFromVec(d, lanes));
  }
  hn::Store(hn::Zero(ds), ds, buffer.data);
  CopyFewBytes<Buffer::kBytes>(buffer.data, from, count * sizeof(typename S::T));
  return LoadF32(S(), buffer.data);
}

// Stores lanes [0, count) (count < N) of v to `to`, converted, and nothing else:
// a masked store where that is fast, else piece by piece from a buffer (loads
// from one wide store forward without a stall).
template <class S>
HWY_INLINE void StoreTailF32(VF v, typename S::T* to, size_t count) {
  if constexpr (kFastMaskedStores && std::is_same<typename S::T, float>::value) {
    const DF d;
    hn::BlendedStore(v, hn::FirstN(d, count), d, to);
    return;
  }
  using Buffer = VectorBuffer<S>;
  const typename Buffer::D ds;
  Buffer buffer;
  StoreF32(S(), v, buffer.data);
  if constexpr (kFastMaskedStores) {
    hn::BlendedStore(hn::Load(ds, buffer.data), hn::FirstN(ds, count), ds, to);
  } else {
    CopyFewBytes<Buffer::kBytes>(to, buffer.data, count * sizeof(typename S::T));
  }
}

// Loads `count` <= N floats, `before` of them readable before `from` (see LoadTailF32).
HWY_INLINE VF LoadPart(const float* from, size_t count, size_t before) {
  const DF d;
  if (count == hn::Lanes(d)) return hn::LoadU(d, from);
  return LoadTailF32<F32Storage>(from, count, before);
}

// NOLINTNEXTLINE(google-readability-namespace-comments)
}  // namespace HWY_NAMESPACE
}  // namespace rotary
HWY_AFTER_NAMESPACE();

#endif  // per-target include guard
