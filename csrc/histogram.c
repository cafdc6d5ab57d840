#include <stddef.h>

#include "brace.h"

/* Layout and recency are described in brace.h. The words of window e live in
 * set e & 1 and carry the tag of lap e >> 1; the scheme is the retry
 * budget's (budget.c) with two sets of buckets instead of ten. */
#define BRC__H_COUNT_BITS 40
#define BRC__H_COUNT_MASK ((UINT64_C(1) << BRC__H_COUNT_BITS) - 1)
#define BRC__H_TAG_MASK (~BRC__H_COUNT_MASK)
#define BRC__H_LAP (UINT64_C(1) << BRC__H_COUNT_BITS)
#define BRC__H_OCTAVE_MIN 10 /* 2^10 ns: the first octave with its own buckets */
#define BRC__H_OCTAVE_END 38 /* 2^38 ns and over: the last bucket */
#define BRC__H_SUB 8         /* buckets per octave */
#define BRC__H_SUB_BITS 3

static uint64_t brc__h_tag(uint64_t window) {
  return (window >> 1) << BRC__H_COUNT_BITS; /* the lap, mod 2^24 by the shift */
}

static unsigned brc__h_log2(uint64_t v) { /* v > 0 */
#if defined(__GNUC__) || defined(__clang__)
  return 63u - (unsigned)__builtin_clzll(v);
#else
  unsigned o = 0;
  while (v >>= 1)
    o++;
  return o;
#endif
}

static size_t brc__h_bucket(uint64_t duration) {
  if (duration < (UINT64_C(1) << BRC__H_OCTAVE_MIN))
    return 0;
  unsigned o = brc__h_log2(duration);
  if (o >= BRC__H_OCTAVE_END)
    return BRC_HISTOGRAM_BUCKETS - 1;
  uint64_t sub = (duration >> (o - BRC__H_SUB_BITS)) & (BRC__H_SUB - 1);
  return 1 + (size_t)(o - BRC__H_OCTAVE_MIN) * BRC__H_SUB + (size_t)sub;
}

/* The midpoint of bucket i in ns (see brace.h for the ends). */
static uint64_t brc__h_midpoint(size_t i) {
  if (i == 0)
    return UINT64_C(1) << (BRC__H_OCTAVE_MIN - 1);
  if (i == BRC_HISTOGRAM_BUCKETS - 1)
    return UINT64_C(1) << BRC__H_OCTAVE_END;
  unsigned o = BRC__H_OCTAVE_MIN + (unsigned)((i - 1) / BRC__H_SUB);
  uint64_t sub = (uint64_t)((i - 1) % BRC__H_SUB);
  unsigned shift = o - BRC__H_SUB_BITS;
  return ((BRC__H_SUB + sub) << shift) + ((UINT64_C(1) << shift) >> 1);
}

/* Empties a word that carries the lap of a window not entered yet (one from
 * 2^24 laps ago), while the newest window is still `newest`. */
static void brc__h_clear_alias(brc_histogram_t *h, _Atomic uint64_t *word, uint64_t tag,
                               uint64_t newest) {
  uint64_t cur = atomic_load_explicit(word, memory_order_acquire);
  if ((cur & BRC__H_TAG_MASK) != tag || atomic_load(&h->newest) != newest)
    return;
  atomic_compare_exchange_strong(word, &cur, tag - BRC__H_LAP); /* a lap older, count 0 */
}

/* The window a caller at `now` acts in: the newest, moved forward to now's
 * if now is ahead of it (clearing aliases in the sets it enters first). */
static uint64_t brc__h_enter(brc_histogram_t *h, uint64_t now) {
  uint64_t window = now / h->window;
  uint64_t newest = atomic_load(&h->newest);
  while (newest < window) {
    uint64_t first = window - newest > 2 ? window - 1 : newest + 1;
    for (uint64_t w = first; w <= window; w++)
      for (size_t i = 0; i < BRC_HISTOGRAM_BUCKETS; i++)
        brc__h_clear_alias(h, &h->counts[w & 1][i], brc__h_tag(w), newest);
    if (atomic_compare_exchange_weak(&h->newest, &newest, window))
      newest = window;
  }
  return newest;
}

int brc_histogram_init(brc_histogram_t *h, uint64_t window_ns) {
  if (window_ns < BRC_HISTOGRAM_WINDOW_MIN || window_ns > BRC_HISTOGRAM_WINDOW_MAX)
    return BRC_EINVAL;
  h->window = window_ns;
  atomic_init(&h->newest, 0);
  for (size_t s = 0; s < 2; s++)
    for (size_t i = 0; i < BRC_HISTOGRAM_BUCKETS; i++)
      atomic_init(&h->counts[s][i], 0);
  return BRC_OK;
}

int brc_histogram_record(brc_histogram_t *h, uint64_t now, uint64_t duration_ns) {
  if (h->window == 0)
    return BRC_EINVAL;
  size_t bucket = brc__h_bucket(duration_ns);
  for (;;) {
    uint64_t window = brc__h_enter(h, now);
    uint64_t tag = brc__h_tag(window);
    _Atomic uint64_t *word = &h->counts[window & 1][bucket];
    uint64_t cur = atomic_load(word), next;
    if ((cur & BRC__H_TAG_MASK) == tag) {
      if ((cur & BRC__H_COUNT_MASK) == BRC__H_COUNT_MASK)
        return BRC_OK; /* saturated: not counted */
      next = cur + 1;
    } else if (atomic_load(&h->newest) != window) {
      continue; /* the window moved on: the word may be the newer one's */
    } else {
      /* Whoever writes a window's words moved `newest` to it first, so a
       * word of another lap, read while `newest` is still ours, is older. */
      next = tag | 1u;
    }
    if (atomic_compare_exchange_weak(word, &cur, next))
      return BRC_OK;
  }
}

int brc_histogram_percentile(brc_histogram_t *h, uint64_t now, uint32_t q_ppm, uint64_t *value_ns,
                             uint64_t *count) {
  if (h->window == 0 || q_ppm > BRC_HISTOGRAM_PPM)
    return BRC_EINVAL;
  uint64_t window = now / h->window, newest = atomic_load(&h->newest);
  if (newest > window)
    window = newest; /* read-only: windows after the newest have seen no record */
  uint64_t counts[BRC_HISTOGRAM_BUCKETS] = {0}, total = 0;
  for (uint64_t back = 0; back < 2 && back <= window; back++) {
    uint64_t w = window - back, tag = brc__h_tag(w);
    for (size_t i = 0; i < BRC_HISTOGRAM_BUCKETS; i++) {
      uint64_t word = atomic_load(&h->counts[w & 1][i]);
      if ((word & BRC__H_TAG_MASK) == tag)
        counts[i] += word & BRC__H_COUNT_MASK;
    }
  }
  for (size_t i = 0; i < BRC_HISTOGRAM_BUCKETS; i++)
    total += counts[i];
  uint64_t value = 0;
  if (total > 0) {
    /* nearest rank: ceil(q * total), at least 1, in two parts that cannot overflow */
    uint64_t rank = total / BRC_HISTOGRAM_PPM * q_ppm +
                    ((total % BRC_HISTOGRAM_PPM) * q_ppm + BRC_HISTOGRAM_PPM - 1) / BRC_HISTOGRAM_PPM;
    uint64_t seen = 0;
    if (rank == 0)
      rank = 1;
    for (size_t i = 0; i < BRC_HISTOGRAM_BUCKETS; i++) {
      seen += counts[i];
      if (seen >= rank) {
        value = brc__h_midpoint(i);
        break;
      }
    }
  }
  if (value_ns)
    *value_ns = value;
  if (count)
    *count = total;
  return BRC_OK;
}
