"""The scenario: the calls made (a Poisson workload), the fault kinds and their categories,
and how a call can end."""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Literal, NamedTuple

from brace._cli.demo._service import RECORDS
from brace._cli.demo._settings import Settings

# The operation's name: the Recovery's, and its dead letters' (what replay looks up).
OPERATION = "fetch_record"

# Fault kinds as the service counts them, and the category each one is.
FAULT_CATEGORY: Mapping[str, str] = {
    "timeout": "timeout",
    "reset": "network_error",
    "throttled": "rate_limited",
    "outage": "service_down",
    "expired_token": "auth_expired",
    "schema_drift": "schema_mismatch",
    "not_found": "not_found",
}
CATEGORIES: tuple[str, ...] = tuple(FAULT_CATEGORY.values())
TRANSIENT = frozenset({"timeout", "network_error", "rate_limited", "service_down"})


class Call(NamedTuple):
    number: int
    arrival: float  # simulated seconds
    record_id: int

    @property
    def correlation(self) -> str:
        return f"call-{self.number:06d}"


Outcome = Literal["value", "wrong_value", "degraded", "dead_letter", "lost"]


class Ended(NamedTuple):
    """How one call ended, as the caller saw it (and checked)."""

    call: Call
    outcome: Outcome
    detail: str = ""


def workload(settings: Settings) -> list[Call]:
    """The calls: Poisson arrivals, record ids, some of them for records that do not exist."""
    rng = random.Random(f"{settings.seed}:workload")
    calls, at = [], 0.0
    for index in range(settings.calls):
        missing = rng.random() < settings.permanent_rate
        record_id = RECORDS + 1 + rng.randrange(RECORDS) if missing else 1 + rng.randrange(RECORDS)
        calls.append(Call(index, at, record_id))
        at += rng.expovariate(1.0 / settings.interval)
    return calls
