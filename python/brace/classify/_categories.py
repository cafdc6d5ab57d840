"""The words of classification: what kind of failure (Category), how bad (Severity),
what to do (Strategy), and how each category is treated (Treatment, DEFAULT_TREATMENTS)."""

from __future__ import annotations

import dataclasses
import warnings
import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from brace import _config
from brace._safe import safe_repr, safe_str
from brace.backoff import Backoff


class Category(enum.Enum):
    """What kind of failure an outcome is."""

    TIMEOUT = "timeout"
    RATE_LIMITED = "rate_limited"
    SERVICE_DOWN = "service_down"
    NETWORK_ERROR = "network_error"
    AUTH_EXPIRED = "auth_expired"
    AUTH_INVALID = "auth_invalid"
    PERMISSION_DENIED = "permission_denied"
    NOT_FOUND = "not_found"
    SCHEMA_MISMATCH = "schema_mismatch"
    INTERNAL_ERROR = "internal_error"
    UNKNOWN = "unknown"


class Severity(enum.IntEnum):
    """How bad a failure is, for alerting and escalation."""

    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4


class Strategy(enum.Enum):
    """What to do about a failure."""

    RETRY_WITH_BACKOFF = "retry_with_backoff"
    WAIT_FOR_SERVER = "wait_for_server"
    RETRY_THEN_FALLBACK = "retry_then_fallback"
    REFRESH_AND_RETRY = "refresh_and_retry"
    ADAPT_AND_RETRY = "adapt_and_retry"
    RETRY = "retry"
    ESCALATE = "escalate"


STRATEGY_TEXT: Final = {
    Strategy.RETRY_WITH_BACKOFF: "retry with backoff",
    Strategy.WAIT_FOR_SERVER: "wait for the server's time, then retry",
    Strategy.RETRY_THEN_FALLBACK: "retry, then fall back",
    Strategy.REFRESH_AND_RETRY: "refresh credentials, then retry",
    Strategy.ADAPT_AND_RETRY: "adapt the request, then retry",
    Strategy.RETRY: "retry",
    Strategy.ESCALATE: "escalate",
}


def parse_category(value: object, name: str) -> Category:
    """A Category from itself or its value ("timeout")."""
    return _config.member(Category, value, name)


def parse_categories(value: object, name: str) -> frozenset[Category]:
    """A non-empty set of Categories from one (or its value) or an iterable of them."""
    items = (value,) if isinstance(value, (str, Category)) else value
    if not isinstance(items, Iterable):
        raise TypeError(f"{name} must be a Category, its value, or an iterable of them, got {type(value).__name__}")
    found = frozenset(parse_category(item, name) for item in items)
    if not found:
        raise ValueError(f"{name} must name at least one category")
    return found


def _strategy(value: object) -> Strategy:
    return _config.member(Strategy, value, "strategy")


def _severity(value: object) -> Severity:
    names = ", ".join(repr(member.name) for member in Severity)
    if isinstance(value, Severity):
        return value
    if isinstance(value, str):
        member = Severity.__members__.get(value.upper())
        if member is None:
            raise ValueError(f"severity must be a brace.Severity, 1 to 4 or one of {names}, got {safe_repr(value)}")
        return member
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"severity must be a brace.Severity, 1 to 4 or one of {names}, got {type(value).__name__}")
    if not 1 <= value <= 4:
        raise ValueError(f"severity must be a brace.Severity, 1 to 4 or one of {names}, got {value}")
    return Severity(value)


def parse_flag(value: object, name: str) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__}")
    return value


@dataclass(frozen=True, slots=True)
class Treatment:
    """How a category of failure is handled.

    Attributes:
        transient: Whether the failure is expected to clear by itself.
        retryable: Whether retrying may help (a failure can be retryable
            without being transient: an expired token, once refreshed).
        severity: How bad it is.
        strategy: What to do about it.
        retries: How many more attempts (retries) a failure of this category
            earns within one call, >= 0 (0: none). (`attempts` elsewhere in
            brace counts all attempts, the first included; this counts only
            the ones after it. Its old name `max_attempts` still reads.)
        backoff: The delays between those attempts.
        pushback: Whether to honour the server's wait (Retry-After, ...).

    Raises:
        ValueError, TypeError: For a field outside the ranges above (strategy
            and severity also accept their values: "retry", 3, "HIGH").
    """

    transient: bool
    retryable: bool
    severity: Severity
    strategy: Strategy
    retries: int
    backoff: Backoff
    pushback: bool = True

    @property
    def max_attempts(self) -> int:
        """The old name of `retries` (deprecated)."""
        warnings.warn(RETRIES_RENAMED, DeprecationWarning, stacklevel=2)
        return self.retries

    def __post_init__(self) -> None:
        parse_flag(self.transient, "transient")
        parse_flag(self.retryable, "retryable")
        parse_flag(self.pushback, "pushback")
        # Frozen: the coerced values go in the way dataclasses' own __init__ puts them.
        object.__setattr__(self, "severity", _severity(self.severity))
        object.__setattr__(self, "strategy", _strategy(self.strategy))
        _config.count(self.retries, "retries", minimum=0)
        if not isinstance(self.backoff, Backoff):
            raise TypeError(f"backoff must be a brace.Backoff, got {type(self.backoff).__name__}")


_FIELDS: Final = tuple(f.name for f in dataclasses.fields(Treatment))


def _exponential(initial: float = 1.0) -> Backoff:
    return Backoff.exponential(initial=initial, multiplier=2.0, max=30.0, jitter="full")


def _treatment(transient: bool, retryable: bool, severity: Severity, strategy: Strategy, retries: int,
               initial: float = 1.0) -> Treatment:  # fmt: skip
    return Treatment(transient, retryable, severity, strategy, retries, _exponential(initial), True)


_S = Strategy
def _riding_out(cap: float) -> Backoff:
    """Waits for failures that last seconds (an outage, a throttling window): from 0.5 s,
    doubling up to `cap`, with equal jitter (d/2 + U(0, d/2)) so that callers spread out
    but every wait still covers at least half its nominal time."""
    return Backoff.exponential(initial=0.5, multiplier=2.0, max=cap, jitter="equal")


# Outages and throttling windows last seconds: their categories get many attempts
# and waits that ride out ~10 s at the least (the minimum waits of the first 8
# retries add up to 11.75 s), and the call's healing time is what bounds them.
_RIDE_OUT_ATTEMPTS = 10

DEFAULT_TREATMENTS: Final[Mapping[Category, Treatment]] = MappingProxyType({
    Category.TIMEOUT: _treatment(True, True, Severity.MEDIUM, _S.RETRY_WITH_BACKOFF, 3),
    Category.RATE_LIMITED: Treatment(True, True, Severity.LOW, _S.WAIT_FOR_SERVER, _RIDE_OUT_ATTEMPTS,
                                     _riding_out(8.0), True),
    Category.SERVICE_DOWN: Treatment(True, True, Severity.HIGH, _S.RETRY_THEN_FALLBACK, _RIDE_OUT_ATTEMPTS,
                                     _riding_out(4.0), True),
    Category.NETWORK_ERROR: _treatment(True, True, Severity.MEDIUM, _S.RETRY_WITH_BACKOFF, 3),
    # Retried as soon as the credentials are refreshed: waiting helps nothing.
    Category.AUTH_EXPIRED: _treatment(False, True, Severity.LOW, _S.REFRESH_AND_RETRY, 2, initial=0.1),
    Category.AUTH_INVALID: _treatment(False, False, Severity.CRITICAL, _S.ESCALATE, 0),
    Category.PERMISSION_DENIED: _treatment(False, False, Severity.HIGH, _S.ESCALATE, 0),
    Category.NOT_FOUND: _treatment(False, False, Severity.MEDIUM, _S.ESCALATE, 0),
    Category.SCHEMA_MISMATCH: _treatment(False, True, Severity.HIGH, _S.ADAPT_AND_RETRY, 2),
    # Not promised to heal (a bug does not), but a retry often lands on a healthy instance.
    Category.INTERNAL_ERROR: _treatment(False, True, Severity.MEDIUM, _S.RETRY, 2),
    Category.UNKNOWN: _treatment(False, False, Severity.HIGH, _S.ESCALATE, 0),
})  # fmt: skip
"""The treatment of each category unless an ErrorClassifier overrides it."""


RETRIES_RENAMED = ("max_attempts is deprecated: it is retries now (more attempts after the first; `attempts` "
                   "in brace counts all of them)")  # fmt: skip


def renamed(overrides: Mapping[str, object]) -> dict[str, object]:
    """Treatment overrides with the deprecated name max_attempts read as retries."""
    if "max_attempts" not in overrides:
        return dict(overrides)
    warnings.warn(RETRIES_RENAMED, DeprecationWarning, stacklevel=3)
    if "retries" in overrides:
        raise TypeError("give retries or its deprecated old name max_attempts, not both")
    return {("retries" if key == "max_attempts" else key): value for key, value in overrides.items()}


def overridden(treatment: Treatment, overrides: Mapping[str, object], where: str) -> Treatment:
    """treatment with the fields `overrides` names replaced, validated; errors say `where`."""
    overrides = renamed(overrides)
    unknown = sorted(safe_str(name) for name in overrides if name not in _FIELDS)
    if unknown:
        raise ValueError(f"{where} has no field {', '.join(map(repr, unknown))}; the fields are {', '.join(_FIELDS)}")
    try:
        return dataclasses.replace(treatment, **overrides)  # type: ignore[arg-type]
    except (TypeError, ValueError) as error:
        raise type(error)(f"{where}: {error}") from None
