"""Escalation: what recovery does when it cannot recover on its own.

When brace.Recovery gives up (the failure is not retryable, its attempts or
its healing time ran out, or its fallback failed), it builds an `Escalation`
and hands it to an `EscalationPolicy`. The policy tells people (handlers:
logs, queues, pagers), lets a person or a program decide among the
escalation's options (retry, skip, abort, use a value), and falls back to a
default when nobody decides in time. A decision forced through
`brace.control` wins over everything else.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import inspect
import logging
import queue as queue_module
import threading
from collections.abc import Awaitable, Iterable, Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Callable, Literal, NamedTuple, Union

from brace import _clock, _config, _deadline
from brace._safe import describe, error_dict, name_of, safe_repr, safe_str, type_name
from brace._core import now_ns
from brace.recovery._control import control
from brace.recovery._drivers import Effect, Steps, drive, drive_async, wait_for
from brace.recovery._decisions import REASONS, AttemptRecord, Decision, Option, Reason, parse_option

if TYPE_CHECKING:
    from brace.classify import Category, Classification

__all__ = [
    "AttemptRecord",
    "Decision",
    "Escalation",
    "EscalationHandler",
    "EscalationPolicy",
    "LoggingHandler",
    "Option",
    "QueueHandler",
]

_log = logging.getLogger("brace")
_NS = 1_000_000_000

def _plain(value: object) -> object:
    """value as JSON-able data: live objects become their repr."""
    # Enums first: an IntEnum (Severity) is an int too, and would keep its type.
    if isinstance(value, enum.Enum):
        return _plain(value.value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, BaseException):
        return error_dict(value)
    if isinstance(value, (tuple, list)):
        return [_plain(item) for item in value]
    if isinstance(value, Mapping):
        return {safe_str(key): _plain(item) for key, item in value.items()}
    return safe_repr(value)


def _classification_dict(classification: Classification) -> dict[str, object]:
    # `error` is the escalation's own error (or a response): reported once, at the top.
    return {
        field.name: _plain(getattr(classification, field.name))
        for field in dataclasses.fields(classification)
        if field.name != "error"
    }


def _plural(count: int, word: str, plural: str | None = None) -> str:
    return f"{count} {word if count == 1 else (plural or word + 's')}"


class Escalation:
    """An operation that recovery could not recover, waiting for a decision.

    Built by brace.Recovery and handed to its EscalationPolicy. Anyone may
    decide, from any thread or task, with `decide()`; the first decision
    wins. `wait()` / `await wait_async()` block until someone has.

    Args:
        operation: The operation's name.
        classification: How its last failure was classified.
        error: Its last error: an exception, or the failed result (e.g. an
            HTTP response with status >= 400).
        reason: Why recovery stopped: "not_retryable", "attempts",
            "healing_time", "deadline", "fallback_failed", "rejected_locally"
            (an open breaker, a full bulkhead, a spent budget: nothing was
            sent), "still_running" (a timed-out attempt of an operation not
            declared idempotent) or "recovery_error" (brace failed).
        timeline: Its attempts, in order.
        options: The options a decision may take (default: all four).
        correlation_id: An id tying the escalation to a request, or None.

    Attributes:
        at: When it was made (seconds, brace's clock). The others are the
            arguments above, options as a tuple of Option without repeats.

    Raises:
        ValueError, TypeError: For a reason or options outside the above.
    """

    __slots__ = (
        "operation", "classification", "error", "reason", "timeline", "options", "correlation_id",
        "at", "_lock", "_decision", "_decided", "_async_waiters", "_handler_errors",
    )  # fmt: skip

    def __init__(
        self,
        *,
        operation: str,
        classification: Classification,
        error: object,
        reason: Reason,
        timeline: Iterable[AttemptRecord] = (),
        options: Iterable[Option | str] = tuple(Option),
        correlation_id: str | None = None,
    ) -> None:
        if not isinstance(operation, str):
            raise TypeError(f"operation must be a str, got {type(operation).__name__}")
        if reason not in REASONS:
            raise ValueError(f"reason must be one of {', '.join(map(repr, REASONS))}, got {safe_repr(reason)}")
        chosen = tuple(parse_option(option, "options") for option in options)
        if not chosen:
            raise ValueError("options must hold at least one brace.Option, got none")
        if correlation_id is not None and not isinstance(correlation_id, str):
            raise TypeError(f"correlation_id must be a str or None, got {type(correlation_id).__name__}")
        self.operation = operation
        self.classification = classification
        self.error = error
        self.reason: Reason = reason
        self.timeline = tuple(timeline)
        self.options = tuple(dict.fromkeys(chosen))
        self.correlation_id = correlation_id
        self.at = now_ns() / _NS
        self._lock = threading.Lock()
        self._decision: Decision | None = None
        self._decided = threading.Event()
        self._async_waiters: list[asyncio.Future[None]] = []
        self._handler_errors: list[str] = []

    # -- facts ------------------------------------------------------------------

    @property
    def category(self) -> Category:
        """The last failure's category."""
        return self.classification.category

    @property
    def attempts(self) -> int:
        """The attempts made."""
        return len(self.timeline)

    @property
    def started(self) -> float:
        """When the first attempt started (seconds, brace's clock); `at` without attempts."""
        return self.timeline[0].started if self.timeline else self.at

    @property
    def handler_errors(self) -> tuple[str, ...]:
        """What went wrong telling people: failed handlers, full queues, refused decisions."""
        with self._lock:
            return tuple(self._handler_errors)

    def _record_handler_error(self, text: str) -> None:
        with self._lock:
            self._handler_errors.append(text)

    def reason_text(self) -> str:
        """Why recovery stopped, in words."""
        c = self.classification
        name = c.category.name
        if self.reason == "not_retryable":
            return f"not retryable: {name} failures are not retried (the classifier suggests {c.strategy.value})"
        if self.reason == "attempts":
            return (
                f"attempts exhausted: {_plural(self.attempts, 'attempt')}, "
                f"{name} allows {_plural(c.max_attempts, 'retry', 'retries')}"
            )
        if self.reason == "healing_time":
            return f"healing time ran out: {name} was not healed within the time allowed"
        if self.reason == "deadline":
            return f"deadline reached: the caller's deadline came before {name} was healed"
        if self.reason == "rejected_locally":
            return (f"rejected by brace itself ({type_name(self.error)}): nothing was sent, and retrying at "
                    f"once would be rejected again")
        if self.reason == "still_running":
            return ("the attempt timed out but may still be running, and the operation is not declared "
                    "idempotent: retrying could run it twice")
        if self.reason == "recovery_error":
            return "brace's recovery itself failed (see the log); the call was kept as a dead letter"
        return f"fallback failed: no fallback alternative could serve a value for {name}"

    def explain(self) -> str:
        """A multi-line explanation for a person: what failed, why recovery stopped, what was tried, what can be done."""
        c = self.classification
        lines = [f"Operation {self.operation!r} needs a decision: recovery could not recover it."]
        if self.correlation_id is not None:
            lines.append(f"Correlation id: {self.correlation_id}")
        status = f", HTTP status {c.status}" if c.status is not None else ""
        lines.append(f"Failure: {c.category.name} (severity {c.severity.name}{status}; rule {c.rule})")
        last = "error" if isinstance(self.error, BaseException) else "result"
        lines.append(f"Last {last}: {describe(self.error)}")
        nature = "transient" if c.transient else "not transient"
        retry = f"retryable up to {_plural(c.max_attempts, 'more time')}" if c.retryable else "not retryable"
        server = f"; the server asked to wait {c.retry_after:g} s" if c.retry_after is not None else ""
        lines.append(f"Classifier: {nature}, {retry}; suggests {c.strategy.value}{server}")
        lines.append(f"Why recovery stopped: {self.reason_text()}")
        if self.timeline:
            lines.append(f"Timeline ({_plural(self.attempts, 'attempt')}):")
            origin = self.timeline[0].started
            lines.extend("  " + self._attempt_line(record, origin) for record in self.timeline)
        else:
            lines.append("Timeline: no attempts recorded")
        lines.append("Options: " + ", ".join(_OPTION_TEXT[option] for option in self.options))
        decision = self.decision
        if decision is not None:
            by = f" by {decision.by}" if decision.by else ""
            value = f" {safe_repr(decision.value)}" if decision.option is Option.USE else ""
            lines.append(f"Decided: {decision.option.value}{value}{by}")
        for error in self.handler_errors:
            lines.append(f"Handler error: {error}")
        return "\n".join(lines)

    @staticmethod
    def _attempt_line(record: AttemptRecord, origin: float) -> str:
        parts = [f"#{record.number}", f"+{record.started - origin:.3f} s", f"took {record.duration:.3f} s"]
        if record.delay:
            parts.append(f"after waiting {record.delay:.3f} s")
        parts.append(record.outcome)
        if record.error is not None:
            parts.append(describe(record.error))
        if record.classification is not None:
            parts.append(f"[{record.classification.category.name}]")
        if record.actions:
            parts.append("healing: " + "; ".join(record.actions))
        return "  ".join(parts)

    def to_dict(self) -> dict[str, object]:
        """The escalation as JSON-able data (errors as type and message, enums as their values)."""
        decision = self.decision
        return {
            "operation": self.operation,
            "correlation_id": self.correlation_id,
            "reason": self.reason,
            "reason_text": self.reason_text(),
            "at": self.at,
            "started": self.started,
            "attempts": self.attempts,
            "error": error_dict(self.error),
            "classification": _classification_dict(self.classification),
            "timeline": [
                {
                    "number": record.number,
                    "started": record.started,
                    "duration": record.duration,
                    "outcome": record.outcome,
                    "error": error_dict(record.error),
                    "category": None if record.classification is None else record.classification.category.value,
                    "actions": list(record.actions),
                    "delay": record.delay,
                }
                for record in self.timeline
            ],
            "options": [option.value for option in self.options],
            "decision": None
            if decision is None
            else {
                "option": decision.option.value,
                # The value is whatever the decider chose; only its repr is sure to serialise.
                "value": safe_repr(decision.value) if decision.option is Option.USE else None,
                "by": decision.by,
            },
            "handler_errors": list(self.handler_errors),
        }

    # -- deciding ---------------------------------------------------------------

    @property
    def decision(self) -> Decision | None:
        """The decision taken, or None while there is none."""
        return self._decision

    def decide(self, option: Option | str, value: object = None, *, by: str = "") -> bool:
        """Decides, unless someone already has: the first decision wins.

        Callable from any thread or task; wakes every `wait()` and `wait_async()`.

        Args:
            option: One of this escalation's `options` (an Option or its value, e.g. "retry").
            value: The value to return, for Option.USE (None is a value too).
            by: Who decides, for the record.

        Returns:
            True if this call decided, False if a decision had already been taken.

        Raises:
            ValueError: For an option that is not one of `options`, or a value
                given with an option other than USE.
        """
        chosen = parse_option(option, "option")
        return self._decide(Decision(chosen, value, by), check_options=True)

    def _decide(self, decision: Decision, *, check_options: bool) -> bool:
        if check_options and decision.option not in self.options:
            offered = ", ".join(repr(option.value) for option in self.options)
            raise ValueError(f"option must be one of this escalation's options ({offered}), got {decision.option.value!r}")
        if decision.option is not Option.USE and decision.value is not None:
            raise ValueError(f"value is only for Option.USE, got {safe_repr(decision.value)} with {decision.option.value!r}")
        if not isinstance(decision.by, str):
            raise TypeError(f"by must be a str, got {type(decision.by).__name__}")
        with self._lock:
            if self._decision is not None:
                return False
            self._decision = decision
            waiters, self._async_waiters = self._async_waiters, []
        self._decided.set()
        for future in waiters:
            try:
                future.get_loop().call_soon_threadsafe(_resolve, future)
            except RuntimeError:  # its loop is closed: nobody is waiting on it any more
                pass
        return True

    def wait(self, timeout: float | timedelta | None = None) -> Decision | None:
        """Blocks the thread until someone decides, or for at most `timeout`.

        The wait ends earlier at an enclosing deadline (brace.deadline, a
        Retry's), and follows brace.testing.fake_clock() (see there).

        Args:
            timeout: Seconds >= 0 (or a timedelta); None waits for as long as
                it takes (or until the enclosing deadline).

        Returns:
            The decision, or None if none was taken in time.
        """
        seconds = _config.duration(timeout, "timeout", allow_none=True, maximum=_config.THREAD_WAIT_MAX)
        _clock.wait(self._decided.wait, _wait_deadline(seconds))
        return self._decision

    async def wait_async(self, timeout: float | timedelta | None = None) -> Decision | None:
        """Waits, without blocking the event loop, until someone decides or for at most `timeout`.

        A decision from another task or another thread wakes it. Like `wait`,
        it ends earlier at an enclosing deadline and follows the fake clock.

        Args:
            timeout: Seconds >= 0 (or a timedelta); None waits for as long as
                it takes (or until the enclosing deadline).

        Returns:
            The decision, or None if none was taken in time.
        """
        seconds = _config.duration(timeout, "timeout", allow_none=True)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        with self._lock:
            if self._decision is not None:
                return self._decision
            self._async_waiters.append(future)
        try:
            # Never cancels the future on a timeout: decide() may be resolving it
            # from another thread at that instant.
            await _clock.wait_async(future, _wait_deadline(seconds))
        finally:
            with self._lock:
                if future in self._async_waiters:
                    self._async_waiters.remove(future)
        return self._decision

    def __repr__(self) -> str:
        decision = "undecided" if self._decision is None else f"decided {self._decision.option.value}"
        return (
            f"Escalation(operation={self.operation!r}, category={self.category.value}, "
            f"reason={self.reason}, attempts={self.attempts}, {decision})"
        )


_OPTION_TEXT = {
    Option.RETRY: "retry (run it again)",
    Option.SKIP: "skip (go on without a result)",
    Option.ABORT: "abort (raise RecoveryFailed)",
    Option.USE: "use (return a value given instead)",
}


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _wait_deadline(seconds: float | None) -> int | None:
    """When a wait for a decision starting now ends: after `seconds`, or at an
    enclosing deadline, whichever comes first (None: never)."""
    return _deadline.tighter(None if seconds is None else now_ns() + round(seconds * _NS))


# -- handlers -------------------------------------------------------------------

EscalationHandler = Callable[[Escalation], Union[Decision, None, Awaitable[Union[Decision, None]]]]


class LoggingHandler:
    """Logs each escalation's `explain()`, with `to_dict()` in the record's `brace_escalation` extra.

    Args:
        logger: The logger, or None for the "brace" logger.
        level: The logging level (default ERROR).

    Raises:
        TypeError: For a logger that is not a logging.Logger, or a level that is not an int.
    """

    __slots__ = ("_logger", "_level")

    def __init__(self, logger: logging.Logger | None = None, level: int = logging.ERROR) -> None:
        if logger is not None and not isinstance(logger, logging.Logger):
            raise TypeError(f"logger must be a logging.Logger or None, got {type(logger).__name__}")
        if isinstance(level, bool) or not isinstance(level, int):
            raise TypeError(f"level must be a logging level (an int), got {type(level).__name__}")
        self._logger = _log if logger is None else logger
        self._level = level

    def __call__(self, escalation: Escalation) -> None:
        self._logger.log(self._level, "%s", escalation.explain(), extra={"brace_escalation": escalation.to_dict()})

    def __repr__(self) -> str:
        return f"LoggingHandler(logger={self._logger.name!r}, level={logging.getLevelName(self._level)})"


class QueueHandler:
    """Puts each escalation on a queue, for a worker or a person's tool to decide on.

    A `queue.Queue` gets it with `put_nowait`. An `asyncio.Queue` gets it on
    its event loop: directly when called on that loop, else handed to the
    loop thread-safely (asyncio queues are not thread-safe). A full queue is
    recorded in the escalation's `handler_errors` and logged, never raised.

    Args:
        queue: A queue.Queue or an asyncio.Queue.
        loop: The asyncio.Queue's event loop; default: the loop running
            when the handler is made, else the loop the queue's consumers
            wait on.

    Raises:
        TypeError: For anything else.
    """

    __slots__ = ("_queue", "_loop")

    def __init__(
        self,
        queue: queue_module.Queue[Escalation] | asyncio.Queue[Escalation],
        *,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        if not isinstance(queue, (queue_module.Queue, asyncio.Queue)):
            raise TypeError(f"queue must be a queue.Queue or an asyncio.Queue, got {type(queue).__name__}")
        if loop is not None and not isinstance(queue, asyncio.Queue):
            raise TypeError("loop is only for an asyncio.Queue")
        if loop is None and isinstance(queue, asyncio.Queue):
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # made outside a loop: found when needed
                pass
        self._queue = queue
        self._loop = loop

    def __call__(self, escalation: Escalation) -> None:
        queue = self._queue
        if isinstance(queue, asyncio.Queue):
            # An asyncio.Queue binds to the loop its first waiting consumer runs on.
            loop = self._loop or getattr(queue, "_loop", None)
            if isinstance(loop, asyncio.AbstractEventLoop) and not loop.is_closed() and not _on(loop):
                loop.call_soon_threadsafe(self._put, escalation)
                return
        self._put(escalation)

    def _put(self, escalation: Escalation) -> None:
        try:
            self._queue.put_nowait(escalation)
        except (queue_module.Full, asyncio.QueueFull):
            escalation._record_handler_error(f"{self!r}: the queue is full; the escalation was not queued")
            _log.warning("brace: escalation of %r not queued: the queue is full", escalation.operation)

    def __repr__(self) -> str:
        return f"QueueHandler({type_name(self._queue)})"


def _on(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


# -- policy ---------------------------------------------------------------------


class EscalationPolicy:
    """What brace.Recovery does with an escalation.

    `escalate()` decides in this order:

    1. A decision forced through `brace.control` (for the operation, else its
       category) decides first, by "control".
    2. Every handler runs, in order, even once decided, so that people are
       told. A handler returning a Decision decides (the first decision
       wins); one that raises is recorded in `handler_errors` and logged, and
       the next runs.
    3. Still undecided, with `wait` set: it waits up to `wait` seconds for
       someone to call `escalation.decide()` from another thread or task -
       less when the call's deadline (brace.deadline, an outer Retry's) comes
       first. The wait follows brace.testing.fake_clock().
    4. Else the default decides, by "default" (ABORT when the default is not
       among the escalation's options: giving up is always possible).

    Handlers are callables taking the escalation and returning a Decision or
    None; coroutine functions are awaited by `escalate_async()` and, on the
    sync path, recorded as an error ("async handler in a sync recovery").

    Args:
        handlers: The handlers, e.g. LoggingHandler(), QueueHandler(q), a pager call.
        wait: Seconds > 0 (or a timedelta) to wait for a decision; None: do not wait.
        default: The decision when nobody decides: an Option or its value,
            not USE (it has no value).

    Raises:
        ValueError, TypeError: For configuration outside the above.
    """

    __slots__ = ("_handlers", "_wait", "_default")

    def __init__(
        self,
        *,
        handlers: Iterable[EscalationHandler] = (),
        wait: float | timedelta | None = None,
        default: Option | str = Option.ABORT,
    ) -> None:
        if isinstance(handlers, (str, bytes)) or not isinstance(handlers, Iterable):
            raise TypeError(f"handlers must be an iterable of callables, got {type(handlers).__name__}")
        self._handlers = tuple(handlers)
        for index, handler in enumerate(self._handlers):
            if not callable(handler):
                raise TypeError(f"handlers[{index}] must be a callable, got {type(handler).__name__}")
        # The sync path waits for a decision on a thread.
        self._wait = _config.duration(wait, "wait", allow_none=True, positive=True, maximum=_config.THREAD_WAIT_MAX)
        self._default = parse_option(default, "default")
        if self._default is Option.USE:
            raise ValueError("default must be 'retry', 'skip' or 'abort', got 'use': a default has no value to use")

    @property
    def handlers(self) -> tuple[EscalationHandler, ...]:
        """The handlers, in order."""
        return self._handlers

    @property
    def wait(self) -> float | None:
        """Seconds to wait for a decision, or None."""
        return self._wait

    @property
    def default(self) -> Option:
        """The option taken when nobody decides."""
        return self._default

    def escalate(self, escalation: Escalation) -> Decision:
        """Tells the handlers and returns the decision (blocking up to `wait` for one)."""
        return drive(self.escalating(escalation, is_async=False))

    async def escalate_async(self, escalation: Escalation) -> Decision:
        """`escalate()` for a coroutine: awaits async handlers and the wait."""
        return await drive_async(self.escalating(escalation, is_async=True))

    def escalating(self, escalation: Escalation, *, is_async: bool) -> Steps[Decision]:
        """`escalate` (is_async False) or `escalate_async` as steps for brace.recovery's
        drivers: what brace.Recovery runs inside a recovered call."""
        self._force(escalation)
        for handler in self._handlers:
            if not is_async and inspect.iscoroutinefunction(handler):
                self._failed(escalation, handler, "async handler in a sync recovery")
                continue
            try:
                result = handler(escalation)
                if is_async and inspect.isawaitable(result):
                    result = yield wait_for(result)
            except Exception as error:
                self._failed(escalation, handler, describe(error), error)
                continue
            if inspect.isawaitable(result):  # on the sync path: it cannot be awaited here
                if inspect.iscoroutine(result):
                    result.close()  # never awaited: close it so that Python does not warn
                self._failed(escalation, handler, "async handler in a sync recovery")
                continue
            self._take(escalation, handler, result)
        if escalation.decision is None and self._wait is not None:
            yield Effect(escalation.wait, escalation.wait_async, (self._wait,))
        return self._conclude(escalation)

    @staticmethod
    def _force(escalation: Escalation) -> None:
        forced = control.forced_decision(escalation.category, escalation.operation)
        if forced is None:
            return
        try:
            escalation.decide(forced.option, forced.value, by="control")
        except ValueError as error:  # forced an option this escalation does not offer
            escalation._record_handler_error(f"control: {error}")
            _log.warning("brace: forced decision for %r refused: %s", escalation.operation, error)

    @staticmethod
    def _take(escalation: Escalation, handler: object, result: object) -> None:
        if result is None:
            return
        if not isinstance(result, Decision):
            EscalationPolicy._failed(
                escalation, handler, f"returned {type_name(result)}, not a brace.Decision or None"
            )
            return
        try:
            escalation.decide(result.option, result.value, by=result.by or name_of(handler))
        except (ValueError, TypeError) as error:
            EscalationPolicy._failed(escalation, handler, str(error))

    @staticmethod
    def _failed(escalation: Escalation, handler: object, text: str, error: BaseException | None = None) -> None:
        name = name_of(handler)
        escalation._record_handler_error(f"{name}: {text}")
        _log.error(
            "brace: escalation handler %s failed for %r: %s", name, escalation.operation, text, exc_info=error
        )

    def _conclude(self, escalation: Escalation) -> Decision:
        default = self._default if self._default in escalation.options else Option.ABORT
        escalation._decide(Decision(default, None, "default"), check_options=False)
        decision = escalation.decision
        assert decision is not None  # decided above, or earlier by someone else
        return decision

    def __repr__(self) -> str:
        return f"EscalationPolicy(handlers={len(self._handlers)}, wait={self._wait!r}, default={self._default.value})"
