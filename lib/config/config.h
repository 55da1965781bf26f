// Defaults and validation of rotary_config.
#ifndef ROTARY_LIB_CONFIG_CONFIG_H_
#define ROTARY_LIB_CONFIG_CONFIG_H_

#include <cstddef>

#include "lib/config/frequency_scheme.h"
#include "lib/config/position_axes.h"
#include "rotary/rotary.h"

namespace rotary {

constexpr int64_t kDefaultPositionLimit = int64_t{1} << 24;
// Upper bound of position_limit: keeps the table's chunk directory small.
constexpr int64_t kMaxPositionLimit = int64_t{1} << 31;

// Sets the first `size` bytes of *config: each field that fits its default,
// and struct_size (rotary_config_init_sized).
void InitConfig(rotary_config* config, size_t size);

// A caller's config as this library's struct: the fields it has, the
// defaults of those its header lacks, rotary_dim 0 resolved to head_dim.
// Throws Error if config is NULL, its struct_size was not set by
// rotary_config_init, or a newer header's fields hold values this library
// does not know.
rotary_config ReadConfig(const rotary_config* config);

// A validated config resolved once: what a rope object keeps and plans from.
struct ResolvedConfig {
  rotary_config config;  // ReadConfig's: this library's struct, rotary_dim resolved
  FrequencyScheme scheme;
  PositionAxes axes;
};

// Reads (ReadConfig) and validates a caller's config. Throws Error naming the
// first bad field and its value.
ResolvedConfig ValidateConfig(const rotary_config* config);

}  // namespace rotary

#endif  // ROTARY_LIB_CONFIG_CONFIG_H_
