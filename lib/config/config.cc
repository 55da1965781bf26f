#include "lib/config/config.h"

#include <algorithm>
#include <cfloat>
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <utility>

#include "dispatch/cos_sin_double.h"
#include "lib/config/enum_value.h"
#include "lib/config/frequency_scheme.h"
#include "lib/config/sized_struct.h"
#include "lib/error.h"
#include "lib/plan/frequency_plan.h"

namespace rotary {
namespace {

// Fields that pass one by one can still make a plan f32 cannot use: LINEAR
// with factor 1e-310 gives an infinite inv_freq, a tiny NTK alpha a zero base,
// an attention factor of 1e-40 an inverse of 1e40. Checked on the plans of
// the shortest and the longest length (dynamic NTK and LongRoPE choose the
// plan by length; in between the frequencies lie between those).
void CheckPlanRange(const FrequencyScheme& s) {
  const double m = s.attention_factor;
  if (!(m >= FLT_MIN && m <= 1.0 / FLT_MIN)) {
    Fail(Status::kInvalidArgument, "the attention factor (config.attention_factor, or the scheme's own) must be in ",
         "[2^-126, 2^126], so that it and its inverse are normal f32 values, got ", m);
  }
  const double last = static_cast<double>(s.position_limit - 1);
  for (int64_t length : {CanonicalLength(s, 1), CanonicalLength(s, s.position_limit)}) {
    const FrequencyPlan plan = MakeFrequencyPlan(s, length);
    for (size_t i = 0; i < plan.inv_freq.size(); ++i) {
      const double w = plan.inv_freq[i];
      if (!std::isfinite(w) || !std::isfinite(w * last)) {
        Fail(Status::kInvalidArgument, "config.base and the scaling fields give inv_freq[", i, "] = ", w,
             ", and inv_freq times the last position (", s.position_limit_name, " - 1 = ", last,
             ") must be finite");
      }
      // The angles' reduction (dispatch/cos_sin_double.h) is exact up to 2^32
      // turns, which a position below 2^31 reaches at 4 pi rad per position. A
      // larger frequency aliases a smaller one at integer positions: most
      // likely wavelengths were passed as frequencies.
      if (!(w < kMaxInvFreq)) {
        Fail(Status::kInvalidArgument, "config.base and the scaling fields give inv_freq[", i, "] = ", w,
             " rad per position; frequencies must be below 4 pi (real models' are at most 1; were wavelengths ",
             "passed as frequencies?)");
      }
    }
  }
}

// The smallest struct a caller may have: ABI 1's, the first that records its
// size (its last field is vision_2d). Later headers only append.
constexpr size_t kAbi1ConfigSize = offsetof(rotary_config, vision_2d) + sizeof(int32_t);

rotary_config DefaultConfig() {
  rotary_config config{};
  config.struct_size = sizeof(rotary_config);
  config.head_dim = 128;
  config.rotary_dim = 0;  // head_dim
  config.pairing = ROTARY_NEOX;
  config.base = 10000.0;
  config.max_positions = 4096;
  config.position_limit = kDefaultPositionLimit;
  // Frequency scaling: unscaled; every other field 0 ("not given") or HF's default.
  config.scaling = ROTARY_SCALING_DEFAULT;
  config.beta_fast = 32.0;
  config.beta_slow = 1.0;
  config.truncate = 1;
  config.low_freq_factor = 1.0;
  config.high_freq_factor = 4.0;
  config.table_mode = ROTARY_TABLE_AUTO;
  return config;
}

}  // namespace

void InitConfig(rotary_config* config, size_t size) { InitSized(config, size, DefaultConfig()); }

rotary_config ReadConfig(const rotary_config* caller) {
  rotary_config config;
  ReadSized(caller, &config, DefaultConfig, kAbi1ConfigSize, "config", "rotary_config_init");
  if (config.rotary_dim == 0) config.rotary_dim = config.head_dim;
  return config;
}

ResolvedConfig ValidateConfig(const rotary_config* caller) {
  const rotary_config config = ReadConfig(caller);
  const rotary_config* c = &config;
  if (c->head_dim < 2 || c->head_dim > ROTARY_MAX_HEAD_DIM || c->head_dim % 2 != 0) {
    Fail(Status::kInvalidArgument, "config.head_dim must be even and in [2, ", ROTARY_MAX_HEAD_DIM,
         "], got ", c->head_dim);
  }
  if (c->rotary_dim < 2 || c->rotary_dim > c->head_dim || c->rotary_dim % 2 != 0) {
    Fail(Status::kInvalidArgument, "config.rotary_dim must be even and in [2, head_dim = ", c->head_dim,
         "], got ", c->rotary_dim);
  }
  const int32_t pairing = EnumValue(c->pairing);
  if (pairing != ROTARY_NEOX && pairing != ROTARY_INTERLEAVED) {
    Fail(Status::kInvalidArgument, "config.pairing must be ROTARY_NEOX (0) or ROTARY_INTERLEAVED (1), got ",
         pairing);
  }
  if (!std::isfinite(c->base) || !(c->base > 1.0)) {
    Fail(Status::kInvalidArgument, "config.base must be finite and > 1, got ", c->base);
  }
  if (c->position_limit < 1 || c->position_limit > kMaxPositionLimit) {
    Fail(Status::kInvalidArgument, "config.position_limit must be in [1, ", kMaxPositionLimit, "], got ",
         c->position_limit);
  }
  if (c->max_positions < 1 || c->max_positions > c->position_limit) {
    Fail(Status::kInvalidArgument, "config.max_positions must be in [1, position_limit = ", c->position_limit,
         "], got ", c->max_positions);
  }
  const int32_t table_mode = EnumValue(c->table_mode);
  if (table_mode < ROTARY_TABLE_AUTO || table_mode > ROTARY_TABLE_ON_THE_FLY) {
    Fail(Status::kInvalidArgument,
         "config.table_mode must be ROTARY_TABLE_AUTO (0), FULL (1), COMPACT (2) or ON_THE_FLY (3), got ",
         table_mode);
  }
  PositionAxes axes = ResolvePositionAxes(*c);  // before the scheme: it checks vision_2d's scaling
  FrequencyScheme scheme = ResolveScheme(*c);   // checks the frequency scaling fields
  CheckPlanRange(scheme);
  return {config, std::move(scheme), std::move(axes)};
}

}  // namespace rotary
