# brace._core: RateLimiterCore, the compiled base of brace.RateLimiter; included by _core.pyx.

cdef inline uint64_t _as_n(object n) except 0:
    cdef int overflow = 0
    cdef long long value
    if PyLong_CheckExact(n):
        value = PyLong_AsLongLongAndOverflow(n, &overflow)
        if overflow == 0 and value >= 1:
            return <uint64_t>value
    return _as_n_slow(n)


cdef uint64_t _as_n_slow(object n) except 0:
    """Validates an n that is not a small exact int; too large ones go to C as E2BIG."""
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"n must be an int from 1 to the limiter's burst, got {type(n).__name__}")
    if n < 1:
        raise ValueError(f"n must be an int from 1 to the limiter's burst, got {n}")
    return UINT64_MAX if n >= UINT64_MAX else <uint64_t>int(n)


cdef class RateLimiterCore:
    """A GCRA token bucket embedded by value; configured by brace.RateLimiter."""

    cdef c.brc_gcra_t _state
    cdef bint _configured

    def _configure(self, uint64_t interval_ns, uint64_t burst):
        """Configures a full bucket, or changes a configured one keeping its tokens taken."""
        if self._configured:
            _check(c.brc_gcra_reconfigure(&self._state, interval_ns, burst, c.brc_now_ns()),
                   "rate and burst")
        else:
            _check(c.brc_gcra_init(&self._state, interval_ns, burst), "rate and burst")
            self._configured = True

    cdef int _raise_n(self, int status, object n) except -1:
        cdef c.brc_gcra_report_t report
        if status == c.BRC_E2BIG and c.brc_gcra_report(&self._state, 0, &report) == c.BRC_OK:
            raise ValueError(
                f"n={n} can never be admitted: n must be an int from 1 to burst={report.limit}")
        return _check(status, "limiter (not configured)")

    def try_acquire(self, n=1):
        """Takes n tokens if all are available now; returns whether it did."""
        cdef int status = c.brc_gcra_acquire(&self._state, _as_n(n), c.brc_now_ns(), 0, NULL)
        if status == c.BRC_OK:
            return True
        if status == c.BRC_REFUSED:
            return False
        return self._raise_n(status, n)

    def peek(self, n=1):
        """Would try_acquire(n) succeed now? Takes nothing."""
        cdef int status = c.brc_gcra_peek(&self._state, _as_n(n), c.brc_now_ns(), NULL)
        if status == c.BRC_OK:
            return True
        if status == c.BRC_REFUSED:
            return False
        return self._raise_n(status, n)

    def _reserve(self, n, max_wait_ns):
        """Books n tokens if they come within max_wait_ns (None: any wait).

        Returns (booked, now_ns, wait_ns): when booked, the tokens may be used
        at now_ns + wait_ns; when not, wait_ns is how long until they would be
        available without waiting.
        """
        cdef uint64_t wait = 0
        cdef uint64_t now = c.brc_now_ns()
        cdef uint64_t limit = UINT64_MAX if max_wait_ns is None else <uint64_t>max_wait_ns
        cdef int status = c.brc_gcra_acquire(&self._state, _as_n(n), now, limit, &wait)
        if status < 0:
            self._raise_n(status, n)
        return status == c.BRC_OK, now, wait

    def _refund(self, n):
        """Gives back n booked tokens that will not be used."""
        cdef int status = c.brc_gcra_refund(&self._state, _as_n(n), c.brc_now_ns())
        if status < 0:
            self._raise_n(status, n)

    def _report(self):
        """(limit, remaining, retry_after_ns, reset_after_ns) at brace's now."""
        cdef c.brc_gcra_report_t r
        _check(c.brc_gcra_report(&self._state, c.brc_now_ns(), &r), "limiter (not configured)")
        return r.limit, r.remaining, r.retry_after, r.reset_after
