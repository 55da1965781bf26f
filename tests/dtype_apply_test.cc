// f16 / bf16 storage, out-of-place apply, q and k in one call (GQA), packed QKV
// and NaN/Inf propagation, through the public API on every supported target.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <tuple>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "rotary/rotary.hpp"
#include "tests/error_bounds.h"
#include "tests/every_target.h"
#include "tests/reference.h"
#include "tests/storage_reference.h"
#include "tests/typed_tensor.h"

namespace {

using rotary_test::RefRope;

using rotary_test::ExpectOneRoundingOf;
using rotary_test::RoundTo;
using rotary_test::TypedTensor;

class DtypeTest : public rotary_test::EveryTargetTest {};
ROTARY_TEST_EVERY_TARGET(DtypeTest);

const rotary_dtype kDtypes[] = {ROTARY_F32, ROTARY_F16, ROTARY_BF16};

TEST_P(DtypeTest, EveryStoragePairMatchesReferenceOutOfPlace) {
  const int head_dim = 80, rotary_dim = 68;  // tails on every vector width, and a pass-through part
  for (bool interleaved : {false, true}) {
    rotary::Rope rope(rotary::Config().head_dim(head_dim).rotary_dim(rotary_dim).pairing(
        interleaved ? rotary::Pairing::kInterleaved : rotary::Pairing::kNeox));
    const RefRope ref{head_dim, rotary_dim, interleaved};
    const std::vector<int64_t> positions = {0, 1, 4095, 131071, 999999, 77};
    for (rotary_dtype src_type : kDtypes) {
      for (rotary_dtype dst_type : kDtypes) {
        TypedTensor src(src_type, 2, 3, 5, head_dim), dst(dst_type, 2, 3, 5, head_dim, 1);
        src.FillRandom(100 + 10 * src_type + dst_type);
        const TypedTensor src_before = src, dst_before = dst;
        rotary_tensor s = src.raw(), d = dst.raw();
        ASSERT_EQ(rotary_apply_to(rope.handle(), &s, &d, positions.data(), 0), ROTARY_OK) << rotary_last_error();

        EXPECT_EQ(src.bytes(), src_before.bytes()) << "the source of an out-of-place call was written";
        EXPECT_TRUE(dst.OnlyHeadsChanged(dst_before));
        const double bound = rotary_test::F32Bound(2.0);  // inputs in [-2, 2]
        std::vector<double> head(head_dim);
        for (int64_t b = 0; b < 2; ++b)
          for (int64_t q = 0; q < 3; ++q)
            for (int64_t h = 0; h < 5; ++h) {
              for (int k = 0; k < head_dim; ++k) head[k] = src.Get(b, q, h, k);
              rotary_test::ReferenceRotateHead(ref, head.data(), head.data(), positions[b * 3 + q]);
              for (int k = 0; k < head_dim; ++k) {
                if (k >= rotary_dim) {
                  ASSERT_EQ(dst.Get(b, q, h, k), RoundTo(dst_type, src.Get(b, q, h, k))) << "pass-through " << k;
                } else {
                  ExpectOneRoundingOf(dst_type, dst.Get(b, q, h, k), head[k], bound, "rotated component");
                }
              }
            }
      }
    }
  }
}

// Equal values with equal signs (a double == treats -0 and +0 as equal).
bool SameValueAndSign(double a, double b) { return a == b && std::signbit(a) == std::signbit(b); }

// A half-precision result is its f32 result rounded once, whichever kernel
// path computes it: bf16 -> bf16 and f16 -> f16, in place and out of place,
// must equal bit for bit the rounding of the same call made bf16 -> f32
// (f16 -> f32), and leave the padding between heads alone. Forward, inverse
// and a q scale, at head sizes that cover: the table row held in registers
// (AVX-512: rotary_dim 64-256 neox, 32-128 interleaved, and scaled chunks of
// 1088 neox and 544 interleaved); bf16 split into even and odd lanes, 2N
// elements at a time, with a remainder of N..2N-1 elements for the widening
// loop on 4, 8 and 16 lanes (neox 120 and 122, interleaved 62); and sizes
// where every path has a tail (80/68).
TEST_P(DtypeTest, HalfPrecisionIsTheF32ResultRoundedOnce) {
  const int dims[][2] = {{32, 32},   {64, 64},  {128, 128}, {256, 256}, {160, 128},   {80, 68},
                         {128, 120}, {124, 122}, {64, 62},   {96, 96},   {1088, 1088}, {544, 544}};
  for (const auto& dim : dims) {
    const int head_dim = dim[0], rotary_dim = dim[1];
    for (bool interleaved : {false, true}) {
      // One rope object for every storage type and direction: its tables are
      // built once (the build, not the calls, is most of this test's time).
      // Positions within one table chunk: rounding is what this test checks
      // (far positions: EveryStoragePairMatchesReferenceOutOfPlace).
      rotary::Rope rope(rotary::Config().head_dim(head_dim).rotary_dim(rotary_dim).pairing(
          interleaved ? rotary::Pairing::kInterleaved : rotary::Pairing::kNeox));
      for (rotary_dtype type : {ROTARY_F16, ROTARY_BF16}) {
        for (bool inverse : {false, true}) {
          for (float q_scale : {1.0f, 0.125f}) {
            if (inverse && q_scale != 1.0f) continue;  // the q scale is a forward q+k call's
            TypedTensor q(type, 2, 3, 6, head_dim), q_wide(ROTARY_F32, 2, 3, 6, head_dim, 1);
            TypedTensor k(type, 2, 3, 2, head_dim), k_wide(ROTARY_F32, 2, 3, 2, head_dim, 1);
            q.FillRandom(static_cast<uint32_t>(head_dim * 4 + type * 2 + interleaved));
            k.FillRandom(static_cast<uint32_t>(head_dim * 4 + type * 2 + interleaved + 1000));
            TypedTensor q_out(type, 2, 3, 6, head_dim, 2), k_out(type, 2, 3, 2, head_dim, 2);
            const TypedTensor q_before = q, k_before = k, q_out_before = q_out, k_out_before = k_out;
            const std::vector<int64_t> positions = {0, 1, 1023, 500, 77, 999};
            rotary_tensor qs = q.raw(), qw = q_wide.raw(), qo = q_out.raw();
            rotary_tensor ks = k.raw(), kw = k_wide.raw(), ko = k_out.raw();
            if (q_scale != 1.0f) {
              for (auto [q_dst, k_dst] : {std::pair{&qw, &kw}, std::pair{&qo, &ko}, std::pair{&qs, &ks}}) {
                ASSERT_EQ(rotary_apply_qk_to(rope.handle(), &qs, q_dst, &ks, k_dst, positions.data(), 0, q_scale),
                          ROTARY_OK)
                    << rotary_last_error();
              }
            } else {
              const auto apply = inverse ? rotary_apply_inverse_to : rotary_apply_to;
              for (auto [x, wide, out] : {std::tuple{&qs, &qw, &qo}, std::tuple{&ks, &kw, &ko}}) {
                ASSERT_EQ(apply(rope.handle(), x, wide, positions.data(), 0), ROTARY_OK) << rotary_last_error();
                ASSERT_EQ(apply(rope.handle(), x, out, positions.data(), 0), ROTARY_OK) << rotary_last_error();
                ASSERT_EQ(apply(rope.handle(), x, x, positions.data(), 0), ROTARY_OK) << rotary_last_error();
              }
            }
            EXPECT_TRUE(q.OnlyHeadsChanged(q_before) && k.OnlyHeadsChanged(k_before));
            EXPECT_TRUE(q_out.OnlyHeadsChanged(q_out_before) && k_out.OnlyHeadsChanged(k_out_before));
            for (auto [x, out, wide] : {std::tuple{&q, &q_out, &q_wide}, std::tuple{&k, &k_out, &k_wide}}) {
              x->ForEach([&, x = x, out = out, wide = wide](int64_t b, int64_t s, int64_t h, int64_t c) {
                const double expected = RoundTo(type, wide->Get(b, s, h, c));
                ASSERT_TRUE(SameValueAndSign(x->Get(b, s, h, c), expected) &&
                            SameValueAndSign(out->Get(b, s, h, c), expected))
                    << "in place " << x->Get(b, s, h, c) << ", out of place " << out->Get(b, s, h, c) << ", expected "
                    << expected << "; head_dim " << head_dim << " rotary_dim " << rotary_dim << " interleaved "
                    << interleaved << " inverse " << inverse << " q_scale " << q_scale << " at " << b << "," << s
                    << "," << h << "," << c;
              });
            }
          }
        }
      }
    }
  }
}

// f32 -> f16 / bf16 out of place (the KV-cache write) is the f32 -> f32 result
// rounded once, bit for bit, at the head sizes whose table row is held in
// registers on AVX-512 (stored two vectors at a time) and at sizes with tails;
// a NaN and an Inf in the source come out as NaN and Inf of the same pairs.
TEST_P(DtypeTest, F32ToHalfIsTheF32ResultRoundedOnce) {
  const int dims[][2] = {{64, 64}, {128, 128}, {256, 256}, {128, 64}, {80, 68}, {1088, 1088}};
  for (const auto& dim : dims) {
    const int head_dim = dim[0], rotary_dim = dim[1];
    for (bool interleaved : {false, true}) {
      const rotary::Rope rope(rotary::Config().head_dim(head_dim).rotary_dim(rotary_dim).pairing(
          interleaved ? rotary::Pairing::kInterleaved : rotary::Pairing::kNeox));
      for (rotary_dtype type : {ROTARY_F16, ROTARY_BF16}) {
        TypedTensor src(ROTARY_F32, 2, 3, 4, head_dim), wide(ROTARY_F32, 2, 3, 4, head_dim, 1);
        TypedTensor out(type, 2, 3, 4, head_dim, 2);
        src.FillRandom(static_cast<uint32_t>(head_dim * 8 + type * 2 + interleaved));
        src.Set(1, 2, 3, 5, std::numeric_limits<double>::quiet_NaN());
        src.Set(0, 1, 1, 2, std::numeric_limits<double>::infinity());
        const TypedTensor out_before = out;
        const std::vector<int64_t> positions = {0, 1, 4095, 131071, 77, 999999};
        rotary_tensor s = src.raw(), w = wide.raw(), o = out.raw();
        ASSERT_EQ(rotary_apply_to(rope.handle(), &s, &w, positions.data(), 0), ROTARY_OK) << rotary_last_error();
        ASSERT_EQ(rotary_apply_to(rope.handle(), &s, &o, positions.data(), 0), ROTARY_OK) << rotary_last_error();
        EXPECT_TRUE(out.OnlyHeadsChanged(out_before));
        int nans = 0;
        out.ForEach([&](int64_t b, int64_t q, int64_t h, int64_t c) {
          const double expected = RoundTo(type, wide.Get(b, q, h, c)), got = out.Get(b, q, h, c);
          if (std::isnan(expected)) {
            ++nans;
            ASSERT_TRUE(std::isnan(got)) << "at " << b << "," << q << "," << h << "," << c;
            return;
          }
          ASSERT_TRUE(SameValueAndSign(got, expected))
              << got << ", expected " << expected << "; head_dim " << head_dim << " rotary_dim " << rotary_dim
              << " interleaved " << interleaved << " at " << b << "," << q << "," << h << "," << c;
        });
        EXPECT_EQ(nans, 2) << "the NaN reaches its own pair only (the Inf pair is checked as values)";
      }
    }
  }
}

TEST_P(DtypeTest, HalfPrecisionInPlaceMatchesReferenceAndInverts) {
  for (rotary_dtype type : {ROTARY_F16, ROTARY_BF16}) {
    for (bool interleaved : {false, true}) {
      rotary::Rope rope(rotary::Config().head_dim(128).pairing(interleaved ? rotary::Pairing::kInterleaved
                                                                           : rotary::Pairing::kNeox));
      TypedTensor x(type, 1, 7, 9, 128);
      x.FillRandom(7 + type);
      const TypedTensor before = x;
      rotary_tensor t = x.raw();
      ASSERT_EQ(rotary_apply(rope.handle(), &t, nullptr, 500), ROTARY_OK);
      EXPECT_TRUE(x.OnlyHeadsChanged(before));
      std::vector<double> head(128);
      for (int64_t s = 0; s < 7; ++s)
        for (int64_t h = 0; h < 9; ++h) {
          for (int k = 0; k < 128; ++k) head[k] = before.Get(0, s, h, k);
          rotary_test::ReferenceRotateHead(RefRope{128, 128, interleaved}, head.data(), head.data(), 500 + s);
          for (int k = 0; k < 128; ++k) {
            ExpectOneRoundingOf(type, x.Get(0, s, h, k), head[k], rotary_test::F32Bound(2.0), "in place");
          }
        }
      // Inverse brings it back to within two roundings of the storage type.
      ASSERT_EQ(rotary_apply_inverse(rope.handle(), &t, nullptr, 500), ROTARY_OK);
      const double ulp = type == ROTARY_F16 ? std::ldexp(1.0, -10) : std::ldexp(1.0, -7);
      x.ForEach([&](int64_t b, int64_t s, int64_t h, int64_t k) {
        EXPECT_NEAR(x.Get(b, s, h, k), before.Get(b, s, h, k), 2 * ulp * 2.0);
      });
    }
  }
}

// Grouped-query attention: 32 q heads and 8 k heads rotated in one call must
// equal two separate calls, bit for bit.
TEST_P(DtypeTest, QAndKInOneCallEqualTwoCalls) {
  for (rotary_dtype type : kDtypes) {
    for (bool interleaved : {false, true}) {
      rotary::Rope rope(rotary::Config().head_dim(64).pairing(interleaved ? rotary::Pairing::kInterleaved
                                                                          : rotary::Pairing::kNeox));
      TypedTensor q(type, 2, 5, 32, 64), k(type, 2, 5, 8, 64, 0);
      q.FillRandom(1);
      k.FillRandom(2);
      TypedTensor q_alone = q, k_alone = k;
      rotary_tensor qt = q.raw(), kt = k.raw(), qa = q_alone.raw(), ka = k_alone.raw();
      const std::vector<int64_t> ids = {3, 9, 27, 81, 243, 729, 2187, 6561, 19683, 59049};
      ASSERT_EQ(rotary_apply_qk(rope.handle(), &qt, &kt, ids.data(), 10, 1.0f), ROTARY_OK) << rotary_last_error();
      ASSERT_EQ(rotary_apply(rope.handle(), &qa, ids.data(), 10), ROTARY_OK);
      ASSERT_EQ(rotary_apply(rope.handle(), &ka, ids.data(), 10), ROTARY_OK);
      EXPECT_EQ(q.bytes(), q_alone.bytes());
      EXPECT_EQ(k.bytes(), k_alone.bytes());
    }
  }
}

TEST_P(DtypeTest, QScaleMultipliesEveryComponentOfQOnly) {
  const int head_dim = 96, rotary_dim = 64;
  rotary::Rope rope(rotary::Config().head_dim(head_dim).rotary_dim(rotary_dim));
  TypedTensor q(ROTARY_F32, 1, 3, 4, head_dim), k(ROTARY_F32, 1, 3, 2, head_dim);
  q.FillRandom(5);
  k.FillRandom(6);
  const TypedTensor q_before = q, k_before = k;
  TypedTensor k_alone = k;
  rotary_tensor qt = q.raw(), kt = k.raw(), ka = k_alone.raw();
  const float scale = 1.0f / std::sqrt(96.0f);
  ASSERT_EQ(rotary_apply_qk(rope.handle(), &qt, &kt, nullptr, 40, scale), ROTARY_OK);
  ASSERT_EQ(rotary_apply(rope.handle(), &ka, nullptr, 40), ROTARY_OK);
  EXPECT_EQ(k.bytes(), k_alone.bytes()) << "k must not be scaled";
  EXPECT_TRUE(q.OnlyHeadsChanged(q_before));
  std::vector<double> head(head_dim);
  for (int64_t s = 0; s < 3; ++s)
    for (int64_t h = 0; h < 4; ++h) {
      for (int c = 0; c < head_dim; ++c) head[c] = q_before.Get(0, s, h, c);
      rotary_test::ReferenceRotateHead(RefRope{head_dim, rotary_dim, false}, head.data(), head.data(), 40 + s);
      for (int c = 0; c < head_dim; ++c) {
        EXPECT_NEAR(q.Get(0, s, h, c), scale * head[c], rotary_test::F32Bound(2.0, 1.0, scale)) << c;
      }
    }
}

// A fused QKV projection's output [batch, seq, (hq + 2 hk) * head_dim].
TEST_P(DtypeTest, PackedQkvRotatesQAndKAndLeavesVUntouched) {
  for (rotary_dtype type : kDtypes) {
    const int64_t batch = 2, seq = 6, hq = 8, hk = 2, dim = 64;
    const size_t element = type == ROTARY_F32 ? 4 : 2;
    const int64_t row = (hq + 2 * hk) * dim;
    std::vector<uint8_t> packed(batch * seq * row * element);
    std::mt19937 rng(3);
    for (uint8_t& byte : packed) byte = static_cast<uint8_t>(rng() & 0x3F);  // small finite values in every type
    const std::vector<uint8_t> original = packed;

    rotary::Rope rope(rotary::Config().head_dim(dim));
    ASSERT_EQ(rotary_apply_packed_qkv(rope.handle(), packed.data(), type, batch, seq, hq, hk, nullptr, 100, 1.0f),
              ROTARY_OK)
        << rotary_last_error();

    // The same through the views and two separate calls.
    std::vector<uint8_t> separate = original;
    rotary_tensor q, k, v;
    ASSERT_EQ(rotary_packed_qkv_views(separate.data(), type, batch, seq, hq, hk, dim, &q, &k, &v), ROTARY_OK);
    ASSERT_EQ(rotary_apply(rope.handle(), &q, nullptr, 100), ROTARY_OK);
    ASSERT_EQ(rotary_apply(rope.handle(), &k, nullptr, 100), ROTARY_OK);
    EXPECT_EQ(packed, separate);
    for (int64_t r = 0; r < batch * seq; ++r) {
      const size_t v_begin = (r * row + (hq + hk) * dim) * element, v_end = (r + 1) * row * element;
      ASSERT_TRUE(std::equal(packed.begin() + v_begin, packed.begin() + v_end, original.begin() + v_begin))
          << "v of row " << r << " changed";
    }
    EXPECT_NE(packed, original);
  }
}

// A NaN or Inf reaches exactly the outputs of its own pair, nothing else.
TEST_P(DtypeTest, NaNAndInfPropagateOnlyToTheirPair) {
  for (bool interleaved : {false, true}) {
    for (float poison : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()}) {
      rotary::Rope rope(rotary::Config().head_dim(64).pairing(interleaved ? rotary::Pairing::kInterleaved
                                                                          : rotary::Pairing::kNeox));
      TypedTensor clean(rotary_test::Shape{1, 2, 5, 64}, 9);
      TypedTensor poisoned = clean;
      const int k = 13;  // pair partner: 13 + 32 (neox) or 12 (interleaved)
      const int partner = interleaved ? 12 : 13 + 32;
      poisoned.Set(0, 1, 2, k, poison);
      rope.apply(clean.view(), rotary::Positions(1000));
      rope.apply(poisoned.view(), rotary::Positions(1000));
      for (int64_t s = 0; s < 2; ++s)
        for (int64_t h = 0; h < 5; ++h)
          for (int c = 0; c < 64; ++c) {
            const bool touched = s == 1 && h == 2 && (c == k || c == partner);
            if (touched) {
              EXPECT_FALSE(std::isfinite(poisoned.Get(0, s, h, c))) << c;
            } else {
              EXPECT_EQ(poisoned.Get(0, s, h, c), clean.Get(0, s, h, c)) << s << " " << h << " " << c;
            }
          }
    }
  }
}

}  // namespace

namespace {

// The C++ face of the same calls gives the same bytes as the C calls.
TEST_P(DtypeTest, CppApiMatchesCApi) {
  rotary::Rope rope(rotary::Config().head_dim(32));
  std::vector<float> src(2 * 3 * 4 * 32);
  for (size_t i = 0; i < src.size(); ++i) src[i] = std::sin(0.1f * i);
  std::vector<uint16_t> via_cpp(src.size()), via_c(src.size());
  rope.apply_to(rotary::Tensor(src.data(), 2, 3, 4, 32), rotary::Tensor(via_cpp.data(), rotary::Dtype::kBF16, 2, 3, 4, 32),
                rotary::Positions(7));
  rotary_tensor s{src.data(), ROTARY_F32, 2, 3, 4, 3 * 4 * 32, 4 * 32, 32};
  rotary_tensor d{via_c.data(), ROTARY_BF16, 2, 3, 4, 3 * 4 * 32, 4 * 32, 32};
  ASSERT_EQ(rotary_apply_to(rope.handle(), &s, &d, nullptr, 7), ROTARY_OK);
  EXPECT_EQ(via_cpp, via_c);

  std::vector<uint16_t> packed(1 * 2 * (4 + 2 * 2) * 32, 0x3c00);  // f16 ones
  const rotary::PackedQkv views = rotary::PackedQkv::Views(packed.data(), rotary::Dtype::kF16, 1, 2, 4, 2, 32);
  rope.apply_qk(views.q, views.k, rotary::Positions(3));
  EXPECT_EQ(packed.back(), 0x3c00) << "v changed";
  EXPECT_THROW(rope.apply_qk(views.q, views.q), rotary::Error);
}

}  // namespace
