/* A consumer of an installed rotary, in C: rotates one head and undoes it.
 * Prints the version and the target so the test can tell which library ran. */
#include <stdio.h>

#include "rotary/rotary.h"

static float distance(float a, float b) { return a > b ? a - b : b - a; }

int main(void) {
  rotary_config config;
  rotary_config_init(&config);
  config.head_dim = 8;
  config.rotary_dim = 8;
  rotary_rope* rope = NULL;
  if (rotary_create(&config, &rope) != ROTARY_OK) {
    fprintf(stderr, "rotary_create: %s\n", rotary_last_error());
    return 1;
  }
  float x[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  rotary_tensor t = {x, ROTARY_F32, 1, 1, 1, 8, 8, 8};
  int ok = rotary_apply(rope, &t, NULL, 42) == ROTARY_OK && distance(x[0], 1.0f) > 1e-3f &&
           rotary_apply_inverse(rope, &t, NULL, 42) == ROTARY_OK;
  for (int i = 0; i < 8; ++i) ok = ok && distance(x[i], (float)(i + 1)) < 1e-5f;
  rotary_destroy(rope);
  printf("consumer: rotary %s on %s: %s\n", rotary_version(), rotary_active_target(), ok ? "ok" : "FAILED");
  return ok ? 0 : 1;
}
