#include "brace.h"

const char *brc_strerror(int status) {
  switch (status) {
  case BRC_OK:
    return "ok";
  case BRC_LIMITED:
    return "limited: not admitted now";
  case BRC_WOULD_OPEN:
    return "metrics-only breaker reached a threshold";
  case BRC_REJECTED:
    return "rejected: not permitted";
  case BRC_HANDOFF:
    return "handoff: pass the released permit to the first waiter";
  case BRC_EINVAL:
    return "invalid argument";
  case BRC_E2BIG:
    return "request larger than the limiter's burst can ever admit";
  case BRC_ERANGE:
    return "value overflows the 64-bit nanosecond clock";
  default:
    return "unknown status";
  }
}
