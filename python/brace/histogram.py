"""brace.LatencyHistogram: recent latencies in the C core, for percentile questions."""

from __future__ import annotations

import math
import re
from datetime import timedelta

from brace import _config
from brace._core import HISTOGRAM_PPM, HISTOGRAM_WINDOW_MAX, HISTOGRAM_WINDOW_MIN, LatencyHistogramCore
from brace._safe import safe_repr

__all__ = ["LatencyHistogram", "percentile_spec"]

_WINDOW_MIN = HISTOGRAM_WINDOW_MIN / _config.NS_PER_SECOND
_WINDOW_MAX = HISTOGRAM_WINDOW_MAX / _config.NS_PER_SECOND
_MIN_SAMPLES_MAX = 10**9
_SPEC = re.compile(r"p(\d{1,2}(?:\.\d{1,4})?|100)")


def _q_ppm(q: object) -> int:
    """Parts per million from a percentile q, a number from 0 to 100."""
    if isinstance(q, bool) or not isinstance(q, (int, float)):
        raise TypeError(f"q must be a number from 0 to 100 (a percentile), got {type(q).__name__}")
    if not (math.isfinite(q) and 0 <= q <= 100):
        raise ValueError(f"q must be a number from 0 to 100 (a percentile), got {safe_repr(q)}")
    return round(q * (HISTOGRAM_PPM // 100))


def percentile_spec(value: str, name: str) -> float:
    """The percentile of a spec such as "p95" or "p99.9": a number above 0 and below 100.

    Raises:
        ValueError: Any other string.
    """
    match = _SPEC.fullmatch(value)
    q = float(match.group(1)) if match else 0.0
    if not 0 < q < 100:
        raise ValueError(
            f'{name} must be seconds, a timedelta or a percentile of recent latency such as "p95" or "p99.9" '
            f"(above p0, below p100), got {safe_repr(value)}"
        )
    return q


class LatencyHistogram(LatencyHistogramCore):
    """Recent latencies, for questions such as "how slow is the 95th percentile lately?".

    Durations go to log-scale buckets in the C core (8 per power of two of
    nanoseconds), so a percentile is within 6.25% of the exact one from about
    1 us to 275 s; shorter durations read as 0.5 us, longer ones as 275 s.
    Only recent latency counts (tower's rotating histogram): time is cut into
    windows of `window` seconds and a percentile reads the current window and
    the one before, so it covers between one and two windows and forgets what
    came before. Recording is one compare-and-swap, lock-free, so one
    histogram may be shared by threads. Time is brace's clock
    (`brace.testing.fake_clock()` drives the windows).

    Args:
        name: A name for messages and metrics.
        window: Seconds (float) or a timedelta a window lasts, from 0.001 to
            86400 (one day).
        min_samples: Durations the windows must hold before `percentile`
            answers (before that it returns None): an int from 1 to 10**9.

    Raises:
        ValueError, TypeError: For configuration outside the ranges above.
    """

    __slots__ = ("_name", "_window", "_min_samples")

    def __init__(self, *, name: str | None = None, window: float | timedelta = 10.0,
                 min_samples: int = 20) -> None:  # fmt: skip
        self._name = _config.optional_name(name)
        seconds = _config.duration(window, "window", maximum=_WINDOW_MAX)
        assert seconds is not None
        if seconds < _WINDOW_MIN:
            raise ValueError(f"window must be a finite number of seconds from {_WINDOW_MIN:g} to "
                             f"{_WINDOW_MAX:g}, got {safe_repr(window)}")  # fmt: skip
        self._window = seconds
        self._min_samples = _config.count(min_samples, "min_samples", maximum=_MIN_SAMPLES_MAX)
        self._configure(round(seconds * _config.NS_PER_SECOND))

    @property
    def name(self) -> str | None:
        """The histogram's name, or None."""
        return self._name

    @property
    def window(self) -> float:
        """Seconds a window lasts (a percentile reads the current one and the one before)."""
        return self._window

    @property
    def min_samples(self) -> int:
        """Durations needed before `percentile` answers."""
        return self._min_samples

    def record(self, seconds: float | timedelta) -> None:
        """Records one latency: seconds (float, >= 0) or a timedelta.

        Raises:
            ValueError, TypeError: For a negative, NaN or infinite duration.
        """
        if isinstance(seconds, timedelta):
            value = seconds.total_seconds()
        elif isinstance(seconds, (int, float)) and not isinstance(seconds, bool):
            value = float(seconds)
        else:
            raise TypeError(f"seconds must be a float >= 0 or a timedelta, got {type(seconds).__name__}")
        if not (math.isfinite(value) and value >= 0):
            raise ValueError(f"seconds must be a finite number >= 0, got {safe_repr(seconds)}")
        self._record_ns(min(round(value * _config.NS_PER_SECOND), 2**64 - 1))

    def record_ns(self, duration_ns: int) -> None:
        """Records one latency in whole nanoseconds (an int >= 0), for callers that measure in ns."""
        self._record_ns(duration_ns)

    def percentile(self, q: float) -> float | None:
        """The q-th percentile (0 to 100) of recent latencies in seconds, or None
        while the windows hold fewer than `min_samples` durations.

        Nearest rank: the latency that q% of the recorded ones do not exceed,
        read as its bucket's midpoint.

        Raises:
            ValueError, TypeError: q is not a number from 0 to 100.
        """
        value, count = self._percentile_ns(_q_ppm(q))
        if count < self._min_samples:
            return None
        return value / _config.NS_PER_SECOND

    @property
    def count(self) -> int:
        """Durations the current and the previous window hold."""
        return self._percentile_ns(0)[1]

    def __repr__(self) -> str:
        name = f"name={self._name!r}, " if self._name else ""
        return f"LatencyHistogram({name}window={self._window:g}, min_samples={self._min_samples})"
