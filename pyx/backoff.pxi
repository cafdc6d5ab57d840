# brace._core: BackoffCore, the compiled base of brace.Backoff; included by _core.pyx.

BACKOFF_EXPONENTIAL = c.BRC_BACKOFF_EXPONENTIAL
BACKOFF_LINEAR = c.BRC_BACKOFF_LINEAR
BACKOFF_CONSTANT = c.BRC_BACKOFF_CONSTANT
JITTER_NONE = c.BRC_JITTER_NONE
JITTER_FULL = c.BRC_JITTER_FULL
JITTER_EQUAL = c.BRC_JITTER_EQUAL
JITTER_DECORRELATED = c.BRC_JITTER_DECORRELATED
JITTER_PROPORTIONAL = c.BRC_JITTER_PROPORTIONAL


cdef class BackoffCore:
    """A backoff's configuration embedded by value; configured by brace.Backoff."""

    cdef c.brc_backoff_t _state

    def _configure(self, int kind, uint64_t initial_ns, uint64_t max_ns, double multiplier,
                   uint64_t increment_ns, int jitter, double factor):
        _check(c.brc_backoff_init(&self._state, kind, initial_ns, max_ns, multiplier,
                                  increment_ns, jitter, factor), "backoff configuration")

    def _delay_ns(self, uint64_t attempt, uint64_t previous_ns):
        """ns before retry `attempt` (1-based); previous_ns: the last delay (0: none)."""
        cdef uint64_t delay = 0
        _check(c.brc_backoff_delay(&self._state, attempt, previous_ns, &delay), "backoff (not configured)")
        return delay
