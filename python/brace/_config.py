"""Validation of user configuration: durations, counts and rates.

Every function names the parameter it checks and the accepted range in its
error, so bad configuration fails at construction with a message that says
what to change. Nothing is clamped.
"""

from __future__ import annotations

import enum
import math
import re
import threading
from datetime import timedelta
from typing import Callable, TypeVar, Union, cast

from brace._core import DURATION_MAX_NS
from brace._safe import safe_repr

NS_PER_SECOND = 1_000_000_000
# The C core keeps every duration, wait and bucket depth within 2^62 ns (~146
# years, brace.h's BRC_DURATION_MAX), leaving head room for now + wait within
# its 64-bit clock.
MAX_DEPTH_NS = DURATION_MAX_NS
MAX_SECONDS = MAX_DEPTH_NS / NS_PER_SECOND
# The core counts in whole nanoseconds: a shorter duration other than 0 would
# be rounded away to nothing.
RESOLUTION = 1 / NS_PER_SECOND
# Waits on a thread (locks, events, conditions) refuse longer timeouts.
THREAD_WAIT_MAX = min(threading.TIMEOUT_MAX, MAX_SECONDS)
# The largest count anywhere: it fits the core's 64-bit fields and SQLite's INTEGER.
COUNT_MAX = (1 << 63) - 1
# No rate a person writes is longer; the bound keeps parsing cheap whatever is passed.
RATE_MAX_CHARS = 64

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
# ASCII digits only (\d and float() also take other scripts' digits), and no
# two whitespace runs that can take the same characters, so a match costs
# linear time whatever the input.
_RATE_PATTERN = re.compile(
    r"(?P<count>[0-9]+(?:\.[0-9]+)?)[ \t]*(?:/|per)[ \t]*"
    r"(?:(?P<size>[0-9]+(?:\.[0-9]+)?)[ \t]*)?(?P<unit>[a-z]+)",
    re.ASCII | re.IGNORECASE,
)
_RATE_FORMS = "'100/s', '5000/min', '10 per hour' or '3/5s'"


def seconds_range(maximum: float, *, positive: bool = False, allow_none: bool = False) -> str:
    """The accepted range of a duration, as error messages state it."""
    span = f"a finite number of seconds from {RESOLUTION:g} to {maximum:g}"
    return ("" if positive else "0 or ") + span + (", or None" if allow_none else "")


def duration(
    value: object,
    name: str,
    *,
    allow_none: bool = False,
    positive: bool = False,
    maximum: float = MAX_SECONDS,
) -> float | None:
    """Seconds from a float/int or a timedelta, within what the core can keep.

    Accepted: 0 (unless `positive`), or a finite number of seconds from 1 ns
    (the core's resolution: anything shorter would be rounded away) to
    `maximum` (at most 2^62 ns).

    Args:
        value: What the user passed.
        name: The parameter's name, for the error message.
        allow_none: Whether None (no limit) is accepted, and returned as None.
        positive: Whether 0 is refused.
        maximum: The largest accepted number of seconds.
    """
    if value is None and allow_none:
        return None
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            seconds = float(value)
        except OverflowError:  # an int beyond any float
            seconds = math.inf
    else:
        accepted = "seconds (float), a timedelta" + (" or None" if allow_none else "")
        raise TypeError(f"{name} must be {accepted}, got {type(value).__name__}")
    # Written so that NaN fails too.
    if not (seconds == 0 and not positive or RESOLUTION <= seconds <= maximum):
        accepted = seconds_range(maximum, positive=positive, allow_none=allow_none)
        raise ValueError(f"{name} must be {accepted}, got {safe_repr(value)}")
    return seconds


def positive_duration(value: object, name: str, *, maximum: float = MAX_SECONDS) -> float:
    """Seconds from a float/int or a timedelta: from 1 ns to `maximum`."""
    seconds = duration(value, name, positive=True, maximum=maximum)
    assert seconds is not None
    return seconds


def count(
    value: object, name: str, *, minimum: int = 1, maximum: int | None = COUNT_MAX
) -> int:
    """An int from minimum to maximum (None: no maximum; bools are refused: True is not a count)."""
    accepted = f">= {minimum}" if maximum is None else f"from {minimum} to {_int_text(maximum)}"
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int {accepted}, got {type(value).__name__}")
    if value < minimum or (maximum is not None and value > maximum):
        raise ValueError(f"{name} must be an int {accepted}, got {value}")
    return value


def _int_text(number: int) -> str:
    """A bound as people read it: 2**63 - 1 rather than its 19 digits."""
    power = (number + 1).bit_length() - 1
    return f"2**{power} - 1" if number > 10**6 and number + 1 == 1 << power else str(number)


def rate(value: object, per: object) -> tuple[float, float]:
    """(events, per_seconds) from `rate=` and `per=` as users write them.

    `rate` is a number of events per `per` seconds, or a string such as
    "100/s", "5000/min", "10 per hour", "3/5s" (ASCII, at most 64
    characters); a string carries its own period, so `per` must then be None.
    """
    if isinstance(value, str):
        text = str.__str__(value)  # a str subclass's own methods do not run
        if per is not None:
            raise ValueError(
                f"per must be None when rate is a string ({_shown(text)} carries its own period)"
            )
        if len(text) > RATE_MAX_CHARS:
            raise ValueError(
                f"rate must be a string of at most {RATE_MAX_CHARS} characters like "
                f"{_RATE_FORMS}, got one of {len(text)}"
            )
        match = _RATE_PATTERN.fullmatch(text.strip(" \t\r\n\f\v"))
        unit = match and _UNITS_SECONDS.get(match["unit"].lower())
        if not match or unit is None:
            raise ValueError(
                f"rate must look like {_RATE_FORMS} "
                f"(ASCII digits; units: {', '.join(sorted(_UNITS_SECONDS))}), got {safe_repr(text)}"
            )
        events = float(match["count"])
        period = float(match["size"] or 1) * unit
        if events <= 0 or period <= 0:
            raise ValueError(f"rate must have a count > 0 and a period > 0, got {safe_repr(text)}")
        return events, period
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(
            f"rate must be a number of events > 0 or a string like '100/s', "
            f"got {type(value).__name__}"
        )
    try:
        events = float(value)
    except OverflowError:  # an int beyond any float
        events = math.inf
    if not math.isfinite(events) or events <= 0:
        raise ValueError(f"rate must be a finite number of events > 0, got {safe_repr(value)}")
    return events, positive_duration(1.0 if per is None else per, "per")


def _shown(text: str) -> str:
    """A user's string in a message: its repr, shortened when long."""
    if len(text) <= 2 * RATE_MAX_CHARS:
        return safe_repr(text)
    return safe_repr(text[:RATE_MAX_CHARS]) + "..."


def interval_ns(events: float, period: float) -> int:
    """Nanoseconds per event, rounded to the nearest ns (the core's resolution).

    From 1 ns (1e9 events per second) to 2^62 ns (one event per ~146 years).
    """
    interval = period * NS_PER_SECOND / events
    if not interval <= MAX_DEPTH_NS:  # also inf, from a tiny rate
        raise ValueError(
            f"rate must be at least one event per {MAX_SECONDS:g} seconds (2**62 ns, ~146 years), "
            f"got {events:g} per {period:g} s"
        )
    if round(interval) < 1:
        raise ValueError(
            f"rate must be at most 1e9 events per second (one per nanosecond), "
            f"got {events:g} per {period:g} s"
        )
    return round(interval)


def burst_within_depth(burst: int, interval: int) -> int:
    """Checks that burst x interval fits the core's 2^62 ns (~146 years)."""
    if burst > MAX_DEPTH_NS // interval:
        raise ValueError(
            f"burst must be at most {MAX_DEPTH_NS // interval} at this rate "
            f"(burst x per / rate must stay under ~146 years), got {burst}"
        )
    return burst


def bucket(given_rate: object, per: object, burst: object) -> tuple[float, float, int, int]:
    """A token bucket's (events, period, interval_ns, burst) from a limiter's `rate=`, `per=`
    and `burst=`, each checked."""
    events, period = rate(given_rate, per)
    interval = interval_ns(events, period)
    return events, period, interval, burst_within_depth(count(burst, "burst", maximum=None), interval)


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


E = TypeVar("E", bound=enum.Enum)


def member(kind: type[E], value: object, name: str) -> E:
    """A member of the enum `kind` from itself or its string value ("timeout").

    The one parser of brace's enums from configuration: the error names the
    parameter and every accepted value.
    """
    if isinstance(value, kind):
        return value
    accepted = f"a brace.{kind.__name__} or one of {', '.join(repr(item.value) for item in kind)}"
    if not isinstance(value, str):
        raise TypeError(f"{name} must be {accepted}, got {type(value).__name__}")
    try:
        return kind(value)
    except ValueError:
        raise ValueError(f"{name} must be {accepted}, got {safe_repr(value)}") from None


T = TypeVar("T")


def flag(value: object, name: str) -> bool:
    """A bool parameter, checked: 1 and "yes" are not bools."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__}")
    return value


def optional_name(value: object, name: str = "name") -> str | None:
    """A primitive's name: a str, or None."""
    if value is not None and not isinstance(value, str):
        raise TypeError(f"{name} must be a str or None, got {type(value).__name__}")
    return value


def instance_or_none(value: object, kind: type[T], name: str) -> T | None:
    """A brace object of the given class, or None."""
    if value is not None and not isinstance(value, kind):
        raise TypeError(f"{name} must be a brace.{kind.__name__} or None, got {type(value).__name__}")
    return value
