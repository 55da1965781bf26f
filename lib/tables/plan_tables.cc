#include "lib/tables/plan_tables.h"

#include <algorithm>
#include <utility>

#include "lib/config/enum_value.h"
#include "lib/plan/frequency_plan.h"

namespace rotary {
namespace {

TableLayout LayoutOf(const rotary_config& config) {
  return config.pairing == ROTARY_NEOX ? TableLayout::kPerPair : TableLayout::kPerComponent;
}

}  // namespace

RowSource ResolveTableMode(const rotary_config& config) {
  switch (EnumValue(config.table_mode)) {
    case ROTARY_TABLE_FULL:
      return RowSource::kFull;
    case ROTARY_TABLE_COMPACT:
      return RowSource::kCompact;
    case ROTARY_TABLE_ON_THE_FLY:
      return RowSource::kOnTheFly;
    default:
      break;  // AUTO (validated)
  }
  const int64_t row_bytes =
      RowFloats(LayoutOf(config), static_cast<size_t>(config.rotary_dim / 2)) * int64_t{sizeof(float)};
  const int64_t rows = (config.max_positions + RopeTable::kChunkRows - 1) / RopeTable::kChunkRows * RopeTable::kChunkRows;
  return rows <= TableCache::Instance().budget() / row_bytes ? RowSource::kFull : RowSource::kCompact;
}

PlanTables::PlanTables(const rotary_config& config, FrequencyScheme scheme, const BorrowedRows* borrowed)
    : scheme_(std::move(scheme)),
      layout_(LayoutOf(config)),
      mode_(borrowed ? RowSource::kBorrowed : ResolveTableMode(config)),
      compact_shift_(mode_ == RowSource::kCompact ? CompactShift(config.max_positions) : 0),
      permanent_key_{CanonicalLength(scheme_, 1), false},
      warm_positions_(std::min(config.max_positions, scheme_.position_limit)),
      permanent_(borrowed ? MakeBorrowedTable(*borrowed, false) : MakeTable(permanent_key_)),
      borrowed_inverse_(borrowed ? MakeBorrowedTable(*borrowed, true) : nullptr) {}

std::shared_ptr<const CachedTable> PlanTables::MakeBorrowedTable(const BorrowedRows& borrowed, bool inverse) const {
  // The plan only gives the view its number of pairs: the frequencies are the arrays'.
  return std::make_shared<const CachedTable>(TableSpec{MakeFrequencyPlan(scheme_, 1), layout_, RowSource::kBorrowed,
                                                       scheme_.position_limit, 0, borrowed, inverse});
}

std::shared_ptr<const CachedTable> PlanTables::MakeTable(Key key) const {
  FrequencyPlan plan = MakeFrequencyPlan(scheme_, key.length);
  if (key.inverse) {
    // R(-t) / m: the angles negated (cos t, -sin t, exactly: every step of the
    // table build and of the row synthesis is odd in the angle), scaled by 1/m.
    for (double& w : plan.inv_freq) w = -w;
    plan.scale = 1.0 / plan.scale;
  }
  return TableCache::Instance().Acquire(
      TableSpec{std::move(plan), layout_, mode_, scheme_.position_limit, compact_shift_});
}

TableRef PlanTables::ForCall(const CallPositions& call, Direction direction) const {
  if (mode_ == RowSource::kBorrowed) {
    return TableRef(direction == kInverse ? borrowed_inverse_.get() : permanent_.get(), nullptr);
  }
  TableRef table = TableOf(call.last + 1, direction);
  // Consecutive positions, or any a chunk apart at most (every decode call):
  // the rows of the whole range, without looking at each position.
  if ((call.positions == nullptr && call.batch_offsets == nullptr) || table->WithinTwoChunks(call.first, call.last)) {
    Account(*table, table->EnsureRange(call.first, call.last));
    return table;
  }
  if (call.batch_offsets == nullptr) {
    Account(*table, table->EnsurePositions(call.positions, call.count, call.offset));
    return table;
  }
  // Each sequence at its own offset (validated: no sum overflows).
  bool grown = false;
  const int64_t rows = call.batch * call.seq;
  for (int64_t b = 0; b < call.batch; ++b) {
    const int64_t offset = call.offset + call.batch_offsets[b];
    if (call.positions == nullptr) {
      grown |= table->EnsureRange(offset, offset + call.seq - 1);
      continue;
    }
    for (int64_t axis_start = b * call.seq; axis_start < call.count; axis_start += rows) {
      grown |= table->EnsurePositions(call.positions + axis_start, call.seq, offset);
    }
  }
  Account(*table, grown);
  return table;
}

void PlanTables::Account(const CachedTable& table, bool grew) {
  if (grew) {
    TableCache::Instance().NoteGrowth(table);
  } else {
    TableCache::Instance().Touch(table);
  }
}

TableRef PlanTables::TableOf(int64_t seq_len, Direction direction) const {
  const Key key{CanonicalLength(scheme_, seq_len), direction == kInverse};
  if (!(key == permanent_key_)) return Recent(key);

  TableRef ref(permanent_.get(), nullptr);
  if (!warmed_.load(std::memory_order_acquire)) {
    Account(*permanent_, permanent_->EnsureRange(0, warm_positions_ - 1));
    warmed_.store(true, std::memory_order_release);
  }
  return ref;
}

TableRef PlanTables::Recent(Key key) const {
  std::lock_guard<std::mutex> lock(recent_mutex_);
  auto hit = std::find_if(recent_.begin(), recent_.end(), [&](const Entry& e) { return e.key == key; });
  if (hit != recent_.end()) {
    std::rotate(recent_.begin(), hit, hit + 1);  // now the most recently used
  } else {
    if (recent_.size() == kMaxRecentTables) recent_.pop_back();
    recent_.insert(recent_.begin(), Entry{key, MakeTable(key)});
  }
  return TableRef(recent_.front().table.get(), recent_.front().table);
}

int64_t PlanTables::bytes() const {
  if (mode_ == RowSource::kBorrowed) return 0;
  std::lock_guard<std::mutex> lock(recent_mutex_);
  int64_t total = permanent_->bytes();
  for (const Entry& e : recent_) total += e.table->bytes();
  return total;
}

int32_t PlanTables::count() const {
  if (mode_ == RowSource::kBorrowed) return 0;
  std::lock_guard<std::mutex> lock(recent_mutex_);
  return 1 + static_cast<int32_t>(recent_.size());
}

}  // namespace rotary
