// The rope object behind the opaque C handle: a validated config, its
// frequency plan and cached table, and apply = validate -> table -> schedule -> kernel.
#ifndef ROTARY_LIB_ROPE_H_
#define ROTARY_LIB_ROPE_H_

#include <atomic>

#include "dispatch/kernel_api.h"
#include "lib/rope_table.h"
#include "rotary/rotary.h"

struct rotary_rope {
 public:
  explicit rotary_rope(const rotary_config& config);  // config must be validated

  // In place over x. Thread-safe. Throws rotary::Error; writes nothing then.
  void Apply(const rotary_tensor* x, const int64_t* positions, int64_t offset,
             rotary::DirectionIndex direction) const;

  int64_t table_bytes() const { return table_.bytes(); }
  const rotary_config& config() const { return config_; }

 private:
  // Validates the positions of a [batch, seq] call and makes their table rows readable.
  void PrepareTable(int64_t batch, int64_t seq, const int64_t* positions, int64_t offset) const;

  const rotary_config config_;
  rotary::RopeTable table_;
  mutable std::atomic<bool> warmed_{false};  // initial max_positions rows built
};

#endif  // ROTARY_LIB_ROPE_H_
