// Results of rotary-bench and the ways they are printed: the protocol lines of
// docs/performance.md (Method), CSV, JSON, a readable summary, and a gnuplot bar chart.
#ifndef ROTARY_BENCH_REPORT_H_
#define ROTARY_BENCH_REPORT_H_

#include <string>
#include <utility>
#include <vector>

namespace rotary_bench {

struct Result {
  // rotary, naive, stream, rotary_qk, rotary_q_then_k, rotary_to, rotary_paged_<cache format> and its
  // yardsticks rotary_qk_then_write_<format> and copy_paged_<format>, table_build, first_call, ...
  std::string impl;
  std::string target, mode, dtype, shape;
  int threads = 1;
  double ns_per_call = 0, gbps = 0, of_stream = 0;
  std::vector<std::pair<std::string, double>> extra;  // more key=value fields of the line

  double Extra(const std::string& key, double missing = 0) const {
    for (const auto& [k, v] : extra) {
      if (k == key) return v;
    }
    return missing;
  }
};

std::string ProtocolLine(const Result& r);
void PrintCsv(const std::vector<Result>& results);
void PrintJson(const std::vector<Result>& results);
void PrintSummary(const std::vector<Result>& results, const std::string& cpu);

// Writes a PNG bar chart with gnuplot; returns false (with a reason on stderr)
// if gnuplot is missing or fails. The benchmark itself never depends on it.
bool PlotPng(const std::vector<Result>& results, const std::string& path);

}  // namespace rotary_bench

#endif  // ROTARY_BENCH_REPORT_H_
