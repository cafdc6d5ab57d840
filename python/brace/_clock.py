"""brace's time: every primitive, every sleep and every wait goes through here.

`now_ns` is the C core's clock, which `brace.testing.fake_clock()` freezes.
Under a frozen clock:

- a *sleep* (a backoff, a limiter's booked wait) moves the clock to its end
  at once instead of sleeping;
- a *wait* for something another thread or task does (a bulkhead slot, an
  attempt that runs under a timeout, a person's decision) ends when that
  happens or when the clock reaches the wait's deadline, whoever moves it
  (the test's `clock.advance`, brace's sleeps in any thread). When nothing
  moves the clock for `autojump` real seconds while a wait is pending, the
  clock jumps to the earliest pending deadline, so a wait that nothing ends
  does not hold a test for real time (trio's MockClock calls this
  autojump). Under the frozen clock the real time user code takes counts
  as no time at all, except that it lets idle waits jump.

With the real clock both are plain sleeps and timed waits.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from brace._core import clock_advance, clock_advance_to, clock_freeze, clock_is_frozen, clock_thaw, now_ns
from brace._config import NS_PER_SECOND

if TYPE_CHECKING:
    import asyncio

__all__ = [
    "advance",
    "advance_to",
    "freeze",
    "frozen",
    "now_ns",
    "sleep_until",
    "sleep_until_async",
    "thaw",
    "wait",
    "wait_async",
]

# How often a wait under the frozen clock looks at the clock, in real seconds:
# short, because a test that advances the clock expects its effect at once.
_SLICE = 0.002

_lock = threading.Lock()
_generation = 0  # moves of the frozen clock so far: a wait sees whether anyone moved it
_autojump: float | None = 0.05
_depth = 0  # active fake_clock() blocks (they nest)
# Deadlines of the waits pending under the frozen clock: a heap of (deadline, seq).
_pending: list[tuple[int, int]] = []
_removed: set[int] = set()
_sequence = itertools.count()


def frozen() -> bool:
    """Whether brace's clock is frozen (a fake clock is active)."""
    return bool(clock_is_frozen())


def freeze(autojump: float | None) -> bool:
    """Enters a fake_clock() block; returns whether it froze the clock (the outermost)."""
    global _depth, _autojump
    with _lock:
        _depth += 1
        if _depth > 1:
            return False
        _autojump = autojump
        clock_freeze(now_ns())
        return True


def thaw() -> None:
    """Leaves a fake_clock() block; the outermost returns the clock to real time."""
    global _depth, _generation
    with _lock:
        _depth -= 1
        if _depth == 0:
            clock_thaw()
            _generation += 1


def advance_to(target_ns: int) -> None:
    """Moves the frozen clock forward to target_ns (never back), waking the waits it passes."""
    global _generation
    with _lock:
        clock_advance_to(target_ns)
        _generation += 1


def advance(delta_ns: int) -> None:
    """Moves the frozen clock forward by delta_ns, waking the waits it passes."""
    global _generation
    with _lock:
        clock_advance(delta_ns)
        _generation += 1


def sleep_until(deadline_ns: int) -> None:
    """Blocks the thread until brace's clock reaches deadline_ns."""
    while True:
        if frozen():
            advance_to(deadline_ns)
            return
        remaining = deadline_ns - now_ns()
        if remaining <= 0:
            return
        time.sleep(remaining / NS_PER_SECOND)


async def sleep_until_async(deadline_ns: int) -> None:
    """Suspends the coroutine until brace's clock reaches deadline_ns."""
    import asyncio  # loaded with the event loop, not with brace

    while True:
        if frozen():
            # Yield once so that other tasks run, as a real sleep would let them.
            await asyncio.sleep(0)
            advance_to(deadline_ns)
            return
        remaining = deadline_ns - now_ns()
        if remaining <= 0:
            return
        await asyncio.sleep(remaining / NS_PER_SECOND)


class _Pending:
    """A wait's entry among the pending deadlines (only under the frozen clock)."""

    __slots__ = ("key",)

    def __init__(self, deadline_ns: int) -> None:
        self.key = next(_sequence)
        with _lock:
            heapq.heappush(_pending, (deadline_ns, self.key))

    def close(self) -> None:
        with _lock:
            _removed.add(self.key)
            while _pending and _pending[0][1] in _removed:
                _removed.discard(heapq.heappop(_pending)[1])


class _Idle:
    """Tells when the frozen clock has not moved for `autojump` real seconds."""

    __slots__ = ("generation", "since")

    def __init__(self) -> None:
        self.generation = _generation
        self.since = time.monotonic()

    def jump_if_idle(self) -> None:
        """Moves the clock to the earliest pending deadline after `autojump` idle real seconds."""
        global _generation
        if self.generation != _generation:
            self.generation, self.since = _generation, time.monotonic()
            return
        if _autojump is None or time.monotonic() - self.since < _autojump:
            return
        with _lock:
            if self.generation == _generation and _pending and clock_is_frozen():
                clock_advance_to(_pending[0][0])
                _generation += 1
        self.generation, self.since = _generation, time.monotonic()


def wait(happened: Callable[[float | None], bool], deadline_ns: int | None) -> bool:
    """Waits until something happens or brace's clock reaches deadline_ns.

    Args:
        happened: Blocks up to the given real seconds (None: without limit)
            for the awaited thing; returns whether it happened. Called again
            after it returned False, so it must be a level, not an edge
            (Event.wait; a parked lock's acquire is fine because it is
            called again only when it returned False).
        deadline_ns: brace's clock reading at which to give up; None: never.

    Returns:
        Whether it happened (True), or the deadline came first (False).
    """
    pending: _Pending | None = None
    idle: _Idle | None = None
    try:
        while True:
            if not frozen():
                if deadline_ns is None:
                    # Real time, no deadline: block in slices only so that a fake
                    # clock entered meanwhile (by a test) is noticed.
                    if happened(1.0):
                        return True
                    continue
                remaining = deadline_ns - now_ns()
                if remaining <= 0:
                    return happened(0)
                if happened(min(remaining / NS_PER_SECOND, 1.0)):
                    return True
                continue
            if deadline_ns is not None and now_ns() >= deadline_ns:
                return happened(0)
            if pending is None and deadline_ns is not None:
                pending = _Pending(deadline_ns)
            if idle is None:
                idle = _Idle()
            if happened(_SLICE):
                return True
            idle.jump_if_idle()
    finally:
        if pending is not None:
            pending.close()


async def wait_async(future: asyncio.Future[Any], deadline_ns: int | None) -> bool:
    """`wait` for a coroutine: until the future is done, or brace's clock reaches deadline_ns.

    The future is never cancelled here (its owner may be resolving it from
    another thread); the caller decides what a timeout means for it.
    """
    import asyncio  # loaded with the event loop, not with brace

    pending: _Pending | None = None
    idle: _Idle | None = None
    try:
        while True:
            if future.done():
                return True
            if not frozen():
                if deadline_ns is None:
                    await asyncio.wait((future,), timeout=1.0)
                    continue
                remaining = deadline_ns - now_ns()
                if remaining <= 0:
                    return future.done()
                await asyncio.wait((future,), timeout=min(remaining / NS_PER_SECOND, 1.0))
                continue
            if deadline_ns is not None and now_ns() >= deadline_ns:
                return future.done()
            if pending is None and deadline_ns is not None:
                pending = _Pending(deadline_ns)
            if idle is None:
                idle = _Idle()
            await asyncio.wait((future,), timeout=_SLICE)
            idle.jump_if_idle()
    finally:
        if pending is not None:
            pending.close()
