// rotary: the C++ API. A thin, header-only face of the C ABI in rotary.h, so
// C++ users link against the same stable symbols as C users:
//   - rotary::Rope owns a rotary_rope (RAII, movable, not copyable);
//   - rotary::Tensor is a strided [batch, seq, heads, head_dim] view;
//   - every failure throws rotary::Error, which carries the rotary_status.
#ifndef ROTARY_ROTARY_HPP_
#define ROTARY_ROTARY_HPP_

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "rotary/rotary.h"

namespace rotary {

enum class Status : int {
  kOk = ROTARY_OK,
  kInvalidArgument = ROTARY_INVALID_ARGUMENT,
  kOutOfRange = ROTARY_OUT_OF_RANGE,
  kOutOfMemory = ROTARY_OUT_OF_MEMORY,
  kUnsupported = ROTARY_UNSUPPORTED,
};

enum class Pairing : int { kNeox = ROTARY_NEOX, kInterleaved = ROTARY_INTERLEAVED };

// Where cos/sin come from (rotary_table_mode).
enum class TableMode : int {
  kAuto = ROTARY_TABLE_AUTO,
  kFull = ROTARY_TABLE_FULL,
  kCompact = ROTARY_TABLE_COMPACT,
  kOnTheFly = ROTARY_TABLE_ON_THE_FLY,
  kBorrowed = ROTARY_TABLE_BORROWED,  // a Rope over a BorrowedTable (reported, not configured)
};

// Storage of a tensor; f16 and bf16 data are raw 16-bit patterns (uint16_t).
enum class Dtype : int { kF32 = ROTARY_F32, kF16 = ROTARY_F16, kBF16 = ROTARY_BF16 };

// The one exception type of the C++ API.
class Error : public std::runtime_error {
 public:
  Error(Status status, const std::string& message) : std::runtime_error(message), status_(status) {}
  Status status() const noexcept { return status_; }

 private:
  Status status_;
};

namespace detail {
inline void Check(rotary_status status) {
  if (status != ROTARY_OK) throw Error(static_cast<Status>(status), rotary_last_error());
}
}  // namespace detail

// Configuration with the library's defaults (rotary_config_init) and chainable
// setters. The scheme setters build a frequency plan from a model config's
// rope_scaling block, under HF's key names (see rotary_config for each field);
// Config keeps the lists it is given alive for itself and all its copies.
struct Config {
  rotary_config c;

  Config() { rotary_config_init(&c); }
  // Sets head_dim and, as the common case, a full rotary_dim; call rotary_dim() after for partial.
  Config& head_dim(int32_t d) { c.head_dim = d; c.rotary_dim = d; return *this; }
  Config& rotary_dim(int32_t r) { c.rotary_dim = r; return *this; }
  Config& pairing(Pairing p) { c.pairing = static_cast<rotary_pairing>(p); return *this; }
  Config& base(double b) { c.base = b; return *this; }
  Config& max_positions(int64_t n) { c.max_positions = n; return *this; }
  Config& position_limit(int64_t n) { c.position_limit = n; return *this; }
  Config& table_mode(TableMode m) { c.table_mode = static_cast<rotary_table_mode>(m); return *this; }

  // ---- Frequency schemes (docs/math.md §2, §3) ----
  Config& linear(double factor) { return scheme(ROTARY_SCALING_LINEAR).factor(factor); }
  Config& ntk(double factor) { return scheme(ROTARY_SCALING_NTK).factor(factor); }
  Config& ntk_alpha(double alpha) { c.alpha = alpha; return scheme(ROTARY_SCALING_NTK); }
  Config& dynamic_ntk(double factor, int64_t max_position_embeddings) {
    return scheme(ROTARY_SCALING_DYNAMIC_NTK).factor(factor).max_position_embeddings(max_position_embeddings);
  }
  // Options: beta_fast, beta_slow, mscale, mscale_all_dim, truncate, attention_factor.
  Config& yarn(double factor, int64_t original_max_position_embeddings) {
    return scheme(ROTARY_SCALING_YARN)
        .factor(factor)
        .original_max_position_embeddings(original_max_position_embeddings);
  }
  Config& llama3(double factor = 8, double low_freq_factor = 1, double high_freq_factor = 4,
                 int64_t original_max_position_embeddings = 8192) {
    c.low_freq_factor = low_freq_factor;
    c.high_freq_factor = high_freq_factor;
    return scheme(ROTARY_SCALING_LLAMA3)
        .factor(factor)
        .original_max_position_embeddings(original_max_position_embeddings);
  }
  // factor 0: derived as max_position_embeddings / original (Phi-3 configs give no factor).
  Config& longrope(std::vector<double> short_factor, std::vector<double> long_factor,
                   int64_t original_max_position_embeddings, double factor = 0) {
    c.short_factor = keep(std::move(short_factor));
    c.long_factor = keep(std::move(long_factor));
    return scheme(ROTARY_SCALING_LONGROPE)
        .factor(factor)
        .original_max_position_embeddings(original_max_position_embeddings);
  }
  Config& freq_factors(std::vector<double> divisors) {
    c.freq_factors = keep(std::move(divisors));
    return scheme(ROTARY_SCALING_FREQ_FACTORS);
  }
  Config& inv_freq(std::vector<double> frequencies) {
    c.inv_freq = keep(std::move(frequencies));
    return scheme(ROTARY_SCALING_INV_FREQ);
  }
  Config& bounded(int64_t n_max) { c.n_max = n_max; return scheme(ROTARY_SCALING_BOUNDED); }

  // ---- Multi-axis RoPE (docs/math.md §7): apply with Positions::Axes ----
  // M-RoPE: pairs per axis (t, h, w), HF's mrope_section; 4 entries: ggml's
  // (t, h, w, e). interleaved: Qwen3-VL's alternating axes.
  Config& mrope_section(const std::vector<int32_t>& pairs_per_axis, bool interleaved = false) {
    c.mrope_section_count = static_cast<int32_t>(pairs_per_axis.size());  // not 3 or 4: rejected at create
    for (size_t a = 0; a < 4; ++a) c.mrope_section[a] = a < pairs_per_axis.size() ? pairs_per_axis[a] : 0;
    c.mrope_interleaved = interleaved ? 1 : 0;
    return *this;
  }
  // 2D vision RoPE over (row, col) (Qwen2-VL's vision encoder).
  Config& vision_2d(bool on = true) { c.vision_2d = on ? 1 : 0; return *this; }

  // ---- Individual scheme parameters ----
  Config& factor(double s) { c.factor = s; return *this; }
  Config& original_max_position_embeddings(int64_t n) { c.original_max_position_embeddings = n; return *this; }
  Config& max_position_embeddings(int64_t n) { c.max_position_embeddings = n; return *this; }
  Config& attention_factor(double m) { c.attention_factor = m; return *this; }
  Config& beta_fast(double b) { c.beta_fast = b; return *this; }
  Config& beta_slow(double b) { c.beta_slow = b; return *this; }
  Config& mscale(double m) { c.mscale = m; return *this; }
  Config& mscale_all_dim(double m) { c.mscale_all_dim = m; return *this; }
  Config& truncate(bool t) { c.truncate = t ? 1 : 0; return *this; }

 private:
  Config& scheme(rotary_scaling s) { c.scaling = s; return *this; }
  // The arrays c points into: shared and immutable, so copies of a Config stay valid.
  rotary_array keep(std::vector<double> values) {
    arrays_.push_back(std::make_shared<const std::vector<double>>(std::move(values)));
    return rotary_array{arrays_.back()->data(), static_cast<int64_t>(arrays_.back()->size())};
  }
  std::vector<std::shared_ptr<const std::vector<double>>> arrays_;
};

// What a config applies to a call whose largest position is seq_len - 1
// (only dynamic NTK and LongRoPE depend on seq_len): rotary_plan.
struct Plan {
  std::vector<double> inv_freq;  // one per rotated pair: angle(p, i) = p * inv_freq[i]
  double attention_factor;       // m, multiplying cos and sin (attention logits scale by m^2)
};

inline Plan plan(const Config& config, int64_t seq_len = 1) {
  const int32_t rotary_dim = config.c.rotary_dim == 0 ? config.c.head_dim : config.c.rotary_dim;  // 0: head_dim
  Plan out{std::vector<double>(rotary_dim > 0 ? rotary_dim / 2 : 0), 1.0};
  detail::Check(rotary_plan(&config.c, seq_len, out.inv_freq.data(), static_cast<int32_t>(out.inv_freq.size()),
                            &out.attention_factor));
  return out;
}

// The factor for the caller's attention softmax scale (DeepSeek YaRN): rotary_softmax_scale_factor.
inline double softmax_scale_factor(const Config& config) {
  double factor = 1.0;
  detail::Check(rotary_softmax_scale_factor(&config.c, &factor));
  return factor;
}

// A strided [batch, seq, heads, head_dim] view (strides in elements).
struct Tensor {
  rotary_tensor t;
  // The head_dim given to a contiguous constructor, checked against the rope's
  // (a mismatch would make the rope rotate past the end of each head); -1 when
  // the view is built from strides, which do not say it.
  int64_t head_dim = -1;

  // f32, contiguous.
  Tensor(float* data, int64_t batch, int64_t seq, int64_t heads, int64_t head_dim)
      : Tensor(data, Dtype::kF32, batch, seq, heads, head_dim) {}
  // f32, explicit element strides for batch, seq and head.
  Tensor(float* data, int64_t batch, int64_t seq, int64_t heads, int64_t stride_batch,
         int64_t stride_seq, int64_t stride_head)
      : Tensor(data, Dtype::kF32, batch, seq, heads, stride_batch, stride_seq, stride_head) {}
  // Any storage type, contiguous.
  Tensor(void* data, Dtype dtype, int64_t batch, int64_t seq, int64_t heads, int64_t head_dim)
      : Tensor(data, dtype, batch, seq, heads, seq * heads * head_dim, heads * head_dim, head_dim) {
    this->head_dim = head_dim;
  }
  // Any storage type, explicit element strides.
  Tensor(void* data, Dtype dtype, int64_t batch, int64_t seq, int64_t heads, int64_t stride_batch,
         int64_t stride_seq, int64_t stride_head)
      : t{data, static_cast<rotary_dtype>(dtype), batch, seq, heads, stride_batch, stride_seq, stride_head} {}
  explicit Tensor(const rotary_tensor& raw) : t(raw) {}
};

// q, k and v views of a packed QKV buffer [batch, seq, (q_heads + 2 kv_heads) * head_dim].
struct PackedQkv {
  Tensor q, k, v;

  static PackedQkv Views(void* data, Dtype dtype, int64_t batch, int64_t seq, int64_t q_heads,
                         int64_t kv_heads, int32_t head_dim) {
    rotary_tensor q, k, v;
    detail::Check(rotary_packed_qkv_views(data, static_cast<rotary_dtype>(dtype), batch, seq, q_heads,
                                          kv_heads, head_dim, &q, &k, &v));
    PackedQkv views{Tensor(q), Tensor(k), Tensor(v)};
    views.q.head_dim = views.k.head_dim = views.v.head_dim = head_dim;
    return views;
  }
};

// Positions of the rows: either offset + s, or explicit ids (one per (b, s),
// or one per axis and (b, s): Axes) plus offset; and, for ragged batches,
// an offset per sequence added to its positions (PerSequence).
struct Positions {
  const int64_t* ids = nullptr;
  int64_t offset = 0;
  // The number of ids when they come from a vector: it must be batch * seq of
  // the call's tensors (checked). -1 for a bare pointer, which the caller vouches for.
  int64_t count = -1;

  Positions() = default;
  /*implicit*/ Positions(int64_t start) : offset(start) {}
  /*implicit*/ Positions(const std::vector<int64_t>& explicit_ids, int64_t add = 0)
      : ids(explicit_ids.data()), offset(add), count(static_cast<int64_t>(explicit_ids.size())) {}
  Positions(const int64_t* explicit_ids, int64_t add) : ids(explicit_ids), offset(add) {}

  // Multi-axis ids, axis-major [axes, batch, seq] as HF's position_ids of
  // M-RoPE (3 or 4 axes) and vision (2: row, col) models; `add` moves every axis.
  static Positions Axes(const std::vector<int64_t>& ids, int32_t axes, int64_t add = 0) {
    Positions p(ids, add);
    p.axes = axes;
    return p;
  }
  static Positions Axes(const int64_t* ids, int32_t axes, int64_t add = 0) {
    Positions p(ids, add);
    p.axes = axes;
    return p;
  }

  // Ragged batches (left padding, continuous batching): sequence b is at
  // offsets[b] + s (one offset per sequence: the vector's size must be the
  // call's batch). with_sequence_offsets adds them to any other positions.
  static Positions PerSequence(const std::vector<int64_t>& offsets) { return Positions().with_sequence_offsets(offsets); }
  Positions& with_sequence_offsets(const std::vector<int64_t>& offsets) {
    batch_offsets = offsets.data();
    batch_offsets_count = static_cast<int64_t>(offsets.size());
    return *this;
  }
  Positions& with_sequence_offsets(const int64_t* offsets) {
    batch_offsets = offsets;
    batch_offsets_count = -1;
    return *this;
  }

  int32_t axes = 1;  // ids per (b, s): 1, or the rope's axis_count()
  const int64_t* batch_offsets = nullptr;
  int64_t batch_offsets_count = -1;
};

// qk-norm before the rotation (rotary_qk_norm; docs/math.md §8): an RMSNorm
// of each head (whole_token: of all heads of a token, OLMo 2) with its own
// weight for q and for k; u = (x * r) * (weight + weight_offset).
struct QkNorm {
  const float* q_weight = nullptr;  // nullptr: q is rotated without a norm
  const float* k_weight = nullptr;
  double eps = 1e-6;
  double weight_offset = 0.0;  // 1 for Gemma 3's (1 + w)
  bool whole_token = false;
  // Weights from vectors: their lengths are checked against head_dim
  // (whole_token: heads * head_dim). -1 for a bare pointer.
  int64_t q_count = -1, k_count = -1;

  QkNorm() = default;
  QkNorm(const std::vector<float>& q, const std::vector<float>& k, double epsilon = 1e-6, double offset = 0.0,
         bool over_whole_token = false)
      : q_weight(q.empty() ? nullptr : q.data()), k_weight(k.empty() ? nullptr : k.data()), eps(epsilon),
        weight_offset(offset), whole_token(over_whole_token), q_count(static_cast<int64_t>(q.size())),
        k_count(static_cast<int64_t>(k.size())) {}
};

// A caller's cos/sin cache for a Rope to read in place (rotary_borrowed_table):
// pair i at position p rotates by cos[p * row_stride + i], sin[p * row_stride + i].
// The arrays must outlive the Rope and not change while calls run.
struct BorrowedTable {
  rotary_borrowed_table t;

  BorrowedTable() { rotary_borrowed_table_init(&t); }

  // ONNX RotaryEmbedding: cos_cache and sin_cache, [rows, rotary_dim / 2] each.
  static BorrowedTable onnx(const float* cos_cache, const float* sin_cache, int64_t rows, int32_t rotary_dim) {
    BorrowedTable table;
    rotary_borrowed_table_onnx(&table.t, cos_cache, sin_cache, rows, rotary_dim, ROTARY_F32);
    return table;
  }
  // The same in f16 or bf16 (raw 16-bit patterns).
  static BorrowedTable onnx(const uint16_t* cos_cache, const uint16_t* sin_cache, int64_t rows, int32_t rotary_dim,
                            Dtype dtype) {
    BorrowedTable table;
    rotary_borrowed_table_onnx(&table.t, cos_cache, sin_cache, rows, rotary_dim, HalfDtype(dtype));
    return table;
  }
  // vLLM: cos_sin_cache [rows, rotary_dim], rotary_dim / 2 cos values then as many sin values a row.
  static BorrowedTable vllm(const float* cos_sin_cache, int64_t rows, int32_t rotary_dim) {
    BorrowedTable table;
    rotary_borrowed_table_vllm(&table.t, cos_sin_cache, rows, rotary_dim, ROTARY_F32);
    return table;
  }
  static BorrowedTable vllm(const uint16_t* cos_sin_cache, int64_t rows, int32_t rotary_dim, Dtype dtype) {
    BorrowedTable table;
    rotary_borrowed_table_vllm(&table.t, cos_sin_cache, rows, rotary_dim, HalfDtype(dtype));
    return table;
  }

 private:
  static rotary_dtype HalfDtype(Dtype dtype) {
    if (dtype != Dtype::kF16 && dtype != Dtype::kBF16) {
      throw Error(Status::kInvalidArgument, "a table of uint16_t values is f16 or bf16");
    }
    return static_cast<rotary_dtype>(dtype);
  }
};

// The KV-cache write of apply_qk (rotary_apply_options' k_cache, v_src,
// v_cache, slot_mapping): k rotated, and v converted, into the slot of each
// token of paged caches, in the same pass. A cache is a Tensor seen as
// [num_blocks, block_size, kv_heads, head_dim]: e.g. Tensor(k_cache, Dtype::kF16,
// num_blocks, block_size, kv_heads, head_dim) for vLLM's layout, or with the
// strides of [num_blocks, kv_heads, block_size, head_dim] for its CPU backend's.
// Byte caches (FP8, q8_0: rotary_cache_format) are Tensors of bytes: their
// dtype is ignored and their strides are in bytes (with_format).
struct KvCacheWrite {
  Tensor k_cache, v, v_cache;
  const int64_t* slot_mapping;  // batch * seq slots; negative: the token is not written
  int64_t slot_count = -1;      // checked against batch * seq when from a vector; -1 for a bare pointer
  rotary_cache_format format = ROTARY_CACHE_TENSOR;
  double k_scale = 0.0, v_scale = 0.0;  // FP8: stored = fp8(x / scale); 0 means 1

  // The caches' format, and for FP8 the scales of k and v.
  KvCacheWrite& with_format(rotary_cache_format cache_format, double k_divisor = 0.0, double v_divisor = 0.0) {
    format = cache_format;
    k_scale = k_divisor;
    v_scale = v_divisor;
    return *this;
  }

  KvCacheWrite(const Tensor& k_cache_view, const Tensor& v_view, const Tensor& v_cache_view,
               const std::vector<int64_t>& slots)
      : k_cache(k_cache_view), v(v_view), v_cache(v_cache_view), slot_mapping(slots.data()),
        slot_count(static_cast<int64_t>(slots.size())) {}
  KvCacheWrite(const Tensor& k_cache_view, const Tensor& v_view, const Tensor& v_cache_view, const int64_t* slots)
      : k_cache(k_cache_view), v(v_view), v_cache(v_cache_view), slot_mapping(slots) {}
  // The slots are read by the call, not copied: a temporary vector would be
  // gone before a KvCacheWrite kept in a variable is used. Name the vector.
  KvCacheWrite(const Tensor&, const Tensor&, const Tensor&, std::vector<int64_t>&&) = delete;
};

class Rope {
 public:
  explicit Rope(const Config& config = Config()) : head_dim_(config.c.head_dim) {
    detail::Check(rotary_create(&config.c, &rope_));
  }
  // Over a caller's cos/sin cache (rotary_create_borrowed): config gives head_dim, rotary_dim, pairing and
  // the multi-axis layout; the frequencies and any attention factor are the table's.
  Rope(const Config& config, const BorrowedTable& table) : head_dim_(config.c.head_dim) {
    detail::Check(rotary_create_borrowed(&config.c, &table.t, &rope_));
  }
  ~Rope() { rotary_destroy(rope_); }
  Rope(Rope&& other) noexcept : rope_(std::exchange(other.rope_, nullptr)), head_dim_(other.head_dim_) {}
  Rope& operator=(Rope&& other) noexcept {
    if (this != &other) {
      rotary_destroy(rope_);
      rope_ = std::exchange(other.rope_, nullptr);
      head_dim_ = other.head_dim_;
    }
    return *this;
  }
  Rope(const Rope&) = delete;
  Rope& operator=(const Rope&) = delete;

  // In place. Thread-safe: many threads may apply one Rope at once.
  void apply(const Tensor& x, Positions positions = Positions()) const {
    CheckView(x, "x", positions);
    if (NeedsOptions(positions)) return ApplyWith(x, x, nullptr, nullptr, positions, 1.0f, false, nullptr);
    detail::Check(rotary_apply(rope_, &x.t, positions.ids, positions.offset));
  }
  void apply_inverse(const Tensor& x, Positions positions = Positions()) const {
    CheckView(x, "x", positions);
    if (NeedsOptions(positions)) return ApplyWith(x, x, nullptr, nullptr, positions, 1.0f, true, nullptr);
    detail::Check(rotary_apply_inverse(rope_, &x.t, positions.ids, positions.offset));
  }

  // Out of place: src -> dst, each with its own storage type and strides.
  void apply_to(const Tensor& src, const Tensor& dst, Positions positions = Positions()) const {
    CheckView(src, "src", positions);
    CheckView(dst, "dst", positions);
    if (NeedsOptions(positions)) return ApplyWith(src, dst, nullptr, nullptr, positions, 1.0f, false, nullptr);
    detail::Check(rotary_apply_to(rope_, &src.t, &dst.t, positions.ids, positions.offset));
  }
  void apply_inverse_to(const Tensor& src, const Tensor& dst, Positions positions = Positions()) const {
    CheckView(src, "src", positions);
    CheckView(dst, "dst", positions);
    if (NeedsOptions(positions)) return ApplyWith(src, dst, nullptr, nullptr, positions, 1.0f, true, nullptr);
    detail::Check(rotary_apply_inverse_to(rope_, &src.t, &dst.t, positions.ids, positions.offset));
  }

  // x, rotated at positions, moved to positions + delta (inverse then forward,
  // bit for bit; llama.cpp's context shift). One id per token.
  void shift(const Tensor& x, Positions positions, int64_t delta) const {
    CheckView(x, "x", positions);
    if (NeedsOptions(positions)) {
      throw Error(Status::kInvalidArgument, "shift takes one id per token and no per-sequence offsets");
    }
    detail::Check(rotary_shift(rope_, &x.t, positions.ids, positions.offset, delta));
  }

  // q and k (any head counts) in one pass, in place; q_scale multiplies all of q.
  void apply_qk(const Tensor& q, const Tensor& k, Positions positions = Positions(), float q_scale = 1.0f) const {
    CheckView(q, "q", positions);
    CheckView(k, "k", positions);
    if (NeedsOptions(positions)) return ApplyWith(q, q, &k, &k, positions, q_scale, false, nullptr);
    detail::Check(rotary_apply_qk(rope_, &q.t, &k.t, positions.ids, positions.offset, q_scale));
  }
  // q rotated in place (times q_scale) and, in the same pass, k rotated into cache.k_cache and v converted
  // into cache.v_cache at each token's slot (k and v are only read).
  void apply_qk(const Tensor& q, const Tensor& k, const KvCacheWrite& cache, Positions positions = Positions(),
                float q_scale = 1.0f) const {
    apply_qk_to(q, q, k, cache, positions, q_scale);
  }
  // The same with q rotated out of place into q_dst.
  void apply_qk_to(const Tensor& q_src, const Tensor& q_dst, const Tensor& k, const KvCacheWrite& cache,
                   Positions positions = Positions(), float q_scale = 1.0f) const {
    ApplyCacheWrite(q_src, q_dst, k, cache, nullptr, positions, q_scale);
  }
  // Both with qk-norm first (q with norm.q_weight, k with norm.k_weight; v is copied as it is).
  void apply_qk(const Tensor& q, const Tensor& k, const KvCacheWrite& cache, const QkNorm& norm,
                Positions positions = Positions(), float q_scale = 1.0f) const {
    ApplyCacheWrite(q, q, k, cache, &norm, positions, q_scale);
  }
  void apply_qk_to(const Tensor& q_src, const Tensor& q_dst, const Tensor& k, const KvCacheWrite& cache,
                   const QkNorm& norm, Positions positions = Positions(), float q_scale = 1.0f) const {
    ApplyCacheWrite(q_src, q_dst, k, cache, &norm, positions, q_scale);
  }
  void apply_qk_to(const Tensor& q_src, const Tensor& q_dst, const Tensor& k_src, const Tensor& k_dst,
                   Positions positions = Positions(), float q_scale = 1.0f) const {
    CheckView(q_src, "q_src", positions);
    CheckView(q_dst, "q_dst", positions);
    CheckView(k_src, "k_src", positions);
    CheckView(k_dst, "k_dst", positions);
    if (NeedsOptions(positions)) return ApplyWith(q_src, q_dst, &k_src, &k_dst, positions, q_scale, false, nullptr);
    detail::Check(rotary_apply_qk_to(rope_, &q_src.t, &q_dst.t, &k_src.t, &k_dst.t, positions.ids,
                                     positions.offset, q_scale));
  }

  // qk-norm, then RoPE, then q_scale on q, in one pass (rotary_apply_qk_norm).
  // A single tensor is normalized with norm.q_weight.
  void apply(const Tensor& x, const QkNorm& norm, Positions positions = Positions()) const {
    ApplyNorm(x, x, nullptr, nullptr, norm, positions, 1.0f);
  }
  void apply_to(const Tensor& src, const Tensor& dst, const QkNorm& norm, Positions positions = Positions()) const {
    ApplyNorm(src, dst, nullptr, nullptr, norm, positions, 1.0f);
  }
  void apply_qk(const Tensor& q, const Tensor& k, const QkNorm& norm, Positions positions = Positions(),
                float q_scale = 1.0f) const {
    ApplyNorm(q, q, &k, &k, norm, positions, q_scale);
  }
  void apply_qk_to(const Tensor& q_src, const Tensor& q_dst, const Tensor& k_src, const Tensor& k_dst,
                   const QkNorm& norm, Positions positions = Positions(), float q_scale = 1.0f) const {
    ApplyNorm(q_src, q_dst, &k_src, &k_dst, norm, positions, q_scale);
  }

  // The q and k heads of a packed QKV buffer, in place; v untouched.
  void apply_packed_qkv(void* data, Dtype dtype, int64_t batch, int64_t seq, int64_t q_heads,
                        int64_t kv_heads, Positions positions = Positions(), float q_scale = 1.0f) const {
    CheckPositions(positions, batch, seq);
    if (NeedsOptions(positions)) {
      const PackedQkv views = PackedQkv::Views(data, dtype, batch, seq, q_heads, kv_heads, static_cast<int32_t>(head_dim_));
      return ApplyWith(views.q, views.q, &views.k, &views.k, positions, q_scale, false, nullptr);
    }
    detail::Check(rotary_apply_packed_qkv(rope_, data, static_cast<rotary_dtype>(dtype), batch, seq, q_heads,
                                          kv_heads, positions.ids, positions.offset, q_scale));
  }

  // The same with qk-norm first (through the buffer's q and k views).
  void apply_packed_qkv(void* data, Dtype dtype, int64_t batch, int64_t seq, int64_t q_heads, int64_t kv_heads,
                        const QkNorm& norm, Positions positions = Positions(), float q_scale = 1.0f) const {
    CheckPositions(positions, batch, seq);
    const PackedQkv views = PackedQkv::Views(data, dtype, batch, seq, q_heads, kv_heads, static_cast<int32_t>(head_dim_));
    ApplyNorm(views.q, views.q, &views.k, &views.k, norm, positions, q_scale);
  }

  int64_t table_bytes() const { return rotary_table_bytes(rope_); }
  int32_t table_count() const { return rotary_table_count(rope_); }
  // The table mode in use (kAuto resolved).
  TableMode table_mode() const { return static_cast<TableMode>(rotary_table_mode_of(rope_)); }
  // Position ids per token: 1, 2 (vision_2d), 3 or 4 (mrope_section).
  int32_t axis_count() const { return rotary_axis_count(rope_); }
  const rotary_rope* handle() const noexcept { return rope_; }

 private:
  // Positions the legacy entry points cannot take: multi-axis ids, per-sequence offsets.
  static bool NeedsOptions(const Positions& positions) {
    return positions.axes != 1 || positions.batch_offsets != nullptr;
  }

  // Any call through rotary_apply_with (norm: qk-norm, or nullptr; cache: a KV-cache write, or nullptr).
  // Multi-axis ids alone go to rotary_apply_axes, which takes them as arguments: no options struct to
  // fill and read on a decode call's path.
  void ApplyWith(const Tensor& q_src, const Tensor& q_dst, const Tensor* k_src, const Tensor* k_dst,
                 const Positions& positions, float q_scale, bool inverse, const QkNorm* norm,
                 const KvCacheWrite* cache = nullptr) const {
    if (norm == nullptr && cache == nullptr && positions.batch_offsets == nullptr) {
      detail::Check(rotary_apply_axes(rope_, &q_src.t, &q_dst.t, k_src ? &k_src->t : nullptr,
                                      k_dst ? &k_dst->t : nullptr, positions.ids, positions.axes, positions.offset,
                                      q_scale, inverse ? 1 : 0));
      return;
    }
    // The library's defaults, read once (a decode call pays for every call it makes).
    static const rotary_apply_options kDefaults = [] {
      rotary_apply_options o;
      rotary_apply_options_init(&o);
      return o;
    }();
    rotary_apply_options options = kDefaults;
    options.positions = positions.ids;
    options.axes = positions.axes;
    options.offset = positions.offset;
    options.batch_offsets = positions.batch_offsets;
    options.q_scale = q_scale;
    options.inverse = inverse ? 1 : 0;
    rotary_qk_norm n;
    if (norm != nullptr) {
      rotary_qk_norm_init(&n);
      n.q_weight = norm->q_weight;
      n.k_weight = k_src != nullptr ? norm->k_weight : nullptr;
      n.eps = norm->eps;
      n.weight_offset = norm->weight_offset;
      n.whole_token = norm->whole_token ? 1 : 0;
      options.norm = &n;
    }
    if (cache != nullptr) {
      options.k_cache = &cache->k_cache.t;
      options.v_src = &cache->v.t;
      options.v_cache = &cache->v_cache.t;
      options.slot_mapping = cache->slot_mapping;
      options.cache_format = cache->format;
      options.k_scale = cache->k_scale;
      options.v_scale = cache->v_scale;
    }
    detail::Check(rotary_apply_with(rope_, &q_src.t, &q_dst.t, k_src ? &k_src->t : nullptr,
                                    k_dst ? &k_dst->t : nullptr, &options));
  }

  void ApplyCacheWrite(const Tensor& q_src, const Tensor& q_dst, const Tensor& k, const KvCacheWrite& cache,
                       const QkNorm* norm, const Positions& positions, float q_scale) const {
    CheckView(q_src, "q_src", positions);
    CheckView(q_dst, "q_dst", positions);
    CheckView(k, "k", positions);
    CheckView(cache.v, "v", positions);
    for (const Tensor* c : {&cache.k_cache, &cache.v_cache}) {  // byte caches: a head is not head_dim elements
      if (cache.format == ROTARY_CACHE_TENSOR && c->head_dim >= 0 && c->head_dim != head_dim_) {
        CheckView(*c, "cache", Positions());
      }
    }
    if (cache.slot_count >= 0 && cache.slot_count != q_src.t.batch * q_src.t.seq) {
      throw Error(Status::kInvalidArgument, "slot_mapping: " + std::to_string(cache.slot_count) +
                                                " slots for batch * seq = " +
                                                std::to_string(q_src.t.batch * q_src.t.seq) + " tokens");
    }
    if (norm != nullptr) {
      CheckWeight(norm->q_count, norm->whole_token ? q_src.t.heads : 1, "norm.q_weight");
      CheckWeight(norm->k_count, norm->whole_token ? k.t.heads : 1, "norm.k_weight");
    }
    ApplyWith(q_src, q_dst, &k, nullptr, positions, q_scale, false, norm, &cache);
  }

  void ApplyNorm(const Tensor& q_src, const Tensor& q_dst, const Tensor* k_src, const Tensor* k_dst,
                 const QkNorm& norm, const Positions& positions, float q_scale) const {
    CheckView(q_src, "q_src", positions);
    CheckView(q_dst, "q_dst", positions);
    CheckWeight(norm.q_count, norm.whole_token ? q_src.t.heads : 1, "norm.q_weight");
    if (k_src != nullptr) {
      CheckView(*k_src, "k_src", positions);
      CheckView(*k_dst, "k_dst", positions);
      CheckWeight(norm.k_count, norm.whole_token ? k_src->t.heads : 1, "norm.k_weight");
    }
    ApplyWith(q_src, q_dst, k_src, k_dst, positions, q_scale, false, &norm);
  }
  void CheckWeight(int64_t count, int64_t heads, const char* name) const {
    if (count <= 0) return;  // a bare pointer (the caller vouches for it), or none
    if (count != heads * head_dim_) {
      throw Error(Status::kInvalidArgument, std::string(name) + " has " + std::to_string(count) +
                                                " floats; the call needs " + std::to_string(heads * head_dim_));
    }
  }

  // What the C ABI cannot see: the head_dim a contiguous Tensor was made with,
  // and the length of a positions vector.
  void CheckView(const Tensor& x, const char* name, const Positions& positions) const {
    if (x.head_dim >= 0 && x.head_dim != head_dim_) {
      throw Error(Status::kInvalidArgument, std::string(name) + ": a tensor of head_dim " +
                                                std::to_string(x.head_dim) + " for a rope of head_dim " +
                                                std::to_string(head_dim_));
    }
    CheckPositions(positions, x.t.batch, x.t.seq);
  }
  static void CheckPositions(const Positions& positions, int64_t batch, int64_t seq) {
    if (positions.batch_offsets_count >= 0 && batch >= 0 && positions.batch_offsets_count != batch) {
      throw Error(Status::kInvalidArgument, "positions: " + std::to_string(positions.batch_offsets_count) +
                                                " sequence offsets for batch = " + std::to_string(batch));
    }
    if (positions.count < 0 || batch < 0 || seq < 0 || positions.axes < 1) return;  // the library rejects these
    if (seq != 0 && batch > INT64_MAX / seq / positions.axes) return;                 // likewise
    if (positions.count != batch * seq * positions.axes) {
      throw Error(Status::kInvalidArgument,
                  "positions: " + std::to_string(positions.count) + " ids for " +
                      (positions.axes == 1 ? "" : std::to_string(positions.axes) + " axes * ") + "batch * seq = " +
                      std::to_string(batch) + " * " + std::to_string(seq) + " rows");
    }
  }

  rotary_rope* rope_ = nullptr;
  int64_t head_dim_ = 0;
};

// ---- The process-wide table cache (rotary_cache_*) ----

// Budget in bytes (>= 0); evicts down to it. Throws on a negative budget.
inline void set_cache_budget(int64_t bytes) { detail::Check(rotary_cache_set_budget(bytes)); }
inline int64_t cache_budget() { return rotary_cache_budget(); }
inline int64_t cache_bytes() { return rotary_cache_bytes(); }
inline int32_t cache_tables() { return rotary_cache_tables(); }
// Frees the rows of every table no call is reading; returns the bytes freed.
inline int64_t cache_trim() { return rotary_cache_trim(); }

// ---- Kernel targets: list, force, report ----

struct TargetInfo {
  std::string name;
  bool supported;  // this CPU can run it
};

// Every target compiled into this build, best first.
inline std::vector<TargetInfo> compiled_targets() {
  std::vector<TargetInfo> out;
  for (int32_t i = 0; i < rotary_target_count(); ++i) {
    out.push_back({rotary_target_name(i), rotary_target_supported(i) != 0});
  }
  return out;
}

// Names of the compiled targets this CPU can run, best first.
inline std::vector<std::string> supported_targets() {
  std::vector<std::string> out;
  for (const TargetInfo& t : compiled_targets()) {
    if (t.supported) out.push_back(t.name);
  }
  return out;
}

// Force a target for the whole process ("" or "auto": best supported). Throws if
// the name is unknown or the CPU cannot run it.
inline void set_target(const std::string& name) { detail::Check(rotary_set_target(name.c_str())); }

inline std::string active_target() { return rotary_active_target(); }

// Why the active target is active: "default", "ROTARY_TARGET" or "rotary_set_target".
inline std::string target_source() { return rotary_target_source(); }

// The library's version, "MAJOR.MINOR.PATCH".
inline std::string version() { return rotary_version(); }

}  // namespace rotary

#endif  // ROTARY_ROTARY_HPP_
