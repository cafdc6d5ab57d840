/*
 * bench.c - ns per brc_gcra_acquire through libbrace.so, one thread.
 *
 *   gateway_bench [CALLS [REPEAT]]     (defaults: 10000000 calls, 11 samples)
 *
 * The median over REPEAT samples of CALLS calls each, per case: a limiter in a shared
 * region and one in this process's memory, admitting (interval 1 ns, `now` advanced 1 ns
 * a call, so every call takes a token) and refusing (drained for an hour, `now` fixed);
 * then the shared, admitting one with `now` read by brc_now_ns() on every call, as a
 * gateway does. The region is a fresh one, removed at the end.
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime, getpid */

#include <brace.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define SAMPLES_MAX 101

static uint64_t wall_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * UINT64_C(1000000000) + (uint64_t)ts.tv_nsec;
}

static int by_value(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* ns per call of one sample; `advance`: now moves 1 ns a call; `clock`: now is brc_now_ns() */
static double sample(brc_gcra_t *g, uint64_t calls, uint64_t *now, int advance, int clock, int expect) {
  uint64_t start = wall_ns(), t = *now;
  int wrong = 0;
  for (uint64_t i = 0; i < calls; i++) {
    wrong |= brc_gcra_acquire(g, 1, clock ? brc_now_ns() : t, 0, NULL) != expect;
    t += (uint64_t)advance;
  }
  double ns = (double)(wall_ns() - start) / (double)calls;
  *now = t;
  if (wrong) {
    fprintf(stderr, "gateway_bench: a call was not %s as the case needs\n", expect == BRC_OK ? "admitted" : "refused");
    exit(1);
  }
  return ns;
}

static double median(brc_gcra_t *g, uint64_t calls, int repeat, int advance, int clock, int expect) {
  double samples[SAMPLES_MAX];
  uint64_t now = brc_now_ns();
  sample(g, calls / 10 + 1, &now, advance, clock, expect); /* warm up */
  for (int i = 0; i < repeat; i++) samples[i] = sample(g, calls, &now, advance, clock, expect);
  qsort(samples, (size_t)repeat, sizeof samples[0], by_value);
  return samples[repeat / 2];
}

int main(int argc, char **argv) {
  uint64_t calls = argc > 1 ? strtoull(argv[1], NULL, 10) : UINT64_C(10000000);
  int repeat = argc > 2 ? atoi(argv[2]) : 11;
  if (calls == 0 || repeat < 1 || repeat > SAMPLES_MAX) {
    fprintf(stderr, "usage: gateway_bench [CALLS >= 1 [REPEAT 1..%d]]\n", SAMPLES_MAX);
    return 2;
  }
  char name[64];
  snprintf(name, sizeof name, "brace-cbench-%ld", (long)getpid());
  brc_region_t *region;
  brc_gcra_t *shared_admitting, *shared_refusing;
  static brc_gcra_t local_admitting, local_refusing;
  uint64_t hour = UINT64_C(3600000000000), depth = UINT64_C(1) << 40;
  int status = brc_region_open(name, UINT64_C(1) << 20, &region);
  if (status == BRC_OK) status = brc_region_gcra(region, "admitting", 1, depth, &shared_admitting);
  if (status == BRC_OK) status = brc_region_gcra(region, "refusing", hour, 1, &shared_refusing);
  if (status == BRC_OK) status = brc_gcra_init(&local_admitting, 1, depth);
  if (status == BRC_OK) status = brc_gcra_init(&local_refusing, hour, 1);
  if (status != BRC_OK) {
    fprintf(stderr, "gateway_bench: %s\n", brc_strerror(status));
    return 1;
  }
  brc_gcra_acquire(shared_refusing, 1, brc_now_ns(), 0, NULL); /* drained for an hour */
  brc_gcra_acquire(&local_refusing, 1, brc_now_ns(), 0, NULL);

  printf("brc_gcra_acquire through libbrace.so, one thread (ns per call, median of %d x %llu)\n", repeat,
         (unsigned long long)calls);
  printf("  admitted  shared %6.2f   local %6.2f\n", median(shared_admitting, calls, repeat, 1, 0, BRC_OK),
         median(&local_admitting, calls, repeat, 1, 0, BRC_OK));
  printf("  refused   shared %6.2f   local %6.2f\n", median(shared_refusing, calls, repeat, 0, 0, BRC_REFUSED),
         median(&local_refusing, calls, repeat, 0, 0, BRC_REFUSED));
  printf("  admitted, now = brc_now_ns() each call: shared %6.2f\n",
         median(shared_admitting, calls, repeat, 0, 1, BRC_OK));
  printf("  (brc_now_ns reads the %s clock)\n", brc_clock_source());
  brc_region_close(region);
  brc_region_unlink(name);
  return 0;
}
