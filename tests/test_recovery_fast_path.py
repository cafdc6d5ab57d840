"""brace.Recovery's compiled first attempt: a lean success only counted, and every promise kept
when a Recovery records more (listeners, write-ahead, a feature, a cache, replays)."""

from __future__ import annotations

from typing import Any

import pytest

import brace
from brace import Fallback, MemorySink, Recovery, RecoveryLog


def quiet(**settings: Any) -> Recovery:
    return Recovery(escalation=brace.EscalationPolicy(), dead_letters=brace.MemoryDeadLetters(), **settings)


@pytest.mark.parametrize("result", [None, 1, "text", 1.5, True, (1,), [1], {"a": 1}, b"x", {1}, frozenset()])
def test_a_lean_first_try_success_is_counted_in_the_stats(result: object) -> None:
    recovery = quiet()
    returns = recovery(lambda: result)
    assert [returns() for _ in range(3)] == [result] * 3
    stats = recovery.stats()
    assert (stats.calls, stats.first_try, stats.failed, stats.attempts_made) == (3, 3, 0, 3)


class Response:
    """A returned value the classifier looks at: an HTTP response with an error status."""

    status_code = 503
    headers: dict[str, str] = {}


def test_a_result_that_is_not_plain_is_still_checked_for_a_failure() -> None:
    recovery = quiet()
    calls = []

    @recovery
    def fetch() -> Any:
        calls.append(1)
        return Response() if len(calls) == 1 else "ok"

    assert fetch() == "ok"
    stats = recovery.stats()
    assert (stats.calls, stats.first_try, stats.recovered) == (1, 0, 1)


@pytest.mark.parametrize("recorder", ["listener", "write_ahead", "cache", "feature"])
def test_a_recovery_that_records_more_records_every_first_try(recorder: str) -> None:
    sink = MemorySink()
    store = brace.MemoryDeadLetters()
    settings: dict[str, Any] = {
        "listener": {},
        "write_ahead": {"write_ahead": True},
        "cache": {"fallback": Fallback(Fallback.cached(max_age=60))},
        "feature": {"feature": "fast-path-test"},
    }[recorder]
    recovery = Recovery(escalation=brace.EscalationPolicy(), dead_letters=store, **settings)
    recovery.add_listener(RecoveryLog(sink))
    double = recovery(lambda x: 2 * x)
    assert double(4) == 8
    kinds = [event.kind for event in sink.events()]
    assert kinds == (["attempt_started", "attempt"] if recorder == "write_ahead" else ["attempt"])
    assert sink.events()[-1].correlation_id is not None
    assert recovery.stats().first_try == 1
    if recorder == "write_ahead":
        assert store.in_flight() == []  # the outbox entry was settled


def test_a_listener_removed_makes_the_recovery_lean_again_and_the_counts_add_up() -> None:
    sink = MemorySink()
    log = RecoveryLog(sink)
    recovery = quiet()
    recovery.add_listener(log)
    same = recovery(lambda x: x)
    same(1)
    recovery.remove_listener(log)
    same(2)
    assert len(sink.events()) == 1
    assert recovery.stats().first_try == 2


def test_the_operation_sees_the_correlation_id_its_events_carry() -> None:
    sink = MemorySink()
    recovery = quiet()
    recovery.add_listener(RecoveryLog(sink))
    seen = recovery(lambda: brace.correlation_id())()
    assert seen is not None and sink.events()[0].correlation_id == seen
    with brace.correlation("outer"):
        assert recovery(lambda: brace.correlation_id())() == "outer"


def test_successes_while_replaying_go_to_the_replay_books() -> None:
    recovery = quiet()
    same = recovery(lambda x: x)
    with Recovery.replaying():
        same(1)
    same(2)
    assert (recovery.stats().first_try, recovery.replay_stats().first_try) == (1, 1)


def test_a_decorated_method_binds_like_a_function() -> None:
    recovery = quiet()

    class Client:
        def __init__(self, base: int) -> None:
            self.base = base

        @recovery
        def add(self, x: int) -> int:
            return self.base + x

    assert Client(10).add(5) == 15
    assert Client.add.__name__ == "add" and Client.add.__wrapped__ is not None
    assert Client.add.guarded_by is recovery


@pytest.mark.parametrize("listened", [False, True])
def test_positional_and_keyword_arguments_reach_every_attempt(listened: bool) -> None:
    recovery = quiet()
    if listened:
        recovery.add_listener(RecoveryLog(MemorySink()))
    seen: list[tuple[int, int, int]] = []

    @recovery
    def add(a: int, b: int, *, c: int = 0) -> int:
        seen.append((a, b, c))
        if len(seen) == 2:  # the second call fails once: its retry gets the same arguments
            raise ConnectionResetError("reset")
        return a + b + c

    assert add(1, 2) == 3
    assert add(1, b=2, c=3) == 6
    assert seen == [(1, 2, 0), (1, 2, 3), (1, 2, 3)]
    assert recovery.stats().recovered == 1


@pytest.mark.parametrize("listened", [False, True])
def test_an_exception_that_is_not_an_exception_passes_through(listened: bool) -> None:
    recovery = quiet()
    if listened:
        recovery.add_listener(RecoveryLog(MemorySink()))

    @recovery
    def interrupted() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        interrupted()
    assert brace.correlation_id() is None  # the call's own id was reset


def test_a_listened_first_try_record_is_the_event_the_steps_make() -> None:
    fast, steps = MemorySink(), MemorySink()
    recovery = quiet(name="op")
    recovery.add_listener(RecoveryLog(fast))
    slow = quiet(name="op", write_ahead=True, read_only=True)  # every call through the steps
    slow.add_listener(RecoveryLog(steps))
    with brace.testing.fake_clock(), brace.correlation("job"):
        recovery(lambda: 1)()
        slow(lambda: 1)()
    assert fast.events() == [each for each in steps.events() if each.kind == "attempt"]
