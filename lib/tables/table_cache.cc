#include "lib/tables/table_cache.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <vector>

#if defined(__linux__)
#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

#include "lib/byte_size.h"

namespace rotary {
namespace {

template <typename T>
void AppendBytes(std::string& key, const T& value) {
  key.append(reinterpret_cast<const char*>(&value), sizeof(value));
}

// Everything that determines a table's bytes.
std::string KeyOf(const TableSpec& spec) {
  std::string key;
  AppendBytes(key, static_cast<int32_t>(spec.layout));
  AppendBytes(key, static_cast<int32_t>(spec.mode));
  AppendBytes(key, spec.compact_shift);
  AppendBytes(key, spec.position_limit);
  AppendBytes(key, spec.plan.scale);
  for (double w : spec.plan.inv_freq) AppendBytes(key, w);
  return key;
}

int64_t BudgetFromEnvironment() {
  const char* text = std::getenv("ROTARY_CACHE_BUDGET");
  if (text == nullptr) return TableCache::kDefaultBudget;
  const int64_t parsed = ParseByteSize(text);
  return parsed < 0 ? TableCache::kDefaultBudget : parsed;  // not a size: ignored
}

}  // namespace

int CompactShift(int64_t positions) {
  int shift = RopeTable::kMinChunkShift;
  while (shift < 31 && (int64_t{1} << (2 * shift)) < positions) ++shift;
  return shift;
}

// ---- CachedTable ----

CachedTable::CachedTable(TableSpec spec) : spec_(std::move(spec)) {
  const FrequencyPlan& plan = spec_.plan;
  switch (spec_.mode) {
    case RowSource::kFull:
      rows_ = std::make_unique<RopeTable>(plan, spec_.layout, spec_.position_limit);
      break;
    case RowSource::kCompact: {
      // p = hi * K + lo: the attention factor goes on the high rows only, so the
      // product of a high and a low row carries it once. K * w is exact in double
      // (a power of two), so high row hi has the angle (hi * K) * w of the full table.
      const int shift = spec_.compact_shift;
      const int64_t k = int64_t{1} << shift;
      FrequencyPlan low_plan{plan.inv_freq, 1.0};
      FrequencyPlan high_plan = plan;
      for (double& w : high_plan.inv_freq) w = std::ldexp(w, shift);
      low_ = std::make_unique<RopeTable>(std::move(low_plan), TableLayout::kPerPair, k, shift);
      rows_ = std::make_unique<RopeTable>(std::move(high_plan), TableLayout::kPerPair,
                                          (spec_.position_limit + k - 1) >> shift, shift);
      break;
    }
    case RowSource::kOnTheFly:
      break;
    case RowSource::kBorrowed:
      // Rows of the full layout already: one chunk holding every row.
      if (!spec_.borrowed_inverse && ReadableInPlace(spec_.borrowed, spec_.layout, plan.inv_freq.size())) {
        in_place_rows_.store(static_cast<const float*>(spec_.borrowed.cos), std::memory_order_relaxed);
      }
      break;
  }
  view_ = MakeView();
}

bool CachedTable::EnsureRangeOfMode(int64_t first, int64_t last) const {
  switch (spec_.mode) {
    case RowSource::kFull:
      return rows_->EnsureRange(first, last);
    case RowSource::kCompact: {
      const bool low = low_->EnsureRange(0, 0);  // its one chunk
      return rows_->EnsureRange(first >> spec_.compact_shift, last >> spec_.compact_shift) || low;
    }
    case RowSource::kOnTheFly:
    case RowSource::kBorrowed:
      break;
  }
  return false;
}

bool CachedTable::EnsurePositions(const int64_t* positions, int64_t count, int64_t offset) const {
  switch (spec_.mode) {
    case RowSource::kFull:
      return rows_->EnsurePositions(positions, count, offset);
    case RowSource::kCompact: {
      const bool low = low_->EnsureRange(0, 0);
      return rows_->EnsurePositions(positions, count, offset, spec_.compact_shift) || low;
    }
    case RowSource::kOnTheFly:
    case RowSource::kBorrowed:
      break;
  }
  return false;
}

TableView CachedTable::MakeView() const {
  TableView view{};
  view.mode = spec_.mode;
  view.layout = spec_.layout;
  view.pairs = spec_.plan.inv_freq.size();
  view.row_floats = RowFloats(spec_.layout, view.pairs);
  switch (spec_.mode) {
    case RowSource::kFull:
      view.chunks = rows_->chunks();
      view.chunk_shift = rows_->chunk_shift();
      break;
    case RowSource::kCompact:
      view.chunks = rows_->chunks();
      view.chunk_shift = rows_->chunk_shift();
      view.compact_shift = spec_.compact_shift;
      break;
    case RowSource::kOnTheFly:
      view.inv_freq = spec_.plan.inv_freq.data();
      view.scale = spec_.plan.scale;
      break;
    case RowSource::kBorrowed: {
      const BorrowedRows& borrowed = spec_.borrowed;
      if (in_place_rows_.load(std::memory_order_relaxed) != nullptr) {
        view.mode = RowSource::kFull;
        view.chunks = &in_place_rows_;
        view.chunk_shift = 62;  // every position (< 2^31) is in chunk 0
        break;
      }
      view.borrowed_cos = borrowed.cos;
      view.borrowed_sin = borrowed.sin;
      view.borrowed_stride = borrowed.row_stride;
      view.borrowed_dtype = borrowed.dtype;
      view.borrowed_inverse = spec_.borrowed_inverse;
      break;
    }
  }
  return view;
}

int64_t CachedTable::bytes() const {
  return (rows_ ? rows_->bytes() : 0) + (low_ ? low_->bytes() : 0);
}

// ---- Pins ----
//
// A call pins its table before it reads any row, and a releaser frees rows only
// if no pin exists: Dekker's protocol between the call (store the pin, then load
// draining_) and the releaser (store draining_, then load every pin), so that at
// least one sees the other's store: the releaser backs off, or the call waits
// for the release to end and then pins through the counter.
//
// The pin is a store to this thread's slot, not a read-modify-write of a shared
// counter: calls from many threads do not contend, and nothing drains the store
// buffer at the end of a call. The store-load order Dekker needs on the call's
// side is paid by the releaser where the kernel offers membarrier(2) (private
// expedited): the call has only a compiler barrier, and the releaser makes every
// running thread of the process execute a full barrier before it reads the
// slots. Elsewhere (and under ThreadSanitizer, which does not model membarrier)
// the pin is a sequentially consistent store, and the load of draining_ too.

namespace pins {
__thread PinSlot* this_thread = nullptr;
std::atomic<bool> asymmetric{false};
}  // namespace pins

namespace {

// Every thread's slot, for releasers to read.
struct SlotRegistry {
  std::mutex mutex;
  std::vector<PinSlot*> slots;
};

SlotRegistry& Registry() {
  static SlotRegistry* const registry = new SlotRegistry();  // never destroyed: threads outlive statics
  return *registry;
}

// Registers this thread's slot on its first pin, and removes it at thread exit.
struct SlotOwner {
  PinSlot slot;
  SlotOwner() {
    std::lock_guard<std::mutex> lock(Registry().mutex);
    Registry().slots.push_back(&slot);
  }
  ~SlotOwner() {
    std::lock_guard<std::mutex> lock(Registry().mutex);
    auto& slots = Registry().slots;
    slots.erase(std::remove(slots.begin(), slots.end(), &slot), slots.end());
    pins::this_thread = nullptr;
  }
};

PinSlot* ThisThreadSlot() {
  if (PinSlot* slot = pins::this_thread) return slot;
  thread_local SlotOwner owner;
  pins::this_thread = &owner.slot;
  return &owner.slot;
}

bool RegisterMembarrier() {
#if defined(__linux__) && defined(SYS_membarrier) && !defined(__SANITIZE_THREAD__)
  return syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0;
#else
  return false;
#endif
}

bool Asymmetric() { return pins::asymmetric.load(std::memory_order_relaxed); }

// A full barrier on every running thread of the process. False if the kernel
// refused (a child of fork() must register again first: then it does).
bool BarrierOnEveryThread() {
#if defined(__linux__) && defined(SYS_membarrier)
  if (syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) == 0) return true;
  return RegisterMembarrier() && syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) == 0;
#else
  return false;
#endif
}

bool AnySlotHolds(const CachedTable* table) {
  std::lock_guard<std::mutex> lock(Registry().mutex);
  for (const PinSlot* slot : Registry().slots) {
    if (slot->table.load(std::memory_order_seq_cst) == table) return true;
  }
  return false;
}

}  // namespace

bool CachedTable::PinSlow() const {
  PinSlot* slot = ThisThreadSlot();
  if (slot->table.load(std::memory_order_relaxed) == nullptr) {
    if (Asymmetric()) {
      slot->table.store(this, std::memory_order_relaxed);
      std::atomic_signal_fence(std::memory_order_seq_cst);
    } else {
      slot->table.store(this, std::memory_order_seq_cst);
    }
    if (!draining_.load(std::memory_order_seq_cst)) return true;
    slot->table.store(nullptr, std::memory_order_release);
    return PinAfterRelease();
  }
  // A call nested in another call on this thread (its slot is taken).
  pins_.fetch_add(1, std::memory_order_seq_cst);
  if (!draining_.load(std::memory_order_seq_cst)) return false;
  pins_.fetch_sub(1, std::memory_order_seq_cst);
  return PinAfterRelease();
}

// A release is running: wait for it to end (the releaser holds release_mutex_
// throughout), and pin through the counter while holding the mutex, so that no
// releaser can start before the pin is visible.
bool CachedTable::PinAfterRelease() const {
  std::lock_guard<std::mutex> lock(release_mutex_);
  pins_.fetch_add(1, std::memory_order_seq_cst);
  return false;
}

int64_t CachedTable::TryRelease() const {
  std::lock_guard<std::mutex> lock(release_mutex_);
  draining_.store(true, std::memory_order_seq_cst);
  // Without the barrier a call's pin might not be visible yet: then release nothing.
  const bool barrier = !Asymmetric() || BarrierOnEveryThread();
  if (!barrier || pins_.load(std::memory_order_seq_cst) != 0 || AnySlotHolds(this)) {
    draining_.store(false, std::memory_order_seq_cst);
    return -1;
  }
  const int64_t freed = (rows_ ? rows_->Release() : 0) + (low_ ? low_->Release() : 0);
  draining_.store(false, std::memory_order_seq_cst);
  return freed;
}

// ---- TableCache ----

// Tables come from the cache only, so every pin happens after this.
TableCache::TableCache() : budget_(BudgetFromEnvironment()) {
  pins::asymmetric.store(RegisterMembarrier(), std::memory_order_relaxed);
}

TableCache& TableCache::Instance() {
  static TableCache* const cache = new TableCache();  // never destroyed: see the header
  return *cache;
}

std::shared_ptr<const CachedTable> TableCache::Acquire(TableSpec spec) {
  std::string key = KeyOf(spec);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto found = entries_.find(key);
    if (found != entries_.end()) {
      if (std::shared_ptr<const CachedTable> shared = found->second.table.lock()) return shared;
    }
  }
  // A new table, made without the lock: its deleter (run when the last rope
  // object or call lets go, or by shared_ptr itself if allocating its control
  // block fails) locks mutex_ to forget it. Declared before the lock below, it
  // is destroyed after the lock is released if anything there throws or
  // another thread's table for this key won meanwhile.
  auto deleter = [key](const CachedTable* table) {
    TableCache::Instance().Forget(key, table);
    delete table;
  };
  std::shared_ptr<const CachedTable> table(new CachedTable(std::move(spec)), deleter);
  std::lock_guard<std::mutex> lock(mutex_);
  auto found = entries_.find(key);
  if (found != entries_.end()) {
    if (std::shared_ptr<const CachedTable> shared = found->second.table.lock()) return shared;
  }
  eviction_order_.reserve(entries_.size() + 1);  // here, where failing to allocate fails only this call
  entries_[std::move(key)] = Entry{table, table.get()};
  Touch(*table);
  return table;
}

void TableCache::Forget(const std::string& key, const CachedTable* table) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto found = entries_.find(key);
  // A new table may have taken the key meanwhile (Acquire after the count hit 0).
  if (found != entries_.end() && found->second.raw == table) entries_.erase(found);
}

void TableCache::NoteGrowth(const CachedTable& table) {
  std::lock_guard<std::mutex> lock(mutex_);
  Touch(table);
  const int64_t limit = budget();
  if (BytesLocked() > limit) EvictLocked(limit);
}

void TableCache::SetBudget(int64_t bytes) {
  std::lock_guard<std::mutex> lock(mutex_);
  budget_.store(bytes, std::memory_order_relaxed);
  EvictLocked(bytes);
}

int64_t TableCache::Trim() {
  std::lock_guard<std::mutex> lock(mutex_);
  return EvictLocked(0);
}

int64_t TableCache::bytes() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return BytesLocked();
}

int32_t TableCache::tables() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return static_cast<int32_t>(entries_.size());
}

int64_t TableCache::BytesLocked() const {
  int64_t total = 0;
  for (const auto& e : entries_) total += e.second.raw->bytes();
  return total;
}

int64_t TableCache::EvictLocked(int64_t limit) {
  std::vector<Candidate>& candidates = eviction_order_;  // capacity >= entries_.size(): no allocation
  candidates.clear();
  int64_t total = 0;
  for (const auto& e : entries_) {
    const int64_t bytes = e.second.raw->bytes();
    total += bytes;
    if (bytes > 0) candidates.push_back({e.second.raw->last_used.load(std::memory_order_relaxed), e.second.raw});
  }
  std::sort(candidates.begin(), candidates.end(),
            [](const Candidate& a, const Candidate& b) { return a.last_used < b.last_used; });
  int64_t freed = 0;
  for (const Candidate& c : candidates) {
    if (total - freed <= limit) break;
    const int64_t released = c.table->TryRelease();  // -1: a call is reading it
    if (released > 0) freed += released;
  }
  return freed;
}

}  // namespace rotary
