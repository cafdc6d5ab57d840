#include <stddef.h>

#include "brace.h"

/* COUNT windows keep the last `size` outcomes in a ring of slots (0: empty;
 * else 1 | flags << 1 | duration << 3) and their counts in one word of four
 * 16-bit fields (calls, failures, slow, slow failures), each biased by 2^15.
 * A record swaps its slot and adds (new - old) to the word in one step, so a
 * snapshot is one load. The bias absorbs the transient where a slot's outcome
 * is evicted before the thread that wrote it has added it: a field never
 * borrows from its neighbour, and the sums are exact once records return. */
#define BRC__BIAS UINT64_C(0x8000800080008000)
#define BRC__FIELD(word, i) ((uint64_t)((word) >> (16 * (i))) & 0xFFFFu)
#define BRC__DURATION_MAX ((UINT64_C(1) << 61) - 1)

/* TIME windows keep running totals (calls | failures << 32, slow |
 * slow failures << 32, duration) and, per bucket, the totals as they stood
 * when that bucket began; the window is totals minus the checkpoint of its
 * oldest bucket. 32-bit fields wrap; the u64 difference stays exact while a
 * window holds fewer than 2^32 calls. */
enum { BRC__CK_TAG, BRC__CK_COUNTS, BRC__CK_SLOW, BRC__CK_DURATION, BRC__CK_WORDS };

/* (calls, failures, slow, slow failures) of a slot's flags, packed. */
static const uint64_t brc__count_delta[4] = {
    UINT64_C(1),
    UINT64_C(1) | UINT64_C(1) << 16,
    UINT64_C(1) | UINT64_C(1) << 32,
    UINT64_C(1) | UINT64_C(1) << 16 | UINT64_C(1) << 32 | UINT64_C(1) << 48,
};

uint64_t brc_window_bytes(uint64_t kind, uint64_t size) {
  if (kind == BRC_WINDOW_COUNT && size >= 1 && size <= BRC_WINDOW_COUNT_MAX)
    return sizeof(brc_window_t) + size * sizeof(_Atomic uint64_t);
  if (kind == BRC_WINDOW_TIME && size >= 1 && size <= BRC_WINDOW_TIME_MAX)
    return sizeof(brc_window_t) + size * BRC__CK_WORDS * sizeof(_Atomic uint64_t);
  return 0;
}

int brc_window_init(brc_window_t *w, uint64_t kind, uint64_t size, uint64_t bucket) {
  uint64_t bytes = brc_window_bytes(kind, size);
  if (bytes == 0 || (kind == BRC_WINDOW_TIME && bucket == 0))
    return BRC_EINVAL;
  w->kind = kind;
  w->size = size;
  w->bucket = kind == BRC_WINDOW_TIME ? bucket : 0;
  atomic_init(&w->head, 0);
  atomic_init(&w->counts, kind == BRC_WINDOW_COUNT ? BRC__BIAS : 0);
  atomic_init(&w->slow, 0);
  atomic_init(&w->duration, 0);
  uint64_t words = (bytes - sizeof(brc_window_t)) / sizeof(_Atomic uint64_t);
  for (uint64_t i = 0; i < words; i++)
    atomic_init(&w->ring[i], 0);
  return BRC_OK;
}

/* ---- COUNT ---- */

static void brc__count_swap(brc_window_t *w, _Atomic uint64_t *slot, uint64_t value) {
  uint64_t old = atomic_exchange_explicit(slot, value, memory_order_acq_rel);
  uint64_t added = value ? brc__count_delta[(value >> 1) & 3u] : 0;
  uint64_t removed = old ? brc__count_delta[(old >> 1) & 3u] : 0;
  if (added != removed)
    atomic_fetch_add_explicit(&w->counts, added - removed, memory_order_relaxed);
  uint64_t new_duration = value >> 3, old_duration = old >> 3;
  if (new_duration != old_duration)
    atomic_fetch_add_explicit(&w->duration, new_duration - old_duration, memory_order_relaxed);
}

static void brc__count_record(brc_window_t *w, unsigned outcome, uint64_t duration) {
  uint64_t position = atomic_fetch_add_explicit(&w->head, 1, memory_order_relaxed);
  uint64_t index = position % w->size; /* 64-bit: the ring order never jumps */
  if (duration > BRC__DURATION_MAX)
    duration = BRC__DURATION_MAX;
  brc__count_swap(w, &w->ring[index], 1u | (uint64_t)(outcome & 3u) << 1 | duration << 3);
}

static uint64_t brc__unbias(uint64_t field) { return field > 0x8000u ? field - 0x8000u : 0; }

static void brc__count_snapshot(brc_window_t *w, brc_window_snapshot_t *out) {
  uint64_t counts = atomic_load_explicit(&w->counts, memory_order_relaxed);
  out->calls = brc__unbias(BRC__FIELD(counts, 0));
  out->failures = brc__unbias(BRC__FIELD(counts, 1));
  out->slow_calls = brc__unbias(BRC__FIELD(counts, 2));
  out->slow_failures = brc__unbias(BRC__FIELD(counts, 3));
  uint64_t duration = atomic_load_explicit(&w->duration, memory_order_relaxed);
  out->duration = duration >> 63 ? 0 : duration; /* a transient "negative" sum */
}

/* ---- TIME ---- */

static _Atomic uint64_t *brc__checkpoint(brc_window_t *w, uint64_t epoch) {
  return &w->ring[(epoch % w->size) * BRC__CK_WORDS];
}

/* Marks buckets first..last as begun with the given totals. The tag is
 * cleared first and set last, so a reader never takes half-written values
 * for a bucket's. */
static void brc__fill(brc_window_t *w, uint64_t first, uint64_t last, uint64_t counts,
                      uint64_t slow, uint64_t duration) {
  for (uint64_t epoch = first; epoch <= last; epoch++) {
    _Atomic uint64_t *ck = brc__checkpoint(w, epoch);
    atomic_store_explicit(&ck[BRC__CK_TAG], 0, memory_order_relaxed);
    atomic_store_explicit(&ck[BRC__CK_COUNTS], counts, memory_order_release);
    atomic_store_explicit(&ck[BRC__CK_SLOW], slow, memory_order_release);
    atomic_store_explicit(&ck[BRC__CK_DURATION], duration, memory_order_release);
    atomic_store_explicit(&ck[BRC__CK_TAG], epoch + 1, memory_order_release);
  }
}

static uint64_t brc__oldest(const brc_window_t *w, uint64_t epoch) {
  return epoch + 1 >= w->size ? epoch + 1 - w->size : 0;
}

/* The first record of a bucket checkpoints it. The totals are read before the
 * head moves, and every other record of this bucket adds after it moved, so
 * a checkpoint never includes its own bucket's calls. */
static void brc__rotate(brc_window_t *w, uint64_t epoch, uint64_t head) {
  uint64_t counts = atomic_load_explicit(&w->counts, memory_order_acquire);
  uint64_t slow = atomic_load_explicit(&w->slow, memory_order_acquire);
  uint64_t duration = atomic_load_explicit(&w->duration, memory_order_acquire);
  while (head < epoch + 1) {
    if (atomic_compare_exchange_weak_explicit(&w->head, &head, epoch + 1, memory_order_acq_rel,
                                              memory_order_relaxed)) {
      uint64_t first = brc__oldest(w, epoch);
      if (head > first)
        first = head; /* buckets up to head - 1 are checkpointed already */
      brc__fill(w, first, epoch, counts, slow, duration);
      return;
    }
  }
}

static void brc__time_record(brc_window_t *w, unsigned outcome, uint64_t duration, uint64_t now) {
  uint64_t epoch = now / w->bucket;
  uint64_t head = atomic_load_explicit(&w->head, memory_order_acquire);
  if (head < epoch + 1)
    brc__rotate(w, epoch, head);
  uint64_t failure = outcome & BRC_OUTCOME_FAILURE;
  atomic_fetch_add_explicit(&w->counts, 1u | failure << 32, memory_order_release);
  if (outcome & BRC_OUTCOME_SLOW)
    atomic_fetch_add_explicit(&w->slow, 1u | failure << 32, memory_order_release);
  if (duration)
    atomic_fetch_add_explicit(&w->duration, duration, memory_order_release);
}

static void brc__time_snapshot(brc_window_t *w, uint64_t now, brc_window_snapshot_t *out) {
  uint64_t epoch = now / w->bucket;
  uint64_t head = atomic_load_explicit(&w->head, memory_order_acquire);
  *out = (brc_window_snapshot_t){0};
  if (head == 0)
    return;
  uint64_t newest = head - 1;
  /* A bucket being (re)written has no tag; the next one still bounds the
   * window from inside. */
  for (uint64_t start = brc__oldest(w, epoch); start <= newest; start++) {
    _Atomic uint64_t *ck = brc__checkpoint(w, start);
    if (atomic_load_explicit(&ck[BRC__CK_TAG], memory_order_acquire) != start + 1)
      continue;
    uint64_t counts = atomic_load_explicit(&ck[BRC__CK_COUNTS], memory_order_acquire);
    uint64_t slow = atomic_load_explicit(&ck[BRC__CK_SLOW], memory_order_acquire);
    uint64_t duration = atomic_load_explicit(&ck[BRC__CK_DURATION], memory_order_acquire);
    if (atomic_load_explicit(&ck[BRC__CK_TAG], memory_order_acquire) != start + 1)
      continue;
    uint64_t window = atomic_load_explicit(&w->counts, memory_order_acquire) - counts;
    uint64_t window_slow = atomic_load_explicit(&w->slow, memory_order_acquire) - slow;
    out->calls = window & 0xFFFFFFFFu;
    out->failures = window >> 32;
    out->slow_calls = window_slow & 0xFFFFFFFFu;
    out->slow_failures = window_slow >> 32;
    out->duration = atomic_load_explicit(&w->duration, memory_order_acquire) - duration;
    return;
  }
}

/* ---- both ---- */

/* The kind, read by every call anyway, tells a configured window from a
 * zero-filled one (kind 0): that costs the COUNT path nothing. */

int brc_window_record(brc_window_t *w, unsigned outcome, uint64_t duration, uint64_t now) {
  if (w->kind == BRC_WINDOW_COUNT)
    brc__count_record(w, outcome, duration);
  else if (w->kind == BRC_WINDOW_TIME)
    brc__time_record(w, outcome, duration, now);
  else
    return BRC_EINVAL;
  return BRC_OK;
}

int brc_window_snapshot(brc_window_t *w, uint64_t now, brc_window_snapshot_t *out) {
  if (w->kind == BRC_WINDOW_COUNT)
    brc__count_snapshot(w, out);
  else if (w->kind == BRC_WINDOW_TIME)
    brc__time_snapshot(w, now, out);
  else
    return BRC_EINVAL;
  return BRC_OK;
}

int brc_window_carry(brc_window_t *to, brc_window_t *from) {
  if (to->kind != BRC_WINDOW_COUNT || from->kind != BRC_WINDOW_COUNT)
    return BRC_EINVAL;
  uint64_t head = atomic_load_explicit(&from->head, memory_order_acquire);
  uint64_t kept = from->size < to->size ? from->size : to->size;
  for (uint64_t position = head > kept ? head - kept : 0; position < head; position++) {
    uint64_t slot = atomic_load_explicit(&from->ring[position % from->size], memory_order_relaxed);
    if (slot) /* 0: emptied by a close */
      brc__count_record(to, (unsigned)(slot >> 1) & 3u, slot >> 3);
  }
  return BRC_OK;
}

int brc_window_clear(brc_window_t *w, uint64_t now) {
  if (w->kind == BRC_WINDOW_COUNT) {
    for (uint64_t i = 0; i < w->size; i++)
      brc__count_swap(w, &w->ring[i], 0);
    return BRC_OK;
  }
  if (w->kind != BRC_WINDOW_TIME)
    return BRC_EINVAL;
  uint64_t epoch = now / w->bucket;
  uint64_t counts = atomic_load_explicit(&w->counts, memory_order_acquire);
  uint64_t slow = atomic_load_explicit(&w->slow, memory_order_acquire);
  uint64_t duration = atomic_load_explicit(&w->duration, memory_order_acquire);
  uint64_t head = atomic_load_explicit(&w->head, memory_order_acquire);
  while (head < epoch + 1 &&
         !atomic_compare_exchange_weak_explicit(&w->head, &head, epoch + 1, memory_order_acq_rel,
                                                memory_order_relaxed)) {
  }
  brc__fill(w, brc__oldest(w, epoch), epoch, counts, slow, duration);
  return BRC_OK;
}
