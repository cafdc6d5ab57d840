"""Deadlines that code running inside a guarded call can read: `brace.deadline_remaining()`.

A Retry or Policy with a `deadline` or an `attempt_timeout`, and a
`with brace.deadline(seconds):` block, put the instant their bound ends in a
context variable for the code they run, so that a sync call Python cannot
interrupt can still bound itself (pass `brace.deadline_remaining()` as a
socket or HTTP client timeout), and so that brace's own waits, retries,
recoveries and escalations inside the bound stop at it. Bounds nest: the
innermost, tightest one wins. The variable follows the code like any
contextvar: into coroutines and tasks created inside the bound, and into the
worker threads brace runs sync attempts in.
"""

from __future__ import annotations

import contextvars
from collections.abc import Awaitable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from brace import _clock, _config
from brace._core import BOUND as _BOUND, now_ns
from brace.errors import AttemptTimeout
from brace._config import NS_PER_SECOND

if TYPE_CHECKING:
    import asyncio

__all__ = ["BOUND", "attempt_bound", "bounded", "current_ns", "deadline", "deadline_remaining", "tighter", "within"]


# The instant (ns on brace's clock) the innermost active bound ends (made by the compiled
# core, whose Policy.call sets it). Code that sets it directly (the hot paths, instead of
# `within`) sets a value from tighter() and resets it.
BOUND: contextvars.ContextVar[int | None] = _BOUND


def current_ns() -> int | None:
    """The instant (brace's clock, ns) the innermost active bound ends, or None."""
    return BOUND.get()


def tighter(deadline_ns: int | None) -> int | None:
    """The earlier of deadline_ns and the active bound (None: no bound at all)."""
    active = BOUND.get()
    if deadline_ns is None:
        return active
    return deadline_ns if active is None else min(active, deadline_ns)


def attempt_bound(timeout: float | None) -> tuple[int | None, float]:
    """(when an attempt starting now must end, its time limit in seconds): its own
    timeout, or the active bound when that is tighter; (None, 0.0) when unbounded."""
    start = now_ns()
    own = None if timeout is None else start + round(timeout * NS_PER_SECOND)
    bound = tighter(own)
    if bound is None:
        return None, 0.0
    return bound, timeout if bound == own and timeout is not None else max(0, bound - start) / NS_PER_SECOND


@contextmanager
def within(deadline_ns: int | None) -> Iterator[int | None]:
    """Makes deadline_ns (ns on brace's clock) the active bound for the block when it
    is tighter than the one active; yields the bound in force."""
    bound = tighter(deadline_ns)
    if bound == BOUND.get():
        yield bound
        return
    token = BOUND.set(bound)
    try:
        yield bound
    finally:
        BOUND.reset(token)


def deadline_remaining() -> float | None:
    """Seconds left until the innermost active deadline or attempt timeout ends.

    Inside a call guarded by a brace.Retry or brace.Policy with a `deadline`
    or an `attempt_timeout`, or inside `with brace.deadline(...)`: the seconds
    left of the tightest of them (0.0 once it has passed), on brace's clock.
    Outside any: None. Use it to bound what Python cannot interrupt::

        response = session.get(url, timeout=brace.deadline_remaining())
    """
    bound = BOUND.get()
    if bound is None:
        return None
    return max(0, bound - now_ns()) / NS_PER_SECOND


@contextmanager
def deadline(seconds: float | timedelta) -> Iterator[None]:
    """Bounds a block of code: brace's waits, retries and recoveries inside it stop at the bound.

    Inside the block `brace.deadline_remaining()` reports the seconds left
    (the tighter of this bound and any enclosing one); a Retry or Recovery
    does not sleep past it or start an attempt after it, an escalation stops
    waiting for a decision at it, and coroutine attempts under a brace Retry
    or Policy are cancelled at it. Code that is not brace's is not
    interrupted: pass `deadline_remaining()` to it as its own timeout.

    Args:
        seconds: The bound, seconds > 0 or a timedelta, from now.

    Raises:
        ValueError, TypeError: For seconds that are not a finite duration > 0.
    """
    length = _config.positive_duration(seconds, "seconds")
    with within(now_ns() + round(length * NS_PER_SECOND)):
        yield


async def bounded(awaitable: Awaitable[Any], deadline_ns: int | None, timeout: float) -> Any:
    """Awaits `awaitable`, cancelling it at deadline_ns (brace's clock) with brace.AttemptTimeout.

    The awaited work runs in a task of its own so that it can be cancelled
    without cancelling the caller; what it raises itself (its own
    TimeoutError included) passes unchanged. A timeout is raised only once
    the cancelled work has really ended, so what the caller holds for it (a
    bulkhead slot, a breaker's probe) is given back after, not during, it.

    Args:
        awaitable: The attempt.
        deadline_ns: When to stop it; None: no bound (awaited as it is).
        timeout: The bound's length in seconds, for the AttemptTimeout raised.
    """
    import asyncio  # loaded with the event loop, not with brace

    if deadline_ns is None:
        return await awaitable
    task = asyncio.ensure_future(awaitable)
    try:
        ended = await _clock.wait_async(task, deadline_ns)
    except BaseException:
        # The caller was cancelled: so is the attempt, which ends before we do.
        task.cancel()
        await _ended(task)
        raise
    if not ended:
        task.cancel()
        await _ended(task)
        if task.cancelled():
            raise AttemptTimeout(timeout=timeout)
    return task.result()


async def _ended(task: asyncio.Future[Any]) -> None:
    """Waits for a cancelled task to end; a cancellation of this wait is passed on
    once the task has ended."""
    import asyncio  # loaded with the event loop, not with brace

    cancelled = False
    while not task.done():
        try:
            await asyncio.wait((task,))
        except asyncio.CancelledError:
            cancelled = True
    if cancelled:
        raise asyncio.CancelledError
