// The job kernel whose operands each run their own row kernel
// (KernelTable::rotate_per_operand), for every Highway target: calls whose
// operands differ in storage types, such as q rotated in place with k and v
// written into an f16 KV cache (docs/math.md §9). The operands' row kernels
// are the RotateOperandRowEntry instances of rotate_<pairing>_<source>.cc.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "dispatch/instances/rotate_per_operand.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep

#include "dispatch/kernel_entry_points-inl.h"
#include "dispatch/rope_kernels-inl.h"

HWY_BEFORE_NAMESPACE();
namespace rotary {
namespace HWY_NAMESPACE {

HWY_NOINLINE void RotatePerOperandRowRange(const RowJob& job, int64_t row_begin, int64_t row_end, float* scratch) {
  ForEachRowOfJob(job, row_begin, row_end, scratch,
                  [&](const Operand& op, int64_t b, int64_t s, int64_t row, const float* cos, const float* sin) {
                    op.row_kernel(op, b, s, row, cos, sin, job.pairs, job.head_dim, job.streaming);
                  });
}

void RotateRowsPerOperand(const RowJob& job, int64_t row_begin, int64_t row_end) {
  WithRowScratch(job, row_begin, row_end, RotatePerOperandRowRange);
}

// NOLINTNEXTLINE(google-readability-namespace-comments)
}  // namespace HWY_NAMESPACE
}  // namespace rotary
HWY_AFTER_NAMESPACE();
