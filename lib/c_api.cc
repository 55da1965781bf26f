// The C ABI: every entry point turns exceptions into a status and this
// thread's last-error text, so nothing ever unwinds into C callers.
#include <new>

#include "dispatch/compiled_targets.h"
#include "dispatch/target_registry.h"
#include "lib/config.h"
#include "lib/error.h"
#include "lib/rope.h"
#include "rotary/rotary.h"

namespace {

template <typename Body>
rotary_status Guard(Body&& body) {
  try {
    body();
    return ROTARY_OK;
  } catch (const rotary::Error& e) {
    rotary::SetLastError(e.what());
    return static_cast<rotary_status>(e.status());
  } catch (const std::bad_alloc&) {
    rotary::SetLastError("out of memory");
    return ROTARY_OUT_OF_MEMORY;
  } catch (const std::exception& e) {
    rotary::SetLastError(std::string("internal error: ") + e.what());
    return ROTARY_INVALID_ARGUMENT;
  } catch (...) {
    rotary::SetLastError("internal error: unknown exception");
    return ROTARY_INVALID_ARGUMENT;
  }
}

rotary_status ApplyDirection(const rotary_rope* rope, const rotary_tensor* x, const int64_t* positions,
                             int64_t offset, rotary::DirectionIndex direction) {
  return Guard([&] {
    if (rope == nullptr) rotary::Fail(rotary::Status::kInvalidArgument, "rope is NULL");
    rope->Apply(x, positions, offset, direction);
  });
}

}  // namespace

extern "C" {

void rotary_config_init(rotary_config* config) { rotary::InitConfig(config); }

rotary_status rotary_create(const rotary_config* config, rotary_rope** out) {
  return Guard([&] {
    if (out == nullptr) rotary::Fail(rotary::Status::kInvalidArgument, "out is NULL");
    *out = nullptr;
    rotary::ValidateConfig(config);
    rotary::ActiveKernels();  // a bad ROTARY_TARGET is reported here, not on first apply
    *out = new rotary_rope(*config);
  });
}

void rotary_destroy(rotary_rope* rope) { delete rope; }

rotary_status rotary_apply(const rotary_rope* rope, const rotary_tensor* x, const int64_t* positions,
                           int64_t offset) {
  return ApplyDirection(rope, x, positions, offset, rotary::kForward);
}

rotary_status rotary_apply_inverse(const rotary_rope* rope, const rotary_tensor* x, const int64_t* positions,
                                   int64_t offset) {
  return ApplyDirection(rope, x, positions, offset, rotary::kInverse);
}

const char* rotary_last_error(void) { return rotary::LastError(); }

const char* rotary_active_target(void) { return rotary::ActiveTargetName(); }

int32_t rotary_target_count(void) { return static_cast<int32_t>(rotary::kNumCompiledTargets); }

const char* rotary_target_name(int32_t index) {
  if (index < 0 || index >= rotary_target_count()) return nullptr;
  return rotary::kCompiledTargets[index].name;
}

int rotary_target_supported(int32_t index) {
  if (index < 0 || index >= rotary_target_count()) return 0;
  return rotary::CpuSupports(rotary::kCompiledTargets[index]) ? 1 : 0;
}

rotary_status rotary_set_target(const char* name) {
  return Guard([&] { rotary::ForceTarget(name ? name : ""); });
}

int64_t rotary_table_bytes(const rotary_rope* rope) { return rope ? rope->table_bytes() : 0; }

}  // extern "C"
