"""Validation of user configuration: durations, counts and rates.

Every function names the parameter it checks and the accepted range in its
error, so bad configuration fails at construction with a message that says
what to change. Nothing is clamped.
"""

from __future__ import annotations

import math
import re
from datetime import timedelta
from typing import Callable, Union, cast

from brace._safe import safe_repr

NS_PER_SECOND = 1_000_000_000
# The C core keeps a bucket's depth (interval x burst) below 2^62 ns.
MAX_DEPTH_NS = 1 << 62

Duration = float | timedelta
ExceptionFilter = Union[
    type[BaseException], tuple[type[BaseException], ...], Callable[[BaseException], bool]
]

_UNITS_SECONDS = {
    "ns": 1e-9, "us": 1e-6, "ms": 1e-3,
    "s": 1.0, "sec": 1.0, "second": 1.0, "seconds": 1.0,
    "m": 60.0, "min": 60.0, "minute": 60.0, "minutes": 60.0,
    "h": 3600.0, "hr": 3600.0, "hour": 3600.0, "hours": 3600.0,
    "d": 86400.0, "day": 86400.0, "days": 86400.0,
}  # fmt: skip
_RATE_PATTERN = re.compile(
    r"^\s*(?P<count>\d+(?:\.\d+)?)\s*(?:/|per)\s*(?P<size>\d+(?:\.\d+)?)?\s*(?P<unit>[a-z]+)\s*$",
    re.IGNORECASE,
)


def duration(
    value: object, name: str, *, allow_none: bool = False, maximum: float | None = None
) -> float | None:
    """Seconds from a float/int or a timedelta: finite and >= 0.

    Args:
        value: What the user passed.
        name: The parameter's name, for the error message.
        allow_none: Whether None (no limit) is accepted, and returned as None.
        maximum: The largest accepted number of seconds, if any.
    """
    if value is None and allow_none:
        return None
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        accepted = "seconds (float), a timedelta" + (" or None" if allow_none else "")
        raise TypeError(f"{name} must be {accepted}, got {type(value).__name__}")
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"{name} must be a finite number of seconds >= 0, got {safe_repr(value)}")
    if maximum is not None and seconds > maximum:
        raise ValueError(f"{name} must be at most {maximum:g} seconds, got {safe_repr(value)}")
    return seconds


def positive_duration(value: object, name: str) -> float:
    """Seconds from a float/int or a timedelta: finite and > 0."""
    seconds = duration(value, name)
    assert seconds is not None
    if seconds == 0:
        raise ValueError(f"{name} must be a finite number of seconds > 0, got {safe_repr(value)}")
    return seconds


def count(value: object, name: str, *, minimum: int = 1, maximum: int | None = None) -> int:
    """An int >= minimum, and <= maximum if given (bools are refused: True is not a count)."""
    accepted = f">= {minimum}" if maximum is None else f"from {minimum} to {maximum}"
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int {accepted}, got {type(value).__name__}")
    if value < minimum or (maximum is not None and value > maximum):
        raise ValueError(f"{name} must be an int {accepted}, got {value}")
    return value


def rate(value: object, per: object) -> tuple[float, float]:
    """(events, per_seconds) from `rate=` and `per=` as users write them.

    `rate` is a number of events per `per` seconds, or a string such as
    "100/s", "5000/min", "10 per hour", "3/5s"; a string carries its own period,
    so `per` must then be None.
    """
    if isinstance(value, str):
        if per is not None:
            raise ValueError(
                f"per must be None when rate is a string ({safe_repr(value)} carries its own period)"
            )
        match = _RATE_PATTERN.match(value)
        unit = match and _UNITS_SECONDS.get(match["unit"].lower())
        if not match or unit is None:
            raise ValueError(
                f"rate must look like '100/s', '5000/min', '10 per hour' or '3/5s' "
                f"(units: {', '.join(sorted(_UNITS_SECONDS))}), got {safe_repr(value)}"
            )
        events = float(match["count"])
        period = float(match["size"] or 1) * unit
        if events <= 0 or period <= 0:
            raise ValueError(f"rate must have a count > 0 and a period > 0, got {safe_repr(value)}")
        return events, period
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(
            f"rate must be a number of events > 0 or a string like '100/s', "
            f"got {type(value).__name__}"
        )
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"rate must be a finite number of events > 0, got {safe_repr(value)}")
    return float(value), positive_duration(1.0 if per is None else per, "per")


def interval_ns(events: float, period: float) -> int:
    """Nanoseconds per event, rounded to the nearest ns (the core's resolution)."""
    interval = round(period * NS_PER_SECOND / events)
    if interval < 1:
        raise ValueError(
            f"rate must be at most 1e9 events per second (one per nanosecond), "
            f"got {events:g} per {period:g} s"
        )
    return interval


def burst_within_depth(burst: int, interval: int) -> int:
    """Checks that burst x interval fits the core's 2^62 ns (~146 years)."""
    if burst > MAX_DEPTH_NS // interval:
        raise ValueError(
            f"burst must be at most {MAX_DEPTH_NS // interval} at this rate "
            f"(burst x per / rate must stay under ~146 years), got {burst}"
        )
    return burst


def keywords_only(kind: str, positional: tuple[object, ...]) -> None:
    """Refuses positional arguments to a brace object configured by keywords, such
    as a bare `@brace.CircuitBreaker` over a function, with an error that says
    how to write it."""
    if positional:
        what = "a callable" if callable(positional[0]) else f"a {type(positional[0]).__name__}"
        raise TypeError(
            f"brace.{kind} takes keyword arguments only, got {what} as a positional argument; "
            f"to decorate with it, configure it first: @brace.{kind}(...) (parentheses required)"
        )


def exception_filter(value: object, name: str) -> Callable[[BaseException], bool]:
    """A predicate from exception types (a type or a tuple) or a predicate itself."""
    if isinstance(value, type) and issubclass(value, BaseException):
        return lambda error: isinstance(error, value)
    if isinstance(value, tuple) and all(
        isinstance(item, type) and issubclass(item, BaseException) for item in value
    ):
        return lambda error: isinstance(error, value)
    if callable(value):
        return cast(Callable[[BaseException], bool], value)
    raise TypeError(
        f"{name} must be an exception type, a tuple of them, or a predicate, "
        f"got {type(value).__name__}"
    )
