/* The shared-memory region in one process: create, open, reopen, layout and
 * configuration mismatches, dead creators and claimers, a full region. */
#define _POSIX_C_SOURCE 200809L
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "brace.h"
#include "check.h"

#define MS UINT64_C(1000000)
#define CAP BRC_REGION_CAPACITY_MIN

static char name[64];

static void fresh_name(const char *what) {
  snprintf(name, sizeof name, "brace-test-%ld-%s", (long)getpid(), what);
  brc_region_unlink(name);
}

/* The region's first bytes, mapped apart from brace (as another program would). */
static brc_region_header_t *raw_header(int *fd) {
  char path[80];
  snprintf(path, sizeof path, "/%s", name);
  *fd = shm_open(path, O_RDWR, 0);
  if (*fd < 0)
    return NULL;
  void *p = mmap(NULL, CAP, PROT_READ | PROT_WRITE, MAP_SHARED, *fd, 0);
  return p == MAP_FAILED ? NULL : p;
}

static pid_t dead_pid(void) {
  pid_t pid = fork();
  if (pid == 0)
    _exit(0);
  waitpid(pid, NULL, 0);
  return pid;
}

static void test_create_open_reopen_share_one_state(void) {
  brc_region_t *a = NULL, *b = NULL;
  brc_gcra_t *ga = NULL, *gb = NULL;
  fresh_name("share");
  CHECK(brc_region_open(name, CAP, &a) == BRC_OK);
  CHECK(brc_region_capacity(a) == CAP);
  CHECK(brc_region_open(name, 0, &b) == BRC_OK); /* capacity 0: open only */
  CHECK(brc_region_gcra(a, "api", 10 * MS, 3, &ga) == BRC_OK);
  CHECK(brc_region_gcra(b, "api", 10 * MS, 3, &gb) == BRC_OK);
  CHECK(ga != NULL && gb != NULL && ((uintptr_t)ga % BRC_REGION_ALIGN) == 0);
  for (int i = 0; i < 3; i++)
    CHECK(brc_gcra_acquire(i % 2 ? ga : gb, 1, 1000 * MS, 0, NULL) == BRC_OK);
  CHECK(brc_gcra_acquire(ga, 1, 1000 * MS, 0, NULL) == BRC_REFUSED);
  CHECK(brc_gcra_acquire(gb, 1, 1000 * MS, 0, NULL) == BRC_REFUSED);
  brc_region_close(a);
  brc_region_close(b);
  /* reopened with another capacity: it keeps its own, and its state */
  CHECK(brc_region_open(name, 2 * CAP, &a) == BRC_OK);
  CHECK(brc_region_capacity(a) == CAP);
  CHECK(brc_region_gcra(a, "api", 10 * MS, 3, &ga) == BRC_OK);
  CHECK(brc_gcra_acquire(ga, 1, 1000 * MS, 0, NULL) == BRC_REFUSED);
  CHECK(brc_gcra_acquire(ga, 1, 1010 * MS, 0, NULL) == BRC_OK);
  brc_region_close(a);
  CHECK(brc_region_unlink(name) == BRC_OK);
}

static void test_owner_only_and_sparse(void) {
  brc_region_t *r = NULL;
  struct stat st;
  int fd;
  fresh_name("mode");
  mode_t old = umask(0);
  CHECK(brc_region_open(name, 64 * CAP, &r) == BRC_OK);
  umask(old);
  CHECK(raw_header(&fd) != NULL);
  CHECK(fstat(fd, &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  CHECK_EQ_U64((uint64_t)st.st_size, 64 * CAP);
  CHECK((uint64_t)st.st_blocks * 512 < 4 * CAP); /* 64 MiB asked, little touched */
  close(fd);
  brc_region_close(r);
  brc_region_unlink(name);
}

static void test_bad_arguments(void) {
  brc_region_t *r = NULL;
  void *state;
  CHECK(brc_region_open("", CAP, &r) == BRC_EINVAL);
  CHECK(brc_region_open("a/b", CAP, &r) == BRC_EINVAL);
  CHECK(brc_region_open("sp ace", CAP, &r) == BRC_EINVAL);
  CHECK(brc_region_open(NULL, CAP, &r) == BRC_EINVAL);
  char longname[260];
  memset(longname, 'x', sizeof longname - 1);
  longname[sizeof longname - 1] = 0;
  CHECK(brc_region_open(longname, CAP, &r) == BRC_EINVAL);
  CHECK(brc_region_open("ok", CAP - 1, &r) == BRC_EINVAL);
  CHECK(brc_region_open("ok", BRC_REGION_CAPACITY_MAX + 1, &r) == BRC_EINVAL);
  CHECK(brc_region_open("ok", CAP, NULL) == BRC_EINVAL);
  fresh_name("missing");
  CHECK(brc_region_open(name, 0, &r) == BRC_ENOENT);
  CHECK(r == NULL);
  CHECK(brc_region_unlink(name) == BRC_ENOENT);
  CHECK(brc_region_open(name, CAP, &r) == BRC_OK);
  CHECK(brc_region_slot(r, "", 1, NULL, 0, 8, NULL, &state) == BRC_EINVAL);
  CHECK(brc_region_slot(r, "0123456789012345678901234567890123456789012345678901234567890123", 1,
                        NULL, 0, 8, NULL, &state) == BRC_EINVAL); /* 64 bytes */
  CHECK(brc_region_slot(r, "k", 0, NULL, 0, 8, NULL, &state) == BRC_EINVAL);
  CHECK(brc_region_slot(r, "k", 1, NULL, 0, 0, NULL, &state) == BRC_EINVAL);
  CHECK(brc_region_slot(r, "k", 1, NULL, 1, 8, NULL, &state) == BRC_EINVAL);
  CHECK(brc_region_slot(r, "k", 1, "x", BRC_REGION_CONFIG_MAX + 1, 8, NULL, &state) == BRC_EINVAL);
  brc_gcra_t *g;
  CHECK(brc_region_gcra(r, "g", 0, 1, &g) == BRC_EINVAL);
  CHECK(brc_region_gcra(r, "g", BRC_DURATION_MAX, 2, &g) == BRC_ERANGE);
  CHECK(brc_region_slot_info(r, "g", &(brc_region_slot_info_t){0}) == BRC_ENOENT);
  brc_region_close(r);
  brc_region_unlink(name);
}

static void test_layout_mismatch_is_a_status(void) {
  brc_region_t *r = NULL;
  brc_region_header_t *h;
  int fd;
  fresh_name("layout");
  CHECK(brc_region_open(name, CAP, &r) == BRC_OK);
  brc_region_close(r);
  h = raw_header(&fd);
  CHECK(h != NULL);
  h->version = BRC_REGION_VERSION + 1;
  CHECK(brc_region_open(name, CAP, &r) == BRC_EVERSION);
  h->version = BRC_REGION_VERSION;
  h->sizes[0] += 8; /* a brc_gcra_t of another build */
  CHECK(brc_region_open(name, CAP, &r) == BRC_EVERSION);
  h->sizes[0] -= 8;
  h->sizes[BRC_REGION_SIZES - 1] = 24; /* a later struct this build does not know */
  CHECK(brc_region_open(name, CAP, &r) == BRC_EVERSION);
  h->sizes[BRC_REGION_SIZES - 1] = 0;
  atomic_store(&h->magic, UINT64_C(0x1234));
  CHECK(brc_region_open(name, CAP, &r) == BRC_EVERSION);
  atomic_store(&h->magic, BRC_REGION_MAGIC);
  CHECK(brc_region_open(name, CAP, &r) == BRC_OK);
  brc_region_close(r);
  munmap(h, CAP);
  close(fd);
  brc_region_unlink(name);
}

static void test_a_dead_or_absent_creator_is_reported(void) {
  brc_region_t *r = NULL;
  char path[80];
  int fd;
  fresh_name("dead");
  snprintf(path, sizeof path, "/%s", name);
  /* sized, the creator's pid written, no magic: the creator died mid-way */
  fd = shm_open(path, O_RDWR | O_CREAT | O_EXCL, 0600);
  CHECK(fd >= 0 && ftruncate(fd, CAP) == 0);
  brc_region_header_t *h = mmap(NULL, CAP, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  atomic_store(&h->creator, (uint64_t)dead_pid());
  CHECK(brc_region_open(name, CAP, &r) == BRC_EOWNERDEAD);
  /* a live creator that never finishes: a bounded wait, then ETIMEDOUT */
  atomic_store(&h->creator, (uint64_t)getpid());
  CHECK(brc_region_open(name, CAP, &r) == BRC_ETIMEDOUT);
  munmap(h, CAP);
  /* never sized (the creator died between O_EXCL and ftruncate): ETIMEDOUT */
  CHECK(ftruncate(fd, 0) == 0);
  CHECK(brc_region_open(name, CAP, &r) == BRC_ETIMEDOUT);
  CHECK(r == NULL);
  close(fd);
  /* the documented way out: unlink, and the next open creates it afresh */
  CHECK(brc_region_unlink(name) == BRC_OK);
  CHECK(brc_region_open(name, CAP, &r) == BRC_OK);
  brc_region_close(r);
  brc_region_unlink(name);
}

static void test_config_mismatch_and_read_back(void) {
  brc_region_t *r = NULL;
  brc_gcra_t *g;
  brc_region_slot_info_t info;
  void *state;
  uint64_t config[2];
  fresh_name("config");
  CHECK(brc_region_open(name, CAP, &r) == BRC_OK);
  CHECK(brc_region_gcra(r, "api", 10 * MS, 5, &g) == BRC_OK);
  CHECK(brc_region_gcra(r, "api", 10 * MS, 6, &g) == BRC_EEXIST);
  CHECK(brc_region_gcra(r, "api", 20 * MS, 5, &g) == BRC_EEXIST);
  CHECK(brc_region_slot(r, "api", 99, config, 0, sizeof(brc_gcra_t), NULL, &state) == BRC_EEXIST);
  CHECK(brc_region_slot_info(r, "api", &info) == BRC_OK);
  CHECK(info.kind == BRC_KIND_GCRA && info.config_len == 16);
  CHECK(info.state_bytes == sizeof(brc_gcra_t));
  memcpy(config, info.config, sizeof config);
  CHECK_EQ_U64(config[0], 10 * MS);
  CHECK_EQ_U64(config[1], 5);
  brc_region_close(r);
  brc_region_unlink(name);
}

static brc_breaker_config_t breaker_config(void) {
  brc_breaker_config_t c = {
      .failure_rate = 0.5, .slow_rate = 1.0, .minimum_calls = 4, .consecutive_failures = 0,
      .half_open_calls = 1, .max_half_open = 0, .wait_base = 1000 * MS, .wait_multiplier = 1.0,
      .wait_max = 1000 * MS, .wait_jitter = 0.0};
  return c;
}

static void test_a_shared_breaker_and_its_window(void) {
  brc_region_t *a = NULL, *b = NULL;
  brc_breaker_t *ba, *bb;
  brc_window_t *wa, *wb;
  brc_breaker_config_t c = breaker_config();
  brc_region_slot_info_t info;
  brc_window_snapshot_t snap;
  brc_breaker_report_t report;
  uint64_t ticket, stored[13];
  fresh_name("breaker");
  CHECK(brc_region_open(name, CAP, &a) == BRC_OK);
  CHECK(brc_region_open(name, CAP, &b) == BRC_OK);
  CHECK(brc_region_breaker(a, "db", &c, BRC_WINDOW_COUNT, 8, 0, &ba, &wa) == BRC_OK);
  CHECK(brc_region_breaker(b, "db", &c, BRC_WINDOW_COUNT, 8, 0, &bb, &wb) == BRC_OK);
  CHECK(((uintptr_t)wa % BRC_REGION_ALIGN) == 0 && (unsigned char *)wa > (unsigned char *)ba);
  for (int i = 0; i < 4; i++) { /* failures through both handles: one window */
    brc_breaker_t *x = i % 2 ? ba : bb;
    CHECK(brc_breaker_acquire(x, 10 * MS, &ticket, NULL, NULL) == BRC_OK);
    brc_breaker_record(x, i % 2 ? wa : wb, ticket, BRC_OUTCOME_FAILURE, 0, 10 * MS, NULL);
  }
  CHECK(brc_window_snapshot(wa, 10 * MS, &snap) == BRC_OK);
  CHECK_EQ_U64(snap.failures, 4); /* both handles recorded in one window */
  CHECK(brc_breaker_report(ba, 10 * MS, &report) == BRC_OK);
  CHECK(report.state == BRC_OPEN);
  CHECK(brc_breaker_acquire(bb, 20 * MS, &ticket, NULL, NULL) == BRC_REFUSED);
  /* another configuration, another window: refused, and the stored one reads back */
  c.failure_rate = 0.25;
  CHECK(brc_region_breaker(b, "db", &c, BRC_WINDOW_COUNT, 8, 0, &bb, &wb) == BRC_EEXIST);
  c.failure_rate = 0.5;
  CHECK(brc_region_breaker(b, "db", &c, BRC_WINDOW_COUNT, 9, 0, &bb, &wb) == BRC_EEXIST);
  CHECK(brc_region_breaker(b, "db", &c, BRC_WINDOW_TIME, 8, MS, &bb, &wb) == BRC_EEXIST);
  CHECK(brc_region_slot_info(b, "db", &info) == BRC_OK);
  CHECK(info.kind == BRC_KIND_BREAKER && info.config_len == sizeof stored);
  memcpy(stored, info.config, sizeof stored);
  CHECK_EQ_U64(stored[10], BRC_WINDOW_COUNT);
  CHECK_EQ_U64(stored[11], 8);
  CHECK_EQ_U64(stored[12], 0);
  c.half_open_calls = 0;
  CHECK(brc_region_breaker(b, "bad", &c, BRC_WINDOW_COUNT, 8, 0, &bb, &wb) == BRC_EINVAL);
  c.half_open_calls = 1;
  CHECK(brc_region_breaker(b, "bad", &c, BRC_WINDOW_COUNT, 0, 0, &bb, &wb) == BRC_EINVAL);
  CHECK(brc_region_breaker(b, "bad", &c, BRC_WINDOW_TIME, 8, 0, &bb, &wb) == BRC_EINVAL);
  CHECK(brc_region_slot_info(b, "bad", &info) == BRC_ENOENT);
  brc_region_close(a);
  brc_region_close(b);
  brc_region_unlink(name);
}

static void test_a_shared_retry_budget(void) {
  brc_region_t *a = NULL, *b = NULL;
  brc_budget_t *ba, *bb;
  int64_t balance = 0;
  int withdrawn = 0;
  fresh_name("budget");
  CHECK(brc_region_open(name, CAP, &a) == BRC_OK);
  CHECK(brc_region_open(name, CAP, &b) == BRC_OK);
  /* ratio 0.5, a floor of 1/s over 10 s: 10 tokens, and half a token per call */
  CHECK(brc_region_budget(a, "retries", 500, 1, 10000 * MS, &ba) == BRC_OK);
  CHECK(brc_region_budget(b, "retries", 500, 1, 10000 * MS, &bb) == BRC_OK);
  for (int i = 0; i < 8; i++)
    CHECK(brc_budget_deposit(i % 2 ? ba : bb, 1000 * MS) == BRC_OK);
  while (brc_budget_try_withdraw(withdrawn % 2 ? ba : bb, 1000 * MS) == BRC_OK && withdrawn < 100)
    withdrawn++;
  CHECK(withdrawn == 14);
  CHECK(brc_budget_balance(ba, 1000 * MS, &balance) == BRC_OK);
  CHECK(balance == 0);
  CHECK(brc_region_budget(b, "retries", 200, 1, 10000 * MS, &bb) == BRC_EEXIST);
  CHECK(brc_region_budget(b, "retries", 500, 2, 10000 * MS, &bb) == BRC_EEXIST);
  CHECK(brc_region_budget(b, "bad", 0, 1, 10000 * MS, &bb) == BRC_EINVAL);
  brc_region_close(a);
  brc_region_close(b);
  brc_region_unlink(name);
}

static int failing_init(void *state, const void *config) {
  (void)state;
  (void)config;
  return BRC_EINVAL;
}

static int dying_init(void *state, const void *config) {
  (void)state;
  (void)config;
  _exit(0); /* the claimer dies with the slot INITIALISING */
}

static void test_failed_and_dead_claims_free_the_slot(void) {
  brc_region_t *r = NULL;
  brc_gcra_t *g;
  void *state;
  fresh_name("claims");
  CHECK(brc_region_open(name, CAP, &r) == BRC_OK);
  CHECK(brc_region_slot(r, "k", 7, NULL, 0, 8, failing_init, &state) == BRC_EINVAL);
  CHECK(brc_region_gcra(r, "k", MS, 1, &g) == BRC_OK); /* free again */
  pid_t child = fork();
  if (child == 0) {
    brc_region_slot(r, "orphan", 7, NULL, 0, 8, dying_init, &state);
    _exit(1);
  }
  int status = 0;
  waitpid(child, &status, 0);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  CHECK(brc_region_gcra(r, "orphan", MS, 2, &g) == BRC_OK); /* taken over */
  CHECK(brc_gcra_acquire(g, 2, 5 * MS, 0, NULL) == BRC_OK);
  brc_region_close(r);
  brc_region_unlink(name);
}

static int release_fd = -1; /* the stuck claimer's pipe: readable when it may finish */
static int claimed_fd = -1; /* written once it holds the slot INITIALISING */

static int stuck_init(void *state, const void *config) {
  char byte = 1;
  (void)config;
  if (write(claimed_fd, &byte, 1) != 1 || read(release_fd, &byte, 1) != 1)
    return BRC_EINVAL;
  return brc_gcra_init(state, MS, 4);
}

static void test_a_live_slow_claimer_is_waited_for_then_timed_out(void) {
  brc_region_t *r = NULL;
  brc_gcra_t *g;
  void *state;
  int release[2], claimed[2], status = 0;
  uint64_t config[2] = {MS, 4};
  char byte = 1;
  fresh_name("slow");
  CHECK(brc_region_open(name, CAP, &r) == BRC_OK);
  CHECK(pipe(release) == 0 && pipe(claimed) == 0);
  pid_t child = fork();
  if (child == 0) {
    release_fd = release[0];
    claimed_fd = claimed[1];
    _exit(brc_region_slot(r, "slow", BRC_KIND_GCRA, config, sizeof config, sizeof(brc_gcra_t),
                          stuck_init, &state) == BRC_OK ? 0 : 1);
  }
  CHECK(read(claimed[0], &byte, 1) == 1); /* the child's claim is INITIALISING now */
  /* alive: waited for BRC_REGION_WAIT_NS, then ETIMEDOUT, never taken over */
  CHECK(brc_region_gcra(r, "slow", MS, 4, &g) == BRC_ETIMEDOUT);
  CHECK(brc_region_slot_info(r, "slow", &(brc_region_slot_info_t){0}) == BRC_ENOENT);
  CHECK(write(release[1], &byte, 1) == 1);
  waitpid(child, &status, 0);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  CHECK(brc_region_gcra(r, "slow", MS, 4, &g) == BRC_OK); /* the child's, now READY */
  CHECK(brc_gcra_acquire(g, 4, 10 * MS, 0, NULL) == BRC_OK);
  for (int i = 0; i < 2; i++) {
    close(release[i]);
    close(claimed[i]);
  }
  brc_region_close(r);
  brc_region_unlink(name);
}

static void test_a_full_region(void) {
  brc_region_t *r = NULL;
  void *state, *again;
  brc_gcra_t *g;
  char slot[32];
  fresh_name("full");
  CHECK(brc_region_open(name, CAP, &r) == BRC_OK);
  /* more state than is left: ENOSPC, and the slot is not lost */
  CHECK(brc_region_slot(r, "big", 7, NULL, 0, (size_t)(CAP - 4096), NULL, &state) == BRC_ENOSPC);
  CHECK(brc_region_slot(r, "big", 7, NULL, 0, 64, NULL, &state) == BRC_OK);
  for (int i = 1; i < BRC_REGION_SLOTS; i++) {
    snprintf(slot, sizeof slot, "s%d", i);
    CHECK(brc_region_gcra(r, slot, MS, (uint64_t)i, &g) == BRC_OK);
  }
  CHECK(brc_region_gcra(r, "one-too-many", MS, 1, &g) == BRC_ENOSPC);
  CHECK(brc_region_slot(r, "big", 7, NULL, 0, 64, NULL, &again) == BRC_OK);
  CHECK(again == state);
  CHECK(brc_region_gcra(r, "s1000", MS, 1000, &g) == BRC_OK);
  CHECK(brc_region_used(r) <= brc_region_capacity(r));
  brc_region_close(r);
  brc_region_unlink(name);
}

static void test_an_unlinked_region_lives_on_for_its_users(void) {
  brc_region_t *a = NULL, *b = NULL;
  brc_gcra_t *ga, *gb;
  fresh_name("unlink");
  CHECK(brc_region_open(name, CAP, &a) == BRC_OK);
  CHECK(brc_region_gcra(a, "api", MS, 1, &ga) == BRC_OK);
  CHECK(brc_gcra_acquire(ga, 1, 10 * MS, 0, NULL) == BRC_OK);
  CHECK(brc_region_unlink(name) == BRC_OK);
  CHECK(brc_region_open(name, 0, &b) == BRC_ENOENT);
  CHECK(brc_gcra_acquire(ga, 1, 10 * MS, 0, NULL) == BRC_REFUSED); /* still mapped */
  CHECK(brc_region_open(name, CAP, &b) == BRC_OK);                 /* a fresh one */
  CHECK(brc_region_gcra(b, "api", MS, 1, &gb) == BRC_OK);
  CHECK(gb != ga);
  CHECK(brc_gcra_acquire(gb, 1, 10 * MS, 0, NULL) == BRC_OK);
  brc_region_close(a);
  brc_region_close(b);
  brc_region_unlink(name);
}

int main(void) {
  test_create_open_reopen_share_one_state();
  test_owner_only_and_sparse();
  test_bad_arguments();
  test_layout_mismatch_is_a_status();
  test_a_dead_or_absent_creator_is_reported();
  test_config_mismatch_and_read_back();
  test_a_shared_breaker_and_its_window();
  test_a_shared_retry_budget();
  test_failed_and_dead_claims_free_the_slot();
  test_a_live_slow_claimer_is_waited_for_then_timed_out();
  test_a_full_region();
  test_an_unlinked_region_lives_on_for_its_users();
  CHECK_DONE();
}
