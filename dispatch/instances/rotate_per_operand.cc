// The job kernels that run operand row kernels through pointers, for every
// Highway target: RotateRowsWith, one kernel for every operand (each
// RotateRows instance of rotate_<pairing>_<source>.cc calls it with its own
// RotateOperandRowEntry), and RotateRowsPerOperand
// (KernelTable::rotate_per_operand), each operand its own: calls whose
// operands differ in storage types, such as q rotated in place with k and v
// written into an f16 KV cache (docs/math.md §9), and with qk-norm
// NormalizeOperandRow, compiled here.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "dispatch/instances/rotate_per_operand.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep

#include "dispatch/kernel_entry_points-inl.h"
#include "dispatch/qk_norm_kernels-inl.h"
#include "dispatch/rope_kernels-inl.h"

HWY_BEFORE_NAMESPACE();
namespace rotary {
namespace HWY_NAMESPACE {

HWY_NOINLINE void RotateRowRangeWith(const RowJob& job, int64_t row_begin, int64_t row_end, float* scratch,
                                     OperandRowKernel operand_row) {
  ForEachRowOfJob(job, row_begin, row_end, scratch,
                  [&](const Operand& op, int64_t b, int64_t s, int64_t row, const float* cos, const float* sin) {
                    operand_row(op, b, s, row, cos, sin, job.pairs, job.head_dim, job.streaming);
                  });
}

void RotateRowsWith(const RowJob& job, int64_t row_begin, int64_t row_end, OperandRowKernel operand_row) {
  WithRowScratch(job, row_begin, row_end, [operand_row](const RowJob& j, int64_t begin, int64_t end, float* scratch) {
    RotateRowRangeWith(j, begin, end, scratch, operand_row);
  });
}

// The operand row kernel that runs each operand's own (Operand::row_kernel).
void OperandsOwnRowKernel(const Operand& op, int64_t b, int64_t s, int64_t row, const float* cos, const float* sin,
                          size_t pairs, size_t head_dim, bool streaming) {
  op.row_kernel(op, b, s, row, cos, sin, pairs, head_dim, streaming);
}

void RotateRowsPerOperand(const RowJob& job, int64_t row_begin, int64_t row_end) {
  RotateRowsWith(job, row_begin, row_end, &OperandsOwnRowKernel);
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
