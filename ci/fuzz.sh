#!/usr/bin/env bash
# A bounded libFuzzer run of tests/fuzz/fuzz_apply.cc in build/asan (clang,
# AddressSanitizer + UndefinedBehaviorSanitizer, coverage-instrumented library,
# one Highway target: ci_build_asan in ci/lib.sh, the build the sanitize stage
# tests, so after it only the fuzz target is left to build). Seeds from
# tests/fuzz/corpus; new inputs go to a temporary folder, not the repository.
#   ROTARY_FUZZ_SECONDS   how much to fuzz, in seconds of one core (default 60):
#                         libFuzzer's fork mode runs one fuzzing process per
#                         core for that time divided by the cores (2 cores,
#                         30 s: as many inputs as 60 s on one core, and about
#                         the same features covered, measured here)
# A crash, a sanitizer report or a failed check aborts with the input saved as
# build/asan/crash-*: add it to tests/fuzz/corpus once fixed, so every build replays it.
set -euo pipefail
cd "$(dirname "$0")/.."
source ci/lib.sh

bash ci/install-deps.sh
seconds=${ROTARY_FUZZ_SECONDS:-60}
ci_build_asan -- --target fuzz_apply

corpus=$(mktemp -d)
trap 'rm -rf "$corpus"' EXIT
cp tests/fuzz/corpus/* "$corpus"/
cd build/asan
jobs=$ci_jobs
wall=$(((seconds + jobs - 1) / jobs))
# A child's crash or sanitizer report is printed by the parent ("log from the
# inner process"), which then exits non-zero.
UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
  ./tests/fuzz_apply -fork="$jobs" -max_total_time="$wall" -max_len=512 "$corpus" 2>&1 |
  grep -vE "^#[0-9]+\s+(NEW|REDUCE|pulse)" || { echo "ci/fuzz.sh: the fuzzer found a failure (see above)"; exit 1; }
echo "ci/fuzz.sh: ${wall} s of fuzzing on ${jobs} cores, no failure"
