#include "brace.h"

/* The whole state is one word, so every decision is a single CAS that sees
 * the count, the bound and the waiters flag together:
 *   bit 63      waiters queued (set by enqueue, cleared when the queue empties)
 *   bits 32-62  max (1..BRC_BULKHEAD_MAX; 0 means "not configured")
 *   bits 0-31   permits in use (at most the largest max ever set, so < 2^31)
 */
#define BRC__BH_WAITERS (UINT64_C(1) << 63)
#define BRC__BH_MAX_SHIFT 32
#define BRC__BH_IN_USE_MASK UINT64_C(0xffffffff)

static inline uint64_t brc__bh_in_use(uint64_t s) { return s & BRC__BH_IN_USE_MASK; }

static inline uint64_t brc__bh_max(uint64_t s) { return (s & ~BRC__BH_WAITERS) >> BRC__BH_MAX_SHIFT; }

static inline int brc__bh_valid_max(uint64_t max) {
  return max >= 1 && max <= BRC_BULKHEAD_MAX;
}

int brc_bulkhead_init(brc_bulkhead_t *b, uint64_t max) {
  if (!brc__bh_valid_max(max))
    return BRC_EINVAL;
  atomic_store_explicit(&b->state, max << BRC__BH_MAX_SHIFT, memory_order_release);
  return BRC_OK;
}

int brc_bulkhead_try_acquire(brc_bulkhead_t *b) {
  uint64_t s = atomic_load_explicit(&b->state, memory_order_relaxed);
  for (;;) {
    uint64_t max = brc__bh_max(s);
    if ((s & BRC__BH_WAITERS) || brc__bh_in_use(s) >= max)
      return max ? BRC_REFUSED : BRC_EINVAL;
    if (atomic_compare_exchange_weak_explicit(&b->state, &s, s + 1, memory_order_acquire,
                                              memory_order_relaxed))
      return BRC_OK;
  }
}

int brc_bulkhead_release(brc_bulkhead_t *b) {
  uint64_t s = atomic_load_explicit(&b->state, memory_order_relaxed);
  for (;;) {
    uint64_t in_use = brc__bh_in_use(s);
    if (brc__bh_max(s) == 0 || in_use == 0)
      return BRC_EINVAL;
    /* Above max (after a shrink) the permit is retired even with waiters
     * queued: handing it on would keep the excess forever. */
    if ((s & BRC__BH_WAITERS) && in_use <= brc__bh_max(s))
      return BRC_HANDOFF;
    if (atomic_compare_exchange_weak_explicit(&b->state, &s, s - 1, memory_order_release,
                                              memory_order_relaxed))
      return BRC_OK;
  }
}

int brc_bulkhead_enqueue(brc_bulkhead_t *b) {
  uint64_t s = atomic_load_explicit(&b->state, memory_order_relaxed);
  for (;;) {
    uint64_t next;
    if (brc__bh_max(s) == 0)
      return BRC_EINVAL;
    if (s & BRC__BH_WAITERS)
      return BRC_REFUSED;
    /* One CAS decides between taking a permit freed since the caller's
     * try_acquire and raising the flag, so a release that frees a permit
     * either happens before (and is taken here) or sees the flag (and hands
     * off): no waiter can miss it. */
    next = brc__bh_in_use(s) < brc__bh_max(s) ? s + 1 : s | BRC__BH_WAITERS;
    if (atomic_compare_exchange_weak_explicit(&b->state, &s, next, memory_order_acq_rel,
                                              memory_order_relaxed))
      return next & BRC__BH_WAITERS ? BRC_REFUSED : BRC_OK;
  }
}

int brc_bulkhead_handoff(brc_bulkhead_t *b, uint64_t queued) {
  uint64_t s = atomic_load_explicit(&b->state, memory_order_relaxed);
  for (;;) {
    uint64_t in_use = brc__bh_in_use(s), next;
    int rc;
    if (brc__bh_max(s) == 0 || in_use == 0)
      return BRC_EINVAL;
    if (queued > 0 && in_use <= brc__bh_max(s)) {
      if (queued > 1)
        return BRC_HANDOFF; /* the permit changes hands; the word does not */
      next = s & ~BRC__BH_WAITERS;
      rc = BRC_HANDOFF;
    } else {
      next = queued == 0 ? (s - 1) & ~BRC__BH_WAITERS : s - 1;
      rc = BRC_OK;
    }
    if (next == s ||
        atomic_compare_exchange_weak_explicit(&b->state, &s, next, memory_order_acq_rel,
                                              memory_order_relaxed))
      return rc;
  }
}

int brc_bulkhead_grant(brc_bulkhead_t *b, uint64_t queued) {
  uint64_t s = atomic_load_explicit(&b->state, memory_order_relaxed);
  for (;;) {
    uint64_t next;
    if (brc__bh_max(s) == 0 || queued == 0)
      return BRC_EINVAL;
    if (brc__bh_in_use(s) >= brc__bh_max(s))
      return BRC_REFUSED;
    next = queued == 1 ? (s + 1) & ~BRC__BH_WAITERS : s + 1;
    if (atomic_compare_exchange_weak_explicit(&b->state, &s, next, memory_order_acq_rel,
                                              memory_order_relaxed))
      return BRC_OK;
  }
}

int brc_bulkhead_unflag(brc_bulkhead_t *b) {
  uint64_t old = atomic_fetch_and_explicit(&b->state, ~BRC__BH_WAITERS, memory_order_acq_rel);
  return brc__bh_max(old) ? BRC_OK : BRC_EINVAL;
}

int brc_bulkhead_report(brc_bulkhead_t *b, brc_bulkhead_report_t *out) {
  uint64_t s = atomic_load_explicit(&b->state, memory_order_acquire);
  if (brc__bh_max(s) == 0)
    return BRC_EINVAL;
  out->in_use = brc__bh_in_use(s);
  out->max = brc__bh_max(s);
  out->waiters_queued = (s & BRC__BH_WAITERS) ? 1 : 0;
  return BRC_OK;
}

int brc_bulkhead_reconfigure(brc_bulkhead_t *b, uint64_t max) {
  if (!brc__bh_valid_max(max))
    return BRC_EINVAL;
  uint64_t s = atomic_load_explicit(&b->state, memory_order_relaxed);
  for (;;) {
    if (brc__bh_max(s) == 0)
      return BRC_EINVAL;
    uint64_t next = (s & (BRC__BH_WAITERS | BRC__BH_IN_USE_MASK)) | (max << BRC__BH_MAX_SHIFT);
    if (atomic_compare_exchange_weak_explicit(&b->state, &s, next, memory_order_acq_rel,
                                              memory_order_relaxed))
      return BRC_OK;
  }
}
