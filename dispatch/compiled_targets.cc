// Lists the kernels of every compiled Highway target (kCompiledTargets). The
// kernels are only declared here (kernel_entry_points-inl.h) and compiled in
// dispatch/instances/; Highway re-includes this file for every target in
// HWY_TARGETS to make each target's KernelTable.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "dispatch/compiled_targets.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep

#include "dispatch/kernel_entry_points-inl.h"

HWY_BEFORE_NAMESPACE();
namespace rotary {
namespace HWY_NAMESPACE {

// The kernels of one pairing that read storage Src (at DtypeIndex `src`).
template <int kPairing, class Src, class BF16Out>
constexpr void ListKernelsFrom(KernelTable& table, DtypeIndex src) {
  table.rotate[kPairing][src][kF32] = &RotateRows<kPairing, Src, F32Storage>;
  table.rotate[kPairing][src][kF16] = &RotateRows<kPairing, Src, F16Storage>;
  table.rotate[kPairing][src][kBF16] = &RotateRows<kPairing, Src, BF16Out>;
  table.rotate_operand[kPairing][src][kF32] = &RotateOperandRowEntry<kPairing, Src, F32Storage>;
  table.rotate_operand[kPairing][src][kF16] = &RotateOperandRowEntry<kPairing, Src, F16Storage>;
  table.rotate_operand[kPairing][src][kBF16] = &RotateOperandRowEntry<kPairing, Src, BF16Out>;
  table.rotate_operand_encoded[kPairing][src][kEncodeE4M3] = &RotateOperandRowEncoded<kPairing, Src, kEncodeE4M3>;
  table.rotate_operand_encoded[kPairing][src][kEncodeE5M2] = &RotateOperandRowEncoded<kPairing, Src, kEncodeE5M2>;
  table.rotate_operand_encoded[kPairing][src][kEncodeQ8_0] = &RotateOperandRowEncoded<kPairing, Src, kEncodeQ8_0>;
  table.norm_rotate[kPairing][src][kF32] = &NormRotateRows<kPairing, Src, F32Storage>;
  table.norm_rotate[kPairing][src][kF16] = &NormRotateRows<kPairing, Src, F16Storage>;
  table.norm_rotate[kPairing][src][kBF16] = &NormRotateRows<kPairing, Src, BF16Out>;
}

template <int kPairing, class BF16Out>
constexpr void ListKernelsOf(KernelTable& table) {
  ListKernelsFrom<kPairing, F32Storage, BF16Out>(table, kF32);
  ListKernelsFrom<kPairing, F16Storage, BF16Out>(table, kF16);
  ListKernelsFrom<kPairing, BF16Storage, BF16Out>(table, kBF16);
}

// This target's KernelTable; the bf16 destination is BF16Storage, or on
// AVX3_ZEN4 BF16NativeStorage (rounded by AVX512_BF16).
template <class BF16Out = BF16Storage>
constexpr KernelTable MakeKernelTable() {
  KernelTable table{};
  ListKernelsOf<kNeoxPairs, BF16Out>(table);
  ListKernelsOf<kInterleavedPairs, BF16Out>(table);
  table.rotate_per_operand = &RotateRowsPerOperand;
  table.normalize_operand[kF32] = &NormalizeOperandRow<F32Storage>;
  table.normalize_operand[kF16] = &NormalizeOperandRow<F16Storage>;
  table.normalize_operand[kBF16] = &NormalizeOperandRow<BF16Storage>;
  table.build_rows = &BuildTableRows;
  table.synthesize_row = &SynthesizeRow;
  return table;
}

// NOLINTNEXTLINE(google-readability-namespace-comments)
}  // namespace HWY_NAMESPACE
}  // namespace rotary
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include "dispatch/compiled_targets.h"

namespace rotary {

#define ROTARY_TARGET_ENTRY(TARGET) \
  {HWY_##TARGET, #TARGET, N_##TARGET::MakeKernelTable(), 0},

// Constant-initialized (no static-init order issues). Best first: the order in which targets are preferred when several are supported.
const CompiledTarget kCompiledTargets[] = {
    // AVX3_ZEN4: the best AVX-512 kernels built (AVX3; AVX3_DL where a build
    // opts into it) with bf16 output rounded by AVX512_BF16 (convert-inl.h),
    // where the CPU has it. Highway from 1.1 has a target of this name with
    // these features; 1.0.3 does not.
#if HWY_TARGETS & HWY_AVX3_DL
    {HWY_AVX3_DL, "AVX3_ZEN4", N_AVX3_DL::MakeKernelTable<N_AVX3_DL::BF16NativeStorage>(), kAvx512Bf16},
    ROTARY_TARGET_ENTRY(AVX3_DL)
#elif HWY_TARGETS & HWY_AVX3
    {HWY_AVX3, "AVX3_ZEN4", N_AVX3::MakeKernelTable<N_AVX3::BF16NativeStorage>(), kAvx512Bf16},
#endif
#if HWY_TARGETS & HWY_AVX3
    ROTARY_TARGET_ENTRY(AVX3)
#endif
#if HWY_TARGETS & HWY_AVX2
    ROTARY_TARGET_ENTRY(AVX2)
#endif
#if HWY_TARGETS & HWY_SSE4
    ROTARY_TARGET_ENTRY(SSE4)
#endif
#if HWY_TARGETS & HWY_SSSE3
    ROTARY_TARGET_ENTRY(SSSE3)
#endif
#if HWY_TARGETS & HWY_SVE2_128
    ROTARY_TARGET_ENTRY(SVE2_128)
#endif
#if HWY_TARGETS & HWY_SVE_256
    ROTARY_TARGET_ENTRY(SVE_256)
#endif
#if HWY_TARGETS & HWY_SVE2
    ROTARY_TARGET_ENTRY(SVE2)
#endif
#if HWY_TARGETS & HWY_SVE
    ROTARY_TARGET_ENTRY(SVE)
#endif
#if HWY_TARGETS & HWY_NEON
    ROTARY_TARGET_ENTRY(NEON)
#endif
#if HWY_TARGETS & HWY_RVV
    ROTARY_TARGET_ENTRY(RVV)
#endif
#if HWY_TARGETS & HWY_WASM
    ROTARY_TARGET_ENTRY(WASM)
#endif
#if HWY_TARGETS & HWY_EMU128
    ROTARY_TARGET_ENTRY(EMU128)
#endif
#if HWY_TARGETS & HWY_SCALAR
    ROTARY_TARGET_ENTRY(SCALAR)
#endif
};
#undef ROTARY_TARGET_ENTRY

const size_t kNumCompiledTargets = sizeof(kCompiledTargets) / sizeof(kCompiledTargets[0]);

}  // namespace rotary
#endif  // HWY_ONCE
