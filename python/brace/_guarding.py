"""What a guard does with what it is given, so that every guarded call is really guarded.

- A coroutine function (or an object with `async def __call__`) handed to a
  sync entry point (`cb.call`, `retry.call`, `bh.call`, `policy.call`,
  `recovery.call`, `fallback.call`) would return its coroutine unguarded: its
  work runs later, after the guard has counted, released and cached the call.
  The entry point refuses it with a TypeError naming the async form to use.
- A plain function that *returns* an awaitable is found out when it returns:
  a sync entry point refuses the awaitable (a coroutine is closed first, so
  nothing of it ran); a decorator guards the awaited outcome instead, so a
  decorated `def` returning a coroutine behaves like an `async def`.
- A function that a guard already guards (its own decorator, or one of its
  Python wrappers, whose `guarded_by` names the guard) is called as it is
  by that guard's `call`, and decorating it again returns it unchanged: one
  call is one guarded call, never two.

Every guard's decorator is `guard_function`: these rules live there once.
"""

from __future__ import annotations

import functools
import sys
import types
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeGuard, TypeVar, cast

from brace._core import CALLABLE_ASYNC, CALLABLE_GUARDED, CALLABLE_SYNC, CALLABLE_UNKNOWN, callable_kind, is_awaitable

__all__ = [
    "AsyncMisuse",
    "UseCallAsync",
    "awaited",
    "call_guarded",
    "coroutine_function",
    "guard_function",
    "is_async_callable",
    "kind",
    "mark",
    "refuse_awaitable",
    "sync_entry",
]

F = TypeVar("F")
P = ParamSpec("P")
R = TypeVar("R")

_PLAIN_CALLABLES = (types.FunctionType, types.MethodType, types.BuiltinFunctionType, functools.partial)


class UseCallAsync:
    """What the type stubs say a sync entry point (`call`) returns when given a
    coroutine function. Nothing is ever returned (the call raises AsyncMisuse);
    the type exists so that a type checker rejects `await cb.call(async_fn)`:
    it cannot be awaited, and it is not the coroutine's result either."""

    __slots__ = ()


class AsyncMisuse(TypeError):
    """Something awaitable reached a sync entry point of a guard.

    A TypeError (a programming error, not a failure of the call): brace.Recovery
    and brace.Fallback let it through instead of recovering from it.
    """


def is_async_callable(fn: object) -> TypeGuard[Callable[..., Awaitable[Any]]]:
    """Whether calling fn returns a coroutine: a coroutine function (also behind
    functools.partial or marked with inspect.markcoroutinefunction), or an
    object whose class defines `async def __call__`."""
    import inspect  # at decoration time, not per call; import brace stays light

    try:
        if inspect.iscoroutinefunction(fn):
            return True
        if isinstance(fn, _PLAIN_CALLABLES):
            return False
        return inspect.iscoroutinefunction(getattr(type(fn), "__call__", None))
    except Exception:  # an object whose attributes raise is not a coroutine function we can see
        return False


def kind(fn: object, owner: object) -> int:
    """CALLABLE_SYNC, CALLABLE_ASYNC or CALLABLE_GUARDED (fn is already guarded by owner)."""
    found = callable_kind(fn, owner)
    if found != CALLABLE_UNKNOWN:
        return int(found)
    try:
        guarded_by = getattr(fn, "guarded_by", None)
    except Exception:
        guarded_by = None
    if guarded_by is owner:
        return CALLABLE_GUARDED
    return CALLABLE_ASYNC if is_async_callable(fn) else CALLABLE_SYNC


def _name(fn: object) -> str:
    try:
        name = getattr(fn, "__qualname__", None)
    except Exception:
        name = None
    return name if isinstance(name, str) else f"a {type(fn).__name__}"


def sync_entry(fn: object, owner: object, entry: str) -> bool:
    """Checks fn at a sync entry point: True when owner already guards it (call it
    as it is); raises AsyncMisuse for a coroutine function.

    Args:
        fn: What the caller passed.
        owner: The guard.
        entry: How the caller reached it, e.g. "CircuitBreaker.call".
    """
    found = kind(fn, owner)
    if found == CALLABLE_GUARDED:
        return True
    if found == CALLABLE_ASYNC:
        raise AsyncMisuse(
            f"{entry}() got {_name(fn)}, a coroutine function: its work would run after {entry}() "
            f"returned, unguarded. Use `await {entry}_async(fn, ...)`, or decorate it."
        )
    return False


def refuse_awaitable(result: object, fn: object, entry: str) -> AsyncMisuse:
    """The error for a plain function that returned an awaitable to a sync entry point.

    A coroutine is closed first (it never started: nothing of it ran, and
    Python - or a compiled guard's proxy - does not warn that it was never awaited).
    """
    from collections.abc import Coroutine

    if isinstance(result, Coroutine):  # a native coroutine, or a compiled guard's (pyx/awaiting.h)
        result.close()
    return AsyncMisuse(
        f"{entry}() called {_name(fn)}, which returned {type(result).__name__}, an awaitable: its work "
        f"would run after {entry}() returned, unguarded (a coroutine is closed unrun). Use "
        f"`await {entry}_async(fn, ...)`."
    )


def call_guarded(fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any], entry: str) -> Any:
    """Calls fn, which the entry point's guard already guards, as it is (an awaitable
    it returns is refused like any other at a sync entry point)."""
    result = fn(*args, **kwargs)
    if is_awaitable(result):
        raise refuse_awaitable(result, fn, entry)
    return result


async def awaited(value: object) -> Any:
    """value, awaited if it is awaitable: the async paths accept plain functions too
    (their work then runs inside the guard, synchronously)."""
    if is_awaitable(value):
        return await value
    import inspect  # the rare case (an object with __await__ only); import brace stays light

    if inspect.isawaitable(value):
        return await value
    return value


def mark(wrapper: F, owner: object) -> F:
    """Marks a Python wrapper as guarded by owner (see the module docstring)."""
    setattr(wrapper, "guarded_by", owner)
    return wrapper



async def _compiled_coroutine_function(*args: Any, **kwargs: Any) -> Any:
    """Never called: its code object marks compiled wrappers as coroutine functions."""


def coroutine_function(wrapper: F) -> F:
    """Marks a compiled wrapper whose calls return awaitables (pyx/awaiting.h) as a
    coroutine function, for inspect.iscoroutinefunction and asyncio alike.

    Python 3.12 reads inspect.markcoroutinefunction's mark; before it, inspect
    accepts a function-like object (__code__, __defaults__, __kwdefaults__)
    whose code has the coroutine flag: an `async def`'s code gives it that.
    """
    import inspect

    if sys.version_info >= (3, 12):
        return cast(F, inspect.markcoroutinefunction(cast(Callable[..., Any], wrapper)))
    setattr(wrapper, "__code__", _compiled_coroutine_function.__code__)
    setattr(wrapper, "__defaults__", None)
    setattr(wrapper, "__kwdefaults__", None)
    return wrapper


def guard_function(
    owner: object,
    fn: Callable[P, R],
    guard_sync: Callable[[Callable[..., Any]], Callable[..., Any]],
    guard_async: Callable[[Callable[..., Awaitable[Any]]], Callable[..., Awaitable[Any]]],
) -> Callable[P, R]:
    """What decorating fn with owner returns: fn itself when owner already guards it;
    guard_async(fn) for a coroutine function (an `async def`, so that it stays one);
    else guard_sync(fn) (the compiled wrapper, or a Python one). Either carries fn's
    name, docstring and signature (functools.update_wrapper) and is marked as owner's.

    Raises:
        TypeError: fn is not callable.
    """
    if not callable(fn):
        raise TypeError(f"a {type(owner).__name__} decorates callables, got {type(fn).__name__}")
    if kind(fn, owner) == CALLABLE_GUARDED:
        return fn
    wrapper = guard_async(fn) if is_async_callable(fn) else guard_sync(fn)
    functools.update_wrapper(wrapper, fn)
    if kind(wrapper, owner) != CALLABLE_GUARDED:  # a compiled wrapper names its owner itself
        mark(wrapper, owner)
    return cast(Callable[P, R], wrapper)
