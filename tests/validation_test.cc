// Bad input through the C ABI: each case asserts the status, a message naming
// the argument, and that the caller's memory was not touched. The calls that
// reach a rope (bad tensors, positions, two-tensor calls) run on every target
// this CPU supports; config validation and the target list run once.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <ostream>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "lib/call/tensor_layout.h"
#include "rotary/rotary.h"
#include "tests/every_target.h"
#include "tests/typed_tensor.h"

namespace {

constexpr int64_t kI64Max = std::numeric_limits<int64_t>::max();

struct ConfigCase {
  const char* name;
  std::function<void(rotary_config&)> breaks;
  rotary_status status;
  const char* message_mentions;
};

void PrintTo(const ConfigCase& c, std::ostream* os) { *os << c.name; }

class BadConfig : public ::testing::TestWithParam<ConfigCase> {};

TEST_P(BadConfig, IsRejectedWithStatusAndMessage) {
  rotary_config config;
  rotary_config_init(&config);
  GetParam().breaks(config);
  rotary_rope* rope = reinterpret_cast<rotary_rope*>(0x1);  // must be reset to NULL
  EXPECT_EQ(rotary_create(&config, &rope), GetParam().status);
  EXPECT_EQ(rope, nullptr);
  EXPECT_NE(std::string(rotary_last_error()).find(GetParam().message_mentions), std::string::npos)
      << rotary_last_error();
}

const double kNaN = std::numeric_limits<double>::quiet_NaN();
const double kInf = std::numeric_limits<double>::infinity();

INSTANTIATE_TEST_SUITE_P(
    CApi, BadConfig,
    ::testing::Values(
        ConfigCase{"OddHeadDim", [](rotary_config& c) { c.head_dim = 7; }, ROTARY_INVALID_ARGUMENT, "head_dim"},
        ConfigCase{"ZeroHeadDim", [](rotary_config& c) { c.head_dim = 0; }, ROTARY_INVALID_ARGUMENT, "head_dim"},
        ConfigCase{"NegativeHeadDim", [](rotary_config& c) { c.head_dim = -8; }, ROTARY_INVALID_ARGUMENT,
                   "head_dim"},
        ConfigCase{"HugeHeadDim", [](rotary_config& c) { c.head_dim = c.rotary_dim = 1 << 20; },
                   ROTARY_INVALID_ARGUMENT, "head_dim"},
        ConfigCase{"RotaryDimAboveHeadDim", [](rotary_config& c) { c.rotary_dim = 130; }, ROTARY_INVALID_ARGUMENT,
                   "rotary_dim"},
        ConfigCase{"OddRotaryDim", [](rotary_config& c) { c.rotary_dim = 63; }, ROTARY_INVALID_ARGUMENT,
                   "rotary_dim"},
        ConfigCase{"NegativeRotaryDim", [](rotary_config& c) { c.rotary_dim = -2; }, ROTARY_INVALID_ARGUMENT,
                   "rotary_dim"},
        ConfigCase{"NegativeBase", [](rotary_config& c) { c.base = -10000; }, ROTARY_INVALID_ARGUMENT, "base"},
        ConfigCase{"NaNBase", [](rotary_config& c) { c.base = kNaN; }, ROTARY_INVALID_ARGUMENT, "base"},
        ConfigCase{"InfiniteBase", [](rotary_config& c) { c.base = kInf; }, ROTARY_INVALID_ARGUMENT, "base"},
        ConfigCase{"BaseOne", [](rotary_config& c) { c.base = 1.0; }, ROTARY_INVALID_ARGUMENT, "base"},
        ConfigCase{"UnknownPairing", [](rotary_config& c) { c.pairing = static_cast<rotary_pairing>(7); },
                   ROTARY_INVALID_ARGUMENT, "pairing"},
        ConfigCase{"ZeroMaxPositions", [](rotary_config& c) { c.max_positions = 0; }, ROTARY_INVALID_ARGUMENT,
                   "max_positions"},
        ConfigCase{"MaxPositionsAboveLimit", [](rotary_config& c) { c.max_positions = c.position_limit + 1; },
                   ROTARY_INVALID_ARGUMENT, "max_positions"},
        ConfigCase{"ZeroPositionLimit", [](rotary_config& c) { c.position_limit = 0; }, ROTARY_INVALID_ARGUMENT,
                   "position_limit"},
        ConfigCase{"AbsurdPositionLimit", [](rotary_config& c) { c.position_limit = kI64Max; },
                   ROTARY_INVALID_ARGUMENT, "position_limit"},
        // Each field valid alone, the plan unusable in f32 (inf or NaN outputs with ROTARY_OK before).
        ConfigCase{"LinearFactorMakesInvFreqInfinite",
                   [](rotary_config& c) {
                     c.scaling = ROTARY_SCALING_LINEAR;
                     c.factor = 1e-310;
                   },
                   ROTARY_INVALID_ARGUMENT, "inv_freq[0] = inf"},
        ConfigCase{"NtkAlphaMakesBaseZero",
                   [](rotary_config& c) {
                     c.scaling = ROTARY_SCALING_NTK;
                     c.alpha = 1e-200;
                     c.rotary_dim = 4;
                   },
                   ROTARY_INVALID_ARGUMENT, "inv_freq[1]"},
        ConfigCase{"InvFreqTimesLastPositionOverflows",
                   [](rotary_config& c) {
                     static const std::vector<double> kHuge(64, 1e308);  // one per pair of rotary_dim 128
                     c.scaling = ROTARY_SCALING_INV_FREQ;
                     c.inv_freq = rotary_array{kHuge.data(), 64};
                   },
                   ROTARY_INVALID_ARGUMENT, "position_limit - 1"},
        ConfigCase{"AttentionFactorWithoutF32Inverse", [](rotary_config& c) { c.attention_factor = 1e-40; },
                   ROTARY_INVALID_ARGUMENT, "attention factor"},
        ConfigCase{"AttentionFactorBeyondF32", [](rotary_config& c) { c.attention_factor = 1e39; },
                   ROTARY_INVALID_ARGUMENT, "attention factor"}),
    [](const ::testing::TestParamInfo<ConfigCase>& info) { return info.param.name; });

TEST(CApi, CreateRejectsNullPointers) {
  rotary_config config;
  rotary_config_init(&config);
  EXPECT_EQ(rotary_create(nullptr, nullptr), ROTARY_INVALID_ARGUMENT);
  rotary_rope* rope = nullptr;
  EXPECT_EQ(rotary_create(nullptr, &rope), ROTARY_INVALID_ARGUMENT);
  EXPECT_NE(std::string(rotary_last_error()).find("config"), std::string::npos);
  EXPECT_EQ(rotary_create(&config, nullptr), ROTARY_INVALID_ARGUMENT);
  EXPECT_NE(std::string(rotary_last_error()).find("out"), std::string::npos);
  rotary_destroy(nullptr);  // a no-op
}

// ---- apply-time failures: nothing may be written ----

struct ApplyCase {
  const char* name;
  // May change the tensor view, and the explicit positions / offset of the call.
  std::function<void(rotary_tensor&, std::vector<int64_t>& ids, bool& use_ids, int64_t& offset)> breaks;
  rotary_status status;
  const char* message_mentions;
};

void PrintTo(const ApplyCase& c, std::ostream* os) { *os << c.name; }

class BadApply : public ::testing::TestWithParam<ApplyCase> {};

TEST_P(BadApply, IsRejectedAndWritesNothing) {
  rotary_test::ForEachSupportedTarget([&] {
    rotary_config config;
    rotary_config_init(&config);
    config.head_dim = config.rotary_dim = 16;
    config.position_limit = 1 << 20;
    rotary_rope* rope = nullptr;
    ASSERT_EQ(rotary_create(&config, &rope), ROTARY_OK);

    rotary_test::TypedTensor x(rotary_test::Shape{2, 3, 4, 16}, 1);
    const std::vector<uint8_t> before = x.bytes();
    rotary_tensor t = x.raw();
    std::vector<int64_t> ids = {0, 1, 2, 3, 4, 5};
    bool use_ids = false;
    int64_t offset = 0;
    GetParam().breaks(t, ids, use_ids, offset);

    for (bool inverse : {false, true}) {
      const rotary_status status = inverse ? rotary_apply_inverse(rope, &t, use_ids ? ids.data() : nullptr, offset)
                                           : rotary_apply(rope, &t, use_ids ? ids.data() : nullptr, offset);
      EXPECT_EQ(status, GetParam().status);
      EXPECT_NE(std::string(rotary_last_error()).find(GetParam().message_mentions), std::string::npos)
          << rotary_last_error();
      EXPECT_EQ(x.bytes(), before) << "memory changed by a failed call";
    }
    rotary_destroy(rope);
  });
}

using Ids = std::vector<int64_t>;
INSTANTIATE_TEST_SUITE_P(
    CApi, BadApply,
    ::testing::Values(
        ApplyCase{"NullData", [](rotary_tensor& t, Ids&, bool&, int64_t&) { t.data = nullptr; },
                  ROTARY_INVALID_ARGUMENT, "data"},
        ApplyCase{"ZeroBatch", [](rotary_tensor& t, Ids&, bool&, int64_t&) { t.batch = 0; },
                  ROTARY_INVALID_ARGUMENT, "batch"},
        ApplyCase{"NegativeSeq", [](rotary_tensor& t, Ids&, bool&, int64_t&) { t.seq = -3; },
                  ROTARY_INVALID_ARGUMENT, "seq"},
        ApplyCase{"ZeroHeads", [](rotary_tensor& t, Ids&, bool&, int64_t&) { t.heads = 0; },
                  ROTARY_INVALID_ARGUMENT, "heads"},
        ApplyCase{"UnknownDtype", [](rotary_tensor& t, Ids&, bool&, int64_t&) { t.dtype = (rotary_dtype)9; },
                  ROTARY_INVALID_ARGUMENT, "dtype"},
        ApplyCase{"HeadsOverlap", [](rotary_tensor& t, Ids&, bool&, int64_t&) { t.stride_head = 8; },
                  ROTARY_INVALID_ARGUMENT, "stride_head"},
        ApplyCase{"RowsOverlap", [](rotary_tensor& t, Ids&, bool&, int64_t&) { t.stride_seq = 40; },
                  ROTARY_INVALID_ARGUMENT, "stride_seq"},
        ApplyCase{"BatchesOverlap", [](rotary_tensor& t, Ids&, bool&, int64_t&) { t.stride_batch = 64; },
                  ROTARY_INVALID_ARGUMENT, "stride_batch"},
        ApplyCase{"ZeroStrideHead", [](rotary_tensor& t, Ids&, bool&, int64_t&) { t.stride_head = 0; },
                  ROTARY_INVALID_ARGUMENT, "stride_head"},
        ApplyCase{"NegativeStride", [](rotary_tensor& t, Ids&, bool&, int64_t&) { t.stride_seq = -64; },
                  ROTARY_INVALID_ARGUMENT, "stride_seq"},
        ApplyCase{"ExtentOverflows",
                  [](rotary_tensor& t, Ids&, bool&, int64_t&) {
                    t.batch = 3;
                    t.stride_batch = kI64Max / 2 + 1;
                  },
                  ROTARY_INVALID_ARGUMENT, "overflows"},
        ApplyCase{"ExtentBeyondAddressSpace",
                  [](rotary_tensor& t, Ids&, bool&, int64_t&) { t.stride_batch = kI64Max / 4; },
                  ROTARY_INVALID_ARGUMENT, "address space"},
        ApplyCase{"NegativeOffset", [](rotary_tensor&, Ids&, bool&, int64_t& o) { o = -1; }, ROTARY_OUT_OF_RANGE,
                  "offset"},
        ApplyCase{"OffsetBeyondLimit", [](rotary_tensor&, Ids&, bool&, int64_t& o) { o = (1 << 20) - 2; },
                  ROTARY_OUT_OF_RANGE, "position_limit"},
        ApplyCase{"OffsetNearInt64Max", [](rotary_tensor&, Ids&, bool&, int64_t& o) { o = kI64Max; },
                  ROTARY_OUT_OF_RANGE, "position_limit"},
        ApplyCase{"NegativeExplicitPosition",
                  [](rotary_tensor&, Ids& ids, bool& use, int64_t&) { use = true; ids[4] = -2; },
                  ROTARY_OUT_OF_RANGE, "positions[4]"},
        ApplyCase{"ExplicitPositionAtLimit",
                  [](rotary_tensor&, Ids& ids, bool& use, int64_t&) { use = true; ids[5] = 1 << 20; },
                  ROTARY_OUT_OF_RANGE, "positions[5]"},
        ApplyCase{"PositionPlusOffsetOverflows",
                  [](rotary_tensor&, Ids& ids, bool& use, int64_t& o) { use = true; ids[0] = kI64Max; o = 5; },
                  ROTARY_OUT_OF_RANGE, "positions[0]"},
        ApplyCase{"PositionPlusOffsetNegative",
                  [](rotary_tensor&, Ids& ids, bool& use, int64_t& o) { use = true; ids[2] = 3; o = -4; },
                  ROTARY_OUT_OF_RANGE, "positions[0]"}),
    [](const ::testing::TestParamInfo<ApplyCase>& info) { return info.param.name; });

TEST(CApi, ApplyRejectsNullRopeAndTensor) {
  rotary_config config;
  rotary_config_init(&config);
  rotary_rope* rope = nullptr;
  ASSERT_EQ(rotary_create(&config, &rope), ROTARY_OK);
  float data[128] = {};
  rotary_tensor t = {data, ROTARY_F32, 1, 1, 1, 128, 128, 128};
  EXPECT_EQ(rotary_apply(nullptr, &t, nullptr, 0), ROTARY_INVALID_ARGUMENT);
  EXPECT_NE(std::string(rotary_last_error()).find("rope"), std::string::npos);
  EXPECT_EQ(rotary_apply(rope, nullptr, nullptr, 0), ROTARY_INVALID_ARGUMENT);
  EXPECT_NE(std::string(rotary_last_error()).find("NULL"), std::string::npos);
  EXPECT_EQ(rotary_apply_inverse(rope, nullptr, nullptr, 0), ROTARY_INVALID_ARGUMENT);
  rotary_destroy(rope);
}

TEST(CApi, ForcingAnUnknownTargetFailsAndChangesNothing) {
  const std::string before = rotary_active_target();
  EXPECT_EQ(rotary_set_target("NOT_A_TARGET"), ROTARY_UNSUPPORTED);
  EXPECT_NE(std::string(rotary_last_error()).find("NOT_A_TARGET"), std::string::npos);
  EXPECT_EQ(before, rotary_active_target());
}

TEST(CApi, ListsTargetsAndForcesEachSupportedOne) {
  ASSERT_GE(rotary_target_count(), 1);
  EXPECT_EQ(rotary_target_name(-1), nullptr);
  EXPECT_EQ(rotary_target_name(rotary_target_count()), nullptr);
  for (int32_t i = 0; i < rotary_target_count(); ++i) {
    const std::string name = rotary_target_name(i);
    if (!rotary_target_supported(i)) {
      EXPECT_EQ(rotary_set_target(name.c_str()), ROTARY_UNSUPPORTED) << name;
      continue;
    }
    EXPECT_EQ(rotary_set_target(name.c_str()), ROTARY_OK) << name;
    EXPECT_EQ(name, rotary_active_target());
  }
  EXPECT_EQ(rotary_set_target(nullptr), ROTARY_OK);
  EXPECT_EQ(std::string(rotary_target_name(0)) == rotary_active_target(), rotary_target_supported(0) == 1);
}

}  // namespace

// ---- out of place, q and k, packed QKV ----

namespace {

class TwoTensorCalls : public ::testing::Test {
 protected:
  void SetUp() override {
    rotary_config config;
    rotary_config_init(&config);
    config.head_dim = config.rotary_dim = 16;
    ASSERT_EQ(rotary_create(&config, &rope_), ROTARY_OK);
    Fill();
  }
  void Fill() { buffer_.assign(4096, 0.25f); }
  void TearDown() override { rotary_destroy(rope_); }

  // A contiguous [1, 4, heads, 16] f32 view starting `at` floats into the buffer.
  rotary_tensor View(int64_t at, int64_t heads = 2) {
    return rotary_tensor{buffer_.data() + at, ROTARY_F32, 1, 4, heads, 4 * heads * 16, heads * 16, 16};
  }
  void ExpectRejected(rotary_status got, rotary_status expected, const char* mentions) {
    EXPECT_EQ(got, expected);
    EXPECT_NE(std::string(rotary_last_error()).find(mentions), std::string::npos) << rotary_last_error();
    for (float v : buffer_) ASSERT_EQ(v, 0.25f) << "a failed call wrote memory";
  }

  rotary_rope* rope_ = nullptr;
  std::vector<float> buffer_;
};

TEST_F(TwoTensorCalls, OutOfPlaceRejectsOverlapNullAndShapeMismatch) {
  rotary_test::ForEachSupportedTarget([&] {
    Fill();  // each target starts from the same buffer
    rotary_tensor src = View(0), shifted = View(8), other = View(1024), taller = View(2048, 3);
    ExpectRejected(rotary_apply_to(rope_, &src, &shifted, nullptr, 0), ROTARY_INVALID_ARGUMENT, "overlap");
    ExpectRejected(rotary_apply_to(rope_, &src, nullptr, nullptr, 0), ROTARY_INVALID_ARGUMENT, "dst");
    ExpectRejected(rotary_apply_to(rope_, nullptr, &other, nullptr, 0), ROTARY_INVALID_ARGUMENT, "src");
    ExpectRejected(rotary_apply_to(rope_, &src, &taller, nullptr, 0), ROTARY_INVALID_ARGUMENT, "heads");
    ExpectRejected(rotary_apply_inverse_to(rope_, &src, &shifted, nullptr, 0), ROTARY_INVALID_ARGUMENT, "overlap");
    // Exactly the same view is in place, and allowed.
    EXPECT_EQ(rotary_apply_to(rope_, &src, &src, nullptr, 0), ROTARY_OK);
  });
}

TEST_F(TwoTensorCalls, QkRejectsMismatchesOverlapAndBadScale) {
  rotary_test::ForEachSupportedTarget([&] {
    Fill();  // each target starts from the same buffer
    rotary_tensor q = View(0, 4), k = View(1024), k_short = View(2048);
    k_short.seq = 3;
    ExpectRejected(rotary_apply_qk(rope_, &q, &k_short, nullptr, 0, 1.0f), ROTARY_INVALID_ARGUMENT, "share positions");
    rotary_tensor k_f16 = k;
    k_f16.dtype = ROTARY_F16;
    ExpectRejected(rotary_apply_qk(rope_, &q, &k_f16, nullptr, 0, 1.0f), ROTARY_UNSUPPORTED, "storage types");
    rotary_tensor k_inside_q = View(16);
    ExpectRejected(rotary_apply_qk(rope_, &q, &k_inside_q, nullptr, 0, 1.0f), ROTARY_INVALID_ARGUMENT, "overlap");
    ExpectRejected(rotary_apply_qk(rope_, &q, &k, nullptr, 0, std::numeric_limits<float>::quiet_NaN()),
                   ROTARY_INVALID_ARGUMENT, "scale");
    ExpectRejected(rotary_apply_qk(rope_, &q, &k, nullptr, 0, std::numeric_limits<float>::infinity()),
                   ROTARY_INVALID_ARGUMENT, "scale");
    ExpectRejected(rotary_apply_qk(rope_, &q, nullptr, nullptr, 0, 1.0f), ROTARY_INVALID_ARGUMENT, "k");
    rotary_tensor q_out = View(3000, 4), k_out_on_q = View(0);
    ExpectRejected(rotary_apply_qk_to(rope_, &q, &q_out, &k, &k_out_on_q, nullptr, 0, 1.0f), ROTARY_INVALID_ARGUMENT,
                   "overlap");
    ExpectRejected(rotary_apply_qk_to(rope_, &q, nullptr, &k, &k, nullptr, 0, 1.0f), ROTARY_INVALID_ARGUMENT, "q_dst");
  });
}

// Sequence-first packed buffers ([S, B, (Hq + 2 Hkv) D], Megatron's layout):
// q and k side by side in each row, with stride_seq > stride_batch. Accepted,
// and the same as two calls; a k that reaches into the next row's q is not.
TEST_F(TwoTensorCalls, QkSideBySideInASequenceFirstBufferIsAccepted) {
  rotary_test::ForEachSupportedTarget([&] {
    Fill();  // each target starts from the same buffer
    constexpr int64_t kBatch = 2, kSeq = 3, kQHeads = 2, kRow = (kQHeads + 2) * 16;  // one k head, one v head
    auto view = [&](std::vector<float>& data, int64_t at, int64_t heads) {
      return rotary_tensor{data.data() + at, ROTARY_F32, kBatch, kSeq, heads, kRow, kBatch * kRow, 16};
    };
    std::vector<float> fused(kSeq * kBatch * kRow);
    for (size_t i = 0; i < fused.size(); ++i) fused[i] = 0.001f * static_cast<float>(i % 997) - 0.5f;
    std::vector<float> separate = fused;
    rotary_tensor q = view(fused, 0, kQHeads), k = view(fused, kQHeads * 16, 1);
    ASSERT_EQ(rotary_apply_qk(rope_, &q, &k, nullptr, 7, 1.0f), ROTARY_OK) << rotary_last_error();
    rotary_tensor q_alone = view(separate, 0, kQHeads), k_alone = view(separate, kQHeads * 16, 1);
    ASSERT_EQ(rotary_apply(rope_, &q_alone, nullptr, 7), ROTARY_OK);
    ASSERT_EQ(rotary_apply(rope_, &k_alone, nullptr, 7), ROTARY_OK);
    EXPECT_EQ(fused, separate);

    // k two heads wide from the last q head on: past the row into the next one.
    rotary_tensor q_here = View(0, kQHeads), k_too_wide = View(kQHeads * 16, 3);
    q_here.stride_batch = k_too_wide.stride_batch = kRow;
    q_here.stride_seq = k_too_wide.stride_seq = kBatch * kRow;
    q_here.batch = k_too_wide.batch = kBatch;
    q_here.seq = k_too_wide.seq = kSeq;
    ExpectRejected(rotary_apply_qk(rope_, &q_here, &k_too_wide, nullptr, 0, 1.0f), ROTARY_INVALID_ARGUMENT,
                   "may overlap");
  });
}

TEST_F(TwoTensorCalls, PackedQkvRejectsBadShapes) {
  rotary_test::ForEachSupportedTarget([&] {
    Fill();  // each target starts from the same buffer
    rotary_tensor q, k, v;
    ExpectRejected(rotary_packed_qkv_views(nullptr, ROTARY_F32, 1, 1, 4, 2, 16, &q, &k, &v), ROTARY_INVALID_ARGUMENT,
                   "data");
    ExpectRejected(rotary_packed_qkv_views(buffer_.data(), ROTARY_F32, 1, 1, 0, 2, 16, &q, &k, &v),
                   ROTARY_INVALID_ARGUMENT, "q_heads");
    ExpectRejected(rotary_packed_qkv_views(buffer_.data(), ROTARY_F32, 1, 1, 4, 2, 15, &q, &k, &v),
                   ROTARY_INVALID_ARGUMENT, "head_dim");
    ExpectRejected(rotary_packed_qkv_views(buffer_.data(), static_cast<rotary_dtype>(5), 1, 1, 4, 2, 16, &q, &k, &v),
                   ROTARY_INVALID_ARGUMENT, "dtype");
    ExpectRejected(rotary_packed_qkv_views(buffer_.data(), ROTARY_F32, 1, 1, int64_t{1} << 62, 2, 16, &q, &k, &v),
                   ROTARY_INVALID_ARGUMENT, "overflows");
    ExpectRejected(rotary_apply_packed_qkv(nullptr, buffer_.data(), ROTARY_F32, 1, 1, 4, 2, nullptr, 0, 1.0f),
                   ROTARY_INVALID_ARGUMENT, "rope");
    ExpectRejected(rotary_apply_packed_qkv(rope_, buffer_.data(), ROTARY_F32, 1, 1, 4, 2, nullptr, -1, 1.0f),
                   ROTARY_OUT_OF_RANGE, "offset");
  });
}

// What the kernels rely on: every view the validation accepts has heads that
// lie apart, none before data, the last one ending at the extent it reports.
// Small random views in every order of strides (nested, interleaved, zero and
// negative strides), each head's elements enumerated; the usual order (heads
// inside rows inside batches) and seq-first buffers among them. Both answers
// must come up often.
TEST(TensorLayout, AcceptedViewsHaveHeadsApartInsideTheirExtent) {
  std::mt19937_64 random(20261205);
  std::uniform_int_distribution<int64_t> size(1, 4), stride(-2, 40), head_bytes(1, 6), nested_slack(0, 3);
  std::vector<uint8_t> memory(1);
  int accepted = 0, rejected = 0;
  for (int trial = 0; trial < 20000; ++trial) {
    rotary_tensor x{memory.data(), ROTARY_F32, size(random), size(random), size(random), 0, 0, 0};
    const int64_t head = head_bytes(random);
    if (trial % 2 == 0) {  // random strides
      x.stride_batch = stride(random);
      x.stride_seq = stride(random);
      x.stride_head = stride(random);
    } else {  // nested, in a random order of the three dimensions
      int64_t* strides[3] = {&x.stride_head, &x.stride_seq, &x.stride_batch};
      const int64_t sizes[3] = {x.heads, x.seq, x.batch};
      int order[3] = {0, 1, 2};
      std::shuffle(order, order + 3, random);
      int64_t inside = head;
      for (int i : order) {
        *strides[i] = inside + nested_slack(random) - (trial % 7 == 1 ? 1 : 0);  // sometimes one short
        inside = *strides[i] * (sizes[i] - 1) + inside;
      }
    }
    rotary::TensorLayout layout;
    try {
      layout = rotary::ValidateByteTensor(&x, head, "x");
    } catch (const rotary::Error&) {
      ++rejected;
      continue;
    }
    ++accepted;
    std::vector<std::pair<int64_t, int64_t>> heads;  // [begin, end) of each head
    for (int64_t b = 0; b < x.batch; ++b) {
      for (int64_t s = 0; s < x.seq; ++s) {
        for (int64_t h = 0; h < x.heads; ++h) {
          const int64_t begin = b * x.stride_batch + s * x.stride_seq + h * x.stride_head;
          heads.emplace_back(begin, begin + head);
        }
      }
    }
    std::sort(heads.begin(), heads.end());
    ASSERT_GE(heads.front().first, 0) << "trial " << trial;
    ASSERT_EQ(heads.back().second, layout.extent_elements) << "trial " << trial;
    for (size_t i = 1; i < heads.size(); ++i) {
      ASSERT_LE(heads[i - 1].second, heads[i].first) << "trial " << trial << ": heads overlap";
    }
  }
  EXPECT_GT(accepted, 5000);
  EXPECT_GT(rejected, 2000);
}

}  // namespace
