// A frequency plan: what every RoPE scheme reduces to (docs/math.md §0):
// angle(p, i) = p * inv_freq[i], table entries scale * cos/sin(angle).
// Computed in double; kernels and tables never know which scheme made it.
//
// The position transform of every supported scheme is the identity (linear
// interpolation's p / s is folded into inv_freq: (p / s) * w = p * (w / s)), so
// a plan carries none. What depends on positions is which plan a call uses
// (its length, for dynamic NTK and LongRoPE: CanonicalLength) and which
// positions are valid (the bounded scheme's n_max: FrequencyScheme::position_limit).
#ifndef ROTARY_LIB_PLAN_FREQUENCY_PLAN_H_
#define ROTARY_LIB_PLAN_FREQUENCY_PLAN_H_

#include <cstdint>
#include <vector>

#include "lib/config/frequency_scheme.h"
#include "rotary/rotary.h"

namespace rotary {

struct FrequencyPlan {
  std::vector<double> inv_freq;  // one per rotated pair, rotary_dim / 2 of them
  double scale = 1.0;            // attention factor multiplying cos and sin
};

// The plan of a call whose largest position is seq_len - 1 (seq_len >= 1).
FrequencyPlan MakeFrequencyPlan(const FrequencyScheme& scheme, int64_t seq_len);

// The plan of a validated config at its shortest lengths.
FrequencyPlan MakeFrequencyPlan(const rotary_config& config);

// Lengths that share a plan map to one value, which gives that plan too:
// tables are cached by it. Constant for schemes that do not depend on length.
int64_t CanonicalLength(const FrequencyScheme& scheme, int64_t seq_len);

}  // namespace rotary

#endif  // ROTARY_LIB_PLAN_FREQUENCY_PLAN_H_
