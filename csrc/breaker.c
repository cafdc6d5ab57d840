#include <math.h>
#include <stddef.h>
#include <string.h>

#include "brace.h"

/* State word: state (3 bits) | probes permitted in HALF_OPEN (16) | generation
 * (45). Every transition bumps the generation; a call's ticket is the
 * generation it was permitted in, so late outcomes of an older state are
 * never taken for probes of the current one. */
#define BRC__STATE(s) ((int)((s)&7u))
#define BRC__PROBES(s) (((s) >> 3) & 0xFFFFu)
#define BRC__GEN(s) ((s) >> 19)
#define BRC__WORD(state, probes, gen) ((uint64_t)(state) | (uint64_t)(probes) << 3 | (gen) << 19)

/* The probe tally lives in one word tagged with the low 32 bits of the
 * generation it belongs to (a tag repeats only after 2^32 transitions):
 * tag << 32 | completed << 20 | failed << 10 | slow, 10 bits each. */
#define BRC__TAG(gen) (((gen)&0xFFFFFFFFu) << 32)
#define BRC__TAG_OF(word) ((word) >> 32)
#define BRC__TAG_MATCHES(word, gen) (BRC__TAG_OF(word) == ((gen)&0xFFFFFFFFu))
#define BRC__PROBE_COMPLETED(p) (((p) >> 20) & 0x3FFu)
#define BRC__PROBE_FAILED(p) (((p) >> 10) & 0x3FFu)
#define BRC__PROBE_SLOW(p) ((p)&0x3FFu)

/* open_until and half_open_since are each a (time, generation) pair, so a
 * reader can tell a value of the current state from a leftover without a
 * lock: the generation is cleared before the time is written and set after,
 * and a reader takes the time only between two equal looks at it. */
static void brc__stamp(_Atomic uint64_t *time, _Atomic uint64_t *gen_of, uint64_t gen, uint64_t ns) {
  atomic_store_explicit(gen_of, 0, memory_order_relaxed);
  atomic_store_explicit(time, ns, memory_order_release);
  atomic_store_explicit(gen_of, gen, memory_order_release);
}

/* The time stamped for `gen`; 0 if none is (yet). */
static uint64_t brc__stamped(_Atomic uint64_t *time, _Atomic uint64_t *gen_of, uint64_t gen) {
  if (atomic_load_explicit(gen_of, memory_order_acquire) != gen)
    return 0;
  uint64_t ns = atomic_load_explicit(time, memory_order_acquire);
  return atomic_load_explicit(gen_of, memory_order_relaxed) == gen ? ns : 0;
}

static void brc__note(brc_breaker_transition_t *t, int from, int to) {
  if (t) {
    t->from = from;
    t->to = to;
  }
}

_Static_assert(sizeof(brc_breaker_config_t) == BRC_BREAKER_CONFIG_WORDS * sizeof(uint64_t),
               "the configuration is BRC_BREAKER_CONFIG_WORDS words");

/* A double's bits as a word and back (memcpy of one word: a register move). */
static uint64_t brc__bits(double value) {
  uint64_t bits;
  memcpy(&bits, &value, sizeof bits);
  return bits;
}

static double brc__double(uint64_t bits) {
  double value;
  memcpy(&value, &bits, sizeof value);
  return value;
}

/* The configuration in force, as one snapshot. The copy in force is never
 * written: a reconfigure writes the other and then flips config_current, so
 * the sequence check fails (and the reader starts again) only when a second
 * reconfigure began writing this copy while it was read. Each field is
 * loaded into its own place: a block copy of the words would read back 8-byte
 * stores with wider loads, which stalls store forwarding (it cost the success
 * path ~20 ns). `closed`: only the four fields a CLOSED breaker decides on
 * (the rates, minimum_calls, consecutive_failures); the others are not
 * written, which spares the success path six loads. */
static inline void brc__config_of(brc_breaker_t *b, brc_breaker_config_t *out, int closed) {
  for (;;) {
    uint64_t current = atomic_load_explicit(&b->config_current, memory_order_acquire);
    _Atomic uint64_t *words = b->config[current & 1u].words, *seq_of = &b->config[current & 1u].seq;
    uint64_t seq = atomic_load_explicit(seq_of, memory_order_acquire);
    /* acquire: a word written after the odd number makes that number (or a later one) visible below */
    out->failure_rate = brc__double(atomic_load_explicit(&words[0], memory_order_acquire));
    out->slow_rate = brc__double(atomic_load_explicit(&words[1], memory_order_acquire));
    out->minimum_calls = atomic_load_explicit(&words[2], memory_order_acquire);
    out->consecutive_failures = atomic_load_explicit(&words[3], memory_order_acquire);
    if (!closed) {
      out->half_open_calls = atomic_load_explicit(&words[4], memory_order_acquire);
      out->max_half_open = atomic_load_explicit(&words[5], memory_order_acquire);
      out->wait_base = atomic_load_explicit(&words[6], memory_order_acquire);
      out->wait_multiplier = brc__double(atomic_load_explicit(&words[7], memory_order_acquire));
      out->wait_max = atomic_load_explicit(&words[8], memory_order_acquire);
      out->wait_jitter = brc__double(atomic_load_explicit(&words[9], memory_order_acquire));
    }
    if (!(seq & 1u) && atomic_load_explicit(seq_of, memory_order_relaxed) == seq)
      return;
  }
}

static void brc__config(brc_breaker_t *b, brc_breaker_config_t *out) { brc__config_of(b, out, 0); }

/* Writes a copy not in force (its readers, if any, see the odd number and start again). */
static void brc__config_write(brc_breaker_config_copy_t *copy, const brc_breaker_config_t *c) {
  const uint64_t words[BRC_BREAKER_CONFIG_WORDS] = {
      brc__bits(c->failure_rate), brc__bits(c->slow_rate), c->minimum_calls, c->consecutive_failures,
      c->half_open_calls,         c->max_half_open,        c->wait_base,     brc__bits(c->wait_multiplier),
      c->wait_max,                brc__bits(c->wait_jitter)};
  uint64_t seq = atomic_load_explicit(&copy->seq, memory_order_relaxed);
  atomic_store_explicit(&copy->seq, seq + 1, memory_order_relaxed);
  for (int i = 0; i < BRC_BREAKER_CONFIG_WORDS; i++) /* release: each after the odd number */
    atomic_store_explicit(&copy->words[i], words[i], memory_order_release);
  atomic_store_explicit(&copy->seq, seq + 2, memory_order_release);
}

/* Waits stay at most BRC_DURATION_MAX, and with jitter below twice that,
 * 2^63 ns: every double -> uint64_t conversion and every now + wait stays in
 * range. The negated comparisons also refuse NaN. */
static int brc__config_valid(const brc_breaker_config_t *c) {
  return c->failure_rate > 0.0 && c->failure_rate <= 1.0 && c->slow_rate > 0.0 && c->slow_rate <= 1.0 &&
         c->minimum_calls != 0 && c->half_open_calls != 0 && c->half_open_calls <= BRC_HALF_OPEN_CALLS_MAX &&
         c->max_half_open <= BRC_DURATION_MAX && c->wait_base != 0 && c->wait_multiplier >= 1.0 &&
         c->wait_max >= c->wait_base && c->wait_max <= BRC_DURATION_MAX && c->wait_jitter >= 0.0 &&
         c->wait_jitter < 1.0;
}

/* A zero-filled breaker has state 0, which no transition ever stores: every
 * call reads the state word anyway, and refuses it with BRC_EINVAL on the
 * path it takes when the state does not permit the call. */
#define BRC__UNSET 0

int brc_breaker_init(brc_breaker_t *b, const brc_breaker_config_t *c) {
  if (!brc__config_valid(c))
    return BRC_EINVAL;
  atomic_init(&b->config_current, 0);
  for (int copy = 0; copy < 2; copy++) {
    atomic_init(&b->config[copy].seq, 0);
    for (int i = 0; i < BRC_BREAKER_CONFIG_WORDS; i++)
      atomic_init(&b->config[copy].words[i], 0);
  }
  brc__config_write(&b->config[0], c); /* its sequence number ends even, as readers expect */
  atomic_init(&b->state, BRC__WORD(BRC_CLOSED, 0, 1));
  atomic_init(&b->open_until, 0);
  atomic_init(&b->open_gen, 0);
  atomic_init(&b->half_open_since, 0);
  atomic_init(&b->half_open_gen, 0);
  atomic_init(&b->probes, 0);
  atomic_init(&b->openings, 0);
  atomic_init(&b->consecutive, 0);
  atomic_init(&b->not_permitted, 0);
  atomic_init(&b->probes_swept, 0);
  atomic_init(&b->successful, 0);
  atomic_init(&b->failed, 0);
  atomic_init(&b->slow, 0);
  atomic_init(&b->ignored, 0);
  for (int i = 0; i < BRC_BREAKER_PROBE_LEASES; i++)
    atomic_init(&b->probe_leases[i], 0);
  return BRC_OK;
}

/* ns to wait in OPEN after the k-th opening since the last close: at most
 * wait_max before jitter (an infinite product is the cap too), so below
 * 2 * BRC_DURATION_MAX after it. */
static uint64_t brc__open_wait(const brc_breaker_config_t *c, uint64_t k) {
  double wait = (double)c->wait_base * pow(c->wait_multiplier, (double)(k > 0 ? k - 1 : 0));
  if (!(wait < (double)c->wait_max))
    wait = (double)c->wait_max;
  if (c->wait_jitter > 0.0)
    wait *= 1.0 + c->wait_jitter * (2.0 * brc_rng_uniform() - 1.0);
  return wait < 1.0 ? 1u : (uint64_t)wait;
}

/* Moves from state word `from` to `to`, doing what entering `to` requires.
 * Returns 1 if this caller made the move. The values a state reads are
 * stored before the state is published (tagged, so a caller that loses the
 * race leaves nothing the new state would read as its own). */
static int brc__move(brc_breaker_t *b, brc_window_t *w, uint64_t from, int to, uint64_t now,
                     uint64_t probes, brc_breaker_transition_t *t) {
  uint64_t gen = BRC__GEN(from) + 1;
  if (to == BRC_OPEN) {
    brc_breaker_config_t c;
    brc__config(b, &c);
    uint64_t k = atomic_load_explicit(&b->openings, memory_order_relaxed) + 1;
    uint64_t until = now + brc__open_wait(&c, k);
    brc__stamp(&b->open_until, &b->open_gen, gen, until);
  } else if (to == BRC_HALF_OPEN) {
    brc__stamp(&b->half_open_since, &b->half_open_gen, gen, now);
    uint64_t tally = atomic_load_explicit(&b->probes, memory_order_relaxed);
    while (!BRC__TAG_MATCHES(tally, gen) &&
           !atomic_compare_exchange_weak_explicit(&b->probes, &tally, BRC__TAG(gen), memory_order_release,
                                                  memory_order_relaxed)) {
    }
  } else if (to == BRC_CLOSED && w) {
    brc_window_clear(w, now);
  }
  if (!atomic_compare_exchange_strong_explicit(&b->state, &from, BRC__WORD(to, probes, gen),
                                               memory_order_acq_rel, memory_order_acquire))
    return 0;
  if (to == BRC_OPEN)
    atomic_fetch_add_explicit(&b->openings, 1, memory_order_relaxed);
  if (to == BRC_CLOSED) {
    atomic_store_explicit(&b->openings, 0, memory_order_relaxed);
    atomic_store_explicit(&b->consecutive, 0, memory_order_relaxed);
  }
  brc__note(t, BRC__STATE(from), to);
  return 1;
}

static int brc__reject(brc_breaker_t *b, uint64_t *retry_after, uint64_t value) {
  atomic_fetch_add_explicit(&b->not_permitted, 1, memory_order_relaxed);
  if (retry_after)
    *retry_after = value;
  return BRC_REFUSED;
}

int brc_breaker_acquire(brc_breaker_t *b, uint64_t now, uint64_t *ticket, uint64_t *retry_after,
                        brc_breaker_transition_t *t) {
  brc__note(t, 0, 0);
  uint64_t s = atomic_load_explicit(&b->state, memory_order_acquire);
  for (;;) {
    int state = BRC__STATE(s);
    if (state == BRC_CLOSED || state == BRC_METRICS_ONLY || state == BRC_DISABLED) {
      *ticket = BRC__GEN(s);
      return BRC_OK;
    }
    if (state == BRC__UNSET)
      return BRC_EINVAL;
    if (state == BRC_FORCED_OPEN)
      return brc__reject(b, retry_after, UINT64_MAX);
    if (!now)
      now = brc_now_ns();
    if (state == BRC_OPEN) {
      uint64_t until = brc__stamped(&b->open_until, &b->open_gen, BRC__GEN(s));
      if (now < until)
        return brc__reject(b, retry_after, until - now);
      if (until == 0) { /* published by a caller still on its way: not yet */
        brc_breaker_config_t c;
        brc__config(b, &c);
        return brc__reject(b, retry_after, c.wait_base);
      }
      if (brc__move(b, NULL, s, BRC_HALF_OPEN, now, 1, t)) {
        *ticket = BRC__GEN(s) + 1;
        return BRC_OK;
      }
      s = atomic_load_explicit(&b->state, memory_order_acquire);
      continue;
    }
    /* HALF_OPEN */
    brc_breaker_config_t c;
    brc__config(b, &c);
    uint64_t limit = c.max_half_open;
    if (limit) {
      uint64_t since = brc__stamped(&b->half_open_since, &b->half_open_gen, BRC__GEN(s));
      if (since && now - since >= limit && now > since) {
        if (brc__move(b, NULL, s, BRC_OPEN, now, 0, t)) {
          uint64_t until = brc__stamped(&b->open_until, &b->open_gen, BRC__GEN(s) + 1);
          return brc__reject(b, retry_after, until > now ? until - now : 0);
        }
        s = atomic_load_explicit(&b->state, memory_order_acquire);
        continue;
      }
    }
    if (BRC__PROBES(s) >= c.half_open_calls) {
      uint64_t since = limit ? brc__stamped(&b->half_open_since, &b->half_open_gen, BRC__GEN(s)) : 0;
      return brc__reject(b, retry_after, since && since + limit > now ? since + limit - now : 0);
    }
    if (atomic_compare_exchange_weak_explicit(&b->state, &s, s + (UINT64_C(1) << 3), memory_order_acq_rel,
                                              memory_order_acquire)) {
      *ticket = BRC__GEN(s);
      return BRC_OK;
    }
  }
}

int brc_breaker_try_permit(brc_breaker_t *b, uint64_t *ticket) {
  uint64_t s = atomic_load_explicit(&b->state, memory_order_acquire);
  int state = BRC__STATE(s);
  if (state != BRC_CLOSED && state != BRC_METRICS_ONLY && state != BRC_DISABLED)
    return state == BRC__UNSET ? BRC_EINVAL : BRC_REFUSED;
  *ticket = BRC__GEN(s);
  return BRC_OK;
}

static int brc__tripped(const brc_breaker_config_t *c, const brc_window_snapshot_t *snap) {
  if (snap->calls < c->minimum_calls || snap->calls == 0)
    return 0;
  double calls = (double)snap->calls;
  return (double)snap->failures >= c->failure_rate * calls || (double)snap->slow_calls >= c->slow_rate * calls;
}

/* Decides the HALF_OPEN of state word `s` on its probe tally, once enough
 * probes completed: 0 if not yet. The move is retried while that HALF_OPEN
 * lasts, as a probe taken or given back meanwhile changes the state word. */
static int brc__decide_probes(brc_breaker_t *b, brc_window_t *w, uint64_t s, uint64_t tally,
                              const brc_breaker_config_t *c, uint64_t now, brc_breaker_transition_t *t) {
  uint64_t completed = BRC__PROBE_COMPLETED(tally), failed = BRC__PROBE_FAILED(tally);
  int to;
  if (c->consecutive_failures && (failed || completed >= c->half_open_calls)) {
    /* simple mode: one failed probe re-opens, all probes succeeding close;
     * slowness does not count here, as it does not while CLOSED */
    to = failed ? BRC_OPEN : BRC_CLOSED;
  } else if (completed >= c->half_open_calls) {
    brc_window_snapshot_t probes = {.calls = completed, .failures = failed, .slow_calls = BRC__PROBE_SLOW(tally)};
    brc_breaker_config_t decide = *c;
    decide.minimum_calls = 1;
    to = brc__tripped(&decide, &probes) ? BRC_OPEN : BRC_CLOSED;
  } else {
    return 0;
  }
  if (!now)
    now = brc_now_ns();
  uint64_t gen = BRC__GEN(s);
  while (!brc__move(b, w, s, to, now, 0, t)) {
    s = atomic_load_explicit(&b->state, memory_order_acquire);
    if (BRC__STATE(s) != BRC_HALF_OPEN || BRC__GEN(s) != gen)
      break; /* decided by another */
  }
  return 1;
}

static int brc__record_probe(brc_breaker_t *b, brc_window_t *w, uint64_t s, unsigned outcome, uint64_t now,
                             const brc_breaker_config_t *c, brc_breaker_transition_t *t) {
  uint64_t gen = BRC__GEN(s);
  uint64_t tally = atomic_load_explicit(&b->probes, memory_order_acquire), next;
  do {
    /* A leftover of an earlier half-open, or one past the decision (possible
     * once a reconfigure lowered half_open_calls): the fields stay in range. */
    if (!BRC__TAG_MATCHES(tally, gen) || BRC__PROBE_COMPLETED(tally) >= c->half_open_calls ||
        BRC__PROBE_COMPLETED(tally) >= BRC_HALF_OPEN_CALLS_MAX)
      return BRC_OK;
    next = tally + (UINT64_C(1) << 20) + ((outcome & BRC_OUTCOME_FAILURE) ? UINT64_C(1) << 10 : 0) +
           ((outcome & BRC_OUTCOME_SLOW) ? 1u : 0u);
  } while (!atomic_compare_exchange_weak_explicit(&b->probes, &tally, next, memory_order_acq_rel,
                                                  memory_order_acquire));
  brc__decide_probes(b, w, s, next, c, now, t);
  return BRC_OK;
}

int brc_breaker_record(brc_breaker_t *b, brc_window_t *w, uint64_t ticket, unsigned outcome,
                       uint64_t duration, uint64_t now, brc_breaker_transition_t *t) {
  brc__note(t, 0, 0);
  brc_breaker_config_t config;
  const brc_breaker_config_t *c = &config;
  uint64_t s = atomic_load_explicit(&b->state, memory_order_acquire);
  int state = BRC__STATE(s);
  if (state == BRC__UNSET)
    return BRC_EINVAL;
  /* Every settled call counts, whatever the state it ends in (a late outcome of
   * an earlier state too): the totals are of calls, not of what decided. */
  atomic_fetch_add_explicit((outcome & BRC_OUTCOME_FAILURE) ? &b->failed : &b->successful, 1,
                            memory_order_relaxed);
  if (outcome & BRC_OUTCOME_SLOW)
    atomic_fetch_add_explicit(&b->slow, 1, memory_order_relaxed);
  if (state == BRC_HALF_OPEN) {
    if (BRC__GEN(s) != ticket)
      return BRC_OK;
    brc__config(b, &config);
    return brc__record_probe(b, w, s, outcome, now, c, t);
  }
  if (state != BRC_CLOSED && state != BRC_METRICS_ONLY)
    return BRC_OK;
  brc__config_of(b, &config, 1); /* the window decides with these four; brc__move reads its own */
  if (!now && w->kind == BRC_WINDOW_TIME)
    now = brc_now_ns();
  if (brc_window_record(w, outcome, duration, now) != BRC_OK)
    return BRC_EINVAL;
  int tripped;
  if (c->consecutive_failures) {
    if (outcome & BRC_OUTCOME_FAILURE) {
      tripped = atomic_fetch_add_explicit(&b->consecutive, 1, memory_order_relaxed) + 1 >= c->consecutive_failures;
    } else {
      if (atomic_load_explicit(&b->consecutive, memory_order_relaxed))
        atomic_store_explicit(&b->consecutive, 0, memory_order_relaxed);
      tripped = 0;
    }
  } else {
    brc_window_snapshot_t snap;
    brc_window_snapshot(w, now, &snap);
    tripped = brc__tripped(c, &snap);
  }
  if (!tripped)
    return BRC_OK;
  if (state == BRC_METRICS_ONLY)
    return BRC_WOULD_OPEN;
  if (!now)
    now = brc_now_ns();
  brc__move(b, w, s, BRC_OPEN, now, 0, t);
  return BRC_OK;
}

int brc_breaker_release(brc_breaker_t *b, uint64_t ticket) {
  uint64_t s = atomic_load_explicit(&b->state, memory_order_acquire);
  if (BRC__STATE(s) == BRC__UNSET)
    return BRC_EINVAL;
  while (BRC__STATE(s) == BRC_HALF_OPEN && BRC__GEN(s) == ticket && BRC__PROBES(s) > 0) {
    if (atomic_compare_exchange_weak_explicit(&b->state, &s, s - (UINT64_C(1) << 3), memory_order_acq_rel,
                                              memory_order_acquire))
      break;
  }
  return BRC_OK;
}

int brc_breaker_count_ignored(brc_breaker_t *b) {
  if (BRC__STATE(atomic_load_explicit(&b->state, memory_order_relaxed)) == BRC__UNSET)
    return BRC_EINVAL;
  atomic_fetch_add_explicit(&b->ignored, 1, memory_order_relaxed);
  return BRC_OK;
}

int brc_breaker_transition(brc_breaker_t *b, brc_window_t *w, int state, uint64_t now,
                           brc_breaker_transition_t *t) {
  brc__note(t, 0, 0);
  if (state < BRC_CLOSED || state > BRC_METRICS_ONLY)
    return BRC_EINVAL;
  uint64_t s = atomic_load_explicit(&b->state, memory_order_acquire);
  if (BRC__STATE(s) == BRC__UNSET || (w && w->kind != BRC_WINDOW_COUNT && w->kind != BRC_WINDOW_TIME))
    return BRC_EINVAL;
  if (!now)
    now = brc_now_ns();
  while (!brc__move(b, w, s, state, now, 0, t))
    s = atomic_load_explicit(&b->state, memory_order_acquire);
  return BRC_OK;
}

int brc_breaker_reconfigure(brc_breaker_t *b, brc_window_t *w, const brc_breaker_config_t *config,
                            uint64_t now, brc_breaker_transition_t *t) {
  brc_breaker_config_t old;
  brc__note(t, 0, 0);
  if (BRC__STATE(atomic_load_explicit(&b->state, memory_order_acquire)) == BRC__UNSET ||
      !brc__config_valid(config))
    return BRC_EINVAL;
  uint64_t current = atomic_load_explicit(&b->config_current, memory_order_relaxed);
  do {
    while (current & 2u) /* another reconfigure is writing: they go one at a time */
      current = atomic_load_explicit(&b->config_current, memory_order_relaxed);
  } while (!atomic_compare_exchange_weak_explicit(&b->config_current, &current, current | 2u,
                                                  memory_order_acquire, memory_order_relaxed));
  brc__config(b, &old);
  brc__config_write(&b->config[(current & 1u) ^ 1u], config);
  atomic_store_explicit(&b->config_current, (current & 1u) ^ 1u, memory_order_release);
  if (config->consecutive_failures && !old.consecutive_failures)
    atomic_store_explicit(&b->consecutive, 0, memory_order_relaxed);
  uint64_t s = atomic_load_explicit(&b->state, memory_order_acquire);
  if (BRC__STATE(s) == BRC_HALF_OPEN) {
    uint64_t tally = atomic_load_explicit(&b->probes, memory_order_acquire);
    if (BRC__TAG_MATCHES(tally, BRC__GEN(s)))
      brc__decide_probes(b, w, s, tally, config, now, t);
  }
  return BRC_OK;
}

int brc_breaker_config(brc_breaker_t *b, brc_breaker_config_t *out) {
  if (BRC__STATE(atomic_load_explicit(&b->state, memory_order_acquire)) == BRC__UNSET)
    return BRC_EINVAL;
  brc__config(b, out);
  return BRC_OK;
}

int brc_breaker_set_open_until(brc_breaker_t *b, uint64_t generation, uint64_t until) {
  uint64_t s = atomic_load_explicit(&b->state, memory_order_acquire);
  if (BRC__STATE(s) != BRC_OPEN || BRC__GEN(s) != generation)
    return BRC__STATE(s) == BRC__UNSET ? BRC_EINVAL : BRC_STALE;
  brc__stamp(&b->open_until, &b->open_gen, generation, until);
  return BRC_OK;
}

int brc_breaker_report(brc_breaker_t *b, uint64_t now, brc_breaker_report_t *out) {
  uint64_t s = atomic_load_explicit(&b->state, memory_order_acquire);
  if (BRC__STATE(s) == BRC__UNSET)
    return BRC_EINVAL;
  out->state = BRC__STATE(s);
  out->generation = BRC__GEN(s);
  out->openings = atomic_load_explicit(&b->openings, memory_order_relaxed);
  out->not_permitted = atomic_load_explicit(&b->not_permitted, memory_order_relaxed);
  out->probes_out = out->state == BRC_HALF_OPEN ? BRC__PROBES(s) : 0;
  out->consecutive = atomic_load_explicit(&b->consecutive, memory_order_relaxed);
  out->successful = atomic_load_explicit(&b->successful, memory_order_relaxed);
  out->failed = atomic_load_explicit(&b->failed, memory_order_relaxed);
  out->slow = atomic_load_explicit(&b->slow, memory_order_relaxed);
  out->ignored = atomic_load_explicit(&b->ignored, memory_order_relaxed);
  out->retry_after = 0;
  if (out->state == BRC_OPEN) {
    uint64_t until = brc__stamped(&b->open_until, &b->open_gen, BRC__GEN(s));
    out->retry_after = until > now ? until - now : 0;
  }
  return BRC_OK;
}

/* ---- probe leases (shared breakers) ---- */

/* A lease word: generation (low 20 bits) << 44 | pid (22) << 22 | start
 * ticks (low 22); never 0, as a pid is never 0. */
#define BRC__LEASE_PID_MAX (UINT64_C(1) << 22)
#define BRC__LEASE_LOW22 UINT64_C(0x3FFFFF)
#define BRC__LEASE_WORD(tag, gen) (((gen)&0xFFFFFu) << 44 | ((tag) >> 32) << 22 | ((tag)&BRC__LEASE_LOW22))
#define BRC__LEASE_GEN_MATCHES(word, gen) (((word) >> 44) == ((gen)&0xFFFFFu))
#define BRC__TICKET_GEN(ticket) ((ticket) & ~BRC_BREAKER_LEASED)

int brc__lease_holder_dead(uint64_t pid, uint64_t start, uint64_t mask); /* leases.c */

/* Takes a free word for `word`: its index, or -1 if none is free. */
static int brc__lease_take(brc_breaker_t *b, uint64_t word) {
  for (int i = 0; i < BRC_BREAKER_PROBE_LEASES; i++) {
    uint64_t w = atomic_load_explicit(&b->probe_leases[i], memory_order_relaxed);
    if (w == 0 && atomic_compare_exchange_strong_explicit(&b->probe_leases[i], &w, word, memory_order_acq_rel,
                                                          memory_order_relaxed))
      return i;
  }
  return -1;
}

/* Frees one word holding `word` (the caller's own: no other process writes it). */
static void brc__lease_free(brc_breaker_t *b, uint64_t word) {
  for (int i = 0; i < BRC_BREAKER_PROBE_LEASES; i++) {
    uint64_t w = atomic_load_explicit(&b->probe_leases[i], memory_order_relaxed);
    if (w == word && atomic_compare_exchange_strong_explicit(&b->probe_leases[i], &w, 0, memory_order_acq_rel,
                                                             memory_order_relaxed))
      return;
  }
}

int brc_breaker_sweep_probes(brc_breaker_t *b, uint64_t now) {
  int freed = 0;
  if (BRC__STATE(atomic_load_explicit(&b->state, memory_order_acquire)) == BRC__UNSET)
    return BRC_EINVAL;
  atomic_store_explicit(&b->probes_swept, now, memory_order_relaxed);
  for (int i = 0; i < BRC_BREAKER_PROBE_LEASES; i++) {
    uint64_t w = atomic_load_explicit(&b->probe_leases[i], memory_order_acquire);
    /* One CAS from the dead holder's word: whoever wins it gives the probe
     * back, so a probe comes back once. */
    if (w == 0 || !brc__lease_holder_dead((w >> 22) & BRC__LEASE_LOW22, w, BRC__LEASE_LOW22) ||
        !atomic_compare_exchange_strong_explicit(&b->probe_leases[i], &w, 0, memory_order_acq_rel,
                                                 memory_order_relaxed))
      continue;
    freed++;
    uint64_t s = atomic_load_explicit(&b->state, memory_order_acquire);
    if (BRC__STATE(s) == BRC_HALF_OPEN && BRC__LEASE_GEN_MATCHES(w, BRC__GEN(s)))
      brc_breaker_release(b, BRC__GEN(s));
  }
  return freed;
}

/* Every probe out: sweep, unless some process swept a moment ago (one wins the CAS). */
static void brc__sweep_spaced(brc_breaker_t *b, uint64_t now) {
  uint64_t swept = atomic_load_explicit(&b->probes_swept, memory_order_relaxed);
  if (swept != 0 && now - swept < BRC_LEASES_SWEEP_NS)
    return;
  if (atomic_compare_exchange_strong_explicit(&b->probes_swept, &swept, now, memory_order_relaxed,
                                              memory_order_relaxed))
    brc_breaker_sweep_probes(b, now);
}

int brc_breaker_acquire_leased(brc_breaker_t *b, uint64_t tag, uint64_t now, uint64_t *ticket,
                               uint64_t *retry_after, brc_breaker_transition_t *t) {
  uint64_t s = atomic_load_explicit(&b->state, memory_order_acquire), word = 0;
  int state = BRC__STATE(s), rc;
  uint64_t pid = tag >> 32;
  if ((state == BRC_OPEN || state == BRC_HALF_OPEN) && pid > 0 && pid < BRC__LEASE_PID_MAX) {
    brc_breaker_config_t c;
    brc__config(b, &c);
    if (!now)
      now = brc_now_ns();
    if (state == BRC_HALF_OPEN && BRC__PROBES(s) >= c.half_open_calls) {
      brc__sweep_spaced(b, now);
      s = atomic_load_explicit(&b->state, memory_order_acquire);
    }
    if (BRC__STATE(s) == BRC_HALF_OPEN && BRC__PROBES(s) < c.half_open_calls) {
      word = BRC__LEASE_WORD(tag, BRC__GEN(s));
    } else if (BRC__STATE(s) == BRC_OPEN) {
      uint64_t until = brc__stamped(&b->open_until, &b->open_gen, BRC__GEN(s));
      if (until != 0 && now >= until)
        word = BRC__LEASE_WORD(tag, BRC__GEN(s) + 1);
    }
    /* The word first, the probe second: killed between the two, the word's
     * sweep gives back a probe never taken, which wedges nothing. */
    if (word && brc__lease_take(b, word) < 0)
      word = 0;
  }
  rc = brc_breaker_acquire(b, now, ticket, retry_after, t);
  if (!word)
    return rc;
  if (rc != BRC_OK) {
    brc__lease_free(b, word);
    return rc;
  }
  if (!BRC__LEASE_GEN_MATCHES(word, *ticket)) {
    /* permitted in another state than the one looked at: the word follows */
    uint64_t mine = BRC__LEASE_WORD(tag, *ticket);
    for (int i = 0; i < BRC_BREAKER_PROBE_LEASES; i++) {
      uint64_t w = word;
      if (atomic_compare_exchange_strong_explicit(&b->probe_leases[i], &w, mine, memory_order_acq_rel,
                                                  memory_order_relaxed))
        break;
    }
  }
  *ticket |= BRC_BREAKER_LEASED;
  return rc;
}

int brc_breaker_record_leased(brc_breaker_t *b, brc_window_t *w, uint64_t tag, uint64_t ticket,
                              unsigned outcome, uint64_t duration, uint64_t now, brc_breaker_transition_t *t) {
  int rc = brc_breaker_record(b, w, BRC__TICKET_GEN(ticket), outcome, duration, now, t);
  if (ticket & BRC_BREAKER_LEASED)
    brc__lease_free(b, BRC__LEASE_WORD(tag, BRC__TICKET_GEN(ticket)));
  return rc;
}

int brc_breaker_release_leased(brc_breaker_t *b, uint64_t tag, uint64_t ticket) {
  int rc = brc_breaker_release(b, BRC__TICKET_GEN(ticket));
  if (ticket & BRC_BREAKER_LEASED)
    brc__lease_free(b, BRC__LEASE_WORD(tag, BRC__TICKET_GEN(ticket)));
  return rc;
}
