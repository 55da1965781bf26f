// A paged KV cache, as vLLM keeps one, written by the rope call itself.
//
// Each layer step of a serving loop rotates q and k and then stores k and v in
// the KV cache. Here that is one call: apply_qk with a KvCacheWrite rotates q
// in place (times 1/sqrt(head_dim)), and in the same pass writes each token's
// rotated k heads and its v heads, rounded to f16, into the token's slot of a
// paged cache. k and v themselves are only read.
//
// The cache is split into blocks of kBlockSize rows. Each sequence owns a block
// table (the blocks it was given, in order), so position pos of a sequence lives
// in slot
//     block_table[pos / kBlockSize] * kBlockSize + pos % kBlockSize
// and slot / kBlockSize, slot % kBlockSize are the block and the row in it.
//
// The loop: two sequences of different prompt lengths are prefilled in one
// right-padded batch (padding tokens get slot -1: nothing is written for them),
// then decoded one token per sequence per step. At the end it checks, for both
// cache layouts vLLM uses, that
//   1. every cached key, read back through the block tables, equals one fresh
//      apply_to of all the keys of its sequence at positions 0..len-1 into f16,
//      bit for bit: rotating token by token into a paged cache loses nothing;
//   2. every cached value is v rounded to f16 (round to nearest even);
//   3. every other row of both caches is as it was: padding wrote nothing.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "rotary/rotary.hpp"

namespace {

// A toy model shape: GQA with 8 q heads sharing 2 kv heads.
constexpr int64_t kQHeads = 8, kKvHeads = 2, kHeadDim = 128;
constexpr int64_t kBlockSize = 16, kNumBlocks = 8;  // 128 slots, more than the sequences need
constexpr int64_t kDecodeSteps = 12;
const std::vector<int64_t> kPromptLengths = {21, 7};  // 21 spans two blocks, 7 part of one
constexpr uint16_t kUnwritten = 0xFFFF;               // an f16 NaN the cache is filled with, to see what was written

// Stand-in for the projections: q, k and v of token `pos` of sequence `seq`, deterministic values in [-1, 1),
// so the check can make the same tokens again. which: 0 = q, 1 = k, 2 = v.
float Activation(int64_t seq, int64_t pos, int which, int64_t head, int64_t d) {
  return std::sin(0.37f * static_cast<float>(pos) + 1.3f * static_cast<float>(head * kHeadDim + d) +
                  2.1f * static_cast<float>(seq) + 0.7f * static_cast<float>(which));
}

// IEEE binary16, round to nearest even: what the cache holds for an f32 value (written out here to check v
// against something independent of the library).
uint16_t FloatToHalf(float f) {
  uint32_t x;
  std::memcpy(&x, &f, sizeof x);
  const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000);
  const uint32_t magnitude = x & 0x7FFFFFFF;
  if (magnitude > 0x7F800000) return sign | 0x7E00;    // NaN
  if (magnitude >= 0x477FF000) return sign | 0x7C00;   // 65520 and up round to infinity
  if (magnitude < 0x38800000) {                        // below 2^-14: a subnormal half, in units of 2^-24
    return sign | static_cast<uint16_t>(std::nearbyint(std::fabs(f) * 16777216.0f));
  }
  const uint32_t rebiased = magnitude - 0x38000000;    // exponent bias 127 -> 15
  return sign | static_cast<uint16_t>((rebiased + 0x0FFF + ((rebiased >> 13) & 1)) >> 13);
}

// q, k and v of a batch of tokens: [batch, seq, heads, head_dim] each, f32, contiguous.
struct Activations {
  int64_t batch, seq;
  std::vector<float> q, k, v;

  Activations(int64_t batch_size, int64_t seq_len)
      : batch(batch_size), seq(seq_len), q(batch * seq * kQHeads * kHeadDim, 0.0f),
        k(batch * seq * kKvHeads * kHeadDim, 0.0f), v(batch * seq * kKvHeads * kHeadDim, 0.0f) {}

  // Row (b, s) becomes token `pos` of sequence `sequence`.
  void Fill(int64_t b, int64_t s, int64_t sequence, int64_t pos) {
    const int64_t row = b * seq + s;
    for (int64_t d = 0; d < kHeadDim; ++d) {
      for (int64_t h = 0; h < kQHeads; ++h) q[(row * kQHeads + h) * kHeadDim + d] = Activation(sequence, pos, 0, h, d);
      for (int64_t h = 0; h < kKvHeads; ++h) {
        k[(row * kKvHeads + h) * kHeadDim + d] = Activation(sequence, pos, 1, h, d);
        v[(row * kKvHeads + h) * kHeadDim + d] = Activation(sequence, pos, 2, h, d);
      }
    }
  }
  rotary::Tensor Q() { return rotary::Tensor(q.data(), batch, seq, kQHeads, kHeadDim); }
  rotary::Tensor K() { return rotary::Tensor(k.data(), batch, seq, kKvHeads, kHeadDim); }
  rotary::Tensor V() { return rotary::Tensor(v.data(), batch, seq, kKvHeads, kHeadDim); }
};

// One paged f16 cache (keys or values). rotary sees every cache as [num_blocks, block_size, kv_heads, head_dim]
// (batch = blocks, seq = rows of a block); any other order of the three outer axes is the same thing with other
// strides.
enum class Layout {
  kBlockRowHead,  // vLLM: [num_blocks, block_size, kv_heads, head_dim]
  kBlockHeadRow,  // vLLM's CPU backend: [num_blocks, kv_heads, block_size, head_dim]
};

struct PagedCache {
  Layout layout;
  std::vector<uint16_t> data = std::vector<uint16_t>(kNumBlocks * kBlockSize * kKvHeads * kHeadDim, kUnwritten);

  // Element strides of block, row and head.
  int64_t StrideBlock() const { return kBlockSize * kKvHeads * kHeadDim; }
  int64_t StrideRow() const { return layout == Layout::kBlockRowHead ? kKvHeads * kHeadDim : kHeadDim; }
  int64_t StrideHead() const { return layout == Layout::kBlockRowHead ? kHeadDim : kBlockSize * kHeadDim; }

  rotary::Tensor View() {
    return rotary::Tensor(data.data(), rotary::Dtype::kF16, kNumBlocks, kBlockSize, kKvHeads, StrideBlock(),
                          StrideRow(), StrideHead());
  }
  // The head_dim components of head h in the slot's row.
  const uint16_t* At(int64_t slot, int64_t h) const {
    return data.data() + slot / kBlockSize * StrideBlock() + slot % kBlockSize * StrideRow() + h * StrideHead();
  }
};

// The simplest block allocator: a stack of free blocks. Handing them out from the top (7, 6, 5, ...) makes the
// blocks of one sequence neither contiguous nor increasing, as they are in a server that has been running a while.
struct BlockAllocator {
  std::vector<int64_t> free_blocks;
  BlockAllocator() {
    for (int64_t b = 0; b < kNumBlocks; ++b) free_blocks.push_back(b);
  }
  int64_t Allocate() {
    if (free_blocks.empty()) throw std::runtime_error("out of KV-cache blocks");
    const int64_t block = free_blocks.back();
    free_blocks.pop_back();
    return block;
  }
};

struct Sequence {
  int64_t id;
  int64_t length;                    // tokens in the cache: the next token's position
  std::vector<int64_t> block_table;  // the sequence's blocks, in position order

  // Blocks for positions [0, new_length).
  void Reserve(int64_t new_length, BlockAllocator& allocator) {
    while (static_cast<int64_t>(block_table.size()) * kBlockSize < new_length) {
      block_table.push_back(allocator.Allocate());
    }
  }
  int64_t Slot(int64_t pos) const { return block_table[pos / kBlockSize] * kBlockSize + pos % kBlockSize; }
};

const char* LayoutName(Layout layout) {
  return layout == Layout::kBlockRowHead ? "[num_blocks, block_size, kv_heads, head_dim] (vLLM)"
                                         : "[num_blocks, kv_heads, block_size, head_dim] (vLLM CPU)";
}

std::string Blocks(const Sequence& sequence) {
  std::string out;
  for (int64_t block : sequence.block_table) out += (out.empty() ? "" : " ") + std::to_string(block);
  return out;
}

// The serving loop for one cache layout, then the checks; returns the number of mismatches.
int64_t RunAndCheck(const rotary::Rope& rope, Layout layout) {
  const float q_scale = 1.0f / std::sqrt(static_cast<float>(kHeadDim));  // the attention scale, folded into q
  PagedCache k_cache{layout}, v_cache{layout};
  BlockAllocator allocator;
  std::vector<Sequence> sequences;
  for (size_t i = 0; i < kPromptLengths.size(); ++i) sequences.push_back({static_cast<int64_t>(i), 0, {}});
  const int64_t batch = static_cast<int64_t>(sequences.size());

  // Prefill: all prompts in one batch, right-padded to the longest. Row (b, s) is at position s, the default;
  // a padding row gets slot -1, so it is rotated (q is one tensor) but goes nowhere in the cache.
  int64_t longest = 0, prompt_tokens = 0;
  for (int64_t length : kPromptLengths) {
    longest = std::max(longest, length);
    prompt_tokens += length;
  }
  Activations prefill(batch, longest);
  std::vector<int64_t> slots(batch * longest, -1);
  for (Sequence& sequence : sequences) {
    const int64_t b = sequence.id, prompt = kPromptLengths[b];
    sequence.Reserve(prompt, allocator);
    for (int64_t s = 0; s < prompt; ++s) {
      prefill.Fill(b, s, sequence.id, s);
      slots[b * longest + s] = sequence.Slot(s);
    }
    sequence.length = prompt;
  }
  rope.apply_qk(prefill.Q(), prefill.K(), rotary::KvCacheWrite(k_cache.View(), prefill.V(), v_cache.View(), slots),
                rotary::Positions(), q_scale);
  // (Attention would now read the prompt's keys and values through the block tables.)

  // Decode: one new token per sequence and step, a [batch, 1] call. Each sequence is at its own position
  // (its length), given as per-sequence offsets, and gets a new block when it crosses a block boundary.
  for (int64_t step = 0; step < kDecodeSteps; ++step) {
    Activations token(batch, 1);
    std::vector<int64_t> positions(batch), decode_slots(batch);
    for (Sequence& sequence : sequences) {
      const int64_t pos = sequence.length;
      sequence.Reserve(pos + 1, allocator);
      token.Fill(sequence.id, 0, sequence.id, pos);
      positions[sequence.id] = pos;
      decode_slots[sequence.id] = sequence.Slot(pos);
    }
    rope.apply_qk(token.Q(), token.K(), rotary::KvCacheWrite(k_cache.View(), token.V(), v_cache.View(), decode_slots),
                  rotary::Positions::PerSequence(positions), q_scale);
    for (Sequence& sequence : sequences) ++sequence.length;
  }

  // The checks. Expected keys: each sequence's keys at positions 0..len-1, rotated in one call into f16.
  int64_t mismatches = 0, tokens = 0;
  std::vector<bool> slot_used(kNumBlocks * kBlockSize, false);
  for (const Sequence& sequence : sequences) {
    Activations all(1, sequence.length);
    for (int64_t pos = 0; pos < sequence.length; ++pos) all.Fill(0, pos, sequence.id, pos);
    std::vector<uint16_t> expected_k(all.k.size());
    rope.apply_to(all.K(), rotary::Tensor(expected_k.data(), rotary::Dtype::kF16, 1, sequence.length, kKvHeads, kHeadDim),
                  rotary::Positions(0));
    for (int64_t pos = 0; pos < sequence.length; ++pos) {
      const int64_t slot = sequence.Slot(pos);
      slot_used[slot] = true;
      ++tokens;
      for (int64_t h = 0; h < kKvHeads; ++h) {
        const int64_t first = (pos * kKvHeads + h) * kHeadDim;
        const uint16_t* cached_k = k_cache.At(slot, h);
        const uint16_t* cached_v = v_cache.At(slot, h);
        for (int64_t d = 0; d < kHeadDim; ++d) {
          const bool k_ok = cached_k[d] == expected_k[first + d];
          const bool v_ok = cached_v[d] == FloatToHalf(all.v[first + d]);
          if ((!k_ok || !v_ok) && mismatches++ == 0) {
            std::fprintf(stderr, "FAIL: sequence %lld position %lld (slot %lld) head %lld component %lld: %s\n",
                         static_cast<long long>(sequence.id), static_cast<long long>(pos),
                         static_cast<long long>(slot), static_cast<long long>(h), static_cast<long long>(d),
                         k_ok ? "the cached value is not v in f16" : "the cached key differs from apply_to");
          }
        }
      }
    }
  }
  // Rows that belong to no token (the rest of the last blocks, blocks never handed out) are still unwritten.
  int64_t untouched = 0;
  for (int64_t slot = 0; slot < kNumBlocks * kBlockSize; ++slot) {
    if (slot_used[slot]) continue;
    ++untouched;
    for (int64_t h = 0; h < kKvHeads; ++h) {
      for (int64_t d = 0; d < kHeadDim; ++d) {
        if ((k_cache.At(slot, h)[d] != kUnwritten || v_cache.At(slot, h)[d] != kUnwritten) && mismatches++ == 0) {
          std::fprintf(stderr, "FAIL: slot %lld belongs to no token but was written\n", static_cast<long long>(slot));
        }
      }
    }
  }

  std::printf("%s:\n", LayoutName(layout));
  std::printf("  prefill [%lld, %lld] (%lld padding tokens with slot -1), then %lld decode steps [%lld, 1]\n",
              static_cast<long long>(batch), static_cast<long long>(longest),
              static_cast<long long>(batch * longest - prompt_tokens),
              static_cast<long long>(kDecodeSteps), static_cast<long long>(batch));
  for (const Sequence& sequence : sequences) {
    std::printf("  sequence %lld: %lld tokens in blocks %s\n", static_cast<long long>(sequence.id),
                static_cast<long long>(sequence.length), Blocks(sequence).c_str());
  }
  std::printf("  %lld cached tokens checked against one apply_to per sequence, %lld other slots untouched: %s\n",
              static_cast<long long>(tokens), static_cast<long long>(untouched), mismatches ? "MISMATCH" : "ok");
  return mismatches;
}

}  // namespace

int main() {
  const rotary::Rope rope(rotary::Config().head_dim(kHeadDim).base(500000));
  int64_t mismatches = 0;
  for (Layout layout : {Layout::kBlockRowHead, Layout::kBlockHeadRow}) mismatches += RunAndCheck(rope, layout);
  if (mismatches != 0) {
    std::fprintf(stderr, "FAIL: %lld components differ\n", static_cast<long long>(mismatches));
    return 1;
  }
  std::printf("PASS: paged f16 keys equal a full-sequence apply bit for bit, values equal v in f16 (%s)\n",
              rotary::active_target().c_str());
  return 0;
}
