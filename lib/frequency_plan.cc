#include "lib/frequency_plan.h"

#include <cmath>

namespace rotary {

FrequencyPlan MakeFrequencyPlan(const rotary_config& config) {
  FrequencyPlan plan;
  const int pairs = config.rotary_dim / 2;
  plan.inv_freq.resize(pairs);
  // Each pair from its own pow(): a running product would accumulate i ulps.
  for (int i = 0; i < pairs; ++i) {
    plan.inv_freq[i] = std::pow(config.base, -2.0 * i / config.rotary_dim);
  }
  return plan;
}

}  // namespace rotary
