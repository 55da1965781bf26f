#include "lib/rope.h"

#include "dispatch/target_registry.h"
#include "lib/error.h"
#include "lib/frequency_plan.h"
#include "lib/scheduler.h"
#include "lib/call_operands.h"

using rotary::Fail;
using rotary::Status;

rotary_rope::rotary_rope(const rotary_config& config)
    : config_(config),
      table_(rotary::MakeFrequencyPlan(config),
             config.pairing == ROTARY_NEOX ? rotary::TableLayout::kPerPair : rotary::TableLayout::kPerComponent,
             config.position_limit) {}

void rotary_rope::PrepareTable(int64_t batch, int64_t seq, const int64_t* positions, int64_t offset) const {
  const int64_t limit = config_.position_limit;
  if (positions == nullptr) {
    if (offset < 0) Fail(Status::kOutOfRange, "offset = ", offset, " is negative (positions are offset + s)");
    if (offset > limit - seq) {
      Fail(Status::kOutOfRange, "position offset + seq - 1 = ", offset, " + ", seq - 1,
           " is not below position_limit = ", limit);
    }
  } else {
    const int64_t count = batch * seq;
    for (int64_t i = 0; i < count; ++i) {
      int64_t p;
      if (__builtin_add_overflow(positions[i], offset, &p) || p < 0 || p >= limit) {
        Fail(Status::kOutOfRange, "positions[", i, "] + offset = ", positions[i], " + ", offset,
             " is outside [0, position_limit = ", limit, ")");
      }
    }
  }

  if (!warmed_.load(std::memory_order_acquire)) {
    table_.EnsureRange(0, config_.max_positions - 1);
    warmed_.store(true, std::memory_order_release);
  }
  if (positions == nullptr) {
    table_.EnsureRange(offset, offset + seq - 1);
  } else {
    table_.EnsurePositions(positions, batch * seq, offset);
  }
}

void rotary_rope::Apply(const rotary::TensorArgs* tensors, int count, const int64_t* positions, int64_t offset,
                        rotary::DirectionIndex direction) const {
  const rotary::KernelTable& kernels = rotary::ActiveKernels();
  const rotary::CallOperands call = rotary::ValidateOperands(tensors, count, config_.head_dim);
  PrepareTable(call.batch, call.seq, positions, offset);

  rotary::RowJob job{};
  for (int i = 0; i < count; ++i) job.operands[i] = call.operands[i];
  job.num_operands = count;
  job.seq = call.seq;
  job.pairs = static_cast<size_t>(config_.rotary_dim / 2);
  job.head_dim = static_cast<size_t>(config_.head_dim);
  job.positions = positions;
  job.offset = offset;
  job.table = table_.View();
  job.prefetch = call.rows() * call.bytes_per_row >= rotary::kPrefetchMinBytes;

  const rotary::RowKernel kernel = kernels.rotate[config_.pairing][direction][call.src_dtype][call.dst_dtype];
  rotary::ForEachRowRange(call.rows(), call.bytes_per_row,
                          [&](int64_t begin, int64_t end) { kernel(job, begin, end); });
}
