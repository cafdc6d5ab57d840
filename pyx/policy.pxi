# brace._core: PolicyCore, the compiled base of brace.Policy; included by _core.pyx.

cdef class PolicyCore:
    """The compiled part of brace.Policy: every check of a call's first attempt
    in C - breaker permission, a limiter token, a bulkhead slot - and the
    bookkeeping of its success. When any of them says no (or the first attempt
    needs Python), what was taken is given back and the subclass's slow paths
    (guard.h's protocol: brace._hooks.PolicyHooks) take the whole call, with
    the right errors and waits."""

    cdef CircuitBreakerCore _breaker
    cdef RateLimiterCore _limiter
    cdef BulkheadCore _bulkhead
    cdef RetryCore _retry            # counts a first-try success (Retry.calls())
    cdef object _deposit
    cdef bint _whole_call_in_python
    cdef bint _checks_result
    cdef bint _needs_start

    def _configure_core(self, *, breaker, limiter, bulkhead, retry, deposit, bint whole_call_in_python,
                        bint checks_result, bint needs_start):
        self._breaker = breaker
        self._retry = retry
        self._limiter = limiter
        self._bulkhead = bulkhead
        self._deposit = deposit
        self._whole_call_in_python = whole_call_in_python
        self._checks_result = checks_result
        self._needs_start = needs_start

    def _guard(self, fn):
        """A compiled wrapper that calls fn under this policy (sync functions)."""
        return c.brc_guard_new(fn, self, _policy_enter, _policy_success)

    def _guard_coroutine(self, fn):
        """A compiled wrapper that calls the coroutine function fn under this
        policy (pyx/awaiting.h): its calls return proxies to await."""
        return c.brc_awaiting_new(fn, self, _policy_enter, _policy_success)

    def _succeeded(self, uint64_t token, uint64_t start):
        """For awaitables a decorated plain function returned: books a success;
        True when Python must check the result."""
        return _policy_success(self, token, start) != 0


cdef int _policy_enter(object owner, uint64_t *token, uint64_t *start) except -1:
    cdef PolicyCore p = <PolicyCore>owner
    cdef uint64_t ticket = 0, now = 0, lease
    if p._whole_call_in_python:
        return 1
    if p._breaker is not None and c.brc_breaker_try_permit(p._breaker._b, &ticket) != c.BRC_OK:
        return 1
    if p._limiter is not None:
        now = c.brc_now_ns()
        if c.brc_gcra_acquire(p._limiter._g, 1, now, 0, NULL) != c.BRC_OK:
            return 1
    if p._bulkhead is not None and _permits_try(p._bulkhead, &lease) != c.BRC_OK:
        if p._limiter is not None:
            c.brc_gcra_refund(p._limiter._g, 1, now)
        return 1
    if p._deposit is not None:
        p._deposit()
    token[0] = ticket
    if p._needs_start:
        start[0] = now if now else c.brc_now_ns()
    return 0


cdef int _policy_success(object owner, uint64_t token, uint64_t start) except -1:
    cdef PolicyCore p = <PolicyCore>owner
    cdef int status = 0
    if p._checks_result:
        return 1
    if p._bulkhead is not None:
        _permits_release(p._bulkhead)
    if p._breaker is not None:
        status = _breaker_success(p._breaker, token, start)
    if status == 0 and p._retry is not None:
        _retry_count_first_try_success(p._retry)
    return status
