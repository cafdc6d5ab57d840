/* brc_now_ns() on its real source: monotonic in every thread, and within a
 * small tolerance of CLOCK_MONOTONIC, across calibration and re-anchoring. */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "brace.h"
#include "check.h"

#define TOLERANCE_NS UINT64_C(200000) /* 0.2 ms */

static uint64_t monotonic_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static _Atomic int backwards, outside;
static _Atomic uint64_t worst_ns;

static void note_worst(uint64_t off) {
  uint64_t seen = atomic_load(&worst_ns);
  while (off > seen && !atomic_compare_exchange_weak(&worst_ns, &seen, off)) {
  }
}

static void *watch(void *arg) {
  uint64_t until = monotonic_ns() + (uint64_t)(uintptr_t)arg, last = 0;
  while (monotonic_ns() < until) {
    for (int i = 0; i < 1000; i++) {
      uint64_t before = monotonic_ns();
      uint64_t now = brc_now_ns();
      uint64_t after = monotonic_ns();
      if (now < last)
        atomic_fetch_add(&backwards, 1);
      /* +1: brc_now_ns() is CLOCK_MONOTONIC + 1 */
      uint64_t off = now < before + 1 ? before + 1 - now : now > after + 1 ? now - after - 1 : 0;
      note_worst(off);
      if (off > TOLERANCE_NS)
        atomic_fetch_add(&outside, 1);
      last = now;
    }
  }
  return NULL;
}

int main(void) {
  pthread_t t[4];
  /* 1.5 s: calibration (20 ms) and several re-anchors (about 3 a second) */
  for (int i = 0; i < 4; i++)
    pthread_create(&t[i], NULL, watch, (void *)(uintptr_t)1500000000u);
  for (int i = 0; i < 4; i++)
    pthread_join(t[i], NULL);
  fprintf(stderr, "clock source: %s, furthest outside CLOCK_MONOTONIC: %" PRIu64 " ns\n",
          brc_clock_source(), atomic_load(&worst_ns));
  const char *opt = getenv("BRACE_CLOCK");
  if (opt && strcmp(opt, "monotonic") == 0)
    CHECK(strcmp(brc_clock_source(), "monotonic") == 0);
  CHECK(atomic_load(&backwards) == 0);
  CHECK(atomic_load(&outside) == 0);
  CHECK_DONE();
}
