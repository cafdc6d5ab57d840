/* The keyed table is pointer-free: placed in a shared mapping, fork()ed
 * processes decide on it together, exactly as threads do; and a process
 * killed at any moment (perhaps while it held an entry's marker) wedges
 * nothing for longer than BRC_KEYED_STALE_NS (by the callers' clock). */
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS */
#include <signal.h>
#include <stdio.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "brace.h"
#include "check.h"

#define PROCESSES 4
#define KEYS 6
#define BURST 37
#define MS UINT64_C(1000000)
#define SEC UINT64_C(1000000000)

typedef struct {
  _Atomic uint64_t admitted[KEYS];
  _Atomic uint64_t attempts;
} shared_counts_t;

static void *shared(size_t bytes) {
  void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  CHECK(p != MAP_FAILED); /* zeroed */
  return p;
}

static void hammer(brc_keyed_t *t, shared_counts_t *counts, uint64_t seed, uint64_t rounds) {
  for (uint64_t i = 0; rounds == 0 || i < rounds; i++) {
    seed ^= seed << 13;
    seed ^= seed >> 7;
    seed ^= seed << 17;
    uint64_t k = seed % KEYS;
    if (brc_keyed_acquire(t, brc_hash64_u64(k), 1, 10 * SEC, NULL) == BRC_OK)
      atomic_fetch_add(&counts->admitted[k], 1);
    atomic_fetch_add(&counts->attempts, 1);
  }
}

/* Frozen time: each key admits exactly its burst, across processes. */
static void test_processes_share_each_keys_burst(void) {
  size_t bytes = (size_t)brc_keyed_bytes(64);
  brc_keyed_t *t = shared(bytes);
  shared_counts_t *counts = shared(sizeof *counts);
  CHECK(brc_keyed_init(t, 64, MS, BURST) == BRC_OK);
  pid_t children[PROCESSES];
  for (int p = 0; p < PROCESSES; p++) {
    children[p] = fork();
    if (children[p] == 0) {
      hammer(t, counts, (uint64_t)p * 7919 + 1, 5000);
      _exit(0);
    }
  }
  for (int p = 0; p < PROCESSES; p++) {
    int status = 0;
    CHECK(waitpid(children[p], &status, 0) == children[p] && WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  for (int k = 0; k < KEYS; k++)
    CHECK_EQ_U64(atomic_load(&counts->admitted[k]), BURST);
  munmap(t, bytes);
  munmap(counts, sizeof *counts);
}

/* A child that takes an entry for a new key at (almost) every attempt: 4096
 * keys, 64 entries, a bucket full again one attempt later. Its clock moves
 * 1 us per attempt. */
static void evict_forever(brc_keyed_t *t, shared_counts_t *counts) {
  uint64_t seed = 88172645463325252u;
  for (uint64_t i = 0;; i++) {
    seed ^= seed << 13;
    seed ^= seed >> 7;
    seed ^= seed << 17;
    brc_keyed_acquire(t, brc_hash64_u64(seed % 4096), 1, 10 * SEC + i * 1000, NULL);
    atomic_store(&counts->attempts, i + 1);
  }
}

/* A process killed while it holds an entry's marker (it is taking the entry
 * for another key): once BRC_KEYED_STALE_NS have passed, the key in that
 * entry decides again, and the marker is gone. Rounds go on until a kill
 * has landed on a marker (each does about half the time). */
static void test_a_killed_process_wedges_nothing(void) {
  size_t bytes = (size_t)brc_keyed_bytes(64);
  int caught = 0;
  for (int round = 0; round < 200 && !caught; round++) {
    brc_keyed_t *t = shared(bytes);
    shared_counts_t *counts = shared(sizeof *counts);
    CHECK(brc_keyed_init(t, 64, 1000, 1) == BRC_OK);
    pid_t child = fork();
    if (child == 0) {
      evict_forever(t, counts);
      _exit(0);
    }
    while (atomic_load(&counts->attempts) < 1000 + (uint64_t)round * 37)
      sched_yield();
    kill(child, SIGKILL);
    int status = 0;
    CHECK(waitpid(child, &status, 0) == child && WIFSIGNALED(status));
    uint64_t later = 10 * SEC + (atomic_load(&counts->attempts) + 1) * 1000 + BRC_KEYED_STALE_NS;
    for (uint64_t i = 0; i < 64; i++) {
      uint64_t tat = atomic_load(&t->entries[i].tat), key = atomic_load(&t->entries[i].key);
      if (!(tat >> 63) || key == 0)
        continue;
      caught = 1;
      brc_gcra_report_t r;
      CHECK(brc_keyed_acquire(t, key, 1, later, &r) == BRC_OK); /* taken over: a full bucket */
      CHECK_EQ_U64(r.remaining, 0);
      CHECK(!(atomic_load(&t->entries[i].tat) >> 63));
      CHECK_EQ_U64(atomic_load(&t->entries[i].key), key);
    }
    munmap(t, bytes);
    munmap(counts, sizeof *counts);
  }
  CHECK(caught);
}

/* The table in a named region's slot (brc_region_keyed): a process that
 * opens the region by its name (not inherited) decides on the same table. */
static void test_a_keyed_slot_in_a_region(void) {
  char name[64];
  snprintf(name, sizeof name, "brace-test-%ld-keyed", (long)getpid());
  brc_region_unlink(name);
  brc_region_t *r = NULL;
  brc_keyed_t *t = NULL, *again = NULL;
  CHECK(brc_region_open(name, BRC_REGION_CAPACITY_MIN, &r) == BRC_OK);
  CHECK(brc_region_keyed(r, "per-user", 1024, MS, BURST, &t) == BRC_OK);
  CHECK(brc_region_keyed(r, "per-user", 1024, MS, BURST, &again) == BRC_OK && again == t);
  CHECK(brc_region_keyed(r, "per-user", 2048, MS, BURST, &again) == BRC_EEXIST);
  CHECK(brc_region_keyed(r, "other", 96, MS, BURST, &again) == BRC_EINVAL);
  CHECK(brc_region_keyed(r, "other", 1024, MS, 0, &again) == BRC_EINVAL);
  CHECK(brc_region_keyed(r, "huge", UINT64_C(1) << 20, MS, BURST, &again) == BRC_ENOSPC); /* 16 MiB > 1 MiB */
  pid_t child = fork();
  if (child == 0) {
    brc_region_t *mine = NULL;
    brc_keyed_t *table = NULL;
    int ok = brc_region_open(name, BRC_REGION_CAPACITY_MIN, &mine) == BRC_OK &&
             brc_region_keyed(mine, "per-user", 1024, MS, BURST, &table) == BRC_OK &&
             brc_keyed_acquire(table, brc_hash64("alice", 5), BURST, 10 * SEC, NULL) == BRC_OK;
    _exit(ok ? 0 : 1);
  }
  int status = 0;
  CHECK(waitpid(child, &status, 0) == child && WIFEXITED(status) && WEXITSTATUS(status) == 0);
  CHECK(brc_keyed_acquire(t, brc_hash64("alice", 5), 1, 10 * SEC, NULL) == BRC_REFUSED);
  CHECK(brc_keyed_acquire(t, brc_hash64("bob", 3), 1, 10 * SEC, NULL) == BRC_OK);
  brc_region_close(r);
  CHECK(brc_region_unlink(name) == BRC_OK);
}

int main(void) {
  test_a_keyed_slot_in_a_region();
  test_processes_share_each_keys_burst();
  test_a_killed_process_wedges_nothing();
  CHECK_DONE();
}
