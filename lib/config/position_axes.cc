#include "lib/config/position_axes.h"

#include "lib/config/enum_value.h"
#include "lib/error.h"

namespace rotary {
namespace {

enum Axis : uint8_t { kT = 0, kH = 1, kW = 2, kE = 3 };

// docs/math.md §7.2 (HF) and §7.6 (ggml MROPE): contiguous sections t, h, w
// (and e); with ggml's four entries the pairs past s_t + s_h + s_w read e.
uint8_t SectionedAxis(const int32_t* s, int32_t i) {
  if (i < s[0]) return kT;
  if (i < s[0] + s[1]) return kH;
  if (i < s[0] + s[1] + s[2]) return kW;
  return kE;
}

// docs/math.md §7.3 (HF, Qwen3-VL apply_interleaved_mrope) and §7.6 (ggml
// IMROPE): h and w on every third pair while their sections last; the rest
// is t in HF, and in ggml t only on its own stride while s_t lasts, else e.
uint8_t InterleavedAxis(const int32_t* s, int count, int32_t i) {
  if (i % 3 == 1 && i < 3 * s[1]) return kH;
  if (i % 3 == 2 && i < 3 * s[2]) return kW;
  if (count == 3 || (i % 3 == 0 && i < 3 * s[0])) return kT;
  return kE;
}

}  // namespace

std::vector<float> PositionAxes::RowAxes(TableLayout layout) const {
  const size_t pairs = of_pair.size();
  const size_t per_pair = layout == TableLayout::kPerPair ? 1 : 2;  // cos entries of a pair in a row's half
  std::vector<float> axes(2 * per_pair * pairs);
  for (size_t half = 0; half < 2; ++half) {  // the cos half, then the sin half
    for (size_t i = 0; i < pairs; ++i) {
      for (size_t k = 0; k < per_pair; ++k) axes[(half * pairs + i) * per_pair + k] = of_pair[i];
    }
  }
  return axes;
}

std::vector<AxisRun> PositionAxes::Runs(const std::vector<float>& row_axes) {
  std::vector<AxisRun> runs;
  for (size_t j = 0; j < row_axes.size() / 2; ++j) {
    if (runs.empty() || static_cast<float>(runs.back().axis) != row_axes[j]) {
      runs.push_back({static_cast<int32_t>(j), static_cast<int32_t>(j), static_cast<int32_t>(row_axes[j])});
    }
    runs.back().end = static_cast<int32_t>(j + 1);
  }
  return runs;
}

PositionAxes ResolvePositionAxes(const rotary_config& c) {
  const int32_t pairs = c.rotary_dim / 2;
  const int count = c.mrope_section_count;
  if (count != 0 && count != 3 && count != 4) {
    Fail(Status::kInvalidArgument, "config.mrope_section_count must be 0, 3 (HF's t, h, w) or 4 (ggml's t, h, w, e), ",
         "got ", count);
  }
  for (int a = count; a < 4; ++a) {
    if (c.mrope_section[a] != 0) {
      Fail(Status::kInvalidArgument, "config.mrope_section[", a, "] = ", c.mrope_section[a],
           " is past mrope_section_count = ", count);
    }
  }
  if (c.mrope_interleaved != 0 && c.mrope_interleaved != 1) {
    Fail(Status::kInvalidArgument, "config.mrope_interleaved must be 0 or 1, got ", c.mrope_interleaved);
  }
  if (c.vision_2d != 0 && c.vision_2d != 1) {
    Fail(Status::kInvalidArgument, "config.vision_2d must be 0 or 1, got ", c.vision_2d);
  }
  if (c.mrope_interleaved && count == 0) {
    Fail(Status::kInvalidArgument, "config.mrope_interleaved needs mrope_section (mrope_section_count 3 or 4)");
  }

  PositionAxes axes;
  if (c.vision_2d) {
    if (count != 0) Fail(Status::kInvalidArgument, "config.vision_2d and mrope_section are exclusive");
    if (c.rotary_dim % 4 != 0) {
      Fail(Status::kInvalidArgument, "config.vision_2d needs rotary_dim divisible by 4 (two axes of whole pairs ",
           "with the frequencies of rotary_dim / 2), got ", c.rotary_dim);
    }
    if (EnumValue(c.scaling) != ROTARY_SCALING_DEFAULT) {
      Fail(Status::kInvalidArgument, "config.vision_2d takes ROTARY_SCALING_DEFAULT only (vision encoders ",
           "have no scaling), got scaling ", EnumValue(c.scaling));
    }
    axes.count = 2;
    axes.of_pair.assign(static_cast<size_t>(pairs), kT);
    for (int32_t i = pairs / 2; i < pairs; ++i) axes.of_pair[static_cast<size_t>(i)] = kH;  // the column
    return axes;
  }
  if (count == 0) return axes;

  int64_t sum = 0;
  for (int a = 0; a < count; ++a) {
    if (c.mrope_section[a] < 0) {
      Fail(Status::kInvalidArgument, "config.mrope_section[", a, "] must be >= 0, got ", c.mrope_section[a]);
    }
    sum += c.mrope_section[a];
  }
  if (sum != pairs) {
    Fail(Status::kInvalidArgument, "config.mrope_section must add up to rotary_dim / 2 = ", pairs,
         " pairs, got ", sum);
  }
  axes.count = count;
  axes.of_pair.resize(static_cast<size_t>(pairs));
  for (int32_t i = 0; i < pairs; ++i) {
    axes.of_pair[static_cast<size_t>(i)] =
        c.mrope_interleaved ? InterleavedAxis(c.mrope_section, count, i) : SectionedAxis(c.mrope_section, i);
  }
  return axes;
}

}  // namespace rotary
