/* Latency histogram: buckets and percentiles against exact ones (a sorted
 * array), the 6.25% bound over the whole range, recency (two windows), the
 * range checks, and a window number far ahead (aliased laps). */
#include <stdlib.h>

#include "brace.h"
#include "check.h"

#define US UINT64_C(1000)
#define MS UINT64_C(1000000)
#define SEC UINT64_C(1000000000)

static uint64_t lcg(uint64_t *x) {
  *x = *x * 6364136223846793005u + 1442695040888963407u;
  return *x >> 11;
}

static int ascending(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

static uint64_t percentile(brc_histogram_t *h, uint64_t now, uint32_t q_ppm, uint64_t *count) {
  uint64_t value = UINT64_MAX;
  CHECK(brc_histogram_percentile(h, now, q_ppm, &value, count) == BRC_OK);
  return value;
}

/* Within 6.25% of the exact nearest-rank percentile, for durations of 1.024 us to 275 s. */
static void test_against_sorted(void) {
  enum { N = 5000 };
  static uint64_t samples[N];
  static const uint32_t qs[] = {0, 1, 10000, 500000, 900000, 950000, 990000, 999000, 1000000};
  uint64_t seed = 42;
  for (int round = 0; round < 20; round++) {
    brc_histogram_t h;
    CHECK(brc_histogram_init(&h, 10 * SEC) == BRC_OK);
    int n = 1 + (int)(lcg(&seed) % N);
    for (int i = 0; i < n; i++) {
      /* log-uniform over 2^10 .. 2^38 ns */
      unsigned octave = 10 + (unsigned)(lcg(&seed) % 28);
      uint64_t d = (UINT64_C(1) << octave) + lcg(&seed) % (UINT64_C(1) << octave);
      samples[i] = d;
      CHECK(brc_histogram_record(&h, 100 * SEC, d) == BRC_OK);
    }
    qsort(samples, (size_t)n, sizeof samples[0], ascending);
    for (size_t k = 0; k < sizeof qs / sizeof qs[0]; k++) {
      uint64_t rank = ((uint64_t)qs[k] * (uint64_t)n + 999999) / 1000000, count = 0;
      uint64_t exact = samples[rank == 0 ? 0 : rank - 1];
      uint64_t got = percentile(&h, 100 * SEC, qs[k], &count);
      CHECK_EQ_U64(count, (uint64_t)n);
      uint64_t diff = got > exact ? got - exact : exact - got;
      CHECK(diff * 16 <= exact);
    }
  }
}

static void test_ends_and_range(void) {
  brc_histogram_t h;
  uint64_t count = 9, value = 9;
  CHECK(brc_histogram_init(&h, MS - 1) == BRC_EINVAL);
  CHECK(brc_histogram_init(&h, BRC_HISTOGRAM_WINDOW_MAX + 1) == BRC_EINVAL);
  CHECK(brc_histogram_init(&h, MS) == BRC_OK);
  CHECK(brc_histogram_percentile(&h, SEC, 1000001, &value, &count) == BRC_EINVAL);
  CHECK_EQ_U64(value, 9);
  CHECK_EQ_U64(percentile(&h, SEC, 500000, &count), 0); /* empty */
  CHECK_EQ_U64(count, 0);
  CHECK(brc_histogram_record(&h, SEC, 0) == BRC_OK);
  CHECK_EQ_U64(percentile(&h, SEC, 500000, NULL), 512);
  CHECK(brc_histogram_record(&h, SEC, UINT64_MAX) == BRC_OK);
  CHECK_EQ_U64(percentile(&h, SEC, 1000000, NULL), UINT64_C(1) << 38);
  CHECK(brc_histogram_percentile(&h, SEC, 0, NULL, NULL) == BRC_OK);
  /* one bucket edge: 1024 and 1151 share [1024, 1152), midpoint 1088 */
  CHECK(brc_histogram_init(&h, MS) == BRC_OK);
  CHECK(brc_histogram_record(&h, SEC, 1024) == BRC_OK);
  CHECK(brc_histogram_record(&h, SEC, 1151) == BRC_OK);
  CHECK(brc_histogram_record(&h, SEC, 1152) == BRC_OK);
  CHECK_EQ_U64(percentile(&h, SEC, 500000, NULL), 1088);
  CHECK_EQ_U64(percentile(&h, SEC, 1000000, NULL), 1152 + 64);
}

/* A percentile reads the current window and the one before; older is forgotten. */
static void test_recency(void) {
  brc_histogram_t h;
  uint64_t count = 0;
  CHECK(brc_histogram_init(&h, SEC) == BRC_OK);
  uint64_t t = 1000 * SEC; /* window 1000 */
  for (int i = 0; i < 10; i++)
    CHECK(brc_histogram_record(&h, t, 100 * MS) == BRC_OK);
  t += SEC; /* window 1001: both read */
  for (int i = 0; i < 10; i++)
    CHECK(brc_histogram_record(&h, t, 1 * MS) == BRC_OK);
  CHECK(percentile(&h, t, 1000000, &count) > 90 * MS);
  CHECK_EQ_U64(count, 20);
  t += SEC; /* window 1002: 1000 is gone */
  CHECK(percentile(&h, t, 1000000, &count) < 2 * MS);
  CHECK_EQ_U64(count, 10);
  CHECK(brc_histogram_record(&h, t, 5 * MS) == BRC_OK); /* replaces window 1000's words */
  CHECK(percentile(&h, t, 1000000, &count) < 6 * MS);
  CHECK_EQ_U64(count, 11);
  /* a caller behind the newest window records in it */
  CHECK(brc_histogram_record(&h, t - 2 * SEC, 5 * MS) == BRC_OK);
  percentile(&h, t, 1000000, &count);
  CHECK_EQ_U64(count, 12);
  t += 5 * SEC; /* long quiet: everything forgotten */
  percentile(&h, t, 500000, &count);
  CHECK_EQ_U64(count, 0);
}

/* Window numbers 2^25 apart share a lap tag: entering one clears the other's words. */
static void test_aliased_laps(void) {
  brc_histogram_t h;
  uint64_t count = 0;
  CHECK(brc_histogram_init(&h, MS) == BRC_OK);
  uint64_t t = 4 * MS;
  CHECK(brc_histogram_record(&h, t, 3 * MS) == BRC_OK);
  t += (UINT64_C(1) << 25) * MS; /* the same lap tag, 2^24 laps later */
  percentile(&h, t, 500000, &count);
  CHECK_EQ_U64(count, 1); /* read-only: the reader cannot tell yet */
  CHECK(brc_histogram_record(&h, t, 10 * US) == BRC_OK);
  CHECK(percentile(&h, t, 1000000, &count) < 20 * US);
  CHECK_EQ_U64(count, 1);
}

int main(void) {
  test_against_sorted();
  test_ends_and_range();
  test_recency();
  test_aliased_laps();
  CHECK_DONE();
}
