// Run by ctest with ROTARY_CACHE_BUDGET set in the environment (read once per
// process). Usage: cache_env_check BYTES -- the budget must be BYTES, and a
// rope object must still work (an invalid value is ignored, never fatal).
#include <cstdio>
#include <cstdlib>

#include "rotary/rotary.h"

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  const long long expected = std::strtoll(argv[1], nullptr, 10);
  const long long budget = static_cast<long long>(rotary_cache_budget());
  rotary_config config;
  rotary_config_init(&config);
  rotary_rope* rope = nullptr;
  const rotary_status status = rotary_create(&config, &rope);
  std::printf("cache budget %lld (expected %lld), create status %d, table mode %d\n", budget, expected, status,
              static_cast<int>(rotary_table_mode_of(rope)));
  rotary_destroy(rope);
  return budget == expected && status == ROTARY_OK ? 0 : 1;
}
