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
    """A GCRA token bucket embedded by value, or in a shared region's slot
    (_attach); configured by brace.RateLimiter. Every decision goes through
    the pointer _g: to the embedded _state, or into the region's mapping.

    Its guards (the decorator's compiled wrapper, and the entries installed
    below the class: call, with, async with) take a token in C; one that is
    not there now is waited for in Python (the subclass's _guard_call,
    _call_slow, _enter_slow, _enter_slow_async), unless it cannot come within
    max_wait: that call is refused in C with RateLimited and its facts (in
    Python, which tells the listeners, while someone listens to rejections).
    """

    cdef c.brc_gcra_t _state
    cdef c.brc_gcra_t *_g            # &_state, or the shared slot's state
    cdef SharedRegion _region        # keeps a shared state's mapping alive
    cdef bint _configured
    cdef uint64_t _max_wait_ns       # UINT64_MAX: the guards wait as long as needed
    cdef object _name                # the facts of RateLimited, for the compiled rejection
    cdef object _burst
    cdef bint _rejections_in_python  # someone listens to rejections: refuse in Python
    cdef uint64_t _rejected          # calls this object rejected (RateLimited), ever: read by metrics

    def __cinit__(self):
        self._g = &self._state

    def _configure(self, uint64_t interval_ns, uint64_t burst, name, max_wait_ns):
        """Configures a full bucket, or changes a configured one keeping its tokens taken,
        and the guards' wait (max_wait_ns, None: no limit) and rejection facts."""
        if self._configured:
            _check(c.brc_gcra_reconfigure(self._g, interval_ns, burst, c.brc_now_ns()),
                   "rate and burst")
        else:
            _check(c.brc_gcra_init(self._g, interval_ns, burst), "rate and burst")
            self._configured = True
        self._set_facts(burst, name, max_wait_ns)

    def _attach(self, SharedRegion region, str slot, uint64_t interval_ns, uint64_t burst, name,
                max_wait_ns):
        """Uses the limiter in region's slot `slot`, claiming and configuring it if no process
        has yet. False (nothing changed) when the slot holds another configuration."""
        cdef c.brc_gcra_t *shared = NULL
        cdef bytes encoded = slot.encode()
        cdef const char *slot_name = encoded
        cdef int status
        if self._configured:
            raise RuntimeError("a configured limiter cannot move into a shared region")
        with nogil:  # it may wait (bounded) for another process to finish initialising it
            status = c.brc_region_gcra(region._region, slot_name, interval_ns, burst, &shared)
        if status == c.BRC_EEXIST:
            return False
        _region_check(status, f"shm://{region.name}, slot {slot!r}")
        self._g = shared
        self._region = region
        self._configured = True
        self._set_facts(burst, name, max_wait_ns)
        return True

    cdef _set_facts(self, uint64_t burst, name, max_wait_ns):
        self._max_wait_ns = UINT64_MAX if max_wait_ns is None else <uint64_t>max_wait_ns
        self._name = name
        self._burst = burst

    def _reject_in_python(self, bint on):
        """Whether the guards leave a refusal to the subclass's slow paths (which tell
        its listeners) instead of raising it in compiled code."""
        self._rejections_in_python = on

    def _count_rejection(self):
        """Counts one RateLimited raised in Python (one add under the GIL: exact across threads)."""
        self._rejected += 1

    def _rejections(self):
        return self._rejected

    def _guard(self, fn):
        """A compiled wrapper that takes a token, then calls fn (sync functions)."""
        return c.brc_guard_new(fn, self, _limiter_enter, _limiter_success)

    cdef int _raise_n(self, int status, object n) except -1:
        cdef c.brc_gcra_report_t report
        if status == c.BRC_E2BIG and c.brc_gcra_report(self._g, 0, &report) == c.BRC_OK:
            raise ValueError(
                f"n={n} can never be admitted: n must be an int from 1 to burst={report.limit}")
        return _check(status, "limiter (not configured)")

    def try_acquire(self, n=1):
        """Takes n tokens if all are available now; returns whether it did."""
        cdef int status = c.brc_gcra_acquire(self._g, _as_n(n), c.brc_now_ns(), 0, NULL)
        if status == c.BRC_OK:
            return True
        if status == c.BRC_REFUSED:
            return False
        return self._raise_n(status, n)

    def peek(self, n=1):
        """Would try_acquire(n) succeed now? Takes nothing."""
        cdef int status = c.brc_gcra_peek(self._g, _as_n(n), c.brc_now_ns(), NULL)
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
        cdef int status = c.brc_gcra_acquire(self._g, _as_n(n), now, limit, &wait)
        if status < 0:
            self._raise_n(status, n)
        return status == c.BRC_OK, now, wait

    def _refund(self, n):
        """Gives back n booked tokens that will not be used."""
        cdef int status = c.brc_gcra_refund(self._g, _as_n(n), c.brc_now_ns())
        if status < 0:
            self._raise_n(status, n)

    def _report(self):
        """(limit, remaining, retry_after_ns, reset_after_ns) at brace's now."""
        cdef c.brc_gcra_report_t r
        _check(c.brc_gcra_report(self._g, c.brc_now_ns(), &r), "limiter (not configured)")
        return r.limit, r.remaining, r.retry_after, r.reset_after


cdef int _limiter_enter(object owner, uint64_t *token, uint64_t *start) except -1:
    """A token now (0); or the guard waits for it in Python (1); or RateLimited, when it
    cannot come within max_wait (-1)."""
    cdef RateLimiterCore limiter = <RateLimiterCore>owner
    cdef uint64_t wait = 0
    cdef int status = c.brc_gcra_acquire(limiter._g, 1, c.brc_now_ns(), 0, &wait)
    if status == c.BRC_OK:
        return 0
    if status != c.BRC_REFUSED or wait <= limiter._max_wait_ns or limiter._rejections_in_python:
        return 1
    limiter._rejected += 1
    # Set directly, as the breaker's: a `raise` would add a traceback entry for this helper.
    PyErr_SetObject(RateLimited, c.brc_guard_rejection(RateLimited, (wait / 1e9, limiter._name, 1, limiter._burst)))
    return -1


cdef int _limiter_success(object owner, uint64_t token, uint64_t start) except -1:
    return 0  # the token is spent whatever the call did


# -- the entries (entries.h): limiter.call, with limiter, async with limiter --

cdef int _limiter_give_back(object owner, uint64_t token) except -1:
    c.brc_gcra_refund((<RateLimiterCore>owner)._g, 1, c.brc_now_ns())
    return 0


cdef object _limiter_enter_slow(object owner):
    return owner._enter_slow()


cdef object _limiter_enter_slow_async(object owner):
    return owner._enter_slow_async()


cdef int _limiter_exit_failed(object owner, object error, uint64_t token, uint64_t start) except -1:
    return 0  # the block ran: its token is spent


cdef c.brc_entry_hooks_t _limiter_entries
_limiter_entries.name = "RateLimiter"
_limiter_entries.enter = _limiter_enter
_limiter_entries.success = _limiter_success
_limiter_entries.give_back = _limiter_give_back
_limiter_entries.refuse = _refuse_awaitable
_limiter_entries.enter_slow = _limiter_enter_slow
_limiter_entries.enter_slow_async = _limiter_enter_slow_async
_limiter_entries.exit_failed = _limiter_exit_failed
c.brc_entry_install(RateLimiterCore, &_limiter_entries,
                    c.BRC_ENTRY_CALL | c.BRC_ENTRY_WITH | c.BRC_ENTRY_ASYNC_WITH)
