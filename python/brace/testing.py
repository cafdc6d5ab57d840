"""Test helpers for code that uses brace: a fake clock and reproducible jitter."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from brace import _config
from brace.deadletter import MemoryDeadLetters, set_default_store
from brace._core import (
    clock_advance,
    clock_advance_to,
    clock_freeze,
    clock_is_frozen,
    clock_thaw,
    now_ns,
    rng_seed,
)

__all__ = ["FakeClock", "dead_letters_in_memory", "fake_clock", "seed"]

_NS = 1_000_000_000


class FakeClock:
    """The handle `fake_clock()` yields: reads and moves brace's frozen clock."""

    def now(self) -> float:
        """brace's current time in seconds (monotonic; only differences matter)."""
        return now_ns() / _NS

    def advance(self, duration: float | timedelta) -> None:
        """Moves the clock forward by `duration` (seconds >= 0 or a timedelta)."""
        seconds = _config.duration(duration, "duration")
        assert seconds is not None
        clock_advance(round(seconds * _NS))

    def advance_to(self, when: float) -> None:
        """Moves the clock forward to `when` (seconds, as `now()` reads); never back."""
        seconds = _config.duration(when, "when")
        assert seconds is not None
        clock_advance_to(round(seconds * _NS))


@contextmanager
def fake_clock() -> Iterator[FakeClock]:
    """Freezes brace's clock for the duration of the block.

    Inside it every brace primitive reads the frozen time, and every sleep
    brace makes (sync or async, e.g. `RateLimiter.acquire`) advances the clock
    to its deadline instead of sleeping. The clock starts at the real time of
    entry and moves only through the handle or brace's own sleeps. It is
    process-wide: every thread sees it.

    Raises:
        RuntimeError: When a fake clock is already active.
    """
    if clock_is_frozen():
        raise RuntimeError("brace.testing.fake_clock() is already active; it does not nest")
    clock_freeze(now_ns())
    try:
        yield FakeClock()
    finally:
        clock_thaw()


def seed(value: int) -> None:
    """Makes brace's jitter reproducible: the same seed gives the same draws.

    Each thread draws from its own stream, derived from the seed and the order
    in which threads first draw after seeding; a single-threaded run is fully
    reproducible.

    Args:
        value: An int from 0 to 2**64 - 1.
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"value must be an int from 0 to 2**64 - 1, got {type(value).__name__}")
    if not 0 <= value < 1 << 64:
        raise ValueError(f"value must be an int from 0 to 2**64 - 1, got {value}")
    rng_seed(value)


@contextmanager
def dead_letters_in_memory() -> Iterator[MemoryDeadLetters]:
    """Makes the process's default dead-letter store a fresh in-memory one for the block.

    A brace.Recovery given no `dead_letters` store writes to an SQLite file
    (brace.deadletter.default_store()); in tests, keep them in memory and
    look at them through the store this yields. The previous store is back
    after the block.
    """
    store = MemoryDeadLetters()
    previous = set_default_store(store)
    try:
        yield store
    finally:
        set_default_store(previous)
