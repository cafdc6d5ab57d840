/* Bulkhead permits: single-threaded semantics, then real parallelism (run
 * under ThreadSanitizer in CI): the fast paths alone, and the full FIFO
 * protocol with waiters that give up and a thread that resizes the bulkhead. */
#define _POSIX_C_SOURCE 200809L /* clock_gettime, pthread_cond_timedwait */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <time.h>

#include "brace.h"
#include "check.h"

#define THREADS 8

static uint64_t in_use(brc_bulkhead_t *b) {
  brc_bulkhead_report_t r = {0};
  brc_bulkhead_report(b, &r);
  return r.in_use;
}

static uint64_t flagged(brc_bulkhead_t *b) {
  brc_bulkhead_report_t r = {0};
  brc_bulkhead_report(b, &r);
  return r.waiters_queued;
}

static void test_init_and_unconfigured(void) {
  brc_bulkhead_t b;
  brc_bulkhead_report_t r;
  CHECK(brc_bulkhead_init(&b, 0) == BRC_EINVAL);
  CHECK(brc_bulkhead_init(&b, BRC_BULKHEAD_MAX + 1) == BRC_EINVAL);
  CHECK(brc_bulkhead_init(&b, BRC_BULKHEAD_MAX) == BRC_OK);
  CHECK(brc_bulkhead_report(&b, &r) == BRC_OK);
  CHECK_EQ_U64(r.max, BRC_BULKHEAD_MAX);
  CHECK_EQ_U64(r.in_use, 0);
  brc_bulkhead_t unset = {0};
  CHECK(brc_bulkhead_try_acquire(&unset) == BRC_EINVAL);
  CHECK(brc_bulkhead_release(&unset) == BRC_EINVAL);
  CHECK(brc_bulkhead_enqueue(&unset) == BRC_EINVAL);
  CHECK(brc_bulkhead_handoff(&unset, 1) == BRC_EINVAL);
  CHECK(brc_bulkhead_grant(&unset, 1) == BRC_EINVAL);
  CHECK(brc_bulkhead_unflag(&unset) == BRC_EINVAL);
  CHECK(brc_bulkhead_report(&unset, &r) == BRC_EINVAL);
  CHECK(brc_bulkhead_reconfigure(&unset, 3) == BRC_EINVAL);
}

static void test_fast_paths(void) {
  brc_bulkhead_t b;
  brc_bulkhead_init(&b, 3);
  for (int i = 0; i < 3; i++)
    CHECK(brc_bulkhead_try_acquire(&b) == BRC_OK);
  CHECK(brc_bulkhead_try_acquire(&b) == BRC_REFUSED);
  CHECK_EQ_U64(in_use(&b), 3);
  CHECK(brc_bulkhead_release(&b) == BRC_OK);
  CHECK(brc_bulkhead_try_acquire(&b) == BRC_OK);
  for (int i = 0; i < 3; i++)
    CHECK(brc_bulkhead_release(&b) == BRC_OK);
  CHECK_EQ_U64(in_use(&b), 0);
  CHECK(brc_bulkhead_release(&b) == BRC_EINVAL); /* more releases than acquires */
  CHECK_EQ_U64(in_use(&b), 0);
}

static void test_waiters_block_newcomers_and_take_handoffs(void) {
  brc_bulkhead_t b;
  brc_bulkhead_init(&b, 1);
  CHECK(brc_bulkhead_enqueue(&b) == BRC_OK); /* free and nobody queued: taken */
  CHECK(brc_bulkhead_enqueue(&b) == BRC_REFUSED);
  CHECK_EQ_U64(flagged(&b), 1);
  CHECK(brc_bulkhead_enqueue(&b) == BRC_REFUSED); /* a second waiter */
  /* the holder releases: with waiters queued, the permit is handed off */
  CHECK(brc_bulkhead_release(&b) == BRC_HANDOFF);
  CHECK_EQ_U64(in_use(&b), 1);
  CHECK(brc_bulkhead_handoff(&b, 2) == BRC_HANDOFF);
  CHECK_EQ_U64(flagged(&b), 1);
  /* the first waiter has it; a newcomer may not barge past the second */
  CHECK(brc_bulkhead_try_acquire(&b) == BRC_REFUSED);
  CHECK(brc_bulkhead_release(&b) == BRC_HANDOFF);
  CHECK(brc_bulkhead_handoff(&b, 1) == BRC_HANDOFF); /* to the last waiter: flag cleared */
  CHECK_EQ_U64(flagged(&b), 0);
  CHECK_EQ_U64(in_use(&b), 1);
  CHECK(brc_bulkhead_release(&b) == BRC_OK);
  CHECK_EQ_U64(in_use(&b), 0);
  CHECK(brc_bulkhead_try_acquire(&b) == BRC_OK);
}

static void test_a_waiter_that_leaves(void) {
  brc_bulkhead_t b;
  brc_bulkhead_init(&b, 1);
  brc_bulkhead_try_acquire(&b);
  CHECK(brc_bulkhead_enqueue(&b) == BRC_REFUSED);
  /* it times out before the release: the queue is empty, the flag goes */
  CHECK(brc_bulkhead_unflag(&b) == BRC_OK);
  CHECK(brc_bulkhead_release(&b) == BRC_OK);
  CHECK_EQ_U64(in_use(&b), 0);

  /* a releaser saw BRC_HANDOFF, but the only waiter left before it took the
   * queue lock: with an empty queue the permit is freed */
  brc_bulkhead_try_acquire(&b);
  brc_bulkhead_enqueue(&b);
  CHECK(brc_bulkhead_release(&b) == BRC_HANDOFF);
  brc_bulkhead_unflag(&b);
  CHECK(brc_bulkhead_handoff(&b, 0) == BRC_OK);
  CHECK_EQ_U64(in_use(&b), 0);
  CHECK(brc_bulkhead_handoff(&b, 0) == BRC_EINVAL);

  /* a waiter handed a permit as it gave up passes it on, or frees it */
  brc_bulkhead_try_acquire(&b);
  brc_bulkhead_enqueue(&b);
  brc_bulkhead_enqueue(&b);
  brc_bulkhead_handoff(&b, 2); /* the holder hands to waiter 1 */
  CHECK(brc_bulkhead_handoff(&b, 1) == BRC_HANDOFF); /* waiter 1 gives it to waiter 2 */
  CHECK(brc_bulkhead_release(&b) == BRC_OK);
  CHECK_EQ_U64(in_use(&b), 0);
}

static void test_reconfigure(void) {
  brc_bulkhead_t b;
  brc_bulkhead_report_t r;
  brc_bulkhead_init(&b, 4);
  for (int i = 0; i < 4; i++)
    brc_bulkhead_try_acquire(&b);
  brc_bulkhead_enqueue(&b);
  CHECK(brc_bulkhead_reconfigure(&b, 2) == BRC_OK);
  brc_bulkhead_report(&b, &r);
  CHECK_EQ_U64(r.in_use, 4);
  CHECK_EQ_U64(r.max, 2);
  CHECK_EQ_U64(r.waiters_queued, 1);
  /* above max, releases retire permits even with a waiter queued... */
  CHECK(brc_bulkhead_release(&b) == BRC_OK);
  CHECK(brc_bulkhead_release(&b) == BRC_OK);
  /* ...and at max they hand off again */
  CHECK(brc_bulkhead_release(&b) == BRC_HANDOFF);
  CHECK_EQ_U64(in_use(&b), 2);
  /* shrinking under a handoff in progress: the permit is retired, not passed */
  CHECK(brc_bulkhead_reconfigure(&b, 1) == BRC_OK);
  CHECK(brc_bulkhead_handoff(&b, 1) == BRC_OK);
  CHECK_EQ_U64(in_use(&b), 1);
  CHECK_EQ_U64(flagged(&b), 1);
  /* growing: new permits go to the queued waiters first */
  CHECK(brc_bulkhead_reconfigure(&b, 3) == BRC_OK);
  CHECK(brc_bulkhead_try_acquire(&b) == BRC_REFUSED);
  CHECK(brc_bulkhead_grant(&b, 1) == BRC_OK);
  CHECK_EQ_U64(flagged(&b), 0);
  CHECK_EQ_U64(in_use(&b), 2);
  CHECK(brc_bulkhead_try_acquire(&b) == BRC_OK);
  CHECK(brc_bulkhead_grant(&b, 1) == BRC_REFUSED);
  CHECK(brc_bulkhead_grant(&b, 0) == BRC_EINVAL);
  CHECK(brc_bulkhead_reconfigure(&b, 0) == BRC_EINVAL);
  CHECK(brc_bulkhead_reconfigure(&b, BRC_BULKHEAD_MAX + 1) == BRC_EINVAL);
  brc_bulkhead_report(&b, &r);
  CHECK_EQ_U64(r.max, 3); /* failed reconfigures change nothing */
}

/* ---- threads --------------------------------------------------------- */

static brc_bulkhead_t shared;
static _Atomic uint64_t inside, most_inside, served, gave_up;
static _Atomic int stop;

static void enter(void) {
  uint64_t now = atomic_fetch_add(&inside, 1) + 1;
  uint64_t most = atomic_load(&most_inside);
  while (now > most && !atomic_compare_exchange_weak(&most_inside, &most, now)) {
  }
  atomic_fetch_add(&served, 1);
  sched_yield(); /* hold the permit a while, so that others queue */
  atomic_fetch_sub(&inside, 1);
}

static void reset_counters(void) {
  atomic_store(&inside, 0);
  atomic_store(&most_inside, 0);
  atomic_store(&served, 0);
  atomic_store(&gave_up, 0);
  atomic_store(&stop, 0);
}

static void *hammer_fast(void *arg) {
  (void)arg;
  for (int i = 0; i < 50000; i++) {
    if (brc_bulkhead_try_acquire(&shared) != BRC_OK)
      continue;
    enter();
    CHECK(brc_bulkhead_release(&shared) == BRC_OK);
  }
  return NULL;
}

static void test_threads_fast_paths(void) {
  pthread_t t[THREADS];
  brc_bulkhead_init(&shared, 3);
  reset_counters();
  for (int i = 0; i < THREADS; i++)
    pthread_create(&t[i], NULL, hammer_fast, NULL);
  for (int i = 0; i < THREADS; i++)
    pthread_join(t[i], NULL);
  CHECK(atomic_load(&most_inside) <= 3);
  CHECK(atomic_load(&served) > 0);
  CHECK_EQ_U64(in_use(&shared), 0);
}

/* A FIFO queue of waiters under a mutex, as the Python layer keeps one. */
typedef struct waiter_s {
  struct waiter_s *next;
  pthread_cond_t wake;
  int granted;
} waiter_t;

static pthread_mutex_t queue_lock = PTHREAD_MUTEX_INITIALIZER;
static waiter_t *head, *tail;
static uint64_t queued;

static void push(waiter_t *w) {
  w->next = NULL;
  if (tail)
    tail->next = w;
  else
    head = w;
  tail = w;
  queued++;
}

static waiter_t *pop(void) {
  waiter_t *w = head;
  head = w->next;
  if (!head)
    tail = NULL;
  queued--;
  return w;
}

static void remove_waiter(waiter_t *w) {
  waiter_t **link = &head, *prev = NULL;
  while (*link != w) {
    prev = *link;
    link = &(*link)->next;
  }
  *link = w->next;
  if (tail == w)
    tail = prev;
  queued--;
}

/* With queue_lock held and one permit owned: pass it to the first waiter or free it. */
static void pass_locked(void) {
  if (brc_bulkhead_handoff(&shared, queued) == BRC_HANDOFF) {
    waiter_t *w = pop();
    w->granted = 1;
    pthread_cond_signal(&w->wake);
  }
}

static void release_permit(void) {
  int rc = brc_bulkhead_release(&shared);
  if (rc == BRC_OK)
    return;
  CHECK(rc == BRC_HANDOFF);
  pthread_mutex_lock(&queue_lock);
  pass_locked();
  pthread_mutex_unlock(&queue_lock);
}

/* Waits for a permit; impatient waiters give up after ~20 us. Returns 1 with
 * a permit. A permit handed over just as the wait ran out is kept. */
static int acquire_permit(int patient) {
  waiter_t w;
  if (brc_bulkhead_try_acquire(&shared) == BRC_OK)
    return 1;
  pthread_mutex_lock(&queue_lock);
  if (brc_bulkhead_enqueue(&shared) == BRC_OK) {
    pthread_mutex_unlock(&queue_lock);
    return 1;
  }
  pthread_cond_init(&w.wake, NULL);
  w.granted = 0;
  push(&w);
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += patient ? 30 : 0; /* patient waiters time out only if a wakeup is lost */
  until.tv_nsec += patient ? 0 : 20000;
  if (until.tv_nsec >= 1000000000L) {
    until.tv_sec++;
    until.tv_nsec -= 1000000000L;
  }
  while (!w.granted) {
    if (pthread_cond_timedwait(&w.wake, &queue_lock, &until) == ETIMEDOUT && !w.granted) {
      CHECK(!patient);
      remove_waiter(&w);
      if (queued == 0)
        brc_bulkhead_unflag(&shared);
      break;
    }
  }
  pthread_mutex_unlock(&queue_lock);
  pthread_cond_destroy(&w.wake);
  return w.granted;
}

static void *hammer_queue(void *arg) {
  int patient = (int)(intptr_t)arg % 2;
  for (int i = 0; i < 4000; i++) {
    if (!acquire_permit(patient)) {
      atomic_fetch_add(&gave_up, 1);
      continue;
    }
    enter();
    release_permit();
  }
  return NULL;
}

/* Alternates max between 2 and 5, serving queued waiters when it grows. */
static void *resize(void *arg) {
  (void)arg;
  for (int i = 0; !atomic_load_explicit(&stop, memory_order_relaxed); i++) {
    pthread_mutex_lock(&queue_lock);
    brc_bulkhead_reconfigure(&shared, i % 2 ? 5 : 2);
    while (queued && brc_bulkhead_grant(&shared, queued) == BRC_OK) {
      waiter_t *w = pop();
      w->granted = 1;
      pthread_cond_signal(&w->wake);
    }
    pthread_mutex_unlock(&queue_lock);
  }
  return NULL;
}

static void run_queue(int with_resize) {
  pthread_t t[THREADS], r;
  brc_bulkhead_init(&shared, 2);
  reset_counters();
  for (int i = 0; i < THREADS; i++)
    pthread_create(&t[i], NULL, hammer_queue, (void *)(intptr_t)i);
  if (with_resize)
    pthread_create(&r, NULL, resize, NULL);
  for (int i = 0; i < THREADS; i++)
    pthread_join(t[i], NULL);
  atomic_store(&stop, 1);
  if (with_resize)
    pthread_join(r, NULL);
  brc_bulkhead_report_t rep;
  brc_bulkhead_report(&shared, &rep);
  CHECK(atomic_load(&most_inside) <= (with_resize ? 5u : 2u));
  CHECK_EQ_U64(atomic_load(&served) + atomic_load(&gave_up), THREADS * 4000);
  CHECK_EQ_U64(rep.in_use, 0);
  CHECK_EQ_U64(rep.waiters_queued, 0);
  CHECK(head == NULL && queued == 0);
}

int main(void) {
  test_init_and_unconfigured();
  test_fast_paths();
  test_waiters_block_newcomers_and_take_handoffs();
  test_a_waiter_that_leaves();
  test_reconfigure();
  test_threads_fast_paths();
  run_queue(0);
  run_queue(1);
  CHECK_DONE();
}
