/* A shared breaker's probe leases across processes (fork): a process killed
 * with SIGKILL while it holds half-open probes loses them to the next caller
 * that finds every probe out, each given back once, and the breaker closes
 * without waiting for max_half_open. Run under ThreadSanitizer in CI. */
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

#define SEC UINT64_C(1000000000)
#define MS UINT64_C(1000000)
#define F BRC_OUTCOME_FAILURE
#define PROBES 4
#define THREADS 4

/* The breaker, its window and the test's own words, in one anonymous shared mapping. */
typedef struct {
  brc_breaker_t b;
  _Atomic int holding; /* probes the victims hold */
  _Atomic uint64_t granted;
  _Atomic uint64_t now;
  _Atomic uint64_t w[64]; /* the window (a COUNT window of 10 fits) */
} shared_t;

static shared_t *sh;

static brc_window_t *window(void) { return (brc_window_t *)(void *)sh->w; }

static void setup(uint64_t probes) {
  brc_breaker_config_t c = {.failure_rate = 0.5, .slow_rate = 1.0, .minimum_calls = 10, .consecutive_failures = 0,
                            .half_open_calls = probes, .max_half_open = 3600 * SEC, .wait_base = SEC,
                            .wait_multiplier = 1.0, .wait_max = SEC, .wait_jitter = 0.0};
  CHECK(brc_window_bytes(BRC_WINDOW_COUNT, 10) <= sizeof sh->w);
  CHECK(brc_window_init(window(), BRC_WINDOW_COUNT, 10, SEC) == BRC_OK);
  CHECK(brc_breaker_init(&sh->b, &c) == BRC_OK);
  atomic_store(&sh->holding, 0);
  atomic_store(&sh->granted, 0);
  for (int i = 0; i < 10; i++) { /* open at t = 1 s: half-open from t = 2 s */
    uint64_t ticket;
    CHECK(brc_breaker_acquire(&sh->b, SEC, &ticket, NULL, NULL) == BRC_OK);
    brc_breaker_record(&sh->b, window(), ticket, F, 0, SEC, NULL);
  }
}

static int state(void) {
  brc_breaker_report_t r;
  brc_breaker_report(&sh->b, 0, &r);
  return r.state;
}

static uint64_t probes_out(void) {
  brc_breaker_report_t r;
  brc_breaker_report(&sh->b, 0, &r);
  return r.probes_out;
}

/* A victim takes `n` leased probes at `now` and waits to be killed. */
static pid_t victim(int n, uint64_t now) {
  pid_t pid = fork();
  if (pid == 0) {
    uint64_t me = brc_lease_tag((uint64_t)getpid()), ticket;
    for (int k = 0; k < n; k++)
      if (brc_breaker_acquire_leased(&sh->b, me, now, &ticket, NULL, NULL) != BRC_OK ||
          !(ticket & BRC_BREAKER_LEASED))
        _exit(11);
    atomic_fetch_add(&sh->holding, n);
    for (;;)
      pause();
  }
  return pid;
}

static void kill_it(pid_t pid) {
  int status = 0;
  kill(pid, SIGKILL);
  waitpid(pid, &status, 0);
  CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
}

static void test_dead_probe_comes_back_and_the_breaker_closes(void) {
  uint64_t me = brc_lease_tag((uint64_t)getpid()), ticket, t0 = 2 * SEC;
  brc_breaker_transition_t t;
  setup(1);
  pid_t pid = victim(1, t0);
  while (atomic_load(&sh->holding) < 1)
    sched_yield();
  CHECK(state() == BRC_HALF_OPEN);
  /* alive: its probe stays out (this sweep finds no dead holder) */
  CHECK(brc_breaker_acquire_leased(&sh->b, me, t0 + 1, &ticket, NULL, NULL) == BRC_REFUSED);
  kill_it(pid);
  /* dead, but swept a moment ago: the next sweep is BRC_LEASES_SWEEP_NS later */
  CHECK(brc_breaker_acquire_leased(&sh->b, me, t0 + 2, &ticket, NULL, NULL) == BRC_REFUSED);
  CHECK_EQ_U64(probes_out(), 1);
  CHECK(brc_breaker_acquire_leased(&sh->b, me, t0 + 1 + BRC_LEASES_SWEEP_NS, &ticket, NULL, NULL) == BRC_OK);
  CHECK(ticket & BRC_BREAKER_LEASED);
  uint64_t more;
  CHECK(brc_breaker_acquire_leased(&sh->b, me, t0 + 3 * BRC_LEASES_SWEEP_NS, &more, NULL, NULL) ==
        BRC_REFUSED); /* the one probe is out again, with a live holder */
  CHECK(brc_breaker_record_leased(&sh->b, window(), me, ticket, 0, 0, t0 + SEC, &t) == BRC_OK);
  CHECK(t.from == BRC_HALF_OPEN && t.to == BRC_CLOSED);
  CHECK(state() == BRC_CLOSED);
  CHECK_EQ_U64((uint64_t)brc_breaker_sweep_probes(&sh->b, t0 + 2 * SEC), 0); /* recorded: its word is free */
}

/* Threads of this process compete for the probes of PROBES killed victims:
 * exactly PROBES are granted, whichever thread sweeps. */
static void *compete(void *arg) {
  uint64_t me = *(uint64_t *)arg, ticket;
  for (int k = 0; k < 2000; k++) {
    uint64_t now = atomic_fetch_add(&sh->now, MS) + MS;
    if (brc_breaker_acquire_leased(&sh->b, me, now, &ticket, NULL, NULL) == BRC_OK)
      atomic_fetch_add(&sh->granted, 1); /* held: never recorded */
    else
      sched_yield();
  }
  return NULL;
}

static void test_each_dead_probe_comes_back_once(void) {
  uint64_t me = brc_lease_tag((uint64_t)getpid());
  pthread_t th[THREADS];
  pid_t pids[PROBES];
  setup(PROBES);
  for (int i = 0; i < PROBES; i++) {
    pids[i] = victim(1, 2 * SEC);
    while (atomic_load(&sh->holding) < i + 1)
      sched_yield();
  }
  CHECK_EQ_U64(probes_out(), PROBES);
  for (int i = 0; i < PROBES; i++)
    kill_it(pids[i]);
  atomic_store(&sh->now, 3 * SEC);
  for (int i = 0; i < THREADS; i++)
    pthread_create(&th[i], NULL, compete, &me);
  for (int i = 0; i < THREADS; i++)
    pthread_join(th[i], NULL);
  CHECK_EQ_U64(atomic_load(&sh->granted), PROBES);
  CHECK_EQ_U64(probes_out(), PROBES);
  CHECK(state() == BRC_HALF_OPEN);
  CHECK_EQ_U64((uint64_t)brc_breaker_sweep_probes(&sh->b, 10 * SEC), 0); /* live holders stay */
}

/* A released leased probe frees its word and its probe. */
static void test_release_frees_the_lease(void) {
  uint64_t me = brc_lease_tag((uint64_t)getpid()), ticket;
  setup(1);
  CHECK(brc_breaker_acquire_leased(&sh->b, me, 2 * SEC, &ticket, NULL, NULL) == BRC_OK);
  CHECK(ticket & BRC_BREAKER_LEASED);
  CHECK(brc_breaker_release_leased(&sh->b, me, ticket) == BRC_OK);
  CHECK_EQ_U64(probes_out(), 0);
  for (int i = 0; i < BRC_BREAKER_PROBE_LEASES; i++)
    CHECK_EQ_U64(atomic_load(&sh->b.probe_leases[i]), 0);
}

int main(void) {
  sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (sh == MAP_FAILED)
    return 1;
  test_dead_probe_comes_back_and_the_breaker_closes();
  test_each_dead_probe_comes_back_once();
  test_release_frees_the_lease();
  CHECK_DONE();
}
