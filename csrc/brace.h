/*
 * brace.h - the one public header of brace's C core.
 *
 * Conventions (docs/architecture.md has them all):
 *   - Public symbols are brc_<object>_<verb>, types brc_<object>_t, macros BRC_*.
 *   - Functions return an int status: 0 (BRC_OK) on success, > 0 for a non-error
 *     outcome (BRC_REFUSED, ...), < 0 for an error (BRC_E*); BRC_STATUS_MAP
 *     lists them all, brc_strerror() and brc_status_name() describe one.
 *   - Time is uint64_t nanoseconds of a monotonic clock. Every decision takes the
 *     current time as `now`, so a decision is a pure function of (state, now).
 *   - State structs are fixed-size, pointer-free and updated with C11 atomics, so
 *     they may be shared by threads (and, in a brc_region_t, processes) without locks.
 *     Treat their fields as private; zero-initialised state is "not configured"
 *     and every call on it returns BRC_EINVAL rather than misbehaving.
 */
#ifndef BRACE_H
#define BRACE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- status codes ------------------------------------------------------ */
/* Every status a function returns, one row each: XX(NAME, value, message).
 * BRC_<NAME> is the code, brc_status_name() gives "BRC_<NAME>" and
 * brc_strerror() the message. 0 is success, > 0 an outcome that is not an
 * error (each with one meaning, whichever primitive returns it), < 0 an
 * error (errno's numbers, negated, as libuv does). */
#define BRC_STATUS_MAP(XX)                                                                   \
  XX(OK, 0, "ok")                                                                            \
  XX(REFUSED, 1, "refused: not admitted now, nothing was taken")                             \
  XX(WOULD_OPEN, 2, "a metrics-only breaker reached a threshold")                            \
  XX(HANDOFF, 3, "handoff: pass the released permit to the first waiter")                    \
  XX(STALE, 4, "stale: the state the call names has moved on, nothing changed")              \
  XX(FULL, 5, "full: no room for another key now, nothing was taken")                        \
  XX(ENOENT, -2, "no shared region of that name")                                            \
  XX(EIO, -5, "a system call on the shared region failed (errno says which)")                \
  XX(E2BIG, -7, "request larger than the limiter's burst can ever admit")                    \
  XX(ENOMEM, -12, "out of memory")                                                           \
  XX(EACCES, -13, "permission denied: the shared region belongs to another user")            \
  XX(EEXIST, -17, "the shared slot exists with another kind or configuration")               \
  XX(EINVAL, -22, "invalid argument")                                                        \
  XX(ENOSPC, -28, "the shared region is full: no free slot or state space")                  \
  XX(ERANGE, -34, "value overflows the 64-bit nanosecond clock")                             \
  XX(EVERSION, -71, "the shared region has another layout (magic, version or struct sizes)") \
  XX(ETIMEDOUT, -110, "timed out waiting for another process to set up the region or slot")  \
  XX(EOWNERDEAD, -130, "the shared region's creator died before finishing it: unlink it")

enum brc_status {
#define BRC__STATUS_ENUM(name, value, message) BRC_##name = (value),
  BRC_STATUS_MAP(BRC__STATUS_ENUM)
#undef BRC__STATUS_ENUM
};

/* Static, human-readable text for a status code; "unknown status" for a code
 * not in the table. Never NULL. Thread-safe. */
const char *brc_strerror(int status);

/* The code's name as written in C ("BRC_REFUSED"); "BRC_UNKNOWN" for a code
 * not in the table. Static, never NULL. Thread-safe. */
const char *brc_status_name(int status);

/* ---- limits ------------------------------------------------------------ */
/* The largest duration the core is configured with, in ns: 2^62 (~146
 * years) - a limiter's bucket depth (interval * burst), a breaker's waits.
 * It leaves head room for now + duration (+ jitter, + bookings) within the
 * 64-bit nanosecond clock, so that arithmetic never overflows. The bindings
 * check every duration they are given against it. */
#define BRC_DURATION_MAX (UINT64_C(1) << 62)

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
 * interval * burst must be at most BRC_DURATION_MAX ns (~146 years). Returns BRC_OK or
 * BRC_EINVAL / BRC_ERANGE (g unchanged). Not thread-safe against concurrent
 * use of `g`: call it before sharing `g`. */
int brc_gcra_init(brc_gcra_t *g, uint64_t interval, uint64_t burst);

/* Takes n tokens, all or nothing, if they are available by `now + max_wait`.
 * On BRC_OK the tokens are booked and *wait (may be NULL) receives the ns the
 * caller must wait before using them (0 when available now); bookings are
 * served in order, so waiters are FIFO. On BRC_REFUSED nothing is written and
 * *wait receives the ns until n tokens would be available without waiting.
 * n must be 1..burst: n == 0 gives BRC_EINVAL, n > burst BRC_E2BIG.
 * Thread-safe, lock-free, no allocation. */
int brc_gcra_acquire(brc_gcra_t *g, uint64_t n, uint64_t now,
                     uint64_t max_wait, uint64_t *wait);

/* Would brc_gcra_acquire(g, n, now, 0, ...) succeed? Consumes nothing.
 * Returns BRC_OK or BRC_REFUSED (then *retry_after, if not NULL, gets the ns
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

/* ---- sliding windows of call outcomes ---------------------------------- */
/* The counters a circuit breaker decides on: calls, failures, slow calls, slow
 * failures and their total duration, over the last `size` calls (COUNT) or
 * the last `size` buckets of `bucket` ns (TIME). Record and snapshot are O(1)
 * and lock-free. A window is one block of brc_window_bytes(kind, size) bytes,
 * pointer-free (the ring follows the header), allocated by the caller. */

#define BRC_WINDOW_COUNT 1
#define BRC_WINDOW_TIME 2
#define BRC_WINDOW_COUNT_MAX 16384 /* outcomes in a count window */
#define BRC_WINDOW_TIME_MAX 3600   /* buckets in a time window */
/* Calls a window counts at once: its counters are 32-bit fields, so a
 * breaker's minimum_calls is at most this. */
#define BRC_WINDOW_CALLS_MAX UINT64_C(0xffffffff)

/* Outcome flags for brc_window_record / brc_breaker_record. */
#define BRC_OUTCOME_FAILURE 1u
#define BRC_OUTCOME_SLOW 2u

typedef struct brc_window_s {
  uint64_t kind;   /* BRC_WINDOW_COUNT or BRC_WINDOW_TIME */
  uint64_t size;   /* outcomes (COUNT) or buckets (TIME) */
  uint64_t bucket; /* ns per bucket (TIME) */
  _Atomic uint64_t head;     /* COUNT: outcomes ever recorded; TIME: newest bucket */
  _Atomic uint64_t counts;   /* COUNT: window counts; TIME: running totals */
  _Atomic uint64_t slow;     /* TIME: running totals of slow calls */
  _Atomic uint64_t duration; /* ns: COUNT: window sum; TIME: running total */
  _Atomic uint64_t ring[];   /* COUNT: size outcomes; TIME: 4 words per bucket */
} brc_window_t;

typedef struct brc_window_snapshot_s {
  uint64_t calls;
  uint64_t failures;
  uint64_t slow_calls;
  uint64_t slow_failures;
  uint64_t duration; /* ns, summed over the calls recorded with a duration */
} brc_window_snapshot_t;

/* Bytes a window of this kind and size occupies; 0 if out of range. */
uint64_t brc_window_bytes(uint64_t kind, uint64_t size);

/* Initialises an empty window in `w` (brc_window_bytes(kind, size) bytes).
 * size: 1..BRC_WINDOW_COUNT_MAX outcomes, or 1..BRC_WINDOW_TIME_MAX buckets of
 * `bucket` >= 1 ns (ignored for COUNT). Returns BRC_OK or BRC_EINVAL. Not
 * thread-safe: call before sharing `w`. */
int brc_window_init(brc_window_t *w, uint64_t kind, uint64_t size, uint64_t bucket);

/* Records one outcome (BRC_OUTCOME_* flags) that took `duration` ns (0 if not
 * measured) at `now` (ns; TIME windows only, COUNT ignores it). Returns
 * BRC_OK, or BRC_EINVAL when `w` is not initialised. Thread-safe, lock-free,
 * no allocation: no update is ever lost. */
int brc_window_record(brc_window_t *w, unsigned outcome, uint64_t duration, uint64_t now);

/* The window's counters at `now` (TIME) into *out. Returns BRC_OK, or
 * BRC_EINVAL when `w` is not initialised (*out untouched). Thread-safe,
 * lock-free; exact once concurrent records have returned. */
int brc_window_snapshot(brc_window_t *w, uint64_t now, brc_window_snapshot_t *out);

/* Records into `to` (a new window, not shared yet) the newest outcomes of
 * `from`, oldest first with their durations, as many as `to` holds: for a
 * breaker whose window is resized. Both must be COUNT windows (a TIME
 * window's buckets keep totals, not outcomes to carry): else BRC_EINVAL and
 * nothing is carried. Outcomes recorded into `from` meanwhile may be missed;
 * the caller keeps records out of `from` for an exact carry. */
int brc_window_carry(brc_window_t *to, brc_window_t *from);

/* Empties the window (outcomes recorded concurrently may survive). Returns
 * BRC_OK, or BRC_EINVAL when `w` is not initialised. Thread-safe. */
int brc_window_clear(brc_window_t *w, uint64_t now);

/* ---- circuit breaker --------------------------------------------------- */
/* resilience4j's state machine in atomic state. CLOSED permits every call and
 * opens when, over a window with at least `minimum_calls` calls, the failure
 * rate or the slow-call rate reaches its threshold (or, in the simple mode,
 * after `consecutive_failures` failures in a row). OPEN rejects until its
 * wait has passed, then HALF_OPEN admits exactly `half_open_calls` probes and
 * decides on their outcomes: CLOSED (fresh window) or OPEN again. The wait in
 * OPEN is base * multiplier^(openings-1), capped, with +-jitter, where
 * `openings` counts openings since the last close. DISABLED always permits
 * and never transitions, FORCED_OPEN never permits, METRICS_ONLY records and
 * reports but never transitions.
 *
 * `now` may be 0 in brc_breaker_acquire / brc_breaker_record: the breaker
 * then reads brc_now_ns() itself, and only if it needs the time (a CLOSED
 * breaker with a COUNT window never does), so the common path reads no clock. */

#define BRC_CLOSED 1
#define BRC_OPEN 2
#define BRC_HALF_OPEN 3
#define BRC_DISABLED 4
#define BRC_FORCED_OPEN 5
#define BRC_METRICS_ONLY 6

#define BRC_HALF_OPEN_CALLS_MAX 1023
#define BRC_BREAKER_PROBE_LEASES 16 /* probes a shared breaker can lease at once */
#define BRC_BREAKER_LEASED (UINT64_C(1) << 63) /* ticket flag: a leased probe */

typedef struct brc_breaker_config_s {
  double failure_rate;           /* (0, 1]: open at this failure rate */
  double slow_rate;              /* (0, 1]: open at this slow-call rate */
  uint64_t minimum_calls;        /* >= 1: no rate decision below this many */
  uint64_t consecutive_failures; /* > 0: simple mode, open after this many in a row */
  uint64_t half_open_calls;      /* 1..BRC_HALF_OPEN_CALLS_MAX probes */
  uint64_t max_half_open;        /* ns in HALF_OPEN before re-opening, up to
                                    BRC_DURATION_MAX; 0 = no limit */
  uint64_t wait_base;            /* ns in OPEN after the first opening, >= 1 */
  double wait_multiplier;        /* >= 1 (+inf too): growth per consecutive opening */
  uint64_t wait_max;             /* ns cap on the grown wait, wait_base..BRC_DURATION_MAX:
                                    a wait that grows beyond it (or to infinity) is wait_max */
  double wait_jitter;            /* [0, 1): wait *= 1 + jitter * U(-1, 1), after the cap */
} brc_breaker_config_t;

/* brc_breaker_config_t's words (five uint64_t, five double). */
#define BRC_BREAKER_CONFIG_WORDS 10

/* One copy of a breaker's configuration: its words, and a sequence number that
 * is odd while brc_breaker_reconfigure writes them. */
typedef struct brc_breaker_config_copy_s {
  _Atomic uint64_t seq;
  _Atomic uint64_t words[BRC_BREAKER_CONFIG_WORDS];
} brc_breaker_config_copy_t;

typedef struct brc_breaker_s {
  /* Two copies, so that brc_breaker_reconfigure writes the one not in force
   * and then publishes it: bit 0 of config_current is the copy in force,
   * bit 1 is set while a reconfigure writes the other. */
  _Atomic uint64_t config_current;
  brc_breaker_config_copy_t config[2];
  _Atomic uint64_t state;      /* state | probes taken | generation */
  _Atomic uint64_t open_until; /* ns; valid for the generation in open_gen */
  _Atomic uint64_t open_gen;
  _Atomic uint64_t half_open_since; /* ns; valid for the generation in half_open_gen */
  _Atomic uint64_t half_open_gen;
  _Atomic uint64_t probes;     /* probe outcomes, tagged with the generation */
  _Atomic uint64_t openings;
  _Atomic uint64_t consecutive;
  _Atomic uint64_t not_permitted;
  _Atomic uint64_t probes_swept; /* ns of the last sweep of probe_leases */
  _Atomic uint64_t probe_leases[BRC_BREAKER_PROBE_LEASES]; /* see brc_breaker_acquire_leased */
  /* Outcomes since init, by kind (brc_breaker_report): relaxed counters bumped by the
   * record or release that settles the call, so they cost no CAS. */
  _Atomic uint64_t successful; /* recorded without BRC_OUTCOME_FAILURE */
  _Atomic uint64_t failed;     /* recorded with BRC_OUTCOME_FAILURE */
  _Atomic uint64_t slow;       /* recorded with BRC_OUTCOME_SLOW (also in one of the two above) */
  _Atomic uint64_t ignored;    /* brc_breaker_count_ignored */
} brc_breaker_t;

/* A transition made by one call: from and to are BRC_CLOSED..; to == 0: none. */
typedef struct brc_breaker_transition_s {
  int from;
  int to;
} brc_breaker_transition_t;

/* Validates `config` (the ranges above; NaN is refused) and starts CLOSED.
 * Returns BRC_OK or BRC_EINVAL (b unchanged). Not thread-safe: call before
 * sharing `b`.
 *
 * Every function below returns BRC_EINVAL (and writes nothing but a zero
 * *t) on a breaker that brc_breaker_init never configured, as on a window
 * that brc_window_init never initialised. */
int brc_breaker_init(brc_breaker_t *b, const brc_breaker_config_t *config);

/* Asks permission for one call at `now` (0: read only if needed). BRC_OK:
 * permitted; *ticket (required) identifies the state it was permitted in and
 * must be passed to brc_breaker_record or brc_breaker_release. BRC_REFUSED:
 * not permitted, nothing to record; *retry_after (may be NULL) gets the ns
 * until a call may be permitted (UINT64_MAX when forced open, 0 when unknown:
 * half-open with all probes out). *t (may be NULL) reports a transition made
 * by this call (OPEN -> HALF_OPEN, or HALF_OPEN -> OPEN after max_half_open).
 * Thread-safe, lock-free, no allocation. */
int brc_breaker_acquire(brc_breaker_t *b, uint64_t now, uint64_t *ticket, uint64_t *retry_after,
                        brc_breaker_transition_t *t);

/* Permission for a call with no clock read and no side effect: BRC_OK (and
 * *ticket) when the state permits every call (CLOSED, METRICS_ONLY,
 * DISABLED), else BRC_REFUSED with nothing changed - the caller then asks
 * brc_breaker_acquire, which handles OPEN and HALF_OPEN. Thread-safe. */
int brc_breaker_try_permit(brc_breaker_t *b, uint64_t *ticket);

/* Records the outcome of a permitted call: BRC_OUTCOME_* flags, its duration
 * in ns (0 if not measured), the ticket from acquire, `now` (0: read only if
 * needed). Outcomes count in the window while CLOSED or METRICS_ONLY, and as a
 * probe if the call was permitted in the current HALF_OPEN. Returns BRC_OK,
 * or BRC_WOULD_OPEN when METRICS_ONLY reached a threshold (a report, not a
 * transition). *t (may be NULL) reports a transition made by this record.
 * Thread-safe, lock-free, no allocation. */
int brc_breaker_record(brc_breaker_t *b, brc_window_t *w, uint64_t ticket, unsigned outcome,
                       uint64_t duration, uint64_t now, brc_breaker_transition_t *t);

/* Gives back the permission of a call that will record nothing (cancelled, or
 * an exception that is ignored): frees its probe slot if it was a probe of the
 * current HALF_OPEN. Returns BRC_OK (or BRC_EINVAL). Thread-safe, lock-free. */
int brc_breaker_release(brc_breaker_t *b, uint64_t ticket);

/* Counts one call whose outcome the caller ignores (its permission is given
 * back with brc_breaker_release, which counts nothing, as cancellations are
 * not counted). Returns BRC_OK or BRC_EINVAL. Thread-safe, lock-free: one
 * relaxed add. */
int brc_breaker_count_ignored(brc_breaker_t *b);

/* Probe leases, for a breaker that processes share (brc_region_breaker): a
 * probe whose process dies is given back instead of holding HALF_OPEN until
 * max_half_open. The probe's process owns one of BRC_BREAKER_PROBE_LEASES
 * lease words: the probe's generation (low 20 bits) | pid (22 bits) | start
 * time (low 22 bits of the clock ticks), from `tag` (brc_lease_tag of the
 * caller's process, computed once per process). The word is taken (one CAS,
 * 0 -> word) before the probe is, and freed (one CAS back) after its outcome
 * is recorded or it is released; a caller that finds every probe out sweeps
 * the words (at most once per BRC_LEASES_SWEEP_NS across processes, as
 * brc_leases_acquire does) and gives back, once each (the CAS that frees the
 * word), the probes of the current HALF_OPEN whose holder is dead. A process
 * killed between two of these steps leaves either a word with nothing taken
 * (its sweep gives back a probe never taken: one more probe may be
 * permitted) or, only if the state changed between its look and its CAS, a
 * probe without a word (max_half_open still bounds it). With no free word
 * (more than BRC_BREAKER_PROBE_LEASES probes out or words of dead processes
 * not yet swept), or a pid >= 2^22, the probe is taken without a lease.
 *
 * brc_breaker_acquire_leased: as brc_breaker_acquire; a leased probe's
 * *ticket has BRC_BREAKER_LEASED set, and must be passed (flag included) to
 * brc_breaker_record_leased or brc_breaker_release_leased, which record or
 * release as brc_breaker_record / brc_breaker_release do and then free the
 * lease (a ticket without the flag frees nothing). Same returns; thread- and
 * process-safe, lock-free, no allocation; a sweep makes system calls (kill,
 * reads of /proc/PID/stat). CLOSED costs one more load than brc_breaker_acquire. */
int brc_breaker_acquire_leased(brc_breaker_t *b, uint64_t tag, uint64_t now, uint64_t *ticket,
                               uint64_t *retry_after, brc_breaker_transition_t *t);
int brc_breaker_record_leased(brc_breaker_t *b, brc_window_t *w, uint64_t tag, uint64_t ticket,
                              unsigned outcome, uint64_t duration, uint64_t now, brc_breaker_transition_t *t);
int brc_breaker_release_leased(brc_breaker_t *b, uint64_t tag, uint64_t ticket);

/* Frees the probe lease words whose holder is dead, giving back the probes
 * of the current HALF_OPEN among them, and records `now` as the last sweep.
 * Returns the number of words freed (>= 0) or BRC_EINVAL (not configured).
 * Thread- and process-safe; one kill() per held word. */
int brc_breaker_sweep_probes(brc_breaker_t *b, uint64_t now);

/* Moves to `state` by hand (any of BRC_CLOSED..BRC_METRICS_ONLY; OPEN starts
 * a wait of the current opening count). CLOSED clears the window. Returns
 * BRC_OK or BRC_EINVAL; *t (may be NULL) reports the transition. Thread-safe. */
int brc_breaker_transition(brc_breaker_t *b, brc_window_t *w, int state, uint64_t now,
                           brc_breaker_transition_t *t);

/* Replaces the configuration of a breaker in use, keeping its state: the
 * state, its generation, the window, the counters and an OPEN's current wait
 * are unchanged (the wait settings apply from the next opening). The new
 * thresholds decide from the next recorded outcome; a HALF_OPEN whose probes
 * already completed reach a smaller half_open_calls decides now (at `now`,
 * which may be 0: read if needed), on them, with the new thresholds.
 * Switching into the simple mode starts its count of failures in a row at 0.
 * Validates as brc_breaker_init: BRC_EINVAL leaves everything unchanged.
 *
 * Every other call reads the configuration as one snapshot: it is never torn,
 * and reading it takes no lock and never waits for a reconfigure (the new
 * copy is written aside and published by one store; a reader retries only if
 * two reconfigures complete while it reads). Concurrent reconfigures of one
 * breaker run one after the other. *t (may be NULL) reports a transition.
 * Returns BRC_OK or BRC_EINVAL. Thread-safe; not for a breaker that
 * processes share (a process killed while reconfiguring would leave the
 * writer's flag set and the next reconfigure waiting forever). */
int brc_breaker_reconfigure(brc_breaker_t *b, brc_window_t *w, const brc_breaker_config_t *config,
                            uint64_t now, brc_breaker_transition_t *t);

/* The configuration in force into *out (one snapshot, as above). Returns
 * BRC_OK or BRC_EINVAL (*out untouched). Thread-safe, lock-free. */
int brc_breaker_config(brc_breaker_t *b, brc_breaker_config_t *out);

/* Sets the end of the current OPEN wait to `until` ns, if the breaker is
 * still in the OPEN state of `ticket`'s generation (for waits computed by the
 * caller). Returns BRC_OK, BRC_STALE when the state moved on (nothing changed), or
 * BRC_EINVAL. */
int brc_breaker_set_open_until(brc_breaker_t *b, uint64_t generation, uint64_t until);

typedef struct brc_breaker_report_s {
  int state;
  uint64_t generation;      /* increments on every transition */
  uint64_t openings;        /* since the last close */
  uint64_t not_permitted;   /* rejected calls, ever */
  uint64_t probes_out;      /* HALF_OPEN: probes permitted */
  uint64_t retry_after;     /* OPEN: ns until HALF_OPEN; else 0 */
  uint64_t consecutive;     /* failures in a row (simple mode) */
  uint64_t successful;      /* outcomes recorded since init: not failures */
  uint64_t failed;          /* ... failures */
  uint64_t slow;            /* ... slow (successful or failed) */
  uint64_t ignored;         /* brc_breaker_count_ignored calls since init */
} brc_breaker_report_t;

/* The breaker's state at `now` into *out. Returns BRC_OK, or BRC_EINVAL (*out
 * untouched). Thread-safe, lock-free. */
int brc_breaker_report(brc_breaker_t *b, uint64_t now, brc_breaker_report_t *out);

/* ---- bulkhead permits -------------------------------------------------- */
/* A counting semaphore for a bulkhead: at most `max` permits in use at once.
 * The state is one atomic word (permits in use, max, and a "waiters queued"
 * flag), so the fast paths (try_acquire, release) are one CAS each and never
 * block. Waiting is left to the caller, who keeps a FIFO queue of waiters
 * under its own lock and calls the slow-path functions below with that lock
 * held; the flag makes the fast paths defer to that queue:
 *   - while the flag is set, try_acquire refuses (newcomers never overtake
 *     queued waiters) and release returns BRC_HANDOFF instead of freeing: the
 *     releaser must pass its permit to the first waiter (brc_bulkhead_handoff);
 *   - the caller keeps the flag set exactly while its queue is non-empty:
 *     brc_bulkhead_enqueue sets it, and brc_bulkhead_handoff, _grant (when
 *     they serve the last waiter) and _unflag (when the last one leaves) clear
 *     it.
 * A permit that is handed off stays counted in use: it changes owner, never
 * becomes free, so no newcomer can take it on the way. */

#define BRC_BULKHEAD_MAX UINT64_C(0x7fffffff) /* the largest max (2^31 - 1) */

typedef struct brc_bulkhead_s {
  _Atomic uint64_t state; /* bit 63: waiters queued; bits 32-62: max; 0-31: in use */
} brc_bulkhead_t;

typedef struct brc_bulkhead_report_s {
  uint64_t in_use;         /* permits held (may exceed max after a shrink) */
  uint64_t max;            /* permits that may be held at once */
  uint64_t waiters_queued; /* 1 while the caller's queue holds waiters, else 0 */
} brc_bulkhead_report_t;

/* Configures `b` with no permit in use; max is 1..BRC_BULKHEAD_MAX. Returns
 * BRC_OK or BRC_EINVAL (b unchanged). Not thread-safe against concurrent use
 * of `b`: call it before sharing `b`. */
int brc_bulkhead_init(brc_bulkhead_t *b, uint64_t max);

/* Takes a permit if one is free and no waiter is queued. Returns BRC_OK,
 * BRC_REFUSED (nothing taken) or BRC_EINVAL (not configured). Thread-safe,
 * lock-free, no allocation. */
int brc_bulkhead_try_acquire(brc_bulkhead_t *b);

/* Gives a permit back. Returns BRC_OK (freed), BRC_HANDOFF (waiters are
 * queued: nothing changed, the caller still owns the permit and must take its
 * queue lock and call brc_bulkhead_handoff), or BRC_EINVAL (no permit in use,
 * or not configured). With more permits in use than max (after a shrink) it
 * frees even when waiters are queued. Thread-safe, lock-free, no allocation. */
int brc_bulkhead_release(brc_bulkhead_t *b);

/* Slow path of an acquire that will wait; call with the queue lock held,
 * after try_acquire refused. Returns BRC_OK when it took a permit (one was
 * freed since and no waiter is queued: do not queue), BRC_REFUSED when the
 * caller must queue itself (the waiters flag is now set, so every release
 * from now on hands off), or BRC_EINVAL (not configured). Thread-safe. */
int brc_bulkhead_enqueue(brc_bulkhead_t *b);

/* Slow path of a release that returned BRC_HANDOFF, and of a waiter that was
 * handed a permit it will not use; the caller owns one permit and holds the
 * queue lock, and `queued` waiters are in its queue. Returns BRC_HANDOFF when
 * the caller must pass the permit to the first waiter and dequeue it (still
 * counted in use; when queued == 1 the waiters flag is cleared in the same
 * step), or BRC_OK when the permit was freed instead (queued == 0, which also
 * clears the flag, or more permits in use than max). BRC_EINVAL: no permit in
 * use, or not configured. Thread-safe. */
int brc_bulkhead_handoff(brc_bulkhead_t *b, uint64_t queued);

/* Takes a new permit for the first of `queued` (>= 1) waiters if one is free
 * (after max grew); call with the queue lock held. Returns BRC_OK (the caller
 * must pass it to the first waiter; the flag is cleared when queued == 1),
 * BRC_REFUSED (none free), or BRC_EINVAL (queued == 0, not configured).
 * Thread-safe. */
int brc_bulkhead_grant(brc_bulkhead_t *b, uint64_t queued);

/* Clears the waiters flag; call with the queue lock held when the last
 * waiter left the queue without a permit (timed out, cancelled). Returns
 * BRC_OK or BRC_EINVAL (not configured). Thread-safe, lock-free. */
int brc_bulkhead_unflag(brc_bulkhead_t *b);

/* Permits in use, max and the waiters flag into *out (one consistent
 * snapshot). Returns BRC_OK or BRC_EINVAL (not configured). Thread-safe,
 * lock-free. */
int brc_bulkhead_report(brc_bulkhead_t *b, brc_bulkhead_report_t *out);

/* Changes max (1..BRC_BULKHEAD_MAX) at run time; permits in use stay in use.
 * Growing frees room for newcomers at once; queued waiters are served by the
 * caller with brc_bulkhead_grant. Shrinking below the permits in use retires
 * permits as they are released until in use <= max. Returns BRC_OK or
 * BRC_EINVAL (b unchanged). Thread-safe against concurrent use of `b`. */
int brc_bulkhead_reconfigure(brc_bulkhead_t *b, uint64_t max);

/* ---- leased permits (a bulkhead shared by processes) -------------------- */
/* A bulkhead whose permits are lease words, for a state that processes share
 * (brc_region_leases): `max` words, each 0 (free) or the tag of the process
 * that holds it (brc_lease_tag: its pid and start time, so that a reused pid
 * is told apart). Acquiring is one CAS of a free word (0 -> tag), releasing
 * one CAS back (tag -> 0), so at most `max` permits are ever held across all
 * processes, and a process killed at any instruction leaves each word free or
 * tagged with its own tag. A word whose owner is dead (kill(pid, 0) fails
 * with ESRCH, or the pid now belongs to a process that started at another
 * time) is reclaimed by a sweep: brc_leases_acquire sweeps when it finds no
 * free word and BRC_LEASES_SWEEP_NS have passed since the last sweep (by any
 * process), and brc_leases_sweep sweeps on demand. A dead process's permits
 * thus come back at the first acquire that needs them, at most
 * BRC_LEASES_SWEEP_NS after an earlier sweep. Permits are the process's, not
 * the thread's: a release frees any word that holds the caller's tag (the
 * `hint` index first), so a process never frees more than it holds. There is
 * no queue: a caller that must wait polls. Linux reads the start time from
 * /proc/PID/stat; elsewhere it is 0 and only the pid is checked. */

#define BRC_LEASES_MAX UINT64_C(4096)          /* the largest max */
#define BRC_LEASES_SWEEP_NS UINT64_C(10000000) /* 10 ms: the sweeps' spacing */

typedef struct brc_leases_s {
  _Atomic uint64_t max;   /* 1..BRC_LEASES_MAX; 0: not configured */
  _Atomic uint64_t next;  /* where the next acquire starts looking (a hint) */
  _Atomic uint64_t swept; /* the `now` of the last sweep, ns */
  uint64_t reserved[5];   /* pads the header to one 64-byte line */
  _Atomic uint64_t words[]; /* max words: 0 or a holder's tag */
} brc_leases_t;

typedef struct brc_leases_report_s {
  uint64_t in_use; /* words held (by live or not yet reclaimed processes) */
  uint64_t max;    /* permits that may be held at once */
  uint64_t mine;   /* words held by the tag asked about */
} brc_leases_report_t;

/* Bytes a brc_leases_t with `max` words takes (its header line and the
 * words), or 0 when max is outside 1..BRC_LEASES_MAX. Pure. */
uint64_t brc_leases_bytes(uint64_t max);

/* Configures `l` (brc_leases_bytes(max) bytes) with every word free. Returns
 * BRC_OK or BRC_EINVAL (max outside 1..BRC_LEASES_MAX; l unchanged). Not
 * thread-safe against concurrent use of `l`: call it before sharing it. */
int brc_leases_init(brc_leases_t *l, uint64_t max);

/* The tag of process `pid` (> 0): pid << 32 | the low 32 bits of its start
 * time in clock ticks (0 when it cannot be read). Never 0. Reads
 * /proc/PID/stat on Linux: a system call, not for decision paths; callers
 * compute their own once per process (and again in a fork()ed child). */
uint64_t brc_lease_tag(uint64_t pid);

/* Takes a free word for `tag` (from brc_lease_tag) and puts its index
 * (0..max-1) in *index, the token to release it with. Looks from a shared
 * rotating hint, so the common case is one load and one CAS; when every
 * word is taken and BRC_LEASES_SWEEP_NS have passed since the last sweep
 * (`now`, ns, any clock the sharers agree on, e.g. brc_now_ns), sweeps dead
 * holders' words first. Returns BRC_OK, BRC_REFUSED (none free: nothing
 * taken) or BRC_EINVAL (not configured, tag 0). Thread- and process-safe,
 * lock-free, no allocation; a sweep makes system calls (kill, and reads of
 * /proc for live holders), at most one sweep per BRC_LEASES_SWEEP_NS. */
int brc_leases_acquire(brc_leases_t *l, uint64_t tag, uint64_t now, uint64_t *index);

/* Frees a word held by `tag`: word `hint` if it holds tag, else the first
 * that does. Returns BRC_OK, or BRC_EINVAL (tag holds none, not configured).
 * Thread- and process-safe, lock-free, no allocation; O(1) when hint is the
 * index brc_leases_acquire gave, O(max) otherwise. */
int brc_leases_release(brc_leases_t *l, uint64_t tag, uint64_t hint);

/* Frees every word whose holder is dead (see above) and records `now` as
 * the last sweep. Returns the number of words freed (>= 0) or BRC_EINVAL
 * (not configured). Thread- and process-safe; makes one kill() per held
 * word, and one read of /proc/PID/stat per live holder's word. */
int brc_leases_sweep(brc_leases_t *l, uint64_t now);

/* Words held, max, and words held by `tag` (0: not counted) into *out, by
 * one pass over the words: each word is read atomically, the counts are not
 * one snapshot while others acquire and release. Returns BRC_OK or
 * BRC_EINVAL (not configured). Thread- and process-safe, lock-free. */
int brc_leases_report(brc_leases_t *l, uint64_t tag, brc_leases_report_t *out);

/* ---- backoff and jitter ---- */
/* The delay before each retry. The kind sets its growth with the attempt
 * number (1-based: attempt k is the delay before retry k):
 *   EXPONENTIAL  initial * multiplier^(k-1)
 *   LINEAR       initial + increment * (k-1)
 *   CONSTANT     initial
 * capped at `max`, with no overflow for any k (huge k gives max). Jitter then
 * spreads that delay d, using this thread's brc_rng stream (one draw per
 * delay, none for NONE; reproducible after brc_rng_seed):
 *   NONE          d
 *   FULL          U(0, d)                  AWS "full jitter"
 *   EQUAL         d/2 + U(0, d/2)
 *   DECORRELATED  min(max, U(initial, 3 * previous))  ignores the kind's
 *                 growth: grows from the previous delay instead
 *   PROPORTIONAL  min(max, d * U(1 - factor, 1 + factor))  gRPC: factor 0.2
 * A brc_backoff_t is configuration only: fixed-size, pointer-free and never
 * written after init, so any number of threads (or processes) may share it. */

#define BRC_BACKOFF_EXPONENTIAL 1
#define BRC_BACKOFF_LINEAR 2
#define BRC_BACKOFF_CONSTANT 3

#define BRC_JITTER_NONE 1
#define BRC_JITTER_FULL 2
#define BRC_JITTER_EQUAL 3
#define BRC_JITTER_DECORRELATED 4
#define BRC_JITTER_PROPORTIONAL 5

typedef struct brc_backoff_s {
  uint32_t kind;      /* BRC_BACKOFF_*; 0: not configured */
  uint32_t jitter;    /* BRC_JITTER_* */
  uint64_t initial;   /* ns: the delay before the first retry (before jitter) */
  uint64_t increment; /* ns added per attempt (LINEAR; else 0) */
  uint64_t max;       /* ns: no delay exceeds it */
  double multiplier;  /* growth per attempt (EXPONENTIAL; else 1) */
  double factor;      /* spread (PROPORTIONAL; else 0) */
} brc_backoff_t;

/* Configures `b`. kind: BRC_BACKOFF_*; jitter: BRC_JITTER_*. initial ns must
 * be >= 1 for EXPONENTIAL and for DECORRELATED jitter (growth from 0 stays 0)
 * and may be 0 otherwise (retry at once, or LINEAR growth from 0); max ns >=
 * initial. multiplier (EXPONENTIAL only) finite and >= 1; increment ns
 * (LINEAR only) any; factor (PROPORTIONAL only) in (0, 1]. Settings the kind
 * or jitter does not use are ignored (stored as 1, 0, 0). Returns BRC_OK or
 * BRC_EINVAL (b unchanged). Not thread-safe against concurrent use of `b`:
 * call it before sharing `b`. */
int brc_backoff_init(brc_backoff_t *b, int kind, uint64_t initial, uint64_t max,
                     double multiplier, uint64_t increment, int jitter, double factor);

/* The delay in ns (0..max) before retry number `attempt` (1-based; 0 counts
 * as 1) into *delay. `previous` is the delay this function gave for the
 * previous attempt; only DECORRELATED reads it, and a value below initial
 * (such as 0 for the first retry) counts as initial. Returns BRC_OK, or
 * BRC_EINVAL for an unconfigured (zeroed) `b` (*delay untouched).
 * Thread-safe (`b` is read-only; the RNG is per-thread), lock-free, no
 * allocation. */
int brc_backoff_delay(const brc_backoff_t *b, uint64_t attempt, uint64_t previous, uint64_t *delay);

/* ---- retry budget ---- */
/* Finagle's retry budget: every call deposits `ratio` tokens, every retry
 * withdraws one, and a retry is allowed only while the balance covers it.
 * Deposits and withdrawals both expire after `ttl`, and a floor of
 * `min_per_second` retries per second is always there:
 *   balance = min_per_second * ttl + ratio * deposits - withdrawals
 * over the last ttl. Kept in integer milli-tokens (a withdrawal costs
 * BRC_BUDGET_TOKEN, a deposit ratio_milli), so a ratio of 0.2 is exact.
 *
 * Granularity: time is cut into buckets of ttl_ns / BRC_BUDGET_BUCKETS ns
 * (numbered now / bucket), and the window at `now` is now's bucket and the
 * BRC_BUDGET_BUCKETS - 1 before it. So expiry is exact to one bucket: an
 * event counts for between ttl - bucket and ttl (exactly ttl when it happens
 * at the start of a bucket; ttl is rounded down to a whole number of
 * BRC_BUDGET_BUCKETS ns).
 *
 * State: per bucket slot one word of deposits and one of withdrawals, each
 * lap << 32 | count (lap = bucket number / BRC_BUDGET_BUCKETS, mod 2^32); a
 * word of another lap is an expired bucket and reads as 0, so nothing is
 * ever subtracted: the first call of a bucket replaces the expired word. One
 * more word holds the newest bucket any caller has used: a caller whose
 * `now` is behind it acts in that bucket (so all callers share one window),
 * and the caller that moves it forward clears, in the slots it enters, any
 * word left from 2^32 laps before (it would pass for live). A deposit is one
 * atomic add. A withdrawal reads the window (21 words) and
 * counts itself with one CAS on its bucket's word, so withdrawals in one
 * bucket are serialized; it then reads the window again and takes itself
 * back if a caller in another bucket (at a bucket boundary) spent the same
 * token. A bucket counts at most 2^31 deposits (more are not counted) and
 * 2^31 - 1 withdrawals (more are refused): both limits only shrink the
 * budget. `now` must come from one monotonic clock (brc_now_ns). */

#define BRC_BUDGET_BUCKETS 10
#define BRC_BUDGET_TOKEN 1000                  /* milli-tokens: one withdrawal */
#define BRC_BUDGET_RATIO_MAX UINT64_C(1000000) /* ratio_milli: 1000 retries per call */
#define BRC_BUDGET_MIN_PER_SECOND_MAX UINT64_C(1000000000)
#define BRC_BUDGET_TTL_MIN UINT64_C(1000000)       /* ns: 1 ms */
#define BRC_BUDGET_TTL_MAX UINT64_C(3600000000000) /* ns: 1 hour */

typedef struct brc_budget_s {
  uint64_t bucket;        /* ns per bucket; 0: not configured */
  _Atomic uint64_t deposit; /* milli-tokens one deposit adds (ratio_milli); brc_budget_reconfigure */
  _Atomic uint64_t floor;   /* milli-tokens always there: min_per_second * ttl; brc_budget_reconfigure */
  _Atomic uint64_t epoch; /* the newest bucket any caller has used */
  _Atomic uint64_t deposits[BRC_BUDGET_BUCKETS];    /* lap << 32 | deposits */
  _Atomic uint64_t withdrawals[BRC_BUDGET_BUCKETS]; /* lap << 32 | withdrawals */
} brc_budget_t;

/* Configures `b` with nothing deposited or withdrawn. ratio_milli:
 * milli-tokens a deposit adds, 1..BRC_BUDGET_RATIO_MAX (200 = a ratio of
 * 0.2: retries may add 20% to the calls); min_per_second: retries per second
 * always allowed, 0..BRC_BUDGET_MIN_PER_SECOND_MAX (the floor is
 * min_per_second * ttl tokens, rounded down to a milli-token); ttl_ns: how
 * long deposits and withdrawals count, BRC_BUDGET_TTL_MIN..BRC_BUDGET_TTL_MAX
 * ns. Returns BRC_OK or BRC_EINVAL (b unchanged). Not thread-safe against
 * concurrent use of `b`: call it before sharing `b`. */
int brc_budget_init(brc_budget_t *b, uint64_t ratio_milli, uint64_t min_per_second,
                    uint64_t ttl_ns);

/* Changes the ratio and the floor of a budget in use, as brc_budget_init
 * takes them (ttl_ns must be the budget's: a window cannot change its
 * buckets in use). The deposits and withdrawals in the window stay: the
 * window's deposits count at the new ratio from then on, so a lowered ratio
 * or floor can leave the balance negative (as expiry can) until it recovers.
 * Each of the two settings changes with one atomic store: a decision made
 * between the two stores sees the new ratio with the old floor, one of the
 * two budgets on the way. Returns BRC_OK, or BRC_EINVAL (b unchanged) when
 * `b` is not configured, a setting is out of range or ttl_ns is not b's.
 * Thread-safe, lock-free, no allocation. */
int brc_budget_reconfigure(brc_budget_t *b, uint64_t ratio_milli, uint64_t min_per_second,
                           uint64_t ttl_ns);

/* Records one call at `now` (ns): ratio_milli more milli-tokens for the next
 * ttl. Returns BRC_OK, or BRC_EINVAL when `b` is not configured.
 * Thread-safe, lock-free (one atomic add; a CAS in the first call of a
 * bucket), no allocation. */
int brc_budget_deposit(brc_budget_t *b, uint64_t now);

/* Takes one token (BRC_BUDGET_TOKEN milli-tokens) for a retry at `now` (ns)
 * if the balance covers it. Returns BRC_OK (taken: it counts as a withdrawal
 * for the next ttl), BRC_REFUSED (exhausted: nothing taken), or BRC_EINVAL
 * when `b` is not configured. A token is never spent twice, under any
 * interleaving: an admitted withdrawal leaves the balance >= 0 counting every
 * withdrawal admitted before it. Thread-safe, lock-free, no allocation. */
int brc_budget_try_withdraw(brc_budget_t *b, uint64_t now);

/* The balance at `now` (ns) into *out, in milli-tokens: the floor, plus
 * ratio_milli per deposit, minus BRC_BUDGET_TOKEN per withdrawal in the
 * window; negative when withdrawals outlive the deposits that paid for them.
 * Returns BRC_OK, or BRC_EINVAL when `b` is not configured (*out untouched).
 * Thread-safe, lock-free, writes nothing; exact once concurrent calls have
 * returned. */
int brc_budget_balance(brc_budget_t *b, uint64_t now, int64_t *out);

/* ---- latency histogram ---- */
/* Recent latencies in log-scale buckets, for percentile questions ("how slow
 * is the 95th percentile lately?") such as a hedging delay's. A duration in
 * ns falls in one of BRC_HISTOGRAM_BUCKETS buckets:
 *   0                      [0, 2^10) ns (under ~1 us: one bucket)
 *   1 + 8 * (o - 10) + s   [(8 + s) << (o - 3), (9 + s) << (o - 3)) for the
 *                          octave o = floor(log2 d), 10 <= o < 38, s in 0..7
 *   BRC_HISTOGRAM_BUCKETS-1 [2^38, ...) ns (over ~275 s: one bucket)
 * So a bucket is 1/8 of its octave wide (12.5% of its lower bound at most),
 * and a percentile, read as its bucket's midpoint, is within 6.25% of the
 * exact one for durations from 1.024 us to 275 s.
 *
 * Recency (tower's rotating histogram, without the lock): time is cut into
 * windows of window_ns (numbered now / window_ns); a percentile reads the
 * current window and the one before it, so it covers between one and two
 * windows of the most recent latencies, and what was recorded longer ago
 * than two windows is forgotten. Two sets of buckets alternate (window
 * number & 1). Each bucket word is lap << 40 | count (lap = window number
 * / 2, mod 2^24); a word of another lap belongs to an expired window and
 * reads as 0, so expiry subtracts nothing: the first record of a new window
 * replaces the expired word with one CAS. One more word holds the newest
 * window any caller has used: a caller whose `now` is behind it records in
 * that window, and the caller that moves it forward first clears, in the set
 * it enters, any word left from 2^24 laps before (it would pass for live).
 * A bucket counts at most 2^40 - 1 durations per window (more are not
 * counted). `now` must come from one monotonic clock (brc_now_ns). */

#define BRC_HISTOGRAM_BUCKETS 226
#define BRC_HISTOGRAM_WINDOW_MIN UINT64_C(1000000)       /* ns: 1 ms */
#define BRC_HISTOGRAM_WINDOW_MAX UINT64_C(86400000000000) /* ns: 1 day */
#define BRC_HISTOGRAM_PPM UINT32_C(1000000)              /* q_ppm of the maximum */

typedef struct brc_histogram_s {
  uint64_t window;         /* ns per window; 0: not configured */
  _Atomic uint64_t newest; /* the newest window any caller has used */
  _Atomic uint64_t counts[2][BRC_HISTOGRAM_BUCKETS]; /* lap << 40 | count */
} brc_histogram_t;

/* Configures `h` empty, with windows of window_ns ns
 * (BRC_HISTOGRAM_WINDOW_MIN..BRC_HISTOGRAM_WINDOW_MAX). Returns BRC_OK or
 * BRC_EINVAL (h unchanged). Not thread-safe against concurrent use of `h`:
 * call it before sharing `h`. */
int brc_histogram_init(brc_histogram_t *h, uint64_t window_ns);

/* Records one duration (ns, any value; see the buckets above) at `now` (ns).
 * Returns BRC_OK, or BRC_EINVAL when `h` is not configured. Thread-safe,
 * lock-free (one CAS on the duration's bucket; a caller entering a new
 * window also clears aliased words of its set), no allocation. */
int brc_histogram_record(brc_histogram_t *h, uint64_t now, uint64_t duration_ns);

/* The q-th quantile of the durations recorded in the current and the
 * previous window at `now`: q_ppm in parts per million (950000: the 95th
 * percentile), 0..BRC_HISTOGRAM_PPM, by nearest rank (the duration at rank
 * max(1, ceil(q * count)) in ascending order), given as its bucket's
 * midpoint in ns (2^9 for the lowest bucket, 2^38 for the highest) into
 * *value_ns, and the number of durations read into *count (0: *value_ns is
 * 0). Either pointer may be NULL. Returns BRC_OK, or BRC_EINVAL when `h` is
 * not configured or q_ppm is out of range (outputs untouched). Thread-safe,
 * lock-free, writes nothing to `h`; exact once concurrent records have
 * returned. */
int brc_histogram_percentile(brc_histogram_t *h, uint64_t now, uint32_t q_ppm, uint64_t *value_ns,
                             uint64_t *count);

/* ---- keyed rate limiter ---- */
/* One GCRA bucket per key (all with the same interval and burst), in a
 * fixed-size open-addressing table that lives in one caller-given, zeroed
 * block of brc_keyed_bytes(capacity) bytes: a header (configuration and
 * counters), then `capacity` entries of 16 bytes, pointer-free, so the block
 * may be placed in any memory (a process's heap, a shared mapping).
 *
 * Keys are 64-bit hashes (brc_hash64 / brc_hash64_u64 make them): two keys
 * with the same hash share one bucket. The hashes 0 and UINT64_MAX mark
 * empty and vacated entries, so a hash of 0 is taken as 1 and UINT64_MAX as
 * UINT64_MAX - 1. An entry is (key, tat): tat is the key's GCRA theoretical
 * arrival time in ns, and tat <= now means a full bucket, which is the same
 * as no entry at all; so a full key may be evicted at any time without
 * losing anything it was owed.
 *
 * A key lives in the BRC_KEYED_PROBE entries from hash & (capacity - 1)
 * (its window, wrapping around). A key not in its window takes an entry of
 * the window whose bucket is full (the least recently used one: the
 * smallest tat; empty entries first); when every entry of the window holds
 * a key whose bucket is not full, the table is full for that key
 * (BRC_FULL). Taking an entry: its tat is swapped for a marker (the top bit,
 * and the taker's `now`), then its key, then the taker looks for a copy of
 * its key installed at the same time elsewhere in the window (one of two
 * such copies always gives way), then the tat is released with the new
 * key's first decision. Callers that meet a marker wait for it to go;
 * a marker older than BRC_KEYED_STALE_NS (by the caller's `now`) is taken
 * over, so a process that dies while taking an entry cannot wedge it.
 *
 * `now` must be below 2^62 ns (146 years of a monotonic clock); tats then
 * stay below 2^63 and never collide with markers. */

#define BRC_KEYED_PROBE 32                            /* entries in a key's window */
#define BRC_KEYED_CAPACITY_MIN UINT64_C(64)           /* entries, a power of two */
#define BRC_KEYED_CAPACITY_MAX (UINT64_C(1) << 32)    /* entries, a power of two */
#define BRC_KEYED_STALE_NS UINT64_C(1000000000)       /* ns: a marker this old is taken over */

typedef struct brc_keyed_entry_s {
  _Atomic uint64_t key; /* hash; 0: empty, UINT64_MAX: vacated */
  _Atomic uint64_t tat; /* ns; <= now: bucket full; top bit: marker */
} brc_keyed_entry_t;

typedef struct brc_keyed_s {
  uint64_t capacity; /* entries, a power of two; 0: not configured */
  uint64_t interval; /* ns per token, as brc_gcra_t's */
  uint64_t burst;    /* tokens */
  uint64_t reserved;
  _Atomic uint64_t admitted;  /* decisions that took tokens */
  _Atomic uint64_t rejected;  /* decisions refused for want of tokens (BRC_REFUSED) */
  _Atomic uint64_t full;      /* decisions refused for want of an entry (BRC_FULL) */
  _Atomic uint64_t evictions; /* entries taken from another key (whose bucket was full) */
  brc_keyed_entry_t entries[];
} brc_keyed_t;

typedef struct brc_keyed_counters_s {
  uint64_t admitted;
  uint64_t rejected;
  uint64_t full;
  uint64_t evictions;
} brc_keyed_counters_t;

/* Bytes of a table of `capacity` entries (header included): a power of two
 * from BRC_KEYED_CAPACITY_MIN to BRC_KEYED_CAPACITY_MAX; 0 for any other
 * capacity. Thread-safe. */
uint64_t brc_keyed_bytes(uint64_t capacity);

/* Configures the table in `t`, a zeroed block of brc_keyed_bytes(capacity)
 * bytes, with every key's bucket full. interval and burst as for
 * brc_gcra_init (interval >= 1 ns, burst >= 1, interval * burst <=
 * BRC_DURATION_MAX). Returns BRC_OK, BRC_EINVAL (capacity out of range, or
 * interval / burst 0) or BRC_ERANGE (interval * burst too long); `t`
 * unchanged on error. Not thread-safe against concurrent use of `t`: call
 * it before sharing `t`. */
int brc_keyed_init(brc_keyed_t *t, uint64_t capacity, uint64_t interval, uint64_t burst);

/* Takes n tokens (1..burst) from the bucket of `hash` at `now` (ns), all or
 * nothing, exactly as brc_gcra_acquire(g, n, now, 0, ...) on that key's own
 * limiter. Returns BRC_OK (taken), BRC_REFUSED (not enough tokens, nothing
 * taken), BRC_FULL (the key has no entry and its window has no full bucket
 * to evict: nothing taken, the key's bucket counts as empty), BRC_EINVAL (n
 * == 0, `t` not configured), BRC_E2BIG (n > burst) or BRC_ERANGE (now >=
 * 2^62). *report (may be NULL) receives, on OK and REFUSED, the key's state
 * after the decision as brc_gcra_report gives it; on BRC_FULL, limit and
 * remaining 0, and retry_after = reset_after = the ns until the first entry
 * of the window is full again (its key evictable). Thread-safe, lock-free
 * (waits only while another caller holds the key's own entry, for a few
 * instructions; after a few thousand spins on an entry whose holder does
 * not finish, a stalled or killed process, it answers BRC_FULL with
 * retry_after 1 ns until the marker is BRC_KEYED_STALE_NS old), no
 * allocation. */
int brc_keyed_acquire(brc_keyed_t *t, uint64_t hash, uint64_t n, uint64_t now,
                      brc_gcra_report_t *report);

/* The state of `hash`'s bucket at `now` (an absent key reports a full
 * bucket) into *report, as brc_gcra_report. Takes nothing, writes nothing to
 * `t`. Returns BRC_OK, BRC_EINVAL (`t` not configured; *report untouched)
 * or BRC_ERANGE (now >= 2^62). Thread-safe, lock-free. */
int brc_keyed_state(brc_keyed_t *t, uint64_t hash, uint64_t now, brc_gcra_report_t *report);

/* One token for each of `count` hashes, in order, at `now`: admitted[i] = 1
 * when brc_keyed_acquire(t, hashes[i], 1, now, ...) returned BRC_OK, else 0.
 * Returns BRC_OK when every decision was OK or REFUSED; BRC_FULL when at least
 * one key found the table full (its admitted[i] is 0, the keys after it were
 * still decided, and *full (may be NULL) receives the report of the first
 * such key); BRC_EINVAL / BRC_ERANGE as acquire, then nothing was decided or
 * written. Thread-safe as acquire, no allocation. */
int brc_keyed_acquire_many(brc_keyed_t *t, const uint64_t *hashes, size_t count, uint64_t now,
                           uint8_t *admitted, brc_gcra_report_t *full);

/* brc_keyed_acquire_many for integer keys: hashes values[i] with
 * brc_hash64_u64 first (an array of int64 or uint64 keys, as they are). */
int brc_keyed_acquire_many_u64(brc_keyed_t *t, const uint64_t *values, size_t count,
                               uint64_t now, uint8_t *admitted, brc_gcra_report_t *full);

/* The table's counters into *out (each exact once concurrent calls have
 * returned). Returns BRC_OK or BRC_EINVAL (`t` not configured). Thread-safe. */
int brc_keyed_counters(brc_keyed_t *t, brc_keyed_counters_t *out);

/* A stable 64-bit hash of `len` bytes: the same in every process, build and
 * platform (bytes read little-endian; xxHash64-style rounds, murmur3's fmix64
 * finalizer; not cryptographic: keys chosen by an attacker can collide).
 * Thread-safe, pure. */
uint64_t brc_hash64(const void *bytes, size_t len);

/* A stable 64-bit hash of an integer key (splitmix64's finalizer): a
 * bijection, so distinct integers share a bucket only when their hashes are
 * the two a table remaps (0 and UINT64_MAX). Thread-safe, pure. */
uint64_t brc_hash64_u64(uint64_t value);


/* ---- shared-memory region ---------------------------------------------- */
/* A named POSIX shared-memory object (shm_open) holding a fixed table of
 * named slots, each with one primitive's state (a brc_gcra_t, ...), so that
 * processes that open the same region decide on one state. Everything in the
 * mapping is fixed-size, pointer-free and atomic (offsets, never pointers);
 * the states are the same structs as in-process ones, so the decision
 * functions are unchanged and as lock-free. A brc_region_t is the
 * process-local handle (it holds the mapping's address): a fork()ed child
 * inherits the mapping and may use its parent's handle and state pointers.
 *
 * Layout: a brc_region_header_t at offset 0, then `slots` brc_region_slot_t,
 * then the states, bump-allocated in 64-byte lines. A region is created with
 * mode 0600 (its owner only) and its size is fixed at creation; it lives until
 * brc_region_unlink and the last unmapping (processes that have it open keep
 * using the unlinked one; a new open then creates a fresh region). Slots are
 * never freed: a slot name is bound to its first kind and configuration for
 * the region's life. A creator or claimer is known by its pid, checked with
 * kill(pid, 0): the processes sharing a region must share a pid namespace
 * (containers that share /dev/shm but not their pids would take a live
 * claimer for a dead one). */

#define BRC_REGION_MAGIC UINT64_C(0x3147455243415242) /* "BRACREG1" little-endian */
#define BRC_REGION_VERSION 4 /* 2: keyed tables and leased permits; 3: breakers' probe leases;
                                4: breakers' outcome counters and reconfigurable configuration */
#define BRC_REGION_SLOTS 1024       /* slots in a region */
#define BRC_REGION_NAME_MAX 63      /* bytes in a slot name (and NUL) */
#define BRC_REGION_CONFIG_MAX 128   /* bytes of configuration a slot keeps */
#define BRC_REGION_SIZES 10         /* struct sizes checked on open */
#define BRC_REGION_ALIGN 64         /* states start on a 64-byte line */
#define BRC_REGION_CAPACITY_MIN UINT64_C(1048576) /* bytes: 1 MiB */
#define BRC_REGION_CAPACITY_MAX (UINT64_C(1) << 40) /* bytes: 1 TiB */
#define BRC_REGION_WAIT_NS UINT64_C(2000000000)   /* the longest wait for another process */

/* Slot kinds (the primitive a slot holds); 0 is no kind. */
#define BRC_KIND_GCRA 1
#define BRC_KIND_BREAKER 2
#define BRC_KIND_BULKHEAD 3
#define BRC_KIND_BUDGET 4
#define BRC_KIND_KEYED 5
#define BRC_KIND_LEASES 6

/* Slot status word: BRC_SLOT_* in the low 2 bits, the claimer's pid above. */
#define BRC_SLOT_EMPTY 0
#define BRC_SLOT_INITIALISING 1
#define BRC_SLOT_READY 2

/* The header at offset 0 (for tools and tests; treat it as read-only). The
 * creator writes every field, then publishes `magic` with a release store;
 * an opener checks magic, version and the sizes before using anything. */
typedef struct brc_region_header_s {
  _Atomic uint64_t magic;    /* BRC_REGION_MAGIC once initialised, 0 before */
  uint64_t version;          /* BRC_REGION_VERSION */
  uint64_t sizes[BRC_REGION_SIZES]; /* sizeof brc_gcra_t, brc_breaker_t,
                                       brc_bulkhead_t, brc_budget_t,
                                       brc_region_header_t, brc_region_slot_t,
                                       brc_keyed_t, brc_leases_t; 0 for
                                       the later ones */
  uint64_t capacity;         /* bytes in the region */
  uint64_t slots;            /* BRC_REGION_SLOTS */
  _Atomic uint64_t creator;  /* pid of the creating process (0 until known) */
  _Atomic uint64_t bump;     /* offset of the first free byte for states */
} brc_region_header_t;

/* One slot (for tools and tests): name, kind and configuration are written by
 * its claimer before `status` becomes READY with a release store, and never
 * change afterwards. */
typedef struct brc_region_slot_s {
  _Atomic uint64_t status;   /* pid << 2 | BRC_SLOT_* */
  uint32_t kind;             /* BRC_KIND_* (or a caller's own, > 0) */
  uint32_t config_len;       /* bytes in config */
  uint64_t offset;           /* of the state from the region's start */
  uint64_t state_bytes;
  char name[BRC_REGION_NAME_MAX + 1];
  unsigned char config[BRC_REGION_CONFIG_MAX];
  uint64_t reserved[4];      /* 256 bytes in all */
} brc_region_slot_t;

typedef struct brc_region_s brc_region_t;

/* What a slot holds, from brc_region_slot_info. */
typedef struct brc_region_slot_info_s {
  uint32_t kind;
  uint32_t config_len;
  uint64_t state_bytes;
  unsigned char config[BRC_REGION_CONFIG_MAX];
} brc_region_slot_info_t;

/* Opens the region `name` (1..200 bytes of [A-Za-z0-9._-], an optional
 * leading '/'), creating it with `capacity` bytes (BRC_REGION_CAPACITY_MIN..
 * BRC_REGION_CAPACITY_MAX; the pages are not touched, so it stays sparse
 * until used) and mode 0600 if it does not exist; capacity 0 opens an
 * existing region only. Creation is race-free: one process creates
 * (O_CREAT|O_EXCL), the others wait for it to publish the header, at most
 * BRC_REGION_WAIT_NS. An existing region keeps its own capacity. *out gets a
 * handle to close with brc_region_close. Returns BRC_OK, or BRC_EINVAL (name
 * or capacity), BRC_ENOENT (capacity 0, no region), BRC_EVERSION (another
 * layout), BRC_EACCES, BRC_EOWNERDEAD (its creator died before publishing
 * the header), BRC_ETIMEDOUT (it did not publish it in time), BRC_ENOMEM,
 * BRC_EIO (another system error; errno is kept). Thread-safe; may block up to
 * BRC_REGION_WAIT_NS; not for decision paths. */
int brc_region_open(const char *name, uint64_t capacity, brc_region_t **out);

/* Unmaps the region and frees the handle (NULL is ignored). Every state
 * pointer obtained from it becomes invalid; the region itself stays. Not
 * thread-safe against other use of `r`. */
void brc_region_close(brc_region_t *r);

/* Removes the region's name (shm_unlink): processes that have it mapped keep
 * using it; the next brc_region_open creates a fresh one. Returns BRC_OK,
 * BRC_ENOENT, BRC_EACCES, BRC_EINVAL (name) or BRC_EIO. Thread-safe. */
int brc_region_unlink(const char *name);

/* The capacity in bytes of an open region, and the bytes its states use. */
uint64_t brc_region_capacity(const brc_region_t *r);
uint64_t brc_region_used(const brc_region_t *r);

/* The state of the slot `slot_name` (1..BRC_REGION_NAME_MAX bytes, NUL
 * excluded) into *state, claiming and initialising the slot if no process
 * has yet. The first process claims a free slot lock-free (a CAS on its
 * status: EMPTY -> INITIALISING with its pid), takes `state_bytes` (>= 1) of
 * zeroed, 64-byte-aligned state space, copies kind (>= 1) and `config`
 * (config_len 0..BRC_REGION_CONFIG_MAX bytes), calls init(state, config)
 * (NULL: the zeroed state is the initial one; init returns a status, < 0
 * abandons the claim and is returned) and publishes READY with a release
 * store. Other openers wait for READY at most BRC_REGION_WAIT_NS; a claim
 * whose process died is taken over. A slot that exists with another kind,
 * state_bytes or config bytes gives BRC_EEXIST (brc_region_slot_info reads
 * what it holds). Returns BRC_OK, BRC_EEXIST, BRC_EINVAL, BRC_ENOSPC (no free
 * slot, or not enough space), BRC_ETIMEDOUT, or init's error. Thread-safe
 * and process-safe; may block; not for decision paths: keep the pointer. */
int brc_region_slot(brc_region_t *r, const char *slot_name, uint32_t kind, const void *config,
                    size_t config_len, size_t state_bytes,
                    int (*init)(void *state, const void *config), void **state);

/* The GCRA limiter of the slot `slot_name` into *out, claimed and configured
 * as brc_gcra_init(interval, burst) by the first process (kind
 * BRC_KIND_GCRA; its config bytes are the two uint64_t interval and burst,
 * in this order and the machine's byte order). Same returns as
 * brc_region_slot, BRC_EINVAL / BRC_ERANGE for a configuration
 * brc_gcra_init refuses, and BRC_EEXIST when the slot holds another
 * configuration (the one given first stays: reconfiguring a shared limiter
 * is not supported yet). */
int brc_region_gcra(brc_region_t *r, const char *slot_name, uint64_t interval, uint64_t burst,
                    brc_gcra_t **out);

/* The circuit breaker of the slot `slot_name` and its sliding window, both
 * in the slot's state (the breaker first, the window on the next 64-byte
 * line), into *breaker and *window: claimed and configured as
 * brc_window_init(window_kind, window_size, bucket) and
 * brc_breaker_init(config) by the first process (kind BRC_KIND_BREAKER;
 * config bytes: the brc_breaker_config_t, then window_kind, window_size
 * and bucket as uint64_t). Same returns as brc_region_gcra. */
int brc_region_breaker(brc_region_t *r, const char *slot_name, const brc_breaker_config_t *config,
                       uint64_t window_kind, uint64_t window_size, uint64_t bucket,
                       brc_breaker_t **breaker, brc_window_t **window);

/* The retry budget of the slot `slot_name` into *out, claimed and configured
 * as brc_budget_init(ratio_milli, min_per_second, ttl_ns) by the first
 * process (kind BRC_KIND_BUDGET; config bytes: the three uint64_t in this
 * order). Same returns as brc_region_gcra. */
int brc_region_budget(brc_region_t *r, const char *slot_name, uint64_t ratio_milli,
                      uint64_t min_per_second, uint64_t ttl_ns, brc_budget_t **out);

/* The keyed rate limiter of the slot `slot_name` into *out: a table of
 * brc_keyed_bytes(capacity) bytes in the slot's state, claimed and
 * configured as brc_keyed_init(capacity, interval, burst) by the first
 * process (kind BRC_KIND_KEYED; config bytes: the three uint64_t in this
 * order). Same returns as brc_region_gcra (BRC_ENOSPC when the region has
 * no room left for the table, or is smaller than it). */
int brc_region_keyed(brc_region_t *r, const char *slot_name, uint64_t capacity, uint64_t interval,
                     uint64_t burst, brc_keyed_t **out);

/* The leased permits of the slot `slot_name` into *out, claimed and
 * configured as brc_leases_init(max) by the first process (kind
 * BRC_KIND_LEASES; config bytes: max as one uint64_t). Same returns as
 * brc_region_gcra. */
int brc_region_leases(brc_region_t *r, const char *slot_name, uint64_t max, brc_leases_t **out);

/* What the READY slot `slot_name` holds into *out. Returns BRC_OK, BRC_ENOENT
 * (no such slot, or not ready) or BRC_EINVAL. Thread-safe. */
int brc_region_slot_info(brc_region_t *r, const char *slot_name, brc_region_slot_info_t *out);

#ifdef __cplusplus
}
#endif

#endif /* BRACE_H */
