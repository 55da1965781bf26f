#!/usr/bin/env bash
# A bounded libFuzzer run of tests/fuzz/fuzz_apply.cc (clang, AddressSanitizer +
# UndefinedBehaviorSanitizer, coverage-instrumented library). Seeds from
# tests/fuzz/corpus; new inputs go to a temporary folder, not the repository.
#   ROTARY_FUZZ_SECONDS   how long to fuzz (default 60)
# A crash, a sanitizer report or a failed check aborts with the input saved as
# build/fuzz/crash-*: add it to tests/fuzz/corpus once fixed, so every build replays it.
set -euo pipefail
cd "$(dirname "$0")/.."
source ci/lib.sh

bash ci/install-deps.sh
bash ci/install-deps.sh clang libclang-rt-14-dev
seconds=${ROTARY_FUZZ_SECONDS:-60}

# One Highway target (ci_one_target_march): the fuzzer hunts validation and
# bookkeeping bugs; every target's kernels are tested by the per-target suites.
# Compiling all six under ASan+coverage takes >10 minutes.
flags="-fno-sanitize-recover=undefined $(ci_one_target_march)"
CC=clang CXX=clang++ cmake -S . -B build/fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DROTARY_FUZZ=ON \
  -DROTARY_HWY_TARGETS=static -DROTARY_SANITIZE=address,undefined -DCMAKE_CXX_FLAGS="$flags" \
  -DCMAKE_C_FLAGS="$flags" -DROTARY_BUILD_BENCH=OFF >/dev/null
cmake --build build/fuzz -j "$(nproc)" --target fuzz_apply

corpus=$(mktemp -d)
trap 'rm -rf "$corpus"' EXIT
cp tests/fuzz/corpus/* "$corpus"/
cd build/fuzz
UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
  ./tests/fuzz_apply -max_total_time="$seconds" -print_final_stats=1 -max_len=512 "$corpus" 2>&1 |
  grep -vE "^#[0-9]+\s+(NEW|REDUCE|pulse)" || { echo "ci/fuzz.sh: the fuzzer found a failure (see above)"; exit 1; }
echo "ci/fuzz.sh: ${seconds} s of fuzzing, no failure"
