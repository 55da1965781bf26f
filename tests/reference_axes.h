// Which position axis each rotated pair reads (multi-axis RoPE, docs/math.md
// §7), written the way HF and ggml state it, sharing no code with the library
// (lib/config/position_axes.cc states the same rules on the pair index).
#ifndef ROTARY_TESTS_REFERENCE_AXES_H_
#define ROTARY_TESTS_REFERENCE_AXES_H_

#include <vector>

#include "rotary/rotary.h"

namespace rotary_test {

enum Axis { kT = 0, kH = 1, kW = 2, kE = 3 };

// HF Qwen2-VL apply_multimodal_rotary_pos_emb: the doubled cos table (R
// components) split into chunks of mrope_section * 2 = [s_t, s_h, s_w, s_t,
// s_h, s_w]; chunk j comes from axis j % 3. Pair i reads component i's chunk.
inline std::vector<int> HfSectionedAxes(const std::vector<int>& section, int pairs) {
  std::vector<int> chunks;
  for (int twice = 0; twice < 2; ++twice) chunks.insert(chunks.end(), section.begin(), section.end());
  std::vector<int> component_axis;
  for (size_t j = 0; j < chunks.size(); ++j) component_axis.insert(component_axis.end(), chunks[j], static_cast<int>(j % 3));
  return std::vector<int>(component_axis.begin(), component_axis.begin() + pairs);
}

// HF Qwen3-VL apply_interleaved_mrope: t everywhere, then the slots
// slice(1, 3 * s_h, 3) overwritten by h and slice(2, 3 * s_w, 3) by w.
inline std::vector<int> HfInterleavedAxes(const std::vector<int>& section, int pairs) {
  std::vector<int> axis(pairs, kT);
  for (int i = 1; i < 3 * section[1] && i < pairs; i += 3) axis[i] = kH;
  for (int i = 2; i < 3 * section[2] && i < pairs; i += 3) axis[i] = kW;
  return axis;
}

// ggml ggml_mrope_cache_init with four sections.
inline std::vector<int> GgmlAxes(const std::vector<int>& s, int pairs, bool imrope) {
  std::vector<int> axis(pairs);
  const int sect_dims = s[0] + s[1] + s[2] + s[3];
  for (int i = 0; i < pairs; ++i) {
    const int sector = i % sect_dims;
    if (imrope) {
      if (sector % 3 == 1 && sector < 3 * s[1]) axis[i] = kH;
      else if (sector % 3 == 2 && sector < 3 * s[2]) axis[i] = kW;
      else if (sector % 3 == 0 && sector < 3 * s[0]) axis[i] = kT;
      else axis[i] = kE;
    } else {
      axis[i] = sector < s[0] ? kT : sector < s[0] + s[1] ? kH : sector < s[0] + s[1] + s[2] ? kW : kE;
    }
  }
  return axis;
}

// The axis of each pair of a valid config: all 0 for plain RoPE; vision_2d's
// first half reads the row (0), the second the column (1) (§7.4).
inline std::vector<int> ConfigPairAxes(const rotary_config& c) {
  const int pairs = c.rotary_dim / 2;
  if (c.vision_2d) {
    std::vector<int> axis(pairs, 0);
    for (int i = pairs / 2; i < pairs; ++i) axis[i] = 1;
    return axis;
  }
  if (c.mrope_section_count == 0) return std::vector<int>(pairs, 0);
  const std::vector<int> section(c.mrope_section, c.mrope_section + c.mrope_section_count);
  if (section.size() == 4) return GgmlAxes(section, pairs, c.mrope_interleaved != 0);
  return c.mrope_interleaved ? HfInterleavedAxes(section, pairs) : HfSectionedAxes(section, pairs);
}

}  // namespace rotary_test

#endif  // ROTARY_TESTS_REFERENCE_AXES_H_
