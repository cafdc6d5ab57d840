"""asv benchmarks of brace.RateLimiter: the cost of each decision, and allocations.

A decision costs ~40 ns, less than asv's own overhead for one call of a
benchmark method, so every time_* benchmark makes CALLS_PER_SAMPLE calls of a
pre-bound method: asv's figures are the time per 1000 decisions (ns per call =
reported us).

asv reads settings such as `repeat`, `number` and `timeout` from this module's
globals too, so no global here may carry one of those names.
"""

from __future__ import annotations

import itertools
import sys
import tracemalloc
from collections.abc import Callable

import brace

CALLS_PER_SAMPLE = 1000
CALLS_FOR_ALLOCATIONS = 1_000_000

# Far above what a Python loop reaches (~25M calls/s), so it admits every call.
HUGE_RATE = 1e9


def admitting_limiter() -> brace.RateLimiter:
    limiter = brace.RateLimiter(rate=HUGE_RATE, burst=10**6)
    if not limiter.try_acquire():
        raise RuntimeError("the admitting limiter rejected: the success path is not measured")
    return limiter


def drained_limiter() -> brace.RateLimiter:
    """A limiter with its one token taken; the next arrives in an hour."""
    limiter = brace.RateLimiter(rate=1, per=3600.0, burst=1)
    limiter.try_acquire()
    if limiter.try_acquire():
        raise RuntimeError("the drained limiter admitted: the rejection path is not measured")
    return limiter


class RateLimiterDecisions:
    """Time per 1000 calls of each RateLimiter decision."""

    def setup(self) -> None:
        self.admitting = admitting_limiter()
        self.drained = drained_limiter()

    def time_try_acquire(self) -> None:
        try_acquire = self.admitting.try_acquire
        for _ in itertools.repeat(None, CALLS_PER_SAMPLE):
            try_acquire()

    def time_try_acquire_rejected(self) -> None:
        try_acquire = self.drained.try_acquire
        for _ in itertools.repeat(None, CALLS_PER_SAMPLE):
            try_acquire()

    def time_try_acquire_weighted(self) -> None:
        try_acquire = self.admitting.try_acquire
        for _ in itertools.repeat(None, CALLS_PER_SAMPLE):
            try_acquire(5)

    def time_peek(self) -> None:
        peek = self.admitting.peek
        for _ in itertools.repeat(None, CALLS_PER_SAMPLE):
            peek()

    def time_state(self) -> None:
        state = self.admitting.state
        for _ in itertools.repeat(None, CALLS_PER_SAMPLE):
            state()


def blocks_allocated_over(calls: int, call: Callable[[], object]) -> int:
    """Live-block delta over `calls` calls (the int this reads counts as one)."""
    loop = itertools.repeat(None, calls)  # unlike range, yields no new int per step
    before = sys.getallocatedblocks()
    for _ in loop:
        call()
    return sys.getallocatedblocks() - before


def traced_peak_over(calls: int, call: Callable[[], object]) -> int:
    """Bytes of the tracemalloc peak above the start, over `calls` calls."""
    loop = itertools.repeat(None, calls)
    tracemalloc.start()
    try:
        start = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        for _ in loop:
            call()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return peak - start


class RateLimiterAllocations:
    """What 1,000,000 admitted try_acquire() calls allocate; 0 is the goal.

    Each figure is net of the same probe run over 0 calls, so that the probe's
    own objects do not count.
    """

    def setup(self) -> None:
        self.try_acquire = admitting_limiter().try_acquire

    def track_allocated_blocks_per_million_calls(self) -> int:
        return blocks_allocated_over(CALLS_FOR_ALLOCATIONS, self.try_acquire) - (
            blocks_allocated_over(0, self.try_acquire)
        )

    track_allocated_blocks_per_million_calls.unit = "blocks"  # type: ignore[attr-defined]

    def track_traced_peak_bytes_per_million_calls(self) -> int:
        # Unlike the block count, the peak also catches objects made and freed
        # within one call.
        return traced_peak_over(CALLS_FOR_ALLOCATIONS, self.try_acquire) - (
            traced_peak_over(0, self.try_acquire)
        )

    track_traced_peak_bytes_per_million_calls.unit = "bytes"  # type: ignore[attr-defined]
