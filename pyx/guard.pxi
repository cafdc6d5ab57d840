# brace._core: what a guard (pyx/guard.h) is given, and the module the slow
# paths of the sync entry points use; included by _core.pyx.

# What an owner's _guard_failed returns to re-raise the call's exception as it was.
RERAISE = object()
c.brc_guard_ready(RERAISE)
c.brc_awaiting_ready()

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


cdef object _refuse_awaitable(object result, object fn, const char *entry):
    """The error a sync entry point raises for a plain fn that returned an awaitable."""
    return _guarding_module().refuse_awaitable(result, fn, entry.decode())
