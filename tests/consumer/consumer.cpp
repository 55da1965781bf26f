// A consumer of an installed rotary, in C++ (the header-only API over the C ABI).
#include <cstdio>
#include <vector>

#include "rotary/rotary.hpp"

int main() {
  const rotary::Rope rope(rotary::Config().head_dim(64).base(500000).llama3());
  std::vector<float> q(2 * 3 * 4 * 64, 0.25f);
  rope.apply(rotary::Tensor(q.data(), 2, 3, 4, 64), 7);
  try {
    rope.apply(rotary::Tensor(q.data(), 2, 3, 4, 64), -1);
    return 1;  // must have thrown
  } catch (const rotary::Error& e) {
    std::printf("consumer: rotary %s on %s: ok (rejected: %s)\n", rotary::version().c_str(),
                rotary::active_target().c_str(), e.what());
  }
  return 0;
}
