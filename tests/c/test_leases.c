/* Leased permits in one process: sizes, acquire and release, tags, the
 * reclaiming of a dead holder's words, and threads that never hold more
 * than max at once. Run under ThreadSanitizer in CI. */
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "brace.h"
#include "check.h"

#define MS UINT64_C(1000000)

static brc_leases_t *make(uint64_t max) {
  brc_leases_t *l = aligned_alloc(64, (size_t)((brc_leases_bytes(max) + 63) / 64 * 64));
  if (l == NULL || brc_leases_init(l, max) != BRC_OK)
    abort();
  return l;
}

static void test_bytes_and_init(void) {
  CHECK_EQ_U64(brc_leases_bytes(0), 0);
  CHECK_EQ_U64(brc_leases_bytes(BRC_LEASES_MAX + 1), 0);
  CHECK_EQ_U64(brc_leases_bytes(1), 64 + 8);
  CHECK_EQ_U64(brc_leases_bytes(BRC_LEASES_MAX), 64 + 8 * BRC_LEASES_MAX);
  brc_leases_t *l = make(1);
  CHECK(brc_leases_init(l, 0) == BRC_EINVAL);
  CHECK(brc_leases_init(l, BRC_LEASES_MAX + 1) == BRC_EINVAL);
  free(l);
}

static void test_acquire_release(void) {
  const uint64_t me = brc_lease_tag((uint64_t)getpid());
  brc_leases_t *l = make(3);
  brc_leases_report_t r;
  uint64_t a, b, c, d;
  CHECK(me != 0);
  CHECK_EQ_U64(me >> 32, (uint64_t)getpid());
  CHECK_EQ_U64(brc_lease_tag((uint64_t)getpid()), me); /* the same process, the same tag */
  CHECK(brc_leases_acquire(l, 0, MS, &a) == BRC_EINVAL);
  CHECK(brc_leases_acquire(l, me, MS, &a) == BRC_OK);
  CHECK(brc_leases_acquire(l, me, MS, &b) == BRC_OK);
  CHECK(brc_leases_acquire(l, me, MS, &c) == BRC_OK);
  CHECK(a < 3 && b < 3 && c < 3 && a != b && b != c && a != c);
  CHECK(brc_leases_acquire(l, me, MS, &d) == BRC_REFUSED); /* full: the sweep frees none */
  CHECK(brc_leases_report(l, me, &r) == BRC_OK);
  CHECK_EQ_U64(r.in_use, 3);
  CHECK_EQ_U64(r.mine, 3);
  CHECK_EQ_U64(r.max, 3);
  CHECK(brc_leases_release(l, me + 1, b) == BRC_EINVAL); /* another holder's: not freed */
  CHECK(brc_leases_release(l, me, b) == BRC_OK);
  CHECK(brc_leases_acquire(l, me, MS, &d) == BRC_OK);
  CHECK_EQ_U64(d, b); /* the freed word is where the next acquire looks first */
  /* Any of the process's words, whatever the hint */
  CHECK(brc_leases_release(l, me, 12345) == BRC_OK);
  CHECK(brc_leases_release(l, me, 0) == BRC_OK);
  CHECK(brc_leases_release(l, me, 0) == BRC_OK);
  CHECK(brc_leases_release(l, me, 0) == BRC_EINVAL); /* none left */
  CHECK(brc_leases_report(l, me, &r) == BRC_OK);
  CHECK_EQ_U64(r.in_use, 0);
  free(l);
}

/* A pid that no process has any more: a child that exited and was reaped. */
static uint64_t dead_pid(void) {
  pid_t pid = fork();
  if (pid == 0)
    _exit(0);
  waitpid(pid, NULL, 0);
  return (uint64_t)pid;
}

static void test_reclaim(void) {
  const uint64_t me = brc_lease_tag((uint64_t)getpid());
  const uint64_t dead = brc_lease_tag(dead_pid());
  const uint64_t reused = me ^ 1; /* this pid, another start time: a reused pid's holder */
  brc_leases_t *l = make(2);
  brc_leases_report_t r;
  uint64_t i;
  CHECK(brc_leases_acquire(l, dead, MS, &i) == BRC_OK);
  CHECK(brc_leases_acquire(l, reused, MS, &i) == BRC_OK);
  CHECK(brc_leases_report(l, me, &r) == BRC_OK);
  CHECK_EQ_U64(r.in_use, 2);
  /* Full: the acquire sweeps (never swept yet) and takes a dead holder's word. */
  CHECK(brc_leases_acquire(l, me, 100 * MS, &i) == BRC_OK);
#ifdef __linux__
  /* the reused pid's word was freed by the same sweep */
  CHECK(brc_leases_acquire(l, me, 100 * MS, &i) == BRC_OK);
#else
  CHECK(brc_leases_release(l, reused, 0) == BRC_OK);
  CHECK(brc_leases_acquire(l, me, 100 * MS, &i) == BRC_OK);
#endif
  CHECK(brc_leases_report(l, me, &r) == BRC_OK);
  CHECK_EQ_U64(r.mine, 2);
  /* A live holder is never reclaimed, and sweeps are spaced BRC_LEASES_SWEEP_NS. */
  CHECK(brc_leases_sweep(l, 200 * MS) == 0);
  CHECK(brc_leases_release(l, me, 0) == BRC_OK);
  CHECK(brc_leases_acquire(l, dead, 200 * MS, &i) == BRC_OK);
  CHECK(brc_leases_acquire(l, me, 201 * MS, &i) == BRC_REFUSED); /* swept 1 ms ago */
  CHECK(brc_leases_acquire(l, me, 200 * MS + BRC_LEASES_SWEEP_NS, &i) == BRC_OK);
  CHECK(brc_leases_release(l, me, 0) == BRC_OK);
  CHECK(brc_leases_acquire(l, dead, 300 * MS, &i) == BRC_OK);
  CHECK(brc_leases_sweep(l, 300 * MS) == 1); /* on demand, whenever */
  free(l);
}

#define THREADS 4
#define ROUNDS 20000
static brc_leases_t *shared;
static _Atomic uint64_t inside, most, taken;

static void *hammer(void *arg) {
  const uint64_t me = *(const uint64_t *)arg;
  for (int k = 0; k < ROUNDS; k++) {
    uint64_t i, now;
    if (brc_leases_acquire(shared, me, (uint64_t)k * MS, &i) != BRC_OK)
      continue;
    now = atomic_fetch_add(&inside, 1) + 1;
    for (uint64_t m = atomic_load(&most); now > m && !atomic_compare_exchange_weak(&most, &m, now);)
      ;
    atomic_fetch_add(&taken, 1);
    atomic_fetch_sub(&inside, 1);
    if (brc_leases_release(shared, me, i) != BRC_OK)
      abort();
  }
  return NULL;
}

static void test_threads(void) {
  uint64_t me = brc_lease_tag((uint64_t)getpid());
  pthread_t t[THREADS];
  brc_leases_report_t r;
  shared = make(3);
  for (int i = 0; i < THREADS; i++)
    pthread_create(&t[i], NULL, hammer, &me);
  for (int i = 0; i < THREADS; i++)
    pthread_join(t[i], NULL);
  CHECK(atomic_load(&most) <= 3);
  CHECK(atomic_load(&most) >= 1);
  CHECK(atomic_load(&taken) > 0);
  CHECK(brc_leases_report(shared, me, &r) == BRC_OK);
  CHECK_EQ_U64(r.in_use, 0);
  free(shared);
}

int main(void) {
  test_bytes_and_init();
  test_acquire_release();
  test_reclaim();
  test_threads();
  CHECK_DONE();
}
