#!/usr/bin/env bash
# Instructions a command executes, per function, under valgrind's callgrind:
# how to measure a kernel change where timings cannot be trusted (on a shared
# VM the same case can run twice as fast in one process as in the next).
# Exact and repeatable, but not time: a change that trades instructions for
# memory traffic, or one bound by a few slow instructions, still needs the
# benchmark's ratios (docs/performance.md).
#
#   bash bench/count_instructions.sh [--target=T] [--match=REGEX] [--top=N] [--out=FILE] -- COMMAND [ARGS...]
#
# Runs COMMAND with ROTARY_TARGET=T (default AVX2: valgrind 3.19 decodes no
# AVX-512) and prints the inclusive instructions of the N (default 30)
# costliest functions whose names match REGEX (default: rotary's C entry
# points and its namespaces), and the program's total. --out keeps callgrind's
# file for callgrind_annotate. Divide by the calls COMMAND makes: the counts
# include every call, the first (table build) too.
#
# Highway 1.0.3's libhwy reads the time stamp counter with RDTSCP when it
# starts, which valgrind 3.19 cannot decode (SIGILL). COMMAND runs with a copy
# of libhwy in which each RDTSCP is RDTSC and a NOP, of the same length (the
# processor id RDTSCP also returns is not used), found first through
# LD_LIBRARY_PATH; COMMAND must link libhwy dynamically, as every rotary
# binary does.
set -euo pipefail

target=AVX2
match='rotary_[a-z_]+|rotary::|rotary_bench::'
top=30
out=""
while [ $# -gt 0 ] && [ "$1" != "--" ]; do
  case "$1" in
    --target=*) target=${1#--target=} ;;
    --match=*) match=${1#--match=} ;;
    --top=*) top=${1#--top=} ;;
    --out=*) out=${1#--out=} ;;
    *)
      echo "bench/count_instructions.sh: unknown argument '$1' (see the comment at the top)" >&2
      exit 2
      ;;
  esac
  shift
done
if [ $# -lt 2 ]; then
  echo "usage: bash bench/count_instructions.sh [--target=T] [--match=REGEX] [--top=N] [--out=FILE] -- COMMAND [ARGS...]" >&2
  exit 2
fi
shift # the --

bash "$(dirname "$0")/../ci/install-deps.sh" valgrind

hwy=$(ldconfig -p | awk '/libhwy\.so\.1 .*x86-64/ {print $NF; exit}')
if [ -z "$hwy" ]; then
  echo "bench/count_instructions.sh: no x86-64 libhwy.so.1 in ldconfig's cache (install libhwy-dev)" >&2
  exit 1
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
perl -0777 -pe 's/\x0f\x01\xf9/\x0f\x31\x90/g' "$hwy" >"$work/libhwy.so.1"
if cmp -s "$hwy" "$work/libhwy.so.1"; then
  echo "bench/count_instructions.sh: $hwy holds no RDTSCP; running it as it is" >&2
fi

profile=${out:-$work/callgrind.out}
LD_LIBRARY_PATH="$work${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" ROTARY_TARGET=$target \
  valgrind --tool=callgrind --callgrind-out-file="$profile" "$@" >"$work/stdout" 2>"$work/stderr" || {
  cat "$work/stderr" >&2
  echo "bench/count_instructions.sh: the command failed under valgrind (its stderr above)" >&2
  exit 1
}

echo "instructions (inclusive), ROTARY_TARGET=$target: $*"
callgrind_annotate --inclusive=yes --threshold=100 "$profile" 2>/dev/null |
  awk -v match_re="$match" -v top="$top" '
    /PROGRAM TOTALS/ { printf "%15s  (the whole program)\n", $1; next }
    /^ *[0-9,]+ / && shown < top {
      cost = $1
      name = $0
      sub(/^ *[0-9,]+ +(\([^)]*\) +)?/, "", name)
      sub(/ \[[^]]*\]$/, "", name)
      sub(/^[^:]*:/, "", name)  # the file ("???" without debug info)
      if (name !~ match_re) next
      printf "%15s  %s\n", cost, name
      shown++
    }'
