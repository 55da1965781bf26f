// Checks the tensors of one call against each other (shapes, storage types,
// in place or out of place, no overlap) and turns them into kernel operands.
#ifndef ROTARY_LIB_CALL_CALL_OPERANDS_H_
#define ROTARY_LIB_CALL_CALL_OPERANDS_H_

#include <algorithm>
#include <cstdint>
#include <vector>

#include "dispatch/kernel_api.h"
#include "lib/call/rope.h"
#include "lib/call/tensor_layout.h"

namespace rotary {

struct CallOperands {
  Operand operands[kMaxOperands];
  int count;  // 1, 2 (q then k), or 3 (q, then k and v into a KV cache)
  int64_t batch, seq;
  DtypeIndex src_dtype, dst_dtype;  // shared by all operands, unless per_operand
  // Operands with storage types of their own (lib/call/kv_cache_write.h):
  // operand i reads operand_src[i] and writes operand_dst[i].
  bool per_operand = false;
  DtypeIndex operand_src[kMaxOperands], operand_dst[kMaxOperands];
  int operand_encoding[kMaxOperands];  // CacheEncodingIndex of a byte cache, or -1: operand_dst is its storage
  // The first tensor's views as validated (a KV-cache write checks its caches apart from them).
  TensorLayout q_src, q_dst;
  // Copies a KV-cache write's n slots to memory of this call's own and
  // returns it (the kernels read it once checked): inline for a decode call's
  // few rows (no allocation on its path), else on the heap. Operands point
  // into it: call it once the CallOperands is where it stays.
  const int64_t* CopySlots(const int64_t* from, int64_t n) {
    int64_t* to = slots_inline_;
    if (n > kInlineSlots) {
      slots_heap_.resize(static_cast<size_t>(n));
      to = slots_heap_.data();
    }
    std::copy(from, from + n, to);
    return to;
  }
  // The memory each destination (q's, k's, the caches) lies in: [begin, end) bytes.
  uintptr_t written_begin[kMaxOperands], written_end[kMaxOperands];
  int written_count = 0;
  int64_t bytes_per_row;            // tensor bytes read + written per (b, s) row
  int64_t cost_per_row;             // the same elements at their ElementCost (lib/call/scheduler.h)

  int64_t rows() const { return batch * seq; }

  void AddWritten(uintptr_t begin, uintptr_t end) {
    written_begin[written_count] = begin;
    written_end[written_count++] = end;
  }
  // Whether `count` values at p lie (partly) in memory the call writes.
  bool Writes(const int64_t* p, int64_t count) const {
    const uintptr_t begin = reinterpret_cast<uintptr_t>(p), end = begin + static_cast<uintptr_t>(count) * 8;
    for (int i = 0; i < written_count; ++i) {
      if (begin < written_end[i] && written_begin[i] < end) return true;
    }
    return false;
  }

 private:
  static constexpr int64_t kInlineSlots = 64;
  int64_t slots_inline_[kInlineSlots];
  std::vector<int64_t> slots_heap_;
};

// count is 1 (one tensor) or 2 (q then k). Throws Error naming the bad argument.
CallOperands ValidateOperands(const TensorArgs* tensors, int count, int32_t head_dim);

}  // namespace rotary

#endif  // ROTARY_LIB_CALL_CALL_OPERANDS_H_
