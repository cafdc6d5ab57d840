"""Escalation: what a person reads and decides on when recovery cannot recover on its own.

When brace.Recovery gives up (the failure is not retryable, its attempts or
its healing time ran out, or its fallback failed), it builds an `Escalation`
- the failure, its classification, the timeline of attempts, the options
(retry, skip, abort, use a value) - and hands it to an `EscalationPolicy`
(brace.recovery._escalation_policy), which tells people and waits for the
decision that someone makes here, with `decide()`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import logging
import threading
from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import TYPE_CHECKING

from brace import _clock, _config, _deadline
from brace._safe import describe, error_dict, safe_repr, safe_str, type_name
from brace._core import now_ns
from brace.recovery._decisions import REASONS, AttemptRecord, Decision, Option, Reason, parse_option

if TYPE_CHECKING:
    from brace.classify import Category, Classification

__all__ = ["AttemptRecord", "Decision", "Escalation", "Option"]

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

    def record_handler_error(self, text: str) -> None:
        """Notes what went wrong telling people (an EscalationPolicy's handlers do): shown by
        `handler_errors()` and `explain()`."""
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
                f"{name} allows {_plural(c.retries, 'retry', 'retries')}"
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
        retry = f"retryable up to {_plural(c.retries, 'more time')}" if c.retryable else "not retryable"
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

    def conclude(self, option: Option, *, by: str) -> bool:
        """Decides `option` even when it was not offered, unless someone already decided: an
        EscalationPolicy's last word when nobody decided in time (its default, else ABORT,
        which is always possible). Returns whether this decided."""
        return self._decide(Decision(option, None, by), check_options=False)

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
