/* One shared region, many processes (fork) with threads each: they race to
 * create the region and claim the same slots, then hammer one shared GCRA
 * with the time passed in. Run under ThreadSanitizer in CI. */
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS */
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "brace.h"
#include "check.h"

#define PROCS 4
#define THREADS 2
#define KEYS 64
#define MS UINT64_C(1000000)

/* What the processes share besides the region: an anonymous shared page. */
typedef struct {
  _Atomic uint64_t now;
  _Atomic int go;
  _Atomic int stop;
  _Atomic uint64_t admitted;
  _Atomic uint64_t attempts;
  _Atomic uint64_t keys; /* the one-token keys' tokens taken */
} control_t;

static control_t *ctl;
static char name[64];
static brc_gcra_t *shared;

static void wait_for_go(void) {
  while (!atomic_load(&ctl->go))
    sched_yield();
}

static void *hammer_frozen(void *arg) {
  uint64_t mine = 0;
  (void)arg;
  for (int i = 0; i < 5000; i++)
    if (brc_gcra_acquire(shared, 1 + (uint64_t)(i % 2), 1000 * MS, 0, NULL) == BRC_OK)
      mine += 1 + (uint64_t)(i % 2);
  atomic_fetch_add(&ctl->admitted, mine);
  return NULL;
}

static void *hammer_moving(void *arg) {
  uint64_t mine = 0;
  (void)arg;
  while (!atomic_load_explicit(&ctl->stop, memory_order_relaxed)) {
    uint64_t now = atomic_load_explicit(&ctl->now, memory_order_relaxed);
    if (brc_gcra_acquire(shared, 1, now, 0, NULL) == BRC_OK)
      mine++;
    atomic_fetch_add_explicit(&ctl->attempts, 1, memory_order_relaxed);
  }
  atomic_fetch_add(&ctl->admitted, mine);
  return NULL;
}

/* A child: open the region and the slot with the others at once, then run. */
static int child(int moving, int index) {
  brc_region_t *r = NULL;
  pthread_t t[THREADS];
  wait_for_go();
  if (brc_region_open(name, 4 * BRC_REGION_CAPACITY_MIN, &r) != BRC_OK)
    return 10;
  if (brc_region_gcra(r, moving ? "moving" : "frozen", MS, 50, &shared) != BRC_OK)
    return 11;
  /* and 64 one-token limiters, claimed in a different order by each process:
   * exactly one process gets each token */
  for (int k = 0; k < KEYS; k++) {
    char slot[16];
    brc_gcra_t *g;
    snprintf(slot, sizeof slot, "key%d", (k * 7 + index * 13) % KEYS);
    if (brc_region_gcra(r, slot, 1000 * MS, 1, &g) != BRC_OK)
      return 12;
    if (!moving && brc_gcra_acquire(g, 1, 1000 * MS, 0, NULL) == BRC_OK)
      atomic_fetch_add(&ctl->keys, 1);
  }
  for (int i = 0; i < THREADS; i++)
    pthread_create(&t[i], NULL, moving ? hammer_moving : hammer_frozen, NULL);
  for (int i = 0; i < THREADS; i++)
    pthread_join(t[i], NULL);
  brc_region_close(r);
  return 0;
}

static void run(int moving) {
  pid_t pids[PROCS];
  const uint64_t start = 1000 * MS;
  snprintf(name, sizeof name, "brace-test-%ld-procs", (long)getpid());
  brc_region_unlink(name);
  atomic_store(&ctl->now, start);
  atomic_store(&ctl->go, 0);
  atomic_store(&ctl->stop, 0);
  atomic_store(&ctl->admitted, 0);
  atomic_store(&ctl->attempts, 0);
  atomic_store(&ctl->keys, 0);
  for (int i = 0; i < PROCS; i++) {
    pids[i] = fork();
    if (pids[i] == 0)
      _exit(child(moving, i));
  }
  atomic_store(&ctl->go, 1); /* all at once: they race to create the region */
  if (moving) {
    while (atomic_load(&ctl->attempts) < 20000)
      sched_yield();
    for (int step = 0; step < 2000; step++) {
      atomic_fetch_add(&ctl->now, 50000); /* 50 us per step: 100 ms in all */
      for (volatile int spin = 0; spin < 2000; spin++) {
      }
    }
    atomic_store(&ctl->stop, 1);
  }
  for (int i = 0; i < PROCS; i++) {
    int status = 0;
    waitpid(pids[i], &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  uint64_t got = atomic_load(&ctl->admitted);
  if (moving) {
    uint64_t bound = 50 + (atomic_load(&ctl->now) - start) / MS;
    if (got > bound)
      fprintf(stderr, "admitted %" PRIu64 " > bound %" PRIu64 "\n", got, bound);
    CHECK(got <= bound);
    CHECK(got >= 50);
  } else {
    CHECK_EQ_U64(got, 50);                          /* one bucket for all: drained exactly */
    CHECK_EQ_U64(atomic_load(&ctl->keys), KEYS);      /* each key's one token, once */
  }
  CHECK(brc_region_unlink(name) == BRC_OK);
}

/* A shared breaker's window: every outcome of every thread of every process
 * is counted once (no update lost), the breaker staying CLOSED. */
#define OUTCOMES 1000
static brc_breaker_t *breaker;
static brc_window_t *window;

/* A window as large as they come, and a minimum no run reaches. */
static brc_breaker_config_t never_opens(void) {
  return (brc_breaker_config_t){
      .failure_rate = 1.0, .slow_rate = 1.0, .minimum_calls = 16384, .consecutive_failures = 0,
      .half_open_calls = 1, .max_half_open = 0, .wait_base = MS, .wait_multiplier = 1.0,
      .wait_max = MS, .wait_jitter = 0.0};
}

static void *record_outcomes(void *arg) {
  (void)arg;
  for (int i = 0; i < OUTCOMES; i++) {
    uint64_t ticket;
    if (brc_breaker_acquire(breaker, 1000 * MS, &ticket, NULL, NULL) == BRC_OK)
      brc_breaker_record(breaker, window, ticket, i % 4 == 0 ? BRC_OUTCOME_FAILURE : 0, 0,
                         1000 * MS, NULL);
  }
  return NULL;
}

static int breaker_child(void) {
  brc_region_t *r = NULL;
  pthread_t t[THREADS];
  brc_breaker_config_t c = never_opens();
  wait_for_go();
  if (brc_region_open(name, 4 * BRC_REGION_CAPACITY_MIN, &r) != BRC_OK ||
      brc_region_breaker(r, "breaker", &c, BRC_WINDOW_COUNT, 16384, 0, &breaker, &window) != BRC_OK)
    return 10;
  for (int i = 0; i < THREADS; i++)
    pthread_create(&t[i], NULL, record_outcomes, NULL);
  for (int i = 0; i < THREADS; i++)
    pthread_join(t[i], NULL);
  brc_region_close(r);
  return 0;
}

static void run_breaker(void) {
  pid_t pids[PROCS];
  brc_region_t *r = NULL;
  brc_window_snapshot_t snap;
  snprintf(name, sizeof name, "brace-test-%ld-breaker", (long)getpid());
  brc_region_unlink(name);
  atomic_store(&ctl->go, 0);
  for (int i = 0; i < PROCS; i++) {
    pids[i] = fork();
    if (pids[i] == 0)
      _exit(breaker_child());
  }
  atomic_store(&ctl->go, 1);
  for (int i = 0; i < PROCS; i++) {
    int status = 0;
    waitpid(pids[i], &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  CHECK(brc_region_open(name, 0, &r) == BRC_OK);
  if (r != NULL) {
    brc_breaker_config_t c = never_opens();
    CHECK(brc_region_breaker(r, "breaker", &c, BRC_WINDOW_COUNT, 16384, 0, &breaker, &window) ==
          BRC_OK);
    CHECK(brc_window_snapshot(window, 1000 * MS, &snap) == BRC_OK);
    CHECK_EQ_U64(snap.calls, PROCS * THREADS * OUTCOMES);
    CHECK_EQ_U64(snap.failures, PROCS * THREADS * OUTCOMES / 4);
    brc_region_close(r);
  }
  CHECK(brc_region_unlink(name) == BRC_OK);
}

int main(void) {
  ctl = mmap(NULL, sizeof *ctl, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  CHECK(ctl != MAP_FAILED);
  run(0);
  run(1);
  run_breaker();
  CHECK_DONE();
}
