// Borrowed tables (rotary_create_borrowed, Rope(config, BorrowedTable)) on
// every target: a caller's cos/sin cache in ONNX's layout (two arrays) and
// vLLM's (one array, read in place) gives, for the same values, the bits of
// rotary's own full table, for every entry point kind, pairing, storage,
// multi-axis ids and qk-norm; f16/bf16 caches rotate by their own values
// (float64 reference); the inverse undoes the table's rotation, attention
// factor included; positions beyond the cache and bad tables are errors that
// write nothing.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "rotary/rotary.hpp"
#include "tests/error_bounds.h"
#include "tests/every_target.h"
#include "tests/reference.h"
#include "tests/tensor_compare.h"
#include "tests/typed_tensor.h"

namespace {

using rotary_test::SameBits;
using rotary_test::TypedTensor;

constexpr int64_t kRows = 300;
constexpr int kHeadDim = 80, kRotaryDim = 40;  // partial; 20 pairs: a partial vector on every target

// A model with an attention factor (YaRN's m != 1), so a table that carries one is tested.
rotary::Config ModelConfig(int head_dim, int rotary_dim, rotary::Pairing pairing) {
  return rotary::Config().head_dim(head_dim).rotary_dim(rotary_dim).pairing(pairing).yarn(4.0, 64).max_positions(kRows)
      .table_mode(rotary::TableMode::kFull);
}

// The rows of the model's own full table in vLLM's layout ([kRows, rotary_dim]: the cos of every pair,
// then its sin), read through the library: a neox head of rotary_dim / 2 ones then zeros, rotated at
// position p, is exactly (cos, sin) of row p (1 * c and 1 * s are exact; the zero halves add nothing).
std::vector<float> OwnRows(int rotary_dim) {
  const rotary::Rope own(ModelConfig(rotary_dim, rotary_dim, rotary::Pairing::kNeox));
  std::vector<float> rows(kRows * rotary_dim, 0.0f);
  for (int64_t p = 0; p < kRows; ++p) {
    for (int i = 0; i < rotary_dim / 2; ++i) rows[p * rotary_dim + i] = 1.0f;
  }
  own.apply(rotary::Tensor(rows.data(), 1, kRows, 1, rotary_dim));
  return rows;
}

// The same values as ONNX's cos_cache and sin_cache ([kRows, rotary_dim / 2] each).
void SplitRows(const std::vector<float>& rows, int rotary_dim, std::vector<float>& cos, std::vector<float>& sin) {
  const int pairs = rotary_dim / 2;
  cos.assign(kRows * pairs, 0.0f);
  sin.assign(kRows * pairs, 0.0f);
  for (int64_t p = 0; p < kRows; ++p) {
    for (int i = 0; i < pairs; ++i) {
      cos[p * pairs + i] = rows[p * rotary_dim + i];
      sin[p * pairs + i] = rows[p * rotary_dim + pairs + i];
    }
  }
}

// The borrowing config: the model's shape, no frequencies of its own.
rotary::Config BorrowingConfig(int head_dim, int rotary_dim, rotary::Pairing pairing) {
  return rotary::Config().head_dim(head_dim).rotary_dim(rotary_dim).pairing(pairing);
}

std::vector<int64_t> RandomIds(int64_t count, uint32_t seed, int64_t below = kRows) {
  std::mt19937 rng(seed);
  std::vector<int64_t> ids(count);
  for (int64_t& id : ids) id = static_cast<int64_t>(rng() % static_cast<uint32_t>(below));
  ids.back() = below - 1;  // the last row: reads end at the cache's end
  return ids;
}

class BorrowedTableTest : public rotary_test::EveryTargetTest {};

// Every call through a borrowed copy of the own table's values equals the own table's call, bit for bit.
TEST_P(BorrowedTableTest, GivesTheOwnTablesBitsForItsValues) {
  const std::vector<float> rows = OwnRows(kRotaryDim);
  std::vector<float> cos, sin;
  SplitRows(rows, kRotaryDim, cos, sin);
  for (rotary::Pairing pairing : {rotary::Pairing::kNeox, rotary::Pairing::kInterleaved}) {
    const rotary::Rope own(ModelConfig(kHeadDim, kRotaryDim, pairing));
    const rotary::Rope vllm(BorrowingConfig(kHeadDim, kRotaryDim, pairing),
                            rotary::BorrowedTable::vllm(rows.data(), kRows, kRotaryDim));
    const rotary::Rope onnx(BorrowingConfig(kHeadDim, kRotaryDim, pairing),
                            rotary::BorrowedTable::onnx(cos.data(), sin.data(), kRows, kRotaryDim));
    EXPECT_EQ(vllm.table_mode(), rotary::TableMode::kBorrowed);
    EXPECT_EQ(vllm.table_bytes(), 0);
    for (rotary_dtype dtype : {ROTARY_F32, ROTARY_F16, ROTARY_BF16}) {
      SCOPED_TRACE(::testing::Message() << "pairing " << static_cast<int>(pairing) << " dtype " << dtype);
      TypedTensor q(dtype, 2, 9, 4, kHeadDim), k(dtype, 2, 9, 2, kHeadDim);
      q.FillRandom(1);
      k.FillRandom(2);
      const std::vector<int64_t> ids = RandomIds(2 * 9, 3);
      // q and k in place with a q scale, explicit ids.
      std::vector<TypedTensor> qs(3, q), ks(3, k);
      const rotary::Rope* ropes[3] = {&own, &vllm, &onnx};
      for (int r = 0; r < 3; ++r) ropes[r]->apply_qk(qs[r].view(), ks[r].view(), ids, 0.25f);
      for (int r = 1; r < 3; ++r) {
        EXPECT_TRUE(SameBits(qs[r], qs[0])) << "rope " << r;
        EXPECT_TRUE(SameBits(ks[r], ks[0])) << "rope " << r;
      }
      // Out of place to bf16, positions offset + s, per-sequence offsets.
      std::vector<TypedTensor> ys(3, TypedTensor(ROTARY_BF16, 2, 9, 4, kHeadDim));
      for (int r = 0; r < 3; ++r) {
        ropes[r]->apply_to(q.view(), ys[r].view(), rotary::Positions(5).with_sequence_offsets({0, kRows - 9 - 5}));
      }
      for (int r = 1; r < 3; ++r) EXPECT_TRUE(SameBits(ys[r], ys[0])) << "rope " << r;
      // qk-norm then RoPE.
      const std::vector<float> w(kHeadDim, 0.75f);
      std::vector<TypedTensor> ns(3, q);
      for (int r = 0; r < 3; ++r) ropes[r]->apply(ns[r].view(), rotary::QkNorm(w, {}), ids);
      for (int r = 1; r < 3; ++r) EXPECT_TRUE(SameBits(ns[r], ns[0])) << "rope " << r;
    }
  }
}

// M-RoPE over a borrowed table: each pair reads its axis's row of the caller's cache.
TEST_P(BorrowedTableTest, MultiAxisIdsReadEachAxissRow) {
  const int rotary_dim = 64;
  const std::vector<float> rows = OwnRows(rotary_dim);
  std::vector<float> cos, sin;
  SplitRows(rows, rotary_dim, cos, sin);
  for (bool interleaved : {false, true}) {
    const rotary::Rope own(ModelConfig(rotary_dim, rotary_dim, rotary::Pairing::kNeox).mrope_section({8, 12, 12}, interleaved));
    const rotary::Rope vllm(BorrowingConfig(rotary_dim, rotary_dim, rotary::Pairing::kNeox).mrope_section({8, 12, 12}, interleaved),
                            rotary::BorrowedTable::vllm(rows.data(), kRows, rotary_dim));
    const rotary::Rope onnx(BorrowingConfig(rotary_dim, rotary_dim, rotary::Pairing::kNeox).mrope_section({8, 12, 12}, interleaved),
                            rotary::BorrowedTable::onnx(cos.data(), sin.data(), kRows, rotary_dim));
    TypedTensor x(ROTARY_F32, 1, 11, 3, rotary_dim);
    x.FillRandom(4);
    const std::vector<int64_t> ids = RandomIds(3 * 11, 5);
    TypedTensor a = x, b = x, c = x;
    own.apply(a.view(), rotary::Positions::Axes(ids, 3));
    vllm.apply(b.view(), rotary::Positions::Axes(ids, 3));
    onnx.apply(c.view(), rotary::Positions::Axes(ids, 3));
    EXPECT_TRUE(SameBits(b, a));
    EXPECT_TRUE(SameBits(c, a));
  }
}

// f16 and bf16 caches (as ONNX models in f16 and vLLM's bf16 models store them): the rotation by
// the cache's own values, against the float64 reference rotating by those values.
TEST_P(BorrowedTableTest, HalfCachesRotateByTheirValues) {
  const std::vector<float> rows = OwnRows(kRotaryDim);
  const int pairs = kRotaryDim / 2;
  for (rotary_dtype table_dtype : {ROTARY_F16, ROTARY_BF16}) {
    std::vector<uint16_t> stored(rows.size());
    std::vector<double> widened(rows.size());
    for (size_t i = 0; i < rows.size(); ++i) {
      widened[i] = rotary_test::RoundTo(table_dtype, rows[i]);
      stored[i] = table_dtype == ROTARY_F16 ? rotary_test::DoubleToHalf(widened[i])
                                            : rotary_test::FloatToBFloat16(static_cast<float>(widened[i]));
    }
    for (rotary::Pairing pairing : {rotary::Pairing::kNeox, rotary::Pairing::kInterleaved}) {
      SCOPED_TRACE(::testing::Message() << "table dtype " << table_dtype << " pairing " << static_cast<int>(pairing));
      const rotary::Rope rope(BorrowingConfig(kHeadDim, kRotaryDim, pairing),
                              rotary::BorrowedTable::vllm(stored.data(), kRows, kRotaryDim,
                                                          static_cast<rotary::Dtype>(table_dtype)));
      TypedTensor x(ROTARY_F32, 2, 13, 3, kHeadDim);
      x.FillRandom(6);
      const std::vector<int64_t> ids = RandomIds(2 * 13, 7);
      TypedTensor y = x;
      rope.apply(y.view(), ids);
      const rotary_test::RefRope ref{kHeadDim, kRotaryDim, pairing == rotary::Pairing::kInterleaved};
      double worst = 0;
      std::vector<double> expected(kHeadDim);
      rotary_test::ForEachHead(x.shape(), [&](int64_t b, int64_t s, int64_t h) {
        const int64_t p = ids[b * 13 + s];
        rotary_test::ReferenceAngles angles{std::vector<double>(widened.begin() + p * kRotaryDim, widened.begin() + p * kRotaryDim + pairs),
                                            std::vector<double>(widened.begin() + p * kRotaryDim + pairs,
                                                                widened.begin() + (p + 1) * kRotaryDim)};
        for (int k = 0; k < kHeadDim; ++k) expected[k] = x.Get(b, s, h, k);
        rotary_test::ReferenceRotateHeadWithAngles(ref, angles, expected.data(), expected.data());
        for (int k = 0; k < kHeadDim; ++k) worst = std::max(worst, rotary_test::AbsError(y.Get(b, s, h, k), expected[k]));
      });
      // The entries are exact here (the reference uses them): the products' and final roundings
      // only, within the full table's bound with the cache's attention factor (YaRN's, about 1.14);
      // measured 1.8-1.9 u X on every x86 target.
      EXPECT_LE(worst, rotary_test::F32Bound(rotary_test::MaxAbs(x), 1.2));
      EXPECT_TRUE(y.OnlyHeadsChanged(x));
    }
  }
}

// The inverse is the inverse of the cache's rotation, attention factor included: in place and out of
// place, every storage of the cache, and rotary_shift is the inverse then the forward call.
TEST_P(BorrowedTableTest, InverseUndoesTheTablesRotation) {
  const std::vector<float> rows = OwnRows(kRotaryDim);
  std::vector<uint16_t> bf16(rows.size());
  for (size_t i = 0; i < rows.size(); ++i) bf16[i] = rotary_test::FloatToBFloat16(rows[i]);
  std::vector<float> cos, sin;
  SplitRows(rows, kRotaryDim, cos, sin);
  const rotary::BorrowedTable tables[3] = {rotary::BorrowedTable::vllm(rows.data(), kRows, kRotaryDim),
                                           rotary::BorrowedTable::onnx(cos.data(), sin.data(), kRows, kRotaryDim),
                                           rotary::BorrowedTable::vllm(bf16.data(), kRows, kRotaryDim, rotary::Dtype::kBF16)};
  for (rotary::Pairing pairing : {rotary::Pairing::kNeox, rotary::Pairing::kInterleaved}) {
    for (int t = 0; t < 3; ++t) {
      SCOPED_TRACE(::testing::Message() << "pairing " << static_cast<int>(pairing) << " table " << t);
      const rotary::Rope rope(BorrowingConfig(kHeadDim, kRotaryDim, pairing), tables[t]);
      TypedTensor x(ROTARY_F32, 2, 9, 3, kHeadDim);
      x.FillRandom(8);
      const std::vector<int64_t> ids = RandomIds(2 * 9, 9);
      TypedTensor y = x, z(ROTARY_F32, 2, 9, 3, kHeadDim);
      rope.apply(y.view(), ids);
      rope.apply_inverse_to(y.view(), z.view(), ids);
      // The round trip's bound (measured: 3.0 u X on every x86 target), plus the inverse's entries
      // (c, -s) / (c^2 + s^2): four roundings, 2 u relative beyond the table's half ulp, on a
      // pair of inputs up to sqrt(2) X.
      const double max_x = rotary_test::MaxAbs(x);
      EXPECT_LE(rotary_test::MaxDifference(z, x),
                rotary_test::RoundTripBound(max_x) + 4 * std::sqrt(2.0) * rotary_test::kF32Unit * max_x);
      rope.apply_inverse(y.view(), ids);
      EXPECT_TRUE(SameBits(y, z));
      // Shift by 7: inverse at the ids, forward at ids + 7, bit for bit.
      std::vector<int64_t> low = ids;
      for (int64_t& id : low) id = id % (kRows - 7);
      TypedTensor s1 = x, s2 = x;
      rope.shift(s1.view(), low, 7);
      rope.apply_inverse(s2.view(), low);
      rope.apply(s2.view(), rotary::Positions(low, 7));
      EXPECT_TRUE(SameBits(s1, s2));
    }
  }
}

ROTARY_TEST_EVERY_TARGET(BorrowedTableTest);

TEST(BorrowedTable, PositionsBeyondTheCacheAreErrorsThatWriteNothing) {
  const std::vector<float> rows = OwnRows(kRotaryDim);
  const rotary::Rope rope(BorrowingConfig(kHeadDim, kRotaryDim, rotary::Pairing::kNeox),
                          rotary::BorrowedTable::vllm(rows.data(), kRows, kRotaryDim));
  TypedTensor x(ROTARY_F32, 1, 4, 2, kHeadDim);
  x.FillRandom(1);
  const TypedTensor before = x;
  const std::vector<std::vector<int64_t>> bad = {{0, 1, 2, kRows}, {0, -1, 2, 3}};
  for (const std::vector<int64_t>& ids : bad) {
    try {
      rope.apply(x.view(), ids);
      ADD_FAILURE() << "no exception";
    } catch (const rotary::Error& e) {
      EXPECT_EQ(e.status(), rotary::Status::kOutOfRange);
      EXPECT_NE(std::string(e.what()).find("table.rows = 300"), std::string::npos) << e.what();
    }
  }
  EXPECT_THROW(rope.apply(x.view(), rotary::Positions(kRows - 3)), rotary::Error);  // offset + s reaches kRows
  EXPECT_TRUE(SameBits(x, before));
  rope.apply(x.view(), rotary::Positions(kRows - 4));  // the last rows: fine
  EXPECT_NE(x.bytes(), before.bytes());
}

TEST(BorrowedTable, BadTablesAndConfigsAreErrors) {
  const std::vector<float> rows(kRows * 64, 0.5f);
  rotary_config config;
  rotary_config_init(&config);
  config.head_dim = 64;
  rotary_rope* rope = nullptr;
  struct Case {
    const char* what;
    void (*edit)(rotary_borrowed_table&, rotary_config&);
    rotary_status status;
    const char* message;
  };
  const Case cases[] = {
      {"cos NULL", [](rotary_borrowed_table& t, rotary_config&) { t.cos = nullptr; }, ROTARY_INVALID_ARGUMENT, "table.cos is NULL"},
      {"sin NULL", [](rotary_borrowed_table& t, rotary_config&) { t.sin = nullptr; }, ROTARY_INVALID_ARGUMENT, "table.sin is NULL"},
      {"no rows", [](rotary_borrowed_table& t, rotary_config&) { t.rows = 0; }, ROTARY_INVALID_ARGUMENT, "table.rows = 0"},
      {"short rows", [](rotary_borrowed_table& t, rotary_config&) { t.row_stride = 31; }, ROTARY_INVALID_ARGUMENT,
       "table.row_stride = 31"},
      {"dtype", [](rotary_borrowed_table& t, rotary_config&) { t.dtype = static_cast<rotary_dtype>(7); },
       ROTARY_INVALID_ARGUMENT, "table.dtype = 7"},
      {"uninitialized", [](rotary_borrowed_table& t, rotary_config&) { t.struct_size = 0; }, ROTARY_INVALID_ARGUMENT,
       "rotary_borrowed_table_init"},
      {"newer field", [](rotary_borrowed_table& t, rotary_config&) { t.struct_size = sizeof(t) + 8; },
       ROTARY_UNSUPPORTED, "newer rotary.h"},
      {"scaling", [](rotary_borrowed_table&, rotary_config& c) { c.scaling = ROTARY_SCALING_LINEAR, c.factor = 2; },
       ROTARY_INVALID_ARGUMENT, "config.scaling = 1 with a borrowed table"},
      {"attention factor", [](rotary_borrowed_table&, rotary_config& c) { c.attention_factor = 1.5; },
       ROTARY_INVALID_ARGUMENT, "config.attention_factor = 1.5 with a borrowed table"},
      {"table mode", [](rotary_borrowed_table&, rotary_config& c) { c.table_mode = ROTARY_TABLE_FULL; },
       ROTARY_INVALID_ARGUMENT, "config.table_mode = 1 with a borrowed table"},
      {"bad config", [](rotary_borrowed_table&, rotary_config& c) { c.head_dim = 3; }, ROTARY_INVALID_ARGUMENT, "head_dim"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    // A struct with room past this header's, for the "newer field" case (zeros there are accepted).
    struct {
      rotary_borrowed_table table;
      uint64_t newer = 1;
    } grown;
    rotary_borrowed_table_vllm(&grown.table, rows.data(), kRows, 64, ROTARY_F32);
    rotary_config bad = config;
    c.edit(grown.table, bad);
    rope = reinterpret_cast<rotary_rope*>(&grown);  // must be reset to NULL on failure
    EXPECT_EQ(rotary_create_borrowed(&bad, &grown.table, &rope), c.status);
    EXPECT_EQ(rope, nullptr);
    EXPECT_NE(std::string(rotary_last_error()).find(c.message), std::string::npos) << rotary_last_error();
  }
  EXPECT_EQ(rotary_create_borrowed(&config, nullptr, &rope), ROTARY_INVALID_ARGUMENT);
  EXPECT_NE(std::string(rotary_last_error()).find("table is NULL"), std::string::npos) << rotary_last_error();
  // A good one, and what it reports.
  rotary_borrowed_table table;
  rotary_borrowed_table_vllm(&table, rows.data(), kRows, 64, ROTARY_F32);
  ASSERT_EQ(rotary_create_borrowed(&config, &table, &rope), ROTARY_OK) << rotary_last_error();
  EXPECT_EQ(rotary_table_mode_of(rope), ROTARY_TABLE_BORROWED);
  EXPECT_EQ(rotary_table_bytes(rope), 0);
  EXPECT_EQ(rotary_table_count(rope), 0);
  rotary_destroy(rope);
  // C++: a 16-bit table named f32.
  const std::vector<uint16_t> half(kRows * 64);
  EXPECT_THROW(rotary::BorrowedTable::vllm(half.data(), kRows, 64, rotary::Dtype::kF32), rotary::Error);
}

}  // namespace
