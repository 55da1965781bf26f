// The per-target arithmetic of table rows, for every Highway target: the rows
// of a full table (BuildTableRows, table_build-inl.h), the rows the compact
// and on-the-fly modes synthesize per call (SynthesizeRow, row_synthesis-inl.h)
// and the rows multi-axis calls gather (GatherAxisRow, axis_rows-inl.h).
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "dispatch/instances/table_rows.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep

#include "dispatch/axis_rows-inl.h"
#include "dispatch/row_synthesis-inl.h"
#include "dispatch/table_build-inl.h"
