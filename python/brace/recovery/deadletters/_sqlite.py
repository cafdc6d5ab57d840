"""SQLiteDeadLetters: the default dead-letter store, a file that survives a crash of the process."""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Callable
from typing import Any, cast

from brace.recovery.deadletters._letter import STATUSES, DeadLetter, InFlightCall, Owner, Status
from brace.recovery.deadletters._schema import COLUMNS, OUTBOX_COLUMNS, migrate
from brace.recovery.deadletters._store import DeadLetterStore, missing, not_in_flight

DEFAULT_PATH = "brace-dead-letters.sqlite3"

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

    def __init__(self, path: str | os.PathLike[str] = DEFAULT_PATH) -> None:
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
            migrate(connection, self._path)
        except BaseException:
            connection.close()
            raise
        self._connection = connection

    @property
    def path(self) -> str:
        """The database file, as given."""
        return self._path

    def counts(self) -> dict[str, int]:
        result: dict[str, int] = dict.fromkeys(STATUSES, 0)
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
        insert = f"INSERT INTO dead_letters ({COLUMNS}) VALUES ({', '.join('?' * len(row))})"
        with self._lock:
            if outbox_id is None:
                # Autocommit: this INSERT is a transaction of its own, committed on return.
                self._connection.execute(insert, row)
                return
            self._connection.execute("BEGIN IMMEDIATE")
            try:
                if self._connection.execute("DELETE FROM outbox WHERE id = ?", (outbox_id,)).rowcount != 1:
                    raise not_in_flight(outbox_id)
                self._connection.execute(insert, row)
            except BaseException:
                self._connection.execute("ROLLBACK")
                raise
            self._connection.execute("COMMIT")

    def _begin(self, call: InFlightCall, args_json: str, kwargs_json: str) -> None:
        row = (call.id, call.operation, args_json, kwargs_json, json.dumps(call.unserialisable), call.correlation_id,
               call.started_at, call.owner.host, call.owner.pid, call.owner.started)  # fmt: skip
        with self._lock:
            self._connection.execute(f"INSERT INTO outbox ({OUTBOX_COLUMNS}) VALUES ({', '.join('?' * len(row))})",
                                     row)  # fmt: skip

    def _end(self, id: str) -> bool:
        with self._lock:
            return bool(self._connection.execute("DELETE FROM outbox WHERE id = ?", (id,)).rowcount)

    def _outbox(self) -> list[tuple[InFlightCall, str, str]]:
        with self._lock:
            rows = self._connection.execute(f"SELECT {OUTBOX_COLUMNS} FROM outbox ORDER BY seq").fetchall()
        return [(_call(row), row[2], row[3]) for row in rows]

    def _find(self, id: str) -> DeadLetter | None:
        with self._lock:
            row = self._connection.execute(f"SELECT {COLUMNS} FROM dead_letters WHERE id = ?", (id,)).fetchone()
        return None if row is None else _letter(row)

    def _change(self, id: str, change: Callable[[DeadLetter], DeadLetter]) -> DeadLetter:
        with self._lock:
            # IMMEDIATE: the write lock from the read on, so another process
            # cannot settle the letter between our read and our write.
            self._connection.execute("BEGIN IMMEDIATE")
            try:
                row = self._connection.execute(f"SELECT {COLUMNS} FROM dead_letters WHERE id = ?", (id,)).fetchone()
                if row is None:
                    raise missing(id)
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
        query = f"SELECT seq, {COLUMNS} FROM dead_letters WHERE seq > ?"
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
