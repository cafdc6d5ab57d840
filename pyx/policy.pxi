# brace._core: PolicyCore, the compiled base of brace.Policy; included by _core.pyx.

from contextvars import ContextVar

# The instant (ns on brace's clock) the innermost active deadline ends; brace._deadline
# re-exports it. It lives here so that a Policy's compiled call can set it.
BOUND = ContextVar("brace_deadline", default=None)
cdef object _bound = BOUND


cdef class PolicyCore:
    """The compiled part of brace.Policy: every check of a call's first attempt
    in C - breaker permission, a limiter token, a bulkhead slot - and the
    bookkeeping of its success. When any of them says no (or the first attempt
    needs Python), what was taken is given back and the subclass's slow paths
    (guard.h's protocol: brace._hooks.PolicyHooks) take the whole call, with
    the right errors and waits.

    `Policy.call` runs the same first attempt under the call's deadline (set in
    BOUND around it, for the code it runs to read) and judges a returned HTTP
    response by its status when every result check of the policy is one of
    status (the HTTP integrations' policies): a call whose first attempt is
    admitted and answered below the lowest failing status never enters Python."""

    cdef CircuitBreakerCore _breaker
    cdef RateLimiterCore _limiter
    cdef BulkheadCore _bulkhead
    cdef RetryCore _retry            # counts a first-try success (Retry.calls())
    cdef object _deposit
    cdef uint64_t _deadline_ns       # the call's own deadline (ns); 0: none
    cdef bint _call_in_python        # a hedge, an attempt timeout or a stage deciding in Python

    def _configure_core(self, *, breaker, limiter, bulkhead, retry, deposit, uint64_t deadline_ns,
                        bint call_in_python):
        # Whether results are checked, and how, and whether calls are timed, are read from the
        # stages on each call: a breaker reconfigured in use changes them.
        self._breaker = breaker
        self._retry = retry
        self._limiter = limiter
        self._bulkhead = bulkhead
        self._deposit = deposit
        self._deadline_ns = deadline_ns
        self._call_in_python = call_in_python

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

    def call(self, fn, /, *args, **kwargs):
        """Calls fn(*args, **kwargs) under the policy.

        Raises:
            TypeError: fn is a coroutine function or returned an awaitable:
                use `await policy.call_async(fn, ...)`.
        """
        if self._call_in_python or c.brc_guard_callable_kind(fn, self) != c.BRC_CALLABLE_SYNC:
            return self._call_entry(fn, args, kwargs)
        return _policy_call(self, fn, args, kwargs)


cdef object _policy_call(PolicyCore p, object fn, tuple args, dict kwargs):
    """Policy.call of a plain function (or one its caller knows to be sync; kwargs None: none):
    its first attempt is admitted, run and booked here, under the call's deadline; anything
    else goes on in the subclass's hooks, outside any exception handling of this frame."""
    cdef uint64_t token = 0, start = 0, started
    cdef object bound = None, deadline, active, failure = None, result = None
    cdef bint admitted = False
    if p._call_in_python:
        return p._call_entry(fn, args, {} if kwargs is None else kwargs)
    started = c.brc_now_ns()
    if p._deadline_ns:
        deadline = started + p._deadline_ns
        active = _bound.get()
        bound = _bound.set(deadline if active is None or active > deadline else active)
    try:
        if not _policy_admit(p, &token, &start):  # else refused or waits: the whole call in Python
            admitted = True
            try:
                result = fn(*args) if kwargs is None else fn(*args, **kwargs)
            except BaseException as error:
                failure = error
            else:
                if c.brc_guard_is_awaitable(result):
                    raise p._first_returned_awaitable(fn, result, token)
                if not _policy_checks_results(p) or _passes(result, _policy_passes_below(p)):
                    _policy_book_success(p, token, start)
                    return result
    finally:
        if bound is not None:
            _bound.reset(bound)  # what follows binds itself again; the fallback runs outside
    kwargs = {} if kwargs is None else kwargs
    if not admitted:
        return p._call(fn, args, kwargs, None, started)
    if failure is not None:
        outcome = p._first_failed(fn, args, kwargs, failure, token, start, started)
        if outcome is RERAISE:
            raise failure
        return outcome
    return p._first_returned(fn, args, kwargs, result, token, start, started)


cdef int _passes(object result, long below) except -1:
    """Whether a returned value is a response (an int `status_code` and `headers`, as
    brace.pushback.http_status finds it) whose status is in [100, below). A value that
    raises on the look is left to Python, which is careful of it."""
    cdef long long status
    cdef int overflow = 0
    if below == 0:
        return False
    try:
        code = getattr(result, "status_code", None)
        if not PyLong_CheckExact(code):
            return False
        status = PyLong_AsLongLongAndOverflow(code, &overflow)
        return not overflow and 100 <= status < below and hasattr(result, "headers")
    except Exception:
        return False


cdef inline bint _policy_checks_results(PolicyCore p) noexcept:
    """Whether a returned value must be judged (the stages' live settings)."""
    return (p._retry is not None and p._retry._checks_result) or (p._breaker is not None and p._breaker._checks_result)


cdef long _policy_passes_below(PolicyCore p) noexcept:
    """The status below which a response passes every result check of the policy; 0: none known."""
    cdef long below = 1000
    if p._retry is not None and p._retry._checks_result:
        below = min(below, p._retry._passes_below)
    if p._breaker is not None and p._breaker._checks_result:
        below = min(below, p._breaker._passes_below)
    return below


cdef int _policy_admit(PolicyCore p, uint64_t *token, uint64_t *start) except -1:
    """Admits the first attempt through every stage without waiting: 0, or 1 (nothing
    kept: the breaker's try_permit takes nothing) when a stage refuses or would wait."""
    cdef uint64_t ticket = 0, now = 0, lease
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
    if p._breaker is not None and p._breaker._measure:  # slow calls counted: the attempt is timed
        start[0] = now if now else c.brc_now_ns()
    return 0


cdef int _policy_enter(object owner, uint64_t *token, uint64_t *start) except -1:
    cdef PolicyCore p = <PolicyCore>owner
    # Bounds the attempts can read (deadline_remaining) need the call in Python.
    if p._call_in_python or p._deadline_ns:
        return 1
    return _policy_admit(p, token, start)


cdef int _policy_book_success(PolicyCore p, uint64_t token, uint64_t start) except -1:
    if p._bulkhead is not None:
        _permits_release(p._bulkhead)
    if p._breaker is not None:
        _breaker_book_success(p._breaker, token, start)
    if p._retry is not None:
        _retry_count_first_try_success(p._retry)
    return 0


cdef int _policy_success(object owner, uint64_t token, uint64_t start) except -1:
    if _policy_checks_results(<PolicyCore>owner):
        return 1
    return _policy_book_success(<PolicyCore>owner, token, start)
