/* The keyed limiter under real parallelism (run under ThreadSanitizer in CI):
 * threads hammer a few keys (many callers installing the same new key at
 * once) and many keys (more than the table holds: evictions and full
 * windows), with the time passed in. Per key, never more than
 * burst + elapsed / interval tokens are admitted, whatever the interleaving. */
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>

#include "brace.h"
#include "check.h"

#define THREADS 8
#define MS UINT64_C(1000000)
#define US UINT64_C(1000)
#define KEYS_MAX 4096 /* >= ROUNDS */

static brc_keyed_t *table;
static uint64_t keys;   /* keys 0..keys-1, hashed with brc_hash64_u64 */
static _Atomic uint64_t per_key[KEYS_MAX];
static _Atomic uint64_t shared_now;
static _Atomic int stop;
static _Atomic uint64_t attempts; /* so the clock moves only once the threads run */
static _Atomic uint64_t full;
static int batched; /* the threads decide in batches (brc_keyed_acquire_many_u64) of BATCH keys */
#define BATCH 8

static void reset(uint64_t capacity, uint64_t interval, uint64_t burst, uint64_t nkeys) {
  free(table);
  table = calloc(1, (size_t)brc_keyed_bytes(capacity));
  CHECK(brc_keyed_init(table, capacity, interval, burst) == BRC_OK);
  keys = nkeys;
  for (uint64_t k = 0; k < KEYS_MAX; k++)
    atomic_store(&per_key[k], 0);
  atomic_store(&stop, 0);
  atomic_store(&attempts, 0);
  atomic_store(&full, 0);
}

static void *hammer(void *arg) {
  uint64_t seed = (uint64_t)(uintptr_t)arg * UINT64_C(0x9E3779B97F4A7C15) + 1;
  int frozen = atomic_load(&shared_now) == 0;
  for (uint64_t i = 0; frozen ? i < 20000 : !atomic_load_explicit(&stop, memory_order_relaxed); i++) {
    seed ^= seed << 13; /* xorshift64: each thread its own order of keys */
    seed ^= seed >> 7;
    seed ^= seed << 17;
    uint64_t k = seed % keys, n = 1 + (i & 1);
    uint64_t now = frozen ? 1000 * MS : atomic_load_explicit(&shared_now, memory_order_relaxed);
    if (batched) { /* BATCH keys from k on, with a stride of 0 to 15 (so a key may come twice) */
      uint64_t batch[BATCH];
      uint8_t admitted[BATCH];
      for (uint64_t j = 0; j < BATCH; j++)
        batch[j] = (k + j * (seed >> 60)) % keys;
      int rc = brc_keyed_acquire_many_u64(table, batch, BATCH, now, admitted, NULL);
      CHECK(rc == BRC_OK || rc == BRC_FULL);
      for (int j = 0; j < BATCH; j++)
        if (admitted[j])
          atomic_fetch_add_explicit(&per_key[batch[j]], 1, memory_order_relaxed);
      atomic_fetch_add_explicit(&attempts, BATCH, memory_order_relaxed);
      continue;
    }
    int rc = brc_keyed_acquire(table, brc_hash64_u64(k), n, now, NULL);
    if (rc == BRC_OK)
      atomic_fetch_add_explicit(&per_key[k], n, memory_order_relaxed);
    else if (rc == BRC_FULL)
      atomic_fetch_add_explicit(&full, 1, memory_order_relaxed);
    else
      CHECK(rc == BRC_REFUSED);
    atomic_fetch_add_explicit(&attempts, 1, memory_order_relaxed);
  }
  return NULL;
}

static void run(int frozen) {
  pthread_t t[THREADS];
  const uint64_t start = 1000 * MS;
  atomic_store(&shared_now, frozen ? 0 : start);
  for (uintptr_t i = 0; i < THREADS; i++)
    pthread_create(&t[i], NULL, hammer, (void *)(i + 1));
  if (!frozen) {
    while (atomic_load(&attempts) < 20000) /* on a busy machine threads start late */
      sched_yield();
    for (int step = 0; step < 2000; step++) {
      atomic_fetch_add(&shared_now, 50 * US);
      for (volatile int spin = 0; spin < 2000; spin++) {
      }
    }
    atomic_store(&stop, 1);
  }
  for (int i = 0; i < THREADS; i++)
    pthread_join(t[i], NULL);
}

static void check_bound(uint64_t burst, uint64_t interval, uint64_t elapsed) {
  uint64_t bound = burst + elapsed / interval, total = 0;
  for (uint64_t k = 0; k < keys; k++) {
    uint64_t got = atomic_load(&per_key[k]);
    if (got > bound)
      fprintf(stderr, "key %" PRIu64 ": admitted %" PRIu64 " > bound %" PRIu64 "\n", k, got, bound);
    CHECK(got <= bound);
    total += got;
  }
  brc_keyed_counters_t c;
  CHECK(brc_keyed_counters(table, &c) == BRC_OK);
  if (batched) { /* one token per key of a batch; its refused and full keys are not told apart */
    CHECK_EQ_U64(c.admitted, total);
  } else {
    CHECK_EQ_U64(c.full, atomic_load(&full));
    CHECK(c.admitted <= total && total <= 2 * c.admitted); /* requests of 1 and 2 tokens */
  }
}

/* Frozen time, few keys: each key admits exactly its burst, once (a large
 * burst: the threads contend on every key for as long as it lasts). */
static void test_frozen_few_keys(uint64_t burst) {
  reset(1024, 10 * MS, burst, 5);
  run(1);
  for (uint64_t k = 0; k < keys; k++)
    CHECK_EQ_U64(atomic_load(&per_key[k]), burst);
  check_bound(burst, 10 * MS, 0);
}

/* Moving time: few keys (every thread on the same entries), then more keys
 * than entries (evictions, and windows that are full). */
static void test_moving(uint64_t capacity, uint64_t nkeys, uint64_t interval, uint64_t burst) {
  reset(capacity, interval, burst, nkeys);
  run(0);
  uint64_t elapsed = atomic_load(&shared_now) - 1000 * MS;
  check_bound(burst, interval, elapsed);
  brc_keyed_counters_t c;
  brc_keyed_counters(table, &c);
  if (nkeys > capacity) { /* the table was too small: it refused (before the clock moved) */
    CHECK(c.full > 0);
    /* every bucket is full again later: a new key evicts one */
    uint64_t later = atomic_load(&shared_now) + burst * interval;
    CHECK(brc_keyed_acquire(table, brc_hash64_u64(nkeys), 1, later, NULL) == BRC_OK);
    brc_keyed_counters_t after;
    brc_keyed_counters(table, &after);
    CHECK_EQ_U64(after.evictions, c.evictions + 1);
  }
  uint64_t total = 0;
  for (uint64_t k = 0; k < keys; k++)
    total += atomic_load(&per_key[k]);
  CHECK(total >= burst);
}

/* Rounds in which every thread asks for the same new key at once (they start
 * together), so that several callers install it concurrently;
 * time moves by one full bucket per round, so old keys get evicted too.
 * Within its round a key admits at most burst tokens (a second copy of it
 * in the table would admit more), and exactly burst unless some attempts
 * gave up (BRC_FULL) on an entry held by a preempted thread. */
#define ROUNDS 1500
#define ROUND_BURST 3
static _Atomic uint64_t arrived;
static _Atomic uint64_t round_full[ROUNDS];

/* All threads leave round r together: the last to arrive opens it, the
 * others spin on the count (yielding, on a machine with fewer cores). */
static void wait_for_round(uint64_t r) {
  uint64_t goal = (r + 1) * THREADS;
  atomic_fetch_add(&arrived, 1);
  for (int spins = 0; atomic_load(&arrived) < goal; spins++)
    if (spins > 100)
      sched_yield();
}
static const uint64_t round_interval = MS;

static void *same_new_key(void *arg) {
  (void)arg;
  for (uint64_t r = 0; r < ROUNDS; r++) {
    uint64_t now = 1000 * MS + r * ROUND_BURST * round_interval;
    wait_for_round(r);
    for (int i = 0; i < 4; i++) {
      int rc = brc_keyed_acquire(table, brc_hash64_u64(r), 1, now, NULL);
      if (rc == BRC_OK)
        atomic_fetch_add_explicit(&per_key[r], 1, memory_order_relaxed);
      else if (rc == BRC_FULL) /* a thread preempted while it installed the key made us give up */
        atomic_fetch_add_explicit(&round_full[r], 1, memory_order_relaxed);
    }
  }
  return NULL;
}

static void test_concurrent_installs(void) {
  pthread_t t[THREADS];
  reset(64, round_interval, ROUND_BURST, ROUNDS);
  for (uint64_t r = 0; r < ROUNDS; r++)
    atomic_store(&round_full[r], 0);
  atomic_store(&arrived, 0);
  for (int i = 0; i < THREADS; i++)
    pthread_create(&t[i], NULL, same_new_key, NULL);
  for (int i = 0; i < THREADS; i++)
    pthread_join(t[i], NULL);
  for (uint64_t r = 0; r < ROUNDS; r++) {
    uint64_t got = atomic_load(&per_key[r]), full_answers = atomic_load(&round_full[r]);
    if (got != ROUND_BURST)
      fprintf(stderr, "round %" PRIu64 ": admitted %" PRIu64 " (%" PRIu64 " BRC_FULL)\n", r, got, full_answers);
    /* never more than burst; exactly burst unless some attempts gave up on a held entry */
    CHECK(got <= ROUND_BURST);
    CHECK(got == ROUND_BURST || got + full_answers >= ROUND_BURST);
  }
}

int main(void) {
  test_concurrent_installs();
  test_frozen_few_keys(101);
  test_frozen_few_keys(10000);
  test_moving(1024, 4, MS, 20);
  test_moving(64, 4096, 3 * MS, 2);
  batched = 1; /* again, the threads deciding in batches */
  test_frozen_few_keys(101);
  test_frozen_few_keys(10000);
  test_moving(1024, 4, MS, 20);
  test_moving(64, 4096, 3 * MS, 2);
  test_moving(UINT64_C(1) << 15, 4, MS, 20); /* a table batches prefetch on */
  CHECK_DONE();
}
