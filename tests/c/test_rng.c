#include <math.h>
#include <pthread.h>

#include "brace.h"
#include "check.h"

#define DRAWS 200000
#define BUCKETS 20

static void *draw_many(void *arg) {
  double *sum = arg;
  for (int i = 0; i < DRAWS; i++)
    *sum += brc_rng_uniform();
  return NULL;
}

int main(void) {
  brc_rng_seed(7);
  uint64_t first[4];
  for (int i = 0; i < 4; i++)
    first[i] = brc_rng_next();
  brc_rng_seed(7);
  for (int i = 0; i < 4; i++)
    CHECK_EQ_U64(brc_rng_next(), first[i]);
  brc_rng_seed(8);
  CHECK(brc_rng_next() != first[0]);

  /* uniform on [0, 1): range, and a chi-square test over 20 buckets
   * (19 degrees of freedom; 43.8 is the 0.999 quantile) */
  long counts[BUCKETS] = {0};
  for (int i = 0; i < DRAWS; i++) {
    double u = brc_rng_uniform();
    CHECK(u >= 0.0 && u < 1.0);
    counts[(int)(u * BUCKETS)]++;
  }
  double expected = (double)DRAWS / BUCKETS, chi2 = 0;
  for (int i = 0; i < BUCKETS; i++)
    chi2 += (counts[i] - expected) * (counts[i] - expected) / expected;
  CHECK(chi2 < 43.8);

  /* threads draw from their own streams, concurrently */
  pthread_t t[8];
  double sums[8] = {0};
  for (int i = 0; i < 8; i++)
    pthread_create(&t[i], NULL, draw_many, &sums[i]);
  for (int i = 0; i < 8; i++)
    pthread_join(t[i], NULL);
  for (int i = 0; i < 8; i++) {
    CHECK(fabs(sums[i] / DRAWS - 0.5) < 0.01);
    for (int j = 0; j < i; j++)
      CHECK(sums[i] != sums[j]);
  }
  CHECK_DONE();
}
