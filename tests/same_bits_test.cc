// The same bits on every CPU (docs/math.md §10): every case below runs on every
// target this CPU supports and at one and three threads, and each run's output
// bytes must equal the first run's. The cases cover every entry point, both
// pairings, the storage types, the table modes, the scaling schemes, the
// multi-axis layouts, the fused norm, the KV-cache formats and borrowed tables.
//
// Across architectures: on every target, the hash of each case's output is
// checked against tests/golden/same_bits.txt, one file for x86 and arm64 (CI
// runs this test natively and under qemu on every arm64 target).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <oneapi/tbb/global_control.h>
#include <oneapi/tbb/task_arena.h>

#include "rotary/rotary.hpp"
#include "tests/every_target.h"
#include "tests/random_values.h"
#include "tests/storage_reference.h"

namespace {

using rotary_test::UniformValue;

// A tensor's bytes, filled from a seed with values in [-2, 2) rounded to its dtype.
struct Buffer {
  rotary_dtype dtype;
  std::vector<uint8_t> bytes;

  Buffer(rotary_dtype d, int64_t elements, uint64_t seed) : dtype(d), bytes(elements * rotary_test::StorageBytes(d)) {
    std::mt19937_64 rng(seed);
    for (int64_t i = 0; i < elements; ++i) {
      rotary_test::StoreRounded(bytes.data() + i * rotary_test::StorageBytes(d), d, UniformValue(rng, -2.0, 2.0));
    }
  }
  rotary::Tensor view(int64_t batch, int64_t seq, int64_t heads, int64_t head_dim) {
    return rotary::Tensor(bytes.data(), static_cast<rotary::Dtype>(dtype), batch, seq, heads, head_dim);
  }
};

// Everything a case wrote, concatenated.
using Output = std::vector<uint8_t>;

void Append(Output& out, const std::vector<uint8_t>& bytes) { out.insert(out.end(), bytes.begin(), bytes.end()); }

struct Case {
  std::string name;
  std::function<Output()> run;
};

constexpr int64_t kBatch = 2, kSeq = 5, kQHeads = 4, kKvHeads = 2;

// Explicit positions: spread over [0, limit), with the first and last.
std::vector<int64_t> Positions(int64_t count, int64_t limit, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<int64_t> ids(count);
  for (int64_t i = 0; i < count; ++i) ids[i] = static_cast<int64_t>(rng() % static_cast<uint64_t>(limit));
  ids[0] = 0;
  ids[count - 1] = limit - 1;
  return ids;
}

// q and k of [kBatch, kSeq, heads, head_dim] rotated out of place by `config` at
// explicit positions below `limit`, forward and inverse (both directions' bytes).
Output RotateQk(const rotary::Config& config, rotary_dtype dtype, int64_t limit, float q_scale = 1.0f) {
  const int64_t d = config.c.head_dim;
  const rotary::Rope rope(config);
  Buffer q(dtype, kBatch * kSeq * kQHeads * d, 1), k(dtype, kBatch * kSeq * kKvHeads * d, 2);
  Buffer q_out = q, k_out = k, q_back = q, k_back = k;
  const std::vector<int64_t> ids = Positions(kBatch * kSeq, limit, 3);
  rope.apply_qk_to(q.view(kBatch, kSeq, kQHeads, d), q_out.view(kBatch, kSeq, kQHeads, d),
                   k.view(kBatch, kSeq, kKvHeads, d), k_out.view(kBatch, kSeq, kKvHeads, d), ids, q_scale);
  rope.apply_inverse_to(q.view(kBatch, kSeq, kQHeads, d), q_back.view(kBatch, kSeq, kQHeads, d), ids);
  rope.apply_inverse_to(k.view(kBatch, kSeq, kKvHeads, d), k_back.view(kBatch, kSeq, kKvHeads, d), ids);
  Output out;
  for (const Buffer* b : {&q_out, &k_out, &q_back, &k_back}) Append(out, b->bytes);
  return out;
}

// 36 of 48 pairs rotated: vector tails on every target, a pass-through part.
rotary::Config Partial(rotary::Pairing pairing) {
  return rotary::Config().head_dim(48).rotary_dim(36).pairing(pairing);
}

const char* Name(rotary_dtype dtype) { return dtype == ROTARY_F32 ? "f32" : dtype == ROTARY_F16 ? "f16" : "bf16"; }

void AddPlainCases(std::vector<Case>& cases) {
  using rotary::Pairing;
  using rotary::TableMode;
  const struct {
    TableMode mode;
    const char* name;
    int64_t limit;  // positions used: a full table holds every row below it
  } modes[] = {{TableMode::kFull, "full", 10000},
               {TableMode::kCompact, "compact", int64_t{1} << 31},
               {TableMode::kOnTheFly, "on_the_fly", int64_t{1} << 31}};
  for (Pairing pairing : {Pairing::kNeox, Pairing::kInterleaved}) {
    for (rotary_dtype dtype : {ROTARY_F32, ROTARY_F16, ROTARY_BF16}) {
      for (const auto& m : modes) {
        const std::string name = std::string(pairing == Pairing::kNeox ? "neox_" : "interleaved_") + Name(dtype) + "_" + m.name;
        cases.push_back({name, [=] {
                           rotary::Config config = Partial(pairing).table_mode(m.mode).position_limit(m.limit);
                           return RotateQk(config, dtype, m.limit, 0.125f);
                         }});
      }
    }
  }
  // Whole heads of 128, large enough to be split over threads.
  for (Pairing pairing : {Pairing::kNeox, Pairing::kInterleaved}) {
    cases.push_back({pairing == Pairing::kNeox ? "neox_f32_prefill" : "interleaved_bf16_prefill", [=] {
                       const rotary::Rope rope(rotary::Config().head_dim(128).pairing(pairing));
                       const rotary_dtype dtype = pairing == Pairing::kNeox ? ROTARY_F32 : ROTARY_BF16;
                       Buffer x(dtype, 300 * 16 * 128, 4);
                       rope.apply(x.view(1, 300, 16, 128), rotary::Positions(17));
                       return x.bytes;
                     }});
  }
}

void AddSchemeCases(std::vector<Case>& cases) {
  const std::vector<double> short_factor(18, 1.0), long_factor = {1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0,
                                                                    12.0, 14.0, 16.0, 18.0, 20.0, 24.0, 28.0, 32.0, 40.0};
  std::vector<double> inv_freq(18);
  for (size_t i = 0; i < inv_freq.size(); ++i) inv_freq[i] = 12.5 / static_cast<double>(1 + i * i);  // up to ~4 pi
  const std::pair<const char*, rotary::Config> schemes[] = {
      {"linear", Partial(rotary::Pairing::kNeox).linear(4.0)},
      {"ntk", Partial(rotary::Pairing::kNeox).ntk(3.0)},
      {"ntk_alpha", Partial(rotary::Pairing::kNeox).ntk_alpha(2.5)},
      {"dynamic_ntk", Partial(rotary::Pairing::kNeox).dynamic_ntk(2.0, 2048)},
      {"yarn", Partial(rotary::Pairing::kNeox).yarn(4.0, 2048)},
      {"yarn_deepseek", Partial(rotary::Pairing::kInterleaved).yarn(40.0, 2048).mscale(1.0).mscale_all_dim(0.707)},
      {"llama3", Partial(rotary::Pairing::kNeox).llama3(8.0, 1.0, 4.0, 8192)},
      {"longrope", Partial(rotary::Pairing::kNeox).longrope(short_factor, long_factor, 2048).factor(16.0)},
      {"freq_factors", Partial(rotary::Pairing::kNeox).freq_factors(long_factor)},
      {"inv_freq", Partial(rotary::Pairing::kNeox).inv_freq(inv_freq)},
      {"bounded", Partial(rotary::Pairing::kNeox).bounded(16384)},
      {"attention_factor", Partial(rotary::Pairing::kInterleaved).base(500000.0).attention_factor(1.2)},
  };
  for (const auto& [name, config] : schemes) {
    cases.push_back({std::string("scheme_") + name, [config = config] {
                       // Positions past original lengths: dynamic NTK and LongRoPE take their long plans.
                       return RotateQk(rotary::Config(config).position_limit(16384), ROTARY_F32, 8192);
                     }});
  }
}

// Multi-axis ids [axes, batch, seq] through apply_qk, and the inverse.
Output RotateAxes(const rotary::Config& config, int32_t axes, rotary_dtype dtype) {
  const int64_t d = config.c.head_dim;
  const rotary::Rope rope(config);
  Buffer q(dtype, kBatch * kSeq * kQHeads * d, 5), k(dtype, kBatch * kSeq * kKvHeads * d, 6);
  const std::vector<int64_t> ids = Positions(axes * kBatch * kSeq, 10000, 7);
  rope.apply_qk(q.view(kBatch, kSeq, kQHeads, d), k.view(kBatch, kSeq, kKvHeads, d), rotary::Positions::Axes(ids, axes));
  Output out = q.bytes;
  Append(out, k.bytes);
  return out;
}

void AddMultiAxisCases(std::vector<Case>& cases) {
  cases.push_back({"mrope_sectioned", [] {
                     return RotateAxes(rotary::Config().head_dim(128).mrope_section({16, 24, 24}), 3, ROTARY_BF16);
                   }});
  cases.push_back({"mrope_interleaved", [] {
                     return RotateAxes(rotary::Config().head_dim(128).mrope_section({24, 20, 20}, true), 3, ROTARY_F32);
                   }});
  cases.push_back({"vision_2d", [] {
                     return RotateAxes(rotary::Config().head_dim(64).vision_2d(), 2, ROTARY_F16);
                   }});
}

void AddNormCases(std::vector<Case>& cases) {
  for (rotary::Pairing pairing : {rotary::Pairing::kNeox, rotary::Pairing::kInterleaved}) {
    for (rotary_dtype dtype : {ROTARY_F32, ROTARY_BF16}) {
      for (bool whole_token : {false, true}) {
        const std::string name = std::string("qk_norm_") + (pairing == rotary::Pairing::kNeox ? "neox_" : "interleaved_") +
                                 Name(dtype) + (whole_token ? "_whole_token" : "");
        cases.push_back({name, [=] {
                           const int64_t d = 128;
                           const rotary::Rope rope(rotary::Config().head_dim(d).rotary_dim(96).pairing(pairing));
                           std::mt19937_64 rng(8);
                           std::vector<float> qw(whole_token ? kQHeads * d : d), kw(whole_token ? kKvHeads * d : d);
                           for (float& w : qw) w = static_cast<float>(UniformValue(rng, -0.5, 1.5));
                           for (float& w : kw) w = static_cast<float>(UniformValue(rng, -0.5, 1.5));
                           Buffer q(dtype, kBatch * kSeq * kQHeads * d, 9), k(dtype, kBatch * kSeq * kKvHeads * d, 10);
                           rope.apply_qk(q.view(kBatch, kSeq, kQHeads, d), k.view(kBatch, kSeq, kKvHeads, d),
                                         rotary::QkNorm(qw, kw, 1e-6, whole_token ? 0.0 : 1.0, whole_token),
                                         rotary::Positions(1000), 0.0883883f);
                           Output out = q.bytes;
                           Append(out, k.bytes);
                           return out;
                         }});
      }
    }
  }
}

void AddKvCacheCases(std::vector<Case>& cases) {
  constexpr int64_t kBlocks = 4, kBlockSize = 4, d = 64;
  const struct {
    const char* name;
    rotary_cache_format format;
    rotary_dtype dtype;  // of a tensor cache
    int64_t head_bytes;
  } formats[] = {{"f32", ROTARY_CACHE_TENSOR, ROTARY_F32, 4 * d},       {"f16", ROTARY_CACHE_TENSOR, ROTARY_F16, 2 * d},
                 {"bf16", ROTARY_CACHE_TENSOR, ROTARY_BF16, 2 * d},     {"fp8_e4m3", ROTARY_CACHE_FP8_E4M3, ROTARY_F32, d},
                 {"fp8_e5m2", ROTARY_CACHE_FP8_E5M2, ROTARY_F32, d}, {"q8_0", ROTARY_CACHE_Q8_0, ROTARY_F32, d / 32 * 34}};
  for (const auto& f : formats) {
    cases.push_back({std::string("kv_cache_") + f.name, [=] {
                       const rotary::Rope rope(rotary::Config().head_dim(d).pairing(rotary::Pairing::kInterleaved));
                       Buffer q(ROTARY_BF16, kBatch * kSeq * kQHeads * d, 11), k(ROTARY_BF16, kBatch * kSeq * kKvHeads * d, 12),
                           v(ROTARY_BF16, kBatch * kSeq * kKvHeads * d, 13);
                       const int64_t cache_bytes = kBlocks * kBlockSize * kKvHeads * f.head_bytes;
                       std::vector<uint8_t> kc(cache_bytes, 0), vc(cache_bytes, 0);
                       const std::vector<int64_t> slots = {3, 0, 15, 7, -1, 9, 12, 1, 2, 14};
                       const bool bytes = f.format != ROTARY_CACHE_TENSOR;
                       const bool fp8 = f.format == ROTARY_CACHE_FP8_E4M3 || f.format == ROTARY_CACHE_FP8_E5M2;
                       const int64_t elem = bytes ? 1 : rotary_test::StorageBytes(f.dtype);
                       const int64_t head = f.head_bytes / elem;
                       auto cache_view = [&](std::vector<uint8_t>& c) {
                         return rotary::Tensor(c.data(), static_cast<rotary::Dtype>(f.dtype), kBlocks, kBlockSize,
                                               kKvHeads, kBlockSize * kKvHeads * head, kKvHeads * head, head);
                       };
                       rope.apply_qk(q.view(kBatch, kSeq, kQHeads, d), k.view(kBatch, kSeq, kKvHeads, d),
                                     rotary::KvCacheWrite(cache_view(kc), v.view(kBatch, kSeq, kKvHeads, d),
                                                          cache_view(vc), slots)
                                         .with_format(f.format, fp8 ? 0.05 : 0.0, fp8 ? 0.02 : 0.0),
                                     rotary::Positions(777));
                       Output out = q.bytes;
                       Append(out, kc);
                       Append(out, vc);
                       return out;
                     }});
  }
}

void AddBorrowedCases(std::vector<Case>& cases) {
  constexpr int64_t kRows = 2048, d = 64;
  for (bool onnx : {false, true}) {
    cases.push_back({onnx ? "borrowed_onnx_bf16_interleaved" : "borrowed_vllm_f32_neox", [=] {
                       std::mt19937_64 rng(14);
                       std::vector<float> values(kRows * d);
                       for (float& c : values) c = static_cast<float>(UniformValue(rng, -1.0, 1.0));
                       std::vector<uint16_t> halves(values.size());
                       for (size_t i = 0; i < values.size(); ++i) halves[i] = rotary_test::FloatToBFloat16(values[i]);
                       const rotary::Config config =
                           rotary::Config().head_dim(d).pairing(onnx ? rotary::Pairing::kInterleaved : rotary::Pairing::kNeox);
                       const rotary::Rope rope =
                           onnx ? rotary::Rope(config, rotary::BorrowedTable::onnx(halves.data(), halves.data() + kRows * d / 2,
                                                                                   kRows, d, rotary::Dtype::kBF16))
                                : rotary::Rope(config, rotary::BorrowedTable::vllm(values.data(), kRows, d));
                       const rotary_dtype dtype = onnx ? ROTARY_BF16 : ROTARY_F32;
                       Buffer q(dtype, kBatch * kSeq * kQHeads * d, 15), q_back = q;
                       const std::vector<int64_t> ids = Positions(kBatch * kSeq, kRows, 16);
                       rope.apply(q.view(kBatch, kSeq, kQHeads, d), ids);
                       rope.apply_inverse(q_back.view(kBatch, kSeq, kQHeads, d), ids);
                       Output out = q.bytes;
                       Append(out, q_back.bytes);
                       return out;
                     }});
  }
}

void AddCallShapeCases(std::vector<Case>& cases) {
  cases.push_back({"sequence_offsets_shift", [] {
                     const int64_t d = 64;
                     const rotary::Rope rope(rotary::Config().head_dim(d));
                     Buffer x(ROTARY_F16, kBatch * kSeq * kQHeads * d, 17);
                     rope.apply(x.view(kBatch, kSeq, kQHeads, d), rotary::Positions::PerSequence({5, 1234}));
                     Output out = x.bytes;
                     rope.shift(x.view(kBatch, kSeq, kQHeads, d), rotary::Positions(100), -37);
                     Append(out, x.bytes);
                     return out;
                   }});
  cases.push_back({"packed_qkv", [] {
                     const int64_t d = 80;
                     const rotary::Rope rope(rotary::Config().head_dim(d).rotary_dim(64).pairing(rotary::Pairing::kInterleaved));
                     Buffer qkv(ROTARY_F32, kBatch * kSeq * (kQHeads + 2 * kKvHeads) * d, 18);
                     rope.apply_packed_qkv(qkv.bytes.data(), rotary::Dtype::kF32, kBatch, kSeq, kQHeads, kKvHeads,
                                           rotary::Positions(4096), 0.5f);
                     return qkv.bytes;
                   }});
}

std::vector<Case> AllCases() {
  std::vector<Case> cases;
  AddPlainCases(cases);
  AddSchemeCases(cases);
  AddMultiAxisCases(cases);
  AddNormCases(cases);
  AddKvCacheCases(cases);
  AddBorrowedCases(cases);
  AddCallShapeCases(cases);
  return cases;
}

// A case run on the current target in an arena of `threads`, with the table
// cache emptied first, so that this target builds the tables it reads.
Output RunOn(const Case& c, int threads) {
  rotary_cache_trim();
  Output out;
  tbb::task_arena arena(threads);
  arena.execute([&] { out = c.run(); });
  return out;
}

// FNV-1a, 64 bits: the same on every platform.
uint64_t Hash(const Output& bytes) {
  uint64_t h = 0xcbf29ce484222325u;
  for (uint8_t b : bytes) h = (h ^ b) * 0x100000001b3u;
  return h;
}

std::string GoldenPath() { return std::string(ROTARY_SOURCE_DIR) + "/tests/golden/same_bits.txt"; }

TEST(SameBits, EveryTargetAndWorkerCountGivesTheSameBits) {
  tbb::global_control parallelism(tbb::global_control::max_allowed_parallelism, 4);
  const std::vector<std::string> targets = rotary::supported_targets();
  ASSERT_FALSE(targets.empty());
  for (const Case& c : AllCases()) {
    SCOPED_TRACE(c.name);
    Output first;
    std::string first_run;
    for (const std::string& target : targets) {
      rotary::set_target(target);
      ASSERT_EQ(rotary::active_target(), target);
      for (int threads : {1, 3}) {
        const std::string run = target + " at " + std::to_string(threads) + " threads";
        Output out;
        ASSERT_NO_THROW(out = RunOn(c, threads)) << run;
        if (first_run.empty()) {
          first = out;
          first_run = run;
          continue;
        }
        ASSERT_EQ(out.size(), first.size());
        size_t differ = 0, first_at = 0;
        for (size_t i = 0; i < out.size(); ++i) {
          if (out[i] != first[i] && differ++ == 0) first_at = i;
        }
        EXPECT_EQ(differ, 0u) << run << " differs from " << first_run << " in " << differ << " of " << out.size()
                              << " bytes, first at byte " << first_at;
      }
    }
  }
  rotary::set_target("auto");
}

std::string HexHash(const Output& bytes) {
  char hex[17];
  std::snprintf(hex, sizeof(hex), "%016llx", static_cast<unsigned long long>(Hash(bytes)));
  return hex;
}

std::map<std::string, std::string> ReadGolden() {
  std::map<std::string, std::string> golden;
  std::ifstream in(GoldenPath());
  std::string name, hex;
  while (in >> name >> hex) golden[name] = hex;
  return golden;
}

// Per target (so that CI's runs of one target family, e.g. SVE under qemu,
// include it): every case at one and three threads hashes as in the golden file.
class SameBitsTest : public rotary_test::EveryTargetTest {};

TEST_P(SameBitsTest, OutputsHashAsOnEveryArchitecture) {
  tbb::global_control parallelism(tbb::global_control::max_allowed_parallelism, 4);
  const std::map<std::string, std::string> golden = ReadGolden();
  ASSERT_FALSE(golden.empty()) << "no golden hashes in " << GoldenPath();
  for (const Case& c : AllCases()) {
    const auto it = golden.find(c.name);
    if (it == golden.end()) {
      ADD_FAILURE() << c.name << ": no golden hash in " << GoldenPath();
      continue;
    }
    for (int threads : {1, 3}) {
      EXPECT_EQ(HexHash(RunOn(c, threads)), it->second)
          << c.name << " at " << threads << " threads hashes differently from " << GoldenPath();
    }
  }
}
ROTARY_TEST_EVERY_TARGET(SameBitsTest);

// ROTARY_WRITE_GOLDEN=1: writes the golden file from this machine's best
// target (after a deliberate change of the arithmetic; check that the other
// architecture then writes the same file).
TEST(SameBits, WriteGoldenHashes) {
  if (std::getenv("ROTARY_WRITE_GOLDEN") == nullptr) GTEST_SKIP() << "ROTARY_WRITE_GOLDEN is not set";
  std::ostringstream lines;
  for (const Case& c : AllCases()) lines << c.name << " " << HexHash(RunOn(c, 1)) << "\n";
  std::ofstream(GoldenPath()) << lines.str();
  std::printf("wrote %s\n", GoldenPath().c_str());
}

}  // namespace
