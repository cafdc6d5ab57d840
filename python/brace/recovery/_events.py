"""What a Recovery's listeners receive: RecoveryEvent, one step of one call.

Below the engine, the log and the dead-letter stores, which all speak it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Literal, NamedTuple, Protocol

if TYPE_CHECKING:
    from brace.classify import Classification

__all__ = ["EVENT_KINDS", "EventKind", "FirstTry", "FirstTryTargets", "Listener", "RecoveryEvent", "StopReason", "first_try_event"]

_NS = 1_000_000_000

EventKind = Literal["attempt_started", "attempt", "heal", "undo", "fallback", "escalation", "recovered", "dead_letter",
                    "breaker"]
EVENT_KINDS: tuple[str, ...] = ("attempt_started", "attempt", "heal", "undo", "fallback", "escalation", "recovered",
                                "dead_letter", "breaker")
StopReason = Literal["not_retryable", "attempts", "healing_time", "deadline", "fallback_failed",
                     "rejected_locally", "still_running", "recovery_error"]

class RecoveryEvent(NamedTuple):
    """What a Recovery's listeners receive: one step of one call.

    Attributes:
        kind: "attempt_started" (an attempt is about to run: a write-ahead
            record, emitted only by a Recovery with write_ahead=True),
            "attempt" (one attempt ended), "heal" (a healing action
            ran), "undo" (one was rolled back), "fallback" (a fallback was
            tried), "escalation" (a failure reached the escalation handlers
            and was decided), "recovered" (a call that had failed succeeded),
            "dead_letter" (a given-up call went to the dead-letter store),
            "breaker" (a breaker of the Recovery's policy changed state).
        operation: The operation's name (also as `name`, the field every
            brace event begins with: (kind, name, at)).
        attempt: The attempt number the step belongs to (1 for the first).
        at: When the step began, seconds on brace's clock.
        duration: Seconds it took ("recovered": from the first failure to the success).
        outcome: "success" or "failure" (attempt), "ok" or "failed" (heal, undo),
            "served" or "failed" (fallback), the decision's option (escalation),
            "success" (recovered), "stored" or "failed" (dead_letter), the
            state entered (breaker).
        classification: The failure's classification, when there is one.
        error: The exception or failed response involved, or None.
        detail: The action's name, the value's source, the escalation's reason,
            the dead letter's id, or "<breaker>: <from> -> <to>".
        correlation_id: The call's correlation id (see brace.correlation): the
            caller's, or one made for the call when none was set.
        ran: Whether the operation itself ran ("attempt" events): False for
            an attempt that the Recovery's own policy rejected before calling
            it (breaker open, limiter, bulkhead full): nothing was sent.
    """

    kind: EventKind
    operation: str
    attempt: int
    at: float
    duration: float
    outcome: str
    classification: Classification | None = None
    error: object = None
    detail: str = ""
    correlation_id: str | None = None
    ran: bool = True

    @property
    def name(self) -> str:
        """The operation's name: `operation`, under the name every brace event uses."""
        return self.operation


Listener = Callable[[RecoveryEvent], object]


FirstTry = tuple[str, int, int, "str | None"]
"""A first attempt that succeeded, as the compiled first attempt hands it to listeners:
(operation, start ns on brace's clock, duration ns, correlation id). `first_try_event`
makes the RecoveryEvent of it, when something reads it."""


def first_try_event(record: FirstTry) -> RecoveryEvent:
    """The "attempt" event of a first-try success, as the recovery's steps would have made it."""
    operation, start, duration, correlation_id = record
    return RecoveryEvent("attempt", operation, 1, start / _NS, duration / _NS, "success",
                         correlation_id=correlation_id)  # fmt: skip


class FirstTryTargets(Protocol):
    """A listener that takes first-try successes as compact records (brace.RecoveryLog).

    `_brace_first_try_targets()` returns callables taking a FirstTry which,
    together, do what calling the listener with `first_try_event(record)`
    would; the listener's set of them is fixed. A Recovery calls them
    from compiled code, so a success nobody reads costs no event.
    """

    def __call__(self, event: RecoveryEvent, /) -> object: ...

    def _brace_first_try_targets(self) -> tuple[Callable[[FirstTry], object], ...]: ...
