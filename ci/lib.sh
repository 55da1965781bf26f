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
  # Ninja: one build graph, no recursive make, so a clean build takes less
  # time. A directory configured before keeps its generator.
  local generator=()
  [ -f "$dir/CMakeCache.txt" ] || generator=(-G Ninja)
  local start=$SECONDS
  if ! { cmake -S . -B "$dir" "${generator[@]}" "${configure[@]}" &&
    cmake --build "$dir" -j "$ci_jobs" "${build[@]}"; } >"$dir/ci-build.log" 2>&1; then
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
# In a build configured with ROTARY_TESTS_PER_BINARY (ci_per_binary_tests),
# each gtest binary writes a report of its cases to DIR/gtest-results (emptied
# first) and the counts are of test cases, as in a build whose ctest runs each
# case on its own.
ci_ctest() {
  local dir=$1 log=$2
  shift 2
  local rc=0 results=""
  if grep -qx 'ROTARY_TESTS_PER_BINARY:BOOL=ON' "$dir/CMakeCache.txt" 2>/dev/null; then
    results="$(cd "$dir" && pwd)/gtest-results"
    rm -rf "$results"
  fi
  (cd "$dir" && if [ -n "$results" ]; then export GTEST_OUTPUT="xml:$results/"; fi &&
    ctest --output-on-failure --no-tests=error -j "$ci_jobs" "$@") 2>&1 | tee "$log" || rc=$?
  if [ -n "${CI_COUNTS:-}" ]; then
    if [ -n "$results" ]; then
      ci_case_counts "$log" "$results" >>"$CI_COUNTS"
    else
      local skipped
      skipped=$(grep -cE '^[[:space:]]*[0-9]+ - .* \(Skipped\)$' "$log" || true)
      sed -nE 's/^[0-9]+% tests passed, ([0-9]+) tests? failed out of ([0-9]+)$/\2 \1/p' "$log" |
        awk -v skipped="$skipped" '{print $1 - $2 - skipped, $2, skipped}' >>"$CI_COUNTS"
    fi
  fi
  return "$rc"
}

# ci_per_binary_tests: the CMake argument that makes ctest run each test
# binary once instead of once per case (tests/CMakeLists.txt): a case run on
# its own repeats its binary's start and shared set-up (under qemu or ASan a
# process start alone is 0.05-0.1 s, half of a typical case),
# and listing the cases costs a run of every binary at build time. ci_ctest
# then counts the cases from the binaries' reports.
ci_per_binary_tests=(-DROTARY_TESTS_PER_BINARY=ON)

# ci_case_results RESULTS: "STATUS CLASS NAME" of each test case in the gtest
# reports in RESULTS (ci_ctest's, in a per-binary build), one a line, in the
# reports' order. STATUS is skipped (the case is marked so), failed (it holds a
# <failure>) or passed; the one reading of the reports that the counts and the
# per-target checks share.
ci_case_results() {
  cat "$1"/*.xml 2>/dev/null |
    awk 'function attribute(key) {
           return match($0, " " key "=\"[^\"]*\"") ? substr($0, RSTART + length(key) + 3, RLENGTH - length(key) - 4) : ""
         }
         function emit() { if (status != "") print status, class, name; status = "" }
         /<testcase /{
           emit(); name = attribute("name"); class = attribute("classname")
           status = /result="skipped"/ ? "skipped" : "passed"
           if (/\/>[[:space:]]*$/) emit()
           next
         }
         /<failure/{ if (status != "") status = "failed" }
         /<\/testcase>/{ emit() }'
}

# ci_case_counts LOG RESULTS: "passed failed skipped" of a per-binary ctest
# run: the cases in the gtest reports in RESULTS (a binary that ended without
# its report counts as one failed case), plus ctest's other tests from LOG.
ci_case_counts() {
  local log=$1 results=$2 name
  {
    ci_case_results "$results" | awk '{n[$1]++} END {print n["passed"] + 0, n["failed"] + 0, n["skipped"] + 0}'
    sed -nE 's/^.*Test +#[0-9]+: gtest\.([^ ]+) .*$/\1/p' "$log" | while read -r name; do
      [ -f "$results/$name.xml" ] || echo "0 1 0"
    done
    grep -E 'Test +#[0-9]+: ' "$log" | grep -vE 'Test +#[0-9]+: gtest\.' |
      awk '/ Passed /{p++; next} /\*\*\*Skipped /{s++; next} {f++} END {print p + 0, f + 0, s + 0}'
  } | awk '{p += $1; f += $2; s += $3} END {print p, f, s}'
}

# ci_passed_cases RESULTS: "CLASS NAME" of each test case that passed in the
# gtest reports in RESULTS (ci_case_results).
ci_passed_cases() {
  ci_case_results "$1" | sed -n 's/^passed //p'
}

# ci_targets_run RESULTS: the kernel targets whose tests passed in the gtest
# reports in RESULTS: Highway's, from the per-target kernel tests, and the
# registry's own (AVX3_ZEN4), from the end-to-end tests run per target; on one
# line, in the reports' order.
ci_targets_run() {
  ci_passed_cases "$1" | sed -nE 's#^([^ ]*RopeKernelTest|EveryTarget/[A-Za-z]+) [^ ]*/([A-Z0-9_]+)$#\2#p' |
    awk '!seen[$0]++' | tr '\n' ' ' | sed 's/ $//'
}

# ci_one_target: the one Highway target that the sanitizer and fuzz builds
# compile (six targets under ASan took over 17 minutes): AVX3 (AVX-512) where
# this CPU has it, so the kernels' 32-register paths run under the sanitizers
# too; else AVX2; else nothing (the compiler's baseline).
ci_one_target() {
  local flags
  flags=$(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null || true)
  local f has_avx3=1
  for f in avx512f avx512vl avx512dq avx512bw; do
    [[ " $flags " == *" $f "* ]] || has_avx3=0
  done
  if [ "$has_avx3" = 1 ]; then
    echo AVX3
  elif [[ " $flags " == *" avx2 "* && " $flags " == *" fma "* ]]; then
    echo AVX2
  fi
}

# ci_one_target_march: the -march flag that makes ci_one_target Highway's
# static target.
ci_one_target_march() {
  case "$(ci_one_target)" in
    AVX3) echo "-march=skylake-avx512" ;;
    AVX2) echo "-march=haswell" ;;
  esac
}

# ci_check_one_target DIR: fails unless the library built in DIR runs the
# kernels of ci_one_target (Highway picks its static target from the
# compiler's feature macros; with -march=haswell's missing AES it once
# silently compiled SSSE3). A CPU with AVX512_BF16 runs AVX3_ZEN4: the AVX3
# kernels rounding bf16 in hardware, the AVX3 build's best.
ci_check_one_target() {
  local want got
  want=$(ci_one_target)
  [ -n "$want" ] || return 0
  if [ "$want" = AVX3 ] && grep -m1 '^flags' /proc/cpuinfo | grep -qw avx512_bf16; then
    want=AVX3_ZEN4
  fi
  got=$("$1/tests/target_env_check" BEST | sed -nE 's/^active target ([A-Z0-9_]+).*/\1/p')
  if [ "$got" != "$want" ]; then
    echo "ci: $1 runs the ${got:-unknown} kernels, not $want ($(ci_one_target_march))" >&2
    return 1
  fi
  echo "ci: $1 runs the $got kernels"
}

# The sanitizer builds' optimization, as CMake arguments of a RelWithDebInfo
# build: -O1 -g1 (line tables: the reports' stacks still name file and line),
# the sanitizers' usual level, and half the compile time of -O2 -g.
ci_sanitizer_optimize=(-DCMAKE_C_FLAGS_RELWITHDEBINFO="-O1 -g1" -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1")

# ci_build_asan [-- BUILD_ARGS...]: configures and builds build/asan, the
# instrumented build shared by the sanitize stage (its whole suite) and the
# fuzz stage (tests/fuzz_apply): clang, AddressSanitizer + UndefinedBehavior-
# Sanitizer with -fno-sanitize-recover=all (the first report aborts),
# libFuzzer's coverage instrumentation (ROTARY_FUZZ), one Highway target
# (ci_one_target, checked after the build: six targets under ASan took over
# 17 minutes to compile; every target's kernels are tested by the native,
# clang and arm64 stages), at ci_sanitizer_optimize. One build for both
# stages, with clang, whose ASan build is 40% faster than gcc's. Its ctest
# runs each test binary once (ci_per_binary_tests).
ci_build_asan() {
  local flags
  flags="-fno-sanitize-recover=all $(ci_one_target_march)"
  bash ci/install-deps.sh clang libclang-rt-14-dev || return 1
  CC=clang CXX=clang++ ci_build build/asan -DCMAKE_BUILD_TYPE=RelWithDebInfo "${ci_sanitizer_optimize[@]}" \
    -DROTARY_BUILD_BENCH=OFF -DROTARY_SANITIZE=address,undefined -DROTARY_FUZZ=ON -DROTARY_HWY_TARGETS=static \
    "${ci_per_binary_tests[@]}" -DCMAKE_C_FLAGS="$flags" -DCMAKE_CXX_FLAGS="$flags" "$@" || return 1
  [ $# -gt 0 ] || ci_check_one_target build/asan  # (a build of named targets may lack the checker)
}
