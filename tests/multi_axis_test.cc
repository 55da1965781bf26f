// Multi-axis RoPE (docs/math.md §7) on every target: sectioned and interleaved
// M-RoPE (HF's three axes and ggml's four), 2D vision RoPE, against a float64
// reference whose axis rules are written the way HF and ggml state them
// (below, sharing no code with the library), against the mpmath vectors of
// §7.8, and bit for bit against plain RoPE where §7.5 says they agree.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "rotary/rotary.hpp"
#include "tests/error_bounds.h"
#include "tests/every_target.h"
#include "tests/reference.h"
#include "tests/reference_axes.h"
#include "tests/typed_tensor.h"

namespace {

using rotary_test::ExpectOneRoundingOf;
using rotary_test::RefRope;
using rotary_test::RoundTo;
using rotary_test::TypedTensor;

using rotary_test::GgmlAxes;
using rotary_test::HfInterleavedAxes;
using rotary_test::HfSectionedAxes;
using rotary_test::kE;
using rotary_test::kH;
using rotary_test::kT;
using rotary_test::kW;

// ---- Model layouts ----

struct Layout {
  std::string name;
  int head_dim, rotary_dim;
  double base;
  bool interleaved_pairs;
  std::vector<int> section;  // empty: vision
  bool interleaved_axes;

  int axes() const { return section.empty() ? 2 : static_cast<int>(section.size()); }
  int pairs() const { return rotary_dim / 2; }

  std::vector<int> PairAxes() const { return rotary_test::ConfigPairAxes(Config().c); }

  // §7.4: VisionRotaryEmbedding(dim = R/2): b^(-2j / (R/2)) for j < R/4, for
  // each half. M-RoPE: the plain frequencies (empty: the reference's own).
  RefRope Reference() const {
    RefRope ref{head_dim, rotary_dim, interleaved_pairs, base};
    if (section.empty()) {
      for (int half = 0; half < 2; ++half) {
        for (int j = 0; j < rotary_dim / 4; ++j) ref.inv_freq.push_back(std::pow(base, -2.0 * j / (rotary_dim / 2)));
      }
    }
    return ref;
  }

  rotary::Config Config(rotary::TableMode mode = rotary::TableMode::kAuto) const {
    rotary::Config c;
    c.head_dim(head_dim).rotary_dim(rotary_dim).base(base).table_mode(mode).max_positions(64);
    c.pairing(interleaved_pairs ? rotary::Pairing::kInterleaved : rotary::Pairing::kNeox);
    if (section.empty()) {
      c.vision_2d();
    } else {
      c.mrope_section(section, interleaved_axes);
    }
    return c;
  }
};

// The same config as plain RoPE: one position per token.
rotary::Config WithoutAxes(rotary::Config config) {
  config.c.mrope_section_count = 0;
  std::fill(std::begin(config.c.mrope_section), std::end(config.c.mrope_section), 0);
  config.c.mrope_interleaved = 0;
  config.c.vision_2d = 0;
  return config;
}

const Layout kLayouts[] = {
    {"Qwen2-VL", 128, 128, 1e6, false, {16, 24, 24}, false},
    {"Qwen3-VL", 128, 128, 5e6, false, {24, 20, 20}, true},
    {"GLM-4V", 128, 64, 1e4, true, {8, 12, 12}, false},
    {"ggml MROPE", 64, 64, 1e4, false, {8, 8, 8, 8}, false},
    {"ggml IMROPE", 128, 128, 5e6, false, {24, 20, 20, 0}, true},
    {"vision", 80, 80, 1e4, false, {}, false},
};

// Positions [axes, batch, seq] as the models' processors make them (§7.1): in
// each batch row, text tokens counting up on every axis, an image block of
// frames x rows x cols (temporal step `step`), then text again from the
// block's largest position + 1. Vision: the (row, col) of a patch grid in HF's
// 2x2 merge-block order, continued over as many grids as needed. A 4th axis
// (ggml's e) gets its own values, so that pairs reading it show it.
std::vector<int64_t> ModelPositions(const Layout& layout, int64_t batch, int64_t seq, int64_t start) {
  const int axes = layout.axes();
  std::vector<int64_t> pos(static_cast<size_t>(axes * batch * seq));
  auto at = [&](int a, int64_t b, int64_t s) -> int64_t& { return pos[static_cast<size_t>((a * batch + b) * seq + s)]; };
  for (int64_t b = 0; b < batch; ++b) {
    if (layout.section.empty()) {
      const int64_t grid_cols = 8;  // 2x2 blocks of an 8-column grid
      for (int64_t s = 0; s < seq; ++s) {
        const int64_t block = s / 4, within = s % 4;
        at(0, b, s) = start + 2 * (block / (grid_cols / 2)) + within / 2 + b;
        at(1, b, s) = 2 * (block % (grid_cols / 2)) + within % 2;
      }
      continue;
    }
    const int64_t text = 3 + b, frames = 2, rows = 3, cols = 4, step = 2;
    int64_t p = start + b;
    int64_t s = 0;
    for (; s < text && s < seq; ++s, ++p) {
      for (int a = 0; a < 3; ++a) at(a, b, s) = p;
    }
    int64_t block_max = p;
    for (int64_t f = 0; f < frames; ++f)
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < cols && s < seq; ++c, ++s) {
          at(kT, b, s) = p + f * step;
          at(kH, b, s) = p + r;
          at(kW, b, s) = p + c;
          block_max = std::max({block_max, at(kT, b, s), at(kH, b, s), at(kW, b, s)});
        }
    for (p = block_max + 1; s < seq; ++s, ++p) {
      for (int a = 0; a < 3; ++a) at(a, b, s) = p;
    }
    if (axes == 4) {
      for (s = 0; s < seq; ++s) at(kE, b, s) = 1000 + 7 * s + b;
    }
  }
  return pos;
}

// The exact angles of every (b, s) row's pairs, pair i at its axis's position
// + offset: computed once for all the checks of a layout and positions.
std::vector<rotary_test::ReferenceAngles> RowAngles(const Layout& layout, int64_t batch, int64_t seq,
                                                    const std::vector<int64_t>& pos, int64_t offset) {
  const std::vector<int> pair_axis = layout.PairAxes();
  std::vector<int64_t> pair_positions(layout.pairs());
  const RefRope ref = layout.Reference();
  std::vector<rotary_test::ReferenceAngles> rows;
  for (int64_t row = 0; row < batch * seq; ++row) {
    for (int i = 0; i < layout.pairs(); ++i) pair_positions[i] = pos[static_cast<size_t>(pair_axis[i] * batch * seq + row)] + offset;
    rows.push_back(rotary_test::ReferencePairAngles(ref, pair_positions.data()));
  }
  return rows;
}

// The reference rotation of every head of src at (b, s) by the row's angles
// (RowAngles), times `scale`; dst within `bound` of it (one rounding for
// f16 / bf16), the pass-through components copied (and scaled).
void CheckAgainstReference(const Layout& layout, const TypedTensor& src, const TypedTensor& dst, int64_t batch,
                           int64_t seq, int64_t heads, const std::vector<rotary_test::ReferenceAngles>& row_angles,
                           bool inverse, double scale, double bound, const std::string& what) {
  const RefRope ref = layout.Reference();
  const std::vector<int> pair_axis = layout.PairAxes();
  std::vector<double> head(layout.head_dim);
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t s = 0; s < seq; ++s) {
      const rotary_test::ReferenceAngles& angles = row_angles[static_cast<size_t>(b * seq + s)];
      for (int64_t h = 0; h < heads; ++h) {
        for (int k = 0; k < layout.head_dim; ++k) head[k] = src.Get(b, s, h, k);
        rotary_test::ReferenceRotateHeadWithAngles(ref, angles, head.data(), head.data(), inverse);
        for (int k = 0; k < layout.head_dim; ++k) {
          const double got = dst.Get(b, s, h, k);
          if (k >= layout.rotary_dim) {
            ASSERT_EQ(got, RoundTo(dst.dtype(), scale * src.Get(b, s, h, k))) << what << ": pass-through " << k;
            continue;
          }
          if (!ExpectOneRoundingOf(dst.dtype(), got, scale * head[k], bound, what.c_str())) {
            FAIL() << what << " at b " << b << " s " << s << " h " << h << " k " << k << " (pair axis "
                   << pair_axis[(layout.interleaved_pairs ? k / 2 : k % layout.pairs())] << ")";
          }
        }
      }
    }
}

class MultiAxisTest : public rotary_test::EveryTargetTest {};
ROTARY_TEST_EVERY_TARGET(MultiAxisTest);

// docs/math.md §7.8: R = D = 12, b = 10000, x = 1..12, neox; (t, h, w) = (3, 5, 7)
// sectioned and interleaved [2, 2, 2], a text token (4, 4, 4), and vision
// D = 8 at (row, col) = (2, 3). mpmath values, within the f32 bound.
TEST_P(MultiAxisTest, MatchesTheTestVectors) {
  struct Vector {
    rotary::Config config;
    std::vector<int64_t> position;  // one id per axis
    std::vector<double> expected;
  };
  const std::vector<Vector> vectors = {
      {rotary::Config().head_dim(12).mrope_section({2, 2, 2}), {3, 5, 7},
       {-1.977832553, -3.22148983, 0.8495552679, 3.495209349, 4.833546233, 5.960979052, -6.788827468, 7.590915839,
        9.448717154, 10.18741928, 11.07415147, 12.0194313}},
      {rotary::Config().head_dim(12).mrope_section({2, 2, 2}, true), {3, 5, 7},
       {-1.977832553, -6.097581357, -0.02998464114, 3.698245133, 4.881218287, 5.960979052, -6.788827468,
        5.551531464, 9.486785595, 10.11548234, 11.05322161, 12.0194313}},
      {rotary::Config().head_dim(12).mrope_section({2, 2, 2}, true), {4, 4, 4},
       {4.643973846, -4.769805458, 1.287053415, 3.596907085, 4.905020385, 5.977710045, -5.332307841, 6.726734415,
        9.399121954, 10.1519584, 11.0426797, 12.01111912}},
      {rotary::Config().head_dim(12).mrope_section({2, 2, 2}), {4, 4, 4},
       {4.643973846, -4.769805458, 1.287053415, 3.596907085, 4.905020385, 5.977710045, -5.332307841, 6.726734415,
        9.399121954, 10.1519584, 11.0426797, 12.01111912}},
      {rotary::Config().head_dim(8).vision_2d(), {2, 3},
       {-4.962633971, 1.879608013, -3.957817546, 3.758236133, -1.171436756, 6.038797373, -6.506587452,
        8.116382271}},
  };
  for (const Vector& v : vectors) {
    for (auto mode : {rotary::TableMode::kFull, rotary::TableMode::kCompact, rotary::TableMode::kOnTheFly}) {
      rotary::Config config = v.config;
      const rotary::Rope rope(config.table_mode(mode));
      std::vector<float> x(v.expected.size());
      for (size_t k = 0; k < x.size(); ++k) x[k] = static_cast<float>(k + 1);
      rope.apply(rotary::Tensor(x.data(), 1, 1, 1, static_cast<int64_t>(x.size())),
                 rotary::Positions::Axes(v.position, static_cast<int32_t>(v.position.size())));
      const auto rows = mode == rotary::TableMode::kFull ? rotary_test::Rows::kFull : rotary_test::Rows::kSynthesized;
      for (size_t k = 0; k < x.size(); ++k) {
        // The vectors are rounded to 10 digits: their own error (<= 5e-9 relative) added.
        EXPECT_NEAR(x[k], v.expected[k], rotary_test::F32Bound(12.0, 1.0, 1.0, rows) + 1e-8 * std::fabs(v.expected[k]))
            << "component " << k << ", axes " << v.position.size() << ", mode " << static_cast<int>(mode);
      }
    }
  }
}

// Qwen3-VL [24, 20, 20] (§7.8): HF's axes of pairs 57..63 are t h w t t t t,
// ggml's with [24, 20, 20, 0] are t h w t e e t. Seen through the output: a
// token whose axes all differ rotates each pair by its axis's position.
TEST_P(MultiAxisTest, LeftoverPairsOfInterleavedSectionsFollowHfOrGgml) {
  const std::vector<int> hf = HfInterleavedAxes({24, 20, 20}, 64), ggml = GgmlAxes({24, 20, 20, 0}, 64, true);
  EXPECT_EQ(std::vector<int>(hf.begin() + 57, hf.end()), (std::vector<int>{kT, kH, kW, kT, kT, kT, kT}));
  EXPECT_EQ(std::vector<int>(ggml.begin() + 57, ggml.end()), (std::vector<int>{kT, kH, kW, kT, kE, kE, kT}));
  for (bool four : {false, true}) {
    const Layout layout = four ? kLayouts[4] : kLayouts[1];
    const rotary::Rope rope(layout.Config(rotary::TableMode::kFull));
    const std::vector<int64_t> pos = four ? std::vector<int64_t>{100, 200, 300, 400} : std::vector<int64_t>{100, 200, 300};
    for (int pair = 57; pair < 64; ++pair) {
      std::vector<float> x(128, 0.0f);
      x[pair] = 1.0f;  // neox: (x[pair], x[pair + 64]) = (1, 0) becomes (cos t, sin t)
      rope.apply(rotary::Tensor(x.data(), 1, 1, 1, 128), rotary::Positions::Axes(pos, layout.axes()));
      const int axis = (four ? ggml : hf)[pair];
      const double angle = static_cast<double>(pos[axis]) * std::pow(layout.base, -2.0 * pair / 128);
      EXPECT_NEAR(x[pair], std::cos(angle), 1e-6) << layout.name << " pair " << pair;
      EXPECT_NEAR(x[pair + 64], std::sin(angle), 1e-6) << layout.name << " pair " << pair;
    }
  }
}

// Every layout, table mode and storage pair, in place, out of place, q + k
// fused (GQA, a q scale) and the inverse, on image + text positions with an
// offset, against the reference.
TEST_P(MultiAxisTest, ModelLayoutsMatchTheReference) {
  constexpr int64_t kBatch = 2, kSeq = 30, kQHeads = 4, kKHeads = 2;
  constexpr double kMaxAbs = 2.0;  // TypedTensor::FillRandom
  constexpr int64_t kOffset = 5;
  for (const Layout& layout : kLayouts) {
    const std::vector<int64_t> pos = ModelPositions(layout, kBatch, kSeq, 40);
    const std::vector<rotary_test::ReferenceAngles> row_angles = RowAngles(layout, kBatch, kSeq, pos, kOffset);
    const int32_t axes = layout.axes();
    for (auto mode : {rotary::TableMode::kFull, rotary::TableMode::kCompact, rotary::TableMode::kOnTheFly}) {
      const rotary::Rope rope(layout.Config(mode));
      ASSERT_EQ(rope.axis_count(), axes) << layout.name;
      const auto rows = mode == rotary::TableMode::kFull ? rotary_test::Rows::kFull : rotary_test::Rows::kSynthesized;
      for (rotary_dtype src_type : {ROTARY_F32, ROTARY_F16, ROTARY_BF16}) {
        for (rotary_dtype dst_type : {ROTARY_F32, ROTARY_F16, ROTARY_BF16}) {
          const std::string what = layout.name + " mode " + std::to_string(static_cast<int>(mode)) + " " +
                                   std::to_string(src_type) + "->" + std::to_string(dst_type);
          TypedTensor q(src_type, kBatch, kSeq, kQHeads, layout.head_dim), k(src_type, kBatch, kSeq, kKHeads, layout.head_dim, 2);
          q.FillRandom(11 + src_type);
          k.FillRandom(12 + dst_type);
          TypedTensor q_out(dst_type, kBatch, kSeq, kQHeads, layout.head_dim, 1),
              k_out(dst_type, kBatch, kSeq, kKHeads, layout.head_dim, 4);
          const TypedTensor q_before = q, k_before = k, q_out_before = q_out, k_out_before = k_out;
          rotary_tensor qs = q.raw(), ks = k.raw(), qo = q_out.raw(), ko = k_out.raw();
          // q + k fused, out of place, q scaled.
          ASSERT_EQ(rotary_apply_axes(rope.handle(), &qs, &qo, &ks, &ko, pos.data(), axes, kOffset, 0.5f, 0), ROTARY_OK)
              << rotary_last_error();
          EXPECT_EQ(q.bytes(), q_before.bytes());
          EXPECT_TRUE(q_out.OnlyHeadsChanged(q_out_before) && k_out.OnlyHeadsChanged(k_out_before));
          CheckAgainstReference(layout, q, q_out, kBatch, kSeq, kQHeads, row_angles, false, 0.5,
                                rotary_test::F32Bound(kMaxAbs, 1.0, 0.5, rows), what + " q");
          CheckAgainstReference(layout, k, k_out, kBatch, kSeq, kKHeads, row_angles, false, 1.0,
                                rotary_test::F32Bound(kMaxAbs, 1.0, 1.0, rows), what + " k");
          if (src_type != dst_type) continue;
          // In place, one tensor, then the inverse of it.
          ASSERT_EQ(rotary_apply_axes(rope.handle(), &ks, &ks, nullptr, nullptr, pos.data(), axes, kOffset, 1.0f, 1),
                    ROTARY_OK)
              << rotary_last_error();
          EXPECT_TRUE(k.OnlyHeadsChanged(k_before));
          CheckAgainstReference(layout, k_before, k, kBatch, kSeq, kKHeads, row_angles, true, 1.0,
                                rotary_test::F32Bound(kMaxAbs, 1.0, 1.0, rows), what + " inverse in place");
        }
      }
    }
  }
}

// §7.5: a token whose axes agree is plain RoPE, bit for bit: equal axes,
// one id per token (axes = 1), and no ids at all (offset + s), on every
// layout but vision (whose frequencies repeat), in every table mode.
TEST_P(MultiAxisTest, TextTokensAreExactlyPlainRope) {
  constexpr int64_t kBatch = 2, kSeq = 9, kHeads = 3;
  for (const Layout& layout : kLayouts) {
    if (layout.section.empty()) continue;
    for (auto mode : {rotary::TableMode::kFull, rotary::TableMode::kCompact, rotary::TableMode::kOnTheFly}) {
      const rotary::Rope plain(WithoutAxes(layout.Config(mode))), multi(layout.Config(mode));
      std::vector<int64_t> ids(kBatch * kSeq), axis_ids;
      for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int64_t>(i * i * 37 % 5000);
      for (int a = 0; a < layout.axes(); ++a) axis_ids.insert(axis_ids.end(), ids.begin(), ids.end());
      for (rotary_dtype type : {ROTARY_F32, ROTARY_BF16}) {
        TypedTensor x(type, kBatch, kSeq, kHeads, layout.head_dim);
        x.FillRandom(3);
        TypedTensor want = x, equal_axes = x, one_axis = x, no_ids = x, want_no_ids = x;
        rotary_tensor w = want.raw(), e = equal_axes.raw(), o = one_axis.raw(), n = no_ids.raw(), wn = want_no_ids.raw();
        ASSERT_EQ(rotary_apply(plain.handle(), &w, ids.data(), 7), ROTARY_OK);
        ASSERT_EQ(rotary_apply_axes(multi.handle(), &e, &e, nullptr, nullptr, axis_ids.data(), layout.axes(), 7, 1.0f, 0),
                  ROTARY_OK)
            << rotary_last_error();
        ASSERT_EQ(rotary_apply(multi.handle(), &o, ids.data(), 7), ROTARY_OK);
        ASSERT_EQ(rotary_apply(plain.handle(), &wn, nullptr, 100), ROTARY_OK);
        ASSERT_EQ(rotary_apply_axes(multi.handle(), &n, &n, nullptr, nullptr, nullptr, layout.axes(), 100, 1.0f, 0),
                  ROTARY_OK);
        EXPECT_EQ(equal_axes.bytes(), want.bytes()) << layout.name << " equal axes";
        EXPECT_EQ(one_axis.bytes(), want.bytes()) << layout.name << " one id per token";
        EXPECT_EQ(no_ids.bytes(), want_no_ids.bytes()) << layout.name << " offset + s";
      }
    }
  }
}

// The C++ API's multi-axis calls (forward, inverse, out of place, q and k with
// a q scale, packed QKV, all with an offset) give the C ABI's bits for the
// same ids.
TEST_P(MultiAxisTest, CppCallsGiveTheCAbisBits) {
  constexpr int64_t kBatch = 2, kSeq = 5, kQHeads = 4, kKHeads = 2;
  constexpr int64_t kOffset = 7;
  constexpr float kQScale = 0.5f;
  for (const Layout& layout : kLayouts) {
    const rotary::Rope rope(layout.Config());
    const int32_t axes = layout.axes();
    std::vector<int64_t> ids(axes * kBatch * kSeq);
    for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int64_t>(i * 131 % 997);
    const rotary::Positions positions = rotary::Positions::Axes(ids, axes, kOffset);
    TypedTensor q(ROTARY_F32, kBatch, kSeq, kQHeads, layout.head_dim), k(ROTARY_F32, kBatch, kSeq, kKHeads, layout.head_dim);
    q.FillRandom(5);
    k.FillRandom(6);
    for (int inverse = 0; inverse < 2; ++inverse) {
      TypedTensor want = q, got = q, got_to = q;
      rotary_tensor w = want.raw();
      ASSERT_EQ(rotary_apply_axes(rope.handle(), &w, &w, nullptr, nullptr, ids.data(), axes, kOffset, 1.0f, inverse),
                ROTARY_OK)
          << rotary_last_error();
      const rotary::Tensor g(got.raw());
      inverse ? rope.apply_inverse(g, positions) : rope.apply(g, positions);
      EXPECT_EQ(got.bytes(), want.bytes()) << layout.name << (inverse ? " apply_inverse" : " apply");
      if (inverse) continue;
      rope.apply_to(rotary::Tensor(q.raw()), rotary::Tensor(got_to.raw()), positions);
      EXPECT_EQ(got_to.bytes(), want.bytes()) << layout.name << " apply_to";
    }
    TypedTensor want_q = q, want_k = k, got_q = q, got_k = k;
    rotary_tensor wq = want_q.raw(), wk = want_k.raw();
    ASSERT_EQ(rotary_apply_axes(rope.handle(), &wq, &wq, &wk, &wk, ids.data(), axes, kOffset, kQScale, 0), ROTARY_OK)
        << rotary_last_error();
    rope.apply_qk(rotary::Tensor(got_q.raw()), rotary::Tensor(got_k.raw()), positions, kQScale);
    EXPECT_EQ(got_q.bytes(), want_q.bytes()) << layout.name << " apply_qk q";
    EXPECT_EQ(got_k.bytes(), want_k.bytes()) << layout.name << " apply_qk k";

    // A packed QKV buffer [batch, seq, q_heads + 2 * kv_heads, head_dim]: q and k through its views.
    TypedTensor packed(ROTARY_F32, kBatch, kSeq, kQHeads + 2 * kKHeads, layout.head_dim);
    packed.FillRandom(7);
    TypedTensor want_packed = packed;
    rotary_tensor pq, pk, pv;
    ASSERT_EQ(rotary_packed_qkv_views(want_packed.raw().data, ROTARY_F32, kBatch, kSeq, kQHeads, kKHeads,
                                      layout.head_dim, &pq, &pk, &pv),
              ROTARY_OK);
    ASSERT_EQ(rotary_apply_axes(rope.handle(), &pq, &pq, &pk, &pk, ids.data(), axes, kOffset, kQScale, 0), ROTARY_OK)
        << rotary_last_error();
    rope.apply_packed_qkv(packed.raw().data, rotary::Dtype::kF32, kBatch, kSeq, kQHeads, kKHeads, positions, kQScale);
    EXPECT_EQ(packed.bytes(), want_packed.bytes()) << layout.name << " apply_packed_qkv";
  }
}

// An image token's pair i comes out exactly as plain RoPE's pair i at the
// position of i's axis: the gathered row holds the table's own values.
TEST_P(MultiAxisTest, ImageTokenPairsAreExactlyPlainRopeAtTheirAxisPosition) {
  for (const Layout& layout : kLayouts) {
    if (layout.section.empty()) continue;
    for (auto mode : {rotary::TableMode::kFull, rotary::TableMode::kCompact, rotary::TableMode::kOnTheFly}) {
      const rotary::Rope plain(WithoutAxes(layout.Config(mode))), multi(layout.Config(mode));
      const std::vector<int64_t> axis_position = {70000, 33, 4097, 1234567};
      const std::vector<int64_t> pos(axis_position.begin(), axis_position.begin() + layout.axes());
      TypedTensor x(ROTARY_F32, 1, 1, 2, layout.head_dim);
      x.FillRandom(9);
      TypedTensor multi_out = x;
      rotary_tensor m = multi_out.raw();
      ASSERT_EQ(rotary_apply_axes(multi.handle(), &m, &m, nullptr, nullptr, pos.data(), layout.axes(), 0, 1.0f, 0),
                ROTARY_OK)
          << rotary_last_error();
      std::vector<TypedTensor> per_axis;
      for (int a = 0; a < layout.axes(); ++a) {
        per_axis.push_back(x);
        rotary_tensor t = per_axis.back().raw();
        ASSERT_EQ(rotary_apply(plain.handle(), &t, &pos[a], 0), ROTARY_OK);
      }
      const std::vector<int> pair_axis = layout.PairAxes();
      for (int h = 0; h < 2; ++h)
        for (int k = 0; k < layout.rotary_dim; ++k) {
          const int pair = layout.interleaved_pairs ? k / 2 : k % layout.pairs();
          const TypedTensor& want = per_axis[pair_axis[pair]];
          EXPECT_EQ(rotary_test::FloatBits(static_cast<float>(multi_out.Get(0, 0, h, k))),
                    rotary_test::FloatBits(static_cast<float>(want.Get(0, 0, h, k))))
              << layout.name << " mode " << static_cast<int>(mode) << " component " << k;
        }
    }
  }
}

// A scheme next to the sections (§7.7): YaRN as Qwen2.5-VL's long-context
// recipe, whose plan does not depend on the length, and dynamic NTK, whose
// length is the largest position over all axes + 1: a call whose h axis
// holds the largest position uses the plan of that length.
TEST_P(MultiAxisTest, ScalingSchemesCombineWithSections) {
  const Layout& layout = kLayouts[0];  // Qwen2-VL
  rotary::Config yarn = layout.Config();
  yarn.yarn(4.0, 32768);
  rotary::Config dynamic = layout.Config();
  dynamic.dynamic_ntk(2.0, 4096);
  for (const rotary::Config& config : {yarn, dynamic}) {
    const rotary::Rope multi(config), plain(WithoutAxes(config));
    const std::vector<int64_t> pos = {10, 9000, 20};  // t, h, w: the length is 9001
    TypedTensor x(ROTARY_F32, 1, 1, 1, 128), t_only(ROTARY_F32, 1, 1, 1, 128);
    x.FillRandom(5);
    TypedTensor got = x;
    rotary_tensor g = got.raw();
    ASSERT_EQ(rotary_apply_axes(multi.handle(), &g, &g, nullptr, nullptr, pos.data(), 3, 0, 1.0f, 0), ROTARY_OK);
    // The plain rope at positions {10, 9000} in one call has the same length;
    // its outputs for 10 are the t pairs' values.
    TypedTensor two(ROTARY_F32, 1, 2, 1, 128);
    for (int k = 0; k < 128; ++k) {
      two.Set(0, 0, 0, k, x.Get(0, 0, 0, k));
      two.Set(0, 1, 0, k, x.Get(0, 0, 0, k));
    }
    rotary_tensor tw = two.raw();
    const int64_t plain_pos[] = {10, 9000};
    ASSERT_EQ(rotary_apply(plain.handle(), &tw, plain_pos, 0), ROTARY_OK);
    const std::vector<int> pair_axis = layout.PairAxes();
    for (int k = 0; k < 128; ++k) {
      const int axis = pair_axis[k % 64];
      if (axis == kW) continue;  // w's position 20 is in neither plain row
      EXPECT_EQ(got.Get(0, 0, 0, k), two.Get(0, axis == kT ? 0 : 1, 0, k)) << "component " << k;
    }
  }
}

// Bad configs and calls: a clear error, nothing written.
TEST(MultiAxisValidation, BadConfigsAreRejectedWithTheField) {
  struct Case {
    rotary::Config config;
    const char* mentions;
  };
  rotary::Config five = rotary::Config().head_dim(128);
  five.mrope_section({16, 16, 16, 8, 8});
  rotary::Config negative = rotary::Config().head_dim(128).mrope_section({-1, 33, 32});
  rotary::Config stray = rotary::Config().head_dim(128).mrope_section({16, 24, 24});
  stray.c.mrope_section[3] = 4;
  rotary::Config interleaved_alone = rotary::Config().head_dim(128);
  interleaved_alone.c.mrope_interleaved = 1;
  rotary::Config both = rotary::Config().head_dim(128).mrope_section({16, 24, 24}).vision_2d();
  rotary::Config yarn_vision = rotary::Config().head_dim(80).vision_2d().yarn(2.0, 4096);
  const std::vector<Case> cases = {
      {rotary::Config().head_dim(128).mrope_section({16, 24, 20}), "add up to rotary_dim / 2 = 64"},
      {rotary::Config().head_dim(128).rotary_dim(64).mrope_section({16, 24, 24}), "add up to rotary_dim / 2 = 32"},
      {five, "mrope_section_count must be 0, 3"},
      {negative, "mrope_section[0] must be >= 0"},
      {stray, "mrope_section[3] = 4 is past"},
      {interleaved_alone, "mrope_interleaved needs mrope_section"},
      {both, "exclusive"},
      {rotary::Config().head_dim(82).vision_2d(), "divisible by 4"},
      {yarn_vision, "DEFAULT only"},
  };
  for (const Case& c : cases) {
    rotary_rope* rope = nullptr;
    EXPECT_EQ(rotary_create(&c.config.c, &rope), ROTARY_INVALID_ARGUMENT) << c.mentions;
    EXPECT_EQ(rope, nullptr);
    EXPECT_NE(std::string(rotary_last_error()).find(c.mentions), std::string::npos) << rotary_last_error();
  }
}

TEST(MultiAxisValidation, BadCallsWriteNothing) {
  const rotary::Rope multi(kLayouts[0].Config()), plain(rotary::Config().head_dim(128)), vision(kLayouts[5].Config());
  TypedTensor x(ROTARY_F32, 2, 3, 2, 128);
  x.FillRandom(1);
  const TypedTensor before = x;
  rotary_tensor t = x.raw();
  std::vector<int64_t> pos(4 * 2 * 3, 5);
  // Axis counts: 2 or 4 for a three-axis rope, 3 for a plain or a vision rope.
  for (auto [rope, axes] : {std::pair{&multi, 2}, std::pair{&multi, 4}, std::pair{&plain, 3}, std::pair{&vision, 3},
                            std::pair{&multi, 0}, std::pair{&multi, -1}}) {
    EXPECT_EQ(rotary_apply_axes(rope->handle(), &t, &t, nullptr, nullptr, pos.data(), axes, 0, 1.0f, 0),
              ROTARY_INVALID_ARGUMENT)
        << axes;
    EXPECT_NE(std::string(rotary_last_error()).find("axes"), std::string::npos) << rotary_last_error();
  }
  // A bad id on the last axis: out of range, named by its index in the flat array.
  pos[2 * 2 * 3 + 5] = -1;
  EXPECT_EQ(rotary_apply_axes(multi.handle(), &t, &t, nullptr, nullptr, pos.data(), 3, 0, 1.0f, 0), ROTARY_OUT_OF_RANGE);
  EXPECT_NE(std::string(rotary_last_error()).find("positions[17]"), std::string::npos) << rotary_last_error();
  // k_dst without k_src.
  EXPECT_EQ(rotary_apply_axes(multi.handle(), &t, &t, nullptr, &t, nullptr, 3, 0, 1.0f, 0), ROTARY_INVALID_ARGUMENT);
  EXPECT_EQ(x.bytes(), before.bytes());
  // C++: an axis-major vector whose length is not axes * batch * seq.
  const std::vector<int64_t> short_ids(2 * 2 * 3, 1);
  EXPECT_THROW(multi.apply(rotary::Tensor(t), rotary::Positions::Axes(short_ids, 3)), rotary::Error);
  EXPECT_EQ(x.bytes(), before.bytes());
}

}  // namespace
