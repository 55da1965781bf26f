// A config's frequency scheme with every parameter resolved: HF's defaults and
// fallbacks applied, "not given" (0) fields replaced, caller arrays copied.
// Resolving is also where the scaling fields are validated, so everything
// downstream (plans, tables) can compute without checks.
#ifndef ROTARY_LIB_CONFIG_FREQUENCY_SCHEME_H_
#define ROTARY_LIB_CONFIG_FREQUENCY_SCHEME_H_

#include <cstdint>
#include <vector>

#include "rotary/rotary.h"

namespace rotary {

struct FrequencyScheme {
  rotary_scaling scaling = ROTARY_SCALING_DEFAULT;
  int rotary_dim = 0;  // R
  double base = 0;     // b

  double factor = 1.0;                // s (NTK: alpha when given)
  int64_t original_length = 0;        // L0 of DYNAMIC_NTK, YARN, LLAMA3, LONGROPE
  double attention_factor = 1.0;      // m: multiplies cos and sin
  double softmax_scale_factor = 1.0;  // for the caller's attention (YaRN mscale_all_dim)

  // YaRN.
  double beta_fast = 32.0, beta_slow = 1.0;
  bool truncate = true;
  // Llama 3.1.
  double low_freq_factor = 1.0, high_freq_factor = 4.0;
  // Per-pair lists, rotary_dim / 2 values each (empty unless the scheme uses them).
  std::vector<double> short_factor, long_factor;  // LongRoPE divisors
  std::vector<double> freq_factors;               // ggml divisors
  std::vector<double> inv_freq;                   // the caller's frequencies
  // Bounded.
  int64_t n_max = 0;
  // 2D vision RoPE (docs/math.md §7.4): the rotary_dim / 4 frequencies of
  // rotary_dim / 2, once for the row's pairs and again for the column's.
  bool vision_2d = false;

  // Positions must be below this: position_limit, or n_max for BOUNDED.
  int64_t position_limit = 0;
  const char* position_limit_name = "position_limit";
};

// Resolves the scaling fields of a config whose other fields are valid.
// Throws Error(kInvalidArgument) naming the first bad field and its value.
FrequencyScheme ResolveScheme(const rotary_config& config);

// YaRN's magnitude g(s, mu) = 0.1 * mu * ln(s) + 1 for s > 1, else 1 (docs/math.md §2.4.3).
double YarnMscale(double factor, double mu);

}  // namespace rotary

#endif  // ROTARY_LIB_CONFIG_FREQUENCY_SCHEME_H_
