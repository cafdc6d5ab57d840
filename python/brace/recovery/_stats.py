"""What a Recovery has done, in numbers: `recovery.stats()`.

Every call is counted when it ends. A call whose first attempt failed is
booked under the category of that first failure, with how it ended:
recovered on its own (the operation's value, with no one deciding), served
by the fallback, settled by an escalation's decision, or aborted.

Recovery times are kept as a histogram of log-spaced buckets (as DDSketch
does), not as a list: the mean is exact, and the 95th percentile is within
1% of the exact one (nearest rank) over every recovery since the Recovery was
made. `stats()` costs the same after 10 or 10 million recoveries, and each
category keeps at most 1,024 counts (8 KiB; a few hundred when its times span
a few orders of magnitude, as they do).
"""

from __future__ import annotations

import math
import threading
from array import array
from dataclasses import asdict, dataclass
from typing import Literal

from brace.classify import Category

__all__ = ["RELATIVE_ERROR", "CategoryStats", "RecoveryStats"]

Ending = Literal["recovered", "retried_by_decision", "fallback", "use", "skip", "abort"]

RELATIVE_ERROR = 0.01
"""The most a quantile of `stats()` differs from the exact one, relative to it."""

# Bucket i holds the times in (GAMMA**(i-1), GAMMA**i]; its midpoint
# 2 GAMMA**i / (GAMMA + 1) is within (GAMMA - 1) / (GAMMA + 1) of each of
# them, relatively: _ALPHA, a little under RELATIVE_ERROR so that rounding
# at a bucket's edge stays within it.
_ALPHA = 0.0099
_GAMMA = (1 + _ALPHA) / (1 - _ALPHA)
_LOG_GAMMA = math.log(_GAMMA)
# Times below 1 ns (what a clock can tell) are counted as 0.
_SMALLEST = 1e-9
# At most this many buckets per histogram: 1,024 span a factor of 6 * 10^8, so
# only a time over 5 * 10^8 times shorter than the longest is merged (into the
# lowest bucket, where a quantile reads it as longer than it was).
_BUCKETS = 1024


class _Times:
    """Recovery times: their exact count and sum, and a log-bucket histogram for quantiles."""

    __slots__ = ("count", "total", "_zeros", "_low", "_counts")

    def __init__(self) -> None:
        self.count = 0
        self.total = 0.0
        self._zeros = 0  # times under _SMALLEST
        self._low = 0  # the bucket index of _counts[0]
        self._counts = array("Q")

    def add(self, seconds: float) -> None:
        self.count += 1
        self.total += seconds
        if seconds < _SMALLEST:
            self._zeros += 1
            return
        index = math.ceil(math.log(seconds) / _LOG_GAMMA)
        counts = self._counts
        if not counts:
            self._low = index
            counts.append(0)
        elif index < self._low:
            # Widen down to index, unless that spans too many buckets: then the
            # time goes into the lowest bucket kept.
            grow = min(self._low - index, _BUCKETS - len(counts))
            if grow > 0:
                self._counts = counts = array("Q", bytes(8 * grow)) + counts
                self._low -= grow
            index = max(index, self._low)
        elif index >= self._low + len(counts):
            low = max(self._low, index - _BUCKETS + 1)
            if low > self._low:
                # Merge the buckets below low into it, so the histogram keeps its size.
                cut = low - self._low
                counts = array("Q", [sum(counts[: cut + 1])]) + counts[cut + 1 :]
                self._low = low
            counts.extend(array("Q", bytes(8 * (index - self._low + 1 - len(counts)))))
            self._counts = counts
        counts[index - self._low] += 1

    def quantile(self, q: float) -> float | None:
        """The q-quantile (nearest rank) within RELATIVE_ERROR, or None when there are no times."""
        if not self.count:
            return None
        rank = max(1, math.ceil(q * self.count))  # the rank-th shortest time, from 1
        if rank <= self._zeros:
            return 0.0
        seen = self._zeros
        for offset, number in enumerate(self._counts):
            seen += number
            if seen >= rank:
                return 2 * _GAMMA ** (self._low + offset) / (_GAMMA + 1)
        raise AssertionError("the counts add up to the count")

    def mean(self) -> float | None:
        return self.total / self.count if self.count else None

    def at_most(self, bounds: tuple[float, ...]) -> list[int]:
        """For each bound (ascending), the times at most that long, within RELATIVE_ERROR
        (a bucket counts when its midpoint, the value quantile() reports, is within the bound)."""
        found: list[int] = []
        seen, offset = self._zeros, 0
        counts = self._counts
        for bound in bounds:
            while offset < len(counts) and 2 * _GAMMA ** (self._low + offset) / (_GAMMA + 1) <= bound:
                seen += counts[offset]
                offset += 1
            found.append(seen)
        return found

    def copy(self) -> _Times:
        copied = _Times()
        copied.count, copied.total, copied._zeros, copied._low = self.count, self.total, self._zeros, self._low
        copied._counts = array("Q", self._counts)
        return copied


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
            success, over `recovered`; None when there is none. Exact.
        p95_recovery_time: Its 95th percentile (nearest rank), within 1%
            (RELATIVE_ERROR) of the exact one; times under 1 ns count as 0.
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
        mean_recovery_time: Mean seconds from first failure to success, over `recovered`. Exact.
        p95_recovery_time: Its 95th percentile (nearest rank) over every
            recovery, within 1% (RELATIVE_ERROR) of the exact one.
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


class Book:
    """The running record behind `Recovery.stats()`; thread-safe."""

    __slots__ = ("_lock", "_calls", "_first_try", "_attempts", "_rejected", "_transient", "_transient_recovered",
                 "_recovered_attempts", "_categories", "_times", "_every_time")  # fmt: skip

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls = self._first_try = self._attempts = self._rejected = 0
        self._transient = self._transient_recovered = self._recovered_attempts = 0
        self._categories: dict[Category, list[int]] = {}
        self._times: dict[Category, _Times] = {}
        self._every_time = _Times()  # every category's

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
                times = self._times.get(category)
                if times is None:
                    times = self._times[category] = _Times()
                times.add(recovery_time)
                self._every_time.add(recovery_time)

    def recovery_times(self, bounds: tuple[float, ...]) -> tuple[list[int], int, float]:
        """(the recoveries at most each bound long, cumulative; their count; their sum in seconds)."""
        with self._lock:
            every_time = self._every_time
            return every_time.at_most(bounds), every_time.count, every_time.total

    def snapshot(self) -> RecoveryStats:
        with self._lock:
            categories = {category: list(counts) for category, counts in self._categories.items()}
            # Copies (a few KiB each): the quantiles are read outside the lock.
            times = {category: kept.copy() for category, kept in self._times.items()}
            every_time = self._every_time.copy()
            calls, first_try, attempts, rejected = self._calls, self._first_try, self._attempts, self._rejected
            transient, transient_recovered, recovered_attempts = (self._transient, self._transient_recovered,
                                                                  self._recovered_attempts)  # fmt: skip
        none = _Times()
        by_category = {
            category.value: CategoryStats(
                failed=counts[0], recovered=counts[1], fallback=counts[2], escalated=counts[3],
                dead_lettered=counts[4], mean_recovery_time=times.get(category, none).mean(),
                p95_recovery_time=times.get(category, none).quantile(0.95), attempts=counts[5])
            for category, counts in sorted(categories.items(), key=lambda item: item[0].value)
        }  # fmt: skip
        recovered = sum(counts[1] for counts in categories.values())
        return RecoveryStats(
            calls=calls, first_try=first_try, failed=calls - first_try, transient_failures=transient,
            transient_recovered=transient_recovered,
            transient_recovery_rate=transient_recovered / transient if transient else None,
            recovered=recovered, mean_recovery_time=every_time.mean(), p95_recovery_time=every_time.quantile(0.95),
            attempts_made=attempts, attempts_rejected=rejected, attempts_per_recovery=recovered_attempts / recovered if recovered else None,
            fallbacks=sum(counts[2] for counts in categories.values()),
            escalations=sum(counts[3] for counts in categories.values()),
            dead_lettered=sum(counts[4] for counts in categories.values()),
            by_category=by_category,
        )  # fmt: skip
