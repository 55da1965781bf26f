// rotary_config records its own size (struct_size): the library reads the
// fields a caller's header has, takes the defaults of those it lacks, and
// refuses a config that rotary_config_init did not set up or that sets fields
// of a newer header it does not know. rotary_dim 0 follows head_dim.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "rotary/rotary.h"

namespace {

rotary_status Create(const void* config) {
  rotary_rope* rope = nullptr;
  const rotary_status status = rotary_create(static_cast<const rotary_config*>(config), &rope);
  rotary_destroy(rope);
  return status;
}

TEST(ConfigAbi, InitWritesOnlyTheBytesOfTheCallersStruct) {
  for (size_t size : {offsetof(rotary_config, position_limit), sizeof(rotary_config), sizeof(rotary_config) + 24}) {
    std::vector<unsigned char> bytes(sizeof(rotary_config) + 64, 0xA5);
    rotary_config_init_sized(reinterpret_cast<rotary_config*>(bytes.data()), size);
    uint32_t recorded;
    std::memcpy(&recorded, bytes.data(), sizeof(recorded));
    EXPECT_EQ(recorded, size);
    for (size_t i = size; i < bytes.size(); ++i) ASSERT_EQ(bytes[i], 0xA5) << "byte " << i << " of a " << size;
    if (size > sizeof(rotary_config)) {  // a newer header's fields: 0, their default
      for (size_t i = sizeof(rotary_config); i < size; ++i) ASSERT_EQ(bytes[i], 0) << i;
    }
  }
  rotary_config config;
  rotary_config_init(&config);
  EXPECT_EQ(config.struct_size, sizeof(rotary_config));
  EXPECT_EQ(config.head_dim, 128);
  EXPECT_EQ(config.rotary_dim, 0);  // head_dim
}

TEST(ConfigAbi, AConfigNotSetUpByInitIsRejected) {
  rotary_config zeroed;
  std::memset(&zeroed, 0, sizeof(zeroed));
  EXPECT_EQ(Create(&zeroed), ROTARY_INVALID_ARGUMENT);
  EXPECT_NE(std::string(rotary_last_error()).find("struct_size = 0"), std::string::npos) << rotary_last_error();
  rotary_config garbage;
  rotary_config_init(&garbage);
  garbage.struct_size = 0xFFFFFFu;
  EXPECT_EQ(Create(&garbage), ROTARY_INVALID_ARGUMENT);
  EXPECT_NE(std::string(rotary_last_error()).find("rotary_config_init"), std::string::npos) << rotary_last_error();
  // Smaller than the first sized struct (ABI 1): no header ever had it.
  rotary_config small;
  rotary_config_init_sized(&small, offsetof(rotary_config, mrope_section));
  EXPECT_EQ(Create(&small), ROTARY_INVALID_ARGUMENT);
}

// A struct from a newer header: this one's fields, then more. At their
// default (0) the library takes it; set, it says it does not know them.
TEST(ConfigAbi, ANewerHeadersFieldsAreAcceptedAtTheirDefaultOnly) {
  struct Newer {
    rotary_config known;
    int64_t later_fields[3];
  } newer;
  rotary_config_init_sized(&newer.known, sizeof(newer));
  newer.known.head_dim = 64;
  EXPECT_EQ(Create(&newer), ROTARY_OK) << rotary_last_error();
  newer.later_fields[1] = 7;
  EXPECT_EQ(Create(&newer), ROTARY_UNSUPPORTED);
  EXPECT_NE(std::string(rotary_last_error()).find("newer rotary.h"), std::string::npos) << rotary_last_error();
}

// HF's default of a full rotation: setting head_dim alone is a valid config,
// the same rope as one with rotary_dim = head_dim.
TEST(ConfigAbi, RotaryDimZeroFollowsHeadDim) {
  rotary_config config;
  rotary_config_init(&config);
  config.head_dim = 64;
  rotary_config full = config;
  full.rotary_dim = 64;
  double inv_freq[64], full_inv_freq[64];
  ASSERT_EQ(rotary_plan(&config, 1, inv_freq, 32, nullptr), ROTARY_OK) << rotary_last_error();
  ASSERT_EQ(rotary_plan(&full, 1, full_inv_freq, 32, nullptr), ROTARY_OK);
  EXPECT_EQ(std::memcmp(inv_freq, full_inv_freq, 32 * sizeof(double)), 0);
  rotary_rope *rope = nullptr, *full_rope = nullptr;
  ASSERT_EQ(rotary_create(&config, &rope), ROTARY_OK);
  ASSERT_EQ(rotary_create(&full, &full_rope), ROTARY_OK);
  std::vector<float> x(3 * 64), y;
  for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(i % 17) - 8.0f;
  y = x;
  rotary_tensor tx = {x.data(), ROTARY_F32, 1, 3, 1, 3 * 64, 64, 64}, ty = tx;
  ty.data = y.data();
  ASSERT_EQ(rotary_apply(rope, &tx, nullptr, 1000), ROTARY_OK);
  ASSERT_EQ(rotary_apply(full_rope, &ty, nullptr, 1000), ROTARY_OK);
  EXPECT_EQ(x, y);
  EXPECT_NE(x[63], static_cast<float>(63 % 17) - 8.0f);  // the last component rotated too
  rotary_destroy(rope);
  rotary_destroy(full_rope);
}

}  // namespace
