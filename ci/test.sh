#!/usr/bin/env bash
# The test command: installs dependencies, builds everything with warnings as
# errors, and runs the whole GoogleTest/CTest suite on every supported target.
set -euo pipefail
cd "$(dirname "$0")/.."

bash ci/install-deps.sh
# The Python module and its pytest suite (torch: the Hugging Face formulas it is checked against).
bash ci/install-deps.sh pybind11-dev python3-dev python3-numpy python3-pytest python3-torch
jobs=$(nproc)
cmake -S . -B build/test -DCMAKE_BUILD_TYPE=Release -DROTARY_WERROR=ON -DROTARY_BUILD_PYTHON=ON >/dev/null
cmake --build build/test -j "$jobs"
cd build/test
ctest --output-on-failure -j "$jobs"
