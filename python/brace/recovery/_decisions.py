"""The terms of escalation, shared by the engine, escalation and control.

What a recovery gave up for (Reason), what can be decided about it (Option,
Decision), and the record of each attempt a person reads (AttemptRecord).
They live below brace.recovery's escalation and control modules, which both
use them.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Literal, NamedTuple

from brace import _config

if TYPE_CHECKING:
    from brace.classify import Classification

__all__ = ["REASONS", "AttemptRecord", "Decision", "Option", "Reason", "parse_option"]

Reason = Literal["not_retryable", "attempts", "healing_time", "deadline", "fallback_failed", "rejected_locally",
                 "still_running", "recovery_error"]
REASONS: tuple[str, ...] = ("not_retryable", "attempts", "healing_time", "deadline", "fallback_failed",
                             "rejected_locally", "still_running", "recovery_error")


class Option(enum.Enum):
    """What can be decided about an escalated operation."""

    RETRY = "retry"  # run the operation again, with a fresh round of recovery
    SKIP = "skip"  # give up without an error: the call returns a Degraded(None)
    ABORT = "abort"  # give up with brace.RecoveryFailed
    USE = "use"  # return the decision's value instead (as a Degraded)


def parse_option(value: object, name: str) -> Option:
    """An Option from itself or its value ("retry")."""
    return _config.member(Option, value, name)


class Decision(NamedTuple):
    """A decision about an escalated operation.

    Attributes:
        option: What to do.
        value: The value to return (Option.USE only; None is a value too).
        by: Who decided: a person's name, "control", "default", a handler's name...
    """

    option: Option
    value: object = None
    by: str = ""

    @classmethod
    def retry(cls, by: str = "") -> Decision:
        """Run the operation again."""
        return cls(Option.RETRY, None, by)

    @classmethod
    def skip(cls, by: str = "") -> Decision:
        """Give up without an error."""
        return cls(Option.SKIP, None, by)

    @classmethod
    def abort(cls, by: str = "") -> Decision:
        """Give up with brace.RecoveryFailed."""
        return cls(Option.ABORT, None, by)

    @classmethod
    def use(cls, value: object, by: str = "") -> Decision:
        """Return `value` instead of the operation's result."""
        return cls(Option.USE, value, by)


class AttemptRecord(NamedTuple):
    """One attempt of a recovered operation.

    Attributes:
        number: 1 for the first attempt.
        started: When it started (seconds, brace's clock).
        duration: How long it ran (seconds).
        outcome: "success" or "failure".
        error: What it raised (or the failed response's error), or None.
        classification: How the failure was classified, or None.
        actions: The healing actions run before it, each as "name: ok",
            "name: failed (<error>)" or "name: undone".
        delay: Seconds waited before it.
    """

    number: int
    started: float
    duration: float
    outcome: Literal["success", "failure"]
    error: BaseException | None = None
    classification: Classification | None = None
    actions: tuple[str, ...] = ()
    delay: float = 0.0
