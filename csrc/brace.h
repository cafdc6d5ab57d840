/*
 * brace.h - the one public header of brace's C core.
 *
 * Conventions (see DESIGN.md):
 *   - Public symbols are brc_<object>_<verb>, types brc_<object>_t, macros BRC_*.
 *   - Functions return an int status: 0 (BRC_OK) on success, > 0 for a non-error
 *     outcome (BRC_LIMITED), < 0 for an error (BRC_E*). brc_strerror() names it.
 *   - Time is uint64_t nanoseconds of a monotonic clock. Every decision takes the
 *     current time as `now`, so a decision is a pure function of (state, now).
 *   - State structs are fixed-size, pointer-free and updated with C11 atomics, so
 *     they may be shared by threads (and, later, processes) without locks.
 *     Treat their fields as private; zero-initialised state is "not configured"
 *     and every call on it returns BRC_EINVAL rather than misbehaving.
 */
#ifndef BRACE_H
#define BRACE_H

#include <stdatomic.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- status codes ------------------------------------------------------ */

#define BRC_OK 0
#define BRC_LIMITED 1   /* not admitted now; nothing was consumed */
#define BRC_EINVAL (-22) /* an argument is out of its documented range */
#define BRC_E2BIG (-7)   /* a request that can never be admitted (n > burst) */
#define BRC_ERANGE (-34) /* a value would overflow the 64-bit nanosecond clock */

/* Static, human-readable text for a status code. Never NULL. Thread-safe. */
const char *brc_strerror(int status);

/* ---- clock ------------------------------------------------------------- */

/* Monotonic time in nanoseconds on CLOCK_MONOTONIC's scale, or the frozen test
 * time while an override is active. Never 0. Thread-safe, lock-free, no
 * system call on the common path: where the kernel keeps time with an
 * invariant TSC (x86-64), it reads the TSC and scales it, re-anchoring on
 * CLOCK_MONOTONIC about three times a second (slewed, never backwards, within
 * microseconds of it); elsewhere, or with BRACE_CLOCK=monotonic in the
 * environment, it calls clock_gettime(CLOCK_MONOTONIC). */
uint64_t brc_now_ns(void);

/* "tsc" once brc_now_ns() reads the scaled TSC (after ~20 ms of calibration),
 * else "monotonic". Static string. Thread-safe. */
const char *brc_clock_source(void);

/* Freezes the process-wide clock at `now` ns (> 0): brc_now_ns() returns it
 * until brc_clock_thaw(). Returns BRC_OK, or BRC_EINVAL when now == 0.
 * Thread-safe; meant for tests (brace.testing.fake_clock). */
int brc_clock_freeze(uint64_t now);

/* Moves a frozen clock forward by `delta` ns. Returns BRC_OK, BRC_EINVAL when
 * the clock is not frozen, BRC_ERANGE on overflow (clock unchanged). */
int brc_clock_advance(uint64_t delta);

/* Moves a frozen clock forward to `target` ns if it is behind it (never
 * backwards; concurrent callers end at the largest target). Returns BRC_OK,
 * or BRC_EINVAL when the clock is not frozen. */
int brc_clock_advance_to(uint64_t target);

/* Returns the clock to real time. Always BRC_OK. */
int brc_clock_thaw(void);

/* 1 while the clock is frozen, else 0. */
int brc_clock_is_frozen(void);

/* ---- jitter RNG -------------------------------------------------------- */
/* xoshiro256** with per-thread state. Each thread's stream is derived from the
 * process-wide seed and the order in which threads first draw, so a
 * single-threaded program is fully reproducible after brc_rng_seed(). */

/* Reseeds every thread's stream (each thread picks the new seed up at its next
 * draw). Thread-safe. */
void brc_rng_seed(uint64_t seed);

/* Next 64 uniformly distributed bits from this thread's stream. Thread-safe
 * (per-thread state), lock-free, no allocation. */
uint64_t brc_rng_next(void);

/* A uniform double in [0, 1) with 53 random bits. Thread-safe. */
double brc_rng_uniform(void);

/* ---- GCRA rate limiter ------------------------------------------------- */
/* Generic cell rate algorithm (a token bucket kept as one "theoretical arrival
 * time", TAT). `interval` ns is the time one token takes to come back
 * (per / rate); `burst` tokens may be taken at once from a full bucket.
 * Decisions are lock-free: one CAS on the TAT. */

typedef struct brc_gcra_s {
  _Atomic uint64_t tat;      /* ns; <= now means "bucket full" */
  _Atomic uint64_t interval; /* ns per token, >= 1 */
  _Atomic uint64_t burst;    /* tokens, >= 1 */
  _Atomic uint64_t seq;      /* even: config stable; odd: being reconfigured */
} brc_gcra_t;

typedef struct brc_gcra_report_s {
  uint64_t limit;       /* burst: the most tokens ever available at once */
  uint64_t remaining;   /* tokens that could be taken now */
  uint64_t retry_after; /* ns until one token is available (0 if one is) */
  uint64_t reset_after; /* ns until the bucket is full again */
} brc_gcra_report_t;

/* Configures `g` as a full bucket. interval >= 1 ns, burst >= 1, and
 * interval * burst must fit in 2^62 ns (~146 years). Returns BRC_OK or
 * BRC_EINVAL / BRC_ERANGE (g unchanged). Not thread-safe against concurrent
 * use of `g`: call it before sharing `g`. */
int brc_gcra_init(brc_gcra_t *g, uint64_t interval, uint64_t burst);

/* Takes n tokens, all or nothing, if they are available by `now + max_wait`.
 * On BRC_OK the tokens are booked and *wait (may be NULL) receives the ns the
 * caller must wait before using them (0 when available now); bookings are
 * served in order, so waiters are FIFO. On BRC_LIMITED nothing is written and
 * *wait receives the ns until n tokens would be available without waiting.
 * n must be 1..burst: n == 0 gives BRC_EINVAL, n > burst BRC_E2BIG.
 * Thread-safe, lock-free, no allocation. */
int brc_gcra_acquire(brc_gcra_t *g, uint64_t n, uint64_t now,
                     uint64_t max_wait, uint64_t *wait);

/* Would brc_gcra_acquire(g, n, now, 0, ...) succeed? Consumes nothing.
 * Returns BRC_OK or BRC_LIMITED (then *retry_after, if not NULL, gets the ns
 * until it would), or BRC_EINVAL / BRC_E2BIG as for acquire. Thread-safe. */
int brc_gcra_peek(brc_gcra_t *g, uint64_t n, uint64_t now,
                  uint64_t *retry_after);

/* Returns n tokens booked by an acquire whose caller will not use them (for
 * example a waiter that was cancelled before its turn). Never makes more than
 * `burst` tokens available. Returns BRC_OK, BRC_EINVAL or BRC_E2BIG.
 * Thread-safe, lock-free. */
int brc_gcra_refund(brc_gcra_t *g, uint64_t n, uint64_t now);

/* Fills *out with the limiter's state at `now`. Returns BRC_OK or BRC_EINVAL.
 * Thread-safe, lock-free. */
int brc_gcra_report(brc_gcra_t *g, uint64_t now, brc_gcra_report_t *out);

/* Changes interval and burst at run time, keeping the tokens already taken
 * (and booked): their debt is converted to the new interval, so a limiter that
 * had k tokens out still has k out, now returning at the new rate; a debt
 * larger than the new burst is waited out, not forgiven. Same ranges as
 * brc_gcra_init. Returns
 * BRC_OK, BRC_EINVAL or BRC_ERANGE (g unchanged). Thread-safe against
 * concurrent decisions and other reconfigures. */
int brc_gcra_reconfigure(brc_gcra_t *g, uint64_t interval, uint64_t burst,
                         uint64_t now);

#ifdef __cplusplus
}
#endif

#endif /* BRACE_H */
