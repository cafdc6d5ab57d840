#!/usr/bin/env python3
"""brace against peer Python resilience libraries: rate limiter, circuit breaker, bulkhead, retry, policy.

One run times every section below; within a section the cases' repeats are
interleaved round-robin, so that the noise of a shared machine falls on all of
them alike, and the median over repeats is the figure reported (the minimum
alongside). Each sync case is a pre-bound callable (or a one-line statement)
timed in timeit loops; each async case is one coroutine per sample that awaits
`number` times, timed inside the coroutine.

1. rate limiter, success path: RateLimiter.try_acquire() against limits,
   pyrate-limiter and token-bucket, each admitting every call of the run;
2. circuit breaker, closed: the overhead of a decorated one-argument function
   over the bare call, against pybreaker, circuitbreaker and resilix;
3. circuit breaker, async: the same for a coroutine function, over a bare await;
4. circuit breaker, open: a rejected call caught by try/except;
5. bulkhead: try_acquire()+release() and `with bh:`, against stdlib baselines,
   and a decorated call's overhead against resilix's bulkhead;
6. retry, success path: the overhead of a retry-decorated one-argument function
   that succeeds at once, over the bare call, against tenacity, stamina,
   backoff and resilix;
7. policy (limiter + breaker + bulkhead + retry), success path: the overhead
   of a brace.Policy-decorated function over the bare call, and of a
   Policy-decorated coroutine function over a bare await, with stacked peer
   decorators for reference;
8. rejections: an open breaker, a full bulkhead and an empty limiter refusing
   a call through each form (call, decorator, with, async with);
then what brace's success paths allocate (1,000,000 calls each).

    python benchmarks/compare.py            # full run, about 95 s on 2 cores
    python benchmarks/compare.py --quick    # a few seconds: CI smoke test
    python benchmarks/compare.py --json     # machine-readable report on stdout

Needs the `bench` extra: pip install -e '.[bench]'.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import json
import math
import os
import platform
import shlex
import statistics
import subprocess
import sys
import threading
import time
import timeit
import tracemalloc
from collections.abc import Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import backoff
import brace
import circuitbreaker  # type: ignore[import-untyped]
import limits
import pybreaker
import pyrate_limiter
import resilix
import stamina
import tenacity
import token_bucket
from limits.storage import MemoryStorage as LimitsMemoryStorage
from limits.strategies import FixedWindowRateLimiter

# Far above any rate a Python loop reaches (~25M calls/s at best), so no limiter
# can reject during the run.
HUGE_RATE = 10**9
ALLOCATION_CALLS = 1_000_000
# Long enough that no breaker opened for the run half-opens during it.
OPEN_FOR_SECONDS = 3600.0
# Failures that trip a breaker configured to open after this many.
TRIP_AFTER = 5
BULKHEAD_SLOTS = 10

BRACE = "brace RateLimiter.try_acquire()"
LIMITS = "limits FixedWindow+MemoryStorage .hit(item)"
PYRATE = "pyrate-limiter InMemoryBucket .try_acquire('key')"
TOKEN_BUCKET = "token-bucket MemoryStorage .consume(b'key')"
# Not a case: the cost of timeit's own loop, included in every sync figure.
EMPTY_LOOP = "empty timeit loop (pass)"

BARE_CALL = "bare call: f(1)"
BRACE_BREAKER = "brace @CircuitBreaker(name=...)"
BRACE_BREAKER_CALL = "brace cb.call(f, 1)"
BRACE_BREAKER_WITH = "brace with cb: f(1)"
PYBREAKER = "pybreaker @CircuitBreaker()"
CIRCUITBREAKER = "circuitbreaker @circuit"
RESILIX_BREAKER = "resilix @CircuitBreaker()"

BARE_AWAIT = "bare await: await f(1)"
BRACE_BREAKER_ASYNC = "brace @CircuitBreaker(name=...) on async def"
CIRCUITBREAKER_ASYNC = "circuitbreaker @circuit on async def"
RESILIX_BREAKER_ASYNC = "resilix @CircuitBreaker() on async def"

RAISE_BASELINE = "baseline: f(1) raising ValueError, caught"
BRACE_FORCED_OPEN = "brace FORCED_OPEN (force_open()), CircuitOpen caught"
BRACE_OPEN = "brace OPEN (tripped by failures), CircuitOpen caught"
PYBREAKER_OPEN = "pybreaker OPEN (open()), CircuitBreakerError caught"
CIRCUITBREAKER_OPEN = "circuitbreaker OPEN (tripped), CircuitBreakerError caught"
RESILIX_OPEN = "resilix OPEN (record_failure()), CircuitOpenError caught"

BRACE_BULKHEAD_PAIR = "brace bh.try_acquire(); bh.release()"
BRACE_BULKHEAD_WITH = "brace with bh: pass"
LOCK_PAIR = "stdlib baseline: Lock acquire(); release()"
LOCK_WITH = "stdlib baseline: with Lock(): pass"
SEMAPHORE_PAIR = "stdlib baseline: BoundedSemaphore acquire(False); release()"

BRACE_BULKHEAD_DECORATOR = "brace @Bulkhead(max_concurrent=10)"
RESILIX_BULKHEAD = "resilix @protect.bulkhead(10, wait=False)"

# Every retry below makes at most this many attempts in all (brace's default).
RETRY_ATTEMPTS = 3
BRACE_RETRY = "brace @retry(on=ConnectionError)"
TENACITY_RETRY = "tenacity @retry(stop_after_attempt(3), retry_if_exception_type)"
STAMINA_RETRY = "stamina @retry(on=ConnectionError, attempts=3)"
BACKOFF_RETRY = "backoff @on_exception(expo, ConnectionError, max_tries=3)"
RESILIX_RETRY = "resilix @protect.when(ConnectionError, retry=3)"

BRACE_POLICY = "brace @Policy(retry, breaker, limiter, bulkhead)"
TENACITY_PYBREAKER = "tenacity @retry(3, ConnectionError) over pybreaker @CircuitBreaker()"
RESILIX_STACK = "resilix @protect.when(retry=3) over @CircuitBreaker() over @protect.bulkhead(10)"
BRACE_POLICY_ASYNC = "brace @Policy(retry, breaker, limiter, bulkhead) on async def"

PEER_PACKAGES = (
    "brace", "limits", "pyrate-limiter", "token-bucket", "pybreaker", "circuitbreaker", "resilix",
    "tenacity", "stamina", "backoff",
)  # fmt: skip


# ---------------------------------------------------------------------------
# Shared machinery: settings, cases, interleaved timing, bars, allocations
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    repeats: int
    seconds_per_sample: float


FULL = Settings(repeats=20, seconds_per_sample=0.1)
QUICK = Settings(repeats=3, seconds_per_sample=0.01)

# Seconds taken by `number` iterations of a case.
Measure = Callable[[int], float]


@dataclass(frozen=True)
class Bar:
    """One requirement the project sets for itself; checked, never asserted."""

    description: str
    measured: float
    threshold: float
    unit: str
    at_most: bool

    @property
    def met(self) -> bool:
        if self.at_most:
            return self.measured <= self.threshold
        return self.measured >= self.threshold


def no_check() -> str | None:
    return None


@dataclass(frozen=True)
class Case:
    """One thing to time; `check` returns what is wrong if it would not time the intended path."""

    name: str
    measure: Measure
    check: Callable[[], str | None] = no_check


@dataclass
class Timing:
    """The samples of one case, in ns per iteration."""

    name: str
    measure: Measure
    number: int = 0
    samples_ns: list[float] = field(default_factory=list)

    @property
    def median_ns(self) -> float:
        return statistics.median(self.samples_ns)

    @property
    def min_ns(self) -> float:
        return min(self.samples_ns)


def timeit_measure(stmt: str, **names: object) -> Measure:
    """A timeit loop of `stmt`, in which `names` are bound.

    Binding in `setup` makes them locals of timeit's inner function, so no
    global or attribute lookup is timed.
    """
    setup = "; ".join(f"{name} = _{name}" for name in names) or "pass"
    globals_ = {f"_{name}": value for name, value in names.items()}
    return timeit.Timer(stmt, setup=setup, globals=globals_).timeit


def call_measure(call: Callable[..., object], args: tuple[object, ...] = ()) -> Measure:
    """A timeit loop of one call of `call` with at most one argument."""
    if len(args) > 1:
        raise ValueError("at most one argument is supported")
    if args:
        return timeit_measure("call(arg)", call=call, arg=args[0])
    return timeit_measure("call()", call=call)


def rejection_measure(call: Callable[[int], object], error: type[BaseException]) -> Measure:
    """A timeit loop of one call of `call(1)` that raises `error`, caught."""
    stmt = "try:\n    call(1)\nexcept error:\n    pass"
    return timeit_measure(stmt, call=call, error=error)


def calibrate(measure: Measure, seconds: float) -> int:
    """The loop count that makes one sample last about `seconds` (also warms up)."""
    number = 1
    while True:
        elapsed = measure(number)
        if elapsed >= seconds / 10:
            return max(1, round(number * seconds / elapsed))
        number *= 10


def run_timings(timings: list[Timing], settings: Settings) -> None:
    """Collects every timing's samples, interleaving their repeats."""
    for timing in timings:
        timing.number = calibrate(timing.measure, settings.seconds_per_sample)
    for round_ in range(settings.repeats):
        # Rotating the start spreads any position effect (a cache warmed or
        # cooled by the previous case) over all of them.
        start = round_ % len(timings)
        for timing in timings[start:] + timings[:start]:
            elapsed = timing.measure(timing.number)
            timing.samples_ns.append(elapsed / timing.number * 1e9)


def check_cases(cases: list[Case]) -> None:
    """Exits when a case would not time the path it names."""
    for case in cases:
        problem = case.check()
        if problem is not None:
            sys.exit(f"{case.name}: {problem}: the run does not measure what it reports")


def time_cases(cases: list[Case], settings: Settings, extra: Sequence[Timing] = ()) -> list[Timing]:
    """Times the cases (and `extra` timings, interleaved with them); returns the cases' timings."""
    timings = [Timing(case.name, case.measure) for case in cases]
    check_cases(cases)
    run_timings([*timings, *extra], settings)
    # Still on the same path at the end: no state changed while being timed.
    check_cases(cases)
    return timings


def by_name(timings: list[Timing], name: str) -> Timing:
    return next(timing for timing in timings if timing.name == name)


def ratio(numerator: float, denominator: float) -> float:
    """numerator / denominator; inf when the denominator is not positive (noise)."""
    return numerator / denominator if denominator > 0 else math.inf


@dataclass(frozen=True)
class Allocations:
    calls: int
    blocks: int
    net_bytes: int
    peak_bytes: int


# Runs the loop under test: one call (or statement) per item of the iterator.
LoopRunner = Callable[[Iterator[None]], None]


def measure_allocations(run: LoopRunner, calls: int) -> Allocations:
    """Live-block and tracemalloc deltas over `calls` iterations of `run`'s loop."""
    loop = itertools.repeat(None, calls)  # repeat yields no new int per step
    gc.collect()
    blocks_before = sys.getallocatedblocks()
    run(loop)
    blocks = sys.getallocatedblocks() - blocks_before

    tracemalloc.start()
    try:
        loop = itertools.repeat(None, calls)
        current_before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        run(loop)
        current_after, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return Allocations(calls, blocks, current_after - current_before, peak - current_before)


def allocations_of(run: LoopRunner) -> tuple[Allocations, Allocations]:
    """`run` over ALLOCATION_CALLS iterations, and the same probe over 0.

    The 0-call run shows what the probe itself allocates (the ints it reads),
    which is the floor the 1,000,000-call figures should sit on.
    """
    return measure_allocations(run, ALLOCATION_CALLS), measure_allocations(run, 0)


def call_loop(call: Callable[..., object], *args: object) -> LoopRunner:
    """A loop of call() or call(arg), the forms the timings use."""
    if len(args) > 1:
        raise ValueError("at most one argument is supported")
    if not args:

        def run(loop: Iterator[None]) -> None:
            for _ in loop:
                call()

        return run
    (arg,) = args

    def run_with_arg(loop: Iterator[None]) -> None:
        for _ in loop:
            call(arg)

    return run_with_arg


def with_loop(manager: Any) -> LoopRunner:
    def run(loop: Iterator[None]) -> None:
        for _ in loop:
            with manager:
                pass

    return run


def pair_loop(first: Callable[[], object], second: Callable[[], object]) -> LoopRunner:
    def run(loop: Iterator[None]) -> None:
        for _ in loop:
            first()
            second()

    return run


@dataclass(frozen=True)
class AllocationCheck:
    what: str
    measured: Allocations
    probe_only: Allocations


def allocation_check(what: str, run: LoopRunner) -> AllocationCheck:
    return AllocationCheck(what, *allocations_of(run))


def allocation_json(check: AllocationCheck) -> dict[str, Any]:
    return {"what": check.what, "measured": vars(check.measured), "probe_only": vars(check.probe_only)}


# ---------------------------------------------------------------------------
# Section 1: rate limiter, success path
# ---------------------------------------------------------------------------


def limiter_cases() -> list[Case]:
    brace_limiter = brace.RateLimiter(rate=float(HUGE_RATE), burst=10**6)
    limits_limiter = FixedWindowRateLimiter(LimitsMemoryStorage())
    limits_item = limits.parse(f"{HUGE_RATE}/second")
    # The default in-memory setup: Limiter(Rate) builds an InMemoryBucket and
    # schedules its background leak, as an application would get it.
    pyrate = pyrate_limiter.Limiter(
        pyrate_limiter.Rate(HUGE_RATE, pyrate_limiter.Duration.SECOND)
    )
    token_bucket_limiter = token_bucket.Limiter(
        float(HUGE_RATE), HUGE_RATE, token_bucket.MemoryStorage()
    )

    def admitting(name: str, call: Callable[..., object], *args: object) -> Case:
        def check() -> str | None:
            return None if call(*args) is True else "the limiter rejected a call"

        return Case(name, call_measure(call, args), check)

    return [
        # Two baselines: a no-op call of a C method (the kind of call brace's
        # try_acquire is) and of a Python function (the kind the peers are).
        Case("bare C call: {}.clear() on an empty dict", call_measure({}.clear)),
        Case("bare Python call: (lambda: None)()", call_measure(lambda: None)),
        admitting(BRACE, brace_limiter.try_acquire),
        admitting(LIMITS, limits_limiter.hit, limits_item),
        admitting(PYRATE, pyrate.try_acquire, "key"),
        admitting(TOKEN_BUCKET, token_bucket_limiter.consume, b"key"),
    ]


def limiter_allocations() -> tuple[Allocations, Allocations]:
    """brace's try_acquire over ALLOCATION_CALLS calls, and the same probe over 0 calls."""
    call = brace.RateLimiter(rate=float(HUGE_RATE), burst=10**6).try_acquire
    return allocations_of(call_loop(call))


def limiter_bars(timings: list[Timing]) -> list[Bar]:
    brace_ns = by_name(timings, BRACE).median_ns
    return [
        Bar("brace try_acquire median", brace_ns, 60.0, "ns", True),
        Bar("token-bucket median / brace median",
            ratio(by_name(timings, TOKEN_BUCKET).median_ns, brace_ns), 10.0, "x", False),
        Bar("limits FixedWindow median / brace median",
            ratio(by_name(timings, LIMITS).median_ns, brace_ns), 40.0, "x", False),
    ]  # fmt: skip


# ---------------------------------------------------------------------------
# Sections 2-4: circuit breaker (closed, async, open)
# ---------------------------------------------------------------------------


def target(x: int) -> int:
    """The guarded function of every breaker and bulkhead case, and the bare baseline."""
    return x


async def async_target(x: int) -> int:
    return x


def fail(x: int) -> int:
    raise ConnectionError(x)


class Tripped(Exception):
    """Raised inside a breaker's `with` block to record a failure."""


def returns_its_argument(call: Callable[[int], object]) -> Callable[[], str | None]:
    def check() -> str | None:
        return None if call(1) == 1 else "the guarded call did not return its argument"

    return check


def guarded_case(name: str, call: Callable[[int], object]) -> Case:
    return Case(name, call_measure(call, (1,)), returns_its_argument(call))


def breaker_cases() -> list[Case]:
    brace_breaker = brace.CircuitBreaker(name="bench-closed")
    brace_guarded = brace_breaker(target)
    call_breaker = brace.CircuitBreaker(name="bench-closed-call")
    with_breaker = brace.CircuitBreaker(name="bench-closed-with")

    def brace_closed(call: Callable[[int], object], breaker: brace.CircuitBreaker) -> Callable[[], str | None]:
        def check() -> str | None:
            if breaker.state is not brace.BreakerState.CLOSED:
                return f"the breaker is {breaker.state.value}, not closed"
            return returns_its_argument(call)()

        return check

    def call_through(x: int) -> object:
        return call_breaker.call(target, x)

    def with_through(x: int) -> object:
        with with_breaker:
            return target(x)

    # The same defaults as an application would get; none trips on successes.
    pybreaker_guarded = pybreaker.CircuitBreaker(name="bench-closed")(target)
    circuitbreaker_guarded = circuitbreaker.circuit(name="bench-closed")(target)
    resilix_guarded = resilix.CircuitBreaker()(target)
    return [
        Case(BARE_CALL, call_measure(target, (1,))),
        Case(BRACE_BREAKER, call_measure(brace_guarded, (1,)), brace_closed(brace_guarded, brace_breaker)),
        Case(BRACE_BREAKER_CALL,
             timeit_measure("call(f, 1)", call=call_breaker.call, f=target),
             brace_closed(call_through, call_breaker)),
        Case(BRACE_BREAKER_WITH,
             timeit_measure("with cb:\n    f(1)", cb=with_breaker, f=target),
             brace_closed(with_through, with_breaker)),
        guarded_case(PYBREAKER, pybreaker_guarded),
        guarded_case(CIRCUITBREAKER, circuitbreaker_guarded),
        guarded_case(RESILIX_BREAKER, resilix_guarded),
    ]  # fmt: skip


def breaker_bars(overheads: dict[str, float]) -> list[Bar]:
    brace_ns = overheads[BRACE_BREAKER]
    return [
        Bar("brace guarded-call overhead (median)", brace_ns, 60.0, "ns", True),
        Bar("brace cb.call(f, 1) overhead (median)", overheads[BRACE_BREAKER_CALL], 60.0, "ns", True),
        Bar("brace `with cb: f(1)` overhead (median)", overheads[BRACE_BREAKER_WITH], 80.0, "ns", True),
        Bar("pybreaker overhead / brace overhead", ratio(overheads[PYBREAKER], brace_ns), 20.0, "x", False),
        Bar("circuitbreaker overhead / brace overhead",
            ratio(overheads[CIRCUITBREAKER], brace_ns), 8.0, "x", False),
        Bar("resilix overhead / brace overhead", ratio(overheads[RESILIX_BREAKER], brace_ns), 3.0, "x", False),
    ]  # fmt: skip


class EventLoop:
    """One event loop for the async cases: a sample is one coroutine awaiting `number` times."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()

    def run(self, coroutine: Coroutine[Any, Any, Any]) -> Any:
        return self.loop.run_until_complete(coroutine)

    def measure(self, fn: Callable[[int], Coroutine[Any, Any, object]]) -> Measure:
        """Times `number` awaits of fn(1) inside one coroutine, as timeit does a loop."""

        async def awaits(number: int) -> float:
            call, loop = fn, itertools.repeat(None, number)
            start = time.perf_counter()
            for _ in loop:
                await call(1)
            return time.perf_counter() - start

        def measure(number: int) -> float:
            # Like timeit: no collection runs during the sample.
            gc_was_enabled = gc.isenabled()
            gc.disable()
            try:
                return float(self.run(awaits(number)))
            finally:
                if gc_was_enabled:
                    gc.enable()

        return measure

    def case(self, name: str, fn: Callable[[int], Coroutine[Any, Any, object]]) -> Case:
        def check() -> str | None:
            return None if self.run(fn(1)) == 1 else "the guarded await did not return its argument"

        return Case(name, self.measure(fn), check)

    def close(self) -> None:
        self.loop.close()


def breaker_async_cases(event_loop: EventLoop) -> list[Case]:
    # pybreaker 1.4.1 has no asyncio breaker (its call_async needs Tornado).
    return [
        event_loop.case(BARE_AWAIT, async_target),
        event_loop.case(BRACE_BREAKER_ASYNC, brace.CircuitBreaker(name="bench-async")(async_target)),
        event_loop.case(CIRCUITBREAKER_ASYNC, circuitbreaker.circuit(name="bench-async")(async_target)),
        event_loop.case(RESILIX_BREAKER_ASYNC, resilix.CircuitBreaker()(async_target)),
    ]


def breaker_async_bars(overheads: dict[str, float]) -> list[Bar]:
    return [Bar("brace async guarded-await overhead (median)", overheads[BRACE_BREAKER_ASYNC], 300.0, "ns", True)]


def raising(x: int) -> int:
    raise ValueError(x)


def rejects(call: Callable[[int], object], error: type[BaseException]) -> Callable[[], str | None]:
    def check() -> str | None:
        try:
            call(1)
        except error:
            return None
        return f"the call was not rejected with {error.__name__}"

    return check


def rejection_case(name: str, call: Callable[[int], object], error: type[BaseException]) -> Case:
    return Case(name, rejection_measure(call, error), rejects(call, error))


def open_breaker_cases() -> list[Case]:
    """Breakers put in OPEN through their public API, each guarding `target`."""
    forced = brace.CircuitBreaker(name="bench-forced-open")
    forced.force_open()

    tripped = brace.CircuitBreaker(
        name="bench-open", consecutive_failures=TRIP_AFTER, wait_in_open=OPEN_FOR_SECONDS
    )
    for _ in range(TRIP_AFTER):
        try:
            tripped.call(fail, 1)
        except ConnectionError:
            pass
    if tripped.state is not brace.BreakerState.OPEN:
        sys.exit(f"brace breaker is {tripped.state.value} after {TRIP_AFTER} failures, not open")

    pybreaker_breaker = pybreaker.CircuitBreaker(name="bench-open", reset_timeout=OPEN_FOR_SECONDS)
    pybreaker_breaker.open()

    # circuitbreaker has no open(): its failures are counted by its context manager.
    circuitbreaker_breaker = circuitbreaker.CircuitBreaker(
        name="bench-open", failure_threshold=TRIP_AFTER, recovery_timeout=int(OPEN_FOR_SECONDS)
    )
    circuitbreaker_guarded = circuitbreaker_breaker(target)
    for _ in range(TRIP_AFTER):
        try:
            with circuitbreaker_breaker:
                raise Tripped
        except Tripped:
            pass

    resilix_breaker = resilix.CircuitBreaker(failures=TRIP_AFTER, reset_timeout=OPEN_FOR_SECONDS)
    for _ in range(TRIP_AFTER):
        resilix_breaker.record_failure()

    return [
        rejection_case(RAISE_BASELINE, raising, ValueError),
        rejection_case(BRACE_FORCED_OPEN, forced(target), brace.CircuitOpen),
        rejection_case(BRACE_OPEN, tripped(target), brace.CircuitOpen),
        rejection_case(PYBREAKER_OPEN, pybreaker_breaker(target), pybreaker.CircuitBreakerError),
        rejection_case(CIRCUITBREAKER_OPEN, circuitbreaker_guarded, circuitbreaker.CircuitBreakerError),
        rejection_case(RESILIX_OPEN, resilix_breaker(target), resilix.CircuitOpenError),
    ]


def open_breaker_bars(timings: list[Timing]) -> list[Bar]:
    return [Bar("brace rejection (FORCED_OPEN) median", by_name(timings, BRACE_FORCED_OPEN).median_ns,
                300.0, "ns", True)]  # fmt: skip


def breaker_allocations() -> list[AllocationCheck]:
    guarded = brace.CircuitBreaker(name="bench-allocations")(target)
    call = brace.CircuitBreaker(name="bench-allocations-call").call
    return [
        allocation_check(f"{BRACE_BREAKER}-guarded f(1)", call_loop(guarded, 1)),
        allocation_check(BRACE_BREAKER_CALL, call_loop(lambda x: call(target, x), 1)),
    ]


# ---------------------------------------------------------------------------
# Section 5: bulkhead
# ---------------------------------------------------------------------------


def bulkhead_cases() -> list[Case]:
    bulkhead = brace.Bulkhead(max_concurrent=BULKHEAD_SLOTS, name="bench")
    lock = threading.Lock()
    semaphore = threading.BoundedSemaphore(BULKHEAD_SLOTS)

    def all_free() -> str | None:
        if not bulkhead.try_acquire():
            return "try_acquire() found no free slot"
        bulkhead.release()
        with bulkhead:
            pass
        return None if bulkhead.in_use == 0 else f"{bulkhead.in_use} slots still in use"

    def semaphore_free() -> str | None:
        if not semaphore.acquire(False):
            return "acquire(False) found no free slot"
        semaphore.release()
        return None

    return [
        Case(BRACE_BULKHEAD_PAIR,
             timeit_measure("acquire(); release()", acquire=bulkhead.try_acquire, release=bulkhead.release),
             all_free),
        Case(BRACE_BULKHEAD_WITH, timeit_measure("with bh:\n    pass", bh=bulkhead), all_free),
        Case(LOCK_PAIR, timeit_measure("acquire(); release()", acquire=lock.acquire, release=lock.release)),
        Case(LOCK_WITH, timeit_measure("with lock:\n    pass", lock=lock)),
        Case(SEMAPHORE_PAIR,
             timeit_measure("acquire(False); release()", acquire=semaphore.acquire, release=semaphore.release),
             semaphore_free),
    ]  # fmt: skip


def bulkhead_bars(timings: list[Timing]) -> list[Bar]:
    return [
        Bar("brace try_acquire()+release() median", by_name(timings, BRACE_BULKHEAD_PAIR).median_ns,
            60.0, "ns", True),
        Bar("brace `with bh:` median", by_name(timings, BRACE_BULKHEAD_WITH).median_ns, 60.0, "ns", True),
    ]  # fmt: skip


def bulkhead_decorator_cases() -> list[Case]:
    bulkhead = brace.Bulkhead(max_concurrent=BULKHEAD_SLOTS, name="bench-decorator")
    guarded = bulkhead(target)

    def brace_check() -> str | None:
        problem = returns_its_argument(guarded)()
        return problem or (None if bulkhead.in_use == 0 else f"{bulkhead.in_use} slots still in use")

    return [
        Case(BARE_CALL, call_measure(target, (1,))),
        Case(BRACE_BULKHEAD_DECORATOR, call_measure(guarded, (1,)), brace_check),
        guarded_case(RESILIX_BULKHEAD, resilix.protect.bulkhead(BULKHEAD_SLOTS, wait=False)(target)),
    ]


def bulkhead_allocations() -> list[AllocationCheck]:
    bulkhead = brace.Bulkhead(max_concurrent=BULKHEAD_SLOTS, name="bench-allocations")
    return [
        allocation_check("brace with bh: pass", with_loop(bulkhead)),
        allocation_check("brace bh.try_acquire(); bh.release()",
                         pair_loop(bulkhead.try_acquire, bulkhead.release)),
        # What CPython's `with` itself allocates on a C type: the bound
        # __enter__/__exit__ methods, made and freed on every entry.
        allocation_check("reference: with threading.Lock(): pass", with_loop(threading.Lock())),
    ]  # fmt: skip


# ---------------------------------------------------------------------------
# Section 6: retry, success path
# ---------------------------------------------------------------------------


def retry_cases() -> list[Case]:
    """`target` decorated by each retry, on ConnectionError, at most RETRY_ATTEMPTS attempts."""
    tenacity_retried = tenacity.retry(
        stop=tenacity.stop_after_attempt(RETRY_ATTEMPTS),
        retry=tenacity.retry_if_exception_type(ConnectionError),
    )(target)
    backoff_retried = backoff.on_exception(backoff.expo, ConnectionError, max_tries=RETRY_ATTEMPTS)(target)
    return [
        Case(BARE_CALL, call_measure(target, (1,))),
        guarded_case(BRACE_RETRY, brace.retry(on=ConnectionError)(target)),
        guarded_case(TENACITY_RETRY, tenacity_retried),
        guarded_case(STAMINA_RETRY, stamina.retry(on=ConnectionError, attempts=RETRY_ATTEMPTS)(target)),
        guarded_case(BACKOFF_RETRY, backoff_retried),
        guarded_case(RESILIX_RETRY, resilix.protect.when(ConnectionError, retry=RETRY_ATTEMPTS)(target)),
    ]


def retry_bars(overheads: dict[str, float]) -> list[Bar]:
    brace_ns = overheads[BRACE_RETRY]
    return [
        Bar("brace retried-call overhead (median)", brace_ns, 60.0, "ns", True),
        Bar("tenacity overhead / brace overhead", ratio(overheads[TENACITY_RETRY], brace_ns), 150.0, "x", False),
        Bar("resilix overhead / brace overhead", ratio(overheads[RESILIX_RETRY], brace_ns), 3.0, "x", False),
    ]  # fmt: skip


def retry_allocations() -> list[AllocationCheck]:
    retried = brace.retry(on=ConnectionError)(target)
    return [allocation_check(f"{BRACE_RETRY}-decorated f(1)", call_loop(retried, 1))]


# ---------------------------------------------------------------------------
# Section 7: policy (limiter + breaker + bulkhead + retry), success path
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class FullPolicy:
    """A brace.Policy composing all four primitives, and the primitives, to check its state."""

    policy: brace.Policy
    breaker: brace.CircuitBreaker
    limiter: brace.RateLimiter
    bulkhead: brace.Bulkhead

    def idle(self) -> str | None:
        """What is wrong with the state between calls: None when every call took the success path."""
        if self.breaker.state is not brace.BreakerState.CLOSED:
            return f"the breaker is {self.breaker.state.value}, not closed"
        if self.bulkhead.in_use != 0:
            return f"{self.bulkhead.in_use} bulkhead slots still in use"
        return None


def full_policy(name: str) -> FullPolicy:
    """Every call admitted: a closed breaker, a limiter no loop can drain, free bulkhead slots."""
    breaker = brace.CircuitBreaker(name=name)
    limiter = brace.RateLimiter(rate=float(HUGE_RATE), burst=HUGE_RATE)
    bulkhead = brace.Bulkhead(max_concurrent=BULKHEAD_SLOTS)
    policy = brace.Policy(retry=brace.Retry(on=ConnectionError), breaker=breaker, limiter=limiter,
                          bulkhead=bulkhead)  # fmt: skip
    return FullPolicy(policy, breaker, limiter, bulkhead)


def policy_cases() -> list[Case]:
    full = full_policy("bench-policy")
    guarded = full.policy(target)

    def brace_check() -> str | None:
        return returns_its_argument(guarded)() or full.idle()

    # Peers have no one-object policy: their decorators stacked in the same
    # order (retry outermost), for reference. Neither stack has a rate limiter.
    tenacity_pybreaker = tenacity.retry(
        stop=tenacity.stop_after_attempt(RETRY_ATTEMPTS),
        retry=tenacity.retry_if_exception_type(ConnectionError),
    )(pybreaker.CircuitBreaker(name="bench-policy")(target))
    resilix_stack = resilix.protect.when(ConnectionError, retry=RETRY_ATTEMPTS)(
        resilix.CircuitBreaker()(resilix.protect.bulkhead(BULKHEAD_SLOTS, wait=False)(target))
    )
    return [
        Case(BARE_CALL, call_measure(target, (1,))),
        Case(BRACE_POLICY, call_measure(guarded, (1,)), brace_check),
        guarded_case(TENACITY_PYBREAKER, tenacity_pybreaker),
        guarded_case(RESILIX_STACK, resilix_stack),
    ]


def policy_bars(overheads: dict[str, float]) -> list[Bar]:
    return [Bar("brace policy-call overhead (median)", overheads[BRACE_POLICY], 150.0, "ns", True)]


def policy_async_cases(event_loop: EventLoop) -> list[Case]:
    full = full_policy("bench-policy-async")
    policy_case = event_loop.case(BRACE_POLICY_ASYNC, full.policy(async_target))

    def brace_check() -> str | None:
        return policy_case.check() or full.idle()

    return [
        event_loop.case(BARE_AWAIT, async_target),
        Case(BRACE_POLICY_ASYNC, policy_case.measure, brace_check),
    ]


def policy_async_bars(overheads: dict[str, float]) -> list[Bar]:
    return [Bar("brace async policy-await overhead (median)", overheads[BRACE_POLICY_ASYNC], 150.0, "ns", True)]


def policy_allocations() -> list[AllocationCheck]:
    guarded = full_policy("bench-policy-allocations").policy(target)
    return [allocation_check(f"{BRACE_POLICY}-decorated f(1)", call_loop(guarded, 1))]


# ---------------------------------------------------------------------------
# Section 8: rejections through every form
# ---------------------------------------------------------------------------

REJECTION_FORMS = ("call", "decorator", "with", "async with")
# Shorter samples: twelve rejecting cases would otherwise add half a minute.
REJECTION_SECONDS_PER_SAMPLE = 0.05


def rejecting_guards() -> list[tuple[str, Any, type[BaseException]]]:
    """An OPEN breaker (tripped by failures), a full bulkhead and an empty limiter,
    neither waiting: each refuses every call of the run."""
    breaker = brace.CircuitBreaker(name="bench-rejects", consecutive_failures=TRIP_AFTER,
                                   wait_in_open=OPEN_FOR_SECONDS)  # fmt: skip
    for _ in range(TRIP_AFTER):
        try:
            breaker.call(fail, 1)
        except ConnectionError:
            pass
    bulkhead = brace.Bulkhead(max_concurrent=1, name="bench-rejects")
    bulkhead.try_acquire()
    limiter = brace.RateLimiter(rate=1, per=OPEN_FOR_SECONDS, max_wait=0, name="bench-rejects")
    limiter.try_acquire()
    return [("breaker OPEN", breaker, brace.CircuitOpen), ("bulkhead full", bulkhead, brace.BulkheadFull),
            ("limiter empty", limiter, brace.RateLimited)]  # fmt: skip


def rejection_name(what: str, form: str) -> str:
    return f"brace {what}: {form}"


def async_with_rejections(event_loop: EventLoop, guard: Any, error: type[BaseException]) -> Measure:
    """Times `number` rejected `async with guard:` blocks inside one coroutine."""

    async def blocks(number: int) -> float:
        loop = itertools.repeat(None, number)
        start = time.perf_counter()
        for _ in loop:
            try:
                async with guard:
                    pass
            except error:
                pass
        return time.perf_counter() - start

    def measure(number: int) -> float:
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            return float(event_loop.run(blocks(number)))
        finally:
            if gc_was_enabled:
                gc.enable()

    return measure


def rejection_cases(event_loop: EventLoop) -> list[Case]:
    cases = [rejection_case(RAISE_BASELINE, raising, ValueError)]
    for what, guard, error in rejecting_guards():
        guarded = guard(target)
        refused_at_once = rejects(lambda x, guard=guard: guard.call(target, x), error)

        def async_check(guard: Any = guard, error: type[BaseException] = error) -> str | None:
            async def block() -> None:
                async with guard:
                    pass

            try:
                event_loop.run(block())
            except error:
                return None
            return f"the block was not rejected with {error.__name__}"

        cases += [
            Case(rejection_name(what, "call"),
                 timeit_measure("try:\n    call(f, 1)\nexcept error:\n    pass", call=guard.call, f=target,
                                error=error),
                 refused_at_once),
            Case(rejection_name(what, "decorator"), rejection_measure(guarded, error), rejects(guarded, error)),
            Case(rejection_name(what, "with"),
                 timeit_measure("try:\n    with guard:\n        pass\nexcept error:\n    pass", guard=guard,
                                error=error),
                 refused_at_once),
            Case(rejection_name(what, "async with"), async_with_rejections(event_loop, guard, error), async_check),
        ]  # fmt: skip
    return cases


def rejection_bars(timings: list[Timing]) -> list[Bar]:
    return [Bar(f"{timing.name} median", timing.median_ns, 250.0, "ns", True)
            for timing in timings if timing.name.startswith("brace ")]  # fmt: skip


def rejection_section(settings: Settings) -> Section:
    event_loop = EventLoop()
    try:
        timings = time_cases(rejection_cases(event_loop),
                             Settings(settings.repeats, min(settings.seconds_per_sample, REJECTION_SECONDS_PER_SAMPLE)))
    finally:
        event_loop.close()
    return Section(
        "rejections", "rejections through every form: call, decorator, with, async with",
        "timeit loop of the statement inside try/except (async with: N blocks in one coroutine, timed "
        "inside it, gc off); the figure is the whole rejected call",
        timings, reference=rejection_name("breaker OPEN", "call"), bars=rejection_bars(timings),
        notes=[
            f"a breaker tripped OPEN by {TRIP_AFTER} failures ({OPEN_FOR_SECONDS:g} s to wait), a bulkhead "
            "of 1 slot held (max_wait=0), a limiter of 1 token taken (max_wait=0): each raises its "
            "rejection with its facts, and fn is never called",
            "the baseline is a Python function raising a new ValueError: the floor of any rejection by "
            "exception",
        ],
    )  # fmt: skip


# ---------------------------------------------------------------------------
# Sections as data: timing, figures, ratios
# ---------------------------------------------------------------------------


@dataclass
class Section:
    """One comparison: its cases' timings, and how its figures are derived.

    With a `baseline`, a case's figure is its overhead: its median minus the
    baseline's median (the same loop and the same function, unguarded).
    Without, the figure is the median itself. Ratios divide each case's figure
    by `reference`'s.
    """

    key: str
    title: str
    method: str
    timings: list[Timing]
    reference: str
    baseline: str | None = None
    bars: list[Bar] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    allocations: list[AllocationCheck] = field(default_factory=list)

    def figure(self, timing: Timing) -> float:
        if self.baseline is None:
            return timing.median_ns
        return timing.median_ns - by_name(self.timings, self.baseline).median_ns

    def figure_from_min(self, timing: Timing) -> float:
        if self.baseline is None:
            return timing.min_ns
        return timing.min_ns - by_name(self.timings, self.baseline).min_ns

    def figures(self) -> dict[str, float]:
        return {timing.name: self.figure(timing) for timing in self.timings}

    def ratio(self, timing: Timing) -> float | None:
        if timing.name == self.baseline:
            return None
        return ratio(self.figure(timing), self.figure(by_name(self.timings, self.reference)))


def finite_or_none(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def bar_json(bar: Bar) -> dict[str, Any]:
    return {
        "description": bar.description,
        "measured": finite_or_none(bar.measured),
        "threshold": bar.threshold,
        "unit": bar.unit,
        "at_most": bar.at_most,
        "met": bar.met,
    }


def section_json(section: Section) -> dict[str, Any]:
    rows = []
    for timing in section.timings:
        row: dict[str, Any] = {
            "name": timing.name,
            "median_ns": timing.median_ns,
            "min_ns": timing.min_ns,
        }
        if section.baseline is not None:
            row["overhead_ns"] = section.figure(timing)
            row["overhead_from_min_ns"] = section.figure_from_min(timing)
        row["ratio_vs_brace"] = finite_or_none(section.ratio(timing))
        row["calls_per_sample"] = timing.number
        row["samples_ns"] = timing.samples_ns
        rows.append(row)
    return {
        "title": section.title,
        "method": section.method,
        "baseline": section.baseline,
        "reference": section.reference,
        "results": rows,
        "bars": [bar_json(bar) for bar in section.bars],
        "notes": section.notes,
        "allocations": [allocation_json(check) for check in section.allocations],
    }


TIMEIT_METHOD = "timeit loop of a pre-bound call"
OVERHEAD_METHOD = (
    TIMEIT_METHOD + "; overhead = case median - bare-call median (the timeit loop cancels out)"
)
ASYNC_METHOD = (
    "one coroutine per sample awaiting N times on one asyncio loop, timed inside it "
    "with perf_counter (gc off, as in timeit); overhead = case median - bare-await median"
)


def breaker_section(settings: Settings, allocations: list[AllocationCheck]) -> Section:
    timings = time_cases(breaker_cases(), settings)
    section = Section(
        "breaker", "circuit breaker, CLOSED: guarded call of a one-argument function",
        OVERHEAD_METHOD, timings, reference=BRACE_BREAKER, baseline=BARE_CALL,
        allocations=allocations,
        notes=[
            "each breaker with its defaults guards the same `def f(x): return x`; every call succeeds",
            f"'{BRACE_BREAKER_CALL}' and '{BRACE_BREAKER_WITH}' are brace's other closed-state forms",
        ],
    )  # fmt: skip
    section.bars = breaker_bars(section.figures())
    return section


def breaker_async_section(settings: Settings) -> Section:
    event_loop = EventLoop()
    try:
        timings = time_cases(breaker_async_cases(event_loop), settings)
    finally:
        event_loop.close()
    section = Section(
        "breaker_async", "circuit breaker, CLOSED: guarded await of a coroutine function",
        ASYNC_METHOD, timings, reference=BRACE_BREAKER_ASYNC, baseline=BARE_AWAIT,
        notes=[
            "each breaker guards the same `async def f(x): return x`; every await succeeds",
            "pybreaker 1.4.1 is not included: it has no asyncio breaker (its call_async needs Tornado)",
        ],
    )  # fmt: skip
    section.bars = breaker_async_bars(section.figures())
    return section


def open_breaker_section(settings: Settings) -> Section:
    timings = time_cases(open_breaker_cases(), settings)
    return Section(
        "breaker_open", "circuit breaker, OPEN: a rejected call caught by try/except",
        TIMEIT_METHOD + " inside try/except; the figure is the whole rejected call",
        timings, reference=BRACE_FORCED_OPEN, bars=open_breaker_bars(timings),
        notes=[
            f"each breaker is put in OPEN through its public API, with {OPEN_FOR_SECONDS:g} s to "
            "wait, so none half-opens during the run:",
            f"brace force_open(); brace consecutive_failures={TRIP_AFTER} tripped by {TRIP_AFTER} "
            f"failed cb.call()s; pybreaker open(); circuitbreaker (no open()) {TRIP_AFTER} failures "
            f"recorded by `with breaker:`; resilix {TRIP_AFTER} record_failure()",
            "the baseline is a Python function raising a new ValueError: the floor of any "
            "rejection by exception",
        ],
    )  # fmt: skip


def bulkhead_section(settings: Settings, allocations: list[AllocationCheck]) -> Section:
    timings = time_cases(bulkhead_cases(), settings)
    return Section(
        "bulkhead", f"bulkhead: take and return a free slot (max_concurrent={BULKHEAD_SLOTS})",
        "timeit loop of the statement; the figure is the median of the whole statement",
        timings, reference=BRACE_BULKHEAD_PAIR, bars=bulkhead_bars(timings), allocations=allocations,
        notes=[
            "the stdlib rows are baselines, not bulkheads: a C lock, and the pure-Python semaphore "
            "an application would otherwise use",
            "`with` on any C type makes and frees two bound methods (__enter__, __exit__) per entry: "
            "CPython's with statement, not brace; the allocation reference on threading.Lock shows it",
        ],
    )  # fmt: skip


def bulkhead_decorator_section(settings: Settings) -> Section:
    timings = time_cases(bulkhead_decorator_cases(), settings)
    return Section(
        "bulkhead_decorator", "bulkhead: decorated call of a one-argument function",
        OVERHEAD_METHOD, timings, reference=BRACE_BULKHEAD_DECORATOR, baseline=BARE_CALL,
        notes=["each bulkhead has 10 slots and does not wait; every call gets a slot"],
    )  # fmt: skip


def retry_section(settings: Settings, allocations: list[AllocationCheck]) -> Section:
    timings = time_cases(retry_cases(), settings)
    section = Section(
        "retry", "retry, success path: decorated call of a one-argument function that succeeds",
        OVERHEAD_METHOD, timings, reference=BRACE_RETRY, baseline=BARE_CALL, allocations=allocations,
        notes=[
            "each retry guards the same `def f(x): return x`, retries ConnectionError, and makes at "
            f"most {RETRY_ATTEMPTS} attempts; every call succeeds at the first, so nothing sleeps",
            "brace and stamina keep their default backoff, tenacity its default wait (none), "
            "backoff expo, resilix its default delay (0 s)",
        ],
    )  # fmt: skip
    section.bars = retry_bars(section.figures())
    return section


BRACE_RECOVERY = "brace @Recovery()"
BRACE_RECOVERY_LOGGED = "brace @Recovery() with RecoveryLog(MemorySink())"


def recovery_cases() -> list[Case]:
    """`target` under brace.Recovery, quiet and logged; tenacity's retry for scale (no peer classifies,
    heals, falls back and escalates)."""
    quiet = brace.Recovery(escalation=brace.EscalationPolicy(), dead_letters=brace.MemoryDeadLetters())
    logged = brace.Recovery(escalation=brace.EscalationPolicy(), dead_letters=brace.MemoryDeadLetters())
    logged.add_listener(brace.RecoveryLog(brace.MemorySink(capacity=1000)))
    tenacity_retried = tenacity.retry(
        stop=tenacity.stop_after_attempt(RETRY_ATTEMPTS),
        retry=tenacity.retry_if_exception_type(ConnectionError),
    )(target)
    return [
        Case(BARE_CALL, call_measure(target, (1,))),
        guarded_case(BRACE_RECOVERY, quiet(target)),
        guarded_case(BRACE_RECOVERY_LOGGED, logged(target)),
        guarded_case(TENACITY_RETRY, tenacity_retried),
    ]


def recovery_allocations() -> list[AllocationCheck]:
    quiet = brace.Recovery(escalation=brace.EscalationPolicy(), dead_letters=brace.MemoryDeadLetters())
    return [allocation_check(f"{BRACE_RECOVERY}-decorated f(1)", call_loop(quiet(target), 1))]


def recovery_section(settings: Settings, allocations: list[AllocationCheck]) -> Section:
    section = Section(
        "recovery", "recovery layer, success path: decorated call of a one-argument function",
        OVERHEAD_METHOD, time_cases(recovery_cases(), settings), reference=BRACE_RECOVERY, baseline=BARE_CALL,
        allocations=allocations,
        notes=[
            "brace.Recovery's judgment is Python; a decorated function's first attempt and its success are "
            "compiled (vectorcall, no tuple or dict): a quiet Recovery's success is only counted in its stats; "
            "with a log, every call also gets a correlation id (set for the call) and hands a compact record "
            "to the log's sinks, made into an event when read",
            "no peer classifies, heals, falls back and escalates; tenacity's retry is shown for scale only",
        ],
    )  # fmt: skip
    section.bars = recovery_bars(section.figures())
    return section


def recovery_bars(overheads: dict[str, float]) -> list[Bar]:
    return [
        Bar("brace @Recovery() success-path overhead (median)", overheads[BRACE_RECOVERY], 100.0, "ns", True),
        Bar("brace @Recovery() with a memory log, success-path overhead (median)",
            overheads[BRACE_RECOVERY_LOGGED], 500.0, "ns", True),
    ]  # fmt: skip


POLICY_NOTE = (
    "the policy is brace.Policy(retry=Retry(on=ConnectionError), breaker=CircuitBreaker(name=...), "
    f"limiter=RateLimiter(rate=1e9, burst=10**9), bulkhead=Bulkhead(max_concurrent={BULKHEAD_SLOTS})): "
    "every call is admitted by each and succeeds at its first attempt"
)


def policy_section(settings: Settings, allocations: list[AllocationCheck]) -> Section:
    timings = time_cases(policy_cases(), settings)
    section = Section(
        "policy", "policy (limiter + breaker + bulkhead + retry), success path: decorated call",
        OVERHEAD_METHOD, timings, reference=BRACE_POLICY, baseline=BARE_CALL, allocations=allocations,
        notes=[
            POLICY_NOTE + "; it guards `def f(x): return x`",
            "the peer rows are for reference (no bar): no peer has a one-object policy, so their "
            "decorators are stacked, retry outermost; neither stack has a rate limiter",
            f"tenacity stop_after_attempt({RETRY_ATTEMPTS}) + retry_if_exception_type(ConnectionError) "
            "over pybreaker's defaults; resilix protect.when(ConnectionError, retry=3) over "
            "CircuitBreaker() over protect.bulkhead(10, wait=False)",
        ],
    )  # fmt: skip
    section.bars = policy_bars(section.figures())
    return section


def policy_async_section(settings: Settings) -> Section:
    event_loop = EventLoop()
    try:
        timings = time_cases(policy_async_cases(event_loop), settings)
    finally:
        event_loop.close()
    section = Section(
        "policy_async", "policy (limiter + breaker + bulkhead + retry), success path: guarded await",
        ASYNC_METHOD, timings, reference=BRACE_POLICY_ASYNC, baseline=BARE_AWAIT,
        notes=[POLICY_NOTE + "; it guards `async def f(x): return x`"],
    )  # fmt: skip
    section.bars = policy_async_bars(section.figures())
    return section


# ---------------------------------------------------------------------------
# Environment and report
# ---------------------------------------------------------------------------


def reproduce_command() -> str:
    argv = [sys.executable, *sys.argv]
    return f"cd {shlex.quote(os.getcwd())} && {shlex.join(argv)}"


def cpu_model() -> str:
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or "unknown"
    for line in cpuinfo.splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def brace_revision() -> str:
    """The git commit brace runs from (+dirty), so a result can be traced to code."""
    repo = Path(__file__).resolve().parent.parent
    try:
        described = subprocess.run(
            ["git", "-C", str(repo), "describe", "--always", "--dirty"],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return described.stdout.strip()


def brace_clock_source() -> str:
    """Which clock brace's decisions read: "tsc" once calibrated, else "monotonic"."""
    from brace._core import clock_source

    return clock_source()


def environment() -> dict[str, Any]:
    return {
        "python": sys.version.replace("\n", " "),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "brace_clock": brace_clock_source(),
        "brace_revision": brace_revision(),
        "versions": {package: metadata.version(package) for package in PEER_PACKAGES},
    }


@dataclass
class Run:
    settings: Settings
    limiter_timings: list[Timing]
    empty_loop: Timing
    limiter_allocations: tuple[Allocations, Allocations]
    sections: list[Section]
    seconds: float


def report(run: Run) -> dict[str, Any]:
    timings = run.limiter_timings
    brace_ns = by_name(timings, BRACE).median_ns
    measured, probe_only = run.limiter_allocations
    data: dict[str, Any] = {
        "command": reproduce_command(),
        "environment": environment(),
        "settings": {
            "repeats": run.settings.repeats,
            "seconds_per_sample": run.settings.seconds_per_sample,
        },
        "seconds": run.seconds,
        # The rate limiter's section, at the top level as before the others existed.
        "results": [
            {
                "name": timing.name,
                "median_ns": timing.median_ns,
                "min_ns": timing.min_ns,
                "ratio_vs_brace": finite_or_none(ratio(timing.median_ns, brace_ns)),
                "calls_per_sample": timing.number,
                "samples_ns": timing.samples_ns,
            }
            for timing in timings
        ],
        "empty_loop_ns": {"median": run.empty_loop.median_ns, "min": run.empty_loop.min_ns},
        "bars": [bar_json(bar) for bar in limiter_bars(timings)],
        "allocations": {"measured": vars(measured), "probe_only": vars(probe_only)},
    }
    for section in run.sections:
        data[section.key] = section_json(section)
    return data


def print_header(data: dict[str, Any]) -> None:
    env = data["environment"]
    settings = data["settings"]
    print("brace vs peer resilience libraries: rate limiter, circuit breaker, bulkhead, retry, policy")
    print(f"command:  {data['command']}")
    print(f"python:   {env['python']} ({env['implementation']})")
    print(f"platform: {env['platform']}, {env['machine']}")
    print(f"cpu:      {env['cpu']}, {env['cpu_count']} CPUs; brace clock: {env['brace_clock']}")
    versions = ", ".join(f"{name} {version}" for name, version in env["versions"].items())
    print(f"versions: {versions}; brace git {env['brace_revision']}")
    print(
        f"method:   {settings['repeats']} repeats of ~{settings['seconds_per_sample']} s per case, "
        "interleaved round-robin within each section; median and min over repeats"
    )
    print(f"run took: {data['seconds']:.1f} s")


def print_bars(bars: list[dict[str, Any]]) -> None:
    print("bar:")
    for bar in bars:
        relation = "<=" if bar["at_most"] else ">="
        verdict = "met" if bar["met"] else "NOT MET"
        measured = "inf" if bar["measured"] is None else f"{bar['measured']:.1f}"
        print(
            f"  {bar['description']}: {measured} {bar['unit']} "
            f"(required {relation} {bar['threshold']:g} {bar['unit']}): {verdict}"
        )


def print_limiter(data: dict[str, Any]) -> None:
    print("== rate limiter: success path (every call admitted) ==")
    print("method:   timeit loops of a pre-bound callable")
    print()
    name_width = max(len(result["name"]) for result in data["results"])
    print(f"{'name':<{name_width}}  {'median ns':>10}  {'min ns':>10}  {'vs brace':>9}")
    for result in data["results"]:
        print(
            f"{result['name']:<{name_width}}  {result['median_ns']:>10.1f}  "
            f"{result['min_ns']:>10.1f}  {format_ratio(result['ratio_vs_brace'])}"
        )
    empty = data["empty_loop_ns"]
    print(
        f"(every figure includes timeit's loop overhead: {empty['median']:.1f} ns median, "
        f"{empty['min']:.1f} ns min per iteration of an empty loop; not subtracted)"
    )
    print()
    print_bars(data["bars"])
    print()
    print_limiter_allocations(data["allocations"])


def format_ratio(value: float | None) -> str:
    return f"{'inf':>8}x" if value is None else f"{value:>8.2f}x"


def print_limiter_allocations(allocations: dict[str, dict[str, int]]) -> None:
    measured, probe = allocations["measured"], allocations["probe_only"]
    print(f"allocations of brace try_acquire() over {measured['calls']:,} calls:")
    print(
        f"  sys.getallocatedblocks() delta: {measured['blocks']:+d} blocks "
        f"(probe alone, 0 calls: {probe['blocks']:+d})"
    )
    print(
        f"  tracemalloc net: {measured['net_bytes']:+d} B, peak above start: "
        f"{measured['peak_bytes']:+d} B (probe alone: {probe['net_bytes']:+d} B, "
        f"{probe['peak_bytes']:+d} B)"
    )
    print(
        "  getallocatedblocks counts objects still alive after the loop (a leak shows as\n"
        "  ~1 block per call); tracemalloc's peak also catches objects created and freed\n"
        "  within a call (one would show as its size). Figures equal to the probe's own\n"
        "  mean try_acquire allocates nothing."
    )


def print_section(section: dict[str, Any], empty_loop_ns: float) -> None:
    print(f"== {section['title']} ==")
    print(f"method:   {section['method']}")
    for note in section["notes"]:
        print(f"note:     {note}")
    print()
    rows = section["results"]
    name_width = max(len(row["name"]) for row in rows)
    overhead = section["baseline"] is not None
    header = f"{'name':<{name_width}}  {'median ns':>10}  {'min ns':>10}"
    if overhead:
        header += f"  {'overhead ns':>11}  {'(from min)':>10}"
    print(header + f"  {'vs brace':>9}")
    for row in rows:
        line = f"{row['name']:<{name_width}}  {row['median_ns']:>10.1f}  {row['min_ns']:>10.1f}"
        if overhead:
            line += f"  {row['overhead_ns']:>11.1f}  {row['overhead_from_min_ns']:>10.1f}"
        is_baseline = row["name"] == section["baseline"]
        print(line + ("  " + f"{'-':>9}" if is_baseline else "  " + format_ratio(row["ratio_vs_brace"])))
    if overhead:
        print(f"(vs brace: overhead / brace's overhead; '{section['baseline']}' is the baseline)")
    else:
        print(
            f"(figures include timeit's loop overhead, {empty_loop_ns:.1f} ns median (measured "
            "with the rate limiter); vs brace: median / brace's median)"
        )
    if section["bars"]:
        print()
        print_bars(section["bars"])
    if section["allocations"]:
        print()
        print_allocations(section["allocations"])


def print_allocations(checks: list[dict[str, Any]]) -> None:
    calls = checks[0]["measured"]["calls"]
    print(f"allocations over {calls:,} calls (probe alone, 0 calls, in brackets):")
    for check in checks:
        measured, probe = check["measured"], check["probe_only"]
        print(
            f"  {check['what']}: {measured['blocks']:+d} blocks [{probe['blocks']:+d}], "
            f"tracemalloc net {measured['net_bytes']:+d} B [{probe['net_bytes']:+d}], "
            f"peak {measured['peak_bytes']:+d} B [{probe['peak_bytes']:+d}]"
        )
    print(
        "  (blocks: getallocatedblocks delta, objects alive after the loop; peak: tracemalloc's\n"
        "  peak above the start, which also catches an object made and freed within a call.\n"
        "  Figures equal to the probe's own mean the call allocates nothing.)"
    )


def print_table(data: dict[str, Any], section_keys: list[str]) -> None:
    print_header(data)
    print()
    print_limiter(data)
    for key in section_keys:
        print()
        print_section(data[key], data["empty_loop_ns"]["median"])


# Each section by its key, called with the settings and its allocation checks.
SECTIONS: dict[str, Callable[[Settings, list[AllocationCheck]], Section]] = {
    "breaker": breaker_section,
    "breaker_async": lambda settings, _: breaker_async_section(settings),
    "breaker_open": lambda settings, _: open_breaker_section(settings),
    "bulkhead": bulkhead_section,
    "bulkhead_decorator": lambda settings, _: bulkhead_decorator_section(settings),
    "retry": retry_section,
    "policy": policy_section,
    "policy_async": lambda settings, _: policy_async_section(settings),
    "recovery": recovery_section,
    "rejections": lambda settings, _: rejection_section(settings),
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="few short repeats: checks it runs, not for figures"
    )
    parser.add_argument(
        "--json", action="store_true", help="print a machine-readable report instead of a table"
    )
    parser.add_argument(
        "--only", metavar="SECTION", action="append", choices=sorted(SECTIONS),
        help="time only this section (repeatable), while iterating; the limiter table is always timed",
    )  # fmt: skip
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    settings = QUICK if args.quick else FULL
    started = time.perf_counter()
    # Before the peers exist: their background threads (pyrate-limiter's leaker,
    # limits' expiry timer) allocate and would blur the counts.
    limiter_allocs = limiter_allocations()
    breaker_allocs = breaker_allocations()
    bulkhead_allocs = bulkhead_allocations()
    retry_allocs = retry_allocations()
    policy_allocs = policy_allocations()
    recovery_allocs = recovery_allocations()

    empty_loop = Timing(EMPTY_LOOP, timeit.Timer("pass").timeit)
    limiter_timings = time_cases(limiter_cases(), settings, extra=[empty_loop])
    sections = [
        SECTIONS[key](settings, allocs)
        for key, allocs in [
            ("breaker", breaker_allocs), ("breaker_async", []), ("breaker_open", []),
            ("bulkhead", bulkhead_allocs), ("bulkhead_decorator", []), ("retry", retry_allocs),
            ("policy", policy_allocs), ("policy_async", []), ("recovery", recovery_allocs), ("rejections", []),
        ]
        if not args.only or key in args.only
    ]  # fmt: skip
    run = Run(
        settings, limiter_timings, empty_loop, limiter_allocs, sections,
        time.perf_counter() - started,
    )  # fmt: skip
    data = report(run)
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        print_table(data, [section.key for section in sections])


if __name__ == "__main__":
    main()
