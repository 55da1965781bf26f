#include "lib/call/kv_cache_write.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <utility>
#include <vector>

#include "lib/call/scheduler.h"
#include "lib/call/tensor_layout.h"
#include "lib/error.h"

namespace rotary {
namespace {

struct Named {
  const TensorLayout& layout;
  const char* name;
};

void CheckApart(const Named& a, const Named& b, int32_t head_dim) {
  if (MayOverlap(a.layout, b.layout, head_dim)) {
    Fail(Status::kInvalidArgument, a.name, " and ", b.name,
         " may overlap: a cache must be memory of its own, apart from q, k, v and the other cache");
  }
}

// Every slot below `slots_held`, and no slot (>= 0) twice: the rows of one call
// are written by many threads at once, and two writers of one slot would leave
// whichever came last.
void CheckSlots(const int64_t* slots, int64_t count, int64_t slots_held, int64_t num_blocks, int64_t block_size) {
  bool increasing = true;
  int64_t previous = -1;
  for (int64_t i = 0; i < count; ++i) {
    const int64_t slot = slots[i];
    if (slot >= slots_held) {
      Fail(Status::kOutOfRange, "slot_mapping[", i, "] = ", slot, " is not below num_blocks * block_size = ",
           num_blocks, " * ", block_size, " = ", slots_held);
    }
    if (slot < 0) continue;
    increasing = increasing && slot > previous;
    previous = slot;
  }
  if (increasing) return;  // the usual case: a prefill's consecutive slots, a decode batch's sorted ones
  std::vector<std::pair<int64_t, int64_t>> used;  // (slot, index)
  used.reserve(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) {
    if (slots[i] >= 0) used.emplace_back(slots[i], i);
  }
  std::sort(used.begin(), used.end());
  for (size_t i = 1; i < used.size(); ++i) {
    if (used[i].first == used[i - 1].first) {
      Fail(Status::kInvalidArgument, "slot_mapping[", used[i - 1].second, "] and slot_mapping[", used[i].second,
           "] are both ", used[i].first, ": each token needs a slot of its own");
    }
  }
}

// The CacheEncodingIndex of a byte format, or -1 for ROTARY_CACHE_TENSOR.
int EncodingOf(int32_t format, int32_t head_dim) {
  switch (format) {
    case ROTARY_CACHE_TENSOR:
      return -1;
    case ROTARY_CACHE_FP8_E4M3:
      return kEncodeE4M3;
    case ROTARY_CACHE_FP8_E5M2:
      return kEncodeE5M2;
    case ROTARY_CACHE_Q8_0:
      if (head_dim % 32 != 0) {
        Fail(Status::kInvalidArgument, "head_dim = ", head_dim, " is not a multiple of 32, as q8_0 records need");
      }
      return kEncodeQ8_0;
    default:
      Fail(Status::kInvalidArgument, "options.cache_format = ", format, " is not a rotary_cache_format");
  }
}

// The divisor of an FP8 cache: the scale as a float (0: 1), finite and > 0.
float ScaleOf(double scale, int encoding, const char* name) {
  const bool fp8 = encoding == kEncodeE4M3 || encoding == kEncodeE5M2;
  if (scale == 0.0) return 1.0f;
  const float f = static_cast<float>(scale);
  if (!fp8 && scale != 1.0) {
    Fail(Status::kInvalidArgument, "options.", name, " = ", scale, " is for FP8 caches only (cache_format ",
         encoding < 0 ? "ROTARY_CACHE_TENSOR" : "ROTARY_CACHE_Q8_0", " has no scale)");
  }
  if (!std::isfinite(f) || !(f > 0.0f)) {
    Fail(Status::kInvalidArgument, "options.", name, " = ", scale, " must be finite and > 0 as a float");
  }
  return f;
}

// Bytes of one head of head_dim values in a byte cache (an encoding >= 0).
int64_t EncodedHeadBytes(int encoding, int32_t head_dim) {
  return encoding == kEncodeQ8_0 ? head_dim / 32 * 34 : head_dim;
}

// Bytes of one head of head_dim values in a cache.
int64_t CacheHeadBytes(int encoding, const TensorLayout& cache, int32_t head_dim) {
  if (encoding < 0) return head_dim * static_cast<int64_t>(DtypeBytes(cache.dtype));
  return EncodedHeadBytes(encoding, head_dim);
}

Operand CacheOperand(const TensorLayout& src, const TensorLayout& cache, const int64_t* slots, bool copy_only) {
  Operand op;
  op.src = src.data;
  op.dst = cache.data;
  op.src_stride_batch = src.stride_batch;
  op.src_stride_seq = src.stride_seq;
  op.src_stride_head = src.stride_head;
  op.dst_stride_batch = cache.stride_batch;  // between blocks
  op.dst_stride_seq = cache.stride_seq;      // between the rows of a block
  op.dst_stride_head = cache.stride_head;
  op.heads = src.heads;
  op.scale = 1.0f;
  op.write_rest = true;  // every component goes to the cache
  op.dst_slots = slots;
  op.block_size = cache.seq;
  op.copy_only = copy_only;
  return op;
}

}  // namespace

void AttachCacheWrite(const CacheWriteArgs& cache, const TensorArgs& q, const TensorArgs& k, CallOperands& call,
                      int32_t head_dim) {
  if (cache.k_cache == nullptr) Fail(Status::kInvalidArgument, "options.k_cache is NULL (a KV-cache write needs it)");
  if (cache.v_src == nullptr) Fail(Status::kInvalidArgument, "options.v_src is NULL (a KV-cache write needs it)");
  if (cache.v_cache == nullptr) Fail(Status::kInvalidArgument, "options.v_cache is NULL (a KV-cache write needs it)");
  if (cache.slots == nullptr) Fail(Status::kInvalidArgument, "options.slot_mapping is NULL (a KV-cache write needs it)");
  if (k.src == nullptr) Fail(Status::kInvalidArgument, "k_src is NULL (a KV-cache write rotates k into k_cache)");
  if (k.dst != nullptr) {
    Fail(Status::kInvalidArgument, "k_dst must be NULL with options.k_cache: k is read and written to its cache only");
  }
  const int encoding = EncodingOf(cache.format, head_dim);
  const float scales[2] = {ScaleOf(cache.k_scale, encoding, "k_scale"), ScaleOf(cache.v_scale, encoding, "v_scale")};
  const auto cache_layout = [&](const rotary_tensor* view, const char* name) {
    if (encoding < 0) return ValidateTensor(view, head_dim, name);
    return ValidateByteTensor(view, EncodedHeadBytes(encoding, head_dim), name);
  };
  const TensorLayout k_src_layout = ValidateTensor(k.src, head_dim, "k_src");
  const TensorLayout v_src_layout = ValidateTensor(cache.v_src, head_dim, "v_src");
  const TensorLayout k_cache_layout = cache_layout(cache.k_cache, "k_cache");
  const TensorLayout v_cache_layout = cache_layout(cache.v_cache, "v_cache");
  const Named k_src{k_src_layout, "k_src"}, v_src{v_src_layout, "v_src"};
  const Named k_cache{k_cache_layout, "k_cache"}, v_cache{v_cache_layout, "v_cache"};
  if (k_src.layout.batch != call.batch || k_src.layout.seq != call.seq) {
    Fail(Status::kInvalidArgument, "k_src is [", k_src.layout.batch, ", ", k_src.layout.seq, "] but ", q.src_name,
         " is [", call.batch, ", ", call.seq, "] (batch, seq): q and k share positions");
  }
  if (v_src.layout.batch != k_src.layout.batch || v_src.layout.seq != k_src.layout.seq ||
      v_src.layout.heads != k_src.layout.heads) {
    Fail(Status::kInvalidArgument, "v_src is [", v_src.layout.batch, ", ", v_src.layout.seq, ", ", v_src.layout.heads,
         "] but k_src is [", k_src.layout.batch, ", ", k_src.layout.seq, ", ", k_src.layout.heads,
         "] (batch, seq, heads)");
  }
  if (k_cache.layout.heads != k_src.layout.heads) {
    Fail(Status::kInvalidArgument, "k_cache has ", k_cache.layout.heads, " heads but k_src has ", k_src.layout.heads);
  }
  if (v_cache.layout.batch != k_cache.layout.batch || v_cache.layout.seq != k_cache.layout.seq ||
      v_cache.layout.heads != k_cache.layout.heads) {
    Fail(Status::kInvalidArgument, "v_cache is [", v_cache.layout.batch, ", ", v_cache.layout.seq, ", ",
         v_cache.layout.heads, "] but k_cache is [", k_cache.layout.batch, ", ", k_cache.layout.seq, ", ",
         k_cache.layout.heads, "] (num_blocks, block_size, heads)");
  }
  // What is written must be apart from everything else the call reads or writes.
  const Named q_src{call.q_src, q.src_name};  // as ValidateOperands found them
  const Named q_dst{call.q_dst, q.dst_name};
  for (const Named* cache_view : {&k_cache, &v_cache}) {
    for (const Named* other : {&q_src, &q_dst, &k_src, &v_src}) CheckApart(*cache_view, *other, head_dim);
  }
  CheckApart(k_cache, v_cache, head_dim);
  // q is written while k and v are read (side by side in a packed QKV buffer is fine).
  CheckApart(q_dst, k_src, head_dim);
  CheckApart(q_dst, v_src, head_dim);

  // The kernels read the slots again while they write: they read a copy, so
  // that neither this call's own writes (slots inside q or a cache) nor another
  // thread can change a slot after it was checked.
  const int64_t* slots = call.CopySlots(cache.slots, call.batch * call.seq);
  int64_t slots_held;
  if (__builtin_mul_overflow(k_cache.layout.batch, k_cache.layout.seq, &slots_held)) slots_held = INT64_MAX;
  CheckSlots(slots, call.batch * call.seq, slots_held, k_cache.layout.batch, k_cache.layout.seq);

  call.per_operand = true;
  call.operand_src[0] = call.src_dtype;
  call.operand_dst[0] = call.dst_dtype;
  call.operand_encoding[0] = -1;
  const Named* sources[2] = {&k_src, &v_src};
  const Named* caches[2] = {&k_cache, &v_cache};
  for (int i = 0; i < 2; ++i) {
    const TensorLayout& src = sources[i]->layout;
    const TensorLayout& dst = caches[i]->layout;
    const int o = call.count++;
    call.operands[o] = CacheOperand(src, dst, slots, /*copy_only=*/i == 1);
    call.operands[o].cache_divisor = scales[i];
    call.operand_src[o] = static_cast<DtypeIndex>(src.dtype);
    call.operand_dst[o] = encoding < 0 ? static_cast<DtypeIndex>(dst.dtype) : kF32;  // kF32: unused when encoded
    call.operand_encoding[o] = encoding;
    call.AddWritten(dst.begin(), dst.end());
    // An encoded cache costs like an f32 one: a buffer in f32, then the encoding.
    call.bytes_per_row += src.heads * (head_dim * static_cast<int64_t>(DtypeBytes(src.dtype)) +
                                       CacheHeadBytes(encoding, dst, head_dim));
    call.cost_per_row += src.heads * head_dim * (ElementCost(call.operand_src[o]) + ElementCost(call.operand_dst[o]));
  }
}

}  // namespace rotary
