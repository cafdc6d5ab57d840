"""brace.classify: what kind of failure an error (or a response) is, and how to treat it.

`ErrorClassifier.classify(outcome)` puts what an attempt raised or returned in
one of a few categories (timeout, rate limited, service down, ...) and attaches
the category's treatment: whether the failure is transient, whether retrying
may help, how many more attempts it earns within one call, with which backoff,
and whether the server's own wait (Retry-After and friends) is honoured.

Rules are tried in order, the first that matches decides:

1. the user's rules (`ErrorClassifier.rule(...)`), in the order given;
2. brace's own errors (Timeout, RateLimited, BulkheadFull, CircuitOpen);
3. exceptions of HTTP and data libraries, recognised by duck typing (the
   (top-level module, class name) pairs of the error's MRO, most derived
   first), so brace imports none of them: httpx, httpcore, requests, urllib3,
   aiohttp, urllib, http.client, json, pydantic;
4. the HTTP status of a response found on the outcome (`brace.http_status`);
5. the standard library: TimeoutError, ConnectionError, ssl and socket
   errors, PermissionError, FileNotFoundError and OSError errnos.

When none matches, what the error wraps (a library's wrapped reason), its
`__cause__` and then its `__context__` are classified the same way,
depth-first down the whole chain (each error once, so cycles end); what still
matches nothing is UNKNOWN. Classifying never raises on what it is given.
"""

from __future__ import annotations

import dataclasses
import enum
import errno as _errno
import logging
import math
import re
import socket
import ssl
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from types import MappingProxyType
from typing import Any, Final, NamedTuple, TypeVar, Union

from brace._safe import safe_repr, safe_str, type_name
from brace import _config
from brace.backoff import Backoff, after_server_wait
from brace.errors import BulkheadFull, CircuitOpen, RateLimited, Timeout
from brace.pushback import http_status, server_wait, status_number

__all__ = [
    "DEFAULT_CLASSIFIER",
    "DEFAULT_TREATMENTS",
    "Category",
    "Classification",
    "ErrorClassifier",
    "Rule",
    "Severity",
    "Strategy",
    "Treatment",
]

_log = logging.getLogger("brace")


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


_STRATEGY_TEXT: Final = {
    Strategy.RETRY_WITH_BACKOFF: "retry with backoff",
    Strategy.WAIT_FOR_SERVER: "wait for the server's time, then retry",
    Strategy.RETRY_THEN_FALLBACK: "retry, then fall back",
    Strategy.REFRESH_AND_RETRY: "refresh credentials, then retry",
    Strategy.ADAPT_AND_RETRY: "adapt the request, then retry",
    Strategy.RETRY: "retry",
    Strategy.ESCALATE: "escalate",
}


def _category(value: object, name: str) -> Category:
    """A Category from itself or its value ("timeout")."""
    return _config.member(Category, value, name)


def parse_categories(value: object, name: str) -> frozenset[Category]:
    """A non-empty set of Categories from one (or its value) or an iterable of them."""
    items = (value,) if isinstance(value, (str, Category)) else value
    if not isinstance(items, Iterable):
        raise TypeError(f"{name} must be a Category, its value, or an iterable of them, got {type(value).__name__}")
    found = frozenset(_category(item, name) for item in items)
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


def _flag(value: object, name: str) -> bool:
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
        max_attempts: How many more attempts a failure of this category earns
            within one call, >= 0 (0: none).
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
    max_attempts: int
    backoff: Backoff
    pushback: bool = True

    def __post_init__(self) -> None:
        _flag(self.transient, "transient")
        _flag(self.retryable, "retryable")
        _flag(self.pushback, "pushback")
        # Frozen: the coerced values go in the way dataclasses' own __init__ puts them.
        object.__setattr__(self, "severity", _severity(self.severity))
        object.__setattr__(self, "strategy", _strategy(self.strategy))
        _config.count(self.max_attempts, "max_attempts", minimum=0)
        if not isinstance(self.backoff, Backoff):
            raise TypeError(f"backoff must be a brace.Backoff, got {type(self.backoff).__name__}")


_FIELDS: Final = tuple(f.name for f in dataclasses.fields(Treatment))


def _exponential(initial: float = 1.0) -> Backoff:
    return Backoff.exponential(initial=initial, multiplier=2.0, max=30.0, jitter="full")


def _treatment(transient: bool, retryable: bool, severity: Severity, strategy: Strategy, max_attempts: int,
               initial: float = 1.0) -> Treatment:  # fmt: skip
    return Treatment(transient, retryable, severity, strategy, max_attempts, _exponential(initial), True)


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


def _overridden(treatment: Treatment, overrides: Mapping[str, object], where: str) -> Treatment:
    """treatment with the fields `overrides` names replaced, validated; errors say `where`."""
    unknown = sorted(safe_str(name) for name in overrides if name not in _FIELDS)
    if unknown:
        raise ValueError(f"{where} has no field {', '.join(map(repr, unknown))}; the fields are {', '.join(_FIELDS)}")
    try:
        return dataclasses.replace(treatment, **overrides)  # type: ignore[arg-type]
    except (TypeError, ValueError) as error:
        raise type(error)(f"{where}: {error}") from None


@dataclass(frozen=True, slots=True)
class Classification:
    """What an outcome is and how to treat it: its category plus the category's treatment.

    Attributes:
        category: The kind of failure.
        transient, retryable, severity, strategy, max_attempts, backoff,
            pushback: The treatment (see brace.Treatment), the category's
            with the matching rule's overrides.
        retry_after: Seconds the server asked to wait (Retry-After and the
            other pushback fields), else the retry_after of a brace
            RateLimited, else None (a CircuitOpen's open time is brace's own
            decision, not a wait to honour).
        status: The HTTP status found, or None.
        rule: The name of the rule that decided: "builtin:http-status",
            "builtin:errno", ..., or a user rule's name.
        error: What was classified (not compared: two classifications of
            different errors with the same verdict are equal).
        pushback_ignored: Why the server's wait fields were ignored (more of
            them than brace.pushback.MAX_FIELDS_CHARS), or None.
    """

    category: Category
    transient: bool
    retryable: bool
    severity: Severity
    strategy: Strategy
    max_attempts: int
    backoff: Backoff
    pushback: bool
    retry_after: float | None
    status: int | None
    rule: str
    error: object = field(compare=False, repr=False)
    pushback_ignored: str | None = None

    @property
    def treatment(self) -> Treatment:
        """The treatment applied, as a brace.Treatment."""
        return Treatment(self.transient, self.retryable, self.severity, self.strategy, self.max_attempts,
                         self.backoff, self.pushback)  # fmt: skip

    def delay(self, retry: int, *, previous: float | None = None) -> float:
        """Seconds to wait before retry number `retry` (1 for the first) of this category.

        The server's wait when the treatment honours pushback and the server
        said one (spread over up to 20% more, so that callers told the same wait
        do not return in the same instant), else the category's
        backoff at `retry` (`previous`: the delay before the previous retry of
        the category, for decorrelated jitter).
        """
        if self.pushback and self.retry_after is not None:
            return after_server_wait(self.retry_after)
        return self.backoff.delay(retry, previous=previous, outcome=self.error)

    def describe(self) -> str:
        """One line: the category and what it means, for logs and escalations."""
        facts = [] if self.status is None else [f"HTTP {self.status}"]
        facts.append("transient" if self.transient else "not transient")
        facts.append("retryable" if self.retryable else "not retryable")
        facts.append(f"severity {self.severity.name}")
        parts = [", ".join(facts), _STRATEGY_TEXT[self.strategy]]
        if self.retryable:
            more = self.max_attempts
            parts.append("no more attempts" if more == 0 else f"up to {more} more attempt{'s' if more != 1 else ''}")
        if self.retry_after is not None:
            parts.append(f"server asked {self.retry_after:.1f} s")
        if self.pushback_ignored is not None:
            parts.append(self.pushback_ignored)
        return f"{self.category.name} ({'; '.join(parts)})"


# -- rules ------------------------------------------------------------------------

_MISSING: Final = object()


def _attribute(obj: object, name: str) -> object:
    """getattr that swallows whatever an object we do not own raises."""
    try:
        return getattr(obj, name)
    except Exception:
        return _MISSING


StatusSpec = Union[int, range, Iterable[int]]
ErrnoSpec = Union[int, Iterable[int]]


def _types(value: object) -> tuple[type, ...]:
    accepted = "a type or an iterable of types"
    if isinstance(value, type):
        return (value,)
    if isinstance(value, Iterable) and not isinstance(value, (str, bytes)):
        found = tuple(value)
        if not found:
            raise ValueError(f"types must be {accepted} (at least one), got an empty {type(value).__name__}")
        for item in found:
            if not isinstance(item, type):
                raise TypeError(f"types must be {accepted}, got an item of type {type(item).__name__}")
        return found
    raise TypeError(f"types must be {accepted} or None, got {type(value).__name__}")


def _ints(value: object, name: str, low: int, high: int) -> frozenset[int]:
    accepted = f"an int from {low} to {high}, a range or an iterable of them"
    items = (value,) if isinstance(value, int) else value
    if not isinstance(items, Iterable) or isinstance(items, (str, bytes)):
        raise TypeError(f"{name} must be {accepted}, got {type(value).__name__}")
    found = []
    for item in items:
        if isinstance(item, bool) or not isinstance(item, int):
            raise TypeError(f"{name} must be {accepted}, got an item of type {type(item).__name__}")
        if not low <= item <= high:
            raise ValueError(f"{name} must be {accepted}, got {item}")
        found.append(item)
    if not found:
        raise ValueError(f"{name} must be {accepted} (at least one), got an empty {type(value).__name__}")
    return frozenset(found)


def _message(value: object) -> re.Pattern[str]:
    if isinstance(value, re.Pattern):
        if not isinstance(value.pattern, str):
            raise TypeError("message must be a str pattern (str(error) is searched), got a bytes pattern")
        return value
    if not isinstance(value, str):
        raise TypeError(f"message must be a regular expression (str or re.Pattern), got {type(value).__name__}")
    try:
        return re.compile(value)
    except re.error as error:
        raise ValueError(f"message must be a valid regular expression, got {safe_repr(value)}: {error}") from None


class Rule:
    """One user rule: when an outcome matches, it is of `category`.

    Build rules with `ErrorClassifier.rule(...)` (the same arguments); every
    matcher given must match. Extra keyword arguments override fields of the
    category's treatment for what this rule classifies (`max_attempts=5`).

    Args:
        category: A brace.Category or its value ("rate_limited").
        types: An exception type (or any type, for returned values) or an
            iterable of them: the outcome must be an instance of one.
        predicate: `predicate(outcome) -> bool`. One that raises counts as
            no match (logged once per rule).
        status: The HTTP status: an int, a range or an iterable of ints, 100-599.
        errno: The outcome's `errno`: an int or an iterable of ints.
        message: A regular expression searched in str(outcome).
        name: The rule's name in classifications; default "user:<category>".
        **treatment_overrides: Treatment fields (transient, retryable,
            severity, strategy, max_attempts, backoff, pushback).

    Raises:
        ValueError, TypeError: For no matcher at all, an unknown category or
            field, or a value outside the ranges above.
    """

    __slots__ = ("category", "name", "overrides", "_types", "_predicate", "_statuses", "_errnos", "_message",
                 "_warned")  # fmt: skip

    def __init__(
        self,
        category: Category | str,
        *,
        types: type | Iterable[type] | None = None,
        predicate: Callable[[Any], object] | None = None,
        status: StatusSpec | None = None,
        errno: ErrnoSpec | None = None,
        message: str | re.Pattern[str] | None = None,
        name: str | None = None,
        **treatment_overrides: object,
    ) -> None:
        self.category = _category(category, "category")
        if types is None and predicate is None and status is None and errno is None and message is None:
            raise ValueError("a rule must match on at least one of types, predicate, status, errno, message")
        self._types = None if types is None else _types(types)
        if predicate is not None and not callable(predicate):
            raise TypeError(f"predicate must be callable or None, got {type(predicate).__name__}")
        self._predicate = predicate
        self._statuses = None if status is None else _ints(status, "status", 100, 599)
        self._errnos = None if errno is None else _ints(errno, "errno", 0, 2**31 - 1)
        self._message = None if message is None else _message(message)
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name must be a str or None, got {type(name).__name__}")
        self.name: str = f"user:{self.category.value}" if name is None else name
        checked = _overridden(DEFAULT_TREATMENTS[self.category], treatment_overrides, f"rule {self.name!r}")
        # The coerced values ("retry" -> Strategy.RETRY), so applying them cannot fail later.
        self.overrides: Mapping[str, object] = MappingProxyType(
            {key: getattr(checked, key) for key in treatment_overrides}
        )
        self._warned = False

    def matches(self, outcome: object, status: int | None = None) -> bool:
        """Whether `outcome` (whose HTTP status is `status`) matches every matcher given."""
        if self._types is not None and not isinstance(outcome, self._types):
            return False
        if self._statuses is not None and status not in self._statuses:
            return False
        if self._errnos is not None:
            number = _attribute(outcome, "errno")
            if not isinstance(number, int) or number not in self._errnos:
                return False
        if self._message is not None:
            try:
                text = str(outcome)
            except Exception:
                return False
            if not self._message.search(text):
                return False
        if self._predicate is not None:
            try:
                return bool(self._predicate(outcome))
            except Exception:
                if not self._warned:
                    self._warned = True
                    _log.exception("brace: the predicate of classifier rule %r raised; it counts as no match",
                                   self.name)
                return False
        return True

    def __repr__(self) -> str:
        shown = [repr(self.category.value)]
        matchers: tuple[tuple[str, object], ...] = (
            ("types", self._types and tuple(t.__name__ for t in self._types)),
            ("status", self._statuses and sorted(self._statuses)),
            ("errno", self._errnos and sorted(self._errnos)),
            ("message", self._message and self._message.pattern),
            ("predicate", self._predicate),
        )
        for label, value in matchers:
            if value is not None:
                shown.append(f"{label}={safe_repr(value)}")
        shown.append(f"name={self.name!r}")
        shown.extend(f"{key}={safe_repr(value)}" for key, value in self.overrides.items())
        return f"Rule({', '.join(shown)})"


# -- the built-in rules -----------------------------------------------------------


class _Wrapped(enum.Enum):
    """Library-table entries that are not a category."""

    STATUS = "status"  # decided by the HTTP status rules
    REASON = "reason"  # classify the error it wraps: .reason, else args[0]
    RESPONSES = "responses"  # urllib3's "too many 503 error responses"


_C = Category
_LibraryEntry = Union[Category, _Wrapped]
# (top-level module, class name) -> what it is. The most derived class of an
# error's MRO found here wins, so a specific class listed overrides its base:
# requests.ConnectTimeout is a timeout although it is also a ConnectionError,
# and urllib3's NewConnectionError a network error although it derives from
# ConnectTimeoutError.
_LIBRARY: Final[Mapping[tuple[str, str], _LibraryEntry]] = MappingProxyType({
    ("httpx", "TimeoutException"): _C.TIMEOUT,
    ("httpx", "NetworkError"): _C.NETWORK_ERROR,
    ("httpx", "RemoteProtocolError"): _C.NETWORK_ERROR,
    ("httpx", "ProxyError"): _C.NETWORK_ERROR,
    ("httpx", "DecodingError"): _C.SCHEMA_MISMATCH,
    ("httpx", "HTTPStatusError"): _Wrapped.STATUS,
    ("httpcore", "TimeoutException"): _C.TIMEOUT,
    ("httpcore", "NetworkError"): _C.NETWORK_ERROR,
    ("httpcore", "RemoteProtocolError"): _C.NETWORK_ERROR,
    ("httpcore", "ProxyError"): _C.NETWORK_ERROR,
    ("requests", "ConnectTimeout"): _C.TIMEOUT,
    ("requests", "Timeout"): _C.TIMEOUT,
    ("requests", "ConnectionError"): _C.NETWORK_ERROR,
    ("requests", "ChunkedEncodingError"): _C.NETWORK_ERROR,
    ("requests", "ContentDecodingError"): _C.SCHEMA_MISMATCH,
    ("requests", "JSONDecodeError"): _C.SCHEMA_MISMATCH,
    ("requests", "InvalidJSONError"): _C.SCHEMA_MISMATCH,
    ("requests", "HTTPError"): _Wrapped.STATUS,
    ("requests", "RetryError"): _Wrapped.REASON,
    ("urllib3", "NewConnectionError"): _C.NETWORK_ERROR,
    ("urllib3", "TimeoutError"): _C.TIMEOUT,
    ("urllib3", "EmptyPoolError"): _C.TIMEOUT,
    ("urllib3", "ProtocolError"): _C.NETWORK_ERROR,
    ("urllib3", "ProxyError"): _C.NETWORK_ERROR,
    ("urllib3", "SSLError"): _C.NETWORK_ERROR,
    ("urllib3", "IncompleteRead"): _C.NETWORK_ERROR,
    ("urllib3", "DecodeError"): _C.SCHEMA_MISMATCH,
    ("urllib3", "MaxRetryError"): _Wrapped.REASON,
    ("urllib3", "ResponseError"): _Wrapped.RESPONSES,
    ("aiohttp", "ServerTimeoutError"): _C.TIMEOUT,
    ("aiohttp", "ClientConnectorCertificateError"): _C.AUTH_INVALID,
    ("aiohttp", "ServerFingerprintMismatch"): _C.AUTH_INVALID,
    ("aiohttp", "ClientConnectionError"): _C.NETWORK_ERROR,
    ("aiohttp", "ClientPayloadError"): _C.NETWORK_ERROR,
    ("aiohttp", "ContentTypeError"): _C.SCHEMA_MISMATCH,
    ("aiohttp", "ClientResponseError"): _Wrapped.STATUS,
    ("urllib", "HTTPError"): _Wrapped.STATUS,
    ("urllib", "URLError"): _Wrapped.REASON,
    ("http", "IncompleteRead"): _C.NETWORK_ERROR,
    ("http", "RemoteDisconnected"): _C.NETWORK_ERROR,
    ("json", "JSONDecodeError"): _C.SCHEMA_MISMATCH,
    ("simplejson", "JSONDecodeError"): _C.SCHEMA_MISMATCH,
    ("pydantic", "ValidationError"): _C.SCHEMA_MISMATCH,
    ("pydantic_core", "ValidationError"): _C.SCHEMA_MISMATCH,
    # Python 3.10, where these are not yet the builtin TimeoutError.
    ("asyncio", "TimeoutError"): _C.TIMEOUT,
    ("concurrent", "TimeoutError"): _C.TIMEOUT,
})  # fmt: skip

_TOO_MANY_RESPONSES = re.compile(r"too many ([1-5][0-9]{2}) error responses")

_STATUSES: Final[Mapping[int, Category]] = MappingProxyType({
    400: _C.SCHEMA_MISMATCH, 401: _C.AUTH_EXPIRED, 403: _C.PERMISSION_DENIED, 404: _C.NOT_FOUND,
    405: _C.SCHEMA_MISMATCH, 406: _C.SCHEMA_MISMATCH, 407: _C.AUTH_INVALID, 408: _C.TIMEOUT,
    # 409 Conflict, 423 Locked: a concurrent writer, which may be done on the next try.
    409: _C.INTERNAL_ERROR, 410: _C.NOT_FOUND, 411: _C.SCHEMA_MISMATCH, 412: _C.SCHEMA_MISMATCH,
    413: _C.SCHEMA_MISMATCH, 414: _C.SCHEMA_MISMATCH, 415: _C.SCHEMA_MISMATCH, 422: _C.SCHEMA_MISMATCH,
    423: _C.INTERNAL_ERROR, 425: _C.NETWORK_ERROR, 429: _C.RATE_LIMITED, 431: _C.SCHEMA_MISMATCH,
    500: _C.INTERNAL_ERROR, 501: _C.UNKNOWN, 502: _C.SERVICE_DOWN, 503: _C.SERVICE_DOWN,
    504: _C.TIMEOUT, 505: _C.UNKNOWN, 511: _C.AUTH_INVALID,
})  # fmt: skip

_ERRNOS: Final[Mapping[int, Category]] = MappingProxyType({
    number: category
    for names, category in (
        (("ETIMEDOUT",), _C.TIMEOUT),
        (("ECONNRESET", "ECONNREFUSED", "ECONNABORTED", "EPIPE", "ENETUNREACH", "EHOSTUNREACH", "ENETDOWN",
          "EHOSTDOWN", "ENETRESET", "EADDRNOTAVAIL"), _C.NETWORK_ERROR),
        (("EACCES", "EPERM"), _C.PERMISSION_DENIED),
        (("ENOENT",), _C.NOT_FOUND),
    )
    for name in names
    # Not every platform has every errno.
    if isinstance(number := getattr(_errno, name, None), int)
})  # fmt: skip

# Walking what an error wraps (reasons, causes, contexts) ends at the end of
# the chain or at an error seen before (a cycle). This bound is only for
# chains made up as they are read (a `reason` property returning a new error
# each time), which never end: no chain raised by real code is this long, and
# walking one costs a few microseconds per error.
_MAX_ERRORS = 100_000


def _status_category(status: int, refreshed: bool) -> Category:
    if status == 401 and refreshed:
        return _C.AUTH_INVALID  # credentials refreshed during this call were refused too
    category = _STATUSES.get(status)
    if category is not None:
        return category
    return _C.INTERNAL_ERROR if 500 <= status <= 599 else _C.UNKNOWN


def _status(outcome: object) -> int | None:
    """The HTTP status on outcome: its response's, else an exception's own status attribute."""
    status = http_status(outcome)
    if status is not None:
        return status
    # Client libraries' own errors often carry the status without the response
    # (an OSError's errno-like fields are not statuses).
    if isinstance(outcome, BaseException) and not isinstance(outcome, OSError):
        if _attribute(outcome, "headers") is not _MISSING:
            return None
        for name in ("status_code", "status"):
            status = status_number(_attribute(outcome, name), 599, text=False)
            if status is not None:
                return status
    return None


def _library(error: BaseException) -> _LibraryEntry | None:
    """The library-table entry of the most derived class of error's MRO that has one."""
    mro = _attribute(type(error), "__mro__")
    if not isinstance(mro, tuple):
        return None
    for cls in mro:
        module, name = _attribute(cls, "__module__"), _attribute(cls, "__name__")
        if isinstance(module, str) and isinstance(name, str):
            entry = _LIBRARY.get((module.partition(".")[0], name))
            if entry is not None:
                return entry
    return None


def _wrapped(error: BaseException) -> BaseException | None:
    """The error a wrapper holds: urllib3's MaxRetryError.reason, urllib's URLError.reason, args[0]."""
    reason = _attribute(error, "reason")
    if isinstance(reason, BaseException):
        return reason
    args = _attribute(error, "args")
    if isinstance(args, tuple) and args and isinstance(args[0], BaseException):
        return args[0]
    return None


def _links(error: BaseException) -> list[BaseException]:
    """What error points at: its cause, its context (in that order)."""
    found = []
    for name in ("__cause__", "__context__"):
        link = _attribute(error, name)
        if isinstance(link, BaseException):
            found.append(link)
    return found


def _cert_failure(error: BaseException) -> bool:
    """Whether a certificate verification failure is among what error wraps."""
    stack: list[BaseException] = [error]
    seen: dict[int, BaseException] = {}  # holds what it saw, so that no id is reused meanwhile
    while stack and len(seen) < _MAX_ERRORS:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen[id(node)] = node
        if isinstance(node, ssl.SSLCertVerificationError):
            return True
        stack.extend(_links(node))
        inner = _wrapped(node)
        if inner is not None:
            stack.append(inner)
    return False


def _stdlib(error: BaseException) -> tuple[Category, str] | None:
    if isinstance(error, ssl.SSLCertVerificationError):
        return _C.AUTH_INVALID, "builtin:ssl"
    if isinstance(error, ssl.SSLError):
        return _C.NETWORK_ERROR, "builtin:ssl"
    if isinstance(error, (socket.gaierror, socket.herror)):
        return _C.NETWORK_ERROR, "builtin:stdlib"
    if isinstance(error, TimeoutError):
        return _C.TIMEOUT, "builtin:stdlib"
    if isinstance(error, ConnectionError):
        return _C.NETWORK_ERROR, "builtin:stdlib"
    if isinstance(error, PermissionError):
        return _C.PERMISSION_DENIED, "builtin:stdlib"
    if isinstance(error, FileNotFoundError):
        return _C.NOT_FOUND, "builtin:stdlib"
    if isinstance(error, OSError):
        number = _attribute(error, "errno")
        if isinstance(number, int):
            category = _ERRNOS.get(number)
            if category is not None:
                return category, "builtin:errno"
    return None


class _Match(NamedTuple):
    category: Category
    rule: str
    node: object  # what matched: the outcome or an error it wraps
    status: int | None
    overrides: Mapping[str, object]


_NO_OVERRIDES: Final[Mapping[str, object]] = MappingProxyType({})


# -- the classifier ---------------------------------------------------------------


class ErrorClassifier:
    """Classifies what an attempt raised or returned into a Category with its treatment.

    The rules and their order are in the module's docstring: the user's rules
    first, then (with `builtin`) brace's errors, HTTP/data libraries, HTTP
    statuses and the standard library, then the cause chain, then UNKNOWN.
    Thread-safe: rules can be added while other threads classify.

    Args:
        rules: User rules (see `ErrorClassifier.rule`), tried first, in order.
        treatments: Overrides of DEFAULT_TREATMENTS, by Category (or its value):
            a Treatment, or a mapping of the fields to change
            ({"max_attempts": 5}).
        builtin: Whether the built-in rules run after the user's.
        pushback_cap: The longest server-asked wait reported in
            `Classification.retry_after`, seconds or timedelta (longer waits
            are shortened to it).

    Raises:
        ValueError, TypeError: For an unknown category or treatment field, or
            a value outside the ranges of brace.Treatment.
    """

    __slots__ = ("_rules", "_treatments", "_builtin", "_pushback_cap", "_lock")

    def __init__(
        self,
        *,
        rules: Iterable[Rule] = (),
        treatments: Mapping[Category | str, Treatment | Mapping[str, object]] | None = None,
        builtin: bool = True,
        pushback_cap: float | timedelta = 300.0,
    ) -> None:
        if not isinstance(rules, Iterable) or isinstance(rules, Rule):
            raise TypeError(f"rules must be an iterable of brace.Rule, got {type(rules).__name__}")
        found = tuple(rules)
        for rule in found:
            if not isinstance(rule, Rule):
                raise TypeError(f"rules must be an iterable of brace.Rule, got an item of type {type(rule).__name__}")
        self._rules = found
        self._treatments = dict(DEFAULT_TREATMENTS)
        if treatments is not None:
            if not isinstance(treatments, Mapping):
                raise TypeError(f"treatments must be a mapping of Category to Treatment or None, "
                                f"got {type(treatments).__name__}")  # fmt: skip
            for key, value in treatments.items():
                category = _category(key, "treatments' keys")
                where = f"treatments[{category.value!r}]"
                if isinstance(value, Treatment):
                    self._treatments[category] = value
                elif isinstance(value, Mapping):
                    self._treatments[category] = _overridden(self._treatments[category], value, where)
                else:
                    raise TypeError(f"{where} must be a brace.Treatment or a mapping of its fields, "
                                    f"got {type(value).__name__}")  # fmt: skip
        self._builtin = _flag(builtin, "builtin")
        self._pushback_cap = _config.positive_duration(pushback_cap, "pushback_cap")
        self._lock = threading.Lock()

    rule = staticmethod(Rule)
    """Builds a brace.Rule: `ErrorClassifier.rule(category, *, types=None, predicate=None,
    status=None, errno=None, message=None, name=None, **treatment_overrides)`."""

    def add_rule(self, rule: Rule) -> None:
        """Appends a rule after the existing user rules (before the built-in ones)."""
        if not isinstance(rule, Rule):
            raise TypeError(f"rule must be a brace.Rule, got {type(rule).__name__}")
        with self._lock:
            # A new tuple, so a classify() running now keeps reading the old one.
            self._rules = self._rules + (rule,)

    @property
    def rules(self) -> tuple[Rule, ...]:
        """The user rules, in order."""
        return self._rules

    def treatment(self, category: Category | str) -> Treatment:
        """The treatment of `category` (a Category or its value) in this classifier."""
        return self._treatments[_category(category, "category")]

    def is_failure(self, result: object) -> bool:
        """Whether a returned value is a failure: a response with an HTTP status >= 400."""
        try:
            # Plain values (most results) stop here, without the cost of a failed lookup.
            if getattr(result, "headers", None) is None and getattr(result, "response", None) is None:
                return False
        except Exception:
            return False
        status = http_status(result)
        return status is not None and status >= 400

    def classify(self, outcome: object, *, refreshed: bool = False) -> Classification:
        """The category and treatment of what an attempt raised or returned.

        Args:
            outcome: An exception, or a returned value (a response).
            refreshed: Whether credentials were refreshed during this call:
                a 401 is then AUTH_INVALID instead of AUTH_EXPIRED.

        Returns:
            A Classification; UNKNOWN when nothing matched. Never raises.
        """
        _flag(refreshed, "refreshed")
        try:
            match = self._find(outcome, refreshed)
            if match is None:
                match = _Match(_C.UNKNOWN, "builtin:unknown", outcome, _status(outcome), _NO_OVERRIDES)
            return self._verdict(match, outcome)
        except Exception:
            # Every access above is guarded; this is for what no guard foresaw
            # (an __class__ property that raises inside isinstance, say).
            _log.debug("brace: classifying %s failed; it is UNKNOWN", type_name(outcome), exc_info=True)
            return self._verdict(_Match(_C.UNKNOWN, "builtin:unknown", outcome, None, _NO_OVERRIDES), outcome,
                                 safe=True)  # fmt: skip

    def _find(self, outcome: object, refreshed: bool) -> _Match | None:
        """Depth-first over outcome, then what it wraps (causes, contexts, reasons)."""
        rules = self._rules
        stack: list[object] = [outcome]
        seen: dict[int, object] = {}  # holds what it saw, so that no id is reused meanwhile
        while stack and len(seen) < _MAX_ERRORS:
            node = stack.pop()
            if id(node) in seen:
                continue
            seen[id(node)] = node
            match, inner = self._match(node, rules, refreshed)
            if match is not None:
                return match
            if isinstance(node, BaseException):
                # Popped in reverse: what it wraps first, then its cause, then its context.
                stack.extend(reversed(_links(node)))
                if inner is not None:
                    stack.append(inner)
        return None

    def _match(self, node: object, rules: tuple[Rule, ...], refreshed: bool) -> tuple[_Match | None, object]:
        """(the match of node, None) or (None, an error node wraps that should be tried next)."""
        status = _status(node)
        for rule in rules:
            if rule.matches(node, status):
                return _Match(rule.category, rule.name, node, status, rule.overrides), None
        if not self._builtin:
            return None, None
        if isinstance(node, (Timeout, RateLimited, BulkheadFull, CircuitOpen)):
            category = (_C.TIMEOUT if isinstance(node, Timeout) else
                        _C.SERVICE_DOWN if isinstance(node, CircuitOpen) else _C.RATE_LIMITED)  # fmt: skip
            return _Match(category, "builtin:brace", node, status, _NO_OVERRIDES), None
        inner = None
        if isinstance(node, BaseException):
            entry = _library(node)
            if isinstance(entry, Category):
                if entry is _C.NETWORK_ERROR and _cert_failure(node):
                    return _Match(_C.AUTH_INVALID, "builtin:ssl", node, status, _NO_OVERRIDES), None
                return _Match(entry, "builtin:library", node, status, _NO_OVERRIDES), None
            if entry is _Wrapped.REASON:
                inner = _wrapped(node)
            elif entry is _Wrapped.RESPONSES and status is None:
                found = _TOO_MANY_RESPONSES.search(safe_str(node))
                status = None if found is None else int(found[1])
        # An exception whose response succeeded says nothing by its status (a
        # parse error raised on a 200): what it wraps may.
        if status is not None and (status >= 400 or not isinstance(node, BaseException)):
            return _Match(_status_category(status, refreshed), "builtin:http-status", node, status, _NO_OVERRIDES), None
        if isinstance(node, BaseException):
            found_stdlib = _stdlib(node)
            if found_stdlib is not None:
                return _Match(found_stdlib[0], found_stdlib[1], node, status, _NO_OVERRIDES), None
        return None, inner

    def _verdict(self, match: _Match, outcome: object, *, safe: bool = False) -> Classification:
        treatment = self._treatments[match.category]
        if match.overrides:
            treatment = dataclasses.replace(treatment, **match.overrides)  # type: ignore[arg-type]
        retry_after, ignored = (None, None) if safe else self._retry_after(match.node)
        return Classification(
            category=match.category,
            transient=treatment.transient,
            retryable=treatment.retryable,
            severity=treatment.severity,
            strategy=treatment.strategy,
            max_attempts=treatment.max_attempts,
            backoff=treatment.backoff,
            pushback=treatment.pushback,
            retry_after=retry_after,
            status=match.status,
            rule=match.rule,
            error=outcome,
            pushback_ignored=ignored,
        )

    def _retry_after(self, node: object) -> tuple[float | None, str | None]:
        """The wait to honour, and why the server's wait fields were ignored (or None)."""
        delay, ignored = server_wait(node, cap=self._pushback_cap)
        if delay is not None:
            return delay, None
        # A limiter's wait is exact and short-lived: honour it. A breaker's open
        # time is not the server asking for a pause but brace's own decision to
        # stop calling: waiting it out would hold every call for up to a minute.
        if isinstance(node, RateLimited):
            wait = _attribute(node, "retry_after")
            if isinstance(wait, (int, float)) and not isinstance(wait, bool) and math.isfinite(wait) and wait >= 0:
                return min(float(wait), self._pushback_cap), ignored
        return None, ignored

    def __repr__(self) -> str:
        changed = sorted(c.value for c, t in self._treatments.items() if t != DEFAULT_TREATMENTS[c])
        return (f"ErrorClassifier(rules={list(self._rules)!r}, treatments_changed={changed!r}, "
                f"builtin={self._builtin!r})")  # fmt: skip


DEFAULT_CLASSIFIER: Final = ErrorClassifier()
"""A classifier with the built-in rules and the default treatments, shared by default."""
