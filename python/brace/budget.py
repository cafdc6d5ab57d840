"""brace.RetryBudget: Finagle's retry budget, kept in the C core."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Callable, ClassVar, Literal, NamedTuple

from brace._safe import safe_repr
from brace import _config, _slots, _stores
from brace._core import (
    BUDGET_BUCKETS,
    BUDGET_MIN_PER_SECOND_MAX,
    BUDGET_RATIO_MAX,
    BUDGET_TOKEN,
    BUDGET_TTL_MAX,
    BUDGET_TTL_MIN,
    RetryBudgetCore,
    now_ns,
)
from brace._listeners import Listeners, Observable

__all__ = ["RetryBudget", "RetryBudgetEvent"]

# The core keeps the balance in milli-tokens: a withdrawal costs BUDGET_TOKEN.
_MILLI = BUDGET_TOKEN
_RATIO_MIN = 1 / _MILLI
_RATIO_MAX = BUDGET_RATIO_MAX / _MILLI
_TTL_MIN = BUDGET_TTL_MIN / _config.NS_PER_SECOND
_TTL_MAX = BUDGET_TTL_MAX / _config.NS_PER_SECOND


EventKind = Literal["exhausted"]
_EVENT_KINDS = ("exhausted",)


class RetryBudgetEvent(NamedTuple):
    """What a budget's listener receives.

    Attributes:
        kind: "exhausted": a withdrawal was refused, so a retry was not made.
        name: The budget's name, or None.
        at: When it happened, seconds on brace's clock.
        balance: Tokens left then (below one).
    """

    kind: EventKind
    name: str | None
    at: float
    balance: float


Listener = Callable[[RetryBudgetEvent], object]


def _ratio_milli(value: object) -> int:
    """Milli-tokens per deposit from `ratio`: a finite number from 0.001 to 1000."""
    accepted = f"a finite number from {_RATIO_MIN:g} to {_RATIO_MAX:g} (retries per call)"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"ratio must be {accepted}, got {type(value).__name__}")
    if not math.isfinite(value) or not _RATIO_MIN <= value <= _RATIO_MAX:
        raise ValueError(f"ratio must be {accepted}, got {safe_repr(value)}")
    return round(value * _MILLI)


def _ttl_ns(value: object) -> int:
    """Nanoseconds from `ttl`: seconds (float) or a timedelta, from 1 ms to 1 hour."""
    accepted = f"a finite number of seconds from {_TTL_MIN:g} to {_TTL_MAX:g}"
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        raise TypeError(f"ttl must be seconds (float) or a timedelta, got {type(value).__name__}")
    if not math.isfinite(seconds) or not _TTL_MIN <= seconds <= _TTL_MAX:
        raise ValueError(f"ttl must be {accepted}, got {safe_repr(value)}")
    return round(seconds * _config.NS_PER_SECOND)


class RetryBudget(RetryBudgetCore, Observable[RetryBudgetEvent]):
    """A retry budget (Finagle's): retries may add at most `ratio` to the calls.

    Every call deposits `ratio` tokens; every retry withdraws one, and is
    allowed only while the balance covers it. Deposits and withdrawals both
    expire after `ttl`, and `min_per_second` retries per second are always
    allowed, so a quiet service can still retry:

        balance = min_per_second * ttl + ratio * calls - retries   (over the last ttl)

    With the defaults, a burst of failures may be retried about 100 times,
    and after that retries are held to 20% of the calls: when a dependency
    fails outright, retries stop multiplying its load.

    The window moves in steps of `ttl / 10` (the C core keeps ten buckets), so
    expiry is exact to one step: a call or retry counts for between 0.9 ttl
    and ttl. The balance is kept in whole milli-tokens, so `ratio` is exact
    to 0.001 (0.2 is exactly 0.2).

    One budget is meant to be shared by every retry policy that calls the
    same dependency, across threads: `deposit` is one atomic add and
    `try_withdraw` one compare-and-swap in the C core, and no token is ever
    spent twice. Time is brace's clock, so `brace.testing.fake_clock()`
    drives expiry.

    Args:
        ratio: Retries allowed per call, from 0.001 to 1000 (0.2: retries
            may add 20% on top of the calls); kept to the nearest 0.001.
        min_per_second: Retries per second always allowed, whatever the
            calls: an int from 0 to 10**9 (the floor is min_per_second * ttl
            tokens).
        ttl: How long deposits and withdrawals count: seconds (float) or a
            timedelta, from 0.001 to 3600.
        name: A name for messages, events and metrics; with `store`,
            required: the budget's slot in the region.
        store: Where the balance lives. None: in this object. "shm://REGION"
            (see RateLimiter and brace.shm): in a shared-memory region, so
            that every process's budget of that store and name deposits into
            and withdraws from one balance. The first process fixes ratio,
            min_per_second and ttl (ValueError, naming the fields that
            differ, for others).

    Raises:
        ValueError, TypeError: For configuration outside the ranges above.
        OSError: The region cannot be opened.
    """

    #: The kinds of event this primitive emits (add_listener's `kinds`).
    event_kinds: ClassVar[tuple[str, ...]] = _EVENT_KINDS

    __slots__ = ("_name", "_ratio_milli", "_min_per_second", "_ttl_ns", "_listeners", "_store", "__weakref__")

    def __init__(
        self,
        *,
        name: str | None = None,
        ratio: float = 0.2,
        min_per_second: int = 10,
        ttl: float | timedelta = 10.0,
        store: str | None = None,
    ) -> None:
        self._ratio_milli = _ratio_milli(ratio)
        self._min_per_second = _config.count(
            min_per_second, "min_per_second", minimum=0, maximum=BUDGET_MIN_PER_SECOND_MAX
        )
        self._ttl_ns = _ttl_ns(ttl)
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name must be a str or None, got {type(name).__name__}")
        self._name = name
        self._listeners: Listeners[RetryBudgetEvent] = Listeners(
            f"retry budget {name!r}" if name else "a retry budget", _EVENT_KINDS
        )
        shared, self._store = _stores.parse(store), store
        if shared is None:
            self._configure(self._ratio_milli, self._min_per_second, self._ttl_ns)
            return
        slot = _stores.slot_name(name, "RetryBudget")
        region = _stores.region(*shared)
        ours = (self._ratio_milli, self._min_per_second, self._ttl_ns)
        if not self._configure(*ours, region, slot):
            raise ValueError(_slots.budget_mismatch(region.slot_info(slot), store, slot, ours))

    @property
    def store(self) -> str | None:
        """Where the balance lives: None (in this object) or "shm://REGION"."""
        return self._store

    @property
    def name(self) -> str | None:
        """The budget's name, or None."""
        return self._name

    def try_withdraw(self) -> bool:
        """Withdraws one token for a retry if the balance covers it; returns whether it did.

        One compare-and-swap in the C core; a refusal is told to the
        "exhausted" listeners.
        """
        if RetryBudgetCore.try_withdraw(self):
            return True
        if self._listeners.wants("exhausted"):
            event = RetryBudgetEvent("exhausted", self._name, now_ns() / _config.NS_PER_SECOND, self.balance)
            self._listeners.emit(event, "exhausted")
        return False

    @property
    def ratio(self) -> float:
        """Retries allowed per call (to the nearest 0.001)."""
        return self._ratio_milli / _MILLI

    @property
    def min_per_second(self) -> int:
        """Retries per second always allowed."""
        return self._min_per_second

    @property
    def ttl(self) -> float:
        """Seconds a deposit or withdrawal counts."""
        return self._ttl_ns / _config.NS_PER_SECOND

    @property
    def granularity(self) -> float:
        """Seconds the window moves by at once (ttl / 10): expiry is exact to this."""
        return self._ttl_ns // BUDGET_BUCKETS / _config.NS_PER_SECOND

    @property
    def balance(self) -> float:
        """Tokens available now: each allows one retry. Negative when retries
        outlive the calls that paid for them (until they expire too)."""
        return self._balance() / _MILLI

    def __repr__(self) -> str:
        name = f"name={self._name!r}, " if self._name else ""
        return (
            f"RetryBudget({name}ratio={self.ratio:g}, min_per_second={self._min_per_second}, "
            f"ttl={self.ttl:g})"
        )
