#!/usr/bin/env bash
# Installs the Debian packages rotary needs (or those named as arguments).
# Idempotent and quiet: does nothing, and prints nothing, when all are present.
set -euo pipefail

packages=("$@")
if [ ${#packages[@]} -eq 0 ]; then
  packages=(cmake make ninja-build g++ pkg-config libhwy-dev libtbb-dev libgtest-dev libbenchmark-dev)
fi

missing=()
for p in "${packages[@]}"; do
  # (not `dpkg-query | grep -q`: under pipefail an early grep exit fails the pipe)
  grep -q "install ok installed" <<<"$(dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null)" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
echo "ci/install-deps.sh: installing ${missing[*]}"
$sudo apt-get -o DPkg::Lock::Timeout=600 update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
