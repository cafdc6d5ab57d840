#include "brace.h"

/* A bucket word is lap << 32 | count. A word whose lap is not the one its
 * slot has in the current window belongs to an expired bucket and reads as
 * 0, so expiry needs no running total to subtract from: the first write of a
 * new bucket replaces the expired word.
 *
 * `epoch` is the newest bucket any caller has used. A caller whose `now` is
 * behind it acts in it, so all callers share one window and none ever writes
 * a word older than one already there. Before moving it forward, a caller
 * clears the words of the buckets it is about to enter that carry those
 * buckets' laps: no caller can have written them yet, so they are 2^32 laps
 * old, and would otherwise be taken for live ones. */
#define BRC__COUNT_MASK UINT64_C(0xFFFFFFFF)
#define BRC__TAG_MASK (~BRC__COUNT_MASK)
/* Deposits take the atomic-add path while the count is below this, so
 * concurrent adds can never carry into the lap; above it they saturate. */
#define BRC__DEPOSITS_FAST (UINT64_C(1) << 31)
#define BRC__WITHDRAWALS_MAX (BRC__DEPOSITS_FAST - 1)

/* tests/c/test_budget.c defines this to run another caller's withdrawal
 * between a withdrawal's read of the balance and its CAS. */
#ifndef BRC__BUDGET_BEFORE_CAS
#define BRC__BUDGET_BEFORE_CAS(b)
#endif

typedef struct {
  uint64_t epoch; /* the bucket: now / bucket ns */
  uint64_t slot;  /* its index in the arrays */
} brc__view_t;

static inline brc__view_t brc__view_at(uint64_t epoch) {
  brc__view_t v = {epoch, epoch % BRC_BUDGET_BUCKETS};
  return v;
}

/* The high half of a word written in bucket `epoch`. */
static inline uint64_t brc__tag(uint64_t epoch) {
  return ((epoch / BRC_BUDGET_BUCKETS) & BRC__COUNT_MASK) << 32;
}

/* The balance of v's window in milli-tokens, counting buckets up to `last`
 * only; `own` stands in for the withdrawals of v's own slot (UINT64_MAX: read
 * them too). Withdrawals are read before deposits, so a read that overlaps
 * calls never overstates the balance at the instant the withdrawals were
 * read. No overflow: at most 10 * (2^31 + threads) deposits of at most 10^6
 * milli-tokens. */
static int64_t brc__sum(brc_budget_t *b, const brc__view_t *v, uint64_t last, uint64_t own) {
  uint64_t tags[BRC_BUDGET_BUCKETS], deposits = 0, withdrawals = 0;
  for (uint64_t i = 0; i < BRC_BUDGET_BUCKETS; i++) {
    uint64_t back = (v->slot + BRC_BUDGET_BUCKETS - i) % BRC_BUDGET_BUCKETS;
    uint64_t bucket = v->epoch - back;
    /* a tag no word can carry (its count bits are set) for a bucket outside */
    tags[i] = back > v->epoch || bucket > last ? BRC__COUNT_MASK : brc__tag(bucket);
  }
  for (uint64_t i = 0; i < BRC_BUDGET_BUCKETS; i++) {
    uint64_t word = i == v->slot && own != UINT64_MAX ? tags[i] | own
                                                      : atomic_load(&b->withdrawals[i]);
    withdrawals += (word & BRC__TAG_MASK) == tags[i] ? word & BRC__COUNT_MASK : 0;
  }
  for (uint64_t i = 0; i < BRC_BUDGET_BUCKETS; i++) {
    uint64_t word = atomic_load(&b->deposits[i]);
    deposits += (word & BRC__TAG_MASK) == tags[i] ? word & BRC__COUNT_MASK : 0;
  }
  uint64_t floor = atomic_load_explicit(&b->floor, memory_order_relaxed);
  uint64_t deposit = atomic_load_explicit(&b->deposit, memory_order_relaxed);
  return (int64_t)floor + (int64_t)(deposits * deposit) - (int64_t)(withdrawals * BRC_BUDGET_TOKEN);
}

/* Empties a word that carries the lap of a bucket not entered yet (one from
 * 2^32 laps ago), while the newest bucket is still `newest`. */
static void brc__clear_alias(brc_budget_t *b, _Atomic uint64_t *word, uint64_t tag,
                             uint64_t newest) {
  uint64_t cur = atomic_load_explicit(word, memory_order_acquire);
  if ((cur & BRC__TAG_MASK) != tag ||
      atomic_load_explicit(&b->epoch, memory_order_acquire) != newest)
    return; /* not an alias, or the bucket may have been entered and written since */
  atomic_compare_exchange_strong_explicit(word, &cur, (tag - (UINT64_C(1) << 32)),
                                          memory_order_acq_rel, memory_order_relaxed);
}

/* The window a caller at `now` acts in: the newest bucket, moved forward to
 * now's if now is ahead of it. */
static brc__view_t brc__view(brc_budget_t *b, uint64_t now) {
  uint64_t epoch = now / b->bucket;
  uint64_t newest = atomic_load_explicit(&b->epoch, memory_order_acquire);
  while (newest < epoch) {
    uint64_t first = epoch - newest > BRC_BUDGET_BUCKETS ? epoch - BRC_BUDGET_BUCKETS + 1
                                                        : newest + 1;
    for (uint64_t e = first; e <= epoch; e++) {
      brc__clear_alias(b, &b->deposits[e % BRC_BUDGET_BUCKETS], brc__tag(e), newest);
      brc__clear_alias(b, &b->withdrawals[e % BRC_BUDGET_BUCKETS], brc__tag(e), newest);
    }
    if (atomic_compare_exchange_weak_explicit(&b->epoch, &newest, epoch, memory_order_acq_rel,
                                              memory_order_acquire))
      newest = epoch;
  }
  return brc__view_at(newest);
}

/* Takes back one count added to a word tagged `tag`, if that word is still
 * there (when a newer bucket replaced it, the count went with it). */
static void brc__untake(_Atomic uint64_t *word, uint64_t tag) {
  uint64_t cur = atomic_load_explicit(word, memory_order_acquire);
  while ((cur & BRC__TAG_MASK) == tag &&
         !atomic_compare_exchange_weak_explicit(word, &cur, cur - 1, memory_order_acq_rel,
                                                memory_order_acquire)) {
  }
}

static int brc__budget_settings_valid(uint64_t ratio_milli, uint64_t min_per_second, uint64_t ttl_ns) {
  return ratio_milli != 0 && ratio_milli <= BRC_BUDGET_RATIO_MAX &&
         min_per_second <= BRC_BUDGET_MIN_PER_SECOND_MAX && ttl_ns >= BRC_BUDGET_TTL_MIN &&
         ttl_ns <= BRC_BUDGET_TTL_MAX;
}
/* min_per_second * (ttl_ns / 10^9) tokens * 1000, without a 128-bit product */
static uint64_t brc__budget_floor(uint64_t min_per_second, uint64_t ttl_ns) {
  const uint64_t ns_per_milli = 1000000;
  return min_per_second * (ttl_ns / ns_per_milli) +
         min_per_second * (ttl_ns % ns_per_milli) / ns_per_milli;
}
int brc_budget_init(brc_budget_t *b, uint64_t ratio_milli, uint64_t min_per_second,
                    uint64_t ttl_ns) {
  if (!brc__budget_settings_valid(ratio_milli, min_per_second, ttl_ns))
    return BRC_EINVAL;
  atomic_init(&b->floor, brc__budget_floor(min_per_second, ttl_ns));
  atomic_init(&b->deposit, ratio_milli);
  b->bucket = ttl_ns / BRC_BUDGET_BUCKETS;
  atomic_init(&b->epoch, 0);
  for (int i = 0; i < BRC_BUDGET_BUCKETS; i++) {
    atomic_init(&b->deposits[i], 0);
    atomic_init(&b->withdrawals[i], 0);
  }
  return BRC_OK;
}

int brc_budget_reconfigure(brc_budget_t *b, uint64_t ratio_milli, uint64_t min_per_second,
                           uint64_t ttl_ns) {
  if (b->bucket == 0 || !brc__budget_settings_valid(ratio_milli, min_per_second, ttl_ns) ||
      ttl_ns / BRC_BUDGET_BUCKETS != b->bucket)
    return BRC_EINVAL;
  atomic_store_explicit(&b->deposit, ratio_milli, memory_order_relaxed);
  atomic_store_explicit(&b->floor, brc__budget_floor(min_per_second, ttl_ns), memory_order_relaxed);
  return BRC_OK;
}
int brc_budget_deposit(brc_budget_t *b, uint64_t now) {
  if (b->bucket == 0)
    return BRC_EINVAL;
  for (;;) {
    brc__view_t v = brc__view(b, now);
    uint64_t tag = brc__tag(v.epoch);
    _Atomic uint64_t *word = &b->deposits[v.slot];
    uint64_t cur = atomic_load_explicit(word, memory_order_acquire);
    if ((cur & BRC__TAG_MASK) == tag) {
      if ((cur & BRC__COUNT_MASK) >= BRC__DEPOSITS_FAST)
        return BRC_OK; /* saturated: not counted */
      uint64_t old = atomic_fetch_add_explicit(word, 1, memory_order_relaxed);
      if ((old & BRC__TAG_MASK) == tag)
        return BRC_OK;
      /* A newer bucket took the slot in between: our add went to it. */
      brc__untake(word, old & BRC__TAG_MASK);
      continue;
    }
    /* An expired word: replace it, unless the window moved on meanwhile. */
    if (atomic_load_explicit(&b->epoch, memory_order_acquire) != v.epoch)
      continue;
    if (atomic_compare_exchange_strong_explicit(word, &cur, tag | 1u, memory_order_acq_rel,
                                                memory_order_relaxed))
      return BRC_OK;
  }
}

int brc_budget_try_withdraw(brc_budget_t *b, uint64_t now) {
  if (b->bucket == 0)
    return BRC_EINVAL;
  brc__view_t v;
  _Atomic uint64_t *word;
  for (;;) {
    v = brc__view(b, now);
    word = &b->withdrawals[v.slot];
    uint64_t tag = brc__tag(v.epoch);
    uint64_t cur = atomic_load(word), own;
    if ((cur & BRC__TAG_MASK) == tag)
      own = cur & BRC__COUNT_MASK;
    else if (atomic_load(&b->epoch) != v.epoch)
      continue; /* an expired word, and the window moved on: look again */
    else
      own = 0;
    if (own >= BRC__WITHDRAWALS_MAX || brc__sum(b, &v, v.epoch, own) < BRC_BUDGET_TOKEN)
      return BRC_REFUSED;
    /* Withdrawals of one bucket serialize here: the balance was read with
     * exactly the withdrawals this CAS expects, and deposits only add. */
    BRC__BUDGET_BEFORE_CAS(b);
    if (atomic_compare_exchange_strong(word, &cur, tag | (own + 1)))
      break;
  }
  /* A caller whose CAS hit another bucket's word (at a bucket boundary) may
   * have read the balance before ours and spent the same token. Sequential
   * consistency orders the two CASes, and the later one's read below sees
   * the earlier: it takes itself back if the pair overdrew. */
  brc__view_t newest = brc__view_at(atomic_load(&b->epoch));
  if (brc__sum(b, &newest, newest.epoch, UINT64_MAX) >= 0)
    return BRC_OK;
  brc__untake(word, brc__tag(v.epoch));
  return BRC_REFUSED;
}

int brc_budget_balance(brc_budget_t *b, uint64_t now, int64_t *out) {
  if (b->bucket == 0)
    return BRC_EINVAL;
  uint64_t epoch = now / b->bucket;
  uint64_t newest = atomic_load_explicit(&b->epoch, memory_order_acquire);
  /* read-only: buckets after the newest have seen no call */
  brc__view_t v = brc__view_at(epoch > newest ? epoch : newest);
  *out = brc__sum(b, &v, newest, UINT64_MAX);
  return BRC_OK;
}
