"""Classification: what an outcome is (its category) and how to treat it."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

from brace.backoff import Backoff, after_server_wait
from brace.classify._categories import RETRIES_RENAMED, STRATEGY_TEXT, Category, Severity, Strategy, Treatment


@dataclass(frozen=True, slots=True)
class Classification:
    """What an outcome is and how to treat it: its category plus the category's treatment.

    Attributes:
        category: The kind of failure.
        transient, retryable, severity, strategy, retries, backoff,
            pushback: The treatment (see brace.Treatment), the category's
            with the matching rule's overrides.
        retry_after: Seconds the server asked to wait (Retry-After and the
            other pushback fields), else the retry_after of a brace
            RateLimited, else None (a CircuitOpen's open time is brace's own
            decision, not a wait to honour).
        status: The HTTP status found, or None.
        rule: The name of the rule that decided: "builtin:http-status",
            "builtin:errno", ..., or a user rule's name.
        error: What was classified (not compared: two classifications of
            different errors with the same verdict are equal).
        pushback_ignored: Why the server's wait fields were ignored (more of
            them than brace.pushback.MAX_FIELDS_CHARS), or None.
    """

    category: Category
    transient: bool
    retryable: bool
    severity: Severity
    strategy: Strategy
    retries: int
    backoff: Backoff
    pushback: bool
    retry_after: float | None
    status: int | None
    rule: str
    error: object = field(compare=False, repr=False)
    pushback_ignored: str | None = None

    @property
    def max_attempts(self) -> int:
        """The old name of `retries` (deprecated)."""
        warnings.warn(RETRIES_RENAMED, DeprecationWarning, stacklevel=2)
        return self.retries

    @property
    def treatment(self) -> Treatment:
        """The treatment applied, as a brace.Treatment."""
        return Treatment(self.transient, self.retryable, self.severity, self.strategy, self.retries,
                         self.backoff, self.pushback)  # fmt: skip

    def delay(self, retry: int, *, previous: float | None = None) -> float:
        """Seconds to wait before retry number `retry` (1 for the first) of this category.

        The server's wait when the treatment honours pushback and the server
        said one (spread over up to 20% more, so that callers told the same wait
        do not return in the same instant), else the category's
        backoff at `retry` (`previous`: the delay before the previous retry of
        the category, for decorrelated jitter).
        """
        if self.pushback and self.retry_after is not None:
            return after_server_wait(self.retry_after)
        return self.backoff.delay(retry, previous=previous, outcome=self.error)

    def describe(self) -> str:
        """One line: the category and what it means, for logs and escalations."""
        facts = [] if self.status is None else [f"HTTP {self.status}"]
        facts.append("transient" if self.transient else "not transient")
        facts.append("retryable" if self.retryable else "not retryable")
        facts.append(f"severity {self.severity.name}")
        parts = [", ".join(facts), STRATEGY_TEXT[self.strategy]]
        if self.retryable:
            more = self.retries
            parts.append("no more attempts" if more == 0 else f"up to {more} more attempt{'s' if more != 1 else ''}")
        if self.retry_after is not None:
            parts.append(f"server asked {self.retry_after:.1f} s")
        if self.pushback_ignored is not None:
            parts.append(self.pushback_ignored)
        return f"{self.category.name} ({'; '.join(parts)})"
