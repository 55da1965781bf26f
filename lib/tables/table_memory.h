// Memory for the rows of a cos/sin table: one block per build, on transparent
// huge pages where the kernel offers them.
//
// Why: a table is written once, into fresh memory, and a long one is large
// (131072 positions at head_dim 128: 64 MiB). Every 4 KiB page of it costs a
// page fault on first touch, and those faults were most of the build: touching
// 64 MiB took 24-28 ms on a Zen 4 VM with 4 KiB pages, 5-6 ms with 2 MiB pages.
// Blocks of at least one huge page are mapped huge-page aligned and advised
// with MADV_HUGEPAGE (Linux; elsewhere, or where the advice is refused, they
// are ordinary pages); smaller blocks come from operator new.
#ifndef ROTARY_LIB_TABLES_TABLE_MEMORY_H_
#define ROTARY_LIB_TABLES_TABLE_MEMORY_H_

#include <cstddef>

namespace rotary {

class TableMemory {
 public:
  // `bytes` of 64-byte aligned memory, or an empty block (data() == nullptr)
  // when the system has none to give.
  static TableMemory Allocate(size_t bytes);
  // `bytes` of zeroed, 64-byte aligned memory that costs only the pages written:
  // from 1 MiB up it is mapped, and untouched pages stay virtual. For a
  // table's chunk directory, which has an entry for every chunk up to the
  // position limit (16 MiB at 2^31 positions) and few of them set.
  static TableMemory AllocateZeroed(size_t bytes);

  TableMemory() = default;
  TableMemory(TableMemory&& other) noexcept;
  TableMemory& operator=(TableMemory&& other) noexcept;
  TableMemory(const TableMemory&) = delete;
  TableMemory& operator=(const TableMemory&) = delete;
  ~TableMemory();

  float* data() const { return static_cast<float*>(data_); }
  void* raw() const { return data_; }
  size_t bytes() const { return bytes_; }

 private:
  void Free();

  void* data_ = nullptr;
  size_t bytes_ = 0;
  size_t mapped_bytes_ = 0;  // the length mmap'd (whole pages), or 0: from operator new
};

}  // namespace rotary

#endif  // ROTARY_LIB_TABLES_TABLE_MEMORY_H_
