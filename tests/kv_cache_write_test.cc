// The KV-cache write in the same pass (rotary_apply_options' k_cache, v_src,
// v_cache, slot_mapping; C++ KvCacheWrite; docs/math.md §9) on every target:
// q comes out as apply_qk_to makes it, each token's k head as apply_qk_to
// writes it to a tensor of the cache's storage, and its v head converted once,
// in the slot the mapping gives, for both pairings, every source and cache
// storage, vLLM's and its CPU backend's cache layouts, stored and synthesized
// rows, explicit, multi-axis and per-sequence positions; nothing else in the
// caches changes, and bad calls are errors that write nothing.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <numeric>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

#include <gtest/gtest.h>

#include "rotary/rotary.hpp"
#include "tests/every_target.h"
#include "tests/tensor_compare.h"
#include "tests/typed_tensor.h"

namespace {

using rotary_test::Shape;
using rotary_test::SameBits;
using rotary_test::TypedTensor;

constexpr int64_t kBatch = 2, kSeq = 5, kQHeads = 4, kKvHeads = 2, kHeadDim = 64;
constexpr int64_t kBlocks = 5, kBlockSize = 4;  // 20 slots for 10 tokens

// A paged cache [num_blocks, block_size, heads, head_dim] in one of two layouts: vLLM's (block_size outside
// heads) or its CPU backend's ([num_blocks, heads, block_size, head_dim], the same cache as a transposed view).
class PagedCache {
 public:
  PagedCache(rotary_dtype dtype, bool heads_outside)
      : heads_outside_(heads_outside),
        data_(dtype, heads_outside ? Shape{kBlocks, kKvHeads, kBlockSize, kHeadDim, 2, 1, 3}
                                   : Shape{kBlocks, kBlockSize, kKvHeads, kHeadDim, 2, 1, 3}) {}

  rotary::Tensor view() {
    rotary_tensor t = data_.raw();
    if (heads_outside_) {
      std::swap(t.seq, t.heads);
      std::swap(t.stride_seq, t.stride_head);
    }
    return rotary::Tensor(t);
  }
  // Component k of head h in the slot's row.
  void Set(int64_t slot, int64_t h, int64_t k, double v) {
    heads_outside_ ? data_.Set(slot / kBlockSize, h, slot % kBlockSize, k, v)
                   : data_.Set(slot / kBlockSize, slot % kBlockSize, h, k, v);
  }
  const TypedTensor& data() const { return data_; }

 private:
  bool heads_outside_;
  TypedTensor data_;
};

// kBatch * kSeq distinct slots in [0, kBlocks * kBlockSize), in random order, some -1 (padding).
std::vector<int64_t> RandomSlots(uint32_t seed) {
  std::vector<int64_t> all(kBlocks * kBlockSize);
  std::iota(all.begin(), all.end(), 0);
  std::mt19937 rng(seed);
  std::shuffle(all.begin(), all.end(), rng);
  std::vector<int64_t> slots(all.begin(), all.begin() + kBatch * kSeq);
  slots[3] = -1;
  slots[7] = -1;
  return slots;
}

class KvCacheWriteTest : public rotary_test::EveryTargetTest {};

TEST_P(KvCacheWriteTest, WritesWhatApplyQkToWritesIntoEachSlot) {
  const std::vector<int64_t> slots = RandomSlots(11);
  std::vector<int64_t> ids(kBatch * kSeq);
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int64_t>(37 * i % 101);
  for (rotary::Pairing pairing : {rotary::Pairing::kNeox, rotary::Pairing::kInterleaved}) {
    for (rotary::TableMode mode : {rotary::TableMode::kFull, rotary::TableMode::kCompact}) {
      const rotary::Rope rope(
          rotary::Config().head_dim(kHeadDim).rotary_dim(48).pairing(pairing).table_mode(mode).max_positions(256));
      for (rotary_dtype src : {ROTARY_F32, ROTARY_BF16}) {
        for (rotary_dtype cache_dtype : {ROTARY_F32, ROTARY_F16, ROTARY_BF16}) {
          for (bool heads_outside : {false, true}) {
            SCOPED_TRACE(::testing::Message() << "pairing " << static_cast<int>(pairing) << " mode "
                                              << static_cast<int>(mode) << " src " << src << " cache " << cache_dtype
                                              << (heads_outside ? " [blocks, heads, rows]" : " [blocks, rows, heads]"));
            TypedTensor q(src, kBatch, kSeq, kQHeads, kHeadDim), k(src, kBatch, kSeq, kKvHeads, kHeadDim),
                v(src, kBatch, kSeq, kKvHeads, kHeadDim);
            q.FillRandom(1);
            k.FillRandom(2);
            v.FillRandom(3);
            // Expected: q out of place through apply_qk_to (k to a scratch tensor), k through apply_to into a
            // tensor of the cache's storage, scattered by hand.
            TypedTensor q_expected(src, kBatch, kSeq, kQHeads, kHeadDim), k_scratch(src, kBatch, kSeq, kKvHeads, kHeadDim),
                k_rotated(cache_dtype, kBatch, kSeq, kKvHeads, kHeadDim);
            rope.apply_qk_to(q.view(), q_expected.view(), k.view(), k_scratch.view(), ids, 0.125f);
            rope.apply_to(k.view(), k_rotated.view(), ids);
            PagedCache k_expected(cache_dtype, heads_outside), v_expected(cache_dtype, heads_outside);
            for (int64_t b = 0; b < kBatch; ++b) {
              for (int64_t s = 0; s < kSeq; ++s) {
                const int64_t slot = slots[b * kSeq + s];
                if (slot < 0) continue;
                for (int64_t h = 0; h < kKvHeads; ++h) {
                  for (int64_t c = 0; c < kHeadDim; ++c) {
                    k_expected.Set(slot, h, c, k_rotated.Get(b, s, h, c));
                    v_expected.Set(slot, h, c, v.Get(b, s, h, c));  // rounded once to the cache's storage
                  }
                }
              }
            }
            // The fused call: q in place, k and v into the caches.
            PagedCache k_cache(cache_dtype, heads_outside), v_cache(cache_dtype, heads_outside);
            const TypedTensor k_before = k, v_before = v;
            TypedTensor q_fused = q;
            rope.apply_qk(q_fused.view(), k.view(), rotary::KvCacheWrite(k_cache.view(), v.view(), v_cache.view(), slots),
                          ids, 0.125f);
            EXPECT_TRUE(SameBits(q_fused, q_expected));
            EXPECT_TRUE(SameBits(k_cache.data(), k_expected.data()));
            EXPECT_TRUE(SameBits(v_cache.data(), v_expected.data()));
            EXPECT_TRUE(SameBits(k, k_before));  // read only
            EXPECT_TRUE(SameBits(v, v_before));
            // q out of place, positions offset + s with per-sequence offsets: the same caches again.
            PagedCache k_cache2(cache_dtype, heads_outside), v_cache2(cache_dtype, heads_outside);
            TypedTensor q_out(src, kBatch, kSeq, kQHeads, kHeadDim), q_out_expected(src, kBatch, kSeq, kQHeads, kHeadDim);
            TypedTensor k_rotated2(cache_dtype, kBatch, kSeq, kKvHeads, kHeadDim);
            const std::vector<int64_t> offsets = {7, 90};
            rope.apply_qk_to(q.view(), q_out.view(), k.view(),
                             rotary::KvCacheWrite(k_cache2.view(), v.view(), v_cache2.view(), slots),
                             rotary::Positions(3).with_sequence_offsets(offsets));
            rope.apply_to(q.view(), q_out_expected.view(), rotary::Positions(3).with_sequence_offsets(offsets));
            rope.apply_to(k.view(), k_rotated2.view(), rotary::Positions(3).with_sequence_offsets(offsets));
            EXPECT_TRUE(SameBits(q_out, q_out_expected));
            PagedCache k_expected2(cache_dtype, heads_outside);
            for (int64_t i = 0; i < kBatch * kSeq; ++i) {
              if (slots[i] < 0) continue;
              for (int64_t h = 0; h < kKvHeads; ++h) {
                for (int64_t c = 0; c < kHeadDim; ++c) k_expected2.Set(slots[i], h, c, k_rotated2.Get(i / kSeq, i % kSeq, h, c));
              }
            }
            EXPECT_TRUE(SameBits(k_cache2.data(), k_expected2.data()));
            EXPECT_TRUE(SameBits(v_cache2.data(), v_expected.data()));
          }
        }
      }
    }
  }
}

// Many tokens of several sequences: a cache write goes through its rows 64 at a
// time, each operand over them before the next (dispatch/rope_kernels-inl.h,
// ForEachRowOfJob). 150 tokens of 3 sequences of 50 put run ends and sequence
// ends in different places, each token with a position of its own and a slot
// of a shuffled pool; q, each cache row and v's are what each alone gives.
TEST_P(KvCacheWriteTest, ManyTokensOfSeveralSequencesAreWrittenAsEachAlone) {
  constexpr int64_t kB = 3, kS = 50, kBlockRows = 16, kBlocksHeld = 12;  // 192 slots for 150 tokens
  const rotary::Rope rope(rotary::Config().head_dim(kHeadDim).max_positions(4096));
  std::vector<int64_t> ids(kB * kS), pool(kBlocksHeld * kBlockRows);
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int64_t>((i * 7919) % 3000);
  std::iota(pool.begin(), pool.end(), 0);
  std::shuffle(pool.begin(), pool.end(), std::mt19937(5));
  const std::vector<int64_t> slots(pool.begin(), pool.begin() + kB * kS);
  TypedTensor q(ROTARY_F32, kB, kS, kQHeads, kHeadDim), k(ROTARY_F32, kB, kS, kKvHeads, kHeadDim),
      v(ROTARY_F32, kB, kS, kKvHeads, kHeadDim);
  q.FillRandom(41);
  k.FillRandom(42);
  v.FillRandom(43);
  TypedTensor q_alone = q, k_alone = k;
  rope.apply(q_alone.view(), ids);
  rope.apply(k_alone.view(), ids);
  TypedTensor k_cache(ROTARY_F32, kBlocksHeld, kBlockRows, kKvHeads, kHeadDim),
      v_cache(ROTARY_F32, kBlocksHeld, kBlockRows, kKvHeads, kHeadDim);
  TypedTensor k_expected = k_cache, v_expected = v_cache;  // unaddressed slots keep the guard
  for (int64_t i = 0; i < kB * kS; ++i) {
    for (int64_t h = 0; h < kKvHeads; ++h) {
      for (int64_t c = 0; c < kHeadDim; ++c) {
        k_expected.Set(slots[i] / kBlockRows, slots[i] % kBlockRows, h, c, k_alone.Get(i / kS, i % kS, h, c));
        v_expected.Set(slots[i] / kBlockRows, slots[i] % kBlockRows, h, c, v.Get(i / kS, i % kS, h, c));
      }
    }
  }
  rope.apply_qk(q.view(), k.view(), rotary::KvCacheWrite(k_cache.view(), v.view(), v_cache.view(), slots), ids);
  EXPECT_TRUE(SameBits(q, q_alone));
  EXPECT_TRUE(SameBits(k_cache, k_expected));
  EXPECT_TRUE(SameBits(v_cache, v_expected));
}

// Multi-axis ids (M-RoPE): the k rows of the cache are apply_qk_to's with the same ids.
TEST_P(KvCacheWriteTest, MultiAxisIdsRotateKAsApplyQkDoes) {
  const rotary::Rope rope(rotary::Config().head_dim(kHeadDim).mrope_section({8, 12, 12}).max_positions(256));
  const std::vector<int64_t> slots = RandomSlots(5);
  std::vector<int64_t> ids(3 * kBatch * kSeq);
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int64_t>(13 * i % 97);
  TypedTensor q(ROTARY_F32, kBatch, kSeq, kQHeads, kHeadDim), k(ROTARY_F32, kBatch, kSeq, kKvHeads, kHeadDim),
      v(ROTARY_F32, kBatch, kSeq, kKvHeads, kHeadDim);
  q.FillRandom(4);
  k.FillRandom(5);
  v.FillRandom(6);
  TypedTensor q_expected = q, k_expected = k;
  rope.apply_qk(q_expected.view(), k_expected.view(), rotary::Positions::Axes(ids, 3));
  PagedCache k_cache(ROTARY_F32, false), v_cache(ROTARY_F32, false), k_cache_expected(ROTARY_F32, false);
  for (int64_t i = 0; i < kBatch * kSeq; ++i) {
    if (slots[i] < 0) continue;
    for (int64_t h = 0; h < kKvHeads; ++h) {
      for (int64_t c = 0; c < kHeadDim; ++c) k_cache_expected.Set(slots[i], h, c, k_expected.Get(i / kSeq, i % kSeq, h, c));
    }
  }
  rope.apply_qk(q.view(), k.view(), rotary::KvCacheWrite(k_cache.view(), v.view(), v_cache.view(), slots),
                rotary::Positions::Axes(ids, 3));
  EXPECT_TRUE(SameBits(q, q_expected));
  EXPECT_TRUE(SameBits(k_cache.data(), k_cache_expected.data()));
}

// qk-norm with the cache write (docs/math.md §8, §9.2): q as apply_qk_to with the norm makes it, each
// token's k head as apply_to with k's norm writes it to a tensor of the cache's storage, v copied without a
// norm; per-head norms with Gemma's offset and OLMo 2's whole-token norm, q in place and out of place.
TEST_P(KvCacheWriteTest, QkNormComesBeforeTheCacheWrite) {
  const std::vector<int64_t> slots = RandomSlots(23);
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> weights(0.25f, 2.0f);
  for (rotary::Pairing pairing : {rotary::Pairing::kNeox, rotary::Pairing::kInterleaved}) {
    const rotary::Rope rope(rotary::Config().head_dim(kHeadDim).rotary_dim(48).pairing(pairing).max_positions(64));
    for (bool whole_token : {false, true}) {
      std::vector<float> wq((whole_token ? kQHeads : 1) * kHeadDim), wk((whole_token ? kKvHeads : 1) * kHeadDim);
      for (float& w : wq) w = weights(rng);
      for (float& w : wk) w = weights(rng);
      const double offset = whole_token ? 0.0 : 1.0;
      const rotary::QkNorm norm(wq, wk, 1e-6, offset, whole_token), k_alone(wk, {}, 1e-6, offset, whole_token);
      for (rotary_dtype src : {ROTARY_F32, ROTARY_BF16}) {
        for (rotary_dtype cache_dtype : {ROTARY_F32, ROTARY_F16, ROTARY_BF16}) {
          SCOPED_TRACE(::testing::Message() << "pairing " << static_cast<int>(pairing) << " whole_token "
                                            << whole_token << " src " << src << " cache " << cache_dtype);
          TypedTensor q(src, kBatch, kSeq, kQHeads, kHeadDim), k(src, kBatch, kSeq, kKvHeads, kHeadDim),
              v(src, kBatch, kSeq, kKvHeads, kHeadDim);
          q.FillRandom(6);
          k.FillRandom(7, 40.0);
          v.FillRandom(8);
          TypedTensor q_expected(src, kBatch, kSeq, kQHeads, kHeadDim), k_scratch(src, kBatch, kSeq, kKvHeads, kHeadDim),
              k_normalized(cache_dtype, kBatch, kSeq, kKvHeads, kHeadDim);
          rope.apply_qk_to(q.view(), q_expected.view(), k.view(), k_scratch.view(), norm, rotary::Positions(2), 0.125f);
          rope.apply_to(k.view(), k_normalized.view(), k_alone, rotary::Positions(2));
          PagedCache k_expected(cache_dtype, false), v_expected(cache_dtype, false);
          for (int64_t i = 0; i < kBatch * kSeq; ++i) {
            if (slots[i] < 0) continue;
            for (int64_t h = 0; h < kKvHeads; ++h) {
              for (int64_t c = 0; c < kHeadDim; ++c) {
                k_expected.Set(slots[i], h, c, k_normalized.Get(i / kSeq, i % kSeq, h, c));
                v_expected.Set(slots[i], h, c, v.Get(i / kSeq, i % kSeq, h, c));
              }
            }
          }
          PagedCache k_cache(cache_dtype, false), v_cache(cache_dtype, false);
          TypedTensor q_fused = q;
          const TypedTensor k_before = k;
          rope.apply_qk(q_fused.view(), k.view(), rotary::KvCacheWrite(k_cache.view(), v.view(), v_cache.view(), slots),
                        norm, rotary::Positions(2), 0.125f);
          EXPECT_TRUE(SameBits(q_fused, q_expected));
          EXPECT_TRUE(SameBits(k_cache.data(), k_expected.data()));
          EXPECT_TRUE(SameBits(v_cache.data(), v_expected.data()));
          EXPECT_TRUE(SameBits(k, k_before));
          // q out of place: the same caches again.
          PagedCache k_cache2(cache_dtype, false), v_cache2(cache_dtype, false);
          TypedTensor q_out(src, kBatch, kSeq, kQHeads, kHeadDim);
          rope.apply_qk_to(q.view(), q_out.view(), k.view(),
                           rotary::KvCacheWrite(k_cache2.view(), v.view(), v_cache2.view(), slots), norm,
                           rotary::Positions(2), 0.125f);
          EXPECT_TRUE(SameBits(q_out, q_expected));
          EXPECT_TRUE(SameBits(k_cache2.data(), k_expected.data()));
          EXPECT_TRUE(SameBits(v_cache2.data(), v_expected.data()));
        }
      }
    }
  }
}

// FlashInfer keeps k and v in one buffer, [num_blocks, 2, block_size, kv_heads, head_dim]: the two cache
// views interleave block by block, and are apart. The call writes what it writes into separate caches; a v
// view half a head off k's does overlap it, and is refused with nothing written.
TEST_P(KvCacheWriteTest, FlashInfersInterleavedKvBufferIsTwoCaches) {
  const rotary::Rope rope(rotary::Config().head_dim(kHeadDim).max_positions(64));
  const std::vector<int64_t> slots = RandomSlots(31);
  TypedTensor q(ROTARY_F32, kBatch, kSeq, kQHeads, kHeadDim), k(ROTARY_F32, kBatch, kSeq, kKvHeads, kHeadDim),
      v(ROTARY_F32, kBatch, kSeq, kKvHeads, kHeadDim);
  q.FillRandom(1);
  k.FillRandom(2);
  v.FillRandom(3);
  TypedTensor q_separate = q;
  PagedCache k_separate(ROTARY_F32, false), v_separate(ROTARY_F32, false);
  rope.apply_qk(q_separate.view(), k.view(),
                rotary::KvCacheWrite(k_separate.view(), v.view(), v_separate.view(), slots));

  const int64_t half = kBlockSize * kKvHeads * kHeadDim;  // one block's k (or v)
  std::vector<float> buffer(kBlocks * 2 * half, -7.0f);
  rotary_tensor kc{buffer.data(), ROTARY_F32, kBlocks, kBlockSize, kKvHeads, 2 * half, kKvHeads * kHeadDim, kHeadDim};
  rotary_tensor vc = kc;
  vc.data = buffer.data() + half;
  rope.apply_qk(q.view(), k.view(), rotary::KvCacheWrite(rotary::Tensor(kc), v.view(), rotary::Tensor(vc), slots));
  EXPECT_TRUE(SameBits(q, q_separate));
  int64_t mismatches = 0;
  for (int64_t slot = 0; slot < kBlocks * kBlockSize; ++slot) {
    const bool used = std::find(slots.begin(), slots.end(), slot) != slots.end();
    for (int64_t h = 0; h < kKvHeads; ++h) {
      for (int64_t c = 0; c < kHeadDim; ++c) {
        const int64_t at = slot / kBlockSize * 2 * half + slot % kBlockSize * kKvHeads * kHeadDim + h * kHeadDim + c;
        const double k_want = used ? k_separate.data().Get(slot / kBlockSize, slot % kBlockSize, h, c) : -7.0;
        const double v_want = used ? v_separate.data().Get(slot / kBlockSize, slot % kBlockSize, h, c) : -7.0;
        mismatches += buffer[at] != k_want;
        mismatches += buffer[at + half] != v_want;
      }
    }
  }
  EXPECT_EQ(mismatches, 0);

  const std::vector<float> before = buffer;
  vc.data = buffer.data() + kHeadDim / 2;
  try {
    rope.apply_qk(q.view(), k.view(), rotary::KvCacheWrite(rotary::Tensor(kc), v.view(), rotary::Tensor(vc), slots));
    ADD_FAILURE() << "overlapping caches accepted";
  } catch (const rotary::Error& e) {
    EXPECT_EQ(e.status(), rotary::Status::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("k_cache and v_cache may overlap"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(std::memcmp(buffer.data(), before.data(), buffer.size() * sizeof(float)) == 0);
}

// ---- Byte caches: FP8 and q8_0 (docs/math.md §9.3, §9.4) ----

// The float value of an FP8 code with `mantissa` bits and `bias` (finite codes only).
double Fp8Value(int code, int mantissa, int bias) {
  const int exponent = (code & 0x7F) >> mantissa, m = code & ((1 << mantissa) - 1);
  const double magnitude = exponent == 0 ? std::ldexp(m, 1 - bias - mantissa)
                                         : std::ldexp(1.0 + std::ldexp(m, -mantissa), exponent - bias);
  return code & 0x80 ? -magnitude : magnitude;
}

// The OCP rule of §9.3 by brute force: NaN -> 0x7F | sign; |z| >= max -> max code; else the nearest
// finite code, ties to the even code; the sign kept (also for zero).
uint8_t Fp8Reference(float z, bool e4m3) {
  const int mantissa = e4m3 ? 3 : 2, bias = e4m3 ? 7 : 15, max_code = e4m3 ? 0x7E : 0x7B;
  const int sign = std::signbit(z) ? 0x80 : 0;
  if (std::isnan(z)) return static_cast<uint8_t>(0x7F | sign);
  const double a = std::fabs(static_cast<double>(z));
  if (a >= Fp8Value(max_code, mantissa, bias)) return static_cast<uint8_t>(max_code | sign);
  int best = 0;
  for (int c = 1; c <= max_code; ++c) {
    const double d = std::fabs(Fp8Value(c, mantissa, bias) - a), best_d = std::fabs(Fp8Value(best, mantissa, bias) - a);
    if (d < best_d || (d == best_d && c % 2 == 0)) best = c;
  }
  return static_cast<uint8_t>(best | sign);
}

// ggml's quantize_row_q8_0_ref for one block of 32 (a NaN ignored in amax; a NaN or infinite product is 0).
std::vector<uint8_t> Q8Reference(const float* x) {
  float amax = 0.0f;
  for (int j = 0; j < 32; ++j) {
    if (!std::isnan(x[j])) amax = std::max(amax, std::fabs(x[j]));
  }
  const float d = amax / 127.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  const uint16_t h = rotary_test::DoubleToHalf(d);
  std::vector<uint8_t> record = {static_cast<uint8_t>(h & 0xFF), static_cast<uint8_t>(h >> 8)};
  for (int j = 0; j < 32; ++j) {
    const float p = x[j] * id;
    record.push_back(static_cast<uint8_t>(static_cast<int8_t>(std::isfinite(p) ? std::lround(p) : 0)));
  }
  return record;
}

// A byte cache [num_blocks, block_size, heads, head_bytes], filled with a sentinel.
// pad: bytes between one head's bytes and the next's (0: heads back to back).
struct ByteCache {
  int64_t head_bytes, head_stride;
  std::vector<uint8_t> bytes;
  explicit ByteCache(int64_t head, int64_t pad = 0)
      : head_bytes(head), head_stride(head + pad), bytes(kBlocks * kBlockSize * kKvHeads * head_stride + 64, 0xA5) {}
  rotary_tensor view() {
    return rotary_tensor{bytes.data() + 32, ROTARY_F32, kBlocks, kBlockSize, kKvHeads,
                         kBlockSize * kKvHeads * head_stride, kKvHeads * head_stride, head_stride};
  }
  const uint8_t* head(int64_t slot, int64_t h) const { return bytes.data() + 32 + (slot * kKvHeads + h) * head_stride; }
};

// The fused call into byte caches through the C ABI.
// format: a rotary_cache_format's value, or any other int (stored as a C caller could).
rotary_status WriteBytes(const rotary::Rope& rope, TypedTensor& q, TypedTensor& k, TypedTensor& v, ByteCache& kc,
                         ByteCache& vc, const std::vector<int64_t>& slots, int32_t format, double k_scale,
                         double v_scale) {
  rotary_tensor rq = q.raw(), rk = k.raw(), rv = v.raw(), rkc = kc.view(), rvc = vc.view();
  rotary_apply_options options;
  rotary_apply_options_init(&options);
  options.k_cache = &rkc;
  options.v_src = &rv;
  options.v_cache = &rvc;
  options.slot_mapping = slots.data();
  std::memcpy(&options.cache_format, &format, sizeof(format));
  options.k_scale = k_scale;
  options.v_scale = v_scale;
  return rotary_apply_with(rope.handle(), &rq, &rq, &rk, nullptr, &options);
}

// §9.3's examples (scale 1), as v (converted, not rotated) into both FP8 formats.
TEST_P(KvCacheWriteTest, Fp8CodesOfTheSpecExamples) {
  struct Example {
    float x;
    int e4m3, e5m2;  // -1: not given
  };
  const float inf = std::numeric_limits<float>::infinity();
  const std::vector<Example> examples = {
      {1.0f, 0x38, 0x3C},     {-2.5f, 0xC2, 0xC1},    {448.0f, 0x7E, 0x5F},  {464.0f, 0x7E, -1},
      {500.0f, 0x7E, 0x60},   {1e5f, 0x7E, 0x7B},     {inf, 0x7E, 0x7B},     {0.1f, 0x1D, 0x2E},
      {1.0625f, 0x38, -1},    {1.1875f, 0x3A, -1},    {1.125f, -1, 0x3C},    {1.375f, -1, 0x3E},
      {std::ldexp(1.0f, -9), 0x01, -1}, {std::ldexp(1.0f, -10), 0x00, -1}, {1.5f * std::ldexp(1.0f, -10), 0x01, -1},
      {std::ldexp(1.0f, -16), -1, 0x01}, {std::ldexp(1.0f, -17), -1, 0x00}, {-0.0f, 0x80, 0x80},
      {std::numeric_limits<float>::quiet_NaN(), 0x7F, 0x7F}, {-inf, 0xFE, 0xFB},
  };
  const int64_t head_dim = 32;
  const rotary::Rope rope(rotary::Config().head_dim(head_dim));
  for (bool e4m3 : {true, false}) {
    TypedTensor q(ROTARY_F32, 1, 1, 1, head_dim), k(ROTARY_F32, 1, 1, kKvHeads, head_dim),
        v(ROTARY_F32, 1, 1, kKvHeads, head_dim);
    q.FillRandom(1);
    k.FillRandom(2);
    for (size_t i = 0; i < 2 * head_dim; ++i) {
      v.Set(0, 0, static_cast<int64_t>(i) / head_dim, static_cast<int64_t>(i) % head_dim,
            i < examples.size() ? examples[i].x : 0.25 * static_cast<double>(i));
    }
    ByteCache kc(head_dim), vc(head_dim);
    const std::vector<int64_t> slot = {6};
    ASSERT_EQ(WriteBytes(rope, q, k, v, kc, vc, slot, e4m3 ? ROTARY_CACHE_FP8_E4M3 : ROTARY_CACHE_FP8_E5M2, 0, 0),
              ROTARY_OK)
        << rotary_last_error();
    for (size_t i = 0; i < examples.size(); ++i) {
      const int want = e4m3 ? examples[i].e4m3 : examples[i].e5m2;
      const uint8_t got = vc.head(6, static_cast<int64_t>(i) / head_dim)[i % head_dim];
      if (want >= 0) {
        EXPECT_EQ(got, want) << (e4m3 ? "E4M3 " : "E5M2 ") << examples[i].x;
      }
      EXPECT_EQ(got, Fp8Reference(examples[i].x, e4m3)) << examples[i].x;  // the brute-force rule agrees
    }
  }
}

// Every k and v component, against the rule applied to the f32 values (k: apply_to's f32 result, so
// one rounding from the f32 value), with scales; random values, every code's midpoints and their
// neighbours; the bytes of unaddressed slots untouched.
TEST_P(KvCacheWriteTest, Fp8CachesHoldTheRoundedF32Values) {
  const int64_t head_dim = 40;  // not a multiple of the vector: the tail path too
  const rotary::Rope rope(rotary::Config().head_dim(head_dim).max_positions(64));
  const std::vector<int64_t> slots = RandomSlots(17);
  for (bool e4m3 : {true, false}) {
    const int mantissa = e4m3 ? 3 : 2, bias = e4m3 ? 7 : 15, max_code = e4m3 ? 0x7E : 0x7B;
    const double k_scale = 0.37, v_scale = e4m3 ? 2.0 : 3.0;
    // v: values at and next to every midpoint between codes (times the scale: z = v / scale lands there).
    std::vector<float> probes;
    for (int c = 0; c < max_code; ++c) {
      const float mid = static_cast<float>((Fp8Value(c, mantissa, bias) + Fp8Value(c + 1, mantissa, bias)) / 2);
      for (float z : {mid, std::nextafter(mid, 0.0f), std::nextafter(mid, 1e9f)}) {
        probes.push_back(static_cast<float>(z * v_scale));
        probes.push_back(static_cast<float>(-z * v_scale));
      }
    }
    TypedTensor q(ROTARY_F32, kBatch, kSeq, kQHeads, head_dim), k(ROTARY_F32, kBatch, kSeq, kKvHeads, head_dim),
        v(ROTARY_F32, kBatch, kSeq, kKvHeads, head_dim);
    q.FillRandom(3);
    k.FillRandom(4, e4m3 ? 300.0 : 30000.0);
    size_t next = 0;
    v.ForEach([&](int64_t b, int64_t s, int64_t h, int64_t c) { v.Set(b, s, h, c, probes[next++ % probes.size()]); });
    TypedTensor k_rotated(ROTARY_F32, kBatch, kSeq, kKvHeads, head_dim);
    rope.apply_to(k.view(), k_rotated.view());
    ByteCache kc(head_dim), vc(head_dim);
    const std::vector<uint8_t> untouched = kc.bytes;
    ASSERT_EQ(WriteBytes(rope, q, k, v, kc, vc, slots, e4m3 ? ROTARY_CACHE_FP8_E4M3 : ROTARY_CACHE_FP8_E5M2,
                         k_scale, v_scale),
              ROTARY_OK)
        << rotary_last_error();
    int64_t mismatches = 0;
    for (int64_t i = 0; i < kBatch * kSeq; ++i) {
      if (slots[i] < 0) continue;
      for (int64_t h = 0; h < kKvHeads; ++h) {
        for (int64_t c = 0; c < head_dim; ++c) {
          const float kz = static_cast<float>(k_rotated.Get(i / kSeq, i % kSeq, h, c)) / static_cast<float>(k_scale);
          const float vz = static_cast<float>(v.Get(i / kSeq, i % kSeq, h, c)) / static_cast<float>(v_scale);
          mismatches += kc.head(slots[i], h)[c] != Fp8Reference(kz, e4m3);
          mismatches += vc.head(slots[i], h)[c] != Fp8Reference(vz, e4m3);
        }
      }
    }
    EXPECT_EQ(mismatches, 0) << (e4m3 ? "E4M3" : "E5M2");
    // Slots no token addressed keep the sentinel.
    std::vector<bool> used(kBlocks * kBlockSize, false);
    for (int64_t slot : slots) {
      if (slot >= 0) used[slot] = true;
    }
    for (int64_t slot = 0; slot < kBlocks * kBlockSize; ++slot) {
      if (used[slot]) continue;
      EXPECT_TRUE(std::equal(kc.head(slot, 0), kc.head(slot, 0) + kKvHeads * head_dim,
                             untouched.data() + (kc.head(slot, 0) - kc.bytes.data())))
          << "slot " << slot;
    }
    EXPECT_EQ(kc.bytes[31], 0xA5);  // before the cache
    EXPECT_EQ(kc.bytes[kc.bytes.size() - 1], 0xA5);
  }
}

// The q8_0 records of every k and v head (see below), the cache's heads `pad` bytes apart.
void Q8RecordsOfEveryHead(int64_t pad) {
  const int64_t head_dim = 320, record_bytes = 34;
  const rotary::Rope rope(rotary::Config().head_dim(head_dim).max_positions(64));
  const std::vector<int64_t> slots = RandomSlots(23);
  TypedTensor q(ROTARY_F32, kBatch, kSeq, kQHeads, head_dim), k(ROTARY_BF16, kBatch, kSeq, kKvHeads, head_dim),
      v(ROTARY_F32, kBatch, kSeq, kKvHeads, head_dim);
  q.FillRandom(5);
  k.FillRandom(6, 40.0);
  v.FillRandom(7, 3.0);
  // Blocks of v with known answers: token 0 head 0 block 0 is x_j = j - 16 (§9.4), block 1 has ties
  // with amax 127; token 1 head 0: amax 1e-6 (d rounds to half 0), and amax 1e7 (half(d) = inf).
  for (int j = 0; j < 32; ++j) {
    v.Set(0, 0, 0, j, j - 16);
    v.Set(0, 0, 0, 32 + j, j == 0 ? 127.0 : j % 2 ? 2.5 : -0.5);
    v.Set(0, 1, 0, j, j == 5 ? 1e-6 : 1e-7 * j);
    v.Set(0, 1, 0, 32 + j, j == 9 ? -1e7 : j);
    v.Set(0, 2, 1, j, j == 4 ? 3e-38 : -1e-38);  // 1 / d is infinite: every product inf, quantized to 0
  }
  TypedTensor k_rotated(ROTARY_F32, kBatch, kSeq, kKvHeads, head_dim);
  rope.apply_to(k.view(), k_rotated.view());
  ByteCache kc(head_dim / 32 * record_bytes, pad), vc(head_dim / 32 * record_bytes, pad);
  std::vector<int64_t> first_two = slots;
  first_two[0] = 19;
  first_two[1] = 0;
  ASSERT_EQ(WriteBytes(rope, q, k, v, kc, vc, first_two, ROTARY_CACHE_Q8_0, 0, 0), ROTARY_OK) << rotary_last_error();
  // §9.4's record: d = 0x3008, quants -127, -119, -111, -103, ...
  const uint8_t* example = vc.head(19, 0);
  const std::vector<uint8_t> start = {0x08, 0x30, 0x81, 0x89, 0x91, 0x99};
  EXPECT_TRUE(std::equal(start.begin(), start.end(), example));
  EXPECT_EQ(static_cast<int8_t>(example[2 + 1]), -119);   // x = -15: -119.0625
  EXPECT_EQ(static_cast<int8_t>(example[2 + 14]), -16);   // x = -2: -15.875
  const uint8_t* ties = example + record_bytes;
  EXPECT_EQ(static_cast<int8_t>(ties[2 + 1]), 3);         // 2.5 -> 3 (half away from zero)
  EXPECT_EQ(static_cast<int8_t>(ties[2 + 2]), -1);        // -0.5 -> -1
  EXPECT_EQ(vc.head(0, 0)[0] | vc.head(0, 0)[1] << 8, 0);         // amax 1e-6: half(d) = 0
  EXPECT_EQ(vc.head(0, 0)[34] | vc.head(0, 0)[35] << 8, 0x7C00);  // amax 1e7: half(d) = +inf
  int64_t mismatches = 0;
  for (int64_t i = 0; i < kBatch * kSeq; ++i) {
    if (first_two[i] < 0) continue;
    for (int64_t h = 0; h < kKvHeads; ++h) {
      for (int64_t block = 0; block < head_dim / 32; ++block) {
        float kx[32], vx[32];
        for (int j = 0; j < 32; ++j) {
          kx[j] = static_cast<float>(k_rotated.Get(i / kSeq, i % kSeq, h, block * 32 + j));
          vx[j] = static_cast<float>(v.Get(i / kSeq, i % kSeq, h, block * 32 + j));
        }
        const std::vector<uint8_t> kr = Q8Reference(kx), vr = Q8Reference(vx);
        mismatches += !std::equal(kr.begin(), kr.end(), kc.head(first_two[i], h) + block * record_bytes);
        mismatches += !std::equal(vr.begin(), vr.end(), vc.head(first_two[i], h) + block * record_bytes);
      }
    }
  }
  EXPECT_EQ(mismatches, 0);
}

// q8_0: §9.4's example record, ties away from zero, the extremes, and random blocks against ggml's
// reference quantizer restated; k's records from apply_to's f32 result. A token's 20 records are more
// than one vector of record scales on every target: in one run where the heads are back to back, head by
// head where the cache pads them.
TEST_P(KvCacheWriteTest, Q8CachesHoldGgmlsReferenceRecords) {
  for (int64_t pad : {0, 6}) {
    SCOPED_TRACE("head padding " + std::to_string(pad));
    Q8RecordsOfEveryHead(pad);
  }
}

// qk-norm before byte caches: each k head's FP8 codes and q8_0 records are those of apply_to's normalized
// f32 result (one rounding into the format), v's those of v as it is.
TEST_P(KvCacheWriteTest, QkNormComesBeforeByteCaches) {
  const int64_t head_dim = 64;
  const rotary::Rope rope(rotary::Config().head_dim(head_dim).max_positions(64));
  const std::vector<int64_t> slots = RandomSlots(29);
  std::vector<float> wq(head_dim), wk(head_dim);
  for (int64_t d = 0; d < head_dim; ++d) {
    wq[d] = 0.5f + 0.03125f * static_cast<float>(d);
    wk[d] = 2.0f - 0.015625f * static_cast<float>(d);
  }
  const rotary::QkNorm norm(wq, wk), k_alone(wk, {});
  TypedTensor q(ROTARY_BF16, kBatch, kSeq, kQHeads, head_dim), k(ROTARY_BF16, kBatch, kSeq, kKvHeads, head_dim),
      v(ROTARY_BF16, kBatch, kSeq, kKvHeads, head_dim);
  q.FillRandom(1);
  k.FillRandom(2, 30.0);
  v.FillRandom(3, 3.0);
  TypedTensor k_normalized(ROTARY_F32, kBatch, kSeq, kKvHeads, head_dim);
  rope.apply_to(k.view(), k_normalized.view(), k_alone);
  for (int32_t format : {ROTARY_CACHE_FP8_E4M3, ROTARY_CACHE_Q8_0}) {
    SCOPED_TRACE(format == ROTARY_CACHE_Q8_0 ? "q8_0" : "fp8_e4m3");
    const bool q8 = format == ROTARY_CACHE_Q8_0;
    const int64_t head_bytes = q8 ? head_dim / 32 * 34 : head_dim;
    const double k_scale = q8 ? 0.0 : 0.05, v_scale = q8 ? 0.0 : 0.5;
    ByteCache kc(head_bytes), vc(head_bytes);
    TypedTensor q_fused = q, q_expected(ROTARY_BF16, kBatch, kSeq, kQHeads, head_dim);
    rope.apply_to(q.view(), q_expected.view(), rotary::QkNorm(wq, {}));
    rope.apply_qk(q_fused.view(), k.view(),
                  rotary::KvCacheWrite(rotary::Tensor(kc.view()), v.view(), rotary::Tensor(vc.view()), slots)
                      .with_format(static_cast<rotary_cache_format>(format), k_scale, v_scale),
                  norm);
    EXPECT_TRUE(SameBits(q_fused, q_expected));
    int64_t mismatches = 0;
    for (int64_t i = 0; i < kBatch * kSeq; ++i) {
      if (slots[i] < 0) continue;
      for (int64_t h = 0; h < kKvHeads; ++h) {
        float kx[64], vx[64];
        for (int64_t c = 0; c < head_dim; ++c) {
          kx[c] = static_cast<float>(k_normalized.Get(i / kSeq, i % kSeq, h, c));
          vx[c] = static_cast<float>(v.Get(i / kSeq, i % kSeq, h, c));
        }
        for (int64_t c = 0; !q8 && c < head_dim; ++c) {
          mismatches += kc.head(slots[i], h)[c] != Fp8Reference(kx[c] / 0.05f, true);
          mismatches += vc.head(slots[i], h)[c] != Fp8Reference(vx[c] / 0.5f, true);
        }
        for (int64_t block = 0; q8 && block < head_dim / 32; ++block) {
          const std::vector<uint8_t> kr = Q8Reference(kx + 32 * block), vr = Q8Reference(vx + 32 * block);
          mismatches += !std::equal(kr.begin(), kr.end(), kc.head(slots[i], h) + block * 34);
          mismatches += !std::equal(vr.begin(), vr.end(), vc.head(slots[i], h) + block * 34);
        }
      }
    }
    EXPECT_EQ(mismatches, 0);
  }
}

// A prefill big enough to be split over threads gives the bits of one call per token (each
// token's slot written by whichever thread runs its row), for a tensor and an FP8 cache.
TEST_P(KvCacheWriteTest, ThreadedPrefillWritesWhatOneTokenAtATimeWrites) {
  constexpr int64_t kTokens = 512, kHeads = 2, kDim = 128, kBlock = 16;
  const rotary::Rope rope(rotary::Config().head_dim(kDim).max_positions(kTokens));
  TypedTensor q(ROTARY_BF16, 1, kTokens, 8, kDim), k(ROTARY_BF16, 1, kTokens, kHeads, kDim),
      v(ROTARY_BF16, 1, kTokens, kHeads, kDim);
  q.FillRandom(1);
  k.FillRandom(2);
  v.FillRandom(3);
  std::vector<int64_t> slots(kTokens);
  for (int64_t t = 0; t < kTokens; ++t) slots[t] = (t * 37) % kTokens;  // 37 is coprime to 512: a permutation
  for (rotary_cache_format format : {ROTARY_CACHE_TENSOR, ROTARY_CACHE_FP8_E4M3}) {
    const int64_t head = format == ROTARY_CACHE_TENSOR ? kDim * 2 : kDim;  // bytes: f16 or fp8
    std::vector<uint8_t> caches[2][2];  // [whole, per token][k, v]
    for (auto& pair : caches) {
      for (auto& c : pair) c.assign(kTokens * kHeads * head, 0x5A);
    }
    const auto call = [&](TypedTensor& qs, int64_t first, int64_t count, std::vector<uint8_t>* kv) {
      rotary_tensor rq = qs.raw(), rk = k.raw(), rv = v.raw();
      for (rotary_tensor* t : {&rq, &rk, &rv}) {
        t->data = static_cast<char*>(t->data) + first * t->stride_seq * 2;
        t->seq = count;
      }
      const int64_t elements = format == ROTARY_CACHE_TENSOR ? kDim : head;
      rotary_tensor caches_view[2];
      for (int i = 0; i < 2; ++i) {
        caches_view[i] = rotary_tensor{kv[i].data(), ROTARY_F16, kTokens / kBlock, kBlock, kHeads,
                                       kBlock * kHeads * elements, kHeads * elements, elements};
      }
      rotary_apply_options options;
      rotary_apply_options_init(&options);
      options.offset = first;
      options.k_cache = &caches_view[0];
      options.v_src = &rv;
      options.v_cache = &caches_view[1];
      options.slot_mapping = slots.data() + first;
      options.cache_format = format;
      options.k_scale = format == ROTARY_CACHE_TENSOR ? 0.0 : 0.5;
      return rotary_apply_with(rope.handle(), &rq, &rq, &rk, nullptr, &options);
    };
    TypedTensor q_whole = q, q_tokens = q;
    ASSERT_EQ(call(q_whole, 0, kTokens, caches[0]), ROTARY_OK) << rotary_last_error();
    for (int64_t t = 0; t < kTokens; ++t) ASSERT_EQ(call(q_tokens, t, 1, caches[1]), ROTARY_OK) << rotary_last_error();
    EXPECT_TRUE(SameBits(q_whole, q_tokens));
    EXPECT_EQ(caches[0][0], caches[1][0]);
    EXPECT_EQ(caches[0][1], caches[1][1]);
  }
}

// The C++ API writes byte caches too (KvCacheWrite::with_format): the bytes of the C call.
TEST_P(KvCacheWriteTest, CppWritesByteCachesAsTheCAbiDoes) {
  const int64_t head_dim = 64, head_bytes = head_dim / 32 * 34;
  const rotary::Rope rope(rotary::Config().head_dim(head_dim));
  TypedTensor q(ROTARY_F32, kBatch, kSeq, kQHeads, head_dim), k(ROTARY_F32, kBatch, kSeq, kKvHeads, head_dim),
      v(ROTARY_F32, kBatch, kSeq, kKvHeads, head_dim);
  q.FillRandom(1);
  k.FillRandom(2);
  v.FillRandom(3);
  const std::vector<int64_t> slots = RandomSlots(9);
  TypedTensor q_c = q;
  ByteCache kc(head_bytes), vc(head_bytes), kc_cpp(head_bytes), vc_cpp(head_bytes);
  ASSERT_EQ(WriteBytes(rope, q_c, k, v, kc, vc, slots, ROTARY_CACHE_Q8_0, 0, 0), ROTARY_OK) << rotary_last_error();
  rope.apply_qk(q.view(), k.view(),
                rotary::KvCacheWrite(rotary::Tensor(kc_cpp.view()), v.view(), rotary::Tensor(vc_cpp.view()), slots)
                    .with_format(ROTARY_CACHE_Q8_0));
  EXPECT_TRUE(SameBits(q, q_c));
  EXPECT_EQ(kc_cpp.bytes, kc.bytes);
  EXPECT_EQ(vc_cpp.bytes, vc.bytes);
}

// Slots inside memory the call writes (here: the k cache row of the first token) are read as they were
// when checked: the kernels work on a copy, so the call writes what it would with the slots elsewhere.
TEST_P(KvCacheWriteTest, SlotsInsideTheCacheAreReadAsChecked) {
  const rotary::Rope rope(rotary::Config().head_dim(kHeadDim));
  TypedTensor q(ROTARY_F32, 1, 4, 1, kHeadDim), k(ROTARY_F32, 1, 4, kKvHeads, kHeadDim),
      v(ROTARY_F32, 1, 4, kKvHeads, kHeadDim);
  q.FillRandom(1);
  k.FillRandom(2);
  v.FillRandom(3);
  // A cache of 8 slots of f32 heads; the slots [0, 5, 6, 7] stored in slot 0's k row (head 1), which
  // the first token overwrites before the kernels reach the later tokens.
  const int64_t row = kKvHeads * kHeadDim;
  std::vector<float> k_cache(8 * row, 0.0f), v_cache(8 * row, 0.0f), k_expected, v_expected;
  const std::vector<int64_t> slots = {0, 5, 6, 7};
  int64_t* inside = reinterpret_cast<int64_t*>(k_cache.data() + kHeadDim);
  std::copy(slots.begin(), slots.end(), inside);
  const auto cache_view = [&](std::vector<float>& c) { return rotary::Tensor(c.data(), 8, 1, kKvHeads, kHeadDim); };
  TypedTensor q2 = q;
  std::vector<float> k_other(8 * row, 0.0f), v_other(8 * row, 0.0f);
  rope.apply_qk(q2.view(), k.view(), rotary::KvCacheWrite(cache_view(k_other), v.view(), cache_view(v_other), slots));
  rope.apply_qk(q.view(), k.view(), rotary::KvCacheWrite(cache_view(k_cache), v.view(), cache_view(v_cache), inside));
  EXPECT_EQ(std::memcmp(k_cache.data(), k_other.data(), k_cache.size() * sizeof(float)), 0);
  EXPECT_EQ(std::memcmp(v_cache.data(), v_other.data(), v_cache.size() * sizeof(float)), 0);
}

ROTARY_TEST_EVERY_TARGET(KvCacheWriteTest);

TEST(KvCacheWrite, BadByteCacheCallsAreErrors) {
  TypedTensor q(ROTARY_F32, kBatch, kSeq, kQHeads, 48), k(ROTARY_F32, kBatch, kSeq, kKvHeads, 48),
      v(ROTARY_F32, kBatch, kSeq, kKvHeads, 48);
  q.FillRandom(1);
  k.FillRandom(2);
  v.FillRandom(3);
  const TypedTensor q0 = q;
  const rotary::Rope rope(rotary::Config().head_dim(48));
  const std::vector<int64_t> slots = RandomSlots(1);
  struct Case {
    int32_t format;  // not always a rotary_cache_format
    double k_scale, v_scale;
    const char* message;
  };
  const std::vector<Case> cases = {
      {ROTARY_CACHE_Q8_0, 0, 0, "head_dim = 48 is not a multiple of 32"},
      {ROTARY_CACHE_FP8_E4M3, -1.0, 0, "options.k_scale = -1 must be finite and > 0"},
      {ROTARY_CACHE_FP8_E5M2, 0, std::numeric_limits<double>::infinity(), "options.v_scale = inf"},
      {ROTARY_CACHE_FP8_E5M2, 1e-50, 0, "options.k_scale = 1e-50 must be finite and > 0 as a float"},
      {ROTARY_CACHE_TENSOR, 2.0, 0, "options.k_scale = 2 is for FP8 caches only"},
      {9, 0, 0, "options.cache_format = 9 is not a rotary_cache_format"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.message);
    ByteCache kc(48), vc(48);
    const std::vector<uint8_t> before = kc.bytes;
    EXPECT_EQ(WriteBytes(rope, q, k, v, kc, vc, slots, c.format, c.k_scale, c.v_scale), ROTARY_INVALID_ARGUMENT);
    EXPECT_NE(std::string(rotary_last_error()).find(c.message), std::string::npos) << rotary_last_error();
    EXPECT_TRUE(SameBits(q, q0));
    EXPECT_EQ(kc.bytes, before);
    EXPECT_EQ(vc.bytes, before);
  }
}

// Bad calls: a status naming the problem, and q, k, v and both caches as they were.
TEST(KvCacheWrite, BadCallsAreErrorsThatWriteNothing) {
  const rotary::Rope rope(rotary::Config().head_dim(kHeadDim));
  TypedTensor q(ROTARY_F32, kBatch, kSeq, kQHeads, kHeadDim), k(ROTARY_F32, kBatch, kSeq, kKvHeads, kHeadDim),
      v(ROTARY_F32, kBatch, kSeq, kKvHeads, kHeadDim), k3(ROTARY_F32, kBatch, kSeq, 3, kHeadDim);
  q.FillRandom(1);
  k.FillRandom(2);
  v.FillRandom(3);
  PagedCache k_cache(ROTARY_F16, false), v_cache(ROTARY_F16, false);
  const std::vector<int64_t> good = RandomSlots(3);
  rotary_tensor rq = q.raw(), rk = k.raw(), rv = v.raw(), rk3 = k3.raw();
  rotary_tensor rkc = k_cache.view().t, rvc = v_cache.view().t;
  const TypedTensor q0 = q, k0 = k, v0 = v, kc0 = k_cache.data(), vc0 = v_cache.data();

  struct Case {
    const char* what;
    rotary_status status;
    const char* message;
    std::vector<int64_t> slots;
    const rotary_tensor* k_dst = nullptr;
    const rotary_tensor* k_cache = nullptr;  // nullptr: the good one
    const rotary_tensor* v_src = nullptr;
    const rotary_tensor* v_cache = nullptr;
    bool drop_v_cache = false;
    int inverse = 0;
    bool norm = false;
  };
  std::vector<int64_t> beyond = good, twice = good;
  beyond[4] = kBlocks * kBlockSize;
  twice[5] = twice[0];
  rotary_tensor small_cache = rkc;
  small_cache.heads = 1;
  // Cache views of the right shape over q's and k's memory.
  rotary_tensor over_q = rkc, over_k = rkc;
  over_q.data = rq.data;
  over_k.data = rk.data;
  const std::vector<float> weight(kHeadDim, 1.0f);
  std::vector<float> nan_weight(kHeadDim, 1.0f);
  nan_weight[3] = std::numeric_limits<float>::quiet_NaN();
  const std::vector<Case> cases = {
      {"slot beyond the cache", ROTARY_OUT_OF_RANGE, "slot_mapping[4] = 20 is not below num_blocks * block_size", beyond},
      {"slot twice", ROTARY_INVALID_ARGUMENT, "slot_mapping[0] and slot_mapping[5] are both", twice},
      {"k_dst given", ROTARY_INVALID_ARGUMENT, "k_dst must be NULL", good, &rk},
      {"cache heads", ROTARY_INVALID_ARGUMENT, "k_cache has 1 heads but k_src has 2", good, nullptr, &small_cache},
      {"v shape", ROTARY_INVALID_ARGUMENT, "v_src is [2, 5, 3] but k_src is [2, 5, 2]", good, nullptr, nullptr, &rk3},
      {"cache over q", ROTARY_INVALID_ARGUMENT, "v_cache and q_src may overlap", good, nullptr, nullptr, nullptr, &over_q},
      {"cache over k", ROTARY_INVALID_ARGUMENT, "k_cache and k_src may overlap", good, nullptr, &over_k},
      {"no v_cache", ROTARY_INVALID_ARGUMENT, "options.v_cache is NULL", good, nullptr, nullptr, nullptr, nullptr, true},
      {"inverse", ROTARY_INVALID_ARGUMENT, "forward rotation", good, nullptr, nullptr, nullptr, nullptr, false, 1},
      {"norm weight NaN", ROTARY_INVALID_ARGUMENT, "norm.k_weight[3] = nan is not finite", good, nullptr, nullptr,
       nullptr, nullptr, false, 0, true},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    rotary_apply_options options;
    rotary_apply_options_init(&options);
    options.k_cache = c.k_cache ? c.k_cache : &rkc;
    options.v_src = c.v_src ? c.v_src : &rv;
    options.v_cache = c.drop_v_cache ? nullptr : c.v_cache ? c.v_cache : &rvc;
    options.slot_mapping = c.slots.data();
    options.inverse = c.inverse;
    rotary_qk_norm norm;
    rotary_qk_norm_init(&norm);
    norm.q_weight = weight.data();
    norm.k_weight = nan_weight.data();
    if (c.norm) options.norm = &norm;
    EXPECT_EQ(rotary_apply_with(rope.handle(), &rq, &rq, &rk, c.k_dst, &options), c.status);
    EXPECT_NE(std::string(rotary_last_error()).find(c.message), std::string::npos) << rotary_last_error();
    EXPECT_TRUE(SameBits(q, q0));
    EXPECT_TRUE(SameBits(k, k0));
    EXPECT_TRUE(SameBits(v, v0));
    EXPECT_TRUE(SameBits(k_cache.data(), kc0));
    EXPECT_TRUE(SameBits(v_cache.data(), vc0));
  }
  // C++: a slot vector that is not one per token.
  const std::vector<int64_t> three_slots = {0, 1, 2};
  EXPECT_THROW(
      rope.apply_qk(q.view(), k.view(), rotary::KvCacheWrite(k_cache.view(), v.view(), v_cache.view(), three_slots)),
      rotary::Error);
  static_assert(!std::is_constructible_v<rotary::KvCacheWrite, rotary::Tensor, rotary::Tensor, rotary::Tensor,
                                         std::vector<int64_t>>,
                "a temporary slot vector would dangle");
  // The good call goes through.
  rope.apply_qk(q.view(), k.view(), rotary::KvCacheWrite(k_cache.view(), v.view(), v_cache.view(), good));
  EXPECT_FALSE(SameBits(k_cache.data(), kc0));
}

}  // namespace
