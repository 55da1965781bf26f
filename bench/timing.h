// Timing of benchmark cases: medians of alternating repetitions.
#ifndef ROTARY_BENCH_TIMING_H_
#define ROTARY_BENCH_TIMING_H_

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <vector>

namespace rotary_bench {

struct TimingOptions {
  int repetitions = 5;
  double min_seconds = 0.02;  // of one repetition of one function
};

// Median over repetitions of the mean ns per call of each function. Each
// repetition runs enough calls to last min_seconds; the functions of one case
// run in alternation so that drift in the machine hits all of them alike, each
// repetition starting with the next function, so that none always runs right
// after the same other one (what one leaves in the caches slows or speeds the next).
inline std::vector<double> MedianNsPerCall(const std::vector<std::function<void()>>& fns, const TimingOptions& o) {
  using Clock = std::chrono::steady_clock;
  std::vector<int64_t> calls(fns.size(), 1);
  for (size_t f = 0; f < fns.size(); ++f) {  // calibrate, warming up on the way
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
    for (size_t i = 0; i < fns.size(); ++i) {
      const size_t f = (i + static_cast<size_t>(r)) % fns.size();
      const auto start = Clock::now();
      for (int64_t c = 0; c < calls[f]; ++c) fns[f]();
      samples[f].push_back(std::chrono::duration<double, std::nano>(Clock::now() - start).count() / calls[f]);
    }
  }
  std::vector<double> medians;
  for (std::vector<double>& s : samples) {
    std::sort(s.begin(), s.end());
    medians.push_back(s[s.size() / 2]);
  }
  return medians;
}

// Time of one call of fn, after setup() before each (for first-call costs).
inline double MedianNsOfFreshCall(const std::function<void()>& setup, const std::function<void()>& fn,
                                  int repetitions) {
  using Clock = std::chrono::steady_clock;
  std::vector<double> samples;
  for (int r = 0; r < repetitions; ++r) {
    setup();
    const auto start = Clock::now();
    fn();
    samples.push_back(std::chrono::duration<double, std::nano>(Clock::now() - start).count());
  }
  std::sort(samples.begin(), samples.end());
  return samples[samples.size() / 2];
}

}  // namespace rotary_bench

#endif  // ROTARY_BENCH_TIMING_H_
