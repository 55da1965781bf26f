#!/usr/bin/env bash
# Sanitizer runs, each in its own build directory:
#   asan  the whole suite under AddressSanitizer + UndefinedBehaviorSanitizer
#         (build/asan, clang: ci_build_asan in ci/lib.sh, shared with the fuzz
#         stage). -fno-sanitize-recover=all: the first UB report aborts the
#         test, so UB fails the run instead of scrolling by. LeakSanitizer is on.
#   tsan  the concurrency tests under ThreadSanitizer (build/tsan, gcc): every test
#         whose name matches TSAN_TESTS, so new *Concurrent*, *Thread* and
#         *Stress* tests join without touching this script; only the test
#         binaries that hold one are built. Its library is compiled one file
#         at a time (ROTARY_UNITY_BUILD=OFF): the check that each file
#         includes what it uses, which the other builds' folder-at-a-time
#         compile would not notice.
# `bash ci/sanitize.sh asan` (or tsan) runs one; no argument runs both.
#
# TSan and oneTBB: Debian's libtbb.so is not instrumented, so TSan cannot see the
# synchronization inside it (task spawn -> execute on a worker -> wait). With it,
# every parallel_for reports dozens of false races: TBB's own partitioner state
# and our kernels' stores against the caller's later reads. Suppressions cannot
# fix that without hiding real races (the false reports run through our own
# code), TBB_USE_THREADING_TOOLS only feeds Intel's ITT hooks (TSan ignores
# them), and TBB offers nothing else. What works: build oneTBB itself with
# -fsanitize=thread (its own TBB_SANITIZE option) from Debian's source package
# of the installed version, and link the TSan build against that. Then TSan
# sees every happens-before edge and reports nothing on correct code, while a
# deliberately racy parallel_for body is reported and fails the run. TBB's own
# suppressions file (one known benign race in its ITT initialization) is used.
# The source is fetched with `apt-get source` through a private apt state under
# build/deps (deb-src twins of this machine's Debian sources), so the machine's
# apt configuration is left alone; building the library takes ~20 s.
set -euo pipefail
cd "$(dirname "$0")/.."
source ci/lib.sh

TSAN_TESTS='Concurren|Thread|Stress'

# The run functions are called where `set -e` does not apply (`|| rc=1`), so
# every step that can fail returns explicitly.
# The TSan build compiles one Highway target, as build/asan does (ci_build_asan):
# the sanitizers look for memory, UB and race bugs in the library's logic, which
# one target exercises; every target's kernels are tested by the native, clang
# and arm64 stages.
one_target_flags=$(ci_one_target_march)

run_asan() {
  # Warnings are the native and clang stages' job: no -Werror here, so that a
  # sanitizer-only false warning cannot fail the run.
  ci_build_asan || return 1
  ASAN_OPTIONS=detect_leaks=1:check_initialization_order=1:strict_init_order=1 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ci_ctest build/asan build/asan/ci-ctest.log
}

# Builds a TSan-instrumented oneTBB of the same version as the installed
# libtbb-dev (once: kept in build/deps) and prints its directory: install/ holds
# the library and its CMake package, src/ the source.
tsan_tbb() {
  local pkg source version root
  pkg=libtbb-dev:$(dpkg --print-architecture) # not the :arm64 one of ci/arm64.sh
  source=$(dpkg-query -W -f='${source:Package}' "$pkg") || return 1
  version=$(dpkg-query -W -f='${source:Version}' "$pkg") || return 1
  root="$PWD/build/deps/$source-$version-tsan"
  if [ -f "$root/install/lib/cmake/TBB/TBBConfig.cmake" ]; then
    echo "$root"
    return
  fi
  rm -rf "$root"
  mkdir -p "$root/apt/lists/partial" "$root/apt/cache/archives/partial" "$root/apt/sources.list.d" || return 1
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -e "$f" ] && sed -E 's/^Types:.*/Types: deb-src/' "$f" >"$root/apt/sources.list.d/${f##*/}"
  done
  cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
    sed -nE 's/^deb[[:space:]]/deb-src /p' >"$root/apt/sources.list"
  local apt=(apt-get -q -o "Dir::Etc::SourceList=$root/apt/sources.list"
    -o "Dir::Etc::SourceParts=$root/apt/sources.list.d" -o "Dir::State::Lists=$root/apt/lists"
    -o "Dir::Cache=$root/apt/cache")
  # A third-party source without deb-src entries must not stop the Debian ones.
  "${apt[@]}" update >"$root/fetch.log" 2>&1 || true
  if ! { (cd "$root" && "${apt[@]}" source --download-only "$source=$version") &&
    dpkg-source -x "$root/${source}_${version#*:}.dsc" "$root/src"; } >>"$root/fetch.log" 2>&1; then
    cat "$root/fetch.log" >&2
    echo "ci/sanitize.sh: cannot fetch and unpack the source of $source $version" >&2
    return 1
  fi
  # TBB_STRICT=OFF: gcc warns that TSan does not model atomic_thread_fence, and
  # TBB's strict mode makes warnings errors. tbbmalloc is not used by rotary.
  if ! { cmake -S "$root/src" -B "$root/build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    "${ci_sanitizer_optimize[@]}" \
    -DTBB_SANITIZE=thread -DTBB_TEST=OFF -DTBB_EXAMPLES=OFF -DTBB_STRICT=OFF -DTBBMALLOC_BUILD=OFF -DTBB_ENABLE_IPO=OFF \
    -DCMAKE_INSTALL_PREFIX="$root/install" &&
    cmake --build "$root/build" -j "$ci_jobs" && cmake --install "$root/build"; } >"$root/build.log" 2>&1; then
    cat "$root/build.log" >&2
    echo "ci/sanitize.sh: building $source $version with TSan failed" >&2
    return 1
  fi
  echo "$root"
}

# The test binaries that hold a test matching TSAN_TESTS (tests/<name>.cc builds
# the target <name>): the TSan build compiles only these, as only their tests run.
tsan_test_targets() {
  grep -lE "^TEST(_P|_F)?\([A-Za-z0-9_]+, [A-Za-z0-9_]*($TSAN_TESTS)" tests/*.cc | xargs -n1 basename | sed 's/\.cc$//'
}

run_tsan() {
  local tbb targets
  tbb=$(tsan_tbb) || return 1
  echo "ci: TSan-instrumented oneTBB in $tbb/install"
  targets=$(tsan_test_targets)
  if [ -z "$targets" ]; then
    echo "ci/sanitize.sh: no test matches '$TSAN_TESTS'" >&2
    return 1
  fi
  echo "ci: TSan test binaries: $(echo $targets)"
  # shellcheck disable=SC2086 # one --target per binary
  ci_build build/tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo "${ci_sanitizer_optimize[@]}" -DROTARY_BUILD_BENCH=OFF \
    -DROTARY_BUILD_EXAMPLES=OFF -DROTARY_BUILD_PYTHON=OFF -DROTARY_UNITY_BUILD=OFF \
    -DROTARY_SANITIZE=thread -DROTARY_HWY_TARGETS=static -DCMAKE_C_FLAGS="$one_target_flags" \
    -DCMAKE_CXX_FLAGS="$one_target_flags" -DTBB_DIR="$tbb/install/lib/cmake/TBB" \
    -DCMAKE_GTEST_DISCOVER_TESTS_DISCOVERY_MODE=PRE_TEST -- $(printf -- '--target %s ' $targets) || return 1
  # The tests find the instrumented libtbb through the build tree's RPATH. The
  # paths are compared resolved (the checkout may sit under a symlink), and
  # ldd's output is read whole first: `ldd | grep -q` under pipefail fails
  # whenever grep exits before ldd has finished writing (SIGPIPE).
  local loaded libs
  libs=$(ldd build/tsan/tests/apply_test) || return 1
  loaded=$(sed -nE 's/^[[:space:]]*libtbb\.so[^ ]* => (not found|[^ ]+).*/\1/p' <<<"$libs")
  if [ -z "$loaded" ] || [[ "$(realpath "$loaded")" != "$(realpath "$tbb/install")"/* ]]; then
    echo "ci/sanitize.sh: build/tsan loads libtbb from '${loaded:-nowhere}', not the instrumented $tbb/install/lib" >&2
    return 1
  fi
  # setarch -R: gcc 12's TSan runtime cannot map its shadow memory under the
  # 32-bit mmap randomization of some newer kernels; without ASLR it always can.
  # The test lists are read under it too (PRE_TEST discovery above: the default
  # runs each TSan binary at build time, with ASLR on).
  # Where the sandbox forbids turning ASLR off (personality(2) refused), the
  # tests run with it on, which works under the usual 28-bit randomization.
  local no_aslr=(setarch "$(uname -m)" -R)
  if ! "${no_aslr[@]}" true 2>/dev/null; then
    echo "ci/sanitize.sh: cannot disable ASLR here (setarch -R refused); running TSan with it"
    no_aslr=()
  fi
  TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:suppressions=$tbb/src/cmake/suppressions/tsan.suppressions" \
    "${no_aslr[@]}" bash -c 'source ci/lib.sh && ci_ctest build/tsan build/tsan/ci-ctest.log -R "$1"' _ "$TSAN_TESTS"
}

bash ci/install-deps.sh
bash ci/install-deps.sh dpkg-dev xz-utils

runs=("$@")
[ ${#runs[@]} -eq 0 ] && runs=(asan tsan)
for run in "${runs[@]}"; do
  case "$run" in
    asan | tsan) ;;
    *) echo "ci/sanitize.sh: unknown run '$run' (asan, tsan)" >&2 && exit 2 ;;
  esac
done
rc=0
for run in "${runs[@]}"; do
  echo "--- sanitizer run: $run ---"
  "run_$run" || rc=1
done
exit "$rc"
