"""`analyze`: the whole analysis of a recovery log, as one `Report` (and its JSON).

Episodes, per dependency: its attempts that ran (rejections by the caller's own
policy are no news of the dependency), in the order they ended (`at + duration`).
A failure while the dependency is healthy starts an episode; the next success
ends it. Time to repair is from the first failure's end to that success's end;
an episode still open when the log ends has none. MTTR is the mean time to
repair over the closed episodes; MTBF the mean time from the end of one episode
to the start of the next (the time it worked between failures), over
consecutive pairs of episodes.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from brace.analytics._fingerprint import fingerprint
from brace.analytics._records import Clock, Loaded, Record, load
from brace.analytics._series import (
    Anomaly,
    EarlyWarning,
    Series,
    detect_anomalies,
    early_warning,
    series,
    threshold_of,
)

if TYPE_CHECKING:
    from brace.breaker import CircuitBreaker

__all__ = ["Episode", "Report", "analyze", "episodes"]

# At most this many windows: a window so short (or a log so long) that it needs more is refused.
MAX_WINDOWS = 100_000
# The automatic window aims at about this many windows.
_AIM = 60
# A message shown as a fingerprint's example is cut to this many characters.
_EXAMPLE = 200
# A fingerprint lists the first this many correlation ids it affected (and counts them all):
# enough to look a few calls up, bounded for a storm of millions.
SAMPLE_IDS = 20


@dataclass(frozen=True)
class Episode:
    """A dependency failing: from a failure while it was healthy to its next success.

    Attributes:
        start: When the first failure ended (seconds on the report's clock).
        end: When the next success ended, or None when the log ends first.
        failures: Failed attempts in it.
    """

    start: float
    end: float | None
    failures: int

    @property
    def repair_time(self) -> float | None:
        """end - start, or None for an open episode."""
        return None if self.end is None else self.end - self.start


def episodes(outcomes: list[tuple[float, bool]]) -> list[Episode]:
    """The episodes of one dependency's attempts, given as (end time, failed), in any order
    (sorted by end time; ties keep their order)."""
    found: list[Episode] = []
    start: float | None = None
    failures = 0
    for end, failed in sorted(outcomes, key=lambda item: item[0]):
        if failed:
            if start is None:
                start, failures = end, 0
            failures += 1
        elif start is not None:
            found.append(Episode(start, end, failures))
            start = None
    if start is not None:
        found.append(Episode(start, None, failures))
    return found


def _mttr_mtbf(found: list[Episode]) -> tuple[float | None, float | None]:
    repairs = [episode.repair_time for episode in found if episode.repair_time is not None]
    gaps = [after.start - before.end for before, after in zip(found, found[1:]) if before.end is not None]
    return (sum(repairs) / len(repairs) if repairs else None), (sum(gaps) / len(gaps) if gaps else None)


def _nice_window(span: float) -> float:
    """A window of 1, 2 or 5 times a power of ten giving about _AIM windows over span."""
    if not span > 0:
        return 1.0
    raw = span / _AIM
    power = 10.0 ** math.floor(math.log10(raw))
    for step in (1.0, 2.0, 5.0, 10.0):
        if raw <= step * power:
            return step * power
    return 10 * power


def _number(value: float | None) -> float | None:
    """A float for JSON: None for NaN or None."""
    return None if value is None or not math.isfinite(value) else float(value)


@dataclass
class _Group:
    """Running counts of one fingerprint, dependency or category."""

    failures: int = 0
    correlations: set[str] = field(default_factory=set)
    sample: list[str] = field(default_factory=list)  # the first SAMPLE_IDS correlation ids, in the log's order
    uncorrelated: int = 0
    first: float = math.inf
    last: float = -math.inf

    def failure(self, record: Record, when: float) -> None:
        self.failures += 1
        if record.correlation_id is None:
            self.uncorrelated += 1
        elif record.correlation_id not in self.correlations:
            self.correlations.add(record.correlation_id)
            if len(self.sample) < SAMPLE_IDS:
                self.sample.append(record.correlation_id)
        self.first, self.last = min(self.first, when), max(self.last, when)

    @property
    def calls(self) -> int:
        return len(self.correlations) + self.uncorrelated


@dataclass(frozen=True)
class Report:
    """The analysis of a recovery log. `as_dict()` is its JSON (keys: see there).

    Attributes:
        loaded: The records read, with what was set aside.
        clock: "at" (brace's clock) or "time" (seconds since the epoch, when logged).
        overall: The per-window series over every operation.
        by_dependency: Each dependency's per-window series.
        data: Everything else, as `as_dict()` gives it.
    """

    loaded: Loaded
    clock: Clock
    overall: Series
    by_dependency: dict[str, Series]
    data: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        """The report as JSON-able data (NaN written as null). Keys:

        source, clock, window (seconds), origin (the first window's start), events,
        skipped, skipped_reasons; totals {attempts, failures, failure_rate, calls,
        rejected, recovered, dead_lettered, mean_recovery_time, p95_recovery_time};
        windows [{index, start, calls, attempts, errors, error_rate, recoveries,
        mean_recovery_time, p95_recovery_time}]; fingerprints [{id, type, template,
        status, frames, category, failures, calls, correlation_ids (how many),
        correlation_id_sample (the first 20, in the log's order), dependencies, recovered,
        dead_lettered, first_seen, last_seen, example}], most failures first;
        dependencies [{dependency, attempts, failures, failure_rate, calls, recovered,
        mean_recovery_time, p95_recovery_time, episodes, open_episode, mttr, mtbf}];
        categories [{category, failures, calls, recovered, mean_recovery_time}];
        anomalies [{scope, window, start, error_rate, expected, std, z}] (scope "all" or a
        dependency); warnings [{dependency, status, threshold, rate, slope,
        windows_to_threshold, window, start}]; parameters {alpha, z, warmup, min_std,
        lookback, horizon, threshold, thresholds}.
        """
        return self.data


def _series_rows(found: Series) -> list[dict[str, Any]]:
    return [
        {"index": index, "start": float(found.starts[index]), "calls": int(found.calls[index]),
         "attempts": int(found.attempts[index]), "errors": int(found.errors[index]),
         "error_rate": _number(float(found.error_rate[index])), "recoveries": int(found.recoveries[index]),
         "mean_recovery_time": _number(float(found.mean_recovery_time[index])),
         "p95_recovery_time": _number(float(found.p95_recovery_time[index]))}
        for index in range(len(found))
    ]  # fmt: skip


def _time_of(clock: Clock) -> Any:
    """When a record's step began on the clock: `at`, or for "time" (logged when the step
    ended) the logging time less the duration; it ended `duration` later on either."""
    if clock == "at":
        return lambda record: record.at
    return lambda record: record.time - record.duration


def _series_of(records: list[Record], when: Any, *, origin: float, window: float, count: int) -> Series:
    attempts = [record for record in records if record.kind == "attempt"]
    recovered = [record for record in records if record.kind == "recovered"]
    return series(
        np.array([when(record) for record in attempts], dtype=np.float64),
        np.array([record.attempt == 1 for record in attempts], dtype=np.bool_),
        np.array([record.failed for record in attempts], dtype=np.bool_),
        np.array([when(record) + record.duration for record in recovered], dtype=np.float64),
        np.array([record.duration for record in recovered], dtype=np.float64),
        origin=origin, window=window, count=count,
    )  # fmt: skip


def _p95(times: list[float]) -> float | None:
    return float(np.percentile(np.array(times), 95, method="inverted_cdf")) if times else None


@dataclass(frozen=True)
class _Rules:
    """The anomaly rule's and the early warning's parameters."""

    alpha: float
    z: float
    warmup: int
    min_std: float
    threshold: float
    thresholds: dict[str, float]
    lookback: int
    horizon: float

    def anomalies(self, scope: str, where: Series) -> list[dict[str, Any]]:
        found = detect_anomalies(where.error_rate, where.attempts, alpha=self.alpha, z=self.z, warmup=self.warmup,
                                 min_std=self.min_std)  # fmt: skip
        return [{"scope": scope, **_anomaly(anomaly, where)} for anomaly in found]

    def warning(self, name: str, where: Series) -> dict[str, Any] | None:
        found = early_warning(where.error_rate, where.attempts, self.thresholds.get(name, self.threshold),
                              lookback=self.lookback, horizon=self.horizon)  # fmt: skip
        return None if found is None else _warning(name, found, where)


def analyze(source: object, *, window: float | None = None, clock: Clock = "at", alpha: float = 0.3,
            z: float = 3.0, warmup: int = 5, min_std: float = 0.02, threshold: float | CircuitBreaker = 0.5,
            thresholds: Mapping[str, float | CircuitBreaker] | None = None, lookback: int = 5,
            horizon: float = 3.0) -> Report:  # fmt: skip
    """Analyses a recovery log: fingerprints, aggregates, series, anomalies, warnings, MTTR/MTBF.

    Args:
        source: What `load` reads (a JSON-lines path, a JsonLinesSink, a MemorySink, a
            RecoveryLog, RecoveryEvents), or what it returned.
        window: The windows' length in seconds (a number or a timedelta), or None for one of
            1, 2 or 5 times a power of ten giving about 60 windows.
        clock: "at" (brace's clock: the one durations are measured on; under a fake clock, the
            simulated time) or "time" (when each line was logged, seconds since the epoch, at
            the step's end: JSON lines only; for logs written by several machines or across
            restarts).
        alpha, z, warmup, min_std: The anomaly rule's parameters (brace.analytics.detect_anomalies).
        threshold: The breaker's failure rate for the early warning: a CircuitBreaker (its
            failure_rate_threshold) or a rate in (0, 1] (default 0.5, a breaker's default).
            It is compared with the failure rate of the attempts that ran, as a breaker
            counts them (rejections by the caller's own policy are left out).
        thresholds: Per dependency (its name as the report gives it: an HTTP origin, an
            operation), a CircuitBreaker or a rate in place of `threshold`.
        lookback, horizon: The early warning's parameters (brace.analytics.early_warning).

    Raises:
        LogFormatError: For a log that cannot be read (see `load`).
        ValueError: For parameters outside their ranges, a window giving more than
            100,000 windows, or clock "time" on events that have no logging time.
    """
    from brace import _config

    if clock not in ("at", "time"):
        raise ValueError(f"clock must be 'at' or 'time', got {clock!r}")
    width = _config.duration(window, "window", allow_none=True, positive=True)
    if thresholds is not None and not isinstance(thresholds, Mapping):
        raise TypeError(f"thresholds must be a mapping of dependency to threshold, got {type(thresholds).__name__}")
    each = {str(name): threshold_of(limit) for name, limit in (thresholds or {}).items()}
    rules = _Rules(alpha, z, warmup, min_std, threshold_of(threshold), each, lookback, horizon)
    detect_anomalies([], [], alpha=alpha, z=z, warmup=warmup, min_std=min_std)  # checks the parameters
    early_warning([], [], rules.threshold, lookback=lookback, horizon=horizon)
    loaded = source if isinstance(source, Loaded) else load(source)
    records = loaded.records
    if clock == "time":
        missing = next((record for record in records if record.time is None), None)
        if missing is not None:
            raise ValueError("clock 'time' reads each event's logging time, which only a JSON-lines file has "
                             f"(an event of {missing.operation!r} has none): use clock 'at'")  # fmt: skip
    when = _time_of(clock)
    origin, width, count = _frame(records, when, width)
    overall = _series_of(records, when, origin=origin, window=width, count=count)
    by_dependency: dict[str, list[Record]] = defaultdict(list)
    for record in records:
        by_dependency[record.dependency].append(record)
    per_dependency = {name: _series_of(kept, when, origin=origin, window=width, count=count)
                      for name, kept in sorted(by_dependency.items())}  # fmt: skip
    fingerprints, categories = _failures(records, when)
    anomalies = rules.anomalies("all", overall)
    dependencies, warnings = [], []
    for name, kept in sorted(by_dependency.items()):
        dependencies.append(_dependency_row(name, kept, when))
        if len(per_dependency) > 1:
            anomalies += rules.anomalies(name, per_dependency[name])
        # A breaker counts the calls that reached the dependency: the caller's own policy's
        # rejections (ran=False) are no failures of it, and would count against it here.
        reached = [record for record in kept if record.ran]
        where = per_dependency[name] if len(reached) == len(kept) else _series_of(
            reached, when, origin=origin, window=width, count=count)  # fmt: skip
        warning = rules.warning(name, where)
        if warning is not None:
            warnings.append(warning)
    data: dict[str, Any] = {
        "source": loaded.source, "clock": clock, "window": width, "origin": origin,
        "events": len(records), "skipped": loaded.skipped, "skipped_reasons": list(loaded.skipped_reasons),
        "totals": _totals(records), "windows": _series_rows(overall), "fingerprints": fingerprints,
        "dependencies": dependencies, "categories": categories, "anomalies": anomalies, "warnings": warnings,
        "parameters": {"alpha": alpha, "z": z, "warmup": warmup, "min_std": min_std, "lookback": lookback,
                       "horizon": horizon, "threshold": rules.threshold, "thresholds": dict(sorted(each.items()))},
    }  # fmt: skip
    return Report(loaded=loaded, clock=clock, overall=overall, by_dependency=per_dependency, data=_clean(data))


def _frame(records: list[Record], when: Any, width: float | None) -> tuple[float, float, int]:
    """The windows over the records: (origin, window, count)."""
    times = [when(record) for record in records]
    ends = [when(record) + record.duration for record in records if record.kind == "recovered"]
    origin = min(times) if times else 0.0
    span = max([*times, *ends], default=origin) - origin
    width = _nice_window(span) if width is None else width
    count = int(span // width) + 1 if math.isfinite(span / width) else MAX_WINDOWS + 1
    if count > MAX_WINDOWS:
        raise ValueError(f"window must give at most {MAX_WINDOWS:,} windows over the log's {span:g} s: "
                         f"{width:g} s gives {count:,}; use {span / MAX_WINDOWS:.3g} s or more")  # fmt: skip
    return origin, width, count


def _failures(records: list[Record], when: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The rows by fingerprint (most failures first) and by category (of the failures; a
    recovery counted under the category of its call's first failure)."""
    recovered_calls = {(r.operation, r.correlation_id) for r in records if r.kind == "recovered"}
    lettered_calls = {(r.operation, r.correlation_id) for r in records
                      if r.kind == "dead_letter" and r.outcome == "stored"}  # fmt: skip
    first_category: dict[tuple[str, str | None], str] = {}
    prints: dict[str, dict[str, Any]] = {}
    groups: dict[str, _Group] = defaultdict(_Group)
    calls: dict[str, set[tuple[str, str | None]]] = defaultdict(set)
    categories: dict[str, _Group] = defaultdict(_Group)
    for record in records:
        if not record.failed:
            continue
        error_type = record.error_type or "(no error)"
        key, shape = fingerprint(error_type, record.error_message or "", record.status, record.frames)
        if key not in prints:
            prints[key] = {"id": key, "type": error_type, "template": shape, "status": record.status,
                           "frames": list(record.frames), "category": record.category, "dependencies": set(),
                           "example": (record.error_message or "")[:_EXAMPLE]}  # fmt: skip
        prints[key]["dependencies"].add(record.dependency)
        groups[key].failure(record, when(record))
        calls[key].add((record.operation, record.correlation_id))
        category = record.category or "unclassified"
        categories[category].failure(record, when(record))
        first_category.setdefault((record.operation, record.correlation_id), category)
    fingerprints = [{
        **facts, "dependencies": sorted(facts["dependencies"]), "failures": groups[key].failures,
        "calls": groups[key].calls, "correlation_ids": len(groups[key].correlations),
        "correlation_id_sample": groups[key].sample,
        "recovered": len(calls[key] & recovered_calls), "dead_lettered": len(calls[key] & lettered_calls),
        "first_seen": groups[key].first, "last_seen": groups[key].last,
    } for key, facts in prints.items()]  # fmt: skip
    fingerprints.sort(key=lambda row: (-row["failures"], row["id"]))
    times: dict[str, list[float]] = defaultdict(list)
    for record in records:
        first = first_category.get((record.operation, record.correlation_id))
        if record.kind == "recovered" and first is not None:
            times[first].append(record.duration)
    category_rows = [
        {"category": name, "failures": group.failures, "calls": group.calls, "recovered": len(times[name]),
         "mean_recovery_time": sum(times[name]) / len(times[name]) if times[name] else None}
        for name, group in sorted(categories.items(), key=lambda item: (-item[1].failures, item[0]))
    ]  # fmt: skip
    return fingerprints, category_rows


def _dependency_row(name: str, kept: list[Record], when: Any) -> dict[str, Any]:
    attempts = [record for record in kept if record.kind == "attempt"]
    found = episodes([(when(record) + record.duration, record.failed) for record in attempts if record.ran])
    mttr, mtbf = _mttr_mtbf(found)
    failures = sum(record.failed for record in attempts)
    times = [record.duration for record in kept if record.kind == "recovered"]
    return {
        "dependency": name, "attempts": len(attempts), "failures": failures,
        "failure_rate": failures / len(attempts) if attempts else None,
        "calls": sum(record.attempt == 1 for record in attempts),
        "rejected": sum(not record.ran for record in attempts), "recovered": len(times),
        "mean_recovery_time": sum(times) / len(times) if times else None, "p95_recovery_time": _p95(times),
        "episodes": len(found), "open_episode": bool(found) and found[-1].end is None, "mttr": mttr, "mtbf": mtbf,
    }  # fmt: skip


def _totals(records: list[Record]) -> dict[str, Any]:
    attempts = [record for record in records if record.kind == "attempt"]
    failures = sum(record.failed for record in attempts)
    times = [record.duration for record in records if record.kind == "recovered"]
    lettered = {(r.operation, r.correlation_id) for r in records if r.kind == "dead_letter" and r.outcome == "stored"}
    return {
        "attempts": len(attempts), "failures": failures, "failure_rate": failures / len(attempts) if attempts else None,
        "calls": sum(record.attempt == 1 for record in attempts), "rejected": sum(not record.ran for record in attempts),
        "recovered": len(times), "dead_lettered": len(lettered),
        "mean_recovery_time": sum(times) / len(times) if times else None, "p95_recovery_time": _p95(times),
    }  # fmt: skip


def _anomaly(found: Anomaly, where: Series) -> dict[str, Any]:
    return {"window": found.window, "start": float(where.starts[found.window]), "error_rate": found.error_rate,
            "expected": found.expected, "std": found.std, "z": found.z}  # fmt: skip


def _warning(name: str, found: EarlyWarning, where: Series) -> dict[str, Any]:
    return {"dependency": name, "status": found.status, "threshold": found.threshold, "rate": found.rate,
            "slope": found.slope, "windows_to_threshold": found.windows_to_threshold, "window": found.window,
            "start": float(where.starts[found.window])}  # fmt: skip


def _clean(value: Any) -> Any:
    """The data with every float finite (NaN and infinities as None), for strict JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _clean(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_clean(item) for item in value]
    return value
