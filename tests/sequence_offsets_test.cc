// Per-sequence offsets (ragged batches: rotary_apply_options.batch_offsets,
// Positions::PerSequence) on every target: sequence b at offsets[b] + s gives
// the bits of the same positions passed as ids, for every entry point kind
// (in place, out of place, q and k, inverse, multi-axis ids, qk-norm), table
// mode and storage; bad offsets are errors that write nothing.
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "rotary/rotary.hpp"
#include "tests/every_target.h"
#include "tests/typed_tensor.h"

namespace {

using rotary_test::TypedTensor;

constexpr int64_t kBatch = 4, kSeq = 7;
const std::vector<int64_t> kOffsets = {0, 5, 1000, 131000};

// The ids the offsets stand for: offsets[b] + s, on `axes` axes (plus extra[a] on axis a).
std::vector<int64_t> IdsOf(const std::vector<int64_t>& offsets, int axes = 1, const std::vector<int64_t>& extra = {}) {
  std::vector<int64_t> ids;
  for (int a = 0; a < axes; ++a) {
    for (int64_t b = 0; b < kBatch; ++b) {
      for (int64_t s = 0; s < kSeq; ++s) ids.push_back(offsets[b] + s + (extra.empty() ? 0 : extra[a] * s));
    }
  }
  return ids;
}

class SequenceOffsetsTest : public rotary_test::EveryTargetTest {};

TEST_P(SequenceOffsetsTest, EqualTheSamePositionsGivenAsIds) {
  for (rotary::TableMode mode : {rotary::TableMode::kFull, rotary::TableMode::kCompact, rotary::TableMode::kOnTheFly}) {
    for (rotary_dtype dtype : {ROTARY_F32, ROTARY_BF16}) {
      SCOPED_TRACE(::testing::Message() << "mode " << static_cast<int>(mode) << " dtype " << dtype);
      const rotary::Rope rope(rotary::Config().head_dim(64).table_mode(mode).max_positions(64));
      TypedTensor q(dtype, kBatch, kSeq, 4, 64), k(dtype, kBatch, kSeq, 2, 64);
      q.FillRandom(1);
      k.FillRandom(2);
      const std::vector<int64_t> ids = IdsOf(kOffsets);
      // In place, q and k with a q scale.
      TypedTensor q1 = q, k1 = k, q2 = q, k2 = k;
      rope.apply_qk(q1.view(), k1.view(), rotary::Positions::PerSequence(kOffsets), 0.5f);
      rope.apply_qk(q2.view(), k2.view(), ids, 0.5f);
      EXPECT_EQ(q1.bytes(), q2.bytes());
      EXPECT_EQ(k1.bytes(), k2.bytes());
      // The inverse, with a scalar offset on top.
      TypedTensor x1 = q, x2 = q;
      rope.apply_inverse(x1.view(), rotary::Positions(3).with_sequence_offsets(kOffsets));
      rope.apply_inverse(x2.view(), rotary::Positions(ids, 3));
      EXPECT_EQ(x1.bytes(), x2.bytes());
      // Out of place, to f16, with ids as well as offsets.
      const std::vector<int64_t> small(kBatch * kSeq, 2);
      TypedTensor y1(ROTARY_F16, kBatch, kSeq, 4, 64), y2(ROTARY_F16, kBatch, kSeq, 4, 64);
      rope.apply_to(q.view(), y1.view(), rotary::Positions(small).with_sequence_offsets(kOffsets));
      std::vector<int64_t> moved = ids;
      for (int64_t i = 0; i < kBatch * kSeq; ++i) moved[i] = kOffsets[i / kSeq] + 2;
      rope.apply_to(q.view(), y2.view(), moved);
      EXPECT_EQ(y1.bytes(), y2.bytes());
      // qk-norm.
      const std::vector<float> w(64, 1.25f);
      TypedTensor q3 = q, q4 = q;
      rope.apply(q3.view(), rotary::QkNorm(w, {}), rotary::Positions::PerSequence(kOffsets));
      rope.apply(q4.view(), rotary::QkNorm(w, {}), ids);
      EXPECT_EQ(q3.bytes(), q4.bytes());
    }
  }
}

// Multi-axis ids: the offset of a sequence moves every axis.
TEST_P(SequenceOffsetsTest, MoveEveryAxisOfMultiAxisIds) {
  const rotary::Rope rope(rotary::Config().head_dim(64).mrope_section({8, 12, 12}).max_positions(64));
  TypedTensor q(ROTARY_F32, kBatch, kSeq, 3, 64);
  q.FillRandom(5);
  const std::vector<int64_t> zeros(kBatch, 0);
  const std::vector<int64_t> axis_ids = IdsOf(zeros, 3, {1, 2, 3});  // the axes differ
  std::vector<int64_t> moved = axis_ids;
  for (size_t i = 0; i < moved.size(); ++i) moved[i] += kOffsets[(i / kSeq) % kBatch];
  TypedTensor q1 = q, q2 = q;
  rope.apply(q1.view(), rotary::Positions::Axes(axis_ids, 3).with_sequence_offsets(kOffsets));
  rope.apply(q2.view(), rotary::Positions::Axes(moved, 3));
  EXPECT_EQ(q1.bytes(), q2.bytes());
}

ROTARY_TEST_EVERY_TARGET(SequenceOffsetsTest);

TEST(SequenceOffsets, BadOffsetsAreErrorsThatWriteNothing) {
  const rotary::Rope rope(rotary::Config().head_dim(16).position_limit(1 << 20));
  TypedTensor x(ROTARY_F32, 2, 3, 1, 16);
  x.FillRandom(1);
  const TypedTensor before = x;
  rotary_tensor t = x.raw();
  struct Bad {
    std::vector<int64_t> offsets;
    int64_t offset;
    const char* message;
  };
  const int64_t big = std::numeric_limits<int64_t>::max();
  const std::vector<Bad> cases = {
      {{0, -1}, 0, "offset + batch_offsets[b] = -1 is negative"},
      {{0, 5}, -6, "is negative"},
      {{(1 << 20) - 2, 0}, 0, "is not below position_limit"},
      {{0, big}, 1, "overflows int64"},
  };
  for (const Bad& bad : cases) {
    rotary_apply_options options;
    rotary_apply_options_init(&options);
    options.offset = bad.offset;
    options.batch_offsets = bad.offsets.data();
    EXPECT_EQ(rotary_apply_with(rope.handle(), &t, &t, nullptr, nullptr, &options), ROTARY_OUT_OF_RANGE);
    EXPECT_NE(std::string(rotary_last_error()).find(bad.message), std::string::npos) << rotary_last_error();
    EXPECT_EQ(x.bytes(), before.bytes());
  }
  // With ids: the message names the entry.
  const std::vector<int64_t> ids = {0, 1, 2, 0, 1, 2};
  rotary_apply_options options;
  rotary_apply_options_init(&options);
  const std::vector<int64_t> offsets = {0, (1 << 20) - 2};
  options.positions = ids.data();
  options.batch_offsets = offsets.data();
  EXPECT_EQ(rotary_apply_with(rope.handle(), &t, &t, nullptr, nullptr, &options), ROTARY_OUT_OF_RANGE);
  EXPECT_NE(std::string(rotary_last_error()).find("positions[5]"), std::string::npos) << rotary_last_error();
  // Options a call cannot take.
  options.batch_offsets = nullptr;
  options.inverse = 2;
  EXPECT_EQ(rotary_apply_with(rope.handle(), &t, &t, nullptr, nullptr, &options), ROTARY_INVALID_ARGUMENT);
  rotary_qk_norm norm;
  rotary_qk_norm_init(&norm);
  options.inverse = 1;
  options.norm = &norm;
  EXPECT_EQ(rotary_apply_with(rope.handle(), &t, &t, nullptr, nullptr, &options), ROTARY_INVALID_ARGUMENT);
  options.struct_size = 0;
  EXPECT_EQ(rotary_apply_with(rope.handle(), &t, &t, nullptr, nullptr, &options), ROTARY_INVALID_ARGUMENT);
  EXPECT_NE(std::string(rotary_last_error()).find("rotary_apply_options_init"), std::string::npos);
  EXPECT_EQ(x.bytes(), before.bytes());
  // NULL options: the defaults (positions s).
  TypedTensor y = before, z = before;
  rotary_tensor ty = y.raw();
  EXPECT_EQ(rotary_apply_with(rope.handle(), &ty, &ty, nullptr, nullptr, nullptr), ROTARY_OK);
  rope.apply(z.view());
  EXPECT_EQ(y.bytes(), z.bytes());
  // C++: a vector of offsets that is not one per sequence.
  try {
    rope.apply(x.view(), rotary::Positions::PerSequence({1, 2, 3}));
    ADD_FAILURE() << "no exception";
  } catch (const rotary::Error& e) {
    EXPECT_NE(std::string(e.what()).find("3 sequence offsets for batch = 2"), std::string::npos) << e.what();
  }
  EXPECT_EQ(x.bytes(), before.bytes());
}

}  // namespace
