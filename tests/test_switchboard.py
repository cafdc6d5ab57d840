"""Switchboard behaviour: toggles, events, following a breaker, threads, bad input."""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from typing import Any

import pytest

import brace
from brace.switchboard import Switchboard, ToggleEvent, switches
from brace.testing import FakeClock


def recorder(board: Switchboard) -> list[ToggleEvent]:
    events: list[ToggleEvent] = []
    board.add_listener(events.append)
    return events


def test_unknown_features_are_on_and_declared_ones_take_their_default() -> None:
    board = Switchboard()
    assert board.is_on("search")
    board.declare("beta", default=False, description="the new editor")
    board.declare("search")
    assert (board.is_on("beta"), board.is_on("search")) == (False, True)
    assert board.description("beta") == "the new editor"
    assert board.description("unknown") == ""
    assert board.snapshot() == {"beta": False, "search": True}


def test_declaring_never_flips_a_known_feature() -> None:
    board = Switchboard()
    events = recorder(board)
    board.turn_off("search", reason="index rebuild")
    board.declare("search", default=True, description="full-text search")
    assert not board.is_on("search")
    assert board.description("search") == "full-text search"
    assert [e.on for e in events] == [False]


@pytest.mark.parametrize(
    ("flip", "on"),
    [
        (lambda b: b.turn_off("search", reason="slow", by="ops"), False),
        (lambda b: b.set("search", False, reason="slow", by="ops"), False),
        (lambda b: b.turn_on("search", reason="slow", by="ops"), True),
        (lambda b: b.set("search", True, reason="slow", by="ops"), True),
    ],
    ids=["turn_off", "set off", "turn_on", "set on"],
)
def test_every_flip_is_one_event_and_a_non_change_is_none(
    flip: Callable[[Switchboard], bool], on: bool, clock: FakeClock
) -> None:
    board = Switchboard()
    if on:
        board.declare("search", default=False)
    events = recorder(board)
    assert flip(board) is True
    assert flip(board) is False  # already in that state: no event
    assert events == [ToggleEvent("search", on, not on, "slow", "ops", clock.now())]
    assert board.is_on("search") is on


def test_events_carry_who_why_and_when(clock: FakeClock) -> None:
    board = Switchboard()
    events = recorder(board)
    start = clock.now()
    board.turn_off("search", reason="index rebuild")
    clock.advance(90)
    board.turn_on("search", reason="rebuilt", by="deploy-bot")
    first, second = events
    assert (first.by, first.reason, first.previous) == ("human", "index rebuild", True)
    assert (second.by, second.reason, second.previous) == ("deploy-bot", "rebuilt", False)
    assert (first.at, second.at) == (start, clock.now())  # brace's clock at each flip
    # Float seconds since boot differ by 90 only to within their rounding (see conftest.awkward_time_ns).
    assert second.at - first.at == pytest.approx(90, abs=1e-6)


def test_degraded_while_any_feature_on_by_default_is_off() -> None:
    board = Switchboard()
    assert not board.degraded
    board.turn_off("a", reason="r")
    board.turn_off("b", reason="r")
    board.turn_on("a", reason="r")
    assert board.degraded
    board.turn_on("b", reason="r")
    assert not board.degraded
    board.declare("beta", default=False)
    assert not board.degraded  # off as declared is not a degradation
    assert repr(board) == "Switchboard(features=3, off=['beta'])"
    board.turn_on("beta", reason="trial")
    board.turn_off("beta", reason="trial over")
    assert not board.degraded
    board.declare("search", default=True)
    board.turn_off("search", reason="index rebuild")
    assert board.degraded


def test_a_failing_listener_is_logged_and_the_others_still_run(caplog: pytest.LogCaptureFixture) -> None:
    board = Switchboard()

    def broken(event: ToggleEvent) -> None:
        raise RuntimeError("listener bug")

    board.add_listener(broken)
    events = recorder(board)
    with caplog.at_level(logging.ERROR, logger="brace"):
        assert board.turn_off("search", reason="r")
    assert len(events) == 1 and not board.is_on("search")
    assert "a switchboard listener failed" in caplog.text and "listener bug" in caplog.text


def test_removed_listeners_hear_nothing_more() -> None:
    board = Switchboard()
    events = recorder(board)
    board.turn_off("a", reason="r")
    board.remove_listener(events.append)
    board.turn_on("a", reason="r")
    assert len(events) == 1
    with pytest.raises(ValueError, match="listener was not added"):
        board.remove_listener(events.append)


def test_a_listener_may_flip_and_everyone_sees_the_flips_in_order() -> None:
    board = Switchboard()

    def cascade(event: ToggleEvent) -> None:
        if event.name == "db" and not event.on:
            board.turn_off("reports", reason="db is off", by="cascade")

    board.add_listener(cascade)
    events = recorder(board)
    board.turn_off("db", reason="maintenance")
    assert [(e.name, e.on, e.by) for e in events] == [("db", False, "human"), ("reports", False, "cascade")]
    assert board.snapshot() == {"db": False, "reports": False}


def test_a_base_exception_in_a_listener_leaves_the_board_usable() -> None:
    board = Switchboard()

    def interrupt(event: ToggleEvent) -> None:
        if event.name == "a":
            board.turn_off("queued", reason="r")
            raise KeyboardInterrupt

    board.add_listener(interrupt)
    with pytest.raises(KeyboardInterrupt):
        board.turn_off("a", reason="r")
    events = recorder(board)
    board.turn_off("b", reason="r")
    assert [e.name for e in events] == ["b"]  # nothing stale delivered late


def test_threads_flipping_concurrently_get_one_event_per_flip() -> None:
    board = Switchboard()
    events = recorder(board)
    flips = [0] * 8
    barrier = threading.Barrier(8)

    def worker(n: int) -> None:
        barrier.wait()
        for i in range(2000):
            if board.set(f"f{i % 3}", (i + n) % 2 == 0, reason=f"w{n}"):
                flips[n] += 1

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(events) == sum(flips) > 0
    final = board.snapshot()
    for name in ("f0", "f1", "f2"):
        mine = [e for e in events if e.name == name]
        # Delivered in flip order: each event undoes the one before, and the last is the state.
        assert all(e.previous is not e.on for e in mine)
        assert all(a.on is not b.on for a, b in zip(mine, mine[1:]))
        assert mine[-1].on is final[name] is board.is_on(name)
    assert board.degraded is (False in final.values())


# ---- following a circuit breaker -------------------------------------------------------


def fail() -> None:
    raise ConnectionError("down")


def test_a_breaker_opening_turns_the_feature_off_and_closing_on(clock: FakeClock) -> None:
    board = Switchboard()
    events = recorder(board)
    breaker = brace.CircuitBreaker(name="payments", consecutive_failures=2, wait_in_open=10, half_open_calls=1)
    board.follow(breaker, "checkout")
    for _ in range(2):
        with pytest.raises(ConnectionError):
            breaker.call(fail)
    assert breaker.state is brace.BreakerState.OPEN
    assert not board.is_on("checkout")
    clock.advance(10)
    assert breaker.call(lambda: "probe") == "probe"  # half-open, then closed by the probe
    assert breaker.state is brace.BreakerState.CLOSED
    assert board.is_on("checkout")
    assert [(e.on, e.reason, e.by) for e in events] == [
        (False, "circuit breaker open", "breaker:payments"),
        (True, "circuit breaker closed", "breaker:payments"),
    ]


@pytest.mark.parametrize(
    ("override", "on"),
    [("force_open", False), ("close", True), ("disable", True), ("metrics_only", True), ("reset", True)],
)
def test_manual_breaker_overrides_are_followed(override: str, on: bool) -> None:
    board = Switchboard()
    breaker = brace.CircuitBreaker(name="x")
    board.follow(breaker, "feature")
    if on:
        breaker.force_open()
        assert not board.is_on("feature")
    getattr(breaker, override)()
    assert board.is_on("feature") is on


def test_half_open_keeps_the_feature_off(clock: FakeClock) -> None:
    board = Switchboard()
    breaker = brace.CircuitBreaker(name="x", consecutive_failures=1, wait_in_open=5, half_open_calls=2)
    board.follow(breaker, "feature")
    with pytest.raises(ConnectionError):
        breaker.call(fail)
    clock.advance(5)
    breaker.call(lambda: None)  # one probe of two: still half-open
    assert breaker.state is brace.BreakerState.HALF_OPEN
    assert not board.is_on("feature")


def test_following_an_open_breaker_turns_the_feature_off_at_once_a_closed_one_changes_nothing() -> None:
    board = Switchboard()
    board.turn_off("by hand", reason="r")
    board.follow(brace.CircuitBreaker(name="closed"), "by hand")
    assert not board.is_on("by hand")
    events = recorder(board)
    opened = brace.CircuitBreaker()
    opened.force_open()
    board.follow(opened, "f")
    assert not board.is_on("f")
    opened.close()
    assert board.is_on("f")
    assert [(e.name, e.on, e.reason, e.by) for e in events] == [
        ("f", False, "circuit breaker forced_open", "breaker"),  # an unnamed breaker
        ("f", True, "circuit breaker closed", "breaker"),
    ]


def test_unfollow_stops_following() -> None:
    board = Switchboard()
    breaker = brace.CircuitBreaker(name="x")
    unfollow = board.follow(breaker, "f")
    unfollow()
    breaker.force_open()
    assert board.is_on("f")


def test_the_process_wide_switchboard_is_one_object_under_every_name() -> None:
    import brace.recovery

    assert brace.switches is brace.recovery.switches is switches
    events: list[ToggleEvent] = []
    switches.add_listener(events.append)
    try:
        assert brace.switches.turn_off("test-process-wide", reason="one board")
        assert not switches.is_on("test-process-wide")
        assert [(event.name, event.on) for event in events] == [("test-process-wide", False)]
    finally:
        switches.turn_on("test-process-wide", reason="restored")
        switches.remove_listener(events.append)


# ---- bad input ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda b: b.is_on(""), ValueError, "name must be a non-empty str, got ''"),
        (lambda b: b.is_on(None), TypeError, "name must be a non-empty str, got NoneType"),
        (lambda b: b.declare(3), TypeError, "name must be a non-empty str"),
        (lambda b: b.declare("x", default=1), TypeError, "default must be a bool, got int"),
        (lambda b: b.declare("x", description=None), TypeError, "description must be a str"),
        (lambda b: b.set("x", "off", reason="r"), TypeError, "on must be a bool, got str"),
        (lambda b: b.set("", False, reason="r"), ValueError, "name must be a non-empty str"),
        (lambda b: b.turn_off("x", reason=None), TypeError, "reason must be a str, got NoneType"),
        (lambda b: b.turn_on("x", reason="r", by=""), ValueError, "by must be a non-empty str"),
        (lambda b: b.description(1), TypeError, "name must be a non-empty str"),
        (lambda b: b.add_listener("print"), TypeError, "listener must be callable, got str"),
        (lambda b: b.follow(object(), "f"), TypeError, "breaker must be a brace.CircuitBreaker, got object"),
        (lambda b: b.follow(brace.CircuitBreaker(), ""), ValueError, "feature must be a non-empty str"),
    ],
)
def test_bad_input_is_refused_naming_the_parameter(call: Callable[[Any], object], error: type[Exception],
                                                   message: str) -> None:  # fmt: skip
    board = Switchboard()
    with pytest.raises(error, match=re.escape(message)):
        call(board)
    assert board.snapshot() == {}
