// The job kernel whose operands each run their own row kernel
// (KernelTable::rotate_per_operand), for every Highway target: calls whose
// operands differ in storage types, such as q rotated in place with k and v
// written into an f16 KV cache (docs/math.md §9). The operands' row kernels
// are the RotateOperandRowEntry instances of rotate_<pairing>_<source>.cc,
// and with qk-norm NormalizeOperandRow, compiled here.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "dispatch/instances/rotate_per_operand.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep

#include "dispatch/kernel_entry_points-inl.h"
#include "dispatch/qk_norm_kernels-inl.h"
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

// The qk-norm of such an operand, per source storage.
template void NormalizeOperandRow<F32Storage>(const Operand&, int64_t, int64_t, int64_t, const float*, const float*,
                                              size_t, size_t, bool);
template void NormalizeOperandRow<F16Storage>(const Operand&, int64_t, int64_t, int64_t, const float*, const float*,
                                              size_t, size_t, bool);
template void NormalizeOperandRow<BF16Storage>(const Operand&, int64_t, int64_t, int64_t, const float*,
                                               const float*, size_t, size_t, bool);

// NOLINTNEXTLINE(google-readability-namespace-comments)
}  // namespace HWY_NAMESPACE
}  // namespace rotary
HWY_AFTER_NAMESPACE();
