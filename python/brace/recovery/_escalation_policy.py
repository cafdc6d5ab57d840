"""EscalationPolicy and its handlers: who is told of an escalation, and how it is decided.

brace.recovery._escalation holds the Escalation itself (what a person reads and
decides on); this module holds what Recovery does with one: the handlers that
tell people (LoggingHandler, QueueHandler, any callable) and the policy that
runs them, waits for a person's decision and falls back to a default. A
decision forced through `brace.control` wins over everything else.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import queue as queue_module
from collections.abc import Awaitable, Coroutine, Iterable
from datetime import timedelta
from typing import Callable, Union

from brace import _config
from brace._safe import describe, name_of, type_name
from brace.recovery._control import control
from brace.recovery._decisions import Decision, Option, parse_option
from brace.recovery._drivers import Effect, Steps, drive, drive_async, wait_for
from brace.recovery._escalation import Escalation

__all__ = ["EscalationHandler", "EscalationPolicy", "LoggingHandler", "QueueHandler"]

_log = logging.getLogger("brace")


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
            escalation.record_handler_error(f"{self!r}: the queue is full; the escalation was not queued")
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
                if isinstance(result, Coroutine):  # a coroutine, or brace's compiled one
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
            escalation.record_handler_error(f"control: {error}")
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
        escalation.record_handler_error(f"{name}: {text}")
        _log.error(
            "brace: escalation handler %s failed for %r: %s", name, escalation.operation, text, exc_info=error
        )

    def _conclude(self, escalation: Escalation) -> Decision:
        default = self._default if self._default in escalation.options else Option.ABORT
        escalation.conclude(default, by="default")
        decision = escalation.decision
        assert decision is not None  # decided above, or earlier by someone else
        return decision

    def __repr__(self) -> str:
        return f"EscalationPolicy(handlers={len(self._handlers)}, wait={self._wait!r}, default={self._default.value})"
