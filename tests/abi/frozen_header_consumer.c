/* A C program built against the frozen ABI 1 header (tests/abi/rotary_abi1.h)
 * and run against the current library: its config struct is the ABI 1 one,
 * whatever fields the current header has added since. It sets the fields as
 * a user of that release would, rotates with the plain and the multi-axis
 * entry points, and checks the values against RoPE computed here in double. */
#include <math.h>
#include <stdio.h>

#include "rotary_abi1.h"

enum { kHeadDim = 16, kSeq = 3 };

/* Neox RoPE of one head at position p (rotary_dim = head_dim, base 10000),
   pair i at positions[axis_of_pair[i]]. */
static void Reference(const float* x, double* y, const long long* pair_position) {
  const int pairs = kHeadDim / 2;
  for (int i = 0; i < pairs; ++i) {
    const double angle = (double)pair_position[i] * pow(10000.0, -2.0 * i / kHeadDim);
    y[i] = x[i] * cos(angle) - x[i + pairs] * sin(angle);
    y[i + pairs] = x[i] * sin(angle) + x[i + pairs] * cos(angle);
  }
}

static int Check(const float* got, const float* x, const long long positions[][kSeq], const int* axis_of_pair) {
  for (int s = 0; s < kSeq; ++s) {
    long long pair_position[kHeadDim / 2];
    for (int i = 0; i < kHeadDim / 2; ++i) pair_position[i] = positions[axis_of_pair[i]][s];
    double want[kHeadDim];
    Reference(x + s * kHeadDim, want, pair_position);
    for (int k = 0; k < kHeadDim; ++k) {
      if (!(fabs(got[s * kHeadDim + k] - want[k]) <= 1e-5)) {
        fprintf(stderr, "s %d component %d: got %.9g, want %.9g\n", s, k, got[s * kHeadDim + k], want[k]);
        return 1;
      }
    }
  }
  return 0;
}

int main(void) {
  float x[kSeq * kHeadDim], y[kSeq * kHeadDim];
  for (int i = 0; i < kSeq * kHeadDim; ++i) x[i] = (float)(i % 7) - 3.0f;
  rotary_tensor t = {y, ROTARY_F32, 1, kSeq, 1, kSeq * kHeadDim, kHeadDim, kHeadDim};
  static const long long kPositions[3][kSeq] = {{5, 6, 7}, {5, 9, 11}, {5, 2, 30}};
  static const int kPlain[kHeadDim / 2] = {0, 0, 0, 0, 0, 0, 0, 0};
  static const int kSections[kHeadDim / 2] = {0, 0, 1, 1, 1, 2, 2, 2}; /* mrope_section [2, 3, 3] */

  rotary_config config;
  rotary_config_init(&config);
  config.head_dim = kHeadDim; /* rotary_dim follows */
  rotary_rope* rope = NULL;
  if (rotary_create(&config, &rope) != ROTARY_OK) {
    fprintf(stderr, "rotary_create: %s\n", rotary_last_error());
    return 1;
  }
  for (int i = 0; i < kSeq * kHeadDim; ++i) y[i] = x[i];
  if (rotary_apply(rope, &t, NULL, 5) != ROTARY_OK || Check(y, x, kPositions, kPlain)) {
    fprintf(stderr, "plain RoPE: %s\n", rotary_last_error());
    return 1;
  }
  rotary_destroy(rope);

  config.mrope_section[0] = 2;
  config.mrope_section[1] = 3;
  config.mrope_section[2] = 3;
  config.mrope_section_count = 3;
  if (rotary_create(&config, &rope) != ROTARY_OK) {
    fprintf(stderr, "rotary_create (M-RoPE): %s\n", rotary_last_error());
    return 1;
  }
  int64_t ids[3 * kSeq];
  for (int a = 0; a < 3; ++a)
    for (int s = 0; s < kSeq; ++s) ids[a * kSeq + s] = kPositions[a][s];
  for (int i = 0; i < kSeq * kHeadDim; ++i) y[i] = x[i];
  if (rotary_apply_axes(rope, &t, &t, NULL, NULL, ids, 3, 0, 1.0f, 0) != ROTARY_OK ||
      Check(y, x, kPositions, kSections)) {
    fprintf(stderr, "M-RoPE: %s\n", rotary_last_error());
    return 1;
  }
  rotary_destroy(rope);
  printf("a program built against the ABI 1 header works with rotary %s\n", rotary_version());
  return 0;
}
