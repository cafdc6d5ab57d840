/* A minimal test harness: CHECK records a failure and goes on; main returns
 * the failure count, so ctest reports the test as failed. */
#ifndef BRACE_TESTS_CHECK_H
#define BRACE_TESTS_CHECK_H

#include <inttypes.h>
#include <stdio.h>

static int check_failures;

#define CHECK(cond)                                                              \
  do {                                                                           \
    if (!(cond)) {                                                               \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);   \
      check_failures++;                                                          \
    }                                                                            \
  } while (0)

#define CHECK_EQ_U64(a, b)                                                       \
  do {                                                                           \
    uint64_t check_a_ = (a), check_b_ = (b);                                     \
    if (check_a_ != check_b_) {                                                  \
      fprintf(stderr, "%s:%d: CHECK failed: %s == %s (%" PRIu64 " != %" PRIu64 ")\n", \
              __FILE__, __LINE__, #a, #b, check_a_, check_b_);                   \
      check_failures++;                                                          \
    }                                                                            \
  } while (0)

#define CHECK_DONE()                                                             \
  do {                                                                           \
    if (check_failures)                                                          \
      fprintf(stderr, "%d check(s) failed\n", check_failures);                   \
    return check_failures ? 1 : 0;                                               \
  } while (0)

#endif
