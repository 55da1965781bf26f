// Every frequency scheme applied end to end (config -> plan -> table -> kernel)
// against the float64 reference rotation with the independently computed plan
// (tests/reference_plans.h), once per target this CPU supports; plus what the
// length-dependent schemes (dynamic NTK, LongRoPE) and the bounded scheme do
// per call.
#include <algorithm>
#include <cmath>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "rotary/rotary.hpp"
#include "tests/error_bounds.h"
#include "tests/every_target.h"
#include "tests/reference.h"
#include "tests/reference_plans.h"
#include "tests/tensor_compare.h"
#include "tests/typed_tensor.h"

namespace {

using rotary_test::MaxAbs;
using rotary_test::MaxDifference;
using rotary_test::MaxErrorVsReference;
using rotary_test::RefPlan;
using rotary_test::RefRope;
using rotary_test::Shape;
using rotary_test::TypedTensor;

class SchemeApplyTest : public rotary_test::EveryTargetTest {};
ROTARY_TEST_EVERY_TARGET(SchemeApplyTest);

// A scheme as the library is given it, and as the reference computes it.
struct SchemeCase {
  const char* name;
  rotary::Config config;  // head_dim 128, rotary_dim 96: partial rotary on every scheme
  RefPlan plan;
};

constexpr int kHeadDim = 128;
constexpr int kRotaryDim = 96;

std::vector<double> Ramp(int count, double first, double step) {
  std::vector<double> v;
  for (int i = 0; i < count; ++i) v.push_back(first + step * i);
  return v;
}

std::vector<SchemeCase> StaticSchemes() {
  const rotary::Config dims = rotary::Config().head_dim(kHeadDim).rotary_dim(kRotaryDim);
  const std::vector<double> short_factor = Ramp(48, 1.0, 0.02), long_factor = Ramp(48, 1.5, 0.5);
  const std::vector<double> divisors = Ramp(48, 0.8, 0.3), mine = Ramp(48, 0.0, 0.01);
  return {
      {"default", rotary::Config(dims), RefPlan{rotary_test::ReferenceInvFreq(kRotaryDim, 10000)}},
      {"linear", rotary::Config(dims).linear(4), rotary_test::RefLinear(kRotaryDim, 10000, 4)},
      {"ntk", rotary::Config(dims).ntk(8),
       RefPlan{rotary_test::RefInvFreqOfBase(kRotaryDim, rotary_test::RefNtkBase(kRotaryDim, 10000, 8))}},
      {"yarn", rotary::Config(dims).yarn(16, 2048), rotary_test::RefYarn({kRotaryDim, 10000, 16, 2048})},
      {"yarn_deepseek", rotary::Config(dims).yarn(40, 4096).mscale(0.707).mscale_all_dim(1),
       rotary_test::RefYarn({kRotaryDim, 10000, 40, 4096, 32, 1, true, 0.707, 1})},
      {"llama3", rotary::Config(dims).base(500000).llama3(), rotary_test::RefLlama3(kRotaryDim, 500000)},
      {"longrope_short", rotary::Config(dims).longrope(short_factor, long_factor, 1 << 20, 32),
       rotary_test::RefLongrope(kRotaryDim, 10000, short_factor, long_factor, 1 << 20, 32, 1)},
      {"freq_factors", rotary::Config(dims).freq_factors(divisors),
       rotary_test::RefFreqFactors(kRotaryDim, 10000, divisors)},
      {"inv_freq", rotary::Config(dims).inv_freq(mine).attention_factor(0.8), RefPlan{mine, 0.8}},
      {"bounded", rotary::Config(dims).bounded(200000), rotary_test::RefBounded(kRotaryDim, 10000, 200000)},
  };
}

RefRope Reference(const RefPlan& plan, bool interleaved) {
  return RefRope{kHeadDim, kRotaryDim, interleaved, 10000.0, plan.inv_freq, plan.attention_factor};
}

// f32 tables and arithmetic against float64 (tests/error_bounds.h).
double Bound(const TypedTensor& before, double attention_factor) {
  return rotary_test::F32Bound(MaxAbs(before), attention_factor);
}

TEST_P(SchemeApplyTest, EverySchemeMatchesTheReferenceForwardAndInverse) {
  const std::vector<int64_t> far = {0, 1, 2047, 4096, 65537, 199999};
  for (const SchemeCase& scheme : StaticSchemes()) {
    for (bool interleaved : {false, true}) {
      SCOPED_TRACE(testing::Message() << scheme.name << (interleaved ? " interleaved" : " neox"));
      rotary::Config config = scheme.config;
      rotary::Rope rope(config.pairing(interleaved ? rotary::Pairing::kInterleaved : rotary::Pairing::kNeox));
      const RefRope ref = Reference(scheme.plan, interleaved);
      TypedTensor x(Shape{2, 3, 5, kHeadDim, 3, 1, 0}, 77);
      TypedTensor before = x;
      std::vector<int64_t> positions(6);
      for (size_t i = 0; i < positions.size(); ++i) positions[i] = far[i];

      rope.apply(x.view(), positions);
      EXPECT_LE(MaxErrorVsReference(x, before, ref, positions), Bound(before, ref.scale));
      EXPECT_TRUE(x.OnlyHeadsChanged(before, kRotaryDim));

      TypedTensor rotated = x;
      rope.apply_inverse(x.view(), positions);
      EXPECT_LE(MaxErrorVsReference(x, rotated, ref, positions, true), Bound(rotated, 1.0 / ref.scale))
          << "inverse differs from the reference inverse";
      EXPECT_LE(MaxDifference(x, before), Bound(before, 1.0) + Bound(rotated, 1.0 / ref.scale))
          << "inverse(apply(x)) != x";
    }
  }
}

// What rotary::plan reports is what apply uses: a rope given the plan's own
// inv_freq vector and attention factor rotates bit for bit the same.
TEST_P(SchemeApplyTest, ThePublicPlanIsExactlyWhatApplyUses) {
  for (const SchemeCase& scheme : StaticSchemes()) {
    SCOPED_TRACE(scheme.name);
    const rotary::Plan plan = rotary::plan(scheme.config);
    rotary::Rope from_scheme(scheme.config);
    rotary::Rope from_plan(rotary::Config()
                               .head_dim(kHeadDim)
                               .rotary_dim(kRotaryDim)
                               .inv_freq(plan.inv_freq)
                               .attention_factor(plan.attention_factor));
    TypedTensor a(Shape{1, 9, 3, kHeadDim}, 5);
    TypedTensor b = a;
    from_scheme.apply(a.view(), rotary::Positions(1000));
    from_plan.apply(b.view(), rotary::Positions(1000));
    EXPECT_EQ(a.bytes(), b.bytes());
  }
}

// Dynamic NTK: each call's length L = max(position) + 1 picks the base, for all
// rows of the call (HF dynamic_rope_update).
TEST_P(SchemeApplyTest, DynamicNtkRotatesEachCallWithTheBaseOfItsLength) {
  constexpr int64_t kOriginal = 256;
  for (bool interleaved : {false, true}) {
    rotary::Rope rope(rotary::Config()
                          .head_dim(kHeadDim)
                          .rotary_dim(kRotaryDim)
                          .pairing(interleaved ? rotary::Pairing::kInterleaved : rotary::Pairing::kNeox)
                          .dynamic_ntk(4, kOriginal));
    for (const std::vector<int64_t>& positions :
         {std::vector<int64_t>{0, 100, 255}, std::vector<int64_t>{3, 256, 7}, std::vector<int64_t>{0, 5000, 1}}) {
      const int64_t length = *std::max_element(positions.begin(), positions.end()) + 1;
      SCOPED_TRACE(testing::Message() << "length " << length);
      const double base = rotary_test::RefDynamicBase(kRotaryDim, 10000, 4, length, kOriginal);
      const RefRope ref = Reference(RefPlan{rotary_test::RefInvFreqOfBase(kRotaryDim, base)}, interleaved);
      TypedTensor x(Shape{1, 3, 4, kHeadDim}, 9);
      TypedTensor before = x;
      rope.apply(x.view(), positions);
      EXPECT_LE(MaxErrorVsReference(x, before, ref, positions), Bound(before, 1.0));
      rope.apply_inverse(x.view(), positions);
      EXPECT_LE(MaxDifference(x, before), rotary_test::RoundTripBound(MaxAbs(before)));
    }
  }
}

// Decoding past L0 makes a new plan per step: the tables of older lengths are
// dropped (a few recent ones kept), so memory stays bounded.
TEST_P(SchemeApplyTest, DynamicNtkTableMemoryStaysBoundedWhileDecoding) {
  rotary::Rope rope(rotary::Config().head_dim(64).max_positions(1).dynamic_ntk(2, 64));
  TypedTensor token(Shape{1, 1, 2, 64}, 4);
  rope.apply(token.view(), rotary::Positions(0));
  const int64_t one_chunk = rope.table_bytes();
  ASSERT_GT(one_chunk, 0);
  for (int64_t p = 64; p < 164; ++p) rope.apply(token.view(), rotary::Positions(p));
  EXPECT_LE(rope.table_bytes(), 5 * one_chunk) << "the permanent table and at most 4 recent ones";

  // And the last step still used the plan of its own length.
  TypedTensor x(Shape{1, 1, 2, 64}, 8);
  TypedTensor before = x;
  rope.apply(x.view(), rotary::Positions(163));
  const RefRope ref{64, 64, false, 10000.0,
                    rotary_test::RefInvFreqOfBase(64, rotary_test::RefDynamicBase(64, 10000, 2, 164, 64))};
  EXPECT_LE(MaxErrorVsReference(x, before, ref, {163}), Bound(before, 1.0));
}

// Threads applying calls of different lengths at once, more lengths than the
// cache keeps: tables evicted while a call still reads them must stay valid.
TEST_P(SchemeApplyTest, DynamicNtkConcurrentCallsOfManyLengths) {
  const rotary::Config config = rotary::Config().head_dim(64).max_positions(1).dynamic_ntk(2, 32);
  rotary::Rope shared(config);
  constexpr int kThreads = 4, kCalls = 24;
  std::vector<std::vector<TypedTensor>> inputs(kThreads), expected(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    for (int call = 0; call < kCalls; ++call) {
      inputs[t].emplace_back(Shape{1, 2, 3, 64}, 1000u + 100 * t + call);
      expected[t].push_back(inputs[t].back());
      rotary::Rope alone(config);
      alone.apply(expected[t].back().view(), rotary::Positions(40 + 7 * call + t));
    }
  }
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int call = 0; call < kCalls; ++call)
        shared.apply(inputs[t][call].view(), rotary::Positions(40 + 7 * call + t));
    });
  }
  for (std::thread& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t) {
    for (int call = 0; call < kCalls; ++call) {
      EXPECT_EQ(inputs[t][call].bytes(), expected[t][call].bytes()) << "thread " << t << " call " << call;
    }
  }
}

// LongRoPE: short_factor while a call's length is <= L0, long_factor past it,
// for every row of the call; attention factor from the derived s = 32.
TEST_P(SchemeApplyTest, LongropeSwitchesListsPerCall) {
  constexpr int64_t kOriginal = 4096;
  const std::vector<double> short_factor = Ramp(48, 1.0, 0.01), long_factor = Ramp(48, 1.0, 0.75);
  for (bool interleaved : {false, true}) {
    rotary::Rope rope(rotary::Config()
                          .head_dim(kHeadDim)
                          .rotary_dim(kRotaryDim)
                          .pairing(interleaved ? rotary::Pairing::kInterleaved : rotary::Pairing::kNeox)
                          .longrope(short_factor, long_factor, kOriginal)
                          .max_position_embeddings(32 * kOriginal));
    for (const std::vector<int64_t>& positions :
         {std::vector<int64_t>{0, 4095, 17}, std::vector<int64_t>{0, 4096, 17}, std::vector<int64_t>{1, 2, 3}}) {
      const int64_t length = *std::max_element(positions.begin(), positions.end()) + 1;
      SCOPED_TRACE(testing::Message() << "length " << length);
      const RefRope ref = Reference(
          rotary_test::RefLongrope(kRotaryDim, 10000, short_factor, long_factor, kOriginal, 32, length), interleaved);
      TypedTensor x(Shape{3, 1, 2, kHeadDim}, 12);
      TypedTensor before = x;
      rope.apply(x.view(), positions);
      EXPECT_LE(MaxErrorVsReference(x, before, ref, positions), Bound(before, ref.scale));
      rope.apply_inverse(x.view(), positions);
      EXPECT_LE(MaxDifference(x, before), rotary_test::RoundTripBound(MaxAbs(before)));
    }
  }
}

// The per-call plan choice and the exact inverse hold on every entry point:
// q and k in one pass equal two calls, out of place equals in place, bit for bit.
TEST_P(SchemeApplyTest, ScaledAndLengthDependentPlansOnEveryEntryPoint) {
  const std::vector<double> short_factor = Ramp(32, 1.0, 0.01), long_factor = Ramp(32, 1.0, 0.75);
  const rotary::Config configs[] = {rotary::Config().head_dim(64).yarn(8, 128),
                                    rotary::Config().head_dim(64).dynamic_ntk(2, 128),
                                    rotary::Config().head_dim(64).longrope(short_factor, long_factor, 128, 16)};
  const std::vector<int64_t> positions = {5, 127, 300, 2};  // length 301 > L0 = 128
  for (const rotary::Config& config : configs) {
    SCOPED_TRACE(config.c.scaling);
    rotary::Rope rope(config);
    TypedTensor q(Shape{2, 2, 8, 64}, 21), k(Shape{2, 2, 2, 64}, 22);
    TypedTensor q_alone = q, k_alone = k;
    rope.apply_qk(q.view(), k.view(), positions);
    rope.apply(q_alone.view(), positions);
    rope.apply(k_alone.view(), positions);
    EXPECT_EQ(q.bytes(), q_alone.bytes());
    EXPECT_EQ(k.bytes(), k_alone.bytes());

    TypedTensor out_of_place(Shape{2, 2, 2, 64}, 99), in_place = k;
    rope.apply_inverse_to(k.view(), out_of_place.view(), positions);
    rope.apply_inverse(in_place.view(), positions);
    EXPECT_EQ(out_of_place.bytes(), in_place.bytes());
    TypedTensor original(Shape{2, 2, 2, 64}, 22);
    EXPECT_LE(MaxDifference(out_of_place, original), rotary_test::RoundTripBound(MaxAbs(original)))
        << "inverse_to(apply(x)) != x";
  }
}

// The bounded scheme's guarantee ends at n_max: positions from there on are errors, and nothing is written.
TEST_P(SchemeApplyTest, BoundedRejectsPositionsFromNmaxOn) {
  rotary::Rope rope(rotary::Config().head_dim(64).bounded(2048));
  TypedTensor x(Shape{1, 4, 2, 64}, 3);
  TypedTensor before = x;
  rope.apply(x.view(), rotary::Positions(2044));  // 2044..2047: the last valid positions
  const RefRope ref{64, 64, false, 10000.0, rotary_test::RefBounded(64, 10000, 2048).inv_freq};
  EXPECT_LE(MaxErrorVsReference(x, before, ref, {2044, 2045, 2046, 2047}), Bound(before, 1.0));

  const TypedTensor rotated = x;
  for (auto call : {+[](rotary::Rope&r, TypedTensor&t) { r.apply(t.view(), rotary::Positions(2045)); },
                    +[](rotary::Rope&r, TypedTensor&t) {
                      r.apply_inverse(t.view(), std::vector<int64_t>{0, 1, 2048, 3});
                    }}) {
    try {
      call(rope, x);
      ADD_FAILURE() << "a position >= n_max was accepted";
    } catch (const rotary::Error& e) {
      EXPECT_EQ(e.status(), rotary::Status::kOutOfRange);
      EXPECT_NE(std::string(e.what()).find("n_max = 2048"), std::string::npos) << e.what();
    }
    EXPECT_EQ(x.bytes(), rotated.bytes());
  }
}

}  // namespace
