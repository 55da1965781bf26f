#!/usr/bin/env bash
# The test command (README.md; CI's .ci/run runs exactly this). Stages, in order:
#   native    gcc, -Wall -Wextra -Werror, the whole suite on every target this CPU runs
#   clang     the same with Debian's clang
#   sanitize  ci/sanitize.sh: the whole suite under ASan + UBSan, the concurrency tests under TSan
#   arm64     ci/arm64.sh: aarch64 cross build, the whole suite under qemu-user (NEON, SVE)
#   fuzz      ci/fuzz.sh: libFuzzer with ASan + UBSan for ROTARY_FUZZ_SECONDS (default 60)
# Every stage runs even if an earlier one failed; a summary of each stage's result
# and time follows, and the exit status is non-zero if any stage failed.
# ROTARY_CI_STAGES picks stages, e.g. `ROTARY_CI_STAGES=native bash ci/test.sh`
# for the quick local loop; unset, every stage runs.
# Each stage installs what it needs with apt (quietly when already installed).
set -uo pipefail
cd "$(dirname "$0")/.."
source ci/lib.sh

stage_native() {
  # The Python module and its pytest suite (torch: the Hugging Face formulas it is checked against).
  bash ci/install-deps.sh &&
    bash ci/install-deps.sh pybind11-dev python3-dev python3-numpy python3-pytest python3-torch python3-venv \
      python3-pip python3-setuptools python3-wheel &&
    ci_build build/test -DCMAKE_BUILD_TYPE=Release -DROTARY_WERROR=ON -DROTARY_BUILD_PYTHON=ON \
      "${ci_per_binary_tests[@]}" &&
    ci_ctest build/test build/test/ci-ctest.log &&
    echo "ci: targets tested on this CPU: $(ci_targets_run build/test/gtest-results)"
}

# A second compiler: its warnings are errors too. Its baseline target is EMU128
# where gcc 12.2's is SCALAR (Highway marks EMU128 broken on gcc < 12.3).
stage_clang() {
  bash ci/install-deps.sh && bash ci/install-deps.sh clang &&
    ci_build build/clang -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
      -DCMAKE_BUILD_TYPE=Release -DROTARY_WERROR=ON "${ci_per_binary_tests[@]}" &&
    ci_ctest build/clang build/clang/ci-ctest.log &&
    echo "ci: targets tested on this CPU: $(ci_targets_run build/clang/gtest-results)"
}

stage_sanitize() { bash ci/sanitize.sh; }
stage_arm64() { bash ci/arm64.sh; }
stage_fuzz() { bash ci/fuzz.sh; }

stages=${ROTARY_CI_STAGES:-native clang sanitize arm64 fuzz}
for stage in $stages; do
  if ! declare -F "stage_$stage" >/dev/null; then
    echo "ci/test.sh: unknown stage '$stage' (stages: native clang sanitize arm64 fuzz)" >&2
    exit 2
  fi
done

CI_COUNTS=$(mktemp)
export CI_COUNTS
stage_logs=$(mktemp -d) || exit 2
trap 'rm -rf "$CI_COUNTS" "$stage_logs"' EXIT
summary=()
failed_stages=()
all_start=$SECONDS
for stage in $stages; do
  echo "=== ci stage: $stage ==="
  start=$SECONDS
  if "stage_$stage" 2>&1 | tee "$stage_logs/$stage"; then
    result=ok
  else
    result=FAILED
    failed_stages+=("$stage")
  fi
  summary+=("$(printf '%-9s %-7s %5ds' "$stage" "$result" $((SECONDS - start)))")
  echo "=== ci stage: $stage: $result in $((SECONDS - start))s ==="
done

# Why a stage failed, repeated here: a CI log is often read from its end only.
# The lines kept are the scripts' own messages (not their progress lines),
# failed tests, and sanitizer and compiler errors.
why='^ci(/[a-z0-9_-]+\.sh)?:|\*\*\*Failed|Failed +[0-9.]+ sec|\(Failed\)|Timeout|Not Run|Exception|error:'
why+='|Error [0-9]|FATAL|ERROR: [A-Za-z]+Sanitizer|WARNING: ThreadSanitizer|not permitted|No tests were found'
# A test binary run whole (ci_per_binary_tests) fails as one ctest test: gtest's
# own lines name the failed cases and where each failed.
why+='|^\[  FAILED  \] [A-Za-z_]|: Failure$'
progress='^ci: (built|targets tested|TSan-instrumented)'
for stage in "${failed_stages[@]}"; do
  echo
  echo "=== why $stage failed (from its output above) ==="
  grep -vE "$progress" "$stage_logs/$stage" | grep -E "$why" | tail -n 30 || echo "(no error line recognised)"
  echo "--- the stage's last lines:"
  tail -n 8 "$stage_logs/$stage"
done

echo
echo "=== ci summary ($(nproc) cores) ==="
printf '%s\n' "${summary[@]}"
printf '%-9s %-7s %5ds\n' total "" $((SECONDS - all_start))
awk '{p += $1; f += $2; s += $3} END {printf "tests: %d passed, %d failed, %d skipped\n", p, f, s}' "$CI_COUNTS"
if [ ${#failed_stages[@]} -ne 0 ]; then
  echo "ci: ${#failed_stages[@]} stage(s) FAILED: ${failed_stages[*]}"
  exit 1
fi
