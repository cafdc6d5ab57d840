"""brace.Backoff: how long to wait before each retry; the arithmetic runs in the C core."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any, Callable, Literal, NoReturn

from brace._safe import safe_repr
from brace import _config
from brace._core import (
    BACKOFF_CONSTANT,
    BACKOFF_EXPONENTIAL,
    BACKOFF_LINEAR,
    JITTER_DECORRELATED,
    JITTER_EQUAL,
    JITTER_FULL,
    JITTER_NONE,
    JITTER_PROPORTIONAL,
    BackoffCore,
    rng_uniform,
)
from brace._config import NS_PER_SECOND

__all__ = ["Backoff", "BackoffKind", "DelayFunction", "Jitter"]

Jitter = Literal["full", "equal", "decorrelated", "proportional", "none"]
BackoffKind = Literal["exponential", "linear", "constant", "custom"]
DelayFunction = Callable[[int, Any], float | timedelta]
"""A custom backoff: (attempt, outcome) -> seconds (float) or a timedelta."""

_JITTERS: dict[str, int] = {
    "full": JITTER_FULL,
    "equal": JITTER_EQUAL,
    "decorrelated": JITTER_DECORRELATED,
    "proportional": JITTER_PROPORTIONAL,
    "none": JITTER_NONE,
}
_JITTER_NAMES = ", ".join(map(repr, _JITTERS))

_U64_MAX = (1 << 64) - 1


def _seconds(value: object, name: str) -> float:
    # The retry engine sleeps until now + delay on the core's 64-bit ns clock:
    # the default maximum of 2^62 ns (~146 years) keeps that in range.
    seconds = _config.duration(value, name)
    assert seconds is not None
    return seconds


def _ns(seconds: float) -> int:
    return round(seconds * NS_PER_SECOND)


def _positive_seconds(value: object, name: str, why: str) -> float:
    """Seconds from 1 ns, the core's resolution; `why` says why 0 is refused."""
    try:
        return _config.positive_duration(value, name)
    except ValueError:
        accepted = _config.seconds_range(_config.MAX_SECONDS, positive=True)
        raise ValueError(f"{name} must be {accepted} {why}, got {safe_repr(value)}") from None


def _cap(value: object, initial: float) -> float:
    seconds = _seconds(value, "max")
    if seconds < initial:
        raise ValueError(f"max must be >= initial ({initial!r} seconds), got {safe_repr(value)}")
    return seconds


def _multiplier(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"multiplier must be a finite number >= 1, got {type(value).__name__}")
    if not math.isfinite(value) or value < 1:
        raise ValueError(f"multiplier must be a finite number >= 1, got {safe_repr(value)}")
    return float(value)


# Callers told by the same server to come back in s seconds (a 429 or 503 with
# Retry-After) spread their return over s .. 1.2 s: never earlier than asked, and
# not all in the same instant. Proportional, so that it scales with the wait.
_SERVER_WAIT_SPREAD = 0.2


def after_server_wait(seconds: float) -> float:
    """A wait the server asked for, plus a random spread so that callers do not return
    in lockstep: uniform in [s, 1.2 s] (brace's random stream: reproducible under
    brace.testing.seed)."""
    return seconds * (1.0 + _SERVER_WAIT_SPREAD * rng_uniform())


def _jitter(value: object) -> int:
    code = _JITTERS.get(value) if isinstance(value, str) else None
    if code is None:
        raise ValueError(f"jitter must be one of {_JITTER_NAMES}, got {safe_repr(value)}")
    return code


def _factor(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"factor must be a number in (0, 1], got {type(value).__name__}")
    # Written so that NaN fails too.
    if not 0 < value <= 1:
        raise ValueError(f"factor must be a number in (0, 1], got {safe_repr(value)}")
    return float(value)


# The settings that are durations, which `scaled` multiplies.
_DURATIONS = frozenset({"initial", "max", "increment", "delay"})


def _restore(kind: str, settings: dict[str, Any]) -> Backoff:
    """Rebuilds a Backoff from its settings (for pickle and copy)."""
    factory: Callable[..., Backoff] = getattr(Backoff, kind)
    return factory(**settings)


class Backoff(BackoffCore):
    """How long to wait before each retry: a growth schedule plus jitter.

    Build one with `Backoff.exponential()`, `Backoff.linear()`,
    `Backoff.constant()` or `Backoff.custom(fn)`, and pass it to a retry
    policy, which asks `delay(attempt, previous=..., outcome=...)` before
    each retry. The delay before retry k (k >= 1) is, before jitter:

        exponential  initial * multiplier ** (k - 1)
        linear       initial + increment * (k - 1)
        constant     delay

    capped at `max`. Jitter then spreads that delay d so that clients that
    failed together do not retry together:

        "full"          uniform in [0, d)   (AWS "full jitter"; the default)
        "equal"         d/2 + uniform in [0, d/2)
        "decorrelated"  uniform in [initial, 3 * previous), capped at max:
                        grows from the previous delay, not the attempt
        "proportional"  d * uniform in [1 - factor, 1 + factor), capped at
                        max (gRPC uses factor=0.2)
        "none"          d

    The arithmetic and the random draw run in the C core (a per-thread
    xoshiro256** stream; `brace.testing.seed` makes it reproducible), with
    nanosecond resolution and no overflow for any attempt: delays saturate
    at `max`.

    Every duration (initial, increment, max, delay, previous, a custom fn's
    result) is 0 or 1 ns to 2**62 ns (~146 years), seconds or a timedelta:
    the core counts whole nanoseconds, and nothing is rounded away to 0.

    A Backoff is immutable, hashable and compares equal to another with the
    same configuration; its repr is the call that builds it.
    """

    __slots__ = ("_kind", "_settings", "_fn", "_max")

    _kind: BackoffKind
    _settings: tuple[tuple[str, Any], ...]
    _fn: DelayFunction | None
    _max: float | None

    def __init__(self) -> None:
        raise TypeError(
            "build a Backoff with Backoff.exponential(), Backoff.linear(), "
            "Backoff.constant() or Backoff.custom(fn)"
        )

    @classmethod
    def _build(
        cls,
        kind: BackoffKind,
        settings: tuple[tuple[str, Any], ...],
        *,
        fn: DelayFunction | None = None,
        max_seconds: float | None = None,
    ) -> Backoff:
        self = cls.__new__(cls)
        # Bypasses the immutability guard; nothing else ever writes these.
        object.__setattr__(self, "_kind", kind)
        object.__setattr__(self, "_settings", settings)
        object.__setattr__(self, "_fn", fn)
        object.__setattr__(self, "_max", max_seconds)
        return self

    @classmethod
    def exponential(
        cls,
        *,
        initial: float | timedelta = 1.0,
        multiplier: float = 2.0,
        max: float | timedelta = 30.0,
        jitter: Jitter = "full",
        factor: float = 0.2,
    ) -> Backoff:
        """Delays that grow geometrically: initial * multiplier ** (attempt - 1), capped.

        Args:
            initial: The delay before the first retry (before jitter):
                seconds > 0 or a timedelta.
            multiplier: Growth per attempt, a finite number >= 1.
            max: The cap on every delay, jitter included: seconds >= initial.
            jitter: "full", "equal", "decorrelated", "proportional" or "none".
            factor: The spread of "proportional" jitter, in (0, 1]; ignored
                by the others.

        Raises:
            ValueError, TypeError: For configuration outside the ranges above.
        """
        initial_s = _positive_seconds(initial, "initial", "for exponential backoff")
        multiplier_f = _multiplier(multiplier)
        max_s = _cap(max, initial_s)
        jitter_code = _jitter(jitter)
        factor_f = _factor(factor)
        self = cls._build(
            "exponential",
            (("initial", initial_s), ("multiplier", multiplier_f), ("max", max_s))
            + _jitter_settings(jitter, factor_f),
            max_seconds=max_s,
        )
        self._configure(
            BACKOFF_EXPONENTIAL, _ns(initial_s), _ns(max_s), multiplier_f, 0, jitter_code, factor_f
        )
        return self

    @classmethod
    def linear(
        cls,
        *,
        initial: float | timedelta = 1.0,
        increment: float | timedelta = 1.0,
        max: float | timedelta = 30.0,
        jitter: Jitter = "full",
        factor: float = 0.2,
    ) -> Backoff:
        """Delays that grow by a fixed step: initial + increment * (attempt - 1), capped.

        Args:
            initial: The delay before the first retry (before jitter):
                seconds >= 0 or a timedelta (> 0 with "decorrelated" jitter,
                which grows from it).
            increment: Added per attempt: seconds >= 0 or a timedelta.
            max: The cap on every delay, jitter included: seconds >= initial.
            jitter: "full", "equal", "decorrelated", "proportional" or "none".
                "decorrelated" replaces the linear growth with its own.
            factor: The spread of "proportional" jitter, in (0, 1]; ignored
                by the others.

        Raises:
            ValueError, TypeError: For configuration outside the ranges above.
        """
        if jitter == "decorrelated":
            initial_s = _positive_seconds(initial, "initial", "with jitter='decorrelated'")
        else:
            initial_s = _seconds(initial, "initial")
        increment_s = _seconds(increment, "increment")
        max_s = _cap(max, initial_s)
        jitter_code = _jitter(jitter)
        factor_f = _factor(factor)
        self = cls._build(
            "linear",
            (("initial", initial_s), ("increment", increment_s), ("max", max_s))
            + _jitter_settings(jitter, factor_f),
            max_seconds=max_s,
        )
        self._configure(
            BACKOFF_LINEAR, _ns(initial_s), _ns(max_s), 1.0, _ns(increment_s), jitter_code,
            factor_f,
        )  # fmt: skip
        return self

    @classmethod
    def constant(
        cls,
        *,
        delay: float | timedelta = 1.0,
        jitter: Jitter = "none",
        factor: float = 0.2,
    ) -> Backoff:
        """The same delay before every retry.

        Args:
            delay: Seconds >= 0 or a timedelta; 0 retries at once.
            jitter: "none", "full", "equal" or "proportional" ("decorrelated"
                needs a growing backoff: capped at a constant delay it would
                always return that delay). With "proportional" the delays
                spread over delay * (1 - factor) to delay * (1 + factor).
            factor: The spread of "proportional" jitter, in (0, 1]; ignored
                by the others.

        Raises:
            ValueError, TypeError: For configuration outside the ranges above.
        """
        delay_s = _seconds(delay, "delay")
        jitter_code = _jitter(jitter)
        if jitter_code == JITTER_DECORRELATED:
            raise ValueError(
                "jitter must be one of 'full', 'equal', 'proportional', 'none' for a constant "
                "backoff ('decorrelated' grows from the previous delay, which a constant "
                "backoff caps at its delay), got 'decorrelated'"
            )
        factor_f = _factor(factor)
        # The cap is what keeps the other kinds bounded; here it must not clip
        # the upper half of a proportional spread.
        max_ns = _ns(delay_s)
        if jitter_code == JITTER_PROPORTIONAL:
            max_ns = round(max_ns * (1 + factor_f))
        self = cls._build(
            "constant",
            (("delay", delay_s),) + _jitter_settings(jitter, factor_f),
            max_seconds=max_ns / NS_PER_SECOND,
        )
        self._configure(BACKOFF_CONSTANT, _ns(delay_s), max_ns, 1.0, 0, jitter_code, factor_f)
        return self

    @classmethod
    def custom(cls, fn: DelayFunction) -> Backoff:
        """Delays computed by `fn(attempt, outcome)`, in seconds or as a timedelta.

        Args:
            fn: Called before retry `attempt` (1-based) with `outcome`, what
                the last attempt raised or returned; its result is checked
                (finite, >= 0) each time and used as is, without jitter.

        Raises:
            TypeError: When fn is not callable.
        """
        if not callable(fn):
            raise TypeError(
                f"fn must be a callable (attempt, outcome) -> seconds, got {type(fn).__name__}"
            )
        return cls._build("custom", (("fn", fn),), fn=fn)

    @property
    def kind(self) -> BackoffKind:
        """"exponential", "linear", "constant" or "custom"."""
        return self._kind

    @property
    def jitter(self) -> Jitter | None:
        """The jitter's name (None for a custom backoff)."""
        value: Jitter | None = dict(self._settings).get("jitter")
        return value

    @property
    def max(self) -> float | None:
        """The longest delay this backoff returns, in seconds (None for a custom one)."""
        return self._max

    def delay(
        self,
        attempt: int,
        *,
        previous: float | timedelta | None = None,
        outcome: object = None,
    ) -> float:
        """Seconds to wait before retry number `attempt`.

        Jittered backoffs draw a fresh value on every call.

        Args:
            attempt: The retry this delay precedes: 1 for the first retry.
            previous: The delay this backoff returned before the previous
                retry, in seconds; None (or anything below `initial`) for
                the first retry. Only "decorrelated" jitter reads it.
            outcome: What the last attempt raised or returned; only a custom
                backoff reads it.

        Raises:
            ValueError, TypeError: For an attempt that is not an int >= 1, a
                bad `previous`, or a custom fn whose result is not a finite
                number of seconds >= 0 (or a timedelta).
        """
        if type(attempt) is not int or attempt < 1:
            attempt = _config.count(attempt, "attempt", maximum=None)
        fn = self._fn
        if fn is not None:
            return _seconds(fn(attempt, outcome), "fn's result")
        previous_ns = 0 if previous is None else _ns(_seconds(previous, "previous"))
        # Every attempt past 2^64 - 1 has the same delay as that one.
        return self._delay_ns(attempt if attempt <= _U64_MAX else _U64_MAX, previous_ns) / NS_PER_SECOND

    def scaled(self, factor: float) -> Backoff:
        """The same schedule with every duration (initial, max, increment,
        delay) multiplied by `factor`: for runs where time goes faster than
        real time, such as a simulation sped up K times (factor 1 / K).

        Raises:
            ValueError, TypeError: For a factor that is not a finite number > 0,
                for a custom backoff (its function's durations are its own), or
                when a scaled duration leaves the accepted range.
        """
        if isinstance(factor, bool) or not isinstance(factor, (int, float)):
            raise TypeError(f"factor must be a finite number > 0, got {type(factor).__name__}")
        if not (math.isfinite(factor) and factor > 0):
            raise ValueError(f"factor must be a finite number > 0, got {safe_repr(factor)}")
        if self._fn is not None:
            raise ValueError("a custom backoff cannot be scaled: its function returns its own durations")
        settings = {name: value * factor if name in _DURATIONS else value for name, value in self._settings}
        return _restore(self._kind, settings)

    def __setattr__(self, name: str, value: object) -> NoReturn:
        raise AttributeError(f"Backoff is immutable: cannot set {name!r}; build a new one")

    def __delattr__(self, name: str) -> NoReturn:
        raise AttributeError(f"Backoff is immutable: cannot delete {name!r}")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Backoff):
            return NotImplemented
        return self._kind == other._kind and self._settings == other._settings

    def __hash__(self) -> int:
        return hash((self._kind, self._settings))

    def __reduce__(self) -> tuple[Any, ...]:
        return _restore, (self._kind, dict(self._settings))

    def __repr__(self) -> str:
        if self._fn is not None:
            return f"Backoff.custom({safe_repr(self._fn)})"
        settings = ", ".join(f"{name}={value!r}" for name, value in self._settings)
        return f"Backoff.{self._kind}({settings})"


def _jitter_settings(jitter: str, factor: float) -> tuple[tuple[str, Any], ...]:
    # factor only shapes "proportional"; leaving it out elsewhere makes two
    # backoffs that behave alike compare equal.
    if jitter == "proportional":
        return (("jitter", jitter), ("factor", factor))
    return (("jitter", jitter),)
