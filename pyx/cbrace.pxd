# Mirrors csrc/brace.h: only what the binding reads. Structs are opaque to
# Cython; the C compiler knows their size, so cdef classes embed them by value.
from libc.stdint cimport uint64_t

cdef extern from "brace.h" nogil:
    int BRC_OK
    int BRC_LIMITED
    int BRC_EINVAL
    int BRC_E2BIG
    int BRC_ERANGE
    const char *brc_strerror(int status)

    uint64_t brc_now_ns()
    const char *brc_clock_source()
    int brc_clock_freeze(uint64_t now)
    int brc_clock_advance(uint64_t delta)
    int brc_clock_advance_to(uint64_t target)
    int brc_clock_thaw()
    int brc_clock_is_frozen()

    void brc_rng_seed(uint64_t seed)
    double brc_rng_uniform()

    ctypedef struct brc_gcra_t:
        pass
    ctypedef struct brc_gcra_report_t:
        uint64_t limit
        uint64_t remaining
        uint64_t retry_after
        uint64_t reset_after
    int brc_gcra_init(brc_gcra_t *g, uint64_t interval, uint64_t burst)
    int brc_gcra_acquire(brc_gcra_t *g, uint64_t n, uint64_t now, uint64_t max_wait, uint64_t *wait)
    int brc_gcra_peek(brc_gcra_t *g, uint64_t n, uint64_t now, uint64_t *retry_after)
    int brc_gcra_refund(brc_gcra_t *g, uint64_t n, uint64_t now)
    int brc_gcra_report(brc_gcra_t *g, uint64_t now, brc_gcra_report_t *out)
    int brc_gcra_reconfigure(brc_gcra_t *g, uint64_t interval, uint64_t burst, uint64_t now)
