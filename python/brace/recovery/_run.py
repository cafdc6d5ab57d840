"""One recovered call's state: what it is, and what its failures have used up so far."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, Callable

from brace._core import now_ns
from brace.classify import Category
from brace.recovery._escalation import AttemptRecord
from brace.recovery._healing import HealingAction, HealingContext
from brace.recovery._outbox import Outbox

__all__ = ["Run"]


class Run:
    """One call: its operation and arguments, how attempts are made, and, after its first
    failure, the record recovery keeps (timeline, allowances used, healing in flight)."""

    __slots__ = ("operation", "args", "kwargs", "attempt", "attempt_async", "is_async", "outbox", "number", "made",
                 "failed", "timeline", "tally", "previous", "refreshed", "healing_deadline", "first_failure",
                 "failed_at", "waited", "pending", "actions_log", "retry_decisions", "began", "escalated",
                 "dead_lettered", "undo_due", "not_run")  # fmt: skip

    def __init__(self, operation: str, args: tuple[Any, ...], kwargs: dict[str, Any], *,
                 attempt: Callable[..., Any] | None, attempt_async: Callable[..., Awaitable[Any]] | None) -> None:  # fmt: skip
        """`attempt`: one attempt in a thread, None for a coroutine's call; `attempt_async`: one
        attempt in a coroutine (on a thread's call: the call's first attempt may return an
        awaitable, which makes it a coroutine's call; None: it may not)."""
        self.operation = operation
        self.args, self.kwargs = args, kwargs
        self.attempt, self.attempt_async = attempt, attempt_async
        self.is_async = attempt is None
        # A first attempt made already (by the compiled fast path): when it started, whether
        # it returned, and its result or exception; None: the steps make every attempt.
        self.made: tuple[int, bool, Any] | None = None
        self.outbox: Outbox | None = None
        self.number = 1
        self.failed = False  # no attempt has failed yet: the state below is made by the first failure

    def first_failed(self, healing_time_ns: int) -> None:
        """The call's first failure: the record of its recovery begins."""
        self.failed = True
        self.not_run = 0  # attempts the policy rejected before running the operation
        self.timeline: list[AttemptRecord] = []
        self.retry_decisions = 0
        # Credentials were refreshed and no attempt since has shown them accepted:
        # a 401 now means the refresh did not help (AUTH_INVALID).
        self.refreshed = False
        self.escalated = self.dead_lettered = False
        self.new_round(healing_time_ns)
        self.began = self.first_failure  # the call's first failure, kept across rounds

    def new_round(self, healing_time_ns: int) -> None:
        """Fresh allowances and a fresh healing clock (the first failure, or a RETRY decision)."""
        self.tally: dict[Category, int] = {}
        self.previous: dict[Category, float] = {}
        self.first_failure = self.failed_at = now_ns()
        self.healing_deadline = self.first_failure + healing_time_ns
        self.waited = 0.0
        # Healing actions applied before the attempt in flight, awaiting its verdict.
        self.pending: list[tuple[str, HealingAction | None, HealingContext, int]] = []
        # Actions the last attempt showed to have made things worse, to roll back next.
        self.undo_due: list[tuple[HealingAction, HealingContext]] = []
        self.actions_log: list[str] = []
