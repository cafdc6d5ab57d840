"""brace.recovery_log: correlation ids across threads and tasks, event_dict, the
sinks (logging, memory, JSON lines) and RecoveryLog, alone and listening to a Recovery.

Waits that must end use a timeout far longer than any test (LONG), so no
assertion depends on how fast the machine is.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

import brace
from brace.recovery import _log as recovery_log
from brace.classify import DEFAULT_CLASSIFIER
from brace.recovery import RecoveryEvent
from brace.recovery_log import (
    JsonLinesSink,
    LoggingSink,
    MemorySink,
    RecoveryLog,
    correlation,
    correlation_id,
    event_dict,
    new_correlation_id,
)
from brace.testing import FakeClock

LONG = 60.0  # a timeout no test reaches

_REQUEST = httpx.Request("GET", "https://sheets.example/v4/values")


def httpx_status(status: int) -> httpx.HTTPStatusError:
    response = httpx.Response(status, request=_REQUEST)
    return httpx.HTTPStatusError(f"status {status}", request=_REQUEST, response=response)


class Unprintable(Exception):
    """A library error whose __str__ needs attributes a hand-built instance lacks."""

    def __str__(self) -> str:
        raise AttributeError("response")


def event(kind: str = "attempt", *, error: object = None, correlation_id: str | None = None,
          **fields: Any) -> RecoveryEvent:  # fmt: skip
    """A RecoveryEvent; a failure's classification is the default classifier's verdict on its error."""
    values: dict[str, Any] = {"operation": "fetch_sheet", "attempt": 1, "at": 12.5, "duration": 0.25,
                              "outcome": "success" if error is None else "failure", "detail": ""}  # fmt: skip
    values.update(fields)
    if error is not None and "classification" not in fields:
        values["classification"] = DEFAULT_CLASSIFIER.classify(error)
    return RecoveryEvent(kind=kind, error=error, correlation_id=correlation_id, **values)  # type: ignore[arg-type]


def in_a_thread(fn: Callable[[], object]) -> object:
    results: list[object] = []
    worker = threading.Thread(target=lambda: results.append(fn()))
    worker.start()
    worker.join(LONG)
    return results[0]


# -- correlation ids -------------------------------------------------------------------


class TestCorrelation:
    def test_sets_the_id_for_the_block_and_restores_none(self) -> None:
        assert correlation_id() is None
        with correlation("req-42") as given_id:
            assert given_id == "req-42"
            assert correlation_id() == "req-42"
        assert correlation_id() is None

    def test_a_new_id_when_none_is_given(self) -> None:
        with correlation() as first, correlation() as second:
            assert correlation_id() == second
        assert len(first) == 32 and int(first, 16) >= 0
        assert first != second
        assert new_correlation_id() != new_correlation_id()

    def test_nesting_restores_the_outer_id_even_after_an_error(self) -> None:
        with correlation("outer"):
            with pytest.raises(KeyError), correlation("inner"):
                assert correlation_id() == "inner"
                raise KeyError("x")
            assert correlation_id() == "outer"
        assert correlation_id() is None

    @pytest.mark.parametrize("bad, error", [(42, TypeError), (b"req", TypeError), ("", ValueError)])
    def test_an_id_must_be_a_non_empty_str(self, bad: object, error: type[Exception]) -> None:
        with pytest.raises(error, match="^id must be a non-empty str or None"):
            with correlation(bad):  # type: ignore[arg-type]
                pass

    def test_a_plain_thread_starts_without_the_id_copy_context_carries_it(self) -> None:
        # Threads start with an empty context, except where the interpreter makes
        # them inherit it (Python 3.14+, sys.flags.thread_inherit_context).
        inherits = bool(getattr(sys.flags, "thread_inherit_context", 0))
        with correlation("req-7"):
            assert in_a_thread(correlation_id) == ("req-7" if inherits else None)
            carried = contextvars.copy_context()
            assert in_a_thread(lambda: carried.run(correlation_id)) == "req-7"

    def test_tasks_and_to_thread_carry_the_id(self) -> None:
        async def main() -> tuple[object, ...]:
            with correlation("req-9"):
                in_task = await asyncio.create_task(_read_after_a_switch())
                in_thread = await asyncio.to_thread(correlation_id)
            return in_task, in_thread, correlation_id()

        assert asyncio.run(main()) == ("req-9", "req-9", None)

    def test_concurrent_tasks_keep_their_own_ids(self) -> None:
        async def request(name: str) -> list[str | None]:
            seen = []
            with correlation(name):
                for _ in range(3):
                    await asyncio.sleep(0)  # the other tasks run here
                    seen.append(correlation_id())
            seen.append(correlation_id())
            return seen

        async def main() -> list[list[str | None]]:
            return list(await asyncio.gather(*(request(f"req-{n}") for n in range(5))))

        assert asyncio.run(main()) == [[f"req-{n}"] * 3 + [None] for n in range(5)]


async def _read_after_a_switch() -> str | None:
    await asyncio.sleep(0)
    return correlation_id()


# -- event_dict --------------------------------------------------------------------


class TestEventDict:
    def test_a_failure(self) -> None:
        data = event(error=httpx_status(504), attempt=2, detail="refresh: ok", correlation_id="req-1")
        assert event_dict(data) == {
            "kind": "attempt",
            "operation": "fetch_sheet",
            "correlation_id": "req-1",
            "attempt": 2,
            "at": 12.5,
            "duration": 0.25,
            "outcome": "failure",
            "detail": "refresh: ok",
            "classification": {"category": "timeout", "severity": "MEDIUM", "transient": True, "retryable": True,
                               "status": 504, "retry_after": None},  # fmt: skip
            "error": {"type": "httpx.HTTPStatusError", "message": "status 504", "frames": []},  # never raised
            "ran": True,
        }

    def test_a_success_has_no_classification_or_error(self) -> None:
        data = event_dict(event())
        assert data["classification"] is None and data["error"] is None
        assert data["outcome"] == "success"

    def test_an_error_whose_str_raises(self) -> None:
        data = event_dict(event(error=Unprintable()))
        assert data["error"] == {"type": "test_recovery_log.Unprintable",
                                 "message": "<str() raised AttributeError>", "frames": []}  # fmt: skip

    def test_an_error_whose_class_has_no_str_module(self) -> None:
        class Generated(Exception):
            pass

        Generated.__module__ = None  # type: ignore[assignment]
        data = event_dict(event(error=Generated("quota")))
        assert data["error"] == {"type": "TestEventDict.test_an_error_whose_class_has_no_str_module.<locals>.Generated",
                                 "message": "quota", "frames": []}  # fmt: skip

    def test_a_raised_error_has_its_innermost_frames(self, tmp_path: Path) -> None:
        def read_row() -> None:
            raise ValueError("row 7 is malformed")  # not retried: one attempt

        def fetch_sheet() -> None:
            read_row()

        path = tmp_path / "frames.jsonl"
        log = RecoveryLog(JsonLinesSink(path))
        recovery = brace.Recovery(name="fetch_sheet", escalation=brace.EscalationPolicy())
        recovery.add_listener(log)
        with pytest.raises(brace.RecoveryFailed):
            recovery.call(fetch_sheet)
        log.close()
        where = "TestEventDict.test_a_raised_error_has_its_innermost_frames.<locals>."
        failed = next(json.loads(line) for line in path.read_text().splitlines() if '"attempt"' in line)
        # Innermost first, module and function only: no file, line or local; brace's own frames left out.
        assert failed["error"]["frames"] == [f"test_recovery_log:{where}read_row", f"test_recovery_log:{where}fetch_sheet"]

    def test_the_server_wait_is_a_float(self) -> None:
        response = httpx.Response(429, request=_REQUEST, headers={"Retry-After": "7"})
        error = httpx.HTTPStatusError("slow down", request=_REQUEST, response=response)
        classification = event_dict(event(error=error))["classification"]
        assert isinstance(classification, dict)
        assert classification["retry_after"] == 7.0 and isinstance(classification["retry_after"], float)
        assert classification["category"] == "rate_limited"

    @given(
        kind=st.sampled_from(["attempt_started", "attempt", "heal", "undo", "fallback", "escalation", "recovered", "dead_letter",
                              "breaker"]),
        operation=st.text(),
        attempt=st.integers(1, 10**6),
        at=st.floats(0, 1e9),
        duration=st.floats(0, 1e6),
        outcome=st.text(),
        detail=st.text(),
        error=st.sampled_from([None, TimeoutError("read timed out"), Unprintable(), ValueError("é\x00\n"),
                               ConnectionResetError(104, "reset"), httpx_status(429), httpx_status(503)]),
        cid=st.none() | st.text(min_size=1),
    )  # fmt: skip
    def test_is_json_able(self, kind: str, operation: str, attempt: int, at: float, duration: float, outcome: str,
                          detail: str, error: object, cid: str | None) -> None:  # fmt: skip
        data = event_dict(event(kind, error=error, operation=operation, attempt=attempt, at=at, duration=duration,
                                outcome=outcome, detail=detail, correlation_id=cid))  # fmt: skip
        assert json.loads(json.dumps(data, allow_nan=False)) == data


# -- LoggingSink -----------------------------------------------------------------------


class TestLoggingSink:
    def test_one_readable_line_with_the_fields_in_extra(self, caplog: pytest.LogCaptureFixture) -> None:
        failure = event(error=httpx_status(504), attempt=2, duration=0.103, correlation_id="req-3")
        with caplog.at_level(logging.INFO, logger="brace.recovery"):
            LoggingSink()(failure)
        [record] = caplog.records
        assert record.name == "brace.recovery" and record.levelno == logging.INFO
        assert record.brace_event == event_dict(failure)  # type: ignore[attr-defined]
        message = record.getMessage()
        assert "\n" not in message
        assert message.startswith("fetch_sheet attempt #2 failure in 0.103s [timeout HTTP 504]: "
                                  "httpx.HTTPStatusError: status 504")  # fmt: skip

    def test_a_logger_and_level_of_ones_own(self, caplog: pytest.LogCaptureFixture) -> None:
        logger = logging.getLogger("app.recovery")
        sink = LoggingSink(logger, level=logging.DEBUG)
        with caplog.at_level(logging.INFO, logger="app.recovery"):
            sink(event())  # below the logger's level: not built, not logged
        assert caplog.records == []
        with caplog.at_level(logging.DEBUG, logger="app.recovery"):
            sink(event("heal", outcome="ok", detail="reconnect"))
        [record] = caplog.records
        assert record.levelno == logging.DEBUG
        assert record.getMessage() == "fetch_sheet heal #1 ok in 0.250s (reconnect)"

    def test_a_failing_logger_is_reported_not_raised(self, caplog: pytest.LogCaptureFixture) -> None:
        logger = logging.getLogger("broken.recovery")

        def explode(record: logging.LogRecord) -> bool:
            raise RuntimeError("filter broke")

        logger.addFilter(explode)
        try:
            with caplog.at_level(logging.INFO):
                sink = LoggingSink(logger)
                for _ in range(101):
                    sink(event())
        finally:
            logger.removeFilter(explode)
        reports = [record for record in caplog.records if record.name == "brace"]
        assert [record.getMessage() for record in reports] == [
            "brace: LoggingSink('broken.recovery') failed to log an event (failure 1)",
            "brace: LoggingSink('broken.recovery') failed to log an event (failure 101)",
        ]

    @pytest.mark.parametrize("kwargs, message", [
        ({"logger": 3}, "logger must be a logging.Logger or a logger name, got int"),
        ({"level": "INFO"}, r"level must be a logging level \(an int\), got str"),
        ({"level": True}, r"level must be a logging level \(an int\), got bool"),
    ])  # fmt: skip
    def test_bad_configuration(self, kwargs: dict[str, Any], message: str) -> None:
        with pytest.raises(TypeError, match=message):
            LoggingSink(**kwargs)


# -- MemorySink ------------------------------------------------------------------------


class TestMemorySink:
    def test_keeps_the_newest_and_counts_what_it_evicts(self) -> None:
        sink = MemorySink(capacity=3)
        events = [event(attempt=n) for n in range(1, 6)]
        for each in events:
            sink(each)
        assert sink.events() == events[2:]
        assert (len(sink), sink.capacity, sink.evicted) == (3, 3, 2)
        sink.clear()
        assert (sink.events(), len(sink), sink.evicted) == ([], 0, 2)
        sink.close()
        sink(events[0])
        assert sink.events() == [events[0]]

    @pytest.mark.parametrize("capacity, held, evicted", [(100_000, 8_000, 0), (100, 100, 7_900)])
    def test_threads_lose_nothing(self, capacity: int, held: int, evicted: int) -> None:
        sink = MemorySink(capacity=capacity)
        start = threading.Barrier(8)

        def record() -> None:
            start.wait()
            for n in range(1_000):
                sink(event(attempt=n + 1))

        workers = [threading.Thread(target=record) for _ in range(8)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(LONG)
        assert (len(sink), sink.evicted) == (held, evicted)

    @pytest.mark.parametrize("capacity, error", [(0, ValueError), (-1, ValueError), (2.5, TypeError),
                                                 (True, TypeError)])  # fmt: skip
    def test_bad_capacity(self, capacity: object, error: type[Exception]) -> None:
        with pytest.raises(error, match="^capacity must be an int from 1 to 2\\*\\*63 - 1"):
            MemorySink(capacity)  # type: ignore[arg-type]


# -- JsonLinesSink ---------------------------------------------------------------------


def read_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


class GatedFile:
    """Stands in for the sink's file: each write waits for the gate (a writer that is stuck)."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.gate = threading.Event()
        self.entered = threading.Event()

    def write(self, text: str) -> int:
        self.entered.set()
        assert self.gate.wait(LONG)
        return int(self.real.write(text))

    def flush(self) -> None:
        self.real.flush()

    def close(self) -> None:
        self.real.close()


def wait_until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + LONG
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.001)


class RecordingFile:
    """Stands in for the sink's file: records each write and flush with the thread that made it."""

    def __init__(self) -> None:
        self.steps: list[tuple[str, threading.Thread, str]] = []
        self.buffered: list[str] = []
        self.flushed: list[str] = []  # what reached "the OS"

    def write(self, text: str) -> int:
        self.steps.append(("write", threading.current_thread(), text))
        self.buffered.append(text)
        return len(text)

    def flush(self) -> None:
        self.steps.append(("flush", threading.current_thread(), ""))
        self.flushed += self.buffered
        self.buffered.clear()

    def close(self) -> None:
        pass


@pytest.fixture
def sink_path(tmp_path: Path) -> Path:
    return tmp_path / "events.jsonl"


class TestJsonLinesSink:
    def test_one_json_object_per_line_with_the_wall_time(self, sink_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        sink_path.write_text('{"earlier": true}\n', encoding="utf-8")
        events = [event(attempt=1, error=TimeoutError("read timed out"), correlation_id="req-5"),
                  event("heal", outcome="ok", detail="reconnect"), event(attempt=2)]  # fmt: skip
        wall_clock = [1_777_000_000.25]  # the real one may step back between two readings
        monkeypatch.setattr(time, "time", lambda: wall_clock[0])
        sink = JsonLinesSink(sink_path)
        for each in events:
            sink(each)
            wall_clock[0] += 0.5
        assert sink.flush(LONG)
        earlier, *lines = read_lines(sink_path)
        assert earlier == {"earlier": True}  # appended, not truncated
        assert [{key: value for key, value in line.items() if key != "time"} for line in lines] == [
            event_dict(each) for each in events
        ]
        assert [line["time"] for line in lines] == [1_777_000_000.25, 1_777_000_000.75, 1_777_000_001.25]
        assert list(lines[0])[0] == "time"
        sink.close()
        assert sink.dropped == 0

    def test_writes_reach_the_file_without_a_flush(self, sink_path: Path) -> None:
        sink = JsonLinesSink(str(sink_path))
        try:
            sink(event())
            deadline = time.monotonic() + LONG
            while not sink_path.read_text(encoding="utf-8") and time.monotonic() < deadline:
                time.sleep(0.01)
            assert len(read_lines(sink_path)) == 1
        finally:
            sink.close()

    def test_close_writes_everything_then_drops(self, sink_path: Path) -> None:
        sink = JsonLinesSink(sink_path, max_queue=100_000)
        for n in range(5_000):
            sink(event(attempt=n + 1))
        sink.close()
        assert [line["attempt"] for line in read_lines(sink_path)] == list(range(1, 5_001))
        sink(event())
        sink.close()  # idempotent
        assert sink.dropped == 1
        assert sink.flush(0)
        assert len(read_lines(sink_path)) == 5_000

    def test_a_full_queue_drops_after_a_short_wait_with_one_warning_per_burst(
        self, sink_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        sink = JsonLinesSink(sink_path, max_queue=2)
        gated = GatedFile(sink._file)
        sink._file = gated  # type: ignore[assignment]

        def burst(first: int) -> None:
            """One event the writer gets stuck on, then two that fill the queue."""
            gated.gate.clear()
            gated.entered.clear()
            sink(event(attempt=first))
            assert gated.entered.wait(LONG)
            sink(event(attempt=first + 1))
            sink(event(attempt=first + 2))

        try:
            with caplog.at_level(logging.WARNING, logger="brace"):
                burst(1)
                started = time.monotonic()
                for n in range(4, 7):
                    sink(event(attempt=n))
                assert time.monotonic() - started >= 3 * 0.05 * 0.9  # each waited its 50 ms
                assert sink.dropped == 3
                assert not sink.flush(0.01)  # the writer is stuck
                gated.gate.set()
                assert sink.flush(LONG)
                burst(7)  # accepted again: the first burst is over
                sink(event(attempt=10))
                sink(event(attempt=11))
                gated.gate.set()
            warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
        finally:
            gated.gate.set()
            sink.close()
        assert [line["attempt"] for line in read_lines(sink_path)] == [1, 2, 3, 7, 8, 9]
        assert sink.dropped == 5
        assert warnings == [f"brace: JsonLinesSink({str(sink_path)!r}) is dropping events: its queue of 2 is full "
                            f"(dropped so far: {dropped})" for dropped in (1, 4)]  # fmt: skip

    def test_a_caller_gives_up_on_the_lock_at_its_deadline(self, sink_path: Path) -> None:
        sink = JsonLinesSink(sink_path)
        try:
            with sink._lock:  # held by someone else for as long as it takes
                caller = threading.Thread(target=sink, args=(event(),))
                caller.start()
                caller.join(LONG)
                assert not caller.is_alive()  # it returned while the lock was still held
            assert sink.dropped == 1
        finally:
            sink.close()

    def test_a_waiter_never_handed_room_is_dropped_at_its_deadline_without_the_lock(self, sink_path: Path) -> None:
        sink = JsonLinesSink(sink_path, max_queue=1)
        gated = GatedFile(sink._file)
        sink._file = gated  # type: ignore[assignment]
        try:
            sink(event(attempt=1))
            assert gated.entered.wait(LONG)  # the writer is stuck on 1
            sink(event(attempt=2))  # the queue is full
            caller = threading.Thread(target=sink, args=(event(attempt=3),))
            caller.start()
            wait_until(lambda: len(sink._waiters) == 1)
            with sink._lock:  # nobody can hand it room, and it cannot take the lock back
                caller.join(LONG)
                assert not caller.is_alive()
                assert sink.dropped == 1 and len(sink._waiters) == 1  # it left its place: decided
            gated.gate.set()
            assert sink.flush(LONG)
            assert not sink._waiters  # the writer skipped it
        finally:
            gated.gate.set()
            sink.close()
        assert [line["attempt"] for line in read_lines(sink_path)] == [1, 2]

    def test_waiters_are_handed_room_first_come_first_served(self, sink_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
        sink = JsonLinesSink(sink_path, max_queue=1)
        gated = GatedFile(sink._file)
        sink._file = gated  # type: ignore[assignment]
        monkeypatch.setattr(recovery_log, "_FULL_WAIT", LONG)  # room is handed to them, never waited out
        callers: list[threading.Thread] = []
        try:
            sink(event(attempt=1))
            assert gated.entered.wait(LONG)
            sink(event(attempt=2))
            for attempt in (3, 4, 5):
                callers.append(threading.Thread(target=sink, args=(event(attempt=attempt),)))
                callers[-1].start()
                wait_until(lambda: len(sink._waiters) == attempt - 2)  # in this order
            gated.gate.set()
            for caller in callers:
                caller.join(LONG)
            assert sink.flush(LONG) and sink.dropped == 0
        finally:
            gated.gate.set()
            sink.close()
        assert [line["attempt"] for line in read_lines(sink_path)] == [1, 2, 3, 4, 5]

    def test_close_drops_the_waiters(self, sink_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        sink = JsonLinesSink(sink_path, max_queue=1)
        gated = GatedFile(sink._file)
        sink._file = gated  # type: ignore[assignment]
        monkeypatch.setattr(recovery_log, "_FULL_WAIT", LONG)  # only close() can end its wait
        try:
            sink(event(attempt=1))
            assert gated.entered.wait(LONG)
            sink(event(attempt=2))
            caller = threading.Thread(target=sink, args=(event(attempt=3),))
            caller.start()
            wait_until(lambda: len(sink._waiters) == 1)
            closer = threading.Thread(target=sink.close)
            closer.start()
            caller.join(LONG)
            assert not caller.is_alive() and sink.dropped == 1  # dropped by close, not by its deadline
            gated.gate.set()
            closer.join(LONG)
        finally:
            gated.gate.set()
            sink.close()
        assert [line["attempt"] for line in read_lines(sink_path)] == [1, 2]

    def test_a_write_ahead_record_reaches_the_os_before_the_call_returns(self, sink_path: Path) -> None:
        sink = JsonLinesSink(sink_path)
        real = sink._file
        recording = RecordingFile()
        sink._file = recording  # type: ignore[assignment]
        try:
            started = event("attempt_started", outcome="started", correlation_id="req-1")
            sink(started)
            caller = threading.current_thread()
            assert [(step, thread) for step, thread, _ in recording.steps] == [("write", caller), ("flush", caller)]
            assert [json.loads(line) for line in recording.flushed] == [
                {"time": json.loads(recording.flushed[0])["time"], **event_dict(started)}]
            sink(event())  # other kinds go through the queue, to the writer thread
            assert sink.flush(LONG)
            assert recording.steps[2][1] is sink._writer and recording.steps[2][0] == "write"
        finally:
            sink.close()
            real.close()
        sink(event("attempt_started"))
        assert sink.dropped == 1  # after close(): dropped, like the others

    def test_lines_written_through_and_queued_never_interleave(self, sink_path: Path) -> None:
        sink = JsonLinesSink(sink_path)

        def log(n: int) -> None:
            for attempt in range(1, 201):
                sink(event("attempt_started", outcome="started", attempt=attempt, detail=f"thread {n}" * 50))
                sink(event(attempt=attempt, detail=f"thread {n}" * 50))

        threads = [threading.Thread(target=log, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(LONG)
        sink.close()
        lines = read_lines(sink_path)  # each line one whole JSON object
        assert sorted((line["kind"], line["detail"], line["attempt"]) for line in lines) == sorted(
            (kind, f"thread {n}" * 50, attempt) for kind in ("attempt_started", "attempt") for n in range(8)
            for attempt in range(1, 201))  # fmt: skip
        assert sink.dropped == 0

    def test_a_write_ahead_record_survives_a_kill_right_after_the_call(self, sink_path: Path) -> None:
        script = textwrap.dedent("""
            import sys
            from brace.recovery import RecoveryEvent
            from brace.recovery_log import JsonLinesSink
            sink = JsonLinesSink(sys.argv[1])
            sink(RecoveryEvent("attempt_started", "charge", 1, 0.0, 0.0, "started", correlation_id="order-7"))
            print("logged", flush=True)
            sys.stdin.readline()  # mid-attempt until killed
        """)
        child = subprocess.Popen([sys.executable, "-c", script, str(sink_path)], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, text=True)  # fmt: skip
        try:
            assert child.stdout is not None and child.stdout.readline() == "logged\n"
        finally:
            os.kill(child.pid, signal.SIGKILL)  # no atexit, no close, no flush
            assert child.wait(LONG) == -signal.SIGKILL
        (line,) = read_lines(sink_path)
        assert (line["kind"], line["operation"], line["correlation_id"]) == ("attempt_started", "charge", "order-7")

    def test_write_failures_are_reported_not_raised(self, sink_path: Path,
                                                    caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
        class FullDisk:
            def write(self, text: str) -> int:
                raise OSError(28, "No space left on device")

            def flush(self) -> None:
                pass

            def close(self) -> None:
                pass

        sink = JsonLinesSink(sink_path)
        real = sink._file
        sink._file = FullDisk()  # type: ignore[assignment]
        with caplog.at_level(logging.ERROR, logger="brace"):
            sink(event())
            sink(event())
            assert sink.flush(LONG)
            sink.close()
        real.close()
        assert [record.getMessage() for record in caplog.records] == [
            f"brace: JsonLinesSink({str(sink_path)!r}) failed to write (failure 1)"
        ]

    def test_a_file_that_cannot_be_opened_fails_at_construction(self, tmp_path: Path) -> None:
        with pytest.raises(OSError):
            JsonLinesSink(tmp_path / "missing" / "events.jsonl")

    @pytest.mark.parametrize("path, kwargs, error, message", [
        (3, {}, TypeError, "path must be a str or os.PathLike, got int"),
        ("x.jsonl", {"max_queue": 0}, ValueError, "max_queue must be an int from 1 to 2\\*\\*63 - 1, got 0"),
        ("x.jsonl", {"max_queue": 1.5}, TypeError, "max_queue must be an int from 1 to 2\\*\\*63 - 1, got float"),
    ])  # fmt: skip
    def test_bad_configuration(self, path: object, kwargs: dict[str, Any], error: type[Exception],
                               message: str) -> None:  # fmt: skip
        with pytest.raises(error, match=f"^{message}$"):
            JsonLinesSink(path, **kwargs)  # type: ignore[arg-type]

    def test_a_bad_flush_timeout(self, sink_path: Path) -> None:
        sink = JsonLinesSink(sink_path)
        try:
            with pytest.raises(ValueError, match="^timeout"):
                sink.flush(-1)
        finally:
            sink.close()


# -- RecoveryLog -------------------------------------------------------------------------


class TestRecoveryLog:
    def test_hands_each_event_to_every_sink_in_order_and_counts_kinds(self) -> None:
        seen: list[tuple[str, RecoveryEvent]] = []
        log = RecoveryLog(lambda each: seen.append(("first", each)), lambda each: seen.append(("second", each)))
        events = [event(), event("heal", outcome="ok"), event(attempt=2), event("recovered")]
        for each in events:
            log(each)
        assert seen == [(name, each) for each in events for name in ("first", "second")]
        assert log.events_by_kind() == {"attempt": 2, "heal": 1, "recovered": 1}

    def test_a_sink_that_raises_never_reaches_the_caller(self, caplog: pytest.LogCaptureFixture) -> None:
        def broken(each: RecoveryEvent) -> None:
            raise RuntimeError("sink broke")

        memory = MemorySink()
        log = RecoveryLog(broken, memory)
        with caplog.at_level(logging.ERROR, logger="brace"):
            for n in range(205):
                log(event(attempt=n + 1))
        assert len(memory) == 205  # the sinks after it still get every event
        assert log.events_by_kind() == {"attempt": 205}
        reports = [record for record in caplog.records if record.name == "brace"]
        assert [record.getMessage() for record in reports] == [
            f"brace: recovery log sink {broken!r} failed (failure {n})" for n in (1, 101, 201)
        ]
        assert all(record.exc_info is not None for record in reports)

    def test_counts_are_exact_under_threads(self) -> None:
        log = RecoveryLog(MemorySink(capacity=1))
        kinds = ["attempt", "heal", "fallback", "escalation"]
        start = threading.Barrier(8)

        def record(kind: str) -> None:
            start.wait()
            for _ in range(2_000):
                log(event(kind))

        workers = [threading.Thread(target=record, args=(kinds[n % 4],)) for n in range(8)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(LONG)
        assert log.events_by_kind() == dict.fromkeys(kinds, 4_000)

    def test_close_closes_the_sinks_that_can_be(self, sink_path: Path, caplog: pytest.LogCaptureFixture) -> None:
        class Stubborn:
            def __call__(self, each: RecoveryEvent) -> None:
                pass

            def close(self) -> None:
                raise OSError("cannot close")

        jsonl = JsonLinesSink(sink_path)
        log = RecoveryLog(lambda each: None, Stubborn(), jsonl)
        log(event())
        with caplog.at_level(logging.ERROR, logger="brace"):
            log.close()
        assert len(read_lines(sink_path)) == 1  # closed: flushed
        jsonl(event())
        assert jsonl.dropped == 1
        [report] = caplog.records
        assert report.getMessage().startswith("brace: closing recovery log sink <")

    def test_a_sink_must_be_callable(self) -> None:
        with pytest.raises(TypeError, match="^sinks must be callables taking a RecoveryEvent, got str$"):
            RecoveryLog(MemorySink(), "events.jsonl")  # type: ignore[arg-type]


# -- listening to a Recovery -------------------------------------------------------------


class TestListening:
    def test_every_attempt_made_is_logged(self, clock: FakeClock, sink_path: Path) -> None:
        calls = {"n": 0}

        def fetch(item: int) -> int:
            calls["n"] += 1
            if calls["n"] % 3:  # two failures, then a success: over and over
                raise TimeoutError("read timed out")
            return item

        memory = MemorySink()
        jsonl = JsonLinesSink(sink_path)
        log = RecoveryLog(memory, jsonl, LoggingSink())
        recovery = brace.Recovery(name="fetch")
        recovery.add_listener(log)
        for item in range(30):
            with correlation(f"job-{item}"):
                assert recovery.call(fetch, item) == item
        log.close()
        assert log.events_by_kind()["attempt"] == calls["n"] == 90
        assert log.events_by_kind()["recovered"] == 30
        attempts = [line for line in read_lines(sink_path) if line["kind"] == "attempt"]
        assert len(attempts) == len([each for each in memory.events() if each.kind == "attempt"]) == 90
        assert [line["outcome"] for line in attempts] == ["failure", "failure", "success"] * 30
        assert [line["correlation_id"] for line in attempts] == [f"job-{n // 3}" for n in range(90)]


def test_a_forked_child_makes_other_ids() -> None:
    import os

    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report one id and leave at once
        os.write(write, new_correlation_id().encode())
        os._exit(0)
    os.close(write)
    child = os.read(read, 64).decode()
    os.waitpid(pid, 0)
    mine = new_correlation_id()
    assert len(child) == len(mine) == 32
    assert child[:16] != mine[:16]  # the prefix was drawn again in the child


def called(form: str, recovery: brace.Recovery, fn: Callable[[int], int], item: int) -> int:
    """fn(item) recovered in one of the four ways: decorated (sync: the compiled first
    attempt; async: the steps), or through call / call_async."""

    async def coroutine_fn(x: int) -> int:
        return fn(x)

    if form == "decorated":
        return recovery(fn)(item)
    if form == "call":
        return recovery.call(fn, item)  # type: ignore[return-value]
    if form == "decorated_async":
        return asyncio.run(recovery(coroutine_fn)(item))  # type: ignore[arg-type]
    return asyncio.run(recovery.call_async(coroutine_fn, item))  # type: ignore[return-value]


FORMS = ["decorated", "call", "decorated_async", "call_async"]


class TestFirstTryRecords:
    """A first-try success the compiled first attempt decides reaches every sink as the event
    the steps would have made (made only when a sink reads it), in order, counted."""

    @pytest.mark.parametrize("form", FORMS)
    def test_every_first_try_reaches_every_sink_as_one_event(self, form: str, clock: FakeClock, sink_path: Path,
                                                            caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
        memory, seen, jsonl = MemorySink(), [], JsonLinesSink(sink_path)
        log = RecoveryLog(memory, jsonl, LoggingSink(), seen.append)
        recovery = brace.Recovery(name="fetch", escalation=brace.EscalationPolicy(),
                                  dead_letters=brace.MemoryDeadLetters())  # fmt: skip
        recovery.add_listener(log)
        caplog.set_level(logging.INFO, logger="brace.recovery")
        for item in range(20):
            with correlation(f"job-{item}"):
                assert called(form, recovery, lambda x: x, item) == item
        log.close()
        expected = [RecoveryEvent("attempt", "fetch", 1, clock.now_ns() / 1e9, 0.0, "success",
                                  correlation_id=f"job-{item}") for item in range(20)]  # fmt: skip
        assert memory.events() == seen == expected
        lines = read_lines(sink_path)
        assert all(line.pop("time") > 0 for line in lines)
        assert lines == [event_dict(each) for each in expected]
        assert [record.brace_event for record in caplog.records] == [event_dict(each) for each in expected]  # type: ignore[attr-defined]
        assert log.events_by_kind() == {"attempt": 20}
        assert recovery.stats().first_try == 20

    def test_events_of_calls_keep_their_order_with_failures_between(self) -> None:
        memory = MemorySink()
        recovery = brace.Recovery(name="fetch", escalation=brace.EscalationPolicy(),
                                  dead_letters=brace.MemoryDeadLetters())  # fmt: skip
        recovery.add_listener(RecoveryLog(memory))
        failures = iter([True, False])

        @recovery
        def fetch(fail: bool) -> str:
            if fail and next(failures):
                raise ConnectionResetError("reset")
            return "ok"

        assert [fetch(False), fetch(True), fetch(False)] == ["ok"] * 3
        kinds = [(each.kind, each.outcome) for each in memory.events()]
        assert kinds == [("attempt", "success"), ("attempt", "failure"), ("attempt", "success"),
                         ("recovered", "success"), ("attempt", "success")]  # fmt: skip
        ids = [each.correlation_id for each in memory.events()]
        assert None not in ids and ids[1] == ids[2] == ids[3] and len({ids[0], ids[1], ids[4]}) == 3

    def test_threads_lose_no_first_try_and_miscount_no_eviction(self) -> None:
        memory = MemorySink(capacity=1000)
        log = RecoveryLog(memory)
        recovery = brace.Recovery(escalation=brace.EscalationPolicy(), dead_letters=brace.MemoryDeadLetters())
        recovery.add_listener(log)
        same = recovery(lambda x: x)
        workers = [threading.Thread(target=lambda: [same(n) for n in range(3000)]) for _ in range(6)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(LONG)
        assert log.events_by_kind() == {"attempt": 18_000}
        assert (len(memory), memory.evicted) == (1000, 17_000)
        assert len({each.correlation_id for each in memory.events()}) == 1000  # an id of its own per call

    def test_a_sink_or_listener_that_raises_on_a_first_try_is_reported_and_the_others_still_get_it(
            self, caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
        def broken(event: RecoveryEvent) -> None:
            raise RuntimeError("sink down")

        memory, seen = MemorySink(), []
        log = RecoveryLog(broken, memory)
        recovery = brace.Recovery(name="op", escalation=brace.EscalationPolicy(),
                                  dead_letters=brace.MemoryDeadLetters())  # fmt: skip
        recovery.add_listener(lambda event: 1 / 0)
        recovery.add_listener(log)
        recovery.add_listener(seen.append)
        same = recovery(lambda x: x)
        assert [same(1), same(2)] == [1, 2]
        assert len(memory) == len(seen) == 2 and log.events_by_kind() == {"attempt": 2}
        messages = [record.getMessage() for record in caplog.records]
        assert messages.count("brace: a listener of recovery 'op' failed") == 2
        assert any("recovery log sink" in message and "failure 1" in message for message in messages)

    def test_a_memory_sink_reads_a_record_as_its_event_and_keeps_it_compact(self) -> None:
        memory = MemorySink(capacity=2)
        memory._brace_first_try(("fetch", 3_000_000_000, 500_000_000, "job"))
        memory(event())
        memory._brace_first_try(("fetch", 4_000_000_000, 0, None))
        assert memory.events() == [event(), RecoveryEvent("attempt", "fetch", 1, 4.0, 0.0, "success")]
        assert memory.evicted == 1
