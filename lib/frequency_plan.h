// A frequency plan: what every RoPE scheme reduces to (ROPE_MATH.md §0):
// angle(p, i) = p * inv_freq[i], table entries scale * cos/sin(angle).
// Computed in double; kernels and tables never know which scheme made it.
#ifndef ROTARY_LIB_FREQUENCY_PLAN_H_
#define ROTARY_LIB_FREQUENCY_PLAN_H_

#include <vector>

#include "rotary/rotary.h"

namespace rotary {

struct FrequencyPlan {
  std::vector<double> inv_freq;  // one per rotated pair, rotary_dim / 2 of them
  double scale = 1.0;            // attention factor multiplying cos and sin
};

// The plan of a validated config: inv_freq[i] = base^(-2i / rotary_dim).
FrequencyPlan MakeFrequencyPlan(const rotary_config& config);

}  // namespace rotary

#endif  // ROTARY_LIB_FREQUENCY_PLAN_H_
