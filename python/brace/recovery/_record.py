"""What a Recovery keeps of its calls: events to its listeners, its books, dead letters,
and how a call ends (the operation's value, a stand-in, an error).

The algorithm (brace.recovery._loop) decides; this module records what it decided.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

from brace._core import now_ns
from brace._safe import add_note, safe_repr
from brace.breaker import BreakerEvent
from brace.classify import Classification
from brace.errors import FallbackFailed, RecoveryFailed
from brace.recovery._correlation import correlation_id
from brace.recovery._events import EventKind, FirstTry, Listener, RecoveryEvent, first_try_event
from brace.recovery._served import Degraded
from brace.recovery._outbox import replaying_now
from brace.recovery._run import Run
from brace.recovery._settings import Settings
from brace.recovery._stats import Ending, Book
from brace.recovery._switchboard import switches

__all__ = ["Record"]

_log = logging.getLogger("brace")
_NS = 1_000_000_000


class Record:
    """A Recovery's listeners and books, and the endings of its calls."""

    __slots__ = ("settings", "listeners", "book", "replay_book")

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.listeners: tuple[Listener, ...] = ()
        self.book = Book()
        self.replay_book = Book()  # calls made while replaying dead letters, kept apart

    def ledger(self) -> Book:
        return self.replay_book if replaying_now() else self.book

    # -- events -------------------------------------------------------------------

    def emit(self, kind: EventKind, run: Run, at: int, outcome: str, classification: Classification | None,
             error: object, detail: str = "", *, duration: int = 0, attempt: int | None = None,
             ran: bool = True) -> None:  # fmt: skip
        if self.listeners:
            self.dispatch(RecoveryEvent(kind, run.operation, run.number if attempt is None else attempt,
                                        at / _NS, duration / _NS, outcome, classification, error, detail,
                                        correlation_id(), ran))  # fmt: skip

    def dispatch(self, event: RecoveryEvent) -> None:
        for listener in self.listeners:
            try:
                listener(event)
            except Exception:
                _log.exception("brace: a listener of recovery %r failed", event.operation)

    def first_try_targets(self) -> tuple[Callable[[FirstTry], object], ...]:
        """What the compiled first attempt calls with the record of a first-try success, in the
        listeners' order: a RecoveryLog's own targets (brace.recovery._events.FirstTryTargets),
        or, for any other listener, one that hands it the event."""
        targets: list[Callable[[FirstTry], object]] = []
        for listener in self.listeners:
            compact = getattr(listener, "_brace_first_try_targets", None)
            targets.extend(compact() if compact is not None else (self._telling(listener),))
        return tuple(targets)

    @staticmethod
    def _telling(listener: Listener) -> Callable[[FirstTry], object]:
        def tell(record: FirstTry) -> None:
            listener(first_try_event(record))

        return tell

    @staticmethod
    def report_target(target: Callable[[FirstTry], object], operation: str, error: BaseException) -> None:
        """A first-try target raised (the compiled first attempt carries on with the others)."""
        _log.error("brace: a listener of recovery %r failed", operation, exc_info=error)

    def starting(self, run: Run, start: int) -> None:
        """With write_ahead, the record of an attempt about to go out (a durable sink writes it through)."""
        if self.listeners:
            self.dispatch(RecoveryEvent("attempt_started", run.operation, run.number, start / _NS, 0.0, "started",
                                        correlation_id=correlation_id()))  # fmt: skip

    def on_breaker(self, event: BreakerEvent) -> None:
        """A breaker of the policy changed state: an event for the listeners."""
        if not self.listeners:
            return
        assert event.from_state is not None and event.to_state is not None
        at = now_ns()
        self.dispatch(RecoveryEvent("breaker", self.settings.name or str(event.breaker), 0, at / _NS, 0.0,
                                    event.to_state.value, None, None,
                                    f"{event.breaker}: {event.from_state.value} -> {event.to_state.value}",
                                    correlation_id()))  # fmt: skip

    # -- endings ------------------------------------------------------------------

    def succeeded(self, run: Run, result: object, start: int) -> None:
        """An attempt returned the operation's value: the call ends with it."""
        if run.outbox is not None:
            run.outbox.end()
        if run.failed:
            self.recovered(run, result, start)
            return
        self.remember(run, result)
        self.ledger().first_try()
        if self.listeners:
            end = now_ns()
            self.dispatch(RecoveryEvent("attempt", run.operation, 1, start / _NS, (end - start) / _NS, "success",
                                        correlation_id=correlation_id()))  # fmt: skip

    def recovered(self, run: Run, result: object, start: int) -> None:
        """An attempt after a failure succeeded (its healing verified by the caller)."""
        end = now_ns()
        self.remember(run, result)
        self.book_failed_call(run, "retried_by_decision" if run.retry_decisions else "recovered", end)
        if self.listeners:
            self.emit("attempt", run, start, "success", None, None, ", ".join(run.actions_log), duration=end - start)
            self.emit("recovered", run, run.began, "success", None, None, duration=end - run.began)

    def remember(self, run: Run, result: object) -> None:
        settings = self.settings
        if settings.fallback is not None:
            settings.fallback.remember(run.args, run.kwargs, result, operation=run.operation)
        if settings.feature is not None and not switches.is_on(settings.feature):
            switches.turn_on(settings.feature, reason=f"{run.operation} succeeded", by=f"recovery:{run.operation}")

    def served(self, run: Run, at: int, classification: Classification, degraded: Degraded[Any]) -> Degraded[Any]:
        """The fallback served a stand-in: the call ends with it."""
        self.turn_off(run, classification, "fallback")
        self.emit("fallback", run, at, "served", classification, degraded.error, degraded.source)
        if not self.settings.read_only:
            # A write served a stand-in did not happen: kept, replayable, never dropped.
            outcome = degraded.error if isinstance(degraded.error, Exception) else FallbackFailed(
                name=None, failures=())  # fmt: skip
            self.dead_letter(run, classification, outcome, served=degraded.source)
        self.book_failed_call(run, "fallback")
        return degraded

    def turn_off(self, run: Run, classification: Classification, why: str) -> None:
        feature = self.settings.feature
        if feature is not None and switches.is_on(feature):
            switches.turn_off(feature, reason=f"{run.operation}: {classification.category.value} ({why})",
                              by=f"recovery:{run.operation}")  # fmt: skip

    def dead_letter(self, run: Run, classification: Classification, outcome: Exception,
                    served: str | None = None) -> str | None:  # fmt: skip
        """Stores a call given up on (or served a stand-in: `served` says which); its id, or
        None while replaying or when the store failed (then the failure is logged and noted
        on the error, which still reaches the caller)."""
        if replaying_now():
            return None
        at = now_ns()
        try:
            outbox_id = None if run.outbox is None else run.outbox.take()
            letter = self.settings.store().put(
                operation=run.operation, args=run.args, kwargs=run.kwargs, error=outcome,
                category=classification.category, correlation_id=correlation_id(),
                attempts=run.number - run.not_run, served=served, outbox_id=outbox_id)  # fmt: skip
        except Exception as error:
            _log.exception("brace: could not dead-letter a call of %r", run.operation)
            add_note(outcome, f"brace could not store this call as a dead letter: {safe_repr(error)}")
            self.emit("dead_letter", run, at, "failed", classification, error)
            return None
        run.dead_lettered = True
        self.emit("dead_letter", run, at, "stored", classification, outcome, letter.id)
        return letter.id

    def book_failed_call(self, run: Run, ending: Ending, end: int | None = None) -> None:
        first = run.timeline[0].classification
        assert first is not None
        recovery_time = None if end is None else (end - run.began) / _NS
        self.ledger().failed_call(first.category, transient=first.transient, ending=ending,
                                  attempts=run.number - run.not_run, rejected=run.not_run,
                                  escalated=run.escalated, dead_lettered=run.dead_lettered,
                                  recovery_time=recovery_time)  # fmt: skip

    def recovery_error(self, run: Run, outcome: Exception, internal: Exception) -> RecoveryFailed:
        """brace's own recovery failed (a component raised what it never should): the call
        still ends with brace's error, its dead letter stored, never with a stray exception."""
        _log.error("brace: recovering %r failed inside brace; the call is dead-lettered", run.operation,
                   exc_info=internal)  # fmt: skip
        add_note(outcome, f"brace's recovery failed: {safe_repr(internal)}")
        category = self.settings.classifier.classify(outcome)
        letter = self.dead_letter(run, category, outcome)
        self.book_failed_call(run, "abort")
        return RecoveryFailed(operation=run.operation, category=category.category.value, attempts=len(run.timeline),
                              reason="recovery_error", dead_letter=letter)  # fmt: skip
