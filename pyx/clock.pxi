# brace._core: the clock (brc_now_ns and the test clock), included by _core.pyx.

def now_ns():
    """brace's clock: monotonic nanoseconds, or the frozen test time."""
    return c.brc_now_ns()


def clock_source():
    """"tsc" (the scaled TSC, once calibrated) or "monotonic" (clock_gettime)."""
    return c.brc_clock_source().decode()


def clock_freeze(uint64_t now):
    _check(c.brc_clock_freeze(now), "now")


def clock_advance(uint64_t delta):
    _check(c.brc_clock_advance(delta), "delta")


def clock_advance_to(uint64_t target):
    _check(c.brc_clock_advance_to(target), "target")


def clock_thaw():
    c.brc_clock_thaw()


def clock_is_frozen():
    return c.brc_clock_is_frozen() != 0
