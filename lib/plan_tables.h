// The cos/sin tables of one rope object: one RopeTable per distinct plan used.
//
// Most schemes have one plan, whose table is permanent and read without a lock.
// Dynamic NTK and LongRoPE choose their plan from each call's length
// L = max(position) + 1 (HF semantics): the plan of short lengths (L <= L0) is
// the permanent table too, and each longer plan gets a table in a small
// most-recently-used cache (kMaxRecentTables), so memory stays bounded however
// many lengths a dynamic NTK model sees. A call holds its table through a
// TableRef, so evicting a table never disturbs a call that is reading it.
//
// Plans with an attention factor m != 1 have a second table for apply_inverse,
// scaled by 1/m, so that inverse(apply(x)) = x: the kernel's inverse rotation
// R(-t) with entries (cos/m, sin/m) is exactly (1/m) R(-t) (ROPE_MATH.md §1.5).
//
// Keys rotated by an older plan are not re-rotated when a call switches plans
// (dynamic NTK's base grows, LongRoPE switches lists): like HF, rotary rotates
// each call with the plan of that call's length. See README "Frequency scaling".
#ifndef ROTARY_LIB_PLAN_TABLES_H_
#define ROTARY_LIB_PLAN_TABLES_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "dispatch/kernel_api.h"
#include "lib/frequency_scheme.h"
#include "lib/rope_table.h"
#include "rotary/rotary.h"

namespace rotary {

// The table of one call, kept alive until the call ends.
class TableRef {
 public:
  TableRef(const RopeTable* table, std::shared_ptr<const RopeTable> owner) : table_(table), owner_(std::move(owner)) {}
  const RopeTable* operator->() const { return table_; }

 private:
  const RopeTable* table_;
  std::shared_ptr<const RopeTable> owner_;  // empty for the permanent table
};

class PlanTables {
 public:
  // Tables beside the permanent one, for longer plans and inverse directions.
  static constexpr size_t kMaxRecentTables = 4;

  explicit PlanTables(const rotary_config& config);  // config must be validated

  // The table of a call whose positions are all below seq_len (1 <= seq_len <= position_limit()).
  TableRef ForCall(int64_t seq_len, DirectionIndex direction) const;

  // Positions must be below this; position_limit_name() is how messages call it.
  int64_t position_limit() const { return scheme_.position_limit; }
  const char* position_limit_name() const { return scheme_.position_limit_name; }

  // Bytes of every table held now.
  int64_t bytes() const;
  // Tables held now: the permanent one and the recent ones.
  int32_t count() const;

 private:
  struct Key {
    int64_t length;  // CanonicalLength of the plan
    bool inverse;
    bool operator==(const Key& other) const { return length == other.length && inverse == other.inverse; }
  };
  struct Entry {
    Key key;
    std::shared_ptr<const RopeTable> table;
  };

  std::shared_ptr<const RopeTable> MakeTable(Key key) const;
  TableRef Recent(Key key) const;

  const FrequencyScheme scheme_;
  const TableLayout layout_;  // the one the pairing's kernel reads
  const Key permanent_key_;  // forward, at the shortest lengths
  const int64_t warm_positions_;
  const std::shared_ptr<const RopeTable> permanent_;
  mutable std::atomic<bool> warmed_{false};  // the first warm_positions_ rows of permanent_ built

  mutable std::mutex recent_mutex_;
  mutable std::vector<Entry> recent_;  // most recently used first
};

}  // namespace rotary

#endif  // ROTARY_LIB_PLAN_TABLES_H_
