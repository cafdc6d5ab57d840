# brace._core: BulkheadCore, the compiled base of brace.Bulkhead; included by _core.pyx.

BULKHEAD_MAX = c.BRC_BULKHEAD_MAX
LEASES_MAX = c.BRC_LEASES_MAX
LEASES_SWEEP_NS = c.BRC_LEASES_SWEEP_NS


cdef class BulkheadCore:
    """A bulkhead's permit counter embedded by value; brace.Bulkhead adds the queue.

    try_acquire, release and the compiled entries installed below the class
    (call, with, async with: entries.h) are one CAS each and run no Python
    code while a permit is free and nobody waits. When they cannot go ahead
    they call the subclass's slow paths: self._acquire_slow() waits in the
    FIFO queue (or raises) and returns what __enter__ returns (and
    self._enter_slow_async() for async with, self._call_slow(...) for call);
    self._handoff() passes a released permit to the first waiter.
    The other underscored methods are the C slow-path primitives, which the
    subclass calls with its queue lock held. The Python hooks it calls on its
    subclass are brace._hooks.BulkheadHooks.
    """

    cdef c.brc_bulkhead_t _state
    cdef c.brc_leases_t *_leases     # NULL, or a shared bulkhead's leased permits (_attach)
    cdef SharedRegion _region        # keeps a shared state's mapping alive
    cdef uint64_t _hint              # a lease index this process took lately: release looks there first
    cdef tuple _full_facts       # BulkheadFull's args, for the compiled rejection
    cdef double _full_wait       # of a bulkhead that does not wait (max_wait 0)
    cdef bint _configured
    cdef bint _rejections_in_python  # someone listens to rejections: raise them in Python
    cdef uint64_t _rejected          # calls this object rejected (BulkheadFull), ever: read by metrics

    def _configure(self, name, uint64_t max_concurrent, double max_wait):
        """Configures the permits (or changes a configured max, permits in use
        staying in use) and the facts of the compiled BulkheadFull."""
        if self._configured:
            _check(c.brc_bulkhead_reconfigure(&self._state, max_concurrent), "max_concurrent")
        else:
            _check(c.brc_bulkhead_init(&self._state, max_concurrent), "max_concurrent")
            self._configured = True
        self._full_facts = (name, max_concurrent, max_wait)
        self._full_wait = max_wait

    def _attach(self, SharedRegion region, str slot, uint64_t max_concurrent, name, double max_wait):
        """Uses the leased permits in region's slot `slot`, claiming and configuring them if no
        process has yet. False (nothing changed) when the slot holds another configuration."""
        cdef c.brc_leases_t *shared = NULL
        cdef bytes encoded = slot.encode()
        cdef const char *slot_name = encoded
        cdef int status
        if self._configured:
            raise RuntimeError("a configured bulkhead cannot move into a shared region")
        with nogil:  # it may wait (bounded) for another process to finish initialising it
            status = c.brc_region_leases(region._region, slot_name, max_concurrent, &shared)
        if status == c.BRC_EEXIST:
            return False
        _region_check(status, f"shm://{region.name}, slot {slot!r}")
        self._leases = shared
        self._region = region
        self._configured = True
        self._full_facts = (name, max_concurrent, max_wait)
        self._full_wait = max_wait
        return True

    def _sweep(self):
        """A shared bulkhead: frees the permits of dead processes now; returns how many."""
        if self._leases == NULL:
            return 0
        return _check(c.brc_leases_sweep(self._leases, c.brc_now_ns()), "bulkhead (not configured)")

    def _reject_in_python(self, bint on):
        """Whether a full bulkhead that does not wait rejects through the subclass's
        slow path (which tells its listeners) instead of in compiled code."""
        self._rejections_in_python = on

    def _count_rejection(self):
        """Counts one BulkheadFull raised in Python (one add under the GIL: exact across threads)."""
        self._rejected += 1

    def _rejections(self):
        return self._rejected

    def try_acquire(self):
        """Takes a permit if one is free and no call is waiting; returns whether it did."""
        cdef uint64_t token
        cdef int status = _permits_try(self, &token)
        if status == c.BRC_OK:
            return True
        if status == c.BRC_REFUSED:
            return False
        return _check(status, "bulkhead (not configured)")

    def release(self):
        """Gives a permit back: to the first waiting call if there is one, else to the pool."""
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
        cdef c.brc_leases_report_t leases
        if self._leases != NULL:
            _check(c.brc_leases_report(self._leases, 0, &leases), "bulkhead (not configured)")
            return leases.in_use, leases.max, False
        _check(c.brc_bulkhead_report(&self._state, &r), "bulkhead (not configured)")
        return r.in_use, r.max, r.waiters_queued != 0


cdef inline int _permits_try(BulkheadCore p, uint64_t *token) noexcept:
    """Takes a permit: from the local counter, or a shared bulkhead's lease (its index in *token)."""
    cdef int status
    if p._leases == NULL:
        return c.brc_bulkhead_try_acquire(&p._state)
    status = c.brc_leases_acquire(p._leases, _my_lease_tag(), c.brc_now_ns(), token)
    if status == c.BRC_OK:
        p._hint = token[0]
    return status


cdef inline int _permits_release(BulkheadCore p, uint64_t token=UINT64_MAX) except -1:
    """Gives a permit back; a shared bulkhead's lease `token` (UINT64_MAX: unknown, any this
    process holds - the permits are the process's, whichever thread took them)."""
    cdef int status
    if p._leases != NULL:
        status = c.brc_leases_release(p._leases, _my_lease_tag(),
                                      p._hint if token == UINT64_MAX else token)
        if status == c.BRC_OK:
            return 0
        if status == c.BRC_EINVAL:
            raise ValueError("release() without a permit this process holds: released more often "
                             "than acquired (or the permits were taken in the parent of a fork())")
        return _check(status, "bulkhead (not configured)")
    status = c.brc_bulkhead_release(&p._state)
    if status == c.BRC_OK:
        return 0
    if status == c.BRC_HANDOFF:
        p._handoff()
        return 0
    return _permits_raise_release(p, status)


cdef int _permits_raise_release(BulkheadCore p, int status) except -1:
    cdef c.brc_bulkhead_report_t r
    if c.brc_bulkhead_report(&p._state, &r) == c.BRC_OK:
        raise ValueError("release() without a permit in use: released more often than acquired")
    return _check(status, "bulkhead (not configured)")


cdef int _permits_enter(object owner, uint64_t *token, uint64_t *start) except -1:
    cdef BulkheadCore p = <BulkheadCore>owner
    if _permits_try(p, token) == c.BRC_OK:
        return 0
    if p._full_wait != 0 or p._full_facts is None or p._rejections_in_python:
        return 1  # full, or callers queued, or listened to: wait or reject in Python
    # Does not wait: shed the call here.
    p._rejected += 1
    # Set directly, as the breaker's: a `raise` would add a traceback entry for this helper.
    PyErr_SetObject(BulkheadFull, c.brc_guard_rejection(BulkheadFull, p._full_facts))
    return -1


cdef int _permits_success(object owner, uint64_t token, uint64_t start) except -1:
    return _permits_release(<BulkheadCore>owner, token)


# -- the entries (entries.h): bh.call, with bh, async with bh ----------------

cdef int _permits_give_back(object owner, uint64_t token) except -1:
    return _permits_release(<BulkheadCore>owner, token)


cdef object _permits_enter_slow(object owner):
    return owner._acquire_slow()


cdef object _permits_enter_slow_async(object owner):
    return owner._enter_slow_async()


cdef int _permits_exit_failed(object owner, object error, uint64_t token, uint64_t start) except -1:
    return _permits_release(<BulkheadCore>owner, token)


cdef c.brc_entry_hooks_t _bulkhead_entries
_bulkhead_entries.name = "Bulkhead"
_bulkhead_entries.enter = _permits_enter
_bulkhead_entries.success = _permits_success
_bulkhead_entries.give_back = _permits_give_back
_bulkhead_entries.refuse = _refuse_awaitable
_bulkhead_entries.enter_slow = _permits_enter_slow
_bulkhead_entries.enter_slow_async = _permits_enter_slow_async
_bulkhead_entries.exit_failed = _permits_exit_failed
c.brc_entry_install(BulkheadCore, &_bulkhead_entries,
                    c.BRC_ENTRY_CALL | c.BRC_ENTRY_WITH | c.BRC_ENTRY_ASYNC_WITH)
