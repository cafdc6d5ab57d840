#include <stdint.h>

#include "brace.h"

/* The process-wide seed and its generation: a thread whose cached generation
 * differs reseeds before its next draw, so brc_rng_seed() reaches every thread
 * without touching other threads' state. Generation 0 means "never seeded
 * explicitly": threads then seed from their own address and the clock. */
static _Atomic uint64_t brc__seed;
static _Atomic uint64_t brc__seed_generation;
/* Orders the threads that draw after a seed, so each gets its own stream. */
static _Atomic uint64_t brc__stream_counter;

typedef struct {
  uint64_t s[4];
  uint64_t generation;
  int ready;
} brc__rng_t;

static _Thread_local brc__rng_t brc__rng;

static uint64_t brc__splitmix64(uint64_t *x) {
  uint64_t z = (*x += 0x9e3779b97f4a7c15u);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
  return z ^ (z >> 31);
}

static uint64_t brc__rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static void brc__rng_reseed(brc__rng_t *r, uint64_t generation) {
  uint64_t stream = atomic_fetch_add_explicit(&brc__stream_counter, 1, memory_order_relaxed);
  uint64_t x;
  if (generation == 0)
    x = brc_now_ns() ^ (uint64_t)(uintptr_t)r ^ (stream << 32);
  else
    x = atomic_load_explicit(&brc__seed, memory_order_relaxed) ^
        (stream * 0xd1b54a32d192ed03u);
  for (int i = 0; i < 4; i++)
    r->s[i] = brc__splitmix64(&x);
  r->generation = generation;
  r->ready = 1;
}

void brc_rng_seed(uint64_t seed) {
  atomic_store_explicit(&brc__seed, seed, memory_order_relaxed);
  atomic_store_explicit(&brc__stream_counter, 0, memory_order_relaxed);
  /* Release: a thread that sees the new generation also sees the seed. */
  atomic_fetch_add_explicit(&brc__seed_generation, 1, memory_order_release);
}

uint64_t brc_rng_next(void) {
  brc__rng_t *r = &brc__rng;
  uint64_t generation = atomic_load_explicit(&brc__seed_generation, memory_order_acquire);
  if (!r->ready || r->generation != generation)
    brc__rng_reseed(r, generation);
  uint64_t *s = r->s;
  uint64_t result = brc__rotl(s[1] * 5, 7) * 9;
  uint64_t t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = brc__rotl(s[3], 45);
  return result;
}

double brc_rng_uniform(void) { return (double)(brc_rng_next() >> 11) * 0x1.0p-53; }
