// Runs fuzz_apply's checks without libFuzzer: over the seed corpus (files or
// folders given as arguments) and over --random=N deterministic random inputs,
// so every ordinary build tests what the fuzzer found. Every target this CPU
// supports runs the whole corpus; the random inputs take turns over them.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "rotary/rotary.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);
extern int64_t g_fuzz_created, g_fuzz_rejected_calls, g_fuzz_checked_calls, g_fuzz_checked_norm_calls,
    g_fuzz_checked_cache_calls;

namespace {

std::vector<uint8_t> ReadFile(const std::filesystem::path& path) {
  std::ifstream file(path, std::ios::binary);
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
}

// The names of the targets this CPU runs, in the registry's order.
std::vector<std::string> SupportedTargets() {
  std::vector<std::string> names;
  for (int32_t i = 0; i < rotary_target_count(); ++i) {
    if (rotary_target_supported(i)) names.push_back(rotary_target_name(i));
  }
  return names;
}

void Force(const std::string& target) {
  if (rotary_set_target(target.c_str()) != ROTARY_OK) {
    std::fprintf(stderr, "fuzz_apply: cannot force target %s: %s\n", target.c_str(), rotary_last_error());
    std::exit(1);
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::vector<uint8_t>> corpus;
  int random_inputs = 0;
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--random=", 9) == 0) {
      random_inputs = std::atoi(argv[i] + 9);
    } else if (std::filesystem::is_directory(argv[i])) {
      for (const auto& entry : std::filesystem::directory_iterator(argv[i])) corpus.push_back(ReadFile(entry.path()));
    } else {
      corpus.push_back(ReadFile(argv[i]));
    }
  }
  const std::vector<std::string> targets = SupportedTargets();
  int inputs = 0;
  for (const std::string& target : targets) {
    Force(target);
    for (const std::vector<uint8_t>& bytes : corpus) {
      LLVMFuzzerTestOneInput(bytes.data(), bytes.size());
      ++inputs;
    }
  }
  std::mt19937 rng(20261123);
  const char* dump = std::getenv("FUZZ_DUMP_INPUT");  // a file to hold the input being run, and its target
  for (int n = 0; n < random_inputs; ++n, ++inputs) {
    const std::string& target = targets[static_cast<size_t>(n) % targets.size()];
    Force(target);
    std::vector<uint8_t> bytes(rng() % 300);
    for (uint8_t& b : bytes) b = static_cast<uint8_t>(rng());
    if (dump) {
      std::ofstream(dump, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), bytes.size());
      std::ofstream(std::string(dump) + ".target") << target << "\n";
    }
    LLVMFuzzerTestOneInput(bytes.data(), bytes.size());
  }
  rotary_set_target(nullptr);
  std::string names;
  for (const std::string& target : targets) names += " " + target;
  std::printf("fuzz_apply: %d inputs passed on targets%s: %lld created a rope, %lld calls rejected, %lld calls checked "
              "(%lld with qk-norm, %lld KV-cache writes)\n",
              inputs, names.c_str(), static_cast<long long>(g_fuzz_created),
              static_cast<long long>(g_fuzz_rejected_calls), static_cast<long long>(g_fuzz_checked_calls),
              static_cast<long long>(g_fuzz_checked_norm_calls), static_cast<long long>(g_fuzz_checked_cache_calls));
  // The inputs must reach the checks, or this test checks nothing.
  if (g_fuzz_checked_calls == 0) return 1;
  return 0;
}
