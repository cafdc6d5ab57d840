"""Dead letters: calls that were given up on, kept until someone settles them.

When brace.Recovery gives up on an operation, the call - its name, its
arguments, the error, the failure's category, the correlation id - goes to a
`DeadLetterStore` before the error reaches the caller. So does a call that
was served a stand-in value instead (a fallback's, or an escalation's skip or
use: `DeadLetter.served` says which), since the operation - a write, say -
was still not made. A letter stays "dead"
until it is settled: `replay()` runs it again and marks it "delivered" when it
succeeds, or a person `discard`s it with a reason. Every call given up on is
accounted for: delivered, still dead, or discarded by someone who said why.

Retention: settled letters are kept by default, so the store only grows. A
person may `compact()` it: remove the delivered and discarded letters settled
more than a given time ago, after appending them to a JSON-lines archive if
asked. Compaction never touches a dead letter nor a call in the outbox, and
says how many letters it removed; nothing else deletes a letter.

Reading costs what is read, not what is kept: `page()` lists letters a page
at a time (keyset pagination: each page starts after the last letter of the
one before, through an index), `replay()` reads the store a page at a time,
and `counts()` reads counts kept up to date as letters are written.

Arguments are stored as JSON. A value JSON cannot hold (a datetime, an open
file, a dict with non-str keys, an int of more than 4300 digits, which
Python will not read back from decimal text) is stored as its repr and
flagged: the letter still says what the call was, but it cannot be replayed
as it was made. Tuples come back as lists, subclasses of str, int and float
as the base type; every float comes back as it was (NaN and the infinities
too, as Python's json writes them). Nothing about a call makes storing it
fail: an object whose repr raises is described instead ("<pkg.Thing object
at 0x..; repr() raised RuntimeError>"), and so is an error whose str() or
class name cannot be read.

A call the process may not live to finish is kept too: `begin()` writes it
to the store's outbox (durably, before the call goes out: a write-ahead
record) and returns its outbox id; `end()` takes it out when the call returns
the operation's value, and `put(..., outbox_id=...)` turns it into its dead
letter in one transaction when it is given up on or served a stand-in. If the
process is killed in between, the call stays in the outbox, owned by a process
that is gone: `recover_interrupted()`, run by the next process (at start-up,
say), turns such calls into dead letters with error_type "brace.Interrupted"
- the server may or may not have seen them - and `replay` can make them again.
So every call the server may have seen is either logged as ended, or a dead
letter, or still in flight in a process that runs (or on another host: only
there can it be told whether its process runs). Outbox entries are not
letters: `counts()` counts letters only, and a call is counted from the moment
it becomes one.

Two stores: `SQLiteDeadLetters` (the default: a file that survives a crash of
the process) and `MemoryDeadLetters` (for tests).
"""

from __future__ import annotations

import abc
import bisect
import dataclasses
import functools
import inspect
import json
import logging
import os
import socket
import sqlite3
import sys
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, TypeVar, cast

from brace import _config
from brace._safe import clean_text, describe, safe_repr, safe_str, type_name
from brace.classify._classifier import DEFAULT_CLASSIFIER, Category
from brace.recovery._fallback import Degraded
from brace.recovery._log import correlation

if TYPE_CHECKING:
    from brace.recovery._engine import Recovery

__all__ = [
    "INTERRUPTED",
    "DeadLetter",
    "DeadLetterStore",
    "InFlightCall",
    "MemoryDeadLetters",
    "Owner",
    "ReplayReport",
    "SQLiteDeadLetters",
    "default_store",
    "replay",
    "replay_async",
    "set_default_store",
]

_DEFAULT_PATH = "brace-dead-letters.sqlite3"
_log = logging.getLogger("brace")

Status = Literal["dead", "delivered", "discarded"]
_STATUSES: tuple[Status, ...] = ("dead", "delivered", "discarded")
_SETTLED: tuple[Status, ...] = ("delivered", "discarded")
# Letters read at a time by replay, compact, dead() and all(); the most page() returns.
_PAGE = 500
_MAX_PAGE = 10_000
_CATEGORY_VALUES = frozenset(category.value for category in Category)

_Store = TypeVar("_Store", bound="DeadLetterStore")

INTERRUPTED = "brace.Interrupted"
"""The error_type of a dead letter recovered from the outbox: its process ended during the call."""


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One call that was given up on, and what became of it.

    Attributes:
        id: A uuid4 hex string (the call's outbox id when it was begun in the outbox).
        operation: The operation's name: the key `replay` looks it up by.
        args: The positional arguments, decoded from JSON (tuples come back as lists).
        kwargs: The keyword arguments, decoded from JSON.
        unserialisable: The arguments stored as their repr because JSON could
            not hold them, as paths: "args[1]", "kwargs['when']",
            "args[0]['at'][2]". Empty when the call can be replayed as made.
        error_type: The error's class, qualified by its module unless builtin;
            INTERRUPTED ("brace.Interrupted") for a call recovered from the outbox.
        error_message: str() of the error, or "<str() raised Type>" when that raises.
        category: The failure's brace.Category value ("timeout", ...), or None.
        correlation_id: The correlation id of the call, or None.
        attempts: How many attempts were made before giving up (0 for a call
            recovered from the outbox: how many its process began is not known;
            the recovery log's attempt_started records say).
        created_at: When the letter was stored (time.time(): it outlives the process).
        served: What the caller got instead of the operation's result: None
            when it got an error, else the source of the brace.Degraded value
            it was served ("cache", "fallback:<name>", "decision:skip",
            "decision:use"). Either way the operation did not succeed: a served
            letter is dead like the others, and replay makes the call.
        status: "dead" (not settled), "delivered" (a replay succeeded) or
            "discarded" (a person gave it up).
        resolved_at: When it was delivered or discarded (time.time()), or None.
        resolved_by: Who settled it: "replay", or the person's name.
        note: Why it was discarded, or the error of its last failed replay.
        replays: Delivery attempts made since it was stored: failed replays,
            plus the one that delivered it.
    """

    id: str
    operation: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    unserialisable: tuple[str, ...]
    error_type: str
    error_message: str
    category: str | None
    correlation_id: str | None
    attempts: int
    created_at: float
    served: str | None = None
    status: Status = "dead"
    resolved_at: float | None = None
    resolved_by: str | None = None
    note: str = ""
    replays: int = 0

    @property
    def replayable(self) -> bool:
        """Whether every argument was stored as it was: the call can be made again."""
        return not self.unserialisable


class Owner(NamedTuple):
    """The process a call in the outbox belongs to.

    Attributes:
        host: Its host name (socket.gethostname()).
        pid: Its process id.
        started: When it started, as "<boot id>/<start time in clock ticks>"
            (Linux's /proc): with the pid, it names one process, so a pid the
            system hands to a new process is not mistaken for the owner. ""
            where the system does not tell.
    """

    host: str
    pid: int
    started: str


@dataclass(frozen=True, slots=True)
class InFlightCall:
    """A call in the outbox: begun, and neither ended nor made a dead letter yet.

    Attributes:
        id: Its outbox id (a uuid4 hex string); its dead letter gets the same id.
        operation: The operation's name.
        args, kwargs, unserialisable: Its arguments, stored as a letter's are.
        correlation_id: Its correlation id, or None.
        started_at: When it was begun (time.time()).
        owner: The process making it.
    """

    id: str
    operation: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    unserialisable: tuple[str, ...]
    correlation_id: str | None
    started_at: float
    owner: Owner


# -- the process a call belongs to -----------------------------------------------------

_process: Owner | None = None


def _this_process() -> Owner:
    """This process as an Owner (made again in a forked child: its pid differs)."""
    global _process
    if _process is None or _process.pid != os.getpid():
        pid = os.getpid()
        _process = Owner(socket.gethostname(), pid, _started(pid) or "")  # no /proc: ""
    return _process


def _started(pid: int) -> str | None:
    """When process pid started, as "<boot id>/<ticks since boot>"; "" for a zombie
    (it has ended); None when /proc does not tell (not Linux, or the entry is hidden)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            fields = stat.read().rpartition(")")[2].split()  # after the command name, which may hold spaces
    except OSError:
        return None
    # fields[0] is the state (field 3 of the file), fields[19] the start time (field 22).
    if len(fields) < 20:
        return None
    return "" if fields[0] in ("Z", "X") else f"{_boot_id()}/{fields[19]}"


@functools.cache
def _boot_id() -> str:
    """This boot's id: start times count from the boot, so the pair names one process."""
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as boot:
            return boot.read().strip()
    except OSError:
        return ""


def _running(owner: Owner) -> bool | None:
    """Whether owner's process runs: True, False, or None when this process cannot tell."""
    if owner.host != socket.gethostname():
        return None  # another host (or container) may run it: only there can it be told
    if sys.platform == "win32":
        return None  # os.kill(pid, 0) would end the process there
    try:
        os.kill(owner.pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, run by another user
    if not owner.started:
        return True  # begun where start times are not known: the pid is all there is
    started = _started(owner.pid)
    if started is None:
        return None  # its /proc entry is hidden (hidepid), or it ended this instant: next time
    return started == owner.started  # else it ended (a zombie), and any process with its pid is another


# -- serialisation -------------------------------------------------------------------


def _plain(value: object, path: str, flagged: list[str], active: set[int]) -> object:
    """value as JSON can hold it, with what it cannot hold replaced by reprs whose paths go to flagged.

    Scalars are kept as json writes them (an IntEnum comes back as its int, a
    str subclass as a str). Containers are kept only when they are exactly a
    list, tuple or dict: a namedtuple or a defaultdict would come back as a
    plain list or dict, which is not the call that was made. Types are read
    with type(), never isinstance(), which consults a `__class__` that may raise.
    """
    kind = type(value)
    # Scalars as exact str, float or int, made by their base types' own methods:
    # json would call isinstance() on a subclass, and so its __class__.
    if value is None or kind is bool:
        return value
    if issubclass(kind, str):
        return str.__str__(cast(str, value))
    if issubclass(kind, float):
        return float.__float__(cast(float, value))
    if issubclass(kind, int) and _fits(cast(int, value)):
        return int.__int__(cast(int, value))
    if kind in (list, tuple, dict):  # exactly: see above
        if id(value) in active:  # a container that holds itself
            flagged.append(path)
            return safe_repr(value)
        if kind is dict and not all(issubclass(type(key), str) for key in cast("dict[object, object]", value)):
            # json would turn int keys into strings: the dict would not come back as it was.
            flagged.append(path)
            return safe_repr(value)
        active.add(id(value))
        try:
            if kind is dict:
                return {str.__str__(key): _plain(item, f"{path}[{str.__repr__(key)}]", flagged, active)
                        for key, item in cast("dict[str, object]", value).items()}  # fmt: skip
            return [_plain(item, f"{path}[{index}]", flagged, active)
                    for index, item in enumerate(cast("list[object]", value))]  # fmt: skip
        finally:
            active.discard(id(value))
    flagged.append(path)
    return safe_repr(value)


# The ints whose decimal text every Python reads back by default: json writes
# ints in decimal, which Python refuses beyond sys.int_info.default_max_str_digits.
_INT_BOUND = 10**sys.int_info.default_max_str_digits


def _fits(value: int) -> bool:
    """Whether json can write value (under the limit in force) for any Python to read back."""
    if int.__abs__(value) >= _INT_BOUND:
        return False
    try:
        int.__repr__(value)  # what json does: raises ValueError beyond sys.get_int_max_str_digits()
    except ValueError:
        return False
    return True


def _encode(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> tuple[str, str, tuple[str, ...]]:
    """The JSON texts of args and kwargs, and the paths stored as reprs."""
    flagged: list[str] = []
    plain_args = [_top(value, f"args[{index}]", flagged) for index, value in enumerate(args)]
    plain_kwargs = [f"{json.dumps(str.__str__(key))}: {_top(value, f'kwargs[{str.__repr__(key)}]', flagged)}"
                    for key, value in kwargs.items()]  # fmt: skip
    return f"[{', '.join(plain_args)}]", f"{{{', '.join(plain_kwargs)}}}", tuple(flagged)


def _top(value: object, path: str, flagged: list[str]) -> str:
    """One argument's JSON; a structure too deep to walk or write is stored whole as its repr."""
    mark = len(flagged)
    try:
        # ensure_ascii (the default): any str (reprs included) is plain ASCII in the database.
        return json.dumps(_plain(value, path, flagged, set()))
    except RecursionError:
        del flagged[mark:]
        flagged.append(path)
        return json.dumps(safe_repr(value))  # a repr too deep to make is described by safe_repr


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


# -- stores ----------------------------------------------------------------------------


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
        args_json, kwargs_json, flagged = _encode(args, kwargs)
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
        args_json, kwargs_json, flagged = _encode(args, kwargs)
        call = InFlightCall(id=uuid.uuid4().hex, operation=clean_text(operation), args=tuple(json.loads(args_json)),
                            kwargs=json.loads(kwargs_json), unserialisable=flagged,
                            correlation_id=None if correlation_id is None else clean_text(correlation_id),
                            started_at=time.time(), owner=_this_process())  # fmt: skip
        self._begin(call, args_json, kwargs_json)
        return call.id

    def end(self, outbox_id: str) -> None:
        """Takes a call out of the outbox: it returned the operation's value.

        Raises:
            KeyError: No call is in the outbox with this id (it ended or was put
                already, or was recovered by `recover_interrupted`).
        """
        if not self._end(outbox_id):
            raise _not_in_flight(outbox_id)

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
            if _running(call.owner) is not False:
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
            raise _missing(id)
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
        if status is not None and status not in _STATUSES:
            raise ValueError(f"status must be one of {', '.join(map(repr, _STATUSES))} or None, "
                             f"got {safe_repr(status)}")  # fmt: skip
        _config.count(limit, "limit", maximum=_MAX_PAGE)
        position = 0
        if after is not None:
            found = self._position(_name(after, "after"))
            if found is None:
                raise _missing(after)
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
            position = 0
            while page := self._page(status, position, _PAGE):
                position = page[-1][0]
                old = [letter for _, letter in page if letter.resolved_at is not None
                       and letter.resolved_at <= settled_before]  # fmt: skip
                if not old:
                    continue
                if archive is not None:
                    _append(archive, old)
                removed += self._remove([letter.id for letter in old])
        return removed

    def _every(self, status: Status | None) -> list[DeadLetter]:
        letters: list[DeadLetter] = []
        position = 0
        while page := self._page(status, position, _PAGE):
            position = page[-1][0]
            letters.extend(letter for _, letter in page)
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
        or raises KeyError (from _not_in_flight) and stores nothing when it is not there."""

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
    if not chosen or not all(isinstance(state, str) and state in _SETTLED for state in chosen):
        raise ValueError(f"states must name settled statuses only ({', '.join(map(repr, _SETTLED))}): "
                         f"compaction never removes a dead letter; got {safe_repr(states)}")  # fmt: skip
    return cast("tuple[Status, ...]", chosen)


def _append(archive: str | os.PathLike[str], letters: list[DeadLetter]) -> None:
    """Appends letters to the archive as JSON lines, on disk before returning."""
    lines = "".join(json.dumps(dataclasses.asdict(letter)) + "\n" for letter in letters)
    with open(archive, "a", encoding="utf-8") as file:
        file.write(lines)
        file.flush()
        os.fsync(file.fileno())


def _missing(id: str) -> KeyError:
    return KeyError(f"no dead letter with id {id!r}")


def _not_in_flight(id: str) -> KeyError:
    return KeyError(f"no call in the outbox with id {id!r}: it ended, or became a dead letter")


def _check_call(operation: object, args: object, kwargs: object, correlation_id: object) -> None:
    _name(operation, "operation")
    if not isinstance(args, tuple):
        raise TypeError(f"args must be a tuple, got {type(args).__name__}")
    if not isinstance(kwargs, Mapping) or not all(issubclass(type(key), str) for key in kwargs):
        raise TypeError(f"kwargs must be a mapping of str to values, got {type(kwargs).__name__}")
    if correlation_id is not None and not isinstance(correlation_id, str):
        raise TypeError(f"correlation_id must be a str or None, got {type(correlation_id).__name__}")


class MemoryDeadLetters(DeadLetterStore):
    """A dead-letter store in memory: for tests, and for processes whose
    letters may die with them. Thread-safe (one lock).

    Like SQLiteDeadLetters, it keeps the arguments as JSON and decodes them
    on every read, so a letter read from it behaves as one read from a file
    would, and changing a letter's arguments does not change the store.
    """

    __slots__ = ("_lock", "_letters", "_positions", "_order", "_last", "_calls")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # position -> (letter, its args' JSON, its kwargs' JSON).
        self._letters: dict[int, tuple[DeadLetter, str, str]] = {}
        self._positions: dict[str, int] = {}  # id -> position
        # The positions of the letters of each status (None: every letter).
        self._order: dict[Status | None, _Positions] = {status: _Positions() for status in (*_STATUSES, None)}
        self._last = 0
        # The outbox: id -> (call, its args' JSON, its kwargs' JSON), in the order begun.
        self._calls: dict[str, tuple[InFlightCall, str, str]] = {}

    def counts(self) -> dict[str, int]:
        with self._lock:
            return {status: len(self._order[status]) for status in _STATUSES}

    def close(self) -> None:
        """Nothing to release: the letters stay readable."""

    def _insert(self, letter: DeadLetter, args_json: str, kwargs_json: str, outbox_id: str | None) -> None:
        with self._lock:
            if outbox_id is not None and self._calls.pop(outbox_id, None) is None:
                raise _not_in_flight(outbox_id)
            self._last += 1
            self._letters[self._last] = (letter, args_json, kwargs_json)
            self._positions[letter.id] = self._last
            self._order[letter.status].add(self._last)
            self._order[None].add(self._last)

    def _begin(self, call: InFlightCall, args_json: str, kwargs_json: str) -> None:
        with self._lock:
            self._calls[call.id] = (call, args_json, kwargs_json)

    def _end(self, id: str) -> bool:
        with self._lock:
            return self._calls.pop(id, None) is not None

    def _outbox(self) -> list[tuple[InFlightCall, str, str]]:
        with self._lock:
            entries = list(self._calls.values())
        return [(dataclasses.replace(call, args=tuple(json.loads(args_json)), kwargs=json.loads(kwargs_json)),
                 args_json, kwargs_json) for call, args_json, kwargs_json in entries]  # fmt: skip

    def _find(self, id: str) -> DeadLetter | None:
        with self._lock:
            position = self._positions.get(id)
            entry = None if position is None else self._letters[position]
        return None if entry is None else _decoded(*entry)

    def _change(self, id: str, change: Callable[[DeadLetter], DeadLetter]) -> DeadLetter:
        with self._lock:
            position = self._positions.get(id)
            if position is None:
                raise _missing(id)
            letter, args_json, kwargs_json = self._letters[position]
            changed = change(_decoded(letter, args_json, kwargs_json))
            self._letters[position] = (changed, args_json, kwargs_json)
            if changed.status != letter.status:
                self._order[letter.status].discard(position)
                self._order[changed.status].add(position)
        return changed

    def _page(self, status: Status | None, after: int, limit: int) -> list[tuple[int, DeadLetter]]:
        with self._lock:
            entries = [(position, self._letters[position]) for position in self._order[status].after(after, limit)]
        return [(position, _decoded(*entry)) for position, entry in entries]

    def _position(self, id: str) -> int | None:
        with self._lock:
            return self._positions.get(id)

    def _remove(self, ids: list[str]) -> int:
        removed = 0
        with self._lock:
            for id in ids:
                position = self._positions.get(id)
                if position is None or self._letters[position][0].status == "dead":
                    continue  # removed already; a dead letter is never removed
                del self._positions[id]
                letter = self._letters.pop(position)[0]
                self._order[letter.status].discard(position)
                self._order[None].discard(position)
                removed += 1
        return removed

    def __repr__(self) -> str:
        return f"MemoryDeadLetters({self.counts()})"


class _Positions:
    """A sorted set of ints kept in blocks, so that adding, removing and finding
    where a page starts cost one block and a bisection, not the whole set."""

    __slots__ = ("_blocks", "_lasts", "_size")

    _BLOCK = 1000  # a block splits in two beyond twice this

    def __init__(self) -> None:
        self._blocks: list[list[int]] = []
        self._lasts: list[int] = []  # each block's highest int
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def add(self, value: int) -> None:
        """Adds an int not in the set (most often one above all of them)."""
        self._size += 1
        if not self._blocks:
            self._blocks.append([value])
            self._lasts.append(value)
            return
        index = min(bisect.bisect_left(self._lasts, value), len(self._blocks) - 1)
        block = self._blocks[index]
        bisect.insort(block, value)
        self._lasts[index] = block[-1]
        if len(block) > 2 * self._BLOCK:
            self._blocks[index : index + 1] = [block[: self._BLOCK], block[self._BLOCK :]]
            self._lasts[index : index + 1] = [block[self._BLOCK - 1], block[-1]]

    def discard(self, value: int) -> None:
        """Removes value if it is in the set."""
        index = bisect.bisect_left(self._lasts, value)
        if index == len(self._blocks):
            return
        block = self._blocks[index]
        at = bisect.bisect_left(block, value)
        if at == len(block) or block[at] != value:
            return
        del block[at]
        self._size -= 1
        if block:
            self._lasts[index] = block[-1]
        else:
            del self._blocks[index], self._lasts[index]

    def after(self, value: int, limit: int) -> list[int]:
        """The lowest `limit` ints above value, in order."""
        found: list[int] = []
        index = bisect.bisect_right(self._lasts, value)
        while index < len(self._blocks) and len(found) < limit:
            block = self._blocks[index]
            start = bisect.bisect_right(block, value)
            found.extend(block[start : start + limit - len(found)])
            index += 1
        return found


def _decoded(letter: DeadLetter, args_json: str, kwargs_json: str) -> DeadLetter:
    return dataclasses.replace(letter, args=tuple(json.loads(args_json)), kwargs=json.loads(kwargs_json))


_COLUMNS = ("id, operation, args, kwargs, unserialisable, error_type, error_message, category, correlation_id, "
            "attempts, created_at, served, status, resolved_at, resolved_by, note, replays")  # fmt: skip
_OUTBOX_COLUMNS = ("id, operation, args, kwargs, unserialisable, correlation_id, started_at, owner_host, owner_pid, "
                   "owner_started")  # fmt: skip
# _MIGRATIONS[n] takes a database from schema version n to n + 1 (PRAGMA
# user_version; a new file is at 0). Released steps never change: files written
# by every earlier brace must keep opening.
_MIGRATIONS: tuple[str, ...] = (
    # 1: the letters.
    """
    CREATE TABLE IF NOT EXISTS dead_letters (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,  -- the order letters were put
        id TEXT NOT NULL UNIQUE,
        operation TEXT NOT NULL,
        args TEXT NOT NULL,            -- JSON array
        kwargs TEXT NOT NULL,          -- JSON object
        unserialisable TEXT NOT NULL,  -- JSON array of paths
        error_type TEXT NOT NULL,
        error_message TEXT NOT NULL,
        category TEXT,
        correlation_id TEXT,
        attempts INTEGER NOT NULL,
        created_at REAL NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('dead', 'delivered', 'discarded')),
        resolved_at REAL,
        resolved_by TEXT,
        note TEXT NOT NULL,
        replays INTEGER NOT NULL
    );
    CREATE INDEX IF NOT EXISTS dead_letters_status ON dead_letters (status, seq);
    """,
    # 2: what a call was served instead of the operation's result (NULL: an error),
    # and the outbox of calls in flight.
    """
    ALTER TABLE dead_letters ADD COLUMN served TEXT;
    CREATE TABLE outbox (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,  -- the order calls were begun
        id TEXT NOT NULL UNIQUE,
        operation TEXT NOT NULL,
        args TEXT NOT NULL,            -- JSON array
        kwargs TEXT NOT NULL,          -- JSON object
        unserialisable TEXT NOT NULL,  -- JSON array of paths
        correlation_id TEXT,
        started_at REAL NOT NULL,
        owner_host TEXT NOT NULL,
        owner_pid INTEGER NOT NULL,
        owner_started TEXT NOT NULL    -- '<boot id>/<start ticks>', or '' where unknown
    );
    """,
    # 3: the number of letters of each status, kept by triggers in the transaction
    # that writes the letter, so that counts() reads three rows instead of an index.
    """
    CREATE TABLE letter_counts (
        status TEXT PRIMARY KEY,
        letters INTEGER NOT NULL
    ) WITHOUT ROWID;
    INSERT INTO letter_counts (status, letters)
        SELECT name, (SELECT count(*) FROM dead_letters WHERE status = name)
        FROM (SELECT 'dead' AS name UNION ALL SELECT 'delivered' UNION ALL SELECT 'discarded');
    CREATE TRIGGER letter_counted AFTER INSERT ON dead_letters BEGIN
        UPDATE letter_counts SET letters = letters + 1 WHERE status = NEW.status;
    END;
    CREATE TRIGGER letter_recounted AFTER UPDATE OF status ON dead_letters WHEN OLD.status != NEW.status BEGIN
        UPDATE letter_counts SET letters = letters - 1 WHERE status = OLD.status;
        UPDATE letter_counts SET letters = letters + 1 WHERE status = NEW.status;
    END;
    CREATE TRIGGER letter_uncounted AFTER DELETE ON dead_letters BEGIN
        UPDATE letter_counts SET letters = letters - 1 WHERE status = OLD.status;
    END;
    """,
)
_SCHEMA_VERSION = len(_MIGRATIONS)


# The names SQLite gives a database that is not a file (without URIs, which an
# absolute path never is): a private temporary one, and one in memory.
_NOT_FILES = ("", ":memory:")


class SQLiteDeadLetters(DeadLetterStore):
    """A dead-letter store in an SQLite file: what brace.Recovery uses by default.

    The database runs in WAL mode with synchronous=NORMAL, and each `put` is
    its own committed transaction, so a letter is in the file before the
    error reaches the caller. In WAL mode, synchronous=NORMAL makes committed
    transactions durable across a crash of the process (the WAL is handed to
    the operating system at commit); only a crash of the operating system or
    a power loss can lose the last ones. Several processes may share the
    file (SQLite's locking; a writer waits up to 5 s for another).

    One connection, shared by the threads through a lock. The schema's
    version is in `PRAGMA user_version`; arguments are stored as JSON text.

    The path is always a file: "" (SQLite's private temporary database,
    deleted when the connection closes) and ":memory:" are refused, and any
    other path is opened as an absolute file name, so that a name SQLite
    would otherwise read as a URI ("file::memory:", "file:x?mode=memory":
    URIs are read without being asked for when SQLite was built with
    SQLITE_USE_URI, as some distributions do) names a file of that name
    instead. A letter stored here outlives the process; one on a RAM-backed
    file system (tmpfs) still does not outlive the machine.

    Args:
        path: The database file (created if absent; its directory must exist).

    Raises:
        TypeError: path is not a str or os.PathLike.
        ValueError: path is "" or ":memory:" (use brace.MemoryDeadLetters for
            letters that may die with the process), or the file holds a
            dead-letter table from a newer brace.
        sqlite3.Error: The file cannot be opened or is not a database.
    """

    __slots__ = ("_lock", "_connection", "_path")

    def __init__(self, path: str | os.PathLike[str] = _DEFAULT_PATH) -> None:
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
        self._path = os.fspath(path)
        if self._path in _NOT_FILES:
            raise ValueError(f"path must name a file, got {self._path!r}: SQLite keeps that database only while the "
                             f"store is open, and the letters would die with the process; use "
                             f"brace.MemoryDeadLetters() if they may")  # fmt: skip
        self._lock = threading.Lock()
        # isolation_level=None: no implicit transactions; each statement commits
        # unless inside an explicit BEGIN (see _change). An absolute path is
        # never a URI nor one of SQLite's special names.
        connection = sqlite3.connect(os.path.abspath(self._path), timeout=5.0, isolation_level=None,
                                     check_same_thread=False)  # fmt: skip
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            _migrate(connection, self._path)
        except BaseException:
            connection.close()
            raise
        self._connection = connection

    @property
    def path(self) -> str:
        """The database file, as given."""
        return self._path

    def counts(self) -> dict[str, int]:
        result: dict[str, int] = dict.fromkeys(_STATUSES, 0)
        with self._lock:
            rows = self._connection.execute("SELECT status, letters FROM letter_counts").fetchall()
        for status, number in rows:
            result[status] = number
        return result

    def close(self) -> None:
        """Closes the connection; the store cannot be used afterwards."""
        with self._lock:
            self._connection.close()

    def _insert(self, letter: DeadLetter, args_json: str, kwargs_json: str, outbox_id: str | None) -> None:
        row = (letter.id, letter.operation, args_json, kwargs_json, json.dumps(letter.unserialisable),
               letter.error_type, letter.error_message, letter.category, letter.correlation_id, letter.attempts,
               letter.created_at, letter.served, letter.status, letter.resolved_at, letter.resolved_by, letter.note,
               letter.replays)  # fmt: skip
        insert = f"INSERT INTO dead_letters ({_COLUMNS}) VALUES ({', '.join('?' * len(row))})"
        with self._lock:
            if outbox_id is None:
                # Autocommit: this INSERT is a transaction of its own, committed on return.
                self._connection.execute(insert, row)
                return
            self._connection.execute("BEGIN IMMEDIATE")
            try:
                if self._connection.execute("DELETE FROM outbox WHERE id = ?", (outbox_id,)).rowcount != 1:
                    raise _not_in_flight(outbox_id)
                self._connection.execute(insert, row)
            except BaseException:
                self._connection.execute("ROLLBACK")
                raise
            self._connection.execute("COMMIT")

    def _begin(self, call: InFlightCall, args_json: str, kwargs_json: str) -> None:
        row = (call.id, call.operation, args_json, kwargs_json, json.dumps(call.unserialisable), call.correlation_id,
               call.started_at, call.owner.host, call.owner.pid, call.owner.started)  # fmt: skip
        with self._lock:
            self._connection.execute(f"INSERT INTO outbox ({_OUTBOX_COLUMNS}) VALUES ({', '.join('?' * len(row))})",
                                     row)  # fmt: skip

    def _end(self, id: str) -> bool:
        with self._lock:
            return bool(self._connection.execute("DELETE FROM outbox WHERE id = ?", (id,)).rowcount)

    def _outbox(self) -> list[tuple[InFlightCall, str, str]]:
        with self._lock:
            rows = self._connection.execute(f"SELECT {_OUTBOX_COLUMNS} FROM outbox ORDER BY seq").fetchall()
        return [(_call(row), row[2], row[3]) for row in rows]

    def _find(self, id: str) -> DeadLetter | None:
        with self._lock:
            row = self._connection.execute(f"SELECT {_COLUMNS} FROM dead_letters WHERE id = ?", (id,)).fetchone()
        return None if row is None else _letter(row)

    def _change(self, id: str, change: Callable[[DeadLetter], DeadLetter]) -> DeadLetter:
        with self._lock:
            # IMMEDIATE: the write lock from the read on, so another process
            # cannot settle the letter between our read and our write.
            self._connection.execute("BEGIN IMMEDIATE")
            try:
                row = self._connection.execute(f"SELECT {_COLUMNS} FROM dead_letters WHERE id = ?", (id,)).fetchone()
                if row is None:
                    raise _missing(id)
                changed = change(_letter(row))
                self._connection.execute(
                    "UPDATE dead_letters SET status = ?, resolved_at = ?, resolved_by = ?, note = ?, replays = ? "
                    "WHERE id = ?",
                    (changed.status, changed.resolved_at, changed.resolved_by, changed.note, changed.replays, id),
                )
            except BaseException:
                self._connection.execute("ROLLBACK")
                raise
            self._connection.execute("COMMIT")
        return changed

    def _page(self, status: Status | None, after: int, limit: int) -> list[tuple[int, DeadLetter]]:
        # seq is the rowid, and (status, seq) is indexed: either way the page
        # starts with a seek, whatever lies before it.
        query = f"SELECT seq, {_COLUMNS} FROM dead_letters WHERE seq > ?"
        with self._lock:
            if status is None:
                rows = self._connection.execute(f"{query} ORDER BY seq LIMIT ?", (after, limit)).fetchall()
            else:
                rows = self._connection.execute(f"{query} AND status = ? ORDER BY seq LIMIT ?",
                                                (after, status, limit)).fetchall()  # fmt: skip
        return [(row[0], _letter(row[1:])) for row in rows]

    def _position(self, id: str) -> int | None:
        with self._lock:
            row = self._connection.execute("SELECT seq FROM dead_letters WHERE id = ?", (id,)).fetchone()
        return None if row is None else cast(int, row[0])

    def _remove(self, ids: list[str]) -> int:
        with self._lock:
            # One transaction for the page; a dead letter is never removed, whatever the ids.
            return self._connection.execute(
                f"DELETE FROM dead_letters WHERE status != 'dead' AND id IN ({', '.join('?' * len(ids))})", ids
            ).rowcount

    def __repr__(self) -> str:
        return f"SQLiteDeadLetters({self._path!r})"


def _migrate(connection: sqlite3.Connection, path: str) -> None:
    """Brings the database to _SCHEMA_VERSION, or refuses one from a newer brace."""
    if connection.execute("PRAGMA user_version").fetchone()[0] == _SCHEMA_VERSION:
        return
    # IMMEDIATE, then read the version again: another process may be migrating the same file.
    connection.execute("BEGIN IMMEDIATE")
    try:
        version = connection.execute("PRAGMA user_version").fetchone()[0]
        if version > _SCHEMA_VERSION:
            raise ValueError(f"path {path!r} holds dead letters of schema version {version}; "
                             f"this brace reads versions up to {_SCHEMA_VERSION}")  # fmt: skip
        for script in _MIGRATIONS[version:]:
            # Statement by statement (executescript would commit the BEGIN first);
            # a trigger's body holds semicolons of its own, so pieces are joined
            # until SQLite says they make a complete statement.
            statement = ""
            for piece in script.split(";"):
                statement += piece + ";"
                if sqlite3.complete_statement(statement):
                    if statement.strip(" \n;"):
                        connection.execute(statement)
                    statement = ""
        connection.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")


def _call(row: tuple[Any, ...]) -> InFlightCall:
    id, operation, args, kwargs, unserialisable, correlation_id, started_at, host, pid, started = row
    return InFlightCall(id=id, operation=operation, args=tuple(json.loads(args)), kwargs=json.loads(kwargs),
                        unserialisable=tuple(json.loads(unserialisable)), correlation_id=correlation_id,
                        started_at=started_at, owner=Owner(host, pid, started))  # fmt: skip


def _letter(row: tuple[Any, ...]) -> DeadLetter:
    (id, operation, args, kwargs, unserialisable, error_type, error_message, category, correlation_id, attempts,
     created_at, served, status, resolved_at, resolved_by, note, replays) = row  # fmt: skip
    return DeadLetter(id=id, operation=operation, args=tuple(json.loads(args)), kwargs=json.loads(kwargs),
                      unserialisable=tuple(json.loads(unserialisable)), error_type=error_type,
                      error_message=error_message, category=category, correlation_id=correlation_id,
                      attempts=attempts, created_at=created_at, served=served, status=status,
                      resolved_at=resolved_at, resolved_by=resolved_by, note=note, replays=replays)  # fmt: skip


# -- the process's store ---------------------------------------------------------------

_default_lock = threading.Lock()
_default: DeadLetterStore | None = None


def default_store() -> DeadLetterStore:
    """The process's dead-letter store: where a brace.Recovery not given one puts its letters.

    An SQLiteDeadLetters at the path in the environment variable
    BRACE_DEAD_LETTERS, else "brace-dead-letters.sqlite3" in the working
    directory, opened on the first call (so a process that never gives up on
    a call creates no file), unless `set_default_store` gave another (tests:
    `set_default_store(MemoryDeadLetters())`).
    """
    global _default
    with _default_lock:
        if _default is None:
            _default = SQLiteDeadLetters(os.environ.get("BRACE_DEAD_LETTERS") or _DEFAULT_PATH)
        return _default


def set_default_store(store: DeadLetterStore | None) -> DeadLetterStore | None:
    """Replaces the process's dead-letter store; returns the one it replaces (not closed).

    Args:
        store: The store from now on, or None to open the default SQLite file
            again on next use.

    Raises:
        TypeError: store is not a brace.DeadLetterStore or None.
    """
    global _default
    if store is not None and not isinstance(store, DeadLetterStore):
        raise TypeError(f"store must be a brace.DeadLetterStore or None, got {type(store).__name__}")
    with _default_lock:
        previous, _default = _default, store
    return previous


# -- replay ------------------------------------------------------------------------------


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


class _Replay:
    """The letters of one replay, and the outcomes booked so far."""

    def __init__(self, store: object, operations: object, recovery: object, limit: object) -> None:
        if not isinstance(store, DeadLetterStore):
            raise TypeError(f"store must be a brace.DeadLetterStore, got {type(store).__name__}")
        if not isinstance(operations, Mapping):
            raise TypeError(f"operations must be a mapping of operation names to callables, "
                            f"got {type(operations).__name__}")  # fmt: skip
        from brace.recovery._engine import Recovery  # brace.recovery imports this module

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
        taken = position = 0
        while self.limit is None or taken < self.limit:
            # A page no larger than what is left to run: replay(limit=10) reads about 10 letters.
            size = _PAGE if self.limit is None else min(_PAGE, self.limit - taken)
            page = self.store._page("dead", position, size)
            if not page:
                return
            for position, letter in page:
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
        try:
            with correlation(letter.correlation_id or None), run.replaying():
                result = fn(*letter.args, **letter.kwargs) if recovery is None else recovery.call(
                    fn, *letter.args, **letter.kwargs)  # fmt: skip
        except Exception as error:
            run.failed(letter, error)
        else:
            run.succeeded(letter, result)
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
        try:
            with correlation(letter.correlation_id or None), run.replaying():
                if recovery is None:
                    result = fn(*letter.args, **letter.kwargs)
                    if inspect.isawaitable(result):
                        result = await result
                else:
                    result = await recovery.call_async(_awaiting(fn), *letter.args, **letter.kwargs)
        except Exception as error:
            run.failed(letter, error)
        else:
            run.succeeded(letter, result)
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
