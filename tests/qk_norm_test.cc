// qk-norm before RoPE (docs/math.md §8) on every target: the §8.4 vectors,
// the §8.3 evaluation order bit for bit (the same r and u on every target),
// a float64 reference of norm -> RoPE -> q scale over pairings, table modes,
// storage pairs, multi-axis positions, GQA, whole-token norms and packed QKV,
// NaN/Inf isolation, and the validation of the call's arguments.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "rotary/rotary.hpp"
#include "tests/every_target.h"
#include "tests/random_values.h"
#include "tests/reference.h"
#include "tests/reference_axes.h"
#include "tests/tensor_compare.h"
#include "tests/typed_tensor.h"

namespace {

using rotary_test::AbsError;
using rotary_test::RefRope;
using rotary_test::RoundTo;
using rotary_test::Shape;
using rotary_test::TypedTensor;

// §8.4's f32 accuracy bound, relative to the largest output.
constexpr double kRelativeBound = 4e-6;

uint32_t Bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof(u));
  return u;
}

// ---- References, sharing no code with the library ----

// §8.1 in float64: u = x / sqrt(mean(x^2) + eps) * (w + offset).
std::vector<double> NormalizedF64(const std::vector<double>& x, const float* w, double eps, double offset) {
  double sum = 0;
  for (double v : x) sum += v * v;
  const double r = 1.0 / std::sqrt(sum / static_cast<double>(x.size()) + eps);
  std::vector<double> u(x.size());
  for (size_t d = 0; d < x.size(); ++d) u[d] = x[d] * r * (static_cast<double>(w[d]) + offset);
  return u;
}

// §8.3 in f32, step by step. volatile keeps every product and sum a rounded
// f32 operation: no fused multiply-add, whatever the compiler contracts.
std::vector<float> NormalizedSection83(const std::vector<float>& x, const float* w, float eps, float offset) {
  float lane[16] = {};
  for (size_t d = 0; d < x.size(); ++d) {
    volatile float square = x[d] * x[d];
    volatile float sum = lane[d % 16] + square;
    lane[d % 16] = sum;
  }
  for (int h = 8; h >= 1; h /= 2) {
    for (int j = 0; j < h; ++j) {
      volatile float sum = lane[j] + lane[j + h];
      lane[j] = sum;
    }
  }
  volatile float mean_square = lane[0] / static_cast<float>(x.size());
  volatile float t = mean_square + eps;
  volatile float root = std::sqrt(static_cast<float>(t));
  const float r = 1.0f / root;
  std::vector<float> u(x.size());
  for (size_t d = 0; d < x.size(); ++d) {
    volatile float scaled = x[d] * r;
    volatile float gain = w[d] + offset;
    u[d] = scaled * gain;
  }
  return u;
}

std::vector<float> RandomWeight(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<float> w(n);
  for (float& v : w) v = static_cast<float>(rotary_test::UniformValue(rng, 0.25, 2.0));
  return w;
}

// The float64 result of norm -> RoPE -> scale for every head of x: one
// value per [b][s][h][k]. angles(b, s) gives the row's angles.
std::vector<double> Expected(const TypedTensor& x, const float* w, bool whole_token, double eps, double offset,
                             double scale, const RefRope& ref,
                             const std::function<rotary_test::ReferenceAngles(int64_t, int64_t)>& angles) {
  const Shape& s = x.shape();
  const int64_t D = s.head_dim;
  std::vector<double> out;
  for (int64_t b = 0; b < s.batch; ++b) {
    for (int64_t q = 0; q < s.seq; ++q) {
      const rotary_test::ReferenceAngles row = angles(b, q);
      std::vector<double> token;  // the row's heads, concatenated
      for (int64_t h = 0; h < s.heads; ++h) {
        for (int64_t k = 0; k < D; ++k) token.push_back(x.Get(b, q, h, k));
      }
      std::vector<double> u;
      if (w == nullptr) {
        u = token;
      } else if (whole_token) {
        u = NormalizedF64(token, w, eps, offset);
      } else {
        for (int64_t h = 0; h < s.heads; ++h) {
          const std::vector<double> head(token.begin() + h * D, token.begin() + (h + 1) * D);
          const std::vector<double> n = NormalizedF64(head, w, eps, offset);
          u.insert(u.end(), n.begin(), n.end());
        }
      }
      for (int64_t h = 0; h < s.heads; ++h) {
        rotary_test::ReferenceRotateHeadWithAngles(ref, row, &u[h * D], &u[h * D]);
        for (int64_t k = 0; k < D; ++k) out.push_back(scale * u[h * D + k]);
      }
    }
  }
  return out;
}

// Largest |got - expected| over the heads (AbsError: NaN is infinite) and the largest |expected|.
struct Comparison {
  double worst = 0, largest = 0;
};
Comparison Compare(const TypedTensor& got, const std::vector<double>& expected) {
  Comparison c;
  size_t i = 0;
  got.ForEach([&](int64_t b, int64_t s, int64_t h, int64_t k) {
    c.worst = std::max(c.worst, AbsError(got.Get(b, s, h, k), expected[i]));
    c.largest = std::max(c.largest, std::fabs(expected[i]));
    ++i;
  });
  return c;
}

std::function<rotary_test::ReferenceAngles(int64_t, int64_t)> PlainAngles(const RefRope& ref,
                                                                           const std::vector<int64_t>& positions,
                                                                           int64_t seq) {
  return [&ref, &positions, seq](int64_t b, int64_t s) {
    const std::vector<int64_t> pair_positions(ref.rotary_dim / 2, positions[b * seq + s]);
    return rotary_test::ReferencePairAngles(ref, pair_positions.data());
  };
}

class QkNormTest : public rotary_test::EveryTargetTest {};

// ---- §8.4 ----

const std::vector<float> kVectorX = {1, 2, 3, 4, 5, 6, 7, 8};
const std::vector<float> kVectorW = {1, 0.5f, 2, 1.5f, 1, 1, 0.25f, 1};

// One head of §8.4's x through the library: rotary_dim, position, q_scale, offset given.
std::vector<float> VectorCall(int rotary_dim, int64_t position, float q_scale, const std::vector<float>& w,
                              double offset, bool interleaved = false) {
  rotary::Config config;
  config.head_dim(8).rotary_dim(rotary_dim).base(1e4).max_positions(8);
  if (interleaved) config.pairing(rotary::Pairing::kInterleaved);
  const rotary::Rope rope(config);
  std::vector<float> q = kVectorX, k = kVectorX;
  rotary::QkNorm norm(w, w, 1e-6, offset);
  rope.apply_qk(rotary::Tensor(q.data(), 1, 1, 1, 8), rotary::Tensor(k.data(), 1, 1, 1, 8), norm,
                std::vector<int64_t>{position}, q_scale);
  for (int d = 0; d < 8; ++d) EXPECT_EQ(Bits(k[d] * q_scale), Bits(q[d])) << "q = k * q_scale, component " << d;
  return q;
}

TEST_P(QkNormTest, Section84Vectors) {
  // u, bit for bit (position 0: RoPE is the identity), both pairings.
  const uint32_t u_bits[8] = {0x3e4ac83f, 0x3e4ac83f, 0x3f98162f, 0x3f98162f,
                              0x3f7d7a4f, 0x3f98162f, 0x3eb16f37, 0x3fcac83f};
  for (bool interleaved : {false, true}) {
    const std::vector<float> u = VectorCall(8, 0, 1.0f, kVectorW, 0.0, interleaved);
    for (int d = 0; d < 8; ++d) EXPECT_EQ(Bits(u[d]), u_bits[d]) << "u[" << d << "], interleaved " << interleaved;
  }
  // Gemma's form: w - 1 stored, offset 1.
  std::vector<float> w_minus_one = kVectorW;
  for (float& v : w_minus_one) v -= 1.0f;
  const std::vector<float> gemma = VectorCall(8, 0, 1.0f, w_minus_one, 1.0);
  for (int d = 0; d < 8; ++d) EXPECT_EQ(Bits(gemma[d]), u_bits[d]) << "Gemma form, u[" << d << "]";

  const double rope3[8] = {-0.3357773503, -0.1619455092, 1.177247399, 1.18341898,
                           -0.9522926936, 1.193630591,   0.382035661, 1.587793434};
  const double partial[8] = {-0.3637232756, 0.1623004338, -1.148340417, 1.193582383,
                             0.9901475236,  1.188177028,  0.3465516332, 1.584236038};
  const std::vector<float> y = VectorCall(8, 3, 1.0f, kVectorW, 0.0);
  const std::vector<float> half = VectorCall(8, 3, 0.5f, kVectorW, 0.0);
  const std::vector<float> part = VectorCall(4, 3, 1.0f, kVectorW, 0.0);
  const double bound = kRelativeBound * 1.6;  // max |y| of these vectors is 1.59
  for (int d = 0; d < 8; ++d) {
    EXPECT_LE(AbsError(y[d], rope3[d]), bound) << "RoPE p = 3, component " << d;
    EXPECT_LE(AbsError(half[d], 0.5 * rope3[d]), bound / 2) << "q_scale 0.5, component " << d;
    EXPECT_LE(AbsError(part[d], partial[d]), bound) << "rotary_dim 4, component " << d;
  }
}

// ---- §8.3: the same bits on every target ----

// At position 0 the output is u: it must be §8.3's f32 evaluation bit for bit,
// for head sizes that fill, straddle and undershoot the 16 lane sums, from every
// source storage, per head and over the whole token, with every component
// (rotary_dim < head_dim included).
TEST_P(QkNormTest, Section83BitsAtPositionZero) {
  for (int head_dim : {8, 24, 64, 72, 80, 96, 128, 256}) {
    for (rotary_dtype src : {ROTARY_F32, ROTARY_F16, ROTARY_BF16}) {
      for (bool whole_token : {false, true}) {
        SCOPED_TRACE(::testing::Message() << "head_dim " << head_dim << " dtype " << src << " whole " << whole_token);
        const int heads = 3;
        rotary::Config config;
        config.head_dim(head_dim).rotary_dim(head_dim / 2 / 2 * 2).max_positions(4);
        const rotary::Rope rope(config);
        TypedTensor x(src, 2, 2, heads, head_dim);
        x.FillRandom(static_cast<uint32_t>(head_dim * 7 + src), 3.0);
        TypedTensor y(ROTARY_F32, 2, 2, heads, head_dim);
        const std::vector<float> w = RandomWeight(static_cast<size_t>(whole_token ? heads * head_dim : head_dim), 5);
        rotary::QkNorm norm;
        norm.q_weight = w.data();
        norm.eps = 1e-5;
        norm.weight_offset = 0.125;
        norm.whole_token = whole_token;
        rope.apply_to(x.view(), y.view(), norm, std::vector<int64_t>(4, 0));
        int mismatches = 0;
        for (int64_t b = 0; b < 2; ++b) {
          for (int64_t s = 0; s < 2; ++s) {
            const int64_t span = whole_token ? heads * head_dim : head_dim;
            for (int64_t first = 0; first < heads * head_dim; first += span) {
              std::vector<float> values;
              for (int64_t n = first; n < first + span; ++n) {
                values.push_back(static_cast<float>(x.Get(b, s, n / head_dim, n % head_dim)));
              }
              const std::vector<float> u = NormalizedSection83(values, w.data(), 1e-5f, 0.125f);
              for (int64_t n = 0; n < span; ++n) {
                const int64_t at = first + n;
                const float got = static_cast<float>(y.Get(b, s, at / head_dim, at % head_dim));
                if (Bits(got) != Bits(u[n]) && ++mismatches <= 3) {
                  ADD_FAILURE() << "(b, s) = (" << b << ", " << s << "), component " << at << ": got " << got
                                << ", §8.3 gives " << u[n];
                }
              }
            }
          }
        }
        EXPECT_EQ(mismatches, 0);
      }
    }
  }
}

// ---- Against the float64 reference ----

struct Case {
  bool interleaved;
  rotary::TableMode mode;
  int head_dim, rotary_dim;
  bool in_place;
  bool whole_token;
  int64_t q_heads = 6;
};

void RunCase(const Case& c) {
  SCOPED_TRACE(::testing::Message() << "interleaved " << c.interleaved << " mode " << static_cast<int>(c.mode)
                                    << " D " << c.head_dim << " R " << c.rotary_dim << " in_place " << c.in_place
                                    << " whole " << c.whole_token);
  rotary::Config config;
  config.head_dim(c.head_dim).rotary_dim(c.rotary_dim).base(5e5).table_mode(c.mode).max_positions(64);
  if (c.interleaved) config.pairing(rotary::Pairing::kInterleaved);
  const rotary::Rope rope(config);
  const RefRope ref{c.head_dim, c.rotary_dim, c.interleaved, 5e5};
  const int64_t batch = 2, seq = 5, q_heads = c.q_heads, k_heads = 2;
  TypedTensor q(ROTARY_F32, batch, seq, q_heads, c.head_dim), k(ROTARY_F32, batch, seq, k_heads, c.head_dim);
  q.FillRandom(11, 4.0);
  k.FillRandom(12, 0.5);
  const TypedTensor q_in = q, k_in = k;
  TypedTensor q_out(ROTARY_F32, batch, seq, q_heads, c.head_dim), k_out(ROTARY_F32, batch, seq, k_heads, c.head_dim);
  std::vector<int64_t> positions(batch * seq);
  std::mt19937 rng(3);
  for (int64_t& p : positions) p = static_cast<int64_t>(rng() % 3000);
  const std::vector<float> wq = RandomWeight(static_cast<size_t>(c.whole_token ? q_heads * c.head_dim : c.head_dim), 1);
  const std::vector<float> wk = RandomWeight(static_cast<size_t>(c.whole_token ? k_heads * c.head_dim : c.head_dim), 2);
  const rotary::QkNorm norm(wq, wk, 1e-6, 0.0, c.whole_token);
  const float q_scale = 0.125f;
  if (c.in_place) {
    rope.apply_qk(q.view(), k.view(), norm, positions, q_scale);
  } else {
    rope.apply_qk_to(q.view(), q_out.view(), k.view(), k_out.view(), norm, positions, q_scale);
  }
  const TypedTensor& q_got = c.in_place ? q : q_out;
  const TypedTensor& k_got = c.in_place ? k : k_out;
  const auto angles = PlainAngles(ref, positions, seq);
  const Comparison cq = Compare(q_got, Expected(q_in, wq.data(), c.whole_token, 1e-6, 0.0, q_scale, ref, angles));
  const Comparison ck = Compare(k_got, Expected(k_in, wk.data(), c.whole_token, 1e-6, 0.0, 1.0, ref, angles));
  EXPECT_LE(cq.worst, kRelativeBound * cq.largest) << "q";
  EXPECT_LE(ck.worst, kRelativeBound * ck.largest) << "k";
  EXPECT_TRUE(q_got.OnlyHeadsChanged(c.in_place ? q_in : TypedTensor(ROTARY_F32, batch, seq, q_heads, c.head_dim)));
  EXPECT_TRUE(k_got.OnlyHeadsChanged(c.in_place ? k_in : TypedTensor(ROTARY_F32, batch, seq, k_heads, c.head_dim)));
  if (!c.in_place) {
    EXPECT_EQ(q.bytes(), q_in.bytes()) << "the source is read only";
    EXPECT_EQ(k.bytes(), k_in.bytes());
  }
}

TEST_P(QkNormTest, MatchesFloat64Reference) {
  for (bool interleaved : {false, true}) {
    for (rotary::TableMode mode : {rotary::TableMode::kFull, rotary::TableMode::kCompact, rotary::TableMode::kOnTheFly}) {
      RunCase({interleaved, mode, 128, 128, true, false});
    }
    RunCase({interleaved, rotary::TableMode::kFull, 128, 128, false, false});
    RunCase({interleaved, rotary::TableMode::kFull, 80, 20, false, false});   // partial, odd lane tail
    RunCase({interleaved, rotary::TableMode::kFull, 72, 72, true, false});
    RunCase({interleaved, rotary::TableMode::kFull, 96, 64, true, true});     // whole token (OLMo 2)
    RunCase({interleaved, rotary::TableMode::kFull, 8, 8, false, true, 300}); // a token of more heads than a group
    RunCase({interleaved, rotary::TableMode::kCompact, 256, 256, false, false});
  }
}

// f16 and bf16: the f32 path's result, rounded once on store.
TEST_P(QkNormTest, StoragePairsRoundTheF32ResultOnce) {
  for (bool interleaved : {false, true}) {
    rotary::Config config;
    config.head_dim(64).rotary_dim(48).max_positions(64);
    if (interleaved) config.pairing(rotary::Pairing::kInterleaved);
    const rotary::Rope rope(config);
    const std::vector<float> w = RandomWeight(64, 9);
    const rotary::QkNorm norm(w, w, 1e-6, 1.0);
    const std::vector<int64_t> positions = {0, 5, 17, 63, 2, 40};
    for (rotary_dtype src : {ROTARY_F32, ROTARY_F16, ROTARY_BF16}) {
      TypedTensor x(src, 2, 3, 5, 64);
      x.FillRandom(21 + src, 2.0);
      TypedTensor reference(ROTARY_F32, 2, 3, 5, 64);
      rope.apply_to(x.view(), reference.view(), norm, positions);
      for (rotary_dtype dst : {ROTARY_F16, ROTARY_BF16}) {
        SCOPED_TRACE(::testing::Message() << "interleaved " << interleaved << " " << src << " -> " << dst);
        TypedTensor y(dst, 2, 3, 5, 64);
        rope.apply_to(x.view(), y.view(), norm, positions);
        int mismatches = 0;
        y.ForEach([&](int64_t b, int64_t s, int64_t h, int64_t k) {
          const double want = RoundTo(dst, reference.Get(b, s, h, k));
          if (!(y.Get(b, s, h, k) == want) && ++mismatches <= 3) {
            ADD_FAILURE() << "at " << b << "," << s << "," << h << "," << k << ": " << y.Get(b, s, h, k) << " != "
                          << want;
          }
        });
        EXPECT_EQ(mismatches, 0);
        if (src == dst) {  // in place too
          TypedTensor z = x;
          rope.apply(z.view(), norm, positions);
          EXPECT_EQ(z.bytes(), y.bytes());
        }
      }
    }
  }
}

// M-RoPE (Qwen3-VL: interleaved sections) with qk-norm, against the reference
// with each pair at its axis's position.
TEST_P(QkNormTest, MultiAxisPositions) {
  rotary::Config config;
  config.head_dim(128).base(5e6).max_positions(64).mrope_section({24, 20, 20}, true);
  const rotary::Rope rope(config);
  const std::vector<int> pair_axes = rotary_test::ConfigPairAxes(config.c);
  const RefRope ref{128, 128, false, 5e6};
  const int64_t batch = 1, seq = 6;
  std::vector<int64_t> ids(3 * batch * seq);
  std::mt19937 rng(8);
  for (int64_t& p : ids) p = static_cast<int64_t>(rng() % 50);
  TypedTensor q(ROTARY_F32, batch, seq, 4, 128), k(ROTARY_F32, batch, seq, 2, 128);
  q.FillRandom(1);
  k.FillRandom(2);
  const TypedTensor q_in = q, k_in = k;
  const std::vector<float> wq = RandomWeight(128, 3), wk = RandomWeight(128, 4);
  rope.apply_qk(q.view(), k.view(), rotary::QkNorm(wq, wk), rotary::Positions::Axes(ids, 3), 0.5f);
  const auto angles = [&](int64_t b, int64_t s) {
    std::vector<int64_t> pair_positions(64);
    for (int i = 0; i < 64; ++i) pair_positions[i] = ids[pair_axes[i] * batch * seq + b * seq + s];
    return rotary_test::ReferencePairAngles(ref, pair_positions.data());
  };
  const Comparison cq = Compare(q, Expected(q_in, wq.data(), false, 1e-6, 0.0, 0.5, ref, angles));
  const Comparison ck = Compare(k, Expected(k_in, wk.data(), false, 1e-6, 0.0, 1.0, ref, angles));
  EXPECT_LE(cq.worst, kRelativeBound * cq.largest);
  EXPECT_LE(ck.worst, kRelativeBound * ck.largest);
}

// A packed QKV buffer: q and k heads normalized and rotated, v untouched.
TEST_P(QkNormTest, PackedQkv) {
  const int64_t batch = 2, seq = 3, q_heads = 4, kv_heads = 2, D = 64;
  const int64_t row = (q_heads + 2 * kv_heads) * D;
  std::vector<float> data(static_cast<size_t>(batch * seq * row));
  std::mt19937 rng(5);
  for (float& v : data) v = static_cast<float>(rotary_test::UniformValue(rng, -2.0, 2.0));
  const std::vector<float> before = data;
  const rotary::Rope rope(rotary::Config().head_dim(static_cast<int32_t>(D)).max_positions(16));
  const rotary::PackedQkv views =
      rotary::PackedQkv::Views(data.data(), rotary::Dtype::kF32, batch, seq, q_heads, kv_heads, D);
  const std::vector<float> wq = RandomWeight(D, 1), wk = RandomWeight(D, 2);
  rope.apply_qk(views.q, views.k, rotary::QkNorm(wq, wk), rotary::Positions(4));
  const RefRope ref{static_cast<int>(D), static_cast<int>(D), false};
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t s = 0; s < seq; ++s) {
      const float* got = &data[static_cast<size_t>((b * seq + s) * row)];
      const float* in = &before[static_cast<size_t>((b * seq + s) * row)];
      for (int64_t h = 0; h < q_heads + 2 * kv_heads; ++h) {
        const std::vector<double> x(in + h * D, in + (h + 1) * D);
        if (h >= q_heads + kv_heads) {
          EXPECT_EQ(0, std::memcmp(got + h * D, in + h * D, D * sizeof(float))) << "v head " << h;
          continue;
        }
        std::vector<double> u = NormalizedF64(x, (h < q_heads ? wq : wk).data(), 1e-6, 0.0);
        rotary_test::ReferenceRotateHead(ref, u.data(), u.data(), 4 + s);
        double largest = 0, worst = 0;
        for (int64_t d = 0; d < D; ++d) {
          largest = std::max(largest, std::fabs(u[d]));
          worst = std::max(worst, AbsError(got[h * D + d], u[d]));
        }
        EXPECT_LE(worst, kRelativeBound * largest) << "head " << h;
      }
    }
  }
}

// NaN or Inf in one head makes that head NaN and touches no other; a head of
// zeros stays zeros, and so does one whose squares overflow; a norm on k only
// leaves q plainly rotated.
TEST_P(QkNormTest, NonFiniteHeadsStayInTheirHead) {
  const rotary::Rope rope(rotary::Config().head_dim(64).max_positions(16));
  TypedTensor q(ROTARY_F32, 1, 2, 4, 64), k(ROTARY_F32, 1, 2, 4, 64);
  q.FillRandom(1);
  k.FillRandom(2);
  q.Set(0, 1, 1, 7, std::numeric_limits<double>::quiet_NaN());
  k.Set(0, 0, 2, 60, std::numeric_limits<double>::infinity());
  for (int d = 0; d < 64; ++d) q.Set(0, 0, 3, d, 0.0);
  for (int d = 0; d < 64; ++d) k.Set(0, 1, 3, d, d % 2 ? 3e20 : -2e20);  // finite, but the squares overflow f32
  const TypedTensor q_in = q, k_in = k;
  const std::vector<float> w = RandomWeight(64, 1);
  rope.apply_qk(q.view(), k.view(), rotary::QkNorm(w, w), rotary::Positions(3));
  const auto has_nan = [](const TypedTensor& t, int64_t s, int64_t h) {
    bool any = false;
    for (int d = 0; d < 64; ++d) any = any || std::isnan(t.Get(0, s, h, d));
    return any;
  };
  for (int64_t s = 0; s < 2; ++s) {
    for (int64_t h = 0; h < 4; ++h) {
      EXPECT_EQ(has_nan(q, s, h), s == 1 && h == 1) << "q head (" << s << ", " << h << ")";
      EXPECT_EQ(has_nan(k, s, h), s == 0 && h == 2) << "k head (" << s << ", " << h << ")";
    }
  }
  for (int d = 0; d < 64; ++d) EXPECT_EQ(q.Get(0, 0, 3, d), 0.0) << "zero head, component " << d;
  // As HF's float32 code: the sum of squares is Inf, r = 1 / sqrt(Inf) = 0, and the head comes out zeros.
  for (int d = 0; d < 64; ++d) EXPECT_EQ(k.Get(0, 1, 3, d), 0.0) << "overflowing head, component " << d;
  // A finite head next to the NaN one is the reference's.
  const RefRope ref{64, 64, false};
  const std::vector<int64_t> positions = {3, 4};
  const auto angles = PlainAngles(ref, positions, 2);
  const std::vector<double> expected = Expected(k_in, w.data(), false, 1e-6, 0.0, 1.0, ref, angles);
  EXPECT_LE(AbsError(k.Get(0, 1, 0, 5), expected[(1 * 4 + 0) * 64 + 5]), 1e-5);

  // k normalized, q only rotated: q as rotary_apply_qk would leave it.
  TypedTensor q2 = q_in, k2 = k_in, q3 = q_in, k3 = k_in;
  rotary::QkNorm k_only;
  k_only.k_weight = w.data();
  rope.apply_qk(q2.view(), k2.view(), k_only, rotary::Positions(3));
  rope.apply_qk(q3.view(), k3.view(), rotary::Positions(3));
  EXPECT_EQ(q2.bytes(), q3.bytes());
}

// One call over many rows (split across threads) gives the bits of the same
// rows applied one at a time (inline).
TEST_P(QkNormTest, ThreadCountDoesNotChangeBits) {
  const rotary::Rope rope(rotary::Config().head_dim(128).max_positions(512));
  TypedTensor whole(ROTARY_BF16, 2, 256, 8, 128);
  whole.FillRandom(4);
  TypedTensor rows = whole;
  const std::vector<float> w = RandomWeight(128, 6);
  const rotary::QkNorm norm(w, {});
  rope.apply(whole.view(), norm);
  rotary_tensor one = rows.raw();
  one.batch = one.seq = 1;
  char* base = static_cast<char*>(one.data);
  for (int64_t b = 0; b < 2; ++b) {
    for (int64_t s = 0; s < 256; ++s) {
      rotary_tensor t = one;
      t.data = base + (b * one.stride_batch + s * one.stride_seq) * 2;
      rope.apply(rotary::Tensor(t), norm, rotary::Positions(s));
    }
  }
  EXPECT_EQ(whole.bytes(), rows.bytes());
}

ROTARY_TEST_EVERY_TARGET(QkNormTest);

// ---- Bad arguments: a status and a message, nothing written ----

TEST(QkNormValidation, BadArgumentsWriteNothing) {
  rotary_config config;
  rotary_config_init(&config);
  config.head_dim = 16;
  rotary_rope* rope = nullptr;
  ASSERT_EQ(rotary_create(&config, &rope), ROTARY_OK);
  std::vector<float> data(2 * 16, 1.5f);
  const std::vector<float> before = data;
  rotary_tensor q{data.data(), ROTARY_F32, 1, 1, 1, 16, 16, 16};
  rotary_tensor k{data.data() + 16, ROTARY_F32, 1, 1, 1, 16, 16, 16};
  std::vector<float> w(16, 1.0f);
  struct Bad {
    const char* what;
    std::function<void(rotary_qk_norm&)> edit;
    const char* message;
  };
  const std::vector<Bad> cases = {
      {"eps 0", [](rotary_qk_norm& n) { n.eps = 0; }, "norm.eps"},
      {"eps NaN", [](rotary_qk_norm& n) { n.eps = std::nan(""); }, "norm.eps"},
      {"eps underflows float", [](rotary_qk_norm& n) { n.eps = 1e-60; }, "norm.eps"},
      {"offset Inf", [](rotary_qk_norm& n) { n.weight_offset = INFINITY; }, "norm.weight_offset"},
      {"whole_token 2", [](rotary_qk_norm& n) { n.whole_token = 2; }, "norm.whole_token"},
      {"NaN weight", [&](rotary_qk_norm& n) { w[9] = NAN; n.q_weight = nullptr; n.k_weight = w.data(); },
       "norm.k_weight[9]"},
      {"not initialized", [](rotary_qk_norm& n) { n.struct_size = 0; }, "rotary_qk_norm_init"},
  };
  for (const Bad& bad : cases) {
    std::fill(w.begin(), w.end(), 1.0f);
    rotary_qk_norm norm;
    rotary_qk_norm_init(&norm);
    norm.q_weight = w.data();
    bad.edit(norm);
    EXPECT_EQ(rotary_apply_qk_norm(rope, &q, &q, &k, &k, nullptr, 1, 0, 1.0f, &norm), ROTARY_INVALID_ARGUMENT)
        << bad.what;
    EXPECT_NE(std::string(rotary_last_error()).find(bad.message), std::string::npos)
        << bad.what << ": " << rotary_last_error();
    EXPECT_EQ(data, before) << bad.what;
  }
  EXPECT_EQ(rotary_apply_qk_norm(rope, &q, &q, &k, &k, nullptr, 1, 0, 1.0f, nullptr), ROTARY_INVALID_ARGUMENT);
  // A newer header's field this library does not know, set.
  struct Newer {
    rotary_qk_norm known;
    int64_t extra;
  } newer;
  rotary_qk_norm_init_sized(&newer.known, sizeof(newer));
  EXPECT_EQ(newer.extra, 0) << "init zeroes fields it does not know";
  newer.extra = 1;
  EXPECT_EQ(rotary_apply_qk_norm(rope, &q, &q, &k, &k, nullptr, 1, 0, 1.0f, &newer.known), ROTARY_UNSUPPORTED);
  EXPECT_EQ(data, before);
  rotary_destroy(rope);

  // C++: a weight vector of the wrong length is named before the call.
  const rotary::Rope cpp(rotary::Config().head_dim(16));
  try {
    cpp.apply(rotary::Tensor(data.data(), 1, 1, 1, 16), rotary::QkNorm(std::vector<float>(8, 1.0f), {}));
    ADD_FAILURE() << "no exception";
  } catch (const rotary::Error& e) {
    EXPECT_NE(std::string(e.what()).find("norm.q_weight has 8 floats"), std::string::npos) << e.what();
  }
  EXPECT_EQ(data, before);
}

}  // namespace
