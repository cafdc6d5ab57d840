/* Leased permits shared by processes (fork) with threads each: never more
 * than max held at once across them all; and a process killed with SIGKILL
 * while it holds permits loses them to the next acquire that needs them.
 * Run under ThreadSanitizer in CI. */
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS */
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "brace.h"
#include "check.h"

#define PROCS 4
#define THREADS 2
#define ROUNDS 5000
#define MAX 3
#define MS UINT64_C(1000000)

/* What the processes share besides the region: an anonymous shared page. */
typedef struct {
  _Atomic int go;
  _Atomic uint64_t inside; /* holders between acquire and release, now */
  _Atomic uint64_t most;   /* the most ever inside at once */
  _Atomic uint64_t taken;
  _Atomic int holding;     /* the victim holds its permits */
} control_t;

static control_t *ctl;
static char name[64];
static brc_leases_t *shared;
static uint64_t me;

static void *hammer(void *arg) {
  (void)arg;
  for (int k = 0; k < ROUNDS; k++) {
    uint64_t i, now;
    if (brc_leases_acquire(shared, me, brc_now_ns(), &i) != BRC_OK) {
      sched_yield();
      continue;
    }
    now = atomic_fetch_add(&ctl->inside, 1) + 1;
    for (uint64_t m = atomic_load(&ctl->most);
         now > m && !atomic_compare_exchange_weak(&ctl->most, &m, now);)
      ;
    atomic_fetch_add(&ctl->taken, 1);
    atomic_fetch_sub(&ctl->inside, 1);
    if (brc_leases_release(shared, me, i) != BRC_OK)
      _exit(13);
  }
  return NULL;
}

static int child(void) {
  brc_region_t *r = NULL;
  pthread_t t[THREADS];
  me = brc_lease_tag((uint64_t)getpid());
  while (!atomic_load(&ctl->go))
    sched_yield();
  if (brc_region_open(name, 4 * BRC_REGION_CAPACITY_MIN, &r) != BRC_OK)
    return 10;
  if (brc_region_leases(r, "bulkhead", MAX, &shared) != BRC_OK)
    return 11;
  for (int i = 0; i < THREADS; i++)
    pthread_create(&t[i], NULL, hammer, NULL);
  for (int i = 0; i < THREADS; i++)
    pthread_join(t[i], NULL);
  brc_region_close(r);
  return 0;
}

static void test_exact(void) {
  pid_t pids[PROCS];
  brc_region_t *r = NULL;
  brc_leases_report_t rep;
  snprintf(name, sizeof name, "brace-test-%ld-leases", (long)getpid());
  brc_region_unlink(name);
  for (int i = 0; i < PROCS; i++) {
    pids[i] = fork();
    if (pids[i] == 0)
      _exit(child());
  }
  atomic_store(&ctl->go, 1);
  for (int i = 0; i < PROCS; i++) {
    int status = 0;
    waitpid(pids[i], &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  CHECK(atomic_load(&ctl->most) <= MAX);
  CHECK(atomic_load(&ctl->taken) > 0);
  CHECK(brc_region_open(name, 0, &r) == BRC_OK);
  if (r != NULL) {
    CHECK(brc_region_leases(r, "bulkhead", MAX, &shared) == BRC_OK);
    CHECK(brc_region_leases(r, "bulkhead", MAX + 1, &shared) == BRC_EEXIST);
    CHECK(brc_leases_report(shared, 0, &rep) == BRC_OK);
    CHECK_EQ_U64(rep.in_use, 0);
    brc_region_close(r);
  }
  CHECK(brc_region_unlink(name) == BRC_OK);
}

/* The victim takes every permit and waits to be killed. */
static int victim(void) {
  brc_region_t *r = NULL;
  uint64_t i;
  me = brc_lease_tag((uint64_t)getpid());
  if (brc_region_open(name, 0, &r) != BRC_OK || brc_region_leases(r, "bulkhead", MAX, &shared))
    return 10;
  for (int k = 0; k < MAX; k++)
    if (brc_leases_acquire(shared, me, brc_now_ns(), &i) != BRC_OK)
      return 11;
  atomic_store(&ctl->holding, 1);
  for (;;)
    pause();
}

static void test_killed_holder(void) {
  brc_region_t *r = NULL;
  brc_leases_report_t rep;
  uint64_t i, now = 1000 * MS;
  pid_t pid;
  int status = 0;
  me = brc_lease_tag((uint64_t)getpid());
  snprintf(name, sizeof name, "brace-test-%ld-killed", (long)getpid());
  brc_region_unlink(name);
  CHECK(brc_region_open(name, 4 * BRC_REGION_CAPACITY_MIN, &r) == BRC_OK);
  CHECK(brc_region_leases(r, "bulkhead", MAX, &shared) == BRC_OK);
  atomic_store(&ctl->holding, 0);
  pid = fork();
  if (pid == 0)
    _exit(victim());
  while (!atomic_load(&ctl->holding))
    sched_yield();
  CHECK(brc_leases_acquire(shared, me, now, &i) == BRC_REFUSED); /* alive: its permits stay */
  CHECK(brc_leases_report(shared, me, &rep) == BRC_OK);
  CHECK_EQ_U64(rep.in_use, MAX);
  kill(pid, SIGKILL);
  waitpid(pid, &status, 0);
  CHECK(WIFSIGNALED(status));
  now += BRC_LEASES_SWEEP_NS;
  for (int k = 0; k < MAX; k++)
    CHECK(brc_leases_acquire(shared, me, now, &i) == BRC_OK); /* the first sweeps */
  CHECK(brc_leases_acquire(shared, me, now, &i) == BRC_REFUSED);
  CHECK(brc_leases_report(shared, me, &rep) == BRC_OK);
  CHECK_EQ_U64(rep.mine, MAX);
  brc_region_close(r);
  CHECK(brc_region_unlink(name) == BRC_OK);
}

int main(void) {
  ctl = mmap(NULL, sizeof *ctl, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (ctl == MAP_FAILED)
    return 2;
  test_exact();
  test_killed_holder();
  CHECK_DONE();
}
