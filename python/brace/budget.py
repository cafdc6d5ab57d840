"""brace.RetryBudget: Finagle's retry budget, kept in the C core."""

from __future__ import annotations

import math
import os
import threading
import weakref
from datetime import timedelta
from typing import Any, Callable, ClassVar, Literal, NamedTuple, cast

from brace._logger import logger
from brace._safe import safe_repr
from brace import _config, _redis, _redis_budget, _slots, _stores
from brace.errors import StoreError
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

__all__ = ["RedisRetryBudget", "RetryBudget", "RetryBudgetEvent"]

# The core keeps the balance in milli-tokens: a withdrawal costs BUDGET_TOKEN.
_MILLI = BUDGET_TOKEN
_RATIO_MIN = 1 / _MILLI
_RATIO_MAX = BUDGET_RATIO_MAX / _MILLI
_TTL_MIN = BUDGET_TTL_MIN / _config.NS_PER_SECOND
_TTL_MAX = BUDGET_TTL_MAX / _config.NS_PER_SECOND


EventKind = Literal["exhausted", "store_lost", "store_back"]
_EVENT_KINDS = ("exhausted",)


class RetryBudgetEvent(NamedTuple):
    """What a budget's listener receives.

    Attributes:
        kind: "exhausted": a withdrawal was refused, so a retry was not made.
            A budget on a Redis store also emits "store_lost" (a round trip
            failed: this host's own budget decides, by on_store_error) and
            "store_back" (the store answers again).
        name: The budget's name, or None.
        at: When it happened, seconds on brace's clock.
        balance: Tokens left then (below one when exhausted; this host's own
            balance for the store's events).
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


def _min_per_second(value: object) -> int:
    """Retries per second always allowed: an int from 0 to BUDGET_MIN_PER_SECOND_MAX."""
    return _config.count(value, "min_per_second", minimum=0, maximum=BUDGET_MIN_PER_SECOND_MAX)


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
            differ, for others). "redis://...", "rediss://...", "unix://..."
            or a sync Redis client (as RateLimiter's): every host of that
            store and name withdraws from one balance on the server (one
            round trip per withdrawal, exact cluster-wide); deposits stay
            local and cheap, and a background thread sends them every
            `flush_interval` (so the shared balance lags a host's calls by
            at most flush_interval plus one round trip). The first host
            fixes ratio, min_per_second and ttl while the keys live.
        flush_interval: With a Redis store only: seconds (or timedelta)
            between sends of this host's deposits, 1 ms to 1 hour; default
            0.25.
        on_store_error: With a Redis store only: what a withdrawal does while
            the store is away: "local" (the default: this host's own budget,
            which has had every deposit and shared withdrawal all along,
            decides), "open" (allowed) or "closed" (refused, as an empty
            budget refuses). Store errors never reach the caller.

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
        store: object = None,
        flush_interval: float | timedelta | None = None,
        on_store_error: _redis.OnStoreError | None = None,
    ) -> None:
        _redis.check_failure_policy(on_store_error, None, store, "RetryBudget")
        if flush_interval is not None and not _redis.is_redis(store):
            raise ValueError("flush_interval is only meaningful with a Redis store (store='redis://...' or a "
                             f"client); this RetryBudget's store is {store!r}")  # fmt: skip
        self._ratio_milli = _ratio_milli(ratio)
        self._min_per_second = _min_per_second(min_per_second)
        self._ttl_ns = _ttl_ns(ttl)
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name must be a str or None, got {type(name).__name__}")
        self._name = name
        self._listeners: Listeners[RetryBudgetEvent] = Listeners(
            f"retry budget {name!r}" if name else "a retry budget", _EVENT_KINDS
        )
        shared, self._store = _stores.parse(cast("str | None", store)), store
        if shared is None:
            self._configure(self._ratio_milli, self._min_per_second, self._ttl_ns)
            return
        slot = _stores.slot_name(name, "RetryBudget")
        region = _stores.region(*shared)
        ours = (self._ratio_milli, self._min_per_second, self._ttl_ns)
        if not self._configure(*ours, region, slot):
            raise ValueError(_slots.budget_mismatch(region.slot_info(slot), store, slot, ours))

    def __new__(cls, *positional: object, **config: object) -> RetryBudget:
        if cls is RetryBudget and _redis.is_redis(config.get("store")):
            return super().__new__(RedisRetryBudget)
        return super().__new__(cls)

    #: Whether try_withdraw makes a round trip to a store: a coroutine then
    #: withdraws with `await try_withdraw_async()`, so its loop never waits on a socket.
    remote: ClassVar[bool] = False

    @property
    def store(self) -> object:
        """Where the balance lives: None (in this object), "shm://REGION", or the
        Redis URL or client given."""
        return self._store

    @property
    def name(self) -> str | None:
        """The budget's name, or None."""
        return self._name

    def reconfigure(self, *, ratio: float | None = None, min_per_second: int | None = None) -> None:
        """Changes the ratio and/or the retries always allowed per second while in use;
        unspecified settings keep their values (the ttl cannot change: the window's buckets
        are fixed).

        The deposits and withdrawals in the window stay: the window's deposits count at the
        new ratio from then on, so a lowered ratio or floor can leave the balance negative
        (no retry until it recovers, as when retries outlive their deposits).

        Raises:
            ValueError, TypeError: As the constructor, for the settings given (nothing
                changes); ValueError for a budget in a shared store, whose settings the
                first process fixed.
        """
        if self._store is not None:
            raise ValueError(f"reconfigure: the retry budget {self._name!r} in store {self._store!r} is shared; its "
                             "settings are fixed by the first process or host that made it")  # fmt: skip
        new_ratio = self._ratio_milli if ratio is None else _ratio_milli(ratio)
        new_min = self._min_per_second if min_per_second is None else _min_per_second(min_per_second)
        self._reconfigure(new_ratio, new_min, self._ttl_ns)
        self._ratio_milli, self._min_per_second = new_ratio, new_min

    def try_withdraw(self) -> bool:
        """Withdraws one token for a retry if the balance covers it; returns whether it did.

        One compare-and-swap in the C core; a refusal is told to the
        "exhausted" listeners.
        """
        if RetryBudgetCore.try_withdraw(self):
            return True
        self._count_refusal()
        if self._listeners.wants("exhausted"):
            self._emit("exhausted", self._balance() / _MILLI)
        return False

    async def try_withdraw_async(self) -> bool:
        """try_withdraw for coroutines: the same decision (a budget in this process or in
        shared memory never waits, so this only matters for a `remote` one)."""
        return self.try_withdraw()

    def _emit(self, kind: EventKind, balance: float) -> None:
        event = RetryBudgetEvent(kind, self._name, now_ns() / _config.NS_PER_SECOND, balance)
        self._listeners.emit(event, kind)

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

    @property
    def exhaustions(self) -> int:
        """Withdrawals this object refused (retries not made for want of budget) since it was
        made, in this process, listened to or not."""
        return self._refusals()

    def __repr__(self) -> str:
        name = f"name={self._name!r}, " if self._name else ""
        return (
            f"RetryBudget({name}ratio={self.ratio:g}, min_per_second={self._min_per_second}, "
            f"ttl={self.ttl:g})"
        )


_FLUSH_INTERVAL_MAX = 3600.0
_live: weakref.WeakSet[RedisRetryBudget] = weakref.WeakSet()  # for a forked child to restart their flushers
_Reply = tuple[bool, float] | None  # the store's (took, balance in tokens), or None: it did not decide


def _flusher(ref: weakref.ref[RedisRetryBudget], wake: threading.Event, interval: float) -> None:
    """A Redis budget's background thread: sends the host's deposits every `interval` until the
    budget is gone. Holds it only during a send."""
    while True:
        wake.wait(interval)
        budget = ref()
        if budget is None or budget._flusher_wake is not wake:
            return
        budget.flush()
        del budget


class RedisRetryBudget(RetryBudget):
    """brace.RetryBudget with a Redis store (see brace.RetryBudget).

    Deposits go to this host's compiled budget, as a local budget's do (a compiled Policy or
    Retry calls the same method), which also counts them; the flusher thread sends the count
    made since its last send. A withdrawal is one script call that adds what is unsent,
    sums the window and takes a token if it is covered; a token the store gave is also
    taken from the host's own budget (when that covers it), so the host's budget, which
    decides while the store is away, starts from what the host really spent.
    """

    event_kinds: ClassVar[tuple[str, ...]] = _redis_budget.EVENT_KINDS
    remote: ClassVar[bool] = True

    __slots__ = ("_redis", "_keys", "_config_text", "_bucket_us", "_floor_milli", "_px", "_flush_interval",
                 "_on_store_error", "_sent", "_sending", "_flusher_wake", "_store_error_told")  # fmt: skip

    def __init__(
        self,
        *,
        name: str | None = None,
        ratio: float = 0.2,
        min_per_second: int = 10,
        ttl: float | timedelta = 10.0,
        store: object = None,
        flush_interval: float | timedelta | None = None,
        on_store_error: _redis.OnStoreError | None = None,
    ) -> None:
        key = _redis.key_part(name, "RetryBudget")
        self._on_store_error = _redis.check_failure_policy(on_store_error, None, store, "RetryBudget")[0]
        interval = _config.positive_duration(_redis_budget.FLUSH_INTERVAL if flush_interval is None
                                             else flush_interval, "flush_interval")  # fmt: skip
        if not 0.001 <= interval <= _FLUSH_INTERVAL_MAX:
            raise ValueError(f"flush_interval must be 1 ms to 1 hour (seconds or timedelta), got {interval!r}")
        super().__init__(name=key, ratio=ratio, min_per_second=min_per_second, ttl=ttl)
        self._listeners = Listeners(f"retry budget {key!r}", _redis_budget.EVENT_KINDS)
        self._store, self._flush_interval = store, interval
        self._redis = _redis.store_for(store)
        try:
            self._redis.sync_client(key)
        except StoreError:
            raise TypeError("store: a RetryBudget on Redis needs a URL or a sync client (redis.Redis, "
                            "valkey.Valkey): its flusher is a thread, which an asyncio client cannot "
                            "serve") from None  # fmt: skip
        self._keys = _redis_budget.keys(key)
        ttl_us = max(1, self._ttl_ns // 1000)
        self._config_text = f"{self._ratio_milli} {self._min_per_second} {ttl_us}"
        self._bucket_us = str(max(1, ttl_us // BUDGET_BUCKETS))
        # min_per_second x ttl in milli-tokens, computed as the C core computes its floor
        ns_per_milli = 1_000_000
        self._floor_milli = str(self._min_per_second * (self._ttl_ns // ns_per_milli)
                                + self._min_per_second * (self._ttl_ns % ns_per_milli) // ns_per_milli)  # fmt: skip
        self._px = str(-(-self._ttl_ns // 1_000_000))  # the ttl rounded up to a ms: then no bucket counts
        self._store_error_told = False
        self._start_sharing()
        self._redis.watch(self._store_changed)
        self._check_configuration()

    def _start_sharing(self) -> None:
        """The flusher (again in a forked child, which sends only its own deposits)."""
        self._sending = threading.Lock()  # a forked child's own: its parent's flusher may have held it
        self._sent = self._deposits()
        self._flusher_wake = wake = threading.Event()
        _live.add(self)
        weakref.finalize(self, wake.set)  # the thread sees the budget gone at once
        threading.Thread(target=_flusher, args=(weakref.ref(self), wake, self._flush_interval), daemon=True,
                         name=f"brace budget flusher {self._name}").start()  # fmt: skip

    def _check_configuration(self) -> None:
        """ValueError when the store holds the budget with another configuration (nothing
        when the store is away: the flushes tell it later, in the log)."""
        try:
            raw = self._redis.evalsha(_redis_budget.SCRIPT, self._keys, self._args(0, False), self._name)
        except _redis.Outage:
            return
        if int(raw[0]) == _redis_budget.MISMATCH:
            raise ValueError(self._mismatch(raw[1]))

    def _mismatch(self, stored: bytes | str) -> str:
        text = stored.decode() if isinstance(stored, bytes) else stored
        fields = ("ratio (milli-tokens)", "min_per_second", "ttl (us)")
        differ = [f"{field} {theirs} there, {ours} here" for field, theirs, ours
                  in zip(fields, text.split(), self._config_text.split()) if theirs != ours]  # fmt: skip
        return (f"retry budget {self._name!r} on {self._redis.shown}: another host made it with another "
                f"configuration ({'; '.join(differ) or text}); give every host the same")

    @property
    def flush_interval(self) -> float:
        """Seconds between sends of this host's deposits to the store."""
        return self._flush_interval

    @property
    def on_store_error(self) -> str:
        """What a withdrawal does while the store is away: "local", "open" or "closed"."""
        return self._on_store_error

    @property
    def store_up(self) -> bool:
        """Whether withdrawals go to the store now (False: on_store_error decides)."""
        return self._redis.up

    @property
    def store_failures(self) -> int:
        """Round trips to the store that failed for an outage, in this process (the prober's
        included; shared by every primitive on the same store)."""
        return self._redis.failed_round_trips

    # -- the shared balance

    def _args(self, deposited: int, take: bool) -> tuple[str, ...]:
        return (self._config_text, self._bucket_us, self._floor_milli, str(deposited * self._ratio_milli),
                "1" if take else "0", self._px)  # fmt: skip

    def _unsent(self) -> int:
        """The deposits made since the last send, marked sent: a send that fails loses them
        (while the store is away, this host's own budget holds them), so none is counted twice."""
        with self._sending:
            made = self._deposits()
            unsent, self._sent = made - self._sent, made
        return unsent

    def _reply(self, raw: Any) -> _Reply:
        """(took, balance) from the script's reply; None for a configuration the store refused."""
        if int(raw[0]) == _redis_budget.MISMATCH:
            self._store_error(StoreError(store=self._redis.shown, name=self._name, reason=self._mismatch(raw[1])))
            return None
        return bool(int(raw[0])), int(raw[1]) / _MILLI

    def _store_error(self, error: StoreError) -> None:
        """An error that is not an outage: logged (once per budget), never the caller's."""
        if not self._store_error_told:
            self._store_error_told = True
            logger().error("brace: retry budget %r: %s; on_store_error=%r decides", self._name, error,
                           self._on_store_error)  # fmt: skip

    def _round_trip(self, deposited: int, take: bool) -> _Reply:
        try:
            raw = self._redis.evalsha(_redis_budget.SCRIPT, self._keys, self._args(deposited, take), self._name)
        except _redis.Outage:
            return None
        except StoreError as error:
            self._store_error(error)
            return None
        return self._reply(raw)

    async def _round_trip_async(self, deposited: int, take: bool) -> _Reply:
        try:
            raw = await self._redis.evalsha_async(_redis_budget.SCRIPT, self._keys, self._args(deposited, take),
                                                  self._name)  # fmt: skip
        except _redis.Outage:
            return None
        except StoreError as error:
            self._store_error(error)
            return None
        return self._reply(raw)

    def flush(self) -> None:
        """Sends this host's unsent deposits now (the background thread does so every
        flush_interval; with none to send, it makes no round trip)."""
        unsent = self._unsent()
        if unsent:
            self._round_trip(unsent, False)

    def try_withdraw(self) -> bool:
        """Withdraws one token from the shared balance if it covers it (one round trip, which
        also sends this host's unsent deposits); returns whether it did. While the store is
        away, on_store_error decides."""
        return self._decided(self._round_trip(self._unsent(), True))

    async def try_withdraw_async(self) -> bool:
        """try_withdraw for coroutines: the round trip on the loop's asyncio client (a sync
        client given: in a worker thread), never on the loop's thread."""
        return self._decided(await self._round_trip_async(self._unsent(), True))

    def _decided(self, reply: _Reply) -> bool:
        if reply is None:
            if self._on_store_error == "local":
                return RetryBudget.try_withdraw(self)
            if self._on_store_error == "open":
                return True
            self._count_refusal()
            return False
        took, balance = reply
        if took:
            RetryBudgetCore.try_withdraw(self)  # what the host spent, for its own budget
            return True
        self._count_refusal()
        if self._listeners.wants("exhausted"):
            self._emit("exhausted", balance)
        return False

    @property
    def balance(self) -> float:
        """Tokens available now: the shared balance (one round trip, which also sends this
        host's unsent deposits), or this host's own while the store is away."""
        reply = self._round_trip(self._unsent(), False)
        return self._balance() / _MILLI if reply is None else reply[1]

    def _store_changed(self, kind: str) -> None:
        if self._listeners.wants(kind):
            self._emit(cast(EventKind, kind), self._balance() / _MILLI)

    def __repr__(self) -> str:
        return (f"RetryBudget(name={self._name!r}, ratio={self.ratio:g}, min_per_second={self._min_per_second}, "
                f"ttl={self.ttl:g}, store={self._redis.shown!r})")  # fmt: skip


def _after_fork_in_child() -> None:
    for budget in list(_live):
        budget._start_sharing()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
