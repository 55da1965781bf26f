// Defaults and validation of rotary_config.
#ifndef ROTARY_LIB_CONFIG_CONFIG_H_
#define ROTARY_LIB_CONFIG_CONFIG_H_

#include "lib/config/frequency_scheme.h"
#include "lib/config/position_axes.h"
#include "rotary/rotary.h"

namespace rotary {

constexpr int64_t kDefaultPositionLimit = int64_t{1} << 24;
// Upper bound of position_limit: keeps the table's chunk directory small.
constexpr int64_t kMaxPositionLimit = int64_t{1} << 31;

void InitConfig(rotary_config* config);

// A validated config resolved once: what a rope object keeps (with the
// config) and plans from.
struct ResolvedConfig {
  FrequencyScheme scheme;
  PositionAxes axes;
};

// Throws Error naming the first bad field and its value.
ResolvedConfig ValidateConfig(const rotary_config* config);

}  // namespace rotary

#endif  // ROTARY_LIB_CONFIG_CONFIG_H_
