// Which position id each rotated pair reads (multi-axis RoPE, docs/math.md §7):
// resolved from a config's mrope_* and vision_2d fields, once, at create.
#ifndef ROTARY_LIB_CONFIG_POSITION_AXES_H_
#define ROTARY_LIB_CONFIG_POSITION_AXES_H_

#include <cstdint>
#include <vector>

#include "dispatch/kernel_api.h"
#include "rotary/rotary.h"

namespace rotary {

struct PositionAxes {
  int count = 1;                 // position ids per token: 1 (plain), 2 (vision), 3 or 4 (M-RoPE)
  std::vector<uint8_t> of_pair;  // count > 1: the axis of each of the rotary_dim / 2 pairs

  // The axis of each float of a table row in `layout` (RowJob::row_axes): a
  // pair's cos and sin entries read its axis.
  std::vector<float> RowAxes(TableLayout layout) const;
  // The cos half of such a row as runs of floats of one axis (RowJob::axis_runs;
  // the sin half has the same axes).
  static std::vector<AxisRun> Runs(const std::vector<float>& row_axes);
};

// Validates the multi-axis fields of a config whose rotary_dim is valid.
// Throws Error(kInvalidArgument) naming the bad field.
PositionAxes ResolvePositionAxes(const rotary_config& config);

}  // namespace rotary

#endif  // ROTARY_LIB_CONFIG_POSITION_AXES_H_
