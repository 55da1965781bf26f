// The C ABI: every entry point turns exceptions into a status and this
// thread's last-error text, so nothing ever unwinds into C callers.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <new>
#include <utility>

#include "dispatch/compiled_targets.h"
#include "lib/call/kv_cache_write.h"
#include "lib/call/qk_norm.h"
#include "lib/call/rope.h"
#include "lib/config/config.h"
#include "lib/config/enum_value.h"
#include "lib/config/sized_struct.h"
#include "lib/error.h"
#include "lib/plan/frequency_plan.h"
#include "lib/tables/borrowed_table.h"
#include "lib/tables/table_cache.h"
#include "lib/target_registry.h"
#include "rotary/rotary.h"

namespace {

template <typename Body>
rotary_status Guard(Body&& body) {
  try {
    body();
    return ROTARY_OK;
  } catch (const rotary::Error& e) {
    rotary::SetLastError(e.what());
    return static_cast<rotary_status>(e.status());
  } catch (const std::bad_alloc&) {
    rotary::SetLastError("out of memory");
    return ROTARY_OUT_OF_MEMORY;
  } catch (const std::exception& e) {
    rotary::SetLastError(std::string("internal error: ") + e.what());
    return ROTARY_INVALID_ARGUMENT;
  } catch (...) {
    rotary::SetLastError("internal error: unknown exception");
    return ROTARY_INVALID_ARGUMENT;
  }
}

// Every apply entry point: the rope checked, the norm read (if any), then Apply.
rotary_status Run(const rotary_rope* rope, const rotary::TensorArgs* tensors, int count,
                  const rotary::PositionArgs& positions, rotary::Direction direction,
                  const rotary_qk_norm* norm = nullptr, const rotary::CacheWriteArgs* cache = nullptr) {
  return Guard([&] {
    if (rope == nullptr) rotary::Fail(rotary::Status::kInvalidArgument, "rope is NULL");
    if (norm == nullptr) return rope->Apply(tensors, count, positions, direction, nullptr, cache);
    const rotary::NormArgs args = rotary::ReadQkNorm(norm);
    rope->Apply(tensors, count, positions, direction, &args, cache);
  });
}

rotary_status Run(const rotary_rope* rope, const rotary::TensorArgs* tensors, int count, const int64_t* positions,
                  int64_t offset, rotary::Direction direction) {
  return Run(rope, tensors, count, rotary::PositionArgs{positions, 1, offset, nullptr}, direction);
}

// A copy of one made once: rotary_apply_options_init runs on every call of
// the C++ API's option path, and a zero-filled struct per call is a string
// store (rep stos) whose start-up a decode call notices.
rotary_apply_options DefaultApplyOptions() {
  static const rotary_apply_options kDefaults = [] {
    rotary_apply_options options{};
    options.struct_size = sizeof(rotary_apply_options);
    options.axes = 1;
    options.q_scale = 1.0f;
    return options;
  }();
  return kDefaults;
}

bool IsDtype(int32_t dtype) { return dtype == ROTARY_F32 || dtype == ROTARY_F16 || dtype == ROTARY_BF16; }

// rotary_packed_qkv_views with the dtype as the caller's raw integer (see lib/config/enum_value.h).
void PackedQkvViews(void* data, int32_t dtype, int64_t batch, int64_t seq, int64_t q_heads, int64_t kv_heads,
                    int32_t head_dim, rotary_tensor* q, rotary_tensor* k, rotary_tensor* v) {
  using rotary::Fail;
  using rotary::Status;
  if (data == nullptr) Fail(Status::kInvalidArgument, "data is NULL");
  if (!IsDtype(dtype)) Fail(Status::kInvalidArgument, "dtype must be a rotary_dtype, got ", dtype);
  if (batch < 1 || seq < 1) Fail(Status::kInvalidArgument, "batch and seq must be >= 1, got ", batch, ", ", seq);
  if (q_heads < 1 || kv_heads < 1) {
    Fail(Status::kInvalidArgument, "q_heads and kv_heads must be >= 1, got ", q_heads, ", ", kv_heads);
  }
  if (head_dim < 2 || head_dim > ROTARY_MAX_HEAD_DIM || head_dim % 2 != 0) {
    Fail(Status::kInvalidArgument, "head_dim must be even and in [2, ", ROTARY_MAX_HEAD_DIM, "], got ", head_dim);
  }
  int64_t row = 0, stride_batch = 0;
  if (kv_heads > INT64_MAX / 4 || __builtin_add_overflow(q_heads, 2 * kv_heads, &row) ||
      __builtin_mul_overflow(row, head_dim, &row) || __builtin_mul_overflow(row, seq, &stride_batch)) {
    Fail(Status::kInvalidArgument, "packed QKV row of (", q_heads, " + 2 * ", kv_heads, ") * ", head_dim,
         " elements overflows int64");
  }
  char* base = static_cast<char*>(data);
  const int64_t element = dtype == ROTARY_F32 ? 4 : 2;
  auto view = [&](rotary_tensor* out, int64_t first_head, int64_t heads) {
    if (out) {
      *out = rotary_tensor{base + first_head * head_dim * element, static_cast<rotary_dtype>(dtype), batch, seq,
                           heads, stride_batch, row, head_dim};
    }
  };
  view(q, 0, q_heads);
  view(k, q_heads, kv_heads);
  view(v, q_heads + kv_heads, kv_heads);
}

}  // namespace

extern "C" {

void rotary_config_init_sized(rotary_config* config, size_t struct_size) { rotary::InitConfig(config, struct_size); }

rotary_status rotary_create(const rotary_config* config, rotary_rope** out) {
  return Guard([&] {
    if (out == nullptr) rotary::Fail(rotary::Status::kInvalidArgument, "out is NULL");
    *out = nullptr;
    rotary::ResolvedConfig resolved = rotary::ValidateConfig(config);
    rotary::ActiveKernels();  // a bad ROTARY_TARGET is reported here, not on first apply
    *out = new rotary_rope(std::move(resolved));
  });
}

void rotary_destroy(rotary_rope* rope) { delete rope; }

void rotary_borrowed_table_init_sized(rotary_borrowed_table* table, size_t struct_size) {
  rotary::InitBorrowedTable(table, struct_size);
}

rotary_status rotary_create_borrowed(const rotary_config* config, const rotary_borrowed_table* table,
                                     rotary_rope** out) {
  return Guard([&] {
    if (out == nullptr) rotary::Fail(rotary::Status::kInvalidArgument, "out is NULL");
    *out = nullptr;
    rotary::ResolvedConfig resolved = rotary::ValidateConfig(config);
    const rotary::BorrowedRows borrowed = rotary::ReadBorrowedTable(table, resolved.config);
    rotary::ActiveKernels();
    *out = new rotary_rope(std::move(resolved), &borrowed);
  });
}

rotary_status rotary_apply(const rotary_rope* rope, const rotary_tensor* x, const int64_t* positions,
                           int64_t offset) {
  const rotary::TensorArgs t{x, x, 1.0f, "x", "x"};
  return Run(rope, &t, 1, positions, offset, rotary::kForward);
}

rotary_status rotary_apply_inverse(const rotary_rope* rope, const rotary_tensor* x, const int64_t* positions,
                                   int64_t offset) {
  const rotary::TensorArgs t{x, x, 1.0f, "x", "x"};
  return Run(rope, &t, 1, positions, offset, rotary::kInverse);
}

rotary_status rotary_apply_to(const rotary_rope* rope, const rotary_tensor* src, const rotary_tensor* dst,
                              const int64_t* positions, int64_t offset) {
  const rotary::TensorArgs t{src, dst, 1.0f, "src", "dst"};
  return Run(rope, &t, 1, positions, offset, rotary::kForward);
}

rotary_status rotary_apply_inverse_to(const rotary_rope* rope, const rotary_tensor* src, const rotary_tensor* dst,
                                      const int64_t* positions, int64_t offset) {
  const rotary::TensorArgs t{src, dst, 1.0f, "src", "dst"};
  return Run(rope, &t, 1, positions, offset, rotary::kInverse);
}

rotary_status rotary_shift(const rotary_rope* rope, const rotary_tensor* x, const int64_t* positions, int64_t offset,
                           int64_t delta) {
  return Guard([&] {
    if (rope == nullptr) rotary::Fail(rotary::Status::kInvalidArgument, "rope is NULL");
    rope->Shift(x, positions, offset, delta);
  });
}

rotary_status rotary_apply_qk(const rotary_rope* rope, const rotary_tensor* q, const rotary_tensor* k,
                              const int64_t* positions, int64_t offset, float q_scale) {
  const rotary::TensorArgs t[2] = {{q, q, q_scale, "q", "q"}, {k, k, 1.0f, "k", "k"}};
  return Run(rope, t, 2, positions, offset, rotary::kForward);
}

rotary_status rotary_apply_qk_to(const rotary_rope* rope, const rotary_tensor* q_src, const rotary_tensor* q_dst,
                                 const rotary_tensor* k_src, const rotary_tensor* k_dst, const int64_t* positions,
                                 int64_t offset, float q_scale) {
  const rotary::TensorArgs t[2] = {{q_src, q_dst, q_scale, "q_src", "q_dst"}, {k_src, k_dst, 1.0f, "k_src", "k_dst"}};
  return Run(rope, t, 2, positions, offset, rotary::kForward);
}

rotary_status rotary_apply_axes(const rotary_rope* rope, const rotary_tensor* q_src, const rotary_tensor* q_dst,
                                const rotary_tensor* k_src, const rotary_tensor* k_dst, const int64_t* positions,
                                int32_t axes, int64_t offset, float q_scale, int32_t inverse) {
  const bool with_k = k_src != nullptr || k_dst != nullptr;  // one of them NULL: an error naming it
  const rotary::TensorArgs t[2] = {{q_src, q_dst, q_scale, "q_src", "q_dst"}, {k_src, k_dst, 1.0f, "k_src", "k_dst"}};
  return Run(rope, t, with_k ? 2 : 1, rotary::PositionArgs{positions, axes, offset, nullptr},
             inverse ? rotary::kInverse : rotary::kForward);
}

void rotary_qk_norm_init_sized(rotary_qk_norm* norm, size_t struct_size) { rotary::InitQkNorm(norm, struct_size); }

rotary_status rotary_apply_qk_norm(const rotary_rope* rope, const rotary_tensor* q_src, const rotary_tensor* q_dst,
                                   const rotary_tensor* k_src, const rotary_tensor* k_dst, const int64_t* positions,
                                   int32_t axes, int64_t offset, float q_scale, const rotary_qk_norm* norm) {
  if (norm == nullptr) {
    return Guard([] { rotary::Fail(rotary::Status::kInvalidArgument, "norm is NULL"); });
  }
  const bool with_k = k_src != nullptr || k_dst != nullptr;  // one of them NULL: an error naming it
  const rotary::TensorArgs t[2] = {{q_src, q_dst, q_scale, "q_src", "q_dst"}, {k_src, k_dst, 1.0f, "k_src", "k_dst"}};
  return Run(rope, t, with_k ? 2 : 1, rotary::PositionArgs{positions, axes, offset, nullptr}, rotary::kForward, norm);
}

void rotary_apply_options_init_sized(rotary_apply_options* options, size_t struct_size) {
  rotary::InitSized(options, struct_size, DefaultApplyOptions());
}

rotary_status rotary_apply_with(const rotary_rope* rope, const rotary_tensor* q_src, const rotary_tensor* q_dst,
                                const rotary_tensor* k_src, const rotary_tensor* k_dst,
                                const rotary_apply_options* caller) {
  rotary_apply_options options;  // filled below: no zero fill on a decode call's path
  const rotary_status read = Guard([&] {
    // The first release's struct: everything up to norm.
    constexpr size_t kFirstSize = offsetof(rotary_apply_options, norm) + sizeof(const rotary_qk_norm*);
    if (caller != nullptr) {
      rotary::ReadSized(caller, &options, DefaultApplyOptions, kFirstSize, "options", "rotary_apply_options_init");
    } else {
      options = DefaultApplyOptions();
    }
    if (options.inverse != 0 && options.inverse != 1) {
      rotary::Fail(rotary::Status::kInvalidArgument, "options.inverse = ", options.inverse, " must be 0 or 1");
    }
    if (options.inverse == 1 && options.norm != nullptr) {
      rotary::Fail(rotary::Status::kInvalidArgument, "options.inverse with options.norm: a norm has no inverse");
    }
  });
  if (read != ROTARY_OK) return read;
  const bool with_k = k_src != nullptr || k_dst != nullptr;  // one of them NULL: an error naming it
  const rotary::TensorArgs t[2] = {{q_src, q_dst, options.q_scale, "q_src", "q_dst"},
                                   {k_src, k_dst, 1.0f, "k_src", "k_dst"}};
  const rotary::CacheWriteArgs cache{options.k_cache,      options.v_src,
                                     options.v_cache,      options.slot_mapping,
                                     rotary::EnumValue(options.cache_format), options.k_scale,
                                     options.v_scale};
  return Run(rope, t, with_k ? 2 : 1,
             rotary::PositionArgs{options.positions, options.axes, options.offset, options.batch_offsets},
             options.inverse ? rotary::kInverse : rotary::kForward, options.norm, cache.Any() ? &cache : nullptr);
}

int32_t rotary_axis_count(const rotary_rope* rope) { return rope ? rope->axis_count() : 0; }

rotary_status rotary_packed_qkv_views(void* data, rotary_dtype dtype, int64_t batch, int64_t seq, int64_t q_heads,
                                      int64_t kv_heads, int32_t head_dim, rotary_tensor* q, rotary_tensor* k,
                                      rotary_tensor* v) {
  const int32_t raw_dtype = rotary::EnumValue(dtype);
  return Guard([&] { PackedQkvViews(data, raw_dtype, batch, seq, q_heads, kv_heads, head_dim, q, k, v); });
}

rotary_status rotary_apply_packed_qkv(const rotary_rope* rope, void* data, rotary_dtype dtype, int64_t batch,
                                      int64_t seq, int64_t q_heads, int64_t kv_heads, const int64_t* positions,
                                      int64_t offset, float q_scale) {
  if (rope == nullptr) return Guard([] { rotary::Fail(rotary::Status::kInvalidArgument, "rope is NULL"); });
  rotary_tensor q, k;
  const int32_t raw_dtype = rotary::EnumValue(dtype);
  const rotary_status status = Guard([&] {
    PackedQkvViews(data, raw_dtype, batch, seq, q_heads, kv_heads, rope->config().head_dim, &q, &k, nullptr);
  });
  if (status != ROTARY_OK) return status;
  return rotary_apply_qk(rope, &q, &k, positions, offset, q_scale);
}

const char* rotary_last_error(void) { return rotary::LastError(); }

const char* rotary_active_target(void) { return rotary::ActiveTargetName(); }

const char* rotary_target_source(void) { return rotary::ActiveTargetSource(); }

const char* rotary_version(void) { return ROTARY_VERSION_STRING; }

int32_t rotary_target_count(void) { return static_cast<int32_t>(rotary::kNumCompiledTargets); }

const char* rotary_target_name(int32_t index) {
  if (index < 0 || index >= rotary_target_count()) return nullptr;
  return rotary::kCompiledTargets[index].name;
}

int rotary_target_supported(int32_t index) {
  if (index < 0 || index >= rotary_target_count()) return 0;
  return rotary::CpuSupports(rotary::kCompiledTargets[index]) ? 1 : 0;
}

rotary_status rotary_set_target(const char* name) {
  return Guard([&] { rotary::ForceTarget(name ? name : ""); });
}

int64_t rotary_table_bytes(const rotary_rope* rope) { return rope ? rope->table_bytes() : 0; }

int32_t rotary_table_count(const rotary_rope* rope) { return rope ? rope->table_count() : 0; }

rotary_table_mode rotary_table_mode_of(const rotary_rope* rope) {
  if (rope == nullptr) return ROTARY_TABLE_FULL;
  switch (rope->table_mode()) {
    case rotary::RowSource::kCompact:
      return ROTARY_TABLE_COMPACT;
    case rotary::RowSource::kOnTheFly:
      return ROTARY_TABLE_ON_THE_FLY;
    case rotary::RowSource::kBorrowed:
      return ROTARY_TABLE_BORROWED;
    case rotary::RowSource::kFull:
      break;
  }
  return ROTARY_TABLE_FULL;
}

rotary_status rotary_cache_set_budget(int64_t bytes) {
  return Guard([&] {
    if (bytes < 0) rotary::Fail(rotary::Status::kInvalidArgument, "cache budget must be >= 0 bytes, got ", bytes);
    rotary::TableCache::Instance().SetBudget(bytes);
  });
}

int64_t rotary_cache_budget(void) { return rotary::TableCache::Instance().budget(); }

int64_t rotary_cache_bytes(void) { return rotary::TableCache::Instance().bytes(); }

int32_t rotary_cache_tables(void) { return rotary::TableCache::Instance().tables(); }

int64_t rotary_cache_trim(void) { return rotary::TableCache::Instance().Trim(); }

rotary_status rotary_plan(const rotary_config* config, int64_t seq_len, double* inv_freq_out, int32_t capacity,
                          double* attention_factor_out) {
  return Guard([&] {
    const rotary::ResolvedConfig resolved = rotary::ValidateConfig(config);
    const rotary::FrequencyScheme& scheme = resolved.scheme;
    if (seq_len < 1 || seq_len > scheme.position_limit) {
      rotary::Fail(rotary::Status::kInvalidArgument, "seq_len must be in [1, ", scheme.position_limit_name, " = ",
                   scheme.position_limit, "], got ", seq_len);
    }
    const int32_t pairs = resolved.config.rotary_dim / 2;
    if (inv_freq_out != nullptr && capacity < pairs) {
      rotary::Fail(rotary::Status::kInvalidArgument, "capacity must be >= rotary_dim / 2 = ", pairs, ", got ",
                   capacity);
    }
    const rotary::FrequencyPlan plan = rotary::MakeFrequencyPlan(scheme, seq_len);
    if (inv_freq_out != nullptr) std::copy(plan.inv_freq.begin(), plan.inv_freq.end(), inv_freq_out);
    if (attention_factor_out != nullptr) *attention_factor_out = plan.scale;
  });
}

rotary_status rotary_softmax_scale_factor(const rotary_config* config, double* factor_out) {
  return Guard([&] {
    if (factor_out == nullptr) rotary::Fail(rotary::Status::kInvalidArgument, "factor_out is NULL");
    *factor_out = rotary::ValidateConfig(config).scheme.softmax_scale_factor;
  });
}

}  // extern "C"
