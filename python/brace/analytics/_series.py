"""Per-window series (numpy), anomaly detection on error rates, and the early warning.

Windows: time is cut into windows of `window` seconds from the first event's
time; an attempt counts in the window where it began (`at`), a recovery in the
window where it ended (`at + duration`, the success).

Anomaly rule (`detect_anomalies`): an exponentially weighted moving mean m and
variance v of the per-window error rate (weight `alpha` for the newest window),
updated with every window that has attempts. Window i is an anomaly when, after
`warmup` such windows, z = (rate_i - m) / s > `z` with m and v as they stood
before window i and s = max(sqrt(v), sqrt(m (1 - m) / n_i), `min_std`): the
larger of the series' own spread and the binomial noise of a rate over n_i
attempts, so that a steady series with no spread and a window of few
attempts do not raise alarms on noise. Only rises are anomalies.

Early warning rule (`early_warning`): the failure rate over the last
`lookback` windows with attempts, fitted by least squares to a line; when the
fitted rate of the latest window is below the threshold and the slope is
positive, the windows until the line reaches the threshold are
(threshold - fitted) / slope, and a warning is given when that is at most
`horizon`. A fitted rate already at or above the threshold is reported as
"above" (the breaker opens, or would, once it holds its minimum calls).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from brace.breaker import CircuitBreaker

__all__ = ["Anomaly", "EarlyWarning", "Series", "detect_anomalies", "early_warning", "threshold_of"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Series:
    """Per-window figures, one entry per window (numpy arrays of equal length).

    Attributes:
        origin: When the first window starts (seconds on the report's clock).
        window: The windows' length in seconds.
        starts: Each window's start.
        calls: First attempts ("attempt" events with attempt 1) that began in it.
        attempts: Attempts that began in it.
        errors: Of those, failed ones.
        error_rate: errors / attempts; NaN for a window without attempts.
        recoveries: Calls that recovered ("recovered" events) in it.
        mean_recovery_time: Their mean recovery time (seconds); NaN without one.
        p95_recovery_time: Its 95th percentile (nearest rank); NaN without one.
    """

    origin: float
    window: float
    starts: FloatArray
    calls: IntArray
    attempts: IntArray
    errors: IntArray
    error_rate: FloatArray
    recoveries: IntArray
    mean_recovery_time: FloatArray
    p95_recovery_time: FloatArray

    def __len__(self) -> int:
        return len(self.starts)


def _indices(times: FloatArray, origin: float, window: float, count: int) -> IntArray:
    index = np.floor((times - origin) / window).astype(np.int64)
    return np.clip(index, 0, count - 1)


def series(attempt_at: FloatArray, attempt_first: npt.NDArray[np.bool_], attempt_failed: npt.NDArray[np.bool_],
           recovered_end: FloatArray, recovered_time: FloatArray, *, origin: float, window: float,
           count: int) -> Series:  # fmt: skip
    """The per-window series of attempts (start times, first-attempt and failed flags) and
    recoveries (end times, recovery times), over `count` windows from `origin`."""
    starts = origin + window * np.arange(count, dtype=np.float64)
    where = _indices(attempt_at, origin, window, count)
    attempts = np.bincount(where, minlength=count).astype(np.int64)
    errors = np.bincount(where, weights=attempt_failed.astype(np.float64), minlength=count).astype(np.int64)
    calls = np.bincount(where, weights=attempt_first.astype(np.float64), minlength=count).astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(attempts > 0, errors / np.maximum(attempts, 1), np.nan)
    mean = np.full(count, np.nan)
    p95 = np.full(count, np.nan)
    recoveries = np.zeros(count, dtype=np.int64)
    if len(recovered_end):
        slot = _indices(recovered_end, origin, window, count)
        order = np.argsort(slot, kind="stable")
        slot, times = slot[order], recovered_time[order]
        bounds = np.flatnonzero(np.diff(slot)) + 1
        for group_slots, group in zip(np.split(slot, bounds), np.split(times, bounds)):
            index = int(group_slots[0])
            recoveries[index] = len(group)
            mean[index] = float(np.mean(group))
            p95[index] = float(np.percentile(group, 95, method="inverted_cdf"))
    return Series(origin=origin, window=window, starts=starts, calls=calls, attempts=attempts, errors=errors,
                  error_rate=rate, recoveries=recoveries, mean_recovery_time=mean, p95_recovery_time=p95)  # fmt: skip


@dataclass(frozen=True)
class Anomaly:
    """A window whose error rate rose beyond the rule (see the module's docstring).

    Attributes:
        window: The window's index.
        error_rate: Its error rate.
        expected: The moving mean before it.
        std: The spread it was measured against (s).
        z: (error_rate - expected) / std.
    """

    window: int
    error_rate: float
    expected: float
    std: float
    z: float


def _check_anomaly_parameters(alpha: float, z: float, warmup: int, min_std: float) -> None:
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 < alpha < 1:
        raise ValueError(f"alpha must be a number in (0, 1), got {alpha!r}")
    if isinstance(z, bool) or not isinstance(z, (int, float)) or not 0 < z < math.inf:
        raise ValueError(f"z must be a finite number > 0, got {z!r}")
    if isinstance(warmup, bool) or not isinstance(warmup, int) or not 1 <= warmup <= 1_000_000:
        raise ValueError(f"warmup must be an int from 1 to 1,000,000, got {warmup!r}")
    if isinstance(min_std, bool) or not isinstance(min_std, (int, float)) or not 0 < min_std <= 1:
        raise ValueError(f"min_std must be a number in (0, 1], got {min_std!r}")


def detect_anomalies(rates: npt.ArrayLike, attempts: npt.ArrayLike, *, alpha: float = 0.3, z: float = 3.0,
                     warmup: int = 5, min_std: float = 0.02) -> list[Anomaly]:  # fmt: skip
    """The windows whose error rate is an anomaly by the EWMA z-score rule.

    Args:
        rates: The per-window error rates (NaN: a window without attempts, skipped).
        attempts: The per-window attempts (the binomial noise of each rate).
        alpha: The weight of the newest window in the moving mean and variance, in (0, 1).
        z: The z-score beyond which a rise is an anomaly, > 0.
        warmup: Windows with attempts seen before any can be an anomaly, >= 1.
        min_std: The least spread a rate is measured against, in (0, 1].

    Raises:
        ValueError: For a parameter outside its range, or rates and attempts of different lengths.
    """
    _check_anomaly_parameters(alpha, z, warmup, min_std)
    rate = np.asarray(rates, dtype=np.float64)
    count = np.asarray(attempts, dtype=np.float64)
    if rate.shape != count.shape or rate.ndim != 1:
        raise ValueError(f"rates and attempts must be 1-d and of one length, got {rate.shape} and {count.shape}")
    found: list[Anomaly] = []
    mean = variance = 0.0
    seen = 0
    for index in range(len(rate)):
        value, n = float(rate[index]), float(count[index])
        if not (math.isfinite(value) and n > 0):
            continue
        if seen >= warmup:
            std = max(math.sqrt(variance), math.sqrt(max(mean * (1 - mean), 0.0) / n), min_std)
            score = (value - mean) / std
            if score > z:
                found.append(Anomaly(window=index, error_rate=value, expected=mean, std=std, z=score))
        if seen == 0:
            mean, variance = value, 0.0
        else:
            diff = value - mean
            increment = alpha * diff
            mean += increment
            variance = (1 - alpha) * (variance + diff * increment)
        seen += 1
    return found


@dataclass(frozen=True)
class EarlyWarning:
    """A failure rate rising toward a breaker's threshold (see the module's docstring).

    Attributes:
        status: "rising" (projected to reach the threshold within the horizon) or
            "above" (the fitted rate is at or above it already).
        threshold: The failure rate at which the breaker opens.
        rate: The fitted failure rate of the latest window.
        slope: The fitted change of the rate per window.
        windows_to_threshold: Windows until the line reaches the threshold (0 when above).
        window: The latest window's index.
    """

    status: str
    threshold: float
    rate: float
    slope: float
    windows_to_threshold: float
    window: int


def threshold_of(threshold: float | CircuitBreaker) -> float:
    """A failure-rate threshold: a number in (0, 1], or a CircuitBreaker's failure_rate_threshold."""
    from brace.breaker import CircuitBreaker

    if isinstance(threshold, CircuitBreaker):
        return threshold.failure_rate_threshold
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 < threshold <= 1:
        raise ValueError(f"threshold must be a CircuitBreaker or a failure rate in (0, 1], got {threshold!r}")
    return float(threshold)


def early_warning(rates: npt.ArrayLike, attempts: npt.ArrayLike, threshold: float | CircuitBreaker, *,
                  lookback: int = 5, horizon: float = 3.0) -> EarlyWarning | None:  # fmt: skip
    """Whether the failure rate is projected to reach `threshold` within `horizon` windows.

    Args:
        rates: The per-window failure rates (NaN: a window without attempts, skipped).
        attempts: The per-window attempts (windows without any are skipped).
        threshold: A CircuitBreaker (its failure_rate_threshold) or a rate in (0, 1].
        lookback: How many of the latest windows with attempts are fitted, from 2 to 10,000.
        horizon: How many windows ahead a crossing is warned of, a finite number > 0.

    Returns:
        The warning, or None: fewer than `lookback` windows with attempts, a slope
        of 0 or less, or a crossing further than `horizon` windows away.

    Raises:
        ValueError: For a parameter outside its range.
    """
    limit = threshold_of(threshold)
    if isinstance(lookback, bool) or not isinstance(lookback, int) or not 2 <= lookback <= 10_000:
        raise ValueError(f"lookback must be an int from 2 to 10,000, got {lookback!r}")
    if isinstance(horizon, bool) or not isinstance(horizon, (int, float)) or not 0 < horizon < math.inf:
        raise ValueError(f"horizon must be a finite number > 0, got {horizon!r}")
    rate = np.asarray(rates, dtype=np.float64)
    count = np.asarray(attempts, dtype=np.float64)
    usable = np.flatnonzero(np.isfinite(rate) & (count > 0))
    if len(usable) < lookback:
        return None
    x = usable[-lookback:].astype(np.float64)
    y = rate[usable[-lookback:]]
    slope, intercept = (float(value) for value in np.polyfit(x, y, 1))
    latest = int(x[-1])
    fitted = intercept + slope * latest
    if not (math.isfinite(slope) and math.isfinite(fitted)):
        return None
    if fitted >= limit:
        return EarlyWarning("above", limit, fitted, slope, 0.0, latest)
    if slope <= 0:
        return None
    ahead = (limit - fitted) / slope
    if ahead > horizon:
        return None
    return EarlyWarning("rising", limit, fitted, slope, ahead, latest)
