// rotary-info: what this build of rotary does on this machine. Prints the
// library version, the kernel targets compiled in (best first) and which of
// them this CPU runs, the active target and why (default, ROTARY_TARGET or a
// rotary_set_target call), and the state of a rope object's cos/sin tables
// as it is created, warmed and grown, with the process-wide table cache's
// budget and contents. Uses the public API only.
//
//   rotary-info [--target=NAME] [--head-dim=N] [--rotary-dim=N] [--pairing=neox|interleaved]
//               [--base=B] [--max-positions=N] [--position=P] [--table-mode=M]
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "rotary/rotary.hpp"

namespace {

const char kUsage[] =
    "usage: rotary-info [options]\n"
    "  --target=NAME          force a kernel target first (rotary_set_target), e.g. AVX2, SCALAR, auto\n"
    "  --head-dim=N           head_dim of the table demo (default 128)\n"
    "  --rotary-dim=N         rotary_dim (default head_dim)\n"
    "  --pairing=P            neox (default) or interleaved\n"
    "  --base=B               theta base (default 10000)\n"
    "  --max-positions=N      positions the table covers up front (default 4096)\n"
    "  --position=P           a far position applied last, to show the table grow (default 100000)\n"
    "  --table-mode=M         auto (default), full, compact or on-the-fly\n";

const char* const kModeNames[] = {"auto", "full", "compact", "on-the-fly"};  // by rotary_table_mode

struct Options {
  std::string target;
  bool force_target = false;
  rotary::Config config;
  int64_t position = 100000;
};

// "--name=value" -> value, or nullptr.
const char* Value(const char* arg, const char* name) {
  const size_t n = std::strlen(name);
  return std::strncmp(arg, name, n) == 0 && arg[n] == '=' ? arg + n + 1 : nullptr;
}

// The rotary_table_mode named `name`, or -1.
int ModeIndex(const char* name) {
  const auto found = std::find_if(std::begin(kModeNames), std::end(kModeNames),
                                  [name](const char* m) { return !std::strcmp(name, m); });
  return found == std::end(kModeNames) ? -1 : static_cast<int>(found - std::begin(kModeNames));
}

bool Parse(int argc, char** argv, Options* o) {
  int32_t rotary_dim = 0;
  for (int i = 1; i < argc; ++i) {
    const char* a = argv[i];
    const char* v = nullptr;
    if ((v = Value(a, "--target"))) {
      o->target = v;
      o->force_target = true;
    } else if ((v = Value(a, "--head-dim"))) {
      o->config.head_dim(std::atoi(v));
    } else if ((v = Value(a, "--rotary-dim"))) {
      rotary_dim = std::atoi(v);
    } else if ((v = Value(a, "--pairing")) && (!std::strcmp(v, "neox") || !std::strcmp(v, "interleaved"))) {
      o->config.pairing(v[0] == 'n' ? rotary::Pairing::kNeox : rotary::Pairing::kInterleaved);
    } else if ((v = Value(a, "--base"))) {
      o->config.base(std::atof(v));
    } else if ((v = Value(a, "--table-mode")) && ModeIndex(v) >= 0) {
      o->config.table_mode(static_cast<rotary::TableMode>(ModeIndex(v)));
    } else if ((v = Value(a, "--max-positions"))) {
      o->config.max_positions(std::atoll(v));
    } else if ((v = Value(a, "--position"))) {
      o->position = std::atoll(v);
    } else {
      std::fprintf(stderr, "rotary-info: unknown option '%s'\n%s", a, kUsage);
      return false;
    }
  }
  if (rotary_dim != 0) o->config.rotary_dim(rotary_dim);
  return true;
}

std::string CpuModel() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line) && line.compare(0, 10, "model name") != 0) {
  }
  const size_t colon = line.find(':');
  return colon == std::string::npos ? "unknown" : line.substr(colon + 2);
}

std::string Why(const std::string& source) {
  if (source == "default") return "default: the best target this CPU supports";
  if (source == "ROTARY_TARGET") {
    const char* env = std::getenv("ROTARY_TARGET");
    return std::string("forced by the environment, ROTARY_TARGET=") + (env ? env : "");
  }
  return "forced by rotary_set_target()";
}

void PrintTable(const char* when, const rotary::Rope& rope) {
  std::printf("  %-34s %d table%s, %lld bytes\n", when, rope.table_count(), rope.table_count() == 1 ? "" : "s",
              static_cast<long long>(rope.table_bytes()));
}

void PrintCache() {
  const char* env = std::getenv("ROTARY_CACHE_BUDGET");
  std::printf("\nprocess table cache: budget %lld bytes (%s), %d table%s, %lld bytes\n",
              static_cast<long long>(rotary::cache_budget()),
              env ? (std::string("ROTARY_CACHE_BUDGET=") + env).c_str() : "default", rotary::cache_tables(),
              rotary::cache_tables() == 1 ? "" : "s", static_cast<long long>(rotary::cache_bytes()));
}

// Creates a rope from the options and reports its table cache after create,
// after a first apply (which warms max_positions rows) and after an apply at a
// far position (which builds only the rows around it).
int ReportTableCache(const Options& o) {
  const rotary_config& c = o.config.c;
  std::printf("\ntable cache of one rope object (head_dim %d, rotary_dim %d, %s, base %g, max_positions %lld):\n",
              c.head_dim, c.rotary_dim == 0 ? c.head_dim : c.rotary_dim, c.pairing == ROTARY_NEOX ? "neox" : "interleaved", c.base,
              static_cast<long long>(c.max_positions));
  try {
    rotary::Rope rope(o.config);
    std::printf("  table mode: %s (asked: %s)\n", kModeNames[static_cast<int>(rope.table_mode())],
                kModeNames[static_cast<int>(c.table_mode)]);
    PrintTable("after rotary_create:", rope);
    std::vector<float> row(static_cast<size_t>(c.head_dim), 1.0f);
    const rotary::Tensor x(row.data(), 1, 1, 1, c.head_dim);
    rope.apply(x, 0);
    PrintTable("after an apply at position 0:", rope);
    rope.apply(x, o.position);
    const std::string far = "after an apply at position " + std::to_string(o.position) + ":";
    PrintTable(far.c_str(), rope);
    PrintCache();
  } catch (const rotary::Error& e) {
    std::printf("  unavailable: %s\n", e.what());
    return 1;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--help") || !std::strcmp(argv[i], "-h")) {
      std::printf("%s", kUsage);
      return 0;
    }
  }
  Options o;
  if (!Parse(argc, argv, &o)) return 2;

  std::printf("rotary %s\n", rotary::version().c_str());
  std::printf("cpu: %s\n", CpuModel().c_str());
  if (o.force_target) {
    try {
      rotary::set_target(o.target);
    } catch (const rotary::Error& e) {
      std::printf("--target=%s: %s\n", o.target.c_str(), e.what());
      return 1;
    }
  }

  const std::string active = rotary::active_target();
  std::printf("\ncompiled targets, best first:\n");
  for (const rotary::TargetInfo& t : rotary::compiled_targets()) {
    std::printf("  %-8s %s%s\n", t.name.c_str(), t.supported ? "supported by this CPU" : "not supported by this CPU",
                t.name == active ? " (active)" : "");
  }
  std::printf("\nactive target: %s (%s)\n", active.c_str(), Why(rotary::target_source()).c_str());

  if (active == "NONE") {
    try {
      rotary::Rope probe;  // reports why ROTARY_TARGET cannot be used
    } catch (const rotary::Error& e) {
      std::printf("  %s\n", e.what());
    }
    return 1;
  }
  return ReportTableCache(o);
}
