#include <cstdio>
#include <vector>

#include "rotary/rotary.hpp"

int main() {
  // GPT-J style: interleaved pairs, 64 of 256 components rotated.
  rotary::Rope rope(rotary::Config().head_dim(256).rotary_dim(64).pairing(rotary::Pairing::kInterleaved));

  const int64_t batch = 2, seq = 16, heads = 8, dim = 256;
  std::vector<float> k(batch * seq * heads * dim, 0.5f);
  rotary::Tensor view(k.data(), batch, seq, heads, dim);  // contiguous [b, s, h, d]

  rope.apply(view, 0);  // positions 0..15 in both batches

  std::vector<int64_t> ids(batch * seq);  // or one explicit position per (b, s)
  for (int64_t i = 0; i < batch * seq; ++i) ids[i] = 1000 + i;
  rope.apply(view, ids);
  rope.apply_inverse(view, ids);  // and back

  try {
    rope.apply(view, -1);
  } catch (const rotary::Error& e) {  // one exception type, carrying the status
    std::printf("rejected (status %d): %s\n", static_cast<int>(e.status()), e.what());
  }
  std::printf("active target %s\n", rotary::active_target().c_str());
  return 0;
}
