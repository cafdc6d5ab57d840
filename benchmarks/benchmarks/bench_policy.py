"""asv benchmarks of brace.Policy (limiter + breaker + bulkhead + retry): success path, allocations.

A policy-decorated call whose every check admits it runs through one compiled
wrapper and costs tens of ns, less than asv's own overhead for one call of a
benchmark method, so every time_* benchmark makes CALLS_PER_SAMPLE calls:
asv's figures are the time per 1000 calls (ns per call = reported us).
`time_bare_call` and `time_bare_await` are the unguarded baselines: the
policy's overhead is its figure minus its baseline's.

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
# Far above any rate a Python loop reaches: the limiter admits every call.
HUGE_RATE = 10**9
BULKHEAD_SLOTS = 10


def target(x: int) -> int:
    """The guarded function: one argument, returned."""
    return x


async def async_target(x: int) -> int:
    return x


def full_policy(name: str) -> tuple[brace.Policy, brace.CircuitBreaker, brace.Bulkhead]:
    """A policy of all four primitives, each admitting every call; with its breaker and bulkhead."""
    breaker = brace.CircuitBreaker(name=name)
    bulkhead = brace.Bulkhead(max_concurrent=BULKHEAD_SLOTS)
    policy = brace.Policy(
        retry=brace.Retry(on=ConnectionError),
        breaker=breaker,
        limiter=brace.RateLimiter(rate=float(HUGE_RATE), burst=HUGE_RATE),
        bulkhead=bulkhead,
    )
    return policy, breaker, bulkhead


def check_idle(breaker: brace.CircuitBreaker, bulkhead: brace.Bulkhead) -> None:
    if breaker.state is not brace.BreakerState.CLOSED or bulkhead.in_use != 0:
        raise RuntimeError("the policy did not take its success path: it is not what is measured")


def guarded_sync(name: str) -> Callable[[int], int]:
    policy, breaker, bulkhead = full_policy(name)
    guarded = policy(target)
    if guarded(1) != 1:
        raise RuntimeError("the policy-guarded call did not return its argument")
    check_idle(breaker, bulkhead)
    return guarded


class PolicyCalls:
    """Time per 1000 calls of a policy-decorated function, every call admitted."""

    def setup(self) -> None:
        self.guarded = guarded_sync("asv-policy")

    def time_bare_call(self) -> None:
        call = target
        for _ in itertools.repeat(None, CALLS_PER_SAMPLE):
            call(1)

    def time_guarded_call(self) -> None:
        call = self.guarded
        for _ in itertools.repeat(None, CALLS_PER_SAMPLE):
            call(1)


async def awaits(fn: Callable[[int], Awaitable[object]], count: int) -> None:
    """Awaits fn(1) `count` times in one coroutine."""
    for _ in itertools.repeat(None, count):
        await fn(1)


class PolicyAsync:
    """Time per 1000 awaits of a policy-decorated coroutine function, in one run of the loop.

    Each sample also pays one run_until_complete (a few us, ~1% of it), as
    `time_bare_await` does: subtract it to get the policy's overhead.
    """

    def setup(self) -> None:
        self.loop = asyncio.new_event_loop()
        policy, breaker, bulkhead = full_policy("asv-policy-async")
        self.guarded = policy(async_target)
        if self.loop.run_until_complete(self.guarded(1)) != 1:
            raise RuntimeError("the policy-guarded await did not return its argument")
        check_idle(breaker, bulkhead)

    def teardown(self) -> None:
        self.loop.close()

    def time_bare_await(self) -> None:
        self.loop.run_until_complete(awaits(async_target, CALLS_PER_SAMPLE))

    def time_guarded_await(self) -> None:
        self.loop.run_until_complete(awaits(self.guarded, CALLS_PER_SAMPLE))


class PolicyAllocations:
    """What 1,000,000 policy-decorated calls that are admitted and succeed allocate; 0 is the goal.

    Each figure is net of the same probe run over 0 calls, so that the probe's
    own objects do not count.
    """

    def setup(self) -> None:
        guarded = guarded_sync("asv-policy-allocations")
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
