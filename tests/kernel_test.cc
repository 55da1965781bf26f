// Kernel tests in Highway's pattern: this file is compiled once per target
// (foreach_target), and HWY_EXPORT_AND_TEST_P runs each test on every target
// the CPU supports, so a bug in one target cannot hide behind another.
// Lengths sweep around the vector size (1, 3, 7, N/2, N, N+1, 3N, 8N+2) with
// misaligned pointers and guard values around every head.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>
#include <random>
#include <utility>
#include <vector>

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "tests/kernel_test.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep

#include "dispatch/compiled_targets.h"
#include "dispatch/convert-inl.h"
#include "dispatch/fused_multiply_add-inl.h"
#include "dispatch/partial_vectors-inl.h"
#include "hwy/highway.h"
#include "hwy/tests/hwy_gtest.h"
#include "lib/plan/frequency_plan.h"
#include "lib/tables/rope_table.h"
#include "lib/tables/table_cache.h"
#include "lib/target_registry.h"
#include "tests/error_bounds.h"
#include "tests/random_values.h"
#include "tests/reference.h"
#include "tests/storage_reference.h"
#include "tests/tensor_compare.h"
#include "tests/typed_tensor.h"

HWY_BEFORE_NAMESPACE();
namespace rotary {
namespace HWY_NAMESPACE {

using rotary_test::AbsError;
using rotary_test::GuardValue;
using rotary_test::RefRope;
using rotary_test::ReferenceRotateHead;

// This target's kernels as the library compiled them (dispatch/instances/):
// the tests call them through the registry, as the library does, and
// instantiate none of them again.
const KernelTable& Kernels() {
  for (size_t i = 0; i < kNumCompiledTargets; ++i) {
    const CompiledTarget& t = kCompiledTargets[i];
    if (t.hwy_target == HWY_TARGET && t.extra_features == 0) return t.kernels;
  }
  HWY_ABORT("the registry lists no kernels of %s", hwy::TargetName(HWY_TARGET));
}

DtypeIndex DtypeIndexOf(rotary_dtype dtype) {
  return dtype == ROTARY_F32 ? kF32 : dtype == ROTARY_F16 ? kF16 : kBF16;
}

std::vector<size_t> PairCounts() {
  const size_t N = hn::Lanes(DF());
  std::vector<size_t> counts = {1, 2, 3, 7, std::max<size_t>(1, N / 2), N, N + 1, 3 * N, 8 * N + 2, 40, 64};
  std::sort(counts.begin(), counts.end());
  counts.erase(std::unique(counts.begin(), counts.end()), counts.end());
  return counts;
}

// Writes a table row for `position` in the layout the pairing's kernel reads.
template <int kPairing>
std::vector<float> TableRow(const std::vector<double>& w, int64_t position, size_t misalign) {
  const size_t pairs = w.size();
  const size_t half = kPairing == kNeoxPairs ? pairs : 2 * pairs;  // floats of cos (and of sin)
  std::vector<float> row(misalign + 2 * half);
  float* cos = row.data() + misalign;
  float* sin = cos + half;
  for (size_t i = 0; i < pairs; ++i) {
    const float c = static_cast<float>(std::cos(position * w[i]));
    const float s = static_cast<float>(std::sin(position * w[i]));
    if (kPairing == kNeoxPairs) {
      cos[i] = c;
      sin[i] = s;
    } else {
      cos[2 * i] = cos[2 * i + 1] = c;
      sin[2 * i] = -s;
      sin[2 * i + 1] = s;
    }
  }
  return row;
}

// One head of `pairs` pairs rotated in place by the f32 row kernel, reading a
// table row of one position (the inverse: of the negated angles, as the
// library's inverse tables hold), against the float64 reference.
template <int kPairing>
void CheckHeadKernel(size_t pairs, size_t misalign, bool inverse, bool streaming, std::mt19937& rng) {
  constexpr size_t kGuard = 16;
  const int dim = static_cast<int>(2 * pairs);
  const RefRope ref{dim, dim, kPairing == kInterleavedPairs};
  const int64_t position = 12345;

  // cos/sin rounded to f32 from double angles, as the table stores them.
  std::vector<double> w = rotary_test::ReferenceInvFreq(dim, ref.base);
  if (inverse) {
    for (double& v : w) v = -v;
  }
  const std::vector<float> table = TableRow<kPairing>(w, position, misalign);
  const std::atomic<const float*> chunk{table.data() + misalign};

  std::vector<float> buffer(kGuard + misalign + dim + kGuard, GuardValue());
  float* x = buffer.data() + kGuard + misalign;
  std::vector<double> expected(dim);
  for (int k = 0; k < dim; ++k) expected[k] = x[k] = static_cast<float>(rotary_test::UniformValue(rng, -2.0, 2.0));
  ReferenceRotateHead(ref, expected.data(), expected.data(), position, inverse);

  RowJob job{};
  job.operands[0] = Operand{x, x, 0, 0, 0, 0, 0, 0, 1, 1.0f, false};
  job.num_operands = 1;
  job.seq = 1;
  job.pairs = pairs;
  job.head_dim = static_cast<size_t>(dim);
  job.table.chunks = &chunk;  // the kernel reads the row of position 0 (no positions, offset 0): `table`
  job.table.chunk_shift = 1;
  job.table.row_floats = static_cast<int64_t>(table.size() - misalign);
  job.table.layout = kPairing == kNeoxPairs ? TableLayout::kPerPair : TableLayout::kPerComponent;
  job.table.pairs = pairs;
  job.streaming = streaming;
  Kernels().rotate[kPairing][kF32][kF32](job, 0, 1);

  for (int k = 0; k < dim; ++k) {
    ASSERT_NEAR(x[k], expected[k], rotary_test::F32Bound(2.0))
        << "pairs " << pairs << " misalign " << misalign << " inverse " << inverse << " k " << k;
  }
  for (size_t g = 0; g < buffer.size(); ++g) {
    if (g >= kGuard + misalign && g < kGuard + misalign + dim) continue;
    const float guard = GuardValue();
    ASSERT_EQ(0, std::memcmp(&buffer[g], &guard, sizeof(float))) << "wrote outside the head at " << g;
  }
}

template <int kPairing>
void SweepHeadKernel() {
  std::mt19937 rng(static_cast<uint32_t>(hn::Lanes(DF())) * 7919u + kPairing);
  for (size_t pairs : PairCounts()) {
    for (size_t misalign : {0, 1, 3}) {
      for (const bool inverse : {false, true}) {
        for (const bool streaming : {false, true}) CheckHeadKernel<kPairing>(pairs, misalign, inverse, streaming, rng);
      }
    }
  }
}

void TestNeoxHeadAllLengths() { SweepHeadKernel<kNeoxPairs>(); }
void TestInterleavedHeadAllLengths() { SweepHeadKernel<kInterleavedPairs>(); }

// A full table of the default plan of (head_dim, rotary_dim) for `pairing`,
// holding the rows of `positions`: built once per shape, it serves every
// scale and head order CheckRowKernel runs (the build is most of their time).
std::unique_ptr<RopeTable> RowKernelTable(int pairing, int head_dim, int rotary_dim,
                                          const std::vector<int64_t>& positions) {
  rotary_config config;
  rotary_config_init(&config);
  config.head_dim = head_dim;
  config.rotary_dim = rotary_dim;
  auto table = std::make_unique<RopeTable>(
      MakeFrequencyPlan(config), pairing == kNeoxPairs ? TableLayout::kPerPair : TableLayout::kPerComponent, 1 << 16);
  table->EnsurePositions(positions.data(), static_cast<int64_t>(positions.size()), 0);
  return table;
}

// Runs the f32 in-place row kernel of `pairing` over one row per position of
// `table` (RowKernelTable), as `batch` sequences of equal length, every
// component times `scale`, in either head order, against the float64
// reference.
void CheckRowKernel(const RopeTable& table, int pairing, int head_dim, int rotary_dim, float scale,
                    const std::vector<int64_t>& positions, bool streaming, int64_t batch) {
  const int64_t seq = static_cast<int64_t>(positions.size()) / batch;
  rotary_test::Shape shape{batch, seq, 5, head_dim, 5, 2, 3};  // padded heads and sequences
  rotary_test::TypedTensor x(shape, 42u + static_cast<uint32_t>(pairing));
  const rotary_test::TypedTensor before = x;
  const rotary_tensor t = x.raw();
  RowJob job{};
  job.operands[0] = Operand{t.data,         t.data,       t.stride_batch, t.stride_seq, t.stride_head,
                            t.stride_batch, t.stride_seq, t.stride_head,  t.heads,      scale,
                            scale != 1.0f};
  job.num_operands = 1;
  job.seq = t.seq;
  job.pairs = static_cast<size_t>(rotary_dim / 2);
  job.head_dim = static_cast<size_t>(head_dim);
  job.positions = positions.data();
  job.table = table.View();
  job.streaming = streaming;
  Kernels().rotate[pairing][kF32][kF32](job, 0, batch * seq);

  const RefRope ref{head_dim, rotary_dim, pairing == kInterleavedPairs};
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t s = 0; s < seq; ++s) {
      for (int64_t h = 0; h < shape.heads; ++h) {
        std::vector<double> expected(head_dim);
        for (int k = 0; k < head_dim; ++k) expected[k] = before.Get(b, s, h, k);
        ReferenceRotateHead(ref, expected.data(), expected.data(), positions[b * seq + s]);
        for (int k = 0; k < head_dim; ++k) {
          // Inputs in [-1, 1] (TypedTensor's Shape constructor).
          ASSERT_NEAR(x.Get(b, s, h, k), scale * expected[k], rotary_test::F32Bound(1.0, 1.0, scale))
              << "b " << b << " s " << s << " h " << h << " k " << k << " streaming " << streaming;
        }
      }
    }
  }
  ASSERT_TRUE(x.OnlyHeadsChanged(before, scale != 1.0f ? head_dim : rotary_dim));
}

// CheckRowKernel of one shape at each scale, in both head orders.
void CheckRowKernelShape(int pairing, int head_dim, int rotary_dim, std::initializer_list<float> scales,
                         const std::vector<int64_t>& positions, int64_t batch = 1) {
  const std::unique_ptr<RopeTable> table = RowKernelTable(pairing, head_dim, rotary_dim, positions);
  for (const float scale : scales) {
    for (const bool streaming : {false, true}) {
      CheckRowKernel(*table, pairing, head_dim, rotary_dim, scale, positions, streaming, batch);
    }
  }
}

// The row kernel reads table rows through the chunk directory: cover positions
// on both sides of a chunk boundary and heads with padding between them, in
// one sequence and in two (the streaming row loop requests each next row's
// table row, across the end of a sequence too).
void TestRowKernelAcrossChunks() {
  const std::vector<int64_t> positions = {0, RopeTable::kChunkRows - 1, RopeTable::kChunkRows, 40000, 7, 65535};
  for (const int pairing : {kNeoxPairs, kInterleavedPairs}) {
    for (const int64_t batch : {1, 2}) CheckRowKernelShape(pairing, 24, 20, {1.0f}, positions, batch);
  }
}

// An output scale is applied to a copy of the table row, a chunk at a time:
// heads longer than one chunk (ScaledRowChunk), with components past rotary_dim.
void TestScaledRowKernelLongHeads() {
  const std::vector<int64_t> positions = {3, 999};
  for (const int pairing : {kNeoxPairs, kInterleavedPairs}) {
    CheckRowKernelShape(pairing, 1206, 1200, {0.125f}, positions);
    CheckRowKernelShape(pairing, 30, 22, {0.5f}, positions);
  }
}

// With 32 vector registers a table row of 2, 4 or 8 vectors per half is held
// in registers and the heads go one after another: on AVX-512, rotary_dim 64,
// 128, 256 neox and 32, 64, 128 interleaved, partial rotary_dim, and a scale
// (a scaled copy of the row, chunk by chunk: 1088 neox and 544 interleaved
// end in a chunk of 32 floats per half, which takes that path with fewer
// pairs than the partner distance).
void TestRowKernelAtCommonHeadSizes() {
  const std::vector<int64_t> positions = {0, 1, 4095, 40000, 65535};
  const int dims[][2] = {{32, 32}, {64, 64}, {128, 128}, {256, 256}, {160, 128}, {96, 64}, {1088, 1088}, {544, 544}};
  for (const int pairing : {kNeoxPairs, kInterleavedPairs}) {
    for (const auto& dim : dims) CheckRowKernelShape(pairing, dim[0], dim[1], {1.0f, 0.25f}, positions);
  }
}

// Every storage pair, out of place, in both head orders: the streaming order
// runs other loops (one head at a time; interleaved pairs split into lanes on
// AVX2 and AVX-512, SplitPairs) and must write the same bytes as the cache-resident one,
// each element one rounding of the float64 result (f32: within F32Bound).
// Head sizes with and without a remainder under two vectors.
void TestEveryStoragePairInBothHeadOrders() {
  const rotary_dtype dtypes[] = {ROTARY_F32, ROTARY_F16, ROTARY_BF16};
  const std::vector<int64_t> positions = {5, 4000, 77};
  const int dims[][2] = {{128, 128}, {80, 72}};
  for (const int pairing : {kNeoxPairs, kInterleavedPairs}) {
    for (const auto& dim : dims) {
      const std::unique_ptr<RopeTable> table = RowKernelTable(pairing, dim[0], dim[1], positions);
      const RefRope ref{dim[0], dim[1], pairing == kInterleavedPairs};
      const rotary_test::Shape shape{1, static_cast<int64_t>(positions.size()), 6, dim[0], 3, 1, 0};
      for (const rotary_dtype src_type : dtypes) {
        rotary_test::TypedTensor src(src_type, shape);
        std::mt19937 rng(7u * static_cast<uint32_t>(src_type) + static_cast<uint32_t>(dim[0]));
        src.ForEach([&](int64_t b, int64_t s, int64_t h, int64_t k) {
          src.Set(b, s, h, k, rotary_test::UniformValue(rng, -1.0, 1.0));
        });
        const rotary_tensor x = src.raw();
        for (const rotary_dtype dst_type : dtypes) {
          rotary_test::TypedTensor in_cache(dst_type, shape), streamed(dst_type, shape);
          for (rotary_test::TypedTensor* dst : {&in_cache, &streamed}) {
            const rotary_tensor y = dst->raw();
            RowJob job{};
            job.operands[0] = Operand{x.data,         y.data,       x.stride_batch, x.stride_seq, x.stride_head,
                                      y.stride_batch, y.stride_seq, y.stride_head,  x.heads,      1.0f,
                                      true};
            job.num_operands = 1;
            job.seq = x.seq;
            job.pairs = static_cast<size_t>(dim[1] / 2);
            job.head_dim = static_cast<size_t>(dim[0]);
            job.positions = positions.data();
            job.table = table->View();
            job.streaming = dst == &streamed;
            Kernels().rotate[pairing][DtypeIndexOf(src_type)][DtypeIndexOf(dst_type)](job, 0, x.seq);
          }
          const std::string what = "pairing " + std::to_string(pairing) + " head_dim " + std::to_string(dim[0]) +
                                   " dtypes " + std::to_string(src_type) + " -> " + std::to_string(dst_type);
          ASSERT_TRUE(in_cache.bytes() == streamed.bytes()) << what << ": the head orders wrote different bytes";
          for (int64_t s = 0; s < shape.seq; ++s) {
            for (int64_t h = 0; h < shape.heads; ++h) {
              std::vector<double> expected(dim[0]);
              for (int k = 0; k < dim[0]; ++k) expected[k] = src.Get(0, s, h, k);
              ReferenceRotateHead(ref, expected.data(), expected.data(), positions[s]);
              for (int k = 0; k < dim[0]; ++k) {
                ASSERT_TRUE(rotary_test::ExpectOneRoundingOf(dst_type, in_cache.Get(0, s, h, k), expected[k],
                                                             rotary_test::F32Bound(1.0), what.c_str()))
                    << "s " << s << " h " << h << " k " << k;
              }
            }
          }
        }
      }
    }
  }
}

// ---- rows synthesized by the compact and on-the-fly modes, against double ----

// Largest |entry - scale * cos/sin(p * w)| / scale of the rows SynthesizeRow
// makes for `positions`, in the layout's own order (kPerComponent: cos, cos, -sin, +sin).
double SynthesisError(RowSource mode, TableLayout layout, size_t pairs, double scale,
                      const std::vector<int64_t>& positions, int64_t limit) {
  FrequencyPlan plan{rotary_test::ReferenceInvFreq(static_cast<int>(2 * pairs), 10000.0), scale};
  if (pairs == 1) plan.inv_freq[0] = 1.0;
  if (pairs == 3) plan.inv_freq[2] = 12.5;  // near the largest frequency, 4 pi: up to 2^32 turns to reduce
  const CachedTable table(TableSpec{plan, layout, mode, limit, mode == RowSource::kCompact ? CompactShift(1 << 20) : 0});
  const bool in_slot = table.Pin();
  table.EnsurePositions(positions.data(), static_cast<int64_t>(positions.size()), 0);
  const TableView view = table.View();
  std::vector<float> row(kMaxRowFloats + 1, GuardValue());
  double worst = 0, worst_at_scale_1 = 0;
  for (int64_t p : positions) {
    Kernels().synthesize_row(view, p, row.data());
    for (size_t i = 0; i < pairs; ++i) {
      double c, sn;
      rotary_test::ExactCosSin(p, plan.inv_freq[i], &c, &sn);
      c *= scale;
      sn *= scale;
      if (layout == TableLayout::kPerPair) {
        worst = std::max({worst, AbsError(row[i], c), AbsError(row[pairs + i], sn)});
      } else {
        worst = std::max({worst, AbsError(row[2 * i], c), AbsError(row[2 * i + 1], c),
                          AbsError(row[2 * pairs + 2 * i], -sn), AbsError(row[2 * pairs + 2 * i + 1], sn)});
      }
      worst_at_scale_1 = std::max(worst_at_scale_1, worst / scale);
    }
    const size_t floats = static_cast<size_t>(RowFloats(layout, pairs));
    EXPECT_EQ(rotary_test::FloatBits(row[floats]), rotary_test::FloatBits(GuardValue())) << "wrote past the row";
  }
  table.Unpin(in_slot);
  return worst_at_scale_1;
}

// The bounds docs/table-memory.md states, relative to the attention factor, in
// units of 2^-24 (one f32 ulp at 1; a stored row is within 0.5): compact <= 4
// (two stored rows and three f32 roundings), on the fly <= 1 (cos and sin of
// the exact angle within 2^-50 in double, times the factor, rounded once to
// f32: half an ulp of a value up to 2 m); measured on every target and printed.
void TestSynthesizedRowsMatchDouble() {
  std::mt19937_64 rng(11);
  std::vector<int64_t> positions = {0, 1, 63, 64, 1023, 1024, 4095, 131071, 999999, 1000000,
                                    (int64_t{1} << 31) - 1, (int64_t{1} << 31) - 1024, int64_t{1} << 30};
  // Random positions: each far one costs its table chunk's build (1024 rows,
  // 16 tables), most of this test's time under qemu.
  for (int i = 0; i < 150; ++i) positions.push_back(static_cast<int64_t>(rng() % 1000001));
  for (int i = 0; i < 40; ++i) positions.push_back(static_cast<int64_t>(rng() % (int64_t{1} << 31)));
  const size_t N = hn::Lanes(DF());
  const double ulp = std::ldexp(1.0, -24);
  double worst_compact = 0, worst_fly = 0;
  for (TableLayout layout : {TableLayout::kPerPair, TableLayout::kPerComponent}) {
    for (size_t pairs : {size_t{1}, size_t{3}, N + 1, size_t{64}}) {
      for (double scale : {1.0, 1.25}) {
        worst_compact = std::max(worst_compact, SynthesisError(RowSource::kCompact, layout, pairs, scale, positions,
                                                               int64_t{1} << 31));
        worst_fly = std::max(worst_fly, SynthesisError(RowSource::kOnTheFly, layout, pairs, scale, positions,
                                                       int64_t{1} << 31));
      }
    }
  }
  std::printf("[ %s ] max |cos/sin error|: compact %.2f, on the fly %.2f (units of 2^-24)\n",
              hwy::TargetName(HWY_TARGET), worst_compact / ulp, worst_fly / ulp);
  EXPECT_LE(worst_compact, 4 * ulp);
  EXPECT_LE(worst_fly, 1 * ulp);
}

// ---- storage conversions: every f16 value, and f32 values around every rounding case ----

// Converts `count` values through the target's LoadF32 / StoreF32, N at a time.
template <class Src, class Dst>
void ConvertAll(const typename Src::T* in, typename Dst::T* out, size_t count) {
  const size_t N = hn::Lanes(DF());
  for (size_t i = 0; i < count; i += N) StoreF32(Dst(), LoadF32(Src(), in + i), out + i);
}

bool SameHalfOrBothNaN(uint16_t a, uint16_t b) {
  const bool a_nan = (a & 0x7C00) == 0x7C00 && (a & 0x3FF);
  const bool b_nan = (b & 0x7C00) == 0x7C00 && (b & 0x3FF);
  return a == b || (a_nan && b_nan);
}

void TestF16LoadsEveryValueAndStoresItBack() {
  std::vector<uint16_t> halves(65536), back(65536);
  std::vector<float> floats(65536);
  for (size_t i = 0; i < halves.size(); ++i) halves[i] = static_cast<uint16_t>(i);
  ConvertAll<F16Storage, F32Storage>(halves.data(), floats.data(), halves.size());
  ConvertAll<F32Storage, F16Storage>(floats.data(), back.data(), halves.size());
  for (size_t i = 0; i < halves.size(); ++i) {
    const double expected = rotary_test::HalfToDouble(halves[i]);
    if (std::isnan(expected)) {
      ASSERT_TRUE(std::isnan(floats[i])) << std::hex << i;
    } else {
      ASSERT_EQ(floats[i], expected) << std::hex << i;
      ASSERT_EQ(std::signbit(floats[i]), std::signbit(expected)) << std::hex << i;
    }
    ASSERT_TRUE(SameHalfOrBothNaN(back[i], halves[i])) << std::hex << i << " -> " << back[i];
  }
}

// f32 inputs that exercise rounding: random bit patterns, and for every f16 /
// bf16 value the midpoints to its neighbour and one f32 ulp either side.
std::vector<float> RoundingCases(bool for_half) {
  std::vector<float> cases;
  std::mt19937 rng(1234);
  for (int i = 0; i < 200000; ++i) cases.push_back(rotary_test::BitsFloat(rng()));
  for (uint32_t v = 0; v < 0x10000; v += for_half ? 1 : 7) {
    const double a = for_half ? rotary_test::HalfToDouble(static_cast<uint16_t>(v))
                              : rotary_test::BFloat16ToDouble(static_cast<uint16_t>(v));
    const double b = for_half ? rotary_test::HalfToDouble(static_cast<uint16_t>(v + 1))
                              : rotary_test::BFloat16ToDouble(static_cast<uint16_t>(v + 1));
    if (!std::isfinite(a) || !std::isfinite(b)) continue;
    const float mid = static_cast<float>((a + b) / 2);
    cases.push_back(mid);
    cases.push_back(std::nextafter(mid, 0.0f));
    cases.push_back(std::nextafter(mid, 1e30f));
  }
  for (float special : {0.0f, -0.0f, 65504.0f, 65519.99f, 65520.0f, 1e30f, 3.4028235e38f,
                        std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
                        std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::denorm_min()}) {
    cases.push_back(special);
  }
  const size_t N = hn::Lanes(DF());
  while (cases.size() % (2 * N)) cases.push_back(1.0f);  // whole pairs of vectors (StoreF32Pair)
  return cases;
}

void TestF32ToF16RoundsToNearestEven() {
  const std::vector<float> in = RoundingCases(true);
  std::vector<uint16_t> out(in.size());
  ConvertAll<F32Storage, F16Storage>(in.data(), out.data(), in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    ASSERT_TRUE(SameHalfOrBothNaN(out[i], rotary_test::DoubleToHalf(in[i])))
        << in[i] << " (bits " << std::hex << rotary_test::FloatBits(in[i]) << ") -> " << out[i];
  }
}

// The three bf16 stores of storage S (per vector, per pair of vectors, and
// the even/odd elements of bf16_lanes) against the exact rounding of `in`;
// on x86, optionally with MXCSR.DAZ set while storing (as a caller may have
// set it), which must not change a store.
template <class S>
void CheckBF16Stores(const std::vector<float>& in, bool denormals_are_zero = false) {
  const DF d;
  const size_t N = hn::Lanes(d);
  std::vector<uint16_t> out(in.size()), out_pairs(in.size()), out_lanes(in.size());
#if HWY_ARCH_X86
  const unsigned csr = _mm_getcsr();
  if (denormals_are_zero) _mm_setcsr(csr | 0x0040u);
#else
  (void)denormals_are_zero;
#endif
  ConvertAll<F32Storage, S>(in.data(), out.data(), in.size());
  for (size_t i = 0; i < in.size(); i += 2 * N) {
    StoreF32Pair(S(), LoadF32(F32Storage(), in.data() + i), LoadF32(F32Storage(), in.data() + i + N),
                 out_pairs.data() + i);
#if ROTARY_BF16_LANES
    HWY_ALIGN float even[kMaxLanes], odd[kMaxLanes];
    for (size_t j = 0; j < N; ++j) {
      even[j] = in[i + 2 * j];
      odd[j] = in[i + 2 * j + 1];
    }
    bf16_lanes::Store(S(), hn::Load(d, even), hn::Load(d, odd), out_lanes.data() + i);
#endif
  }
#if HWY_ARCH_X86
  _mm_setcsr(csr);
#endif
  for (size_t i = 0; i < in.size(); ++i) {
    const uint16_t expected = rotary_test::FloatToBFloat16(in[i]);
    ASSERT_EQ(out[i], expected) << in[i] << " (bits " << std::hex << rotary_test::FloatBits(in[i]) << ")";
    ASSERT_EQ(out_pairs[i], expected) << "StoreF32Pair at " << i;
#if ROTARY_BF16_LANES
    ASSERT_EQ(out_lanes[i], expected) << "bf16_lanes::Store at " << i;
#endif
  }
}

void TestF32ToBF16RoundsToNearestEven() {
  CheckBF16Stores<BF16Storage>(RoundingCases(false));
  // bf16 -> f32 is exact: every value.
  std::vector<uint16_t> all(65536);
  std::vector<float> widened(65536);
  for (size_t i = 0; i < all.size(); ++i) all[i] = static_cast<uint16_t>(i);
  ConvertAll<BF16Storage, F32Storage>(all.data(), widened.data(), all.size());
  for (size_t i = 0; i < all.size(); ++i) ASSERT_EQ(rotary_test::FloatBits(widened[i]), i << 16);
}

#if ROTARY_NATIVE_BF16
// AVX3_ZEN4's bf16 output (AVX512_BF16, compiled with the AVX3 kernels): the
// same bits as the software rounding, including denormal inputs (which the
// instruction reads as zero: those vectors take the software way), NaN and
// Inf. Run by NativeBF16.RoundsLikeSoftware below, where the CPU has it.
void CheckNativeBF16RoundsLikeSoftware() {
  std::vector<float> in = RoundingCases(false);
  CheckBF16Stores<BF16NativeStorage>(in);
  // With DAZ set, VFPCLASSPS would call denormals zero: the check must not.
  CheckBF16Stores<BF16NativeStorage>(in, true);
  CheckBF16Stores<BF16Storage>(in, true);
  // Every pair of vectors free of denormals, so the instruction rounds them all.
  for (float& v : in) {
    if (std::fpclassify(v) == FP_SUBNORMAL) v = 1.0f;
  }
  CheckBF16Stores<BF16NativeStorage>(in);
}
#endif

// ---- the table build: every target writes the same rows, bit for bit ----

// This target's BuildTableRows against the scalar formula of RowBuild, bit for
// bit, for row lengths around the vector size, both layouts, with and without
// an attention factor, on a step range that starts past step 0, with guards
// around it. (The scalar remainder of a row is this formula itself; the vector
// part must round the same double values the same way.)
void TestTableRowsAreTheScalarFormula() {
  std::mt19937_64 rng(99);
  constexpr int64_t kSteps = 5;
  for (size_t pairs : PairCounts()) {
    std::vector<double> base_cos(pairs), base_sin(pairs), step_cos(kSteps * pairs), step_sin(kSteps * pairs);
    for (auto* values : {&base_cos, &base_sin, &step_cos, &step_sin}) {
      for (double& v : *values) v = rotary_test::UniformValue(rng, -1.0, 1.0);
    }
    for (const TableLayout layout : {TableLayout::kPerPair, TableLayout::kPerComponent}) {
      for (const double scale : {1.0, 1.0 + 1.0 / 3.0}) {
        const int64_t row_floats = RowFloats(layout, pairs);
        const RowBuild build{base_cos.data(), base_sin.data(), step_cos.data(), step_sin.data(),
                             pairs,           scale,           layout,          row_floats};
        // Steps [1, 4): a range that starts past step 0, as a task's may; guards around it.
        std::vector<float> rows(5 * row_floats, GuardValue());
        Kernels().build_rows(build, 1, 4, rows.data() + row_floats);
        for (int64_t j = 0; j < 5; ++j) {
          const float* row = rows.data() + j * row_floats;
          for (size_t i = 0; i < pairs; ++i) {
            float c = GuardValue(), s = GuardValue(), cos_entries[2], sin_entries[2];
            if (j >= 1 && j < 4) {
              c = static_cast<float>(scale * (base_cos[i] * step_cos[j * pairs + i] - base_sin[i] * step_sin[j * pairs + i]));
              s = static_cast<float>(scale * (base_sin[i] * step_cos[j * pairs + i] + base_cos[i] * step_sin[j * pairs + i]));
            }
            const bool guard = j < 1 || j >= 4;
            if (layout == TableLayout::kPerPair) {
              ASSERT_EQ(rotary_test::FloatBits(row[i]), rotary_test::FloatBits(c)) << "cos pairs " << pairs << " j " << j << " i " << i;
              ASSERT_EQ(rotary_test::FloatBits(row[pairs + i]), rotary_test::FloatBits(s)) << "sin pairs " << pairs << " j " << j << " i " << i;
              continue;
            }
            cos_entries[0] = cos_entries[1] = c;
            sin_entries[0] = guard ? s : -s;
            sin_entries[1] = s;
            for (int k = 0; k < 2; ++k) {
              ASSERT_EQ(rotary_test::FloatBits(row[2 * i + k]), rotary_test::FloatBits(cos_entries[k]))
                  << "cos pairs " << pairs << " j " << j << " i " << i << " k " << k;
              ASSERT_EQ(rotary_test::FloatBits(row[2 * pairs + 2 * i + k]), rotary_test::FloatBits(sin_entries[k]))
                  << "sin pairs " << pairs << " j " << j << " i " << i << " k " << k;
            }
          }
        }
      }
    }
  }
}

// ---- the fused multiply-add: rounded once on every target ----

// Inputs (m, x, a) whose m * x + a, computed in double and then rounded to
// f32, is not the once-rounded result: the double sum lands on a point halfway
// between two floats (normal, and subnormal results), plus ties that are
// exact, NaN, Inf and overflow. Random inputs almost never reach these (one
// lane in 2^29), so the emulation's check for them is tested here.
struct MulAddCase {
  float m, x, a;
};

std::vector<MulAddCase> MulAddHardCases() {
  std::vector<MulAddCase> cases;
  std::mt19937 rng(2026);
  size_t double_rounded = 0, subnormal = 0;
  // m * x near half an ulp of a (a normal) or half the subnormal spacing (a a
  // multiple of 2^-149): the sum in double is the halfway point itself when
  // the product's bits below the double's fall away.
  for (int i = 0; i < 400000 && (double_rounded < 96 || subnormal < 32); ++i) {
    const bool tiny = i % 2 == 1;
    // Tiny: m and x both near 2^-75, so that neither is subnormal.
    const float m = std::ldexp(1.0f + static_cast<float>(rng() >> 9) * 0x1p-23f, tiny ? -75 : 0);
    // Tiny: a subnormal a near 2^-127, so that the double's ulp is far below the sum's f32 spacing.
    const float a = tiny ? static_cast<float>((rng() % (1u << 22)) + (1u << 22)) * 0x1p-149f
                         : std::ldexp(1.0f + static_cast<float>(rng() >> 9) * 0x1p-23f, static_cast<int>(rng() % 40) - 20);
    const double half_ulp = tiny ? 0x1p-150 : std::ldexp(1.0, std::ilogb(a) - 24);
    float x = static_cast<float>(half_ulp / m);
    for (int k = 0; k < static_cast<int>(rng() % 3); ++k) x = std::nextafter(x, rng() % 2 ? 1.0f : 0.0f);
    const float signs[2] = {1.0f, -1.0f};
    const MulAddCase c{m * signs[rng() % 2], x, a * signs[rng() % 2]};
    const double s = static_cast<double>(c.m) * c.x + c.a;
    if (static_cast<float>(s) == std::fmaf(c.m, c.x, c.a)) continue;
    cases.push_back(c);
    (tiny ? subnormal : double_rounded) += 1;
  }
  EXPECT_GE(double_rounded, 96u);
  EXPECT_GE(subnormal, 32u);
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  const float big = std::numeric_limits<float>::max();
  for (const MulAddCase& c : std::vector<MulAddCase>{{1.0f, 0x1p-24f, 1.0f},         // an exact tie: to even
                                                    {3.0f, 0x1p-24f, 1.0f},         // an exact tie: to even
                                                    {0x1p-75f, 0x1p-75f, 0.0f},     // exactly half the subnormal spacing
                                                    {0x1p-70f, 0x1p-70f, -0x1p-140f},  // cancels to zero
                                                    {2.0f, big, -big}, {2.0f, big, 0.0f}, {-2.0f, big, 1.0f},
                                                    {inf, 1.0f, 1.0f}, {inf, 0.0f, 1.0f}, {1.0f, 1.0f, -inf},
                                                    {nan, 1.0f, 1.0f}, {1.0f, 2.0f, nan}, {0.0f, -0.0f, 0.0f},
                                                    {-0.0f, 0.0f, -0.0f}}) {
    cases.push_back(c);
  }
  return cases;
}

bool SameFloatOrBothNaN(float got, float expected) {
  return rotary_test::FloatBits(got) == rotary_test::FloatBits(expected) || (std::isnan(got) && std::isnan(expected));
}

// Each form of the fused multiply-add against std::fmaf, bit for bit, each
// case in every lane of a vector of ordinary lanes (so a vector's rare-lane
// path and its lane order are exercised), and for the two-vector forms in
// either vector, beside an ordinary one.
void TestFusedMulAddRoundsOnce() {
  const DF d;
  const size_t N = hn::Lanes(d);
  const auto fma = [](float p, float q, float r) { return std::fmaf(p, q, r); };
  const auto neg_fma = [](float p, float q, float r) { return std::fmaf(-p, q, r); };
  const auto fms = [](float p, float q, float r) { return std::fmaf(p, q, -r); };
  HWY_ALIGN float m[kMaxLanes], x[kMaxLanes], a[kMaxLanes], om[kMaxLanes], ox[kMaxLanes], oa[kMaxLanes];
  for (size_t j = 0; j < kMaxLanes; ++j) {
    om[j] = 1.5f + static_cast<float>(j);
    ox[j] = 0.25f;
    oa[j] = -1.0f;
  }
  const VF vom = hn::Load(d, om), vox = hn::Load(d, ox), voa = hn::Load(d, oa);
  for (const MulAddCase& c : MulAddHardCases()) {
    for (size_t lane = 0; lane < N; ++lane) {
      for (size_t j = 0; j < N; ++j) {
        m[j] = om[j];
        x[j] = ox[j];
        a[j] = oa[j];
      }
      m[lane] = c.m;
      x[lane] = c.x;
      a[lane] = c.a;
      const VF vm = hn::Load(d, m), vx = hn::Load(d, x), va = hn::Load(d, a);
      // The result vector `got` should hold form(in[j]) in every lane j.
      const auto check = [&](const char* name, VF got, float (*form)(float, float, float), const float* in_m,
                             const float* in_x, const float* in_a) {
        HWY_ALIGN float out[kMaxLanes];
        hn::Store(got, d, out);
        for (size_t j = 0; j < N; ++j) {
          const float expected = form(in_m[j], in_x[j], in_a[j]);
          ASSERT_TRUE(SameFloatOrBothNaN(out[j], expected))
              << name << " lane " << j << " of " << N << ": m " << in_m[j] << " x " << in_x[j] << " a " << in_a[j]
              << " got " << out[j] << " expected " << expected;
        }
      };
      check("m * x + a", FusedMulAdd(vm, vx, va), fma, m, x, a);
      check("a - m * x", FusedNegMulAdd(vm, vx, va), neg_fma, m, x, a);
      check("m * x - a", FusedMulSub(vm, vx, va), fms, m, x, a);
      VF r0, r1;
      FusedMulAdd2(vm, vx, va, vom, vox, voa, r0, r1);
      check("first of FusedMulAdd2", r0, fma, m, x, a);
      check("second of FusedMulAdd2 (ordinary)", r1, fma, om, ox, oa);
      FusedMulAdd2(vom, vox, voa, vm, vx, va, r0, r1);
      check("first of FusedMulAdd2 (ordinary)", r0, fma, om, ox, oa);
      check("second of FusedMulAdd2", r1, fma, m, x, a);
      FusedMulAdd2</*kNegateFirst=*/true>(vm, vx, va, vm, vx, va, r0, r1);
      check("a - m * x of FusedMulAdd2<kNegateFirst>", r0, neg_fma, m, x, a);
      check("m * x + a of FusedMulAdd2<kNegateFirst>", r1, fma, m, x, a);
    }
  }
}

// NOLINTNEXTLINE(google-readability-namespace-comments)
}  // namespace HWY_NAMESPACE
}  // namespace rotary
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace rotary {
HWY_BEFORE_TEST(RopeKernelTest);
HWY_EXPORT_AND_TEST_P(RopeKernelTest, TestNeoxHeadAllLengths);
HWY_EXPORT_AND_TEST_P(RopeKernelTest, TestInterleavedHeadAllLengths);
HWY_EXPORT_AND_TEST_P(RopeKernelTest, TestRowKernelAcrossChunks);
HWY_EXPORT_AND_TEST_P(RopeKernelTest, TestScaledRowKernelLongHeads);
HWY_EXPORT_AND_TEST_P(RopeKernelTest, TestRowKernelAtCommonHeadSizes);
HWY_EXPORT_AND_TEST_P(RopeKernelTest, TestEveryStoragePairInBothHeadOrders);
HWY_EXPORT_AND_TEST_P(RopeKernelTest, TestSynthesizedRowsMatchDouble);
HWY_EXPORT_AND_TEST_P(RopeKernelTest, TestF16LoadsEveryValueAndStoresItBack);
HWY_EXPORT_AND_TEST_P(RopeKernelTest, TestF32ToF16RoundsToNearestEven);
HWY_EXPORT_AND_TEST_P(RopeKernelTest, TestF32ToBF16RoundsToNearestEven);
HWY_EXPORT_AND_TEST_P(RopeKernelTest, TestTableRowsAreTheScalarFormula);
HWY_EXPORT_AND_TEST_P(RopeKernelTest, TestFusedMulAddRoundsOnce);
}  // namespace rotary
#endif

#if HWY_ONCE
#include <fstream>
#include <set>
#include <string>

#include "rotary/rotary.hpp"

// AVX3_ZEN4 is not a Highway target, so HWY_EXPORT_AND_TEST_P cannot run its
// bf16 stores: this runs them, with the AVX-512 code they are part of.
TEST(NativeBF16, RoundsLikeSoftware) {
#if HWY_TARGETS & (HWY_AVX3_DL | HWY_AVX3)
  bool supported = false;
  for (size_t i = 0; i < rotary::kNumCompiledTargets; ++i) {
    if (rotary::kCompiledTargets[i].extra_features == rotary::kAvx512Bf16) {
      supported = rotary::CpuSupports(rotary::kCompiledTargets[i]);
    }
  }
  if (!supported) GTEST_SKIP() << "this CPU has no AVX512_BF16";
#if HWY_TARGETS & HWY_AVX3_DL
  rotary::N_AVX3_DL::CheckNativeBF16RoundsLikeSoftware();
#else
  rotary::N_AVX3::CheckNativeBF16RoundsLikeSoftware();
#endif
#else
  GTEST_SKIP() << "this build has no AVX-512 kernels";
#endif
}

// Whether the kernel reports AVX512_BF16 (Linux /proc/cpuinfo: an oracle
// independent of the registry's CPUID check); false where it cannot tell.
bool CpuInfoHasAvx512Bf16() {
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string word;
  while (cpuinfo >> word) {
    if (word == "avx512_bf16") return true;
  }
  return false;
}

// Distance of a stored f32 entry from the exact value v, less `slack` (an
// absolute error allowed before the rounding), in units of f32 ulp at v
// (2^(e - 23) for |v| in [2^e, 2^(e+1)); the subnormal spacing below 2^-126).
// NaN and Inf entries are infinitely far.
double UlpsFrom(float entry, double v, double slack) {
  if (!std::isfinite(entry)) return std::numeric_limits<double>::infinity();
  const double magnitude = std::max(std::fabs(v), std::ldexp(1.0, -126));
  const double ulp = std::ldexp(1.0, std::ilogb(magnitude) - 23);
  return std::max(0.0, std::fabs(double(entry) - v) - slack) / ulp;
}

// A full table's entries are m cos / m sin of the exact angle p * w, computed
// in double (exact base and step angles, angle addition: a few units of 2^-53
// absolute) and rounded once to f32: within 0.5 ulp of the exact value once
// the double part's 2^-50 m is allowed for (it matters only for entries near
// 0, whose ulp is tiny). Both layouts, odd row lengths, an attention factor,
// positions from 0 to 2^31 - 1 across chunk boundaries. Run once, on the
// active target: every target's BuildTableRows is the same scalar formula bit
// for bit (TestTableRowsAreTheScalarFormula), so this bound holds on all.
TEST(FullTable, EntriesWithinHalfUlpOfExact) {
  std::mt19937_64 rng(17);
  std::vector<int64_t> positions = {0, 1, 1023, 1024, 4095, 131071, 999999, (int64_t{1} << 31) - 1};
  for (int i = 0; i < 12; ++i) positions.push_back(static_cast<int64_t>(rng() % 1000001));
  for (int i = 0; i < 4; ++i) positions.push_back(static_cast<int64_t>(rng() % (int64_t{1} << 31)));
  double worst = 0;
  for (rotary::TableLayout layout : {rotary::TableLayout::kPerPair, rotary::TableLayout::kPerComponent}) {
    for (size_t pairs : {size_t{1}, size_t{3}, size_t{17}, size_t{64}}) {
      for (double scale : {1.0, 1.25}) {
        const rotary::FrequencyPlan plan{rotary_test::ReferenceInvFreq(static_cast<int>(2 * pairs), 10000.0), scale};
        const double slack = std::ldexp(scale, -50);
        const rotary::CachedTable table(rotary::TableSpec{plan, layout, rotary::RowSource::kFull, int64_t{1} << 31, 0});
        const bool in_slot = table.Pin();
        table.EnsurePositions(positions.data(), static_cast<int64_t>(positions.size()), 0);
        const rotary::TableView view = table.View();
        for (int64_t p : positions) {
          const float* row = view.Row(p);
          for (size_t i = 0; i < pairs; ++i) {
            double c, sn;
            rotary_test::ExactCosSin(p, plan.inv_freq[i], &c, &sn);
            c *= scale;
            sn *= scale;
            if (layout == rotary::TableLayout::kPerPair) {
              worst = std::max({worst, UlpsFrom(row[i], c, slack), UlpsFrom(row[pairs + i], sn, slack)});
            } else {
              worst = std::max({worst, UlpsFrom(row[2 * i], c, slack), UlpsFrom(row[2 * i + 1], c, slack),
                                UlpsFrom(row[2 * pairs + 2 * i], -sn, slack),
                                UlpsFrom(row[2 * pairs + 2 * i + 1], sn, slack)});
            }
          }
        }
        table.Unpin(in_slot);
      }
    }
  }
  std::printf("[ %s ] max full-table entry error: %.6f ulp\n", rotary::active_target().c_str(), worst);
  EXPECT_LE(worst, 0.5);
}

// The library's registry must offer exactly the targets Highway builds and this
// CPU runs, plus AVX3_ZEN4 (AVX-512 rounding bf16 in hardware) where the CPU has
// AVX512_BF16: a target missing from the registry would silently go untested.
TEST(TargetRegistry, OffersEveryTargetHighwayBuildsHere) {
  std::set<std::string> expected;
  for (int64_t target : hwy::SupportedAndGeneratedTargets()) expected.insert(hwy::TargetName(target));
  if ((expected.count("AVX3_DL") != 0 || expected.count("AVX3") != 0) && CpuInfoHasAvx512Bf16()) {
    expected.insert("AVX3_ZEN4");
  }
  const std::vector<std::string> supported = rotary::supported_targets();
  EXPECT_EQ(expected, std::set<std::string>(supported.begin(), supported.end()));
}
#endif
