/* Single-threaded GCRA semantics, and a randomized comparison with a plain
 * token-bucket model (credit in ns, refilled 1 ns per ns, capped at depth). */
#include <stdlib.h>

#include "brace.h"
#include "check.h"

#define MS UINT64_C(1000000)
#define SEC UINT64_C(1000000000)

static void test_burst_then_rate(void) {
  brc_gcra_t g;
  uint64_t now = 5 * SEC, wait = 0;
  CHECK(brc_gcra_init(&g, 100 * MS, 5) == BRC_OK);
  for (int i = 0; i < 5; i++)
    CHECK(brc_gcra_acquire(&g, 1, now, 0, &wait) == BRC_OK && wait == 0);
  CHECK(brc_gcra_acquire(&g, 1, now, 0, &wait) == BRC_REFUSED);
  CHECK_EQ_U64(wait, 100 * MS);
  CHECK(brc_gcra_acquire(&g, 1, now + 99 * MS, 0, NULL) == BRC_REFUSED);
  CHECK(brc_gcra_acquire(&g, 1, now + 100 * MS, 0, NULL) == BRC_OK);
  CHECK(brc_gcra_acquire(&g, 1, now + 100 * MS, 0, NULL) == BRC_REFUSED);
}

static void test_weighted_all_or_nothing(void) {
  brc_gcra_t g;
  uint64_t now = SEC, wait = 0;
  brc_gcra_init(&g, 10 * MS, 10);
  CHECK(brc_gcra_acquire(&g, 7, now, 0, NULL) == BRC_OK);
  CHECK(brc_gcra_acquire(&g, 4, now, 0, &wait) == BRC_REFUSED);
  CHECK_EQ_U64(wait, 10 * MS);
  /* the rejected 4 consumed nothing: 3 are still there */
  CHECK(brc_gcra_acquire(&g, 3, now, 0, NULL) == BRC_OK);
  CHECK(brc_gcra_acquire(&g, 1, now, 0, NULL) == BRC_REFUSED);
  CHECK(brc_gcra_acquire(&g, 11, now, UINT64_MAX, NULL) == BRC_E2BIG);
  CHECK(brc_gcra_acquire(&g, 0, now, 0, NULL) == BRC_EINVAL);
}

static void test_peek_consumes_nothing(void) {
  brc_gcra_t g;
  uint64_t now = SEC, retry = 1;
  brc_gcra_init(&g, MS, 2);
  CHECK(brc_gcra_peek(&g, 2, now, &retry) == BRC_OK && retry == 0);
  CHECK(brc_gcra_peek(&g, 2, now, NULL) == BRC_OK);
  CHECK(brc_gcra_acquire(&g, 2, now, 0, NULL) == BRC_OK);
  CHECK(brc_gcra_peek(&g, 1, now, &retry) == BRC_REFUSED);
  CHECK_EQ_U64(retry, MS);
  CHECK(brc_gcra_peek(&g, 3, now, NULL) == BRC_E2BIG);
}

static void test_report(void) {
  brc_gcra_t g;
  brc_gcra_report_t r;
  uint64_t now = SEC;
  brc_gcra_init(&g, 100 * MS, 10);
  CHECK(brc_gcra_report(&g, now, &r) == BRC_OK);
  CHECK_EQ_U64(r.limit, 10);
  CHECK_EQ_U64(r.remaining, 10);
  CHECK_EQ_U64(r.retry_after, 0);
  CHECK_EQ_U64(r.reset_after, 0);
  brc_gcra_acquire(&g, 10, now, 0, NULL);
  brc_gcra_report(&g, now + 150 * MS, &r);
  CHECK_EQ_U64(r.remaining, 1);
  CHECK_EQ_U64(r.retry_after, 0);
  CHECK_EQ_U64(r.reset_after, 850 * MS);
  brc_gcra_acquire(&g, 1, now + 150 * MS, 0, NULL);
  brc_gcra_report(&g, now + 150 * MS, &r);
  CHECK_EQ_U64(r.remaining, 0);
  CHECK_EQ_U64(r.retry_after, 50 * MS);
  brc_gcra_t unset = {0};
  CHECK(brc_gcra_report(&unset, now, &r) == BRC_EINVAL);
  CHECK(brc_gcra_acquire(&unset, 1, now, 0, NULL) == BRC_EINVAL);
}

static void test_bookings_are_fifo_and_refundable(void) {
  brc_gcra_t g;
  uint64_t now = SEC, wait = 0;
  brc_gcra_init(&g, 100 * MS, 1);
  CHECK(brc_gcra_acquire(&g, 1, now, 0, &wait) == BRC_OK && wait == 0);
  CHECK(brc_gcra_acquire(&g, 1, now, SEC, &wait) == BRC_OK);
  CHECK_EQ_U64(wait, 100 * MS);
  CHECK(brc_gcra_acquire(&g, 1, now, SEC, &wait) == BRC_OK);
  CHECK_EQ_U64(wait, 200 * MS);
  /* a wait longer than allowed is refused without booking */
  CHECK(brc_gcra_acquire(&g, 1, now, 250 * MS, &wait) == BRC_REFUSED);
  CHECK_EQ_U64(wait, 300 * MS);
  /* the third caller gives its slot back: the next booking gets it */
  CHECK(brc_gcra_refund(&g, 1, now) == BRC_OK);
  CHECK(brc_gcra_acquire(&g, 1, now, SEC, &wait) == BRC_OK);
  CHECK_EQ_U64(wait, 200 * MS);
  /* refunds never fill the bucket beyond burst */
  for (int i = 0; i < 10; i++)
    brc_gcra_refund(&g, 1, now);
  CHECK(brc_gcra_acquire(&g, 1, now, 0, NULL) == BRC_OK);
  CHECK(brc_gcra_acquire(&g, 1, now, 0, NULL) == BRC_REFUSED);
}

static void test_reconfigure_keeps_taken_tokens(void) {
  brc_gcra_t g;
  brc_gcra_report_t r;
  uint64_t now = SEC;
  brc_gcra_init(&g, 100 * MS, 10);
  brc_gcra_acquire(&g, 6, now, 0, NULL);
  CHECK(brc_gcra_reconfigure(&g, 10 * MS, 20, now) == BRC_OK);
  brc_gcra_report(&g, now, &r);
  CHECK_EQ_U64(r.limit, 20);
  CHECK_EQ_U64(r.remaining, 14);
  CHECK_EQ_U64(r.reset_after, 60 * MS);
  /* shrinking below what is taken: the debt is waited out at the new rate */
  CHECK(brc_gcra_reconfigure(&g, 20 * MS, 4, now) == BRC_OK);
  brc_gcra_report(&g, now, &r);
  CHECK_EQ_U64(r.remaining, 0);
  CHECK_EQ_U64(r.retry_after, 60 * MS);
  CHECK(brc_gcra_reconfigure(&g, 0, 4, now) == BRC_EINVAL);
  CHECK(brc_gcra_reconfigure(&g, 10, 0, now) == BRC_EINVAL);
  CHECK(brc_gcra_reconfigure(&g, UINT64_C(1) << 40, UINT64_C(1) << 23, now) == BRC_ERANGE);
  brc_gcra_report(&g, now, &r);
  CHECK_EQ_U64(r.limit, 4); /* failed reconfigures change nothing */
}

static void test_init_ranges(void) {
  brc_gcra_t g;
  CHECK(brc_gcra_init(&g, 0, 1) == BRC_EINVAL);
  CHECK(brc_gcra_init(&g, 1, 0) == BRC_EINVAL);
  CHECK(brc_gcra_init(&g, UINT64_C(1) << 32, UINT64_C(1) << 31) == BRC_ERANGE);
  CHECK(brc_gcra_init(&g, UINT64_C(1) << 32, UINT64_C(1) << 30) == BRC_OK);
}

static uint64_t lcg(uint64_t *x) {
  *x = *x * 6364136223846793005u + 1442695040888963407u;
  return *x >> 33;
}

static void test_matches_token_bucket_model(void) {
  uint64_t seed = 42;
  for (int round = 0; round < 200; round++) {
    uint64_t interval = 1 + lcg(&seed) % 1000, burst = 1 + lcg(&seed) % 20;
    uint64_t depth = interval * burst, credit = depth, now = 1 + lcg(&seed) % 1000;
    brc_gcra_t g;
    brc_gcra_init(&g, interval, burst);
    for (int step = 0; step < 500; step++) {
      uint64_t dt = lcg(&seed) % (2 * interval + 1);
      now += dt;
      credit = credit + dt > depth ? depth : credit + dt;
      uint64_t n = 1 + lcg(&seed) % burst, wait = 0;
      int expect = credit >= n * interval ? BRC_OK : BRC_REFUSED;
      int got = brc_gcra_acquire(&g, n, now, 0, &wait);
      CHECK(got == expect);
      if (got == BRC_OK)
        credit -= n * interval;
      else
        CHECK_EQ_U64(wait, n * interval - credit);
      if (check_failures)
        return;
    }
  }
}

int main(void) {
  test_burst_then_rate();
  test_weighted_all_or_nothing();
  test_peek_consumes_nothing();
  test_report();
  test_bookings_are_fifo_and_refundable();
  test_reconfigure_keeps_taken_tokens();
  test_init_ranges();
  test_matches_token_bucket_model();
  CHECK_DONE();
}
