"""Test helpers for code that uses brace: a fake clock and reproducible jitter."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from brace import _clock, _config
from brace._core import now_ns, rng_seed
from brace.recovery.deadletters import MemoryDeadLetters, set_default_store

__all__ = ["FakeClock", "dead_letters_in_memory", "fake_clock", "seed"]

_NS = 1_000_000_000


class FakeClock:
    """The handle `fake_clock()` yields: reads and moves brace's frozen clock."""

    def now(self) -> float:
        """brace's current time in seconds (monotonic; only differences matter)."""
        return now_ns() / _NS

    def now_ns(self) -> int:
        """brace's current time in integer nanoseconds: exact, for comparing instants."""
        return int(now_ns())

    def advance(self, duration: float | timedelta) -> None:
        """Moves the clock forward by `duration` (seconds >= 0 or a timedelta)."""
        seconds = _config.duration(duration, "duration")
        assert seconds is not None
        _clock.advance(round(seconds * _NS))

    def advance_to(self, when: float) -> None:
        """Moves the clock forward to `when` (seconds, as `now()` reads); never back."""
        seconds = _config.duration(when, "when")
        assert seconds is not None
        _clock.advance_to(round(seconds * _NS))


@contextmanager
def fake_clock(*, autojump: float | timedelta | None = 0.05) -> Iterator[FakeClock]:
    """Freezes brace's clock for the duration of the block.

    Inside it every brace primitive reads the frozen time, and nothing brace
    does waits in real time:

    - every sleep brace makes (a backoff, `RateLimiter.acquire`, sync or
      async) moves the clock to its end instead of sleeping;
    - every wait for what another thread or task does (a bulkhead slot, an
      attempt under an attempt timeout, an escalation's decision) ends when
      that happens, or when the clock reaches the wait's deadline - moved by
      `clock.advance`, or by brace's sleeps in any thread. When nothing moves
      the clock for `autojump` real seconds while such a wait is pending,
      the clock jumps to the earliest pending deadline, as the waits' own
      sleeps would.

    The clock starts at the real time of entry and is process-wide: every
    thread sees it. Blocks nest: an inner block shares the outer one's
    clock (its `autojump` is ignored) and the clock thaws when the outermost
    block ends.

    Args:
        autojump: Real seconds without a move of the clock after which a
            pending wait jumps it (default 0.05); None: waits end only when
            something happens or the clock is moved.

    Raises:
        ValueError, TypeError: For an autojump that is not None or a
            finite duration >= 0.
    """
    jump = _config.duration(autojump, "autojump", allow_none=True)
    _clock.freeze(jump)
    try:
        yield FakeClock()
    finally:
        _clock.thaw()


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
