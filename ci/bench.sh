#!/usr/bin/env bash
# The main job: installs dependencies, builds rotary-bench in Release, runs it on
# this CPU and prints the protocol lines of docs/performance.md (Method) plus a summary table.
# Extra arguments go to rotary-bench (see `rotary-bench --help`).
set -euo pipefail
cd "$(dirname "$0")/.."

bash ci/install-deps.sh
# gnuplot draws --plot charts; the benchmark runs without it if it cannot be installed.
bash ci/install-deps.sh gnuplot-nox || echo "ci/bench.sh: gnuplot-nox not installed; --plot will be unavailable"
cmake -S . -B build/bench -DCMAKE_BUILD_TYPE=Release -DROTARY_BUILD_TESTS=OFF >/dev/null
cmake --build build/bench -j "$(nproc)" --target rotary-bench rotary-gbench >/dev/null
exec build/bench/bench/rotary-bench "$@"
