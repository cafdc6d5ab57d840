"""One event shape for every primitive: add_listener(fn, kinds=...), and events that begin with
(kind, name, at), parametrized over the primitives and the ways a call goes through them."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

import brace
from brace._core import now_ns
from brace.testing import FakeClock

NS = 1_000_000_000


def full_bulkhead() -> brace.Bulkhead:
    bulkhead = brace.Bulkhead(name="pool", max_concurrent=1)
    assert bulkhead.try_acquire()
    return bulkhead


def empty_limiter() -> brace.RateLimiter:
    limiter = brace.RateLimiter(name="api", rate=1, burst=1, max_wait=0)
    assert limiter.try_acquire()
    return limiter


def open_breaker() -> brace.CircuitBreaker:
    breaker = brace.CircuitBreaker(name="svc")
    breaker.force_open()
    return breaker


def empty_adaptive_limiter() -> brace.AdaptiveRateLimiter:
    limiter = brace.AdaptiveRateLimiter(name="aws", max_wait=0)
    limiter.record_throttle()  # limiting from now on, at the floor (0.5/s, burst 1)
    assert limiter.try_acquire()
    return limiter


def shedding_throttle() -> brace.ClientThrottle:
    throttle = brace.ClientThrottle(name="shed", k=1.0)
    for _ in range(1000):  # refused by the backend, every one: the next is shed with p = 1000/1001
        throttle.try_acquire()
    brace.testing.seed(1)  # a seed whose next draw is below that
    return throttle


REJECTING: dict[str, tuple[Callable[[], Any], type[Exception], str]] = {
    "bulkhead": (full_bulkhead, brace.BulkheadFull, "rejected"),
    "limiter": (empty_limiter, brace.RateLimited, "rejected"),
    "breaker": (open_breaker, brace.CircuitOpen, "not_permitted"),
    "adaptive limiter": (empty_adaptive_limiter, brace.RateLimited, "rejected"),
    "client throttle": (shedding_throttle, brace.Throttled, "rejected"),
}


def through(primitive: Any, form: str) -> None:
    """One call of a no-op through `primitive` in the given form."""
    if form == "call":
        primitive.call(lambda: None)
    elif form == "decorator":
        primitive(lambda: None)()
    elif form == "with":
        with primitive:
            pass
    elif form == "call_async":

        async def nothing() -> None:
            return None

        asyncio.run(primitive.call_async(nothing))
    else:

        async def block() -> None:
            async with primitive:
                pass

        asyncio.run(block())


@pytest.mark.parametrize("form", ["call", "decorator", "with", "call_async", "async with"])
@pytest.mark.parametrize("primitive", sorted(REJECTING))
def test_every_local_rejection_is_an_event_in_every_form(clock: FakeClock, primitive: str, form: str) -> None:
    make, error, kind = REJECTING[primitive]
    subject = make()
    seen: list[Any] = []
    subject.add_listener(seen.append, kinds=(kind,))
    with pytest.raises(error) as rejected:
        through(subject, form)
    assert isinstance(rejected.value, brace.Rejected)
    [event] = seen
    assert event[:3] == (kind, subject.name, now_ns() / NS)  # (kind, name, at): the frozen clock's instant
    assert (event.kind, event.name, event.at) == event[:3]


@pytest.mark.parametrize("primitive", sorted(REJECTING))
def test_nobody_listening_costs_no_event(clock: FakeClock, primitive: str) -> None:
    make, error, kind = REJECTING[primitive]
    subject = make()
    seen: list[Any] = []
    subject.add_listener(seen.append, kinds=(kind,))
    subject.remove_listener(seen.append)
    with pytest.raises(error):
        through(subject, "call")
    assert seen == []


def every_primitive() -> dict[str, Any]:
    limiter = brace.RateLimiter(name="l", rate=10)
    breaker = brace.CircuitBreaker(name="b")
    bulkhead = brace.Bulkhead(name="h", max_concurrent=2)
    retry = brace.Retry(name="r", on=OSError)
    return {
        "limiter": limiter,
        "breaker": breaker,
        "bulkhead": bulkhead,
        "retry": retry,
        "budget": brace.RetryBudget(name="g"),
        "adaptive limiter": brace.AdaptiveRateLimiter(name="a"),
        "client throttle": brace.ClientThrottle(name="t"),
        "recovery": brace.Recovery(name="rec", dead_letters=brace.MemoryDeadLetters()),
        "fallback": brace.Fallback(brace.Fallback.value(0), name="f"),
        "policy": brace.Policy(name="p", retry=brace.Retry(on=OSError), breaker=brace.CircuitBreaker(),
                               limiter=brace.RateLimiter(rate=10), bulkhead=brace.Bulkhead(max_concurrent=2)),
    }  # fmt: skip


@pytest.mark.parametrize("name", sorted(every_primitive()))
def test_every_primitive_takes_listeners_the_same_way(name: str) -> None:
    subject = every_primitive()[name]
    assert subject.name is not None and subject.event_kinds
    with pytest.raises(ValueError, match="kinds must be among"):
        subject.add_listener(print, kinds=("no_such_kind",))
    with pytest.raises(TypeError, match="listener must be callable, got int"):
        subject.add_listener(42)
    subject.add_listener(print, kinds=subject.event_kinds[:1])
    subject.remove_listener(print)
    with pytest.raises(ValueError, match="not added"):
        subject.remove_listener(print)


def test_a_spent_budget_is_an_event(clock: FakeClock) -> None:
    budget = brace.RetryBudget(name="db", min_per_second=0, ratio=0.5)
    seen: list[brace.RetryBudgetEvent] = []
    budget.add_listener(seen.append)
    budget.deposit()
    assert not budget.try_withdraw()  # half a token is not a retry
    [event] = seen
    assert event == brace.RetryBudgetEvent("exhausted", "db", now_ns() / NS, 0.5)


def test_a_throttle_is_an_event_with_the_new_rate(clock: FakeClock) -> None:
    limiter = brace.AdaptiveRateLimiter(name="s3", initial_rate=40.0)
    seen: list[brace.AdaptiveRateEvent] = []
    limiter.add_listener(seen.append, kinds="throttled")
    limiter.record_success()
    limiter.record_throttle()
    [event] = seen
    assert limiter.rate is not None and limiter.rate < 40.0
    assert event == brace.AdaptiveRateEvent("throttled", "s3", now_ns() / NS, limiter.rate,
                                            limiter.state().measured_rate, None)  # fmt: skip


def test_a_retry_tells_its_listeners_what_its_hooks_hear(clock: FakeClock) -> None:
    hooked: list[brace.RetryEvent] = []
    heard: list[brace.RetryEvent] = []
    retry = brace.Retry(name="fetch", on=OSError, attempts=2, backoff=brace.Backoff.constant(delay=1.0),
                        before_sleep=hooked.append, on_retry=hooked.append, on_giveup=hooked.append)  # fmt: skip
    retry.add_listener(heard.append)

    def failing() -> None:
        raise OSError("down")

    with brace.testing.fake_clock(), pytest.raises(OSError):
        retry.call(failing)
    assert [event.kind for event in heard] == ["sleep", "retry", "give_up"]
    assert heard == hooked
    assert all(event.name == "fetch" for event in heard)
    assert (heard[0].elapsed, heard[1].elapsed) == (0.0, 1.0)  # the sleep, on the fake clock (exact ns)


def test_a_policy_listener_hears_every_stage(clock: FakeClock) -> None:
    limiter = brace.RateLimiter(name="limit", rate=1, burst=1, max_wait=0)
    breaker = brace.CircuitBreaker(name="breaker")
    policy = brace.Policy(name="p", breaker=breaker, limiter=limiter)
    seen: list[Any] = []
    policy.add_listener(seen.append, kinds=("rejected", "state_transition"))
    assert policy.call(lambda: 1) == 1
    with pytest.raises(brace.RateLimited):
        policy.call(lambda: 1)
    breaker.force_open()
    assert [(event.kind, event.name) for event in seen] == [("rejected", "limit"), ("state_transition", "breaker")]
    policy.remove_listener(seen.append)
    with pytest.raises(ValueError, match="not added"):
        policy.remove_listener(seen.append)
    with pytest.raises(ValueError, match="kinds must be among"):
        policy.add_listener(seen.append, kinds="sleep")  # no retry in this policy


@pytest.mark.parametrize("asynchronous", [False, True])
def test_a_recovery_listener_gets_only_its_kinds_first_tries_included(clock: FakeClock, asynchronous: bool) -> None:
    recovery = brace.Recovery(name="sync", dead_letters=brace.MemoryDeadLetters(),
                              escalation=brace.EscalationPolicy(handlers=[]))  # fmt: skip
    attempts: list[brace.RecoveryEvent] = []
    dead: list[brace.RecoveryEvent] = []
    everything: list[brace.RecoveryEvent] = []
    recovery.add_listener(attempts.append, kinds="attempt")
    recovery.add_listener(dead.append, kinds=("dead_letter",))
    recovery.add_listener(everything.append)

    def fine() -> int:
        return 1

    def broken() -> int:
        raise ValueError("not retryable")

    async def fine_async() -> int:
        return 1

    if asynchronous:
        assert asyncio.run(recovery.call_async(fine_async)) == 1
    else:
        assert recovery(fine)() == 1  # the compiled first attempt
    with pytest.raises(brace.RecoveryFailed):
        recovery.call(broken)
    assert [(event.kind, event.outcome) for event in attempts] == [("attempt", "success"), ("attempt", "failure")]
    assert [event.kind for event in dead] == ["dead_letter"]
    assert {event.kind for event in everything} >= {"attempt", "dead_letter", "escalation"}
    assert all(event.name == event.operation == "sync" for event in everything)
    recovery.remove_listener(attempts.append)
    assert recovery(fine)() == 1
    assert len(attempts) == 2


@pytest.mark.parametrize("asynchronous", [False, True])
def test_a_fallback_tells_what_it_served_and_when_it_could_not(clock: FakeClock, asynchronous: bool) -> None:
    def missing(*args: object) -> object:
        raise LookupError("no replica")

    fallback = brace.Fallback(missing, brace.Fallback.value("spare", name="spare"), name="reads")
    empty = brace.Fallback(missing, name="nothing")
    seen: list[brace.FallbackEvent] = []
    fallback.add_listener(seen.append)
    empty.add_listener(seen.append, kinds="failed")

    def broken() -> str:
        raise ConnectionError("down")

    async def broken_async() -> str:
        raise ConnectionError("down")

    if asynchronous:
        served = asyncio.run(fallback.call_async(broken_async))
        with pytest.raises(brace.FallbackFailed):
            asyncio.run(empty.call_async(broken_async))
    else:
        served = fallback.call(broken)
        with pytest.raises(brace.FallbackFailed):
            empty.call(broken)
    assert isinstance(served, brace.Degraded) and served.value == "spare"
    assert [(event.kind, event.name, event.source) for event in seen] == [
        ("served", "reads", "fallback:spare"), ("failed", "nothing", None)]
    assert all(isinstance(event.error, ConnectionError) and event.at == now_ns() / NS for event in seen)
    assert seen[0].failures[0].endswith("missing: LookupError: no replica")
