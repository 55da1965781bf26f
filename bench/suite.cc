// The Google Benchmark suite: every shape of docs/performance.md (Method) x pairing x dtype x
// threads x every target this CPU supports, with bytes-processed counters; the
// table build for 4096 and 131072 positions; and the first call (build + apply).
// For the ratios to the memory limit, see rotary-bench.
#include <cmath>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <benchmark/benchmark.h>
#include <tbb/task_arena.h>

#include "rotary/rotary.hpp"

namespace {

struct Shape {
  const char* name;
  int64_t batch, seq, heads, dim, offset;
};
const Shape kShapes[] = {{"decode1", 1, 1, 32, 128, 1000},
                         {"decode16", 16, 1, 32, 128, 1000},
                         {"prefill512", 1, 512, 32, 128, 0},
                         {"prefill4k", 1, 4096, 32, 128, 0}};

struct Case {
  std::string target;
  Shape shape;
  rotary::Pairing pairing;
  rotary::Dtype dtype;
  int threads;
};

int64_t ElementBytes(rotary::Dtype d) { return d == rotary::Dtype::kF32 ? 4 : 2; }

void ApplyInPlace(benchmark::State& state, Case c) {
  rotary::set_target(c.target);
  const Shape& s = c.shape;
  const int64_t elements = s.batch * s.seq * s.heads * s.dim;
  std::vector<float> storage((elements * ElementBytes(c.dtype) + 3) / 4);
  for (size_t i = 0; i < storage.size(); ++i) storage[i] = c.dtype == rotary::Dtype::kF32 ? std::sin(0.001f * i) : 0.25f;
  rotary::Rope rope(rotary::Config().head_dim(static_cast<int32_t>(s.dim)).pairing(c.pairing));
  const rotary::Tensor view(storage.data(), c.dtype, s.batch, s.seq, s.heads, s.dim);
  tbb::task_arena arena(c.threads);
  arena.execute([&] { rope.apply(view, s.offset); });  // steady state
  for (auto _ : state) arena.execute([&] { rope.apply(view, s.offset); });
  state.SetBytesProcessed(state.iterations() * 2 * elements * ElementBytes(c.dtype));
  rotary::set_target("auto");
}

void TableBuild(benchmark::State& state) {
  const int64_t positions = state.range(0);
  float x[128] = {};
  for (auto _ : state) {
    rotary::Rope rope(rotary::Config().head_dim(128).max_positions(positions));
    rope.apply(rotary::Tensor(x, 1, 1, 1, 128), 0);  // builds the first max_positions rows
    benchmark::DoNotOptimize(rope.table_bytes());
  }
  state.SetItemsProcessed(state.iterations() * positions);
}

void FirstCall(benchmark::State& state) {
  const Shape& s = kShapes[3];
  std::vector<float> x(s.batch * s.seq * s.heads * s.dim, 0.5f);
  for (auto _ : state) {
    rotary::Rope rope(rotary::Config().head_dim(128));
    rope.apply(rotary::Tensor(x.data(), s.batch, s.seq, s.heads, s.dim), 0);
  }
  state.SetBytesProcessed(state.iterations() * 2 * static_cast<int64_t>(x.size()) * 4);
}

void RegisterAll() {
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  std::vector<int> thread_counts = {1};
  if (cores > 1) thread_counts.push_back(cores);
  for (const std::string& target : rotary::supported_targets()) {
    for (const Shape& shape : kShapes) {
      for (rotary::Pairing pairing : {rotary::Pairing::kNeox, rotary::Pairing::kInterleaved}) {
        for (rotary::Dtype dtype : {rotary::Dtype::kF32, rotary::Dtype::kF16, rotary::Dtype::kBF16}) {
          for (int threads : thread_counts) {
            const std::string name = "apply/" + target + "/" + shape.name + "/" +
                                     (pairing == rotary::Pairing::kNeox ? "neox" : "interleaved") + "/" +
                                     (dtype == rotary::Dtype::kF32 ? "f32" : dtype == rotary::Dtype::kF16 ? "f16" : "bf16") +
                                     "/threads:" + std::to_string(threads);
            benchmark::RegisterBenchmark(name.c_str(), ApplyInPlace, Case{target, shape, pairing, dtype, threads})
                ->UseRealTime();
          }
        }
      }
    }
  }
  benchmark::RegisterBenchmark("table_build/positions", TableBuild)->Arg(4096)->Arg(131072)->UseRealTime()
      ->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark("first_call/prefill4k", FirstCall)->UseRealTime()->Unit(benchmark::kMillisecond);
}

}  // namespace

int main(int argc, char** argv) {
  RegisterAll();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
