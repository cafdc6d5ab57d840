"""The report's figures: what the service saw, what the log holds and how each call ended,
counted outside brace, with brace's own statistics beside them; and the targets."""

from __future__ import annotations

import dataclasses
import json
import math
from collections import Counter
from collections.abc import Sequence
from typing import Any, Protocol

import brace
from brace._config import NS_PER_SECOND
from brace._cli.demo._scenario import CATEGORIES, FAULT_CATEGORY, TRANSIENT, Call, Ended
from brace._cli.demo._settings import Settings
from brace._cli.demo._sinks import Sinks
from brace.recovery import DeadLetterStore, RecoveryStats

# The targets the issue sets; a run meets them or the command exits 1.
TARGET_TRANSIENT_RECOVERY = 0.95
TARGET_MEAN_RECOVERY = 10.0


class Service(Protocol):
    """What the accounting reads of the service called: the simulated one, or the HTTP server."""

    @property
    def requests(self) -> int: ...

    @property
    def episodes(self) -> Counter[str]: ...

    def now(self) -> float: ...

    def snapshot(self) -> tuple[dict[str, list[tuple[str, int]]], int, Counter[str]]: ...

    def expire_count(self) -> int: ...


class Chaos(Protocol):
    """One chaos run, as the driver, the replay and the accounting use it."""

    @property
    def settings(self) -> Settings: ...

    @property
    def speed(self) -> float: ...  # simulated seconds per second of brace's clock

    @property
    def origin(self) -> int: ...  # when the run began, ns on brace's clock

    @property
    def calls(self) -> list[Call]: ...

    @property
    def api(self) -> Service: ...

    @property
    def sinks(self) -> Sinks: ...

    @property
    def store(self) -> DeadLetterStore: ...

    @property
    def recovery(self) -> brace.Recovery: ...

    @property
    def escalations(self) -> dict[str, str]: ...  # correlation id -> "category (reason)"

    def one(self, call: Call) -> Ended: ...

    def fetch_record(self, record_id: int) -> dict[str, Any]: ...

    def agrees(self, stats: RecoveryStats, first_failures: dict[str, int], calls: int) -> bool:
        """Whether brace's own `stats` agree with the count made outside it (`first_failures`:
        calls by the category of their first failure, as the service saw them)."""


def _p95(times: Sequence[float]) -> float | None:
    if not times:
        return None
    ordered = sorted(times)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]  # nearest rank


def _mean(times: Sequence[float]) -> float | None:
    return sum(times) / len(times) if times else None


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


class _Rows:
    """The calls counted by the category of their first failure ("first_try": none), with
    the recovery times of those recovered."""

    def __init__(self, injected: Counter[str], speed: float) -> None:
        self.speed = speed
        self.rows: dict[str, dict[str, Any]] = {}
        self.times: dict[str, list[float]] = {}
        for name in (*CATEGORIES, "first_try"):
            self.rows[name] = {"calls": 0, "injected": 0, "recovered": 0, "escalated": 0, "dead_lettered": 0,
                               "lost": 0, "attempts_made": 0, "attempts_logged": 0}  # fmt: skip
            self.times[name] = []
        for kind, count in injected.items():
            self.rows[FAULT_CATEGORY[kind]]["injected"] += count
        self.lost_details: list[str] = []
        self.transient_then_permanent = 0

    def count(self, end: Ended, entries: list[tuple[str, int]], logged: int, escalated: bool) -> None:
        """One call: how it ended, the service's (kind, end ns) of each of its attempts, and the log's count."""
        key = end.call.correlation
        first_fault = next((kind for kind, _ in entries if kind != "ok"), None)
        row_name = "first_try" if first_fault is None else FAULT_CATEGORY[first_fault]
        row = self.rows[row_name]
        row["calls"] += 1
        row["attempts_made"] += len(entries)
        row["attempts_logged"] += logged
        row["escalated"] += escalated
        row["dead_lettered"] += end.outcome == "dead_letter"
        if end.outcome in ("lost", "wrong_value"):
            row["lost"] += 1
            self.lost_details.append(f"{key}: {end.outcome}: {end.detail}")
        last_fault = entries[-1][0] if entries else "ok"
        permanent_end = FAULT_CATEGORY.get(last_fault) not in TRANSIENT
        self.transient_then_permanent += row_name in TRANSIENT and end.outcome == "dead_letter" and permanent_end
        if first_fault is not None and end.outcome == "value" and not escalated:
            row["recovered"] += 1
            failed_at = next(at for kind, at in entries if kind != "ok")
            self.times[row_name].append((entries[-1][1] - failed_at) / NS_PER_SECOND * self.speed)

    def finish(self) -> None:
        """Adds each row's recovery rate and times."""
        for name, row in self.rows.items():
            row["recovery_rate"] = None if name == "first_try" else _rate(row["recovered"], row["calls"])
            row["mean_recovery_time"] = _mean(self.times[name])
            row["p95_recovery_time"] = _p95(self.times[name])
            row["transient"] = name in TRANSIENT


def account(run: Chaos, ended: list[Ended]) -> dict[str, Any]:
    """The run's figures, from the service's ledger, the log's sink and the calls' outcomes."""
    ledger, requests, injected = run.api.snapshot()
    logged = run.sinks.attempts()
    counted = _Rows(injected, run.speed)
    for end in ended:
        key = end.call.correlation
        counted.count(end, ledger.get(key, []), logged.get(key, 0), key in run.escalations)
    counted.finish()
    rows, times = counted.rows, counted.times
    every_time = [seconds for name in CATEGORIES for seconds in times[name]]
    transient_calls = sum(rows[name]["calls"] for name in TRANSIENT)
    transient_recovered = sum(rows[name]["recovered"] for name in TRANSIENT)
    failed_rows = [rows[name] for name in CATEGORIES]
    stats = run.recovery.stats()
    return {
        "calls": len(ended),
        "first_try": rows["first_try"]["calls"],
        "failed_calls": sum(row["calls"] for row in failed_rows),
        "transient_failures": transient_calls,
        "transient_recovered": transient_recovered,
        "transient_recovery_rate": _rate(transient_recovered, transient_calls),
        # Of the transient-first calls not recovered, those whose last failure was a permanent
        # one (a 404 after a timeout): counted as not recovered all the same.
        "transient_then_permanent": counted.transient_then_permanent,
        "recovered": sum(row["recovered"] for row in failed_rows),
        "mean_recovery_time": _mean(every_time),
        "p95_recovery_time": _p95(every_time),
        "escalated": sum(row["escalated"] for row in rows.values()),
        "dead_lettered": sum(row["dead_lettered"] for row in rows.values()),
        "lost": sum(row["lost"] for row in rows.values()),
        "lost_details": counted.lost_details[:20],
        "attempts_made": requests,
        "attempts_logged": sum(logged.values()),
        "failures_injected": sum(injected.values()),
        "by_category": {name: rows[name] for name in CATEGORIES},
        "first_try_row": rows["first_try"],
        "episodes": {**run.api.episodes, "token expiries": run.api.expire_count()},
        "healing": _healing(run.recovery.healing_stats),
        "brace_stats": stats.as_dict(),
        "brace_agrees": run.agrees(stats, {name: rows[name]["calls"] for name in CATEGORIES}, len(ended)),
        "settings": {**dataclasses.asdict(run.settings), "speed": run.speed,
                     "workers": run.settings.workers if run.settings.clock == "real" else 1},  # fmt: skip
    }


def _healing(stats: brace.HealingStats) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = json.loads(stats.to_json())["records"]
    return records



def targets(report: dict[str, Any]) -> list[dict[str, Any]]:
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
