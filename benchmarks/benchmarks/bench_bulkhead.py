"""asv benchmarks of brace.Bulkhead: taking and returning slots, rejections, allocations.

Taking and returning a free slot costs tens of ns, less than asv's own
overhead for one call of a benchmark method, so every time_* benchmark makes
CALLS_PER_SAMPLE iterations: asv's figures are the time per 1000 iterations
(ns per iteration = reported us). `time_bare_call` is the baseline of
`time_decorated_call`.

asv reads settings such as `repeat`, `number` and `timeout` from this module's
globals too, so no global here may carry one of those names.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import brace

from .bench_limiter import CALLS_FOR_ALLOCATIONS, blocks_allocated_over, traced_peak_over

CALLS_PER_SAMPLE = 1000
SLOTS = 10


def target(x: int) -> int:
    """The decorated function: one argument, returned."""
    return x


def free_bulkhead(name: str) -> brace.Bulkhead:
    bulkhead = brace.Bulkhead(max_concurrent=SLOTS, name=name)
    if not bulkhead.try_acquire():
        raise RuntimeError("a new bulkhead had no free slot: the success path is not measured")
    bulkhead.release()
    return bulkhead


def full_bulkhead() -> brace.Bulkhead:
    """A bulkhead whose one slot is taken, that does not wait for it."""
    bulkhead = brace.Bulkhead(max_concurrent=1, max_wait=0.0, name="asv-full")
    bulkhead.try_acquire()
    if bulkhead.try_acquire():
        raise RuntimeError("the full bulkhead gave a slot: the rejection path is not measured")
    return bulkhead


class BulkheadSlots:
    """Time per 1000 slots taken and returned, or refused."""

    def setup(self) -> None:
        self.bulkhead = free_bulkhead("asv-free")
        self.full = full_bulkhead()
        self.decorated = free_bulkhead("asv-decorated")(target)

    def time_try_acquire_release(self) -> None:
        acquire, release = self.bulkhead.try_acquire, self.bulkhead.release
        for _ in itertools.repeat(None, CALLS_PER_SAMPLE):
            acquire()
            release()

    def time_context_manager(self) -> None:
        bulkhead = self.bulkhead
        for _ in itertools.repeat(None, CALLS_PER_SAMPLE):
            with bulkhead:
                pass

    def time_try_acquire_full(self) -> None:
        acquire = self.full.try_acquire
        for _ in itertools.repeat(None, CALLS_PER_SAMPLE):
            acquire()

    def time_context_manager_full(self) -> None:
        bulkhead, error = self.full, brace.BulkheadFull
        for _ in itertools.repeat(None, CALLS_PER_SAMPLE):
            try:
                with bulkhead:
                    pass
            except error:
                pass

    def time_bare_call(self) -> None:
        call = target
        for _ in itertools.repeat(None, CALLS_PER_SAMPLE):
            call(1)

    def time_decorated_call(self) -> None:
        call = self.decorated
        for _ in itertools.repeat(None, CALLS_PER_SAMPLE):
            call(1)


def with_statement(bulkhead: brace.Bulkhead) -> Callable[[], None]:
    def enter_and_exit() -> None:
        with bulkhead:
            pass

    return enter_and_exit


def acquire_and_release(bulkhead: brace.Bulkhead) -> Callable[[], None]:
    acquire, release = bulkhead.try_acquire, bulkhead.release

    def pair() -> None:
        acquire()
        release()

    return pair


class BulkheadAllocations:
    """What 1,000,000 slots taken and returned allocate.

    Each figure is net of the same probe run over 0 calls. The `with` figures
    include what CPython's `with` statement itself makes and frees on any C
    type (the bound __enter__ and __exit__, ~128 B of peak); the
    try_acquire/release figures are brace's alone (0 expected).
    """

    def setup(self) -> None:
        bulkhead = free_bulkhead("asv-allocations")
        self.with_statement = with_statement(bulkhead)
        self.pair = acquire_and_release(bulkhead)

    def track_with_allocated_blocks_per_million(self) -> int:
        return blocks_allocated_over(CALLS_FOR_ALLOCATIONS, self.with_statement) - (
            blocks_allocated_over(0, self.with_statement)
        )

    track_with_allocated_blocks_per_million.unit = "blocks"  # type: ignore[attr-defined]

    def track_with_traced_peak_bytes_per_million(self) -> int:
        return traced_peak_over(CALLS_FOR_ALLOCATIONS, self.with_statement) - (
            traced_peak_over(0, self.with_statement)
        )

    track_with_traced_peak_bytes_per_million.unit = "bytes"  # type: ignore[attr-defined]

    def track_try_acquire_release_allocated_blocks_per_million(self) -> int:
        return blocks_allocated_over(CALLS_FOR_ALLOCATIONS, self.pair) - (
            blocks_allocated_over(0, self.pair)
        )

    track_try_acquire_release_allocated_blocks_per_million.unit = "blocks"  # type: ignore[attr-defined]

    def track_try_acquire_release_traced_peak_bytes_per_million(self) -> int:
        return traced_peak_over(CALLS_FOR_ALLOCATIONS, self.pair) - (
            traced_peak_over(0, self.pair)
        )

    track_try_acquire_release_traced_peak_bytes_per_million.unit = "bytes"  # type: ignore[attr-defined]
