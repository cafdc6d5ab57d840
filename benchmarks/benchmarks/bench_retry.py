"""asv benchmarks of brace.retry: a call that succeeds at once, one retried once, allocations.

A retried call that succeeds at its first attempt runs through the compiled
wrapper and costs tens of ns, less than asv's own overhead for one call of a
benchmark method, so every time_* benchmark makes CALLS_PER_SAMPLE calls:
asv's figures are the time per 1000 calls (ns per call = reported us).
`time_bare_call` is the unguarded baseline: the retry's overhead is
`time_retried_call` minus it.

`time_retried_once` times calls whose first attempt raises ConnectionError and
whose second succeeds, with a zero constant backoff under
`brace.testing.fake_clock()`, so no sample sleeps: it is the cost of brace's
Python retry path (the exception, its classification, the backoff, the clock).

asv reads settings such as `repeat`, `number` and `timeout` from this module's
globals too, so no global here may carry one of those names.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import brace
from brace.testing import fake_clock

from .bench_limiter import CALLS_FOR_ALLOCATIONS, blocks_allocated_over, traced_peak_over

CALLS_PER_SAMPLE = 1000


def target(x: int) -> int:
    """The retried function: one argument, returned."""
    return x


class FailsEveryOtherAttempt:
    """Raises ConnectionError on every other attempt: each retried call fails once, then succeeds."""

    def __init__(self) -> None:
        self.fail_next = True
        self.attempts = 0

    def __call__(self, x: int) -> int:
        self.attempts += 1
        fail, self.fail_next = self.fail_next, not self.fail_next
        if fail:
            raise ConnectionError(x)
        return x


def retried_at_once() -> Callable[[int], int]:
    retried = brace.retry(on=ConnectionError)(target)
    if retried(1) != 1:
        raise RuntimeError("the retried call did not return its argument")
    return retried


def retried_once() -> Callable[[int], int]:
    flaky = FailsEveryOtherAttempt()
    retried = brace.retry(on=ConnectionError, backoff=brace.Backoff.constant(delay=0.0))(flaky)
    with fake_clock():
        if retried(1) != 1 or flaky.attempts != 2:
            raise RuntimeError(
                f"the call took {flaky.attempts} attempts, not 2: the retry path is not measured"
            )
    return retried


class RetryCalls:
    """Time per 1000 calls through brace.retry: succeeding at once, and retried once."""

    def setup(self) -> None:
        self.retried = retried_at_once()
        self.retried_once = retried_once()

    def time_bare_call(self) -> None:
        call = target
        for _ in itertools.repeat(None, CALLS_PER_SAMPLE):
            call(1)

    def time_retried_call(self) -> None:
        call = self.retried
        for _ in itertools.repeat(None, CALLS_PER_SAMPLE):
            call(1)

    def time_retried_once(self) -> None:
        call = self.retried_once
        # Entered per sample (once per 1000 calls), so no fake clock outlives it.
        with fake_clock():
            for _ in itertools.repeat(None, CALLS_PER_SAMPLE):
                call(1)


class RetryAllocations:
    """What 1,000,000 retried calls that succeed at once allocate; 0 is the goal.

    Each figure is net of the same probe run over 0 calls, so that the probe's
    own objects do not count.
    """

    def setup(self) -> None:
        retried = retried_at_once()
        self.call = lambda: retried(1)

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
