"""DeadLetterStore: what every dead-letter store does - checking, serialising, settling,
paging, compacting, the outbox - written once over a few storage methods that each store
implements (see the class's docstring)."""

from __future__ import annotations

import abc
import dataclasses
import json
import os
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import timedelta
from types import TracebackType
from typing import Any, TypeVar, cast

from brace import _config
from brace._safe import clean_text, describe, safe_repr, safe_str, type_name
from brace.classify import Category
from brace.recovery.deadletters._encoding import encode
from brace.recovery.deadletters._letter import INTERRUPTED, SETTLED, STATUSES, DeadLetter, InFlightCall, Status
from brace.recovery.deadletters._process import running, this_process

# Letters read at a time by replay, compact, dead() and all(); the most page() returns.
PAGE = 500
_MAX_PAGE = 10_000
_CATEGORY_VALUES = frozenset(category.value for category in Category)

_Store = TypeVar("_Store", bound="DeadLetterStore")


def _note(error: object) -> str:
    """A failed replay's note: the error as "Type: message", or the text given."""
    return clean_text(cast(str, error)) if issubclass(type(error), str) else describe(error)


def _category(category: object) -> str | None:
    if category is None or isinstance(category, Category):
        return None if category is None else category.value
    if isinstance(category, str) and category in _CATEGORY_VALUES:
        return category
    raise ValueError(
        f"category must be a brace.Category, one of its values ({', '.join(sorted(_CATEGORY_VALUES))}) "
        f"or None, got {safe_repr(category)}"
    )


def _name(value: object, parameter: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{parameter} must be a non-empty str, got {type(value).__name__}")
    if not value:
        raise ValueError(f"{parameter} must be a non-empty str, got ''")
    return value


class DeadLetterStore(abc.ABC):
    """Where calls that were given up on are kept, and settled.

    Every method is thread-safe. A letter is dead until it is delivered
    (`mark_delivered`, which `replay` calls) or discarded by a person
    (`discard`); settled letters are kept until a person compacts them
    (`compact`), so `counts()` adds up to the number of letters ever stored,
    less those compaction removed (and `compact` returns how many).

    The outbox holds the calls in flight: `begin` before a call goes out,
    `end` when it returned the operation's value, `put(..., outbox_id=...)`
    when it became a dead letter; `in_flight` lists them and
    `recover_interrupted` makes dead letters of those whose process ended.

    To write a store, implement `_insert`, `_find`, `_change`, `_page`,
    `_position`, `_remove`, `_begin`, `_end`, `_outbox`, `counts` and `close`;
    the base class does the serialisation and checks. `_page` and `counts`
    should cost the page and the number of statuses, not the store's size:
    `replay` and `page` rely on it.
    """

    __slots__ = ()

    def put(
        self,
        *,
        operation: str,
        args: tuple[Any, ...],
        kwargs: Mapping[str, Any],
        error: object,
        category: Category | str | None,
        correlation_id: str | None,
        attempts: int,
        served: str | None = None,
        outbox_id: str | None = None,
    ) -> DeadLetter:
        """Stores a call that was given up on, or served a stand-in value; returns its letter.

        Arguments JSON cannot hold are stored as their repr and flagged (see
        `DeadLetter.unserialisable`); nothing about the arguments makes this
        raise, whatever their repr or str do.

        Args:
            operation: The operation's name (what `replay` looks it up by), non-empty.
            args: The call's positional arguments.
            kwargs: The call's keyword arguments.
            error: The exception (or failed response) it was given up on.
            category: The failure's brace.Category (or its value), or None.
            correlation_id: The call's correlation id, or None.
            attempts: Attempts made before giving up, >= 0.
            served: The source of the brace.Degraded value the caller was served
                instead of the operation's result (Degraded.source), or None
                when the caller got an error: see `DeadLetter.served`.
            outbox_id: The id `begin` gave the call, or None. Its outbox entry
                becomes this letter (with the same id) in one transaction.

        Raises:
            KeyError: No call is in the outbox with outbox_id (it ended, was
                put already, or was recovered by `recover_interrupted`): nothing
                is stored, since the call is accounted for already.
            ValueError, TypeError: For arguments outside the above.
            sqlite3.Error: (SQLiteDeadLetters) when the database cannot be
                written; brace.Recovery logs it and lets the call's error through.
        """
        _check_call(operation, args, kwargs, correlation_id)
        _config.count(attempts, "attempts", minimum=0)
        if served is not None:
            _name(served, "served")
        if outbox_id is not None:
            _name(outbox_id, "outbox_id")
        category = _category(category)
        args_json, kwargs_json, flagged = encode(args, kwargs)
        letter = DeadLetter(
            id=uuid.uuid4().hex if outbox_id is None else outbox_id,
            operation=clean_text(operation),
            args=tuple(json.loads(args_json)),
            kwargs=json.loads(kwargs_json),
            unserialisable=flagged,
            error_type=type_name(error),
            error_message=safe_str(error),
            category=category,
            correlation_id=None if correlation_id is None else clean_text(correlation_id),
            attempts=attempts,
            created_at=time.time(),
            served=None if served is None else clean_text(served),
        )
        self._insert(letter, args_json, kwargs_json, outbox_id)
        return letter

    # -- the outbox --------------------------------------------------------------------

    def begin(self, *, operation: str, args: tuple[Any, ...], kwargs: Mapping[str, Any],
              correlation_id: str | None) -> str:  # fmt: skip
        """Writes a call about to be made to the outbox, durably, before returning its outbox id.

        Call it before the call goes out, then exactly one of `end(outbox_id)`
        (it returned the operation's value) or `put(..., outbox_id=...)` (it was
        given up on or served a stand-in). The arguments are stored as `put`
        stores them; the owner is this process (`Owner`).

        Args:
            operation, args, kwargs, correlation_id: As for `put`.

        Returns:
            The outbox id: a uuid4 hex string.

        Raises:
            ValueError, TypeError: For arguments outside those `put` takes.
            sqlite3.Error: (SQLiteDeadLetters) when the database cannot be written.
        """
        _check_call(operation, args, kwargs, correlation_id)
        args_json, kwargs_json, flagged = encode(args, kwargs)
        call = InFlightCall(id=uuid.uuid4().hex, operation=clean_text(operation), args=tuple(json.loads(args_json)),
                            kwargs=json.loads(kwargs_json), unserialisable=flagged,
                            correlation_id=None if correlation_id is None else clean_text(correlation_id),
                            started_at=time.time(), owner=this_process())  # fmt: skip
        self._begin(call, args_json, kwargs_json)
        return call.id

    def end(self, outbox_id: str) -> None:
        """Takes a call out of the outbox: it returned the operation's value.

        Raises:
            KeyError: No call is in the outbox with this id (it ended or was put
                already, or was recovered by `recover_interrupted`).
        """
        if not self._end(outbox_id):
            raise not_in_flight(outbox_id)

    def in_flight(self) -> list[InFlightCall]:
        """The calls in the outbox, of every process, in the order they were begun."""
        return [call for call, _, _ in self._outbox()]

    def recover_interrupted(self) -> list[DeadLetter]:
        """Turns the calls in the outbox whose process has ended into dead letters; returns them.

        Run it when a process starts (or from time to time): a process killed
        during a call leaves the call in the outbox. Each such call becomes a
        dead letter with the call's id, operation, arguments (replayable when
        they were stored as they were) and correlation id, error_type
        INTERRUPTED, a message saying the server may or may not have seen it,
        no category and 0 attempts. Replaying it makes the call again: for an
        operation that is not idempotent, check with the server first.

        A call is recovered only when its owner's host is this host and its
        process is gone: no process with its pid runs, or only its zombie, or
        one that started at another time (the pid was reused). Calls of a live
        process, and of other hosts, stay in the outbox. Two processes
        recovering at once recover each call once.

        Raises:
            sqlite3.Error: (SQLiteDeadLetters) when the database cannot be written.
        """
        recovered: list[DeadLetter] = []
        for call, args_json, kwargs_json in self._outbox():
            if running(call.owner) is not False:
                continue
            owner = call.owner
            letter = DeadLetter(
                id=call.id, operation=call.operation, args=call.args, kwargs=call.kwargs,
                unserialisable=call.unserialisable, error_type=INTERRUPTED,
                error_message=(f"process {owner.pid} on {owner.host} ended during the call, begun at "
                               f"{time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(call.started_at))} UTC: "
                               f"the server may or may not have seen it"),
                category=None, correlation_id=call.correlation_id, attempts=0, created_at=time.time(),
            )  # fmt: skip
            try:
                self._insert(letter, args_json, kwargs_json, call.id)
            except KeyError:
                continue  # it ended, or another process recovered it, since it was read
            recovered.append(letter)
        return recovered

    def get(self, id: str) -> DeadLetter:
        """The letter with this id; KeyError naming it when there is none."""
        letter = self._find(id)
        if letter is None:
            raise missing(id)
        return letter

    def dead(self) -> list[DeadLetter]:
        """The letters not settled yet, oldest first (all of them: `page` reads a page at a time)."""
        return self._every("dead")

    def all(self) -> list[DeadLetter]:
        """Every letter, whatever its status, oldest first (all of them: `page` reads a page at a time)."""
        return self._every(None)

    def page(self, *, status: Status | None = None, after: str | None = None, limit: int = 100) -> list[DeadLetter]:
        """One page of letters, oldest first: what listing a large store should use.

        The page holds the letters put after the letter with id `after` (from
        the first letter when None), at most `limit` of them; pass the id of
        the last letter of a page to get the next one. An empty page is the
        end. Each page costs its own letters (an index finds where it starts),
        however many letters the store holds.

        Args:
            status: "dead", "delivered" or "discarded", or None for every letter.
            after: The id of the last letter of the previous page, or None.
            limit: The most letters returned, from 1 to 10,000.

        Raises:
            KeyError: No letter has the id `after` (compaction may have removed it).
            ValueError, TypeError: For arguments outside the above.
        """
        if status is not None and status not in STATUSES:
            raise ValueError(f"status must be one of {', '.join(map(repr, STATUSES))} or None, "
                             f"got {safe_repr(status)}")  # fmt: skip
        _config.count(limit, "limit", maximum=_MAX_PAGE)
        position = 0
        if after is not None:
            found = self._position(_name(after, "after"))
            if found is None:
                raise missing(after)
            position = found
        return [letter for _, letter in self._page(status, position, limit)]

    def compact(self, *, older_than: float | timedelta, states: Iterable[Status] = ("delivered", "discarded"),
                archive: str | os.PathLike[str] | None = None) -> int:  # fmt: skip
        """Removes settled letters settled at least `older_than` ago; returns how many it removed.

        The retention policy is a person's: letters are kept until this is
        called. Only settled letters are removed - never a dead one, never a
        call in the outbox - so every call still to be made stays accounted
        for. With `archive`, each letter is appended to that file as one line
        of JSON (every DeadLetter field; args as a list) and the file is
        flushed to disk before the letter is removed: a letter is in the
        archive, or in the store, or (if the process dies between the two)
        both. The store is read and pruned a page at a time.

        Args:
            older_than: Seconds (or a timedelta) since the letter was settled
                (its resolved_at), 0 or more: 0 removes every settled letter
                of `states`.
            states: The settled statuses to remove: "delivered", "discarded" or both.
            archive: A JSON-lines file to append the removed letters to first, or None.

        Raises:
            ValueError: `states` is empty or names "dead" or an unknown status,
                or `older_than` is negative or not finite.
            TypeError: For arguments of other types.
            OSError: The archive cannot be written (nothing more is removed).
        """
        settled_before = time.time() - cast(float, _config.duration(older_than, "older_than"))
        chosen = _settled(states)
        if archive is not None and not isinstance(archive, (str, os.PathLike)):
            raise TypeError(f"archive must be a str, an os.PathLike or None, got {type(archive).__name__}")
        removed = 0
        for status in chosen:
            pages = PageReader(self, status)
            while page := pages.read():
                old = [letter for letter in page if letter.resolved_at is not None
                       and letter.resolved_at <= settled_before]  # fmt: skip
                if not old:
                    continue
                if archive is not None:
                    _append(archive, old)
                removed += self._remove([letter.id for letter in old])
        return removed

    def _every(self, status: Status | None) -> list[DeadLetter]:
        letters: list[DeadLetter] = []
        pages = PageReader(self, status)
        while page := pages.read():
            letters.extend(page)
        return letters

    def mark_delivered(self, id: str, *, by: str = "replay") -> DeadLetter:
        """Settles a dead letter as delivered: its call was made again and succeeded.

        Args:
            id: The letter's id.
            by: Who delivered it: "replay", or a person who did it by hand.

        Raises:
            KeyError: No letter has this id.
            ValueError: The letter is not dead (its status is in the message), or `by` is empty.
        """
        _name(by, "by")
        now = time.time()
        return self._settle(id, lambda letter: dataclasses.replace(
            letter, status="delivered", resolved_at=now, resolved_by=clean_text(by), replays=letter.replays + 1))  # fmt: skip

    def discard(self, id: str, *, by: str, reason: str) -> DeadLetter:
        """Gives up on a dead letter for good: a person's decision, with their reason.

        Args:
            id: The letter's id.
            by: The name of the person deciding, non-empty.
            reason: Why, non-empty; kept as the letter's note.

        Raises:
            KeyError: No letter has this id.
            ValueError: The letter is not dead (its status is in the message),
                or `by` or `reason` is empty.
            TypeError: `by` or `reason` is not a str.
        """
        _name(by, "by")
        _name(reason, "reason")
        now = time.time()
        return self._settle(id, lambda letter: dataclasses.replace(
            letter, status="discarded", resolved_at=now, resolved_by=clean_text(by), note=clean_text(reason)))  # fmt: skip

    def record_failed_replay(self, id: str, error: object) -> DeadLetter:
        """Books a replay of a dead letter that failed: replays + 1, the error as its note.

        Args:
            id: The letter's id.
            error: What the replay raised or returned (an exception, a
                brace.Degraded, ...), or a str saying what went wrong.

        Raises:
            KeyError: No letter has this id.
            ValueError: The letter is not dead (its status is in the message).
        """
        note = _note(error)
        return self._settle(id, lambda letter: dataclasses.replace(letter, note=note, replays=letter.replays + 1))

    def _settle(self, id: str, change: Callable[[DeadLetter], DeadLetter]) -> DeadLetter:
        def checked(letter: DeadLetter) -> DeadLetter:
            if letter.status != "dead":
                raise ValueError(f"dead letter {id!r} is {letter.status}, not dead: it was settled already")
            return change(letter)

        return self._change(id, checked)

    @abc.abstractmethod
    def counts(self) -> dict[str, int]:
        """How many letters have each status: {"dead": .., "delivered": .., "discarded": ..}.

        They add up to every letter ever stored (by `put` or
        `recover_interrupted`). Calls in the outbox are not letters, and not
        counted: see `in_flight()`.
        """

    @abc.abstractmethod
    def close(self) -> None:
        """Releases what the store holds (idempotent)."""

    @abc.abstractmethod
    def _insert(self, letter: DeadLetter, args_json: str, kwargs_json: str, outbox_id: str | None) -> None:
        """Adds a new letter (durably, before returning); args_json and kwargs_json are its arguments' JSON.
        With an outbox_id, takes that call out of the outbox in the same transaction,
        or raises KeyError (from not_in_flight) and stores nothing when it is not there."""

    @abc.abstractmethod
    def _begin(self, call: InFlightCall, args_json: str, kwargs_json: str) -> None:
        """Adds a call to the outbox (durably, before returning)."""

    @abc.abstractmethod
    def _end(self, id: str) -> bool:
        """Takes a call out of the outbox; False when it is not there."""

    @abc.abstractmethod
    def _outbox(self) -> list[tuple[InFlightCall, str, str]]:
        """The calls in the outbox with their arguments' JSON, in the order they were begun."""

    @abc.abstractmethod
    def _find(self, id: str) -> DeadLetter | None:
        """The letter with this id, or None."""

    @abc.abstractmethod
    def _change(self, id: str, change: Callable[[DeadLetter], DeadLetter]) -> DeadLetter:
        """Replaces the letter with change(letter) atomically; returns the new
        letter. KeyError naming id when there is none; what change raises propagates,
        leaving the letter as it was."""

    @abc.abstractmethod
    def _page(self, status: Status | None, after: int, limit: int) -> list[tuple[int, DeadLetter]]:
        """At most limit letters with this status (every letter for None) whose
        position is above `after`, by position: (position, letter) pairs.
        Positions are ints >= 1 that grow in the order letters were put."""

    @abc.abstractmethod
    def _position(self, id: str) -> int | None:
        """The position of the letter with this id, or None."""

    @abc.abstractmethod
    def _remove(self, ids: list[str]) -> int:
        """Deletes the settled letters with these ids; returns how many were there."""

    def __enter__(self: _Store) -> _Store:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:  # fmt: skip
        self.close()


def _settled(states: object) -> tuple[Status, ...]:
    if isinstance(states, str) or not isinstance(states, Iterable):
        raise TypeError(f"states must be an iterable of statuses, got {type(states).__name__}")
    chosen = tuple(dict.fromkeys(cast("Iterable[object]", states)))
    if not chosen or not all(isinstance(state, str) and state in SETTLED for state in chosen):
        raise ValueError(f"states must name settled statuses only ({', '.join(map(repr, SETTLED))}): "
                         f"compaction never removes a dead letter; got {safe_repr(states)}")  # fmt: skip
    return cast("tuple[Status, ...]", chosen)


def _append(archive: str | os.PathLike[str], letters: list[DeadLetter]) -> None:
    """Appends letters to the archive as JSON lines, on disk before returning."""
    lines = "".join(json.dumps(dataclasses.asdict(letter)) + "\n" for letter in letters)
    with open(archive, "a", encoding="utf-8") as file:
        file.write(lines)
        file.flush()
        os.fsync(file.fileno())


def missing(id: str) -> KeyError:
    return KeyError(f"no dead letter with id {id!r}")


def not_in_flight(id: str) -> KeyError:
    return KeyError(f"no call in the outbox with id {id!r}: it ended, or became a dead letter")


def _check_call(operation: object, args: object, kwargs: object, correlation_id: object) -> None:
    _name(operation, "operation")
    if not isinstance(args, tuple):
        raise TypeError(f"args must be a tuple, got {type(args).__name__}")
    if not isinstance(kwargs, Mapping) or not all(issubclass(type(key), str) for key in kwargs):
        raise TypeError(f"kwargs must be a mapping of str to values, got {type(kwargs).__name__}")
    if correlation_id is not None and not isinstance(correlation_id, str):
        raise TypeError(f"correlation_id must be a str or None, got {type(correlation_id).__name__}")


class PageReader:
    """Reads a store's letters of one status a page at a time, oldest first.

    Each page starts after the last letter of the page before (keyset
    pagination), so a page costs its own letters however many the store
    holds, and letters removed behind the reader (compaction) move nothing.
    """

    __slots__ = ("_store", "_status", "_position")

    def __init__(self, store: DeadLetterStore, status: Status | None) -> None:
        self._store = store
        self._status = status  # None: every letter
        self._position = 0

    def read(self, limit: int = PAGE) -> list[DeadLetter]:
        """The next page: at most `limit` letters, empty at the end."""
        page = self._store._page(self._status, self._position, limit)
        if page:
            self._position = page[-1][0]
        return [letter for _, letter in page]
