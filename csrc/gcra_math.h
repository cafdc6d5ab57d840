/* gcra_math.h - internal to the C core (not installed, not part of brace.h):
 * the GCRA arithmetic that brc_gcra_t (gcra.c) and each key of brc_keyed_t
 * (keyed.c) decide with, so that both follow one algorithm. */
#ifndef BRACE_GCRA_MATH_H
#define BRACE_GCRA_MATH_H

#include "brace.h"

typedef struct {
  uint64_t interval;
  uint64_t burst;
  uint64_t seq;
} brc__gcra_config_t;

static inline void brc__cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

static inline int brc__gcra_valid(uint64_t interval, uint64_t burst) {
  if (interval == 0 || burst == 0)
    return BRC_EINVAL;
  if (burst > BRC_DURATION_MAX / interval)
    return BRC_ERANGE;
  return BRC_OK;
}

static inline int brc__gcra_check_n(const brc__gcra_config_t *c, uint64_t n) {
  if (c->interval == 0 || n == 0)
    return BRC_EINVAL;
  if (n > c->burst)
    return BRC_E2BIG;
  return BRC_OK;
}

/* ns from `now` until n tokens are admitted (0: admitted now). n <= burst. */
static inline uint64_t brc__gcra_wait(const brc__gcra_config_t *c, uint64_t tat, uint64_t n,
                                      uint64_t now) {
  uint64_t debt = tat > now ? tat - now : 0;
  uint64_t cost = c->interval * n;
  uint64_t due = debt > UINT64_MAX - cost ? UINT64_MAX : debt + cost; /* debt after taking n */
  uint64_t depth = c->interval * c->burst;
  return due > depth ? due - depth : 0;
}

/* The TAT after taking n tokens from a bucket whose TAT is `tat`, at `now`
 * (once they are admitted). The caller keeps it within 64 bits. */
static inline uint64_t brc__gcra_after(const brc__gcra_config_t *c, uint64_t tat, uint64_t n,
                                       uint64_t now) {
  return (tat > now ? tat : now) + c->interval * n;
}

/* The state of a bucket whose TAT is `tat`, at `now`. */
static inline void brc__gcra_fill_report(const brc__gcra_config_t *c, uint64_t tat, uint64_t now,
                                         brc_gcra_report_t *out) {
  uint64_t debt = tat > now ? tat - now : 0;
  uint64_t depth = c->interval * c->burst;
  out->limit = c->burst;
  out->remaining = debt >= depth ? 0 : (depth - debt) / c->interval;
  out->retry_after = brc__gcra_wait(c, tat, 1, now);
  out->reset_after = debt;
}

#endif /* BRACE_GCRA_MATH_H */
