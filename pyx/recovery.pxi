# ---- recovery ----------------------------------------------------------------
# Included by _core.pyx. brace.Recovery's algorithm is Python (brace.recovery._loop);
# this is the one thing a recovered call does millions of times: a first attempt
# that succeeds, when nothing needs the per-attempt record.

import types as _types


cdef inline bint _plain_result(object result):
    """Whether result is never a failure to ErrorClassifier's is_failure (which looks
    for an HTTP response): exactly a builtin without instance attributes."""
    cdef type kind = type(result)
    return (result is None or kind is int or kind is str or kind is bool or kind is float or kind is dict
            or kind is list or kind is tuple or kind is bytes or kind is set or kind is frozenset)

# `Recovery.replaying()` blocks open in the process: while there is one, a success
# may belong to a replay's books, which only the Python path tells apart.
cdef Py_ssize_t _recovery_replays = 0


def recovery_replays_add(Py_ssize_t delta):
    """Counts a `Recovery.replaying()` block in (+1) or out (-1) (the GIL makes it atomic)."""
    global _recovery_replays
    _recovery_replays += delta


def recovery_replays():
    """How many `Recovery.replaying()` blocks are open in the process."""
    return _recovery_replays


cdef class RecoveryCore:
    """The compiled part of brace.Recovery: what a call's first attempt needs from Python
    (nothing but a count when lean; the whole call with write-ahead; a correlation id
    around it when listened to), and the count of lean first-try successes."""

    cdef bint _lean
    cdef bint _whole_call_in_python
    cdef bint _listened
    cdef object _correlation_var
    cdef object _new_correlation_id
    cdef readonly unsigned long long lean_first_tries

    def configure(self, *, bint lean, bint whole_call_in_python, bint listened, correlation_var,
                   new_correlation_id):
        self._lean = lean
        self._whole_call_in_python = whole_call_in_python
        self._listened = listened
        self._correlation_var = correlation_var
        self._new_correlation_id = new_correlation_id


cdef class Recovered:
    """A sync function decorated by a brace.Recovery (compiled).

    The first attempt runs here; when the Recovery is lean, a success with a
    plain result (None, a number, a str, a container) returns at once,
    counted. Anything else - a failure, another result, an awaitable, a
    Recovery that records more - goes to Python: `whole(args, kwargs)` for
    the whole call (write-ahead records come before the attempt), else
    `rest(args, kwargs, start, returned, outcome)` after the first attempt
    made here (within the call's correlation id, made here when listened to).
    """

    cdef object _attempt
    cdef object _whole
    cdef object _rest
    cdef RecoveryCore _core
    cdef readonly object guarded_by
    cdef dict __dict__          # functools.update_wrapper writes __name__, __wrapped__, ... here
    cdef object __weakref__

    def __init__(self, attempt, RecoveryCore core, owner, whole, rest):
        self._attempt = attempt
        self._core = core
        self.guarded_by = owner
        self._whole = whole
        self._rest = rest

    def __call__(self, *args, **kwargs):
        cdef RecoveryCore core = self._core
        if core._lean and not _recovery_replays:
            return self._first(args, kwargs, True)
        if core._whole_call_in_python:
            return self._whole(args, kwargs)
        if core._listened and core._correlation_var.get() is None:
            token = core._correlation_var.set(core._new_correlation_id())
            try:
                return self._first(args, kwargs, False)
            finally:
                core._correlation_var.reset(token)
        return self._first(args, kwargs, False)

    cdef object _first(self, tuple args, dict kwargs, bint lean):
        cdef uint64_t start = c.brc_now_ns()
        try:
            result = self._attempt(*args, **kwargs)
        except Exception as error:
            return self._rest(args, kwargs, start, False, error)
        if lean and _plain_result(result):
            self._core.lean_first_tries += 1
            return result
        return self._rest(args, kwargs, start, True, result)

    def __get__(self, obj, objtype):
        """Decorating a method: bind like a function does."""
        if obj is None:
            return self
        return _types.MethodType(self, obj)

    def __repr__(self):
        return f"<brace recovered {self._attempt!r}>"
