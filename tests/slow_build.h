// Whether this test binary runs many times slower than an optimized native
// build: under an emulator (arm64 via qemu, ~50x), a sanitizer (TSan
// instruments every store, ~5-20x) or without optimization. Tests that size
// their work (trials, chunk sizes, random inputs) use it, so that a watchdog
// or a CI time limit is never reached by a slow build doing its normal work.
#ifndef ROTARY_TESTS_SLOW_BUILD_H_
#define ROTARY_TESTS_SLOW_BUILD_H_

#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define ROTARY_TESTS_SANITIZED 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define ROTARY_TESTS_SANITIZED 1
#endif

namespace rotary_test {

#if defined(ROTARY_TESTS_EMULATED) || defined(ROTARY_TESTS_SANITIZED) || !defined(__OPTIMIZE__)
constexpr bool kSlowBuild = true;
#else
constexpr bool kSlowBuild = false;
#endif

}  // namespace rotary_test

#endif  // ROTARY_TESTS_SLOW_BUILD_H_
