"""What a Recovery has done, in numbers: `recovery.stats()`.

Every call is counted when it ends. A call whose first attempt failed is
booked under the category of that first failure, with how it ended:
recovered on its own (the operation's value, with no one deciding), served
by the fallback, settled by an escalation's decision, or aborted.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from dataclasses import asdict, dataclass
from typing import Literal

from brace.classify._classifier import Category

__all__ = ["CategoryStats", "RecoveryStats"]

Ending = Literal["recovered", "retried_by_decision", "fallback", "use", "skip", "abort"]

# p95 is computed over the most recent recoveries, so memory stays bounded in a
# long-running process.
_RECENT = 100_000


def _p95(times: list[float]) -> float | None:
    if not times:
        return None
    ordered = sorted(times)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]  # nearest rank


def _mean(times: list[float]) -> float | None:
    return sum(times) / len(times) if times else None


@dataclass(frozen=True)
class CategoryStats:
    """The calls whose first failure fell in one category.

    Attributes:
        failed: Calls whose first attempt failed in this category.
        recovered: Of those, calls that returned the operation's own value
            with no one deciding (healed by retries and healing actions).
        fallback: Calls served by the fallback.
        escalated: Calls that reached escalation (whatever was decided).
        dead_lettered: Calls whose arguments went to the dead-letter store.
        mean_recovery_time: Mean seconds from the first failure to the
            success, over `recovered`; None when there is none.
        p95_recovery_time: Its 95th percentile (nearest rank).
        attempts: Attempts made by these calls, in all.
    """

    failed: int = 0
    recovered: int = 0
    fallback: int = 0
    escalated: int = 0
    dead_lettered: int = 0
    mean_recovery_time: float | None = None
    p95_recovery_time: float | None = None
    attempts: int = 0


@dataclass(frozen=True)
class RecoveryStats:
    """A snapshot of a Recovery's record.

    Attributes:
        calls: Calls that ended.
        first_try: Calls whose first attempt succeeded.
        failed: Calls with at least one failed attempt.
        transient_failures: Failed calls whose first failure was transient.
        transient_recovered: Of those, calls that recovered on their own.
        transient_recovery_rate: transient_recovered / transient_failures
            (None when there were none).
        recovered: Failed calls (any category) that recovered on their own.
        mean_recovery_time: Mean seconds from first failure to success, over `recovered`.
        p95_recovery_time: Its 95th percentile (over the last 100,000 recoveries).
        attempts_made: Attempts that ran the operation, first attempts included.
        attempts_rejected: Attempts the Recovery's policy rejected before
            running the operation (breaker open, limiter, bulkhead full):
            nothing was sent.
        attempts_per_recovery: Mean attempts of the calls that recovered on their own.
        fallbacks: Calls served by the fallback.
        escalations: Calls that reached escalation.
        dead_lettered: Calls whose arguments went to the dead-letter store.
        by_category: The failed calls by the category of their first failure.
    """

    calls: int
    first_try: int
    failed: int
    transient_failures: int
    transient_recovered: int
    transient_recovery_rate: float | None
    recovered: int
    mean_recovery_time: float | None
    p95_recovery_time: float | None
    attempts_made: int
    attempts_rejected: int
    attempts_per_recovery: float | None
    fallbacks: int
    escalations: int
    dead_lettered: int
    by_category: dict[str, CategoryStats]

    def as_dict(self) -> dict[str, object]:
        """The snapshot as JSON-able data (categories by their value)."""
        return asdict(self)


class _Book:
    """The running record behind `Recovery.stats()`; thread-safe."""

    __slots__ = ("_lock", "_calls", "_first_try", "_attempts", "_rejected", "_transient", "_transient_recovered",
                 "_recovered_attempts", "_categories", "_times")  # fmt: skip

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls = self._first_try = self._attempts = self._rejected = 0
        self._transient = self._transient_recovered = self._recovered_attempts = 0
        self._categories: dict[Category, list[int]] = {}
        self._times: dict[Category, deque[float]] = {}

    def first_try(self) -> None:
        with self._lock:
            self._calls += 1
            self._first_try += 1
            self._attempts += 1

    def failed_call(self, category: Category, *, transient: bool, ending: Ending, attempts: int, rejected: int,
                    escalated: bool, dead_lettered: bool, recovery_time: float | None) -> None:  # fmt: skip
        recovered = ending == "recovered"
        with self._lock:
            self._calls += 1
            self._attempts += attempts
            self._rejected += rejected
            counts = self._categories.setdefault(category, [0, 0, 0, 0, 0, 0])
            counts[0] += 1
            counts[1] += recovered
            counts[2] += ending == "fallback"
            counts[3] += escalated
            counts[4] += dead_lettered
            counts[5] += attempts
            if transient:
                self._transient += 1
                self._transient_recovered += recovered
            if recovered:
                self._recovered_attempts += attempts
                assert recovery_time is not None
                self._times.setdefault(category, deque(maxlen=_RECENT)).append(recovery_time)

    def snapshot(self) -> RecoveryStats:
        with self._lock:
            categories = {category: list(counts) for category, counts in self._categories.items()}
            times = {category: list(recent) for category, recent in self._times.items()}
            calls, first_try, attempts, rejected = self._calls, self._first_try, self._attempts, self._rejected
            transient, transient_recovered, recovered_attempts = (self._transient, self._transient_recovered,
                                                                  self._recovered_attempts)  # fmt: skip
        by_category = {
            category.value: CategoryStats(
                failed=counts[0], recovered=counts[1], fallback=counts[2], escalated=counts[3],
                dead_lettered=counts[4], mean_recovery_time=_mean(times.get(category, [])),
                p95_recovery_time=_p95(times.get(category, [])), attempts=counts[5])
            for category, counts in sorted(categories.items(), key=lambda item: item[0].value)
        }  # fmt: skip
        every_time = [time for recent in times.values() for time in recent]
        recovered = sum(counts[1] for counts in categories.values())
        return RecoveryStats(
            calls=calls, first_try=first_try, failed=calls - first_try, transient_failures=transient,
            transient_recovered=transient_recovered,
            transient_recovery_rate=transient_recovered / transient if transient else None,
            recovered=recovered, mean_recovery_time=_mean(every_time), p95_recovery_time=_p95(every_time),
            attempts_made=attempts, attempts_rejected=rejected, attempts_per_recovery=recovered_attempts / recovered if recovered else None,
            fallbacks=sum(counts[2] for counts in categories.values()),
            escalations=sum(counts[3] for counts in categories.values()),
            dead_lettered=sum(counts[4] for counts in categories.values()),
            by_category=by_category,
        )  # fmt: skip
