"""brace.Policy(hedge=...): the hedge between the retry and the breaker. Each hedged copy
passes the breaker, limiter and bulkhead on its own; the retry sees one outcome per group.
On brace's fake clock without autojump: a hedge starts when an attempt moves the clock,
and which copy ends first is decided by events, never by sleeps."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest

import brace
from brace import Backoff, Policy
from brace.testing import FakeClock

WAIT = 30.0  # a guard against hangs, never a measure
NO_WAIT = Backoff.constant(delay=0.0, jitter="none")


@pytest.fixture
def still_clock() -> Iterator[FakeClock]:
    with brace.testing.fake_clock(autojump=None) as frozen:
        yield frozen


class Events:
    """Every event a policy's stages emit, with a wait for one kind."""

    def __init__(self, policy: Policy) -> None:
        self.events: list[Any] = []
        self.lock = threading.Condition()
        policy.add_listener(self)

    def __call__(self, event: Any) -> None:
        with self.lock:
            self.events.append(event)
            self.lock.notify_all()

    def wait_for(self, kind: str, count: int = 1) -> None:
        with self.lock:
            arrived = self.lock.wait_for(lambda: self.count(kind) >= count, WAIT)
        assert arrived, f"fewer than {count} {kind!r} events"

    def count(self, kind: str) -> int:
        return sum(event.kind == kind for event in self.events)

    def hedge(self) -> list[tuple[str, int]]:
        with self.lock:
            return [(e.kind, e.attempt) for e in self.events if isinstance(e, brace.HedgeEvent)]


def breaker() -> brace.CircuitBreaker:
    return brace.CircuitBreaker(minimum_calls=100)  # counts every call, never opens here


def test_each_copy_passes_the_breaker_and_the_bulkhead(still_clock: FakeClock) -> None:
    bulkhead = brace.Bulkhead(max_concurrent=2)
    policy = Policy(hedge=brace.Hedge(delay=1.0), breaker=breaker(), bulkhead=bulkhead)
    seen = Events(policy)
    release = threading.Event()
    in_use: list[int] = []

    def fetch() -> str:
        in_use.append(bulkhead.in_use)
        if len(in_use) == 1:
            still_clock.advance(1.5)  # slower than the delay: a copy starts
            release.wait(WAIT)
            raise ConnectionError("the primary, late")
        return "hedge"

    assert policy.call(fetch) == "hedge"
    assert in_use == [1, 2]  # the copy holds a slot of its own
    assert seen.count("success") == 1 and seen.count("error") == 0
    release.set()
    seen.wait_for("late")  # told once the breaker booked the loser and its slot went back
    assert seen.count("error") == 1
    assert bulkhead.in_use == 0
    assert seen.hedge() == [("hedged", 1), ("won", 1), ("cancelled", 0), ("late", 0)]


def test_a_copy_the_bulkhead_rejects_stops_hedging_and_the_primary_goes_on(still_clock: FakeClock) -> None:
    bulkhead = brace.Bulkhead(max_concurrent=1, max_wait=0)
    policy = Policy(hedge=brace.Hedge(delay=1.0, max_hedged=2), bulkhead=bulkhead)
    seen = Events(policy)
    calls: list[str] = []

    def fetch() -> str:
        calls.append("primary")
        still_clock.advance(1.5)
        seen.wait_for("failed")  # the copy was turned away by the full bulkhead
        still_clock.advance(1.5)  # past the delay again: no third copy
        return "primary"

    assert policy.call(fetch) == "primary"
    assert calls == ["primary"]
    assert seen.hedge() == [("hedged", 1), ("failed", 1), ("won", 0)]
    failed = next(e for e in seen.events if isinstance(e, brace.HedgeEvent) and e.kind == "failed")
    assert isinstance(failed.error, brace.BulkheadFull)


def test_a_rejected_primary_ends_the_group_without_a_copy(still_clock: FakeClock) -> None:
    circuit = breaker()
    circuit.force_open()
    policy = Policy(hedge=brace.Hedge(delay=1.0), breaker=circuit)
    seen = Events(policy)
    calls: list[int] = []
    with pytest.raises(brace.CircuitOpen):
        policy.call(lambda: calls.append(1))
    assert calls == []
    assert seen.hedge() == [("failed", 0), ("won", 0)]


def test_the_retry_sees_one_outcome_per_group(still_clock: FakeClock) -> None:
    retry = brace.Retry(on=ConnectionError, attempts=2, backoff=NO_WAIT)
    policy = Policy(retry=retry, hedge=brace.Hedge(delay=60.0), breaker=breaker())
    seen = Events(policy)
    outcomes: list[object] = [ConnectionError("primary 1"), ConnectionError("hedge 1"), "primary 2"]

    def fetch() -> object:
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    assert policy.call(fetch) == "primary 2"
    assert seen.count("retry") == 1  # one retry for a group of two failed copies
    assert seen.count("error") == 2 and seen.count("success") == 1  # the breaker booked each copy
    assert seen.hedge() == [("failed", 0), ("hedged", 1), ("failed", 1), ("won", 0), ("won", 0)]


def test_async_copies_are_tasks_and_the_loser_is_cancelled(still_clock: FakeClock) -> None:
    bulkhead = brace.Bulkhead(max_concurrent=2)
    policy = Policy(hedge=brace.Hedge(delay=1.0), breaker=breaker(), bulkhead=bulkhead)
    seen = Events(policy)
    cancelled: list[int] = []

    async def fetch(forever: asyncio.Event) -> str:
        if not seen.hedge():
            still_clock.advance(1.5)
            try:
                await forever.wait()
            except asyncio.CancelledError:
                cancelled.append(0)
                raise
        return "hedge"

    async def main() -> str:
        return await policy.call_async(fetch, asyncio.Event())

    assert asyncio.run(main()) == "hedge"
    assert cancelled == [0] and bulkhead.in_use == 0
    assert seen.count("success") == 1 and seen.count("error") == 0  # a cancelled loser is no failure
    assert seen.hedge() == [("hedged", 1), ("won", 1), ("cancelled", 0)]


def test_decorated_functions_are_hedged_sync_and_async(still_clock: FakeClock) -> None:
    policy = Policy(hedge=brace.Hedge(delay=60.0), breaker=breaker())
    seen = Events(policy)
    failures = [ConnectionError("primary")]

    @policy
    def fetch(value: int) -> int:
        if failures:
            raise failures.pop()
        return value

    @policy
    async def fetch_async(value: int) -> int:
        return value * 2

    assert fetch(3) == 3
    assert seen.hedge() == [("failed", 0), ("hedged", 1), ("won", 1)]
    assert asyncio.run(fetch_async(4)) == 8
    assert seen.hedge()[-1] == ("won", 0)


def test_listeners_reach_the_hedge_and_properties_tell_it() -> None:
    hedge = brace.Hedge(name="h", delay=0.5)
    policy = Policy(hedge=hedge, retry=brace.Retry(on=ConnectionError, attempts=2, backoff=NO_WAIT))
    assert policy.hedge is hedge
    assert set(brace.Hedge.event_kinds) <= set(policy.event_kinds)
    assert "hedge=Hedge(name='h'" in repr(policy)
    heard: list[Any] = []
    policy.add_listener(heard.append, kinds="won")
    assert policy.call(lambda: 1) == 1
    assert [(e.kind, e.name) for e in heard] == [("won", "h")]
    policy.remove_listener(heard.append)
    policy.call(lambda: 1)
    assert len(heard) == 1


def test_with_hedge_keeps_the_same_stages() -> None:
    retry, circuit = brace.Retry(on=ConnectionError), breaker()
    policy = Policy(name="p", retry=retry, breaker=circuit, deadline=5.0)
    hedge = brace.Hedge(delay=0.5)
    hedged = policy.with_hedge(hedge)
    assert (hedged.name, hedged.retry, hedged.breaker, hedged.hedge) == ("p", retry, circuit, hedge)
    assert policy.hedge is None and hedged.with_hedge(None).hedge is None


def test_a_hedge_of_another_type_is_refused() -> None:
    with pytest.raises(TypeError, match="hedge must be a brace.Hedge"):
        Policy(hedge=object())  # type: ignore[arg-type]
