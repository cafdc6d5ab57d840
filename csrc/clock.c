#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "brace.h"

/* 0 means "not frozen"; a frozen clock is never 0, so one atomic says both. */
static _Atomic uint64_t brc__frozen_now;

static uint64_t brc__monotonic_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  /* +1 keeps the documented "never 0" even on a clock that starts at 0. */
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec + 1u;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#include <x86intrin.h>

/* The TSC clock. clock_gettime() costs ~17 ns in a VM; an unordered rdtsc ~7.
 * Where the kernel itself keeps time with an invariant TSC, brace reads the
 * TSC and scales it onto CLOCK_MONOTONIC:
 *     ns = anchor_ns + ((tsc - anchor_tsc) * mult) >> 32
 * The rate (mult, ns per tick in 32.32 fixed point) is measured against
 * CLOCK_MONOTONIC over the whole life of the process. Every 2^30 ticks (about
 * a third of a second) one caller re-anchors: it keeps the clock continuous
 * and slews the rate (by at most 1/1024) so that it converges on
 * CLOCK_MONOTONIC instead of jumping, so it never drifts away from the time
 * that sleeps and other processes use. BRACE_CLOCK=monotonic opts out. */
__extension__ typedef unsigned __int128 brc__u128;

#define BRC__REANCHOR_TICKS (UINT64_C(1) << 30)
#define BRC__CALIBRATE_NS UINT64_C(20000000) /* shortest baseline for a rate */
#define BRC__RESYNC_NS UINT64_C(1000000)     /* an error this large restarts */
#define BRC__FIRST_LEAD_NS UINT64_C(2000)

enum { BRC__TSC_UNDECIDED, BRC__TSC_DECIDING, BRC__TSC_ELIGIBLE, BRC__TSC_OFF };

static _Atomic int brc__tsc_mode;

/* Anchor and rate, double-buffered: a re-anchor fills the idle slot, then
 * publishes it by bumping the generation (0: nothing published yet), so a
 * reader always has a complete set and never waits. */
typedef struct {
  _Atomic uint64_t tsc, ns, mult;
} brc__tsc_params_t;
static brc__tsc_params_t brc__params[2];
static _Atomic uint64_t brc__generation;
static _Atomic int brc__reanchoring; /* the one caller allowed to write */
static _Atomic uint64_t brc__baseline_tsc, brc__baseline_ns;

static int brc__tsc_eligible(void) {
  const char *opt = getenv("BRACE_CLOCK");
  if (opt && strcmp(opt, "monotonic") == 0)
    return 0;
  unsigned a, b, c, d;
  if (!__get_cpuid(0x80000007u, &a, &b, &c, &d) || !(d & (1u << 8)))
    return 0; /* no invariant TSC */
  char source[32] = {0};
  FILE *f = fopen("/sys/devices/system/clocksource/clocksource0/current_clocksource", "r");
  if (!f)
    return 0;
  int ok = fgets(source, sizeof source, f) != NULL && strcmp(source, "tsc\n") == 0;
  fclose(f);
  return ok;
}

/* A (tsc, ns) pair read together: the TSC's midpoint around the clock read,
 * from the tightest of a few tries, so the latency of clock_gettime() (large
 * under sanitizers or preemption) does not skew the measured rate. */
static void brc__tsc_pair(uint64_t *tsc, uint64_t *ns) {
  uint64_t best = UINT64_MAX;
  for (int attempt = 0; attempt < 4; attempt++) {
    uint64_t before = __rdtsc();
    uint64_t clock = brc__monotonic_ns();
    uint64_t after = __rdtsc();
    if (after >= before && after - before < best) {
      best = after - before;
      *tsc = before + (after - before) / 2;
      *ns = clock;
    }
  }
  if (best == UINT64_MAX) { /* the TSC went backwards between reads: take the clock alone */
    *tsc = __rdtsc();
    *ns = brc__monotonic_ns();
  }
}

static uint64_t brc__tsc_scale(uint64_t tsc, uint64_t at, uint64_t an, uint64_t m) {
  uint64_t dt = tsc > at ? tsc - at : 0; /* a core a few ticks behind reads the anchor */
  return an + (uint64_t)(((brc__u128)dt * m) >> 32);
}

static uint64_t brc__mult_between(uint64_t ticks, uint64_t ns) {
  return ticks ? (uint64_t)(((brc__u128)ns << 32) / ticks) : 0;
}

/* Reads the published parameters; returns the generation (0: none). */
static uint64_t brc__tsc_load(uint64_t *at, uint64_t *an, uint64_t *m) {
  uint64_t generation = atomic_load_explicit(&brc__generation, memory_order_acquire);
  const brc__tsc_params_t *p = &brc__params[generation & 1u];
  *at = atomic_load_explicit(&p->tsc, memory_order_acquire);
  *an = atomic_load_explicit(&p->ns, memory_order_acquire);
  *m = atomic_load_explicit(&p->mult, memory_order_acquire);
  return generation;
}

/* Called by the one re-anchoring caller. The new line meets the old one at a
 * TSC read just before publishing, one tick-rounding ahead when slowing down,
 * so callers on either side of the switch never see time go backwards. */
static uint64_t brc__tsc_reanchor(uint64_t generation, uint64_t at, uint64_t an, uint64_t m) {
  uint64_t ns, tsc;
  brc__tsc_pair(&tsc, &ns);
  uint64_t base_tsc = atomic_load_explicit(&brc__baseline_tsc, memory_order_relaxed);
  uint64_t base_ns = atomic_load_explicit(&brc__baseline_ns, memory_order_relaxed);
  if (ns - base_ns < BRC__CALIBRATE_NS || tsc <= base_tsc)
    return generation ? brc__tsc_scale(tsc, at, an, m) : ns;
  uint64_t measured = brc__mult_between(tsc - base_tsc, ns - base_ns);
  uint64_t mult = measured;
  if (generation) {
    uint64_t current = brc__tsc_scale(tsc, at, an, m);
    uint64_t error = current > ns ? current - ns : ns - current;
    uint64_t lo = measured - measured / 1024, hi = measured + measured / 1024;
    if (error > BRC__RESYNC_NS) {
      /* The TSC's rate changed under us (migration, suspend): measure anew. */
      atomic_store_explicit(&brc__baseline_tsc, tsc, memory_order_relaxed);
      atomic_store_explicit(&brc__baseline_ns, ns, memory_order_relaxed);
      mult = current > ns ? lo : hi;
    } else {
      /* Aim to meet CLOCK_MONOTONIC at the next re-anchor. */
      uint64_t period = (uint64_t)(((brc__u128)BRC__REANCHOR_TICKS * measured) >> 32);
      uint64_t target = ns + period;
      uint64_t wanted = target > current ? brc__mult_between(BRC__REANCHOR_TICKS, target - current) : 0;
      mult = wanted < lo ? lo : wanted > hi ? hi : wanted;
    }
  }
  unsigned aux;
  uint64_t switch_tsc = __rdtscp(&aux);
  /* First line: start a little ahead of CLOCK_MONOTONIC, past any value that
   * callers read from it while this one was computing; slewing absorbs it. */
  uint64_t switch_ns = brc__monotonic_ns() + BRC__FIRST_LEAD_NS;
  if (generation) {
    switch_ns = brc__tsc_scale(switch_tsc, at, an, m) + (mult < m);
    if (ns > switch_ns + BRC__RESYNC_NS)
      switch_ns = ns; /* far behind: jump forward (never backwards) */
  }
  brc__tsc_params_t *idle = &brc__params[(generation + 1) & 1u];
  atomic_store_explicit(&idle->tsc, switch_tsc, memory_order_relaxed);
  atomic_store_explicit(&idle->ns, switch_ns, memory_order_relaxed);
  atomic_store_explicit(&idle->mult, mult, memory_order_relaxed);
  atomic_store_explicit(&brc__generation, generation + 1, memory_order_release);
  return switch_ns;
}

static uint64_t brc__tsc_slow(void) {
  int mode = atomic_load_explicit(&brc__tsc_mode, memory_order_acquire);
  if (mode == BRC__TSC_UNDECIDED &&
      atomic_compare_exchange_strong_explicit(&brc__tsc_mode, &mode, BRC__TSC_DECIDING,
                                              memory_order_acquire, memory_order_acquire)) {
    int eligible = brc__tsc_eligible();
    uint64_t ns, tsc;
    brc__tsc_pair(&tsc, &ns);
    if (eligible) {
      atomic_store_explicit(&brc__baseline_tsc, tsc, memory_order_relaxed);
      atomic_store_explicit(&brc__baseline_ns, ns, memory_order_relaxed);
    }
    atomic_store_explicit(&brc__tsc_mode, eligible ? BRC__TSC_ELIGIBLE : BRC__TSC_OFF,
                          memory_order_release);
    return ns;
  }
  if (mode != BRC__TSC_ELIGIBLE)
    return brc__monotonic_ns();
  uint64_t at, an, m;
  uint64_t generation = brc__tsc_load(&at, &an, &m);
  if (generation == 0) {
    /* Calibrating: one clock read until the baseline is long enough. */
    uint64_t ns = brc__monotonic_ns();
    if (ns - atomic_load_explicit(&brc__baseline_ns, memory_order_relaxed) < BRC__CALIBRATE_NS)
      return ns;
  }
  int idle = 0;
  if (!atomic_compare_exchange_strong_explicit(&brc__reanchoring, &idle, 1, memory_order_acquire,
                                               memory_order_relaxed))
    /* another caller is re-anchoring: extrapolate meanwhile */
    return generation ? brc__tsc_scale(__rdtsc(), at, an, m) : brc__monotonic_ns();
  if (atomic_load_explicit(&brc__generation, memory_order_acquire) != generation)
    generation = brc__tsc_load(&at, &an, &m); /* re-anchored while we looked */
  uint64_t now = brc__tsc_reanchor(generation, at, an, m);
  atomic_store_explicit(&brc__reanchoring, 0, memory_order_release);
  return now;
}

uint64_t brc_now_ns(void) {
  uint64_t frozen = atomic_load_explicit(&brc__frozen_now, memory_order_relaxed);
  if (frozen != 0)
    return frozen;
  uint64_t at, an, m;
  uint64_t generation = brc__tsc_load(&at, &an, &m);
  uint64_t tsc = __rdtsc();
  if (__builtin_expect(generation != 0 && tsc - at < BRC__REANCHOR_TICKS &&
                           atomic_load_explicit(&brc__generation, memory_order_relaxed) == generation,
                       1))
    return brc__tsc_scale(tsc, at, an, m);
  return brc__tsc_slow();
}

const char *brc_clock_source(void) {
  return atomic_load_explicit(&brc__generation, memory_order_acquire) != 0 ? "tsc" : "monotonic";
}

#else

uint64_t brc_now_ns(void) {
  uint64_t frozen = atomic_load_explicit(&brc__frozen_now, memory_order_relaxed);
  return frozen != 0 ? frozen : brc__monotonic_ns();
}

const char *brc_clock_source(void) { return "monotonic"; }

#endif

int brc_clock_freeze(uint64_t now) {
  if (now == 0)
    return BRC_EINVAL;
  atomic_store_explicit(&brc__frozen_now, now, memory_order_relaxed);
  return BRC_OK;
}

int brc_clock_advance(uint64_t delta) {
  uint64_t cur = atomic_load_explicit(&brc__frozen_now, memory_order_relaxed);
  do {
    if (cur == 0)
      return BRC_EINVAL;
    if (cur > UINT64_MAX - delta)
      return BRC_ERANGE;
  } while (!atomic_compare_exchange_weak_explicit(&brc__frozen_now, &cur, cur + delta,
                                                  memory_order_relaxed, memory_order_relaxed));
  return BRC_OK;
}

int brc_clock_advance_to(uint64_t target) {
  uint64_t cur = atomic_load_explicit(&brc__frozen_now, memory_order_relaxed);
  do {
    if (cur == 0)
      return BRC_EINVAL;
    if (cur >= target)
      return BRC_OK;
  } while (!atomic_compare_exchange_weak_explicit(&brc__frozen_now, &cur, target,
                                                  memory_order_relaxed, memory_order_relaxed));
  return BRC_OK;
}

int brc_clock_thaw(void) {
  atomic_store_explicit(&brc__frozen_now, 0, memory_order_relaxed);
  return BRC_OK;
}

int brc_clock_is_frozen(void) {
  return atomic_load_explicit(&brc__frozen_now, memory_order_relaxed) != 0;
}
