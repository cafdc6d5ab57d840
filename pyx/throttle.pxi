# brace._core: ThrottleCounts, the compiled counts of brace.ClientThrottle; included by _core.pyx.

THROTTLE_BUCKETS = 12


cdef class ThrottleCounts:
    """The requests and accepts of a ClientThrottle (Google SRE's client-side throttling) over
    its window, in a time window of the C core (csrc/window.c: THROTTLE_BUCKETS buckets of
    `step_ns`, lock-free, nothing lost under threads): a request is recorded as a failed
    outcome and an accept as a successful one, so the window's calls are requests + accepts
    and its failures the requests. A decision reads the window, draws with brace's jitter
    RNG only when something may be shed, and counts the request: no lock, and no allocation
    when the call is admitted."""

    cdef c.brc_window_t *_window     # PyMem_Malloc'd
    cdef double _k

    def __cinit__(self, uint64_t step_ns, double k):
        cdef uint64_t size = c.brc_window_bytes(c.BRC_WINDOW_TIME, THROTTLE_BUCKETS)
        self._window = <c.brc_window_t *>PyMem_Malloc(size)
        if self._window == NULL:
            raise MemoryError()
        _check(c.brc_window_init(self._window, c.BRC_WINDOW_TIME, THROTTLE_BUCKETS, step_ns), "window")
        self._k = k

    def __dealloc__(self):
        PyMem_Free(self._window)

    cdef inline void _counts(self, uint64_t now, uint64_t *requests, uint64_t *accepts):
        cdef c.brc_window_snapshot_t s
        c.brc_window_snapshot(self._window, now, &s)
        requests[0] = s.failures
        accepts[0] = s.calls - s.failures

    cdef inline double _probability(self, uint64_t requests, uint64_t accepts):
        cdef double shed = (<double>requests - self._k * <double>accepts) / (<double>requests + 1.0)
        return shed if shed > 0.0 else 0.0

    def decide(self):
        """Counts one request: True when it is admitted, else (probability, requests, accepts)
        as they were when it was shed."""
        cdef uint64_t now = c.brc_now_ns(), requests, accepts
        self._counts(now, &requests, &accepts)
        cdef double probability = self._probability(requests, accepts)
        c.brc_window_record(self._window, c.BRC_OUTCOME_FAILURE, 0, now)
        if probability > 0.0 and c.brc_rng_uniform() < probability:
            return probability, requests, accepts
        return True

    def record_accept(self):
        """Counts one call the backend accepted."""
        c.brc_window_record(self._window, 0, 0, c.brc_now_ns())

    def state(self):
        """(requests, accepts, reject probability) now."""
        cdef uint64_t requests, accepts
        self._counts(c.brc_now_ns(), &requests, &accepts)
        return requests, accepts, self._probability(requests, accepts)
