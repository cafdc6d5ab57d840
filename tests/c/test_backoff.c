/* Backoff and jitter: configuration ranges, exact delays without jitter, caps
 * and saturation for every kind and jitter, the bounds and means of each
 * jitter, reproducibility under brc_rng_seed, and threads sharing one backoff
 * (run under ThreadSanitizer in CI). */
#include <float.h>
#include <math.h>
#include <pthread.h>

#include "brace.h"
#include "check.h"

#define THREADS 8
#define DRAWS 100000

static const int kinds[] = {BRC_BACKOFF_EXPONENTIAL, BRC_BACKOFF_LINEAR, BRC_BACKOFF_CONSTANT};
static const int jitters[] = {BRC_JITTER_NONE, BRC_JITTER_FULL, BRC_JITTER_EQUAL,
                              BRC_JITTER_DECORRELATED, BRC_JITTER_PROPORTIONAL};

static brc_backoff_t make(int kind, uint64_t initial, uint64_t max, double multiplier,
                          uint64_t increment, int jitter, double factor) {
  brc_backoff_t b = {0};
  CHECK(brc_backoff_init(&b, kind, initial, max, multiplier, increment, jitter, factor) == BRC_OK);
  return b;
}

/* brc_backoff_delay's delay, checking that it returned BRC_OK. */
static uint64_t delay(const brc_backoff_t *b, uint64_t attempt, uint64_t previous) {
  uint64_t ns = UINT64_MAX;
  CHECK(brc_backoff_delay(b, attempt, previous, &ns) == BRC_OK);
  return ns;
}

static void test_init(void) {
  brc_backoff_t b = make(BRC_BACKOFF_CONSTANT, 5, 5, 1.0, 0, BRC_JITTER_NONE, 0.0);
  const brc_backoff_t before = b;
  const double nan = NAN, inf = INFINITY;
  CHECK(brc_backoff_init(&b, 0, 1, 10, 2.0, 0, BRC_JITTER_NONE, 0.2) == BRC_EINVAL);
  CHECK(brc_backoff_init(&b, 4, 1, 10, 2.0, 0, BRC_JITTER_NONE, 0.2) == BRC_EINVAL);
  CHECK(brc_backoff_init(&b, BRC_BACKOFF_LINEAR, 1, 10, 2.0, 0, 0, 0.2) == BRC_EINVAL);
  CHECK(brc_backoff_init(&b, BRC_BACKOFF_LINEAR, 1, 10, 2.0, 0, 6, 0.2) == BRC_EINVAL);
  /* growth from 0 stays 0 */
  CHECK(brc_backoff_init(&b, BRC_BACKOFF_EXPONENTIAL, 0, 10, 2.0, 0, BRC_JITTER_FULL, 0.2) ==
        BRC_EINVAL);
  CHECK(brc_backoff_init(&b, BRC_BACKOFF_LINEAR, 0, 10, 1.0, 1, BRC_JITTER_DECORRELATED, 0.2) ==
        BRC_EINVAL);
  CHECK(brc_backoff_init(&b, BRC_BACKOFF_EXPONENTIAL, 10, 9, 2.0, 0, BRC_JITTER_NONE, 0.2) ==
        BRC_EINVAL);
  CHECK(brc_backoff_init(&b, BRC_BACKOFF_EXPONENTIAL, 1, 9, 0.5, 0, BRC_JITTER_NONE, 0.2) ==
        BRC_EINVAL);
  CHECK(brc_backoff_init(&b, BRC_BACKOFF_EXPONENTIAL, 1, 9, nan, 0, BRC_JITTER_NONE, 0.2) ==
        BRC_EINVAL);
  CHECK(brc_backoff_init(&b, BRC_BACKOFF_EXPONENTIAL, 1, 9, inf, 0, BRC_JITTER_NONE, 0.2) ==
        BRC_EINVAL);
  CHECK(brc_backoff_init(&b, BRC_BACKOFF_LINEAR, 1, 9, 1.0, 1, BRC_JITTER_PROPORTIONAL, 0.0) ==
        BRC_EINVAL);
  CHECK(brc_backoff_init(&b, BRC_BACKOFF_LINEAR, 1, 9, 1.0, 1, BRC_JITTER_PROPORTIONAL, 1.01) ==
        BRC_EINVAL);
  CHECK(brc_backoff_init(&b, BRC_BACKOFF_LINEAR, 1, 9, 1.0, 1, BRC_JITTER_PROPORTIONAL, nan) ==
        BRC_EINVAL);
  CHECK(b.kind == before.kind && b.initial == before.initial && b.max == before.max);
  CHECK_EQ_U64(delay(&b, 3, 0), 5);

  /* settings a kind or jitter does not use are ignored, not validated */
  CHECK(brc_backoff_init(&b, BRC_BACKOFF_LINEAR, 1, 9, nan, 1, BRC_JITTER_FULL, -1.0) == BRC_OK);
  CHECK(b.multiplier == 1.0 && b.factor == 0.0);
  CHECK(brc_backoff_init(&b, BRC_BACKOFF_CONSTANT, 1, 9, 1.0, 7, BRC_JITTER_PROPORTIONAL, 1.0) ==
        BRC_OK);
  CHECK_EQ_U64(b.increment, 0);
  /* the extremes that are accepted */
  CHECK(brc_backoff_init(&b, BRC_BACKOFF_CONSTANT, 0, 0, 1.0, 0, BRC_JITTER_FULL, 0.0) == BRC_OK);
  CHECK_EQ_U64(delay(&b, 1, 0), 0);
  CHECK(brc_backoff_init(&b, BRC_BACKOFF_LINEAR, 0, 10, 1.0, 3, BRC_JITTER_NONE, 0.0) == BRC_OK);
  CHECK_EQ_U64(delay(&b, 1, 0), 0);
  CHECK_EQ_U64(delay(&b, 2, 0), 3);
  CHECK(brc_backoff_init(&b, BRC_BACKOFF_EXPONENTIAL, 1, UINT64_MAX, 1.0, 0, BRC_JITTER_NONE,
                         0.0) == BRC_OK);

  brc_backoff_t unset = {0};
  uint64_t untouched = 7;
  CHECK(brc_backoff_delay(&unset, 1, 0, &untouched) == BRC_EINVAL);
  CHECK_EQ_U64(untouched, 7);
}

static void test_exact_without_jitter(void) {
  brc_backoff_t b = make(BRC_BACKOFF_EXPONENTIAL, 100, 10000, 2.0, 0, BRC_JITTER_NONE, 0.0);
  const uint64_t expected[] = {100, 200, 400, 800, 1600, 3200, 6400, 10000, 10000};
  for (uint64_t k = 1; k <= 9; k++)
    CHECK_EQ_U64(delay(&b, k, 0), expected[k - 1]);
  CHECK_EQ_U64(delay(&b, 0, 0), 100); /* attempt 0 counts as 1 */

  b = make(BRC_BACKOFF_EXPONENTIAL, 1000000000, 30000000000, 1.5, 0, BRC_JITTER_NONE, 0.0);
  CHECK_EQ_U64(delay(&b, 2, 0), 1500000000);
  CHECK_EQ_U64(delay(&b, 3, 0), 2250000000);

  b = make(BRC_BACKOFF_LINEAR, 7, 100, 1.0, 10, BRC_JITTER_NONE, 0.0);
  for (uint64_t k = 1; k <= 10; k++)
    CHECK_EQ_U64(delay(&b, k, 0), 7 + 10 * (k - 1));
  CHECK_EQ_U64(delay(&b, 11, 0), 100);
  b = make(BRC_BACKOFF_LINEAR, 0, 90, 1.0, 10, BRC_JITTER_NONE, 0.0);
  CHECK_EQ_U64(delay(&b, 10, 0), 90); /* exactly max */
  CHECK_EQ_U64(delay(&b, 11, 0), 90);

  b = make(BRC_BACKOFF_CONSTANT, 42, 42, 1.0, 0, BRC_JITTER_NONE, 0.0);
  for (uint64_t k = 1; k <= 10; k++)
    CHECK_EQ_U64(delay(&b, k, 123456), 42);
}

static void test_monotone_and_saturating(void) {
  brc_backoff_t e = make(BRC_BACKOFF_EXPONENTIAL, 3, UINT64_MAX, 1.01, 0, BRC_JITTER_NONE, 0.0);
  brc_backoff_t l = make(BRC_BACKOFF_LINEAR, 3, UINT64_MAX, 1.0, UINT64_C(1) << 50,
                         BRC_JITTER_NONE, 0.0);
  uint64_t last_e = 0, last_l = 0;
  for (uint64_t k = 1; k <= 20000; k++) {
    uint64_t de = delay(&e, k, 0), dl = delay(&l, k, 0);
    CHECK(de >= last_e);
    CHECK(dl >= last_l);
    last_e = de;
    last_l = dl;
  }
  CHECK_EQ_U64(last_e, UINT64_MAX);
  CHECK_EQ_U64(last_l, UINT64_MAX);

  /* huge attempts and huge settings: max, never a wrapped value */
  const uint64_t huge[] = {64, 65, 1100, UINT64_C(1) << 32, UINT64_C(1) << 63, UINT64_MAX};
  brc_backoff_t big[] = {
      make(BRC_BACKOFF_EXPONENTIAL, UINT64_MAX / 2, UINT64_MAX, 2.0, 0, BRC_JITTER_NONE, 0.0),
      make(BRC_BACKOFF_EXPONENTIAL, 1, 1000, DBL_MAX, 0, BRC_JITTER_NONE, 0.0),
      make(BRC_BACKOFF_LINEAR, UINT64_MAX - 1, UINT64_MAX, 1.0, UINT64_MAX, BRC_JITTER_NONE, 0.0),
      make(BRC_BACKOFF_LINEAR, 1, 1000, 1.0, 30, BRC_JITTER_NONE, 0.0),
  };
  const uint64_t caps[] = {UINT64_MAX, 1000, UINT64_MAX, 1000};
  for (int i = 0; i < 4; i++)
    for (int j = 0; j < 6; j++)
      CHECK_EQ_U64(delay(&big[i], huge[j], 0), caps[i]);
  /* no growth: the initial delay at any attempt */
  brc_backoff_t flat[] = {
      make(BRC_BACKOFF_EXPONENTIAL, 5, 1000, 1.0, 0, BRC_JITTER_NONE, 0.0),
      make(BRC_BACKOFF_LINEAR, 5, 1000, 1.0, 0, BRC_JITTER_NONE, 0.0),
  };
  for (int i = 0; i < 2; i++)
    CHECK_EQ_U64(delay(&flat[i], UINT64_MAX, 0), 5);
}

/* Every kind and jitter stays within [0, max] for attempts 1..10000 and a few
 * huge ones, feeding each delay back as `previous`. */
static void test_caps(void) {
  const uint64_t huge[] = {UINT64_C(1) << 40, UINT64_MAX};
  for (int i = 0; i < 3; i++)
    for (int j = 0; j < 5; j++) {
      uint64_t initial = 1000, max = kinds[i] == BRC_BACKOFF_CONSTANT ? 1000 : 50000;
      brc_backoff_t b = make(kinds[i], initial, max, 1.7, 333, jitters[j], 1.0);
      uint64_t previous = 0, top = 0;
      for (uint64_t k = 1; k <= 10000; k++) {
        uint64_t d = delay(&b, k, previous);
        CHECK(d <= max);
        if (jitters[j] == BRC_JITTER_DECORRELATED)
          CHECK(d >= initial);
        top = d > top ? d : top;
        previous = d;
      }
      for (int h = 0; h < 2; h++)
        CHECK(delay(&b, huge[h], UINT64_MAX) <= max);
      /* the cap is reached (for growing kinds, or jitters that can add) */
      if (jitters[j] != BRC_JITTER_FULL && jitters[j] != BRC_JITTER_EQUAL &&
          !(kinds[i] == BRC_BACKOFF_CONSTANT && jitters[j] == BRC_JITTER_NONE))
        CHECK_EQ_U64(top, max);
    }
  /* jitter on a delay near 2^64 ns cannot wrap */
  for (int j = 0; j < 5; j++) {
    brc_backoff_t b = make(BRC_BACKOFF_CONSTANT, UINT64_MAX - 1, UINT64_MAX, 1.0, 0, jitters[j],
                           1.0);
    for (int n = 0; n < 1000; n++)
      CHECK(delay(&b, 1, UINT64_MAX) <= UINT64_MAX);
    CHECK(delay(&b, 1, UINT64_MAX - 1) >=
          (jitters[j] == BRC_JITTER_FULL || jitters[j] == BRC_JITTER_PROPORTIONAL
               ? 0
               : (UINT64_MAX - 1) / 2));
  }
}

/* Each jitter's range, and its mean within 1% of the intended one. */
static void test_jitter_bounds(void) {
  const uint64_t d = 1000000000; /* 1 s: attempt 1, far below max */
  const uint64_t max = 100 * d;
  struct {
    int jitter;
    uint64_t previous;
    double lo, hi, mean;
  } cases[] = {
      {BRC_JITTER_FULL, 0, 0, 1.0, 0.5},
      {BRC_JITTER_EQUAL, 0, 0.5, 1.0, 0.75},
      {BRC_JITTER_DECORRELATED, 0, 1.0, 3.0, 2.0},  /* first retry: U(initial, 3 initial) */
      {BRC_JITTER_DECORRELATED, 7 * d, 1.0, 21.0, 11.0},
      {BRC_JITTER_DECORRELATED, 50 * d, 1.0, 100.0, 67.111}, /* capped: 50/149 at max */
      {BRC_JITTER_PROPORTIONAL, 0, 0.8, 1.2, 1.0},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    brc_backoff_t b = make(BRC_BACKOFF_EXPONENTIAL, d, max, 2.0, 0, cases[i].jitter, 0.2);
    double sum = 0, lo = INFINITY, hi = 0;
    for (int n = 0; n < DRAWS; n++) {
      double x = (double)delay(&b, 1, cases[i].previous) / (double)d;
      sum += x;
      lo = x < lo ? x : lo;
      hi = x > hi ? x : hi;
    }
    CHECK(lo >= cases[i].lo && hi <= cases[i].hi);
    /* every draw lands in range, and the range is used end to end */
    double width = cases[i].hi - cases[i].lo;
    CHECK(lo < cases[i].lo + width * 0.001 && hi > cases[i].hi - width * 0.001);
    CHECK(fabs(sum / DRAWS - cases[i].mean) < 0.01 * cases[i].mean);
  }
  /* proportional at the cap: d * U(0.8, 1.2) capped at d, never above */
  brc_backoff_t p = make(BRC_BACKOFF_CONSTANT, d, d, 1.0, 0, BRC_JITTER_PROPORTIONAL, 0.2);
  int at_max = 0;
  for (int n = 0; n < DRAWS; n++) {
    uint64_t x = delay(&p, 1, 0);
    CHECK(x >= 8 * d / 10 && x <= d);
    at_max += x == d;
  }
  CHECK(fabs((double)at_max / DRAWS - 0.5) < 0.01);
}

static void test_reproducible(void) {
  brc_backoff_t b = make(BRC_BACKOFF_EXPONENTIAL, 1000, 1000000, 2.0, 0, BRC_JITTER_FULL, 0.0);
  uint64_t first[16];
  brc_rng_seed(99);
  for (int k = 0; k < 16; k++)
    first[k] = delay(&b, (uint64_t)k + 1, 0);
  brc_rng_seed(99);
  for (int k = 0; k < 16; k++)
    CHECK_EQ_U64(delay(&b, (uint64_t)k + 1, 0), first[k]);
  brc_rng_seed(100);
  int same = 0;
  for (int k = 0; k < 16; k++)
    same += delay(&b, (uint64_t)k + 1, 0) == first[k];
  CHECK(same < 16);
  /* NONE draws nothing: the stream is where it was */
  brc_backoff_t none = make(BRC_BACKOFF_LINEAR, 1, 100, 1.0, 1, BRC_JITTER_NONE, 0.0);
  brc_rng_seed(99);
  delay(&none, 5, 0);
  CHECK_EQ_U64(delay(&b, 1, 0), first[0]);
}

typedef struct {
  const brc_backoff_t *b;
  int failures;
  double sum;
} worker_t;

/* Threads share one const backoff and draw from their own streams. */
static void *worker(void *arg) {
  worker_t *w = arg;
  uint64_t previous = 0;
  for (int n = 0; n < DRAWS; n++) {
    uint64_t attempt = (uint64_t)(n % 40) + 1;
    uint64_t d = delay(w->b, attempt, previous);
    if (d < w->b->initial || d > w->b->max)
      w->failures++;
    previous = attempt == 40 ? 0 : d;
    w->sum += (double)d;
  }
  return NULL;
}

static void test_threads(void) {
  brc_backoff_t b = make(BRC_BACKOFF_EXPONENTIAL, 1000, 1000000, 2.0, 0, BRC_JITTER_DECORRELATED,
                         0.0);
  pthread_t t[THREADS];
  worker_t w[THREADS];
  for (int i = 0; i < THREADS; i++) {
    w[i] = (worker_t){&b, 0, 0};
    CHECK(pthread_create(&t[i], NULL, worker, &w[i]) == 0);
  }
  for (int i = 0; i < THREADS; i++)
    pthread_join(t[i], NULL);
  for (int i = 0; i < THREADS; i++) {
    CHECK(w[i].failures == 0);
    for (int j = 0; j < i; j++)
      CHECK(w[i].sum != w[j].sum); /* distinct streams */
  }
}

int main(void) {
  test_init();
  test_exact_without_jitter();
  test_monotone_and_saturating();
  test_caps();
  test_jitter_bounds();
  test_reproducible();
  test_threads();
  CHECK_DONE();
}
