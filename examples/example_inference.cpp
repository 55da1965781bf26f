// An inference loop with a bf16 KV cache, in C++: the fused QKV projection of
// each step is one packed buffer [seq, (q_heads + 2 kv_heads) * head_dim]. Each
// step rotates its q heads in place and writes its k heads, rotated and rounded
// to bf16 in the same pass, into the cache (apply_to); v is copied as is.
//
// It checks two things a backend relies on:
//   1. the bf16 keys cached by prefill and decode steps equal one fresh
//      full-sequence apply into bf16, bit for bit;
//   2. attention scores depend only on relative positions: moving the whole
//      sequence 100000 positions later leaves every q.k score unchanged.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <vector>

#include "rotary/rotary.hpp"

namespace {

constexpr int64_t kQHeads = 8, kKvHeads = 2, kHeadDim = 128;
constexpr int64_t kRow = (kQHeads + 2 * kKvHeads) * kHeadDim;  // one token of the packed QKV buffer
constexpr int64_t kPrompt = 20, kDecode = 6, kMaxLen = kPrompt + kDecode;

float Bf16ToFloat(uint16_t bits) {
  const uint32_t widened = static_cast<uint32_t>(bits) << 16;
  float f;
  std::memcpy(&f, &widened, sizeof f);
  return f;
}

// Stand-in for the fused projection of tokens [first, first + count): deterministic values in [-1, 1).
std::vector<float> Project(int64_t first, int64_t count) {
  std::vector<float> qkv(count * kRow);
  for (int64_t t = 0; t < count; ++t) {
    for (int64_t i = 0; i < kRow; ++i) qkv[t * kRow + i] = std::sin(0.37f * (first + t) + 1.3f * i);
  }
  return qkv;
}

struct KvCache {
  std::vector<uint16_t> k = std::vector<uint16_t>(kMaxLen * kKvHeads * kHeadDim);  // bf16
  std::vector<float> v = std::vector<float>(kMaxLen * kKvHeads * kHeadDim);

  // Rows [first, first + count) of the cache as a [1, count, kv_heads, head_dim] bf16 view.
  rotary::Tensor KeyRows(int64_t first, int64_t count) {
    return rotary::Tensor(k.data() + first * kKvHeads * kHeadDim, rotary::Dtype::kBF16, 1, count, kKvHeads,
                          kMaxLen * kKvHeads * kHeadDim, kKvHeads * kHeadDim, kHeadDim);
  }
};

// One model step over `count` tokens at positions position.. stored in cache rows row..:
// rotate q in place, k into the cache, copy v.
void Step(const rotary::Rope& rope, std::vector<float>& qkv, int64_t position, int64_t row, int64_t count,
          KvCache& cache) {
  auto views = rotary::PackedQkv::Views(qkv.data(), rotary::Dtype::kF32, 1, count, kQHeads, kKvHeads, kHeadDim);
  rope.apply(views.q, position);
  rope.apply_to(views.k, cache.KeyRows(row, count), position);
  for (int64_t t = 0; t < count; ++t) {
    const float* v = qkv.data() + t * kRow + (kQHeads + kKvHeads) * kHeadDim;
    std::copy(v, v + kKvHeads * kHeadDim, cache.v.begin() + (row + t) * kKvHeads * kHeadDim);
  }
}

// q head 0 of a rotated packed row against cached key j of kv head 0: the score q.k / sqrt(head_dim),
// and sum |q_d k_d| / sqrt(head_dim), which bounds how far bf16 rounding of the key can move the score.
struct Score {
  double value, magnitude;
};
Score ScoreWith(const float* q, const KvCache& cache, int64_t j) {
  Score s{0, 0};
  for (int64_t d = 0; d < kHeadDim; ++d) {
    const double product = q[d] * Bf16ToFloat(cache.k[j * kKvHeads * kHeadDim + d]);
    s.value += product;
    s.magnitude += std::fabs(product);
  }
  const double scale = 1 / std::sqrt(static_cast<double>(kHeadDim));
  return Score{s.value * scale, s.magnitude * scale};
}

}  // namespace

int main() {
  const rotary::Rope rope(rotary::Config().head_dim(kHeadDim).base(500000).llama3(8, 1, 4, 8192));

  // Prefill the prompt, then decode token by token.
  KvCache cache;
  std::vector<float> prompt = Project(0, kPrompt);
  Step(rope, prompt, 0, 0, kPrompt, cache);
  std::vector<float> token;
  for (int64_t pos = kPrompt; pos < kMaxLen; ++pos) {
    token = Project(pos, 1);
    Step(rope, token, pos, pos, 1, cache);
    std::printf("decode: position %lld, score with itself %+.4f, with token 0 %+.4f\n", static_cast<long long>(pos),
                ScoreWith(token.data(), cache, pos).value, ScoreWith(token.data(), cache, 0).value);
  }

  // 1. The cache equals one fresh full-sequence apply into bf16.
  std::vector<float> all = Project(0, kMaxLen);
  auto all_views = rotary::PackedQkv::Views(all.data(), rotary::Dtype::kF32, 1, kMaxLen, kQHeads, kKvHeads, kHeadDim);
  std::vector<uint16_t> fresh(cache.k.size());
  rope.apply_to(all_views.k, rotary::Tensor(fresh.data(), rotary::Dtype::kBF16, 1, kMaxLen, kKvHeads, kHeadDim), 0);
  if (fresh != cache.k) {
    std::fprintf(stderr, "FAIL: cached bf16 keys differ from one full-sequence apply\n");
    return 1;
  }

  // 2. The same tokens at positions 100000.. give the same scores, within the bf16 rounding of the keys
  //    (each key component is off by at most 2^-8 relative, in both caches).
  KvCache shifted;
  std::vector<float> shifted_tokens = Project(0, kMaxLen);
  Step(rope, shifted_tokens, 100000, 0, kMaxLen, shifted);
  const float* last_q = shifted_tokens.data() + (kMaxLen - 1) * kRow;
  double worst = 0;
  for (int64_t j = 0; j < kMaxLen; ++j) {
    const Score near = ScoreWith(token.data(), cache, j), far = ScoreWith(last_q, shifted, j);
    const double error = std::fabs(near.value - far.value) / (near.magnitude + far.magnitude);
    worst = std::max(worst, error);
  }
  std::printf("max |score(p, j) - score(p + 100000, j + 100000)| = %.2e of sum |q_d k_d| (bf16 bound %.2e)\n",
              worst, std::ldexp(1.0, -8));
  if (worst > std::ldexp(1.0, -8)) {
    std::fprintf(stderr, "FAIL: scores depend on absolute position\n");
    return 1;
  }
  std::printf("PASS: cached keys equal a full-sequence apply; scores depend only on relative position (%s)\n",
              rotary::active_target().c_str());
  return 0;
}
