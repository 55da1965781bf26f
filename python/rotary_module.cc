// The Python module `rotary`: RoPE on numpy arrays and torch tensors (any
// DLPack producer) through the C++ API (rotary.hpp). Arrays are viewed, never
// copied (array_view.h): a [batch, seq, heads, head_dim] (or [seq, heads,
// head_dim]) array becomes a rotary::Tensor with its byte strides turned into
// element strides. f32 and f16 are recognized by dtype, and bf16 tensors too;
// numpy bf16 data travels as a uint16 array with dtype="bf16". The GIL is
// released while the kernel runs, so other Python threads (and other applies:
// one Rope is thread-safe) go on meanwhile.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "array_view.h"
#include "rotary/rotary.hpp"

namespace py = pybind11;

namespace {

using rotary_python::ArrayView;

[[noreturn]] void Invalid(const std::string& message) { throw rotary::Error(rotary::Status::kInvalidArgument, message); }

// A value as Python prints it, for error messages.
std::string Repr(const py::handle& value) { return py::str(py::repr(value)); }

// ---- Configuration: keyword arguments under rotary_config's (HF's) names ----

rotary_scaling ScalingFromName(const std::string& name) {
  static const std::pair<const char*, rotary_scaling> kNames[] = {
      {"default", ROTARY_SCALING_DEFAULT}, {"linear", ROTARY_SCALING_LINEAR},
      {"ntk", ROTARY_SCALING_NTK},         {"dynamic", ROTARY_SCALING_DYNAMIC_NTK},
      {"yarn", ROTARY_SCALING_YARN},       {"llama3", ROTARY_SCALING_LLAMA3},
      {"longrope", ROTARY_SCALING_LONGROPE}, {"su", ROTARY_SCALING_LONGROPE},
      {"freq_factors", ROTARY_SCALING_FREQ_FACTORS}, {"inv_freq", ROTARY_SCALING_INV_FREQ},
      {"bounded", ROTARY_SCALING_BOUNDED}};
  // Qwen2-VL's released configs say "mrope"; HF's config class reads it as
  // "default" (the sections come in mrope_section).
  if (name == "mrope") return ROTARY_SCALING_DEFAULT;
  std::string known;
  for (const auto& n : kNames) {
    if (name == n.first) return n.second;
    known += std::string(known.empty() ? "" : ", ") + n.first;
  }
  Invalid("unknown scaling '" + name + "'; known: " + known);
}

// Table modes by name (rotary_table_mode order); "borrowed" is reported
// (Rope.from_onnx_cache, from_vllm_cache), never configured.
const char* const kTableModes[] = {"auto", "full", "compact", "on_the_fly", "borrowed"};

rotary_table_mode TableModeFromName(const std::string& name) {
  for (int i = 0; i < ROTARY_TABLE_BORROWED; ++i) {
    if (name == kTableModes[i]) return static_cast<rotary_table_mode>(i);
  }
  if (name == kTableModes[ROTARY_TABLE_BORROWED]) {
    Invalid("table_mode 'borrowed' is not a setting: a rope over a caller's cos/sin cache comes from "
            "Rope.from_onnx_cache or Rope.from_vllm_cache");
  }
  Invalid("table_mode must be 'auto', 'full', 'compact' or 'on_the_fly', got '" + name + "'");
}

// A rotary::Config built from keyword arguments, with the lists it points to.
class ConfigArgs {
 public:
  explicit ConfigArgs(const py::kwargs& kwargs) {
    // head_dim first: it also sets rotary_dim, which a later rotary_dim overrides.
    if (kwargs.contains("head_dim")) Set("head_dim", kwargs["head_dim"]);
    for (const auto& item : kwargs) {
      const std::string key = py::str(item.first);
      if (key != "head_dim") Set(key, py::reinterpret_borrow<py::object>(item.second));
    }
    // Given both at the top level of a model config and inside rope_scaling,
    // the top level's wins, whatever the order (HF v5; Phi-3 keeps it there).
    if (kwargs.contains("original_max_position_embeddings")) {
      Set("original_max_position_embeddings", kwargs["original_max_position_embeddings"]);
    }
    if (partial_rotary_factor_ > 0) {  // validated in (0, 1]: the product fits head_dim's type
      const int32_t from_factor = static_cast<int32_t>(config_.c.head_dim * partial_rotary_factor_);
      if (rotary_dim_given_ && config_.c.rotary_dim != from_factor) {
        Invalid("rotary_dim = " + std::to_string(config_.c.rotary_dim) + " and partial_rotary_factor (head_dim * " +
                "factor = " + std::to_string(from_factor) + ") disagree; give one of them");
      }
      config_.rotary_dim(from_factor);
    }
    Point(&config_.c.short_factor, short_factor_);
    Point(&config_.c.long_factor, long_factor_);
    Point(&config_.c.freq_factors, freq_factors_);
    Point(&config_.c.inv_freq, inv_freq_);
  }
  ConfigArgs(const ConfigArgs&) = delete;
  ConfigArgs& operator=(const ConfigArgs&) = delete;

  const rotary::Config& config() const { return config_; }
  // The keys given a value (not None), rope_scaling's included, in order.
  const std::vector<std::string>& keys() const { return keys_; }

 private:
  static void Point(rotary_array* array, const std::vector<double>& values) {
    if (!values.empty()) *array = rotary_array{values.data(), static_cast<int64_t>(values.size())};
  }

  // One key; a value of the wrong type or range is a rotary.Error naming the key.
  void Set(const std::string& key, const py::object& value) {
    try {
      SetChecked(key, value);
    } catch (const py::cast_error&) {
      Invalid(key + ": " + Repr(value) + " is not a valid value (wrong type, or out of range)");
    }
  }

  void SetChecked(const std::string& key, const py::object& value) {
    if (value.is_none()) return;  // absent, as in a HF rope_scaling block
    rotary_config& c = config_.c;
    if (key != "rope_scaling" && key != "rope_parameters") keys_.push_back(key);
    if (key == "rope_scaling" || key == "rope_parameters") {
      // A model config's block, e.g. {"rope_type": "llama3", "factor": 8.0, ...}.
      if (!py::isinstance<py::dict>(value)) throw py::cast_error();
      for (const auto& item : value.cast<py::dict>()) {
        Set(py::str(item.first), py::reinterpret_borrow<py::object>(item.second));
      }
    } else if (key == "head_dim") {
      config_.head_dim(value.cast<int32_t>());
    } else if (key == "rotary_dim") {
      c.rotary_dim = value.cast<int32_t>();
      rotary_dim_given_ = true;
    } else if (key == "partial_rotary_factor") {
      partial_rotary_factor_ = value.cast<double>();
      if (!(partial_rotary_factor_ > 0 && partial_rotary_factor_ <= 1)) {
        Invalid("partial_rotary_factor must be in (0, 1], got " + Repr(value));
      }
    } else if (key == "pairing") {
      const std::string p = value.cast<std::string>();
      if (p != "neox" && p != "interleaved") Invalid("pairing must be 'neox' or 'interleaved', got '" + p + "'");
      c.pairing = p == "neox" ? ROTARY_NEOX : ROTARY_INTERLEAVED;
    } else if (key == "base" || key == "rope_theta") {
      c.base = value.cast<double>();
    } else if (key == "scaling" || key == "rope_type" || key == "type") {
      c.scaling = ScalingFromName(value.cast<std::string>());
    } else if (key == "truncate") {
      c.truncate = value.cast<bool>() ? 1 : 0;
    } else if (key == "table_mode") {
      c.table_mode = TableModeFromName(value.cast<std::string>());
    } else if (key == "mrope_section") {  // HF's three entries, or ggml's four
      const std::vector<int32_t> section = value.cast<std::vector<int32_t>>();
      c.mrope_section_count = static_cast<int32_t>(section.size());  // not 3 or 4: rejected at create
      for (size_t a = 0; a < 4; ++a) c.mrope_section[a] = a < section.size() ? section[a] : 0;
    } else if (key == "mrope_interleaved") {
      c.mrope_interleaved = value.cast<bool>() ? 1 : 0;
    } else if (key == "vision_2d") {
      c.vision_2d = value.cast<bool>() ? 1 : 0;
    } else if (!SetNumber(key, value) && !SetList(key, value)) {
      Invalid("unknown configuration key '" + key + "'");
    }
  }

  bool SetNumber(const std::string& key, const py::object& value) {
    rotary_config& c = config_.c;
    static const std::pair<const char*, int64_t rotary_config::*> kIntegers[] = {
        {"max_positions", &rotary_config::max_positions},
        {"position_limit", &rotary_config::position_limit},
        {"original_max_position_embeddings", &rotary_config::original_max_position_embeddings},
        {"max_position_embeddings", &rotary_config::max_position_embeddings},
        {"n_max", &rotary_config::n_max}};
    static const std::pair<const char*, double rotary_config::*> kReals[] = {
        {"factor", &rotary_config::factor},
        {"attention_factor", &rotary_config::attention_factor},
        {"alpha", &rotary_config::alpha},
        {"beta_fast", &rotary_config::beta_fast},
        {"beta_slow", &rotary_config::beta_slow},
        {"mscale", &rotary_config::mscale},
        {"mscale_all_dim", &rotary_config::mscale_all_dim},
        {"low_freq_factor", &rotary_config::low_freq_factor},
        {"high_freq_factor", &rotary_config::high_freq_factor}};
    for (const auto& f : kIntegers) {
      if (key == f.first) return (c.*f.second = value.cast<int64_t>()), true;
    }
    for (const auto& f : kReals) {
      if (key == f.first) return (c.*f.second = value.cast<double>()), true;
    }
    return false;
  }

  bool SetList(const std::string& key, const py::object& value) {
    std::vector<double>* target = key == "short_factor"   ? &short_factor_
                                  : key == "long_factor"  ? &long_factor_
                                  : key == "freq_factors" ? &freq_factors_
                                  : key == "inv_freq"     ? &inv_freq_
                                                          : nullptr;
    if (target == nullptr) return false;
    *target = value.cast<std::vector<double>>();
    return true;
  }

  rotary::Config config_;
  double partial_rotary_factor_ = 0;
  bool rotary_dim_given_ = false;
  std::vector<double> short_factor_, long_factor_, freq_factors_, inv_freq_;
  std::vector<std::string> keys_;
};

// ---- numpy arrays as rotary tensors ----

rotary::Dtype DtypeOf(const ArrayView& a, const py::object& declared, const char* name) {
  if (!declared.is_none() && !py::isinstance<py::str>(declared)) {
    Invalid(std::string(name) + ": dtype must be 'f32', 'f16' or 'bf16', got " + Repr(declared));
  }
  // The kernels read the machine's byte order: a byte-swapped array ('>f4' on
  // x86) would be rotated as garbage.
  if (!a.native_order) {
    Invalid(std::string(name) + ": the array's byte order (" + a.type_name +
            ") is not this machine's; convert it first, e.g. with .astype(dtype.newbyteorder('='))");
  }
  std::string want = declared.is_none() ? "" : declared.cast<std::string>();
  if (want == "float32") want = "f32";
  if (want == "float16") want = "f16";
  if (want == "bfloat16") want = "bf16";
  if (!want.empty() && want != "f32" && want != "f16" && want != "bf16") {
    Invalid(std::string(name) + ": dtype must be 'f32', 'f16' or 'bf16', got '" + want + "'");
  }
  const char kind = a.kind;
  const int64_t size = a.itemsize;
  if (kind == 'f' && size == 4 && (want.empty() || want == "f32")) return rotary::Dtype::kF32;
  if (kind == 'f' && size == 2 && (want.empty() || want == "f16")) return rotary::Dtype::kF16;
  if (kind == 'b' && size == 2 && (want.empty() || want == "bf16")) return rotary::Dtype::kBF16;
  if (kind == 'u' && size == 2 && (want == "f16" || want == "bf16")) {
    return want == "f16" ? rotary::Dtype::kF16 : rotary::Dtype::kBF16;
  }
  const std::string got = a.type_name;
  if (kind == 'u' && size == 2) Invalid(std::string(name) + ": a uint16 array needs dtype='bf16' (or 'f16')");
  Invalid(std::string(name) + ": arrays of " + got + (want.empty() ? "" : " with dtype='" + want + "'") +
          " are not supported; use float32, float16, bfloat16 (torch), or uint16 with dtype='bf16'");
}

// A [batch, seq, heads, head_dim] or [seq, heads, head_dim] array as a tensor view.
rotary::Tensor ToTensor(const ArrayView& a, const py::object& dtype, int32_t head_dim, bool writable,
                        const char* name) {
  const rotary::Dtype storage = DtypeOf(a, dtype, name);
  const int64_t nd = a.ndim();
  const std::string who(name);
  if (nd != 3 && nd != 4) {
    Invalid(who + ": expected shape [batch, seq, heads, head_dim] or [seq, heads, head_dim], got " +
            std::to_string(nd) + " dimensions");
  }
  if (a.size() == 0) Invalid(who + " is empty: every axis must be at least 1");
  if (a.shape[nd - 1] != head_dim) {
    Invalid(who + ": the last axis must be head_dim = " + std::to_string(head_dim) + ", got " +
            std::to_string(a.shape[nd - 1]));
  }
  if (writable && !a.writable) Invalid(who + " is read-only");
  const int64_t item = a.itemsize;
  if (a.strides[nd - 1] != item) {
    Invalid(who + ": the last axis (head_dim) must be contiguous: stride " + std::to_string(a.strides[nd - 1]) +
            " bytes, item size " + std::to_string(item));
  }
  int64_t shape[3], strides[3];
  for (int i = 0; i < 3; ++i) {
    const int64_t axis = nd - 4 + i;  // batch, seq, heads; -1: the missing batch axis
    shape[i] = axis < 0 ? 1 : a.shape[axis];
    const int64_t bytes = axis < 0 ? 0 : a.strides[axis];
    if (bytes % item != 0) {
      Invalid(who + ": the stride of axis " + std::to_string(axis) + " (" + std::to_string(bytes) +
              " bytes) is not a multiple of the item size (" + std::to_string(item) + " bytes)");
    }
    strides[i] = bytes / item;
  }
  return rotary::Tensor(a.data, storage, shape[0], shape[1], shape[2], strides[0], strides[1], strides[2]);
}

// Positions as the C API wants them: none, one int64 per (batch, seq) row,
// or for multi-axis ropes one per axis and row ([axes, batch, seq]), copied
// while the GIL is held. The library checks the positions and then
// reads them again; with the GIL released another Python thread could change
// the caller's array in between and send the kernel to a row never checked.
class PositionIds {
 public:
  // offset: an integer added to every position, or one per sequence ([batch]
  // integers: ragged batches, left padding), copied as the positions are.
  PositionIds(const py::object& positions, const py::object& offset, const rotary::Tensor& like) {
    ReadOffset(offset, like.t.batch);
    if (positions.is_none()) return;
    const py::array raw = py::array::ensure(positions);
    if (!raw || (raw.dtype().kind() != 'i' && raw.dtype().kind() != 'u')) Invalid("positions must be integers");
    const int64_t batch = like.t.batch, seq = like.t.seq;
    // [batch, seq], or [seq] for one sequence, or [axes, batch, seq] (HF's
    // position_ids of multi-axis models; the library checks the axis count):
    // any other shape of as many entries ([seq, batch] from a sequence-first
    // model) would be misread.
    const bool shaped = (raw.ndim() == 3 && raw.shape(1) == batch && raw.shape(2) == seq) ||
                        (raw.ndim() == 2 && raw.shape(0) == batch && raw.shape(1) == seq) ||
                        (raw.ndim() == 1 && batch == 1 && raw.shape(0) == seq);
    if (!shaped) {
      std::string shape;
      for (py::ssize_t i = 0; i < raw.ndim(); ++i) shape += (i ? ", " : "") + std::to_string(raw.shape(i));
      Invalid("positions has shape [" + shape + "]; expected [batch, seq] = [" + std::to_string(batch) + ", " +
              std::to_string(seq) + "]" + (batch == 1 ? " or [seq]" : "") + " (or [axes, batch, seq] for " +
              "multi-axis RoPE), batch * seq = " + std::to_string(batch * seq) + " entries");
    }
    axes_ = raw.ndim() == 3 ? static_cast<int32_t>(raw.shape(0)) : 1;
    const auto ids = py::array_t<int64_t, py::array::c_style | py::array::forcecast>::ensure(raw);
    if (!ids) Invalid("positions could not be converted to int64");
    ids_.assign(ids.data(), ids.data() + ids.size());
    given_ = true;
  }
  rotary::Positions get() const {
    rotary::Positions p = given_ ? rotary::Positions::Axes(ids_, axes_, offset_) : rotary::Positions(offset_);
    if (per_sequence_) p.with_sequence_offsets(sequence_offsets_);
    return p;
  }

 private:
  void ReadOffset(const py::object& offset, int64_t batch) {
    const py::array raw = py::array::ensure(offset);
    if (!raw || (raw.dtype().kind() != 'i' && raw.dtype().kind() != 'u') || raw.ndim() > 1) {
      Invalid("offset must be an integer, or one integer per sequence (shape [batch]), got " + Repr(offset));
    }
    const auto values = py::array_t<int64_t, py::array::c_style | py::array::forcecast>::ensure(raw);
    if (!values) Invalid("offset could not be converted to int64");
    if (raw.ndim() == 0) {
      offset_ = values.data()[0];
      return;
    }
    if (raw.shape(0) != batch) {
      Invalid("offset has " + std::to_string(raw.shape(0)) + " entries; one per sequence is batch = " +
              std::to_string(batch));
    }
    sequence_offsets_.assign(values.data(), values.data() + values.size());
    per_sequence_ = true;
  }

  std::vector<int64_t> ids_;  // the caller's positions, copied; empty unless given
  bool given_ = false;
  int32_t axes_ = 1;
  int64_t offset_ = 0;
  std::vector<int64_t> sequence_offsets_;  // per-sequence offsets, copied
  bool per_sequence_ = false;
};

// ---- qk-norm weights ----

// The qk-norm arguments of a call (rotary::QkNorm) and the float32 copies of
// the weights it points to. A weight of head_dim floats normalizes each head;
// one of heads * head_dim floats normalizes all heads of a token together
// (OLMo 2's norm over the whole projection).
class NormWeights {
 public:
  NormWeights(const py::object& q_weight, const py::object& k_weight, const rotary::Tensor& q, const rotary::Tensor* k,
              int32_t head_dim, double eps, double offset, const char* q_name, const char* k_name) {
    norm_.eps = eps;
    norm_.weight_offset = offset;
    int per_head = 0, whole = 0;
    Take(q_weight, q.t.heads, head_dim, q_name, q_, &norm_.q_weight, &norm_.q_count, per_head, whole);
    if (k != nullptr) Take(k_weight, k->t.heads, head_dim, k_name, k_, &norm_.k_weight, &norm_.k_count, per_head, whole);
    if (per_head != 0 && whole != 0) {
      Invalid(std::string(q_name) + " and " + k_name +
              " must both hold head_dim floats (a norm per head) or both heads * head_dim (one per token)");
    }
    norm_.whole_token = whole != 0;
  }
  const rotary::QkNorm& get() const { return norm_; }

 private:
  static void Take(const py::object& weight, int64_t heads, int32_t head_dim, const char* name,
                   py::array_t<float>& keep, const float** out, int64_t* count, int& per_head, int& whole) {
    if (weight.is_none()) return;
    keep = py::array_t<float, py::array::c_style | py::array::forcecast>::ensure(weight);
    if (!keep) Invalid(std::string(name) + ": expected a float32 array of head_dim values, got " + Repr(weight));
    const int64_t size = static_cast<int64_t>(keep.size());
    if (keep.ndim() != 1 || (size != head_dim && size != heads * head_dim)) {
      Invalid(std::string(name) + ": expected " + std::to_string(head_dim) + " floats (head_dim) or " +
              std::to_string(heads * head_dim) + " (heads * head_dim), got shape " + Repr(weight.attr("shape")));
    }
    (size == head_dim ? per_head : whole) = 1;
    *out = keep.data();
    *count = size;
  }

  py::array_t<float> q_, k_;
  rotary::QkNorm norm_;
};

// ---- Borrowed cos/sin caches (ONNX RotaryEmbedding, vLLM) ----

// A 2-D cache [max_pos, width] viewed in place, as rotary_borrowed_table
// reads it: rows of width values, the last axis contiguous, any row stride.
struct CacheView {
  ArrayView view;  // keeps the array (and its DLPack export) alive
  rotary::Dtype dtype = rotary::Dtype::kF32;
  int64_t rows = 0, width = 0;
  int64_t row_stride = 0;  // in elements
};

CacheView ViewCache(const py::object& cache, const py::object& dtype, const char* name) {
  CacheView c;
  c.view = rotary_python::ViewOf(cache, name);
  const ArrayView& a = c.view;
  const std::string who(name);
  if (a.ndim() != 2) {
    Invalid(who + ": expected a 2-D cache [max_pos, values per position], got " + std::to_string(a.ndim()) +
            " dimensions");
  }
  c.dtype = DtypeOf(a, dtype, name);
  c.rows = a.shape[0];
  c.width = a.shape[1];
  if (c.rows < 1) Invalid(who + " has no rows: it must hold position 0 at least");
  if (c.width < 1) Invalid(who + " has rows of no values");
  if (c.width > ROTARY_MAX_HEAD_DIM) {
    Invalid(who + ": rows of " + std::to_string(c.width) + " values; rotary_dim is at most " +
            std::to_string(ROTARY_MAX_HEAD_DIM));
  }
  const int64_t item = a.itemsize;
  if (c.width > 1 && a.strides[1] != item) {
    Invalid(who + ": the last axis must be contiguous: stride " + std::to_string(a.strides[1]) + " bytes, item size " +
            std::to_string(item));
  }
  if (c.rows == 1) {
    c.row_stride = c.width;  // one row: its stride is never used
  } else {
    if (a.strides[0] % item != 0) {
      Invalid(who + ": the row stride (" + std::to_string(a.strides[0]) +
              " bytes) is not a multiple of the item size (" + std::to_string(item) + " bytes)");
    }
    c.row_stride = a.strides[0] / item;
    if (c.row_stride < c.width) {
      Invalid(who + ": rows of " + std::to_string(c.width) + " values " + std::to_string(c.row_stride) +
              " elements apart: the rows must follow each other in memory without overlapping");
    }
  }
  return c;
}

// The configuration keywords a rope over a borrowed cache reads: the layout
// of the heads and of the position ids. Its angles (and any attention factor)
// are the cache's: a scaling scheme must be 'default' (checked before the
// library's own check, whose config validation would first ask for the
// scheme's parameters), and table_mode 'auto' (the library's check).
bool ReadWithBorrowedCache(const std::string& key) {
  static const char* const kKeys[] = {"head_dim",      "rotary_dim", "partial_rotary_factor", "pairing",
                                      "scaling",       "rope_type",  "type",                  "table_mode",
                                      "mrope_section", "mrope_interleaved", "vision_2d",      "position_limit"};
  for (const char* k : kKeys) {
    if (key == k) return true;
  }
  return false;
}

// ---- Paged KV caches (apply_qk's k_out=, v=, v_out=, slot_mapping=; docs/math.md §9) ----

// How both caches store values: a tensor dtype (f32, f16, bf16), or a byte
// format (fp8_e4m3, fp8_e5m2, q8_0) whose caches are uint8 arrays.
struct CacheFormat {
  rotary_cache_format format = ROTARY_CACHE_TENSOR;
  rotary::Dtype dtype = rotary::Dtype::kF32;  // ROTARY_CACHE_TENSOR only
  std::string name;                           // as cache_dtype says it
  bool inferred = false;                      // from k_out's dtype
  bool bytes() const { return format != ROTARY_CACHE_TENSOR; }
};

const char kCacheDtypes[] = "'f32', 'f16', 'bf16', 'fp8_e4m3', 'fp8_e5m2' or 'q8_0'";

// The element type numpy or DLPack says an array holds: f32, f16 or bf16; -1 for anything else.
int TensorDtypeOf(const ArrayView& a) {
  if (a.kind == 'f' && a.itemsize == 4) return static_cast<int>(rotary::Dtype::kF32);
  if (a.kind == 'f' && a.itemsize == 2) return static_cast<int>(rotary::Dtype::kF16);
  if (a.kind == 'b' && a.itemsize == 2) return static_cast<int>(rotary::Dtype::kBF16);
  return -1;
}

// cache_dtype (None: from k_out's dtype, which must then be f32, f16 or bf16),
// checked against the array `cache` (k_out, then v_out with k_out's format).
CacheFormat CacheFormatOf(const ArrayView& cache, const py::object& cache_dtype, const char* name) {
  const std::string who(name);
  if (!cache_dtype.is_none() && !py::isinstance<py::str>(cache_dtype)) {
    Invalid(std::string("cache_dtype must be ") + kCacheDtypes + ", got " + Repr(cache_dtype));
  }
  const bool is_bytes = cache.kind == 'u' && cache.itemsize == 1;
  CacheFormat f;
  if (cache_dtype.is_none()) {
    if (is_bytes) {
      Invalid(who + " is a uint8 array: say what its bytes hold with cache_dtype='fp8_e4m3', 'fp8_e5m2' or 'q8_0'");
    }
    if (cache.kind == 'u' && cache.itemsize == 2) {
      Invalid(who + " is a uint16 array: give cache_dtype='bf16' (or 'f16')");
    }
    const int natural = TensorDtypeOf(cache);
    if (natural < 0) {
      Invalid(who + ": a cache of " + cache.type_name + " is not supported; use float32, float16, bfloat16 (torch), " +
              "uint16 with cache_dtype='bf16', or uint8 with cache_dtype='fp8_e4m3', 'fp8_e5m2' or 'q8_0'");
    }
    f.dtype = static_cast<rotary::Dtype>(natural);
    static const char* const kNames[] = {"f32", "f16", "bf16"};
    f.name = kNames[natural];
    f.inferred = true;
  } else {
    f.name = cache_dtype.cast<std::string>();
    if (f.name == "float32") f.name = "f32";
    if (f.name == "float16") f.name = "f16";
    if (f.name == "bfloat16") f.name = "bf16";
    if (f.name == "f32" || f.name == "f16" || f.name == "bf16") {
      f.dtype = f.name == "f32" ? rotary::Dtype::kF32 : f.name == "f16" ? rotary::Dtype::kF16 : rotary::Dtype::kBF16;
    } else if (f.name == "fp8_e4m3" || f.name == "fp8_e5m2" || f.name == "q8_0") {
      f.format = f.name == "fp8_e4m3"   ? ROTARY_CACHE_FP8_E4M3
                 : f.name == "fp8_e5m2" ? ROTARY_CACHE_FP8_E5M2
                                        : ROTARY_CACHE_Q8_0;
    } else {
      Invalid(std::string("cache_dtype must be ") + kCacheDtypes + ", got '" + f.name + "'");
    }
  }
  return f;
}

// The array `cache` checked against a format already resolved (v_out against k_out's).
void CheckCacheArray(const ArrayView& cache, const CacheFormat& f, const char* name) {
  const std::string who(name);
  const std::string said = "cache_dtype='" + f.name + "'" + (f.inferred ? " (k_out's dtype)" : "");
  if (f.bytes()) {
    if (cache.kind != 'u' || cache.itemsize != 1) {
      Invalid(who + ": " + said + " stores bytes: the cache must be a uint8 array, got " + cache.type_name);
    }
    return;
  }
  if (!cache.native_order) {
    Invalid(who + ": the array's byte order (" + cache.type_name +
            ") is not this machine's; convert it first, e.g. with .astype(dtype.newbyteorder('='))");
  }
  const bool raw16 = cache.kind == 'u' && cache.itemsize == 2 && f.dtype != rotary::Dtype::kF32;
  if (TensorDtypeOf(cache) != static_cast<int>(f.dtype) && !raw16) {
    Invalid(who + " holds " + cache.type_name + ", not " + said + ": both caches store the same format");
  }
}

// A cache array [num_blocks, block_size, kv_heads, head width] (any strides,
// the last axis contiguous) as the rotary_tensor the library reads: batch,
// seq, heads = blocks, rows, heads; strides in elements, or in bytes for the
// byte formats (a head: head_dim bytes for fp8, head_dim / 32 records of 34
// bytes for q8_0).
rotary::Tensor ToCacheTensor(const ArrayView& a, const CacheFormat& f, int32_t head_dim, const char* name) {
  const std::string who(name);
  if (a.ndim() != 4) {
    Invalid(who + ": a paged cache is [num_blocks, block_size, kv_heads, " +
            (f.format == ROTARY_CACHE_Q8_0 ? "head_dim / 32 * 34" : "head_dim") +
            "] (vLLM CPU's [num_blocks, kv_heads, block_size, ...] passed as .transpose(1, 2)), got " +
            std::to_string(a.ndim()) + " dimensions");
  }
  if (a.size() == 0) Invalid(who + " is empty: every axis must be at least 1");
  int64_t width = head_dim;
  std::string what = "head_dim = " + std::to_string(head_dim);
  if (f.format == ROTARY_CACHE_Q8_0) {
    width = head_dim / 32 * 34;
    what = "head_dim / 32 * 34 = " + std::to_string(width) + " bytes (a 34-byte block_q8_0 record per 32 components)";
  } else if (f.bytes()) {
    what += " bytes (one fp8 byte a component)";
  }
  if (a.shape[3] != width) Invalid(who + ": the last axis must be " + what + ", got " + std::to_string(a.shape[3]));
  if (!a.writable) Invalid(who + " is read-only");
  const int64_t item = a.itemsize;
  if (a.strides[3] != item) {
    Invalid(who + ": the last axis must be contiguous: stride " + std::to_string(a.strides[3]) + " bytes, item size " +
            std::to_string(item));
  }
  int64_t strides[3];
  for (int i = 0; i < 3; ++i) {
    if (a.strides[i] % item != 0) {
      Invalid(who + ": the stride of axis " + std::to_string(i) + " (" + std::to_string(a.strides[i]) +
              " bytes) is not a multiple of the item size (" + std::to_string(item) + " bytes)");
    }
    strides[i] = a.strides[i] / item;
  }
  // The byte formats' dtype field is not read.
  return rotary::Tensor(a.data, f.bytes() ? rotary::Dtype::kF32 : f.dtype, a.shape[0], a.shape[1], a.shape[2],
                        strides[0], strides[1], strides[2]);
}

// slot_mapping, [batch, seq] or flat [batch * seq] integers (numpy, torch, a
// list), copied as int64 while the GIL is held (as positions are).
std::vector<int64_t> SlotMapping(const py::object& slot_mapping, int64_t batch, int64_t seq) {
  const py::array raw = py::array::ensure(slot_mapping);
  if (!raw || (raw.dtype().kind() != 'i' && raw.dtype().kind() != 'u')) {
    Invalid("slot_mapping must be integers (int64), got " + Repr(slot_mapping));
  }
  if (raw.dtype().kind() == 'u' && raw.itemsize() == 8) {
    Invalid("slot_mapping is uint64; give int64 (a negative slot marks a token not to be written)");
  }
  const bool shaped = (raw.ndim() == 2 && raw.shape(0) == batch && raw.shape(1) == seq) ||
                      (raw.ndim() == 1 && raw.shape(0) == batch * seq);
  if (!shaped) {
    std::string shape;
    for (py::ssize_t i = 0; i < raw.ndim(); ++i) shape += (i ? ", " : "") + std::to_string(raw.shape(i));
    Invalid("slot_mapping has shape [" + shape + "]; expected [batch, seq] = [" + std::to_string(batch) + ", " +
            std::to_string(seq) + "] or [batch * seq] = [" + std::to_string(batch * seq) + "]");
  }
  const auto slots = py::array_t<int64_t, py::array::c_style | py::array::forcecast>::ensure(raw);
  if (!slots) Invalid("slot_mapping could not be converted to int64");
  return std::vector<int64_t>(slots.data(), slots.data() + slots.size());
}

// k_scale / v_scale: the divisor of an fp8 cache, finite and > 0 as a float32;
// 1 for the other formats, which have no scale.
void CheckScale(double scale, const CacheFormat& f, const char* name) {
  const float as_float = static_cast<float>(scale);
  if (!std::isfinite(as_float) || !(as_float > 0.0f)) {
    Invalid(std::string(name) + " = " + Repr(py::float_(scale)) + ": a scale must be finite and > 0 as a float32");
  }
  if (scale != 1.0 && f.format != ROTARY_CACHE_FP8_E4M3 && f.format != ROTARY_CACHE_FP8_E5M2) {
    Invalid(std::string(name) + " = " + Repr(py::float_(scale)) + " is for fp8 caches only; cache_dtype='" + f.name +
            "' has no scale");
  }
}

// ---- The Rope class ----

class PyRope {
 public:
  explicit PyRope(const py::kwargs& kwargs) : PyRope(ConfigArgs(kwargs)) {}

  // A Hugging Face model config (a dict, or a PretrainedConfig) as a rope:
  // the keys its rotary embedding reads, head_dim defaulting to hidden_size
  // / num_attention_heads as in HF's modeling code.
  static PyRope FromHfConfig(const py::object& config, const std::string& pairing) {
    const py::dict all = py::isinstance<py::dict>(config) ? config.cast<py::dict>()
                         : py::hasattr(config, "to_dict") ? config.attr("to_dict")().cast<py::dict>()
                                                          : py::module_::import("builtins").attr("vars")(config).cast<py::dict>();
    py::kwargs kwargs;
    for (const char* key : {"rope_theta", "partial_rotary_factor", "max_position_embeddings",
                            "original_max_position_embeddings", "rope_scaling", "rope_parameters"}) {
      if (all.contains(key) && !all[key].is_none()) kwargs[key] = all[key];
    }
    if (all.contains("head_dim") && !all["head_dim"].is_none()) {
      kwargs["head_dim"] = all["head_dim"];
    } else if (all.contains("hidden_size") && all.contains("num_attention_heads")) {
      kwargs["head_dim"] = all["hidden_size"].cast<int64_t>() / all["num_attention_heads"].cast<int64_t>();
    } else {
      Invalid("the model config has neither head_dim nor hidden_size and num_attention_heads");
    }
    kwargs["pairing"] = pairing;
    return PyRope(kwargs);
  }

  // ONNX RotaryEmbedding's cos_cache and sin_cache, [max_pos, rotary_dim / 2]
  // each, read in place.
  static PyRope FromOnnxCache(const py::object& cos_cache, const py::object& sin_cache, const py::object& head_dim,
                              const py::object& pairing, const py::object& dtype, const py::kwargs& config) {
    if (config.contains("interleaved")) Invalid("ONNX's interleaved=1 is pairing='interleaved' here");
    CacheView cos = ViewCache(cos_cache, dtype, "cos_cache");
    CacheView sin = ViewCache(sin_cache, dtype, "sin_cache");
    if (cos.dtype != sin.dtype) {
      Invalid("cos_cache (" + cos.view.type_name + ") and sin_cache (" + sin.view.type_name +
              ") must have the same dtype");
    }
    if (cos.rows != sin.rows || cos.width != sin.width) {
      Invalid("cos_cache is [" + std::to_string(cos.rows) + ", " + std::to_string(cos.width) + "] but sin_cache [" +
              std::to_string(sin.rows) + ", " + std::to_string(sin.width) +
              "]: ONNX's caches are both [max_pos, rotary_dim / 2]");
    }
    if (cos.row_stride != sin.row_stride) {
      Invalid("cos_cache and sin_cache must have the same row stride, got " + std::to_string(cos.row_stride) +
              " and " + std::to_string(sin.row_stride) + " elements (make both contiguous)");
    }
    rotary::BorrowedTable table;
    table.t.dtype = static_cast<rotary_dtype>(cos.dtype);
    table.t.cos = cos.view.data;
    table.t.sin = sin.view.data;
    table.t.row_stride = cos.row_stride;
    table.t.rows = cos.rows;
    std::vector<ArrayView> caches;
    caches.push_back(std::move(cos.view));
    caches.push_back(std::move(sin.view));
    return Borrowed(config, head_dim, pairing, 2 * cos.width, table, std::move(caches));
  }

  // vLLM's cos_sin_cache [max_pos, rotary_dim]: rotary_dim / 2 cos values then
  // as many sin values a row, read in place.
  static PyRope FromVllmCache(const py::object& cos_sin_cache, const py::object& head_dim, bool is_neox_style,
                              const py::object& dtype, const py::kwargs& config) {
    if (config.contains("pairing")) {
      Invalid("from_vllm_cache takes is_neox_style (False: GPT-J's interleaved pairs), not pairing");
    }
    CacheView cache = ViewCache(cos_sin_cache, dtype, "cos_sin_cache");
    if (cache.width % 2 != 0) {
      Invalid("cos_sin_cache: rows of " + std::to_string(cache.width) +
              " values; vLLM's hold rotary_dim / 2 cos values then as many sin values, an even count");
    }
    const int64_t item = cache.view.itemsize;
    rotary::BorrowedTable table;
    table.t.dtype = static_cast<rotary_dtype>(cache.dtype);
    table.t.cos = cache.view.data;
    table.t.sin = static_cast<const char*>(cache.view.data) + cache.width / 2 * item;
    table.t.row_stride = cache.row_stride;
    table.t.rows = cache.rows;
    std::vector<ArrayView> caches;
    caches.push_back(std::move(cache.view));
    return Borrowed(config, head_dim, py::str(is_neox_style ? "neox" : "interleaved"), cache.width, table,
                    std::move(caches));
  }

  // HF's `cos, sin = rotary_emb(x, position_ids)` and
  // `q, k = apply_rotary_pos_emb(q, k, cos, sin)` in one call: q and k in HF's
  // [batch, heads, seq, head_dim] layout (torch or numpy), returned rotated as
  // new tensors like HF's (copies of q and k rotated in place, in one pass).
  py::tuple HfApply(const py::object& q, const py::object& k, const py::object& position_ids) const {
    auto copy = [](const py::object& x) { return py::hasattr(x, "clone") ? x.attr("clone")() : x.attr("copy")(); };
    const py::object q_out = copy(q), k_out = copy(k);
    ApplyQk(q_out.attr("swapaxes")(1, 2), k_out.attr("swapaxes")(1, 2), position_ids, py::int_(0), 1.0f, py::none(), py::none(),
            py::none(), py::none());
    return py::make_tuple(q_out, k_out);
  }

  int32_t head_dim() const { return config_.head_dim; }
  int32_t rotary_dim() const { return config_.rotary_dim == 0 ? config_.head_dim : config_.rotary_dim; }  // 0: head_dim
  std::string pairing() const { return config_.pairing == ROTARY_NEOX ? "neox" : "interleaved"; }
  int64_t table_bytes() const { return rope_.table_bytes(); }
  int32_t table_count() const { return rope_.table_count(); }
  std::string table_mode() const { return kTableModes[static_cast<int>(rope_.table_mode())]; }
  int32_t axis_count() const { return rope_.axis_count(); }

  // In place (returns x), or into out (returns out): numpy arrays or DLPack
  // tensors alike, as given.
  py::object Apply(const py::object& x, const py::object& positions, const py::object& offset, bool inverse,
                   const py::object& out, const py::object& dtype, const py::object& out_dtype,
                   const py::object& norm, double norm_eps, double norm_offset) const {
    const ArrayView x_view = rotary_python::ViewOf(x, "x");
    const rotary::Tensor src = ToTensor(x_view, dtype, head_dim(), out.is_none(), "x");
    const PositionIds ids(positions, offset, src);
    if (!norm.is_none() && inverse) Invalid("norm= and inverse=True: a norm has no inverse");
    const NormWeights weights(norm, py::none(), src, nullptr, head_dim(), norm_eps, norm_offset, "norm", "");
    const bool normalize = !norm.is_none();
    ArrayView out_view;
    rotary::Tensor dst = src;
    if (!out.is_none()) {
      out_view = rotary_python::ViewOf(out, "out");
      dst = ToTensor(out_view, out_dtype, head_dim(), true, "out");
    }
    {
      py::gil_scoped_release release;
      if (normalize) {
        rope_.apply_to(src, dst, weights.get(), ids.get());
      } else if (out.is_none()) {
        inverse ? rope_.apply_inverse(src, ids.get()) : rope_.apply(src, ids.get());
      } else {
        inverse ? rope_.apply_inverse_to(src, dst, ids.get()) : rope_.apply_to(src, dst, ids.get());
      }
    }
    return out.is_none() ? x : out;
  }

  // x, rotated at its positions, moved by delta positions in place (returns x).
  py::object Shift(const py::object& x, int64_t delta, const py::object& positions, const py::object& offset,
                   const py::object& dtype) const {
    const ArrayView view = rotary_python::ViewOf(x, "x");
    const rotary::Tensor tensor = ToTensor(view, dtype, head_dim(), true, "x");
    const PositionIds ids(positions, offset, tensor);
    {
      py::gil_scoped_release release;
      rope_.shift(tensor, ids.get(), delta);
    }
    return x;
  }

  py::tuple ApplyQk(const py::object& q, const py::object& k, const py::object& positions, const py::object& offset,
                    float q_scale, const py::object& q_out, const py::object& k_out, const py::object& dtype,
                    const py::object& out_dtype, const py::object& q_norm = py::none(),
                    const py::object& k_norm = py::none(), double norm_eps = 1e-6, double norm_offset = 0.0,
                    const py::object& v = py::none(), const py::object& v_out = py::none(),
                    const py::object& slot_mapping = py::none(), const py::object& cache_dtype = py::none(),
                    double k_scale = 1.0, double v_scale = 1.0) const {
    if (!slot_mapping.is_none()) {
      return ApplyQkToCache(q, k, positions, offset, q_scale, q_out, k_out, dtype, out_dtype, q_norm, k_norm, norm_eps,
                            norm_offset, v, v_out, slot_mapping, cache_dtype, k_scale, v_scale);
    }
    if (!v.is_none() || !v_out.is_none() || !cache_dtype.is_none() || k_scale != 1.0 || v_scale != 1.0) {
      Invalid("v=, v_out=, cache_dtype=, k_scale= and v_scale= belong to the KV-cache write, which slot_mapping= "
              "asks for (k rotated into the cache k_out, v into v_out, at each token's slot); slot_mapping is None");
    }
    if (q_out.is_none() != k_out.is_none()) Invalid("give both q_out and k_out, or neither (in place)");
    const bool in_place = q_out.is_none();
    const ArrayView q_view = rotary_python::ViewOf(q, "q"), k_view = rotary_python::ViewOf(k, "k");
    const rotary::Tensor q_src = ToTensor(q_view, dtype, head_dim(), in_place, "q");
    const rotary::Tensor k_src = ToTensor(k_view, dtype, head_dim(), in_place, "k");
    const PositionIds ids(positions, offset, q_src);
    const bool normalize = !q_norm.is_none() || !k_norm.is_none();
    const NormWeights weights(q_norm, k_norm, q_src, &k_src, head_dim(), norm_eps, norm_offset, "q_norm", "k_norm");
    if (in_place) {
      {
        py::gil_scoped_release release;
        normalize ? rope_.apply_qk(q_src, k_src, weights.get(), ids.get(), q_scale)
                  : rope_.apply_qk(q_src, k_src, ids.get(), q_scale);
      }
      return py::make_tuple(q, k);
    }
    const ArrayView q_out_view = rotary_python::ViewOf(q_out, "q_out"), k_out_view = rotary_python::ViewOf(k_out, "k_out");
    const rotary::Tensor q_dst = ToTensor(q_out_view, out_dtype, head_dim(), true, "q_out");
    const rotary::Tensor k_dst = ToTensor(k_out_view, out_dtype, head_dim(), true, "k_out");
    {
      py::gil_scoped_release release;
      normalize ? rope_.apply_qk_to(q_src, q_dst, k_src, k_dst, weights.get(), ids.get(), q_scale)
                : rope_.apply_qk_to(q_src, q_dst, k_src, k_dst, ids.get(), q_scale);
    }
    return py::make_tuple(q_out, k_out);
  }

  // apply_qk with slot_mapping: q rotated (times q_scale) in place or into
  // q_out; k rotated into the paged cache k_out and v converted into v_out at
  // each token's slot, in the same pass (rotary_apply_with's KV-cache write);
  // k and v are only read. Every argument is checked before anything is written.
  py::tuple ApplyQkToCache(const py::object& q, const py::object& k, const py::object& positions,
                           const py::object& offset, float q_scale, const py::object& q_out, const py::object& k_out,
                           const py::object& dtype, const py::object& out_dtype, const py::object& q_norm,
                           const py::object& k_norm, double norm_eps, double norm_offset, const py::object& v,
                           const py::object& v_out, const py::object& slot_mapping, const py::object& cache_dtype,
                           double k_scale, double v_scale) const {
    std::string missing;
    for (const auto& arg : {std::make_pair("k_out", &k_out), std::make_pair("v", &v), std::make_pair("v_out", &v_out)}) {
      if (arg.second->is_none()) missing += std::string(missing.empty() ? "" : ", ") + arg.first + "=";
    }
    if (!missing.empty()) {
      Invalid("slot_mapping= writes k and v into paged caches: it needs k_out= (the k cache), v= and v_out= (the v "
              "cache); missing " + missing);
    }
    const bool in_place = q_out.is_none();
    const ArrayView q_view = rotary_python::ViewOf(q, "q"), k_view = rotary_python::ViewOf(k, "k"),
                    v_view = rotary_python::ViewOf(v, "v");
    const rotary::Tensor q_src = ToTensor(q_view, dtype, head_dim(), in_place, "q");
    const rotary::Tensor k_src = ToTensor(k_view, dtype, head_dim(), false, "k");  // read only
    const rotary::Tensor v_src = ToTensor(v_view, dtype, head_dim(), false, "v");
    ArrayView q_out_view;
    rotary::Tensor q_dst = q_src;
    if (!in_place) {
      q_out_view = rotary_python::ViewOf(q_out, "q_out");
      q_dst = ToTensor(q_out_view, out_dtype, head_dim(), true, "q_out");
    }
    const PositionIds ids(positions, offset, q_src);
    const bool normalize = !q_norm.is_none() || !k_norm.is_none();
    const NormWeights weights(q_norm, k_norm, q_src, &k_src, head_dim(), norm_eps, norm_offset, "q_norm", "k_norm");

    const ArrayView k_cache_view = rotary_python::ViewOf(k_out, "k_out"),
                    v_cache_view = rotary_python::ViewOf(v_out, "v_out");
    const CacheFormat format = CacheFormatOf(k_cache_view, cache_dtype, "k_out");
    CheckCacheArray(k_cache_view, format, "k_out");
    CheckCacheArray(v_cache_view, format, "v_out");
    if (format.format == ROTARY_CACHE_Q8_0 && head_dim() % 32 != 0) {
      Invalid("cache_dtype='q8_0' needs head_dim a multiple of 32 (ggml's blocks of 32 components); head_dim = " +
              std::to_string(head_dim()));
    }
    const rotary::Tensor k_cache = ToCacheTensor(k_cache_view, format, head_dim(), "k_out");
    const rotary::Tensor v_cache = ToCacheTensor(v_cache_view, format, head_dim(), "v_out");
    if (k_cache_view.shape != v_cache_view.shape) {
      Invalid("k_out is " + Repr(k_out.attr("shape")) + " but v_out " + Repr(v_out.attr("shape")) +
              ": the two caches have the same shape");
    }
    if (k_src.t.heads != k_cache.t.heads) {
      Invalid("k_out has " + std::to_string(k_cache.t.heads) + " kv heads (axis 2 of [num_blocks, block_size, " +
              "kv_heads, ...]) but k has " + std::to_string(k_src.t.heads));
    }
    if (v_src.t.batch != k_src.t.batch || v_src.t.seq != k_src.t.seq || v_src.t.heads != k_src.t.heads) {
      Invalid("v is " + Repr(v.attr("shape")) + " but k " + Repr(k.attr("shape")) + ": v and k have the same shape");
    }
    CheckScale(k_scale, format, "k_scale");
    CheckScale(v_scale, format, "v_scale");
    const std::vector<int64_t> slots = SlotMapping(slot_mapping, q_src.t.batch, q_src.t.seq);

    rotary_apply_options options;
    rotary_apply_options_init(&options);
    options.q_scale = q_scale;
    options.k_cache = &k_cache.t;
    options.v_src = &v_src.t;
    options.v_cache = &v_cache.t;
    options.slot_mapping = slots.data();
    options.cache_format = format.format;
    options.k_scale = k_scale;
    options.v_scale = v_scale;
    // qk-norm before the rotation: q and k normalized, k before it goes into its cache.
    rotary_qk_norm norm;
    rotary_qk_norm_init(&norm);
    if (normalize) {
      const rotary::QkNorm& n = weights.get();
      norm.q_weight = n.q_weight;
      norm.k_weight = n.k_weight;
      norm.eps = n.eps;
      norm.weight_offset = n.weight_offset;
      norm.whole_token = n.whole_token ? 1 : 0;
      options.norm = &norm;
    }
    {
      py::gil_scoped_release release;
      const rotary::Positions p = ids.get();
      options.positions = p.ids;
      options.axes = p.axes;
      options.offset = p.offset;
      options.batch_offsets = p.batch_offsets;
      rotary::detail::Check(rotary_apply_with(rope_.handle(), &q_src.t, &q_dst.t, &k_src.t, nullptr, &options));
    }
    return py::make_tuple(in_place ? q : q_out, k_out);
  }

  py::object ApplyPackedQkv(const py::object& qkv, int64_t q_heads, int64_t kv_heads, const py::object& positions,
                            const py::object& offset, float q_scale, const py::object& dtype, const py::object& q_norm,
                            const py::object& k_norm, double norm_eps, double norm_offset) const {
    const ArrayView view = rotary_python::ViewOf(qkv, "qkv");
    const rotary::Dtype storage = DtypeOf(view, dtype, "qkv");
    const int64_t nd = view.ndim();
    if (nd != 2 && nd != 3) Invalid("qkv: expected shape [batch, seq, (q_heads + 2 * kv_heads) * head_dim] or [seq, ...]");
    if (!view.writable) Invalid("qkv is read-only");
    if (!view.c_contiguous()) Invalid("qkv must be C-contiguous");
    const int64_t batch = nd == 3 ? view.shape[0] : 1, seq = view.shape[nd - 2];
    const int64_t row = (q_heads + 2 * kv_heads) * head_dim();
    if (view.shape[nd - 1] != row) {
      Invalid("qkv: the last axis must be (q_heads + 2 * kv_heads) * head_dim = " + std::to_string(row) +
              ", got " + std::to_string(view.shape[nd - 1]));
    }
    const rotary::Tensor rows(view.data, storage, batch, seq, 1, row);
    const PositionIds ids(positions, offset, rows);
    const bool normalize = !q_norm.is_none() || !k_norm.is_none();
    const rotary::Tensor q_heads_view(view.data, storage, batch, seq, q_heads, row, row, head_dim());
    const rotary::Tensor k_heads_view(view.data, storage, batch, seq, kv_heads, row, row, head_dim());
    const NormWeights weights(q_norm, k_norm, q_heads_view, &k_heads_view, head_dim(), norm_eps, norm_offset, "q_norm",
                              "k_norm");
    {
      py::gil_scoped_release release;
      const rotary::Positions p = ids.get();
      normalize ? rope_.apply_packed_qkv(view.data, storage, batch, seq, q_heads, kv_heads, weights.get(), p, q_scale)
                : rope_.apply_packed_qkv(view.data, storage, batch, seq, q_heads, kv_heads, p, q_scale);
    }
    return qkv;
  }

 private:
  explicit PyRope(const ConfigArgs& config) : config_(config.config().c), rope_(config.config()) {}
  PyRope(const rotary::Config& config, const rotary::BorrowedTable& table, std::vector<ArrayView> caches)
      : config_(config.c), caches_(std::move(caches)), rope_(config, table) {}

  // A rope over a cache of rotary_dim / 2 pairs a position: config's keywords
  // (those that still apply), head_dim (None: rotary_dim) and the pairing.
  static PyRope Borrowed(const py::kwargs& config, const py::object& head_dim, const py::object& pairing,
                         int64_t rotary_dim, const rotary::BorrowedTable& table, std::vector<ArrayView> caches) {
    py::kwargs kwargs;
    for (const auto& item : config) kwargs[item.first] = item.second;
    kwargs["head_dim"] = head_dim.is_none() ? py::int_(rotary_dim) : head_dim;
    kwargs["pairing"] = pairing;
    const ConfigArgs args(kwargs);
    bool dim_given = false;
    for (const std::string& key : args.keys()) {
      if (!ReadWithBorrowedCache(key)) {
        Invalid("'" + key + "' does not apply to a rope over a borrowed cache: the cache's rows are the cos and " +
                "sin of positions 0 .. max_pos - 1, frequencies and any attention factor included; the keywords " +
                "that do apply: head_dim, pairing, mrope_section, mrope_interleaved, vision_2d, position_limit");
      }
      dim_given = dim_given || key == "rotary_dim" || key == "partial_rotary_factor";
    }
    rotary::Config resolved = args.config();
    if (resolved.c.scaling != ROTARY_SCALING_DEFAULT) {
      Invalid("a scaling scheme (scaling / rope_type other than 'default') does not apply to a rope over a borrowed "
              "cache: its cos and sin already are the scaled ones");
    }
    const int32_t given = resolved.c.rotary_dim == 0 ? resolved.c.head_dim : resolved.c.rotary_dim;
    if (dim_given && given != rotary_dim) {
      Invalid("rotary_dim = " + std::to_string(given) + ", but the cache holds rotary_dim / 2 = " +
              std::to_string(rotary_dim / 2) + " pairs a position (rotary_dim = " + std::to_string(rotary_dim) + ")");
    }
    resolved.rotary_dim(static_cast<int32_t>(rotary_dim));  // <= ROTARY_MAX_HEAD_DIM (ViewCache)
    // Not read over a borrowed table, but validated against position_limit:
    // the cache's rows, so that any position_limit >= 1 is accepted.
    resolved.max_positions(std::max<int64_t>(1, std::min(table.t.rows, resolved.c.position_limit)));
    return PyRope(resolved, table, std::move(caches));
  }

  rotary_config config_;  // scalars only: its list pointers are not kept valid
  // A borrowed cache's arrays (and DLPack exports), which rope_ reads in
  // place: kept alive as long as the rope, and released after it.
  std::vector<ArrayView> caches_;
  rotary::Rope rope_;
};

py::tuple Plan(int64_t seq_len, const py::kwargs& kwargs) {
  const ConfigArgs config(kwargs);
  const rotary::Plan plan = rotary::plan(config.config(), seq_len);
  return py::make_tuple(py::array_t<double>(plan.inv_freq.size(), plan.inv_freq.data()), plan.attention_factor);
}

}  // namespace

PYBIND11_MODULE(rotary, m) {
  m.doc() = "Rotary position embedding (RoPE) for CPU inference, on numpy arrays.";
  m.attr("__version__") = rotary::version();

  static py::exception<rotary::Error> error(m, "Error", PyExc_ValueError);
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const rotary::Error& e) {
      py::object instance = py::handle(error.ptr())(e.what());
      instance.attr("status") = static_cast<int>(e.status());
      PyErr_SetObject(error.ptr(), instance.ptr());
    }
  });
  m.attr("OK") = static_cast<int>(ROTARY_OK);
  m.attr("INVALID_ARGUMENT") = static_cast<int>(ROTARY_INVALID_ARGUMENT);
  m.attr("OUT_OF_RANGE") = static_cast<int>(ROTARY_OUT_OF_RANGE);
  m.attr("OUT_OF_MEMORY") = static_cast<int>(ROTARY_OUT_OF_MEMORY);
  m.attr("UNSUPPORTED") = static_cast<int>(ROTARY_UNSUPPORTED);

  py::class_<PyRope>(m, "Rope", R"doc(
Rope(**config): a frequency plan and its cached cos/sin tables.

Keywords are rotary_config's fields under HF's names: head_dim (128), rotary_dim (head_dim),
partial_rotary_factor, pairing ('neox' or 'interleaved'), base or rope_theta (10000), max_positions,
position_limit, scaling / rope_type ('default', 'linear', 'ntk', 'dynamic', 'yarn', 'llama3', 'longrope',
'freq_factors', 'inv_freq', 'bounded'; 'mrope' reads as 'default'), factor, original_max_position_embeddings, max_position_embeddings,
attention_factor, alpha, beta_fast, beta_slow, mscale, mscale_all_dim, truncate, low_freq_factor,
high_freq_factor, short_factor, long_factor, freq_factors, inv_freq, n_max, table_mode ('auto', 'full',
'compact', 'on_the_fly'), mrope_section (3 or 4 pairs per axis), mrope_interleaved, vision_2d
(multi-axis RoPE, docs/math.md §7); and rope_scaling= a model
config's rope_scaling (or rope_parameters) dict, whose keys are read the same way. None means absent.
)doc")
      .def(py::init<const py::kwargs&>())
      .def_static("from_hf_config", &PyRope::FromHfConfig, py::arg("config"), py::arg("pairing") = "neox", R"doc(
A rope for a Hugging Face model config (a dict or a PretrainedConfig): head_dim (else hidden_size /
num_attention_heads), rope_theta, partial_rotary_factor, max_position_embeddings,
original_max_position_embeddings and the rope_scaling (rope_parameters) block.
)doc")
      .def_static("from_onnx_cache", &PyRope::FromOnnxCache, py::arg("cos_cache"), py::arg("sin_cache"),
                  py::kw_only(), py::arg("head_dim") = py::none(), py::arg("pairing") = "neox",
                  py::arg("dtype") = py::none(), R"doc(
A rope over ONNX RotaryEmbedding's (opset 23) cos_cache and sin_cache, [max_pos, rotary_dim / 2] each:
pair i at position p rotates by cos_cache[p, i], sin_cache[p, i], the caller's values as they are (no table
of its own: table_mode 'borrowed', table_bytes 0). rotary_dim = 2 * cos_cache.shape[1]; head_dim defaults
to it (a larger one rotates only the first rotary_dim components). ONNX's interleaved=1 is
pairing='interleaved'. The caches: numpy arrays or DLPack tensors (torch) on the CPU, both float32, float16
or bfloat16 (numpy: uint16 with dtype='bf16'), 2-D, the last axis contiguous, any row stride (the same for
both). They are read in place, never copied: the rope keeps them alive, and they must not be modified while
a call runs. Positions must be < max_pos. **config: the other Rope keywords that still apply (mrope_section,
mrope_interleaved, vision_2d, position_limit); one giving frequencies (scaling, rope_theta, factor, ...) is a
rotary.Error.
)doc")
      .def_static("from_vllm_cache", &PyRope::FromVllmCache, py::arg("cos_sin_cache"), py::kw_only(),
                  py::arg("head_dim") = py::none(), py::arg("is_neox_style") = true, py::arg("dtype") = py::none(),
                  R"doc(
A rope over vLLM's cos_sin_cache [max_pos, rotary_dim] (RotaryEmbedding.cos_sin_cache: rotary_dim / 2 cos
values then as many sin values a row): pair i at position p rotates by cos_sin_cache[p, i] and
cos_sin_cache[p, rotary_dim / 2 + i], the caller's values as they are (table_mode 'borrowed'). rotary_dim =
cos_sin_cache.shape[1]; head_dim defaults to it. is_neox_style=False: GPT-J's interleaved pairs, as vLLM
names it. The cache, its dtypes and strides, its lifetime and **config as for from_onnx_cache: read in place,
kept alive by the rope, not to be modified while a call runs.
)doc")
      .def("hf_apply", &PyRope::HfApply, py::arg("q"), py::arg("k"), py::arg("position_ids"), R"doc(
Drop-in for HF's rotary_emb + apply_rotary_pos_emb: q [batch, heads, seq, head_dim] and k (torch or numpy)
at HF's position_ids ([batch, seq], or [axes, batch, seq] for multi-axis ropes); returns new rotated (q, k).
)doc")
      .def_property_readonly("head_dim", &PyRope::head_dim)
      .def_property_readonly("rotary_dim", &PyRope::rotary_dim)
      .def_property_readonly("pairing", &PyRope::pairing)
      .def_property_readonly("table_bytes", &PyRope::table_bytes)
      .def_property_readonly("table_count", &PyRope::table_count)
      .def_property_readonly("table_mode", &PyRope::table_mode)
      .def_property_readonly("axis_count", &PyRope::axis_count,
                             "Position ids per token: 1, 2 (vision_2d) or 3, 4 (mrope_section).")
      .def("apply", &PyRope::Apply, py::arg("x"), py::arg("positions") = py::none(), py::arg("offset") = 0,
           py::kw_only(), py::arg("inverse") = false, py::arg("out") = py::none(), py::arg("dtype") = py::none(),
           py::arg("out_dtype") = py::none(), py::arg("norm") = py::none(), py::arg("norm_eps") = 1e-6,
           py::arg("norm_offset") = 0.0, R"doc(
Rotates x ([batch, seq, heads, head_dim] or [seq, heads, head_dim]; a numpy array of float32, float16, or
uint16 with dtype='bf16', or a torch tensor (any DLPack producer on the CPU) of float32, float16 or bfloat16,
viewed in place with its strides; the head_dim axis contiguous) at positions offset + s, or positions[b, s] + offset (int64, shape [batch, seq] or [seq];
offset may also be one integer per sequence, shape [batch]: ragged batches, left padding;
multi-axis ropes also take [axes, batch, seq], HF's position_ids, and [batch, seq] means every axis equal).
In place, or into out (any of the three storage types; out_dtype='bf16' for a uint16 out), which is
returned. inverse=True undoes apply. The GIL is released while the kernel runs.
norm (float32, [head_dim]): an RMSNorm of each head before the rotation, in the same pass (qk-norm:
x / sqrt(mean(x^2) + norm_eps) * (norm + norm_offset); norm_offset=1 for Gemma's 1 + w); a weight of
heads * head_dim floats normalizes all heads of a token together (OLMo 2).
)doc")
      .def("shift", &PyRope::Shift, py::arg("x"), py::arg("delta"), py::arg("positions") = py::none(),
           py::arg("offset") = 0, py::kw_only(), py::arg("dtype") = py::none(), R"doc(
Moves x (e.g. a KV cache's keys), rotated at positions (as for apply), to those positions + delta, in place:
apply(inverse=True) at the old positions, then apply at the new ones, bit for bit (llama.cpp's context
shift). Both position sets are checked before anything is written. Returns x.
)doc")
      .def("apply_qk", &PyRope::ApplyQk, py::arg("q"), py::arg("k"), py::arg("positions") = py::none(),
           py::arg("offset") = 0, py::kw_only(), py::arg("q_scale") = 1.0f, py::arg("q_out") = py::none(),
           py::arg("k_out") = py::none(), py::arg("dtype") = py::none(), py::arg("out_dtype") = py::none(),
           py::arg("q_norm") = py::none(), py::arg("k_norm") = py::none(), py::arg("norm_eps") = 1e-6,
           py::arg("norm_offset") = 0.0, py::arg("v") = py::none(), py::arg("v_out") = py::none(),
           py::arg("slot_mapping") = py::none(), py::arg("cache_dtype") = py::none(), py::arg("k_scale") = 1.0,
           py::arg("v_scale") = 1.0, R"doc(
Rotates q and k (any head counts, same batch and seq) at the same positions in one pass, multiplying all
of q by q_scale; in place, or into q_out and k_out. Returns (q, k) as written. positions as for apply.
q_norm, k_norm: qk-norm weights (Qwen3, Gemma 3, OLMo 2), applied before the rotation as apply's norm.

With slot_mapping (int64 [batch, seq] or [batch * seq]), the KV-cache write (paged caches, vLLM's slot rule):
k_out is then the k cache and v_out the v cache, each [num_blocks, block_size, kv_heads, head_dim] (any
strides, the last axis contiguous: vLLM CPU's [num_blocks, kv_heads, block_size, head_dim] as .transpose(1, 2)),
and v= is v [batch, seq, kv_heads, head_dim]. Token (b, s) with slot t >= 0 gets k rotated into
k_out[t // block_size, t % block_size] and v converted into v_out there; t < 0 writes nothing. k and v are
only read; q is rotated in place (or into q_out). cache_dtype: 'f32', 'f16', 'bf16' (default: k_out's
dtype; numpy bf16 as uint16 with 'bf16'), or 'fp8_e4m3', 'fp8_e5m2' (uint8 caches holding fp8(x / k_scale),
fp8(v / v_scale), nearest even, saturating) or 'q8_0' (uint8 caches, last axis head_dim / 32 * 34: ggml's
block_q8_0 records). Slots must be distinct and below num_blocks * block_size. Returns (q, k_out).
)doc")
      .def("apply_packed_qkv", &PyRope::ApplyPackedQkv, py::arg("qkv"), py::arg("q_heads"), py::arg("kv_heads"),
           py::arg("positions") = py::none(), py::arg("offset") = 0, py::kw_only(), py::arg("q_scale") = 1.0f,
           py::arg("dtype") = py::none(), py::arg("q_norm") = py::none(), py::arg("k_norm") = py::none(),
           py::arg("norm_eps") = 1e-6, py::arg("norm_offset") = 0.0, R"doc(
Rotates (after q_norm / k_norm, as apply_qk), in place, the q and k heads of a C-contiguous packed QKV buffer
[batch, seq, (q_heads + 2 * kv_heads) * head_dim] (or [seq, ...]); v is untouched. Returns qkv.
positions as for apply.
)doc");

  m.def("plan", &Plan, py::arg("seq_len") = 1,
        "plan(seq_len=1, **config) -> (inv_freq, attention_factor): what apply uses for a call whose largest "
        "position is seq_len - 1 (float64).");
  m.def(
      "softmax_scale_factor",
      [](const py::kwargs& kwargs) { return rotary::softmax_scale_factor(ConfigArgs(kwargs).config()); },
      "softmax_scale_factor(**config): the factor DeepSeek YaRN multiplies the softmax scale by (else 1).");
  m.def("version", &rotary::version, "The library's version.");
  m.def("active_target", &rotary::active_target, "The kernel target in use, e.g. 'AVX2'.");
  m.def("target_source", &rotary::target_source,
        "Why the active target is active: 'default', 'ROTARY_TARGET' or 'rotary_set_target'.");
  m.def("set_target", &rotary::set_target, py::arg("name"),
        "Forces a kernel target by name for the process ('auto': the best supported).");
  m.def("cache_budget", &rotary::cache_budget, "The process-wide table cache's budget in bytes.");
  m.def("set_cache_budget", &rotary::set_cache_budget, py::arg("bytes"),
        "Sets the table cache's budget (bytes >= 0), evicting unused tables down to it.");
  m.def("cache_bytes", &rotary::cache_bytes, "Bytes of table rows the cache holds now.");
  m.def("cache_tables", &rotary::cache_tables, "Tables in the cache now.");
  m.def("cache_trim", &rotary::cache_trim, "Frees the rows of every table no call is reading; returns bytes freed.");
  m.def(
      "compiled_targets",
      [] {
        std::vector<std::pair<std::string, bool>> out;
        for (const rotary::TargetInfo& t : rotary::compiled_targets()) out.emplace_back(t.name, t.supported);
        return out;
      },
      "[(name, supported by this CPU)] for every target compiled in, best first.");
}
