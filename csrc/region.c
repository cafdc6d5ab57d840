/* The shared-memory region: a header, a table of named slots and the states
 * they point to (by offset), in one POSIX shared-memory object. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "brace.h"

/* The region is shared by processes through plain loads and stores: the
 * 64-bit atomics must be real instructions, never a lock in one process. */
_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "64-bit atomics must be lock-free to be shared");
_Static_assert(sizeof(long) != 8 || ATOMIC_LONG_LOCK_FREE == 2, "64-bit atomics must be lock-free");
_Static_assert(sizeof(_Atomic uint64_t) == 8, "an atomic word is 8 bytes");
/* The shared structs' sizes are part of the layout (the header records them). */
_Static_assert(sizeof(brc_gcra_t) == 32, "brc_gcra_t changed: bump BRC_REGION_VERSION");
_Static_assert(sizeof(brc_breaker_t) == 424, "brc_breaker_t changed: bump BRC_REGION_VERSION");
_Static_assert(sizeof(brc_bulkhead_t) == 8, "brc_bulkhead_t changed: bump BRC_REGION_VERSION");
_Static_assert(sizeof(brc_budget_t) == 192, "brc_budget_t changed: bump BRC_REGION_VERSION");
_Static_assert(sizeof(brc_leases_t) == 64, "brc_leases_t changed: bump BRC_REGION_VERSION");
_Static_assert(sizeof(brc_region_header_t) == 128, "the header is two 64-byte lines");
_Static_assert(sizeof(brc_region_slot_t) == 256, "a slot is four 64-byte lines");

#define BRC__PATH_MAX 202 /* '/', 200 bytes of name, NUL */
#define BRC__TABLE (sizeof(brc_region_header_t) + BRC_REGION_SLOTS * sizeof(brc_region_slot_t))

struct brc_region_s {
  unsigned char *base; /* the mapping, process-local */
  uint64_t size;
};

static const uint64_t brc__sizes[BRC_REGION_SIZES] = {
    sizeof(brc_gcra_t),          sizeof(brc_breaker_t),
    sizeof(brc_bulkhead_t),      sizeof(brc_budget_t),
    sizeof(brc_region_header_t), sizeof(brc_region_slot_t),
    sizeof(brc_keyed_t),         sizeof(brc_leases_t),
    0,                           0,
};

static uint64_t brc__mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts); /* never the frozen test clock: waits are real */
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void brc__nap(long ns) {
  struct timespec ts = {0, ns};
  nanosleep(&ts, NULL);
}

/* Is process `pid` alive? (A pid that cannot be signalled but exists is.) */
static int brc__alive(uint64_t pid) {
  if (pid == 0 || pid > INT32_MAX)
    return 1;
  return kill((pid_t)pid, 0) == 0 || errno != ESRCH;
}

/* The errno of a failed system call as a status (errno kept for BRC_EIO). */
static int brc__from_errno(int error) {
  switch (error) {
  case ENOENT:
    return BRC_ENOENT;
  case EACCES:
  case EPERM:
    return BRC_EACCES;
  case ENOMEM:
    return BRC_ENOMEM;
  case EINVAL:
  case ENAMETOOLONG:
    return BRC_EINVAL;
  case ENOSPC:
  case EFBIG:
    return BRC_ENOSPC;
  default:
    errno = error;
    return BRC_EIO;
  }
}

/* "/name" into path, or -1 if the name is not 1..200 bytes of [A-Za-z0-9._-]. */
static int brc__path(const char *name, char path[BRC__PATH_MAX]) {
  size_t n;
  if (name == NULL)
    return -1;
  if (name[0] == '/')
    name++;
  n = strlen(name);
  if (n == 0 || n > BRC__PATH_MAX - 2)
    return -1;
  for (size_t i = 0; i < n; i++) {
    char ch = name[i];
    if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
          ch == '.' || ch == '_' || ch == '-'))
      return -1;
  }
  path[0] = '/';
  memcpy(path + 1, name, n + 1);
  return 0;
}

static brc_region_header_t *brc__header(const brc_region_t *r) {
  return (brc_region_header_t *)(void *)r->base;
}

static brc_region_slot_t *brc__slot_at(const brc_region_t *r, uint64_t i) {
  return (brc_region_slot_t *)(void *)(r->base + sizeof(brc_region_header_t)) + i;
}

static int brc__map(brc_region_t *r, int fd, uint64_t size) {
  void *base = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (base == MAP_FAILED)
    return brc__from_errno(errno);
  r->base = base;
  r->size = size;
  return BRC_OK;
}

/* The creator: size the object (sparse), write the header, publish the magic. */
static int brc__create(brc_region_t *r, int fd, uint64_t capacity) {
  brc_region_header_t *h;
  int rc;
  if (fchmod(fd, S_IRUSR | S_IWUSR) != 0 || ftruncate(fd, (off_t)capacity) != 0)
    return brc__from_errno(errno);
  if ((rc = brc__map(r, fd, capacity)) != BRC_OK)
    return rc;
  h = brc__header(r);
  atomic_store_explicit(&h->creator, (uint64_t)getpid(), memory_order_relaxed);
  h->version = BRC_REGION_VERSION;
  memcpy(h->sizes, brc__sizes, sizeof h->sizes);
  h->capacity = capacity;
  h->slots = BRC_REGION_SLOTS;
  atomic_store_explicit(&h->bump, (uint64_t)BRC__TABLE, memory_order_relaxed);
  atomic_store_explicit(&h->magic, BRC_REGION_MAGIC, memory_order_release);
  return BRC_OK;
}

/* An opener: wait (bounded) for the creator's size and magic, then check the layout. */
static int brc__attach(brc_region_t *r, int fd) {
  const uint64_t deadline = brc__mono_ns() + BRC_REGION_WAIT_NS;
  brc_region_header_t *h;
  struct stat st;
  int rc;
  for (;;) {
    if (fstat(fd, &st) != 0)
      return brc__from_errno(errno);
    if ((uint64_t)st.st_size >= sizeof(brc_region_header_t))
      break;
    if (brc__mono_ns() > deadline)
      return BRC_ETIMEDOUT; /* never sized: its creator died or hangs before ftruncate */
    brc__nap(1000000);
  }
  if ((rc = brc__map(r, fd, (uint64_t)st.st_size)) != BRC_OK)
    return rc;
  h = brc__header(r);
  for (;;) {
    uint64_t magic = atomic_load_explicit(&h->magic, memory_order_acquire);
    if (magic == BRC_REGION_MAGIC)
      break;
    if (magic != 0)
      return BRC_EVERSION;
    if (!brc__alive(atomic_load_explicit(&h->creator, memory_order_relaxed)))
      return BRC_EOWNERDEAD;
    if (brc__mono_ns() > deadline)
      return BRC_ETIMEDOUT;
    brc__nap(100000);
  }
  if (r->size < BRC__TABLE || h->version != BRC_REGION_VERSION || h->capacity != r->size ||
      h->slots != BRC_REGION_SLOTS || memcmp(h->sizes, brc__sizes, sizeof h->sizes) != 0)
    return BRC_EVERSION;
  return BRC_OK;
}

int brc_region_open(const char *name, uint64_t capacity, brc_region_t **out) {
  char path[BRC__PATH_MAX];
  brc_region_t *r;
  int fd = -1, created = 0, rc, error;
  if (out == NULL || brc__path(name, path) != 0 ||
      (capacity != 0 && (capacity < BRC_REGION_CAPACITY_MIN || capacity > BRC_REGION_CAPACITY_MAX)))
    return BRC_EINVAL;
  *out = NULL;
  if ((r = calloc(1, sizeof *r)) == NULL)
    return BRC_ENOMEM;
  for (int tries = 0; fd < 0 && tries < 100; tries++) {
    if (capacity != 0) {
      fd = shm_open(path, O_RDWR | O_CREAT | O_EXCL, S_IRUSR | S_IWUSR);
      if (fd >= 0) {
        created = 1;
        break;
      }
      if (errno != EEXIST)
        break;
    }
    fd = shm_open(path, O_RDWR, 0);
    if (fd < 0 && (errno != ENOENT || capacity == 0))
      break; /* ENOENT with a capacity: unlinked in between, create it */
  }
  if (fd < 0) {
    rc = brc__from_errno(errno);
    free(r);
    return rc;
  }
  rc = created ? brc__create(r, fd, capacity) : brc__attach(r, fd);
  error = errno;
  close(fd);
  if (rc != BRC_OK) {
    if (created)
      shm_unlink(path); /* half-made: let the next open start afresh */
    if (r->base != NULL)
      munmap(r->base, (size_t)r->size);
    free(r);
    errno = error;
    return rc;
  }
  *out = r;
  return BRC_OK;
}

void brc_region_close(brc_region_t *r) {
  if (r == NULL)
    return;
  munmap(r->base, (size_t)r->size);
  free(r);
}

int brc_region_unlink(const char *name) {
  char path[BRC__PATH_MAX];
  if (brc__path(name, path) != 0)
    return BRC_EINVAL;
  return shm_unlink(path) == 0 ? BRC_OK : brc__from_errno(errno);
}

uint64_t brc_region_capacity(const brc_region_t *r) { return r->size; }

uint64_t brc_region_used(const brc_region_t *r) {
  return atomic_load_explicit(&brc__header(r)->bump, memory_order_relaxed);
}

/* FNV-1a: where a name's probe sequence starts. */
static uint64_t brc__hash(const char *s) {
  uint64_t h = UINT64_C(14695981039346656037);
  for (; *s; s++)
    h = (h ^ (unsigned char)*s) * UINT64_C(1099511628211);
  return h;
}

static int brc__slot_name_ok(const char *slot_name) {
  if (slot_name == NULL)
    return 0;
  size_t n = strlen(slot_name);
  return n >= 1 && n <= BRC_REGION_NAME_MAX;
}

/* The claimer's part: state space, fields, init, then READY (release). On
 * failure the slot goes back to EMPTY (its state space is not reused). */
static int brc__fill(brc_region_t *r, brc_region_slot_t *s, uint64_t mine, const char *slot_name,
                     uint32_t kind, const void *config, size_t config_len, size_t state_bytes,
                     int (*init)(void *, const void *), void **state) {
  brc_region_header_t *h = brc__header(r);
  const uint64_t align = BRC_REGION_ALIGN;
  uint64_t need = ((uint64_t)state_bytes + align - 1) & ~(align - 1);
  uint64_t offset = atomic_load_explicit(&h->bump, memory_order_relaxed);
  void *p;
  int rc;
  do {
    if (offset > r->size || need > r->size - offset) {
      atomic_store_explicit(&s->status, BRC_SLOT_EMPTY, memory_order_release);
      return BRC_ENOSPC;
    }
  } while (!atomic_compare_exchange_weak_explicit(&h->bump, &offset, offset + need,
                                                  memory_order_relaxed, memory_order_relaxed));
  p = r->base + offset;
  memset(p, 0, (size_t)need); /* fresh pages are zero; this also maps them now */
  memset(s->name, 0, sizeof s->name);
  memcpy(s->name, slot_name, strlen(slot_name));
  s->kind = kind;
  s->config_len = (uint32_t)config_len;
  memset(s->config, 0, sizeof s->config);
  if (config_len)
    memcpy(s->config, config, config_len);
  s->offset = offset;
  s->state_bytes = (uint64_t)state_bytes;
  if (init != NULL && (rc = init(p, s->config)) < 0) {
    atomic_store_explicit(&s->status, BRC_SLOT_EMPTY, memory_order_release);
    return rc;
  }
  atomic_store_explicit(&s->status, (mine & ~UINT64_C(3)) | BRC_SLOT_READY, memory_order_release);
  *state = p;
  return BRC_OK;
}

/* A READY slot of this name: the same kind, size and configuration? */
static int brc__matches(brc_region_t *r, brc_region_slot_t *s, uint32_t kind, const void *config,
                        size_t config_len, size_t state_bytes, void **state) {
  if (s->kind != kind || s->config_len != config_len || s->state_bytes != state_bytes ||
      (config_len && memcmp(s->config, config, config_len) != 0))
    return BRC_EEXIST;
  if (s->offset < BRC__TABLE || s->offset > r->size || state_bytes > r->size - s->offset)
    return BRC_EVERSION; /* corrupt */
  *state = r->base + s->offset;
  return BRC_OK;
}

/* size: one probe loop with its three slot phases; split, it would read worse. */
int brc_region_slot(brc_region_t *r, const char *slot_name, uint32_t kind, const void *config,
                    size_t config_len, size_t state_bytes,
                    int (*init)(void *state, const void *config), void **state) {
  const uint64_t mine = (uint64_t)getpid() << 2 | BRC_SLOT_INITIALISING;
  uint64_t deadline, start;
  if (r == NULL || state == NULL || !brc__slot_name_ok(slot_name) || kind == 0 ||
      config_len > BRC_REGION_CONFIG_MAX || (config == NULL && config_len != 0) ||
      state_bytes == 0 || state_bytes > r->size)
    return BRC_EINVAL;
  deadline = brc__mono_ns() + BRC_REGION_WAIT_NS;
  start = brc__hash(slot_name) % BRC_REGION_SLOTS;
  /* Open addressing with a fixed probe sequence per name: slots never return
   * to EMPTY once READY, and nobody passes a slot before it is READY, so two
   * processes claiming one name stop at the same slot. */
  for (uint64_t i = 0; i < BRC_REGION_SLOTS; i++) {
    brc_region_slot_t *s = brc__slot_at(r, (start + i) % BRC_REGION_SLOTS);
    for (;;) {
      uint64_t status = atomic_load_explicit(&s->status, memory_order_acquire);
      uint64_t phase = status & 3u;
      if (phase == BRC_SLOT_READY) {
        if (strncmp(s->name, slot_name, sizeof s->name) != 0)
          break; /* another name's: the next slot */
        return brc__matches(r, s, kind, config, config_len, state_bytes, state);
      }
      if (phase == BRC_SLOT_EMPTY || !brc__alive(status >> 2)) {
        /* free, or claimed by a process that died: claim it */
        if (atomic_compare_exchange_strong_explicit(&s->status, &status, mine, memory_order_acq_rel,
                                                    memory_order_acquire))
          return brc__fill(r, s, mine, slot_name, kind, config, config_len, state_bytes, init,
                           state);
        continue;
      }
      if (brc__mono_ns() > deadline)
        return BRC_ETIMEDOUT;
      brc__nap(50000); /* another process initialises it */
    }
  }
  return BRC_ENOSPC;
}

int brc_region_slot_info(brc_region_t *r, const char *slot_name, brc_region_slot_info_t *out) {
  uint64_t start;
  if (r == NULL || out == NULL || !brc__slot_name_ok(slot_name))
    return BRC_EINVAL;
  start = brc__hash(slot_name) % BRC_REGION_SLOTS;
  for (uint64_t i = 0; i < BRC_REGION_SLOTS; i++) {
    brc_region_slot_t *s = brc__slot_at(r, (start + i) % BRC_REGION_SLOTS);
    uint64_t phase = atomic_load_explicit(&s->status, memory_order_acquire) & 3u;
    if (phase == BRC_SLOT_EMPTY)
      return BRC_ENOENT;
    if (phase == BRC_SLOT_READY && strncmp(s->name, slot_name, sizeof s->name) == 0) {
      out->kind = s->kind;
      out->config_len = s->config_len;
      out->state_bytes = s->state_bytes;
      memcpy(out->config, s->config, sizeof out->config);
      return BRC_OK;
    }
  }
  return BRC_ENOENT;
}

static int brc__gcra_slot_init(void *state, const void *config) {
  uint64_t c[2];
  memcpy(c, config, sizeof c);
  return brc_gcra_init(state, c[0], c[1]);
}

int brc_region_gcra(brc_region_t *r, const char *slot_name, uint64_t interval, uint64_t burst,
                    brc_gcra_t **out) {
  uint64_t config[2] = {interval, burst};
  brc_gcra_t probe;
  void *state = NULL;
  int rc;
  if (out == NULL)
    return BRC_EINVAL;
  if ((rc = brc_gcra_init(&probe, interval, burst)) != BRC_OK)
    return rc; /* refused before any slot is claimed */
  rc = brc_region_slot(r, slot_name, BRC_KIND_GCRA, config, sizeof config, sizeof(brc_gcra_t),
                       brc__gcra_slot_init, &state);
  if (rc == BRC_OK)
    *out = state;
  return rc;
}

/* A breaker slot's config bytes: the breaker's, then its window's. */
typedef struct {
  brc_breaker_config_t breaker;
  uint64_t window[3]; /* kind, size, bucket */
} brc__breaker_slot_config_t;

_Static_assert(sizeof(brc__breaker_slot_config_t) == 104, "no padding in a breaker's config bytes");
_Static_assert(sizeof(brc__breaker_slot_config_t) <= BRC_REGION_CONFIG_MAX, "it fits a slot");

#define BRC__BREAKER_BYTES                                                                         \
  ((sizeof(brc_breaker_t) + BRC_REGION_ALIGN - 1) & ~(size_t)(BRC_REGION_ALIGN - 1))

static int brc__breaker_slot_init(void *state, const void *config) {
  brc__breaker_slot_config_t c;
  int rc;
  memcpy(&c, config, sizeof c);
  rc = brc_window_init((brc_window_t *)(void *)((unsigned char *)state + BRC__BREAKER_BYTES),
                       c.window[0], c.window[1], c.window[2]);
  return rc != BRC_OK ? rc : brc_breaker_init(state, &c.breaker);
}

int brc_region_breaker(brc_region_t *r, const char *slot_name, const brc_breaker_config_t *config,
                       uint64_t window_kind, uint64_t window_size, uint64_t bucket,
                       brc_breaker_t **breaker, brc_window_t **window) {
  brc__breaker_slot_config_t c;
  brc_breaker_t probe;
  uint64_t window_bytes = brc_window_bytes(window_kind, window_size);
  void *state = NULL;
  int rc;
  if (config == NULL || breaker == NULL || window == NULL || window_bytes == 0 ||
      (window_kind == BRC_WINDOW_TIME && bucket == 0))
    return BRC_EINVAL;
  if ((rc = brc_breaker_init(&probe, config)) != BRC_OK)
    return rc; /* refused before any slot is claimed */
  memset(&c, 0, sizeof c);
  c.breaker = *config;
  c.window[0] = window_kind;
  c.window[1] = window_size;
  c.window[2] = window_kind == BRC_WINDOW_TIME ? bucket : 0;
  rc = brc_region_slot(r, slot_name, BRC_KIND_BREAKER, &c, sizeof c,
                       BRC__BREAKER_BYTES + (size_t)window_bytes, brc__breaker_slot_init, &state);
  if (rc == BRC_OK) {
    *breaker = state;
    *window = (brc_window_t *)(void *)((unsigned char *)state + BRC__BREAKER_BYTES);
  }
  return rc;
}

static int brc__budget_slot_init(void *state, const void *config) {
  uint64_t c[3];
  memcpy(c, config, sizeof c);
  return brc_budget_init(state, c[0], c[1], c[2]);
}

int brc_region_budget(brc_region_t *r, const char *slot_name, uint64_t ratio_milli,
                      uint64_t min_per_second, uint64_t ttl_ns, brc_budget_t **out) {
  uint64_t config[3] = {ratio_milli, min_per_second, ttl_ns};
  brc_budget_t probe;
  void *state = NULL;
  int rc;
  if (out == NULL)
    return BRC_EINVAL;
  if ((rc = brc_budget_init(&probe, ratio_milli, min_per_second, ttl_ns)) != BRC_OK)
    return rc; /* refused before any slot is claimed */
  rc = brc_region_slot(r, slot_name, BRC_KIND_BUDGET, config, sizeof config, sizeof(brc_budget_t),
                       brc__budget_slot_init, &state);
  if (rc == BRC_OK)
    *out = state;
  return rc;
}

static int brc__keyed_slot_init(void *state, const void *config) {
  uint64_t c[3];
  memcpy(c, config, sizeof c);
  return brc_keyed_init(state, c[0], c[1], c[2]); /* the slot's state space is zeroed */
}

int brc_region_keyed(brc_region_t *r, const char *slot_name, uint64_t capacity, uint64_t interval,
                     uint64_t burst, brc_keyed_t **out) {
  uint64_t config[3] = {capacity, interval, burst};
  uint64_t bytes = brc_keyed_bytes(capacity);
  void *state = NULL;
  int rc;
  if (out == NULL || bytes == 0 || interval == 0 || burst == 0)
    return BRC_EINVAL;
  if (burst > BRC_DURATION_MAX / interval)
    return BRC_ERANGE; /* refused before any slot is claimed, as brc_keyed_init would */
  if (r == NULL)
    return BRC_EINVAL;
  if (bytes > brc_region_capacity(r) || bytes > SIZE_MAX)
    return BRC_ENOSPC; /* a table larger than the whole region */
  rc = brc_region_slot(r, slot_name, BRC_KIND_KEYED, config, sizeof config, (size_t)bytes,
                       brc__keyed_slot_init, &state);
  if (rc == BRC_OK)
    *out = state;
  return rc;
}

static int brc__leases_slot_init(void *state, const void *config) {
  uint64_t max;
  memcpy(&max, config, sizeof max);
  return brc_leases_init(state, max);
}

int brc_region_leases(brc_region_t *r, const char *slot_name, uint64_t max, brc_leases_t **out) {
  uint64_t bytes = brc_leases_bytes(max);
  void *state = NULL;
  int rc;
  if (out == NULL || bytes == 0)
    return BRC_EINVAL; /* refused before any slot is claimed */
  rc = brc_region_slot(r, slot_name, BRC_KIND_LEASES, &max, sizeof max, (size_t)bytes,
                       brc__leases_slot_init, &state);
  if (rc == BRC_OK)
    *out = state;
  return rc;
}
