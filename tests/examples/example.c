#include <stdio.h>

#include "rotary/rotary.h"

int main(void) {
  rotary_config config;
  rotary_config_init(&config); /* head_dim 128, rotary_dim 128, NEOX, base 10000 */
  config.base = 500000.0;      /* e.g. Llama 3 */
  rotary_rope* rope = NULL;
  if (rotary_create(&config, &rope) != ROTARY_OK) {
    fprintf(stderr, "rotary_create: %s\n", rotary_last_error());
    return 1;
  }

  enum { SEQ = 4, HEADS = 8, DIM = 128 };
  static float q[SEQ * HEADS * DIM]; /* [batch 1, seq, heads, head_dim], contiguous */
  for (int i = 0; i < SEQ * HEADS * DIM; ++i) q[i] = (float)(i % 7) - 3.0f;
  rotary_tensor t = {q, ROTARY_F32, 1, SEQ, HEADS, SEQ * HEADS * DIM, HEADS * DIM, DIM};

  /* Positions 100..103 (offset + s); pass an int64 array instead of NULL for explicit ids. */
  if (rotary_apply(rope, &t, NULL, 100) != ROTARY_OK) {
    fprintf(stderr, "rotary_apply: %s\n", rotary_last_error());
    return 1;
  }
  /* Bad input is an error with a message, never a crash. */
  if (rotary_apply(rope, &t, NULL, -5) == ROTARY_OUT_OF_RANGE) printf("rejected: %s\n", rotary_last_error());

  printf("rotated on %s, table %lld bytes\n", rotary_active_target(), (long long)rotary_table_bytes(rope));
  rotary_destroy(rope);
  return 0;
}
