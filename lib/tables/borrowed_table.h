// A caller's cos/sin arrays as a rope object's table (rotary_create_borrowed):
// the caller's struct read and checked once, at create. The kernels read the
// arrays in place (RowSource::kBorrowed, or kFull when they already are rows of
// the layout a kernel reads); nothing is copied, built or cached.
#ifndef ROTARY_LIB_TABLES_BORROWED_TABLE_H_
#define ROTARY_LIB_TABLES_BORROWED_TABLE_H_

#include <cstddef>
#include <cstdint>

#include "dispatch/kernel_api.h"
#include "rotary/rotary.h"

namespace rotary {

struct BorrowedRows {
  const void* cos = nullptr;
  const void* sin = nullptr;
  int64_t row_stride = 0;  // elements
  int64_t rows = 0;
  DtypeIndex dtype = kF32;
};

// rotary_borrowed_table_init_sized.
void InitBorrowedTable(rotary_borrowed_table* table, size_t size);

// The caller's table for a validated config (ValidateConfig's). Throws Error
// naming the first bad field: table NULL or not set by rotary_borrowed_table_init,
// a NULL array, rows outside [1, kMaxPositionLimit], a row_stride below
// rotary_dim / 2, or a config that asks for frequencies of its own (a scaling
// scheme, a table mode).
BorrowedRows ReadBorrowedTable(const rotary_borrowed_table* table, const rotary_config& config);

// Whether the kernels can read the arrays as rows of `layout` in place: f32
// cos values then sin values of each pair, rotary_dim floats a row (vLLM's
// cos_sin_cache in f32, for the neox layout).
bool ReadableInPlace(const BorrowedRows& rows, TableLayout layout, size_t pairs);

}  // namespace rotary

#endif  // ROTARY_LIB_TABLES_BORROWED_TABLE_H_
