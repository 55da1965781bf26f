#include "lib/rope.h"

#include "dispatch/target_registry.h"
#include "lib/error.h"
#include "lib/frequency_plan.h"
#include "lib/scheduler.h"
#include "lib/tensor_layout.h"

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

void rotary_rope::Apply(const rotary_tensor* x, const int64_t* positions, int64_t offset,
                        rotary::DirectionIndex direction) const {
  const rotary::KernelTable& kernels = rotary::ActiveKernels();
  const rotary::TensorLayout t = rotary::ValidateTensor(x, config_.head_dim, "x");
  PrepareTable(t.batch, t.seq, positions, offset);

  rotary::RowJob job;
  job.data = static_cast<float*>(t.data);
  job.seq = t.seq;
  job.heads = t.heads;
  job.stride_batch = t.stride_batch;
  job.stride_seq = t.stride_seq;
  job.stride_head = t.stride_head;
  job.pairs = static_cast<size_t>(config_.rotary_dim / 2);
  job.positions = positions;
  job.offset = offset;
  job.table = table_.View();
  // Bytes of the tensor read and written per (b, s) row: what the scheduler splits.
  const int64_t bytes_per_row = 2 * t.heads * config_.rotary_dim * static_cast<int64_t>(sizeof(float));
  job.prefetch = t.rows() * bytes_per_row >= rotary::kPrefetchMinBytes;

  const rotary::RowKernel kernel = kernels.rotate[config_.pairing][direction];
  rotary::ForEachRowRange(t.rows(), bytes_per_row,
                          [&](int64_t begin, int64_t end) { kernel(job, begin, end); });
}
