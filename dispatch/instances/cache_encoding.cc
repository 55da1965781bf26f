// The operand row kernels that write KV caches of encoded formats (FP8 E4M3,
// E5M2, q8_0; cache_encoding-inl.h), for every Highway target, pairing and
// source storage. They rotate through RotateOperandRowEntry<..., F32Storage>,
// instantiated by rotate_<pairing>_<source>.cc, and only encode here.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "dispatch/instances/cache_encoding.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep

#include "dispatch/cache_encoding-inl.h"

HWY_BEFORE_NAMESPACE();
namespace rotary {
namespace HWY_NAMESPACE {

#define ROTARY_INSTANTIATE_ENCODED(PAIRING, SRC, ENCODING)                                                  \
  template void RotateOperandRowEncoded<PAIRING, SRC, ENCODING>(const Operand&, int64_t, int64_t, int64_t, \
                                                                const float*, const float*, size_t, size_t, bool);
#define ROTARY_INSTANTIATE_SOURCES(PAIRING, ENCODING)               \
  ROTARY_INSTANTIATE_ENCODED(PAIRING, F32Storage, ENCODING)         \
  ROTARY_INSTANTIATE_ENCODED(PAIRING, F16Storage, ENCODING)         \
  ROTARY_INSTANTIATE_ENCODED(PAIRING, BF16Storage, ENCODING)
#define ROTARY_INSTANTIATE_ENCODINGS(PAIRING)          \
  ROTARY_INSTANTIATE_SOURCES(PAIRING, kEncodeE4M3)     \
  ROTARY_INSTANTIATE_SOURCES(PAIRING, kEncodeE5M2)     \
  ROTARY_INSTANTIATE_SOURCES(PAIRING, kEncodeQ8_0)
ROTARY_INSTANTIATE_ENCODINGS(kNeoxPairs)
ROTARY_INSTANTIATE_ENCODINGS(kInterleavedPairs)
#undef ROTARY_INSTANTIATE_ENCODINGS
#undef ROTARY_INSTANTIATE_SOURCES
#undef ROTARY_INSTANTIATE_ENCODED

// NOLINTNEXTLINE(google-readability-namespace-comments)
}  // namespace HWY_NAMESPACE
}  // namespace rotary
HWY_AFTER_NAMESPACE();
