// rotary-bench: how fast rotary is on this CPU, as ratios to the memory limit
// measured in the same run (BENCHMARKS.md). Prints one protocol line per case
// and a summary table; --csv / --json for machines.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <tbb/task_arena.h>

#include "bench/yardsticks.h"
#include "rotary/rotary.hpp"

namespace {

struct Shape {
  const char* name;
  int64_t batch, seq, heads, dim;
  int64_t offset;  // positions are offset + s
};

const Shape kShapes[] = {
    {"decode1", 1, 1, 32, 128, 1000},
    {"decode16", 16, 1, 32, 128, 1000},
    {"prefill512", 1, 512, 32, 128, 0},
    {"prefill4k", 1, 4096, 32, 128, 0},
};

struct Options {
  std::vector<std::string> shapes = {"decode1", "decode16", "prefill512", "prefill4k"};
  std::vector<std::string> modes = {"neox", "interleaved"};
  std::vector<std::string> dtypes = {"f32"};
  std::vector<std::string> targets;  // empty: the active one; "all": every supported
  std::vector<int> threads;          // empty: 1 and all cores
  int repetitions = 7;
  double min_seconds = 0.02;  // per repetition of one measurement
  bool naive = true;
  enum { kLines, kCsv, kJson } format = kLines;
};

std::vector<std::string> SplitList(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream in(s);
  for (std::string item; std::getline(in, item, ',');) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

void Usage() {
  std::printf(
      "usage: rotary-bench [options]\n"
      "  --shapes=LIST      decode1,decode16,prefill512,prefill4k (default: all)\n"
      "  --modes=LIST       neox,interleaved (default: both)\n"
      "  --dtypes=LIST      f32 (default: f32)\n"
      "  --targets=LIST     target names, or 'all' supported ones (default: the active target)\n"
      "  --threads=LIST     thread counts (default: 1 and all cores)\n"
      "  --repetitions=N    timed repetitions per case, median reported (default 7)\n"
      "  --min-time=SEC     minimum time of one repetition (default 0.02)\n"
      "  --no-naive         skip the naive-loop yardstick\n"
      "  --csv | --json     machine-readable output instead of protocol lines\n");
}

bool ParseArgs(int argc, char** argv, Options* o) {
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&](const char* flag) -> const char* {
      const size_t n = std::strlen(flag);
      return arg.compare(0, n, flag) == 0 && arg.size() > n && arg[n] == '=' ? arg.c_str() + n + 1 : nullptr;
    };
    if (arg == "--help" || arg == "-h") {
      Usage();
      std::exit(0);
    } else if (const char* v = value("--shapes")) {
      o->shapes = SplitList(v);
    } else if (const char* v = value("--modes")) {
      o->modes = SplitList(v);
    } else if (const char* v = value("--dtypes")) {
      o->dtypes = SplitList(v);
    } else if (const char* v = value("--targets")) {
      o->targets = SplitList(v);
    } else if (const char* v = value("--threads")) {
      o->threads.clear();
      for (const std::string& t : SplitList(v)) o->threads.push_back(std::atoi(t.c_str()));
    } else if (const char* v = value("--repetitions")) {
      o->repetitions = std::max(1, std::atoi(v));
    } else if (const char* v = value("--min-time")) {
      o->min_seconds = std::max(1e-4, std::atof(v));
    } else if (arg == "--no-naive") {
      o->naive = false;
    } else if (arg == "--csv") {
      o->format = Options::kCsv;
    } else if (arg == "--json") {
      o->format = Options::kJson;
    } else {
      std::fprintf(stderr, "rotary-bench: unknown argument '%s'\n", arg.c_str());
      Usage();
      return false;
    }
  }
  return true;
}

using Clock = std::chrono::steady_clock;

// Median over `repetitions` of the mean ns per call, each repetition running
// enough calls to last min_seconds. The functions of one case are measured in
// alternation so that drift in the machine hits all of them alike.
std::vector<double> MedianNsPerCall(const std::vector<std::function<void()>>& fns, const Options& o) {
  std::vector<int64_t> calls(fns.size(), 1);
  for (size_t f = 0; f < fns.size(); ++f) {  // calibrate (and warm up)
    for (;;) {
      const auto start = Clock::now();
      for (int64_t c = 0; c < calls[f]; ++c) fns[f]();
      const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
      if (seconds >= o.min_seconds / 4 || calls[f] >= (int64_t{1} << 30)) {
        calls[f] = std::max<int64_t>(1, static_cast<int64_t>(calls[f] * o.min_seconds / std::max(seconds, 1e-9)));
        break;
      }
      calls[f] *= 4;
    }
  }
  std::vector<std::vector<double>> samples(fns.size());
  for (int r = 0; r < o.repetitions; ++r) {
    for (size_t f = 0; f < fns.size(); ++f) {
      const auto start = Clock::now();
      for (int64_t c = 0; c < calls[f]; ++c) fns[f]();
      const double ns = std::chrono::duration<double, std::nano>(Clock::now() - start).count();
      samples[f].push_back(ns / calls[f]);
    }
  }
  std::vector<double> medians;
  for (std::vector<double>& s : samples) {
    std::sort(s.begin(), s.end());
    medians.push_back(s[s.size() / 2]);
  }
  return medians;
}

struct Result {
  std::string impl, target, mode, dtype, shape;
  int threads;
  double ns_per_call, gbps, of_stream;
};

void PrintLine(const Result& r) {
  std::printf("impl=%s target=%s mode=%s dtype=%s shape=%s threads=%d ns_per_call=%.1f GBps=%.2f of_stream=%.3f\n",
              r.impl.c_str(), r.target.c_str(), r.mode.c_str(), r.dtype.c_str(), r.shape.c_str(), r.threads,
              r.ns_per_call, r.gbps, r.of_stream);
}

void PrintCsv(const std::vector<Result>& results) {
  std::printf("impl,target,mode,dtype,shape,threads,ns_per_call,GBps,of_stream\n");
  for (const Result& r : results) {
    std::printf("%s,%s,%s,%s,%s,%d,%.1f,%.3f,%.4f\n", r.impl.c_str(), r.target.c_str(), r.mode.c_str(),
                r.dtype.c_str(), r.shape.c_str(), r.threads, r.ns_per_call, r.gbps, r.of_stream);
  }
}

void PrintJson(const std::vector<Result>& results) {
  std::printf("[\n");
  for (size_t i = 0; i < results.size(); ++i) {
    const Result& r = results[i];
    std::printf(
        "  {\"impl\": \"%s\", \"target\": \"%s\", \"mode\": \"%s\", \"dtype\": \"%s\", \"shape\": \"%s\", "
        "\"threads\": %d, \"ns_per_call\": %.1f, \"GBps\": %.3f, \"of_stream\": %.4f}%s\n",
        r.impl.c_str(), r.target.c_str(), r.mode.c_str(), r.dtype.c_str(), r.shape.c_str(), r.threads,
        r.ns_per_call, r.gbps, r.of_stream, i + 1 < results.size() ? "," : "");
  }
  std::printf("]\n");
}

void PrintSummary(const std::vector<Result>& results) {
  std::printf("\nSummary (GB/s = tensor bytes read + written per second; of_stream = stream time / rotary time)\n");
  std::printf("%-8s %-12s %-5s %-11s %7s %9s %9s %9s %10s %9s\n", "target", "mode", "dtype", "shape", "threads",
              "rotary", "stream", "of_stream", "naive", "x naive");
  std::map<std::string, const Result*> naive;
  for (const Result& r : results) {
    if (r.impl == "naive") naive[r.mode + r.dtype + r.shape + std::to_string(r.threads)] = &r;
  }
  for (const Result& r : results) {
    if (r.impl != "rotary") continue;
    const Result* n = nullptr;
    auto it = naive.find(r.mode + r.dtype + r.shape + std::to_string(r.threads));
    if (it != naive.end()) n = it->second;
    const double stream_gbps = r.gbps / r.of_stream;
    char naive_cols[64] = "         -         -";
    if (n) std::snprintf(naive_cols, sizeof(naive_cols), "%10.2f %8.1fx", n->gbps, r.gbps / n->gbps);
    std::printf("%-8s %-12s %-5s %-11s %7d %9.2f %9.2f %9.3f %s\n", r.target.c_str(), r.mode.c_str(),
                r.dtype.c_str(), r.shape.c_str(), r.threads, r.gbps, stream_gbps, r.of_stream, naive_cols);
  }
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  if (!ParseArgs(argc, argv, &o)) return 2;
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  if (o.threads.empty()) o.threads = cores > 1 ? std::vector<int>{1, cores} : std::vector<int>{1};
  if (o.targets.empty()) o.targets = {rotary::active_target()};
  if (o.targets.size() == 1 && o.targets[0] == "all") o.targets = rotary::supported_targets();

  std::vector<Result> results;
  try {
    for (const std::string& target : o.targets) {
      rotary::set_target(target);
      for (const std::string& shape_name : o.shapes) {
        const Shape* shape = nullptr;
        for (const Shape& s : kShapes) {
          if (shape_name == s.name) shape = &s;
        }
        if (!shape) throw std::runtime_error("unknown shape '" + shape_name + "'");
        const int64_t rows = shape->batch * shape->seq;
        const int64_t elements = rows * shape->heads * shape->dim;
        for (const std::string& dtype : o.dtypes) {
          if (dtype != "f32") throw std::runtime_error("unknown dtype '" + dtype + "'");
          const double bytes = 2.0 * elements * sizeof(float);
          for (const std::string& mode : o.modes) {
            if (mode != "neox" && mode != "interleaved") throw std::runtime_error("unknown mode '" + mode + "'");
            const bool interleaved = mode == "interleaved";
            rotary::Rope rope(rotary::Config().head_dim(static_cast<int32_t>(shape->dim)).pairing(
                interleaved ? rotary::Pairing::kInterleaved : rotary::Pairing::kNeox));
            rotary_bench::NaiveRope naive(static_cast<int>(shape->dim), shape->offset + shape->seq, 10000.0);
            std::vector<float> x(elements), y(elements), z(elements);
            for (int64_t i = 0; i < elements; ++i) x[i] = y[i] = z[i] = std::sin(0.001f * i);
            const rotary::Tensor view(x.data(), shape->batch, shape->seq, shape->heads, shape->dim);
            rope.apply(view, shape->offset);  // steady state: tables built before timing

            for (int threads : o.threads) {
              tbb::task_arena arena(threads);
              std::vector<std::function<void()>> fns = {
                  [&] { arena.execute([&] { rotary_bench::StreamInPlace(y.data(), rows, elements / rows, 0.999f, 0.001f); }); },
                  [&] { arena.execute([&] { rope.apply(view, shape->offset); }); },
              };
              // The naive loop is what a user writes: one thread, whatever the thread count.
              if (o.naive && threads == 1) {
                fns.push_back([&] { naive.Apply(z.data(), rows, shape->seq, shape->heads, shape->offset, interleaved); });
              }
              const std::vector<double> ns = MedianNsPerCall(fns, o);
              const std::string active = rotary::active_target();
              for (size_t f = 1; f < fns.size(); ++f) {
                Result r{f == 1 ? "rotary" : "naive", active, mode, dtype, shape->name, threads, ns[f],
                         bytes / ns[f], ns[0] / ns[f]};
                results.push_back(r);
                if (o.format == Options::kLines) PrintLine(r);
              }
              if (o.format == Options::kLines) {
                PrintLine(Result{"stream", active, mode, dtype, shape->name, threads, ns[0], bytes / ns[0], 1.0});
              }
              std::fflush(stdout);
            }
          }
        }
      }
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "rotary-bench: %s\n", e.what());
    return 1;
  }

  if (o.format == Options::kCsv) PrintCsv(results);
  if (o.format == Options::kJson) PrintJson(results);
  if (o.format == Options::kLines) PrintSummary(results);
  return 0;
}
