"""brace.classify: what kind of failure an error (or a response) is, and how to treat it.

`ErrorClassifier.classify(outcome)` puts what an attempt raised or returned in
one of a few categories (timeout, rate limited, service down, ...) and attaches
the category's treatment: whether the failure is transient, whether retrying
may help, how many more attempts it earns within one call, with which backoff,
and whether the server's own wait (Retry-After and friends) is honoured.

Rules are tried in order, the first that matches decides:

1. the user's rules (`ErrorClassifier.rule(...)`), in the order given;
2. brace's own errors (AttemptTimeout, RateLimited, BulkheadFull, CircuitOpen);
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
import logging
import math
import threading
from collections.abc import Iterable, Mapping
from datetime import timedelta
from types import MappingProxyType
from typing import Final, NamedTuple

from brace import _config
from brace._safe import safe_str, type_name
from brace.classify._categories import DEFAULT_TREATMENTS, Category, Treatment, overridden, parse_category, parse_flag
from brace.classify._classification import Classification
from brace.classify._recognize import (
    MAX_ERRORS,
    TOO_MANY_RESPONSES,
    Wrapped,
    attribute,
    cert_failure,
    library_entry,
    links,
    status_category,
    status_of,
    stdlib_category,
    wrapped,
)
from brace.classify._rules import Rule
from brace.errors import BulkheadFull, CircuitOpen, RateLimited, AttemptTimeout
from brace.pushback import http_status, server_wait

_log = logging.getLogger("brace")


class _Match(NamedTuple):
    category: Category
    rule: str
    node: object  # what matched: the outcome or an error it wraps
    status: int | None
    overrides: Mapping[str, object]


_NO_OVERRIDES: Final[Mapping[str, object]] = MappingProxyType({})


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
            ({"retries": 5}).
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
                category = parse_category(key, "treatments' keys")
                where = f"treatments[{category.value!r}]"
                if isinstance(value, Treatment):
                    self._treatments[category] = value
                elif isinstance(value, Mapping):
                    self._treatments[category] = overridden(self._treatments[category], value, where)
                else:
                    raise TypeError(f"{where} must be a brace.Treatment or a mapping of its fields, "
                                    f"got {type(value).__name__}")  # fmt: skip
        self._builtin = parse_flag(builtin, "builtin")
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
        return self._treatments[parse_category(category, "category")]

    @property
    def _brace_fails_from_status(self) -> int:
        """is_failure judges a response by its status alone: 400 (brace._stages.status_threshold),
        unless a subclass judges otherwise (0)."""
        return 400 if type(self).is_failure is ErrorClassifier.is_failure else 0

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
        parse_flag(refreshed, "refreshed")
        try:
            match = self._find(outcome, refreshed)
            if match is None:
                match = _Match(Category.UNKNOWN, "builtin:unknown", outcome, status_of(outcome), _NO_OVERRIDES)
            return self._verdict(match, outcome)
        except Exception:
            # Every access above is guarded; this is for what no guard foresaw
            # (an __class__ property that raises inside isinstance, say).
            _log.debug("brace: classifying %s failed; it is UNKNOWN", type_name(outcome), exc_info=True)
            return self._verdict(_Match(Category.UNKNOWN, "builtin:unknown", outcome, None, _NO_OVERRIDES), outcome,
                                 safe=True)  # fmt: skip

    def _find(self, outcome: object, refreshed: bool) -> _Match | None:
        """Depth-first over outcome, then what it wraps (causes, contexts, reasons)."""
        rules = self._rules
        stack: list[object] = [outcome]
        seen: dict[int, object] = {}  # holds what it saw, so that no id is reused meanwhile
        while stack and len(seen) < MAX_ERRORS:
            node = stack.pop()
            if id(node) in seen:
                continue
            seen[id(node)] = node
            match, inner = self._match(node, rules, refreshed)
            if match is not None:
                return match
            if isinstance(node, BaseException):
                # Popped in reverse: what it wraps first, then its cause, then its context.
                stack.extend(reversed(links(node)))
                if inner is not None:
                    stack.append(inner)
        return None

    def _match(self, node: object, rules: tuple[Rule, ...], refreshed: bool) -> tuple[_Match | None, object]:
        """(the match of node, None) or (None, an error node wraps that should be tried next)."""
        status = status_of(node)
        for rule in rules:
            if rule.matches(node, status):
                return _Match(rule.category, rule.name, node, status, rule.overrides), None
        if not self._builtin:
            return None, None
        if isinstance(node, (AttemptTimeout, RateLimited, BulkheadFull, CircuitOpen)):
            category = (Category.TIMEOUT if isinstance(node, AttemptTimeout) else
                        Category.SERVICE_DOWN if isinstance(node, CircuitOpen) else Category.RATE_LIMITED)  # fmt: skip
            return _Match(category, "builtin:brace", node, status, _NO_OVERRIDES), None
        inner = None
        if isinstance(node, BaseException):
            entry = library_entry(node)
            if isinstance(entry, Category):
                if entry is Category.NETWORK_ERROR and cert_failure(node):
                    return _Match(Category.AUTH_INVALID, "builtin:ssl", node, status, _NO_OVERRIDES), None
                return _Match(entry, "builtin:library", node, status, _NO_OVERRIDES), None
            if entry is Wrapped.REASON:
                inner = wrapped(node)
            elif entry is Wrapped.RESPONSES and status is None:
                found = TOO_MANY_RESPONSES.search(safe_str(node))
                status = None if found is None else int(found[1])
        # An exception whose response succeeded says nothing by its status (a
        # parse error raised on a 200): what it wraps may.
        if status is not None and (status >= 400 or not isinstance(node, BaseException)):
            return _Match(status_category(status, refreshed), "builtin:http-status", node, status, _NO_OVERRIDES), None
        if isinstance(node, BaseException):
            found_stdlib = stdlib_category(node)
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
            retries=treatment.retries,
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
            wait = attribute(node, "retry_after")
            if isinstance(wait, (int, float)) and not isinstance(wait, bool) and math.isfinite(wait) and wait >= 0:
                return min(float(wait), self._pushback_cap), ignored
        return None, ignored

    def __repr__(self) -> str:
        changed = sorted(c.value for c, t in self._treatments.items() if t != DEFAULT_TREATMENTS[c])
        return (f"ErrorClassifier(rules={list(self._rules)!r}, treatments_changed={changed!r}, "
                f"builtin={self._builtin!r})")  # fmt: skip


DEFAULT_CLASSIFIER: Final = ErrorClassifier()
"""A classifier with the built-in rules and the default treatments, shared by default."""
