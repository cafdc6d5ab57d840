"""brace's time: every primitive and every sleep goes through here.

`now_ns` is the C core's clock, which `brace.testing.fake_clock()` freezes; the
sleeps below advance a frozen clock instead of sleeping, so code under test
that waits on brace never waits in real time.
"""

from __future__ import annotations

import asyncio
import time

from brace._core import clock_advance_to, clock_is_frozen, now_ns

__all__ = ["now_ns", "sleep_until", "sleep_until_async"]


def sleep_until(deadline_ns: int) -> None:
    """Blocks the thread until brace's clock reaches deadline_ns."""
    while True:
        if clock_is_frozen():
            clock_advance_to(deadline_ns)
            return
        remaining = deadline_ns - now_ns()
        if remaining <= 0:
            return
        time.sleep(remaining / 1e9)


async def sleep_until_async(deadline_ns: int) -> None:
    """Suspends the coroutine until brace's clock reaches deadline_ns."""
    while True:
        if clock_is_frozen():
            # Yield once so that other tasks run, as a real sleep would let them.
            await asyncio.sleep(0)
            clock_advance_to(deadline_ns)
            return
        remaining = deadline_ns - now_ns()
        if remaining <= 0:
            return
        await asyncio.sleep(remaining / 1e9)
