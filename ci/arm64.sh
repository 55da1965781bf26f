#!/usr/bin/env bash
# arm64: cross-builds rotary for aarch64 (Debian's g++-aarch64-linux-gnu against
# the arm64 multiarch dev packages, ci/aarch64-toolchain.cmake), then runs the
# CTest suite under qemu-user on the CPU models below, so that every test runs
# on every compiled Highway target. The first model runs its whole suite (the
# target-independent tests and NEON, SCALAR); the others run only the tests of
# the targets listed for them, so each target's tests run once (emulated SVE
# costs 2-3x NEON: repeating every target on every model made this stage most
# of the CI run). ctest runs each test binary once (ci_per_binary_tests: a
# process start under qemu costs about 0.1 s, half of a typical case), and
# after each run this checks from the binaries' reports of their cases that
# every listed target really ran (kernel tests and end-to-end tests) and that
# the targets the model lacks were not offered (so the -cpu setting really
# took effect).
# `bash ci/arm64.sh cortex-a57` runs only the models whose -cpu starts so, each
# with its whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
source ci/lib.sh

# qemu -cpu | targets tested on it | targets that must be absent.
# The registry prefers SVE2_128 > SVE_256 > SVE > NEON; Highway offers SVE_256
# only at a 256-bit vector length and SVE2_128 only at 128 bits, so one SVE
# model per length covers every compiled SVE target. The length-agnostic SVE
# runs at 384 bits: 12 f32 lanes, of which Highway uses the largest power of
# two, 8, so the lanes past them, which that target's code must leave out of
# every result, are there (at 128 or 256 bits there are none). SVE2 (the
# length-agnostic one) is not compiled (CMakeLists.txt): no model may offer it.
models=(
  "cortex-a57|NEON SCALAR|SVE SVE2 SVE_256 SVE2_128"
  "max,sve=on,sve384=on|SVE|SVE2 SVE_256 SVE2_128"
  "max,sve=on,sve256=on|SVE_256|SVE2 SVE2_128"
  "max,sve=on,sve128=on|SVE2_128|SVE2 SVE_256"
)
whole_suite_models=1 # the first model runs every test it has
if [ $# -gt 0 ]; then
  picked=()
  for m in "${models[@]}"; do
    for want in "$@"; do [[ $m == "$want"* ]] && picked+=("$m") && break; done
  done
  [ ${#picked[@]} -gt 0 ] || { echo "ci/arm64.sh: no CPU model matches '$*'" >&2 && exit 2; }
  models=("${picked[@]}")
  whole_suite_models=${#models[@]}
fi

sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
# install-deps.sh runs apt-get update whenever it installs, so the arm64
# package lists arrive with the first install after this.
grep -qx arm64 <<<"$(dpkg --print-foreign-architectures)" || $sudo dpkg --add-architecture arm64
bash ci/install-deps.sh cmake make ninja-build qemu-user g++-aarch64-linux-gnu \
  libhwy-dev:arm64 libtbb-dev:arm64 libgtest-dev:arm64

# check_targets RESULTS LIST TESTED ABSENT: prints "TARGET: K kernel + E
# end-to-end tests passed" for each tested target and fails if one has none in
# the gtest reports in RESULTS (ci_ctest's), or if a target that must be absent
# is in LIST (the cases kernel_test and apply_test offer on this CPU model,
# unfiltered).
check_targets() {
  local results=$1 list=$2 tested=$3 absent=$4 ok=0 t kernel apply passed
  passed=$(ci_passed_cases "$results")
  for t in $tested; do
    kernel=$(grep -cE "^[^ ]*RopeKernelTest [^ ]*/$t\$" <<<"$passed" || true)
    apply=$(grep -cE "^EveryTarget/[A-Za-z]+ [^ ]*/$t\$" <<<"$passed" || true)
    echo "  $t: $kernel kernel + $apply end-to-end tests passed"
    if [ "$kernel" -eq 0 ] || [ "$apply" -eq 0 ]; then
      echo "ci/arm64.sh: $t must pass kernel and end-to-end tests on this CPU model (failed, or not run)" >&2
      ok=1
    fi
  done
  for t in $absent; do
    if grep -qE "^  [^ ]*/$t( |\$)" "$list"; then
      echo "ci/arm64.sh: $t tests are offered on a CPU model without $t: the -cpu setting did not apply" >&2
      ok=1
    fi
  done
  return "$ok"
}

ci_build build/arm64 -DCMAKE_TOOLCHAIN_FILE=ci/aarch64-toolchain.cmake -DCMAKE_BUILD_TYPE=Release \
  -DROTARY_WERROR=ON -DROTARY_BUILD_BENCH=OFF "${ci_per_binary_tests[@]}"

rc=0
for i in "${!models[@]}"; do
  IFS='|' read -r cpu tested absent <<<"${models[$i]}"
  echo "--- arm64 under qemu-aarch64 -cpu $cpu ---"
  # Re-configuring rebuilds nothing: only the emulator command changes.
  cmake -S . -B build/arm64 -DROTARY_QEMU_CPU="$cpu" >/dev/null
  # The same qemu command as the toolchain's emulator; prints the target chosen.
  qemu-aarch64 -L / -cpu "$cpu" build/arm64/tests/target_env_check BEST | sed -n 1p || true
  name=${cpu//[,=]/_}
  filter=()
  if [ "$i" -ge "$whole_suite_models" ]; then
    # The test binaries only, and in them only the cases of these targets.
    filter=(-L gtest)
    export GTEST_FILTER="*/$(sed 's# #:*/#g' <<<"$tested")"
    echo "(the tests of $tested; the rest ran on ${models[0]%%|*})"
  fi
  run_ok=0
  ci_ctest build/arm64 "build/arm64/ci-ctest-$name.log" "${filter[@]}" || run_ok=1
  unset GTEST_FILTER
  for binary in kernel_test apply_test; do
    qemu-aarch64 -L / -cpu "$cpu" "build/arm64/tests/$binary" --gtest_list_tests || run_ok=1
  done >"build/arm64/ci-tests-$name.txt"
  check_targets build/arm64/gtest-results "build/arm64/ci-tests-$name.txt" "$tested" "$absent" || run_ok=1
  [ "$run_ok" -eq 0 ] || rc=1
done
exit "$rc"
