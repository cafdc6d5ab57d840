"""What a fallback serves (brace.Degraded) and what it tells its listeners (FallbackEvent).

Below the fallback and the engine, which both hand out Degraded values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, Literal, NamedTuple, TypeVar

from brace._safe import safe_repr

if TYPE_CHECKING:
    from brace.classify import Classification

__all__ = ["EVENT_KINDS", "Degraded", "EventKind", "FallbackEvent"]

T = TypeVar("T")

EventKind = Literal["served", "failed"]
EVENT_KINDS = ("served", "failed")


class FallbackEvent(NamedTuple):
    """What a fallback's listener receives.

    Attributes:
        kind: "served" (an alternative stood in for the failed call) or
            "failed" (none could: the caller got FallbackFailed).
        name: The fallback's name, or None.
        at: When it happened, seconds on brace's clock.
        operation: The operation's name.
        source: Where the value came from (Degraded.source), or None.
        error: The failure it stood in for.
        failures: The alternatives that could not serve, and why.
    """

    kind: EventKind
    name: str | None
    at: float
    operation: str
    source: str | None
    error: BaseException
    failures: tuple[str, ...]


@dataclass(frozen=True, slots=True, repr=False)
class Degraded(Generic[T]):
    """A value that stands in for an operation's result, and where it came from.

    Attributes:
        value: The value served.
        source: Where it came from: "fallback:<name>" (an alternative of a
            Fallback), "cache" (a cached result), "decision:use" or
            "decision:skip" (an escalation's decision).
        error: The failure it stands in for, or None.
        classification: That failure's brace.Classification, or None when it
            was not classified (e.g. a Fallback used on its own).
        age: Seconds since a cached value was stored (cache only), else None.
        failures: The alternatives tried before this one, one line each: its
            name and why it produced nothing.
    """

    value: T
    source: str
    error: BaseException | None = None
    classification: Classification | None = None
    age: float | None = None
    failures: tuple[str, ...] = ()

    def __repr__(self) -> str:
        parts = [safe_repr(self.value), f"source={self.source!r}"]
        if self.age is not None:
            parts.append(f"age={self.age:.6g}")
        if self.error is not None:
            parts.append(f"error={safe_repr(self.error)}")
        if self.classification is not None:
            parts.append(f"category={self.classification.category.value!r}")
        if self.failures:
            parts.append(f"failures={self.failures!r}")
        return f"Degraded({', '.join(parts)})"
