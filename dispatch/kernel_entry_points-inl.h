// The per-target functions the kernel registry lists (compiled_targets.cc),
// declared only: RotateRows is defined in rope_kernels-inl.h and instantiated
// by dispatch/instances/rotate_<pairing>_<source>.cc; NormRotateRows is
// defined in qk_norm_kernels-inl.h and instantiated by
// dispatch/instances/norm_rotate_<pairing>.cc; BuildTableRows,
// SynthesizeRow and GatherAxisRow are defined in table_build-inl.h,
// row_synthesis-inl.h and axis_rows-inl.h and compiled by
// dispatch/instances/table_rows.cc.
// The heavy instantiations are thus spread over several translation units
// that compile in parallel, and whoever lists or calls the kernels (the
// registry, the tests) compiles none of them.

// Per-target include guard (Highway's convention for -inl.h files).
#if defined(ROTARY_DISPATCH_KERNEL_ENTRY_POINTS_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef ROTARY_DISPATCH_KERNEL_ENTRY_POINTS_INL_H_
#undef ROTARY_DISPATCH_KERNEL_ENTRY_POINTS_INL_H_
#else
#define ROTARY_DISPATCH_KERNEL_ENTRY_POINTS_INL_H_
#endif

#include <cstdint>

#include "dispatch/convert-inl.h"
#include "dispatch/kernel_api.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace rotary {
namespace HWY_NAMESPACE {

// Rows [row_begin, row_end) of a job (a RowKernel) for one pairing (PairingIndex)
// reading storage Src and writing storage Dst (F32Storage, F16Storage,
// BF16Storage, or BF16NativeStorage where ROTARY_NATIVE_BF16).
template <int kPairing, class Src, class Dst>
void RotateRows(const RowJob& job, int64_t row_begin, int64_t row_end);

// One operand's row (an OperandRowKernel of KernelTable::rotate_operand),
// instantiated with RotateRows.
template <int kPairing, class Src, class Dst>
void RotateOperandRowEntry(const Operand& op, int64_t b, int64_t s, int64_t row, const float* cos, const float* sin,
                           size_t pairs, size_t head_dim, bool one_at_a_time);

// One operand's row into a KV cache of an encoded format (CacheEncodingIndex
// kEncoding): an OperandRowKernel of KernelTable::rotate_operand_encoded,
// defined in cache_encoding-inl.h, compiled by dispatch/instances/cache_encoding.cc.
template <int kPairing, class Src, int kEncoding>
void RotateOperandRowEncoded(const Operand& op, int64_t b, int64_t s, int64_t row, const float* cos, const float* sin,
                             size_t pairs, size_t head_dim, bool one_at_a_time);

// The RowKernel of KernelTable::rotate_per_operand (defined in
// dispatch/instances/rotate_per_operand.cc): each operand's own row kernel.
void RotateRowsPerOperand(const RowJob& job, int64_t row_begin, int64_t row_end);

// Rows [row_begin, row_end) of a job, every operand by operand_row (defined
// in dispatch/instances/rotate_per_operand.cc): what RotateRows runs.
void RotateRowsWith(const RowJob& job, int64_t row_begin, int64_t row_end, OperandRowKernel operand_row);

// The same with qk-norm first (Operand::norm_weight): a RowKernel of
// KernelTable::norm_rotate.
template <int kPairing, class Src, class Dst>
void NormRotateRows(const RowJob& job, int64_t row_begin, int64_t row_end);

// qk-norm of one operand's row, then its Operand::normalized_row_kernel (an
// OperandRowKernel of KernelTable::normalize_operand, defined in
// qk_norm_kernels-inl.h, compiled by dispatch/instances/rotate_per_operand.cc).
template <class Src>
void NormalizeOperandRow(const Operand& op, int64_t b, int64_t s, int64_t row, const float* cos, const float* sin,
                         size_t pairs, size_t head_dim, bool streaming);

// A RowBuildKernel.
void BuildTableRows(const RowBuild& build, int64_t step_begin, int64_t step_end, float* HWY_RESTRICT row);

// A RowSynthesisKernel (defined in row_synthesis-inl.h, compiled by
// dispatch/instances/table_rows.cc), called by every RotateRows.
const float* SynthesizeRow(const TableView& t, int64_t position, float* HWY_RESTRICT row);

// The row of a token of a multi-axis job whose axis positions differ
// (positions: num_axes of them, offsets added), gathered into scratch (defined
// in axis_rows-inl.h, compiled by dispatch/instances/table_rows.cc): scratch
// holds 1 + num_axes rows of ScratchRowFloats(row_floats) floats (the last
// num_axes for the rows of the axes, synthesized first in the modes that store
// no rows).
const float* GatherAxisRow(const RowJob& job, const int64_t* positions, float* HWY_RESTRICT scratch);

// Applies X(kPairing, Src, Dst) to every destination storage of this target:
// what an instances/ file instantiates. The registry (compiled_targets.cc)
// names the same kernels by DtypeIndex; one it names that no instances/ file
// instantiates fails to link.
#undef ROTARY_FOR_EACH_DESTINATION
#if ROTARY_NATIVE_BF16
#define ROTARY_FOR_EACH_DESTINATION(X, PAIRING, SRC) \
  X(PAIRING, SRC, F32Storage) X(PAIRING, SRC, F16Storage) X(PAIRING, SRC, BF16Storage) X(PAIRING, SRC, BF16NativeStorage)
#else
#define ROTARY_FOR_EACH_DESTINATION(X, PAIRING, SRC) \
  X(PAIRING, SRC, F32Storage) X(PAIRING, SRC, F16Storage) X(PAIRING, SRC, BF16Storage)
#endif

// NOLINTNEXTLINE(google-readability-namespace-comments)
}  // namespace HWY_NAMESPACE
}  // namespace rotary
HWY_AFTER_NAMESPACE();

#endif  // per-target include guard
