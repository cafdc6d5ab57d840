#include "brace.h"
#include "gcra_math.h"

#ifndef __SIZEOF_INT128__
#include <math.h>
#endif

/* Seqlock read of the configuration, then of the TAT it applies to. Returns 0
 * when a reconfigure overlapped, and the caller retries. The TAT is read
 * before the second look at seq: a reconfigure publishes seq (odd) before it
 * rescales the TAT, so a rescaled TAT is never paired with an old interval. */
static inline int brc__gcra_snapshot(brc_gcra_t *g, brc__gcra_config_t *c, uint64_t *tat) {
  c->seq = atomic_load_explicit(&g->seq, memory_order_acquire);
  if (c->seq & 1u) {
    brc__cpu_relax();
    return 0;
  }
  /* Acquire loads (no fences, so ThreadSanitizer can follow them): the seq
   * load below cannot move above them, and one that reads a reconfigure's
   * release store also sees the odd seq stored before it. */
  c->interval = atomic_load_explicit(&g->interval, memory_order_acquire);
  c->burst = atomic_load_explicit(&g->burst, memory_order_acquire);
  *tat = atomic_load_explicit(&g->tat, memory_order_acquire);
  return atomic_load_explicit(&g->seq, memory_order_relaxed) == c->seq;
}

int brc_gcra_init(brc_gcra_t *g, uint64_t interval, uint64_t burst) {
  int rc = brc__gcra_valid(interval, burst);
  if (rc != BRC_OK)
    return rc;
  atomic_store_explicit(&g->tat, 0, memory_order_relaxed);
  atomic_store_explicit(&g->interval, interval, memory_order_relaxed);
  atomic_store_explicit(&g->burst, burst, memory_order_relaxed);
  atomic_store_explicit(&g->seq, 0, memory_order_release);
  return BRC_OK;
}

int brc_gcra_acquire(brc_gcra_t *g, uint64_t n, uint64_t now, uint64_t max_wait,
                     uint64_t *wait) {
  brc__gcra_config_t c;
  uint64_t tat;
  for (;;) {
    if (!brc__gcra_snapshot(g, &c, &tat))
      continue;
    int rc = brc__gcra_check_n(&c, n);
    if (rc != BRC_OK)
      return rc;
    uint64_t need = brc__gcra_wait(&c, tat, n, now);
    if (need > max_wait) {
      if (wait)
        *wait = need;
      return BRC_REFUSED;
    }
    uint64_t start = tat > now ? tat : now;
    if (start > UINT64_MAX - c.interval * n)
      return BRC_ERANGE;
    if (atomic_compare_exchange_weak_explicit(&g->tat, &tat, brc__gcra_after(&c, tat, n, now),
                                              memory_order_acq_rel, memory_order_relaxed)) {
      if (wait)
        *wait = need;
      return BRC_OK;
    }
  }
}

int brc_gcra_peek(brc_gcra_t *g, uint64_t n, uint64_t now, uint64_t *retry_after) {
  brc__gcra_config_t c;
  uint64_t tat;
  while (!brc__gcra_snapshot(g, &c, &tat)) {
  }
  int rc = brc__gcra_check_n(&c, n);
  if (rc != BRC_OK)
    return rc;
  uint64_t need = brc__gcra_wait(&c, tat, n, now);
  if (retry_after)
    *retry_after = need;
  return need == 0 ? BRC_OK : BRC_REFUSED;
}

int brc_gcra_refund(brc_gcra_t *g, uint64_t n, uint64_t now) {
  brc__gcra_config_t c;
  uint64_t tat;
  for (;;) {
    if (!brc__gcra_snapshot(g, &c, &tat))
      continue;
    int rc = brc__gcra_check_n(&c, n);
    if (rc != BRC_OK)
      return rc;
    if (tat <= now)
      return BRC_OK; /* bucket already full: nothing is owed back */
    uint64_t give = c.interval * n;
    uint64_t refunded = tat - now > give ? tat - give : now;
    if (atomic_compare_exchange_weak_explicit(&g->tat, &tat, refunded, memory_order_acq_rel,
                                              memory_order_relaxed))
      return BRC_OK;
  }
}

int brc_gcra_report(brc_gcra_t *g, uint64_t now, brc_gcra_report_t *out) {
  brc__gcra_config_t c;
  uint64_t tat;
  while (!brc__gcra_snapshot(g, &c, &tat)) {
  }
  if (c.interval == 0)
    return BRC_EINVAL;
  brc__gcra_fill_report(&c, tat, now, out);
  return BRC_OK;
}

/* ceil(debt * to / from), saturating: rounding up never forgives a debt, so a
 * stream of reconfigures cannot leak extra tokens. */
static uint64_t brc__scale(uint64_t debt, uint64_t to, uint64_t from) {
#ifdef __SIZEOF_INT128__
  __extension__ typedef unsigned __int128 u128;
  u128 scaled = ((u128)debt * to + from - 1) / from;
  return scaled > UINT64_MAX ? UINT64_MAX : (uint64_t)scaled;
#else
  long double scaled = ceill((long double)debt * (long double)to / (long double)from);
  return scaled >= (long double)UINT64_MAX ? UINT64_MAX : (uint64_t)scaled;
#endif
}

int brc_gcra_reconfigure(brc_gcra_t *g, uint64_t interval, uint64_t burst, uint64_t now) {
  int rc = brc__gcra_valid(interval, burst);
  if (rc != BRC_OK)
    return rc;
  uint64_t seq = atomic_load_explicit(&g->seq, memory_order_relaxed);
  for (;;) {
    if (seq & 1u) {
      brc__cpu_relax();
      seq = atomic_load_explicit(&g->seq, memory_order_relaxed);
      continue;
    }
    if (atomic_compare_exchange_weak_explicit(&g->seq, &seq, seq + 1, memory_order_acquire,
                                              memory_order_relaxed))
      break;
  }
  uint64_t old_interval = atomic_load_explicit(&g->interval, memory_order_relaxed);
  if (old_interval == 0) {
    atomic_store_explicit(&g->seq, seq, memory_order_release);
    return BRC_EINVAL;
  }
  uint64_t tat = atomic_load_explicit(&g->tat, memory_order_relaxed);
  uint64_t rescaled;
  do {
    uint64_t debt = tat > now ? tat - now : 0;
    uint64_t new_debt = brc__scale(debt, interval, old_interval);
    if (new_debt > UINT64_MAX - now) {
      atomic_store_explicit(&g->seq, seq, memory_order_release);
      return BRC_ERANGE;
    }
    rescaled = debt ? now + new_debt : tat;
  } while (!atomic_compare_exchange_weak_explicit(&g->tat, &tat, rescaled, memory_order_release,
                                                  memory_order_relaxed));
  atomic_store_explicit(&g->interval, interval, memory_order_release);
  atomic_store_explicit(&g->burst, burst, memory_order_release);
  atomic_store_explicit(&g->seq, seq + 2, memory_order_release);
  return BRC_OK;
}
