// End-to-end tests that run once per kernel target this CPU supports: the
// fixture forces the target through the public API, so a bug in one target
// cannot hide behind another. (Kernel-level tests use Highway's own
// HWY_EXPORT_AND_TEST_P instead; see kernel_test.cc.)
#ifndef ROTARY_TESTS_EVERY_TARGET_H_
#define ROTARY_TESTS_EVERY_TARGET_H_

#include <string>

#include <gtest/gtest.h>

#include "rotary/rotary.hpp"

namespace rotary_test {

class EveryTargetTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    rotary::set_target(GetParam());
    ASSERT_EQ(rotary::active_target(), GetParam());
  }
  void TearDown() override { rotary::set_target("auto"); }
};

// Runs fn() once per target this CPU supports, forced through the public API
// (each run's failures name the target), then restores the default: for
// suites parameterized by something else, such as the bad-input cases.
template <typename Fn>
void ForEachSupportedTarget(const Fn& fn) {
  for (const std::string& target : rotary::supported_targets()) {
    SCOPED_TRACE("target " + target);
    rotary::set_target(target);
    if (rotary::active_target() != target) {
      ADD_FAILURE() << "could not force " << target;
      continue;
    }
    fn();
  }
  rotary::set_target("auto");
}

}  // namespace rotary_test

// Instantiates `suite` (derived from EveryTargetTest) once per supported target.
#define ROTARY_TEST_EVERY_TARGET(suite)                                                     \
  INSTANTIATE_TEST_SUITE_P(EveryTarget, suite, ::testing::ValuesIn(rotary::supported_targets()), \
                           [](const ::testing::TestParamInfo<std::string>& info) { return info.param; })

#endif  // ROTARY_TESTS_EVERY_TARGET_H_
