#include <pthread.h>

#include "brace.h"
#include "check.h"

static void *advance_to_mine(void *arg) {
  uint64_t target = (uint64_t)(uintptr_t)arg;
  for (int i = 0; i < 1000; i++)
    brc_clock_advance_to(target - 1000 + (uint64_t)i);
  brc_clock_advance_to(target);
  return NULL;
}

int main(void) {
  uint64_t a = brc_now_ns(), b = brc_now_ns();
  CHECK(a > 0 && b >= a);
  CHECK(!brc_clock_is_frozen());
  CHECK(brc_clock_advance(1) == BRC_EINVAL);
  CHECK(brc_clock_advance_to(1) == BRC_EINVAL);
  CHECK(brc_clock_freeze(0) == BRC_EINVAL);

  CHECK(brc_clock_freeze(1000) == BRC_OK);
  CHECK(brc_clock_is_frozen());
  CHECK_EQ_U64(brc_now_ns(), 1000);
  CHECK(brc_clock_advance(500) == BRC_OK);
  CHECK_EQ_U64(brc_now_ns(), 1500);
  CHECK(brc_clock_advance_to(1200) == BRC_OK); /* never backwards */
  CHECK_EQ_U64(brc_now_ns(), 1500);
  CHECK(brc_clock_advance(UINT64_MAX) == BRC_ERANGE);
  CHECK_EQ_U64(brc_now_ns(), 1500);

  pthread_t t[8];
  for (uintptr_t i = 0; i < 8; i++)
    pthread_create(&t[i], NULL, advance_to_mine, (void *)(10000 + 1000 * i));
  for (int i = 0; i < 8; i++)
    pthread_join(t[i], NULL);
  CHECK_EQ_U64(brc_now_ns(), 17000);

  CHECK(brc_clock_thaw() == BRC_OK);
  CHECK(!brc_clock_is_frozen());
  CHECK(brc_now_ns() >= b);
  CHECK_DONE();
}
