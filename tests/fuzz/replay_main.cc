// Runs fuzz_apply's checks without libFuzzer: over the seed corpus (files or
// folders given as arguments) and over --random=N deterministic random inputs,
// so every ordinary build tests what the fuzzer found.
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

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);
extern int64_t g_fuzz_created, g_fuzz_rejected_calls, g_fuzz_checked_calls;

namespace {

int RunFile(const std::filesystem::path& path) {
  std::ifstream file(path, std::ios::binary);
  const std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  LLVMFuzzerTestOneInput(bytes.data(), bytes.size());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  int inputs = 0;
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--random=", 9) == 0) {
      std::mt19937 rng(20261123);
      const int count = std::atoi(argv[i] + 9);
      const char* dump = std::getenv("FUZZ_DUMP_INPUT");  // a file to hold the input being run
      for (int n = 0; n < count; ++n, ++inputs) {
        std::vector<uint8_t> bytes(rng() % 300);
        for (uint8_t& b : bytes) b = static_cast<uint8_t>(rng());
        if (dump) std::ofstream(dump, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), bytes.size());
        LLVMFuzzerTestOneInput(bytes.data(), bytes.size());
      }
    } else if (std::filesystem::is_directory(argv[i])) {
      for (const auto& entry : std::filesystem::directory_iterator(argv[i])) inputs += RunFile(entry.path());
    } else {
      inputs += RunFile(argv[i]);
    }
  }
  std::printf("fuzz_apply: %d inputs passed: %lld created a rope, %lld calls rejected, %lld calls checked\n", inputs,
              static_cast<long long>(g_fuzz_created), static_cast<long long>(g_fuzz_rejected_calls),
              static_cast<long long>(g_fuzz_checked_calls));
  // The inputs must reach the checks, or this test checks nothing.
  if (g_fuzz_checked_calls == 0) return 1;
  return 0;
}
