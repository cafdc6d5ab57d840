"""Escalation: explanations, decisions from other threads and tasks, handlers, the policy.

Waits that must end by a decision use a timeout far longer than any test
(LONG), so no assertion depends on how fast the machine is; waits that must
time out use a short one.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import logging
import queue
import threading
from collections.abc import Callable, Coroutine, Iterator
from datetime import timedelta
from typing import Any, ParamSpec

import httpx
import pytest

import brace
from brace.classify import DEFAULT_CLASSIFIER, Category, Classification
from brace.control import control
from brace.escalation import (
    AttemptRecord,
    Decision,
    Escalation,
    EscalationPolicy,
    LoggingHandler,
    Option,
    QueueHandler,
)
from brace.testing import FakeClock

P = ParamSpec("P")

LONG = 60.0  # a timeout no test reaches: these waits end by a decision
SHORT = 0.05  # a timeout these waits reach: nobody decides


@pytest.fixture(autouse=True)
def _no_forced_decisions() -> Iterator[None]:
    control.clear_decisions()
    yield
    control.clear_decisions()


def in_a_loop(test: Callable[P, Coroutine[Any, Any, None]]) -> Callable[P, None]:
    """Runs a coroutine test in a fresh event loop."""

    @functools.wraps(test)
    def run(*args: P.args, **kwargs: P.kwargs) -> None:
        asyncio.run(test(*args, **kwargs))

    return run


def timeout_error() -> TimeoutError:
    return TimeoutError("read timed out")


def classified(error: BaseException) -> Classification:
    return DEFAULT_CLASSIFIER.classify(error)


def attempts(count: int, error: BaseException, *, start: float = 100.0) -> tuple[AttemptRecord, ...]:
    """count failed attempts, 0.25 s each, 1 s apart; a healing action before the second."""
    return tuple(
        AttemptRecord(
            number=n, started=start + (n - 1) * 1.25, duration=0.25, outcome="failure", error=error,
            classification=classified(error), actions=("reset_pool: ok",) if n == 2 else (),
            delay=0.0 if n == 1 else 1.0,
        )
        for n in range(1, count + 1)
    )  # fmt: skip


def escalation(
    *,
    error: BaseException | None = None,
    reason: Any = "attempts",
    count: int = 4,
    options: tuple[Option | str, ...] = tuple(Option),
    operation: str = "fetch_user",
    correlation_id: str | None = None,
) -> Escalation:
    failure = timeout_error() if error is None else error
    return Escalation(
        operation=operation, classification=classified(failure), error=failure, reason=reason,
        timeline=attempts(count, failure), options=options, correlation_id=correlation_id,
    )  # fmt: skip


def deciding_later(esc: Escalation, decision: Decision, started: threading.Event) -> threading.Thread:
    """A thread that decides once `started` is set (by the waiter, just before it waits)."""

    def run() -> None:
        started.wait(LONG)
        esc.decide(decision.option, decision.value, by=decision.by)

    thread = threading.Thread(target=run)
    thread.start()
    return thread


# -- decisions ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("made", "expected"),
    [
        (Decision.retry(), Decision(Option.RETRY, None, "")),
        (Decision.skip(by="ann"), Decision(Option.SKIP, None, "ann")),
        (Decision.abort(by="bob"), Decision(Option.ABORT, None, "bob")),
        (Decision.use({"id": 7}, by="cy"), Decision(Option.USE, {"id": 7}, "cy")),
        (Decision.use(None), Decision(Option.USE, None, "")),
    ],
)
def test_decision_constructors(made: Decision, expected: Decision) -> None:
    assert made == expected


@pytest.mark.parametrize("option", [Option.SKIP, "skip"])
def test_decide_takes_an_option_or_its_value(option: Option | str) -> None:
    esc = escalation()
    assert esc.decide(option, by="ann") is True
    assert esc.decision == Decision(Option.SKIP, None, "ann")


def test_use_decides_with_a_value_and_none_is_a_value() -> None:
    esc = escalation()
    assert esc.decide("use", None) is True
    assert esc.decision == Decision(Option.USE, None, "")


def test_the_first_decision_wins() -> None:
    esc = escalation()
    assert esc.decide(Option.USE, 1, by="first") is True
    assert esc.decide(Option.ABORT, by="second") is False
    assert esc.decision == Decision(Option.USE, 1, "first")


@pytest.mark.parametrize(
    ("option", "value", "error", "message"),
    [
        ("maybe", None, ValueError,
         r"option must be a brace.Option or one of 'retry', 'skip', 'abort', 'use', got 'maybe'"),
        (3, None, TypeError, r"option must be a brace.Option or one of 'retry', 'skip', 'abort', 'use', got int"),
        (Option.RETRY, None, ValueError,
         r"option must be one of this escalation's options \('skip', 'abort'\), got 'retry'"),
        (Option.ABORT, 5, ValueError, r"value is only for Option.USE"),
    ],
)
def test_decide_refuses(option: Any, value: object, error: type[Exception], message: str) -> None:
    esc = escalation(options=(Option.SKIP, Option.ABORT))
    with pytest.raises(error, match=message):
        esc.decide(option, value)
    assert esc.decision is None


def test_first_decision_wins_under_racing_threads() -> None:
    esc = escalation()
    barrier = threading.Barrier(8)
    won: list[int] = []

    def decide(n: int) -> None:
        barrier.wait()
        if esc.decide(Option.USE, n, by=f"thread {n}"):
            won.append(n)

    threads = [threading.Thread(target=decide, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(won) == 1
    assert esc.decision == Decision(Option.USE, won[0], f"thread {won[0]}")


# -- waiting -----------------------------------------------------------------------


def test_wait_returns_a_decision_taken_in_another_thread() -> None:
    esc = escalation()
    started = threading.Event()
    thread = deciding_later(esc, Decision.retry(by="ops"), started)
    started.set()
    assert esc.wait(LONG) == Decision(Option.RETRY, None, "ops")
    thread.join()


def test_wait_times_out_with_none() -> None:
    assert escalation().wait(SHORT) is None


def test_wait_returns_at_once_once_decided() -> None:
    esc = escalation()
    esc.decide("abort")
    assert esc.wait(0) == Decision.abort()
    assert esc.wait(timedelta(seconds=LONG)) == Decision.abort()


@pytest.mark.parametrize(("timeout", "error"), [(-1, ValueError), (float("nan"), ValueError), ("1", TypeError)])
def test_wait_validates_its_timeout(timeout: object, error: type[Exception]) -> None:
    with pytest.raises(error, match="timeout must be"):
        escalation().wait(timeout)  # type: ignore[arg-type]


@in_a_loop
async def test_wait_async_wakes_on_a_decision_from_another_task() -> None:
    esc = escalation()

    async def decide() -> None:
        await asyncio.sleep(0)
        esc.decide(Option.USE, "cached", by="task")

    task = asyncio.create_task(decide())
    assert await esc.wait_async(LONG) == Decision(Option.USE, "cached", "task")
    await task


@in_a_loop
async def test_wait_async_wakes_on_a_decision_from_another_thread() -> None:
    esc = escalation()
    started = threading.Event()
    thread = deciding_later(esc, Decision.skip(by="thread"), started)
    started.set()
    assert await esc.wait_async(LONG) == Decision(Option.SKIP, None, "thread")
    await asyncio.to_thread(thread.join)


@in_a_loop
async def test_wait_async_times_out_with_none_and_forgets_its_waiter() -> None:
    esc = escalation()
    assert await esc.wait_async(SHORT) is None
    assert esc._async_waiters == []
    assert esc.decide("abort") is True  # nothing left to wake on a dead future


@in_a_loop
async def test_wait_async_cancelled_forgets_its_waiter() -> None:
    esc = escalation()
    task = asyncio.create_task(esc.wait_async(LONG))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert esc._async_waiters == []


@in_a_loop
async def test_many_tasks_wait_for_one_decision() -> None:
    esc = escalation()
    waiting = [asyncio.create_task(esc.wait_async(LONG)) for _ in range(5)]
    await asyncio.sleep(0)
    await asyncio.to_thread(esc.decide, "retry", by="thread")
    assert await asyncio.gather(*waiting) == [Decision(Option.RETRY, None, "thread")] * 5


# -- what a person reads --------------------------------------------------------------


def test_explain_tells_what_why_what_was_tried_and_what_can_be_done() -> None:
    esc = escalation(correlation_id="req-42")
    text = esc.explain()
    lines = text.splitlines()
    assert lines[0] == "Operation 'fetch_user' needs a decision: recovery could not recover it."
    assert "Correlation id: req-42" in lines
    assert "Failure: TIMEOUT (severity MEDIUM; rule builtin:" in text
    assert "Last error: TimeoutError: read timed out" in lines
    assert "Classifier: transient, retryable up to 3 more times; suggests retry_with_backoff" in text
    assert "Why recovery stopped: attempts exhausted: 4 attempts, TIMEOUT allows 3 retries" in lines
    assert "Timeline (4 attempts):" in lines
    timeline = [line.strip() for line in lines if line.startswith("  #")]
    assert timeline == [
        "#1  +0.000 s  took 0.250 s  failure  TimeoutError: read timed out  [TIMEOUT]",
        "#2  +1.250 s  took 0.250 s  after waiting 1.000 s  failure  TimeoutError: read timed out  [TIMEOUT]"
        "  healing: reset_pool: ok",
        "#3  +2.500 s  took 0.250 s  after waiting 1.000 s  failure  TimeoutError: read timed out  [TIMEOUT]",
        "#4  +3.750 s  took 0.250 s  after waiting 1.000 s  failure  TimeoutError: read timed out  [TIMEOUT]",
    ]
    assert lines[-1] == (
        "Options: retry (run it again), skip (go on without a result), abort (raise RecoveryFailed), "
        "use (return a value given instead)"
    )


def test_explain_shows_the_status_the_decision_and_handler_errors() -> None:
    failure = timeout_error()
    esc = Escalation(
        operation="report", classification=dataclasses.replace(classified(failure), status=504, retry_after=2.5),
        error=failure, reason="attempts", options=(Option.ABORT, Option.USE),
    )  # fmt: skip
    esc.record_handler_error("pager: ConnectionError: down")
    esc.decide("use", [1, 2], by="ann")
    text = esc.explain()
    assert "Failure: TIMEOUT (severity MEDIUM, HTTP status 504; rule " in text
    assert "the server asked to wait 2.5 s" in text
    assert "Timeline: no attempts recorded" in text
    assert "Options: abort (raise RecoveryFailed), use (return a value given instead)" in text
    assert "Decided: use [1, 2] by ann" in text
    assert text.endswith("Handler error: pager: ConnectionError: down")


@pytest.mark.parametrize(
    ("reason", "error", "count", "words"),
    [
        ("attempts", timeout_error(), 1, "attempts exhausted: 1 attempt, TIMEOUT allows 3 retries"),
        (
            "not_retryable", PermissionError(13, "Permission denied"), 1,
            "not retryable: PERMISSION_DENIED failures are not retried (the classifier suggests escalate)",
        ),
        ("healing_time", timeout_error(), 2, "healing time ran out: TIMEOUT was not healed within the time allowed"),
        ("fallback_failed", timeout_error(), 4, "fallback failed: no fallback alternative could serve a value for TIMEOUT"),
    ],
)  # fmt: skip
def test_explain_says_why_recovery_stopped(reason: str, error: BaseException, count: int, words: str) -> None:
    esc = escalation(reason=reason, error=error, count=count)
    assert esc.reason_text() == words
    assert f"Why recovery stopped: {words}" in esc.explain().splitlines()


def test_explain_names_a_library_error_by_its_public_module() -> None:
    error = httpx.ReadTimeout("timed out reading")
    assert "Last error: httpx.ReadTimeout: timed out reading" in escalation(error=error).explain()


def test_a_failed_result_is_explained_as_a_result() -> None:
    failure = timeout_error()
    esc = Escalation(operation="op", classification=classified(failure), error="<Response [503]>", reason="attempts")
    assert "Last result: str: <Response [503]>" in esc.explain()
    assert esc.to_dict()["error"] == {"type": "str", "message": "<Response [503]>"}


def test_to_dict_is_json_without_live_objects(clock: FakeClock) -> None:
    esc = escalation(correlation_id="req-42")
    esc.record_handler_error("pager: boom")
    esc.decide(Option.USE, object(), by="ann")
    data = json.loads(json.dumps(esc.to_dict()))
    assert data["operation"] == "fetch_user"
    assert data["correlation_id"] == "req-42"
    assert data["reason"] == "attempts"
    assert data["reason_text"] == "attempts exhausted: 4 attempts, TIMEOUT allows 3 retries"
    assert data["at"] == clock.now()  # the clock has not moved, and JSON keeps a float exactly
    assert data["started"] == 100.0
    assert data["attempts"] == 4
    assert data["error"] == {"type": "TimeoutError", "message": "read timed out"}
    classification = data["classification"]
    assert classification["category"] == "timeout"
    assert classification["severity"] == 2
    assert classification["strategy"] == "retry_with_backoff"
    assert classification["retries"] == 3
    assert classification["backoff"].startswith("Backoff.")
    assert "error" not in classification
    assert data["timeline"][1] == {
        "number": 2, "started": 101.25, "duration": 0.25, "outcome": "failure",
        "error": {"type": "TimeoutError", "message": "read timed out"}, "category": "timeout",
        "actions": ["reset_pool: ok"], "delay": 1.0,
    }  # fmt: skip
    assert data["options"] == ["retry", "skip", "abort", "use"]
    assert data["decision"]["option"] == "use"
    assert data["decision"]["value"].startswith("<object object")
    assert data["decision"]["by"] == "ann"
    assert data["handler_errors"] == ["pager: boom"]


def test_facts() -> None:
    esc = escalation(count=3, options=("abort", Option.SKIP, "abort"))
    assert esc.category is Category.TIMEOUT
    assert esc.attempts == 3
    assert esc.started == 100.0
    assert esc.options == (Option.ABORT, Option.SKIP)
    assert esc.handler_errors == ()
    assert repr(esc) == "Escalation(operation='fetch_user', category=timeout, reason=attempts, attempts=3, undecided)"


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"reason": "tired"}, ValueError, "reason must be one of 'not_retryable', 'attempts', 'healing_time', 'deadline'"),
        ({"options": ()}, ValueError, "options must hold at least one"),
        ({"options": ("later",)}, ValueError, "options must be a brace.Option or one of"),
        ({"correlation_id": 42}, TypeError, "correlation_id must be a str or None"),
        ({"operation": None}, TypeError, "operation must be a str"),
    ],
)  # fmt: skip
def test_escalation_validates(kwargs: dict[str, Any], error: type[Exception], message: str) -> None:
    failure = timeout_error()
    settings: dict[str, Any] = {"operation": "op", "classification": classified(failure), "error": failure,
                                "reason": "attempts", **kwargs}  # fmt: skip
    with pytest.raises(error, match=message):
        Escalation(**settings)


# -- the policy -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"handlers": [print, 3]}, TypeError, r"handlers\[1\] must be a callable, got int"),
        ({"handlers": "log"}, TypeError, "handlers must be an iterable of callables, got str"),
        ({"handlers": None}, TypeError, "handlers must be an iterable of callables, got NoneType"),
        ({"wait": 0}, ValueError, "wait must be a finite number of seconds from 1e-09 to 4.61169e\\+09, or None, got 0"),
        ({"wait": -1.0}, ValueError, "wait must be a finite number of seconds from 1e-09 to 4.61169e\\+09, or None"),
        ({"wait": float("inf")}, ValueError, "wait must be a finite number of seconds"),
        ({"wait": 1e300}, ValueError, "wait must be a finite number of seconds from 1e-09 to 4.61169e\\+09, or None"),
        ({"wait": "5s"}, TypeError, "wait must be seconds"),
        ({"default": "use"}, ValueError, "default must be 'retry', 'skip' or 'abort', got 'use'"),
        ({"default": Option.USE}, ValueError, "default must be 'retry', 'skip' or 'abort', got 'use'"),
        ({"default": "later"}, ValueError, "default must be a brace.Option or one of"),
    ],
)
def test_policy_validates(kwargs: dict[str, Any], error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        EscalationPolicy(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "handlers", "wait", "default"),
    [
        ({}, (), None, Option.ABORT),
        ({"handlers": (print,), "wait": timedelta(seconds=2), "default": "skip"}, (print,), 2.0, Option.SKIP),
        ({"handlers": [print], "wait": 1, "default": Option.RETRY}, (print,), 1.0, Option.RETRY),
    ],
)
def test_policy_configuration(
    kwargs: dict[str, Any], handlers: tuple[object, ...], wait: float | None, default: Option
) -> None:
    policy = EscalationPolicy(**kwargs)
    assert (policy.handlers, policy.wait, policy.default) == (handlers, wait, default)


@pytest.mark.parametrize("default", [Option.ABORT, Option.SKIP, Option.RETRY])
def test_nobody_deciding_takes_the_default(default: Option) -> None:
    esc = escalation()
    assert EscalationPolicy(default=default).escalate(esc) == Decision(default, None, "default")
    assert esc.decision == Decision(default, None, "default")


def test_a_default_that_is_not_an_option_aborts() -> None:
    esc = escalation(options=(Option.SKIP, Option.ABORT, Option.USE))
    assert EscalationPolicy(default="retry").escalate(esc) == Decision(Option.ABORT, None, "default")


def test_the_wait_times_out_to_the_default() -> None:
    assert EscalationPolicy(wait=SHORT, default="skip").escalate(escalation()) == Decision.skip(by="default")


@in_a_loop
async def test_the_async_wait_times_out_to_the_default() -> None:
    policy = EscalationPolicy(wait=SHORT, default="skip")
    assert await policy.escalate_async(escalation()) == Decision.skip(by="default")


@pytest.mark.parametrize("way", ["sync", "async"])
def test_the_wait_follows_the_fake_clock_instead_of_real_time(way: str) -> None:
    # Five minutes, as a README would write it: under the fake clock it takes none of them.
    with brace.testing.fake_clock() as clock:
        policy = EscalationPolicy(wait=300.0, default="skip")
        start = clock.now_ns()
        if way == "sync":
            decision = policy.escalate(escalation())
        else:
            decision = asyncio.run(policy.escalate_async(escalation()))
        assert decision == Decision.skip(by="default")
        assert clock.now_ns() - start == 300 * 10**9


@pytest.mark.parametrize("way", ["sync", "async"])
def test_the_wait_ends_at_the_calls_deadline(way: str) -> None:
    with brace.testing.fake_clock() as clock:
        policy = EscalationPolicy(wait=300.0, default="skip")
        start = clock.now_ns()
        with brace.deadline(2.0):
            if way == "sync":
                decision = policy.escalate(escalation())
            else:
                decision = asyncio.run(policy.escalate_async(escalation()))
        assert decision == Decision.skip(by="default")
        assert clock.now_ns() - start == 2 * 10**9


def test_the_wait_ends_on_a_decision_from_another_thread() -> None:
    esc = escalation()
    started = threading.Event()

    def notify(escalation: Escalation) -> None:
        started.set()  # the handlers run just before the wait

    thread = deciding_later(esc, Decision.use("stale", by="ops"), started)
    assert EscalationPolicy(handlers=[notify], wait=LONG).escalate(esc) == Decision.use("stale", by="ops")
    thread.join()


@in_a_loop
async def test_the_async_wait_ends_on_a_decision_from_another_task() -> None:
    esc = escalation()
    policy = EscalationPolicy(handlers=[QueueHandler(inbox := asyncio.Queue[Escalation]())], wait=LONG)

    async def operator() -> None:
        (await inbox.get()).decide("retry", by="operator")

    task = asyncio.create_task(operator())
    assert await policy.escalate_async(esc) == Decision.retry(by="operator")
    await task


def test_a_handler_decision_decides_and_every_handler_still_runs() -> None:
    told: list[str] = []

    def first(escalation: Escalation) -> Decision:
        told.append("first")
        return Decision.use(0)

    def second(escalation: Escalation) -> Decision:
        told.append("second")
        return Decision.abort(by="second")

    esc = escalation()
    decision = EscalationPolicy(handlers=[first, second], wait=LONG).escalate(esc)
    assert decision == Decision(Option.USE, 0, "test_a_handler_decision_decides_and_every_handler_still_runs.<locals>.first")
    assert told == ["first", "second"]
    assert esc.handler_errors == ()


def test_a_raising_handler_is_recorded_and_logged_and_the_next_runs(caplog: pytest.LogCaptureFixture) -> None:
    def pager(escalation: Escalation) -> None:
        raise ConnectionError("pager is down")

    def chat(escalation: Escalation) -> Decision:
        return Decision.skip(by="chat")

    esc = escalation()
    with caplog.at_level(logging.ERROR, logger="brace"):
        assert EscalationPolicy(handlers=[pager, chat]).escalate(esc) == Decision.skip(by="chat")
    (error,) = esc.handler_errors
    assert error.endswith("pager: ConnectionError: pager is down")
    (record,) = caplog.records
    assert "pager" in record.getMessage() and record.exc_info is not None


@pytest.mark.parametrize(
    ("returned", "recorded"),
    [
        ("skip", "returned str, not a brace.Decision or None"),
        (Decision.retry(), "option must be one of this escalation's options ('skip', 'abort'), got 'retry'"),
    ],
)
def test_a_handler_returning_what_cannot_decide_is_recorded(returned: object, recorded: str) -> None:
    def handler(escalation: Escalation) -> Any:
        return returned

    esc = escalation(options=(Option.SKIP, Option.ABORT))
    assert EscalationPolicy(handlers=[handler]).escalate(esc) == Decision.abort(by="default")
    (error,) = esc.handler_errors
    assert error.endswith(f"handler: {recorded}")


def test_an_async_handler_in_a_sync_recovery_is_recorded() -> None:
    async def decide(escalation: Escalation) -> Decision:
        return Decision.skip()

    class Awaiting:
        def __call__(self, escalation: Escalation) -> Any:
            return decide(escalation)

    esc = escalation()
    assert EscalationPolicy(handlers=[decide, Awaiting()]).escalate(esc) == Decision.abort(by="default")
    assert esc.handler_errors == (
        "test_an_async_handler_in_a_sync_recovery_is_recorded.<locals>.decide: async handler in a sync recovery",
        "test_an_async_handler_in_a_sync_recovery_is_recorded.<locals>.Awaiting: async handler in a sync recovery",
    )


@in_a_loop
async def test_async_handlers_are_awaited_on_the_async_path(caplog: pytest.LogCaptureFixture) -> None:
    told: list[str] = []

    async def slack(escalation: Escalation) -> None:
        await asyncio.sleep(0)
        told.append("slack")

    async def failing(escalation: Escalation) -> None:
        raise RuntimeError("no route")

    async def operator(escalation: Escalation) -> Decision:
        return Decision.use("cached", by="operator")

    def sync(escalation: Escalation) -> None:
        told.append("sync")

    esc = escalation()
    with caplog.at_level(logging.ERROR, logger="brace"):
        decision = await EscalationPolicy(handlers=[slack, failing, operator, sync]).escalate_async(esc)
    assert decision == Decision.use("cached", by="operator")
    assert told == ["slack", "sync"]
    (error,) = esc.handler_errors
    assert error.endswith("failing: RuntimeError: no route")


def test_logging_handler_logs_the_explanation_with_the_escalation_as_extra(caplog: pytest.LogCaptureFixture) -> None:
    esc = escalation(correlation_id="req-1")
    with caplog.at_level(logging.ERROR, logger="brace"):
        EscalationPolicy(handlers=[LoggingHandler()]).escalate(esc)
    (record,) = caplog.records
    assert (record.name, record.levelno) == ("brace", logging.ERROR)
    assert record.getMessage() == escalation(correlation_id="req-1").explain()
    extra = getattr(record, "brace_escalation")
    assert extra["operation"] == "fetch_user"
    assert extra["correlation_id"] == "req-1"
    assert extra["classification"]["category"] == "timeout"
    assert extra["decision"] is None  # logged before the default decided
    json.dumps(extra)


def test_logging_handler_takes_a_logger_and_a_level(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("app.escalations")
    with caplog.at_level(logging.WARNING, logger="app.escalations"):
        LoggingHandler(logger, logging.WARNING)(escalation())
    (record,) = caplog.records
    assert (record.name, record.levelno) == ("app.escalations", logging.WARNING)
    assert repr(LoggingHandler(logger, logging.WARNING)) == "LoggingHandler(logger='app.escalations', level=WARNING)"


@pytest.mark.parametrize(
    ("args", "message"),
    [(("brace",), "logger must be a logging.Logger or None, got str"), ((None, "ERROR"), "level must be a logging level")],
)
def test_logging_handler_validates(args: tuple[Any, ...], message: str) -> None:
    with pytest.raises(TypeError, match=message):
        LoggingHandler(*args)


def test_queue_handler_puts_on_a_queue() -> None:
    inbox: queue.Queue[Escalation] = queue.Queue()
    esc = escalation()
    EscalationPolicy(handlers=[QueueHandler(inbox)]).escalate(esc)
    assert inbox.get_nowait() is esc


def test_a_worker_decides_what_a_queue_handler_queued() -> None:
    inbox: queue.Queue[Escalation] = queue.Queue()

    def worker() -> None:
        inbox.get(timeout=LONG).decide(Option.USE, "from the worker", by="worker")

    thread = threading.Thread(target=worker)
    thread.start()
    esc = escalation()
    assert EscalationPolicy(handlers=[QueueHandler(inbox)], wait=LONG).escalate(esc) == Decision.use(
        "from the worker", by="worker"
    )
    thread.join()


def test_a_full_queue_is_recorded_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    inbox: queue.Queue[Escalation] = queue.Queue(maxsize=1)
    handler = QueueHandler(inbox)
    handler(escalation())
    esc = escalation()
    with caplog.at_level(logging.WARNING, logger="brace"):
        assert EscalationPolicy(handlers=[handler]).escalate(esc) == Decision.abort(by="default")
    assert esc.handler_errors == ("QueueHandler(queue.Queue): the queue is full; the escalation was not queued",)
    assert "not queued" in caplog.text


@in_a_loop
async def test_queue_handler_on_an_asyncio_queue_from_the_loop() -> None:
    inbox: asyncio.Queue[Escalation] = asyncio.Queue()
    esc = escalation()
    await EscalationPolicy(handlers=[QueueHandler(inbox)]).escalate_async(esc)
    assert inbox.get_nowait() is esc


@pytest.mark.parametrize("made_on_the_loop", [True, False])
@in_a_loop
async def test_queue_handler_on_an_asyncio_queue_from_another_thread(made_on_the_loop: bool) -> None:
    inbox: asyncio.Queue[Escalation] = asyncio.Queue()
    if made_on_the_loop:
        handler = QueueHandler(inbox)
    else:  # made off the loop: the queue's waiting consumer tells it which loop
        handler = await asyncio.to_thread(QueueHandler, inbox)
    getting = asyncio.create_task(inbox.get())
    await asyncio.sleep(0)  # the consumer waits on the queue
    esc = escalation()
    decision = await asyncio.to_thread(EscalationPolicy(handlers=[handler], default="skip").escalate, esc)
    assert decision == Decision.skip(by="default")
    assert await asyncio.wait_for(getting, LONG) is esc


@in_a_loop
async def test_a_full_asyncio_queue_from_another_thread_is_recorded() -> None:
    inbox: asyncio.Queue[Escalation] = asyncio.Queue(maxsize=1)
    handler = QueueHandler(inbox)
    inbox.put_nowait(escalation())
    esc = escalation()
    await asyncio.to_thread(handler, esc)
    for _ in range(10):  # the put runs on the loop, a few callbacks later
        if esc.handler_errors:
            break
        await asyncio.sleep(0)
    assert esc.handler_errors == ("QueueHandler(asyncio.queues.Queue): the queue is full; the escalation was not queued",)


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        (([],), {}, "queue must be a queue.Queue or an asyncio.Queue, got list"),
        ((queue.Queue(),), {"loop": asyncio.new_event_loop()}, "loop is only for an asyncio.Queue"),
    ],
)
def test_queue_handler_validates(args: tuple[Any, ...], kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(TypeError, match=message):
        QueueHandler(*args, **kwargs)
    loop = kwargs.get("loop")
    if loop is not None:
        loop.close()


def test_explain_survives_an_error_whose_str_raises() -> None:
    class Opaque(Exception):
        def __str__(self) -> str:
            raise AttributeError("request_info")

    classification = DEFAULT_CLASSIFIER.classify(Opaque())
    escalation = Escalation(operation="op", classification=classification, error=Opaque(), reason="not_retryable",
                            timeline=(AttemptRecord(1, 0.0, 0.1, "failure", Opaque(), classification),))  # fmt: skip
    text = escalation.explain()
    assert "<str() raised AttributeError>" in text
    assert escalation.to_dict()["error"] == {"type": "test_escalation.test_explain_survives_an_error_whose_str_raises."
                                                     "<locals>.Opaque", "message": "<str() raised AttributeError>"}


class ModuleNotAStr(Exception):
    """An error class whose __module__ is not a str (code generators do this)."""


ModuleNotAStr.__module__ = 42  # type: ignore[assignment]


class Unshowable:
    """A value nothing can show: its repr, str and format raise."""

    def __repr__(self) -> str:
        raise RuntimeError("repr")

    def __str__(self) -> str:
        raise RuntimeError("str")

    def __format__(self, spec: str) -> str:
        raise RuntimeError("format")


class Nameless:
    """A handler whose __qualname__ raises something else than AttributeError: it has no readable name."""

    def __getattr__(self, name: str) -> Any:
        raise (RuntimeError if name == "__qualname__" else AttributeError)(name)

    def __call__(self, escalation: Escalation) -> Decision:
        return Decision(Option.SKIP, Unshowable())  # a value with SKIP: refused, with the value in the message


def test_nothing_about_the_users_objects_makes_an_escalation_raise() -> None:
    error = ModuleNotAStr("quota")
    classification = DEFAULT_CLASSIFIER.classify(error)
    escalation = Escalation(operation="op", classification=classification, error=error, reason="not_retryable",
                            timeline=(AttemptRecord(1, 0.0, 0.1, "failure", error, classification),))  # fmt: skip
    value = Unshowable()
    decision = EscalationPolicy(handlers=[Nameless(), lambda e: Decision.use(value, by="ana")]).escalate(escalation)
    assert decision == Decision.use(value, by="ana")
    shown = f"<test_escalation.Unshowable object at {id(value):#x}; repr() raised RuntimeError>"
    refused = escalation.handler_errors[0]
    assert refused.startswith("Nameless: value is only for Option.USE, got <test_escalation.Unshowable object at ")
    text = escalation.explain()
    assert "Last error: ModuleNotAStr: quota" in text and "failure  ModuleNotAStr: quota" in text
    assert f"Decided: use {shown} by ana" in text
    data = escalation.to_dict()
    assert data["error"] == {"type": "ModuleNotAStr", "message": "quota"}
    assert isinstance(data["decision"], dict) and data["decision"]["value"] == shown
    json.dumps(data)
