# brace._core: CircuitBreakerCore, the compiled base of brace.CircuitBreaker; included by _core.pyx.

# _breaker_admit's answer for a refused call: the caller sets the rejection itself (see _refuse).
cdef enum:
    _BREAKER_REFUSED = 2

WINDOW_COUNT_MAX = c.BRC_WINDOW_COUNT_MAX
WINDOW_TIME_MAX = c.BRC_WINDOW_TIME_MAX
WINDOW_CALLS_MAX = c.BRC_WINDOW_CALLS_MAX
HALF_OPEN_CALLS_MAX = c.BRC_HALF_OPEN_CALLS_MAX

cdef double _INF = float("inf")


cdef class CircuitBreakerCore:
    """A circuit breaker's compiled state; configured by brace.CircuitBreaker.

    The hooks below are the closed-state path of every guarded call: one
    atomic load to permit, one record (a slot swap and a counter add), no
    clock read unless slow calls are measured or the window is time-based.
    The Python hooks it calls on its subclass are brace._hooks.CircuitBreakerHooks.
    """

    cdef c.brc_breaker_t _state
    cdef c.brc_breaker_t *_b         # &_state, or the shared slot's breaker
    cdef c.brc_window_t *_window     # PyMem_Malloc'd (_owns_window), or the shared slot's
    cdef bint _owns_window
    cdef int _window_kind            # the window's kind, size and bucket (ns), to tell a resize
    cdef uint64_t _window_size
    cdef uint64_t _bucket_ns
    cdef SharedRegion _region        # keeps a shared state's mapping alive
    cdef readonly bint _measure  # read the clock around calls (slow-call detection)
    cdef uint64_t _slow_ns
    cdef bint _checks_result     # a result predicate: successes go through Python
    cdef long _passes_below      # ... except a response below this status, when it judges by status alone
    cdef bint _hooks_transitions # listeners or a wait function: transitions go through Python
    cdef bint _hooks_calls       # success / error listeners
    cdef bint _hooks_rejections  # not-permitted listeners
    cdef object _name
    # A breaker on a Redis store: the generation of its local HALF_OPEN, whose probes need a
    # lease from the store (its tickets equal it); UINT64_MAX (no ticket does) otherwise.
    cdef uint64_t _probe_gen
    # A breaker on a Redis store with on_store_error="closed" while its store is down: moved to
    # FORCED_OPEN, and its refusals raise the subclass's StoreUnavailable, not CircuitOpen.
    cdef readonly bint _store_down
    cdef object __weakref__      # brace.control finds named breakers through a weak registry

    def __cinit__(self):
        self._b = &self._state
        self._probe_gen = UINT64_MAX

    def __dealloc__(self):
        if self._owns_window:
            PyMem_Free(self._window)

    def _configure(self, *, str name, int window_kind, uint64_t window_size, uint64_t bucket_ns,
                   double failure_rate, double slow_rate, uint64_t minimum_calls,
                   uint64_t consecutive_failures, uint64_t half_open_calls, uint64_t max_half_open_ns,
                   uint64_t wait_base_ns, double wait_multiplier, uint64_t wait_max_ns,
                   double wait_jitter, object slow_ns, bint checks_result, long passes_below,
                   SharedRegion region=None, str slot=None):
        """Configures the breaker and its window: in this object, or (region and slot) in a
        shared region's slot, claimed by the first process. False (nothing changed) when the
        slot holds another configuration."""
        cdef c.brc_breaker_config_t config = _breaker_config(
            failure_rate, slow_rate, minimum_calls, consecutive_failures, half_open_calls, max_half_open_ns,
            wait_base_ns, wait_multiplier, wait_max_ns, wait_jitter)
        cdef uint64_t size = c.brc_window_bytes(window_kind, window_size)
        cdef bytes encoded
        cdef const char *slot_name
        cdef c.brc_breaker_t *shared = NULL
        cdef c.brc_window_t *shared_window = NULL
        cdef int status
        if self._window != NULL:
            raise RuntimeError("a breaker is configured once")
        if size == 0:
            raise ValueError("window_size is out of range")
        if region is not None:
            encoded = slot.encode()
            slot_name = encoded
            with nogil:  # it may wait (bounded) for another process to finish initialising it
                status = c.brc_region_breaker(region._region, slot_name, &config, window_kind,
                                              window_size, bucket_ns, &shared, &shared_window)
            if status == c.BRC_EEXIST:
                return False
            _region_check(status, f"shm://{region.name}, slot {slot!r}")
            self._b, self._window, self._region = shared, shared_window, region
        else:
            self._window = <c.brc_window_t *>PyMem_Malloc(size)
            if self._window == NULL:
                raise MemoryError()
            self._owns_window = True
            _check(c.brc_window_init(self._window, window_kind, window_size, bucket_ns), "window")
            _check(c.brc_breaker_init(&self._state, &config), "breaker configuration")
        self._window_kind, self._window_size, self._bucket_ns = window_kind, window_size, bucket_ns
        self._measure = slow_ns is not None
        self._slow_ns = slow_ns if slow_ns is not None else 0
        self._checks_result = checks_result
        self._passes_below = passes_below
        self._name = name
        return True

    def _reconfigure(self, *, int window_kind, uint64_t window_size, uint64_t bucket_ns,
                     double failure_rate, double slow_rate, uint64_t minimum_calls,
                     uint64_t consecutive_failures, uint64_t half_open_calls, uint64_t max_half_open_ns,
                     uint64_t wait_base_ns, double wait_multiplier, uint64_t wait_max_ns,
                     double wait_jitter, object slow_ns, bint checks_result, long passes_below):
        """Replaces the configuration of a local breaker in use, keeping its state
        (brc_breaker_reconfigure). A new window size or kind gets a new window: a count
        window resized keeps its newest outcomes (brc_window_carry), any other change
        starts it empty. All or nothing: on an error nothing has changed."""
        cdef c.brc_breaker_config_t config = _breaker_config(
            failure_rate, slow_rate, minimum_calls, consecutive_failures, half_open_calls, max_half_open_ns,
            wait_base_ns, wait_multiplier, wait_max_ns, wait_jitter)
        cdef c.brc_breaker_transition_t t
        cdef c.brc_window_t *window = self._window
        cdef uint64_t size
        cdef int status
        if not self._owns_window:
            raise RuntimeError("a breaker in a shared region keeps its configuration")
        # Every step below runs under the GIL, as do the records into the window: none
        # lands in the old window while it is carried, and none is on it once it is freed.
        if (window_kind, window_size, bucket_ns) != (self._window_kind, self._window_size, self._bucket_ns):
            size = c.brc_window_bytes(window_kind, window_size)
            if size == 0:
                raise ValueError("window_size is out of range")
            window = <c.brc_window_t *>PyMem_Malloc(size)
            if window == NULL:
                raise MemoryError()
            status = c.brc_window_init(window, window_kind, window_size, bucket_ns)
            if status == c.BRC_OK:
                c.brc_window_carry(window, self._window)  # BRC_EINVAL, nothing carried, unless both count
                status = c.brc_breaker_reconfigure(self._b, window, &config, 0, &t)
            if status != c.BRC_OK:
                PyMem_Free(window)
                _check(status, "breaker configuration")
            PyMem_Free(self._window)
            self._window = window
            self._window_kind, self._window_size, self._bucket_ns = window_kind, window_size, bucket_ns
        else:
            _check(c.brc_breaker_reconfigure(self._b, window, &config, 0, &t), "breaker configuration")
        self._measure = slow_ns is not None
        self._slow_ns = slow_ns if slow_ns is not None else 0
        self._checks_result = checks_result
        self._passes_below = passes_below
        if t.to:
            self._on_transition(t.from_, t.to)

    def _set_probe_gen(self, uint64_t generation):
        """Tickets of this generation (a HALF_OPEN's probes) call _probe_admitted on entry (a
        coroutine's, _admit_deferring and `async with`: the awaited _lease_async) and
        _probe_done / _probe_given_back at their end; UINT64_MAX: none do."""
        self._probe_gen = generation

    def _set_store_down(self, bint down):
        """While True, a refused call raises self._store_refusal() (the store is away)."""
        self._store_down = down

    def _set_hooks(self, bint transitions, bint calls, bint rejections):
        self._hooks_transitions = transitions
        self._hooks_calls = calls
        self._hooks_rejections = rejections

    # -- the guarded call: the decorator's wrapper here; call, with and async
    # with are compiled entries (entries.h) installed below the class

    def _guard(self, fn):
        """A compiled wrapper that calls fn under this breaker (sync functions)."""
        return c.brc_guard_new(fn, self, _breaker_enter, _breaker_success)

    def _enter(self):
        """Permission for one call: (token, start), or raises CircuitOpen."""
        cdef uint64_t token = 0, start = 0
        _breaker_enter(self, &token, &start)
        return token, start

    def _admit_deferring(self):
        """Permission for one call of a coroutine: (token, start, probe), or raises. probe: a
        probe whose lease the caller must await (`_lease_async(token)` gives its start)."""
        cdef uint64_t token = 0, start = 0, retry_after = 0
        cdef int admitted = _breaker_admit(self, &token, &start, False, &retry_after)
        if admitted == _BREAKER_REFUSED:
            raise _breaker_refusal(self, retry_after)
        return token, start, admitted == 1

    def _open_block(self, uint64_t token, uint64_t start):
        """Opens the `async with` block of an admitted probe (its __aexit__ closes it)."""
        c.brc_scope_push(self, token, start)

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
        if self._measure and start:  # 0: it started before a reconfigure made calls timed
            now = c.brc_now_ns()
            duration = now - start
            if duration >= self._slow_ns:
                outcome |= c.BRC_OUTCOME_SLOW
        if token & c.BRC_BREAKER_LEASED:
            status = c.brc_breaker_record_leased(self._b, self._window, _my_lease_tag(), token, outcome,
                                                 duration, now, &t)
        else:
            status = c.brc_breaker_record(self._b, self._window, token, outcome, duration, now, &t)
        if t.to:
            self._on_transition(t.from_, t.to)
        if token == self._probe_gen:
            self._probe_done(outcome)
        return status == c.BRC_WOULD_OPEN, duration

    def _release(self, uint64_t token):
        _breaker_give_back(self, token)

    def _ignore(self, uint64_t token):
        """Gives back the permission of a call whose error is ignored, and counts it."""
        c.brc_breaker_count_ignored(self._b)
        _breaker_give_back(self, token)

    def _release_unleased(self, uint64_t token):
        """Gives back a permission whose probe the store refused (no lease to return)."""
        c.brc_breaker_release(self._b, token)

    # -- state ----------------------------------------------------------------

    def _transition(self, int state):
        cdef c.brc_breaker_transition_t t
        _check(c.brc_breaker_transition(self._b, self._window, state, c.brc_now_ns(), &t),
               "state")
        if t.to:
            self._on_transition(t.from_, t.to)

    def _set_open_until(self, uint64_t generation, uint64_t until_ns):
        return c.brc_breaker_set_open_until(self._b, generation, until_ns) == c.BRC_OK

    def _report(self):
        """(state, generation, openings, not_permitted, probes_out, retry_after_ns, consecutive)."""
        cdef c.brc_breaker_report_t r
        _check(c.brc_breaker_report(self._b, c.brc_now_ns(), &r), "breaker (not configured)")
        return r.state, r.generation, r.openings, r.not_permitted, r.probes_out, r.retry_after, r.consecutive

    def _calls(self):
        """(successful, failed, slow, ignored, not_permitted): calls since the state was made."""
        cdef c.brc_breaker_report_t r
        _check(c.brc_breaker_report(self._b, 0, &r), "breaker (not configured)")
        return r.successful, r.failed, r.slow, r.ignored, r.not_permitted

    def _window_counts(self):
        """(calls, failures, slow_calls, slow_failures, duration_ns) in the window now."""
        cdef c.brc_window_snapshot_t s
        _check(c.brc_window_snapshot(self._window, c.brc_now_ns(), &s), "breaker (not configured)")
        return s.calls, s.failures, s.slow_calls, s.slow_failures, s.duration


cdef c.brc_breaker_config_t _breaker_config(
        double failure_rate, double slow_rate, uint64_t minimum_calls, uint64_t consecutive_failures,
        uint64_t half_open_calls, uint64_t max_half_open_ns, uint64_t wait_base_ns, double wait_multiplier,
        uint64_t wait_max_ns, double wait_jitter):
    cdef c.brc_breaker_config_t config
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
    return config


cdef int _breaker_enter(object owner, uint64_t *token, uint64_t *start) except -1:
    cdef uint64_t retry_after = 0
    cdef int admitted = _breaker_admit(<CircuitBreakerCore>owner, token, start, True, &retry_after)
    if admitted == _BREAKER_REFUSED:
        return _refuse(_breaker_refusal(<CircuitBreakerCore>owner, retry_after))
    return admitted


cdef int _breaker_enter_async(object owner, uint64_t *token, uint64_t *start) except -1:
    # `async with`: a probe whose lease is a round trip is awaited by _breaker_lease_async,
    # which finds its token in the block's scope.
    cdef uint64_t retry_after = 0
    cdef int admitted = _breaker_admit(<CircuitBreakerCore>owner, token, start, False, &retry_after)
    if admitted == _BREAKER_REFUSED:
        return _refuse(_breaker_refusal(<CircuitBreakerCore>owner, retry_after))
    if admitted == 1:
        try:
            c.brc_scope_push(owner, token[0], 0)
        except BaseException:  # MemoryError: the probe never starts
            c.brc_breaker_release((<CircuitBreakerCore>owner)._b, token[0])
            raise
    return admitted


cdef object _breaker_lease_async(object owner):
    cdef uint64_t token = 0, start = 0
    c.brc_scope_pop(owner, &token, &start)
    return owner._aenter_probe(token)


cdef inline int _refuse(object error) noexcept:
    """Sets the call's rejection and answers -1, as a guard's enter hook does. Set directly
    rather than `raise`: Cython's raise, or an error returned by a helper, would add a
    traceback entry, which costs more than the rest of the rejection."""
    PyErr_SetObject(type(error), error)
    return -1


cdef object _breaker_refusal(CircuitBreakerCore b, uint64_t retry_after):
    """The rejection of a refused call (its listeners told)."""
    if b._store_down:
        return b._store_refusal()
    error = c.brc_guard_rejection(CircuitOpen, (b._name, _INF if retry_after == UINT64_MAX else retry_after / 1e9))
    if b._hooks_rejections:
        b._on_rejected(error)
    return error


cdef inline int _breaker_admit(CircuitBreakerCore b, uint64_t *token, uint64_t *start,
                               bint lease_here, uint64_t *retry_out) except -1:
    """0: admitted; 1 (lease_here false): a probe admitted whose lease the caller awaits
    (start not taken); _BREAKER_REFUSED: refused, *retry_out the wait (the caller raises)."""
    cdef c.brc_breaker_transition_t t
    cdef uint64_t retry_after = 0
    cdef c.brc_breaker_report_t report
    cdef int status
    if b._region is None:
        status = c.brc_breaker_acquire(b._b, 0, token, &retry_after, &t)
    else:  # a shared breaker leases its probes: a dead process's come back (brc_breaker_acquire_leased)
        status = c.brc_breaker_acquire_leased(b._b, _my_lease_tag(), 0, token, &retry_after, &t)
    if t.to:
        b._on_transition(t.from_, t.to)
        if status != c.BRC_OK and t.to == c.BRC_OPEN:
            # re-opened just now: a wait function may have set another end
            c.brc_breaker_report(b._b, c.brc_now_ns(), &report)
            retry_after = report.retry_after
    if status == c.BRC_OK:
        if token[0] == b._probe_gen:
            if not lease_here:
                return 1
            b._probe_admitted(token[0])  # a probe of a breaker on a Redis store: its lease, or raises
        if b._measure:
            start[0] = c.brc_now_ns()
        return 0
    retry_out[0] = retry_after
    return _BREAKER_REFUSED


cdef int _breaker_success(object owner, uint64_t token, uint64_t start) except -1:
    if (<CircuitBreakerCore>owner)._checks_result:
        return 1
    return _breaker_book_success(<CircuitBreakerCore>owner, token, start)


cdef int _breaker_book_success(CircuitBreakerCore b, uint64_t token, uint64_t start) except -1:
    """Books a call that succeeded (its result, if the breaker judges results, judged a success)."""
    cdef c.brc_breaker_transition_t t
    cdef uint64_t now = 0, duration = 0
    cdef unsigned outcome = 0
    if b._measure and start:  # 0: it started before a reconfigure made calls timed
        now = c.brc_now_ns()
        duration = now - start
        if duration >= b._slow_ns:
            outcome = c.BRC_OUTCOME_SLOW
    cdef int status
    if token & c.BRC_BREAKER_LEASED:
        status = c.brc_breaker_record_leased(b._b, b._window, _my_lease_tag(), token, outcome, duration, now, &t)
    else:
        status = c.brc_breaker_record(b._b, b._window, token, outcome, duration, now, &t)
    if t.to:
        b._on_transition(t.from_, t.to)
    if token == b._probe_gen:
        b._probe_done(outcome)
    if b._hooks_calls or status == c.BRC_WOULD_OPEN:
        b._on_success(duration, status == c.BRC_WOULD_OPEN)
    return 0


# -- the entries (entries.h): cb.call, with cb, async with cb ---------------

cdef int _breaker_give_back(object owner, uint64_t token) except -1:
    if token & c.BRC_BREAKER_LEASED:
        c.brc_breaker_release_leased((<CircuitBreakerCore>owner)._b, _my_lease_tag(), token)
    else:
        c.brc_breaker_release((<CircuitBreakerCore>owner)._b, token)
    if token == (<CircuitBreakerCore>owner)._probe_gen:
        owner._probe_given_back()
    return 0


cdef int _breaker_exit_result(object owner, uint64_t token, uint64_t start) except -1:
    # A result predicate has no result to judge at a block's end: the block succeeded.
    owner._record_and_tell(token, False, start)
    return 0


cdef int _breaker_exit_failed(object owner, object error, uint64_t token, uint64_t start) except -1:
    owner._on_error(error, token, start)
    return 0


cdef c.brc_entry_hooks_t _breaker_entries
_breaker_entries.name = "CircuitBreaker"
_breaker_entries.scoped = True  # a block's permission and start, per thread and context (scopes.h)
_breaker_entries.enter = _breaker_enter
_breaker_entries.success = _breaker_success
_breaker_entries.give_back = _breaker_give_back
_breaker_entries.refuse = _refuse_awaitable
_breaker_entries.exit_result = _breaker_exit_result
_breaker_entries.exit_failed = _breaker_exit_failed
c.brc_entry_install(CircuitBreakerCore, &_breaker_entries, c.BRC_ENTRY_CALL | c.BRC_ENTRY_WITH)

# `async with`: the same hooks, but a probe's lease (a breaker on a Redis store) is awaited.
cdef c.brc_entry_hooks_t _breaker_async_entries = _breaker_entries
_breaker_async_entries.enter = _breaker_enter_async
_breaker_async_entries.enter_slow_async = _breaker_lease_async
c.brc_entry_install(CircuitBreakerCore, &_breaker_async_entries, c.BRC_ENTRY_ASYNC_WITH)
