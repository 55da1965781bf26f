// The cos/sin tables of one rope object: one CachedTable (lib/tables/table_cache.h)
// per distinct plan used, taken from the process-wide TableCache, so rope
// objects with equal plans share them and all of them count against its budget.
//
// Most schemes have one plan, whose table is permanent (held for the rope
// object's life) and read without a lock. Dynamic NTK and LongRoPE choose their
// plan from each call's length L = max(position) + 1 (HF semantics): the plan of
// short lengths (L <= L0) is the permanent table too, and each longer plan gets
// a table held in a small most-recently-used list (kMaxRecentTables), so the
// tables one rope object holds stay few however many lengths a dynamic NTK
// model sees. A call holds its table through a TableRef (pinned, and alive), so
// neither the list nor the cache's eviction disturbs a call that is reading it.
//
// apply_inverse reads a second table, of the plan with negated frequencies and
// the attention factor 1/m: the kernels' one rotation with entries
// (cos t / m, -sin t / m) is (1/m) R(-t), so inverse(apply(x)) = x
// (docs/math.md). The kernels thus know a single direction, at the cost of a
// second table for the rare caller of the inverse.
//
// Over a caller's borrowed arrays (rotary_create_borrowed) there is no plan
// and nothing in the cache: one table object reads the arrays forward, one
// reads them as the inverse rotation, and nothing is ever built.
//
// Keys rotated by an older plan are not re-rotated when a call switches plans
// (dynamic NTK's base grows, LongRoPE switches lists): like HF, rotary rotates
// each call with the plan of that call's length. See docs/scaling.md.
#ifndef ROTARY_LIB_TABLES_PLAN_TABLES_H_
#define ROTARY_LIB_TABLES_PLAN_TABLES_H_

#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "dispatch/kernel_api.h"
#include "lib/config/frequency_scheme.h"
#include "lib/tables/table_cache.h"
#include "rotary/rotary.h"

namespace rotary {

// The table mode of a validated config: AUTO is full when max_positions rows
// of the full layout fit the cache budget (as it is now), else compact.
RowSource ResolveTableMode(const rotary_config& config);

// Which way a call rotates: by the angles of its positions, or back.
enum Direction { kForward = 0, kInverse = 1 };

class PlanTables {
 public:
  // Tables beside the permanent one, for longer plans and the inverse.
  static constexpr size_t kMaxRecentTables = 4;

  // A validated config and its resolved scheme (ValidateConfig); borrowed:
  // the caller's arrays (ReadBorrowedTable), or nullptr for tables of its own.
  PlanTables(const rotary_config& config, FrequencyScheme scheme, const BorrowedRows* borrowed = nullptr);

  // The positions of a call: positions[i] + offset for i < count, or without
  // positions offset + i; `last`, the largest, is below position_limit().
  struct CallPositions {
    const int64_t* positions;  // nullptr: offset + s
    int64_t count;             // of positions: axes * batch * seq
    int64_t offset;
    int64_t first, last;       // the smallest and the largest position
    const int64_t* batch_offsets;  // nullptr, or added to sequence b's positions
    int64_t batch, seq;
  };

  // The table of the plan of a call's length (last + 1), with the rows of its
  // positions readable. The one place tables grow: rows built here are
  // accounted to the cache, which may then evict other tables (never a pinned one).
  TableRef ForCall(const CallPositions& call, Direction direction) const;

  // Positions must be below this; position_limit_name() is how messages call it.
  int64_t position_limit() const { return scheme_.position_limit; }
  const char* position_limit_name() const { return scheme_.position_limit_name; }
  RowSource mode() const { return mode_; }
  TableLayout layout() const { return layout_; }

  // Bytes of every table held now (shared ones too; 0 over borrowed arrays).
  int64_t bytes() const;
  // Tables held now: the permanent one and the recent ones (0 over borrowed arrays).
  int32_t count() const;

 private:
  struct Key {
    int64_t length;  // CanonicalLength of the plan
    bool inverse;
    bool operator==(const Key& other) const { return length == other.length && inverse == other.inverse; }
  };
  struct Entry {
    Key key;
    std::shared_ptr<const CachedTable> table;
  };

  std::shared_ptr<const CachedTable> MakeTable(Key key) const;
  std::shared_ptr<const CachedTable> MakeBorrowedTable(const BorrowedRows& borrowed, bool inverse) const;
  TableRef TableOf(int64_t seq_len, Direction direction) const;
  TableRef Recent(Key key) const;
  // Tells the cache a table was used, and whether it grew (Ensure* returned true).
  static void Account(const CachedTable& table, bool grew);

  const FrequencyScheme scheme_;
  const TableLayout layout_;  // the one the pairing's kernel reads
  const RowSource mode_;
  const int compact_shift_;
  const Key permanent_key_;  // forward, at the shortest lengths
  const int64_t warm_positions_;
  const std::shared_ptr<const CachedTable> permanent_;
  const std::shared_ptr<const CachedTable> borrowed_inverse_;  // kBorrowed: the inverse's view of the arrays
  mutable std::atomic<bool> warmed_{false};  // the first warm_positions_ rows of permanent_ built

  mutable std::mutex recent_mutex_;
  mutable std::vector<Entry> recent_;  // most recently used first
};

}  // namespace rotary

#endif  // ROTARY_LIB_TABLES_PLAN_TABLES_H_
