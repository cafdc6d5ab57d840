"""`python -m brace demo`: a chaos run of the recovery layer against a simulated API.

A records service with two regions is called a few thousand times through one
brace.Recovery, configured the way a user of such a service would configure
it. The service fails the way real ones do, with state: requests time out
after the client's timeout, a reset leaves the pooled connection broken until
someone reconnects, a 429 keeps coming until its Retry-After has passed, a
region's 503 outage lasts seconds, the access token expires every few
minutes, the provider changes its payload's shape once, and some records do
not exist (404: nothing heals that; a person must look).

Every figure is counted outside brace: attempts made by the service itself
(per correlation id, as its access log would), attempts logged by reading the
recovery log's sink back, losses by checking each call's outcome and each
dead letter in the store. brace's own `recovery.stats()` is reported next to
them as a cross-check, not used for the verdict.

Time is simulated: with `--clock fake` (the default) brace's clock is frozen
and both the service's waits and brace's sleeps advance it, so an hour of
traffic takes seconds; with `--clock real --speed K` every simulated duration
(the service's waits, Retry-After, the backoffs, the healing time) is divided
by K and a few threads call concurrently. Reported times are simulated seconds.
"""

from __future__ import annotations

import argparse
import dataclasses
import errno
import itertools
import json
import math
import os
import random
import sys
import tempfile
import textwrap
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from typing import Any, Literal, NamedTuple, TextIO

import brace
from brace._clock import sleep_until
from brace._core import now_ns
from brace.recovery import DeadLetterStore, SQLiteDeadLetters, replay
from brace.recovery._escalation import Escalation
from brace.recovery._log import JsonLinesSink, MemorySink, RecoveryLog, correlation, correlation_id
from brace.testing import FakeClock

__all__ = ["Settings", "add_arguments", "main", "run"]

_NS = 1_000_000_000
_WIDTH = 80  # the report's columns
OPERATION = "fetch_record"

# The targets the issue sets; a run meets them or the command exits 1.
TARGET_TRANSIENT_RECOVERY = 0.95
TARGET_MEAN_RECOVERY = 10.0

# Fault kinds as the service counts them, and the category each one is.
_FAULT_CATEGORY: Mapping[str, str] = {
    "timeout": "timeout",
    "reset": "network_error",
    "throttled": "rate_limited",
    "outage": "service_down",
    "expired_token": "auth_expired",
    "schema_drift": "schema_mismatch",
    "not_found": "not_found",
}
CATEGORIES: tuple[str, ...] = tuple(_FAULT_CATEGORY.values())
_TRANSIENT = frozenset({"timeout", "network_error", "rate_limited", "service_down"})

# The service: existing records are 1.._RECORDS; a permanent failure asks for one above.
_RECORDS = 50_000
_CLIENT_TIMEOUT = 2.0  # seconds the client waits for a response
_THROTTLE_WINDOW = (1.0, 5.0)  # seconds a 429 episode lasts
_OUTAGE = (2.0, 12.0)  # seconds a region's outage lasts
_REGIONS = ("eu", "us")


@dataclasses.dataclass(frozen=True)
class Settings:
    """One chaos run. Durations are simulated seconds; rates are probabilities per request
    (`permanent_rate`: per call).

    Attributes:
        calls: Calls to make, >= 1.
        seed: Seeds the workload, the faults and brace's jitter (fake clock: the same report).
        clock: "fake" (brace's clock frozen, waits advance it) or "real".
        speed: Real clock only: simulated seconds per real second, > 0.
        workers: Real clock only: threads calling concurrently, >= 1.
        interval: Mean simulated seconds between two calls' arrivals (Poisson), > 0.
        timeout_rate: A request hangs until the client's 2 s timeout.
        reset_rate: A request's connection is reset; it stays broken until reconnected.
        throttle_rate: A request starts a 1-5 s window of 429s with Retry-After.
        outage_rate: A request starts a 2-12 s outage (503) of the region it reached.
        token_lifetime: Seconds an access token lives (then 401 until refreshed), > 0.
        drift_at: When the payload's shape changes: after drift_at * calls requests, 0..1.
        permanent_rate: A call asks for a record that does not exist (404).
        dead_letters: The SQLite dead-letter file to keep, or None for a temporary one.
        log: A JSON-lines file for the recovery log (overwritten), or None for memory.
    """

    calls: int = 3000
    seed: int = 7
    clock: Literal["fake", "real"] = "fake"
    speed: float = 100.0
    workers: int = 4
    interval: float = 0.5
    timeout_rate: float = 0.03
    reset_rate: float = 0.01
    throttle_rate: float = 0.01
    outage_rate: float = 0.005
    token_lifetime: float = 300.0
    drift_at: float = 0.4
    permanent_rate: float = 0.01
    dead_letters: str | None = None
    log: str | None = None


# -- the simulated service ------------------------------------------------------------------


class Response:
    """An HTTP response as brace's classifier sees responses: `status_code` and `headers`."""

    __slots__ = ("status_code", "headers", "payload")

    def __init__(self, status_code: int, payload: object = None, headers: dict[str, str] | None = None) -> None:
        self.status_code = status_code
        self.payload = payload
        self.headers = {} if headers is None else headers

    def raise_for_status(self) -> None:
        if self.status_code >= 400:
            raise HTTPError(self)

    def json(self) -> Any:
        return self.payload

    def __repr__(self) -> str:
        return f"<Response [{self.status_code}]>"


_REASONS = {401: "Unauthorized", 404: "Not Found", 429: "Too Many Requests", 503: "Service Unavailable"}


class HTTPError(Exception):
    """What the client raises for an error status; the response travels on `.response`."""

    def __init__(self, response: Response) -> None:
        super().__init__(f"HTTP {response.status_code} {_REASONS.get(response.status_code, '')}".rstrip())
        self.response = response


def record(record_id: int) -> dict[str, Any]:
    """The true content of a record: what every successful call must return."""
    return {"id": record_id, "values": [f"r{record_id}c{column}" for column in range(3)]}


class RecordsAPI:
    """The records service and its faults, in simulated seconds. Thread-safe.

    It counts what it received and what it did, per fault kind and per
    correlation id (the `X-Correlation-ID` its access log would keep): this
    is the ground truth the demo's accounting uses.
    """

    def __init__(self, settings: Settings, *, origin_ns: int, speed: float) -> None:
        self.settings = settings  # the fault rates: a test may change them between requests
        self._origin = origin_ns
        self._speed = speed
        # The provider deploys its new payload shape after this many requests.
        self._drift_after = round(settings.drift_at * settings.calls)
        self._received = 0
        self._rng = random.Random(f"{settings.seed}:faults")
        self._lock = threading.Lock()
        self._connections = itertools.count(1)
        self._broken: set[int] = set()
        self._tokens: dict[str, float] = {}
        self._throttled_until = -math.inf
        self._down_until = dict.fromkeys(_REGIONS, -math.inf)
        self.requests = 0
        self.injected: Counter[str] = Counter()
        self.episodes: Counter[str] = Counter()  # throttle windows, outages, token expiries
        self.ledger: dict[str, list[tuple[str, int]]] = {}  # correlation id -> (kind, end ns)

    def now(self) -> float:
        """Simulated seconds since the run began."""
        return (now_ns() - self._origin) / _NS * self._speed

    def connect(self) -> int:
        with self._lock:
            return next(self._connections)

    def issue_token(self) -> str:
        with self._lock:
            token = f"token-{len(self._tokens) + 1}"
            self._tokens[token] = self.now() + self.settings.token_lifetime
            return token

    def get(self, record_id: int, *, connection: int, region: str, token: str, schema: int,
            correlation: str | None) -> Response:  # fmt: skip
        """GET /records/{record_id}: a response, or TimeoutError / ConnectionResetError."""
        with self._lock:
            kind, response = self._serve(record_id, connection, region, token, schema)
        if kind == "timeout":
            # The server never answers; the client gives up after its timeout.
            sleep_until(now_ns() + round(_CLIENT_TIMEOUT / self._speed * _NS))
        with self._lock:
            self.requests += 1
            if kind != "ok":
                self.injected[kind] += 1
            self.ledger.setdefault(correlation or "", []).append((kind, now_ns()))
        if kind == "timeout":
            raise TimeoutError(f"GET /records/{record_id}: no response within {_CLIENT_TIMEOUT:g} s")
        if kind == "reset":
            raise ConnectionResetError(errno.ECONNRESET, "Connection reset by peer")
        assert response is not None
        return response

    def _serve(self, record_id: int, connection: int, region: str, token: str,
               schema: int) -> tuple[str, Response | None]:  # fmt: skip
        settings, rng, now = self.settings, self._rng, self.now()
        self._received += 1
        if connection in self._broken:
            return "reset", None
        if rng.random() < settings.reset_rate:
            self._broken.add(connection)
            return "reset", None
        if rng.random() < settings.timeout_rate:
            return "timeout", None
        if now >= self._throttled_until and rng.random() < settings.throttle_rate:
            self._throttled_until = now + rng.uniform(*_THROTTLE_WINDOW)
            self.episodes["throttle windows"] += 1
        if now < self._throttled_until:
            wait = math.ceil(self._throttled_until - now) / self._speed
            return "throttled", Response(429, {"error": "rate limited"}, {"Retry-After": format(wait, "g")})
        if now >= self._down_until[region] and rng.random() < settings.outage_rate:
            self._down_until[region] = now + rng.uniform(*_OUTAGE)
            self.episodes["outages"] += 1
        if now < self._down_until[region]:
            return "outage", Response(503, {"error": f"region {region} unavailable"})
        if self._tokens.get(token, -math.inf) <= now:
            return "expired_token", Response(401, {"error": "token expired"}, {"WWW-Authenticate": "Bearer"})
        if not 1 <= record_id <= _RECORDS:
            return "not_found", Response(404, {"error": f"no record {record_id}"})
        truth = record(record_id)
        if self._received <= self._drift_after:
            return "ok", Response(200, truth)
        # The provider's new shape; a client still declaring schema 1 cannot read it.
        payload = {"schema": 2, "record": {"id": truth["id"], "cells": truth["values"]}}
        return ("schema_drift" if schema == 1 else "ok"), Response(200, payload)

    def expire_count(self) -> int:
        """Tokens that expired before the run's end (each meant 401s until a refresh)."""
        now = self.now()
        with self._lock:
            return sum(1 for expiry in self._tokens.values() if expiry <= now)


class RecordsClient:
    """The application's client: a pooled connection, a token, a region and a parser.

    Its methods ending in the healing actions are what a user registers with
    brace.Recovery.
    """

    def __init__(self, api: RecordsAPI) -> None:
        self._api = api
        self.connection = api.connect()
        self.token = api.issue_token()
        self.region = _REGIONS[0]
        self.schema = 1

    def get_record(self, record_id: int) -> dict[str, Any]:
        schema = self.schema
        response = self._api.get(record_id, connection=self.connection, region=self.region, token=self.token,
                                 schema=schema, correlation=correlation_id())  # fmt: skip
        response.raise_for_status()
        return _parse(schema, response.json())

    # The healing actions.
    def reconnect(self, context: brace.HealingContext) -> None:
        self.connection = self._api.connect()

    def refresh_token(self, context: brace.HealingContext) -> None:
        self.token = self._api.issue_token()

    def switch_region(self, context: brace.HealingContext) -> None:
        # Blind failover: the retry that follows tells whether the other region is up.
        self.region = _REGIONS[1] if self.region == _REGIONS[0] else _REGIONS[0]

    def adapt_schema(self, context: brace.HealingContext) -> None:
        self.schema = 2


def _parse(schema: int, payload: dict[str, Any]) -> dict[str, Any]:
    if schema == 1:
        return {"id": payload["id"], "values": list(payload["values"])}
    return {"id": payload["record"]["id"], "values": list(payload["record"]["cells"])}


# -- the recovery, as a user configures it ---------------------------------------------------


def build_recovery(client: RecordsClient, store: DeadLetterStore, *, speed: float,
                   on_escalation: Callable[[Escalation], None]) -> brace.Recovery:  # fmt: skip
    """The Recovery a user of this service would write (durations in simulated seconds / speed)."""

    # brace's defaults. With the real clock sped up K times, every default backoff
    # runs K times faster too (an identity with the fake clock, where speed is 1).
    treatments: dict[brace.Category | str, Mapping[str, object]] | None = None
    if speed != 1:
        treatments = {category: {"backoff": treatment.backoff.scaled(1 / speed)}
                      for category, treatment in brace.classify.DEFAULT_TREATMENTS.items()}  # fmt: skip
    classifier = brace.ErrorClassifier(
        # The parser failing on a key means the provider changed the payload's shape.
        rules=[brace.ErrorClassifier.rule("schema_mismatch", types=KeyError, name="payload-shape")],
        treatments=treatments,
        pushback_cap=300.0 / speed,
    )
    return brace.Recovery(
        name=OPERATION,
        classifier=classifier,
        healing=[
            brace.HealingAction(client.refresh_token, categories="auth_expired", name="refresh_token"),
            # A fresh connection for resets, and (the user's guess) for 503s too:
            # HealingStats learns which of the two heals an outage.
            brace.HealingAction(client.reconnect, categories=["network_error", "service_down"], name="reconnect"),
            brace.HealingAction(client.switch_region, categories="service_down", name="switch_region"),
            brace.HealingAction(client.adapt_schema, categories="schema_mismatch", name="adapt_schema"),
        ],
        escalation=brace.EscalationPolicy(handlers=[on_escalation], default="abort"),
        healing_time=120.0 / speed,
        dead_letters=store,
    )


# -- the run ---------------------------------------------------------------------------------


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
        record_id = _RECORDS + 1 + rng.randrange(_RECORDS) if missing else 1 + rng.randrange(_RECORDS)
        calls.append(Call(index, at, record_id))
        at += rng.expovariate(1.0 / settings.interval)
    return calls


class _Sinks:
    """The recovery log's sink, and how to read back what reached it."""

    def __init__(self, path: str | None, calls: int) -> None:
        self.path = path
        self.memory: MemorySink | None = None
        self.file: JsonLinesSink | None = None
        if path is None:
            # Roomy enough to keep every event of the run: an eviction would show as attempts not logged.
            self.memory = MemorySink(capacity=max(10_000, 64 * calls))
            self.log = RecoveryLog(self.memory)
        else:
            open(path, "w", encoding="utf-8").close()
            self.file = JsonLinesSink(path)
            self.log = RecoveryLog(self.file)

    def attempts(self) -> Counter[str]:
        """Attempt events that reached the sink, by correlation id."""
        found: Counter[str] = Counter()
        if self.memory is not None:
            for event in self.memory.events():
                if event.kind == "attempt":
                    found[event.correlation_id or ""] += 1
            return found
        assert self.file is not None and self.path is not None
        self.file.flush(timeout=30.0)
        with open(self.path, encoding="utf-8") as lines:
            for line in lines:
                event = json.loads(line)
                if event["kind"] == "attempt":
                    found[event["correlation_id"] or ""] += 1
        return found

    def close(self) -> None:
        self.log.close()


class _Run:
    """One chaos run: the service, the client, the recovery, and what each call did."""

    def __init__(self, settings: Settings, store: DeadLetterStore, sinks: _Sinks, calls: list[Call]) -> None:
        self.settings = settings
        self.speed = settings.speed if settings.clock == "real" else 1.0
        self.origin = now_ns()
        self.api = RecordsAPI(settings, origin_ns=self.origin, speed=self.speed)
        self.client = RecordsClient(self.api)
        self.store = store
        self.sinks = sinks
        self.calls = calls
        self._lock = threading.Lock()
        self.escalations: dict[str, str] = {}  # correlation id -> "category (reason)"
        self.recovery = build_recovery(self.client, store, speed=self.speed, on_escalation=self._escalated)
        self.recovery.add_listener(sinks.log)

    def _escalated(self, escalation: Escalation) -> None:
        # Tells "the on-call person" (here: the report) and leaves the decision to the
        # default, ABORT: the call raises brace.RecoveryFailed and is dead-lettered.
        with self._lock:
            self.escalations[escalation.correlation_id or ""] = f"{escalation.category.value} ({escalation.reason})"

    def fetch_record(self, record_id: int) -> dict[str, Any]:
        return self.client.get_record(record_id)

    def one(self, call: Call) -> Ended:
        with correlation(call.correlation):
            try:
                value = self.recovery.call(self.fetch_record, call.record_id)
            except brace.RecoveryFailed as failed:
                return self._given_up(call, failed)
            except Exception as error:  # anything else reaching the caller is a loss
                return Ended(call, "lost", f"raised {type(error).__name__}: {error}")
        if isinstance(value, brace.Degraded):
            return Ended(call, "degraded", value.source)
        if value != record(call.record_id):
            return Ended(call, "wrong_value", repr(value))
        return Ended(call, "value")

    def _given_up(self, call: Call, failed: brace.RecoveryFailed) -> Ended:
        if failed.dead_letter is None:
            return Ended(call, "lost", "RecoveryFailed without a dead letter")
        try:
            letter = self.store.get(failed.dead_letter)
        except KeyError:
            return Ended(call, "lost", f"dead letter {failed.dead_letter} is not in the store")
        if (letter.operation, letter.args, letter.correlation_id) != (OPERATION, (call.record_id,), call.correlation):
            return Ended(call, "lost", f"dead letter {letter.id} does not hold this call")
        return Ended(call, "dead_letter", letter.id)


def _drive(run: _Run, clock: FakeClock | None, progress: Callable[[Ended], None]) -> list[Ended]:
    """Makes the calls at their arrival times; returns how each ended, in call order.

    With the fake clock, one caller: a call arriving while the previous one is
    still recovering waits for it (a backlog, as with a single worker).
    """
    settings = run.settings
    if clock is not None:
        ended = []
        for call in run.calls:
            clock.advance_to((run.origin + round(call.arrival * _NS)) / _NS)
            ended.append(run.one(call))
            progress(ended[-1])
        return ended

    def one(call: Call) -> Ended:
        result = run.one(call)
        progress(result)
        return result

    with ThreadPoolExecutor(max_workers=settings.workers, thread_name_prefix="brace-demo") as pool:
        futures = []
        for call in run.calls:
            sleep_until(run.origin + round(call.arrival / run.speed * _NS))
            futures.append(pool.submit(one, call))
        return [future.result() for future in futures]


def run(settings: Settings, progress: Callable[[Ended], None] | None = None) -> dict[str, Any]:
    """Runs the chaos scenario; returns the report (see `main` for its keys).

    Args:
        settings: The run.
        progress: Called after each call with how it ended (from worker threads
            with the real clock).
    """
    wall = time.perf_counter()
    calls = workload(settings)
    brace.testing.seed(settings.seed)
    with ExitStack() as stack:
        if settings.dead_letters is None:
            directory = stack.enter_context(tempfile.TemporaryDirectory(prefix="brace-demo-"))
            store: DeadLetterStore = SQLiteDeadLetters(os.path.join(directory, "dead-letters.sqlite3"))
        else:
            store = SQLiteDeadLetters(settings.dead_letters)
        stack.callback(store.close)
        sinks = _Sinks(settings.log, settings.calls)
        stack.callback(sinks.close)
        clock = stack.enter_context(brace.testing.fake_clock()) if settings.clock == "fake" else None
        chaos = _Run(settings, store, sinks, calls)
        ended = _drive(chaos, clock, progress or (lambda _: None))
        report = _account(chaos, ended)
        report["replay"] = _replay(chaos, {ended_call.detail for ended_call in ended
                                           if ended_call.outcome == "dead_letter"})  # fmt: skip
        report["simulated_time"] = chaos.api.now()
    report["wall_time"] = time.perf_counter() - wall
    report["lost"] += report["replay"]["unaccounted"]
    report["targets"] = _targets(report)
    report["all_targets_met"] = all(target["met"] for target in report["targets"])
    return report


# -- accounting -------------------------------------------------------------------------------


def _p95(times: Sequence[float]) -> float | None:
    if not times:
        return None
    ordered = sorted(times)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]  # nearest rank


def _mean(times: Sequence[float]) -> float | None:
    return sum(times) / len(times) if times else None


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _account(run: _Run, ended: list[Ended]) -> dict[str, Any]:
    """The run's figures, from the service's ledger, the log's sink and the calls' outcomes."""
    with run.api._lock:
        ledger = {key: list(entries) for key, entries in run.api.ledger.items()}
        requests, injected = run.api.requests, Counter(run.api.injected)
    logged = run.sinks.attempts()
    rows: dict[str, dict[str, Any]] = {}
    times: dict[str, list[float]] = {}
    for name in (*CATEGORIES, "first_try"):
        rows[name] = {"calls": 0, "injected": 0, "recovered": 0, "escalated": 0, "dead_lettered": 0, "lost": 0,
                      "attempts_made": 0, "attempts_logged": 0}  # fmt: skip
        times[name] = []
    for kind, count in injected.items():
        rows[_FAULT_CATEGORY[kind]]["injected"] += count
    lost_details = []
    transient_then_permanent = 0
    for end in ended:
        key = end.call.correlation
        entries = ledger.get(key, [])
        first_fault = next((kind for kind, _ in entries if kind != "ok"), None)
        row_name = "first_try" if first_fault is None else _FAULT_CATEGORY[first_fault]
        row = rows[row_name]
        row["calls"] += 1
        row["attempts_made"] += len(entries)
        row["attempts_logged"] += logged.get(key, 0)
        escalated = key in run.escalations
        row["escalated"] += escalated
        row["dead_lettered"] += end.outcome == "dead_letter"
        if end.outcome in ("lost", "wrong_value"):
            row["lost"] += 1
            lost_details.append(f"{key}: {end.outcome}: {end.detail}")
        last_fault = entries[-1][0] if entries else "ok"
        permanent_end = _FAULT_CATEGORY.get(last_fault) not in _TRANSIENT
        transient_then_permanent += row_name in _TRANSIENT and end.outcome == "dead_letter" and permanent_end
        if first_fault is not None and end.outcome == "value" and not escalated:
            row["recovered"] += 1
            failed_at = next(at for kind, at in entries if kind != "ok")
            times[row_name].append((entries[-1][1] - failed_at) / _NS * run.speed)
    for name, row in rows.items():
        row["recovery_rate"] = None if name == "first_try" else _rate(row["recovered"], row["calls"])
        row["mean_recovery_time"] = _mean(times[name])
        row["p95_recovery_time"] = _p95(times[name])
        row["transient"] = name in _TRANSIENT
    every_time = [seconds for name in CATEGORIES for seconds in times[name]]
    transient_calls = sum(rows[name]["calls"] for name in _TRANSIENT)
    transient_recovered = sum(rows[name]["recovered"] for name in _TRANSIENT)
    failed_rows = [rows[name] for name in CATEGORIES]
    stats = run.recovery.stats()
    brace_counts = {name: (stats.by_category[name].failed if name in stats.by_category else 0) for name in CATEGORIES}
    return {
        "calls": len(ended),
        "first_try": rows["first_try"]["calls"],
        "failed_calls": sum(row["calls"] for row in failed_rows),
        "transient_failures": transient_calls,
        "transient_recovered": transient_recovered,
        "transient_recovery_rate": _rate(transient_recovered, transient_calls),
        # Of the transient-first calls not recovered, those whose last failure was a permanent
        # one (a 404 after a timeout): counted as not recovered all the same.
        "transient_then_permanent": transient_then_permanent,
        "recovered": sum(row["recovered"] for row in failed_rows),
        "mean_recovery_time": _mean(every_time),
        "p95_recovery_time": _p95(every_time),
        "escalated": sum(row["escalated"] for row in rows.values()),
        "dead_lettered": sum(row["dead_lettered"] for row in rows.values()),
        "lost": sum(row["lost"] for row in rows.values()),
        "lost_details": lost_details[:20],
        "attempts_made": requests,
        "attempts_logged": sum(logged.values()),
        "failures_injected": sum(injected.values()),
        "by_category": {name: rows[name] for name in CATEGORIES},
        "first_try_row": rows["first_try"],
        "episodes": {**run.api.episodes, "token expiries": run.api.expire_count()},
        "healing": _healing(run.recovery.healing_stats),
        "brace_stats": stats.as_dict(),
        # brace's own record must agree with the service's: the same calls under the same categories.
        "brace_agrees": brace_counts == {name: rows[name]["calls"] for name in CATEGORIES}
                        and stats.attempts_made == requests and stats.calls == len(ended),  # fmt: skip
        "settings": {**dataclasses.asdict(run.settings), "speed": run.speed,
                     "workers": run.settings.workers if run.settings.clock == "real" else 1},  # fmt: skip
    }


def _healing(stats: brace.HealingStats) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = json.loads(stats.to_json())["records"]
    return records


def _replay(run: _Run, letters: set[str]) -> dict[str, Any]:
    """Replays the dead letters once through the recovery, and checks that each is accounted for."""
    made_before = run.api.requests
    logged_before = sum(run.sinks.attempts().values())
    outcome = replay(run.store, {OPERATION: run.fetch_record}, recovery=run.recovery)
    still_dead: Counter[str] = Counter(letter.category or "unknown" for letter in run.store.dead())
    counts = run.store.counts()
    # Each letter the calls were given is in the store, delivered or still dead (no one discarded any).
    status = {letter.id: letter.status for letter in run.store.all()}
    return {
        "letters": len(letters),
        "delivered": len(outcome.delivered),
        "still_dead": len(outcome.still_dead),
        "skipped": len(outcome.skipped_unreplayable) + len(outcome.missing_operation),
        "still_dead_by_category": dict(sorted(still_dead.items())),
        "store_counts": counts,
        "unaccounted": sum(1 for id in letters if status.get(id) not in ("dead", "delivered")),
        "attempts_made": run.api.requests - made_before,
        "attempts_logged": sum(run.sinks.attempts().values()) - logged_before,
    }


def _targets(report: dict[str, Any]) -> list[dict[str, Any]]:
    rate, mean = report["transient_recovery_rate"], report["mean_recovery_time"]
    replay_made, replay_logged = report["replay"]["attempts_made"], report["replay"]["attempts_logged"]
    made, logged = report["attempts_made"] + replay_made, report["attempts_logged"] + replay_logged
    return [
        {"name": "transient recovery rate", "target": f">= {TARGET_TRANSIENT_RECOVERY:.0%}",
         "measured": "no transient failures" if rate is None else
                     f"{rate:.1%} ({report['transient_recovered']}/{report['transient_failures']})",
         "met": rate is None or rate >= TARGET_TRANSIENT_RECOVERY},
        {"name": "mean recovery time", "target": f"< {TARGET_MEAN_RECOVERY:g} s",
         "measured": "no recoveries" if mean is None else f"{mean:.2f} s",
         "met": mean is None or mean < TARGET_MEAN_RECOVERY},
        {"name": "data loss", "target": "0 calls lost", "measured": f"{report['lost']} lost",
         "met": report["lost"] == 0},
        {"name": "attempts logged, with replay", "target": "100%",
         "measured": f"{_rate(logged, made) or 0:.1%} ({logged}/{made})", "met": logged == made},
    ]  # fmt: skip


# -- output -----------------------------------------------------------------------------------

# The report fits an 80-column terminal: one table of what happened to the calls of each
# category, one of how long their recovery took and whether every attempt was logged.
_OUTCOMES = ("Calls by the category of their first failure",
             ("category", "calls", "injected", "recovered", "escalated", "dead-lettered", "lost"),
             "lrrrrrr")  # fmt: skip
_TIMES = ("Recovery time and attempts logged", ("category", "mean s", "p95 s", "attempts", "logged"), "lrrrr")
_VERDICT = ("Verdict", ("target", "bar", "measured", "result"), "llll")
_SUMMED = ("calls", "injected", "recovered", "escalated", "dead_lettered", "lost", "attempts_made", "attempts_logged")

# A table's rows, in sections separated by rules.
_Sections = list[list[tuple[str, ...]]]


def _number(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def _row_groups(report: dict[str, Any]) -> list[list[tuple[str, dict[str, Any]]]]:
    """The rows as (name, figures): the transient categories, all of them summed, the others, the total."""
    categories = list(report["by_category"].items())
    transient = [(name, row) for name, row in categories if row["transient"]]
    others = [(name, row) for name, row in categories if not row["transient"]]
    every_row = [row for _, row in categories] + [report["first_try_row"]]
    total = {key: sum(row[key] for row in every_row) for key in _SUMMED}
    total.update(mean_recovery_time=report["mean_recovery_time"], p95_recovery_time=report["p95_recovery_time"])
    return [transient, [("all transient", {key: sum(row[key] for _, row in transient) for key in _SUMMED})],
            [*others, ("no failure", report["first_try_row"])], [("total", total)]]  # fmt: skip


def _outcome_sections(report: dict[str, Any]) -> _Sections:
    def cells(name: str, row: dict[str, Any]) -> tuple[str, ...]:
        first_try = name == "no failure"
        return (name, str(row["calls"]), "-" if first_try else str(row["injected"]),
                "-" if first_try else str(row["recovered"]), str(row["escalated"]), str(row["dead_lettered"]),
                str(row["lost"]))  # fmt: skip

    return [[cells(name, row) for name, row in group] for group in _row_groups(report)]


def _time_sections(report: dict[str, Any]) -> _Sections:
    def cells(name: str, row: dict[str, Any]) -> tuple[str, ...]:
        return (name, _number(row.get("mean_recovery_time"), ".2f"), _number(row.get("p95_recovery_time"), ".2f"),
                str(row["attempts_made"]), str(row["attempts_logged"]))  # fmt: skip

    # No "all transient" row: its times are not in the report (the verdict's mean is the total's).
    transient, _, others, total = _row_groups(report)
    return [[cells(name, row) for name, row in group] for group in (transient, others, total)]


def _verdict_sections(report: dict[str, Any]) -> _Sections:
    return [[(target["name"], target["target"], target["measured"], "met" if target["met"] else "NOT MET")
             for target in report["targets"]]]  # fmt: skip


def _summary(report: dict[str, Any]) -> str:
    settings = report["settings"]
    clock = ("fake clock" if settings["clock"] == "fake" else
             f"real clock at {settings['speed']:g}x, {settings['workers']} threads")  # fmt: skip
    return (f"brace demo: {report['calls']} calls through one brace.Recovery over {report['simulated_time']:.0f} "
            f"simulated seconds ({clock}, seed {settings['seed']}); wall time {report['wall_time']:.2f} s.")


def _notes(report: dict[str, Any]) -> list[str]:
    settings, replayed = report["settings"], report["replay"]
    notes = [
        "Rows: calls by the category of their first failure; the transient categories ("
        + ", ".join(name for name in CATEGORIES if name in _TRANSIENT) + ") pass by themselves. injected: "
        "failed responses of that kind the service produced (any attempt). mean s, p95 s: from a call's first "
        "failure to its success, in simulated seconds. attempts: requests the service received; logged: attempt "
        "events read back from the recovery log.",
        "Transient recovery rate (the verdict's first target): recovered / calls of the 'all transient' row, "
        "where recovered means the call ended in its value with no person involved. Of the transient calls not "
        f"recovered, {report['transient_then_permanent']} got past the transient failure and then met a "
        "permanent one.",
        "Fault episodes: " + ", ".join(f"{name} {count}" for name, count in sorted(report["episodes"].items()))
        + f"; the payload's shape changed after {round(settings['drift_at'] * settings['calls'])} requests.",
    ]
    by_category: dict[str, list[str]] = {}
    for item in report["healing"]:
        by_category.setdefault(item["category"], []).append(f"{item['strategy']} {item['healed']}/"
                                                             f"{item['healed'] + item['failed']}")  # fmt: skip
    notes.append("Healing (healed / tried, as brace.HealingStats learned it): "
                 + "; ".join(f"{category}: {', '.join(items)}" for category, items in sorted(by_category.items())))
    dead = ", ".join(f"{category} {count}" for category, count in replayed["still_dead_by_category"].items())
    notes.append(f"Replay of the {replayed['letters']} dead letters through the recovery: {replayed['delivered']} "
                 f"delivered, {replayed['still_dead']} still dead{f' ({dead})' if dead else ''}, left for a person; "
                 f"{replayed['skipped']} skipped; store: {replayed['store_counts']}. The verdict's attempts "
                 "include the replay's.")
    if not report["brace_agrees"]:
        notes.append("WARNING: brace's recovery.stats() disagrees with the service's count (see brace_stats).")
    for detail in report["lost_details"]:
        notes.append(f"LOST {detail}")
    if settings["dead_letters"] is not None:
        notes.append(f"Dead letters kept in {settings['dead_letters']}.")
    if settings["log"] is not None:
        notes.append(f"Recovery log written to {settings['log']} (JSON lines).")
    return notes


def _verdict_line(report: dict[str, Any]) -> str:
    missed = sum(1 for target in report["targets"] if not target["met"])
    return "All four targets met." if not missed else f"{missed} of four targets NOT MET."


def render_plain(report: dict[str, Any], out: TextIO) -> None:
    """The report as aligned text tables, notes and the verdict, fitting 80 columns."""

    def wrapped(text: str) -> str:
        # Paths and ids stay whole, even if longer than a line.
        return textwrap.fill(text, _WIDTH, break_long_words=False, break_on_hyphens=False)

    def table(title: str, headers: tuple[str, ...], align: str, sections: _Sections) -> None:
        rows = [headers, *(row for section in sections for row in section)]
        widths = [max(len(row[column]) for row in rows) for column in range(len(headers))]

        def aligned(row: Sequence[str]) -> str:
            return "  ".join(cell.ljust(width) if how == "l" else cell.rjust(width)
                             for cell, width, how in zip(row, widths, align)).rstrip()  # fmt: skip

        print(f"\n{title}", file=out)
        print(aligned(headers), file=out)
        for section in sections:
            print("  ".join("-" * width for width in widths), file=out)
            for row in section:
                print(aligned(row), file=out)

    print(wrapped(_summary(report)), file=out)
    table(*_OUTCOMES, _outcome_sections(report))
    table(*_TIMES, _time_sections(report))
    print(file=out)
    for note in _notes(report):
        print(wrapped(note), file=out)
    table(*_VERDICT, _verdict_sections(report))
    print(_verdict_line(report), file=out)


def render_rich(report: dict[str, Any], console: Any) -> None:
    """The report as rich tables, notes and the verdict, fitting 80 columns (the caller checked that rich is there)."""
    from rich import box
    from rich.table import Table

    def table(title: str, headers: tuple[str, ...], align: str, sections: _Sections,
              alarming: Callable[[tuple[str, ...]], bool]) -> None:  # fmt: skip
        # Rules between sections and under the header, two spaces between columns, no frame.
        shown = Table(title=title, title_justify="left", title_style="bold", box=box.HORIZONTALS, show_edge=False,
                      pad_edge=False, padding=(0, 0, 0, 1))  # fmt: skip
        for header, how in zip(headers, align):
            shown.add_column(header, justify="left" if how == "l" else "right", no_wrap=True)
        for section in sections:
            for index, row in enumerate(section):
                style = "bold red" if alarming(row) else ("bold" if row[0] in ("all transient", "total") else None)
                shown.add_row(*row, style=style, end_section=index == len(section) - 1)
        console.print(shown)

    console.print(_summary(report), highlight=False, markup=False)
    console.print()
    table(*_OUTCOMES, _outcome_sections(report), lambda row: row[-1] != "0")
    console.print()
    table(*_TIMES, _time_sections(report), lambda row: row[-2] != row[-1])
    console.print()
    for note in _notes(report):
        console.print(note, highlight=False, markup=False)
    console.print()
    table(*_VERDICT, _verdict_sections(report), lambda row: row[-1] != "met")
    console.print(_verdict_line(report), style="green" if report["all_targets_met"] else "bold red")


class _Progress:
    """Progress of the calls: a rich bar, a line every 10% on stderr, or nothing. Thread-safe."""

    def __init__(self, total: int, kind: Literal["rich", "plain", "none"], console: Any = None) -> None:
        self._total, self._kind = total, kind
        self._lock = threading.Lock()
        self._done = 0
        self._counts: Counter[str] = Counter()
        self._bar: Any = None
        if kind == "rich":
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._bar = Progress(TextColumn("calls"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                                 TextColumn("{task.fields[status]}"), console=console)  # fmt: skip
            self._task = self._bar.add_task("calls", total=total, status="")
            self._bar.start()

    def __call__(self, ended: Ended) -> None:
        if self._kind == "none":
            return
        with self._lock:
            self._done += 1
            self._counts[ended.outcome] += 1
            done, status = self._done, ", ".join(f"{name} {count}" for name, count in sorted(self._counts.items()))
        if self._bar is not None:
            self._bar.update(self._task, completed=done, status=status)
        elif done * 10 // self._total != (done - 1) * 10 // self._total or done == self._total:
            print(f"brace demo: {done}/{self._total} calls ({done / self._total:.0%}): {status}", file=sys.stderr,
                  flush=True)  # fmt: skip

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()


# -- the command line ---------------------------------------------------------------------------


def _probability(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number from 0 to 1, got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be a number from 0 to 1, got {text}")
    return value


def _positive(kind: type[int] | type[float]) -> Callable[[str], Any]:
    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {'an integer' if kind is int else 'a number'} > 0, "
                                             f"got {text!r}") from None  # fmt: skip
        if not value > 0 or not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be {'an integer' if kind is int else 'a number'} > 0, got {text}")
        return value

    return parse


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer from 0 to 2**64 - 1, got {text!r}") from None
    if not 0 <= value < 1 << 64:
        raise argparse.ArgumentTypeError(f"must be an integer from 0 to 2**64 - 1, got {text}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `demo` subcommand's options."""
    d = Settings()
    parser.add_argument("--calls", type=_positive(int), default=d.calls, help=f"calls to make (default {d.calls})")
    parser.add_argument("--seed", type=_seed, default=d.seed,
                        help=f"seeds the workload, the faults and brace's jitter (default {d.seed})")
    parser.add_argument("--clock", choices=("fake", "real"), default=d.clock,
                        help="fake: brace's clock frozen, waits advance it (default); real: waits are slept, "
                             "divided by --speed")  # fmt: skip
    parser.add_argument("--speed", type=_positive(float), default=None,
                        help=f"--clock real: simulated seconds per real second (default {d.speed:g})")
    parser.add_argument("--workers", type=_positive(int), default=None,
                        help=f"--clock real: threads calling concurrently (default {d.workers})")
    parser.add_argument("--interval", type=_positive(float), default=d.interval,
                        help=f"mean simulated seconds between calls (default {d.interval:g})")
    faults = parser.add_argument_group("faults (probabilities from 0 to 1)")
    for name, meaning in (("timeout", "a request hangs until the client's 2 s timeout"),
                          ("reset", "a request's connection is reset (broken until reconnected)"),
                          ("throttle", "a request starts a 1-5 s window of 429 with Retry-After"),
                          ("outage", "a request starts a 2-12 s 503 outage of its region"),
                          ("permanent", "a call asks for a record that does not exist (404)")):  # fmt: skip
        default = getattr(d, f"{name}_rate")
        faults.add_argument(f"--{name}-rate", type=_probability, default=default,
                            help=f"{meaning}; per {'call' if name == 'permanent' else 'request'} (default {default:g})")
    faults.add_argument("--token-lifetime", type=_positive(float), default=d.token_lifetime,
                        help=f"simulated seconds an access token lives (default {d.token_lifetime:g})")
    faults.add_argument("--drift-at", type=_probability, default=d.drift_at,
                        help=f"the payload's shape changes after this fraction of --calls requests "
                             f"(default {d.drift_at:g})")  # fmt: skip
    parser.add_argument("--dead-letters", metavar="PATH", help="keep the SQLite dead-letter store in this new "
                                                               "file (default: a temporary file)")  # fmt: skip
    parser.add_argument("--log", metavar="PATH", help="write the recovery log here as JSON lines (overwritten; "
                                                      "default: in memory)")  # fmt: skip
    parser.add_argument("--json", action="store_true", help="print only a JSON report on stdout")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="show progress (default: unless --json); with rich installed, a bar and rich tables")
    parser.add_argument("--plain", action="store_true", help="plain text even on a terminal with rich installed")


def _rich_available() -> bool:
    try:
        import rich  # noqa: F401
    except ImportError:
        return False
    return True


def main(args: argparse.Namespace, error: Callable[[str], Any]) -> int:
    """Runs `brace demo` with parsed options; returns the exit status (0: every target met, 1: not).

    The JSON report (`--json`) holds at least transient_recovery_rate (0..1 or
    null without transient failures), mean_recovery_time and p95_recovery_time
    (simulated seconds), lost, attempts_made, attempts_logged, escalated,
    dead_lettered, by_category (per category: calls, injected, recovered,
    recovery_rate, mean/p95_recovery_time, escalated, dead_lettered, lost,
    attempts_made, attempts_logged), targets and all_targets_met, replay,
    healing, brace_stats (brace's own recovery.stats()), settings, wall_time.

    Args:
        args: The options `add_arguments` defined.
        error: Reports a bad combination of options and exits 2 (argparse's parser.error).
    """
    if args.clock == "fake" and (args.speed is not None or args.workers is not None):
        error("--speed and --workers apply to --clock real only")
    defaults = Settings()
    settings = Settings(
        calls=args.calls, seed=args.seed, clock=args.clock,
        speed=defaults.speed if args.speed is None else args.speed,
        workers=defaults.workers if args.workers is None else args.workers,
        interval=args.interval, timeout_rate=args.timeout_rate, reset_rate=args.reset_rate,
        throttle_rate=args.throttle_rate, outage_rate=args.outage_rate, token_lifetime=args.token_lifetime,
        drift_at=args.drift_at, permanent_rate=args.permanent_rate, dead_letters=args.dead_letters, log=args.log,
    )  # fmt: skip
    for path, option in ((args.dead_letters, "--dead-letters"), (args.log, "--log")):
        if path is not None and not os.path.isdir(os.path.dirname(os.path.abspath(path))):
            error(f"{option}: the directory of {path!r} does not exist")
    if args.dead_letters is not None and os.path.exists(args.dead_letters):
        # Letters are never deleted, and the replay would run an earlier run's letters too.
        error(f"--dead-letters: {args.dead_letters!r} exists; give a new file")
    show_progress = (not args.json) if args.progress is None else args.progress
    fancy = _rich_available() and not args.plain and (sys.stdout.isatty() or args.progress is True)
    console: Any = None
    if fancy:
        from rich.console import Console

        console = Console(stderr=args.json)
    kind: Literal["rich", "plain", "none"] = "none" if not show_progress else ("rich" if fancy else "plain")
    progress = _Progress(settings.calls, kind, console)
    try:
        report = run(settings, progress)
    finally:
        progress.close()
    if args.json:
        json.dump(report, sys.stdout, indent=2, sort_keys=True)
        print()
    elif fancy:
        render_rich(report, console)
    else:
        render_plain(report, sys.stdout)
    return 0 if report["all_targets_met"] else 1
