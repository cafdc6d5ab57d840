"""Replay: dead letters run again, directly or through a brace.Recovery.

It sits above both the engine, which puts letters in a store when it gives up
on a call, and the stores, which it reads a page at a time and settles.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, NamedTuple

from brace import _config
from brace._safe import describe, safe_repr
from brace.classify import DEFAULT_CLASSIFIER
from brace.recovery._engine import Recovery
from brace.recovery._served import Degraded
from brace.recovery._log import correlation
from brace.recovery.deadletters import DeadLetter, DeadLetterStore
from brace.recovery.deadletters._store import PAGE, PageReader

__all__ = ["ReplayReport", "replay", "replay_async"]

_log = logging.getLogger("brace")


class ReplayReport(NamedTuple):
    """What one replay did: the ids of the letters in each outcome, oldest first.

    Attributes:
        delivered: Replayed successfully: now "delivered".
        still_dead: Replayed and failed again (the error is their note).
        skipped_unreplayable: Not run: some argument was stored as its repr.
        missing_operation: Not run: `operations` has no entry for their operation
            (booked as a failed replay saying so).
    """

    delivered: tuple[str, ...]
    still_dead: tuple[str, ...]
    skipped_unreplayable: tuple[str, ...]
    missing_operation: tuple[str, ...]

    def counts(self) -> dict[str, int]:
        """How many letters had each outcome."""
        return {field: len(getattr(self, field)) for field in self._fields}

    def __str__(self) -> str:
        return ", ".join(f"{field.replace('_', ' ')}: {number}" for field, number in self.counts().items())


class _Result:
    """What a replayed call returned, set by the block `_Replay.running` runs."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value: object = None


class _Replay:
    """The letters of one replay, and the outcomes booked so far."""

    def __init__(self, store: object, operations: object, recovery: object, limit: object) -> None:
        if not isinstance(store, DeadLetterStore):
            raise TypeError(f"store must be a brace.DeadLetterStore, got {type(store).__name__}")
        if not isinstance(operations, Mapping):
            raise TypeError(f"operations must be a mapping of operation names to callables, "
                            f"got {type(operations).__name__}")  # fmt: skip
        if recovery is not None and not isinstance(recovery, Recovery):
            raise TypeError(f"recovery must be a brace.Recovery or None, got {type(recovery).__name__}")
        self.store = store
        # While a letter runs, no Recovery dead-letters its call again - the one
        # given here, or one inside the operation itself: the letter is still in the store.
        self.replaying = Recovery.replaying
        self.operations: Mapping[str, Callable[..., Any]] = operations
        self.limit = None if limit is None else _config.count(limit, "limit")
        self.outcomes: dict[str, list[str]] = {field: [] for field in ReplayReport._fields}

    def due(self) -> Iterator[tuple[DeadLetter, Callable[..., Any]]]:
        """The letters to run (oldest first, at most limit) with their operations,
        read from the store a page at a time; books those that cannot be run."""
        pages = PageReader(self.store, "dead")
        taken = 0
        while self.limit is None or taken < self.limit:
            # A page no larger than what is left to run: replay(limit=10) reads about 10 letters.
            page = pages.read(PAGE if self.limit is None else min(PAGE, self.limit - taken))
            if not page:
                return
            for letter in page:
                if self.limit is not None and taken >= self.limit:
                    return
                if not letter.replayable:
                    self.outcomes["skipped_unreplayable"].append(letter.id)
                    continue
                fn = self.operations.get(letter.operation)
                if not callable(fn):  # absent (None), or not something to call
                    self._book(letter, f"no operation named {letter.operation!r} among those given to replay")
                    self.outcomes["missing_operation"].append(letter.id)
                    continue
                taken += 1
                yield letter, fn

    @contextmanager
    def running(self, letter: DeadLetter) -> Iterator[_Result]:
        """Runs the block as the letter's call - under its correlation id, not
        dead-lettered again - and books its outcome: the block sets the result,
        or raises the error (an Exception is booked, not raised)."""
        outcome = _Result()
        try:
            with correlation(letter.correlation_id or None), self.replaying():
                yield outcome
        except Exception as error:
            self.failed(letter, error)
        else:
            self.succeeded(letter, outcome.value)

    def succeeded(self, letter: DeadLetter, result: object) -> None:
        if isinstance(result, Degraded):
            # A stand-in value is not the operation's: the call has still not been made.
            self.failed(letter, f"degraded: served by {result.source} instead of the operation"
                                + (f" ({describe(result.error)})" if result.error is not None else ""))  # fmt: skip
        elif DEFAULT_CLASSIFIER.is_failure(result):
            self.failed(letter, f"returned a failed response: {safe_repr(result)}")
        elif self._book(letter, None):
            self.outcomes["delivered"].append(letter.id)

    def failed(self, letter: DeadLetter, error: object) -> None:
        if self._book(letter, error):
            self.outcomes["still_dead"].append(letter.id)

    def _book(self, letter: DeadLetter, error: object) -> bool:
        """Records the outcome in the store (delivered when error is None); False
        if someone settled the letter while it ran."""
        try:
            if error is None:
                self.store.mark_delivered(letter.id, by="replay")
            else:
                self.store.record_failed_replay(letter.id, error)
        except (KeyError, ValueError) as settled:
            _log.warning("brace: dead letter %s of %r changed during its replay: %s", letter.id, letter.operation,
                         settled)  # fmt: skip
            return False
        return True

    def report(self) -> ReplayReport:
        return ReplayReport(**{field: tuple(ids) for field, ids in self.outcomes.items()})


def replay(
    store: DeadLetterStore,
    operations: Mapping[str, Callable[..., Any]],
    *,
    recovery: Recovery | None = None,
    limit: int | None = None,
) -> ReplayReport:
    """Runs the dead letters again, oldest first; marks those that succeed delivered.

    Each dead, replayable letter's operation is looked up by name in
    `operations` and called with the letter's arguments - directly, or
    through `recovery` (its retries, healing and fallback apply). No
    Recovery dead-letters a replayed call again (brace.Recovery.replaying):
    a failed replay stays the one letter it was. A value is a success: the letter is
    delivered. An exception, a brace.Degraded, or a failed HTTP response (as
    brace's classifier sees it) is a failed replay: the letter stays dead
    with the error as its note. Letters with unserialisable arguments are
    skipped; letters whose operation is missing stay dead with a note saying
    so. Nothing is deleted, so the store keeps accounting for every letter.
    Each call runs under the letter's correlation id (a new one if it had
    none), so its events and logs join those of the call that failed.

    The store is read a page at a time, as the letters run: a replay's
    memory and reading time follow the letters it runs, not the store's
    size. A letter put while the replay runs may be run by it too (letters
    put during the replay come after those before it).

    Run one replay per store at a time: two at once may deliver a letter twice.

    Args:
        store: The dead letters.
        operations: Operation name -> the callable to run for it.
        recovery: A brace.Recovery to run each call through, or None to call directly.
        limit: At most this many letters are run (>= 1), or None for all.

    Returns:
        A ReplayReport of the ids in each outcome.

    Raises:
        TypeError, ValueError: For arguments outside the above. (What the
            operations raise is booked, not raised; BaseExceptions such as
            KeyboardInterrupt stop the replay, the letters run so far booked.)
    """
    run = _Replay(store, operations, recovery, limit)
    for letter, fn in run.due():
        with run.running(letter) as outcome:
            outcome.value = fn(*letter.args, **letter.kwargs) if recovery is None else recovery.call(
                fn, *letter.args, **letter.kwargs)  # fmt: skip
    return run.report()


async def replay_async(
    store: DeadLetterStore,
    operations: Mapping[str, Callable[..., Any]],
    *,
    recovery: Recovery | None = None,
    limit: int | None = None,
) -> ReplayReport:
    """`replay` for coroutine operations (plain callables work too: a result
    that is awaitable is awaited). The store is used synchronously: each of
    its calls is one short local transaction."""
    run = _Replay(store, operations, recovery, limit)
    for letter, fn in run.due():
        with run.running(letter) as outcome:
            if recovery is None:
                result = fn(*letter.args, **letter.kwargs)
                outcome.value = await result if inspect.isawaitable(result) else result
            else:
                outcome.value = await recovery.call_async(_awaiting(fn), *letter.args, **letter.kwargs)
    return run.report()


def _awaiting(fn: Callable[..., Any]) -> Callable[..., Awaitable[Any]]:
    """fn as a coroutine function, for Recovery.call_async, which awaits what it calls."""
    if inspect.iscoroutinefunction(fn):
        return fn

    async def call(*args: Any, **kwargs: Any) -> Any:
        result = fn(*args, **kwargs)
        return await result if inspect.isawaitable(result) else result

    call.__qualname__ = getattr(fn, "__qualname__", call.__qualname__)
    return call
