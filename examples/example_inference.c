/* An inference loop with a KV cache, in C: prefill a prompt, then decode one
 * token at a time. Each step rotates q (scaled by 1/sqrt(head_dim) in the same
 * pass) in place and writes the rotated k straight into its slot of the KV
 * cache with one rotary_apply_qk_to call, then attends over the cache.
 *
 * It checks what a backend relies on: the keys cached step by step equal the
 * keys of one fresh apply over the whole sequence, bit for bit, so prefill
 * chunking and decode never change what attention sees. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "rotary/rotary.h"

enum {
  Q_HEADS = 8,  /* grouped-query attention: 4 q heads share each kv head */
  KV_HEADS = 2,
  HEAD_DIM = 64,
  PROMPT = 12,  /* tokens of the prefill */
  DECODE = 5,   /* tokens generated after it */
  MAX_LEN = PROMPT + DECODE
};

static float k_cache[MAX_LEN][KV_HEADS][HEAD_DIM]; /* rotated keys, [seq, heads, head_dim] */
static float v_cache[MAX_LEN][KV_HEADS][HEAD_DIM];

/* Stand-in for the q/k/v projections of token `pos`: deterministic values in [-1, 1). */
static float projection(int pos, int which, int i) {
  uint32_t h = (uint32_t)(pos * 7919 + which * 104729 + i) * 2654435761u;
  h ^= h >> 15;
  return (float)(h % 2000u) / 1000.0f - 1.0f;
}

static void project(int first, int count, float* q, float* k) {
  for (int t = 0; t < count; ++t) {
    for (int i = 0; i < Q_HEADS * HEAD_DIM; ++i) q[t * Q_HEADS * HEAD_DIM + i] = projection(first + t, 0, i);
    for (int i = 0; i < KV_HEADS * HEAD_DIM; ++i) {
      k[t * KV_HEADS * HEAD_DIM + i] = projection(first + t, 1, i);
      (&v_cache[first + t][0][0])[i] = projection(first + t, 2, i);
    }
  }
}

static int check(rotary_status status, const char* what) {
  if (status != ROTARY_OK) fprintf(stderr, "%s: %s\n", what, rotary_last_error());
  return status == ROTARY_OK;
}

/* Rotates `count` tokens starting at position `first`: q in place (and scaled),
 * k from k_new into the cache rows first..first+count-1. */
static int rotate_into_cache(const rotary_rope* rope, int first, int count, float* q, float* k_new) {
  rotary_tensor q_view = {q, ROTARY_F32, 1, count, Q_HEADS, count * Q_HEADS * HEAD_DIM, Q_HEADS * HEAD_DIM, HEAD_DIM};
  rotary_tensor k_src = {k_new, ROTARY_F32, 1, count, KV_HEADS, count * KV_HEADS * HEAD_DIM, KV_HEADS * HEAD_DIM,
                         HEAD_DIM};
  rotary_tensor k_dst = {&k_cache[first][0][0], ROTARY_F32, 1, count, KV_HEADS, MAX_LEN * KV_HEADS * HEAD_DIM,
                         KV_HEADS * HEAD_DIM, HEAD_DIM};
  return check(rotary_apply_qk_to(rope, &q_view, &q_view, &k_src, &k_dst, NULL, first, 1.0f / sqrtf(HEAD_DIM)),
               "rotary_apply_qk_to");
}

/* Attention of one token's q heads over cache rows 0..pos: returns the sum of the outputs. */
static float attend(const float* q, int pos) {
  float total = 0.0f;
  for (int h = 0; h < Q_HEADS; ++h) {
    const int kv = h / (Q_HEADS / KV_HEADS);
    float scores[MAX_LEN], max_score = -INFINITY, norm = 0.0f;
    for (int j = 0; j <= pos; ++j) {
      float s = 0.0f;
      for (int d = 0; d < HEAD_DIM; ++d) s += q[h * HEAD_DIM + d] * k_cache[j][kv][d];
      scores[j] = s;
      if (s > max_score) max_score = s;
    }
    for (int j = 0; j <= pos; ++j) norm += (scores[j] = expf(scores[j] - max_score));
    for (int j = 0; j <= pos; ++j) {
      for (int d = 0; d < HEAD_DIM; ++d) total += scores[j] / norm * v_cache[j][kv][d];
    }
  }
  return total;
}

int main(void) {
  rotary_config config;
  rotary_config_init(&config);
  config.head_dim = HEAD_DIM;
  config.rotary_dim = HEAD_DIM;
  config.base = 500000.0; /* e.g. Llama 3 */
  rotary_rope* rope = NULL;
  if (!check(rotary_create(&config, &rope), "rotary_create")) return 1;

  static float q[PROMPT][Q_HEADS][HEAD_DIM], k[PROMPT][KV_HEADS][HEAD_DIM];

  /* Prefill: the whole prompt in one call, positions 0..PROMPT-1. */
  project(0, PROMPT, &q[0][0][0], &k[0][0][0]);
  if (!rotate_into_cache(rope, 0, PROMPT, &q[0][0][0], &k[0][0][0])) return 1;
  printf("prefill: %d tokens, last token attends to %.6f\n", PROMPT, attend(&q[PROMPT - 1][0][0], PROMPT - 1));

  /* Decode: one token per step at the next position. */
  for (int pos = PROMPT; pos < MAX_LEN; ++pos) {
    project(pos, 1, &q[0][0][0], &k[0][0][0]);
    if (!rotate_into_cache(rope, pos, 1, &q[0][0][0], &k[0][0][0])) return 1;
    printf("decode: position %d attends to %.6f\n", pos, attend(&q[0][0][0], pos));
  }

  /* The cache must equal one fresh apply of every key at positions 0..MAX_LEN-1. */
  static float q_unused[MAX_LEN][Q_HEADS][HEAD_DIM], k_all[MAX_LEN][KV_HEADS][HEAD_DIM];
  project(0, MAX_LEN, &q_unused[0][0][0], &k_all[0][0][0]);
  rotary_tensor all = {k_all, ROTARY_F32, 1, MAX_LEN, KV_HEADS, MAX_LEN * KV_HEADS * HEAD_DIM, KV_HEADS * HEAD_DIM,
                       HEAD_DIM};
  if (!check(rotary_apply(rope, &all, NULL, 0), "rotary_apply")) return 1;
  if (memcmp(k_all, k_cache, sizeof k_cache) != 0) {
    fprintf(stderr, "FAIL: keys cached by prefill + decode differ from one full-sequence apply\n");
    return 1;
  }
  printf("PASS: %d cached keys equal one full-sequence apply, bit for bit (target %s)\n", MAX_LEN,
         rotary_active_target());
  rotary_destroy(rope);
  return 0;
}
