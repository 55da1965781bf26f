#include "lib/tables/table_memory.h"

#include <cstdint>
#include <cstring>
#include <fstream>
#include <new>
#include <utility>

#if defined(__linux__)
#include <sys/mman.h>
#include <unistd.h>
#endif

namespace rotary {
namespace {

constexpr std::align_val_t kAlignment{64};  // a cache line: rows are read by whole vectors

#if defined(__linux__)
// `bytes` rounded up to whole pages: the length to map.
size_t WholePages(size_t bytes) {
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  return (bytes + page - 1) / page * page;
}

// The transparent huge page size (2 MiB on x86-64 and on arm64 with 4 KiB
// pages), or 0 when the kernel has none.
size_t HugePageBytes() {
  static const size_t bytes = [] {
    std::ifstream file("/sys/kernel/mm/transparent_hugepage/hpage_pmd_size");
    size_t value = 0;
    if (!(file >> value)) return size_t{0};
    return value;
  }();
  return bytes;
}

// `length` bytes (whole pages) mapped at a huge page boundary, so that every
// whole huge page of the block can be one; nullptr if the system refuses.
void* MapHugePageAligned(size_t length, size_t huge) {
  // Over-map by one huge page, then unmap what lies before and after the
  // aligned block.
  void* raw = mmap(nullptr, length + huge, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) return nullptr;
  const uintptr_t start = reinterpret_cast<uintptr_t>(raw);
  const uintptr_t aligned = (start + huge - 1) / huge * huge;
  if (aligned > start) munmap(raw, aligned - start);
  const size_t after = start + huge - aligned;  // over-mapped bytes past the block
  if (after > 0) munmap(reinterpret_cast<void*>(aligned + length), after);
  void* block = reinterpret_cast<void*>(aligned);
  // Advice only: where THP is off or unsupported the block keeps small pages.
  madvise(block, length, MADV_HUGEPAGE);
  return block;
}
#endif

}  // namespace

TableMemory TableMemory::Allocate(size_t bytes) {
  TableMemory memory;
#if defined(__linux__)
  const size_t huge = HugePageBytes();
  if (huge != 0 && bytes >= huge) {
    const size_t length = WholePages(bytes);
    memory.data_ = MapHugePageAligned(length, huge);
    if (memory.data_ != nullptr) {
      memory.bytes_ = bytes;
      memory.mapped_bytes_ = length;
    }
    return memory;
  }
#endif
  memory.data_ = ::operator new(bytes, kAlignment, std::nothrow);
  if (memory.data_ != nullptr) memory.bytes_ = bytes;
  return memory;
}

TableMemory TableMemory::AllocateZeroed(size_t bytes) {
  TableMemory memory;
#if defined(__linux__)
  constexpr size_t kLazyBytes = size_t{1} << 20;  // below, mmap + munmap cost more than zeroing
  if (bytes >= kLazyBytes) {
    const size_t length = WholePages(bytes);
    void* block = mmap(nullptr, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (block == MAP_FAILED) return memory;
    // Sparse by design: one written entry should cost a small page, not a huge one.
    madvise(block, length, MADV_NOHUGEPAGE);
    memory.data_ = block;
    memory.bytes_ = bytes;
    memory.mapped_bytes_ = length;
    return memory;
  }
#endif
  memory = Allocate(bytes);
  if (memory.data_ != nullptr) std::memset(memory.data_, 0, bytes);
  return memory;
}

TableMemory::TableMemory(TableMemory&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)),
      bytes_(std::exchange(other.bytes_, 0)),
      mapped_bytes_(std::exchange(other.mapped_bytes_, 0)) {}

TableMemory& TableMemory::operator=(TableMemory&& other) noexcept {
  if (this != &other) {
    Free();
    data_ = std::exchange(other.data_, nullptr);
    bytes_ = std::exchange(other.bytes_, 0);
    mapped_bytes_ = std::exchange(other.mapped_bytes_, 0);
  }
  return *this;
}

TableMemory::~TableMemory() { Free(); }

void TableMemory::Free() {
  if (data_ == nullptr) return;
#if defined(__linux__)
  if (mapped_bytes_ != 0) {
    munmap(data_, mapped_bytes_);
    data_ = nullptr;
    return;
  }
#endif
  ::operator delete(data_, kAlignment);
  data_ = nullptr;
}

}  // namespace rotary
