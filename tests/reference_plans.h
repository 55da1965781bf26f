// The float64 oracle of the frequency schemes: each plan written straight from
// its published formula (docs/math.md §2-3, HF modeling_rope_utils.py, Meta's
// apply_scaling, He & Xu), in the sources' own variable names, sharing no code
// with the library.
#ifndef ROTARY_TESTS_REFERENCE_PLANS_H_
#define ROTARY_TESTS_REFERENCE_PLANS_H_

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <utility>
#include <vector>

#include "tests/reference.h"

namespace rotary_test {

struct RefPlan {
  std::vector<double> inv_freq;
  double attention_factor = 1.0;
};

inline const double kRefPi = std::acos(-1.0);

// HF: the exponents arange(0, dim, 2) / dim.
inline std::vector<double> RefExponents(int dim) {
  std::vector<double> e;
  for (int k = 0; k < dim; k += 2) e.push_back(static_cast<double>(k) / dim);
  return e;
}

// 1 / base^(2i/dim) for a given base.
inline std::vector<double> RefInvFreqOfBase(int dim, double base) {
  std::vector<double> out;
  for (double e : RefExponents(dim)) out.push_back(1.0 / std::pow(base, e));
  return out;
}

// §2.1: inv_freq /= factor.
inline RefPlan RefLinear(int dim, double base, double factor) {
  RefPlan p{RefInvFreqOfBase(dim, base)};
  for (double& f : p.inv_freq) f = f / factor;
  return p;
}

// §2.2: base * factor ** (dim / (dim - 2)).
inline double RefNtkBase(int dim, double base, double factor) { return base * std::pow(factor, dim / (dim - 2.0)); }

// §2.3, HF _compute_dynamic_ntk_parameters with seq_len clamped below at max_position_embeddings.
inline double RefDynamicBase(int dim, double base, double factor, int64_t seq_len, int64_t max_position_embeddings) {
  const double L = static_cast<double>(std::max(seq_len, max_position_embeddings));
  return base * std::pow(factor * L / max_position_embeddings - (factor - 1), dim / (dim - 2.0));
}

// §2.4.3: get_mscale(scale, mscale).
inline double RefGetMscale(double scale, double mscale = 1.0) {
  if (scale <= 1) return 1.0;
  return 0.1 * mscale * std::log(scale) + 1.0;
}

struct RefYarnArgs {
  int dim;
  double base;
  double factor;
  int64_t original_max_position_embeddings;
  double beta_fast = 32;
  double beta_slow = 1;
  bool truncate = true;
  double mscale = 0;
  double mscale_all_dim = 0;
};

// HF find_correction_dim.
inline double RefFindCorrectionDim(double num_rotations, int dim, double base, int64_t max_position_embeddings) {
  return (dim * std::log(max_position_embeddings / (num_rotations * 2 * kRefPi))) / (2 * std::log(base));
}

// HF find_correction_range: (low, high).
inline std::pair<double, double> RefFindCorrectionRange(const RefYarnArgs& a) {
  double low = RefFindCorrectionDim(a.beta_fast, a.dim, a.base, a.original_max_position_embeddings);
  double high = RefFindCorrectionDim(a.beta_slow, a.dim, a.base, a.original_max_position_embeddings);
  if (a.truncate) {
    low = std::floor(low);
    high = std::ceil(high);
  }
  return {std::max(low, 0.0), std::min(high, a.dim - 1.0)};
}

// §2.4, HF _compute_yarn_parameters.
inline RefPlan RefYarn(const RefYarnArgs& a) {
  auto [low, high] = RefFindCorrectionRange(a);
  if (low == high) high += 0.001;  // linear_ramp_factor's singularity guard
  RefPlan p;
  const std::vector<double> e = RefExponents(a.dim);
  for (size_t i = 0; i < e.size(); ++i) {
    const double pos_freqs = std::pow(a.base, e[i]);
    const double inv_freq_extrapolation = 1.0 / pos_freqs;
    const double inv_freq_interpolation = 1.0 / (a.factor * pos_freqs);
    const double ramp = std::min(1.0, std::max(0.0, (static_cast<double>(i) - low) / (high - low)));
    const double inv_freq_extrapolation_factor = 1 - ramp;
    p.inv_freq.push_back(inv_freq_interpolation * (1 - inv_freq_extrapolation_factor) +
                         inv_freq_extrapolation * inv_freq_extrapolation_factor);
  }
  p.attention_factor = (a.mscale != 0 && a.mscale_all_dim != 0)
                           ? RefGetMscale(a.factor, a.mscale) / RefGetMscale(a.factor, a.mscale_all_dim)
                           : RefGetMscale(a.factor);
  return p;
}

// §2.5, Meta's apply_scaling (llama-models reference_impl).
inline RefPlan RefLlama3(int dim, double base, double scale_factor = 8, double low_freq_factor = 1,
                         double high_freq_factor = 4, int64_t old_context_len = 8192) {
  const double low_freq_wavelen = old_context_len / low_freq_factor;
  const double high_freq_wavelen = old_context_len / high_freq_factor;
  RefPlan p;
  for (double freq : RefInvFreqOfBase(dim, base)) {
    const double wavelen = 2 * kRefPi / freq;
    if (wavelen < high_freq_wavelen) {
      p.inv_freq.push_back(freq);
    } else if (wavelen > low_freq_wavelen) {
      p.inv_freq.push_back(freq / scale_factor);
    } else {
      const double smooth = (old_context_len / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor);
      p.inv_freq.push_back((1 - smooth) * freq / scale_factor + smooth * freq);
    }
  }
  return p;
}

// §2.6, HF _compute_longrope_parameters at the current length seq_len.
inline RefPlan RefLongrope(int dim, double base, const std::vector<double>& short_factor,
                           const std::vector<double>& long_factor, int64_t original_max_position_embeddings,
                           double factor, int64_t seq_len) {
  const std::vector<double>& ext_factors = seq_len > original_max_position_embeddings ? long_factor : short_factor;
  RefPlan p;
  const std::vector<double> e = RefExponents(dim);
  for (size_t i = 0; i < e.size(); ++i) p.inv_freq.push_back(1.0 / (ext_factors[i] * std::pow(base, e[i])));
  p.attention_factor =
      factor <= 1 ? 1.0
                  : std::sqrt(1 + std::log(factor) / std::log(static_cast<double>(original_max_position_embeddings)));
  return p;
}

// §2.7, ggml: theta = p * theta_base / freq_factor.
inline RefPlan RefFreqFactors(int dim, double base, const std::vector<double>& freq_factors) {
  RefPlan p{ReferenceInvFreq(dim, base)};
  for (size_t i = 0; i < p.inv_freq.size(); ++i) p.inv_freq[i] /= freq_factors[i];
  return p;
}

// §3, He & Xu: theta_t = pi / (2 n_max) * base^(-t/d), t = 0, 2, ..., d - 2.
inline RefPlan RefBounded(int d, double base, int64_t n_max) {
  RefPlan p;
  for (int t = 0; t < d; t += 2)
    p.inv_freq.push_back(kRefPi / (2.0 * n_max) * std::pow(base, -static_cast<double>(t) / d));
  return p;
}

}  // namespace rotary_test

#endif  // ROTARY_TESTS_REFERENCE_PLANS_H_
