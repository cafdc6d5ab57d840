"""Rule: a user's rule, matching outcomes by type, predicate, HTTP status, errno or message."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Any, Union

from brace._safe import safe_repr
from brace.classify._categories import DEFAULT_TREATMENTS, Category, overridden, parse_category, renamed
from brace.classify._recognize import attribute

_log = logging.getLogger("brace")

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
    category's treatment for what this rule classifies (`retries=5`).

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
            severity, strategy, retries, backoff, pushback).

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
        self.category = parse_category(category, "category")
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
        treatment_overrides = renamed(treatment_overrides)
        checked = overridden(DEFAULT_TREATMENTS[self.category], treatment_overrides, f"rule {self.name!r}")
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
            number = attribute(outcome, "errno")
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
