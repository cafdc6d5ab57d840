# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""brace._core: the compiled core. Private: use the brace package's public API.

One extension module (one import), written uvloop-style: this file holds what
every primitive shares and includes one .pxi per primitive, each with the
cdef class that backs the public class of the same name (RateLimiterCore
backs brace.RateLimiter, ...). cbrace.pxd mirrors csrc/brace.h; guard.h /
guard.c are the compiled wrapper of decorated functions. The Python hooks
each cdef class calls on its subclass are declared in brace._hooks.
"""
from cpython.exc cimport PyErr_SetObject
from cpython.long cimport PyLong_AsLongLongAndOverflow, PyLong_CheckExact
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from libc.errno cimport errno
from libc.stdint cimport UINT64_MAX, int64_t, uint64_t

cimport cbrace as c

import os

from brace.errors import AttemptTimeout, BulkheadFull, CircuitOpen, KeyTableFull, RateLimited


cdef int _check(int status, str context) except -1:
    """The one place where a negative C status becomes a Python exception."""
    if status >= 0:
        return status
    message = f"{context}: {c.brc_strerror(status).decode()}"
    if status == c.BRC_ERANGE:
        raise OverflowError(message)
    raise ValueError(message)


# The limits the core checks, from brace.h: the Python layer validates against
# these, so a bad configuration fails there with a message naming the range.
DURATION_MAX_NS = c.BRC_DURATION_MAX


include "clock.pxi"
include "rng.pxi"
include "guard.pxi"
include "region.pxi"
include "limiter.pxi"
include "keyed.pxi"
include "breaker.pxi"
include "retry.pxi"
include "bulkhead.pxi"
include "backoff.pxi"
include "budget.pxi"
include "histogram.pxi"
include "throttle.pxi"
include "http.pxi"
include "policy.pxi"
include "recovery.pxi"
include "exchange.pxi"
