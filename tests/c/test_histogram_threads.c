/* The latency histogram under real parallelism (run under ThreadSanitizer in
 * CI): 8 threads record while the clock crosses windows; no record is lost
 * within a window, and a percentile read meanwhile never sees more than was
 * recorded. */
#include <pthread.h>
#include <sched.h>

#include "brace.h"
#include "check.h"

#define THREADS 8
#define PER_THREAD 20000
#define MS UINT64_C(1000000)
#define SEC UINT64_C(1000000000)

static brc_histogram_t histogram;
static _Atomic uint64_t shared_now;
static _Atomic int started;
static _Atomic int stop;

static void *record_frozen(void *arg) {
  uint64_t duration = (uint64_t)(uintptr_t)arg;
  atomic_fetch_add(&started, 1);
  for (int i = 0; i < PER_THREAD; i++)
    brc_histogram_record(&histogram, 10 * SEC, duration + (uint64_t)i % 1000);
  return NULL;
}

static void test_no_record_lost(void) {
  pthread_t t[THREADS];
  uint64_t count = 0, value = 0;
  CHECK(brc_histogram_init(&histogram, SEC) == BRC_OK);
  for (int i = 0; i < THREADS; i++)
    pthread_create(&t[i], NULL, record_frozen, (void *)(uintptr_t)(MS * (uint64_t)(i + 1)));
  for (int i = 0; i < THREADS; i++)
    pthread_join(t[i], NULL);
  CHECK(brc_histogram_percentile(&histogram, 10 * SEC, 1000000, &value, &count) == BRC_OK);
  CHECK_EQ_U64(count, THREADS * PER_THREAD);
  CHECK(value >= 8 * MS * 15 / 16 && value <= 8 * MS * 17 / 16);
}

static void *record_moving(void *arg) {
  (void)arg;
  atomic_fetch_add(&started, 1);
  for (int i = 0; i < PER_THREAD; i++) {
    uint64_t now = atomic_load_explicit(&shared_now, memory_order_relaxed);
    brc_histogram_record(&histogram, now, MS);
  }
  return NULL;
}

static void *read_moving(void *arg) {
  (void)arg;
  while (!atomic_load(&stop)) {
    uint64_t count = 0, now = atomic_load_explicit(&shared_now, memory_order_relaxed);
    CHECK(brc_histogram_percentile(&histogram, now, 950000, NULL, &count) == BRC_OK);
    CHECK(count <= THREADS * PER_THREAD);
  }
  return NULL;
}

/* Windows turn over while threads record: the last two windows never hold
 * more than was recorded, and records after the last move all count. */
static void test_windows_turn_over(void) {
  pthread_t t[THREADS], reader;
  uint64_t count = 0;
  CHECK(brc_histogram_init(&histogram, MS) == BRC_OK);
  atomic_store(&shared_now, SEC);
  atomic_store(&started, 0);
  atomic_store(&stop, 0);
  pthread_create(&reader, NULL, read_moving, NULL);
  for (int i = 0; i < THREADS; i++)
    pthread_create(&t[i], NULL, record_moving, NULL);
  while (atomic_load(&started) < THREADS)
    sched_yield();
  for (int step = 0; step < 200; step++) {
    atomic_fetch_add(&shared_now, MS / 2);
    sched_yield();
  }
  for (int i = 0; i < THREADS; i++)
    pthread_join(t[i], NULL);
  atomic_store(&stop, 1);
  pthread_join(reader, NULL);
  uint64_t now = atomic_load(&shared_now);
  CHECK(brc_histogram_percentile(&histogram, now, 500000, NULL, &count) == BRC_OK);
  CHECK(count <= THREADS * PER_THREAD);
  /* a quiet recorder now adds exactly one */
  uint64_t before = count;
  CHECK(brc_histogram_record(&histogram, now, MS) == BRC_OK);
  CHECK(brc_histogram_percentile(&histogram, now, 500000, NULL, &count) == BRC_OK);
  CHECK_EQ_U64(count, before + 1);
}

int main(void) {
  test_no_record_lost();
  test_windows_turn_over();
  CHECK_DONE();
}
