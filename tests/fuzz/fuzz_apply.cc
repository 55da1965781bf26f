// libFuzzer target: random configs, shapes, strides, dtypes, positions and
// call kinds through the C ABI. For every input:
//  - no crash, no sanitizer report;
//  - a failed call leaves every byte it was given untouched and sets a message;
//  - a successful call matches a float64 reference built from the public plan
//    (rotary_plan), and writes nothing outside the heads it was given.
// Built with clang -fsanitize=fuzzer,address,undefined (ci/fuzz.sh); the same
// file replays the seed corpus as an ordinary test in every build.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <utility>
#include <vector>

#include "rotary/rotary.h"
#include "tests/error_bounds.h"
#include "tests/reference.h"
#include "tests/reference_axes.h"
#include "tests/storage_reference.h"

// tests/fuzz/c_caller.c: the entry points taking an enum by value, called from C.
extern "C" rotary_status fuzz_packed_qkv_views(void* data, int dtype, int64_t batch, int64_t seq, int64_t q_heads,
                                               int64_t kv_heads, int32_t head_dim, rotary_tensor* q, rotary_tensor* k,
                                               rotary_tensor* v);
extern "C" rotary_status fuzz_apply_packed_qkv(const rotary_rope* rope, void* data, int dtype, int64_t batch,
                                               int64_t seq, int64_t q_heads, int64_t kv_heads, const int64_t* positions,
                                               int64_t offset, float q_scale);

// How many inputs reached each outcome (the replay driver reports them).
int64_t g_fuzz_created = 0, g_fuzz_rejected_calls = 0, g_fuzz_checked_calls = 0, g_fuzz_checked_norm_calls = 0,
        g_fuzz_checked_cache_calls = 0;

namespace {

[[noreturn]] void Violation(const char* what) {
  std::fprintf(stderr, "fuzz_apply: %s (last error: %s)\n", what, rotary_last_error());
  std::abort();
}

// Reads the input front to back; past the end everything is 0.
class Bytes {
 public:
  Bytes(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  uint8_t U8() { return pos_ < size_ ? data_[pos_++] : 0; }
  uint16_t U16() { return static_cast<uint16_t>(U8() | (U8() << 8)); }
  uint32_t U32() { return U16() | (static_cast<uint32_t>(U16()) << 16); }
  template <typename T, size_t N>
  T Pick(const T (&choices)[N]) { return choices[U8() % N]; }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

using rotary_test::LoadStored;
using rotary_test::StoreRounded;
size_t ElementBytes(rotary_dtype d) { return rotary_test::StorageBytes(d); }

// A tensor view over its own buffer with guard bytes on both sides. Shapes and
// strides may be invalid: the buffer then covers whatever a valid reading of
// them would (or nothing, when that is too large), and rotary must refuse.
struct Buffer {
  static constexpr size_t kGuardBytes = 64;
  rotary_tensor view{};
  std::vector<uint8_t> bytes;
  bool usable = false;     // the view fits inside `bytes`
  bool too_large = false;  // possibly valid, but larger than this harness allocates: not passed

  uint8_t* At(int64_t b, int64_t s, int64_t h, int64_t k) {
    return static_cast<uint8_t*>(view.data) +
           (b * view.stride_batch + s * view.stride_seq + h * view.stride_head + k) * ElementBytes(view.dtype);
  }
};

constexpr int64_t kTooLarge = -2;

// Extent in elements of a view with sizes >= 1 and, where a size is above 1,
// a stride >= 0; -1 otherwise (rotary must refuse it). kTooLarge for a view
// that may well be valid but spans more than this harness allocates: a caller
// may own that much memory, so such a view is not passed at all. (The stride
// of a size-1 dimension is never used: any value is fine there.)
int64_t Extent(const rotary_tensor& t, int head_dim) {
  if (head_dim < 1) return -1;
  int64_t extent = head_dim;
  for (const auto& [size, stride] : {std::pair{t.batch, t.stride_batch}, std::pair{t.seq, t.stride_seq},
                                     std::pair{t.heads, t.stride_head}}) {
    if (size < 1) return -1;
    if (size == 1) continue;
    if (stride < 0) return -1;
    if (stride > (1 << 16) || size > 64) return kTooLarge;
    extent += (size - 1) * stride;
  }
  return extent > (1 << 18) ? kTooLarge : extent;
}

void MakeBuffer(Bytes& in, Buffer& buf, int32_t raw_dtype, int64_t batch, int64_t seq, int64_t heads, int head_dim,
                bool break_strides, bool null_data) {
  rotary_tensor& t = buf.view;
  std::memcpy(&t.dtype, &raw_dtype, sizeof(raw_dtype));
  const bool valid_dtype = raw_dtype >= 0 && raw_dtype <= 2;
  const rotary_dtype dtype = valid_dtype ? static_cast<rotary_dtype>(raw_dtype) : ROTARY_F32;
  t.batch = batch;
  t.seq = seq;
  t.heads = heads;
  const int64_t pad_head = in.U8() % 4, pad_seq = in.U8() % 4, pad_batch = in.U8() % 4;
  t.stride_head = head_dim + pad_head;
  t.stride_seq = heads * t.stride_head + pad_seq;
  t.stride_batch = seq * t.stride_seq + pad_batch;
  if (in.U8() % 4 == 0) std::swap(t.stride_seq, t.stride_batch);  // batch inside seq: valid when disjoint
  if (break_strides) {
    switch (in.U8() % 3) {
      case 0: t.stride_head = in.U8() % 40; break;
      case 1: t.stride_seq = static_cast<int8_t>(in.U8()); break;
      default: t.stride_batch = static_cast<int64_t>(static_cast<uint64_t>(in.U32()) << (in.U8() % 31)); break;
    }
  }
  const size_t element = ElementBytes(dtype);
  const int64_t extent = Extent(t, head_dim);
  buf.usable = extent > 0;
  buf.too_large = extent == kTooLarge;
  const int64_t elements = buf.usable ? extent : 16;
  buf.bytes.resize(2 * Buffer::kGuardBytes + elements * element);
  for (size_t i = 0; i < buf.bytes.size(); ++i) buf.bytes[i] = static_cast<uint8_t>(in.U8() ^ (i * 131));
  t.data = buf.bytes.data() + Buffer::kGuardBytes;
  if (buf.usable && valid_dtype) {  // small finite values in the heads
    for (int64_t b = 0; b < batch; ++b)
      for (int64_t s = 0; s < seq; ++s)
        for (int64_t h = 0; h < heads; ++h)
          for (int64_t k = 0; k < head_dim; ++k) {
            StoreRounded(buf.At(b, s, h, k), dtype, (static_cast<int>(in.U8()) - 128) / 32.0);
          }
  }
  if (null_data) t.data = nullptr;
}

struct Operand {
  Buffer* src;
  Buffer* dst;  // == src: in place
  double scale;
  const float* norm_weight = nullptr;  // qk-norm before the rotation (rotary_apply_qk_norm)
};

// The qk-norm of a call (docs/math.md §8), for the reference.
struct NormCheck {
  double eps, offset;
  bool whole_token;
};

// Checks a successful call: every dst head against the float64 reference of
// the src values before the call, and nothing else written. ids: `axes`
// arrays of batch * seq (multi-axis RoPE: pair i at its axis's id).
void CheckResult(const rotary_config& c, const std::vector<Operand>& ops, const std::vector<std::vector<uint8_t>>& before_src,
                 const std::vector<std::vector<uint8_t>>& before_dst, const int64_t* ids, int axes, int64_t offset,
                 bool inverse, const NormCheck* norm = nullptr) {
  const rotary_tensor& t0 = ops[0].src->view;
  const int64_t rows = t0.batch * t0.seq;
  int64_t last = 0;
  for (int64_t r = 0; r < rows; ++r)
    for (int a = 0; a < axes; ++a) last = std::max(last, (ids ? ids[a * rows + r] : r % t0.seq) + offset);
  const int pairs = c.rotary_dim / 2;
  // One id per token (axes 1) gives every axis that id.
  std::vector<int> pair_axis = rotary_test::ConfigPairAxes(c);
  if (axes == 1) pair_axis.assign(pairs, 0);
  std::vector<double> inv_freq(pairs);
  double m = 1;
  if (rotary_plan(&c, last + 1, inv_freq.data(), pairs, &m) != ROTARY_OK) Violation("rotary_plan fails for a valid call");

  for (size_t o = 0; o < ops.size(); ++o) {
    const Operand& op = ops[o];
    Buffer& src = *op.src;
    Buffer& dst = *op.dst;
    const rotary_dtype sd = src.view.dtype, dd = dst.view.dtype;
    const bool in_place = op.src == op.dst;
    std::vector<char> written(dst.bytes.size(), 0);
    const uint8_t* src_base = before_src[o].data() + Buffer::kGuardBytes;
    for (int64_t b = 0; b < src.view.batch; ++b)
      for (int64_t s = 0; s < src.view.seq; ++s)
        for (int64_t h = 0; h < src.view.heads; ++h) {
          const int64_t row = b * src.view.seq + s;
          std::vector<double> x(c.head_dim), y(c.head_dim);
          const auto load_head = [&](int64_t head, std::vector<double>& values) {
            const int64_t at = b * src.view.stride_batch + s * src.view.stride_seq + head * src.view.stride_head;
            for (int k = 0; k < c.head_dim; ++k) values[k] = LoadStored(src_base + (at + k) * ElementBytes(sd), sd);
          };
          load_head(h, x);
          double norm_tol = 0;
          if (norm != nullptr && op.norm_weight != nullptr) {  // §8.1 in float64: u = x r (w + offset)
            double sum = 0;
            int64_t count = c.head_dim;
            if (norm->whole_token) {
              std::vector<double> other(c.head_dim);
              for (int64_t g = 0; g < src.view.heads; ++g) {
                load_head(g, other);
                for (double v : other) sum += v * v;
              }
              count *= src.view.heads;
            } else {
              for (double v : x) sum += v * v;
            }
            const double rms = 1.0 / std::sqrt(sum / static_cast<double>(count) + norm->eps);
            const float* w = op.norm_weight + (norm->whole_token ? h * c.head_dim : 0);
            double largest = 0;
            for (int k = 0; k < c.head_dim; ++k) {
              x[k] = x[k] * rms * (static_cast<double>(w[k]) + norm->offset);
              largest = std::max(largest, std::fabs(x[k]));
            }
            norm_tol = 4e-6 * largest * op.scale * m;  // §8's f32 bound of the norm itself
          }
          y = x;
          double max_abs_x = 0;
          for (double v : x) max_abs_x = std::max(max_abs_x, std::fabs(v));
          const double r = inverse ? 1.0 / m : m;
          for (int i = 0; i < pairs; ++i) {
            const int a = c.pairing == ROTARY_INTERLEAVED ? 2 * i : i;
            const int e = c.pairing == ROTARY_INTERLEAVED ? 2 * i + 1 : i + pairs;
            const int64_t p = (ids ? ids[pair_axis[i] * rows + row] : s) + offset;
            double cos_t, sin_t;
            rotary_test::ExactCosSin(p, inv_freq[i], &cos_t, &sin_t);
            if (inverse) sin_t = -sin_t;
            y[a] = r * (x[a] * cos_t - x[e] * sin_t);
            y[e] = r * (x[a] * sin_t + x[e] * cos_t);
          }
          // Any table mode (the synthesized rows' bound covers the full
          // table's), then one rounding to the output's storage: half its
          // spacing at the value, relative 2^-11 (f16) or 2^-8 (bf16), and
          // half of f16's smallest subnormal step, 2^-25, below its normals.
          const double f32_tol =
              rotary_test::F32Bound(max_abs_x, r, op.scale, rotary_test::Rows::kSynthesized) + norm_tol;
          for (int k = 0; k < c.head_dim; ++k) {
            uint8_t* out = dst.At(b, s, h, k);
            written[out - dst.bytes.data()] = 1;
            const double got = LoadStored(out, dd);
            if (k >= c.rotary_dim && in_place && op.scale == 1.0 && (norm == nullptr || op.norm_weight == nullptr)) {
              if (std::memcmp(out, before_dst[o].data() + (out - dst.bytes.data()), ElementBytes(dd)) != 0) {
                Violation("a pass-through component changed in place");
              }
              continue;
            }
            const double expected = op.scale * y[k];
            const double magnitude = std::fabs(expected) + f32_tol;
            const double tol = f32_tol + (dd == ROTARY_F32 ? 0.0
                                          : dd == ROTARY_F16 ? magnitude * 0x1p-11 + 0x1p-25
                                                             : magnitude * 0x1p-8);
            if (!(std::fabs(got - expected) <= tol)) {
              std::fprintf(stderr, "component %d of head (%lld,%lld,%lld): got %.9g, expected %.9g\n", k,
                           static_cast<long long>(b), static_cast<long long>(s), static_cast<long long>(h), got,
                           expected);
              Violation("result differs from the float64 reference");
            }
          }
        }
    for (size_t i = 0; i < dst.bytes.size(); ++i) {
      const size_t element = ElementBytes(dd);
      if (!written[i - i % element] && dst.bytes[i] != before_dst[o][i]) Violation("wrote outside the heads");
    }
    if (!in_place && src.bytes != before_src[o]) Violation("an out-of-place call wrote its source");
  }
}

// Each input breaks at most one thing on purpose (`broken` names it), so that
// most inputs reach a real call and each rejection has a single cause.
enum Broken {
  kNothing = 0, kHeadDim, kRotaryDim, kPairing, kBase, kMaxPositions, kPositionLimit, kScaling, kFactor,
  kScheme, kArrays, kDtype, kShape, kStrides, kNullData, kOffset, kIds, kScale, kTableMode, kAxes, kNorm, kNumBroken
};

template <typename T, size_t N, size_t M>
T PickEither(Bytes& in, bool broken, const T (&good)[N], const T (&bad)[M]) {
  return broken ? in.Pick(bad) : in.Pick(good);
}

void PickConfig(Bytes& in, int broken, rotary_config& c, std::vector<std::vector<double>>& arrays) {
  rotary_config_init(&c);
  const int32_t dims[] = {2, 4, 6, 8, 16, 18, 32, 34, 64, 80, 96, 128, 130, 256};
  const int32_t bad_dims[] = {7, 0, -2, 1 << 20};
  c.head_dim = PickEither(in, broken == kHeadDim, dims, bad_dims);
  const int rotary_choice = in.U8() % 4;
  c.rotary_dim = rotary_choice < 2 ? c.head_dim : rotary_choice == 2 ? std::max(2, (c.head_dim / 4) * 2) : 2;
  if (broken == kRotaryDim) c.rotary_dim = in.U8() % 2 ? c.head_dim + 2 : 3;
  c.pairing = static_cast<rotary_pairing>(broken == kPairing ? 2 + in.U8() % 3 : in.U8() % 2);
  const double bases[] = {10000.0, 500000.0, 1e6, 2.0, 100.0};
  const double bad_bases[] = {1.0, -1.0, 0.5, kNaN, kInf};
  c.base = PickEither(in, broken == kBase, bases, bad_bases);
  const int64_t maxes[] = {1, 7, 1024, 4096, 5000};
  const int64_t bad_maxes[] = {0, -3, int64_t{1} << 41};
  c.max_positions = PickEither(in, broken == kMaxPositions, maxes, bad_maxes);
  const int64_t limits[] = {int64_t{1} << 20, int64_t{1} << 24, 1 << 21};
  const int64_t bad_limits[] = {0, int64_t{1} << 40, -1};
  c.position_limit = PickEither(in, broken == kPositionLimit, limits, bad_limits);
  c.scaling = static_cast<rotary_scaling>(broken == kScaling ? 10 + in.U8() % 4 : in.U8() % 10);
  // Every table mode; a broken one as the raw int a C caller may store (outside the enum's range).
  const int32_t table_mode = broken == kTableMode ? 4 + in.U8() % 3 : in.U8() % 4;
  std::memcpy(&c.table_mode, &table_mode, sizeof(table_mode));

  // Parameters that make every scheme valid, then at most one made invalid.
  const double factors[] = {1.0, 2.0, 4.0, 8.0, 32.0};
  c.factor = in.Pick(factors);
  const int64_t lengths[] = {64, 4096, 8192};
  c.original_max_position_embeddings = in.Pick(lengths);
  c.max_position_embeddings = c.original_max_position_embeddings * 2;
  const double attention[] = {0.0, 0.0, 1.0, 1.5, 0.7};
  c.attention_factor = in.Pick(attention);
  const double small[] = {0.0, 0.5, 1.0};
  c.mscale = in.Pick(small);
  c.mscale_all_dim = in.Pick(small);
  c.truncate = in.U8() % 2;
  c.n_max = int64_t{1} << 20;
  if (broken == kFactor) {
    const double bad[] = {-1.0, kNaN, kInf};
    c.factor = in.Pick(bad);
  }
  if (broken == kScheme) {
    switch (in.U8() % 6) {
      case 0: c.beta_fast = 0.5; c.beta_slow = 2.0; break;
      case 1: c.low_freq_factor = 4.0; c.high_freq_factor = 1.0; break;
      case 2: c.n_max = 0; break;
      case 3: c.original_max_position_embeddings = 1; break;
      case 4: c.attention_factor = -1.0; break;
      default: c.mscale = kNaN; break;
    }
  }
  const int pairs = std::max(1, c.rotary_dim / 2);
  for (rotary_array* a : {&c.short_factor, &c.long_factor, &c.freq_factors, &c.inv_freq}) {
    const bool bad = broken == kArrays && in.U8() % 2;
    std::vector<double> values(bad && in.U8() % 2 ? pairs + 1 : std::min(pairs, 4096));
    for (double& v : values) v = 0.25 + (in.U8() % 64) / 16.0;
    if (bad && !values.empty()) values[in.U8() % values.size()] = in.U8() % 2 ? -1.0 : kNaN;
    arrays.push_back(std::move(values));
    *a = rotary_array{arrays.back().data(), static_cast<int64_t>(arrays.back().size())};
  }

  // Multi-axis RoPE in a quarter of the inputs: HF's three sections or ggml's
  // four, contiguous or interleaved, or 2D vision (DEFAULT scaling only).
  const int multi = in.U8() % 8;
  if (multi < 2 || broken == kAxes) {
    if (multi == 0 && c.rotary_dim % 4 == 0) {
      c.vision_2d = 1;
      c.scaling = ROTARY_SCALING_DEFAULT;
    } else {
      const int32_t axis_pairs = c.rotary_dim / 2;
      c.mrope_section_count = in.U8() % 2 ? 3 : 4;
      c.mrope_section[0] = axis_pairs / 4;
      c.mrope_section[1] = (axis_pairs - c.mrope_section[0]) / 2;
      c.mrope_section[2] = axis_pairs - c.mrope_section[0] - c.mrope_section[1];
      if (c.mrope_section_count == 4 && c.mrope_section[2] > 0 && in.U8() % 2) {
        --c.mrope_section[2];
        ++c.mrope_section[3];
      }
      c.mrope_interleaved = in.U8() % 2;
    }
    if (broken == kAxes) {
      switch (in.U8() % 4) {
        case 0: ++c.mrope_section[0]; ++c.mrope_section_count; break;  // a bad sum, or vision with sections
        case 1: c.mrope_section_count = 5; break;
        case 2: c.vision_2d = 2; break;
        default: c.mrope_section[3] = -1; break;
      }
    }
  }
}


// Some in-place q + k calls write k and v into a paged KV cache instead
// (rotary_apply_options' k_cache, v_src, v_cache, slot_mapping, cache_format;
// docs/math.md §9). A refused call leaves every buffer as it was; an accepted
// one leaves k and v as they were, gives q the bits of rotary_apply_qk, writes
// nothing in the caches but the addressed heads, and for tensor caches writes
// there exactly what rotary_apply_to (k; with qk-norm, k normalized alone)
// and one rounding (v) give. Broken: a slot out of range or used twice, or a
// bad scale, which must be refused.
void FuzzCacheWrite(Bytes& input, const rotary_rope* rope, int head_dim, Buffer& q, Buffer& k, const int64_t* ids,
                    int64_t offset, float q_scale) {
  // The choices come from the input mixed with k's bytes: inputs are often used
  // up by the tensors before this point, and zeros alone would always pick the same.
  std::vector<uint8_t> choices(k.bytes.begin(), k.bytes.end());
  for (uint8_t& c : choices) c = static_cast<uint8_t>(c ^ input.U8());
  Bytes in(choices.data(), choices.size());
  const bool broken = in.U8() % 4 == 3;
  const int format = in.U8() % 6;  // 0-2: tensor caches of f32, f16, bf16; 3, 4: FP8 E4M3, E5M2; 5: q8_0
  const rotary_dtype cache_dtype = format < 3 ? static_cast<rotary_dtype>(format) : ROTARY_F32;
  const int64_t heads = k.view.heads, rows = k.view.batch * k.view.seq;
  Buffer v;
  int32_t k_dtype;  // k's raw dtype, perhaps not a rotary_dtype (an invalid enum value is not read as one)
  std::memcpy(&k_dtype, &k.view.dtype, sizeof(k_dtype));
  MakeBuffer(in, v, k_dtype, k.view.batch, k.view.seq, heads, head_dim, false, false);
  if (!v.usable || v.too_large) return;
  const int64_t block_size = 1 + in.U8() % 8;
  const int64_t num_blocks = (rows + block_size - 1) / block_size + in.U8() % 3;
  const int64_t head_elements = format == 5 ? head_dim / 32 * 34 : head_dim;  // bytes for the byte formats
  const int64_t element = format < 3 ? static_cast<int64_t>(ElementBytes(cache_dtype)) : 1;
  const int64_t head_bytes = head_elements * element;
  const int64_t slots_held = num_blocks * block_size;
  const auto make_cache = [&](std::vector<uint8_t>& bytes, rotary_tensor& view) {
    bytes.assign(static_cast<size_t>(2 * Buffer::kGuardBytes + slots_held * heads * head_bytes), 0);
    for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<uint8_t>(i * 37 + 11);
    view = rotary_tensor{bytes.data() + Buffer::kGuardBytes, cache_dtype, num_blocks, block_size, heads,
                         block_size * heads * head_elements, heads * head_elements, head_elements};
  };
  std::vector<uint8_t> kc, vc;
  rotary_tensor kc_view, vc_view;
  make_cache(kc, kc_view);
  make_cache(vc, vc_view);
  // Distinct slots in an order the input picks; some tokens padding (-1).
  std::vector<int64_t> all(static_cast<size_t>(slots_held));
  for (int64_t i = 0; i < slots_held; ++i) all[i] = i;
  for (int64_t i = slots_held - 1; i > 0; --i) std::swap(all[i], all[in.U8() % (i + 1)]);
  std::vector<int64_t> slots(all.begin(), all.begin() + rows);
  for (int64_t& slot : slots) {
    if (in.U8() % 5 == 0) slot = -1;
  }
  double k_scale = format == 3 || format == 4 ? 0.25 * (1 + in.U8() % 8) : 0.0, v_scale = k_scale;
  if (broken) {
    switch (in.U8() % 3) {
      case 0: slots[in.U8() % rows] = slots_held + in.U8() % 3; break;
      case 1:
        if (rows < 2) return;
        slots[0] = slots[1] = in.U8() % slots_held;
        break;
      default: v_scale = in.U8() % 2 ? -1.0 : std::numeric_limits<double>::quiet_NaN(); break;
    }
  }
  // Some calls normalize q and k first (qk-norm, per head): q must then have
  // the bits of rotary_apply_qk_norm, and k's rows those of k normalized alone.
  const bool with_norm = in.U8() % 3 == 2;
  std::vector<float> q_weight(static_cast<size_t>(head_dim)), k_weight(static_cast<size_t>(head_dim));
  for (float& w : q_weight) w = static_cast<float>(static_cast<int>(in.U8()) - 96) / 64.0f;
  for (float& w : k_weight) w = static_cast<float>(static_cast<int>(in.U8()) - 96) / 64.0f;
  rotary_qk_norm norm, k_norm;
  rotary_qk_norm_init(&norm);
  norm.q_weight = q_weight.data();
  norm.k_weight = k_weight.data();
  norm.weight_offset = in.U8() % 2;
  k_norm = norm;
  k_norm.q_weight = k_weight.data();
  k_norm.k_weight = nullptr;
  const std::vector<uint8_t> q_before = q.bytes, k_before = k.bytes, v_before = v.bytes, kc_before = kc, vc_before = vc;

  rotary_apply_options options;
  rotary_apply_options_init(&options);
  options.positions = ids;
  options.offset = offset;
  options.q_scale = q_scale;
  options.k_cache = &kc_view;
  options.v_src = &v.view;
  options.v_cache = &vc_view;
  options.slot_mapping = slots.data();
  options.cache_format = format < 3 ? ROTARY_CACHE_TENSOR
                         : format == 3 ? ROTARY_CACHE_FP8_E4M3
                         : format == 4 ? ROTARY_CACHE_FP8_E5M2
                                       : ROTARY_CACHE_Q8_0;
  options.k_scale = k_scale;
  options.v_scale = v_scale;
  if (with_norm) options.norm = &norm;
  if (rotary_apply_with(rope, &q.view, &q.view, &k.view, nullptr, &options) != ROTARY_OK) {
    ++g_fuzz_rejected_calls;
    if (rotary_last_error()[0] == '\0') Violation("failure without a message");
    if (q.bytes != q_before || k.bytes != k_before || v.bytes != v_before || kc != kc_before || vc != vc_before) {
      Violation("a refused KV-cache write wrote memory");
    }
    return;
  }
  if (broken) Violation("accepted a KV-cache write with a bad slot or scale");
  ++g_fuzz_checked_calls;
  ++g_fuzz_checked_cache_calls;
  if (k.bytes != k_before || v.bytes != v_before) Violation("a KV-cache write changed k or v");
  // q: the bits of rotary_apply_qk (with the norm: rotary_apply_qk_norm) on copies of q and k.
  Buffer q2 = q, k2 = k;
  q2.bytes = q_before;
  k2.bytes = k_before;
  q2.view.data = q2.bytes.data() + Buffer::kGuardBytes;
  k2.view.data = k2.bytes.data() + Buffer::kGuardBytes;
  const rotary_status q_status =
      with_norm ? rotary_apply_qk_norm(rope, &q2.view, &q2.view, &k2.view, &k2.view, ids, 1, offset, q_scale, &norm)
                : rotary_apply_qk(rope, &q2.view, &k2.view, ids, offset, q_scale);
  if (q_status != ROTARY_OK || q2.bytes != q.bytes) {
    Violation("q of a KV-cache write differs from rotary_apply_qk (_norm)");
  }
  // The caches: the addressed heads as expected (tensor caches), every other byte as it was.
  std::vector<uint8_t> k_expected = kc_before, v_expected = vc_before;
  std::vector<uint8_t> rotated(static_cast<size_t>(rows * heads * head_dim * 4));
  rotary_tensor rotated_view{rotated.data(), cache_dtype, k.view.batch, k.view.seq, heads,
                             k.view.seq * heads * head_dim, heads * head_dim, head_dim};
  const auto rotate_k = [&] {
    return with_norm ? rotary_apply_qk_norm(rope, &k.view, &rotated_view, nullptr, nullptr, ids, 1, offset, 1.0f,
                                            &k_norm)
                     : rotary_apply_to(rope, &k.view, &rotated_view, ids, offset);
  };
  if (format < 3 && rotate_k() != ROTARY_OK) Violation("rotary_apply_to refuses what the KV-cache write accepted");
  for (int64_t r = 0; r < rows; ++r) {
    if (slots[r] < 0) continue;
    const int64_t b = r / k.view.seq, s = r % k.view.seq;
    for (int64_t h = 0; h < heads; ++h) {
      const size_t at = static_cast<size_t>(Buffer::kGuardBytes + (slots[r] * heads + h) * head_bytes);
      for (int64_t e = 0; e < head_bytes; ++e) {  // the head's bytes: unknown for the byte formats
        k_expected[at + e] = kc[at + e];
        v_expected[at + e] = vc[at + e];
      }
      if (format >= 3) continue;
      for (int64_t c = 0; c < head_dim; ++c) {
        std::memcpy(&k_expected[at + c * element], rotated.data() + ((r * heads + h) * head_dim + c) * element,
                    static_cast<size_t>(element));
        StoreRounded(&v_expected[at + c * element], cache_dtype, LoadStored(v.At(b, s, h, c), v.view.dtype));
      }
    }
  }
  if (kc != k_expected) Violation("k_cache differs from apply_to's heads at the slots, or changed elsewhere");
  if (vc != v_expected) Violation("v_cache differs from v rounded once at the slots, or changed elsewhere");
}
}  // namespace


extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Bytes in(data, size);
  const int broken = in.U8() % (2 * kNumBroken);  // half the inputs break nothing
  rotary_config config;
  std::vector<std::vector<double>> arrays;
  arrays.reserve(4);
  PickConfig(in, broken, config, arrays);

  rotary_rope* rope = nullptr;
  const rotary_status created = rotary_create(&config, &rope);
  if (created != ROTARY_OK) {
    if (rope != nullptr || rotary_last_error()[0] == '\0') Violation("failed create without NULL rope and message");
    return 0;
  }

  ++g_fuzz_created;
  const int kind = in.U8() % 6;  // apply, inverse, apply_to, qk, qk_to, packed
  const bool inverse = kind == 1 || (kind == 2 && in.U8() % 2);
  const bool norm_wanted = in.U8() % 4 == 3;  // early in the input: most inputs are short
  const bool sequence_offsets_wanted = in.U8() % 4 == 2;
  // Raw ints: a C caller may store any int in an enum field (see lib/config/enum_value.h).
  const int32_t dtypes[] = {ROTARY_F32, ROTARY_F16, ROTARY_BF16, ROTARY_F32};
  const int32_t bad_dtypes[] = {3, -1};
  const int32_t src_type = PickEither(in, broken == kDtype && in.U8() % 2, dtypes, bad_dtypes);
  const int32_t dst_type = PickEither(in, broken == kDtype, dtypes, bad_dtypes);
  const int64_t sizes[] = {1, 1, 2, 3, 5};
  const int64_t bad_sizes[] = {0, -1};
  const int64_t batch = in.Pick(sizes), seq = in.Pick(sizes), kv_heads = 1 + in.U8() % 3;
  const int64_t heads = PickEither(in, broken == kShape, sizes, bad_sizes);
  const int head_dim = config.head_dim;

  Buffer q, q_out, k, k_out, packed;
  std::vector<Operand> ops;
  if (kind == 5) {  // packed QKV: views computed by the library itself
    const int64_t b = std::max<int64_t>(batch, 1), s = std::max<int64_t>(seq, 1), hq = std::max<int64_t>(heads, 1);
    const size_t elements = b * s * (hq + 2 * kv_heads) * head_dim;
    packed.bytes.resize(2 * Buffer::kGuardBytes + elements * (src_type == ROTARY_F32 ? 4 : 2));
    for (size_t i = 0; i < packed.bytes.size(); ++i) packed.bytes[i] = static_cast<uint8_t>(i * 7 % 61);
    rotary_tensor qv, kv;
    if (fuzz_packed_qkv_views(packed.bytes.data() + Buffer::kGuardBytes, src_type, b, s, hq, kv_heads, head_dim, &qv,
                              &kv, nullptr) != ROTARY_OK) {
      rotary_destroy(rope);
      return 0;
    }
    q.view = qv;
    k.view = kv;
  } else {
    const int victim = in.U8() % 4;  // which tensor a broken stride / NULL data goes to
    auto make = [&](Buffer& buf, int index, int32_t type, int64_t h) {
      MakeBuffer(in, buf, type, batch, seq, h, head_dim, broken == kStrides && victim == index,
                 broken == kNullData && victim == index);
    };
    make(q, 0, src_type, heads);
    if (kind == 2 || kind == 4) make(q_out, 1, dst_type, heads);
    if (kind >= 3) make(k, 2, src_type, kv_heads);
    if (kind == 4) make(k_out, 3, dst_type, kv_heads);
  }

  for (const Buffer* b : {&q, &q_out, &k, &k_out}) {
    if (b->too_large) {
      rotary_destroy(rope);
      return 0;
    }
  }

  // Positions: offset + s, or explicit ids (sometimes out of range).
  const int64_t offsets[] = {0, 1, 4095, 131000, 999990};
  const int64_t bad_offsets[] = {-1, int64_t{1} << 41, std::numeric_limits<int64_t>::max()};
  const int64_t offset = PickEither(in, broken == kOffset, offsets, bad_offsets);
  std::vector<int64_t> ids;
  const int64_t rows = std::max<int64_t>(batch, 1) * std::max<int64_t>(seq, 1);
  if (in.U8() % 2 || broken == kIds) {
    const int64_t picks[] = {0, 1, 1023, 1024, 131071, 999999 - 1000000, 7};
    for (int64_t r = 0; r < rows; ++r) ids.push_back(in.U8() % 2 ? static_cast<int64_t>(in.U32() % 10000) : in.Pick(picks));
    if (broken == kIds) {
      const int64_t bad[] = {-5 - offset, std::numeric_limits<int64_t>::max(), int64_t{1} << 30};
      ids[in.U8() % ids.size()] = in.Pick(bad);
    }
  }
  // Multi-axis ids ([axes, batch, seq]) for a multi-axis rope, in most of its
  // calls (a 0 byte, as past the input's end, picks them): axis 0 the ids
  // above (or new ones), the others the same id or another; sometimes an axis
  // count the rope does not read (an error, nothing written).
  const int32_t axis_count = rotary_axis_count(rope);
  int32_t axes = 1, axes_given = 1;
  if (axis_count > 1 && kind != 5 && in.U8() % 4 != 3) {
    if (ids.empty()) {
      for (int64_t r = 0; r < rows; ++r) ids.push_back(static_cast<int64_t>(in.U32() % 10000) + 17 * r);
    }
    axes = axis_count;
    axes_given = in.U8() % 8 == 7 ? axis_count + (in.U8() % 2 ? 1 : -2) : axis_count;  // -2: 1 (valid) or 0
    for (int32_t a = 1; a < std::max(axes, axes_given); ++a) {
      for (int64_t r = 0; r < rows; ++r) ids.push_back(in.U8() % 2 ? ids[r] : static_cast<int64_t>(in.U32() % 20000));
    }
  }
  const int64_t* id_ptr = ids.empty() ? nullptr : ids.data();
  float q_scale = kind >= 3 && in.U8() % 2 ? 0.125f * (1 + in.U8() % 16) : 1.0f;
  if (broken == kScale) q_scale = in.U8() % 2 ? std::numeric_limits<float>::quiet_NaN() : std::numeric_limits<float>::infinity();

  // Everything a call may touch, as it was.
  std::vector<Buffer*> all = {&q, &q_out, &k, &k_out, &packed};
  std::vector<std::vector<uint8_t>> before;
  for (Buffer* b : all) before.push_back(b->bytes);

  // Some in-place inverse calls become shifts (rotary_shift) by delta.
  const bool shift = kind == 1 && axes == 1 && in.U8() % 4 == 3;
  const int64_t deltas[] = {3, -2, 4096, -131000, 999999};
  const int64_t bad_deltas[] = {-offset - 1, std::numeric_limits<int64_t>::max()};
  const int64_t delta = shift ? PickEither(in, broken == kOffset, deltas, bad_deltas) : 0;

  // Some forward calls normalize q and k first (qk-norm): weights of head_dim
  // floats, or of heads * head_dim for a whole-token norm; broken: a bad eps
  // or a non-finite weight (an error, nothing written).
  const bool with_norm = !shift && !inverse && kind != 5 && (norm_wanted || broken == kNorm);
  NormCheck norm_check{1e-6, 0.0, false};
  std::vector<float> q_weight, k_weight;
  rotary_qk_norm norm;
  rotary_qk_norm_init(&norm);
  if (with_norm) {
    const double epsilons[] = {1e-6, 1e-5, 0.5};
    const double offsets_w[] = {0.0, 1.0, -0.25};
    norm_check = {in.Pick(epsilons), in.Pick(offsets_w), in.U8() % 3 == 2};
    const auto weights = [&](int64_t heads_of, std::vector<float>& w) {
      w.resize(static_cast<size_t>((norm_check.whole_token ? std::max<int64_t>(heads_of, 1) : 1) * head_dim));
      for (float& v : w) v = static_cast<float>(static_cast<int>(in.U8()) - 96) / 64.0f;
    };
    weights(q.view.heads, q_weight);
    if (kind >= 3) weights(k.view.heads, k_weight);
    norm.q_weight = in.U8() % 8 == 7 ? nullptr : q_weight.data();
    norm.k_weight = kind >= 3 && in.U8() % 8 != 7 ? k_weight.data() : nullptr;
    norm.eps = norm_check.eps;
    norm.weight_offset = norm_check.offset;
    norm.whole_token = norm_check.whole_token ? 1 : 0;
    if (broken == kNorm) {
      switch (in.U8() % 3) {
        case 0: norm.eps = in.U8() % 2 ? 0.0 : std::numeric_limits<double>::quiet_NaN(); break;
        case 1: norm.whole_token = 3; break;
        default:
          q_weight[in.U8() % q_weight.size()] = std::numeric_limits<float>::infinity();
          norm.q_weight = q_weight.data();
          break;
      }
    }
  }

  // Some calls give each sequence an offset of its own (rotary_apply_with's
  // batch_offsets; broken: one that makes a position negative or overflows).
  const bool with_sequence_offsets = !shift && kind != 5 && sequence_offsets_wanted;
  std::vector<int64_t> sequence_offsets;
  if (with_sequence_offsets) {
    const int64_t starts[] = {0, 3, 1000, 130000};
    const int64_t bad_starts[] = {-offset - 1, std::numeric_limits<int64_t>::max()};
    for (int64_t b = 0; b < std::max<int64_t>(batch, 1); ++b) sequence_offsets.push_back(in.Pick(starts));
    if (broken == kOffset) sequence_offsets[in.U8() % sequence_offsets.size()] = in.Pick(bad_starts);
  }

  // Read last, so that the inputs of every other call kind keep their meaning.
  if (kind == 3 && !shift && !with_norm && !with_sequence_offsets && axes_given == 1 && in.U8() % 2 == 0) {
    FuzzCacheWrite(in, rope, head_dim, q, k, id_ptr, offset, q_scale);
    rotary_destroy(rope);
    return 0;
  }

  rotary_status status;
  if (shift) {
    status = rotary_shift(rope, &q.view, id_ptr, offset, delta);
  } else if (with_sequence_offsets) {
    const bool separate_dst = kind == 2 || kind == 4;
    rotary_apply_options options;
    rotary_apply_options_init(&options);
    options.positions = id_ptr;
    options.axes = axes_given;
    options.offset = offset;
    options.batch_offsets = sequence_offsets.data();
    options.q_scale = kind >= 3 ? q_scale : 1.0f;
    options.inverse = inverse ? 1 : 0;
    options.norm = with_norm ? &norm : nullptr;
    status = rotary_apply_with(rope, &q.view, separate_dst ? &q_out.view : &q.view, kind >= 3 ? &k.view : nullptr,
                               kind == 4 ? &k_out.view : kind == 3 ? &k.view : nullptr, &options);
  } else if (with_norm) {
    const bool separate_dst = kind == 2 || kind == 4;
    status = rotary_apply_qk_norm(rope, &q.view, separate_dst ? &q_out.view : &q.view, kind >= 3 ? &k.view : nullptr,
                                  kind == 4 ? &k_out.view : kind == 3 ? &k.view : nullptr, id_ptr, axes_given, offset,
                                  kind >= 3 ? q_scale : 1.0f, &norm);
  } else if (axes > 1) {
    const bool separate_dst = kind == 2 || kind == 4;
    status = rotary_apply_axes(rope, &q.view, separate_dst ? &q_out.view : &q.view, kind >= 3 ? &k.view : nullptr,
                               kind == 4 ? &k_out.view : kind == 3 ? &k.view : nullptr, id_ptr, axes_given, offset,
                               kind >= 3 ? q_scale : 1.0f, inverse ? 1 : 0);
  } else switch (kind) {
    case 0: status = rotary_apply(rope, &q.view, id_ptr, offset); break;
    case 1: status = rotary_apply_inverse(rope, &q.view, id_ptr, offset); break;
    case 2:
      status = inverse ? rotary_apply_inverse_to(rope, &q.view, &q_out.view, id_ptr, offset)
                       : rotary_apply_to(rope, &q.view, &q_out.view, id_ptr, offset);
      break;
    case 3: status = rotary_apply_qk(rope, &q.view, &k.view, id_ptr, offset, q_scale); break;
    case 4: status = rotary_apply_qk_to(rope, &q.view, &q_out.view, &k.view, &k_out.view, id_ptr, offset, q_scale); break;
    default:
      status = fuzz_apply_packed_qkv(rope, packed.bytes.data() + Buffer::kGuardBytes, src_type, q.view.batch,
                                       q.view.seq, q.view.heads, kv_heads, id_ptr, offset, q_scale);
      break;
  }

  if (status != ROTARY_OK) {
    ++g_fuzz_rejected_calls;
    if (rotary_last_error()[0] == '\0') Violation("failure without a message");
    for (size_t i = 0; i < all.size(); ++i) {
      if (all[i]->bytes != before[i]) Violation("a failed call wrote memory");
    }
  } else if (shift) {
    // The same as the inverse at the old positions, then the forward
    // rotation at the new ones, on a copy of the input.
    ++g_fuzz_checked_calls;
    Buffer copy = q;
    copy.bytes = before[0];
    copy.view.data = copy.bytes.data() + (static_cast<uint8_t*>(q.view.data) - q.bytes.data());
    if (rotary_apply_inverse(rope, &copy.view, id_ptr, offset) != ROTARY_OK ||
        rotary_apply(rope, &copy.view, id_ptr, offset + delta) != ROTARY_OK || copy.bytes != q.bytes) {
      Violation("rotary_shift differs from the inverse then the forward rotation");
    }
  } else if (++g_fuzz_checked_calls, kind == 5) {
    // The packed entry point must equal rotary_apply_qk on the same views
    // (whose results the other call kinds check against the reference).
    std::vector<uint8_t> separate = before[4];
    rotary_tensor qv = q.view, kv = k.view;
    qv.data = separate.data() + Buffer::kGuardBytes + (static_cast<uint8_t*>(q.view.data) - (packed.bytes.data() + Buffer::kGuardBytes));
    kv.data = separate.data() + Buffer::kGuardBytes + (static_cast<uint8_t*>(k.view.data) - (packed.bytes.data() + Buffer::kGuardBytes));
    if (rotary_apply_qk(rope, &qv, &kv, id_ptr, offset, q_scale) != ROTARY_OK || separate != packed.bytes) {
      Violation("packed QKV differs from rotary_apply_qk on the same views");
    }
  } else {
    const bool separate_dst = kind == 2 || kind == 4;
    ops.push_back(Operand{&q, separate_dst ? &q_out : &q, kind >= 3 ? q_scale : 1.0, norm.q_weight});
    if (kind >= 3) ops.push_back(Operand{&k, kind == 4 ? &k_out : &k, 1.0, norm.k_weight});
    std::vector<std::vector<uint8_t>> src_before = {before[0]}, dst_before = {separate_dst ? before[1] : before[0]};
    if (kind >= 3) {
      src_before.push_back(before[2]);
      dst_before.push_back(kind == 4 ? before[3] : before[2]);
    }
    for (const Operand& op : ops) {
      if (!op.src->usable || !op.dst->usable) Violation("accepted a view outside its buffer");
    }
    // Per-sequence offsets: the reference reads the positions they stand for.
    std::vector<int64_t> effective_ids;
    if (with_sequence_offsets) {
      const int64_t seq_len = q.view.seq;
      for (int32_t a = 0; a < axes_given; ++a) {
        for (int64_t r = 0; r < rows; ++r) {
          effective_ids.push_back((id_ptr ? id_ptr[a * rows + r] : r % seq_len) + sequence_offsets[r / seq_len]);
        }
      }
    }
    CheckResult(config, ops, src_before, dst_before, with_sequence_offsets ? effective_ids.data() : id_ptr,
                axes_given, offset, inverse, with_norm ? &norm_check : nullptr);
    g_fuzz_checked_norm_calls += with_norm;
  }
  rotary_destroy(rope);
  return 0;
}
