// The KV-cache write in the same pass (rotary_apply_options' k_cache, v_src,
// v_cache, slot_mapping; C++ KvCacheWrite; docs/math.md §9) on every target:
// q comes out as apply_qk_to makes it, each token's k head as apply_qk_to
// writes it to a tensor of the cache's storage, and its v head converted once,
// in the slot the mapping gives, for both pairings, every source and cache
// storage, vLLM's and its CPU backend's cache layouts, stored and synthesized
// rows, explicit, multi-axis and per-sequence positions; nothing else in the
// caches changes, and bad calls are errors that write nothing.
#include <algorithm>
#include <cstdint>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "rotary/rotary.hpp"
#include "tests/every_target.h"
#include "tests/typed_tensor.h"

namespace {

using rotary_test::Shape;
using rotary_test::TypedTensor;

constexpr int64_t kBatch = 2, kSeq = 5, kQHeads = 4, kKvHeads = 2, kHeadDim = 64;
constexpr int64_t kBlocks = 5, kBlockSize = 4;  // 20 slots for 10 tokens

// The same bytes, guards included; else where the first difference is.
::testing::AssertionResult SameBits(const TypedTensor& a, const TypedTensor& b) {
  if (a.bytes() == b.bytes()) return ::testing::AssertionSuccess();
  const auto diff = std::mismatch(a.bytes().begin(), a.bytes().end(), b.bytes().begin());
  return ::testing::AssertionFailure() << "first difference at byte " << (diff.first - a.bytes().begin()) << " of "
                                       << a.bytes().size();
}

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

ROTARY_TEST_EVERY_TARGET(KvCacheWriteTest);

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
      {"norm", ROTARY_UNSUPPORTED, "qk-norm together with a KV-cache write", good, nullptr, nullptr, nullptr, nullptr,
       false, 0, true},
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
  EXPECT_THROW(rope.apply_qk(q.view(), k.view(), rotary::KvCacheWrite(k_cache.view(), v.view(), v_cache.view(),
                                                                      std::vector<int64_t>{0, 1, 2})),
               rotary::Error);
  // The good call goes through.
  rope.apply_qk(q.view(), k.view(), rotary::KvCacheWrite(k_cache.view(), v.view(), v_cache.view(), good));
  EXPECT_FALSE(SameBits(k_cache.data(), kc0));
}

}  // namespace
