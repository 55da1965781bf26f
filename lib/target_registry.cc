#include "lib/target_registry.h"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cstdlib>

#include "hwy/targets.h"
#include "lib/error.h"

#if HWY_ARCH_X86 && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#endif

namespace rotary {
namespace {

std::string Upper(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::toupper(c); });
  return s;
}

std::string ListNames(bool only_supported) {
  std::string out;
  for (size_t i = 0; i < kNumCompiledTargets; ++i) {
    if (only_supported && !CpuSupports(kCompiledTargets[i])) continue;
    if (!out.empty()) out += ", ";
    out += kCompiledTargets[i].name;
  }
  return out;
}

const CompiledTarget* BestSupported() {
  for (size_t i = 0; i < kNumCompiledTargets; ++i) {
    if (CpuSupports(kCompiledTargets[i])) return &kCompiledTargets[i];
  }
  // Unreachable in practice: the scalar/emu128 baseline runs everywhere.
  Fail(Status::kUnsupported, "no compiled kernel target is supported by this CPU (compiled: ",
       ListNames(false), ")");
}

bool IsAuto(const std::string& requested) {
  const std::string name = Upper(requested);
  return name.empty() || name == "AUTO";
}

// Resolves a user-given name; never falls back silently.
const CompiledTarget* Resolve(const std::string& requested, const char* source) {
  if (IsAuto(requested)) return BestSupported();
  const std::string name = Upper(requested);
  const std::string canonical = (name == "AVX512") ? "AVX3" : name;
  for (size_t i = 0; i < kNumCompiledTargets; ++i) {
    const CompiledTarget& t = kCompiledTargets[i];
    if (canonical != t.name) continue;
    if (!CpuSupports(t)) {
      Fail(Status::kUnsupported, source, " '", requested, "' is compiled in but this CPU cannot run it; ",
           "supported here: ", ListNames(true));
    }
    return &t;
  }
  Fail(Status::kUnsupported, source, " '", requested, "' is not a target of this build; compiled: ",
       ListNames(false), " (or 'auto')");
}

constexpr const char* kSourceDefault = "default";
constexpr const char* kSourceEnv = "ROTARY_TARGET";
constexpr const char* kSourceCall = "rotary_set_target";

class Registry {
 public:
  static Registry& Get() {
    static Registry registry;
    return registry;
  }

  const CompiledTarget* active() const { return active_.load(std::memory_order_acquire); }
  const char* source() const { return source_.load(std::memory_order_acquire); }
  const std::string& env_error() const { return env_error_; }
  void set_active(const CompiledTarget* t, const char* source) {
    source_.store(source, std::memory_order_release);
    active_.store(t, std::memory_order_release);
  }

 private:
  Registry() {
    const char* env = std::getenv("ROTARY_TARGET");
    if (env != nullptr && !IsAuto(env)) source_.store(kSourceEnv);
    try {
      active_.store(Resolve(env ? env : "", "ROTARY_TARGET"));
    } catch (const Error& e) {
      env_error_ = e.what();  // written once, before any reader can see a null target
    }
  }

  std::atomic<const CompiledTarget*> active_{nullptr};
  std::atomic<const char*> source_{kSourceDefault};
  std::string env_error_;
};

// The ExtraCpuFeature bits of this CPU, read once.
uint32_t ExtraCpuFeatures() {
  static const uint32_t features = [] {
    uint32_t bits = 0;
#if HWY_ARCH_X86 && (defined(__GNUC__) || defined(__clang__))
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    // CPUID leaf 7, subleaf 1 (if leaf 7 has it): EAX bit 5 is AVX512_BF16.
    // (The OS saving the AVX-512 registers is checked by Highway for the AVX3
    // targets it needs.)
    const bool has_subleaf_1 = __get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx) && eax >= 1;
    if (has_subleaf_1 && __get_cpuid_count(7, 1, &eax, &ebx, &ecx, &edx) && (eax & (1u << 5)) != 0) {
      bits |= kAvx512Bf16;
    }
#endif
    return bits;
  }();
  return features;
}

}  // namespace

bool CpuSupports(const CompiledTarget& target) {
  return (hwy::SupportedTargets() & target.hwy_target) != 0 &&
         (target.extra_features & ~ExtraCpuFeatures()) == 0;
}

const KernelTable& ActiveKernels() {
  const CompiledTarget* t = Registry::Get().active();
  if (t == nullptr) Fail(Status::kUnsupported, Registry::Get().env_error());
  return t->kernels;
}

const char* ActiveTargetName() {
  const CompiledTarget* t = Registry::Get().active();
  return t ? t->name : "NONE";
}

const char* ActiveTargetSource() { return Registry::Get().source(); }

void ForceTarget(const std::string& name) {
  Registry::Get().set_active(Resolve(name, "target"), IsAuto(name) ? kSourceDefault : kSourceCall);
}

}  // namespace rotary
