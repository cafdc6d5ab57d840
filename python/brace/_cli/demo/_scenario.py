"""The scenario: the calls made (a Poisson workload), the fault kinds and their categories,
and how a call can end (a call made through the recovery, checked)."""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from typing import Any, Literal, NamedTuple

import brace
from brace._cli.demo._service import RECORDS, record
from brace._cli.demo._settings import Settings
from brace.recovery import DeadLetterStore, correlation

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


def call_through(recovery: brace.Recovery, store: DeadLetterStore, fetch: Callable[[int], dict[str, Any]],
                 call: Call) -> Ended:  # fmt: skip
    """Makes `call` through `recovery` under its correlation id, and checks how it ended: the
    record's true value, a Degraded one, or a dead letter in `store` holding the call."""
    with correlation(call.correlation):
        try:
            value = recovery.call(fetch, call.record_id)
        except brace.RecoveryFailed as failed:
            return _given_up(store, call, failed)
        except Exception as error:  # anything else reaching the caller is a loss
            return Ended(call, "lost", f"raised {type(error).__name__}: {error}")
    if isinstance(value, brace.Degraded):
        return Ended(call, "degraded", value.source)
    if value != record(call.record_id):
        return Ended(call, "wrong_value", repr(value))
    return Ended(call, "value")


def _given_up(store: DeadLetterStore, call: Call, failed: brace.RecoveryFailed) -> Ended:
    if failed.dead_letter is None:
        return Ended(call, "lost", "RecoveryFailed without a dead letter")
    try:
        letter = store.get(failed.dead_letter)
    except KeyError:
        return Ended(call, "lost", f"dead letter {failed.dead_letter} is not in the store")
    if (letter.operation, letter.args, letter.correlation_id) != (OPERATION, (call.record_id,), call.correlation):
        return Ended(call, "lost", f"dead letter {letter.id} does not hold this call")
    return Ended(call, "dead_letter", letter.id)
