"""The recovery log: every step of every recovered call as one structured event.

A `RecoveryLog` is a brace.Recovery listener (`recovery.add_listener(log)`):
each RecoveryEvent (an attempt, a healing action, an undo, a fallback, an
escalation, a recovery, a dead letter, a breaker transition) goes to its
sinks, and it counts them by kind. Three sinks come with brace: `LoggingSink` (stdlib
logging, the event's fields in the record's `brace_event` extra),
`MemorySink` (a ring buffer, for tests and dashboards) and `JsonLinesSink`
(one JSON object per line in a file, written by a thread of its own). Any
callable taking an event is a sink too. Sinks never raise into the call they
log, and never hold it up for long.

Events carry the correlation id of the request or job the call serves
(brace.recovery._correlation).
"""

from __future__ import annotations

import atexit
import itertools
import json
import logging
import os
import threading
import time
from collections import Counter, deque
from typing import TYPE_CHECKING, Callable, TypeAlias, Union

from brace import _config
from brace._core import EventRing, Tally
from brace._safe import error_dict, innermost_frames, safe_repr
from brace.recovery._correlation import correlation, correlation_id, new_correlation_id
from brace.recovery._events import FirstTry, RecoveryEvent, first_try_event

if TYPE_CHECKING:
    from brace.classify import Classification

__all__ = [
    "JsonLinesSink",
    "LoggingSink",
    "MemorySink",
    "RecoveryLog",
    "correlation",
    "correlation_id",
    "event_dict",
    "new_correlation_id",
]

_log = logging.getLogger("brace")

# A failing sink or file is reported on its 1st, 101st, 201st... failure: enough
# to notice and diagnose, without a log line per event.
_REPORT_EVERY = 100
# How long an event waits for room in a full JsonLinesSink queue before it is
# dropped: long enough to ride out a brief stall of the disk, short enough
# that the call being logged does not notice.
_FULL_WAIT = 0.05
# The longest a written line stays in the file's buffer (seconds, real time).
_FLUSH_EVERY = 0.2


# -- events as data ------------------------------------------------------------------


def event_dict(event: RecoveryEvent) -> dict[str, object]:
    """The event as JSON-able data.

    Keys: kind, operation, correlation_id, attempt, at, duration (seconds on
    brace's clock), outcome, detail, classification (None, or its category's
    value, severity name, transient, retryable, status and retry_after),
    error (None, or its type, message ("<str() raised ...>" when str() raises) and frames:
    up to 3 "module:function" it was raised in, innermost first: brace._safe.innermost_frames)
    and ran (whether the operation itself ran).
    """
    described = error_dict(event.error)
    error = None if described is None else {**described, "frames": innermost_frames(event.error)}
    return {
        "kind": event.kind,
        "operation": event.operation,
        "correlation_id": event.correlation_id,
        "attempt": event.attempt,
        "at": float(event.at),
        "duration": float(event.duration),
        "outcome": event.outcome,
        "detail": event.detail,
        "classification": None if event.classification is None else _classification(event.classification),
        "error": error,
        "ran": event.ran,
    }


def _classification(classification: Classification) -> dict[str, object]:
    retry_after = classification.retry_after
    return {
        "category": classification.category.value,
        "severity": classification.severity.name,
        "transient": classification.transient,
        "retryable": classification.retryable,
        "status": classification.status,
        "retry_after": None if retry_after is None else float(retry_after),
    }


def _line(data: dict[str, object]) -> str:
    """One readable line: 'fetch attempt #2 failure in 0.103s [timeout HTTP 504]: TimeoutError: ...'."""
    text = f"{data['operation']} {data['kind']} #{data['attempt']} {data['outcome']}"
    duration = data["duration"]
    if isinstance(duration, float) and duration > 0:
        text += f" in {duration:.3f}s"
    classification = data["classification"]
    if isinstance(classification, dict):
        status = classification["status"]
        text += f" [{classification['category']}{'' if status is None else f' HTTP {status}'}]"
    if data["detail"]:
        text += f" ({data['detail']})"
    error = data["error"]
    if isinstance(error, dict):
        text += f": {error['type']}: {error['message']}"
    if data["correlation_id"] is not None:
        text += f" correlation={data['correlation_id']}"
    return text


# -- sinks ---------------------------------------------------------------------------

# What a JsonLinesSink queues: an event, or a first-try success as its compact record.
_Queued: TypeAlias = Union[RecoveryEvent, FirstTry]


class LoggingSink:
    """Logs each event as one readable line, its fields in the record's `brace_event` extra.

    The line and the fields are only built when the logger is enabled for the
    level. A failure to build or emit the record is reported to the "brace"
    logger (its 1st, 101st, ... time), never raised.

    Args:
        logger: A logging.Logger or a logger name (default "brace.recovery").
        level: The logging level of the records (default INFO).

    Raises:
        TypeError: For a logger that is neither, or a level that is not an int.
    """

    __slots__ = ("_logger", "_level", "_failures")

    def __init__(self, logger: logging.Logger | str = "brace.recovery", level: int = logging.INFO) -> None:
        if isinstance(logger, str):
            logger = logging.getLogger(logger)
        elif not isinstance(logger, logging.Logger):
            raise TypeError(f"logger must be a logging.Logger or a logger name, got {type(logger).__name__}")
        if isinstance(level, bool) or not isinstance(level, int):
            raise TypeError(f"level must be a logging level (an int), got {type(level).__name__}")
        self._logger = logger
        self._level = level
        self._failures = itertools.count(1)

    def __call__(self, event: RecoveryEvent) -> None:
        if not self._logger.isEnabledFor(self._level):
            return
        try:
            data = event_dict(event)
            self._logger.log(self._level, "%s", _line(data), extra={"brace_event": data})
        except Exception:
            failures = next(self._failures)
            if failures % _REPORT_EVERY == 1:
                _log.exception("brace: LoggingSink(%r) failed to log an event (failure %d)", self._logger.name,
                               failures)  # fmt: skip

    def _brace_first_try(self, record: FirstTry) -> None:
        """A first-try success, as its record: an event made only when the logger is enabled."""
        if self._logger.isEnabledFor(self._level):
            self(first_try_event(record))

    def close(self) -> None:
        """Nothing to release: the logger's handlers belong to the application."""

    def __repr__(self) -> str:
        return f"LoggingSink(logger={self._logger.name!r}, level={logging.getLevelName(self._level)})"


class MemorySink:
    """Keeps the last `capacity` events in memory: a ring buffer for tests and dashboards.

    When full, each new event evicts the oldest, counted in `evicted`.
    Thread-safe, without a lock on the logging path: a first-try success is
    kept as its compact record and read as its RecoveryEvent.

    Args:
        capacity: How many events it holds, an int >= 1 (default 10 000).

    Raises:
        TypeError, ValueError: For a capacity that is not an int >= 1.
    """

    __slots__ = ("_ring", "_brace_first_try")

    def __init__(self, capacity: int = 10_000) -> None:
        self._ring = EventRing(_config.count(capacity, "capacity"))
        # A first-try record goes in as it is (brace.RecoveryLog hands it over from compiled code).
        self._brace_first_try: Callable[[FirstTry], object] = self._ring.append

    def __call__(self, event: RecoveryEvent) -> None:
        self._ring.append(event)

    def events(self) -> list[RecoveryEvent]:
        """The events held, oldest first (a copy)."""
        return [first_try_event(item) if type(item) is tuple else item for item in self._ring.items()]

    def clear(self) -> None:
        """Forgets the events held (`evicted` keeps its count)."""
        self._ring.clear()

    @property
    def capacity(self) -> int:
        """How many events it holds at most."""
        capacity: int = self._ring.capacity
        return capacity

    @property
    def evicted(self) -> int:
        """How many events were pushed out by newer ones."""
        evicted: int = self._ring.evicted
        return evicted

    def close(self) -> None:
        """Nothing to release: the events stay readable."""

    def __len__(self) -> int:
        return len(self._ring)

    def __repr__(self) -> str:
        return f"MemorySink(capacity={self.capacity}, held={len(self)}, evicted={self.evicted})"


class JsonLinesSink:
    """Appends each event to a file as one JSON object per line.

    A line is `event_dict(event)` plus "time": when the event was logged, in
    seconds since the epoch (time.time(): the file outlives the process and
    brace's clock). The caller only queues the event; a daemon thread of the
    sink's own encodes and writes it, through the file's buffer, flushed at
    least every 0.2 s, on `flush()` and on `close()`. So a crash of the process
    loses at most the last 0.2 s of events; the sink closes itself at
    interpreter exit.

    Except write-ahead records: an "attempt_started" event is written and
    flushed to the operating system by the calling thread before the call
    returns, so a process killed the next instant (even by SIGKILL) still has
    it in the file. The caller waits for the file for it, as long as that
    takes: a write-ahead record that could be dropped would promise nothing.
    Lines never interleave (one lock guards the file), but a write-ahead line
    may come before lines of events logged earlier and still queued: order by
    "time" to read the file in order.

    The queue is bounded. When it is full (the disk cannot keep up), the
    caller waits for room, first come first served, and is dropped when none
    came within 50 ms of the call: counted in `dropped`, with one warning to
    the "brace" logger per run of drops. The 50 ms are one deadline, taken
    when the call begins, for all its waiting: for the sink's lock, then for
    room. A caller whose deadline passes is dropped without taking the lock
    again, so no other thread can hold it up past the deadline; what can is
    the interpreter: a thread whose wait ended still needs the GIL to return,
    and another thread holding it (the writer encoding JSON, any busy thread)
    may keep it for the switch interval (sys.getswitchinterval(), 5 ms) each
    time, so under heavy contention a call can take somewhat longer than 50 ms.
    Events after `close()` are dropped too. Write failures are reported to the
    "brace" logger (the 1st, 101st, ...), never raised.

    Args:
        path: The file (str or os.PathLike), opened for appending and created if missing.
        max_queue: How many events may wait to be written, an int >= 1 (default 65 536).

    Raises:
        TypeError: For a path that is not a str or os.PathLike.
        TypeError, ValueError: For a max_queue that is not an int >= 1.
        OSError: When the file cannot be opened.
    """

    __slots__ = ("_path", "_max_queue", "_file", "_file_lock", "_file_closed", "_lock", "_has_items", "_progress",
                 "_pending", "_waiters", "_accepted", "_done", "_wanted", "_closing", "_drops", "_dropped",
                 "_warned_at", "_failures", "_writer")  # fmt: skip

    def __init__(self, path: str | os.PathLike[str], *, max_queue: int = 65_536) -> None:
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
        self._max_queue = _config.count(max_queue, "max_queue")
        self._path = os.fspath(path)
        self._file = open(self._path, "a", encoding="utf-8")
        # Held for each write and flush of the file, by the writer and by the
        # callers writing through: a text file's writes are not thread-safe.
        self._file_lock = threading.Lock()
        self._file_closed = False
        self._lock = threading.Lock()
        # One lock, two conditions: the writer waits for events, `flush` for the
        # writer's progress. Callers waiting for room wait on locks of their own (_Waiter).
        self._has_items = threading.Condition(self._lock)
        self._progress = threading.Condition(self._lock)
        self._pending: deque[tuple[float, _Queued]] = deque()
        self._waiters: deque[_Waiter] = deque()  # callers waiting for room, first come first
        self._accepted = 0  # events queued so far
        self._done = 0  # of those, events written and flushed (or failed and reported)
        self._wanted = 0  # `flush` asked for the first _wanted events to be done
        self._closing = False
        # Drops are counted under a lock of their own: a caller past its
        # deadline counts its drop without waiting for the sink's lock.
        self._drops = threading.Lock()
        self._dropped = 0
        self._warned_at = -1  # _accepted when the last warning went out: one per run of drops
        self._failures = itertools.count(1)
        self._writer = threading.Thread(target=self._write, name=f"brace-jsonl:{self._path}", daemon=True)
        self._writer.start()
        atexit.register(self.close)

    def __call__(self, event: RecoveryEvent) -> None:
        stamp = time.time()
        if event.kind == "attempt_started":
            self._write_through(stamp, event)
            return
        self._queue(stamp, event)

    def _brace_first_try(self, record: FirstTry) -> None:
        """A first-try success, queued as its record: the writer thread makes its line."""
        self._queue(time.time(), record)

    def _queue(self, stamp: float, event: _Queued) -> None:
        """Queues an event or a first-try record logged at `stamp`, waiting for room as above."""
        # Real time, not brace's clock: the wait is for the writer thread.
        deadline = time.monotonic() + _FULL_WAIT
        if not self._lock.acquire(timeout=_FULL_WAIT):
            self._drop(warn=True)
            return
        try:
            if self._closing:
                self._drop(warn=False)
                return
            if len(self._pending) < self._max_queue:
                self._enqueue((stamp, event))
                return
            while self._waiters and self._waiters[0].claims:  # decided: gave up at their deadlines
                self._waiters.popleft()
            waiter = _Waiter((stamp, event))
            self._waiters.append(waiter)
        finally:
            self._lock.release()
        # The writer (or close) decides the waiter when it has room (or closes);
        # the waiter decides itself when its deadline comes first.
        if waiter.handed.acquire(timeout=max(0.0, deadline - time.monotonic())):
            return  # decided by the writer (queued) or by close (dropped and counted there)
        if waiter.claim(accepted=False):
            self._drop(warn=True)
        # Else the writer or close decided it this very instant, and carries it out.

    def _write_through(self, stamp: float, event: RecoveryEvent) -> None:
        """Writes a write-ahead record and flushes it to the OS, in the calling thread."""
        line = _json_line(stamp, event)
        with self._file_lock:
            if self._file_closed:
                self._drop(warn=False)
                return
            self._guarded(lambda: self._file.write(line))
            self._guarded(self._file.flush)

    def _enqueue(self, entry: tuple[float, _Queued]) -> None:
        """Queues an event (the lock held)."""
        self._pending.append(entry)
        self._accepted += 1
        if len(self._pending) == 1:
            self._has_items.notify()

    def _drop(self, *, warn: bool) -> None:
        with self._drops:
            self._dropped += 1
            dropped = self._dropped
            # A run of drops ends when an event is queued.
            warn = warn and self._warned_at != self._accepted
            if warn:
                self._warned_at = self._accepted
        if warn:
            _log.warning("brace: JsonLinesSink(%r) is dropping events: its queue of %d is full (dropped so far: %d)",
                         self._path, self._max_queue, dropped)  # fmt: skip

    @property
    def path(self) -> str:
        """The file the events are appended to."""
        return self._path

    @property
    def dropped(self) -> int:
        """How many events were not written: the queue was full, or the sink was closed."""
        return self._dropped

    def flush(self, timeout: float | None = None) -> bool:
        """Waits until every event queued before the call is written and flushed to the OS.

        Args:
            timeout: How long to wait at most (seconds or a timedelta, real time), or
                None to wait as long as it takes.

        Returns:
            Whether they were within the timeout.

        Raises:
            TypeError, ValueError: For a timeout that is not None or a finite duration >= 0.
        """
        limit = _config.duration(timeout, "timeout", allow_none=True, maximum=_config.THREAD_WAIT_MAX)
        with self._lock:
            target = self._accepted
            if self._done >= target:
                return True
            self._wanted = max(self._wanted, target)
            self._has_items.notify()
            return self._progress.wait_for(lambda: self._done >= target, limit)

    def close(self) -> None:
        """Writes and flushes what is queued, stops the writer and closes the file. Idempotent."""
        with self._lock:
            self._closing = True
            self._has_items.notify()
            while self._waiters:  # no room will come for them now
                waiter = self._waiters.popleft()
                if waiter.claim(accepted=False):
                    self._drop(warn=False)
                    waiter.handed.release()
        self._writer.join()
        atexit.unregister(self.close)

    def _write(self) -> None:
        """The writer thread: takes what is queued, writes it, flushes when asked or due."""
        written = flushed = 0
        last_flush = time.monotonic()
        while True:
            with self._lock:
                while not self._pending and not self._closing and self._wanted <= flushed:
                    # Unflushed lines wait at most _FLUSH_EVERY: wake up for them.
                    due = None if written == flushed else last_flush + _FLUSH_EVERY - time.monotonic()
                    if due is not None and due <= 0:
                        break
                    self._has_items.wait(due)
                batch, self._pending = self._pending, deque()
                closing, wanted = self._closing, self._wanted
                self._admit()
            for stamp, event in batch:
                line = _json_line(stamp, event)
                with self._file_lock:  # line by line: a caller writing through waits for one line at most
                    self._guarded(lambda: self._file.write(line))
            written += len(batch)
            # Real time, not brace's clock: a frozen test clock must not stop the flushes.
            now = time.monotonic()
            if written > flushed and (closing or wanted > flushed or now - last_flush >= _FLUSH_EVERY):
                with self._file_lock:
                    self._guarded(self._file.flush)
                last_flush, flushed = now, written
                with self._lock:
                    self._done = flushed
                    self._progress.notify_all()
            if closing:
                with self._file_lock:
                    self._file_closed = True
                    self._guarded(self._file.close)
                return

    def _admit(self) -> None:
        """Hands the room in the queue to the callers waiting for it, in order (the lock held)."""
        while self._waiters and len(self._pending) < self._max_queue:
            waiter = self._waiters.popleft()
            if waiter.claim(accepted=True):  # else it gave up at its deadline: skipped
                self._enqueue(waiter.entry)
                waiter.handed.release()

    def _guarded(self, step: Callable[[], object]) -> None:
        try:
            step()
        except Exception:
            failures = next(self._failures)
            if failures % _REPORT_EVERY == 1:
                _log.exception("brace: JsonLinesSink(%r) failed to write (failure %d)", self._path, failures)

    def __repr__(self) -> str:
        return f"JsonLinesSink({self._path!r}, max_queue={self._max_queue}, dropped={self._dropped})"


class _Waiter:
    """A caller waiting for room in a full JsonLinesSink queue.

    Decided once: queued by the writer when room comes, dropped by close(), or
    dropped by the caller itself when its deadline passes. Each claims the
    decision by appending to `claims` (one atomic operation); the first claim
    decides, and the later ones see that they came too late, without a lock.
    """

    __slots__ = ("entry", "claims", "handed")

    def __init__(self, entry: tuple[float, _Queued]) -> None:
        self.entry = entry
        self.claims: list[tuple[bool]] = []
        self.handed = threading.Lock()  # released by the writer or close() once they decided
        self.handed.acquire()

    def claim(self, *, accepted: bool) -> bool:
        """Whether this claim (to queue the event, or to drop it) is the one that decides."""
        mine = (accepted,)  # a new tuple each call: identity tells the claims apart
        self.claims.append(mine)
        return self.claims[0] is mine


def _json_line(stamp: float, event: _Queued) -> str:
    data = event_dict(event if isinstance(event, RecoveryEvent) else first_try_event(event))
    return json.dumps({"time": stamp, **data}) + "\n"


# -- the listener ----------------------------------------------------------------------


class RecoveryLog:
    """A brace.Recovery listener that hands each event to its sinks and counts events by kind.

    Use: `recovery.add_listener(RecoveryLog(MemorySink(), JsonLinesSink("events.jsonl")))`;
    one log may listen to several recoveries. Sinks run in the order given,
    in the thread of the call being logged. A sink that raises is reported to
    the "brace" logger (its 1st, 101st, ... failure) and kept: the next event
    tries it again. The counts are exact under threads.

    Args:
        *sinks: Callables taking a RecoveryEvent; LoggingSink, MemorySink,
            JsonLinesSink or your own. `close()` closes those with a close().

    Raises:
        TypeError: For a sink that is not callable.
    """

    __slots__ = ("_sinks", "_lock", "_counts", "_first_tries", "_failures", "_targets")

    def __init__(self, *sinks: Callable[[RecoveryEvent], object]) -> None:
        for sink in sinks:
            if not callable(sink):
                raise TypeError(f"sinks must be callables taking a RecoveryEvent, got {type(sink).__name__}")
        self._sinks = sinks
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._first_tries = Tally()  # "attempt" events handed over as first-try records
        self._failures = [0] * len(sinks)
        # A first-try record: counted, then each sink in order gets it: brace's own sinks
        # take it as it is (and report their own failures), any other sink its event.
        targets = (self._first_try_target(index, sink) for index, sink in enumerate(sinks))
        self._targets: tuple[Callable[[FirstTry], object], ...] = (self._first_tries, *targets)

    def __call__(self, event: RecoveryEvent) -> None:
        with self._lock:
            self._counts[event.kind] += 1
        for index, sink in enumerate(self._sinks):
            self._deliver(index, sink, event)

    def _deliver(self, index: int, sink: Callable[[RecoveryEvent], object], event: RecoveryEvent) -> None:
        try:
            sink(event)
        except Exception:
            with self._lock:
                self._failures[index] += 1
                failures = self._failures[index]
            if failures % _REPORT_EVERY == 1:
                _log.exception("brace: recovery log sink %s failed (failure %d)", safe_repr(sink), failures)

    def _first_try_target(self, index: int, sink: Callable[[RecoveryEvent], object]) -> Callable[[FirstTry], object]:
        compact: Callable[[FirstTry], object] | None = getattr(sink, "_brace_first_try", None)
        if compact is not None:
            return compact
        return lambda record: self._deliver(index, sink, first_try_event(record))

    def _brace_first_try_targets(self) -> tuple[Callable[[FirstTry], object], ...]:
        """What a Recovery calls with a first-try success (brace.recovery._events.FirstTryTargets)."""
        return self._targets

    @property
    def sinks(self) -> tuple[Callable[[RecoveryEvent], object], ...]:
        """The sinks, in the order given."""
        return self._sinks

    def events_by_kind(self) -> dict[str, int]:
        """How many events of each kind were logged (kinds never seen are absent)."""
        with self._lock:
            counts = dict(self._counts)
        first_tries: int = self._first_tries.value
        if first_tries:
            counts["attempt"] = counts.get("attempt", 0) + first_tries
        return counts

    def close(self) -> None:
        """Closes the sinks that have a close() (a failure is logged, and the others still close)."""
        for sink in self._sinks:
            close = getattr(sink, "close", None)
            if close is None:
                continue
            try:
                close()
            except Exception:
                _log.exception("brace: closing recovery log sink %s failed", safe_repr(sink))

    def __repr__(self) -> str:
        return f"RecoveryLog({', '.join(safe_repr(sink) for sink in self._sinks)})"
