#include "brace.h"

const char *brc_strerror(int status) {
  switch (status) {
#define BRC__STATUS_MESSAGE(name, value, message)                                                  \
  case BRC_##name:                                                                                 \
    return message;
    BRC_STATUS_MAP(BRC__STATUS_MESSAGE)
#undef BRC__STATUS_MESSAGE
  default:
    return "unknown status";
  }
}

const char *brc_status_name(int status) {
  switch (status) {
#define BRC__STATUS_NAME(name, value, message)                                                     \
  case BRC_##name:                                                                                 \
    return "BRC_" #name;
    BRC_STATUS_MAP(BRC__STATUS_NAME)
#undef BRC__STATUS_NAME
  default:
    return "BRC_UNKNOWN";
  }
}
