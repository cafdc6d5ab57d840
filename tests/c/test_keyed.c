/* The keyed limiter, single-threaded: each key decides exactly as its own
 * brc_gcra_t would; only full buckets are evicted, least recently used
 * first; a window of keys that all have debt is full; the batch equals the
 * loop; a stalled marker is taken over; the hashes are stable. */
#include <stdlib.h>
#include <string.h>

#include "brace.h"
#include "check.h"

#define MS UINT64_C(1000000)
#define SEC UINT64_C(1000000000)
#define MARK (UINT64_C(1) << 63) /* brace.h: an entry's tat with the top bit set is a marker */

static brc_keyed_t *new_table(uint64_t capacity, uint64_t interval, uint64_t burst) {
  brc_keyed_t *t = calloc(1, (size_t)brc_keyed_bytes(capacity));
  CHECK(t != NULL);
  CHECK(brc_keyed_init(t, capacity, interval, burst) == BRC_OK);
  return t;
}

/* The i-th hash whose window starts at entry `home` of a table of `capacity`. */
static uint64_t at_home(uint64_t home, uint64_t i, uint64_t capacity) {
  return home + (i + 1) * capacity;
}

static void test_sizes_and_ranges(void) {
  CHECK_EQ_U64(brc_keyed_bytes(BRC_KEYED_CAPACITY_MIN),
               sizeof(brc_keyed_t) + BRC_KEYED_CAPACITY_MIN * sizeof(brc_keyed_entry_t));
  CHECK_EQ_U64(sizeof(brc_keyed_entry_t), 16);
  CHECK_EQ_U64(sizeof(brc_keyed_t), 64);
  CHECK(brc_keyed_bytes(BRC_KEYED_CAPACITY_MAX) > 0);
  uint64_t bad[] = {0, 1, 32, BRC_KEYED_CAPACITY_MIN - 1, BRC_KEYED_CAPACITY_MIN + 1, 96,
                    BRC_KEYED_CAPACITY_MAX * 2, UINT64_MAX};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    CHECK_EQ_U64(brc_keyed_bytes(bad[i]), 0);
  brc_keyed_t *t = calloc(1, (size_t)brc_keyed_bytes(64));
  CHECK(brc_keyed_init(t, 96, MS, 1) == BRC_EINVAL);
  CHECK(brc_keyed_init(t, 64, 0, 1) == BRC_EINVAL);
  CHECK(brc_keyed_init(t, 64, MS, 0) == BRC_EINVAL);
  CHECK(brc_keyed_init(t, 64, UINT64_C(1) << 40, UINT64_C(1) << 23) == BRC_ERANGE);
  /* not configured: every call refuses, nothing is written */
  brc_gcra_report_t r = {.limit = 7};
  brc_keyed_counters_t k = {.admitted = 7};
  uint8_t admitted[1] = {7};
  uint64_t hashes[1] = {1};
  CHECK(brc_keyed_acquire(t, 1, 1, SEC, &r) == BRC_EINVAL);
  CHECK(brc_keyed_state(t, 1, SEC, &r) == BRC_EINVAL);
  CHECK(brc_keyed_acquire_many(t, hashes, 1, SEC, admitted, NULL) == BRC_EINVAL);
  CHECK(brc_keyed_counters(t, &k) == BRC_EINVAL);
  CHECK_EQ_U64(r.limit, 7);
  CHECK_EQ_U64(k.admitted, 7);
  CHECK_EQ_U64(admitted[0], 7);
  CHECK(brc_keyed_init(t, 64, MS, 3) == BRC_OK);
  CHECK(brc_keyed_acquire(t, 1, 0, SEC, NULL) == BRC_EINVAL);
  CHECK(brc_keyed_acquire(t, 1, 4, SEC, NULL) == BRC_E2BIG);
  CHECK(brc_keyed_acquire(t, 1, 1, UINT64_C(1) << 62, NULL) == BRC_ERANGE);
  CHECK(brc_keyed_state(t, 1, UINT64_C(1) << 62, &r) == BRC_ERANGE);
  free(t);
}

/* Random decisions over a few keys, each mirrored by its own brc_gcra_t. */
static void test_each_key_is_a_gcra(void) {
  enum { KEYS = 9 };
  srand(7);
  for (int round = 0; round < 50; round++) {
    uint64_t interval = 1 + (uint64_t)(rand() % 1000) * 1000, burst = 1 + (uint64_t)(rand() % 12);
    brc_keyed_t *t = new_table(1024, interval, burst);
    brc_gcra_t single[KEYS];
    for (int i = 0; i < KEYS; i++)
      brc_gcra_init(&single[i], interval, burst);
    uint64_t now = 10 * SEC;
    for (int step = 0; step < 2000; step++) {
      int key = rand() % KEYS;
      uint64_t hash = brc_hash64_u64((uint64_t)key);
      brc_gcra_report_t got, want;
      switch (rand() % 4) {
      case 0:
        now += (uint64_t)(rand() % 3) * interval / 2 + (uint64_t)(rand() % 2);
        break;
      case 1:
      case 2: {
        uint64_t n = 1 + (uint64_t)rand() % burst;
        int rc = brc_keyed_acquire(t, hash, n, now, &got);
        CHECK(rc == brc_gcra_acquire(&single[key], n, now, 0, NULL));
        brc_gcra_report(&single[key], now, &want);
        CHECK(memcmp(&got, &want, sizeof got) == 0);
        break;
      }
      default:
        CHECK(brc_keyed_state(t, hash, now, &got) == BRC_OK);
        brc_gcra_report(&single[key], now, &want);
        CHECK(memcmp(&got, &want, sizeof got) == 0);
      }
    }
    brc_keyed_counters_t k;
    CHECK(brc_keyed_counters(t, &k) == BRC_OK);
    CHECK_EQ_U64(k.full, 0);
    CHECK_EQ_U64(k.evictions, 0);
    free(t);
  }
}

static void test_absent_keys_report_a_full_bucket(void) {
  brc_keyed_t *t = new_table(64, 10 * MS, 5);
  brc_gcra_report_t r;
  CHECK(brc_keyed_state(t, 12345, SEC, &r) == BRC_OK);
  CHECK_EQ_U64(r.limit, 5);
  CHECK_EQ_U64(r.remaining, 5);
  CHECK_EQ_U64(r.retry_after, 0);
  CHECK_EQ_U64(r.reset_after, 0);
  brc_keyed_counters_t k;
  brc_keyed_counters(t, &k);
  CHECK_EQ_U64(k.admitted + k.rejected + k.full, 0); /* state decides nothing */
  free(t);
}

/* 0 and UINT64_MAX mark empty and vacated entries: those hashes are taken as
 * their neighbours, so they share a bucket with them. */
static void test_reserved_hashes_share_a_bucket(void) {
  brc_keyed_t *t = new_table(64, SEC, 1);
  CHECK(brc_keyed_acquire(t, 0, 1, SEC, NULL) == BRC_OK);
  CHECK(brc_keyed_acquire(t, 1, 1, SEC, NULL) == BRC_REFUSED);
  CHECK(brc_keyed_acquire(t, UINT64_MAX, 1, SEC, NULL) == BRC_OK);
  CHECK(brc_keyed_acquire(t, UINT64_MAX - 1, 1, SEC, NULL) == BRC_REFUSED);
  CHECK(brc_keyed_acquire(t, 2, 1, SEC, NULL) == BRC_OK);
  free(t);
}

/* One window (64 entries, keys all at home 5): 32 keys with debt fill it. */
static void test_a_window_of_debts_is_full(void) {
  const uint64_t cap = 64, home = 5;
  brc_keyed_t *t = new_table(cap, SEC, 2);
  uint64_t now = 100 * SEC;
  brc_gcra_report_t r;
  for (uint64_t i = 0; i < BRC_KEYED_PROBE; i++) /* key i takes a token at now + i ms */
    CHECK(brc_keyed_acquire(t, at_home(home, i, cap), 1, now + i * MS, NULL) == BRC_OK);
  now += BRC_KEYED_PROBE * MS;
  CHECK(brc_keyed_acquire(t, at_home(home, 99, cap), 1, now, &r) == BRC_FULL);
  CHECK_EQ_U64(r.limit, 0);
  CHECK_EQ_U64(r.remaining, 0);
  /* key 0 is full again first: at 100 s + 1 s */
  CHECK_EQ_U64(r.retry_after, 100 * SEC + SEC - now);
  CHECK_EQ_U64(r.reset_after, r.retry_after);
  /* the keys in the window are untouched, and keys of other windows unaffected */
  CHECK(brc_keyed_state(t, at_home(home, 3, cap), now, &r) == BRC_OK);
  CHECK_EQ_U64(r.remaining, 1);
  CHECK(brc_keyed_acquire(t, at_home(home + 40, 0, cap), 1, now, NULL) == BRC_OK);
  /* a key whose window begins one entry later sees the same debts, and the
   * entry past the end (home + 32) is free: it goes there */
  CHECK(brc_keyed_acquire(t, at_home(home + 1, 0, cap), 1, now, NULL) == BRC_OK);
  brc_keyed_counters_t k;
  brc_keyed_counters(t, &k);
  CHECK_EQ_U64(k.full, 1);
  CHECK_EQ_U64(k.evictions, 0);
  CHECK_EQ_U64(k.admitted, BRC_KEYED_PROBE + 2);
  free(t);
}

/* Only keys whose bucket is full again are evicted, the least recently used
 * (smallest tat) first; an evicted key comes back with a full bucket. */
static void test_eviction_takes_the_oldest_full_bucket(void) {
  const uint64_t cap = 64, home = cap - 7; /* the window wraps around the end */
  brc_keyed_t *t = new_table(cap, SEC, 2);
  uint64_t start = 100 * SEC, now;
  brc_gcra_report_t r;
  for (uint64_t i = 0; i < BRC_KEYED_PROBE; i++) /* key i: tat = start + i ms + 1 s */
    CHECK(brc_keyed_acquire(t, at_home(home, i, cap), 1, start + i * MS, NULL) == BRC_OK);
  now = start + SEC + 5 * MS + MS / 2; /* keys 0..5 are full again */
  for (uint64_t j = 0; j < 6; j++) { /* new keys take keys 0, 1, ... 5 in that order */
    CHECK(brc_keyed_acquire(t, at_home(home, 100 + j, cap), 2, now, NULL) == BRC_OK);
    for (uint64_t i = 0; i < BRC_KEYED_PROBE; i++) {
      brc_keyed_state(t, at_home(home, i, cap), now, &r);
      /* evicted keys read full; so do the other full ones; the rest keep their debt */
      CHECK_EQ_U64(r.remaining, i <= 5 ? 2 : 1);
    }
    CHECK(brc_keyed_state(t, at_home(home, 100 + j, cap), now, &r) == BRC_OK);
    CHECK_EQ_U64(r.remaining, 0);
  }
  brc_keyed_counters_t k;
  brc_keyed_counters(t, &k);
  CHECK_EQ_U64(k.evictions, 6);
  /* keys 6.. still have debt: the window is full again */
  CHECK(brc_keyed_acquire(t, at_home(home, 200, cap), 1, now, NULL) == BRC_FULL);
  /* key 0 was evicted: it comes back with a full bucket (after key 6 is full) */
  now = start + SEC + 6 * MS;
  CHECK(brc_keyed_acquire(t, at_home(home, 0, cap), 2, now, &r) == BRC_OK);
  CHECK_EQ_U64(r.remaining, 0);
  /* a key in its window still decides on its own debt */
  CHECK(brc_keyed_acquire(t, at_home(home, 20, cap), 2, now, NULL) == BRC_REFUSED);
  CHECK(brc_keyed_acquire(t, at_home(home, 20, cap), 1, now, NULL) == BRC_OK);
  free(t);
}

static void test_empty_entries_go_before_full_buckets(void) {
  const uint64_t cap = 64;
  brc_keyed_t *t = new_table(cap, MS, 1);
  CHECK(brc_keyed_acquire(t, at_home(0, 0, cap), 1, SEC, NULL) == BRC_OK);
  /* key 0 is full again; a new key still takes an empty entry */
  CHECK(brc_keyed_acquire(t, at_home(0, 1, cap), 1, 2 * SEC, NULL) == BRC_OK);
  brc_keyed_counters_t k;
  brc_keyed_counters(t, &k);
  CHECK_EQ_U64(k.evictions, 0);
  CHECK(brc_keyed_acquire(t, at_home(0, 0, cap), 1, 2 * SEC, NULL) == BRC_OK);
  free(t);
}

/* A batch decides as brc_keyed_acquire would key by key: on a table in the
 * CPU's caches (64 entries: 200 keys, some find the table full) and on one
 * that a batch prefetches (2^15 entries, 512 KiB: 60 keys crowd one window). */
static void check_batch_equals_loop(uint64_t capacity, int crowded) {
  enum { N = 3000 };
  brc_keyed_t *a = new_table(capacity, 10 * MS, 3), *b = new_table(capacity, 10 * MS, 3);
  static uint64_t hashes[N];
  static uint8_t admitted[N];
  srand(11);
  for (int i = 0; i < N; i++)
    hashes[i] = crowded && i % 3 == 0 ? at_home(5, (uint64_t)(rand() % 60), capacity)
                                      : brc_hash64_u64((uint64_t)(rand() % 200));
  uint64_t now = SEC;
  int any_full = 0;
  for (int chunk = 0; chunk < N; chunk += 100, now += 7 * MS) {
    brc_gcra_report_t first = {0}, want = {0};
    int rc = brc_keyed_acquire_many(a, hashes + chunk, 100, now, admitted + chunk, &first);
    int chunk_full = 0;
    for (int i = chunk; i < chunk + 100; i++) {
      brc_gcra_report_t r;
      int one = brc_keyed_acquire(b, hashes[i], 1, now, &r);
      CHECK_EQ_U64(admitted[i], one == BRC_OK);
      if (one == BRC_FULL && !chunk_full)
        want = r;
      chunk_full |= one == BRC_FULL;
    }
    CHECK(rc == (chunk_full ? BRC_FULL : BRC_OK));
    CHECK(memcmp(&first, &want, sizeof first) == 0);
    any_full |= chunk_full;
  }
  CHECK(any_full);
  brc_keyed_counters_t ka, kb;
  brc_keyed_counters(a, &ka);
  brc_keyed_counters(b, &kb);
  CHECK(memcmp(&ka, &kb, sizeof ka) == 0);
  CHECK(ka.evictions > 0);
  CHECK(ka.rejected > 0);
  free(a);
  free(b);
}

static void test_the_batch_equals_the_loop(void) {
  check_batch_equals_loop(64, 0);
  check_batch_equals_loop(UINT64_C(1) << 15, 1);
  static uint8_t admitted[3];
  uint64_t now = SEC;
  /* integer keys: hashed in the loop, as brc_hash64_u64 would */
  brc_keyed_t *c = new_table(64, 10 * MS, 3);
  uint64_t values[3] = {5, UINT64_MAX, 5}, five = brc_hash64_u64(5);
  CHECK(brc_keyed_acquire_many_u64(c, values, 3, now, admitted, NULL) == BRC_OK);
  CHECK(admitted[0] == 1 && admitted[1] == 1 && admitted[2] == 1);
  brc_gcra_report_t r;
  CHECK(brc_keyed_state(c, five, now, &r) == BRC_OK);
  CHECK_EQ_U64(r.remaining, 1);
  free(c);
}

/* A marker left by a caller that stopped (a process killed while taking an
 * entry): callers wait for it, then take it over once it is
 * BRC_KEYED_STALE_NS old by their clock. */
static void test_a_stalled_marker_is_taken_over(void) {
  const uint64_t cap = 64, key = at_home(3, 0, cap), now = 50 * SEC;
  brc_keyed_t *t = new_table(cap, MS, 2);
  CHECK(brc_keyed_acquire(t, key, 1, now, NULL) == BRC_OK);
  uint64_t entry = 3; /* the first entry of the key's window */
  CHECK_EQ_U64(atomic_load(&t->entries[entry].key), key);
  atomic_store(&t->entries[entry].tat, MARK | now);
  brc_gcra_report_t r;
  CHECK(brc_keyed_acquire(t, key, 1, now + MS, &r) == BRC_FULL);
  CHECK(brc_keyed_acquire(t, key, 1, now + BRC_KEYED_STALE_NS - 1, NULL) == BRC_FULL);
  CHECK(brc_keyed_state(t, key, now + MS, &r) == BRC_OK && r.remaining == 2);
  CHECK(brc_keyed_acquire(t, key, 2, now + BRC_KEYED_STALE_NS, &r) == BRC_OK);
  CHECK_EQ_U64(r.remaining, 0);
  CHECK(brc_keyed_acquire(t, key, 1, now + BRC_KEYED_STALE_NS, NULL) == BRC_REFUSED);
  CHECK(atomic_load(&t->entries[entry].tat) < MARK);
  free(t);
  /* a stalled marker on another key's entry is free to take once stale */
  t = new_table(cap, 10 * SEC, 1);
  for (uint64_t i = 0; i < BRC_KEYED_PROBE; i++)
    CHECK(brc_keyed_acquire(t, at_home(3, i, cap), 1, now, NULL) == BRC_OK);
  atomic_store(&t->entries[entry].tat, MARK | now);
  const uint64_t other = at_home(3, 99, cap);
  CHECK(brc_keyed_acquire(t, other, 1, now + MS, &r) == BRC_FULL);
  CHECK_EQ_U64(r.retry_after, 10 * SEC - MS); /* the first debt ends; the marker is not counted */
  CHECK(brc_keyed_acquire(t, other, 1, now + BRC_KEYED_STALE_NS, NULL) == BRC_OK);
  CHECK_EQ_U64(atomic_load(&t->entries[entry].key), other);
  CHECK(brc_keyed_acquire(t, other, 1, now + BRC_KEYED_STALE_NS, NULL) == BRC_REFUSED);
  free(t);
}

/* An entry vacated by a caller that gave way to another copy of its key
 * (key UINT64_MAX, tat its clock + 1 ns): a key that takes it at the same
 * instant still gets its whole burst. */
static void test_a_vacated_entry_is_a_full_bucket(void) {
  const uint64_t cap = 64, home = 9, now = 20 * SEC;
  brc_keyed_t *t = new_table(cap, MS, 3);
  atomic_store(&t->entries[home].key, UINT64_MAX);
  atomic_store(&t->entries[home].tat, now + 1);
  const uint64_t key = at_home(home, 0, cap);
  CHECK(brc_keyed_acquire(t, key, 1, now, NULL) == BRC_OK);
  CHECK_EQ_U64(atomic_load(&t->entries[home].key), key);
  CHECK(brc_keyed_acquire(t, key, 2, now, NULL) == BRC_OK);
  CHECK(brc_keyed_acquire(t, key, 1, now, NULL) == BRC_REFUSED);
  CHECK(atomic_load(&t->entries[home].tat) > now + 1); /* above every value it held */
  free(t);
}

/* Fixed values: the hashes must never change, in any process or build. */
static void test_hashes_are_stable(void) {
  static const struct {
    const char *bytes;
    uint64_t hash;
  } bytes[] = {
      {"", UINT64_C(0x9353dfc8a195f3e2)},
      {"a", UINT64_C(0xe261ec5abaf8fa1f)},
      {"abc", UINT64_C(0xaab5b7d95f5c1184)},
      {"hello world", UINT64_C(0x8c925819d6d546ed)},
      {"user:42", UINT64_C(0x85f36b9cff8aa0a7)},
      {"0123456789abcdef", UINT64_C(0x9fd0400650bc953d)},
      {"\xc3\xa9t\xc3\xa9", UINT64_C(0xb6bbef4dd1510249)},
  };
  for (size_t i = 0; i < sizeof bytes / sizeof bytes[0]; i++)
    CHECK_EQ_U64(brc_hash64(bytes[i].bytes, strlen(bytes[i].bytes)), bytes[i].hash);
  CHECK_EQ_U64(brc_hash64_u64(0), UINT64_C(0xe220a8397b1dcdaf)); /* splitmix64's first output */
  CHECK_EQ_U64(brc_hash64_u64(1), UINT64_C(0x910a2dec89025cc1));
  CHECK_EQ_U64(brc_hash64_u64(42), UINT64_C(0xbdd732262feb6e95));
  CHECK_EQ_U64(brc_hash64_u64(UINT64_MAX), UINT64_C(0xe4d971771b652c20));
  /* every byte counts, wherever it is */
  char buf[40];
  memset(buf, 'x', sizeof buf);
  uint64_t h = brc_hash64(buf, sizeof buf);
  for (size_t i = 0; i < sizeof buf; i++) {
    buf[i] ^= 1;
    CHECK(brc_hash64(buf, sizeof buf) != h);
    buf[i] ^= 1;
  }
  CHECK(brc_hash64(buf, 8) != brc_hash64(buf, 9));
}

int main(void) {
  test_sizes_and_ranges();
  test_each_key_is_a_gcra();
  test_absent_keys_report_a_full_bucket();
  test_reserved_hashes_share_a_bucket();
  test_a_window_of_debts_is_full();
  test_eviction_takes_the_oldest_full_bucket();
  test_empty_entries_go_before_full_buckets();
  test_the_batch_equals_the_loop();
  test_a_stalled_marker_is_taken_over();
  test_a_vacated_entry_is_a_full_bucket();
  test_hashes_are_stable();
  CHECK_DONE();
}
