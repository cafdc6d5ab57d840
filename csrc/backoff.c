#include <float.h>
#include <math.h>

#include "brace.h"

int brc_backoff_init(brc_backoff_t *b, int kind, uint64_t initial, uint64_t max,
                     double multiplier, uint64_t increment, int jitter, double factor) {
  if (kind < BRC_BACKOFF_EXPONENTIAL || kind > BRC_BACKOFF_CONSTANT)
    return BRC_EINVAL;
  if (jitter < BRC_JITTER_NONE || jitter > BRC_JITTER_PROPORTIONAL)
    return BRC_EINVAL;
  /* Growth from 0 stays 0: an exponential or decorrelated backoff that
   * starts at 0 ns can only be a unit mistake. */
  if (initial == 0 && (kind == BRC_BACKOFF_EXPONENTIAL || jitter == BRC_JITTER_DECORRELATED))
    return BRC_EINVAL;
  if (max < initial)
    return BRC_EINVAL;
  /* The negated comparisons also refuse NaN. */
  if (kind == BRC_BACKOFF_EXPONENTIAL && !(multiplier >= 1.0 && multiplier <= DBL_MAX))
    return BRC_EINVAL;
  if (jitter == BRC_JITTER_PROPORTIONAL && !(factor > 0.0 && factor <= 1.0))
    return BRC_EINVAL;
  /* Settings a kind or jitter does not use are stored canonically, so two
   * backoffs that behave alike compare equal byte for byte. */
  b->kind = (uint32_t)kind;
  b->jitter = (uint32_t)jitter;
  b->initial = initial;
  b->increment = kind == BRC_BACKOFF_LINEAR ? increment : 0;
  b->max = max;
  b->multiplier = kind == BRC_BACKOFF_EXPONENTIAL ? multiplier : 1.0;
  b->factor = jitter == BRC_JITTER_PROPORTIONAL ? factor : 0.0;
  return BRC_OK;
}

/* min(limit, x) for a double x >= 0 (or +inf, NaN) computed from ns values.
 * A double below (double)limit converts to a uint64_t <= limit: when limit
 * was rounded up to the next double, every smaller double is below limit. */
static uint64_t brc__cap(double x, uint64_t limit) {
  if (!(x < (double)limit))
    return limit;
  uint64_t v = x > 0.0 ? (uint64_t)x : 0;
  return v < limit ? v : limit;
}

/* A uniform draw from [0, span] in ns (span itself only through rounding). */
static uint64_t brc__draw(uint64_t span) {
  if (span == 0)
    return 0;
  return brc__cap(brc_rng_uniform() * (double)span, span);
}

/* The delay before retry `attempt` (>= 1) before jitter, capped at max. */
static uint64_t brc__backoff_base(const brc_backoff_t *b, uint64_t attempt) {
  uint64_t steps = attempt - 1;
  switch (b->kind) {
  case BRC_BACKOFF_EXPONENTIAL:
    /* pow() saturates to +inf for a huge exponent, which caps to max. */
    return brc__cap((double)b->initial * pow(b->multiplier, (double)steps), b->max);
  case BRC_BACKOFF_LINEAR:
    if (steps != 0 && b->increment > (b->max - b->initial) / steps)
      return b->max;
    return b->initial + b->increment * steps;
  default:
    return b->initial;
  }
}

/* The delay before retry `attempt` (>= 1), jittered. */
static uint64_t brc__jittered(const brc_backoff_t *b, uint64_t attempt, uint64_t previous) {
  switch (b->jitter) {
  case BRC_JITTER_FULL:
    return brc__draw(brc__backoff_base(b, attempt));
  case BRC_JITTER_EQUAL: {
    uint64_t d = brc__backoff_base(b, attempt);
    return d / 2 + brc__draw(d - d / 2);
  }
  case BRC_JITTER_DECORRELATED: {
    /* AWS's decorrelated jitter grows from the previous delay, not from the
     * attempt number; the first retry (previous 0, or anything below
     * initial) draws from U(initial, 3 * initial). */
    uint64_t from = previous > b->initial ? previous : b->initial;
    uint64_t hi = from > UINT64_MAX / 3 ? UINT64_MAX : from * 3;
    uint64_t d = b->initial + brc__draw(hi - b->initial);
    return d < b->max ? d : b->max;
  }
  case BRC_JITTER_PROPORTIONAL: {
    double spread = 1.0 - b->factor + 2.0 * b->factor * brc_rng_uniform();
    return brc__cap((double)brc__backoff_base(b, attempt) * spread, b->max);
  }
  default:
    return brc__backoff_base(b, attempt);
  }
}

int brc_backoff_delay(const brc_backoff_t *b, uint64_t attempt, uint64_t previous, uint64_t *delay) {
  if (b->kind == 0)
    return BRC_EINVAL;
  *delay = brc__jittered(b, attempt ? attempt : 1, previous);
  return BRC_OK;
}
