/* brace.h promises that every call on zero-initialised (never configured)
 * state returns BRC_EINVAL rather than misbehaving: each primitive's struct
 * is zero-filled here and every one of its functions is called on it, with
 * arguments that would be valid for a configured one. Nothing may be written
 * to an output, and the struct must stay all zeros. */
#include <stdlib.h>
#include <string.h>

#include "brace.h"
#include "check.h"

#define SEC UINT64_C(1000000000)
#define NOW (100 * SEC)

static int all_zero(const void *p, size_t n) {
  const unsigned char *bytes = p;
  for (size_t i = 0; i < n; i++)
    if (bytes[i])
      return 0;
  return 1;
}

static void test_gcra(void) {
  brc_gcra_t g;
  memset(&g, 0, sizeof g);
  uint64_t out = 7;
  brc_gcra_report_t report = {.limit = 7};
  CHECK(brc_gcra_acquire(&g, 1, NOW, 0, &out) == BRC_EINVAL);
  CHECK(brc_gcra_acquire(&g, 1, NOW, UINT64_MAX, &out) == BRC_EINVAL);
  CHECK(brc_gcra_peek(&g, 1, NOW, &out) == BRC_EINVAL);
  CHECK(brc_gcra_refund(&g, 1, NOW) == BRC_EINVAL);
  CHECK(brc_gcra_report(&g, NOW, &report) == BRC_EINVAL);
  CHECK(brc_gcra_reconfigure(&g, 1000, 10, NOW) == BRC_EINVAL);
  CHECK_EQ_U64(out, 7);
  CHECK_EQ_U64(report.limit, 7);
  CHECK(all_zero(&g, sizeof g));
}

/* A configured breaker (CLOSED) over a window, for the calls that take both. */
static brc_breaker_t configured_breaker(void) {
  brc_breaker_config_t c = {.failure_rate = 0.5, .slow_rate = 1.0, .minimum_calls = 1, .half_open_calls = 1,
                            .wait_base = SEC, .wait_multiplier = 1.0, .wait_max = SEC};
  brc_breaker_t b;
  CHECK(brc_breaker_init(&b, &c) == BRC_OK);
  return b;
}

static void test_window(void) {
  const uint64_t kinds[] = {BRC_WINDOW_COUNT, BRC_WINDOW_TIME};
  for (int i = 0; i < 2; i++) {
    uint64_t bytes = brc_window_bytes(kinds[i], 10);
    brc_window_t *w = calloc(1, bytes);
    brc_window_snapshot_t snap = {.calls = 7};
    CHECK(brc_window_record(w, BRC_OUTCOME_FAILURE, 5, NOW) == BRC_EINVAL);
    CHECK(brc_window_snapshot(w, NOW, &snap) == BRC_EINVAL);
    CHECK(brc_window_clear(w, NOW) == BRC_EINVAL);
    CHECK_EQ_U64(snap.calls, 7);
    /* a configured breaker's calls that record into or clear the window */
    brc_breaker_t b = configured_breaker();
    brc_breaker_transition_t t = {.to = 9};
    uint64_t ticket = 0;
    CHECK(brc_breaker_acquire(&b, NOW, &ticket, NULL, &t) == BRC_OK);
    CHECK(brc_breaker_record(&b, w, ticket, BRC_OUTCOME_FAILURE, 0, NOW, &t) == BRC_EINVAL);
    CHECK(t.to == 0);
    CHECK(brc_breaker_transition(&b, w, BRC_CLOSED, NOW, &t) == BRC_EINVAL);
    CHECK(all_zero(w, (size_t)bytes));
    free(w);
  }
}

static void test_breaker(void) {
  brc_breaker_t b;
  memset(&b, 0, sizeof b);
  brc_window_t *w = calloc(1, brc_window_bytes(BRC_WINDOW_COUNT, 10));
  CHECK(brc_window_init(w, BRC_WINDOW_COUNT, 10, 0) == BRC_OK);
  uint64_t ticket = 7, retry_after = 7;
  brc_breaker_transition_t t = {.from = 9, .to = 9};
  brc_breaker_report_t report = {.state = 9};
  CHECK(brc_breaker_acquire(&b, NOW, &ticket, &retry_after, &t) == BRC_EINVAL);
  CHECK(brc_breaker_acquire(&b, 0, &ticket, &retry_after, &t) == BRC_EINVAL);
  CHECK(brc_breaker_try_permit(&b, &ticket) == BRC_EINVAL);
  CHECK(brc_breaker_record(&b, w, 0, BRC_OUTCOME_FAILURE, 0, NOW, &t) == BRC_EINVAL);
  CHECK(brc_breaker_record(&b, w, 0, 0, 0, 0, &t) == BRC_EINVAL);
  CHECK(brc_breaker_release(&b, 0) == BRC_EINVAL);
  CHECK(brc_breaker_count_ignored(&b) == BRC_EINVAL);
  brc_breaker_config_t config = {.failure_rate = 0.5, .slow_rate = 1.0, .minimum_calls = 1, .half_open_calls = 1,
                                 .wait_base = 1, .wait_multiplier = 1.0, .wait_max = 1};
  CHECK(brc_breaker_reconfigure(&b, w, &config, NOW, &t) == BRC_EINVAL);
  CHECK(brc_breaker_config(&b, &config) == BRC_EINVAL);
  CHECK_EQ_U64(config.minimum_calls, 1);
  for (int state = BRC_CLOSED; state <= BRC_METRICS_ONLY; state++)
    CHECK(brc_breaker_transition(&b, w, state, NOW, &t) == BRC_EINVAL);
  CHECK(brc_breaker_transition(&b, NULL, BRC_OPEN, NOW, &t) == BRC_EINVAL);
  CHECK(brc_breaker_set_open_until(&b, 0, NOW) == BRC_EINVAL);
  CHECK(brc_breaker_report(&b, NOW, &report) == BRC_EINVAL);
  CHECK_EQ_U64(ticket, 7);
  CHECK_EQ_U64(retry_after, 7);
  CHECK(t.from == 0 && t.to == 0);
  CHECK(report.state == 9);
  CHECK(all_zero(&b, sizeof b));
  brc_window_snapshot_t snap;
  CHECK(brc_window_snapshot(w, NOW, &snap) == BRC_OK);
  CHECK_EQ_U64(snap.calls, 0); /* nothing was recorded into the window */
  free(w);
}

static void test_bulkhead(void) {
  brc_bulkhead_t b;
  memset(&b, 0, sizeof b);
  brc_bulkhead_report_t report = {.max = 7};
  CHECK(brc_bulkhead_try_acquire(&b) == BRC_EINVAL);
  CHECK(brc_bulkhead_release(&b) == BRC_EINVAL);
  CHECK(brc_bulkhead_enqueue(&b) == BRC_EINVAL);
  CHECK(brc_bulkhead_handoff(&b, 1) == BRC_EINVAL);
  CHECK(brc_bulkhead_handoff(&b, 0) == BRC_EINVAL);
  CHECK(brc_bulkhead_grant(&b, 1) == BRC_EINVAL);
  CHECK(brc_bulkhead_unflag(&b) == BRC_EINVAL);
  CHECK(brc_bulkhead_report(&b, &report) == BRC_EINVAL);
  CHECK(brc_bulkhead_reconfigure(&b, 10) == BRC_EINVAL);
  CHECK_EQ_U64(report.max, 7);
  CHECK(all_zero(&b, sizeof b));
}

static void test_backoff(void) {
  brc_backoff_t b;
  memset(&b, 0, sizeof b);
  uint64_t delay = 7;
  CHECK(brc_backoff_delay(&b, 1, 0, &delay) == BRC_EINVAL);
  CHECK(brc_backoff_delay(&b, UINT64_MAX, UINT64_MAX, &delay) == BRC_EINVAL);
  CHECK_EQ_U64(delay, 7);
  CHECK(all_zero(&b, sizeof b));
}

static void test_budget(void) {
  brc_budget_t b;
  memset(&b, 0, sizeof b);
  int64_t balance = 7;
  CHECK(brc_budget_deposit(&b, NOW) == BRC_EINVAL);
  CHECK(brc_budget_try_withdraw(&b, NOW) == BRC_EINVAL);
  CHECK(brc_budget_balance(&b, NOW, &balance) == BRC_EINVAL);
  CHECK(balance == 7);
  CHECK(all_zero(&b, sizeof b));
}

static void test_histogram(void) {
  brc_histogram_t h;
  memset(&h, 0, sizeof h);
  uint64_t value = 7, count = 7;
  CHECK(brc_histogram_record(&h, NOW, 1000) == BRC_EINVAL);
  CHECK(brc_histogram_percentile(&h, NOW, 500000, &value, &count) == BRC_EINVAL);
  CHECK_EQ_U64(value, 7);
  CHECK_EQ_U64(count, 7);
  CHECK(all_zero(&h, sizeof h));
}

int main(void) {
  test_gcra();
  test_window();
  test_breaker();
  test_bulkhead();
  test_backoff();
  test_budget();
  test_histogram();
  CHECK_DONE();
}
