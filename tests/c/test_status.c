/* The status table: every code in BRC_STATUS_MAP has its own value, name and
 * message, the name is the code as written in C, and a code outside the
 * table says so rather than passing for one of them. */
#include <string.h>

#include "brace.h"
#include "check.h"

typedef struct {
  int code;
  const char *spelled;
} row_t;

static const row_t rows[] = {
#define ROW(name, value, message) {BRC_##name, "BRC_" #name},
    BRC_STATUS_MAP(ROW)
#undef ROW
};
#define ROWS (sizeof rows / sizeof rows[0])

static void test_names_are_the_codes_as_written(void) {
  for (size_t i = 0; i < ROWS; i++)
    CHECK(strcmp(brc_status_name(rows[i].code), rows[i].spelled) == 0);
  CHECK(strcmp(brc_status_name(BRC_REFUSED), "BRC_REFUSED") == 0);
  CHECK(strcmp(brc_status_name(BRC_EINVAL), "BRC_EINVAL") == 0);
}

static void test_values_names_and_messages_are_distinct(void) {
  for (size_t i = 0; i < ROWS; i++)
    for (size_t j = i + 1; j < ROWS; j++) {
      CHECK(rows[i].code != rows[j].code);
      CHECK(strcmp(brc_status_name(rows[i].code), brc_status_name(rows[j].code)) != 0);
      CHECK(strcmp(brc_strerror(rows[i].code), brc_strerror(rows[j].code)) != 0);
    }
}

static void test_signs_follow_the_convention(void) {
  CHECK(BRC_OK == 0);
  CHECK(BRC_REFUSED > 0 && BRC_WOULD_OPEN > 0 && BRC_HANDOFF > 0 && BRC_STALE > 0 && BRC_FULL > 0);
  CHECK(BRC_EINVAL < 0 && BRC_E2BIG < 0 && BRC_ERANGE < 0);
}

static void test_unknown_codes_say_so(void) {
  int unknown[] = {99, -1, -999, 50};
  for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
    CHECK(strcmp(brc_strerror(unknown[i]), "unknown status") == 0);
    CHECK(strcmp(brc_status_name(unknown[i]), "BRC_UNKNOWN") == 0);
  }
  for (size_t i = 0; i < ROWS; i++) {
    CHECK(strcmp(brc_strerror(rows[i].code), "unknown status") != 0);
    CHECK(strcmp(brc_status_name(rows[i].code), "BRC_UNKNOWN") != 0);
  }
}

int main(void) {
  test_names_are_the_codes_as_written();
  test_values_names_and_messages_are_distinct();
  test_signs_follow_the_convention();
  test_unknown_codes_say_so();
  CHECK_DONE();
}
