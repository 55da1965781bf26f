// End-to-end tests of apply / apply_inverse through the public API (config ->
// plan -> table -> scheduler -> kernel), run once per target this CPU supports.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <functional>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <tbb/global_control.h>
#include <tbb/task_arena.h>

#include "rotary/rotary.hpp"
#include "tests/error_bounds.h"
#include "tests/every_target.h"
#include "tests/reference.h"
#include "tests/tensor_compare.h"
#include "tests/typed_tensor.h"

namespace {

using rotary_test::F32Bound;
using rotary_test::MaxAbs;
using rotary_test::MaxErrorVsReference;
using rotary_test::RefRope;
using rotary_test::Shape;
using rotary_test::TypedTensor;

class ApplyTest : public rotary_test::EveryTargetTest {};
ROTARY_TEST_EVERY_TARGET(ApplyTest);

rotary::Config MakeConfig(int head_dim, int rotary_dim, bool interleaved) {
  return rotary::Config()
      .head_dim(head_dim)
      .rotary_dim(rotary_dim)
      .pairing(interleaved ? rotary::Pairing::kInterleaved : rotary::Pairing::kNeox);
}

// docs/math.md §5: R = D = 8, base 10000, p = 3, x = 1..8.
TEST_P(ApplyTest, MatchesRopeMathTestVectors) {
  const double interleaved[8] = {-1.272232513, -1.838864985, 1.683928641, 4.707906576,
                                 4.817777168,  6.147277704,  6.975968536, 8.020963969};
  const double neox[8] = {-1.695592537, 0.1375517383, 2.788681600, 3.975982036,
                          -4.808842475, 6.323059348,  7.086836737, 8.011963982};
  for (bool is_interleaved : {false, true}) {
    rotary::Rope rope(MakeConfig(8, 8, is_interleaved));
    float x[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    rope.apply(rotary::Tensor(x, 1, 1, 1, 8), rotary::Positions(3));
    const double* expected = is_interleaved ? interleaved : neox;
    // The vectors are given to 10 digits: 1e-9 more than the f32 bound.
    for (int k = 0; k < 8; ++k) EXPECT_NEAR(x[k], expected[k], F32Bound(8) + 1e-9) << "k " << k;
    double norm = 0;
    for (float v : x) norm += double(v) * v;
    EXPECT_NEAR(std::sqrt(norm), 14.28285686, 1e-5);
  }
}

// rotary_shift is rotary_apply_inverse at the old positions then rotary_apply
// at the new ones, bit for bit, with or without an attention factor, ids or
// offset + s, any storage; a shift past either end of the positions writes nothing.
TEST_P(ApplyTest, ShiftIsTheInverseThenTheForwardRotation) {
  for (const rotary::Config& config :
       {rotary::Config().head_dim(64), rotary::Config().head_dim(80).rotary_dim(48).yarn(4.0, 4096),
        rotary::Config().head_dim(64).pairing(rotary::Pairing::kInterleaved).table_mode(rotary::TableMode::kCompact)}) {
    const rotary::Rope rope(config);
    for (rotary_dtype type : {ROTARY_F32, ROTARY_BF16}) {
      for (int64_t delta : {int64_t{-300}, int64_t{0}, int64_t{5000}}) {
        for (bool with_ids : {false, true}) {
          const int64_t head_dim = config.c.head_dim;
          TypedTensor x(type, 2, 4, 3, head_dim);
          x.FillRandom(static_cast<uint32_t>(7 + delta));
          const std::vector<int64_t> ids = {400, 401, 402, 403, 1000, 1001, 7000, 300};
          const int64_t* id_ptr = with_ids ? ids.data() : nullptr;
          TypedTensor want = x;
          rotary_tensor w = want.raw(), t = x.raw();
          ASSERT_EQ(rotary_apply_inverse(rope.handle(), &w, id_ptr, 310), ROTARY_OK);
          ASSERT_EQ(rotary_apply(rope.handle(), &w, id_ptr, 310 + delta), ROTARY_OK);
          ASSERT_EQ(rotary_shift(rope.handle(), &t, id_ptr, 310, delta), ROTARY_OK) << rotary_last_error();
          EXPECT_EQ(x.bytes(), want.bytes()) << "delta " << delta << " ids " << with_ids << " type " << type;
        }
      }
      TypedTensor x(type, 1, 4, 2, config.c.head_dim);
      x.FillRandom(3);
      const TypedTensor before = x;
      rotary_tensor t = x.raw();
      EXPECT_EQ(rotary_shift(rope.handle(), &t, nullptr, 2, -3), ROTARY_OUT_OF_RANGE);  // position 2 - 3 < 0
      EXPECT_EQ(rotary_shift(rope.handle(), &t, nullptr, 2, INT64_MAX), ROTARY_OUT_OF_RANGE);
      EXPECT_EQ(rotary_shift(rope.handle(), &t, nullptr, -1, 5), ROTARY_OUT_OF_RANGE);  // old positions invalid
      EXPECT_EQ(x.bytes(), before.bytes());
    }
  }
}

TEST_P(ApplyTest, PositionZeroIsIdentity) {
  for (bool interleaved : {false, true}) {
    rotary::Rope rope(MakeConfig(64, 64, interleaved));
    TypedTensor x(Shape{1, 1, 4, 64}, 7);
    TypedTensor before = x;
    rope.apply(x.view(), rotary::Positions(0));
    EXPECT_EQ(x.bytes(), before.bytes());
  }
}

// The main accuracy sweep: head dims, partial rotary_dim, both pairings, many
// head counts, odd seq lengths, padded strides, positions near and far.
TEST_P(ApplyTest, MatchesReferenceAcrossShapesAndPositions) {
  const int64_t far_positions[] = {0, 1, 4095, 131071, 999999};
  const int64_t head_counts[] = {1, 3, 8, 32, 40};
  int variant = 0;
  for (int head_dim : {2, 64, 80, 96, 128, 256}) {
    std::vector<int> rotary_dims = {head_dim};
    if (head_dim >= 4) rotary_dims.push_back(head_dim / 2 % 2 == 0 ? head_dim / 2 : head_dim / 2 + 1);
    if (head_dim >= 64) rotary_dims.push_back(head_dim - 6);
    for (int rotary_dim : rotary_dims) {
      for (bool interleaved : {false, true}) {
        ++variant;
        rotary::Rope rope(MakeConfig(head_dim, rotary_dim, interleaved));
        const RefRope ref{head_dim, rotary_dim, interleaved};
        Shape shape{2, 5, head_counts[variant % 5], head_dim, variant % 3, variant % 4, variant % 5};
        TypedTensor x(shape, 1000u + variant);
        TypedTensor before = x;
        std::vector<int64_t> positions(shape.batch * shape.seq);
        for (size_t i = 0; i < positions.size(); ++i) positions[i] = far_positions[(i + variant) % 5];

        rope.apply(x.view(), positions);
        EXPECT_LE(MaxErrorVsReference(x, before, ref, positions), F32Bound(MaxAbs(before)))
            << "head_dim " << head_dim << " rotary_dim " << rotary_dim << " interleaved " << interleaved;
        EXPECT_TRUE(x.OnlyHeadsChanged(before, rotary_dim)) << "wrote outside the rotated components";

        rope.apply_inverse(x.view(), positions);
        EXPECT_LE(MaxErrorVsReference(x, before, ref, std::vector<int64_t>(positions.size(), 0)),
                  rotary_test::RoundTripBound(MaxAbs(before)))
            << "inverse(apply(x)) != x";
        EXPECT_TRUE(x.OnlyHeadsChanged(before, rotary_dim));
      }
    }
  }
}

TEST_P(ApplyTest, InverseMatchesReferenceInverse) {
  for (bool interleaved : {false, true}) {
    rotary::Rope rope(MakeConfig(128, 128, interleaved));
    TypedTensor x(Shape{1, 7, 5, 128, 2, 0, 0}, 5);
    TypedTensor before = x;
    rope.apply_inverse(x.view(), rotary::Positions(131000));
    std::vector<int64_t> positions(7);
    for (int s = 0; s < 7; ++s) positions[s] = 131000 + s;
    EXPECT_LE(MaxErrorVsReference(x, before, RefRope{128, 128, interleaved}, positions, true),
              F32Bound(MaxAbs(before)));
  }
}

TEST_P(ApplyTest, OffsetAndExplicitPositionsAgreeBitForBit) {
  rotary::Rope rope(MakeConfig(96, 96, false));
  TypedTensor a(Shape{3, 9, 4, 96}, 11);
  TypedTensor b = a;
  rope.apply(a.view(), rotary::Positions(5000));
  std::vector<int64_t> ids(3 * 9);
  for (int64_t bi = 0; bi < 3; ++bi)
    for (int64_t s = 0; s < 9; ++s) ids[bi * 9 + s] = s + 4000;
  rope.apply(b.view(), rotary::Positions(ids, 1000));
  EXPECT_EQ(a.bytes(), b.bytes());
}

// q and k in one call are rotated (and normalized) as each alone, over 150
// tokens of 3 sequences, each token with a position of its own.
TEST_P(ApplyTest, QAndKInOneCallAreRotatedAsEachAlone) {
  rotary::Rope rope(MakeConfig(64, 64, false));
  TypedTensor q(Shape{3, 50, 4, 64}, 31), k(Shape{3, 50, 2, 64}, 32);
  std::vector<int64_t> ids(3 * 50);
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int64_t>((i * 7919) % 3000);
  TypedTensor q_alone = q, k_alone = k;
  rope.apply(q_alone.view(), rotary::Positions(ids));
  rope.apply(k_alone.view(), rotary::Positions(ids));
  TypedTensor q_out(Shape{3, 50, 4, 64}, 0), k_out(Shape{3, 50, 2, 64}, 0);
  rope.apply_qk_to(q.view(), q_out.view(), k.view(), k_out.view(), rotary::Positions(ids));
  EXPECT_TRUE(rotary_test::SameBits(q_out, q_alone));
  EXPECT_TRUE(rotary_test::SameBits(k_out, k_alone));
  TypedTensor q_in = q, k_in = k;
  rope.apply_qk(q.view(), k.view(), rotary::Positions(ids));
  EXPECT_TRUE(rotary_test::SameBits(q, q_alone));
  EXPECT_TRUE(rotary_test::SameBits(k, k_alone));

  // With qk-norm, each normalized with its own weights.
  std::vector<float> wq(64), wk(64);
  for (int d = 0; d < 64; ++d) {
    wq[d] = 0.5f + 0.015625f * static_cast<float>(d);
    wk[d] = 1.5f - 0.0078125f * static_cast<float>(d);
  }
  TypedTensor qn_alone = q_in, kn_alone = k_in;
  rope.apply(qn_alone.view(), rotary::QkNorm(wq, {}), rotary::Positions(ids));
  rope.apply(kn_alone.view(), rotary::QkNorm(wk, {}), rotary::Positions(ids));
  rope.apply_qk(q_in.view(), k_in.view(), rotary::QkNorm(wq, wk), rotary::Positions(ids));
  EXPECT_TRUE(rotary_test::SameBits(q_in, qn_alone));
  EXPECT_TRUE(rotary_test::SameBits(k_in, kn_alone));
}

// Every pad is a region no kernel may touch.
TEST_P(ApplyTest, PaddedStridesAreNeverWritten) {
  for (bool interleaved : {false, true}) {
    rotary::Rope rope(MakeConfig(80, 72, interleaved));
    TypedTensor x(Shape{3, 7, 5, 80, 13, 17, 29}, 21);
    TypedTensor before = x;
    rope.apply(x.view(), rotary::Positions(17));
    EXPECT_TRUE(x.OnlyHeadsChanged(before, 72));
    std::vector<int64_t> positions(21);
    for (int i = 0; i < 21; ++i) positions[i] = 17 + i % 7;
    EXPECT_LE(MaxErrorVsReference(x, before, RefRope{80, 72, interleaved}, positions), F32Bound(MaxAbs(before)));
  }
}

// RoPE's reason to exist: norms are kept and q.k depends only on n - m.
TEST_P(ApplyTest, KeepsNormAndOnlyRelativePositionMatters) {
  for (bool interleaved : {false, true}) {
    rotary::Rope rope(MakeConfig(128, 128, interleaved));
    TypedTensor q(Shape{1, 1, 1, 128}, 1), k(Shape{1, 1, 1, 128}, 2);
    auto rotated = [&](const TypedTensor& v, int64_t p) {
      TypedTensor out = v;
      rope.apply(out.view(), rotary::Positions(p));
      return out;
    };
    auto dot = [](const TypedTensor& a, const TypedTensor& b) {
      double s = 0;
      for (int i = 0; i < 128; ++i) s += a.Get(0, 0, 0, i) * b.Get(0, 0, 0, i);
      return s;
    };
    const double q_norm = std::sqrt(dot(q, q));
    for (int64_t m : {0, 17, 4000, 500000}) {
      TypedTensor qm = rotated(q, m);
      EXPECT_NEAR(std::sqrt(dot(qm, qm)), q_norm, 1e-5 * q_norm);
      for (int64_t n : {m, m + 3, m + 1000}) {
        TypedTensor kn = rotated(k, n);
        const double score = dot(qm, kn);
        for (int64_t shift : {1, 250, 300000}) {
          TypedTensor qs = rotated(q, m + shift), ks = rotated(k, n + shift);
          EXPECT_NEAR(dot(qs, ks), score, 2e-5) << "m " << m << " n " << n << " shift " << shift;
        }
        TypedTensor k_rel = rotated(k, n - m);
        EXPECT_NEAR(dot(q, k_rel), score, 2e-5);
      }
    }
  }
}

// Results never depend on how rows are split over threads. The arenas are
// explicit (global_control lets them have more threads than this machine has
// cores), so the parallel path runs even on one core: 2, 3 and 4 threads
// split the rows differently and must all give the one-thread bits.
TEST_P(ApplyTest, MultiThreadedIsBitIdenticalToSingleThreaded) {
  tbb::global_control parallelism(tbb::global_control::max_allowed_parallelism, 4);
  for (bool interleaved : {false, true}) {
    rotary::Rope rope(MakeConfig(128, 128, interleaved));
    TypedTensor serial(Shape{2, 301, 32, 128, 0, 4, 0}, 99);  // far above the inline threshold
    TypedTensor original = serial;
    tbb::task_arena one_thread(1);
    one_thread.execute([&] { rope.apply(serial.view(), rotary::Positions(123)); });
    for (int threads : {2, 3, 4}) {
      TypedTensor parallel = original;
      tbb::task_arena arena(threads);
      arena.execute([&] {
        ASSERT_EQ(tbb::this_task_arena::max_concurrency(), threads);
        rope.apply(parallel.view(), rotary::Positions(123));
      });
      EXPECT_EQ(serial.bytes(), parallel.bytes()) << threads << " threads";
    }
  }
}

TEST_P(ApplyTest, TableGrowsOnlyByWhatLongerPositionsNeed) {
  rotary::Rope rope(MakeConfig(64, 64, false).max_positions(16));
  TypedTensor x(Shape{1, 1, 2, 64}, 3);
  EXPECT_EQ(rope.table_bytes(), 0);  // built on first need
  rope.apply(x.view(), rotary::Positions(1));
  const int64_t first = rope.table_bytes();
  EXPECT_GT(first, 0);
  rope.apply(x.view(), rotary::Positions(10));
  EXPECT_EQ(rope.table_bytes(), first) << "positions already covered must not rebuild";
  rope.apply(x.view(), rotary::Positions(999999));
  EXPECT_EQ(rope.table_bytes(), 2 * first) << "a far position adds one chunk, not a million rows";
}

// Threads growing one table at once. The rope's base is its own (per target
// run too), so its table is new in the process-wide cache and no row exists
// before the threads start. In each round the threads start together: even
// ones need chunks of their own and chunks all threads share, odd ones only
// the shared chunks, so they read rows while another thread may be building
// them. Every result must match the float64 reference, and the table must
// have grown by exactly the chunks the calls needed.
TEST_P(ApplyTest, ConcurrentApplyWithTableGrowth) {
  static std::atomic<int> runs{0};
  const double base = 10000.0 + 0.5 * (1 + runs++);
  rotary::Rope shared(MakeConfig(64, 64, true).base(base).max_positions(1));
  ASSERT_EQ(shared.table_bytes(), 0) << "the table must be new";
  constexpr int kThreads = 4, kSeq = 8, kRounds = 3;
  constexpr int64_t kChunkRows = 1024;  // rows are built in chunks of 1024 positions
  const RefRope ref{64, 64, true, base};
  int64_t chunks = 1;  // chunk 0 (max_positions, covered up front) comes with the first call
  for (int round = 0; round < kRounds; ++round) {
    std::vector<TypedTensor> inputs, before;
    std::vector<std::vector<int64_t>> positions(kThreads);
    for (int t = 0; t < kThreads; ++t) {
      inputs.emplace_back(Shape{1, kSeq, 3, 64}, 500u + 10 * round + t);
      before.push_back(inputs.back());
      for (int s = 0; s < kSeq; ++s) {
        const int64_t own = 1 + (round * kThreads + t) * kSeq + s, common = 1000 + round * kSeq + s / 2;
        const int64_t chunk = t % 2 == 0 && s % 2 == 0 ? own : common;
        positions[t].push_back(chunk * kChunkRows + (t * 37 + s * 101) % kChunkRows);
      }
    }
    chunks += (kThreads / 2) * (kSeq / 2) + kSeq / 2;  // the even threads' own, and the common ones
    std::atomic<int> ready{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        ++ready;
        while (ready.load() < kThreads) std::this_thread::yield();
        shared.apply(inputs[t].view(), positions[t]);
      });
    }
    for (std::thread& th : threads) th.join();
    // Each chunk holds 1024 interleaved rows of 2 * 64 floats.
    EXPECT_EQ(shared.table_bytes(), chunks * kChunkRows * 2 * 64 * int64_t{sizeof(float)})
        << "the threads' calls must have built exactly their chunks";
    for (int t = 0; t < kThreads; ++t) {
      EXPECT_LE(MaxErrorVsReference(inputs[t], before[t], ref, positions[t]), F32Bound(MaxAbs(before[t])))
          << "round " << round << " thread " << t;
      EXPECT_TRUE(inputs[t].OnlyHeadsChanged(before[t], 64));
    }
  }
}

// Positions (ids, per-sequence offsets) stored inside the memory a call writes: rows rotated early overwrite
// them before the later rows are read, so the call must read them as they were checked (a copy), and write
// what it writes with the positions elsewhere: apply in place and out of place, the inverse, shift.
TEST(PositionsInsideTheOutput, AreReadAsTheyWereChecked) {
  const rotary::Rope rope(rotary::Config().head_dim(64).max_positions(64));
  const std::vector<int64_t> ids = {3, 9, 17, 30}, offsets = {5};
  TypedTensor x(ROTARY_F32, 1, 4, 2, 64, 0);
  x.FillRandom(1);
  // Row 0's head 1 (floats 64 to 127) holds the ids, then the offset, 8-byte aligned (the tensor starts
  // after an odd number of guard floats): rotated first, before rows 1-3 read theirs.
  const auto ids_in = [](TypedTensor& t) {
    const uintptr_t head_1 = reinterpret_cast<uintptr_t>(static_cast<float*>(t.raw().data) + 64);
    return reinterpret_cast<int64_t*>((head_1 + 7) & ~uintptr_t{7});
  };
  int64_t* inside = ids_in(x);
  std::copy(ids.begin(), ids.end(), inside);
  inside[4] = offsets[0];
  const TypedTensor before = x;
  const auto expect_as_with = [&](const std::function<void(TypedTensor&, const int64_t*, const int64_t*)>& call,
                                  const char* what) {
    TypedTensor got = before, want = before;
    int64_t* got_ids = ids_in(got);
    call(got, got_ids, got_ids + 4);
    call(want, ids.data(), offsets.data());
    EXPECT_TRUE(rotary_test::SameBits(got, want)) << what;
  };
  expect_as_with([&](TypedTensor& t, const int64_t* p, const int64_t*) { rope.apply(t.view(), rotary::Positions(p, 0)); },
                 "apply, ids");
  expect_as_with(
      [&](TypedTensor& t, const int64_t*, const int64_t* o) {
        rope.apply(t.view(), rotary::Positions().with_sequence_offsets(o));
      },
      "apply, sequence offsets");
  expect_as_with(
      [&](TypedTensor& t, const int64_t* p, const int64_t*) { rope.apply_inverse(t.view(), rotary::Positions(p, 0)); },
      "inverse");
  expect_as_with([&](TypedTensor& t, const int64_t* p, const int64_t*) { rope.shift(t.view(), rotary::Positions(p, 0), 7); },
                 "shift");
  // Out of place, the ids in the destination.
  TypedTensor dst = before, dst_want = before;
  const int64_t* dst_ids = ids_in(dst);
  rope.apply_to(x.view(), dst.view(), rotary::Positions(dst_ids, 0));
  rope.apply_to(x.view(), dst_want.view(), ids);
  EXPECT_TRUE(rotary_test::SameBits(dst, dst_want)) << "apply_to, ids in the destination";
}

}  // namespace
