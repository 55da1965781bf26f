// The process-wide table cache: every cos/sin table of every rope object, under
// one byte budget.
//
// A CachedTable is one frequency plan's position data in one RowSource (table mode):
//   kFull      one RopeTable, a row per position (grows by chunks on demand);
//   kCompact   two RopeTables: the K low positions (unscaled) and the multiples
//              of K (scaled by the attention factor), K = 2^compact_shift, so
//              about 2 * sqrt(positions) rows; kernels combine them per (b, s);
//   kOnTheFly  no rows at all: kernels evaluate cos/sin from inv_freq;
//   kBorrowed  the caller's arrays (lib/tables/borrowed_table.h): never in the
//              cache, no rows of its own (PlanTables owns it directly).
// Rope objects with equal plans (same inv_freq bits, scale, layout, mode, K and
// position limit) share one CachedTable: TableCache::Acquire returns the one
// that exists. A table lives while a rope object references it; when the last
// one lets go, its memory is freed and it leaves the cache.
//
// Budget: when the rows of all tables exceed it (ROTARY_CACHE_BUDGET, or
// rotary_cache_set_budget; default 1 GiB), the rows of the least recently used
// tables that no call is reading are freed (the table object stays with its
// rope objects; a later call rebuilds the rows it needs). A table that calls are
// reading is never freed: if those alone exceed the budget, the cache stays over
// it until they finish rather than fail a call.
//
// Hot path: a call pins its table (a store to a per-thread slot and a load, no
// read-modify-write and, on Linux, no fence; see table_cache.cc), reads it
// lock-free, and unpins it (a store). Only building rows and evicting take locks.
#ifndef ROTARY_LIB_TABLES_TABLE_CACHE_H_
#define ROTARY_LIB_TABLES_TABLE_CACHE_H_

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "dispatch/kernel_api.h"
#include "lib/plan/frequency_plan.h"
#include "lib/tables/borrowed_table.h"
#include "lib/tables/rope_table.h"

namespace rotary {

class CachedTable;

// The table the calls of one thread are reading (see CachedTable::Pin).
struct PinSlot {
  std::atomic<const CachedTable*> table{nullptr};
};
namespace pins {
// This thread's slot, nullptr until its first pin registers one. __thread, not
// thread_local: constant-initialized, so reading it needs no wrapper call, and
// initial-exec: one instruction.
extern __thread PinSlot* this_thread __attribute__((tls_model("initial-exec")));
// Whether pins need no fence (releasers use membarrier instead); set before
// the first table exists.
extern std::atomic<bool> asymmetric;
}  // namespace pins

// What a new table is made of (the cache key is derived from all of it).
struct TableSpec {
  FrequencyPlan plan;
  TableLayout layout;
  RowSource mode;
  int64_t position_limit;
  int compact_shift;  // kCompact: log2 K (0 otherwise)
  BorrowedRows borrowed{};         // kBorrowed: the caller's arrays
  bool borrowed_inverse = false;  // kBorrowed: the rows of the inverse rotation
};

// log2 of the K of compact tables: the smallest power of two whose square
// covers `positions`, at least 2^RopeTable::kMinChunkShift.
int CompactShift(int64_t positions);

class CachedTable {
 public:
  explicit CachedTable(TableSpec spec);
  CachedTable(const CachedTable&) = delete;
  CachedTable& operator=(const CachedTable&) = delete;

  // Makes the data of positions [first, last] (or positions[i] + offset)
  // readable. The caller holds a pin. Returns whether rows were built.
  bool EnsureRange(int64_t first, int64_t last) const {
    return spec_.mode == RowSource::kFull ? rows_->EnsureRange(first, last) : EnsureRangeOfMode(first, last);
  }
  bool EnsurePositions(const int64_t* positions, int64_t count, int64_t offset) const;
  // Whether positions first <= last need rows from two neighbouring chunks at
  // most: then, if both are positions of a call, every chunk EnsureRange(first,
  // last) builds holds a row the call reads.
  bool WithinTwoChunks(int64_t first, int64_t last) const {
    if (rows_ == nullptr) return true;  // a mode without stored rows
    const int shift = spec_.mode == RowSource::kCompact ? spec_.compact_shift : 0;
    return rows_->WithinTwoChunks(first >> shift, last >> shift);
  }

  // The kernels' view; valid while pinned, after Ensure*.
  TableView View() const {
    TableView view = view_;
    if (spec_.mode == RowSource::kCompact) view.low_rows = low_->FirstChunk();  // moves when rebuilt
    return view;
  }

  int64_t bytes() const;
  RowSource mode() const { return spec_.mode; }
  const FrequencyPlan& plan() const { return spec_.plan; }

  // Calls pin the table while they read it; a pinned table is never released.
  // Pin returns how it pinned, for Unpin: in this thread's pin slot (the common
  // case: a plain store, no read-modify-write, see table_cache.cc), or in a
  // shared counter (a call nested in another on this thread, or after waiting
  // for a release).
  bool Pin() const {
    PinSlot* slot = pins::this_thread;
    if (slot != nullptr && pins::asymmetric.load(std::memory_order_relaxed) &&
        slot->table.load(std::memory_order_relaxed) == nullptr) {
      slot->table.store(this, std::memory_order_relaxed);
      std::atomic_signal_fence(std::memory_order_seq_cst);
      if (!draining_.load(std::memory_order_seq_cst)) return true;
      slot->table.store(nullptr, std::memory_order_release);
    }
    return PinSlow();
  }
  void Unpin(bool in_slot) const {
    if (in_slot) {
      pins::this_thread->table.store(nullptr, std::memory_order_release);
    } else {
      pins_.fetch_sub(1, std::memory_order_release);
    }
  }
  // Frees all rows unless a call holds a pin. Returns the bytes freed, or -1 if pinned.
  int64_t TryRelease() const;

  // Least-recently-used order: a tick of TableCache's clock.
  mutable std::atomic<uint64_t> last_used{0};

 private:
  bool PinSlow() const;  // the general case of Pin
  bool PinAfterRelease() const;
  bool EnsureRangeOfMode(int64_t first, int64_t last) const;
  TableView MakeView() const;

  const TableSpec spec_;
  std::unique_ptr<RopeTable> rows_;  // kFull: the rows; kCompact: the high rows (multiples of K)
  std::unique_ptr<RopeTable> low_;   // kCompact: the K low rows
  std::atomic<const float*> in_place_rows_{nullptr};  // kBorrowed read as kFull: the chunk directory
  TableView view_;                   // all but the compact low rows' address
  mutable std::mutex release_mutex_;  // held while releasing; late pinners wait on it
  mutable std::atomic<int64_t> pins_{0};
  mutable std::atomic<bool> draining_{false};
};

class TableCache {
 public:
  static constexpr int64_t kDefaultBudget = int64_t{1} << 30;

  // The process's cache (created on first use, never destroyed: tables may
  // outlive static destruction in other translation units).
  static TableCache& Instance();

  // The table of `spec`: the shared one if it exists, else a new one.
  std::shared_ptr<const CachedTable> Acquire(TableSpec spec);

  // After a call built rows of `table`: marks it used, and evicts if over budget.
  void NoteGrowth(const CachedTable& table);
  // Marks a table used (lock-free, cheap when it already is the latest).
  void Touch(const CachedTable& table) {
    const uint64_t now = clock_.load(std::memory_order_relaxed);
    if (table.last_used.load(std::memory_order_relaxed) != now) {
      table.last_used.store(clock_.fetch_add(1, std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    }
  }

  void SetBudget(int64_t bytes);  // >= 0; evicts down to it
  int64_t budget() const { return budget_.load(std::memory_order_relaxed); }
  int64_t bytes() const;
  int32_t tables() const;
  // Frees the rows of every table no call is reading. Returns the bytes freed.
  int64_t Trim();

 private:
  TableCache();
  struct Entry {
    std::weak_ptr<const CachedTable> table;
    const CachedTable* raw;  // valid while in the map: the deleter erases it first, under the mutex
  };
  void Forget(const std::string& key, const CachedTable* table);
  // Frees rows of unpinned tables, least recently used first, until the total
  // is within `limit`. Caller holds mutex_. Returns the bytes freed. Never
  // allocates (see eviction_order_), so trimming works when memory is short.
  int64_t EvictLocked(int64_t limit);
  int64_t BytesLocked() const;

  struct Candidate {
    uint64_t last_used;
    const CachedTable* table;
  };

  mutable std::mutex mutex_;
  std::map<std::string, Entry> entries_;
  // EvictLocked's scratch, reserved for every entry when a table enters the cache.
  std::vector<Candidate> eviction_order_;
  std::atomic<int64_t> budget_;
  std::atomic<uint64_t> clock_{1};
};

// The table of one call: pinned, and kept alive, until the call ends.
class TableRef {
 public:
  TableRef(const CachedTable* table, std::shared_ptr<const CachedTable> owner)
      : table_(table), owner_(std::move(owner)), in_slot_(table_->Pin()) {}
  TableRef(TableRef&& other) noexcept
      : table_(other.table_), owner_(std::move(other.owner_)), in_slot_(other.in_slot_) {
    other.table_ = nullptr;
  }
  ~TableRef() {
    if (table_) table_->Unpin(in_slot_);
  }
  TableRef(const TableRef&) = delete;
  TableRef& operator=(const TableRef&) = delete;
  TableRef& operator=(TableRef&&) = delete;
  const CachedTable* operator->() const { return table_; }
  const CachedTable& operator*() const { return *table_; }

 private:
  const CachedTable* table_;
  std::shared_ptr<const CachedTable> owner_;  // empty when the rope object owns it for good
  bool in_slot_;                              // how it is pinned
};

}  // namespace rotary

#endif  // ROTARY_LIB_TABLES_TABLE_CACHE_H_
