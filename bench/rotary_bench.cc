// rotary-bench: how fast rotary is on this CPU, as ratios to yardsticks
// measured in the same run (docs/performance.md (Method)). Prints one protocol line per case
// and a readable summary; --csv / --json for machines, --plot for a chart.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <memory>
#include <numeric>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <tbb/task_arena.h>

#include "bench/report.h"
#include "bench/timing.h"
#include "bench/yardsticks.h"
#include "lib/call/last_level_cache.h"
#include "rotary/rotary.hpp"

namespace {

using rotary_bench::Result;

struct Shape {
  const char* name;
  int64_t batch, seq, heads, dim;
  int64_t offset;  // positions are offset + s
};

// docs/performance.md (Method); "tiny" is for smoke tests only.
const Shape kShapes[] = {
    {"decode1", 1, 1, 32, 128, 1000},   {"decode16", 16, 1, 32, 128, 1000}, {"prefill512", 1, 512, 32, 128, 0},
    {"prefill4k", 1, 4096, 32, 128, 0}, {"tiny", 1, 3, 4, 128, 5},
};

struct Options {
  std::vector<std::string> shapes = {"decode1", "decode16", "prefill512", "prefill4k"};
  std::vector<std::string> modes = {"neox", "interleaved"};
  std::vector<std::string> dtypes = {"f32", "f16", "bf16"};
  std::vector<std::string> targets;  // empty: the active one; "all": every supported one
  std::vector<int> threads;          // empty: 1 and all cores
  // k's (and v's) heads in the q+k, qk-norm and paged cases: 8 against 32 q
  // heads (grouped-query attention, as Llama 3 8B), or 32 (multi-head, as Llama 2 7B).
  int64_t kv_heads = 8;
  bool naive = true, qk = true, qk_norm = true, kv_write = true, table = true, table_modes = true,
       multi_axis = true, borrowed = true, paged = true;
  rotary_bench::TimingOptions timing;
  enum { kLines, kCsv, kJson } format = kLines;
  std::string plot_path;
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
      "  --shapes=LIST      decode1,decode16,prefill512,prefill4k (default: all), or tiny (smoke test)\n"
      "  --modes=LIST       neox,interleaved (default: both)\n"
      "  --dtypes=LIST      f32,f16,bf16 (default: all)\n"
      "  --targets=LIST     target names, or 'all' supported ones (default: the active target)\n"
      "  --threads=LIST     thread counts (default: 1 and all cores)\n"
      "  --repetitions=N    timed repetitions per case, median reported (default 5)\n"
      "  --min-time=SEC     minimum time of one repetition (default 0.02)\n"
      "  --kv-heads=N       k and v heads of the q+k, qk-norm and paged cases, 1 to 64 (default 8, against\n"
      "                     32 q heads; 32 is multi-head attention)\n"
      "  --no-naive --no-qk --no-qk-norm --no-kv-write --no-paged --no-table --no-table-modes --no-multi-axis\n"
      "  --no-borrowed      skip those sections (borrowed: ropes over a caller's cos/sin cache, vLLM's and\n"
      "                     ONNX's layouts, vs rotary's own full table; f32 and bf16 tensors of --dtypes;\n"
      "                     paged: q rotated in place with k rotated and v converted into a paged KV cache\n"
      "                     (vLLM layout, block_size 16, shuffled blocks) in one call, per cache format\n"
      "                     f16, bf16, fp8_e4m3, fp8_e5m2, q8_0, vs apply_qk then a separate write pass\n"
      "                     (vs_two_pass) and vs a copy of the same bytes (of_copy); f32 and bf16 sources)\n"
      "  --csv | --json     machine-readable output instead of protocol lines and summary\n"
      "  --plot=FILE.png    bar chart of GB/s per shape and target with the stream limit (needs gnuplot)\n");
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
      for (const std::string& t : SplitList(v)) o->threads.push_back(std::max(1, std::atoi(t.c_str())));
    } else if (const char* v = value("--repetitions")) {
      o->timing.repetitions = std::max(1, std::atoi(v));
    } else if (const char* v = value("--min-time")) {
      o->timing.min_seconds = std::max(1e-5, std::atof(v));
    } else if (const char* v = value("--kv-heads")) {
      o->kv_heads = std::atoi(v);
      if (o->kv_heads < 1 || o->kv_heads > 64) {
        std::fprintf(stderr, "rotary-bench: --kv-heads=%s: give 1 to 64\n", v);
        return false;
      }
    } else if (const char* v = value("--plot")) {
      o->plot_path = v;
    } else if (arg == "--no-naive") {
      o->naive = false;
    } else if (arg == "--no-qk") {
      o->qk = false;
    } else if (arg == "--no-qk-norm") {
      o->qk_norm = false;
    } else if (arg == "--no-kv-write") {
      o->kv_write = false;
    } else if (arg == "--no-paged") {
      o->paged = false;
    } else if (arg == "--no-table") {
      o->table = false;
    } else if (arg == "--no-table-modes") {
      o->table_modes = false;
    } else if (arg == "--no-multi-axis") {
      o->multi_axis = false;
    } else if (arg == "--no-borrowed") {
      o->borrowed = false;
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

const Shape& FindShape(const std::string& name) {
  for (const Shape& s : kShapes) {
    if (name == s.name) return s;
  }
  throw std::runtime_error("unknown shape '" + name + "'");
}

rotary::Dtype ParseDtype(const std::string& name) {
  if (name == "f32") return rotary::Dtype::kF32;
  if (name == "f16") return rotary::Dtype::kF16;
  if (name == "bf16") return rotary::Dtype::kBF16;
  throw std::runtime_error("unknown dtype '" + name + "'");
}

rotary::Pairing ParseMode(const std::string& name) {
  if (name == "neox") return rotary::Pairing::kNeox;
  if (name == "interleaved") return rotary::Pairing::kInterleaved;
  throw std::runtime_error("unknown mode '" + name + "'");
}

int64_t ElementBytes(rotary::Dtype d) { return d == rotary::Dtype::kF32 ? 4 : 2; }

// qk-norm weights for the timed cases: magnitude 1, a sign flipped every
// `period` components. Every timed call normalizes, in place, what the call
// before it wrote, thousands of times: weights of other magnitudes compound
// as a power iteration does and drive the components they shrink into
// denormals, which a model's fresh q and k never are and which slow the
// arithmetic (f32 too) and bf16's rounding (the AVX3_ZEN4 store checks zeros
// for them). The arithmetic is the same whatever the weights' values.
std::vector<float> TimingNormWeights(int64_t dim, int64_t period) {
  std::vector<float> w(static_cast<size_t>(dim));
  for (int64_t d = 0; d < dim; ++d) w[static_cast<size_t>(d)] = d % period == 0 ? -1.0f : 1.0f;
  return w;
}

// dst (f16 or bf16, `elements` of them, an even count) = values, rounded
// through rotary itself: an out-of-place apply at position 0 is a converting copy.
void ConvertThroughRotary(const float* values, void* dst, rotary::Dtype dtype, int64_t elements) {
  const rotary::Rope rope(rotary::Config().head_dim(2));
  const rotary::Tensor src(const_cast<float*>(values), 1, 1, elements / 2, 2);  // read only
  rope.apply_to(src, rotary::Tensor(dst, dtype, 1, 1, elements / 2, 2), 0);
}

// A buffer of `elements` values of a storage type, filled with small values,
// aligned to 64 bytes as inference engines align their tensors (a std::vector
// of floats is 16-byte aligned: every 64-byte vector access would then span
// two cache lines, which costs rotary and the yardsticks alike but not evenly).
struct Buffer {
  static constexpr size_t kAlignment = 64;

  Buffer(int64_t elements, rotary::Dtype dtype)
      : dtype(dtype),
        memory(static_cast<char*>(std::aligned_alloc(
                   kAlignment, (static_cast<size_t>(elements * ElementBytes(dtype)) + kAlignment - 1) / kAlignment *
                                   kAlignment)),
               &std::free) {
    if (!memory) throw std::bad_alloc();
    std::vector<float> values(elements);
    for (int64_t i = 0; i < elements; ++i) values[i] = std::sin(0.001f * static_cast<float>(i));
    if (dtype == rotary::Dtype::kF32) {
      std::copy(values.begin(), values.end(), reinterpret_cast<float*>(data()));
    } else {
      ConvertThroughRotary(values.data(), data(), dtype, elements);
    }
  }
  void* data() { return memory.get(); }

  rotary::Dtype dtype;
  std::unique_ptr<char, decltype(&std::free)> memory;
};

std::string CpuName() {
  std::ifstream cpuinfo("/proc/cpuinfo");
  for (std::string line; std::getline(cpuinfo, line);) {
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  }
  return "unknown CPU";
}

class Bench {
 public:
  explicit Bench(const Options& o) : o_(o) {}

  void Run() {
    for (const std::string& target : o_.targets) {
      rotary::set_target(target);
      target_ = rotary::active_target();
      for (const std::string& shape : o_.shapes) {
        for (const std::string& dtype : o_.dtypes) {
          for (const std::string& mode : o_.modes) InPlace(FindShape(shape), dtype, mode);
        }
        if (o_.qk) {
          for (const std::string& dtype : o_.dtypes) QAndK(FindShape(shape), dtype, o_.modes.front());
        }
        if (o_.qk_norm) {
          for (const std::string& dtype : o_.dtypes) QkNorm(FindShape(shape), dtype, o_.modes.front());
        }
        if (o_.kv_write) {
          for (const std::string& dtype : o_.dtypes) {
            if (dtype != "f32") KvWrite(FindShape(shape), dtype, o_.modes.front());
          }
        }
        if (o_.paged) {
          for (const std::string& dtype : o_.dtypes) {
            if (dtype != "f16") Paged(FindShape(shape), dtype, o_.modes.front());  // f32 and bf16 sources
          }
        }
        if (o_.table_modes) TableModes(FindShape(shape), o_.dtypes.front(), o_.modes.front());
        if (o_.multi_axis) MultiAxis(FindShape(shape), o_.dtypes.front(), o_.modes.front());
        if (o_.borrowed) {
          for (const std::string& dtype : o_.dtypes) {
            if (dtype == "f16") continue;  // f32 and bf16 tensors
            for (const std::string& mode : o_.modes) Borrowed(FindShape(shape), dtype, mode);
          }
        }
      }
      if (o_.table) TableBuild();
    }
    rotary::set_target("auto");
  }

  const std::vector<Result>& results() const { return results_; }

 private:
  void Emit(Result r) {
    if (o_.format == Options::kLines) std::printf("%s\n", rotary_bench::ProtocolLine(r).c_str());
    std::fflush(stdout);
    results_.push_back(std::move(r));
  }
  Result Base(const std::string& impl, const std::string& mode, const std::string& dtype, const Shape& s,
              int threads) const {
    Result r;
    r.impl = impl;
    r.target = target_;
    r.mode = mode;
    r.dtype = dtype;
    r.shape = s.name;
    r.threads = threads;
    return r;
  }

  // A case timed at ns per call that moves `bytes`, judged by the stream at stream_ns.
  Result Measured(const std::string& impl, const std::string& mode, const std::string& dtype, const Shape& s,
                  int threads, double ns, double bytes, double stream_ns) const {
    Result r = Base(impl, mode, dtype, s, threads);
    r.ns_per_call = ns;
    r.gbps = bytes / ns;
    r.of_stream = stream_ns / ns;
    return r;
  }

  // The head counts of a case with q and k (its protocol line's q_heads and kv_heads).
  void AddHeadCounts(Result& r, const Shape& s) const {
    r.extra.emplace_back("q_heads", static_cast<double>(s.heads));
    r.extra.emplace_back("kv_heads", static_cast<double>(o_.kv_heads));
  }

  // The stream yardstick over q [rows, heads, dim] and k [rows, kv_heads, dim].
  void StreamQAndK(Buffer& q, Buffer& k, rotary::Dtype dtype, int64_t rows, const Shape& s) {
    rotary_bench::StreamInPlace(q.data(), static_cast<rotary_dtype>(dtype), rows, s.heads * s.dim, 0.999f, 0.001f);
    rotary_bench::StreamInPlace(k.data(), static_cast<rotary_dtype>(dtype), rows, o_.kv_heads * s.dim, 0.999f, 0.001f);
  }

  // In-place apply of [B, S, 32, 128] vs stream over the same bytes (and naive, f32).
  void InPlace(const Shape& s, const std::string& dtype_name, const std::string& mode) {
    const rotary::Dtype dtype = ParseDtype(dtype_name);
    const int64_t rows = s.batch * s.seq, elements = rows * s.heads * s.dim;
    const double bytes = 2.0 * elements * ElementBytes(dtype);
    rotary::Rope rope(rotary::Config().head_dim(static_cast<int32_t>(s.dim)).pairing(ParseMode(mode)));
    // Every yardstick works on x itself: with another buffer of the same size,
    // whichever function ran after the other buffer would find its own data
    // less cached (the last-level cache may hold these sizes), biasing the ratio.
    Buffer x(elements, dtype);
    const rotary::Tensor view(x.data(), dtype, s.batch, s.seq, s.heads, s.dim);
    rope.apply(view, s.offset);  // steady state: the table is built before timing
    rotary_bench::NaiveRope naive(static_cast<int>(s.dim), s.offset + s.seq, 10000.0);
    const bool with_naive = o_.naive && dtype == rotary::Dtype::kF32;

    for (int threads : o_.threads) {
      tbb::task_arena arena(threads);
      std::vector<std::function<void()>> fns = {
          [&] {
            arena.execute([&] {
              rotary_bench::StreamInPlace(x.data(), static_cast<rotary_dtype>(dtype), rows, elements / rows, 0.999f,
                                          0.001f);
            });
          },
          [&] { arena.execute([&] { rope.apply(view, s.offset); }); },
      };
      // The naive loop is what a user writes: one thread, whatever the thread count.
      if (with_naive && threads == 1) {
        fns.push_back([&] {
          naive.Apply(reinterpret_cast<float*>(x.data()), rows, s.seq, s.heads, s.offset, mode == "interleaved");
        });
      }
      const std::vector<double> ns = rotary_bench::MedianNsPerCall(fns, o_.timing);
      Result r = Base("rotary", mode, dtype_name, s, threads);
      r.ns_per_call = ns[1];
      r.gbps = bytes / ns[1];
      r.of_stream = ns[0] / ns[1];
      // The decode1 target of docs/performance.md (Method): ns_per_call <= 1.3 x stream + a fixed cost below 150 ns.
      if (std::string(s.name) == "decode1") r.extra.push_back({"fixed_ns", ns[1] - 1.3 * ns[0]});
      Emit(r);
      if (fns.size() > 2) {
        Result n = Base("naive", mode, dtype_name, s, threads);
        n.ns_per_call = ns[2];
        n.gbps = bytes / ns[2];
        n.of_stream = ns[0] / ns[2];
        Emit(n);
      }
      Result st = Base("stream", mode, dtype_name, s, threads);
      st.ns_per_call = ns[0];
      st.gbps = bytes / ns[0];
      st.of_stream = 1.0;
      Emit(st);
    }
  }

  // q [B, S, 32, 128] and k [B, S, kv_heads, 128] in one call vs two calls.
  void QAndK(const Shape& s, const std::string& dtype_name, const std::string& mode) {
    const rotary::Dtype dtype = ParseDtype(dtype_name);
    const int64_t rows = s.batch * s.seq;
    const int64_t q_elements = rows * s.heads * s.dim, k_elements = rows * o_.kv_heads * s.dim;
    const double bytes = 2.0 * (q_elements + k_elements) * ElementBytes(dtype);
    rotary::Rope rope(rotary::Config().head_dim(static_cast<int32_t>(s.dim)).pairing(ParseMode(mode)));
    Buffer q(q_elements, dtype), k(k_elements, dtype);  // the stream runs over q and k too (see InPlace)
    const rotary::Tensor qv(q.data(), dtype, s.batch, s.seq, s.heads, s.dim);
    const rotary::Tensor kv(k.data(), dtype, s.batch, s.seq, o_.kv_heads, s.dim);
    rope.apply_qk(qv, kv, s.offset);
    for (int threads : o_.threads) {
      tbb::task_arena arena(threads);
      const std::vector<double> ns = rotary_bench::MedianNsPerCall(
          {[&] { arena.execute([&] { StreamQAndK(q, k, dtype, rows, s); }); },
           [&] { arena.execute([&] { rope.apply_qk(qv, kv, s.offset); }); },
           [&] {
             arena.execute([&] {
               rope.apply(qv, s.offset);
               rope.apply(kv, s.offset);
             });
           }},
          o_.timing);
      Result fused = Measured("rotary_qk", mode, dtype_name, s, threads, ns[1], bytes, ns[0]);
      fused.extra = {{"two_calls_ns", ns[2]}, {"vs_two_calls", ns[2] / ns[1]}};
      AddHeadCounts(fused, s);
      Emit(fused);
      Emit(Measured("rotary_q_then_k", mode, dtype_name, s, threads, ns[2], bytes, ns[0]));
    }
  }

  // qk-norm fused (docs/math.md §8): q [B, S, 32, 128] and k [B, S, kv_heads, 128]
  // normalized, rotated and q scaled in one call, in place, vs the stream over
  // the same bytes (it moves no more) and vs the two passes a backend runs
  // without it: a plain RMSNorm pass over q and k, then rotary's apply_qk.
  void QkNorm(const Shape& s, const std::string& dtype_name, const std::string& mode) {
    const rotary::Dtype dtype = ParseDtype(dtype_name);
    const int64_t rows = s.batch * s.seq;
    const int64_t q_elements = rows * s.heads * s.dim, k_elements = rows * o_.kv_heads * s.dim;
    const double bytes = 2.0 * (q_elements + k_elements) * ElementBytes(dtype);
    rotary::Rope rope(rotary::Config().head_dim(static_cast<int32_t>(s.dim)).pairing(ParseMode(mode)));
    Buffer q(q_elements, dtype), k(k_elements, dtype);  // every pass runs over q and k (see InPlace)
    const rotary::Tensor qv(q.data(), dtype, s.batch, s.seq, s.heads, s.dim);
    const rotary::Tensor kv(k.data(), dtype, s.batch, s.seq, o_.kv_heads, s.dim);
    const std::vector<float> wq = TimingNormWeights(s.dim, 7), wk = TimingNormWeights(s.dim, 5);
    const rotary::QkNorm norm(wq, wk, 1e-6);
    // Each call normalizes again, so repeated calls keep q and k at the scale of q_scale.
    const float q_scale = 1.0f / std::sqrt(static_cast<float>(s.dim));
    rope.apply_qk(qv, kv, norm, s.offset, q_scale);
    for (int threads : o_.threads) {
      tbb::task_arena arena(threads);
      const std::vector<double> ns = rotary_bench::MedianNsPerCall(
          {[&] { arena.execute([&] { StreamQAndK(q, k, dtype, rows, s); }); },
           [&] { arena.execute([&] { rope.apply_qk(qv, kv, norm, s.offset, q_scale); }); },
           [&] {
             arena.execute([&] {
               rotary_bench::RmsNormInPlace(q.data(), static_cast<rotary_dtype>(dtype), rows, s.heads, s.dim,
                                            wq.data(), 1e-6f);
               rotary_bench::RmsNormInPlace(k.data(), static_cast<rotary_dtype>(dtype), rows, o_.kv_heads, s.dim,
                                            wk.data(), 1e-6f);
               rope.apply_qk(qv, kv, s.offset, q_scale);
             });
           }},
          o_.timing);
      Result fused = Measured("rotary_qk_norm", mode, dtype_name, s, threads, ns[1], bytes, ns[0]);
      fused.extra = {{"two_pass_ns", ns[2]}, {"vs_two_pass", ns[2] / ns[1]}};
      AddHeadCounts(fused, s);
      Emit(fused);
      Emit(Measured("rmsnorm_then_rotary_qk", mode, dtype_name, s, threads, ns[2], bytes, ns[0]));
    }
  }

  // Out of place f32 -> f16/bf16 (writing k into a KV cache) vs a plain converting copy.
  void KvWrite(const Shape& s, const std::string& dtype_name, const std::string& mode) {
    const rotary::Dtype dtype = ParseDtype(dtype_name);
    const int64_t rows = s.batch * s.seq, elements = rows * s.heads * s.dim;
    const double bytes = static_cast<double>(elements) * (4 + ElementBytes(dtype));
    rotary::Rope rope(rotary::Config().head_dim(static_cast<int32_t>(s.dim)).pairing(ParseMode(mode)));
    Buffer src(elements, rotary::Dtype::kF32), dst(elements, dtype);  // the copy writes dst too (see InPlace)
    const rotary::Tensor sv(src.data(), rotary::Dtype::kF32, s.batch, s.seq, s.heads, s.dim);
    const rotary::Tensor dv(dst.data(), dtype, s.batch, s.seq, s.heads, s.dim);
    rope.apply_to(sv, dv, s.offset);
    for (int threads : o_.threads) {
      tbb::task_arena arena(threads);
      const std::vector<double> ns = rotary_bench::MedianNsPerCall(
          {[&] {
             arena.execute([&] {
               rotary_bench::ConvertingCopy(reinterpret_cast<const float*>(src.data()), dst.data(),
                                            static_cast<rotary_dtype>(dtype), rows, elements / rows);
             });
           },
           [&] { arena.execute([&] { rope.apply_to(sv, dv, s.offset); }); }},
          o_.timing);
      Result r = Base("rotary_to", mode, dtype_name, s, threads);
      r.ns_per_call = ns[1];
      r.gbps = bytes / ns[1];
      r.of_stream = 0;  // the yardstick here is the converting copy
      r.extra = {{"copy_ns", ns[0]}, {"of_copy", ns[0] / ns[1]}};
      Emit(r);
    }
  }

  // vLLM's slots of a shape's tokens: `batch` sequences, token s of each at
  // position offset + s, in blocks of kPagedBlockSize handed out by an
  // allocator whose free list is shuffled (as in a server that has been
  // running: the blocks of a sequence are neither adjacent nor in order),
  // from a pool twice as large as the tokens need.
  struct PagedSlots {
    int64_t num_blocks = 0;
    std::vector<int64_t> slots;
  };
  static PagedSlots ShuffledSlots(const Shape& s) {
    const int64_t first = s.offset / kPagedBlockSize, last = (s.offset + s.seq - 1) / kPagedBlockSize;
    const int64_t per_sequence = last - first + 1;
    PagedSlots p;
    p.num_blocks = 2 * s.batch * per_sequence;
    std::vector<int64_t> pool(p.num_blocks);
    std::iota(pool.begin(), pool.end(), int64_t{0});
    std::mt19937 rng(12345);
    std::shuffle(pool.begin(), pool.end(), rng);
    for (int64_t b = 0; b < s.batch; ++b) {
      for (int64_t i = 0; i < s.seq; ++i) {
        const int64_t position = s.offset + i;
        const int64_t block = pool[b * per_sequence + position / kPagedBlockSize - first];
        p.slots.push_back(block * kPagedBlockSize + position % kPagedBlockSize);
      }
    }
    return p;
  }
  static constexpr int64_t kPagedBlockSize = 16;

  struct PagedFormat {
    const char* name;
    rotary_cache_format format;
    rotary_dtype dtype;  // of a ROTARY_CACHE_TENSOR cache
  };

  // A paged cache in vLLM's layout [num_blocks, kPagedBlockSize, kv_heads, head], zeroed (touched before timing).
  struct PagedCacheBuffer {
    rotary_bench::PagedCache cache;
    rotary_tensor view;
    std::unique_ptr<char, decltype(&std::free)> memory{nullptr, &std::free};
    size_t bytes = 0;

    PagedCacheBuffer(const PagedFormat& f, int64_t num_blocks, int64_t kv_heads, int64_t dim, float scale) {
      const int64_t element = f.dtype == ROTARY_F32 ? 4 : 2;
      const int64_t head = f.format == ROTARY_CACHE_TENSOR ? dim * element
                           : f.format == ROTARY_CACHE_Q8_0 ? dim / 32 * 34
                                                           : dim;
      bytes = static_cast<size_t>(num_blocks * kPagedBlockSize * kv_heads * head);
      memory.reset(static_cast<char*>(std::aligned_alloc(Buffer::kAlignment, (bytes + Buffer::kAlignment - 1) /
                                                                                 Buffer::kAlignment * Buffer::kAlignment)));
      if (!memory) throw std::bad_alloc();
      Clear();
      cache.data = memory.get();
      cache.format = f.format;
      cache.dtype = f.dtype;
      cache.scale = f.format == ROTARY_CACHE_FP8_E4M3 || f.format == ROTARY_CACHE_FP8_E5M2 ? scale : 1.0f;
      cache.block_size = kPagedBlockSize;
      cache.stride_head = head;
      cache.stride_row = kv_heads * head;
      cache.stride_block = kPagedBlockSize * kv_heads * head;
      // A tensor cache's strides are in elements; a byte format's in bytes (its dtype is ignored).
      const int64_t unit = f.format == ROTARY_CACHE_TENSOR ? element : 1;
      view = rotary_tensor{memory.get(), f.dtype, num_blocks, kPagedBlockSize, kv_heads, cache.stride_block / unit,
                           cache.stride_row / unit, cache.stride_head / unit};
    }
    void Clear() { std::memset(memory.get(), 0, bytes); }
    std::vector<char> Bytes() const { return std::vector<char>(memory.get(), memory.get() + bytes); }
  };

  // Where the yardstick's bytes differ from the fused call's, or -1.
  static int64_t FirstDifference(const std::vector<char>& fused, const PagedCacheBuffer& yardstick) {
    const auto diff = std::mismatch(fused.begin(), fused.end(), yardstick.memory.get());
    return diff.first == fused.end() ? -1 : diff.first - fused.begin();
  }

  // The paged KV-cache write (rotary_apply_options' k_cache, v_src, v_cache,
  // slot_mapping, cache_format): q [B, S, 32, 128] rotated in place and, in
  // the same call, k [B, S, kv_heads, 128] rotated and v converted into the slots of
  // paged caches (ShuffledSlots) in each cache format, against the stream over
  // q, k and v in place, the two passes a backend runs without it (rotary's
  // apply_qk in place, then the plain write pass of k and v into the caches,
  // rotary_bench::PagedKvWrite) and a copy of the same bytes (q read and
  // written back, k and v written into the caches unrotated, converted the
  // same way: the fused call's memory traffic).
  void Paged(const Shape& s, const std::string& dtype_name, const std::string& mode) {
    static const PagedFormat kFormats[] = {{"f16", ROTARY_CACHE_TENSOR, ROTARY_F16},
                                           {"bf16", ROTARY_CACHE_TENSOR, ROTARY_BF16},
                                           {"fp8_e4m3", ROTARY_CACHE_FP8_E4M3, ROTARY_F32},
                                           {"fp8_e5m2", ROTARY_CACHE_FP8_E5M2, ROTARY_F32},
                                           {"q8_0", ROTARY_CACHE_Q8_0, ROTARY_F32}};
    constexpr float kFp8Scale = 0.05f;  // k_scale and v_scale: x / scale spans the normal codes of both FP8 formats
    const rotary::Dtype dtype = ParseDtype(dtype_name);
    const rotary_dtype raw_dtype = static_cast<rotary_dtype>(dtype);
    const int64_t rows = s.batch * s.seq;
    const int64_t q_elements = rows * s.heads * s.dim, kv_elements = rows * o_.kv_heads * s.dim;
    rotary::Rope rope(rotary::Config().head_dim(static_cast<int32_t>(s.dim)).pairing(ParseMode(mode)));
    Buffer q(q_elements, dtype), k(kv_elements, dtype), v(kv_elements, dtype);  // every pass runs over these
    const rotary::Tensor qv(q.data(), dtype, s.batch, s.seq, s.heads, s.dim);
    const rotary::Tensor kv(k.data(), dtype, s.batch, s.seq, o_.kv_heads, s.dim);
    const rotary::Tensor vv(v.data(), dtype, s.batch, s.seq, o_.kv_heads, s.dim);
    const PagedSlots paged = ShuffledSlots(s);
    std::vector<float> k_rotated(kv_elements);
    // qk-norm before the rotation (Qwen3's), with the f16 and q8_0 caches: the "norm_" cases,
    // whose two passes are rotary's fused qk-norm apply_qk, then the write pass.
    const std::vector<float> q_weight = TimingNormWeights(s.dim, 7), k_weight = TimingNormWeights(s.dim, 5);
    const rotary::QkNorm qk_norm(q_weight, k_weight), k_norm(k_weight, {});
    rotary_qk_norm norm;
    rotary_qk_norm_init(&norm);
    norm.q_weight = q_weight.data();
    norm.k_weight = k_weight.data();
    std::vector<std::pair<const PagedFormat*, bool>> cases;  // (format, normalized)
    for (const PagedFormat& f : kFormats) {
      cases.emplace_back(&f, false);
      if (std::string(f.name) == "f16" || std::string(f.name) == "q8_0") cases.emplace_back(&f, true);
    }
    for (const auto& c : cases) {
      const PagedFormat& f = *c.first;
      const bool normalized = c.second;
      const std::string name = std::string(normalized ? "norm_" : "") + f.name;
      PagedCacheBuffer k_cache(f, paged.num_blocks, o_.kv_heads, s.dim, kFp8Scale),
          v_cache(f, paged.num_blocks, o_.kv_heads, s.dim, kFp8Scale);
      rotary_apply_options options;
      rotary_apply_options_init(&options);
      options.offset = s.offset;
      options.k_cache = &k_cache.view;
      options.v_src = &vv.t;
      options.v_cache = &v_cache.view;
      options.slot_mapping = paged.slots.data();
      options.cache_format = f.format;
      if (f.format == ROTARY_CACHE_FP8_E4M3 || f.format == ROTARY_CACHE_FP8_E5M2) {
        options.k_scale = options.v_scale = kFp8Scale;
      }
      if (normalized) options.norm = &norm;
      const auto fused = [&] {
        if (rotary_apply_with(rope.handle(), &qv.t, &qv.t, &kv.t, nullptr, &options) != ROTARY_OK) {
          throw std::runtime_error("paged " + name + ": " + rotary_last_error());
        }
      };
      const auto rotate_q_and_k = [&] {  // the first of the two passes
        normalized ? rope.apply_qk(qv, kv, qk_norm, s.offset) : rope.apply_qk(qv, kv, s.offset);
      };
      rotary_bench::PagedKvPass write;
      write.k = k.data();
      write.v = v.data();
      write.dtype = raw_dtype;
      write.rows = rows;
      write.kv_heads = o_.kv_heads;
      write.dim = s.dim;
      write.slots = paged.slots.data();
      write.k_cache = k_cache.cache;
      write.v_cache = v_cache.cache;
      rotary_bench::PagedKvPass copy = write;
      copy.q = q.data();
      copy.q_heads = s.heads;

      // The yardstick writes the bytes the fused call writes: v from the
      // sources, k from k rotated into f32 (the values the fused call rounds
      // into its cache; k as it is now: the two passes rotate it in place).
      // Checked once per case, on its target.
      fused();
      const rotary::Tensor k_rotated_view(k_rotated.data(), s.batch, s.seq, o_.kv_heads, s.dim);
      normalized ? rope.apply_to(kv, k_rotated_view, k_norm, s.offset) : rope.apply_to(kv, k_rotated_view, s.offset);
      const std::vector<char> fused_k = k_cache.Bytes(), fused_v = v_cache.Bytes();
      k_cache.Clear();
      v_cache.Clear();
      rotary_bench::PagedKvWrite(write);
      const int64_t v_diff = FirstDifference(fused_v, v_cache);
      rotary_bench::PagedKvPass from_f32 = write;
      from_f32.k = from_f32.v = k_rotated.data();
      from_f32.dtype = ROTARY_F32;
      rotary_bench::PagedKvWrite(from_f32);
      const int64_t k_diff = FirstDifference(fused_k, k_cache);
      if (k_diff >= 0 || v_diff >= 0) {
        throw std::runtime_error("paged " + name + " from " + dtype_name + " on " + target_ +
                                 ": the separate write pass differs from the fused call at byte " +
                                 std::to_string(k_diff >= 0 ? k_diff : v_diff) + " of " +
                                 (k_diff >= 0 ? "k_cache" : "v_cache") + " (a bug in bench/yardsticks.cc or rotary)");
      }

      // Bytes the fused call reads and writes: q twice, k and v once, their cache heads once.
      const double bytes = static_cast<double>(2 * q_elements + 2 * kv_elements) * ElementBytes(dtype) +
                           2.0 * static_cast<double>(k_cache.cache.stride_head) * rows * o_.kv_heads;
      for (int threads : o_.threads) {
        tbb::task_arena arena(threads);
        const std::vector<double> ns = rotary_bench::MedianNsPerCall(
            {[&] {
               arena.execute([&] {
                 StreamQAndK(q, k, dtype, rows, s);
                 rotary_bench::StreamInPlace(v.data(), raw_dtype, rows, o_.kv_heads * s.dim, 0.999f, 0.001f);
               });
             },
             [&] { arena.execute(fused); },
             [&] {
               arena.execute([&] {
                 rotate_q_and_k();
                 rotary_bench::PagedKvWrite(write);
               });
             },
             [&] { arena.execute([&] { rotary_bench::PagedKvWrite(copy); }); }},
            o_.timing);
        Result r = Measured("rotary_paged_" + name, mode, dtype_name, s, threads, ns[1], bytes, ns[0]);
        r.extra = {{"two_pass_ns", ns[2]}, {"vs_two_pass", ns[2] / ns[1]}, {"copy_ns", ns[3]},
                   {"of_copy", ns[3] / ns[1]}};
        AddHeadCounts(r, s);
        Emit(r);
        Emit(Measured("rotary_qk_then_write_" + name, mode, dtype_name, s, threads, ns[2], bytes, ns[0]));
        Emit(Measured("copy_paged_" + name, mode, dtype_name, s, threads, ns[3], bytes, ns[0]));
      }
    }
  }

  // The three table modes side by side: in-place apply of the shape with a rope
  // of max_positions 131072 in each mode, vs stream over the same tensor. The
  // ropes live for the whole run (tables do not depend on the target).
  void TableModes(const Shape& s, const std::string& dtype_name, const std::string& mode) {
    static const std::pair<const char*, rotary::TableMode> kModes[] = {{"rotary_table_full", rotary::TableMode::kFull},
                                                                       {"rotary_table_compact", rotary::TableMode::kCompact},
                                                                       {"rotary_table_on_the_fly", rotary::TableMode::kOnTheFly}};
    const rotary::Dtype dtype = ParseDtype(dtype_name);
    const int64_t rows = s.batch * s.seq, elements = rows * s.heads * s.dim;
    const double bytes = 2.0 * elements * ElementBytes(dtype);
    std::vector<std::unique_ptr<rotary::Rope>>& ropes = mode_ropes_[mode + "/" + std::to_string(s.dim)];
    if (ropes.empty()) {
      for (const auto& m : kModes) {
        ropes.push_back(std::make_unique<rotary::Rope>(rotary::Config()
                                                           .head_dim(static_cast<int32_t>(s.dim))
                                                           .pairing(ParseMode(mode))
                                                           .max_positions(kModeMaxPositions)
                                                           .table_mode(m.second)));
      }
    }
    Buffer x(elements, dtype);  // the stream runs over x too (see InPlace)
    const rotary::Tensor view(x.data(), dtype, s.batch, s.seq, s.heads, s.dim);
    for (const auto& rope : ropes) rope->apply(view, s.offset);  // tables built before timing
    for (int threads : o_.threads) {
      tbb::task_arena arena(threads);
      std::vector<std::function<void()>> fns = {[&] {
        arena.execute([&] {
          rotary_bench::StreamInPlace(x.data(), static_cast<rotary_dtype>(dtype), rows, elements / rows, 0.999f, 0.001f);
        });
      }};
      for (const auto& rope : ropes) {
        const rotary::Rope* r = rope.get();
        fns.push_back([&arena, r, &view, &s] { arena.execute([&] { r->apply(view, s.offset); }); });
      }
      const std::vector<double> ns = rotary_bench::MedianNsPerCall(fns, o_.timing);
      for (size_t m = 0; m < ropes.size(); ++m) {
        Result r = Base(kModes[m].first, mode, dtype_name, s, threads);
        r.ns_per_call = ns[m + 1];
        r.gbps = bytes / ns[m + 1];
        r.of_stream = ns[0] / ns[m + 1];
        r.extra = {{"table_bytes", static_cast<double>(ropes[m]->table_bytes())},
                   {"max_positions", static_cast<double>(kModeMaxPositions)}};
        Emit(r);
      }
    }
  }
  static constexpr int64_t kModeMaxPositions = 131072;

  // Multi-axis RoPE (docs/math.md §7): M-RoPE with Qwen2-VL's sections (a
  // quarter of the pairs on t, the rest split between h and w) on the shape,
  // for text tokens (every axis the same id) and for an image block (a
  // 2-frame grid of 32 columns from s.offset: the axes differ), against plain
  // RoPE with the same ids (what text-only calls must equal) and the stream.
  // Every token has a position of its own, the sequences of a decode batch
  // too: plain RoPE then reads as many table rows as the image block gathers
  // from (with one shared position it would read a single row).
  void MultiAxis(const Shape& s, const std::string& dtype_name, const std::string& mode) {
    const rotary::Dtype dtype = ParseDtype(dtype_name);
    const int64_t rows = s.batch * s.seq, elements = rows * s.heads * s.dim;
    const double bytes = 2.0 * elements * ElementBytes(dtype);
    const int32_t pairs = static_cast<int32_t>(s.dim / 2), t = pairs / 4, h = (pairs - t) / 2;
    const rotary::Config plain_config = rotary::Config().head_dim(static_cast<int32_t>(s.dim)).pairing(ParseMode(mode));
    rotary::Config multi_config = plain_config;
    multi_config.mrope_section({t, h, pairs - t - h});
    const rotary::Rope plain(plain_config), multi(multi_config);
    std::vector<int64_t> ids(rows), text, image(3 * rows);
    constexpr int64_t kColumns = 32;
    const int64_t grid_rows = std::max<int64_t>(1, (rows + 2 * kColumns - 1) / (2 * kColumns));  // two frames
    for (int64_t i = 0; i < rows; ++i) {
      ids[i] = s.offset + i;  // batch b, token s: offset + b * seq + s
      image[i] = s.offset + 2 * (i / (grid_rows * kColumns));             // t: the frame, temporal step 2
      image[rows + i] = s.offset + (i / kColumns) % grid_rows;           // h: the grid row
      image[2 * rows + i] = s.offset + i % kColumns;                     // w: the grid column
    }
    for (int a = 0; a < 3; ++a) text.insert(text.end(), ids.begin(), ids.end());
    Buffer x(elements, dtype);  // the stream runs over x too (see InPlace)
    const rotary::Tensor view(x.data(), dtype, s.batch, s.seq, s.heads, s.dim);
    plain.apply(view, ids);
    multi.apply(view, rotary::Positions::Axes(image, 3));  // tables built before timing
    for (int threads : o_.threads) {
      tbb::task_arena arena(threads);
      const std::vector<double> ns = rotary_bench::MedianNsPerCall(
          {[&] {
             arena.execute([&] {
               rotary_bench::StreamInPlace(x.data(), static_cast<rotary_dtype>(dtype), rows, elements / rows, 0.999f,
                                           0.001f);
             });
           },
           [&] { arena.execute([&] { plain.apply(view, ids); }); },
           [&] { arena.execute([&] { multi.apply(view, rotary::Positions::Axes(text, 3)); }); },
           [&] { arena.execute([&] { multi.apply(view, rotary::Positions::Axes(image, 3)); }); }},
          o_.timing);
      const char* impls[] = {"rotary_ids", "rotary_mrope_text", "rotary_mrope_image"};
      for (int i = 0; i < 3; ++i) {
        Result r = Base(impls[i], mode, dtype_name, s, threads);
        r.ns_per_call = ns[i + 1];
        r.gbps = bytes / ns[i + 1];
        r.of_stream = ns[0] / ns[i + 1];
        r.extra = {{"of_plain", ns[1] / ns[i + 1]}};
        Emit(r);
      }
    }
  }

  // rotary's own full table for the positions of a shape's caches (below).
  static rotary::Config OwnFullConfig(const Shape& s, rotary::Pairing pairing, int64_t rows) {
    return rotary::Config()
        .head_dim(static_cast<int32_t>(s.dim))
        .pairing(pairing)
        .max_positions(rows)
        .table_mode(rotary::TableMode::kFull);
  }

  // A caller's cos/sin caches for a shape, built once per shape (they do not
  // depend on the target, pairing or tensor dtype): every position below
  // offset + seq, rotary_dim = D, holding the values of rotary's own full table, in
  // vLLM's layout (f32 and bf16: each row the cos of every pair, then its sin)
  // and ONNX's (cos_cache and sin_cache).
  struct BorrowedCaches {
    int64_t rows = 0;
    std::vector<float> vllm, onnx_cos, onnx_sin;
    std::vector<uint16_t> vllm_bf16;
  };
  const BorrowedCaches& CachesFor(const Shape& s) {
    BorrowedCaches& c = borrowed_caches_[s.name];
    if (c.rows > 0) return c;
    const int64_t rows = s.offset + s.seq, pairs = s.dim / 2;
    // The own table's rows read through the library: a neox head of ones in its
    // first half and zeros in its second, rotated at position p, is exactly
    // (cos, sin) of row p.
    c.vllm.assign(rows * s.dim, 0.0f);
    for (int64_t p = 0; p < rows; ++p) std::fill_n(c.vllm.begin() + p * s.dim, pairs, 1.0f);
    const rotary::Rope own(OwnFullConfig(s, rotary::Pairing::kNeox, rows));
    own.apply(rotary::Tensor(c.vllm.data(), 1, rows, 1, s.dim));  // row p at position p
    c.onnx_cos.resize(rows * pairs);
    c.onnx_sin.resize(rows * pairs);
    for (int64_t p = 0; p < rows; ++p) {
      std::copy_n(c.vllm.begin() + p * s.dim, pairs, c.onnx_cos.begin() + p * pairs);
      std::copy_n(c.vllm.begin() + p * s.dim + pairs, pairs, c.onnx_sin.begin() + p * pairs);
    }
    c.vllm_bf16.resize(rows * s.dim);
    ConvertThroughRotary(c.vllm.data(), c.vllm_bf16.data(), rotary::Dtype::kBF16, rows * s.dim);
    c.rows = rows;
    return c;
  }

  // Ropes over a caller's cos/sin cache (rotary_create_borrowed) against
  // rotary's own full table of the same values and the stream, in place on
  // the shape: vLLM's f32 cache (with neox pairing its rows are read in place,
  // as the own full table's are), ONNX's two f32 arrays and vLLM's cache in
  // bf16 (these, and every cache with interleaved pairing, have a row
  // synthesized per (b, s), as in the compact mode). of_own = own time /
  // borrowed time, as of_plain in MultiAxis.
  void Borrowed(const Shape& s, const std::string& dtype_name, const std::string& mode) {
    const BorrowedCaches& c = CachesFor(s);
    const rotary::Dtype dtype = ParseDtype(dtype_name);
    const rotary::Pairing pairing = ParseMode(mode);
    const int64_t rows = s.batch * s.seq, elements = rows * s.heads * s.dim;
    const double bytes = 2.0 * elements * ElementBytes(dtype);
    const int32_t dim = static_cast<int32_t>(s.dim);
    const rotary::Config borrowing = rotary::Config().head_dim(dim).pairing(pairing);
    const rotary::Rope own(OwnFullConfig(s, pairing, c.rows));
    const rotary::Rope vllm(borrowing, rotary::BorrowedTable::vllm(c.vllm.data(), c.rows, dim));
    const rotary::Rope onnx(borrowing, rotary::BorrowedTable::onnx(c.onnx_cos.data(), c.onnx_sin.data(), c.rows, dim));
    const rotary::Rope vllm_bf16(
        borrowing, rotary::BorrowedTable::vllm(c.vllm_bf16.data(), c.rows, dim, rotary::Dtype::kBF16));
    Buffer x(elements, dtype);  // the stream runs over x too (see InPlace)
    const rotary::Tensor view(x.data(), dtype, s.batch, s.seq, s.heads, s.dim);
    const rotary::Rope* ropes[] = {&own, &vllm, &onnx, &vllm_bf16};
    for (const rotary::Rope* rope : ropes) rope->apply(view, s.offset);  // the own table built before timing
    const char* impls[] = {"rotary_own_full", "rotary_borrowed_vllm", "rotary_borrowed_onnx",
                           "rotary_borrowed_vllm_bf16"};
    // The cos/sin bytes each case reads its rows from: the caller's cache, or
    // the own rope's table, which ropes of the same plan share through the
    // process-wide cache (it may cover more positions than the case reads).
    const double table_bytes[] = {static_cast<double>(own.table_bytes()),
                                  static_cast<double>(c.vllm.size() * sizeof(float)),
                                  static_cast<double>((c.onnx_cos.size() + c.onnx_sin.size()) * sizeof(float)),
                                  static_cast<double>(c.vllm_bf16.size() * sizeof(uint16_t))};
    for (int threads : o_.threads) {
      tbb::task_arena arena(threads);
      std::vector<std::function<void()>> fns = {[&] {
        arena.execute([&] {
          rotary_bench::StreamInPlace(x.data(), static_cast<rotary_dtype>(dtype), rows, elements / rows, 0.999f, 0.001f);
        });
      }};
      for (const rotary::Rope* rope : ropes) {
        fns.push_back([&arena, rope, &view, &s] { arena.execute([&] { rope->apply(view, s.offset); }); });
      }
      const std::vector<double> ns = rotary_bench::MedianNsPerCall(fns, o_.timing);
      for (size_t i = 0; i < std::size(ropes); ++i) {
        Result r = Measured(impls[i], mode, dtype_name, s, threads, ns[i + 1], bytes, ns[0]);
        r.extra = {{"of_own", ns[1] / ns[i + 1]}, {"table_bytes", table_bytes[i]}};
        Emit(r);
      }
    }
  }

  // A rope object whose table has no rows yet: rope objects with equal plans
  // share one table through the process-wide cache (`warm` among them), so the
  // previous one goes first and the cache frees the rows no call is reading.
  static std::unique_ptr<rotary::Rope> ColdRope(const rotary::Config& config, std::unique_ptr<rotary::Rope>& previous) {
    previous.reset();
    rotary::cache_trim();
    return std::make_unique<rotary::Rope>(config);
  }

  // Building the table for 4096 and 131072 positions (D = 128), and the first
  // prefill4k call of a fresh rope, against one steady-state prefill4k apply.
  void TableBuild() {
    const Shape& s = FindShape("prefill4k");
    const int64_t elements = s.batch * s.seq * s.heads * s.dim;
    Buffer x(elements, rotary::Dtype::kF32);
    const rotary::Tensor view(reinterpret_cast<float*>(x.data()), s.batch, s.seq, s.heads, s.dim);
    const int threads = o_.threads.back();
    tbb::task_arena arena(threads);
    rotary::Rope warm(rotary::Config().head_dim(128));
    warm.apply(view, 0);
    const double apply_ns =
        rotary_bench::MedianNsPerCall({[&] { arena.execute([&] { warm.apply(view, 0); }); }}, o_.timing)[0];

    const int repetitions = std::max(3, o_.timing.repetitions);
    std::unique_ptr<rotary::Rope> fresh;
    for (int64_t positions : {int64_t{4096}, int64_t{131072}}) {
      const double ns = rotary_bench::MedianNsOfFreshCall(
          [&] { fresh = ColdRope(rotary::Config().head_dim(128).max_positions(positions), fresh); },
          [&] { arena.execute([&] { fresh->apply(rotary::Tensor(reinterpret_cast<float*>(x.data()), 1, 1, 1, 128), 0); }); },
          repetitions);
      Result r = Base("table_build", "neox", "f32", s, threads);
      r.shape = "positions" + std::to_string(positions);
      r.ns_per_call = ns;
      r.extra = {{"table_bytes", static_cast<double>(fresh->table_bytes())}, {"of_prefill4k_apply", ns / apply_ns}};
      Emit(r);
    }
    const double first_ns = rotary_bench::MedianNsOfFreshCall(
        [&] { fresh = ColdRope(rotary::Config().head_dim(128), fresh); },
        [&] { arena.execute([&] { fresh->apply(view, 0); }); }, repetitions);
    Result r = Base("first_call", "neox", "f32", s, threads);
    r.ns_per_call = first_ns;
    r.gbps = 2.0 * elements * 4 / first_ns;
    r.extra = {{"of_prefill4k_apply", first_ns / apply_ns}};
    Emit(r);
  }

  const Options& o_;
  std::string target_;
  std::vector<Result> results_;
  std::map<std::string, std::vector<std::unique_ptr<rotary::Rope>>> mode_ropes_;  // by pairing and head_dim
  std::map<std::string, BorrowedCaches> borrowed_caches_;                          // by shape
};

}  // namespace

int main(int argc, char** argv) {
  Options o;
  if (!ParseArgs(argc, argv, &o)) return 2;
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  if (o.threads.empty()) o.threads = cores > 1 ? std::vector<int>{1, cores} : std::vector<int>{1};
  if (o.targets.empty()) o.targets = {rotary::active_target()};
  if (o.targets.size() == 1 && o.targets[0] == "all") o.targets = rotary::supported_targets();

  Bench bench(o);
  try {
    bench.Run();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "rotary-bench: %s\n", e.what());
    return 1;
  }
  if (o.format == Options::kCsv) rotary_bench::PrintCsv(bench.results());
  if (o.format == Options::kJson) rotary_bench::PrintJson(bench.results());
  if (o.format == Options::kLines) {
    // The cache size decides each call's head order (RowJob::streaming): a
    // wrong one shows as a slow prefill, so the summary says which it was.
    const rotary::LastLevelCache& llc = rotary::DetectedLastLevelCache();
    rotary_bench::PrintSummary(bench.results(), CpuName() + ", " + std::to_string(cores) + " cores, last-level cache " +
                                                    std::to_string(llc.bytes >> 10) + " KiB (" + llc.source + ")");
  }
  if (!o.plot_path.empty() && !rotary_bench::PlotPng(bench.results(), o.plot_path)) return 1;
  return 0;
}
