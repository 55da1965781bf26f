#include "lib/config/frequency_scheme.h"

#include <cmath>
#include <cstring>

#include "lib/config/enum_value.h"
#include "lib/config/reproducible_math.h"
#include "lib/error.h"

namespace rotary {
namespace {

// Llama 3.1's published values (docs/math.md §2.5), used when a field is not given.
constexpr double kLlama3Factor = 8.0;
constexpr int64_t kLlama3OriginalLength = 8192;
// The YaRN paper's correction range (docs/math.md §2.4), as HF's `or 32` / `or 1`.
constexpr double kYarnBetaFast = 32.0;
constexpr double kYarnBetaSlow = 1.0;

const char* SchemeName(rotary_scaling scaling) {
  switch (scaling) {
    case ROTARY_SCALING_DEFAULT: return "ROTARY_SCALING_DEFAULT";
    case ROTARY_SCALING_LINEAR: return "ROTARY_SCALING_LINEAR";
    case ROTARY_SCALING_NTK: return "ROTARY_SCALING_NTK";
    case ROTARY_SCALING_DYNAMIC_NTK: return "ROTARY_SCALING_DYNAMIC_NTK";
    case ROTARY_SCALING_YARN: return "ROTARY_SCALING_YARN";
    case ROTARY_SCALING_LLAMA3: return "ROTARY_SCALING_LLAMA3";
    case ROTARY_SCALING_LONGROPE: return "ROTARY_SCALING_LONGROPE";
    case ROTARY_SCALING_FREQ_FACTORS: return "ROTARY_SCALING_FREQ_FACTORS";
    case ROTARY_SCALING_INV_FREQ: return "ROTARY_SCALING_INV_FREQ";
    case ROTARY_SCALING_BOUNDED: return "ROTARY_SCALING_BOUNDED";
  }
  return "?";
}

// The value, or `fallback` when it is 0 (not given).
template <typename T>
T OrDefault(T value, T fallback) {
  return value != 0 ? value : fallback;
}

// A field that is 0 when not given, else finite and > 0.
void CheckOptionalPositive(double value, const char* field) {
  if (value != 0 && !(std::isfinite(value) && value > 0)) {
    Fail(Status::kInvalidArgument, "config.", field, " must be finite and > 0 (or 0: not given), got ", value);
  }
}

// Context lengths: 0 when not given, else at least 2 (LongRoPE divides by ln L0).
void CheckOptionalLength(int64_t value, const char* field) {
  if (value != 0 && value < 2) {
    Fail(Status::kInvalidArgument, "config.", field, " must be >= 2 (or 0: not given), got ", value);
  }
}

void CheckNonNegative(double value, const char* field) {
  if (!(std::isfinite(value) && value >= 0)) {
    Fail(Status::kInvalidArgument, "config.", field, " must be finite and >= 0, got ", value);
  }
}

// s: the factor given or, as HF does when rope_scaling has none, the ratio of
// the extended to the original context length.
double RequireFactor(const rotary_config& c) {
  if (c.factor != 0) return c.factor;
  if (c.max_position_embeddings != 0 && c.original_max_position_embeddings != 0) {
    return static_cast<double>(c.max_position_embeddings) / static_cast<double>(c.original_max_position_embeddings);
  }
  Fail(Status::kInvalidArgument, "config.factor must be > 0 for ", SchemeName(c.scaling),
       " (or give max_position_embeddings and original_max_position_embeddings to derive it), got 0");
}

// L0: the first of the two fields that is given.
int64_t RequireLength(const rotary_config& c, int64_t preferred, const char* preferred_name, int64_t fallback,
                      const char* fallback_name) {
  if (preferred != 0) return preferred;
  if (fallback != 0) return fallback;
  Fail(Status::kInvalidArgument, "config.", preferred_name, " (or ", fallback_name, ") must be given for ",
       SchemeName(c.scaling), ", got 0");
}

// The exponent R / (R - 2) of NTK's base change needs R > 2.
void RequireNtkRotaryDim(const rotary_config& c) {
  if (c.rotary_dim < 4) {
    Fail(Status::kInvalidArgument, "config.rotary_dim must be >= 4 for ", SchemeName(c.scaling),
         " (its base exponent is R / (R - 2)), got ", c.rotary_dim);
  }
}

// A copy of one of the config's per-pair arrays, checked value by value.
std::vector<double> CopyPairArray(const rotary_config& c, const rotary_array& array, const char* field,
                                  bool zero_allowed) {
  const int64_t pairs = c.rotary_dim / 2;
  if (array.count != pairs) {
    Fail(Status::kInvalidArgument, "config.", field, ".count must be rotary_dim / 2 = ", pairs, " for ",
         SchemeName(c.scaling), ", got ", array.count);
  }
  if (array.values == nullptr) Fail(Status::kInvalidArgument, "config.", field, ".values is NULL");
  std::vector<double> copy(array.values, array.values + pairs);
  for (int64_t i = 0; i < pairs; ++i) {
    const double v = copy[i];
    if (!std::isfinite(v) || v < 0 || (v == 0 && !zero_allowed)) {
      Fail(Status::kInvalidArgument, "config.", field, ".values[", i, "] must be finite and ",
           zero_allowed ? ">= 0" : "> 0", ", got ", v);
    }
  }
  return copy;
}

void ResolveNtk(const rotary_config& c, FrequencyScheme& s) {
  RequireNtkRotaryDim(c);
  if (c.alpha == 0) {
    s.factor = RequireFactor(c);
    return;
  }
  // Hunyuan-style configs write factor 1.0 beside alpha; any other factor is ambiguous.
  if (c.factor != 0 && c.factor != 1) {
    Fail(Status::kInvalidArgument, "config.alpha = ", c.alpha, " and config.factor = ", c.factor,
         " are both given for ROTARY_SCALING_NTK: give one of them");
  }
  s.factor = c.alpha;
}

void ResolveDynamicNtk(const rotary_config& c, FrequencyScheme& s) {
  RequireNtkRotaryDim(c);
  s.factor = RequireFactor(c);
  // HF's reference length is max_position_embeddings (its TODO about the original one still stands).
  s.original_length = RequireLength(c, c.max_position_embeddings, "max_position_embeddings",
                                    c.original_max_position_embeddings, "original_max_position_embeddings");
}

void ResolveYarn(const rotary_config& c, FrequencyScheme& s) {
  s.factor = RequireFactor(c);
  s.original_length = RequireLength(c, c.original_max_position_embeddings, "original_max_position_embeddings",
                                    c.max_position_embeddings, "max_position_embeddings");
  s.beta_fast = OrDefault(c.beta_fast, kYarnBetaFast);
  s.beta_slow = OrDefault(c.beta_slow, kYarnBetaSlow);
  if (!(std::isfinite(s.beta_slow) && s.beta_slow > 0)) {
    Fail(Status::kInvalidArgument, "config.beta_slow must be finite and > 0, got ", s.beta_slow);
  }
  if (!(std::isfinite(s.beta_fast) && s.beta_fast >= s.beta_slow)) {
    Fail(Status::kInvalidArgument, "config.beta_fast must be finite and >= beta_slow = ", s.beta_slow, ", got ",
         s.beta_fast);
  }
  CheckNonNegative(c.mscale, "mscale");
  CheckNonNegative(c.mscale_all_dim, "mscale_all_dim");
  if (c.truncate != 0 && c.truncate != 1) {
    Fail(Status::kInvalidArgument, "config.truncate must be 0 or 1, got ", c.truncate);
  }
  s.truncate = c.truncate == 1;
  // docs/math.md §2.4.3-4: DeepSeek's ratio when both mscales are given, else g(s, 1).
  s.attention_factor = (c.mscale != 0 && c.mscale_all_dim != 0)
                           ? YarnMscale(s.factor, c.mscale) / YarnMscale(s.factor, c.mscale_all_dim)
                           : YarnMscale(s.factor, 1.0);
  if (c.mscale_all_dim != 0) {
    const double g = YarnMscale(s.factor, c.mscale_all_dim);
    s.softmax_scale_factor = g * g;
  }
}

void ResolveLlama3(const rotary_config& c, FrequencyScheme& s) {
  s.factor = OrDefault(c.factor, kLlama3Factor);
  s.original_length = OrDefault(c.original_max_position_embeddings, kLlama3OriginalLength);
  CheckOptionalPositive(c.low_freq_factor, "low_freq_factor");
  CheckOptionalPositive(c.high_freq_factor, "high_freq_factor");
  s.low_freq_factor = OrDefault(c.low_freq_factor, 1.0);
  s.high_freq_factor = OrDefault(c.high_freq_factor, 4.0);
  if (!(s.high_freq_factor > s.low_freq_factor)) {
    Fail(Status::kInvalidArgument, "config.high_freq_factor must be > low_freq_factor = ", s.low_freq_factor, ", got ",
         s.high_freq_factor);
  }
}

void ResolveLongrope(const rotary_config& c, FrequencyScheme& s) {
  s.short_factor = CopyPairArray(c, c.short_factor, "short_factor", false);
  s.long_factor = CopyPairArray(c, c.long_factor, "long_factor", false);
  s.original_length = RequireLength(c, c.original_max_position_embeddings, "original_max_position_embeddings",
                                    c.max_position_embeddings, "max_position_embeddings");
  if (c.attention_factor != 0) return;  // s is only needed for the default m
  s.factor = RequireFactor(c);
  s.attention_factor =
      s.factor > 1
          ? std::sqrt(1 + ReproducibleLog(s.factor) / ReproducibleLog(static_cast<double>(s.original_length)))
          : 1.0;
}

void ResolveBounded(const rotary_config& c, FrequencyScheme& s) {
  if (c.n_max < 1) {
    Fail(Status::kInvalidArgument, "config.n_max must be >= 1 for ROTARY_SCALING_BOUNDED, got ", c.n_max);
  }
  s.n_max = c.n_max;
  // Beyond n_max the scheme's guarantee (every relative angle below pi/2) is lost.
  if (c.n_max < s.position_limit) {
    s.position_limit = c.n_max;
    s.position_limit_name = "n_max";
  }
}

}  // namespace

double YarnMscale(double factor, double mu) { return factor > 1 ? 0.1 * mu * ReproducibleLog(factor) + 1.0 : 1.0; }

FrequencyScheme ResolveScheme(const rotary_config& c) {
  FrequencyScheme s;
  // Copied as raw bits: the switch below rejects a value outside the enum (see lib/config/enum_value.h).
  std::memcpy(&s.scaling, &c.scaling, sizeof(s.scaling));
  s.rotary_dim = c.rotary_dim;
  s.base = c.base;
  s.position_limit = c.position_limit;
  s.vision_2d = c.vision_2d == 1;  // with DEFAULT scaling only (ResolvePositionAxes)

  CheckOptionalPositive(c.factor, "factor");
  CheckOptionalPositive(c.attention_factor, "attention_factor");
  CheckOptionalPositive(c.alpha, "alpha");
  CheckOptionalLength(c.original_max_position_embeddings, "original_max_position_embeddings");
  CheckOptionalLength(c.max_position_embeddings, "max_position_embeddings");

  switch (EnumValue(c.scaling)) {
    case ROTARY_SCALING_DEFAULT: break;
    case ROTARY_SCALING_LINEAR: s.factor = RequireFactor(c); break;
    case ROTARY_SCALING_NTK: ResolveNtk(c, s); break;
    case ROTARY_SCALING_DYNAMIC_NTK: ResolveDynamicNtk(c, s); break;
    case ROTARY_SCALING_YARN: ResolveYarn(c, s); break;
    case ROTARY_SCALING_LLAMA3: ResolveLlama3(c, s); break;
    case ROTARY_SCALING_LONGROPE: ResolveLongrope(c, s); break;
    case ROTARY_SCALING_FREQ_FACTORS: s.freq_factors = CopyPairArray(c, c.freq_factors, "freq_factors", false); break;
    case ROTARY_SCALING_INV_FREQ: s.inv_freq = CopyPairArray(c, c.inv_freq, "inv_freq", true); break;
    case ROTARY_SCALING_BOUNDED: ResolveBounded(c, s); break;
    default:
      Fail(Status::kInvalidArgument, "config.scaling must be a rotary_scaling from ROTARY_SCALING_DEFAULT (0) to ",
           "ROTARY_SCALING_BOUNDED (9), got ", EnumValue(c.scaling));
  }
  // An explicit attention factor overrides the scheme's own, whatever the scheme.
  if (c.attention_factor != 0) s.attention_factor = c.attention_factor;
  return s;
}

}  // namespace rotary
