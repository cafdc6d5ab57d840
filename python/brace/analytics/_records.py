"""The recovery log read back: `load` turns a JSON-lines file, a MemorySink, a RecoveryLog
or RecoveryEvents into `Record`s, the one shape the analytics work on.

A JSON-lines file is read strictly: a line that is not a JSON object with the
fields brace writes raises LogFormatError naming the file and the line. Numbers
a hostile or damaged log may hold (NaN, infinities, negative durations, times
beyond any clock) do not stop the analysis: the event is set aside and counted
in `Loaded.skipped`, with the line and the reason.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from brace.classify import DEFAULT_CLASSIFIER
from brace.errors import BraceError
from brace.recovery import JsonLinesSink, MemorySink, RecoveryEvent, RecoveryLog, event_dict
from brace.recovery._events import EVENT_KINDS

__all__ = ["Clock", "Loaded", "LogFormatError", "Record", "load"]

Clock = Literal["at", "time"]

# Times beyond this many seconds (about 3,000 years) are no clock's: set aside as hostile.
_TIME_LIMIT = 1e11
# A file whose first line is no event is read whole, to tell a JSON document from a broken
# log, up to this size: a JSON document brace writes (a report, the demo's figures) is far smaller.
_DOCUMENT_LIMIT = 64 * 1024 * 1024
# A skipped event's reason is kept for this many lines; the rest are only counted.
_SKIPPED_KEPT = 20
# A log's error keeps at most this many frames, each cut to this many characters (what
# brace writes fits: a hostile line costs no more).
_FRAMES = 3
_FRAME_TEXT = 401
# "<Response [503 Service Unavailable]>": a failed response as httpx, requests and aiohttp print it.
_RESPONSE_STATUS = re.compile(r"<(?:Client)?Response \[([1-5][0-9]{2})\b")


class LogFormatError(BraceError, ValueError):
    """A recovery log that cannot be read: a line that is not one of brace's events.

    Attributes:
        path: The file (None for events in memory).
        line: The line's number, from 1 (None when the file as a whole is at fault: it could
            not be read, or it is one JSON document, not JSON lines).
        reason: What is wrong with it.
    """

    def __init__(self, *, path: str | None, line: int | None, reason: str) -> None:
        self.path = path
        self.line = line
        self.reason = reason
        where = "" if path is None else f"{path}" + ("" if line is None else f", line {line}") + ": "
        super().__init__(f"{where}{reason}")


@dataclass(frozen=True)
class Record:
    """One event of the recovery log, as the analytics read it.

    Attributes:
        kind: The event's kind ("attempt", "recovered", "breaker", ...: RecoveryEvent.kind).
        operation: The operation's name ("fetch_record", "GET http://127.0.0.1:8000").
        dependency: What the operation calls: for an HTTP integration's operation
            ("METHOD scheme://host:port") the origin, every method alike; else the operation.
        correlation_id: The call's correlation id, or None.
        attempt: The attempt number.
        at: When the step began, seconds on brace's clock.
        duration: Seconds it took ("recovered": first failure to success).
        outcome: "success", "failure", ... (RecoveryEvent.outcome).
        detail: RecoveryEvent.detail.
        category: The failure's category: its classification's, else inferred (an HTTP
            response's status, a timeout or connection error by its type's name), else
            "unclassified"; None for events without an error.
        status: The HTTP status, from the classification or the failed response, or None.
        error_type: The error's type name, or None.
        error_message: The error's message, or None.
        frames: Where the error was raised: up to 3 "module:function", innermost first;
            () for events without an error, errors never raised, and logs written before
            brace recorded frames.
        ran: Whether the operation ran ("attempt" events).
        time: When the event was logged, seconds since the epoch (JSON lines only), or None.
        line: The line of the file it came from (from 1), or None.
    """

    kind: str
    operation: str
    dependency: str
    correlation_id: str | None
    attempt: int
    at: float
    duration: float
    outcome: str
    detail: str
    category: str | None
    status: int | None
    error_type: str | None
    error_message: str | None
    ran: bool
    time: float | None = None
    line: int | None = None
    frames: tuple[str, ...] = ()

    @property
    def failed(self) -> bool:
        """Whether this is a failed attempt (one that ran or that the policy rejected)."""
        return self.kind == "attempt" and self.outcome == "failure"


@dataclass
class Loaded:
    """Records read from a log, with what was set aside.

    Attributes:
        records: The records, in the log's order.
        skipped: Events set aside for numbers no clock gives (NaN, infinite, negative
            duration, a time beyond 1e11 s), in all.
        skipped_reasons: The first 20 of them: "line N: reason" (or "event N: reason").
        source: The file's path, or a description of the memory source.
    """

    records: list[Record] = field(default_factory=list)
    skipped: int = 0
    skipped_reasons: list[str] = field(default_factory=list)
    source: str = ""

    def skip(self, where: str, reason: str) -> None:
        self.skipped += 1
        if len(self.skipped_reasons) < _SKIPPED_KEPT:
            self.skipped_reasons.append(f"{where}: {reason}")


def dependency_of(operation: str) -> str:
    """The dependency an operation calls: "GET http://h:1" -> "http://h:1"; else the operation."""
    method, space, rest = operation.partition(" ")
    if space and method.isalpha() and method.isupper() and "://" in rest and " " not in rest:
        return rest
    return operation


class _Status:
    """A failed response as the classifier reads one: its status (no headers)."""

    def __init__(self, status: int) -> None:
        self.status_code = status
        self.headers: dict[str, str] = {}


def _inferred_category(error_type: str, message: str, status: int | None) -> str:
    if status is not None:  # as brace's default classifier (the integrations' own) takes that status
        return DEFAULT_CLASSIFIER.classify(_Status(status)).category.value
    name = error_type.rpartition(".")[2]
    if "Timeout" in name:
        return "timeout"
    if name in ("ConnectionResetError", "ConnectionRefusedError", "ConnectionAbortedError", "BrokenPipeError",
                "ConnectionError", "ConnectError", "ReadError", "WriteError", "NetworkError",
                "RemoteProtocolError", "ClientConnectionError", "ClientConnectorError", "ServerDisconnectedError",
                "RemoteDisconnected"):  # fmt: skip
        return "network_error"
    return "unclassified"


def _status_from(message: str) -> int | None:
    match = _RESPONSE_STATUS.search(message)
    return int(match.group(1)) if match else None


def _finite(value: object) -> bool:
    """A number that is no NaN nor infinity (an int of any size is: math.isfinite would overflow on it)."""
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and math.isfinite(value))


def _checked(data: dict[str, object], bad: Callable[[str], LogFormatError]) -> None:
    """Raises bad(reason) unless the data has the fields brace writes, of their types."""
    kind = data.get("kind")
    if kind not in EVENT_KINDS:
        raise bad(f"'kind' must be one of {', '.join(EVENT_KINDS)}, got {kind!r:.80}")
    for name, types, what in (("operation", str, "a string"), ("at", (int, float), "a number"),
                              ("duration", (int, float), "a number"), ("attempt", int, "an integer"),
                              ("outcome", str, "a string"), ("detail", str, "a string")):  # fmt: skip
        value = data.get(name, "" if name == "detail" else None)
        if isinstance(value, bool) or not isinstance(value, types):
            raise bad(f"{name!r} must be {what}, got {type(value).__name__}")
    for name, types, what in (("correlation_id", str, "a string"), ("time", (int, float), "a number")):
        value = data.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, types)):
            raise bad(f"{name!r} must be {what} or null, got {type(value).__name__}")
    error = data.get("error")
    if error is not None and not (isinstance(error, dict) and isinstance(error.get("type"), str)
                                  and isinstance(error.get("message"), str)):  # fmt: skip
        raise bad("'error' must be null or an object with string 'type' and 'message'")
    frames = None if error is None else error.get("frames")
    if frames is not None and not (isinstance(frames, list) and all(isinstance(frame, str) for frame in frames)):
        raise bad("'error'.'frames' must be absent, null or a list of strings")
    classification = data.get("classification")
    if classification is not None and not (isinstance(classification, dict)
                                           and isinstance(classification.get("category"), str)):  # fmt: skip
        raise bad("'classification' must be null or an object with a string 'category'")


def _hostile(data: dict[str, Any]) -> str | None:
    """Why the event's numbers are no clock's (set aside), or None."""
    at, duration, stamp = data["at"], data["duration"], data.get("time")
    if not _finite(at) or abs(at) > _TIME_LIMIT:
        return f"'at' is {at!r:.40}, no clock's time"
    if not _finite(duration) or not 0 <= duration <= _TIME_LIMIT:
        return f"'duration' is {duration!r:.40}, no duration"
    if stamp is not None and (not _finite(stamp) or abs(stamp) > _TIME_LIMIT):
        return f"'time' is {stamp!r:.40}, no clock's time"
    return None


def _record(data: dict[str, Any], where: str, loaded: Loaded, path: str | None, line: int | None) -> None:
    """Validates one event's data; appends its Record, sets it aside, or raises LogFormatError."""
    _checked(data, lambda reason: LogFormatError(path=path, line=line, reason=reason))
    hostile = _hostile(data)
    if hostile is not None:
        loaded.skip(where, hostile)
        return
    error, classification = data.get("error"), data.get("classification")
    status: int | None = None
    if classification is not None:
        raw_status = classification.get("status")
        if isinstance(raw_status, int) and not isinstance(raw_status, bool) and 100 <= raw_status <= 599:
            status = raw_status
    error_type = None if error is None else error["type"]
    error_message = None if error is None else error["message"]
    if status is None and error_message is not None:
        status = _status_from(error_message)
    category = None
    if classification is not None:
        category = classification["category"]
    elif error_type is not None and error_message is not None:
        category = _inferred_category(error_type, error_message, status)
    frames = () if error is None else tuple(frame[:_FRAME_TEXT] for frame in (error.get("frames") or ())[:_FRAMES])
    stamp = data.get("time")
    loaded.records.append(Record(
        kind=data["kind"], operation=data["operation"], dependency=dependency_of(data["operation"]),
        correlation_id=data.get("correlation_id"), attempt=data["attempt"], at=float(data["at"]),
        duration=float(data["duration"]), outcome=data["outcome"], detail=data.get("detail", ""),
        category=category, status=status, error_type=error_type, error_message=error_message,
        ran=data.get("ran", True) is not False, time=None if stamp is None else float(stamp), line=line, frames=frames,
    ))  # fmt: skip


def _lines(path: str) -> Iterator[tuple[int, str]]:
    try:
        with open(path, "rb") as lines:
            for number, raw in enumerate(lines, 1):
                try:
                    yield number, raw.decode("utf-8")
                except UnicodeDecodeError as error:
                    raise LogFormatError(path=path, line=number, reason=f"not UTF-8 text ({error.reason})") from None
    except OSError as error:
        raise LogFormatError(path=path, line=None, reason=f"cannot read the file: {error.strerror or error}") from None


def _load_file(path: str) -> Loaded:
    loaded = Loaded(source=path)
    first: int | None = None  # the first line that is not blank
    try:
        for number, text in _lines(path):
            if not text.strip():
                continue
            first = number if first is None else first
            try:
                data = json.loads(text)
            except (ValueError, RecursionError) as error:
                raise LogFormatError(path=path, line=number, reason=f"not JSON ({str(error)[:120]})") from None
            if not isinstance(data, dict):
                raise LogFormatError(path=path, line=number, reason=f"not a JSON object but a {type(data).__name__}")
            _record(data, f"line {number}", loaded, path, number)
    except LogFormatError as error:
        document = _json_document(path) if error.line is not None and error.line == first else None
        if document is not None:
            raise LogFormatError(path=path, line=None, reason=document) from None
        raise
    return loaded


def _json_document(path: str) -> str | None:
    """Why a file whose first line is no event is one JSON document (a report, the demo's
    --json output) rather than a log, with what to read instead; None when it is not one."""
    try:
        if os.path.getsize(path) > _DOCUMENT_LIMIT:
            return None
        with open(path, encoding="utf-8") as file:
            data = json.load(file)
    except (OSError, ValueError, RecursionError):  # not one JSON value either: the line's own error stands
        return None
    if isinstance(data, dict) and "kind" in data:  # one event of brace's, malformed: the line's error says how
        return None
    what = "a JSON document, not a recovery log (JSON lines: one event a line, as a JsonLinesSink writes)"
    if isinstance(data, dict) and "attempts_logged" in data and "all_targets_met" in data:
        return (f"{what}; it looks like the output of `brace demo --json`: the demo writes its recovery log "
                "with --log (`brace demo --log run.jsonl`), and `brace report run.jsonl` reads that")
    if isinstance(data, dict) and "fingerprints" in data and "totals" in data:
        return f"{what}; it looks like the output of `brace report --json`: report on the log it was made from"
    return f"{what}; `brace demo --log run.jsonl` writes one, for instance"


def _load_events(events: Iterable[object], source: str) -> Loaded:
    loaded = Loaded(source=source)
    for index, event in enumerate(events, 1):
        if not isinstance(event, RecoveryEvent):
            raise TypeError(f"source must hold RecoveryEvents, got {type(event).__name__} (item {index})")
        _record(event_dict(event), f"event {index}", loaded, None, None)
    return loaded


def load(source: object) -> Loaded:
    """Reads a recovery log back.

    Args:
        source: A JSON-lines file's path (str or os.PathLike, as JsonLinesSink writes it),
            a JsonLinesSink (flushed, then its file read), a MemorySink (its events), a
            RecoveryLog (the events of its MemorySinks, or the file of its JsonLinesSink),
            or an iterable of RecoveryEvents.

    Returns:
        The records, with the events set aside for hostile numbers.

    Raises:
        LogFormatError: For a file that cannot be read, or a line that is not one of brace's
            events (naming the file and the line).
        TypeError: For a source of none of those kinds, or a RecoveryLog with neither sink.
    """
    if isinstance(source, (str, os.PathLike)):
        return _load_file(os.fspath(source))
    if isinstance(source, JsonLinesSink):
        source.flush(timeout=30.0)
        return _load_file(source.path)
    if isinstance(source, MemorySink):
        return _load_events(source.events(), repr(source))
    if isinstance(source, RecoveryLog):
        memories = [sink for sink in source.sinks if isinstance(sink, MemorySink)]
        if memories:
            return _load_events((event for sink in memories for event in sink.events()), repr(source))
        files = [sink for sink in source.sinks if isinstance(sink, JsonLinesSink)]
        if files:
            return load(files[0])
        raise TypeError("source: a RecoveryLog is read through its MemorySink or JsonLinesSink, and this one has "
                        "neither")  # fmt: skip
    if isinstance(source, Iterable) and not isinstance(source, (bytes, dict)):
        return _load_events(source, "events")
    raise TypeError("source must be a JSON-lines path, a JsonLinesSink, a MemorySink, a RecoveryLog or "
                    f"RecoveryEvents, got {type(source).__name__}")  # fmt: skip
