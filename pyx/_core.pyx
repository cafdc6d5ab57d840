# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""brace._core: the compiled core. Private: use the brace package's public API."""
from cpython.long cimport PyLong_AsLongLongAndOverflow, PyLong_CheckExact
from libc.stdint cimport UINT64_MAX, uint64_t

cimport cbrace as c


cdef int _check(int status, str context) except -1:
    """The one place where a negative C status becomes a Python exception."""
    if status >= 0:
        return status
    message = f"{context}: {c.brc_strerror(status).decode()}"
    if status == c.BRC_ERANGE:
        raise OverflowError(message)
    raise ValueError(message)


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


# ---- clock -----------------------------------------------------------------

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


# ---- jitter RNG ------------------------------------------------------------

def rng_seed(uint64_t seed):
    c.brc_rng_seed(seed)


def rng_uniform():
    return c.brc_rng_uniform()


# ---- GCRA ------------------------------------------------------------------

cdef class Gcra:
    """A GCRA token bucket embedded by value; configured by brace.RateLimiter."""

    cdef c.brc_gcra_t _state

    def _configure(self, uint64_t interval_ns, uint64_t burst):
        _check(c.brc_gcra_init(&self._state, interval_ns, burst), "rate and burst")

    def _reconfigure(self, uint64_t interval_ns, uint64_t burst):
        _check(c.brc_gcra_reconfigure(&self._state, interval_ns, burst, c.brc_now_ns()),
               "rate and burst")

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
        if status == c.BRC_LIMITED:
            return False
        return self._raise_n(status, n)

    def peek(self, n=1):
        """Would try_acquire(n) succeed now? Takes nothing."""
        cdef int status = c.brc_gcra_peek(&self._state, _as_n(n), c.brc_now_ns(), NULL)
        if status == c.BRC_OK:
            return True
        if status == c.BRC_LIMITED:
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


# ---- what a guard is given ------------------------------------------------

CALLABLE_SYNC = c.BRC_CALLABLE_SYNC
CALLABLE_ASYNC = c.BRC_CALLABLE_ASYNC
CALLABLE_GUARDED = c.BRC_CALLABLE_GUARDED
CALLABLE_UNKNOWN = c.BRC_CALLABLE_UNKNOWN


def callable_kind(fn, owner):
    """CALLABLE_SYNC / _ASYNC / _GUARDED (by owner), or _UNKNOWN (Python must look)."""
    return c.brc_guard_callable_kind(fn, owner)


def is_awaitable(obj):
    """Whether obj has __await__ (a coroutine, a Future, ...): one C check."""
    return c.brc_guard_is_awaitable(obj)


cdef object _guarding = None


cdef object _guarding_module():
    """brace._guarding (imported on first need: it imports this module)."""
    global _guarding
    if _guarding is None:
        from brace import _guarding as module
        _guarding = module
    return _guarding


# ---- circuit breaker -------------------------------------------------------

from cpython.exc cimport PyErr_SetObject
from cpython.mem cimport PyMem_Free, PyMem_Malloc

from brace.errors import BulkheadFull, CircuitOpen

# What an owner's _guard_failed returns to re-raise the call's exception as it was.
RERAISE = object()
c.brc_guard_ready(RERAISE)

WINDOW_COUNT_MAX = 16384
WINDOW_TIME_MAX = 3600

cdef double _INF = float("inf")


cdef class Breaker:
    """A circuit breaker's compiled state; configured by brace.CircuitBreaker.

    The hooks below are the closed-state path of every guarded call: one
    atomic load to permit, one record (a slot swap and a counter add), no
    clock read unless slow calls are measured or the window is time-based.
    """

    cdef c.brc_breaker_t _state
    cdef c.brc_window_t *_window
    cdef readonly bint _measure  # read the clock around calls (slow-call detection)
    cdef uint64_t _slow_ns
    cdef bint _checks_result     # a result predicate: successes go through Python
    cdef bint _hooks_transitions # listeners or a wait function: transitions go through Python
    cdef bint _hooks_calls       # success / error listeners
    cdef bint _hooks_rejections  # not-permitted listeners
    cdef object _name
    cdef object __weakref__      # brace.control finds named breakers through a weak registry

    def __dealloc__(self):
        PyMem_Free(self._window)

    def _configure(self, *, str name, int window_kind, uint64_t window_size, uint64_t bucket_ns,
                   double failure_rate, double slow_rate, uint64_t minimum_calls,
                   uint64_t consecutive_failures, uint64_t half_open_calls, uint64_t max_half_open_ns,
                   uint64_t wait_base_ns, double wait_multiplier, uint64_t wait_max_ns,
                   double wait_jitter, object slow_ns, bint checks_result):
        cdef c.brc_breaker_config_t config
        cdef uint64_t size = c.brc_window_bytes(window_kind, window_size)
        if size == 0:
            raise ValueError("window_size is out of range")
        self._window = <c.brc_window_t *>PyMem_Malloc(size)
        if self._window == NULL:
            raise MemoryError()
        _check(c.brc_window_init(self._window, window_kind, window_size, bucket_ns), "window")
        config.failure_rate = failure_rate
        config.slow_rate = slow_rate
        config.minimum_calls = minimum_calls
        config.consecutive_failures = consecutive_failures
        config.half_open_calls = half_open_calls
        config.max_half_open = max_half_open_ns
        config.wait_base = wait_base_ns
        config.wait_multiplier = wait_multiplier
        config.wait_max = wait_max_ns
        config.wait_jitter = wait_jitter
        _check(c.brc_breaker_init(&self._state, &config), "breaker configuration")
        self._measure = slow_ns is not None
        self._slow_ns = slow_ns if slow_ns is not None else 0
        self._checks_result = checks_result
        self._name = name

    def _set_hooks(self, bint transitions, bint calls, bint rejections):
        self._hooks_transitions = transitions
        self._hooks_calls = calls
        self._hooks_rejections = rejections

    # -- the guarded call ---------------------------------------------------

    def _guard(self, fn):
        """A compiled wrapper that calls fn under this breaker (sync functions)."""
        return c.brc_guard_new(fn, self, _breaker_enter, _breaker_success)

    def call(self, fn, /, *args, **kwargs):
        """Calls fn(*args, **kwargs) under the breaker; raises CircuitOpen when not permitted."""
        cdef uint64_t token = 0, start = 0
        if c.brc_guard_callable_kind(fn, self) != c.BRC_CALLABLE_SYNC:
            if _guarding_module().sync_entry(fn, self, "CircuitBreaker.call"):
                # guarded by this breaker already: once is enough
                return _guarding_module().call_guarded(fn, args, kwargs, "CircuitBreaker.call")
        _breaker_enter(self, &token, &start)
        try:
            result = fn(*args, **kwargs)
        except BaseException as error:
            self._on_error(error, token, start)
            raise
        if c.brc_guard_is_awaitable(result):
            c.brc_breaker_release(&self._state, token)
            raise _guarding_module().refuse_awaitable(result, fn, "CircuitBreaker.call")
        if _breaker_success(self, token, start):
            return self._check_result(result, token, start)
        return result

    def _enter(self):
        """Permission for one call: (token, start), or raises CircuitOpen."""
        cdef uint64_t token = 0, start = 0
        _breaker_enter(self, &token, &start)
        return token, start

    def _finish(self, result, uint64_t token, uint64_t start):
        """Records a returned result; returns the result to give the caller."""
        if _breaker_success(self, token, start):
            return self._check_result(result, token, start)
        return result

    def _record(self, uint64_t token, bint failure, uint64_t start):
        """Records an outcome decided in Python (an exception, a checked result)."""
        cdef uint64_t now = 0, duration = 0
        cdef unsigned outcome = c.BRC_OUTCOME_FAILURE if failure else 0
        cdef c.brc_breaker_transition_t t
        if self._measure:
            now = c.brc_now_ns()
            duration = now - start
            if duration >= self._slow_ns:
                outcome |= c.BRC_OUTCOME_SLOW
        status = c.brc_breaker_record(&self._state, self._window, token, outcome, duration, now, &t)
        if t.to:
            self._on_transition(t.from_, t.to)
        return status == c.BRC_WOULD_OPEN, duration

    def _release(self, uint64_t token):
        c.brc_breaker_release(&self._state, token)

    # -- state ----------------------------------------------------------------

    def _transition(self, int state):
        cdef c.brc_breaker_transition_t t
        _check(c.brc_breaker_transition(&self._state, self._window, state, c.brc_now_ns(), &t),
               "state")
        if t.to:
            self._on_transition(t.from_, t.to)

    def _set_open_until(self, uint64_t generation, uint64_t until_ns):
        return c.brc_breaker_set_open_until(&self._state, generation, until_ns) == c.BRC_OK

    def _report(self):
        """(state, generation, openings, not_permitted, probes_out, retry_after_ns, consecutive)."""
        cdef c.brc_breaker_report_t r
        _check(c.brc_breaker_report(&self._state, c.brc_now_ns(), &r), "breaker (not configured)")
        return r.state, r.generation, r.openings, r.not_permitted, r.probes_out, r.retry_after, r.consecutive

    def _window_counts(self):
        """(calls, failures, slow_calls, slow_failures, duration_ns) in the window now."""
        cdef c.brc_window_snapshot_t s
        _check(c.brc_window_snapshot(self._window, c.brc_now_ns(), &s), "breaker (not configured)")
        return s.calls, s.failures, s.slow_calls, s.slow_failures, s.duration


cdef int _breaker_enter(object owner, uint64_t *token, uint64_t *start) except -1:
    cdef Breaker b = <Breaker>owner
    cdef c.brc_breaker_transition_t t
    cdef uint64_t retry_after = 0
    cdef c.brc_breaker_report_t report
    cdef int status = c.brc_breaker_acquire(&b._state, 0, token, &retry_after, &t)
    if t.to:
        b._on_transition(t.from_, t.to)
        if status != c.BRC_OK and t.to == c.BRC_OPEN:
            # re-opened just now: a wait function may have set another end
            c.brc_breaker_report(&b._state, c.brc_now_ns(), &report)
            retry_after = report.retry_after
    if status == c.BRC_OK:
        if b._measure:
            start[0] = c.brc_now_ns()
        return 0
    error = BaseException.__new__(CircuitOpen, b._name,
                                  _INF if retry_after == UINT64_MAX else retry_after / 1e9)
    if b._hooks_rejections:
        b._on_rejected(error)
    # Set directly rather than `raise`: Cython's raise would add a traceback
    # entry for this helper, which costs more than the rest of the rejection.
    PyErr_SetObject(CircuitOpen, error)
    return -1


cdef int _breaker_success(object owner, uint64_t token, uint64_t start) except -1:
    cdef Breaker b = <Breaker>owner
    cdef c.brc_breaker_transition_t t
    cdef uint64_t now = 0, duration = 0
    cdef unsigned outcome = 0
    if b._checks_result:
        return 1
    if b._measure:
        now = c.brc_now_ns()
        duration = now - start
        if duration >= b._slow_ns:
            outcome = c.BRC_OUTCOME_SLOW
    cdef int status = c.brc_breaker_record(&b._state, b._window, token, outcome, duration, now, &t)
    if t.to:
        b._on_transition(t.from_, t.to)
    if b._hooks_calls or status == c.BRC_WOULD_OPEN:
        b._on_success(duration, status == c.BRC_WOULD_OPEN)
    return 0


# ---- retry -----------------------------------------------------------------


cdef class RetryCore:
    """The compiled part of brace.Retry: the first attempt of a decorated sync
    function. A success returns at once; a failure, a result to check, or a
    configuration that needs Python for the whole call (a deadline or attempt
    timeout, which attempts can read) goes to the subclass's slow paths
    (guard.h's protocol)."""

    cdef bint _whole_call_in_python
    cdef bint _checks_result
    cdef object _deposit  # the budget's deposit(), or None

    def _configure_core(self, *, bint whole_call_in_python, bint checks_result, deposit):
        self._whole_call_in_python = whole_call_in_python
        self._checks_result = checks_result
        self._deposit = deposit

    def _guard(self, fn):
        """A compiled wrapper that calls fn under this retry (sync functions)."""
        return c.brc_guard_new(fn, self, _retry_enter, _retry_success)


cdef int _retry_enter(object owner, uint64_t *token, uint64_t *start) except -1:
    cdef RetryCore r = <RetryCore>owner
    if r._whole_call_in_python:
        return 1
    if r._deposit is not None:
        r._deposit()
    return 0


cdef int _retry_success(object owner, uint64_t token, uint64_t start) except -1:
    return 1 if (<RetryCore>owner)._checks_result else 0


# ---- bulkhead --------------------------------------------------------------

BULKHEAD_MAX = c.BRC_BULKHEAD_MAX


cdef class Permits:
    """A bulkhead's permit counter embedded by value; brace.Bulkhead adds the queue.

    try_acquire, release, __enter__ and __exit__ are one CAS each and run no
    Python code while a permit is free and nobody waits. When they cannot go
    ahead they call the subclass's slow paths: self._acquire_slow() waits in
    the FIFO queue (or raises) and returns what __enter__ returns;
    self._handoff() passes a released permit to the first waiter.
    The other underscored methods are the C slow-path primitives, which the
    subclass calls with its queue lock held.
    """

    cdef c.brc_bulkhead_t _state
    cdef object _full_name       # the facts of BulkheadFull, for the compiled
    cdef object _full_max        # rejection of a bulkhead that does not wait
    cdef double _full_wait

    def _set_facts(self, name, max_concurrent, double max_wait):
        self._full_name = name
        self._full_max = max_concurrent
        self._full_wait = max_wait

    def _configure(self, uint64_t max_concurrent):
        _check(c.brc_bulkhead_init(&self._state, max_concurrent), "max_concurrent")

    def _reconfigure(self, uint64_t max_concurrent):
        _check(c.brc_bulkhead_reconfigure(&self._state, max_concurrent), "max_concurrent")

    def try_acquire(self):
        """Takes a permit if one is free and no call is waiting; returns whether it did."""
        cdef int status = c.brc_bulkhead_try_acquire(&self._state)
        if status == c.BRC_OK:
            return True
        if status == c.BRC_REJECTED:
            return False
        return _check(status, "bulkhead (not configured)")

    def release(self):
        """Gives a permit back: to the first waiting call if there is one, else to the pool."""
        _permits_release(self)

    def __enter__(self):
        if c.brc_bulkhead_try_acquire(&self._state) == c.BRC_OK:
            return self
        if self._full_wait == 0 and self._full_max is not None:
            raise BaseException.__new__(BulkheadFull, self._full_name, self._full_max, self._full_wait)
        return self._acquire_slow()

    def __exit__(self, exc_type, exc, tb):
        _permits_release(self)

    def _guard(self, fn):
        """A compiled wrapper that calls fn in a slot (sync functions); when no
        slot is free it takes the subclass's self._guard_call(fn, args, kwargs)
        (see guard.h for the protocol)."""
        return c.brc_guard_new(fn, self, _permits_enter, _permits_success)

    def _enqueue(self):
        """Takes a permit freed since try_acquire failed (True), or flags a waiter (False)."""
        cdef int status = c.brc_bulkhead_enqueue(&self._state)
        _check(status, "bulkhead (not configured)")
        return status == c.BRC_OK

    def _pass_or_free(self, uint64_t queued):
        """For an owned permit: pass it to the first of `queued` waiters (True) or free it."""
        cdef int status = c.brc_bulkhead_handoff(&self._state, queued)
        if status < 0:
            _permits_raise_release(self, status)
        return status == c.BRC_HANDOFF

    def _grant(self, uint64_t queued):
        """Takes a new permit for the first of `queued` waiters if one is free."""
        cdef int status = c.brc_bulkhead_grant(&self._state, queued)
        _check(status, "bulkhead (not configured)")
        return status == c.BRC_OK

    def _unflag(self):
        """The queue emptied without a handoff: lets try_acquire take free permits again."""
        _check(c.brc_bulkhead_unflag(&self._state), "bulkhead (not configured)")

    def _report(self):
        """(in_use, max_concurrent, waiters_queued), one consistent snapshot."""
        cdef c.brc_bulkhead_report_t r
        _check(c.brc_bulkhead_report(&self._state, &r), "bulkhead (not configured)")
        return r.in_use, r.max, r.waiters_queued != 0


cdef inline int _permits_release(Permits p) except -1:
    cdef int status = c.brc_bulkhead_release(&p._state)
    if status == c.BRC_OK:
        return 0
    if status == c.BRC_HANDOFF:
        p._handoff()
        return 0
    return _permits_raise_release(p, status)


cdef int _permits_raise_release(Permits p, int status) except -1:
    cdef c.brc_bulkhead_report_t r
    if c.brc_bulkhead_report(&p._state, &r) == c.BRC_OK:
        raise ValueError("release() without a permit in use: released more often than acquired")
    return _check(status, "bulkhead (not configured)")


cdef int _permits_enter(object owner, uint64_t *token, uint64_t *start) except -1:
    cdef Permits p = <Permits>owner
    if c.brc_bulkhead_try_acquire(&p._state) == c.BRC_OK:
        return 0
    if p._full_wait == 0 and p._full_max is not None:  # does not wait: shed the call here
        PyErr_SetObject(BulkheadFull, BaseException.__new__(BulkheadFull, p._full_name, p._full_max, p._full_wait))
        return -1
    return 1  # full, or callers queued: wait in Python


cdef int _permits_success(object owner, uint64_t token, uint64_t start) except -1:
    return _permits_release(<Permits>owner)


# ---- backoff and jitter ----------------------------------------------------

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


# ---- retry budget ----------------------------------------------------------

from libc.stdint cimport int64_t

BUDGET_BUCKETS = c.BRC_BUDGET_BUCKETS
BUDGET_RATIO_MAX = c.BRC_BUDGET_RATIO_MAX
BUDGET_MIN_PER_SECOND_MAX = c.BRC_BUDGET_MIN_PER_SECOND_MAX
BUDGET_TTL_MIN = c.BRC_BUDGET_TTL_MIN
BUDGET_TTL_MAX = c.BRC_BUDGET_TTL_MAX


cdef class BudgetCore:
    """A retry budget's state embedded by value; configured by brace.RetryBudget.

    deposit and try_withdraw are one C call each on brace's clock: a deposit
    is one atomic add, a withdrawal reads the window and takes one CAS.
    """

    cdef c.brc_budget_t _state

    def _configure(self, uint64_t ratio_milli, uint64_t min_per_second, uint64_t ttl_ns):
        _check(c.brc_budget_init(&self._state, ratio_milli, min_per_second, ttl_ns),
               "ratio, min_per_second and ttl")

    def deposit(self):
        """Records one call: its `ratio` tokens count for the next `ttl`."""
        cdef int status = c.brc_budget_deposit(&self._state, c.brc_now_ns())
        if status < 0:
            _check(status, "retry budget (not configured)")

    def try_withdraw(self):
        """Takes one token for a retry if the balance covers it; returns whether it did."""
        cdef int status = c.brc_budget_try_withdraw(&self._state, c.brc_now_ns())
        if status == c.BRC_OK:
            return True
        if status == c.BRC_REJECTED:
            return False
        return _check(status, "retry budget (not configured)")

    def _balance(self):
        """The balance now, in milli-tokens (negative when overdrawn by expiry)."""
        cdef int64_t out = 0
        _check(c.brc_budget_balance(&self._state, c.brc_now_ns(), &out),
               "retry budget (not configured)")
        return out


# ---- policy ----------------------------------------------------------------


cdef class PolicyCore:
    """The compiled part of brace.Policy: every check of a call's first attempt
    in C - breaker permission, a limiter token, a bulkhead slot - and the
    bookkeeping of its success. When any of them says no (or the first attempt
    needs Python), what was taken is given back and the subclass's slow paths
    (guard.h's protocol) take the whole call, with the right errors and waits."""

    cdef Breaker _breaker
    cdef Gcra _limiter
    cdef Permits _bulkhead
    cdef object _deposit
    cdef bint _whole_call_in_python
    cdef bint _checks_result
    cdef bint _needs_start

    def _configure_core(self, *, breaker, limiter, bulkhead, deposit, bint whole_call_in_python,
                        bint checks_result, bint needs_start):
        self._breaker = breaker
        self._limiter = limiter
        self._bulkhead = bulkhead
        self._deposit = deposit
        self._whole_call_in_python = whole_call_in_python
        self._checks_result = checks_result
        self._needs_start = needs_start

    def _guard(self, fn):
        """A compiled wrapper that calls fn under this policy (sync functions)."""
        return c.brc_guard_new(fn, self, _policy_enter, _policy_success)

    def _try_enter(self):
        """For coroutines: (token, start) when every check passed in C, else
        None (nothing taken: the caller takes the Python path)."""
        cdef uint64_t token = 0, start = 0
        if _policy_enter(self, &token, &start):
            return None
        return token, start

    def _succeeded(self, uint64_t token, uint64_t start):
        """For coroutines: books a success; True when Python must check the result."""
        return _policy_success(self, token, start) != 0


cdef int _policy_enter(object owner, uint64_t *token, uint64_t *start) except -1:
    cdef PolicyCore p = <PolicyCore>owner
    cdef uint64_t ticket = 0, now = 0
    if p._whole_call_in_python:
        return 1
    if p._breaker is not None and c.brc_breaker_try_permit(&p._breaker._state, &ticket) != c.BRC_OK:
        return 1
    if p._limiter is not None:
        now = c.brc_now_ns()
        if c.brc_gcra_acquire(&p._limiter._state, 1, now, 0, NULL) != c.BRC_OK:
            return 1
    if p._bulkhead is not None and c.brc_bulkhead_try_acquire(&p._bulkhead._state) != c.BRC_OK:
        if p._limiter is not None:
            c.brc_gcra_refund(&p._limiter._state, 1, now)
        return 1
    if p._deposit is not None:
        p._deposit()
    token[0] = ticket
    if p._needs_start:
        start[0] = now if now else c.brc_now_ns()
    return 0


cdef int _policy_success(object owner, uint64_t token, uint64_t start) except -1:
    cdef PolicyCore p = <PolicyCore>owner
    if p._checks_result:
        return 1
    if p._bulkhead is not None:
        _permits_release(p._bulkhead)
    if p._breaker is not None:
        return _breaker_success(p._breaker, token, start)
    return 0


include "recovery.pxi"
