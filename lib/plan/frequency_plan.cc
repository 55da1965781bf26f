#include "lib/plan/frequency_plan.h"

#include <algorithm>
#include <cmath>

#include "lib/config/reproducible_math.h"

namespace rotary {
namespace {

constexpr double kPi = 3.14159265358979323846;

// w_i = base^(-2i / R). Each pair from its own pow(): a running product would
// accumulate i ulps (docs/math.md §4).
std::vector<double> BaseInvFreq(double base, int rotary_dim) {
  std::vector<double> w(rotary_dim / 2);
  for (size_t i = 0; i < w.size(); ++i) w[i] = ReproduciblePow(base, -2.0 * static_cast<double>(i) / rotary_dim);
  return w;
}

std::vector<double> DividedBy(std::vector<double> w, const std::vector<double>& divisors) {
  for (size_t i = 0; i < w.size(); ++i) w[i] /= divisors[i];
  return w;
}

// NTK-aware base: the slowest pair is interpolated by exactly `stretch` (docs/math.md §2.2).
double NtkBase(double base, double stretch, int rotary_dim) {
  return base * ReproduciblePow(stretch, static_cast<double>(rotary_dim) / (rotary_dim - 2));
}

// docs/math.md §2.3: b'(L) = b * (s L / L0 - (s - 1))^(R / (R - 2)), with L clamped below at L0.
std::vector<double> DynamicNtkInvFreq(const FrequencyScheme& s, int64_t seq_len) {
  const double length = static_cast<double>(std::max(seq_len, s.original_length));
  const double stretch = s.factor * length / static_cast<double>(s.original_length) - (s.factor - 1);
  return BaseInvFreq(NtkBase(s.base, stretch, s.rotary_dim), s.rotary_dim);
}

// docs/math.md §2.4 as HF's _compute_yarn_parameters: a ramp over the pair
// index between the pairs that turn beta_fast and beta_slow times over L0.
std::vector<double> YarnInvFreq(const FrequencyScheme& s) {
  const double R = s.rotary_dim;
  auto pair_with_turns = [&](double turns) {
    return R * ReproducibleLog(static_cast<double>(s.original_length) / (turns * 2 * kPi)) /
           (2 * ReproducibleLog(s.base));
  };
  double low = pair_with_turns(s.beta_fast);
  double high = pair_with_turns(s.beta_slow);
  if (s.truncate) {
    low = std::floor(low);
    high = std::ceil(high);
  }
  low = std::max(low, 0.0);
  high = std::min(high, R - 1);  // R - 1, not M - 1: as HF and ggml (harmless, the ramp saturates)
  if (low == high) high += 0.001;

  std::vector<double> w = BaseInvFreq(s.base, s.rotary_dim);
  for (size_t i = 0; i < w.size(); ++i) {
    const double ramp = std::clamp((static_cast<double>(i) - low) / (high - low), 0.0, 1.0);
    const double extrapolation = 1 - ramp;  // 1: keep w_i; 0: interpolate to w_i / s
    w[i] = extrapolation * w[i] + (1 - extrapolation) * w[i] / s.factor;
  }
  return w;
}

// docs/math.md §2.5 (Llama 3.1 apply_scaling): by wavelength, keep the short
// ones, divide the long ones by s and blend in between.
std::vector<double> Llama3InvFreq(const FrequencyScheme& s) {
  const double original = static_cast<double>(s.original_length);
  const double high_freq_wavelen = original / s.high_freq_factor;
  const double low_freq_wavelen = original / s.low_freq_factor;
  std::vector<double> w = BaseInvFreq(s.base, s.rotary_dim);
  for (double& wi : w) {
    const double wavelen = 2 * kPi / wi;
    if (wavelen < high_freq_wavelen) continue;
    if (wavelen > low_freq_wavelen) {
      wi /= s.factor;
    } else {
      const double smooth = (original / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
      wi = (1 - smooth) * wi / s.factor + smooth * wi;
    }
  }
  return w;
}

std::vector<double> InvFreq(const FrequencyScheme& s, int64_t seq_len) {
  switch (s.scaling) {
    case ROTARY_SCALING_DEFAULT: break;
    case ROTARY_SCALING_LINEAR: {
      std::vector<double> w = BaseInvFreq(s.base, s.rotary_dim);
      for (double& wi : w) wi /= s.factor;
      return w;
    }
    case ROTARY_SCALING_NTK: return BaseInvFreq(NtkBase(s.base, s.factor, s.rotary_dim), s.rotary_dim);
    case ROTARY_SCALING_DYNAMIC_NTK: return DynamicNtkInvFreq(s, seq_len);
    case ROTARY_SCALING_YARN: return YarnInvFreq(s);
    case ROTARY_SCALING_LLAMA3: return Llama3InvFreq(s);
    case ROTARY_SCALING_LONGROPE:
      // The list is chosen per call, from its length (HF dynamic_rope_update, Phi-3).
      return DividedBy(BaseInvFreq(s.base, s.rotary_dim), seq_len > s.original_length ? s.long_factor : s.short_factor);
    case ROTARY_SCALING_FREQ_FACTORS: return DividedBy(BaseInvFreq(s.base, s.rotary_dim), s.freq_factors);
    case ROTARY_SCALING_INV_FREQ: return s.inv_freq;
    case ROTARY_SCALING_BOUNDED: {
      // docs/math.md §3: every relative angle within n_max stays below pi / 2.
      std::vector<double> w = BaseInvFreq(s.base, s.rotary_dim);
      for (double& wi : w) wi *= kPi / (2.0 * static_cast<double>(s.n_max));
      return w;
    }
  }
  return BaseInvFreq(s.base, s.rotary_dim);
}

}  // namespace

FrequencyPlan MakeFrequencyPlan(const FrequencyScheme& scheme, int64_t seq_len) {
  FrequencyPlan plan;
  if (scheme.vision_2d) {
    // docs/math.md §7.4: pair j of each half at b^(-2j / (R/2)); the table row
    // of p holds both halves, and each pair takes it from its axis's row.
    const std::vector<double> half = BaseInvFreq(scheme.base, scheme.rotary_dim / 2);
    plan.inv_freq = half;
    plan.inv_freq.insert(plan.inv_freq.end(), half.begin(), half.end());
  } else {
    plan.inv_freq = InvFreq(scheme, seq_len);
  }
  plan.scale = scheme.attention_factor;
  return plan;
}

FrequencyPlan MakeFrequencyPlan(const rotary_config& config) {
  const FrequencyScheme scheme = ResolveScheme(config);
  return MakeFrequencyPlan(scheme, CanonicalLength(scheme, 1));
}

int64_t CanonicalLength(const FrequencyScheme& scheme, int64_t seq_len) {
  switch (scheme.scaling) {
    case ROTARY_SCALING_DYNAMIC_NTK: return std::max(seq_len, scheme.original_length);
    case ROTARY_SCALING_LONGROPE:
      return seq_len > scheme.original_length ? scheme.original_length + 1 : scheme.original_length;
    default: return 1;
  }
}

}  // namespace rotary
