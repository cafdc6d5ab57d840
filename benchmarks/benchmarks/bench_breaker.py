"""asv benchmarks of brace.CircuitBreaker: guarded calls, rejections, metrics, allocations.

A guarded call costs tens of ns, less than asv's own overhead for one call of
a benchmark method, so every time_* benchmark makes CALLS_PER_SAMPLE calls:
asv's figures are the time per 1000 calls (ns per call = reported us).
`time_bare_call` and `time_bare_await` are the unguarded baselines: a guarded
form's overhead is its figure minus its baseline's.

asv reads settings such as `repeat`, `number` and `timeout` from this module's
globals too, so no global here may carry one of those names.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable

import brace

from .bench_limiter import CALLS_FOR_ALLOCATIONS, blocks_allocated_over, traced_peak_over

CALLS_PER_SAMPLE = 1000
# Long enough that a breaker tripped in setup never half-opens while timed.
OPEN_FOR_SECONDS = 3600.0
TRIP_AFTER = 5


def target(x: int) -> int:
    """The guarded function: one argument, returned."""
    return x


async def async_target(x: int) -> int:
    return x


def fail(x: int) -> int:
    raise ConnectionError(x)


def closed_breaker(name: str) -> brace.CircuitBreaker:
    return brace.CircuitBreaker(name=name)


def guarded_closed(breaker: brace.CircuitBreaker) -> Callable[[int], int]:
    guarded = breaker(target)
    if guarded(1) != 1 or breaker.state is not brace.BreakerState.CLOSED:
        raise RuntimeError("the closed breaker did not pass the call: the success path is not measured")
    return guarded


def rejecting(breaker: brace.CircuitBreaker) -> Callable[[int], int]:
    guarded = breaker(target)
    try:
        guarded(1)
    except brace.CircuitOpen:
        return guarded
    raise RuntimeError("the open breaker permitted a call: the rejection path is not measured")


def forced_open_guarded() -> Callable[[int], int]:
    breaker = brace.CircuitBreaker(name="asv-forced-open")
    breaker.force_open()
    return rejecting(breaker)


def tripped_open_guarded() -> Callable[[int], int]:
    """A breaker in OPEN (not FORCED_OPEN): tripped by consecutive failures."""
    breaker = brace.CircuitBreaker(
        name="asv-open", consecutive_failures=TRIP_AFTER, wait_in_open=OPEN_FOR_SECONDS
    )
    for _ in range(TRIP_AFTER):
        try:
            breaker.call(fail, 1)
        except ConnectionError:
            pass
    if breaker.state is not brace.BreakerState.OPEN:
        raise RuntimeError(f"the breaker is {breaker.state.value} after {TRIP_AFTER} failures")
    return rejecting(breaker)


class CircuitBreakerCalls:
    """Time per 1000 calls through a breaker, closed and open, and of its reports."""

    def setup(self) -> None:
        self.breaker = closed_breaker("asv-closed")
        self.guarded = guarded_closed(self.breaker)
        # A second breaker with calls recorded, so that metrics() reports rates.
        self.busy = closed_breaker("asv-metrics")
        busy_guarded = self.busy(target)
        for _ in range(200):
            busy_guarded(1)
        self.forced_open = forced_open_guarded()
        self.tripped_open = tripped_open_guarded()

    def time_bare_call(self) -> None:
        call = target
        for _ in itertools.repeat(None, CALLS_PER_SAMPLE):
            call(1)

    def time_guarded_call(self) -> None:
        call = self.guarded
        for _ in itertools.repeat(None, CALLS_PER_SAMPLE):
            call(1)

    def time_call_method(self) -> None:
        call, fn = self.breaker.call, target
        for _ in itertools.repeat(None, CALLS_PER_SAMPLE):
            call(fn, 1)

    def time_context_manager(self) -> None:
        breaker, fn = self.breaker, target
        for _ in itertools.repeat(None, CALLS_PER_SAMPLE):
            with breaker:
                fn(1)

    def time_rejected_forced_open(self) -> None:
        call, error = self.forced_open, brace.CircuitOpen
        for _ in itertools.repeat(None, CALLS_PER_SAMPLE):
            try:
                call(1)
            except error:
                pass

    def time_rejected_open(self) -> None:
        call, error = self.tripped_open, brace.CircuitOpen
        for _ in itertools.repeat(None, CALLS_PER_SAMPLE):
            try:
                call(1)
            except error:
                pass

    def time_metrics(self) -> None:
        metrics = self.busy.metrics
        for _ in itertools.repeat(None, CALLS_PER_SAMPLE):
            metrics()

    def time_state(self) -> None:
        breaker = self.busy
        for _ in itertools.repeat(None, CALLS_PER_SAMPLE):
            breaker.state


async def awaits(fn: Callable[[int], Awaitable[object]], count: int) -> None:
    """Awaits fn(1) `count` times in one coroutine."""
    for _ in itertools.repeat(None, count):
        await fn(1)


class CircuitBreakerAsync:
    """Time per 1000 awaits of a guarded coroutine function, in one run of the loop.

    Each sample also pays one run_until_complete (a few us, ~1% of it), as
    `time_bare_await` does: subtract it to get the breaker's overhead.
    """

    def setup(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.breaker = closed_breaker("asv-async")
        self.guarded = self.breaker(async_target)
        if self.loop.run_until_complete(self.guarded(1)) != 1:
            raise RuntimeError("the guarded await did not return its argument")

    def teardown(self) -> None:
        self.loop.close()

    def time_bare_await(self) -> None:
        self.loop.run_until_complete(awaits(async_target, CALLS_PER_SAMPLE))

    def time_guarded_await(self) -> None:
        self.loop.run_until_complete(awaits(self.guarded, CALLS_PER_SAMPLE))


class CircuitBreakerAllocations:
    """What 1,000,000 successful guarded calls allocate; 0 is the goal.

    Each figure is net of the same probe run over 0 calls, so that the probe's
    own objects do not count.
    """

    def setup(self) -> None:
        guarded = guarded_closed(closed_breaker("asv-allocations"))
        self.call = lambda: guarded(1)

    def track_allocated_blocks_per_million_calls(self) -> int:
        return blocks_allocated_over(CALLS_FOR_ALLOCATIONS, self.call) - (
            blocks_allocated_over(0, self.call)
        )

    track_allocated_blocks_per_million_calls.unit = "blocks"  # type: ignore[attr-defined]

    def track_traced_peak_bytes_per_million_calls(self) -> int:
        return traced_peak_over(CALLS_FOR_ALLOCATIONS, self.call) - (
            traced_peak_over(0, self.call)
        )

    track_traced_peak_bytes_per_million_calls.unit = "bytes"  # type: ignore[attr-defined]
