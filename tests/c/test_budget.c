/* Retry budget: the Finagle semantics against a reference model (a list of
 * timestamped events), and no token spent twice under 8 threads (run under
 * ThreadSanitizer in CI). */
#include <pthread.h>
#include <sched.h>
#include <string.h>

#include "brace.h"
#include "check.h"

/* The library's own source, built with a hook between a withdrawal's read of
 * the balance and its CAS, so the race that step guards against can be
 * staged deterministically (this file's copy replaces brace_core's). */
static void (*before_cas)(brc_budget_t *b);
static void run_before_cas(brc_budget_t *b) {
  void (*hook)(brc_budget_t *) = before_cas; /* set by single-threaded tests only */
  if (hook) {
    before_cas = NULL; /* once: the hook's own withdrawal runs unhooked */
    hook(b);
  }
}
#define BRC__BUDGET_BEFORE_CAS(b) run_before_cas(b)
#include "budget.c"

#define MS UINT64_C(1000000)
#define SEC UINT64_C(1000000000)
#define THREADS 8

static uint64_t lcg(uint64_t *x) {
  *x = *x * 6364136223846793005u + 1442695040888963407u;
  return *x >> 33;
}

static int64_t balance(brc_budget_t *b, uint64_t now) {
  int64_t out = INT64_MIN;
  CHECK(brc_budget_balance(b, now, &out) == BRC_OK);
  return out;
}

/* Withdraws until refused; returns how many were admitted. */
static uint64_t drain(brc_budget_t *b, uint64_t now) {
  uint64_t n = 0;
  while (brc_budget_try_withdraw(b, now) == BRC_OK)
    n++;
  return n;
}

static void test_ranges(void) {
  brc_budget_t b;
  memset(&b, 0, sizeof b);
  int64_t out = 7;
  /* zeroed: not configured, every call says so */
  CHECK(brc_budget_deposit(&b, SEC) == BRC_EINVAL);
  CHECK(brc_budget_try_withdraw(&b, SEC) == BRC_EINVAL);
  CHECK(brc_budget_balance(&b, SEC, &out) == BRC_EINVAL && out == 7);
  CHECK(brc_budget_init(&b, 0, 10, 10 * SEC) == BRC_EINVAL);
  CHECK(brc_budget_init(&b, BRC_BUDGET_RATIO_MAX + 1, 10, 10 * SEC) == BRC_EINVAL);
  CHECK(brc_budget_init(&b, 200, BRC_BUDGET_MIN_PER_SECOND_MAX + 1, 10 * SEC) == BRC_EINVAL);
  CHECK(brc_budget_init(&b, 200, 10, BRC_BUDGET_TTL_MIN - 1) == BRC_EINVAL);
  CHECK(brc_budget_init(&b, 200, 10, BRC_BUDGET_TTL_MAX + 1) == BRC_EINVAL);
  CHECK(brc_budget_deposit(&b, SEC) == BRC_EINVAL); /* still unconfigured */
  /* the extremes are accepted, and the floor does not overflow */
  CHECK(brc_budget_init(&b, BRC_BUDGET_RATIO_MAX, BRC_BUDGET_MIN_PER_SECOND_MAX,
                        BRC_BUDGET_TTL_MAX) == BRC_OK);
  CHECK(balance(&b, SEC) == INT64_C(3600) * 1000000000 * 1000);
  CHECK(brc_budget_deposit(&b, SEC) == BRC_OK);
  CHECK(balance(&b, SEC) == INT64_C(3600) * 1000000000 * 1000 + 1000000);
  CHECK(brc_budget_init(&b, 1, 0, BRC_BUDGET_TTL_MIN) == BRC_OK);
  CHECK(balance(&b, SEC) == 0);
  /* a floor that is not a whole milli-token is rounded down */
  CHECK(brc_budget_init(&b, 1, 3, BRC_BUDGET_TTL_MIN + 333333) == BRC_OK);
  CHECK(balance(&b, SEC) == 3 + 0); /* 3/s * 1.333333 ms = 3.999999 milli-tokens */
}

static void test_floor(void) {
  brc_budget_t b;
  const uint64_t t0 = 1000 * SEC;
  brc_budget_init(&b, 200, 10, 10 * SEC); /* Finagle's defaults: 100 tokens */
  CHECK(balance(&b, t0) == 100000);
  CHECK_EQ_U64(drain(&b, t0), 100);
  CHECK(balance(&b, t0) == 0);
  CHECK(brc_budget_try_withdraw(&b, t0) == BRC_REFUSED);
  CHECK(balance(&b, t0) == 0); /* a refusal takes nothing */
}

static void test_ratio_is_exact(void) {
  brc_budget_t b;
  const uint64_t t0 = 1000 * SEC;
  brc_budget_init(&b, 200, 0, 10 * SEC);
  for (int i = 0; i < 4; i++)
    brc_budget_deposit(&b, t0);
  CHECK(balance(&b, t0) == 800);
  CHECK(brc_budget_try_withdraw(&b, t0) == BRC_REFUSED);
  brc_budget_deposit(&b, t0);
  CHECK(balance(&b, t0) == 1000);
  CHECK(brc_budget_try_withdraw(&b, t0) == BRC_OK);
  CHECK(balance(&b, t0) == 0);
  for (int i = 0; i < 1000; i++)
    brc_budget_deposit(&b, t0 + (uint64_t)i * MS);
  CHECK_EQ_U64(drain(&b, t0 + SEC), 200); /* 20% of 1000 calls, to the token */
  /* ratio 1/3 in milli-tokens: 333 per call, so 3 calls do not quite pay */
  brc_budget_init(&b, 333, 0, 10 * SEC);
  for (int i = 0; i < 3; i++)
    brc_budget_deposit(&b, t0);
  CHECK(brc_budget_try_withdraw(&b, t0) == BRC_REFUSED);
  brc_budget_deposit(&b, t0);
  CHECK(brc_budget_try_withdraw(&b, t0) == BRC_OK);
  /* ratio > 1: each call pays for several retries */
  brc_budget_init(&b, 3000, 0, 10 * SEC);
  brc_budget_deposit(&b, t0);
  CHECK_EQ_U64(drain(&b, t0), 3);
}

static void test_reconfigure(void) {
  brc_budget_t b;
  const uint64_t t0 = 1000 * SEC;
  memset(&b, 0, sizeof b);
  CHECK(brc_budget_reconfigure(&b, 200, 0, 10 * SEC) == BRC_EINVAL); /* not configured */
  brc_budget_init(&b, 200, 0, 10 * SEC);
  CHECK(brc_budget_reconfigure(&b, 0, 0, 10 * SEC) == BRC_EINVAL);
  CHECK(brc_budget_reconfigure(&b, BRC_BUDGET_RATIO_MAX + 1, 0, 10 * SEC) == BRC_EINVAL);
  CHECK(brc_budget_reconfigure(&b, 200, BRC_BUDGET_MIN_PER_SECOND_MAX + 1, 10 * SEC) == BRC_EINVAL);
  CHECK(brc_budget_reconfigure(&b, 200, 0, 20 * SEC) == BRC_EINVAL); /* the window's buckets stay */
  for (int i = 0; i < 10; i++)
    brc_budget_deposit(&b, t0);
  CHECK(balance(&b, t0) == 2000);
  CHECK(brc_budget_try_withdraw(&b, t0) == BRC_OK);
  /* the window's 10 deposits now count at 500: 5000 - 1000 taken, plus a floor of 2 tokens */
  CHECK(brc_budget_reconfigure(&b, 500, 1, 10 * SEC) == BRC_OK);
  CHECK(balance(&b, t0) == 5000 - 1000 + 10000);
  CHECK(brc_budget_reconfigure(&b, 50, 0, 10 * SEC) == BRC_OK);
  CHECK(balance(&b, t0) == 500 - 1000); /* overdrawn until the withdrawal expires */
  CHECK(brc_budget_try_withdraw(&b, t0) == BRC_REFUSED);
  CHECK(balance(&b, t0 + 11 * SEC) == 0); /* all of it expired */
}

static void test_expiry(void) {
  brc_budget_t b;
  const uint64_t t0 = 1000 * SEC; /* a bucket boundary: buckets are 1 s */
  brc_budget_init(&b, 1000, 0, 10 * SEC);
  brc_budget_deposit(&b, t0);
  CHECK(balance(&b, t0 + 10 * SEC - 1) == 1000); /* counts for ttl... */
  CHECK(balance(&b, t0 + 10 * SEC) == 0);        /* ...and not a ns more */
  /* mid-bucket: expires with its bucket, less than ttl later */
  brc_budget_deposit(&b, t0 + 10 * SEC + SEC / 2);
  CHECK(balance(&b, t0 + 20 * SEC - 1) == 1000);
  CHECK(balance(&b, t0 + 20 * SEC) == 0);
  /* withdrawals expire too: the floor comes back after ttl */
  brc_budget_init(&b, 200, 1, 10 * SEC);
  CHECK_EQ_U64(drain(&b, t0), 10);
  CHECK_EQ_U64(drain(&b, t0 + 9 * SEC), 0);
  CHECK(balance(&b, t0 + 10 * SEC - 1) == 0);
  CHECK(balance(&b, t0 + 10 * SEC) == 10000);
  CHECK_EQ_U64(drain(&b, t0 + 10 * SEC), 10);
  /* a withdrawal can outlive the deposit that paid for it */
  brc_budget_init(&b, 1000, 0, 10 * SEC);
  brc_budget_deposit(&b, t0);
  CHECK(brc_budget_try_withdraw(&b, t0 + 5 * SEC) == BRC_OK);
  CHECK(balance(&b, t0 + 10 * SEC) == -1000);
  CHECK(balance(&b, t0 + 15 * SEC) == 0);
  /* a long idle gap empties everything */
  brc_budget_deposit(&b, t0 + 15 * SEC);
  CHECK(balance(&b, t0 + 1000000 * SEC) == 0);
  brc_budget_deposit(&b, t0 + 1000000 * SEC);
  CHECK(balance(&b, t0 + 1000000 * SEC) == 1000);
}

/* Laps are kept mod 2^32; a caller that enters a bucket after an idle gap
 * empties the slots it passes, so a word 2^32 laps old is never taken for a
 * live one. */
static void test_no_aliasing_after_2_to_the_32_laps(void) {
  brc_budget_t b;
  const uint64_t ttl = SEC, t0 = 1000 * SEC, laps = UINT64_C(1) << 32;
  brc_budget_init(&b, 1000, 0, ttl);
  for (int i = 0; i < 3; i++)
    brc_budget_deposit(&b, t0);
  CHECK(brc_budget_try_withdraw(&b, t0) == BRC_OK);
  uint64_t later = t0 + laps * ttl + ttl / 10; /* the next bucket, 2^32 laps on */
  CHECK(balance(&b, later) == 0); /* read-only: only buckets some call entered count */
  brc_budget_deposit(&b, later);
  CHECK(balance(&b, later) == 1000);
  CHECK_EQ_U64(drain(&b, later), 1);
}

static void test_late_now_counts_in_the_newest_bucket(void) {
  brc_budget_t b;
  const uint64_t t0 = 1000 * SEC;
  brc_budget_init(&b, 1000, 0, 10 * SEC);
  brc_budget_deposit(&b, t0 + 5 * SEC);
  brc_budget_deposit(&b, t0); /* late: counted at t0 + 5 s */
  CHECK(balance(&b, t0 + 5 * SEC) == 2000);
  CHECK(balance(&b, t0 + 15 * SEC - 1) == 2000);
  CHECK(balance(&b, t0 + 15 * SEC) == 0);
  /* a late caller never brings an expired bucket back */
  brc_budget_init(&b, 1000, 0, 10 * SEC);
  brc_budget_deposit(&b, t0);
  brc_budget_deposit(&b, t0 + 30 * SEC);
  brc_budget_deposit(&b, t0 + 1);
  CHECK(balance(&b, t0 + 30 * SEC) == 2000);
}

/* Another caller takes the last token between our read and our CAS. */
static uint64_t other_now;
static int other_result;
static void other_withdraws(brc_budget_t *b) { other_result = brc_budget_try_withdraw(b, other_now); }

static void test_a_racing_withdrawal_never_spends_the_last_token_twice(void) {
  brc_budget_t b;
  const uint64_t boundary = 4000 * SEC; /* buckets are 1 s */
  /* same bucket: our CAS fails, and the balance read again refuses us */
  brc_budget_init(&b, 1000, 0, 10 * SEC);
  brc_budget_deposit(&b, boundary - 1);
  other_now = boundary - 1;
  before_cas = other_withdraws;
  CHECK(brc_budget_try_withdraw(&b, boundary - 1) == BRC_REFUSED);
  CHECK(other_result == BRC_OK);
  CHECK(balance(&b, boundary - 1) == 0);
  /* the other caller is in the next bucket, so it counts itself in another
   * word and our CAS succeeds: reading the window again after it, we see
   * the pair overdrew and take ourselves back */
  brc_budget_init(&b, 1000, 0, 10 * SEC);
  brc_budget_deposit(&b, boundary - 1);
  other_now = boundary;
  before_cas = other_withdraws;
  CHECK(brc_budget_try_withdraw(&b, boundary - 1) == BRC_REFUSED);
  CHECK(other_result == BRC_OK);
  CHECK(balance(&b, boundary) == 0);
  CHECK(balance(&b, boundary + 10 * SEC) == 0); /* nothing left over to expire */
  CHECK(brc_budget_try_withdraw(&b, boundary) == BRC_REFUSED);
  /* with a token for each, both are admitted */
  brc_budget_init(&b, 2000, 0, 10 * SEC);
  brc_budget_deposit(&b, boundary - 1);
  before_cas = other_withdraws;
  CHECK(brc_budget_try_withdraw(&b, boundary - 1) == BRC_OK);
  CHECK(other_result == BRC_OK);
  CHECK(balance(&b, boundary) == 0);
}

/* The reference model: the list of events, each counted while
 * now / bucket - t / bucket < BRC_BUDGET_BUCKETS. */
enum { MODEL_STEPS = 4000 };
static struct {
  uint64_t t;
  int withdrawal;
} events[MODEL_STEPS];

static int64_t model_balance(int n, int64_t floor, int64_t ratio, uint64_t bucket, uint64_t now) {
  int64_t balance = floor;
  for (int i = 0; i < n; i++)
    if (now / bucket - events[i].t / bucket < BRC_BUDGET_BUCKETS)
      balance += events[i].withdrawal ? -BRC_BUDGET_TOKEN : ratio;
  return balance;
}

static void test_matches_model(void) {
  uint64_t seed = 11;
  for (int round = 0; round < 20 && !check_failures; round++) {
    brc_budget_t b;
    uint64_t ratio = 1 + lcg(&seed) % 3000, min = lcg(&seed) % 4;
    uint64_t ttl = (1 + lcg(&seed) % 20) * SEC + lcg(&seed) % SEC;
    uint64_t bucket = ttl / BRC_BUDGET_BUCKETS, now = 5000 * SEC + lcg(&seed) % SEC;
    int64_t floor = (int64_t)(min * ttl / MS);
    CHECK(brc_budget_init(&b, ratio, min, ttl) == BRC_OK);
    int n = 0;
    for (int step = 0; step < MODEL_STEPS / 2 && !check_failures; step++) {
      uint64_t r = lcg(&seed) % 10;
      if (r < 3) {
        now += lcg(&seed) % (ttl / 2);
      } else if (r < 7) {
        CHECK(brc_budget_deposit(&b, now) == BRC_OK);
        events[n].t = now;
        events[n++].withdrawal = 0;
      } else {
        int want = model_balance(n, floor, (int64_t)ratio, bucket, now) >= BRC_BUDGET_TOKEN;
        int got = brc_budget_try_withdraw(&b, now);
        CHECK(got == (want ? BRC_OK : BRC_REFUSED));
        if (got == BRC_OK) {
          events[n].t = now;
          events[n++].withdrawal = 1;
        }
      }
      CHECK(balance(&b, now) == model_balance(n, floor, (int64_t)ratio, bucket, now));
    }
  }
}

/* ---- threads ---- */

static brc_budget_t shared;
static _Atomic uint64_t shared_now;
static _Atomic uint64_t deposited, admitted, negative_seen, ready;
static _Atomic int stop;

static void *mixed_frozen(void *arg) {
  uint64_t seed = (uint64_t)(uintptr_t)arg, mine = 0, deps = 0;
  const uint64_t now = atomic_load(&shared_now);
  atomic_fetch_add(&ready, 1);
  while (atomic_load(&ready) < THREADS)
    sched_yield();
  for (int i = 0; i < 20000; i++) {
    if (lcg(&seed) % 3) {
      brc_budget_deposit(&shared, now);
      deps++;
    } else if (brc_budget_try_withdraw(&shared, now) == BRC_OK) {
      mine++;
      int64_t out;
      brc_budget_balance(&shared, now, &out);
      if (out < 0) /* withdrawals are read before deposits: no false alarm */
        atomic_fetch_add(&negative_seen, 1);
    }
  }
  atomic_fetch_add(&deposited, deps);
  atomic_fetch_add(&admitted, mine);
  return NULL;
}

/* Time frozen: nothing expires, so every admission must be paid for by the
 * floor and the deposits made before it, whatever the interleaving. */
static void test_threads_frozen_never_overspend(void) {
  pthread_t t[THREADS];
  const uint64_t now = 7777 * SEC + 123;
  brc_budget_init(&shared, 200, 5, 10 * SEC); /* floor 50 tokens */
  atomic_store(&shared_now, now);
  atomic_store(&deposited, 0);
  atomic_store(&admitted, 0);
  atomic_store(&negative_seen, 0);
  atomic_store(&ready, 0);
  for (uintptr_t i = 0; i < THREADS; i++)
    pthread_create(&t[i], NULL, mixed_frozen, (void *)(i + 1));
  for (int i = 0; i < THREADS; i++)
    pthread_join(t[i], NULL);
  uint64_t d = atomic_load(&deposited), a = atomic_load(&admitted);
  int64_t total = 50 * 1000 + (int64_t)d * 200;
  CHECK(a * 1000 <= (uint64_t)total);
  CHECK_EQ_U64(atomic_load(&negative_seen), 0);
  CHECK(balance(&shared, now) == total - (int64_t)a * 1000); /* no update lost */
  CHECK_EQ_U64(a + drain(&shared, now), (uint64_t)total / 1000); /* spent to the last token */
}

static void *withdraw_moving(void *arg) {
  uint64_t seed = (uint64_t)(uintptr_t)arg, mine = 0, deps = 0;
  atomic_fetch_add(&ready, 1);
  while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
    uint64_t now = atomic_load_explicit(&shared_now, memory_order_relaxed);
    if (lcg(&seed) % 4 == 0) {
      brc_budget_deposit(&shared, now);
      deps++;
    } else if (brc_budget_try_withdraw(&shared, now) == BRC_OK) {
      mine++;
    }
  }
  atomic_fetch_add(&deposited, deps);
  atomic_fetch_add(&admitted, mine);
  return NULL;
}

/* The clock moves across bucket boundaries (so callers in different buckets
 * race) but stays within one ttl, so nothing expires: the total admitted is
 * still bounded by the floor and the deposits. */
static void test_threads_across_buckets_never_overspend(void) {
  pthread_t t[THREADS];
  const uint64_t ttl = 10 * SEC, start = 9000 * SEC;
  brc_budget_init(&shared, 100, 20, ttl); /* floor 200 tokens, 0.1 per call */
  atomic_store(&shared_now, start);
  atomic_store(&deposited, 0);
  atomic_store(&admitted, 0);
  atomic_store(&ready, 0);
  atomic_store(&stop, 0);
  for (uintptr_t i = 0; i < THREADS; i++)
    pthread_create(&t[i], NULL, withdraw_moving, (void *)(i + 1));
  while (atomic_load(&ready) < THREADS)
    sched_yield();
  /* 9 buckets of 1 s, in steps of 1 ms: many boundaries, no expiry */
  for (int step = 0; step < 9000; step++) {
    atomic_fetch_add(&shared_now, MS);
    for (volatile int spin = 0; spin < 200; spin++) {
    }
  }
  atomic_store(&stop, 1);
  for (int i = 0; i < THREADS; i++)
    pthread_join(t[i], NULL);
  uint64_t end = atomic_load(&shared_now);
  CHECK(end - start < ttl);
  uint64_t d = atomic_load(&deposited), a = atomic_load(&admitted);
  int64_t total = 200 * 1000 + (int64_t)d * 100;
  if (a * 1000 > (uint64_t)total)
    fprintf(stderr, "admitted %" PRIu64 " > %" PRId64 " milli-tokens / 1000\n", a, total);
  CHECK(a * 1000 <= (uint64_t)total);
  CHECK(balance(&shared, end) == total - (int64_t)a * 1000);
  CHECK_EQ_U64(a + drain(&shared, end), (uint64_t)total / 1000);
}

/* Withdrawals and deposits on 4 threads while a fifth changes the ratio and floor back and
 * forth (under ThreadSanitizer: no data race); frozen time, and a floor that covers every
 * admission under either setting, so admissions never exceed floor + ratio * deposits of the
 * more generous setting. */
static _Atomic uint64_t flips;
static void *reconfigurer(void *arg) {
  (void)arg;
  while (!atomic_load(&stop)) {
    brc_budget_reconfigure(&shared, 400, 20, 10 * SEC);
    brc_budget_reconfigure(&shared, 100, 5, 10 * SEC);
    atomic_fetch_add(&flips, 1);
  }
  return NULL;
}

static void test_threads_while_reconfigured(void) {
  pthread_t t[4], r;
  const uint64_t now = 4242 * SEC;
  brc_budget_init(&shared, 100, 5, 10 * SEC);
  atomic_store(&shared_now, now);
  atomic_store(&deposited, 0);
  atomic_store(&admitted, 0);
  atomic_store(&ready, THREADS - 4); /* mixed_frozen waits for THREADS ready */
  atomic_store(&stop, 0);
  atomic_store(&flips, 0);
  CHECK(pthread_create(&r, NULL, reconfigurer, NULL) == 0);
  for (uintptr_t i = 0; i < 4; i++)
    CHECK(pthread_create(&t[i], NULL, mixed_frozen, (void *)(i + 1)) == 0);
  for (int i = 0; i < 4; i++)
    pthread_join(t[i], NULL);
  atomic_store(&stop, 1);
  pthread_join(r, NULL);
  CHECK(atomic_load(&flips) > 0);
  /* the most generous of the two: a floor of 200 tokens and 0.4 per deposit */
  CHECK(atomic_load(&admitted) * 1000 <= 200000 + atomic_load(&deposited) * 400);
}

int main(void) {
  test_ranges();
  test_floor();
  test_ratio_is_exact();
  test_expiry();
  test_late_now_counts_in_the_newest_bucket();
  test_no_aliasing_after_2_to_the_32_laps();
  test_a_racing_withdrawal_never_spends_the_last_token_twice();
  test_matches_model();
  test_threads_frozen_never_overspend();
  test_threads_across_buckets_never_overspend();
  test_reconfigure();
  test_threads_while_reconfigured();
  CHECK_DONE();
}
