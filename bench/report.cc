#include "bench/report.h"

#include <cstdio>
#include <cstdlib>
#include <algorithm>
#include <fstream>
#include <map>
#include <set>

namespace rotary_bench {
namespace {

std::string Format(const char* fmt, double v) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), fmt, v);
  return buf;
}

const Result* Find(const std::vector<Result>& results, const Result& like, const std::string& impl) {
  for (const Result& r : results) {
    if (r.impl == impl && r.target == like.target && r.mode == like.mode && r.dtype == like.dtype &&
        r.shape == like.shape && r.threads == like.threads) {
      return &r;
    }
  }
  return nullptr;
}

}  // namespace

std::string ProtocolLine(const Result& r) {
  std::string line = "impl=" + r.impl + " target=" + r.target + " mode=" + r.mode + " dtype=" + r.dtype +
                     " shape=" + r.shape + " threads=" + std::to_string(r.threads) +
                     " ns_per_call=" + Format("%.1f", r.ns_per_call) + " GBps=" + Format("%.2f", r.gbps) +
                     " of_stream=" + Format("%.3f", r.of_stream);
  for (const auto& [key, value] : r.extra) line += " " + key + "=" + Format("%.3f", value);
  return line;
}

void PrintCsv(const std::vector<Result>& results) {
  std::printf("impl,target,mode,dtype,shape,threads,ns_per_call,GBps,of_stream,extra\n");
  for (const Result& r : results) {
    std::string extra;
    for (const auto& [key, value] : r.extra) extra += (extra.empty() ? "" : ";") + key + "=" + Format("%.4f", value);
    std::printf("%s,%s,%s,%s,%s,%d,%.1f,%.3f,%.4f,%s\n", r.impl.c_str(), r.target.c_str(), r.mode.c_str(),
                r.dtype.c_str(), r.shape.c_str(), r.threads, r.ns_per_call, r.gbps, r.of_stream, extra.c_str());
  }
}

void PrintJson(const std::vector<Result>& results) {
  std::printf("[\n");
  for (size_t i = 0; i < results.size(); ++i) {
    const Result& r = results[i];
    std::printf("  {\"impl\": \"%s\", \"target\": \"%s\", \"mode\": \"%s\", \"dtype\": \"%s\", \"shape\": \"%s\", "
                "\"threads\": %d, \"ns_per_call\": %.1f, \"GBps\": %.3f, \"of_stream\": %.4f",
                r.impl.c_str(), r.target.c_str(), r.mode.c_str(), r.dtype.c_str(), r.shape.c_str(), r.threads,
                r.ns_per_call, r.gbps, r.of_stream);
    for (const auto& [key, value] : r.extra) std::printf(", \"%s\": %.4f", key.c_str(), value);
    std::printf("}%s\n", i + 1 < results.size() ? "," : "");
  }
  std::printf("]\n");
}

namespace {

// "32 q heads, 8 kv heads": the heads of the first case whose impl starts with prefix.
std::string HeadCounts(const std::vector<Result>& results, const std::string& prefix) {
  for (const Result& r : results) {
    if (r.impl.compare(0, prefix.size(), prefix) == 0) {
      return std::to_string(static_cast<int>(r.Extra("q_heads"))) + " q heads, " +
             std::to_string(static_cast<int>(r.Extra("kv_heads"))) + " kv heads";
    }
  }
  return "";
}

// One fused call against the separate calls it replaces (timed in the same run: extra `separate_key`).
void PrintFusedVsSeparate(const std::vector<Result>& results, const char* impl, const char* separate_key,
                          const std::string& title, const char* separate_column) {
  bool header = false;
  for (const Result& r : results) {
    if (r.impl != impl) continue;
    if (!header) {
      std::printf("\n%s\n", title.c_str());
      std::printf("%-8s %-12s %-5s %-11s %7s %12s %12s %9s %9s\n", "target", "mode", "dtype", "shape", "threads",
                  "fused ns", separate_column, "speedup", "of_stream");
      header = true;
    }
    std::printf("%-8s %-12s %-5s %-11s %7d %12.0f %12.0f %8.2fx %9.3f\n", r.target.c_str(), r.mode.c_str(),
                r.dtype.c_str(), r.shape.c_str(), r.threads, r.ns_per_call, r.Extra(separate_key),
                r.Extra(separate_key) / r.ns_per_call, r.of_stream);
  }
}

}  // namespace

void PrintSummary(const std::vector<Result>& results, const std::string& cpu) {
  std::printf("\nrotary-bench on %s\n", cpu.c_str());
  std::printf("GB/s = tensor bytes read + written per second; of_stream = stream time / rotary time (same bytes, "
              "same dtype, same threads, same run)\n\n");
  std::printf("%-8s %-12s %-5s %-11s %7s %9s %9s %9s %9s %8s\n", "target", "mode", "dtype", "shape", "threads",
              "rotary", "stream", "of_stream", "naive", "x naive");
  for (const Result& r : results) {
    if (r.impl != "rotary") continue;
    const Result* naive = Find(results, r, "naive");
    std::printf("%-8s %-12s %-5s %-11s %7d %9.2f %9.2f %9.3f", r.target.c_str(), r.mode.c_str(), r.dtype.c_str(),
                r.shape.c_str(), r.threads, r.gbps, r.gbps / r.of_stream, r.of_stream);
    if (naive) {
      std::printf(" %9.2f %7.1fx\n", naive->gbps, r.gbps / naive->gbps);
    } else {
      std::printf(" %9s %8s\n", "-", "-");
    }
  }

  PrintFusedVsSeparate(results, "rotary_qk", "two_calls_ns",
                       "q and k in one call (" + HeadCounts(results, "rotary_qk") + ") vs two calls", "two calls ns");
  PrintFusedVsSeparate(results, "rotary_qk_norm", "two_pass_ns",
                       "qk-norm, RoPE and q scale in one call (" + HeadCounts(results, "rotary_qk_norm") +
                           ") vs an RMSNorm pass, then apply_qk",
                       "two pass ns");

  bool header = false;
  for (const Result& r : results) {
    if (r.impl != "rotary_to") continue;
    if (!header) {
      std::printf("\nout of place f32 -> dtype (writing k into a KV cache) vs a plain converting copy\n");
      std::printf("%-8s %-12s %-5s %-11s %7s %9s %9s %9s\n", "target", "mode", "dtype", "shape", "threads", "rotary",
                  "copy", "of_copy");
      header = true;
    }
    std::printf("%-8s %-12s %-5s %-11s %7d %9.2f %9.2f %9.3f\n", r.target.c_str(), r.mode.c_str(), r.dtype.c_str(),
                r.shape.c_str(), r.threads, r.gbps, r.gbps / r.Extra("of_copy", 1), r.Extra("of_copy"));
  }

  header = false;
  const std::string paged = "rotary_paged_";
  for (const Result& r : results) {
    if (r.impl.compare(0, paged.size(), paged) != 0) continue;
    if (!header) {
      std::printf("\npaged KV-cache write (%s; q in place, k rotated and v converted into a paged cache: vLLM "
                  "layout, block_size 16, shuffled blocks) in one call vs apply_qk then a separate write pass "
                  "(vs_two_pass) and vs a copy of the same bytes into the same format (of_copy)\n",
                  HeadCounts(results, paged).c_str());
      std::printf("%-8s %-12s %-5s %-11s %7s %-9s %9s %11s %9s %9s\n", "target", "mode", "dtype", "shape", "threads",
                  "cache", "GB/s", "vs_two_pass", "of_copy", "of_stream");
      header = true;
    }
    std::printf("%-8s %-12s %-5s %-11s %7d %-9s %9.2f %10.2fx %9.3f %9.3f\n", r.target.c_str(), r.mode.c_str(),
                r.dtype.c_str(), r.shape.c_str(), r.threads, r.impl.substr(paged.size()).c_str(), r.gbps,
                r.Extra("vs_two_pass"), r.Extra("of_copy"), r.of_stream);
  }

  header = false;
  for (const Result& r : results) {
    if (r.impl != "rotary_ids") continue;
    const Result* text = Find(results, r, "rotary_mrope_text");
    const Result* image = Find(results, r, "rotary_mrope_image");
    if (!text || !image) continue;
    if (!header) {
      std::printf("\nmulti-axis RoPE (M-RoPE, 3 axes) vs plain RoPE with the same ids: of_stream, and of_plain\n");
      std::printf("%-8s %-12s %-5s %-11s %7s %9s %9s %9s %9s %9s\n", "target", "mode", "dtype", "shape", "threads",
                  "plain", "text", "image", "text/pl", "image/pl");
      header = true;
    }
    std::printf("%-8s %-12s %-5s %-11s %7d %9.3f %9.3f %9.3f %9.3f %9.3f\n", r.target.c_str(), r.mode.c_str(),
                r.dtype.c_str(), r.shape.c_str(), r.threads, r.of_stream, text->of_stream, image->of_stream,
                text->Extra("of_plain"), image->Extra("of_plain"));
  }

  header = false;
  for (const Result& r : results) {
    if (r.impl != "rotary_own_full") continue;
    const Result* vllm = Find(results, r, "rotary_borrowed_vllm");
    const Result* onnx = Find(results, r, "rotary_borrowed_onnx");
    const Result* vllm_bf16 = Find(results, r, "rotary_borrowed_vllm_bf16");
    if (!vllm || !onnx || !vllm_bf16) continue;
    if (!header) {
      std::printf("\nborrowed cos/sin caches vs rotary's own full table of the same values: of_stream, and of_own = "
                  "own time / borrowed time\n");
      std::printf("%-8s %-12s %-5s %-11s %7s %9s %9s %9s %9s %9s %9s %9s\n", "target", "mode", "dtype", "shape",
                  "threads", "own", "vllm", "onnx", "vllm-bf16", "vllm/own", "onnx/own", "bf16/own");
      header = true;
    }
    std::printf("%-8s %-12s %-5s %-11s %7d %9.3f %9.3f %9.3f %9.3f %9.3f %9.3f %9.3f\n", r.target.c_str(),
                r.mode.c_str(), r.dtype.c_str(), r.shape.c_str(), r.threads, r.of_stream, vllm->of_stream,
                onnx->of_stream, vllm_bf16->of_stream, vllm->Extra("of_own"), onnx->Extra("of_own"),
                vllm_bf16->Extra("of_own"));
  }

  header = false;
  for (const Result& r : results) {
    if (r.impl != "rotary_table_full") continue;
    const Result* compact = Find(results, r, "rotary_table_compact");
    const Result* fly = Find(results, r, "rotary_table_on_the_fly");
    if (!compact || !fly) continue;
    if (!header) {
      std::printf("\ntable modes (max_positions %.0f): GB/s, of_stream and table bytes of full, compact, on the fly\n",
                  r.Extra("max_positions"));
      std::printf("%-8s %-12s %-5s %-11s %7s %9s %9s %9s %9s   %-32s %s\n", "target", "mode", "dtype", "shape",
                  "threads", "stream", "full", "compact", "on-the-fly", "of_stream (full/compact/fly)",
                  "table bytes (full/compact/fly)");
      header = true;
    }
    std::printf("%-8s %-12s %-5s %-11s %7d %9.2f %9.2f %9.2f %9.2f   %-32s %.0f / %.0f / %.0f\n", r.target.c_str(),
                r.mode.c_str(), r.dtype.c_str(), r.shape.c_str(), r.threads, r.gbps / r.of_stream, r.gbps,
                compact->gbps, fly->gbps,
                (Format("%.3f", r.of_stream) + " / " + Format("%.3f", compact->of_stream) + " / " + Format("%.3f", fly->of_stream)).c_str(),
                r.Extra("table_bytes"), compact->Extra("table_bytes"), fly->Extra("table_bytes"));
  }

  header = false;
  for (const Result& r : results) {
    if (r.impl != "table_build" && r.impl != "first_call") continue;
    if (!header) {
      std::printf("\ntable build (D=128) and first call, vs one steady-state prefill4k apply\n");
      header = true;
    }
    std::printf("%-12s %-8s %-11s threads=%d %10.3f ms  (%.2f x one prefill4k apply)\n", r.impl.c_str(),
                r.target.c_str(), r.shape.c_str(), r.threads, r.ns_per_call / 1e6, r.Extra("of_prefill4k_apply"));
  }
}

bool PlotPng(const std::vector<Result>& results, const std::string& path) {
  // Clusters: shape/dtype/mode at the most threads measured; bars: targets; stream drawn as a line.
  int max_threads = 1;
  for (const Result& r : results) max_threads = std::max(max_threads, r.threads);
  std::vector<std::string> clusters, targets;
  std::map<std::string, std::map<std::string, double>> gbps;
  std::map<std::string, double> stream;
  for (const Result& r : results) {
    if (r.impl != "rotary" || r.threads != max_threads) continue;
    const std::string cluster = r.shape + "/" + r.dtype + "/" + r.mode;
    if (!gbps.count(cluster)) clusters.push_back(cluster);
    if (std::find(targets.begin(), targets.end(), r.target) == targets.end()) targets.push_back(r.target);
    gbps[cluster][r.target] = r.gbps;
    stream[cluster] = std::max(stream[cluster], r.gbps / r.of_stream);
  }
  if (clusters.empty()) {
    std::fprintf(stderr, "rotary-bench: nothing to plot\n");
    return false;
  }
  const std::string data_path = path + ".dat", script_path = path + ".gp";
  {
    std::ofstream data(data_path);
    data << "case stream";
    for (const std::string& t : targets) data << " " << t;
    data << "\n";
    for (const std::string& c : clusters) {
      data << c << " " << stream[c];
      for (const std::string& t : targets) data << " " << (gbps[c].count(t) ? gbps[c][t] : 0.0);
      data << "\n";
    }
    std::ofstream script(script_path);
    script << "set terminal pngcairo size 1400,600 noenhanced\nset output '" << path << "'\n"
           << "set title 'rotary: GB/s per shape and target (" << max_threads
           << " threads); line = stream limit'\n"
           << "set ylabel 'GB/s'\nset style data histograms\nset style histogram clustered gap 1\n"
           << "set style fill solid 0.8 border -1\nset xtics rotate by -30\nset key top right\nset grid ytics\n"
           // The first row names the columns, for every series (else the line is off by one).
           << "set key autotitle columnheader\n"
           << "plot for [i=3:" << 2 + targets.size() << "] '" << data_path
           << "' using i:xtic(1), '' using 0:2 with linespoints lw 2 lc rgb 'black' title 'stream'\n";
  }
  const std::string command = "gnuplot '" + script_path + "' 2>&1";
  if (std::system("command -v gnuplot >/dev/null 2>&1") != 0) {
    std::fprintf(stderr, "rotary-bench: gnuplot is not installed (apt-get install gnuplot-nox); no plot written\n");
    return false;
  }
  if (std::system(command.c_str()) != 0) {
    std::fprintf(stderr, "rotary-bench: gnuplot failed on %s\n", script_path.c_str());
    return false;
  }
  std::remove(data_path.c_str());
  std::remove(script_path.c_str());
  return true;
}

}  // namespace rotary_bench
