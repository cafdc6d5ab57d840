/* Sliding windows: exact counts against simple reference models, and no lost
 * update under 8 threads (run under ThreadSanitizer in CI). */
#include <pthread.h>
#include <stdlib.h>

#include "brace.h"
#include "check.h"

static brc_window_t *make(uint64_t kind, uint64_t size, uint64_t bucket) {
  brc_window_t *w = malloc(brc_window_bytes(kind, size));
  CHECK(w && brc_window_init(w, kind, size, bucket) == BRC_OK);
  return w;
}

static uint64_t lcg(uint64_t *x) {
  *x = *x * 6364136223846793005u + 1442695040888963407u;
  return *x >> 33;
}

static void test_ranges(void) {
  CHECK(brc_window_bytes(BRC_WINDOW_COUNT, 0) == 0);
  CHECK(brc_window_bytes(BRC_WINDOW_COUNT, BRC_WINDOW_COUNT_MAX + 1) == 0);
  CHECK(brc_window_bytes(BRC_WINDOW_TIME, BRC_WINDOW_TIME_MAX + 1) == 0);
  CHECK(brc_window_bytes(3, 10) == 0);
  brc_window_t *w = make(BRC_WINDOW_TIME, 2, 1);
  CHECK(brc_window_init(w, BRC_WINDOW_TIME, 2, 0) == BRC_EINVAL);
  free(w);
}

/* The last `size` outcomes, counted from a plain array. */
static void test_count_matches_model(void) {
  enum { SIZE = 7, STEPS = 2000 };
  unsigned history[STEPS];
  uint64_t durations[STEPS], seed = 3;
  brc_window_t *w = make(BRC_WINDOW_COUNT, SIZE, 0);
  for (int i = 0; i < STEPS; i++) {
    history[i] = (unsigned)(lcg(&seed) % 4);
    durations[i] = lcg(&seed) % 1000;
    brc_window_record(w, history[i], durations[i], 0);
    brc_window_snapshot_t got, want = {0};
    brc_window_snapshot(w, 0, &got);
    for (int j = i; j >= 0 && j > i - SIZE; j--) {
      want.calls++;
      want.failures += history[j] & BRC_OUTCOME_FAILURE;
      want.slow_calls += (history[j] & BRC_OUTCOME_SLOW) != 0;
      want.slow_failures += history[j] == 3;
      want.duration += durations[j];
    }
    CHECK_EQ_U64(got.calls, want.calls);
    CHECK_EQ_U64(got.failures, want.failures);
    CHECK_EQ_U64(got.slow_calls, want.slow_calls);
    CHECK_EQ_U64(got.slow_failures, want.slow_failures);
    CHECK_EQ_U64(got.duration, want.duration);
    if (check_failures)
      break;
  }
  brc_window_clear(w, 0);
  brc_window_snapshot_t empty;
  brc_window_snapshot(w, 0, &empty);
  CHECK(empty.calls == 0 && empty.failures == 0 && empty.duration == 0);
  free(w);
}

/* Outcomes whose bucket (time / width) is among the last `size` buckets. */
static void test_time_matches_model(void) {
  enum { SIZE = 5, STEPS = 3000 };
  const uint64_t width = 100;
  uint64_t times[STEPS], seed = 9, now = 12345;
  unsigned history[STEPS];
  brc_window_t *w = make(BRC_WINDOW_TIME, SIZE, width);
  for (int i = 0; i < STEPS; i++) {
    now += lcg(&seed) % (i % 500 < 20 ? 900 : 60); /* now and then a long idle gap */
    times[i] = now;
    history[i] = (unsigned)(lcg(&seed) % 4);
    brc_window_record(w, history[i], 1, now);
    uint64_t at = now + lcg(&seed) % 150; /* snapshots may look a little ahead */
    uint64_t oldest = at / width + 1 >= SIZE ? at / width + 1 - SIZE : 0;
    brc_window_snapshot_t got, want = {0};
    brc_window_snapshot(w, at, &got);
    for (int j = 0; j <= i; j++) {
      if (times[j] / width < oldest)
        continue;
      want.calls++;
      want.failures += history[j] & BRC_OUTCOME_FAILURE;
      want.slow_calls += (history[j] & BRC_OUTCOME_SLOW) != 0;
      want.slow_failures += history[j] == 3;
    }
    CHECK_EQ_U64(got.calls, want.calls);
    CHECK_EQ_U64(got.failures, want.failures);
    CHECK_EQ_U64(got.slow_calls, want.slow_calls);
    CHECK_EQ_U64(got.slow_failures, want.slow_failures);
    CHECK_EQ_U64(got.duration, want.calls);
    if (check_failures)
      break;
  }
  brc_window_clear(w, now);
  brc_window_snapshot_t empty;
  brc_window_snapshot(w, now, &empty);
  CHECK(empty.calls == 0 && empty.failures == 0);
  free(w);
}

typedef struct {
  brc_window_t *w;
  unsigned outcome;
  int calls;
} job_t;

static void *record_many(void *arg) {
  job_t *job = arg;
  for (int i = 0; i < job->calls; i++)
    brc_window_record(job->w, (job->outcome + (unsigned)i) % 4, 3, 42);
  return NULL;
}

static void run_threads(brc_window_t *w, int calls) {
  pthread_t t[8];
  job_t jobs[8];
  for (int i = 0; i < 8; i++) {
    jobs[i] = (job_t){w, (unsigned)i, calls};
    pthread_create(&t[i], NULL, record_many, &jobs[i]);
  }
  for (int i = 0; i < 8; i++)
    pthread_join(t[i], NULL);
}

/* A resized count window keeps the newest outcomes it holds, with their durations. */
static void test_carry(void) {
  brc_window_t *from = make(BRC_WINDOW_COUNT, 8, 0), *to;
  brc_window_snapshot_t snap;
  for (unsigned i = 0; i < 12; i++) /* 12 outcomes: the ring holds the last 8, i = 4..11 */
    brc_window_record(from, i >= 9 ? BRC_OUTCOME_FAILURE : (i % 2 ? BRC_OUTCOME_SLOW : 0), 10 + i, 0);
  to = make(BRC_WINDOW_COUNT, 4, 0); /* smaller: the newest 4, i = 8..11 */
  CHECK(brc_window_carry(to, from) == BRC_OK);
  brc_window_snapshot(to, 0, &snap);
  CHECK_EQ_U64(snap.calls, 4);
  CHECK_EQ_U64(snap.failures, 3);
  CHECK_EQ_U64(snap.slow_calls, 0);
  CHECK_EQ_U64(snap.duration, 18 + 19 + 20 + 21);
  brc_window_record(to, 0, 0, 0); /* the oldest carried (i = 8) leaves first */
  brc_window_snapshot(to, 0, &snap);
  CHECK_EQ_U64(snap.duration, 19 + 20 + 21);
  free(to);
  to = make(BRC_WINDOW_COUNT, 100, 0); /* larger: all 8 */
  CHECK(brc_window_carry(to, from) == BRC_OK);
  brc_window_snapshot(to, 0, &snap);
  CHECK_EQ_U64(snap.calls, 8);
  CHECK_EQ_U64(snap.failures, 3);
  CHECK_EQ_U64(snap.slow_calls, 2); /* i = 5 and 7 */
  free(to);
  to = make(BRC_WINDOW_TIME, 4, 1);
  CHECK(brc_window_carry(to, from) == BRC_EINVAL);
  brc_window_snapshot(to, 0, &snap);
  CHECK_EQ_U64(snap.calls, 0);
  free(to);
  brc_window_clear(from, 0); /* emptied slots carry nothing */
  to = make(BRC_WINDOW_COUNT, 4, 0);
  CHECK(brc_window_carry(to, from) == BRC_OK);
  brc_window_snapshot(to, 0, &snap);
  CHECK_EQ_U64(snap.calls, 0);
  free(to);
  free(from);
}

static void test_threads_lose_nothing(void) {
  const int calls = 2000; /* each thread: outcomes cycle 0..3, 500 of each */
  brc_window_snapshot_t s;
  brc_window_t *count = make(BRC_WINDOW_COUNT, 16000, 0);
  run_threads(count, calls);
  brc_window_snapshot(count, 42, &s);
  CHECK_EQ_U64(s.calls, 16000);
  CHECK_EQ_U64(s.failures, 8000);
  CHECK_EQ_U64(s.slow_calls, 8000);
  CHECK_EQ_U64(s.slow_failures, 4000);
  CHECK_EQ_U64(s.duration, 48000);
  free(count);

  /* a small ring evicting concurrently: the counts still add up to the ring */
  brc_window_t *ring = make(BRC_WINDOW_COUNT, 64, 0);
  run_threads(ring, calls);
  brc_window_snapshot(ring, 42, &s);
  CHECK_EQ_U64(s.calls, 64);
  CHECK_EQ_U64(s.duration, 64 * 3);
  uint64_t failures = 0, slow = 0;
  for (int i = 0; i < 64; i++) {
    uint64_t slot = atomic_load(&ring->ring[i]);
    failures += (slot >> 1) & 1u;
    slow += (slot >> 2) & 1u;
  }
  CHECK_EQ_U64(s.failures, failures);
  CHECK_EQ_U64(s.slow_calls, slow);
  free(ring);

  brc_window_t *time = make(BRC_WINDOW_TIME, 10, 1000);
  run_threads(time, calls);
  brc_window_snapshot(time, 42, &s);
  CHECK_EQ_U64(s.calls, 16000);
  CHECK_EQ_U64(s.failures, 8000);
  CHECK_EQ_U64(s.slow_failures, 4000);
  CHECK_EQ_U64(s.duration, 48000);
  free(time);
}

int main(void) {
  test_ranges();
  test_count_matches_model();
  test_time_matches_model();
  test_carry();
  test_threads_lose_nothing();
  CHECK_DONE();
}
