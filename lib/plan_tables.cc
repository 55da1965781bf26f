#include "lib/plan_tables.h"

#include <algorithm>

#include "lib/frequency_plan.h"

namespace rotary {

PlanTables::PlanTables(const rotary_config& config)
    : scheme_(ResolveScheme(config)),
      layout_(config.pairing == ROTARY_NEOX ? TableLayout::kPerPair : TableLayout::kPerComponent),
      permanent_key_{CanonicalLength(scheme_, 1), false},
      warm_positions_(std::min(config.max_positions, scheme_.position_limit)),
      permanent_(MakeTable(permanent_key_)) {}

std::shared_ptr<const RopeTable> PlanTables::MakeTable(Key key) const {
  FrequencyPlan plan = MakeFrequencyPlan(scheme_, key.length);
  if (key.inverse) plan.scale = 1.0 / plan.scale;
  return std::make_shared<const RopeTable>(std::move(plan), layout_, scheme_.position_limit);
}

TableRef PlanTables::ForCall(int64_t seq_len, DirectionIndex direction) const {
  // With m = 1 the inverse reads the forward table (the kernel negates the
  // angle); with m != 1 it needs the table scaled by 1/m instead of m.
  const bool inverse = direction == kInverse && scheme_.attention_factor != 1.0;
  const Key key{CanonicalLength(scheme_, seq_len), inverse};
  if (!(key == permanent_key_)) return Recent(key);

  if (!warmed_.load(std::memory_order_acquire)) {
    permanent_->EnsureRange(0, warm_positions_ - 1);
    warmed_.store(true, std::memory_order_release);
  }
  return TableRef(permanent_.get(), nullptr);
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
  std::lock_guard<std::mutex> lock(recent_mutex_);
  int64_t total = permanent_->bytes();
  for (const Entry& e : recent_) total += e.table->bytes();
  return total;
}

int32_t PlanTables::count() const {
  std::lock_guard<std::mutex> lock(recent_mutex_);
  return 1 + static_cast<int32_t>(recent_.size());
}

}  // namespace rotary
