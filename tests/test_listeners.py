"""brace._listeners.Listeners: the listener contract every primitive shares."""

from __future__ import annotations

import logging
import threading
from typing import NamedTuple

import pytest

from brace._listeners import Listeners


class Event(NamedTuple):
    kind: str
    name: str | None
    at: float


def listeners() -> Listeners[Event]:
    return Listeners("thing 'x'", ("opened", "closed"))


def test_a_listener_gets_the_kinds_it_asked_for() -> None:
    box = listeners()
    every: list[Event] = []
    opened: list[Event] = []
    box.add(every.append)
    box.add(opened.append, kinds=("opened",))
    for kind in ("opened", "closed", "opened"):
        box.emit(Event(kind, "x", 0.0), kind)
    assert [event.kind for event in every] == ["opened", "closed", "opened"]
    assert [event.kind for event in opened] == ["opened", "opened"]


def test_wants_follows_adds_and_removes() -> None:
    box = listeners()
    assert not box and not box.wants("opened")
    seen: list[Event] = []
    box.add(seen.append, kinds="closed")
    assert box and box.wants("closed") and not box.wants("opened")
    box.remove(seen.append)
    assert not box and not box.wants("closed")


def test_a_failing_listener_is_logged_and_the_others_still_run(caplog: pytest.LogCaptureFixture) -> None:
    box = listeners()
    seen: list[Event] = []

    def broken(event: Event) -> None:
        raise RuntimeError("listener bug")

    box.add(broken)
    box.add(seen.append)
    with caplog.at_level(logging.ERROR, logger="brace"):
        box.emit(Event("opened", "x", 1.0), "opened")
    assert len(seen) == 1
    assert "a listener (test_a_failing_listener_is_logged_and_the_others_still_run.<locals>.broken) of thing 'x' " \
           "failed on a 'opened' event" in caplog.text  # fmt: skip


@pytest.mark.parametrize(
    ("listener", "kinds", "error", "message"),
    [
        (42, None, TypeError, "listener must be callable, got int"),
        (print, 7, TypeError, "kinds must be an iterable of str or None, got int"),
        (print, (), ValueError, "kinds must name at least one of 'closed', 'opened'"),
        (print, ("opened", "exploded"), ValueError, "kinds must be among 'closed', 'opened', got 'exploded'"),
    ],
)
def test_bad_registrations_say_what_is_accepted(listener: object, kinds: object, error: type[Exception],
                                                message: str) -> None:  # fmt: skip
    with pytest.raises(error, match=message):
        listeners().add(listener, kinds)  # type: ignore[arg-type]


def test_removing_an_unknown_listener_says_so() -> None:
    with pytest.raises(ValueError, match="was not added to thing 'x'"):
        listeners().remove(print)


def test_emitting_while_another_thread_adds_and_removes_never_fails() -> None:
    box = listeners()
    stop = threading.Event()
    counted: list[int] = []

    def churn() -> None:
        while not stop.is_set():
            box.add(counted.append)  # type: ignore[arg-type]
            box.remove(counted.append)  # type: ignore[arg-type]

    worker = threading.Thread(target=churn)
    worker.start()
    try:
        for _ in range(20_000):
            box.emit(Event("opened", "x", 0.0), "opened")
    finally:
        stop.set()
        worker.join(timeout=60)
    assert not worker.is_alive()
