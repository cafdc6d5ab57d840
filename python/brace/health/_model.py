"""What health checks produce: a status, each check's result, the report and its events."""

from __future__ import annotations

import enum
import json
from datetime import datetime, timezone
from typing import Any, NamedTuple

__all__ = ["HealingAttempt", "HealthEvent", "Outcome", "Report", "Result", "Status", "worst"]


class Status(enum.Enum):
    """How well a dependency (or the whole service) works, from best to worst."""

    HEALTHY = "healthy"
    DEGRADED = "degraded"  # works, with less than its full service
    UNHEALTHY = "unhealthy"  # does not work

    @property
    def rank(self) -> int:
        """0 for HEALTHY, 1 for DEGRADED, 2 for UNHEALTHY: the larger, the worse."""
        return _RANKS[self]


_RANKS = {Status.HEALTHY: 0, Status.DEGRADED: 1, Status.UNHEALTHY: 2}


def worst(statuses: list[Status]) -> Status:
    """The worst of the statuses (HEALTHY for none)."""
    return max(statuses, key=lambda status: status.rank, default=Status.HEALTHY)


class Outcome(NamedTuple):
    """What one run of a check's probe found.

    Attributes:
        status: The probe's status.
        reason: Why it is not healthy ("" when healthy): "timed out after 1 s",
            "ConnectionRefusedError: [Errno 111] Connection refused", "returned False".
        error: What the probe raised (a TimeoutError when it timed out), or None.
        duration: Seconds the probe took (real time), or None when it did not end
            within its timeout or was not started.
    """

    status: Status
    reason: str = ""
    error: BaseException | None = None
    duration: float | None = None


class HealingAttempt(NamedTuple):
    """One healing action run for a failing check, and the re-check that verified it.

    Attributes:
        action: The HealingAction's name.
        error: What the action raised ("Type: message"), or None when it returned.
        healed: Whether the re-check after it found the check no longer unhealthy
            (False without a re-check: the action raised).
        status: The re-check's status, or None when the action raised.
        reason: The re-check's reason ("" when healthy or not re-checked).
    """

    action: str
    error: str | None
    healed: bool
    status: Status | None = None
    reason: str = ""


class Result(NamedTuple):
    """One check's result within a report.

    Attributes:
        name: The check's name.
        status: Its status with its dependencies' cascaded in: the worst of its
            own status and what each dependency passes up (a critical dependency
            its status, a non-critical one at worst DEGRADED).
        reason: Why it is not healthy, through the chain of dependencies
            ("db unhealthy: timed out after 1 s"); "" when healthy.
        own_status: What its probe and breaker alone found.
        critical: Whether its failure makes its dependents (and the report) unhealthy,
            rather than degraded.
        depends_on: The names of the checks it depends on.
        duration: Seconds its probe took, or None (timed out, no probe).
        healing: The healing actions run for it in this report, in order.
    """

    name: str
    status: Status
    reason: str
    own_status: Status
    critical: bool
    depends_on: tuple[str, ...] = ()
    duration: float | None = None
    healing: tuple[HealingAttempt, ...] = ()

    def explain(self) -> str:
        """One line: "api unhealthy: db unhealthy: timed out after 1 s", or "api healthy"."""
        return f"{self.name} {self.status.value}: {self.reason}" if self.reason else f"{self.name} {self.status.value}"

    def as_dict(self) -> dict[str, Any]:
        """The result as JSON-able data (statuses as their values)."""
        return {
            "status": self.status.value,
            "reason": self.reason,
            "own_status": self.own_status.value,
            "critical": self.critical,
            "depends_on": list(self.depends_on),
            "duration": self.duration,
            "healing": [{**attempt._asdict(), "status": attempt.status.value if attempt.status else None}
                        for attempt in self.healing],  # fmt: skip
        }


class Report(NamedTuple):
    """Every check's result, aggregated.

    Attributes:
        name: The Health's name, or None.
        status: The worst of what the top checks (those no other check depends
            on) pass up: a critical one its status, a non-critical one at worst DEGRADED.
        reason: The explanations of the top checks that are not healthy, joined
            by "; " ("" when healthy).
        results: Each check's Result, dependencies before their dependents.
        at: When the report was made, seconds on brace's clock.
        checked_at: The same moment as a wall-clock UNIX time (for people and JSON).
    """

    name: str | None
    status: Status
    reason: str
    results: tuple[Result, ...]
    at: float
    checked_at: float

    def result(self, name: str) -> Result:
        """The result of the check called name. KeyError when there is none."""
        for result in self.results:
            if result.name == name:
                return result
        raise KeyError(name)

    @property
    def http_status(self) -> int:
        """What the HTTP handlers answer: 503 when unhealthy, else 200 (degraded still serves)."""
        return 503 if self.status is Status.UNHEALTHY else 200

    def as_dict(self) -> dict[str, Any]:
        """The report as JSON-able data: name, status, reason, checked_at (ISO 8601, UTC) and
        checks ({name: Result.as_dict()})."""
        return {
            "name": self.name,
            "status": self.status.value,
            "reason": self.reason,
            "checked_at": datetime.fromtimestamp(self.checked_at, timezone.utc).isoformat(),
            "checks": {result.name: result.as_dict() for result in self.results},
        }

    def to_json(self) -> str:
        """as_dict() as JSON text."""
        return json.dumps(self.as_dict(), sort_keys=True)


class HealthEvent(NamedTuple):
    """What a Health's listener receives.

    Attributes:
        kind: "status_changed" (a check's status, or with check None the report's,
            differs from the previous report's; the first report counts as a change
            from None), "healed" (a healing action ran and the re-check passed) or
            "healing_failed" (it raised, or the re-check still failed).
        name: The Health's name, or None.
        at: When it happened, seconds on brace's clock.
        check: The check's name, or None for the report as a whole.
        status: The new status (status_changed), or the re-check's (healing).
        previous: The status before (status_changed; None at the first report).
        reason: Why, as in Result.reason and Report.reason.
        attempt: The HealingAttempt (healed, healing_failed).
    """

    kind: str
    name: str | None
    at: float
    check: str | None = None
    status: Status | None = None
    previous: Status | None = None
    reason: str = ""
    attempt: HealingAttempt | None = None
