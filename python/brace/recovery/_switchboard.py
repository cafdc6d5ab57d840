"""brace.Switchboard and brace.switches: process-wide feature toggles for degraded mode."""

from __future__ import annotations

import logging
import threading
from collections import deque
from typing import Callable, NamedTuple, cast

from brace._core import now_ns
from brace.breaker import BreakerEvent, BreakerState, CircuitBreaker
from brace._config import NS_PER_SECOND

__all__ = ["Switchboard", "ToggleEvent", "switches"]

_log = logging.getLogger("brace")

# The feature's state while a followed breaker is in each state; HALF_OPEN is
# absent: the feature stays off while the probes decide.
_FEATURE_ON = {
    BreakerState.OPEN: False,
    BreakerState.FORCED_OPEN: False,
    BreakerState.CLOSED: True,
    BreakerState.DISABLED: True,
    BreakerState.METRICS_ONLY: True,
}


class ToggleEvent(NamedTuple):
    """What a switchboard listener receives: one feature flipped.

    Attributes:
        name: The feature.
        on: Its new state.
        previous: Its state before (always `not on`: only flips are events).
        reason: Why, as given by whoever flipped it.
        by: Who flipped it: "human" by default, "breaker:<name>" for `follow`.
        at: When, in seconds on brace's clock.
    """

    name: str
    on: bool
    previous: bool
    reason: str
    by: str
    at: float


Listener = Callable[[ToggleEvent], object]


def _feature(name: object, parameter: str = "name") -> str:
    if not isinstance(name, str):
        raise TypeError(f"{parameter} must be a non-empty str, got {type(name).__name__}")
    if not name:
        raise ValueError(f"{parameter} must be a non-empty str, got ''")
    return name


def _text(value: object, parameter: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{parameter} must be a str, got {type(value).__name__}")
    return value


def _flag(value: object, parameter: str) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{parameter} must be a bool, got {type(value).__name__}")
    return value


class Switchboard:
    """Feature toggles: which features are on, who turned them off, and why.

    A feature is on unless turned off, or declared with `default=False`. Every
    flip (a change of state) is one `ToggleEvent` to the listeners; setting a
    feature to the state it has is not an event. Listeners run in the thread
    that flipped, one event at a time in the order of the flips, so the last
    event a listener saw for a feature is its state; keep them short, as
    flips wait for them. A listener may flip features itself: its flips are
    delivered after the current event. A listener that raises is logged to the
    "brace" logger, never raised.

    Thread-safe: flips take a lock; `is_on` and `degraded` read without one.
    `brace.switches` is the process-wide instance.
    """

    __slots__ = ("_lock", "_states", "_defaults", "_descriptions", "_off", "_listeners", "_pending", "_emitting")

    def __init__(self) -> None:
        # Reentrant so that a listener may flip features; see _deliver.
        self._lock = threading.RLock()
        self._states: dict[str, bool] = {}
        self._defaults: dict[str, bool] = {}
        self._descriptions: dict[str, str] = {}
        self._off = 0  # features off that are on by default: what `degraded` reads
        self._listeners: tuple[Listener, ...] = ()
        self._pending: deque[ToggleEvent] = deque()
        self._emitting = False

    def is_on(self, name: str) -> bool:
        """Whether the feature is on (an unknown feature is)."""
        return self._states.get(_feature(name), True)

    def declare(self, name: str, *, default: bool = True, description: str = "") -> None:
        """Makes a feature known, with its state until someone flips it.

        Declaring is not a flip: a feature already known keeps its state (only
        its description changes), and no event is sent.

        Args:
            name: The feature, a non-empty str.
            default: Its state until flipped.
            description: What it is, for people (see `description`).
        """
        _feature(name)
        _flag(default, "default")
        _text(description, "description")
        with self._lock:
            self._descriptions[name] = description
            if name not in self._states:
                self._states[name] = self._defaults[name] = default

    def description(self, name: str) -> str:
        """The description a feature was declared with ("" if none)."""
        return self._descriptions.get(_feature(name), "")

    def set(self, name: str, on: bool, *, reason: str, by: str = "human") -> bool:
        """Turns a feature on or off; True if that flipped it (and sent an event).

        Args:
            name: The feature, a non-empty str.
            on: The state wanted.
            reason: Why, for the event and for people reading it.
            by: Who: "human" by default.
        """
        _feature(name)
        _flag(on, "on")
        _text(reason, "reason")
        _feature(by, "by")
        with self._lock:
            previous = self._states.get(name, True)
            if previous is on:
                return False
            self._states[name] = on
            if self._defaults.setdefault(name, True):
                self._off += -1 if on else 1
            self._pending.append(ToggleEvent(name, on, previous, reason, by, now_ns() / NS_PER_SECOND))
            self._deliver()
        return True

    def turn_off(self, name: str, *, reason: str, by: str = "human") -> bool:
        """`set(name, False, ...)`: True if the feature was on."""
        return self.set(name, False, reason=reason, by=by)

    def turn_on(self, name: str, *, reason: str, by: str = "human") -> bool:
        """`set(name, True, ...)`: True if the feature was off."""
        return self.set(name, True, reason=reason, by=by)

    def snapshot(self) -> dict[str, bool]:
        """The state of every known feature (declared or flipped)."""
        with self._lock:
            return dict(self._states)

    @property
    def degraded(self) -> bool:
        """Whether any feature that is on by default is off (a feature declared
        off, and still off, is not a degradation)."""
        return self._off > 0

    def add_listener(self, listener: Listener) -> None:
        """Calls `listener(event)` on every flip from now on."""
        if not callable(listener):
            raise TypeError(f"listener must be callable, got {type(listener).__name__}")
        with self._lock:
            self._listeners = (*self._listeners, listener)

    def remove_listener(self, listener: Listener) -> None:
        """Stops calling `listener`. Raises ValueError if it was not added."""
        with self._lock:
            if listener not in self._listeners:
                raise ValueError("listener was not added to this switchboard")
            listeners = list(self._listeners)
            listeners.remove(listener)
            self._listeners = tuple(listeners)

    def follow(self, breaker: CircuitBreaker, feature: str) -> Callable[[], None]:
        """Keeps a feature in step with a circuit breaker.

        The breaker opening (OPEN, FORCED_OPEN) turns the feature off; closing
        (CLOSED, DISABLED, METRICS_ONLY) turns it on; HALF_OPEN changes
        nothing. Flips are by "breaker:<name>". A breaker open already turns
        the feature off at once; a closed one leaves it as it is (it may be
        off by hand).

        Args:
            breaker: A brace.CircuitBreaker.
            feature: The feature, a non-empty str.

        Returns:
            A function that stops following.
        """
        if not isinstance(breaker, CircuitBreaker):
            raise TypeError(f"breaker must be a brace.CircuitBreaker, got {type(breaker).__name__}")
        _feature(feature, "feature")
        by = f"breaker:{breaker.name}" if breaker.name else "breaker"

        def on_transition(event: BreakerEvent) -> None:
            state = cast(BreakerState, event.to_state)  # set on every state_transition
            on = _FEATURE_ON.get(state)
            if on is not None:
                self.set(feature, on, reason=f"circuit breaker {state.value}", by=by)

        breaker.add_listener(on_transition, kinds=("state_transition",))
        state = breaker.state
        if _FEATURE_ON.get(state) is False:
            self.set(feature, False, reason=f"circuit breaker {state.value}", by=by)

        def unfollow() -> None:
            breaker.remove_listener(on_transition)

        return unfollow

    def _deliver(self) -> None:
        """With the lock held: sends the pending events, unless this thread is sending already.

        A listener's own flips queue behind the event it is handling, so
        every listener sees the events in the order of the flips.
        """
        if self._emitting:
            return
        self._emitting = True
        try:
            while self._pending:
                event = self._pending.popleft()
                for listener in self._listeners:
                    try:
                        listener(event)
                    except Exception:
                        _log.exception("brace: a switchboard listener failed on %r", event)
        finally:
            self._emitting = False
            self._pending.clear()  # only non-empty after a BaseException in a listener

    def __repr__(self) -> str:
        off = sorted(name for name, on in self.snapshot().items() if not on)
        return f"Switchboard(features={len(self._states)}, off={off})"


switches = Switchboard()
"""The process-wide switchboard."""
