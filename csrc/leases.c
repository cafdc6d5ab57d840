/* Leased permits: a bulkhead shared by processes, whose permits are words
 * tagged with their holder, so that a dead holder's permits can be taken back. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "brace.h"

#define BRC__TAG_PID_SHIFT 32
#define BRC__TAG_START_MASK UINT64_C(0xffffffff)

static inline int brc__leases_valid_max(uint64_t max) { return max >= 1 && max <= BRC_LEASES_MAX; }

uint64_t brc_leases_bytes(uint64_t max) {
  return brc__leases_valid_max(max) ? sizeof(brc_leases_t) + max * sizeof(_Atomic uint64_t) : 0;
}

int brc_leases_init(brc_leases_t *l, uint64_t max) {
  if (!brc__leases_valid_max(max))
    return BRC_EINVAL;
  for (uint64_t i = 0; i < max; i++)
    atomic_store_explicit(&l->words[i], 0, memory_order_relaxed);
  atomic_store_explicit(&l->next, 0, memory_order_relaxed);
  atomic_store_explicit(&l->swept, 0, memory_order_relaxed);
  memset(l->reserved, 0, sizeof l->reserved);
  atomic_store_explicit(&l->max, max, memory_order_release);
  return BRC_OK;
}

/* The start time of process `pid` in clock ticks (field 22 of /proc/PID/stat),
 * or 0 when it cannot be read (no such process, not Linux). */
static uint64_t brc__start_ticks(uint64_t pid) {
  char path[48], buf[1024];
  const char *p;
  ssize_t n;
  uint64_t ticks = 0;
  int fd, field;
  snprintf(path, sizeof path, "/proc/%llu/stat", (unsigned long long)pid);
  if ((fd = open(path, O_RDONLY)) < 0)
    return 0;
  n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0)
    return 0;
  buf[n] = '\0';
  /* Field 2 is "(comm)", which may hold spaces and parentheses: count from
   * its last ')', which is followed by field 3. */
  if ((p = strrchr(buf, ')')) == NULL)
    return 0;
  for (field = 2; *p && field < 22; p++)
    if (*p == ' ')
      field++;
  for (; *p >= '0' && *p <= '9'; p++)
    ticks = ticks * 10 + (uint64_t)(*p - '0');
  return ticks;
}

uint64_t brc_lease_tag(uint64_t pid) {
  return pid << BRC__TAG_PID_SHIFT | (brc__start_ticks(pid) & BRC__TAG_START_MASK);
}

int brc__lease_holder_dead(uint64_t pid, uint64_t start, uint64_t mask);

/* Is process `pid`, started at `start` (clock ticks, the bits in `mask`),
 * dead? Only when it surely is: a pid that no process has, or one whose
 * process started at another time. Also the breakers' probe leases' test. */
int brc__lease_holder_dead(uint64_t pid, uint64_t start, uint64_t mask) {
  uint64_t ticks;
  if (pid == 0 || pid > INT32_MAX)
    return 0; /* not a tag brc_lease_tag makes: leave it */
  if (kill((pid_t)pid, 0) != 0 && errno == ESRCH)
    return 1;
  ticks = brc__start_ticks(pid);
  return ticks != 0 && (ticks & mask) != (start & mask);
}

static int brc__holder_dead(uint64_t tag) {
  return brc__lease_holder_dead(tag >> BRC__TAG_PID_SHIFT, tag, BRC__TAG_START_MASK);
}

static uint64_t brc__leases_max(brc_leases_t *l) {
  return atomic_load_explicit(&l->max, memory_order_acquire);
}

int brc_leases_sweep(brc_leases_t *l, uint64_t now) {
  uint64_t max = brc__leases_max(l);
  int freed = 0;
  if (max == 0)
    return BRC_EINVAL;
  atomic_store_explicit(&l->swept, now, memory_order_relaxed);
  for (uint64_t i = 0; i < max; i++) {
    uint64_t w = atomic_load_explicit(&l->words[i], memory_order_relaxed);
    /* One CAS from the dead tag: a word taken by a live process since it was
     * read is left alone. */
    if (w != 0 && brc__holder_dead(w) &&
        atomic_compare_exchange_strong_explicit(&l->words[i], &w, 0, memory_order_acq_rel,
                                                memory_order_relaxed))
      freed++;
  }
  return freed;
}

/* One pass over the words from `from` for a free one, taken for tag. */
static int brc__leases_take(brc_leases_t *l, uint64_t max, uint64_t from, uint64_t tag,
                            uint64_t *index) {
  for (uint64_t k = 0; k < max; k++) {
    uint64_t i = (from + k) % max, w = atomic_load_explicit(&l->words[i], memory_order_relaxed);
    if (w == 0 && atomic_compare_exchange_strong_explicit(&l->words[i], &w, tag,
                                                          memory_order_acquire,
                                                          memory_order_relaxed)) {
      atomic_store_explicit(&l->next, i + 1 < max ? i + 1 : 0, memory_order_relaxed);
      *index = i;
      return BRC_OK;
    }
  }
  return BRC_REFUSED;
}

int brc_leases_acquire(brc_leases_t *l, uint64_t tag, uint64_t now, uint64_t *index) {
  uint64_t max = brc__leases_max(l), swept;
  if (max == 0 || tag == 0 || index == NULL)
    return BRC_EINVAL;
  if (brc__leases_take(l, max, atomic_load_explicit(&l->next, memory_order_relaxed), tag, index) ==
      BRC_OK)
    return BRC_OK;
  /* Full: sweep for dead holders, unless some process swept a moment ago
   * (one wins the CAS; the others refuse as they would have). */
  swept = atomic_load_explicit(&l->swept, memory_order_relaxed);
  if (now - swept < BRC_LEASES_SWEEP_NS && swept != 0)
    return BRC_REFUSED;
  if (!atomic_compare_exchange_strong_explicit(&l->swept, &swept, now, memory_order_relaxed,
                                               memory_order_relaxed))
    return BRC_REFUSED;
  if (brc_leases_sweep(l, now) <= 0)
    return BRC_REFUSED;
  return brc__leases_take(l, max, 0, tag, index);
}

int brc_leases_release(brc_leases_t *l, uint64_t tag, uint64_t hint) {
  uint64_t max = brc__leases_max(l);
  if (max == 0 || tag == 0)
    return BRC_EINVAL;
  for (uint64_t k = 0; k < max; k++) {
    uint64_t i = (hint + k) % max, w = atomic_load_explicit(&l->words[i], memory_order_relaxed);
    /* Only the holder's tag is ever replaced by 0 here: a process frees its
     * own permits, whichever of its threads took them. */
    if (w == tag && atomic_compare_exchange_strong_explicit(&l->words[i], &w, 0, memory_order_release,
                                                memory_order_relaxed)) {
      if (k == 0)
        atomic_store_explicit(&l->next, i, memory_order_relaxed);
      return BRC_OK;
    }
  }
  return BRC_EINVAL;
}

int brc_leases_report(brc_leases_t *l, uint64_t tag, brc_leases_report_t *out) {
  uint64_t max = brc__leases_max(l);
  if (max == 0 || out == NULL)
    return BRC_EINVAL;
  out->in_use = out->mine = 0;
  out->max = max;
  for (uint64_t i = 0; i < max; i++) {
    uint64_t w = atomic_load_explicit(&l->words[i], memory_order_acquire);
    out->in_use += w != 0;
    out->mine += w != 0 && w == tag;
  }
  return BRC_OK;
}
