/*
 * gateway.c - a tiny gateway loop on brace's C API: one shared rate limiter and one
 * shared circuit breaker, in a region that Python processes (and other gateways) open
 * too, decide for REQUESTS simulated requests.
 *
 *   gateway [-r REGION] [-l LIMITER] [-p PER_HOUR] [-b BURST] [-n REQUESTS] [-f FAIL_EVERY] [-s]
 *
 * The limiter is the one Python makes with
 *   brace.RateLimiter(rate=f"{PER_HOUR}/hour", burst=BURST, name=LIMITER, store="shm://REGION")
 * (defaults: region "myservice", limiter "partner-api", 100/hour, burst 20: the README's).
 * Each request asks the breaker "upstream" first (an open breaker costs no token), then the
 * limiter; an admitted request is forwarded to a simulated upstream that fails every
 * FAIL_EVERY-th call (0: never) and its outcome is recorded. -s prints "ready" once the
 * region and slots are open and waits for a line on stdin before deciding, so that a script
 * can start several gateways at one instant. Prints one line:
 *   admitted=A limited=L open=O failed=F
 */
#define _POSIX_C_SOURCE 200809L /* getopt */

#include <brace.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define SECOND UINT64_C(1000000000)

static int fail(const char *what, int status) {
  fprintf(stderr, "gateway: %s: %s (%s)\n", what, brc_strerror(status), brc_status_name(status));
  return 1;
}

static unsigned long long number(const char *text, const char *what) {
  char *end;
  unsigned long long value = strtoull(text, &end, 10);
  if (*text == '\0' || *end != '\0') {
    fprintf(stderr, "gateway: %s must be a whole number, got %s\n", what, text);
    exit(2);
  }
  return value;
}

int main(int argc, char **argv) {
  const char *region_name = "myservice", *limiter_name = "partner-api";
  unsigned long long per_hour = 100, burst = 20, requests = 1000, fail_every = 0;
  int wait_for_go = 0, option;
  while ((option = getopt(argc, argv, "r:l:p:b:n:f:s")) != -1) {
    switch (option) {
      case 'r': region_name = optarg; break;
      case 'l': limiter_name = optarg; break;
      case 'p': per_hour = number(optarg, "-p PER_HOUR"); break;
      case 'b': burst = number(optarg, "-b BURST"); break;
      case 'n': requests = number(optarg, "-n REQUESTS"); break;
      case 'f': fail_every = number(optarg, "-f FAIL_EVERY"); break;
      case 's': wait_for_go = 1; break;
      default:
        fprintf(stderr, "usage: gateway [-r REGION] [-l LIMITER] [-p PER_HOUR] [-b BURST] "
                        "[-n REQUESTS] [-f FAIL_EVERY] [-s]\n");
        return 2;
    }
  }
  if (per_hour == 0) {
    fprintf(stderr, "gateway: -p PER_HOUR must be at least 1\n");
    return 2;
  }

  /* Set up once, off the decision path: the region (created with 64 MiB, sparse, if no
   * process has yet), the limiter's slot and the breaker's. */
  brc_region_t *region;
  brc_gcra_t *limiter;
  brc_breaker_t *breaker;
  brc_window_t *window;
  int status = brc_region_open(region_name, UINT64_C(64) << 20, &region);
  if (status != BRC_OK) return fail(region_name, status);
  /* rate/hour: one token every 3600 s / rate, as RateLimiter computes it */
  status = brc_region_gcra(region, limiter_name, 3600 * SECOND / per_hour, burst, &limiter);
  if (status != BRC_OK) return fail(limiter_name, status);
  /* opens at a 50% failure rate over the last 100 calls (20 at least), for 30 s; its
   * probes are leased (a dead process's come back within 10 ms), and a probe that never
   * reports (its process hangs) re-opens it after 60 s in HALF_OPEN, as Python's shared
   * breakers default to */
  brc_breaker_config_t config = {.failure_rate = 0.5, .slow_rate = 1.0, .minimum_calls = 20,
                                 .half_open_calls = 1, .max_half_open = 60 * SECOND,
                                 .wait_base = 30 * SECOND, .wait_multiplier = 1.0,
                                 .wait_max = 30 * SECOND};
  status = brc_region_breaker(region, "upstream", &config, BRC_WINDOW_COUNT, 100, 0, &breaker, &window);
  if (status != BRC_OK) return fail("upstream", status);

  if (wait_for_go) {
    char line[16];
    printf("ready\n");
    fflush(stdout);
    if (!fgets(line, sizeof line, stdin)) return 1;
  }

  /* The decisions: lock-free, no allocation, no system call (brc_now_ns reads the TSC) but
   * a sweep for dead probes' leases when every probe is out. */
  uint64_t tag = brc_lease_tag((uint64_t)getpid());
  unsigned long long admitted = 0, limited = 0, open = 0, failed = 0;
  for (unsigned long long i = 1; i <= requests; i++) {
    uint64_t now = brc_now_ns(), ticket;
    if (brc_breaker_acquire_leased(breaker, tag, now, &ticket, NULL, NULL) != BRC_OK) {
      open++;
      continue;
    }
    if (brc_gcra_acquire(limiter, 1, now, 0, NULL) != BRC_OK) {
      brc_breaker_release_leased(breaker, tag, ticket); /* not forwarded: nothing to record */
      limited++;
      continue;
    }
    admitted++;
    int ok = fail_every == 0 || i % fail_every != 0; /* the simulated upstream */
    failed += !ok;
    brc_breaker_record_leased(breaker, window, tag, ticket, ok ? 0u : BRC_OUTCOME_FAILURE, 0, 0, NULL);
  }
  printf("admitted=%llu limited=%llu open=%llu failed=%llu\n", admitted, limited, open, failed);
  brc_region_close(region);
  return 0;
}
