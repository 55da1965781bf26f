# Helpers shared by the ci/ scripts; sourced, not run. Expects the working
# directory to be the repository root.

set -o pipefail  # ci_ctest's status is ctest's, not tee's

ci_jobs=$(nproc)

# ci_build DIR CMAKE_ARGS... [-- BUILD_ARGS...]: configures and builds DIR from
# this checkout with every core (BUILD_ARGS, e.g. --target NAME, go to the
# build). The build's output goes to DIR/ci-build.log and is printed only when
# configuring or building fails (warnings are errors where -Werror is on).
ci_build() {
  local dir=$1
  shift
  local configure=() build=()
  while [ $# -gt 0 ] && [ "$1" != "--" ]; do
    configure+=("$1")
    shift
  done
  [ $# -gt 0 ] && shift && build=("$@")  # after --: arguments of the build (e.g. --target NAME)
  mkdir -p "$dir"
  local start=$SECONDS
  if ! { cmake -S . -B "$dir" "${configure[@]}" && cmake --build "$dir" -j "$ci_jobs" "${build[@]}"; } \
    >"$dir/ci-build.log" 2>&1; then
    cat "$dir/ci-build.log"
    echo "ci: building $dir failed (log above)" >&2
    return 1
  fi
  echo "ci: built $dir in $((SECONDS - start))s"
}

# ci_ctest DIR LOG CTEST_ARGS...: runs ctest in DIR on every core, printing its
# output and keeping a copy in LOG. When CI_COUNTS names a file, appends
# "passed failed skipped" for this run to it (ci/test.sh sums them; ctest
# counts a skipped test as passed, so it is taken out of the passed ones).
ci_ctest() {
  local dir=$1 log=$2
  shift 2
  local rc=0
  (cd "$dir" && ctest --output-on-failure --no-tests=error -j "$ci_jobs" "$@") 2>&1 | tee "$log" || rc=$?
  if [ -n "${CI_COUNTS:-}" ]; then
    local skipped
    skipped=$(grep -cE '^[[:space:]]*[0-9]+ - .* \(Skipped\)$' "$log" || true)
    sed -nE 's/^[0-9]+% tests passed, ([0-9]+) tests? failed out of ([0-9]+)$/\2 \1/p' "$log" |
      awk -v skipped="$skipped" '{print $1 - $2 - skipped, $2, skipped}' >>"$CI_COUNTS"
  fi
  return "$rc"
}

# ci_targets_run LOG: the kernel targets whose tests passed in LOG (a ctest
# output): Highway's, from the per-target kernel tests, and the registry's own
# (AVX3_ZEN4), from the end-to-end tests run per target; on one line, in the
# order ctest reported them.
ci_targets_run() {
  sed -nE 's#^.*Test +\#[0-9]+: (RopeKernelTest|EveryTarget/)[^ ]*/([A-Z0-9_]+) .* Passed .*$#\2#p' "$1" |
    awk '!seen[$0]++' | tr '\n' ' ' | sed 's/ $//'
}

# ci_one_target_march: the -march flag of the one Highway target that the
# sanitizer and fuzz builds compile (six targets under ASan took over 17
# minutes): AVX-512 (Highway's AVX3) where this CPU has it, so the kernels'
# 32-register paths run under the sanitizers too; else AVX2; else the baseline.
ci_one_target_march() {
  local flags
  flags=$(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null || true)
  local f has_avx3=1
  for f in avx512f avx512vl avx512dq avx512bw; do
    [[ " $flags " == *" $f "* ]] || has_avx3=0
  done
  if [ "$has_avx3" = 1 ]; then
    echo "-march=skylake-avx512"
  elif [[ " $flags " == *" avx2 "* && " $flags " == *" fma "* ]]; then
    echo "-march=haswell"
  fi
}
