#define _POSIX_C_SOURCE 200809L
#include <time.h>

#include "brace.h"

/* 0 means "not frozen"; a frozen clock is never 0, so one atomic says both. */
static _Atomic uint64_t brc__frozen_now;

uint64_t brc_now_ns(void) {
  uint64_t frozen = atomic_load_explicit(&brc__frozen_now, memory_order_relaxed);
  if (frozen != 0)
    return frozen;
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  /* +1 keeps the documented "never 0" even on a clock that starts at 0. */
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec + 1u;
}

int brc_clock_freeze(uint64_t now) {
  if (now == 0)
    return BRC_EINVAL;
  atomic_store_explicit(&brc__frozen_now, now, memory_order_relaxed);
  return BRC_OK;
}

int brc_clock_advance(uint64_t delta) {
  uint64_t cur = atomic_load_explicit(&brc__frozen_now, memory_order_relaxed);
  do {
    if (cur == 0)
      return BRC_EINVAL;
    if (cur > UINT64_MAX - delta)
      return BRC_ERANGE;
  } while (!atomic_compare_exchange_weak_explicit(
      &brc__frozen_now, &cur, cur + delta, memory_order_relaxed,
      memory_order_relaxed));
  return BRC_OK;
}

int brc_clock_advance_to(uint64_t target) {
  uint64_t cur = atomic_load_explicit(&brc__frozen_now, memory_order_relaxed);
  do {
    if (cur == 0)
      return BRC_EINVAL;
    if (cur >= target)
      return BRC_OK;
  } while (!atomic_compare_exchange_weak_explicit(
      &brc__frozen_now, &cur, target, memory_order_relaxed,
      memory_order_relaxed));
  return BRC_OK;
}

int brc_clock_thaw(void) {
  atomic_store_explicit(&brc__frozen_now, 0, memory_order_relaxed);
  return BRC_OK;
}

int brc_clock_is_frozen(void) {
  return atomic_load_explicit(&brc__frozen_now, memory_order_relaxed) != 0;
}
