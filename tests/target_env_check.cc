// Run by ctest with ROTARY_TARGET set in the environment. Usage:
//   target_env_check NAME   the active target must be NAME ("BEST": the best
//                           compiled target this CPU supports)
//   target_env_check NONE   ROTARY_TARGET is unusable: rotary_create must fail
//                           with ROTARY_UNSUPPORTED and a message naming it
#include <cstdio>
#include <cstring>
#include <string>

#include "rotary/rotary.h"

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  std::string expected = argv[1];
  if (expected == "BEST") {
    for (int32_t i = rotary_target_count() - 1; i >= 0; --i) {
      if (rotary_target_supported(i)) expected = rotary_target_name(i);
    }
  }

  rotary_config config;
  rotary_config_init(&config);
  rotary_rope* rope = nullptr;
  const rotary_status status = rotary_create(&config, &rope);
  const std::string active = rotary_active_target();
  std::printf("active target %s, create status %d, message '%s'\n", active.c_str(), status, rotary_last_error());

  bool ok = active == expected;
  // Why: "auto" is the default; a named target, usable or not, is the environment's.
  const std::string source = rotary_target_source();
  std::printf("target source %s\n", source.c_str());
  ok = ok && source == (std::string(argv[1]) == "BEST" ? "default" : "ROTARY_TARGET");
  if (expected == "NONE") {
    ok = ok && status == ROTARY_UNSUPPORTED && std::strstr(rotary_last_error(), "ROTARY_TARGET") != nullptr;
    // A call that forces a valid target repairs it.
    ok = ok && rotary_set_target("auto") == ROTARY_OK && std::string(rotary_active_target()) != "NONE";
    ok = ok && std::string(rotary_target_source()) == "default";
  } else {
    ok = ok && status == ROTARY_OK;
  }
  rotary_destroy(rope);
  std::printf("%s\n", ok ? "PASS" : "FAIL");
  return ok ? 0 : 1;
}
