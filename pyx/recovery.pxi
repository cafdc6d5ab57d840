# ---- recovery ----------------------------------------------------------------
# Included by _core.pyx. brace.Recovery's algorithm is Python (brace.recovery._loop);
# this is the one thing a recovered call does millions of times: a first attempt
# that succeeds, decided in C (pyx/recovered.c) with nothing but a count, and, when
# someone listens, one compact record handed to the listeners (recovered.h).

import os as _os
from collections import deque as _deque

from cpython.object cimport PyObject

cdef extern from "recovered.h":
    ctypedef struct brc_recovery_state:
        int fast
        int whole_call_in_python
        PyObject *targets
        PyObject *correlation_var
        PyObject *report
        uint64_t first_tries
    object brc_recovered_new(object attempt, object state_owner, brc_recovery_state *state, object owner,
                             object operation, object whole, object rest)
    int brc_recovered_ready() except -1
    Py_ssize_t brc__recovery_replays
    int brc_correlation_restart(object prefix) except -1
    object brc_correlation_new()

brc_recovered_ready()


def recovery_replays_add(Py_ssize_t delta):
    """Counts a `Recovery.replaying()` block in (+1) or out (-1) (the GIL makes it atomic)."""
    global brc__recovery_replays
    brc__recovery_replays += delta


def recovery_replays():
    """How many `Recovery.replaying()` blocks are open in the process."""
    return brc__recovery_replays


def _restart_correlation_ids():
    """Correlation ids from now on: a random prefix of 64 bits (16 hex digits), a serial
    from 0; drawn again in a forked child, so that ids stay unique across processes."""
    brc_correlation_restart(_os.urandom(8).hex())


_restart_correlation_ids()
_os.register_at_fork(after_in_child=_restart_correlation_ids)


def new_correlation_id():
    """A fresh correlation id: 32 hex digits, unique across processes (like a uuid4, at a
    fraction of its cost: a logged call without an id gets one)."""
    return brc_correlation_new()


cdef class RecoveryCore:
    """The compiled part of brace.Recovery: what a call's first attempt needs from Python
    (see recovered.h), and the count of first-try successes decided in C."""

    cdef brc_recovery_state _state
    # The references behind the state's borrowed pointers.
    cdef tuple _targets
    cdef object _correlation_var
    cdef object _report

    def __cinit__(self):
        self._targets = ()
        self._state.targets = <PyObject *>self._targets
        self._correlation_var = None
        self._state.correlation_var = <PyObject *>self._correlation_var
        self._report = None
        self._state.report = <PyObject *>self._report

    def configure(self, *, bint fast, bint whole_call_in_python, tuple targets, correlation_var, report):
        """fast: a first-try success with a plain result needs only a count and the targets told;
        targets: callables taking a first-try record (operation, start ns, duration ns,
        correlation id), empty when nobody listens; report(target, operation, error): a target raised."""
        self._targets, self._correlation_var, self._report = targets, correlation_var, report
        self._state.targets = <PyObject *>targets
        self._state.correlation_var = <PyObject *>correlation_var
        self._state.report = <PyObject *>report
        self._state.fast = fast
        self._state.whole_call_in_python = whole_call_in_python

    @property
    def first_tries(self):
        """First-try successes decided in C (counted nowhere else)."""
        return self._state.first_tries

    def recovered(self, attempt, owner, str operation, whole, rest):
        """A sync function decorated by this core's Recovery (a brace._core.Recovered)."""
        return brc_recovered_new(attempt, self, &self._state, owner, operation, whole, rest)


cdef class Tally:
    """A count that threads add to without a lock: each add is one C step under the GIL.
    Called with anything, it counts the call (a first-try target that only counts)."""

    cdef readonly unsigned long long value

    def add(self):
        self.value += 1

    def __call__(self, record):
        self.value += 1


cdef class EventRing:
    """The newest `capacity` items, and how many older ones were pushed out: appends take no
    lock (each is one C step under the GIL), so an eviction is never miscounted."""

    cdef object _items
    cdef Py_ssize_t _capacity
    cdef readonly unsigned long long evicted

    def __init__(self, Py_ssize_t capacity):
        self._items = _deque(maxlen=capacity)
        self._capacity = capacity

    def append(self, item):
        if len(self._items) == self._capacity:
            self.evicted += 1
        self._items.append(item)

    def items(self):
        """The items held, oldest first (a copy)."""
        return list(self._items)

    def clear(self):
        self._items.clear()

    @property
    def capacity(self):
        return self._capacity

    def __len__(self):
        return len(self._items)
