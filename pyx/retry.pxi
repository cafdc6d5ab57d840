# brace._core: RetryCore, the compiled base of brace.Retry; included by _core.pyx.

cdef class RetryCore:
    """The compiled part of brace.Retry: the first attempt of a decorated sync
    function. A success returns at once; a failure, a result to check, or a
    configuration that needs Python for the whole call (a deadline or attempt
    timeout, which attempts can read) goes to the subclass's slow paths
    (guard.h's protocol: brace._hooks.RetryHooks)."""

    cdef bint _whole_call_in_python
    cdef bint _checks_result
    cdef long _passes_below  # a response below this status passes the result checks (0: Python judges)
    cdef object _deposit  # the budget's deposit(), or None
    # Calls whose first attempt succeeded: a plain field, exact because every path that
    # counts holds the GIL (the compiled success path and Python alike); no lock, no allocation.
    cdef readonly uint64_t _successful_without_retry

    def _configure_core(self, *, bint whole_call_in_python, bint checks_result, long passes_below, deposit):
        self._whole_call_in_python = whole_call_in_python
        self._checks_result = checks_result
        self._passes_below = passes_below
        self._deposit = deposit

    def _guard(self, fn):
        """A compiled wrapper that calls fn under this retry (sync functions)."""
        return c.brc_guard_new(fn, self, _retry_enter, _retry_success)

    def _count_success_without_retry(self):
        """A first attempt succeeded on a path in Python (a checked result, a bounded call)."""
        _retry_count_first_try_success(self)


cdef inline void _retry_count_first_try_success(RetryCore r) noexcept:
    """Counts a call whose first attempt succeeded; for every compiled success path that
    holds this retry (a Policy's too). Call it with the GIL held."""
    r._successful_without_retry += 1


cdef int _retry_enter(object owner, uint64_t *token, uint64_t *start) except -1:
    cdef RetryCore r = <RetryCore>owner
    if r._whole_call_in_python:
        return 1
    if r._deposit is not None:
        r._deposit()
    return 0


cdef int _retry_success(object owner, uint64_t token, uint64_t start) except -1:
    cdef RetryCore r = <RetryCore>owner
    if r._checks_result:
        return 1
    _retry_count_first_try_success(r)
    return 0
