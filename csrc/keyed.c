#include "brace.h"
#include "gcra_math.h"

/* An entry's tat is a real TAT (< 2^63), or a marker: BRC__MARK | time, with
 * BRC__CANCEL when another caller asked its holder to give the entry up.
 *
 * Why a decision on an entry needs no lock: a key is written only by the
 * holder of a marker on the entry's tat, and every value a tat takes outside
 * markers is larger than all it took before (GCRA only adds; a marker's time
 * is at least the tat it replaced, and its release is above that time). So a
 * caller that loads tat, then the key, then swaps tat by CAS from the value it
 * loaded, decided on that key: had the key changed between, tat would have
 * gone through a marker and never come back to the same value. */
#define BRC__MARK (UINT64_C(1) << 63)
#define BRC__CANCEL (UINT64_C(1) << 62)
#define BRC__TIME (BRC__CANCEL - 1)
#define BRC__EMPTY UINT64_C(0)
#define BRC__VACATED UINT64_MAX
#define BRC__NOW_MAX (UINT64_C(1) << 62)
/* Spins on an entry another caller holds before answering BRC_FULL. */
#define BRC__SPINS 4096

enum { BRC__RETRY = -1000 }; /* internal: scan the window again */

static inline uint64_t brc__key(uint64_t hash) {
  return hash == BRC__EMPTY ? 1 : hash == BRC__VACATED ? BRC__VACATED - 1 : hash;
}

/* A marker taken less than BRC_KEYED_STALE_NS before `now` (or after it,
 * by another caller's clock): its holder is at work. */
static inline int brc__fresh(uint64_t mark, uint64_t now) {
  uint64_t at = mark & BRC__TIME;
  return now < at || now - at < BRC_KEYED_STALE_NS;
}

static inline brc__gcra_config_t brc__config(const brc_keyed_t *t) {
  brc__gcra_config_t c = {t->interval, t->burst, 0};
  return c;
}

static inline void brc__count(_Atomic uint64_t *counter) {
  atomic_fetch_add_explicit(counter, 1, memory_order_relaxed);
}

uint64_t brc_keyed_bytes(uint64_t capacity) {
  if (capacity < BRC_KEYED_CAPACITY_MIN || capacity > BRC_KEYED_CAPACITY_MAX ||
      (capacity & (capacity - 1)) != 0)
    return 0;
  return sizeof(brc_keyed_t) + capacity * sizeof(brc_keyed_entry_t);
}

int brc_keyed_init(brc_keyed_t *t, uint64_t capacity, uint64_t interval, uint64_t burst) {
  if (brc_keyed_bytes(capacity) == 0)
    return BRC_EINVAL;
  int rc = brc__gcra_valid(interval, burst);
  if (rc != BRC_OK)
    return rc;
  /* The block is zeroed: every entry is empty, every counter 0. */
  t->interval = interval;
  t->burst = burst;
  t->reserved = 0;
  t->capacity = capacity;
  return BRC_OK;
}

/* What one pass over a key's window saw. */
typedef struct {
  uint64_t found;    /* the key's entry, or capacity */
  uint64_t free;     /* the entry to take, or capacity: empty, vacated or full */
  uint64_t free_tat; /* its tat as seen (real and full, or a stale marker) */
  uint64_t free_key; /* its key as seen */
  uint64_t soonest;  /* the smallest tat > now (UINT64_MAX: none) */
} brc__scan_t;

static void brc__scan(brc_keyed_t *t, uint64_t key, uint64_t now, brc__scan_t *s) {
  uint64_t mask = t->capacity - 1, home = key & mask, best = UINT64_MAX;
  s->found = s->free = t->capacity;
  s->free_tat = s->free_key = 0;
  s->soonest = UINT64_MAX;
  for (uint64_t i = 0; i < BRC_KEYED_PROBE; i++) {
    uint64_t at = (home + i) & mask;
    brc_keyed_entry_t *e = &t->entries[at];
    uint64_t k = atomic_load_explicit(&e->key, memory_order_acquire);
    if (k == key) {
      s->found = at;
      return;
    }
    uint64_t tat = atomic_load_explicit(&e->tat, memory_order_acquire), age;
    if (tat & BRC__MARK) {
      if (brc__fresh(tat, now))
        continue; /* being taken: by the time it is released it holds a key */
      age = tat & BRC__TIME;
    } else if (k == BRC__EMPTY || k == BRC__VACATED) {
      age = 0;
    } else if (tat > now) {
      if (tat < s->soonest)
        s->soonest = tat;
      continue;
    } else {
      age = tat;
    }
    if (s->free == t->capacity || age < best) {
      best = age;
      s->free = at;
      s->free_tat = tat;
      s->free_key = k;
    }
  }
}

/* Gives up an entry this caller holds a marker on (`mark`, maybe cancelled
 * since): the key becomes VACATED and tat a value above the marker's time. */
static void brc__vacate(brc_keyed_entry_t *e, uint64_t key, uint64_t mark) {
  uint64_t k = key;
  atomic_compare_exchange_strong(&e->key, &k, BRC__VACATED);
  uint64_t held = mark, after = (mark & BRC__TIME) + 1;
  if (!atomic_compare_exchange_strong_explicit(&e->tat, &held, after, memory_order_release,
                                               memory_order_relaxed) &&
      held == (mark | BRC__CANCEL))
    atomic_compare_exchange_strong_explicit(&e->tat, &held, after, memory_order_release,
                                            memory_order_relaxed);
}

/* After installing `key` in entry `mine` (window position), looks for another
 * copy of it installed at the same time: of two copies, the later in the
 * window gives way (the earlier cancels it while it is still being
 * installed), and a copy already released wins. Sequentially consistent
 * key writes and loads make sure that of two concurrent installers at least
 * one sees the other. Returns 1 when this caller must give way. */
static int brc__must_yield(brc_keyed_t *t, uint64_t key, uint64_t mine) {
  uint64_t mask = t->capacity - 1, home = key & mask;
  for (uint64_t i = 0; i < BRC_KEYED_PROBE; i++) {
    if (i == mine)
      continue;
    brc_keyed_entry_t *o = &t->entries[(home + i) & mask];
    if (atomic_load(&o->key) != key)
      continue;
    uint64_t other = atomic_load_explicit(&o->tat, memory_order_acquire);
    if ((other & BRC__MARK) && (other & BRC__CANCEL))
      continue; /* going away */
    if (i < mine || !(other & BRC__MARK))
      return 1;
    if (!atomic_compare_exchange_strong_explicit(&o->tat, &other, other | BRC__CANCEL,
                                                 memory_order_acq_rel, memory_order_relaxed))
      return 1; /* it moved on: rather give way than keep two */
  }
  return 0;
}

/* Takes entry `at` (seen as free) for `key`, with the key's first decision:
 * n tokens from a full bucket, always admitted. BRC_OK or BRC__RETRY. */
static int brc__take(brc_keyed_t *t, const brc__gcra_config_t *c, uint64_t key, uint64_t at,
                     const brc__scan_t *s, uint64_t n, uint64_t now, brc_gcra_report_t *report) {
  brc_keyed_entry_t *e = &t->entries[at];
  uint64_t seen = s->free_tat;
  /* Above every tat the entry held: a release from it never repeats one. */
  uint64_t base = (seen & BRC__MARK) ? (seen & BRC__TIME) + 1 : seen;
  uint64_t mark = BRC__MARK | (base > now ? base : now);
  if (!atomic_compare_exchange_strong_explicit(&e->tat, &seen, mark, memory_order_acq_rel,
                                               memory_order_relaxed))
    return BRC__RETRY;
  uint64_t old = s->free_key;
  while (!atomic_compare_exchange_strong(&e->key, &old, key)) {
  }
  uint64_t mask = t->capacity - 1;
  if (brc__must_yield(t, key, (at - (key & mask)) & mask)) {
    brc__vacate(e, key, mark);
    return BRC__RETRY;
  }
  /* The key's first decision, on a full bucket: n tokens from `now`. Only a
   * vacated entry's tat (its vacater's clock + 1 ns) can be at or above that:
   * the release then goes 1 ns past it, so as never to repeat a value. */
  uint64_t next = brc__gcra_after(c, 0, n, now);
  if (next <= (mark & BRC__TIME))
    next = (mark & BRC__TIME) + 1;
  uint64_t held = mark;
  if (!atomic_compare_exchange_strong_explicit(&e->tat, &held, next, memory_order_acq_rel,
                                               memory_order_relaxed)) {
    if (held == (mark | BRC__CANCEL))
      brc__vacate(e, key, mark);
    return BRC__RETRY; /* cancelled, or taken over after a stall */
  }
  if (old != key && old != BRC__EMPTY && old != BRC__VACATED)
    brc__count(&t->evictions);
  if (report)
    brc__gcra_fill_report(c, next, now, report);
  return BRC_OK;
}

/* GCRA on the key's entry `at`: BRC_OK, BRC_REFUSED, BRC__RETRY (the key
 * left it, or a marker holds it: *mark gets the marker). */
static int brc__decide(brc_keyed_t *t, const brc__gcra_config_t *c, uint64_t key, uint64_t at,
                       uint64_t n, uint64_t now, brc_gcra_report_t *report, uint64_t *mark) {
  brc_keyed_entry_t *e = &t->entries[at];
  uint64_t tat = atomic_load_explicit(&e->tat, memory_order_acquire);
  for (;;) {
    if (tat & BRC__MARK) {
      *mark = tat;
      return BRC__RETRY;
    }
    if (atomic_load_explicit(&e->key, memory_order_acquire) != key)
      return BRC__RETRY;
    if (brc__gcra_wait(c, tat, n, now) > 0) {
      if (report)
        brc__gcra_fill_report(c, tat, now, report);
      return BRC_REFUSED;
    }
    uint64_t next = brc__gcra_after(c, tat, n, now);
    if (atomic_compare_exchange_weak_explicit(&e->tat, &tat, next, memory_order_acq_rel,
                                              memory_order_acquire)) {
      if (report)
        brc__gcra_fill_report(c, next, now, report);
      return BRC_OK;
    }
  }
}

static void brc__report_full(brc_gcra_report_t *report, uint64_t wait) {
  if (report) {
    report->limit = 0;
    report->remaining = 0;
    report->retry_after = wait;
    report->reset_after = wait;
  }
}

/* acquire, its arguments checked, not counted (the callers count): `report` (may be
 * NULL) gets an admitted or refused key's bucket, `full` (may be NULL) a full window's. */
static int brc__acquire(brc_keyed_t *t, const brc__gcra_config_t *c, uint64_t key, uint64_t n,
                        uint64_t now, brc_gcra_report_t *report, brc_gcra_report_t *full) {
  brc__scan_t s;
  for (int spins = 0;; spins++) {
    uint64_t mark = 0;
    int rc;
    brc__scan(t, key, now, &s);
    if (s.found != t->capacity) {
      rc = brc__decide(t, c, key, s.found, n, now, report, &mark);
      if (rc == BRC__RETRY && mark && !brc__fresh(mark, now)) {
        s.free = s.found; /* its holder stalled: take the entry over */
        s.free_tat = mark;
        s.free_key = key;
        rc = brc__take(t, c, key, s.free, &s, n, now, report);
      }
    } else if (s.free != t->capacity) {
      rc = brc__take(t, c, key, s.free, &s, n, now, report);
    } else {
      brc__report_full(full, s.soonest == UINT64_MAX ? 1 : s.soonest - now);
      return BRC_FULL;
    }
    if (rc == BRC_OK || rc == BRC_REFUSED)
      return rc;
    if (spins >= BRC__SPINS) { /* the key's entry is held by a caller that does not finish */
      brc__report_full(full, 1);
      return BRC_FULL;
    }
    brc__cpu_relax();
  }
}

#if defined(__GNUC__) || defined(__clang__)
#define BRC__LIKELY(x) __builtin_expect(!!(x), 1)
#define BRC__UNLIKELY(x) __builtin_expect(!!(x), 0)
#else
#define BRC__LIKELY(x) (x)
#define BRC__UNLIKELY(x) (x)
#endif

/* Entries of a key's window the fast path looks at (a key at load 1/2 is
 * almost always among them); a key further on, or absent, is brc__acquire's. */
#define BRC__FAST_PROBE 8

/* brc__acquire with a fast path first: a key among the first BRC__FAST_PROBE
 * entries of its window, its bucket not held by a marker. tat, then the key
 * (both from one entry, so one cache line), then one CAS from that tat, which
 * is brc__decide's own argument (had the key changed after the tat was
 * loaded, the tat went through a marker and cannot come back to the value
 * loaded). Anything else (a key not found there, a marker, a lost CAS) goes
 * to brc__acquire, which starts over. */
static inline int brc__acquire_fast(brc_keyed_t *t, const brc__gcra_config_t *c, uint64_t mask,
                                    uint64_t key, uint64_t n, uint64_t now,
                                    brc_gcra_report_t *report, brc_gcra_report_t *full) {
  uint64_t home = key & mask; /* mask: capacity - 1 */
  for (uint64_t i = 0; i < BRC__FAST_PROBE; i++) {
    brc_keyed_entry_t *e = &t->entries[(home + i) & mask];
    uint64_t tat = atomic_load_explicit(&e->tat, memory_order_acquire);
    if (atomic_load_explicit(&e->key, memory_order_acquire) != key)
      continue;
    if (BRC__UNLIKELY(tat & BRC__MARK))
      break;
    if (BRC__UNLIKELY(brc__gcra_wait(c, tat, n, now) > 0)) {
      if (report)
        brc__gcra_fill_report(c, tat, now, report);
      return BRC_REFUSED;
    }
    uint64_t next = brc__gcra_after(c, tat, n, now);
    if (BRC__LIKELY(atomic_compare_exchange_strong_explicit(&e->tat, &tat, next,
                                                            memory_order_acq_rel,
                                                            memory_order_relaxed))) {
      if (report)
        brc__gcra_fill_report(c, next, now, report);
      return BRC_OK;
    }
    break;
  }
  return brc__acquire(t, c, key, n, now, report, full);
}

static int brc__check(const brc_keyed_t *t, uint64_t now) {
  if (t->capacity == 0)
    return BRC_EINVAL;
  return now >= BRC__NOW_MAX ? BRC_ERANGE : BRC_OK;
}

int brc_keyed_acquire(brc_keyed_t *t, uint64_t hash, uint64_t n, uint64_t now,
                      brc_gcra_report_t *report) {
  int rc = brc__check(t, now);
  if (rc != BRC_OK)
    return rc;
  brc__gcra_config_t c = brc__config(t);
  rc = brc__gcra_check_n(&c, n);
  if (rc != BRC_OK)
    return rc;
  rc = brc__acquire_fast(t, &c, t->capacity - 1, brc__key(hash), n, now, report, report);
  brc__count(rc == BRC_OK ? &t->admitted : rc == BRC_REFUSED ? &t->rejected : &t->full);
  return rc;
}

/* Keys ahead whose entries a batch prefetches. */
#define BRC__AHEAD 16 /* a power of two: the ring of hashed keys is indexed by a mask */
/* Tables up to this many bytes are taken to be in the CPU's caches: a batch
 * on them prefetches nothing. */
#define BRC__CACHED_BYTES (UINT64_C(256) << 10)

static inline void brc__prefetch(const void *p) {
#if defined(__GNUC__) || defined(__clang__)
  __builtin_prefetch(p, 1, 1);
#else
  (void)p;
#endif
}

static inline uint64_t brc__mix_u64(uint64_t value);

static int brc__acquire_many(brc_keyed_t *t, const uint64_t *hashes, size_t count, uint64_t now,
                             uint8_t *admitted, brc_gcra_report_t *full, int integers) {
  int rc = brc__check(t, now);
  if (rc != BRC_OK)
    return rc;
  brc__gcra_config_t c = brc__config(t);
  uint64_t mask = t->capacity - 1;
  uint64_t tally[3] = {0, 0, 0}; /* admitted, refused, full: counted once per batch */
  /* the first full window's report is the batch's; no report for the others */
  brc_gcra_report_t *report = full;
  if (t->capacity <= BRC__CACHED_BYTES / sizeof(brc_keyed_entry_t)) {
    for (size_t i = 0; i < count; i++) {
      uint64_t key = brc__key(integers ? brc__mix_u64(hashes[i]) : hashes[i]);
      int one = brc__acquire_fast(t, &c, mask, key, 1, now, NULL, report);
      admitted[i] = (uint8_t)(one == BRC_OK);
      tally[one == BRC_OK ? 0 : one == BRC_REFUSED ? 1 : 2]++;
      if (BRC__UNLIKELY(one == BRC_FULL))
        report = NULL;
    }
  } else {
    uint64_t ahead[BRC__AHEAD]; /* keys hashed BRC__AHEAD before their turn, entries fetched */
    for (size_t i = 0; i < count + BRC__AHEAD; i++) {
      uint64_t *slot = &ahead[i & (BRC__AHEAD - 1)]; /* key i - BRC__AHEAD's, then key i's */
      if (i >= BRC__AHEAD) {
        size_t at = i - BRC__AHEAD;
        int one = brc__acquire_fast(t, &c, mask, *slot, 1, now, NULL, report);
        admitted[at] = (uint8_t)(one == BRC_OK);
        tally[one == BRC_OK ? 0 : one == BRC_REFUSED ? 1 : 2]++;
        if (BRC__UNLIKELY(one == BRC_FULL))
          report = NULL;
      }
      if (i < count) { /* a large table is out of cache: ask for this key's entry now */
        *slot = brc__key(integers ? brc__mix_u64(hashes[i]) : hashes[i]);
        brc__prefetch(&t->entries[*slot & mask]);
      }
    }
  }
  if (tally[0])
    atomic_fetch_add_explicit(&t->admitted, tally[0], memory_order_relaxed);
  if (tally[1])
    atomic_fetch_add_explicit(&t->rejected, tally[1], memory_order_relaxed);
  if (tally[2])
    atomic_fetch_add_explicit(&t->full, tally[2], memory_order_relaxed);
  return tally[2] ? BRC_FULL : BRC_OK;
}

int brc_keyed_acquire_many(brc_keyed_t *t, const uint64_t *hashes, size_t count, uint64_t now,
                           uint8_t *admitted, brc_gcra_report_t *full) {
  return brc__acquire_many(t, hashes, count, now, admitted, full, 0);
}

int brc_keyed_acquire_many_u64(brc_keyed_t *t, const uint64_t *values, size_t count,
                               uint64_t now, uint8_t *admitted, brc_gcra_report_t *full) {
  return brc__acquire_many(t, values, count, now, admitted, full, 1);
}

int brc_keyed_state(brc_keyed_t *t, uint64_t hash, uint64_t now, brc_gcra_report_t *report) {
  int rc = brc__check(t, now);
  if (rc != BRC_OK)
    return rc;
  brc__gcra_config_t c = brc__config(t);
  brc__scan_t s;
  uint64_t key = brc__key(hash), tat = 0;
  brc__scan(t, key, now, &s);
  if (s.found != t->capacity) {
    tat = atomic_load_explicit(&t->entries[s.found].tat, memory_order_acquire);
    if (tat & BRC__MARK) /* being evicted (full) or installed (full until released) */
      tat = 0;
  }
  brc__gcra_fill_report(&c, tat, now, report);
  return BRC_OK;
}

int brc_keyed_counters(brc_keyed_t *t, brc_keyed_counters_t *out) {
  if (t->capacity == 0)
    return BRC_EINVAL;
  out->admitted = atomic_load_explicit(&t->admitted, memory_order_relaxed);
  out->rejected = atomic_load_explicit(&t->rejected, memory_order_relaxed);
  out->full = atomic_load_explicit(&t->full, memory_order_relaxed);
  out->evictions = atomic_load_explicit(&t->evictions, memory_order_relaxed);
  return BRC_OK;
}

/* ---- stable hashes ---- */

#define BRC__P1 UINT64_C(0x9E3779B185EBCA87)
#define BRC__P2 UINT64_C(0xC2B2AE3D27D4EB4F)
#define BRC__P4 UINT64_C(0x85EBCA77C2B2AE63)
#define BRC__P5 UINT64_C(0x27D4EB2F165667C5)

static inline uint64_t brc__rotl(uint64_t x, unsigned r) {
  return (x << r) | (x >> (64 - r));
}

/* murmur3's 64-bit finalizer. */
static inline uint64_t brc__fmix64(uint64_t x) {
  x ^= x >> 33;
  x *= UINT64_C(0xFF51AFD7ED558CCD);
  x ^= x >> 33;
  x *= UINT64_C(0xC4CEB9FE1A85EC53);
  return x ^ (x >> 33);
}

uint64_t brc_hash64(const void *bytes, size_t len) {
  const unsigned char *p = bytes;
  uint64_t h = BRC__P5 + (uint64_t)len;
  size_t i = 0;
  for (; i + 8 <= len; i += 8) {
    uint64_t w = 0;
    for (unsigned j = 0; j < 8; j++) /* little-endian on every platform */
      w |= (uint64_t)p[i + j] << (8 * j);
    h = brc__rotl(h ^ (brc__rotl(w * BRC__P2, 31) * BRC__P1), 27) * BRC__P1 + BRC__P4;
  }
  if (i < len) {
    uint64_t w = 0;
    for (unsigned j = 0; i + j < len; j++)
      w |= (uint64_t)p[i + j] << (8 * j);
    h = brc__rotl(h ^ (brc__rotl(w * BRC__P2, 31) * BRC__P1), 27) * BRC__P1 + BRC__P4;
  }
  return brc__fmix64(h);
}

/* splitmix64's finalizer. */
static inline uint64_t brc__mix_u64(uint64_t value) {
  uint64_t z = value + UINT64_C(0x9E3779B97F4A7C15);
  z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
  z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
  return z ^ (z >> 31);
}

uint64_t brc_hash64_u64(uint64_t value) {
  return brc__mix_u64(value);
}
