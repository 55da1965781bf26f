// Frequency plans (rotary_plan / rotary::plan) against the published formulas
// computed independently in float64 (tests/reference_plans.h) and against the
// numeric test vectors of docs/math.md; the properties the schemes exist for;
// and every invalid scheme parameter as a clear error.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <complex>
#include <limits>
#include <random>
#include <ostream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "rotary/rotary.h"
#include "rotary/rotary.hpp"
#include "dispatch/cos_sin_double.h"
#include "lib/config/reproducible_math.h"
#include "tests/random_values.h"
#include "tests/reference.h"
#include "tests/reference_plans.h"

namespace {

using rotary_test::kRefPi;
using rotary_test::RefPlan;

// Each value within `relative` of the expected one (the test vectors have 10 significant digits).
void ExpectNearRelative(const std::vector<double>& got, const std::vector<double>& want, double relative) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_NEAR(got[i], want[i], relative * std::fabs(want[i])) << "pair " << i;
  }
}

void ExpectPlan(const rotary::Config& config, const RefPlan& want, int64_t seq_len = 1) {
  const rotary::Plan got = rotary::plan(config, seq_len);
  ExpectNearRelative(got.inv_freq, want.inv_freq, 1e-14);
  EXPECT_NEAR(got.attention_factor, want.attention_factor, 1e-14);
}

rotary::Config Dims(int rotary_dim, double base) { return rotary::Config().head_dim(rotary_dim).base(base); }

TEST(Plan, ConfigInitSetsTheScalingDefaults) {
  rotary_config c;
  rotary_config_init(&c);
  EXPECT_EQ(c.scaling, ROTARY_SCALING_DEFAULT);
  EXPECT_EQ(c.factor, 0.0);
  EXPECT_EQ(c.original_max_position_embeddings, 0);
  EXPECT_EQ(c.max_position_embeddings, 0);
  EXPECT_EQ(c.attention_factor, 0.0);
  EXPECT_EQ(c.alpha, 0.0);
  EXPECT_EQ(c.beta_fast, 32.0);
  EXPECT_EQ(c.beta_slow, 1.0);
  EXPECT_EQ(c.mscale, 0.0);
  EXPECT_EQ(c.mscale_all_dim, 0.0);
  EXPECT_EQ(c.truncate, 1);
  EXPECT_EQ(c.low_freq_factor, 1.0);
  EXPECT_EQ(c.high_freq_factor, 4.0);
  EXPECT_EQ(c.short_factor.values, nullptr);
  EXPECT_EQ(c.long_factor.count, 0);
  EXPECT_EQ(c.freq_factors.values, nullptr);
  EXPECT_EQ(c.inv_freq.count, 0);
  EXPECT_EQ(c.n_max, 0);
}

// docs/math.md §5: R = 8, b = 10000.
TEST(Plan, DefaultMatchesTestVectors) {
  const rotary::Plan p = rotary::plan(Dims(8, 10000));
  ExpectNearRelative(p.inv_freq, {1.0, 0.1, 0.01, 0.001}, 1e-15);
  EXPECT_EQ(p.attention_factor, 1.0);
  ExpectPlan(Dims(128, 500000), RefPlan{rotary_test::ReferenceInvFreq(128, 500000)});
  // With R < D the exponent divides by R (§1.4).
  ExpectNearRelative(rotary::plan(rotary::Config().head_dim(8).rotary_dim(4)).inv_freq, {1.0, 0.01}, 1e-15);
}

TEST(Plan, Linear) {
  for (double factor : {0.5, 2.0, 4.0, 16.0}) {
    ExpectPlan(Dims(128, 10000).linear(factor), rotary_test::RefLinear(128, 10000, factor));
  }
}

// docs/math.md §2.2: R = 128, b = 1e4, s = 4 gives b' = 40889.94243.
TEST(Plan, NtkMatchesTestVectorAndInterpolatesTheSlowestPairByFactor) {
  const rotary::Plan p = rotary::plan(Dims(128, 10000).ntk(4));
  ExpectNearRelative(p.inv_freq, rotary_test::RefInvFreqOfBase(128, 40889.94243), 1e-9);
  ExpectNearRelative(p.inv_freq, rotary_test::RefInvFreqOfBase(128, rotary_test::RefNtkBase(128, 10000, 4)), 1e-14);
  EXPECT_EQ(p.inv_freq[0], 1.0);
  EXPECT_NEAR(p.inv_freq[63], rotary_test::ReferenceInvFreq(128, 10000)[63] / 4, 1e-14 * p.inv_freq[63]);
}

// NTK-alpha (ExLlama alpha_value, Hunyuan "alpha") is the same base change with alpha in place of factor.
TEST(Plan, NtkAlphaIsTheBaseChangeWithAlpha) {
  const RefPlan want{rotary_test::RefInvFreqOfBase(96, rotary_test::RefNtkBase(96, 10000, 1000))};
  ExpectPlan(Dims(96, 10000).ntk_alpha(1000), want);
  ExpectPlan(Dims(96, 10000).ntk_alpha(1000).factor(1.0), want);  // as Hunyuan configs write it
}

// docs/math.md §2.3: R = 128, b = 1e4, L0 = 4096, s = 2.
TEST(Plan, DynamicNtkMatchesTestVectorsAndFollowsTheCallLength) {
  const rotary::Config config = Dims(128, 10000).dynamic_ntk(2, 4096);
  ExpectNearRelative(rotary::plan(config, 8192).inv_freq, rotary_test::RefInvFreqOfBase(128, 30527.73675), 1e-9);
  ExpectNearRelative(rotary::plan(config, 16384).inv_freq, rotary_test::RefInvFreqOfBase(128, 72195.86009), 1e-9);
  for (int64_t length : {1, 100, 4096}) {  // L <= L0: the bracket is 1, the base unchanged
    ExpectPlan(config, RefPlan{rotary_test::ReferenceInvFreq(128, 10000)}, length);
  }
  for (int64_t length : {4097, 5000, 100000}) {
    const double base = rotary_test::RefDynamicBase(128, 10000, 2, length, 4096);
    ExpectPlan(config, RefPlan{rotary_test::RefInvFreqOfBase(128, base)}, length);
  }
}

// HF reads max_position_embeddings as dynamic NTK's L0; original_max_position_embeddings only stands in for it.
TEST(Plan, DynamicNtkTakesItsLengthFromMaxPositionEmbeddingsFirst) {
  const double base = rotary_test::RefDynamicBase(64, 10000, 3, 9000, 2048);
  ExpectPlan(Dims(64, 10000).dynamic_ntk(3, 2048).original_max_position_embeddings(1000),
             RefPlan{rotary_test::RefInvFreqOfBase(64, base)}, 9000);
  ExpectPlan(Dims(64, 10000).dynamic_ntk(3, 0).original_max_position_embeddings(2048),
             RefPlan{rotary_test::RefInvFreqOfBase(64, base)}, 9000);
}

// docs/math.md §2.4 example: R = 16, b = 1e4, L0 = 64, s = 4.
TEST(Plan, YarnMatchesTestVector) {
  const rotary::Plan p = rotary::plan(Dims(16, 10000).yarn(4, 64));
  ExpectNearRelative(p.inv_freq,
                     {1, 0.2371708245, 0.05, 0.00790569415, 0.0025, 0.000790569415, 0.00025, 7.90569415e-05}, 1e-9);
  EXPECT_NEAR(p.attention_factor, 1.138629436, 1e-9);
}

TEST(Plan, YarnAttentionFactorMatchesTestVectors) {
  const double factors[] = {2, 4, 8, 16, 32, 40};
  const double m[] = {1.069314718, 1.138629436, 1.207944154, 1.277258872, 1.346573590, 1.368887945};
  for (int k = 0; k < 6; ++k) {
    EXPECT_NEAR(rotary::plan(Dims(128, 10000).yarn(factors[k], 4096)).attention_factor, m[k], 1e-9) << factors[k];
  }
  EXPECT_EQ(rotary::plan(Dims(128, 10000).yarn(1, 4096)).attention_factor, 1.0);  // no extension: m = 1
  EXPECT_EQ(rotary::plan(Dims(128, 10000).yarn(4, 4096).attention_factor(0.75)).attention_factor, 0.75);
}

// docs/math.md §2.4: the correction bounds (lo, hi) for common shapes, seen in
// the plan: pairs up to lo keep w_i, pairs from hi on are w_i / s, and the ones
// just inside the ramp are neither.
TEST(Plan, YarnCorrectionRangeMatchesTestVectors) {
  struct Shape {
    int rotary_dim;
    double base;
    int64_t original;
    int lo, hi;
  };
  for (const Shape& s : {Shape{128, 1e4, 4096, 20, 46}, Shape{128, 1e4, 2048, 16, 41}, Shape{64, 1e4, 4096, 10, 23},
                         Shape{128, 1e6, 32768, 23, 40}}) {
    const double factor = 8;
    const std::vector<double> w = rotary_test::ReferenceInvFreq(s.rotary_dim, s.base);
    const std::vector<double> got = rotary::plan(Dims(s.rotary_dim, s.base).yarn(factor, s.original)).inv_freq;
    EXPECT_NEAR(got[s.lo], w[s.lo], 1e-15 * w[s.lo]) << s.rotary_dim << " " << s.original;
    EXPECT_LT(got[s.lo + 1], w[s.lo + 1] * (1 - 1e-3));
    EXPECT_NEAR(got[s.hi], w[s.hi] / factor, 1e-15 * w[s.hi]);
    EXPECT_GT(got[s.hi - 1], w[s.hi - 1] / factor * (1 + 1e-3));
  }
}

TEST(Plan, YarnMatchesHfFormulaAcrossOptions) {
  using Args = rotary_test::RefYarnArgs;
  const Args cases[] = {
      Args{128, 10000, 8, 4096},
      Args{128, 1e6, 4, 32768},                      // Qwen2.5 long context
      Args{64, 10000, 4, 131072},                    // hi = 35 > M - 1: HF's clamp is R - 1, not M - 1
      Args{64, 10000, 16, 2048, 64, 2},              // other betas
      Args{128, 10000, 8, 4096, 32, 1, false},       // truncate = false (newer HF)
      Args{64, 10000, 40, 4096, 32, 1, true, 1, 1},  // DeepSeek-V3 (qk_rope_head_dim 64)
      Args{64, 10000, 40, 4096, 32, 1, true, 0.707, 1},
      Args{16, 10000, 2, 64, 32, 16},  // both bounds round to 0: the ramp's 0.001 guard
  };
  for (const Args& a : cases) {
    SCOPED_TRACE(testing::Message() << "R " << a.dim << " s " << a.factor << " L0 "
                                    << a.original_max_position_embeddings);
    ExpectPlan(Dims(a.dim, a.base)
                   .yarn(a.factor, a.original_max_position_embeddings)
                   .beta_fast(a.beta_fast)
                   .beta_slow(a.beta_slow)
                   .truncate(a.truncate)
                   .mscale(a.mscale)
                   .mscale_all_dim(a.mscale_all_dim),
               rotary_test::RefYarn(a));
  }
}

// docs/math.md §2.4.4: DeepSeek-V3 puts m = 1 in the tables and x 1.873854207 on the softmax scale.
TEST(Plan, YarnDeepSeekExposesTheSoftmaxScaleFactorSeparately) {
  const rotary::Config deepseek = Dims(64, 10000).yarn(40, 4096).mscale(1).mscale_all_dim(1);
  EXPECT_NEAR(rotary::plan(deepseek).attention_factor, 1.0, 1e-15);
  EXPECT_NEAR(rotary::softmax_scale_factor(deepseek), 1.873854207, 1e-9);
  EXPECT_EQ(rotary::softmax_scale_factor(Dims(64, 10000).yarn(40, 4096)), 1.0);  // no mscale_all_dim
  EXPECT_EQ(rotary::softmax_scale_factor(Dims(64, 10000).linear(4)), 1.0);
}

// Newer HF rule (docs/math.md §2.4.6): factor as given; derived from the two lengths only when missing.
TEST(Plan, YarnFactorIsDerivedOnlyWhenNotGiven) {
  const RefPlan derived = rotary_test::RefYarn({128, 10000, 40, 4096});
  ExpectPlan(Dims(128, 10000).yarn(0, 4096).max_position_embeddings(163840), derived);
  ExpectPlan(Dims(128, 10000).yarn(4, 4096).max_position_embeddings(163840),
             rotary_test::RefYarn({128, 10000, 4, 4096}));
  // L0 falls back to max_position_embeddings.
  ExpectPlan(Dims(128, 10000).yarn(4, 0).max_position_embeddings(2048), rotary_test::RefYarn({128, 10000, 4, 2048}));
}

// docs/math.md §2.5: R = 128, b = 5e5 with Llama 3.1's values.
TEST(Plan, Llama3MatchesTestVectors) {
  const std::vector<double> w = rotary_test::ReferenceInvFreq(128, 500000);
  const std::vector<double> got = rotary::plan(Dims(128, 500000).llama3()).inv_freq;
  EXPECT_NEAR(w[30], 0.002131119537, 1e-9 * w[30]);
  EXPECT_NEAR(got[30], 0.001371893568, 1e-9 * got[30]);
  EXPECT_NEAR(w[31], 0.001736046702, 1e-9 * w[31]);
  EXPECT_NEAR(got[31], 0.0008567514129, 1e-9 * got[31]);
  EXPECT_NEAR(w[40], 0.0002742481757, 1e-9 * w[40]);
  EXPECT_NEAR(got[40], 3.428102196e-05, 1e-9 * got[40]);
  EXPECT_NEAR(w[63], 2.455140791e-06, 1e-9 * w[63]);
  EXPECT_NEAR(got[63], 3.068925989e-07, 1e-9 * got[63]);
  for (int i = 0; i <= 28; ++i) EXPECT_DOUBLE_EQ(got[i], w[i]) << "pair " << i << " is high frequency: untouched";
  for (int i = 29; i <= 34; ++i) {
    EXPECT_LT(got[i], w[i]) << i;
    EXPECT_GT(got[i], w[i] / 8) << i;
  }
  for (int i = 35; i <= 63; ++i) EXPECT_NEAR(got[i], w[i] / 8, 1e-15 * w[i]) << "pair " << i << " is low frequency";
}

TEST(Plan, Llama3MatchesMetaFormula) {
  ExpectPlan(Dims(128, 500000).llama3(), rotary_test::RefLlama3(128, 500000));
  ExpectPlan(Dims(64, 500000).llama3(32), rotary_test::RefLlama3(64, 500000, 32));  // Llama 3.2 1B/3B
  ExpectPlan(Dims(128, 10000).llama3(4, 2, 8, 4096), rotary_test::RefLlama3(128, 10000, 4, 2, 8, 4096));
  // Fields left at 0 ("not given") take Llama 3.1's values.
  rotary::Config unset = Dims(128, 500000).llama3();
  unset.c.factor = 0;
  unset.c.original_max_position_embeddings = 0;
  ExpectPlan(unset, rotary_test::RefLlama3(128, 500000));
}

std::vector<double> Ramp(int count, double first, double step) {
  std::vector<double> v;
  for (int i = 0; i < count; ++i) v.push_back(first + step * i);
  return v;
}

// docs/math.md §2.6 with Phi-3-mini-128k's shape: R = 96, L0 = 4096, no factor
// given, s = 131072 / 4096 = 32, m = 1.190238071; the list switches past L0.
TEST(Plan, LongropeSwitchesListsPastTheOriginalLength) {
  const std::vector<double> short_factor = Ramp(48, 1.0, 0.01), long_factor = Ramp(48, 1.0, 0.75);
  const rotary::Config phi3 = Dims(96, 10000).longrope(short_factor, long_factor, 4096).max_position_embeddings(131072);
  EXPECT_NEAR(rotary::plan(phi3).attention_factor, 1.190238071, 1e-9);
  for (int64_t length : {1, 4096, 4097, 131072}) {
    ExpectPlan(phi3, rotary_test::RefLongrope(96, 10000, short_factor, long_factor, 4096, 32, length), length);
  }
  ExpectPlan(Dims(96, 10000).longrope(short_factor, long_factor, 4096, 8),
             rotary_test::RefLongrope(96, 10000, short_factor, long_factor, 4096, 8, 5000), 5000);
  EXPECT_EQ(
      rotary::plan(Dims(96, 10000).longrope(short_factor, long_factor, 4096).attention_factor(1.5)).attention_factor,
      1.5);
}

TEST(Plan, FreqFactorsDivideTheBaseFrequencies) {
  const std::vector<double> divisors = Ramp(40, 0.5, 0.25);
  ExpectPlan(Dims(80, 10000).freq_factors(divisors), rotary_test::RefFreqFactors(80, 10000, divisors));
}

// docs/math.md §2.7: llama.cpp loads Llama 3 as per-pair divisors ff_i = w_i / w'_i.
TEST(Plan, Llama3AsGgmlFreqFactorsGivesTheLlama3Plan) {
  const std::vector<double> w = rotary_test::ReferenceInvFreq(128, 500000);
  const RefPlan llama3 = rotary_test::RefLlama3(128, 500000);
  std::vector<double> rope_freqs;
  for (size_t i = 0; i < w.size(); ++i) rope_freqs.push_back(w[i] / llama3.inv_freq[i]);
  ExpectPlan(Dims(128, 500000).freq_factors(rope_freqs), llama3);
}

TEST(Plan, InvFreqIsUsedExactlyAsGiven) {
  std::vector<double> mine = Ramp(32, 0.0, 1.0 / 3.0);  // pair 0 with frequency 0: not rotated
  const rotary::Plan p = rotary::plan(Dims(64, 10000).inv_freq(mine).attention_factor(0.5));
  EXPECT_EQ(p.inv_freq, mine);
  EXPECT_EQ(p.attention_factor, 0.5);
}

// docs/math.md §3: R = 8, b = 1e4, n_max = 2048.
TEST(Plan, BoundedMatchesTestVectors) {
  const rotary::Plan p = rotary::plan(Dims(8, 10000).bounded(2048));
  ExpectNearRelative(p.inv_freq, {7.669903939e-4, 7.669903939e-5, 7.669903939e-6, 7.669903939e-7}, 1e-9);
  EXPECT_NEAR(2047 * p.inv_freq[0], 1.570029336, 1e-9);
  EXPECT_LT(2047 * p.inv_freq[0], kRefPi / 2);
  ExpectPlan(Dims(128, 10000).bounded(2048), rotary_test::RefBounded(128, 10000, 2048));
}

// The relative angle of pair i at distance |m - n| = delta, as a point on the
// circle: delta * w_i reduced to [0, 2 pi).
double RelativeAngle(double inv_freq, int64_t delta) {
  return std::fmod(static_cast<double>(delta) * inv_freq, 2 * kRefPi);
}

// docs/math.md §3, the property the bounded scheme exists for: for n_max = 2048,
// d = 128, every pair's relative angle grows monotonically with |m - n| over
// [0, n_max] and stays below pi / 2 before n_max (so cos, the pair's score
// factor, falls monotonically). The default scheme wraps instead: at the first
// pair, distance 7 is at 7 - 2 pi = 0.7168 rad, "closer" than distance 6 at 6 rad.
TEST(Plan, BoundedAngleDifferencesAreMonotoneWithinNmaxUnlikeDefault) {
  constexpr int64_t kNmax = 2048;
  const std::vector<double> bounded = rotary::plan(rotary::Config().head_dim(128).bounded(kNmax)).inv_freq;
  for (size_t i = 0; i < bounded.size(); ++i) {
    for (int64_t delta = 1; delta <= kNmax; ++delta) {
      ASSERT_GT(RelativeAngle(bounded[i], delta), RelativeAngle(bounded[i], delta - 1))
          << "pair " << i << " delta " << delta;
      if (delta < kNmax) {
        ASSERT_LT(RelativeAngle(bounded[i], delta), kRefPi / 2);
        ASSERT_LT(std::cos(delta * bounded[i]), std::cos((delta - 1) * bounded[i]))
            << "pair " << i << " delta " << delta;
      }
    }
  }

  const std::vector<double> unbounded = rotary::plan(rotary::Config().head_dim(128)).inv_freq;
  EXPECT_NEAR(RelativeAngle(unbounded[0], 6), 6.0, 1e-12);
  EXPECT_NEAR(RelativeAngle(unbounded[0], 7), 0.7168146928, 1e-9);
  EXPECT_LT(RelativeAngle(unbounded[0], 7), RelativeAngle(unbounded[0], 6)) << "the default scheme wraps";
}

// The seed property of RoPE (RoFormer §3.4.3), on the library's plan for d = 128:
// mean over j of |sum_{i<j} e^{i m theta_i}| decays as the relative distance m grows.
TEST(Plan, LongRangeDecayOfTheDefaultPlan) {
  const std::vector<double> theta = rotary::plan(rotary::Config().head_dim(128)).inv_freq;
  auto mean_partial_sum = [&](int64_t m) {
    std::complex<double> sum = 0;
    double total = 0;
    for (double t : theta) {
      sum += std::polar(1.0, static_cast<double>(m) * t);
      total += std::abs(sum);
    }
    return total / static_cast<double>(theta.size());
  };
  auto window_mean = [&](int64_t first) {
    double total = 0;
    for (int64_t m = first; m < first + 64; ++m) total += mean_partial_sum(m);
    return total / 64;
  };
  EXPECT_DOUBLE_EQ(mean_partial_sum(0), 32.5);  // (1 + ... + 64) / 64
  EXPECT_GT(mean_partial_sum(0), mean_partial_sum(256));
  EXPECT_GT(window_mean(0), window_mean(256));
  EXPECT_GT(window_mean(256), window_mean(1024));
}

// ---- Invalid parameters: clear errors from rotary_create and rotary_plan ----

const std::vector<double> kOnes64(64, 1.0);  // rotary_dim / 2 values for the default rotary_dim 128
const double kNaN = std::numeric_limits<double>::quiet_NaN();

std::vector<double> With(std::vector<double> values, size_t index, double value) {
  values[index] = value;
  return values;
}

// A config changed through its C fields, for what the C++ setters cannot express.
rotary::Config Edited(rotary::Config config, void (*edit)(rotary_config&)) {
  edit(config.c);
  return config;
}

rotary::Config Yarn() { return rotary::Config().yarn(4, 4096); }

struct BadScheme {
  const char* name;
  rotary::Config config;
  const char* message_mentions;
};

void PrintTo(const BadScheme& c, std::ostream* os) { *os << c.name; }

class BadSchemeConfig : public ::testing::TestWithParam<BadScheme> {};

TEST_P(BadSchemeConfig, IsAnInvalidArgumentNamingTheField) {
  const rotary_config config = GetParam().config.c;

  rotary_rope* rope = reinterpret_cast<rotary_rope*>(0x1);
  EXPECT_EQ(rotary_create(&config, &rope), ROTARY_INVALID_ARGUMENT);
  EXPECT_EQ(rope, nullptr);
  EXPECT_NE(std::string(rotary_last_error()).find(GetParam().message_mentions), std::string::npos)
      << rotary_last_error();

  std::vector<double> inv_freq(64, -1.0);
  EXPECT_EQ(rotary_plan(&config, 1, inv_freq.data(), 64, nullptr), ROTARY_INVALID_ARGUMENT);
  EXPECT_NE(std::string(rotary_last_error()).find(GetParam().message_mentions), std::string::npos)
      << rotary_last_error();
  EXPECT_EQ(inv_freq, std::vector<double>(64, -1.0)) << "a failed rotary_plan wrote its output";
}

INSTANTIATE_TEST_SUITE_P(
    CApi, BadSchemeConfig,
    ::testing::Values(
        BadScheme{"UnknownScaling",
                  Edited(rotary::Config(), [](rotary_config& c) { c.scaling = static_cast<rotary_scaling>(42); }),
                  "scaling"},
        BadScheme{"NegativeFactor", rotary::Config().linear(-2), "config.factor"},
        BadScheme{"NaNFactor", rotary::Config().yarn(kNaN, 4096), "config.factor"},
        BadScheme{"LinearWithoutFactor", rotary::Config().linear(0), "config.factor"},
        BadScheme{"NegativeFactorEvenUnused", rotary::Config().factor(-1), "config.factor"},
        BadScheme{"NegativeAttentionFactor", rotary::Config().attention_factor(-0.5), "attention_factor"},
        BadScheme{"NtkWithRotaryDim2", rotary::Config().head_dim(2).ntk(2), "rotary_dim"},
        BadScheme{"NtkAlphaAndFactor", rotary::Config().ntk_alpha(1000).factor(2), "alpha"},
        BadScheme{"NegativeAlpha", rotary::Config().ntk_alpha(-3), "alpha"},
        BadScheme{"DynamicNtkWithoutLength", rotary::Config().dynamic_ntk(2, 0), "max_position_embeddings"},
        BadScheme{"YarnWithoutLength", rotary::Config().yarn(4, 0), "original_max_position_embeddings"},
        BadScheme{"YarnBetaFastBelowBetaSlow", Yarn().beta_fast(1).beta_slow(32), "beta_fast"},
        BadScheme{"YarnNegativeBetaSlow", Yarn().beta_slow(-1), "beta_slow"},
        BadScheme{"YarnNegativeMscale", Yarn().mscale(-1), "mscale"},
        BadScheme{"YarnTruncateNotABool", Edited(Yarn(), [](rotary_config& c) { c.truncate = 2; }), "truncate"},
        BadScheme{"OriginalLengthOne", rotary::Config().original_max_position_embeddings(1),
                  "original_max_position_embeddings"},
        BadScheme{"NegativeMaxPositionEmbeddings", rotary::Config().max_position_embeddings(-4096),
                  "max_position_embeddings"},
        BadScheme{"Llama3HighBelowLow", rotary::Config().llama3(8, 4, 1), "high_freq_factor"},
        BadScheme{"Llama3NegativeLowFreqFactor", rotary::Config().llama3(8, -1), "low_freq_factor"},
        BadScheme{"LongropeWithoutShortFactor", rotary::Config().longrope({}, kOnes64, 4096, 4), "short_factor.count"},
        BadScheme{"LongropeListTooLong", rotary::Config().longrope(kOnes64, std::vector<double>(65, 1.0), 4096, 4),
                  "long_factor.count"},
        BadScheme{"LongropeNullValues",
                  Edited(rotary::Config().longrope(kOnes64, kOnes64, 4096, 4),
                         [](rotary_config& c) { c.long_factor.values = nullptr; }),
                  "long_factor.values is NULL"},
        BadScheme{"LongropeZeroDivisor", rotary::Config().longrope(With(kOnes64, 3, 0.0), kOnes64, 4096, 4),
                  "short_factor.values[3]"},
        BadScheme{"LongropeWithoutFactorOrLengths", rotary::Config().longrope(kOnes64, kOnes64, 4096), "config.factor"},
        BadScheme{"FreqFactorsWrongLength", rotary::Config().freq_factors(std::vector<double>(32, 1.0)),
                  "freq_factors.count"},
        BadScheme{"FreqFactorsNegative", rotary::Config().freq_factors(std::vector<double>(64, -1.0)),
                  "freq_factors.values[0]"},
        BadScheme{"InvFreqNaN", rotary::Config().inv_freq(With(kOnes64, 5, kNaN)), "inv_freq.values[5]"},
        BadScheme{"InvFreqMissing",
                  Edited(rotary::Config(), [](rotary_config& c) { c.scaling = ROTARY_SCALING_INV_FREQ; }),
                  "inv_freq.count"},
        BadScheme{"InvFreqOf4Pi", rotary::Config().inv_freq(With(kOnes64, 7, 4 * kRefPi)), "below 4 pi"},
        BadScheme{"LongropeLongFactorsAbove4Pi",
                  rotary::Config().longrope(kOnes64, With(kOnes64, 0, 0.05), 4096, 4).position_limit(8192), "below 4 pi"},
        BadScheme{"BoundedWithoutNmax", rotary::Config().bounded(0), "n_max"},
        BadScheme{"BoundedNegativeNmax", rotary::Config().bounded(-5), "n_max"}),
    [](const ::testing::TestParamInfo<BadScheme>& info) { return info.param.name; });

TEST(PlanCApi, RejectsBadArguments) {
  rotary_config config;
  rotary_config_init(&config);
  std::vector<double> out(64);
  double m = 0;
  EXPECT_EQ(rotary_plan(nullptr, 1, out.data(), 64, &m), ROTARY_INVALID_ARGUMENT);
  EXPECT_NE(std::string(rotary_last_error()).find("config"), std::string::npos);
  EXPECT_EQ(rotary_plan(&config, 0, out.data(), 64, &m), ROTARY_INVALID_ARGUMENT);
  EXPECT_NE(std::string(rotary_last_error()).find("seq_len"), std::string::npos);
  EXPECT_EQ(rotary_plan(&config, config.position_limit + 1, out.data(), 64, &m), ROTARY_INVALID_ARGUMENT);
  EXPECT_NE(std::string(rotary_last_error()).find("position_limit"), std::string::npos);
  EXPECT_EQ(rotary_plan(&config, 1, out.data(), 63, &m), ROTARY_INVALID_ARGUMENT);
  EXPECT_NE(std::string(rotary_last_error()).find("capacity"), std::string::npos);
  EXPECT_EQ(rotary_softmax_scale_factor(&config, nullptr), ROTARY_INVALID_ARGUMENT);
  EXPECT_NE(std::string(rotary_last_error()).find("factor_out"), std::string::npos);

  config.scaling = ROTARY_SCALING_BOUNDED;
  config.n_max = 100;
  EXPECT_EQ(rotary_plan(&config, 101, out.data(), 64, &m), ROTARY_INVALID_ARGUMENT);
  EXPECT_NE(std::string(rotary_last_error()).find("n_max = 100"), std::string::npos) << rotary_last_error();
  EXPECT_EQ(rotary_plan(&config, 100, out.data(), 64, &m), ROTARY_OK);
}

TEST(PlanCApi, EitherOutputMayBeNull) {
  rotary_config config;
  rotary_config_init(&config);
  config.scaling = ROTARY_SCALING_YARN;
  config.factor = 4;
  config.original_max_position_embeddings = 4096;
  double m = 0;
  EXPECT_EQ(rotary_plan(&config, 1, nullptr, 0, &m), ROTARY_OK);
  EXPECT_NEAR(m, 1.138629436, 1e-9);
  std::vector<double> out(70, -1.0);  // a larger buffer: only rotary_dim / 2 values are written
  EXPECT_EQ(rotary_plan(&config, 1, out.data(), 70, nullptr), ROTARY_OK);
  EXPECT_EQ(out[0], 1.0);
  EXPECT_EQ(out[64], -1.0);
}

}  // namespace

// ---- The same operations on every CPU: rotary's own log, pow, cos and sin ----
// Against long double libm (x87's 64-bit significand on x86-64, quad on arm64),
// in units of 2^-53 relative (log, pow) or absolute (cos, sin, |value| <= 1).
// The bounds follow the error analysis of reproducible_math.cc and
// cos_sin_double.h; the measured values are printed.

TEST(ReproducibleMath, LogAndPowAreWithinTwoUlps) {
  std::mt19937_64 rng(5);
  double worst_log = 0, worst_pow = 0;
  for (int i = 0; i < 20000; ++i) {
    const double x = std::exp2(rotary_test::UniformValue(rng, -30.0, 30.0));
    const long double want_log = std::log(static_cast<long double>(x));
    worst_log = std::max(worst_log, static_cast<double>(std::fabs((rotary::ReproducibleLog(x) - want_log) / want_log)));
    // Frequencies: base^(-2i / R) for bases up to 1e8, and stretches^(R / (R - 2)).
    const double base = rotary_test::UniformValue(rng, 1.0, 1e8), y = rotary_test::UniformValue(rng, -1.0, 1.1);
    const long double want_pow = std::pow(static_cast<long double>(base), static_cast<long double>(y));
    worst_pow =
        std::max(worst_pow, static_cast<double>(std::fabs((rotary::ReproduciblePow(base, y) - want_pow) / want_pow)));
  }
  const double ulp = std::ldexp(1.0, -53);
  std::printf("log within %.2f, pow within %.2f units of 2^-53\n", worst_log / ulp, worst_pow / ulp);
  EXPECT_LE(worst_log, 2 * ulp);
  EXPECT_LE(worst_pow, 3 * ulp);
  EXPECT_EQ(rotary::ReproduciblePow(10000.0, 0.0), 1.0);
  EXPECT_EQ(rotary::ReproducibleLog(1.0), 0.0);
}

TEST(ReproducibleMath, CosSinOfExactAnglesAreWithinThreeUnitsOf2ToTheMinus53) {
  std::mt19937_64 rng(6);
  double worst = 0;
  for (int i = 0; i < 20000; ++i) {
    // Positions below 2^31, frequencies up to 4 pi: up to 2^32 turns.
    const double p = static_cast<double>(rng() % (uint64_t{1} << 31));
    const double w = i % 3 == 0 ? rotary_test::UniformValue(rng, 0.0, rotary::kMaxInvFreq)
                                : std::exp2(rotary_test::UniformValue(rng, -40.0, 0.0));
    const rotary::CosSin got = rotary::CosSinOfAngle(p, w);
    // The exact angle hi + lo reduced in long double with 2 pi in parts of 32,
    // 32 and 64 bits (k * part exact in a 64-bit significand for k < 2^32):
    // x87's cos and sin reduce by a 66-bit pi, too coarse for 2^32 turns.
    const double hi = p * w, lo = std::fma(p, w, -hi);
    const long double two_pi_a = 0xc90fdaa2p-29L, two_pi_b = 0x2168c234p-61L, two_pi_c = 0xc4c6628b80dc1cd1p-125L;
    const long double k = std::nearbyint(static_cast<long double>(hi) / (two_pi_a + two_pi_b));
    const long double r = (((hi - k * two_pi_a) - k * two_pi_b) - k * two_pi_c) + lo;
    const long double want_cos = std::cos(r), want_sin = std::sin(r);
    worst = std::max({worst, static_cast<double>(std::fabs(got.cos - want_cos)),
                      static_cast<double>(std::fabs(got.sin - want_sin))});
  }
  const double ulp = std::ldexp(1.0, -53);
  std::printf("cos and sin within %.2f units of 2^-53\n", worst / ulp);
  // Two roundings of the reduced angle, below pi / 4 (the reduction's last
  // step, adding the product's error: half a unit each) and about one unit in
  // evaluating the polynomial and the quadrant's sign.
  EXPECT_LE(worst, 3 * ulp);
  const rotary::CosSin zero = rotary::CosSinOfAngle(0.0, 0.5);
  EXPECT_EQ(zero.cos, 1.0);
  EXPECT_EQ(zero.sin, 0.0);
}
