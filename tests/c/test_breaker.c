/* The breaker's state machine: resilience4j's documented scenarios, the
 * simple consecutive-failures mode, manual states, and probes under 8 threads. */
#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "brace.h"
#include "check.h"

#define MS UINT64_C(1000000)
#define SEC UINT64_C(1000000000)
#define F BRC_OUTCOME_FAILURE
#define S BRC_OUTCOME_SLOW

static brc_breaker_config_t base_config(void) {
  return (brc_breaker_config_t){
      .failure_rate = 0.5, .slow_rate = 1.0, .minimum_calls = 10, .consecutive_failures = 0,
      .half_open_calls = 3, .max_half_open = 0, .wait_base = 60 * SEC, .wait_multiplier = 1.0,
      .wait_max = 60 * SEC, .wait_jitter = 0.0};
}

typedef struct {
  brc_breaker_t b;
  brc_window_t *w;
} breaker_t;

static breaker_t make(brc_breaker_config_t c, uint64_t kind, uint64_t size) {
  breaker_t x;
  x.w = malloc(brc_window_bytes(kind, size));
  CHECK(brc_window_init(x.w, kind, size, SEC) == BRC_OK);
  CHECK(brc_breaker_init(&x.b, &c) == BRC_OK);
  return x;
}

static int exactly(uint64_t got, uint64_t want) { return got == want; }

static int state(breaker_t *x, uint64_t now) {
  brc_breaker_report_t r;
  brc_breaker_report(&x->b, now, &r);
  return r.state;
}

/* One permitted call with this outcome; returns the acquire status. */
static int call(breaker_t *x, unsigned outcome, uint64_t now, brc_breaker_transition_t *t) {
  uint64_t ticket = 0;
  int rc = brc_breaker_acquire(&x->b, now, &ticket, NULL, t);
  if (rc == BRC_OK)
    brc_breaker_record(&x->b, x->w, ticket, outcome, 0, now, t);
  return rc;
}

static void test_opens_at_the_threshold_once_minimum_calls_are_reached(void) {
  breaker_t x = make(base_config(), BRC_WINDOW_COUNT, 10);
  brc_breaker_transition_t t;
  for (int i = 0; i < 5; i++)
    call(&x, F, SEC, &t); /* 5 failures: below minimum_calls, stays closed */
  for (int i = 0; i < 4; i++)
    call(&x, 0, SEC, &t);
  CHECK(state(&x, SEC) == BRC_CLOSED);
  call(&x, 0, SEC, &t); /* the 10th call, a success: 5 of 10 failed */
  CHECK(t.from == BRC_CLOSED && t.to == BRC_OPEN);
  CHECK(state(&x, SEC) == BRC_OPEN);
  uint64_t ticket, retry = 0;
  CHECK(brc_breaker_acquire(&x.b, SEC + 10 * SEC, &ticket, &retry, NULL) == BRC_REFUSED);
  CHECK(exactly(retry, 50 * SEC));
  brc_breaker_report_t r;
  brc_breaker_report(&x.b, SEC, &r);
  CHECK_EQ_U64(r.not_permitted, 1);
  free(x.w);
}

static void test_below_threshold_stays_closed(void) {
  breaker_t x = make(base_config(), BRC_WINDOW_COUNT, 10);
  for (int i = 0; i < 100; i++)
    call(&x, i % 10 < 4 ? F : 0, SEC, NULL); /* 40% */
  CHECK(state(&x, SEC) == BRC_CLOSED);
  free(x.w);
}

static void open_it(breaker_t *x, uint64_t now) {
  for (int i = 0; i < 10; i++)
    call(x, F, now, NULL);
  CHECK(state(x, now) == BRC_OPEN);
}

static void test_half_open_admits_exactly_the_probes_and_closes(void) {
  breaker_t x = make(base_config(), BRC_WINDOW_COUNT, 10);
  open_it(&x, SEC);
  uint64_t after = SEC + 60 * SEC + MS, tickets[3], ticket;
  brc_breaker_transition_t t;
  CHECK(brc_breaker_acquire(&x.b, after, &tickets[0], NULL, &t) == BRC_OK);
  CHECK(t.from == BRC_OPEN && t.to == BRC_HALF_OPEN);
  CHECK(brc_breaker_acquire(&x.b, after, &tickets[1], NULL, NULL) == BRC_OK);
  CHECK(brc_breaker_acquire(&x.b, after, &tickets[2], NULL, NULL) == BRC_OK);
  uint64_t retry = 7;
  CHECK(brc_breaker_acquire(&x.b, after, &ticket, &retry, NULL) == BRC_REFUSED);
  CHECK_EQ_U64(retry, 0);
  for (int i = 0; i < 3; i++) {
    brc_breaker_record(&x.b, x.w, tickets[i], 0, 0, after, &t);
    CHECK(i < 2 ? t.to == 0 : (t.from == BRC_HALF_OPEN && t.to == BRC_CLOSED));
  }
  brc_window_snapshot_t s;
  brc_window_snapshot(x.w, after, &s);
  CHECK_EQ_U64(s.calls, 0); /* a fresh window */
  brc_breaker_report_t r;
  brc_breaker_report(&x.b, after, &r);
  CHECK_EQ_U64(r.openings, 0);
  free(x.w);
}

static void test_failed_probes_reopen_with_a_growing_wait(void) {
  brc_breaker_config_t c = base_config();
  c.wait_base = 10 * SEC;
  c.wait_multiplier = 2.0;
  c.wait_max = 30 * SEC;
  breaker_t x = make(c, BRC_WINDOW_COUNT, 10);
  open_it(&x, SEC);
  uint64_t now = SEC, retry, ticket;
  const uint64_t expected[] = {10 * SEC, 20 * SEC, 30 * SEC, 30 * SEC};
  for (int opening = 0; opening < 4; opening++) {
    CHECK(brc_breaker_acquire(&x.b, now, &ticket, &retry, NULL) == BRC_REFUSED);
    CHECK(exactly(retry, expected[opening]));
    now += retry;
    brc_breaker_transition_t t;
    for (int probe = 0; probe < 3; probe++)
      call(&x, probe < 2 ? F : 0, now, &t); /* 2 of 3 probes fail: open again */
    CHECK(t.from == BRC_HALF_OPEN && t.to == BRC_OPEN);
  }
  CHECK(brc_breaker_acquire(&x.b, now, &ticket, &retry, NULL) == BRC_REFUSED);
  now += retry;
  brc_breaker_transition_t t;
  for (int probe = 0; probe < 3; probe++)
    call(&x, probe < 1 ? F : 0, now, &t); /* 1 of 3 fails: below 50%, close */
  CHECK(t.to == BRC_CLOSED);
  open_it(&x, now); /* a close resets the opening count */
  CHECK(brc_breaker_acquire(&x.b, now, &ticket, &retry, NULL) == BRC_REFUSED);
  CHECK(exactly(retry, 10 * SEC));
  free(x.w);
}

static void test_stale_and_released_probes(void) {
  breaker_t x = make(base_config(), BRC_WINDOW_COUNT, 10);
  uint64_t stale;
  CHECK(brc_breaker_acquire(&x.b, SEC, &stale, NULL, NULL) == BRC_OK); /* a closed-state call */
  open_it(&x, SEC);
  uint64_t after = 62 * SEC, probe, others[2], ticket;
  CHECK(brc_breaker_acquire(&x.b, after, &probe, NULL, NULL) == BRC_OK);
  brc_breaker_record(&x.b, x.w, stale, F, 0, after, NULL); /* not a probe: ignored */
  brc_breaker_release(&x.b, probe); /* cancelled probe frees its slot */
  CHECK(brc_breaker_acquire(&x.b, after, &probe, NULL, NULL) == BRC_OK);
  CHECK(brc_breaker_acquire(&x.b, after, &others[0], NULL, NULL) == BRC_OK);
  CHECK(brc_breaker_acquire(&x.b, after, &others[1], NULL, NULL) == BRC_OK);
  CHECK(brc_breaker_acquire(&x.b, after, &ticket, NULL, NULL) == BRC_REFUSED);
  brc_breaker_record(&x.b, x.w, probe, 0, 0, after, NULL);
  brc_breaker_record(&x.b, x.w, others[0], 0, 0, after, NULL);
  brc_breaker_record(&x.b, x.w, others[1], 0, 0, after, NULL);
  CHECK(state(&x, after) == BRC_CLOSED);
  free(x.w);
}

static void test_half_open_cannot_wedge(void) {
  brc_breaker_config_t c = base_config();
  c.max_half_open = 5 * SEC;
  breaker_t x = make(c, BRC_WINDOW_COUNT, 10);
  open_it(&x, SEC);
  uint64_t t0 = 62 * SEC, ticket, retry;
  for (int i = 0; i < 3; i++)
    CHECK(brc_breaker_acquire(&x.b, t0, &ticket, NULL, NULL) == BRC_OK); /* probes that never finish */
  CHECK(brc_breaker_acquire(&x.b, t0 + 4 * SEC, &ticket, &retry, NULL) == BRC_REFUSED);
  CHECK(retry > 0 && retry <= SEC);
  brc_breaker_transition_t t;
  CHECK(brc_breaker_acquire(&x.b, t0 + 5 * SEC, &ticket, &retry, &t) == BRC_REFUSED);
  CHECK(t.from == BRC_HALF_OPEN && t.to == BRC_OPEN);
  CHECK(retry > 59 * SEC);
  brc_breaker_record(&x.b, x.w, ticket, 0, 0, t0 + 6 * SEC, NULL); /* a late probe: ignored */
  CHECK(state(&x, t0 + 6 * SEC) == BRC_OPEN);
  free(x.w);
}

static void test_consecutive_failures_mode(void) {
  brc_breaker_config_t c = base_config();
  c.consecutive_failures = 3;
  breaker_t x = make(c, BRC_WINDOW_COUNT, 100);
  call(&x, F, SEC, NULL);
  call(&x, F, SEC, NULL);
  call(&x, 0, SEC, NULL); /* a success breaks the run */
  call(&x, F, SEC, NULL);
  call(&x, F, SEC, NULL);
  CHECK(state(&x, SEC) == BRC_CLOSED);
  call(&x, F, SEC, NULL);
  CHECK(state(&x, SEC) == BRC_OPEN);
  /* half-open: one failed probe re-opens at once */
  uint64_t after = 62 * SEC, a, b;
  CHECK(brc_breaker_acquire(&x.b, after, &a, NULL, NULL) == BRC_OK);
  CHECK(brc_breaker_acquire(&x.b, after, &b, NULL, NULL) == BRC_OK);
  brc_breaker_record(&x.b, x.w, a, F, 0, after, NULL);
  CHECK(state(&x, after) == BRC_OPEN);
  free(x.w);
}

static void test_slow_calls(void) {
  brc_breaker_config_t c = base_config();
  c.slow_rate = 0.8;
  breaker_t x = make(c, BRC_WINDOW_TIME, 10);
  for (int i = 0; i < 7; i++)
    call(&x, S, SEC, NULL);
  for (int i = 0; i < 2; i++)
    call(&x, 0, SEC, NULL);
  CHECK(state(&x, SEC) == BRC_CLOSED);
  call(&x, S | F, SEC, NULL); /* 8 of 10 slow */
  CHECK(state(&x, SEC) == BRC_OPEN);
  free(x.w);
}

/* The counters since init: every settled call once, in any state, by kind;
 * closing (which empties the window) keeps them. */
static void test_outcome_counters_since_init(void) {
  breaker_t x = make(base_config(), BRC_WINDOW_COUNT, 10);
  brc_breaker_report_t r;
  uint64_t late;
  CHECK(brc_breaker_acquire(&x.b, SEC, &late, NULL, NULL) == BRC_OK); /* settles after the opening */
  for (int i = 0; i < 4; i++)
    call(&x, 0, SEC, NULL);
  call(&x, S, SEC, NULL);
  for (int i = 0; i < 5; i++)
    call(&x, i == 0 ? F | S : F, SEC, NULL); /* 10 calls, 5 failed: opens */
  CHECK(state(&x, SEC) == BRC_OPEN);
  CHECK(brc_breaker_record(&x.b, x.w, late, F, 0, SEC, NULL) == BRC_OK);
  CHECK(call(&x, 0, SEC, NULL) == BRC_REFUSED);
  CHECK(brc_breaker_count_ignored(&x.b) == BRC_OK);
  CHECK(brc_breaker_transition(&x.b, x.w, BRC_CLOSED, SEC, NULL) == BRC_OK);
  call(&x, 0, SEC, NULL);
  CHECK(brc_breaker_transition(&x.b, x.w, BRC_DISABLED, SEC, NULL) == BRC_OK);
  call(&x, F, SEC, NULL); /* a disabled breaker decides nothing but its calls still end */
  brc_breaker_report(&x.b, SEC, &r);
  CHECK_EQ_U64(r.successful, 4 + 1 + 1);
  CHECK_EQ_U64(r.failed, 5 + 1 + 1);
  CHECK_EQ_U64(r.slow, 2);
  CHECK_EQ_U64(r.ignored, 1);
  CHECK_EQ_U64(r.not_permitted, 1);
  free(x.w);
}

/* New thresholds decide from the next outcome, over the window as it stands. */
static void test_reconfigure_keeps_the_window_and_the_state(void) {
  breaker_t x = make(base_config(), BRC_WINDOW_COUNT, 20);
  brc_breaker_config_t c = base_config(), got;
  for (int i = 0; i < 10; i++)
    call(&x, i < 3 ? F : 0, SEC, NULL); /* 30%: below 50% */
  c.failure_rate = 0.25;
  CHECK(brc_breaker_reconfigure(&x.b, x.w, &c, SEC, NULL) == BRC_OK);
  CHECK(brc_breaker_config(&x.b, &got) == BRC_OK);
  CHECK(got.failure_rate == 0.25 && got.minimum_calls == 10);
  CHECK(state(&x, SEC) == BRC_CLOSED); /* decided at the next outcome, not by the reconfigure */
  call(&x, 0, SEC, NULL); /* 3 of 11: 27% */
  CHECK(state(&x, SEC) == BRC_OPEN);
  c.failure_rate = 0.0; /* refused: nothing changes */
  CHECK(brc_breaker_reconfigure(&x.b, x.w, &c, SEC, NULL) == BRC_EINVAL);
  CHECK(brc_breaker_config(&x.b, &got) == BRC_OK && got.failure_rate == 0.25);
  free(x.w);
}

/* An OPEN breaker keeps the wait it had; the new wait applies from the next opening. */
static void test_reconfigure_keeps_an_open_wait(void) {
  breaker_t x = make(base_config(), BRC_WINDOW_COUNT, 10);
  brc_breaker_config_t c = base_config();
  brc_breaker_report_t r;
  open_it(&x, SEC);
  c.wait_base = c.wait_max = 2 * SEC;
  c.half_open_calls = 1;
  CHECK(brc_breaker_reconfigure(&x.b, x.w, &c, SEC, NULL) == BRC_OK);
  brc_breaker_report(&x.b, SEC, &r);
  CHECK(r.state == BRC_OPEN);
  CHECK_EQ_U64(r.retry_after, 60 * SEC);
  uint64_t probe, after = 61 * SEC;
  CHECK(brc_breaker_acquire(&x.b, after, &probe, NULL, NULL) == BRC_OK);
  CHECK(brc_breaker_record(&x.b, x.w, probe, F, 0, after, NULL) == BRC_OK); /* the one probe failed */
  brc_breaker_report(&x.b, after, &r);
  CHECK(r.state == BRC_OPEN);
  CHECK_EQ_U64(r.retry_after, 2 * SEC);
  free(x.w);
}

/* Probes already completed that reach a lowered half_open_calls decide at once. */
static void test_reconfigure_lowering_the_probes_decides_a_half_open(void) {
  breaker_t x = make(base_config(), BRC_WINDOW_COUNT, 10); /* 3 probes */
  brc_breaker_config_t c = base_config();
  brc_breaker_transition_t t;
  uint64_t probes[3], after = 61 * SEC;
  open_it(&x, SEC);
  for (int i = 0; i < 3; i++)
    CHECK(brc_breaker_acquire(&x.b, after, &probes[i], NULL, NULL) == BRC_OK);
  for (int i = 0; i < 2; i++)
    brc_breaker_record(&x.b, x.w, probes[i], 0, 0, after, NULL);
  c.half_open_calls = 4; /* raising it decides nothing */
  CHECK(brc_breaker_reconfigure(&x.b, x.w, &c, after, &t) == BRC_OK);
  CHECK(t.to == 0 && state(&x, after) == BRC_HALF_OPEN);
  c.half_open_calls = 2;
  CHECK(brc_breaker_reconfigure(&x.b, x.w, &c, after, &t) == BRC_OK);
  CHECK(t.from == BRC_HALF_OPEN && t.to == BRC_CLOSED);
  CHECK(state(&x, after) == BRC_CLOSED);
  /* the third probe's late outcome is no probe of anything now */
  CHECK(brc_breaker_record(&x.b, x.w, probes[2], F, 0, after, &t) == BRC_OK && t.to == 0);
  free(x.w);
}

/* Into the simple mode: its failures in a row start at 0, not at a stale count. */
static void test_reconfigure_into_the_simple_mode(void) {
  brc_breaker_config_t c = base_config();
  c.consecutive_failures = 3;
  breaker_t x = make(c, BRC_WINDOW_COUNT, 10);
  call(&x, F, SEC, NULL);
  call(&x, F, SEC, NULL); /* 2 in a row */
  c.consecutive_failures = 0;
  CHECK(brc_breaker_reconfigure(&x.b, x.w, &c, SEC, NULL) == BRC_OK);
  c.consecutive_failures = 3;
  CHECK(brc_breaker_reconfigure(&x.b, x.w, &c, SEC, NULL) == BRC_OK);
  call(&x, F, SEC, NULL);
  call(&x, F, SEC, NULL);
  CHECK(state(&x, SEC) == BRC_CLOSED);
  call(&x, F, SEC, NULL);
  CHECK(state(&x, SEC) == BRC_OPEN);
  free(x.w);
}

static void test_time_window_forgets(void) {
  breaker_t x = make(base_config(), BRC_WINDOW_TIME, 10);
  for (int i = 0; i < 9; i++)
    call(&x, F, SEC, NULL);
  /* 10 s later the failures have left the window: 1 call, below minimum */
  call(&x, F, 11 * SEC, NULL);
  CHECK(state(&x, 11 * SEC) == BRC_CLOSED);
  free(x.w);
}

static void test_manual_states(void) {
  breaker_t x = make(base_config(), BRC_WINDOW_COUNT, 10);
  uint64_t ticket, retry;
  brc_breaker_transition_t t;
  CHECK(brc_breaker_transition(&x.b, x.w, BRC_FORCED_OPEN, SEC, &t) == BRC_OK);
  CHECK(t.from == BRC_CLOSED && t.to == BRC_FORCED_OPEN);
  CHECK(brc_breaker_acquire(&x.b, 1000 * SEC, &ticket, &retry, NULL) == BRC_REFUSED);
  CHECK(retry == UINT64_MAX);
  brc_breaker_transition(&x.b, x.w, BRC_DISABLED, SEC, NULL);
  for (int i = 0; i < 50; i++)
    CHECK(call(&x, F, SEC, NULL) == BRC_OK);
  CHECK(state(&x, SEC) == BRC_DISABLED);
  brc_breaker_transition(&x.b, x.w, BRC_METRICS_ONLY, SEC, NULL);
  int would = 0;
  for (int i = 0; i < 20; i++) {
    CHECK(brc_breaker_acquire(&x.b, SEC, &ticket, NULL, NULL) == BRC_OK);
    would += brc_breaker_record(&x.b, x.w, ticket, F, 0, SEC, NULL) == BRC_WOULD_OPEN;
  }
  CHECK(would == 11); /* from the 10th call on */
  CHECK(state(&x, SEC) == BRC_METRICS_ONLY);
  CHECK(brc_breaker_transition(&x.b, x.w, BRC_CLOSED, SEC, NULL) == BRC_OK);
  brc_window_snapshot_t s;
  brc_window_snapshot(x.w, SEC, &s);
  CHECK_EQ_U64(s.calls, 0);
  CHECK(brc_breaker_transition(&x.b, x.w, 9, SEC, NULL) == BRC_EINVAL);
  free(x.w);
}

static void test_jitter_stays_within_bounds(void) {
  brc_breaker_config_t c = base_config();
  c.wait_base = c.wait_max = 10 * SEC;
  c.wait_jitter = 0.2;
  brc_rng_seed(1);
  uint64_t low = UINT64_MAX, high = 0;
  for (int i = 0; i < 200; i++) {
    breaker_t x = make(c, BRC_WINDOW_COUNT, 10);
    open_it(&x, SEC);
    brc_breaker_report_t r;
    brc_breaker_report(&x.b, SEC, &r);
    low = r.retry_after < low ? r.retry_after : low;
    high = r.retry_after > high ? r.retry_after : high;
    free(x.w);
  }
  CHECK(low >= 8 * SEC && high <= 12 * SEC + MS);
  CHECK(high - low > 2 * SEC); /* it does spread */
}

static void test_init_rejects_bad_config(void) {
  brc_breaker_t b;
  brc_breaker_config_t c = base_config();
  c.failure_rate = 0;
  CHECK(brc_breaker_init(&b, &c) == BRC_EINVAL);
  c = base_config();
  c.half_open_calls = 0;
  CHECK(brc_breaker_init(&b, &c) == BRC_EINVAL);
  c = base_config();
  c.wait_max = c.wait_base - 1;
  CHECK(brc_breaker_init(&b, &c) == BRC_EINVAL);
  c = base_config();
  c.wait_jitter = 1.0;
  CHECK(brc_breaker_init(&b, &c) == BRC_EINVAL);
}

/* Waits beyond 2^62 ns made the jittered wait's double -> uint64_t
 * conversion undefined (and now + wait wrap): refused at init. */
static void test_init_rejects_waits_whose_arithmetic_overflows(void) {
  const uint64_t too_long[] = {BRC_DURATION_MAX + 1, UINT64_C(1) << 63, UINT64_MAX};
  const double nan = NAN;
  brc_breaker_t b;
  for (int i = 0; i < 3; i++) {
    brc_breaker_config_t c = base_config();
    c.wait_max = too_long[i];
    CHECK(brc_breaker_init(&b, &c) == BRC_EINVAL);
    c.wait_base = too_long[i];
    CHECK(brc_breaker_init(&b, &c) == BRC_EINVAL);
    c = base_config();
    c.max_half_open = too_long[i];
    CHECK(brc_breaker_init(&b, &c) == BRC_EINVAL);
  }
  brc_breaker_config_t c = base_config();
  c.wait_multiplier = nan;
  CHECK(brc_breaker_init(&b, &c) == BRC_EINVAL);
  c = base_config();
  c.wait_jitter = nan;
  CHECK(brc_breaker_init(&b, &c) == BRC_EINVAL);
}

/* The extremes accepted: the longest waits, an infinite or huge growth, the
 * widest jitter, thousands of openings. A grown wait is the cap (never
 * undefined), then jittered; run under UBSan with float-cast-overflow. */
static void test_extreme_waits_saturate_at_the_cap(void) {
  const double multipliers[] = {1.0, 2.0, 1e300, DBL_MAX, INFINITY};
  const double jitters[] = {0.0, 0.5, 0.999999};
  brc_rng_seed(7);
  for (int m = 0; m < 5; m++)
    for (int j = 0; j < 3; j++) {
      brc_breaker_config_t c = base_config();
      c.wait_base = m == 0 ? BRC_DURATION_MAX : 1;
      c.wait_max = BRC_DURATION_MAX;
      c.max_half_open = BRC_DURATION_MAX;
      c.wait_multiplier = multipliers[m];
      c.wait_jitter = jitters[j];
      breaker_t x = make(c, BRC_WINDOW_COUNT, 10);
      const double most = (double)BRC_DURATION_MAX * (1.0 + jitters[j]);
      for (int opening = 1; opening <= 3000; opening++) {
        CHECK(brc_breaker_transition(&x.b, x.w, BRC_OPEN, SEC, NULL) == BRC_OK);
        brc_breaker_report_t r;
        CHECK(brc_breaker_report(&x.b, SEC, &r) == BRC_OK);
        CHECK(r.state == BRC_OPEN && r.openings == (uint64_t)opening);
        CHECK(r.retry_after >= 1 && (double)r.retry_after <= most);
        if (opening > 64 && m > 0 && jitters[j] == 0.0)
          CHECK_EQ_U64(r.retry_after, BRC_DURATION_MAX); /* grown past the cap: the cap */
      }
      /* it still moves on: HALF_OPEN once the (longest) wait has passed */
      uint64_t ticket, later = SEC + (UINT64_C(1) << 63);
      CHECK(brc_breaker_acquire(&x.b, later, &ticket, NULL, NULL) == BRC_OK);
      CHECK(state(&x, later) == BRC_HALF_OPEN);
      free(x.w);
    }
}

static breaker_t shared;
static _Atomic int reconfiguring;
static _Atomic uint64_t torn;

/* Two configurations whose every word differs: a torn read mixes them. */
static brc_breaker_config_t config_a(void) { return base_config(); }

static brc_breaker_config_t config_b(void) {
  return (brc_breaker_config_t){
      .failure_rate = 0.25, .slow_rate = 0.75, .minimum_calls = 5, .consecutive_failures = 4,
      .half_open_calls = 7, .max_half_open = 30 * SEC, .wait_base = 2 * SEC, .wait_multiplier = 2.0,
      .wait_max = 8 * SEC, .wait_jitter = 0.5};
}

static int same_config(const brc_breaker_config_t *x, const brc_breaker_config_t *y) {
  return memcmp(x, y, sizeof *x) == 0;
}

static _Atomic uint64_t reads;

/* Until the readers have read many times while it wrote: the threads overlap
 * however they are scheduled. */
static void *reconfigure_back_and_forth(void *arg) {
  (void)arg;
  brc_breaker_config_t a = config_a(), b = config_b();
  for (uint64_t i = 0; i < 20000 || atomic_load(&reads) < 2000000; i++)
    CHECK(brc_breaker_reconfigure(&shared.b, shared.w, i % 2 ? &a : &b, SEC + i * MS, NULL) == BRC_OK);
  atomic_store(&reconfiguring, 0);
  return NULL;
}

static void *read_configs(void *arg) {
  (void)arg;
  brc_breaker_config_t a = config_a(), b = config_b(), got;
  while (atomic_load(&reconfiguring)) {
    brc_breaker_config(&shared.b, &got);
    if (!same_config(&got, &a) && !same_config(&got, &b))
      atomic_fetch_add(&torn, 1);
    atomic_fetch_add_explicit(&reads, 1, memory_order_relaxed);
  }
  return NULL;
}

static void *decide_while_reconfigured(void *arg) {
  (void)arg;
  uint64_t calls = 0;
  for (uint64_t i = 0; atomic_load(&reconfiguring) || i < 5000; i++, calls++)
    call(&shared, i % 3 == 0 ? F : 0, SEC + i * MS, NULL);
  return (void *)(uintptr_t)calls;
}

/* Threads decide (every state: the configurations open, probe and close it)
 * while another reconfigures and a reader checks every configuration it sees
 * is one of the two written, whole. Under ThreadSanitizer in CI. */
static void test_reconfigure_under_threads(void) {
  pthread_t deciders[4], writer, readers[2];
  uint64_t calls = 0;
  shared = make(config_a(), BRC_WINDOW_COUNT, 10);
  atomic_store(&reconfiguring, 1);
  for (int i = 0; i < 4; i++)
    pthread_create(&deciders[i], NULL, decide_while_reconfigured, NULL);
  for (int i = 0; i < 2; i++)
    pthread_create(&readers[i], NULL, read_configs, NULL);
  pthread_create(&writer, NULL, reconfigure_back_and_forth, NULL);
  pthread_join(writer, NULL);
  for (int i = 0; i < 2; i++)
    pthread_join(readers[i], NULL);
  for (int i = 0; i < 4; i++) {
    void *mine;
    pthread_join(deciders[i], &mine);
    calls += (uint64_t)(uintptr_t)mine;
  }
  CHECK_EQ_U64(atomic_load(&torn), 0);
  brc_breaker_report_t r;
  brc_breaker_report(&shared.b, SEC, &r);
  CHECK(r.state >= BRC_CLOSED && r.state <= BRC_HALF_OPEN);
  CHECK_EQ_U64(r.successful + r.failed + r.not_permitted, calls);
  free(shared.w);
}
static _Atomic int permitted;

static void *probe_once(void *arg) {
  uint64_t ticket, now = (uint64_t)(uintptr_t)arg;
  for (int i = 0; i < 100; i++)
    if (brc_breaker_acquire(&shared.b, now, &ticket, NULL, NULL) == BRC_OK)
      atomic_fetch_add(&permitted, 1);
  return NULL;
}

static void *hammer(void *arg) {
  (void)arg;
  for (int i = 0; i < 5000; i++)
    call(&shared, i % 3 == 0 ? F : 0, SEC + (uint64_t)i * MS, NULL);
  return NULL;
}

static void test_threads(void) {
  pthread_t t[8];
  shared = make(base_config(), BRC_WINDOW_COUNT, 10);
  open_it(&shared, SEC);
  for (int i = 0; i < 8; i++)
    pthread_create(&t[i], NULL, probe_once, (void *)(uintptr_t)(62 * SEC));
  for (int i = 0; i < 8; i++)
    pthread_join(t[i], NULL);
  CHECK(atomic_load(&permitted) == 3); /* exactly half_open_calls, under contention */
  free(shared.w);

  shared = make(base_config(), BRC_WINDOW_COUNT, 10);
  for (int i = 0; i < 8; i++)
    pthread_create(&t[i], NULL, hammer, NULL);
  for (int i = 0; i < 8; i++)
    pthread_join(t[i], NULL);
  brc_breaker_report_t r;
  brc_breaker_report(&shared.b, SEC, &r);
  CHECK(r.state >= BRC_CLOSED && r.state <= BRC_HALF_OPEN);
  /* relaxed adds lose nothing: each call is settled or refused exactly once */
  CHECK_EQ_U64(r.successful + r.failed + r.not_permitted, 8 * 5000);
  free(shared.w);
}

/* A wait computed by the caller lands only on the OPEN it was computed for:
 * once the breaker moved on, the answer is BRC_STALE and nothing changes. */
static void test_set_open_until_is_refused_once_stale(void) {
  breaker_t x = make(base_config(), BRC_WINDOW_COUNT, 10);
  brc_breaker_report_t r;
  open_it(&x, SEC);
  brc_breaker_report(&x.b, SEC, &r);
  CHECK(r.state == BRC_OPEN);
  uint64_t opened = r.generation;
  CHECK(brc_breaker_set_open_until(&x.b, opened, 5 * SEC) == BRC_OK);
  brc_breaker_report(&x.b, SEC, &r);
  CHECK_EQ_U64(r.retry_after, 4 * SEC);
  CHECK(brc_breaker_transition(&x.b, x.w, BRC_CLOSED, SEC, NULL) == BRC_OK);
  CHECK(brc_breaker_set_open_until(&x.b, opened, 9 * SEC) == BRC_STALE);
  brc_breaker_report(&x.b, SEC, &r);
  CHECK(r.state == BRC_CLOSED);
  CHECK_EQ_U64(r.retry_after, 0);
  free(x.w);
}

int main(void) {
  test_opens_at_the_threshold_once_minimum_calls_are_reached();
  test_below_threshold_stays_closed();
  test_half_open_admits_exactly_the_probes_and_closes();
  test_failed_probes_reopen_with_a_growing_wait();
  test_stale_and_released_probes();
  test_half_open_cannot_wedge();
  test_consecutive_failures_mode();
  test_slow_calls();
  test_outcome_counters_since_init();
  test_reconfigure_keeps_the_window_and_the_state();
  test_reconfigure_keeps_an_open_wait();
  test_reconfigure_lowering_the_probes_decides_a_half_open();
  test_reconfigure_into_the_simple_mode();
  test_time_window_forgets();
  test_manual_states();
  test_set_open_until_is_refused_once_stale();
  test_jitter_stays_within_bounds();
  test_init_rejects_bad_config();
  test_init_rejects_waits_whose_arithmetic_overflows();
  test_extreme_waits_saturate_at_the_cap();
  test_threads();
  test_reconfigure_under_threads();
  CHECK_DONE();
}
