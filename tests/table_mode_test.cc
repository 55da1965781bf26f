// The three table modes (full, compact, on the fly) against the float64
// reference on every target: both pairings, every storage pair, in place, out
// of place and q + k fused, positions up to 1,000,000 and near 2^31, with an
// attention factor too. Every mode within its bound (tests/error_bounds.h);
// compact within 2x the full table's error.
#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <pthread.h>

#include "rotary/rotary.hpp"
#include "tests/error_bounds.h"
#include "tests/every_target.h"
#include "tests/reference.h"
#include "tests/tensor_compare.h"
#include "tests/typed_tensor.h"

namespace {

using rotary_test::ExpectOneRoundingOf;
using rotary_test::RefRope;
using rotary_test::RoundTo;
using rotary_test::TypedTensor;

constexpr int kHeadDim = 80, kRotaryDim = 68;  // tails on every vector width, and a pass-through part
constexpr int64_t kBatch = 2, kSeq = 7, kHeads = 3, kKHeads = 2;
const rotary_dtype kDtypes[] = {ROTARY_F32, ROTARY_F16, ROTARY_BF16};
const rotary::TableMode kModes[] = {rotary::TableMode::kFull, rotary::TableMode::kCompact,
                                    rotary::TableMode::kOnTheFly};

// Inputs in [-2, 2] (TypedTensor::FillRandom).
constexpr double kMaxAbsInput = 2.0;

// Which bound of tests/error_bounds.h a mode's rows meet.
rotary_test::Rows RowsOf(rotary::TableMode mode) {
  return mode == rotary::TableMode::kFull ? rotary_test::Rows::kFull : rotary_test::Rows::kSynthesized;
}

const char* ModeName(rotary::TableMode mode) {
  return mode == rotary::TableMode::kFull ? "full" : mode == rotary::TableMode::kCompact ? "compact" : "on the fly";
}

// Positions of one call: batch * seq of them, up to 1,000,000, or near 2^31.
std::vector<int64_t> CallPositions(int group) {
  std::vector<int64_t> fixed = {0,      1,      511,    512,    4095,   131071, 131072,
                                524289, 999999, 1000000, 77,    262143, 65536,  999000};
  if (group == 0) return fixed;
  std::mt19937_64 rng(group);
  std::vector<int64_t> out;
  for (int64_t i = 0; i < kBatch * kSeq; ++i) {
    out.push_back(group == 1 ? static_cast<int64_t>(rng() % 1000001)
                             : (int64_t{1} << 31) - 1 - static_cast<int64_t>(rng() % 5000));
  }
  return out;
}

rotary::Rope MakeRope(rotary::TableMode mode, bool interleaved, double attention_factor) {
  rotary::Config config;
  config.head_dim(kHeadDim)
      .rotary_dim(kRotaryDim)
      .pairing(interleaved ? rotary::Pairing::kInterleaved : rotary::Pairing::kNeox)
      .max_positions(131072)
      .position_limit(int64_t{1} << 31)
      .table_mode(mode);
  if (attention_factor != 1.0) config.attention_factor(attention_factor);
  rotary::Rope rope(config);
  EXPECT_EQ(rope.table_mode(), mode);
  return rope;
}

// Checks dst against the reference rotation of src (heads x kHeadDim), each
// component one rounding to dst's type of something within `bound` of exact;
// the pass-through part copied. Returns the largest |dst - exact|.
double Check(const TypedTensor& src, const TypedTensor& dst, int64_t heads, const RefRope& ref,
             const std::vector<int64_t>& positions, double bound, const std::string& what, bool inverse = false) {
  double worst = 0;
  std::vector<double> head(kHeadDim);
  for (int64_t b = 0; b < kBatch; ++b)
    for (int64_t s = 0; s < kSeq; ++s)
      for (int64_t h = 0; h < heads; ++h) {
        for (int k = 0; k < kHeadDim; ++k) head[k] = src.Get(b, s, h, k);
        rotary_test::ReferenceRotateHead(ref, head.data(), head.data(), positions[b * kSeq + s], inverse);
        for (int k = 0; k < kHeadDim; ++k) {
          const double got = dst.Get(b, s, h, k);
          if (k >= kRotaryDim) {
            EXPECT_EQ(got, RoundTo(dst.dtype(), src.Get(b, s, h, k))) << what << ": pass-through " << k;
            continue;
          }
          worst = std::max(worst, rotary_test::AbsError(got, head[k]));
          ExpectOneRoundingOf(dst.dtype(), got, head[k], bound, what.c_str());
        }
      }
  return worst;
}

class TableModeTest : public rotary_test::EveryTargetTest {};
ROTARY_TEST_EVERY_TARGET(TableModeTest);

// Every mode, pairing, storage pair and call kind against the reference; the
// f32 errors of the three modes side by side on the same inputs.
TEST_P(TableModeTest, EveryModeMatchesReferenceInEveryCallKind) {
  for (bool interleaved : {false, true}) {
    for (double m : {1.0, 1.5}) {
      const RefRope ref{kHeadDim, kRotaryDim, interleaved, 10000.0, {}, m};
      double f32_error[3] = {0, 0, 0};
      for (int mode_index = 0; mode_index < 3; ++mode_index) {
        const rotary::TableMode mode = kModes[mode_index];
        const rotary::Rope rope = MakeRope(mode, interleaved, m);
        const double bound = rotary_test::F32Bound(kMaxAbsInput, m, 1.0, RowsOf(mode));
        const double round_trip = rotary_test::RoundTripBound(kMaxAbsInput, RowsOf(mode));
        for (int group = 0; group < 3; ++group) {
          const std::vector<int64_t> positions = CallPositions(group);
          const std::string where = std::string(ModeName(mode)) + (interleaved ? " interleaved" : " neox") +
                                    " m=" + std::to_string(m) + " group " + std::to_string(group);
          for (rotary_dtype src_type : kDtypes) {
            // In place, then back with the inverse.
            {
              TypedTensor x(src_type, kBatch, kSeq, kHeads, kHeadDim);
              x.FillRandom(static_cast<uint32_t>(1000 * group + src_type));
              const TypedTensor before = x;
              rotary_tensor t = x.raw();
              ASSERT_EQ(rotary_apply(rope.handle(), &t, positions.data(), 0), ROTARY_OK) << rotary_last_error();
              EXPECT_TRUE(x.OnlyHeadsChanged(before));
              const double e = Check(before, x, kHeads, ref, positions, bound, where + " in place");
              if (src_type == ROTARY_F32) f32_error[mode_index] = std::max(f32_error[mode_index], e);
              if (src_type == ROTARY_F32) {
                ASSERT_EQ(rotary_apply_inverse(rope.handle(), &t, positions.data(), 0), ROTARY_OK);
                x.ForEach([&](int64_t b, int64_t s, int64_t h, int64_t k) {
                  EXPECT_NEAR(x.Get(b, s, h, k), before.Get(b, s, h, k), round_trip) << where << " inverse";
                });
              }
            }
            for (rotary_dtype dst_type : kDtypes) {
              // Out of place.
              TypedTensor src(src_type, kBatch, kSeq, kHeads, kHeadDim), dst(dst_type, kBatch, kSeq, kHeads, kHeadDim, 1);
              src.FillRandom(static_cast<uint32_t>(100 + 10 * src_type + dst_type + 1000 * group));
              const TypedTensor src_before = src, dst_before = dst;
              rotary_tensor s = src.raw(), d = dst.raw();
              ASSERT_EQ(rotary_apply_to(rope.handle(), &s, &d, positions.data(), 0), ROTARY_OK) << rotary_last_error();
              EXPECT_EQ(src.bytes(), src_before.bytes());
              EXPECT_TRUE(dst.OnlyHeadsChanged(dst_before));
              const double e = Check(src, dst, kHeads, ref, positions, bound, where + " out of place");
              if (dst_type == ROTARY_F32) f32_error[mode_index] = std::max(f32_error[mode_index], e);

              // q and k fused, out of place (GQA head counts).
              TypedTensor q(src_type, kBatch, kSeq, kHeads, kHeadDim), k(src_type, kBatch, kSeq, kKHeads, kHeadDim, 2);
              TypedTensor q_out(dst_type, kBatch, kSeq, kHeads, kHeadDim, 0),
                  k_out(dst_type, kBatch, kSeq, kKHeads, kHeadDim, 5);
              q.FillRandom(static_cast<uint32_t>(7 + group));
              k.FillRandom(static_cast<uint32_t>(8 + group));
              rotary_tensor qt = q.raw(), kt = k.raw(), qo = q_out.raw(), ko = k_out.raw();
              ASSERT_EQ(rotary_apply_qk_to(rope.handle(), &qt, &qo, &kt, &ko, positions.data(), 0, 1.0f), ROTARY_OK)
                  << rotary_last_error();
              const double fused = std::max(Check(q, q_out, kHeads, ref, positions, bound, where + " fused q"),
                                            Check(k, k_out, kKHeads, ref, positions, bound, where + " fused k"));
              if (dst_type == ROTARY_F32) f32_error[mode_index] = std::max(f32_error[mode_index], fused);
            }
          }
        }
      }
      std::printf("[ %s %s m=%.1f ] max f32 error: full %.3g, compact %.3g, on the fly %.3g\n",
                  rotary::active_target().c_str(), interleaved ? "interleaved" : "neox", m, f32_error[0],
                  f32_error[1], f32_error[2]);
      for (int mode_index = 0; mode_index < 3; ++mode_index) {
        EXPECT_LE(f32_error[mode_index], rotary_test::F32Bound(kMaxAbsInput, m, 1.0, RowsOf(kModes[mode_index])))
            << ModeName(kModes[mode_index]);
      }
      EXPECT_LE(f32_error[1], 2 * f32_error[0] + 1e-7) << "compact vs full";
    }
  }
}

// Modes and their memory: full grows with positions, compact with about
// 2 sqrt(positions) rows, on the fly holds nothing.
TEST_P(TableModeTest, CompactAndOnTheFlyHoldLittleMemory) {
  const int64_t n = 131072;
  int64_t bytes[3];
  for (int i = 0; i < 3; ++i) {
    const rotary::Rope rope(rotary::Config().head_dim(128).max_positions(n).table_mode(kModes[i]));
    std::vector<float> x(128, 1.0f);
    rope.apply(rotary::Tensor(x.data(), 1, 1, 1, 128), rotary::Positions(n - 1));
    bytes[i] = rope.table_bytes();
  }
  EXPECT_EQ(bytes[0], n * 128 * 4) << "full: 2 * 64 floats per position";
  EXPECT_EQ(bytes[1], 2 * 512 * 128 * 4) << "compact: K = 512 low rows and 512 high rows";
  EXPECT_EQ(bytes[2], 0) << "on the fly";
}

// A synthesized row is sized for its call: a decode call (one position, inline
// on the caller's thread) runs on a 32 KiB thread stack, for both pairings and
// f32 and bf16 storage. It needed 44 KiB when the row buffer was sized for
// head_dim 4096. Where the system's minimum stack is larger (128 KiB on arm64
// Linux) the test uses that and proves less. Sanitizers and unoptimized
// builds grow every frame, so they skip it.
#if defined(__OPTIMIZE__) && !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
TEST_P(TableModeTest, SynthesizedRowsRunOnASmallThreadStack) {
  for (int mode = 1; mode < 3; ++mode) {
    for (const rotary::Pairing pairing : {rotary::Pairing::kNeox, rotary::Pairing::kInterleaved}) {
      for (const rotary::Dtype dtype : {rotary::Dtype::kF32, rotary::Dtype::kBF16}) {
        const rotary::Rope rope(rotary::Config().head_dim(128).pairing(pairing).table_mode(kModes[mode]));
        std::vector<float> x(32 * 128, 0.5f);  // as bf16: the first half, 0x3f00 bits
        const rotary::Tensor view(x.data(), dtype, 1, 1, 32, 128);
        rope.apply(view, rotary::Positions(1000));  // tables built here, on the main thread
        struct Call {
          const rotary::Rope* rope;
          const rotary::Tensor* view;
        } call{&rope, &view};
        pthread_attr_t attributes;
        ASSERT_EQ(pthread_attr_init(&attributes), 0);
        const size_t stack = std::max(size_t{32} << 10, static_cast<size_t>(PTHREAD_STACK_MIN));
        ASSERT_EQ(pthread_attr_setstacksize(&attributes, stack), 0);
        pthread_t thread;
        ASSERT_EQ(pthread_create(
                      &thread, &attributes,
                      [](void* arg) -> void* {
                        const Call* c = static_cast<const Call*>(arg);
                        c->rope->apply(*c->view, rotary::Positions(1001));  // overflowing the stack would crash
                        return nullptr;
                      },
                      &call),
                  0);
        ASSERT_EQ(pthread_join(thread, nullptr), 0);
        pthread_attr_destroy(&attributes);
      }
    }
  }
}
#endif

// AUTO: full while max_positions rows fit the budget, compact beyond.
TEST(TableModeAuto, FullWhenItFitsTheBudgetElseCompact) {
  const int64_t budget = rotary::cache_budget();
  rotary::set_cache_budget(int64_t{8} << 20);
  const rotary::Rope fits(rotary::Config().head_dim(128).max_positions(16384));      // 8 MiB
  const rotary::Rope too_big(rotary::Config().head_dim(128).max_positions(16385));   // 8 MiB + a chunk
  const rotary::Rope interleaved(rotary::Config().head_dim(128).max_positions(16384).pairing(
      rotary::Pairing::kInterleaved));  // 16 MiB
  EXPECT_EQ(fits.table_mode(), rotary::TableMode::kFull);
  EXPECT_EQ(too_big.table_mode(), rotary::TableMode::kCompact);
  EXPECT_EQ(interleaved.table_mode(), rotary::TableMode::kCompact);
  rotary::set_cache_budget(budget);
}

TEST(TableModeAuto, OutOfRangeModeIsRejected) {
  rotary_config config;
  rotary_config_init(&config);
  EXPECT_EQ(config.table_mode, ROTARY_TABLE_AUTO);
  const int32_t bad_values[] = {-1, 4, 1 << 30};
  for (int32_t bad : bad_values) {
    std::memcpy(&config.table_mode, &bad, sizeof(bad));  // any int a C caller may store
    rotary_rope* rope = nullptr;
    EXPECT_EQ(rotary_create(&config, &rope), ROTARY_INVALID_ARGUMENT);
    EXPECT_EQ(rope, nullptr);
    EXPECT_NE(std::string(rotary_last_error()).find("table_mode"), std::string::npos) << rotary_last_error();
  }
}

}  // namespace
