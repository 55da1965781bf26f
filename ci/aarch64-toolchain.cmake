# Cross-compiles rotary for aarch64 (arm64) with Debian's g++-aarch64-linux-gnu
# against the arm64 multiarch dev packages (libhwy-dev:arm64, libtbb-dev:arm64,
# libgtest-dev:arm64, whose CMake packages live in /usr/lib/aarch64-linux-gnu)
# and runs every test (and gtest discovery) under qemu-user. Used by ci/arm64.sh.
#
#   cmake -S . -B build/arm64 -DCMAKE_TOOLCHAIN_FILE=ci/aarch64-toolchain.cmake \
#         -DROTARY_QEMU_CPU=cortex-a57        # NEON only
#         -DROTARY_QEMU_CPU=max,sve=on,sve256=on   # NEON + SVE, SVE_256
#
# Changing ROTARY_QEMU_CPU in an existing build directory rebuilds nothing: it
# only regenerates the test lists, which gtest discovery (PRE_TEST mode, at
# ctest time) then rebuilds under the new CPU, because the Highway test names
# depend on which targets that CPU supports. (ci/arm64.sh's build has no lists:
# ROTARY_TESTS_PER_BINARY runs each test binary whole.)
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)

# Programs (cmake, qemu) come from the host; libraries and packages from the
# arm64 multiarch directories, never the host's x86_64 ones.
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)

# Run with the arm64 multiarch loader and libc (libc6:arm64, pulled in by the
# :arm64 dev packages), i.e. `-L /`. Not `-L /usr/aarch64-linux-gnu`: that
# loader comes from libc6-arm64-cross, a different glibc build than the
# /lib/aarch64-linux-gnu/libc.so.6 it then loads (found first through
# ld.so.cache), and the mismatch hangs the first pthread_create (TBB's
# workers) in a loop over the loader's stack cache.
set(ROTARY_QEMU_CPU "max,sve=on,sve256=on" CACHE STRING "qemu-aarch64 -cpu model the tests run on")
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64 -L / -cpu ${ROTARY_QEMU_CPU})
set(CMAKE_GTEST_DISCOVER_TESTS_DISCOVERY_MODE PRE_TEST)
