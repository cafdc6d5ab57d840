/* GCRA under real parallelism (run under ThreadSanitizer in CI). */
#include <pthread.h>
#include <sched.h>

#include "brace.h"
#include "check.h"

#define THREADS 8
#define MS UINT64_C(1000000)

static brc_gcra_t limiter;
static _Atomic uint64_t shared_now;
static _Atomic int stop;
static _Atomic uint64_t admitted;
static _Atomic uint64_t attempts; /* so the clock moves only once the threads run */

static void *hammer_frozen(void *arg) {
  uint64_t mine = 0;
  (void)arg;
  for (int i = 0; i < 20000; i++)
    if (brc_gcra_acquire(&limiter, 1 + (uint64_t)(i % 2), 1000 * MS, 0, NULL) == BRC_OK)
      mine += 1 + (uint64_t)(i % 2);
  atomic_fetch_add(&admitted, mine);
  return NULL;
}

static void test_frozen_clock_admits_exactly_burst(void) {
  pthread_t t[THREADS];
  brc_gcra_init(&limiter, 10 * MS, 1001);
  atomic_store(&admitted, 0);
  for (int i = 0; i < THREADS; i++)
    pthread_create(&t[i], NULL, hammer_frozen, NULL);
  for (int i = 0; i < THREADS; i++)
    pthread_join(t[i], NULL);
  /* requests of 1 and 2 tokens: the bucket is drained to the last token */
  CHECK_EQ_U64(atomic_load(&admitted), 1001);
}

static void *hammer_moving(void *arg) {
  uint64_t mine = 0;
  (void)arg;
  while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
    uint64_t now = atomic_load_explicit(&shared_now, memory_order_relaxed);
    if (brc_gcra_acquire(&limiter, 1, now, 0, NULL) == BRC_OK)
      mine++;
    atomic_fetch_add_explicit(&attempts, 1, memory_order_relaxed);
  }
  atomic_fetch_add(&admitted, mine);
  return NULL;
}

static void *reconfigure_loop(void *arg) {
  (void)arg;
  for (int i = 0; !atomic_load_explicit(&stop, memory_order_relaxed); i++) {
    uint64_t now = atomic_load_explicit(&shared_now, memory_order_relaxed);
    brc_gcra_reconfigure(&limiter, (i % 2) ? MS : 2 * MS, 50, now);
  }
  return NULL;
}

/* Never more than burst + elapsed / interval, whatever the interleaving. */
static void run_moving(int with_reconfigure) {
  pthread_t t[THREADS], r;
  const uint64_t interval = MS, burst = 50, start = 1000 * MS;
  brc_gcra_init(&limiter, interval, burst);
  atomic_store(&shared_now, start);
  atomic_store(&stop, 0);
  atomic_store(&admitted, 0);
  atomic_store(&attempts, 0);
  for (int i = 0; i < THREADS; i++)
    pthread_create(&t[i], NULL, hammer_moving, NULL);
  if (with_reconfigure)
    pthread_create(&r, NULL, reconfigure_loop, NULL);
  while (atomic_load(&attempts) < 20000) /* on a busy machine threads start late */
    sched_yield();
  for (int step = 0; step < 2000; step++) {
    atomic_fetch_add(&shared_now, 50000); /* 50 us per step */
    for (volatile int spin = 0; spin < 2000; spin++) {
    }
  }
  atomic_store(&stop, 1);
  for (int i = 0; i < THREADS; i++)
    pthread_join(t[i], NULL);
  if (with_reconfigure)
    pthread_join(r, NULL);
  uint64_t elapsed = atomic_load(&shared_now) - start;
  /* reconfigure alternates the interval between 1 and 2 ms: the fastest bounds */
  uint64_t bound = burst + elapsed / interval;
  uint64_t got = atomic_load(&admitted);
  if (got > bound)
    fprintf(stderr, "admitted %" PRIu64 " > bound %" PRIu64 "\n", got, bound);
  CHECK(got <= bound);
  CHECK(got >= burst);
}

int main(void) {
  test_frozen_clock_admits_exactly_burst();
  run_moving(0);
  run_moving(1);
  CHECK_DONE();
}
