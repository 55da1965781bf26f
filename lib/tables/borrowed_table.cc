#include "lib/tables/borrowed_table.h"

#include "lib/config/config.h"
#include "lib/config/enum_value.h"
#include "lib/config/sized_struct.h"
#include "lib/error.h"

namespace rotary {
namespace {

rotary_borrowed_table DefaultBorrowedTable() {
  rotary_borrowed_table table{};
  table.struct_size = sizeof(rotary_borrowed_table);
  table.dtype = ROTARY_F32;
  return table;
}

// The first release's struct: everything up to rows.
constexpr size_t kFirstBorrowedTableSize = offsetof(rotary_borrowed_table, rows) + sizeof(int64_t);

}  // namespace

void InitBorrowedTable(rotary_borrowed_table* table, size_t size) { InitSized(table, size, DefaultBorrowedTable()); }

BorrowedRows ReadBorrowedTable(const rotary_borrowed_table* caller, const rotary_config& config) {
  rotary_borrowed_table table;
  ReadSized(caller, &table, DefaultBorrowedTable, kFirstBorrowedTableSize, "table", "rotary_borrowed_table_init");
  const int dtype = EnumValue(table.dtype);
  if (dtype != ROTARY_F32 && dtype != ROTARY_F16 && dtype != ROTARY_BF16) {
    Fail(Status::kInvalidArgument, "table.dtype = ", dtype, " is not a rotary_dtype");
  }
  if (table.cos == nullptr) Fail(Status::kInvalidArgument, "table.cos is NULL");
  if (table.sin == nullptr) Fail(Status::kInvalidArgument, "table.sin is NULL");
  if (table.rows < 1 || table.rows > kMaxPositionLimit) {
    Fail(Status::kInvalidArgument, "table.rows = ", table.rows, " is outside [1, ", kMaxPositionLimit, "]");
  }
  const int64_t pairs = config.rotary_dim / 2;
  if (table.row_stride < pairs || table.row_stride > (int64_t{1} << 32)) {
    Fail(Status::kInvalidArgument, "table.row_stride = ", table.row_stride, " is outside [rotary_dim / 2 = ", pairs,
         ", 2^32]: each position holds rotary_dim / 2 values of cos and of sin");
  }
  // Its frequencies are the table's: a scheme or a table mode of the config
  // would silently not apply.
  if (EnumValue(config.scaling) != ROTARY_SCALING_DEFAULT) {
    Fail(Status::kInvalidArgument, "config.scaling = ", EnumValue(config.scaling),
         " with a borrowed table: its cos/sin already are the scaled ones; use ROTARY_SCALING_DEFAULT");
  }
  if (config.attention_factor != 0.0) {
    Fail(Status::kInvalidArgument, "config.attention_factor = ", config.attention_factor,
         " with a borrowed table: its cos/sin carry any factor already; leave it 0");
  }
  if (EnumValue(config.table_mode) != ROTARY_TABLE_AUTO) {
    Fail(Status::kInvalidArgument, "config.table_mode = ", EnumValue(config.table_mode),
         " with a borrowed table: it is the table; use ROTARY_TABLE_AUTO");
  }
  BorrowedRows rows;
  rows.cos = table.cos;
  rows.sin = table.sin;
  rows.row_stride = table.row_stride;
  rows.rows = table.rows;
  rows.dtype = static_cast<DtypeIndex>(dtype);
  return rows;
}

bool ReadableInPlace(const BorrowedRows& rows, TableLayout layout, size_t pairs) {
  const int64_t p = static_cast<int64_t>(pairs);
  return rows.dtype == kF32 && layout == TableLayout::kPerPair && rows.row_stride == 2 * p &&
         static_cast<const float*>(rows.sin) == static_cast<const float*>(rows.cos) + p;
}

}  // namespace rotary
