"""The listeners of one primitive, the same for every primitive.

Every primitive (limiter, breaker, bulkhead, retry, budget, Policy, Recovery,
Fallback) has `add_listener(listener, kinds=...)` and `remove_listener(listener)`,
and every event it emits is a NamedTuple whose first fields are `kind` (what
happened), `name` (the primitive's name, or None) and `at` (seconds on brace's
clock). This module holds that contract once: which kinds an object emits, who
listens to which, and delivery that never raises into the call being observed.

The entries are an immutable tuple replaced on each change, so that emitting
(on any thread) never takes a lock and never sees a half-made list.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Callable, Generic, TypeVar, cast

from brace._logger import logger
from brace._safe import name_of, safe_repr

__all__ = ["Listeners", "Observable", "checked_kinds"]

E = TypeVar("E")


class Listeners(Generic[E]):
    """Who listens to which kinds of one object's events.

    Args:
        owner: How the owner is named in a failing listener's log line
            ("breaker 'payments'").
        kinds: Every kind of event the owner emits.
    """

    __slots__ = ("_owner", "_kinds", "_entries", "_wanted")

    def __init__(self, owner: str, kinds: Iterable[str]) -> None:
        self._owner = owner
        self._kinds = frozenset(kinds)
        self._entries: tuple[tuple[Callable[[E], object], frozenset[str]], ...] = ()
        self._wanted: frozenset[str] = frozenset()

    def add(self, listener: Callable[[E], object], kinds: Iterable[str] | str | None = None) -> None:
        """Calls `listener(event)` for every event of `kinds` (default: every kind).

        Raises:
            TypeError: listener is not callable, or kinds is not an iterable of str.
            ValueError: kinds names a kind this object never emits, or none at all.
        """
        if not callable(listener):
            raise TypeError(f"listener must be callable, got {type(listener).__name__}")
        wanted = self._kinds if kinds is None else checked_kinds(kinds, self._kinds)
        self._entries = (*self._entries, (listener, wanted))
        self._wanted = self._wanted | wanted

    def remove(self, listener: Callable[[E], object]) -> None:
        """Stops calling listener (its first registration). ValueError if it was not added."""
        for index, (known, _) in enumerate(self._entries):
            if known == listener:
                self._entries = self._entries[:index] + self._entries[index + 1 :]
                self._wanted = frozenset().union(*(kinds for _, kinds in self._entries))
                return
        raise ValueError(f"listener {safe_repr(listener)} was not added to {self._owner}")

    def wants(self, kind: str) -> bool:
        """Whether some listener wants events of this kind (so that building one is worth it)."""
        return kind in self._wanted

    def __bool__(self) -> bool:
        return bool(self._entries)

    def emit(self, event: E, kind: str) -> None:
        """Delivers event (of `kind`) to each listener that wants it; a failing listener is logged."""
        for listener, kinds in self._entries:
            if kind in kinds:
                try:
                    listener(event)
                except Exception:
                    logger().exception("brace: a listener (%s) of %s failed on a %r event",
                                       name_of(listener), self._owner, kind)  # fmt: skip


def checked_kinds(kinds: object, accepted: Iterable[str]) -> frozenset[str]:
    """The kinds an add_listener asked for, checked against those its object emits.

    Raises:
        TypeError: kinds is not a str or an iterable of them.
        ValueError: kinds names none, or one outside `accepted`.
    """
    items = (kinds,) if isinstance(kinds, str) else kinds
    try:
        wanted: frozenset[str] = frozenset(cast("Iterable[str]", items))
    except TypeError:
        raise TypeError(f"kinds must be an iterable of str or None, got {type(kinds).__name__}") from None
    known = frozenset(accepted)
    shown = ", ".join(repr(kind) for kind in sorted(known))
    if not wanted:
        raise ValueError(f"kinds must name at least one of {shown} (or be None for all)")
    strange = sorted(safe_repr(kind) for kind in wanted - known)
    if strange:
        raise ValueError(f"kinds must be among {shown}, got {', '.join(strange)}")
    return wanted


class Observable(Generic[E]):
    """add_listener / remove_listener, written once for every primitive that keeps its
    listeners in `self._listeners`; `_listeners_changed()` lets one react (a compiled
    fast path that must now call into Python, or may stop doing so)."""

    __slots__ = ()

    _listeners: Listeners[E]

    def add_listener(self, listener: Callable[[E], object], *, kinds: Iterable[str] | str | None = None) -> None:
        """Calls `listener(event)` for every event of the given kinds (default: all; see
        `event_kinds`). A listener runs in the thread of the call it observes; an exception
        in one is logged to the "brace" logger, never raised into the call.

        Raises:
            TypeError: listener is not callable, or kinds is not an iterable of str.
            ValueError: kinds names a kind this object never emits.
        """
        self._listeners.add(listener, kinds)
        self._listeners_changed()

    def remove_listener(self, listener: Callable[[E], object]) -> None:
        """Stops calling `listener` (its first registration). ValueError if it was not added."""
        self._listeners.remove(listener)
        self._listeners_changed()

    def _listeners_changed(self) -> None:
        """Called after each add or remove; nothing by default."""
