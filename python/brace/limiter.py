"""brace.RateLimiter: a GCRA token bucket whose decisions run in the C core, or on a Redis server."""

# size: RedisRateLimiter (store="redis://...") lives here with its base class: in a module of
# its own it would import this one and be imported by it (RateLimiter() returns one).

from __future__ import annotations

import warnings
from datetime import timedelta
from typing import (
    Any,
    Awaitable,
    Callable,
    ClassVar,
    Literal,
    NamedTuple,
    NoReturn,
    ParamSpec,
    TypeVar,
    cast,
)

import math
import threading

from brace import _config, _guarding, _redis, _redis_gcra, _slots, _stores
from brace._clock import sleep_until, sleep_until_async
from brace._core import CALLABLE_GUARDED, RERAISE, RateLimiterCore, is_awaitable, now_ns
from brace._listeners import Listeners, Observable
from brace.errors import RateLimited

__all__ = ["RateLimitState", "RateLimiter", "RateLimiterEvent", "RedisRateLimiter"]

P = ParamSpec("P")
R = TypeVar("R")

_NS = 1e9
_GCRA = _redis_gcra.GCRA

EventKind = Literal["rejected", "store_lost", "store_back"]
_EVENT_KINDS = ("rejected",)


class RateLimiterEvent(NamedTuple):
    """What a limiter's listener receives.

    Attributes:
        kind: "rejected": tokens could not come within the wait allowed
            (the caller got RateLimited). A limiter on a Redis store also
            emits "store_lost" (a round trip failed: decisions follow
            on_store_error) and "store_back" (the server answers again).
        name: The limiter's name, or None.
        at: When it happened, seconds on brace's clock.
        requested: The tokens asked for (0 for the store's events).
        retry_after: Seconds until they would have been available (0.0 for
            the store's events).
    """

    kind: EventKind
    name: str | None
    at: float
    requested: int
    retry_after: float


Listener = Callable[[RateLimiterEvent], object]


class RateLimitState(NamedTuple):
    """A limiter's state at one instant (the fields of the RateLimit headers).

    Attributes:
        limit: The burst: the most tokens available at once.
        remaining: Tokens that could be taken now.
        retry_after: Seconds until one token is available (0.0 if one is).
        reset_after: Seconds until the bucket is full again.
    """

    limit: int
    remaining: int
    retry_after: float
    reset_after: float

    def headers(self) -> dict[str, str]:
        """HTTP response headers for this state (IETF RateLimit draft, Retry-After).

        Seconds are rounded up, so a client that waits that long is admitted.
        """
        headers = {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(_ceil_seconds(self.reset_after)),
        }
        if self.remaining == 0:
            headers["Retry-After"] = str(_ceil_seconds(self.retry_after))
        return headers


def _ceil_seconds(seconds: float) -> int:
    whole = int(seconds)
    return whole if whole == seconds else whole + 1


class RateLimiter(RateLimiterCore, Observable[RateLimiterEvent]):
    """A rate limiter: `rate` events per `per` seconds, with bursts of `burst`.

    A GCRA token bucket (the algorithm of governor and redis-cell): the bucket
    holds `burst` tokens and refills one token every `per / rate` seconds. Each
    decision is one lock-free compare-and-swap in the C core, so one limiter can
    be shared by every thread and task of a process.

    Usable directly (`try_acquire`, `acquire`, `acquire_async`), with `call` /
    `call_async`, as a decorator (sync and async functions; each call takes one
    token) and as a context manager (`with` and `async with`). `call`, the
    decorator and the context managers wait up to `max_wait` for their token
    and raise `RateLimited` when it cannot come in time.

    Args:
        rate: Events per `per`, a number > 0; or a string like "100/s",
            "5000/min", "10 per hour", "3/5s" (ASCII, at most 64 characters;
            then `per` must be None).
        per: The period of `rate` in seconds (float or timedelta), 1 ns to
            2**62 ns (~146 years); default 1 s. per / rate is 1 ns to 2**62 ns.
        burst: Tokens that may be taken at once from a full bucket, >= 1.
        max_wait: How long the decorator and context managers wait for a
            token: 0 or 1 ns to 2**62 ns (seconds or a timedelta), or None to
            wait as long as needed.
        name: A name for messages and metrics; with `store`, required: the
            limiter's slot in the region (1 to 63 bytes), or its key on a
            Redis server (1 to 200 characters, no { or }).
        store: Where the bucket lives. None: in this object, shared by this
            process's threads. "shm://REGION" (optionally
            "shm://REGION?size=16M"; default 64M, sparse): in the named
            shared-memory region, so that every process that creates a
            RateLimiter with the same store and name takes from one bucket.
            The first creates it with its rate and burst; the others must
            give the same ones (ValueError otherwise). See brace.shm.
            "redis://[[user]:password@]host[:port][/db]", "rediss://...",
            "unix://[[user]:password@]/path[?db=N]", or a redis.Redis,
            redis.asyncio.Redis, valkey.Valkey or valkey.asyncio.Valkey client:
            on that server, so that every host that creates a RateLimiter with
            the same store and name takes from one bucket (the key
            "brace:rl:{NAME}"; give every host the same rate and burst). Each
            decision is one round trip (a Lua script, on the server's clock);
            coroutines decide on an asyncio client; burst x per / rate is at
            most 2**52 ns there. Needs redis-py (brace[redis]).
        on_store_error: With a Redis store only: what decisions do while the
            server is away (refused or lost connection, timeout). "local"
            (default): a local limiter with local_share of the rate and burst
            decides; "open": admit; "closed": raise brace.StoreUnavailable.
            A Redis error that is no outage raises brace.StoreError.
        local_share: With on_store_error="local": the share of the rate and
            burst the local limiter holds, 0 < local_share <= 1 (default 1;
            set it to 1 / the number of hosts).

    Raises:
        ValueError, TypeError: For configuration outside the ranges above.
        OSError: The region cannot be opened (PermissionError: another
            user's; TimeoutError: its creator never finished it).
    """

    #: The kinds of event this primitive emits (add_listener's `kinds`).
    event_kinds: ClassVar[tuple[str, ...]] = _EVENT_KINDS

    __slots__ = ("_name", "_events", "_period", "_burst", "_max_wait", "_listeners", "_store", "__weakref__")

    def __new__(cls, *positional: object, **config: object) -> RateLimiter:
        # Before __init__ binds its required keywords, so that a bare
        # `@brace.RateLimiter` gets the error that says how to write it.
        _config.keywords_only("RateLimiter", positional)
        if cls is RateLimiter and _redis.is_redis(config.get("store")):
            return RedisRateLimiter.__new__(RedisRateLimiter, **config)
        return super().__new__(cls)

    def __init__(
        self,
        *positional: NoReturn,
        name: str | None = None,
        rate: float | str,
        per: float | timedelta | None = None,
        burst: int = 1,
        max_wait: float | timedelta | None = None,
        store: object = None,
        on_store_error: Literal["local", "open", "closed"] | None = None,
        local_share: float | None = None,
    ) -> None:
        _config.keywords_only("RateLimiter", positional)
        _redis.check_failure_policy(on_store_error, local_share, store, "RateLimiter")
        events, period, interval, self._burst = _config.bucket(rate, per, burst)
        self._max_wait = _config.duration(max_wait, "max_wait", allow_none=True)
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name must be a str or None, got {type(name).__name__}")
        self._name = name
        self._listeners: Listeners[RateLimiterEvent] = Listeners(
            f"rate limiter {name!r}" if name else "a rate limiter", _EVENT_KINDS
        )
        self._events, self._period = events, period
        shared = _stores.parse(store)
        self._store = store
        if shared is None:
            self._configure(interval, self._burst, name, self._max_wait_ns())
            return
        slot = _stores.slot_name(name, "RateLimiter")
        region = _stores.region(*shared)
        if not self._attach(region, slot, interval, self._burst, name, self._max_wait_ns()):
            raise ValueError(_slots.limiter_mismatch(region.slot_info(slot), store, slot, interval, self._burst))

    @property
    def store(self) -> Any:
        """Where the bucket lives: None (in this object), "shm://REGION", or the Redis URL or
        client given."""
        return self._store

    @property
    def name(self) -> str | None:
        """The limiter's name, or None."""
        return self._name

    @property
    def rate(self) -> float:
        """Events per second."""
        return self._events / self._period

    @property
    def burst(self) -> int:
        """Tokens that may be taken at once from a full bucket."""
        return self._burst

    @property
    def max_wait(self) -> float | None:
        """Seconds the decorator and context managers wait for a token (None: no limit)."""
        return self._max_wait

    def acquire(self, n: int = 1, max_wait: float | timedelta | None = None, *,
                timeout: float | timedelta | None = None) -> float:  # fmt: skip
        """Takes n tokens, sleeping until they are available.

        The tokens are booked at once, so waiters are served in the order they
        called; when they cannot come within `max_wait`, raises at once instead
        of sleeping in vain. Sleeps follow `brace.testing.fake_clock()`.

        Args:
            n: Tokens to take, from 1 to `burst`.
            max_wait: The longest wait in seconds (or timedelta); None waits as
                long as needed. (Unlike the constructor's max_wait, which the
                decorator and context managers use, this is per call.)
            timeout: The old name of max_wait; deprecated.

        Returns:
            The seconds waited (0.0 when the tokens were there).

        Raises:
            RateLimited: The tokens cannot come within `max_wait`; its
                `retry_after` says when they would.
        """
        ready_ns, wait_ns = self._book(n, _max_wait(max_wait, timeout))
        if wait_ns:
            try:
                sleep_until(ready_ns)
            except BaseException:
                self._refund(n)
                raise
        return wait_ns / _NS

    async def acquire_async(self, n: int = 1, max_wait: float | timedelta | None = None, *,
                            timeout: float | timedelta | None = None) -> float:  # fmt: skip
        """`acquire` for coroutines: awaits instead of blocking the thread.

        A cancelled wait gives its booked tokens back to the limiter.
        """
        ready_ns, wait_ns = self._book(n, _max_wait(max_wait, timeout))
        if wait_ns:
            try:
                await sleep_until_async(ready_ns)
            except BaseException:
                self._refund(n)
                raise
        return wait_ns / _NS

    def _book(self, n: int, max_wait: object) -> tuple[int, int]:
        seconds = _config.duration(max_wait, "max_wait", allow_none=True)
        booked, now, wait = self._reserve(n, None if seconds is None else round(seconds * _NS))
        if not booked:
            self._count_rejection()
            if self._listeners.wants("rejected"):
                event = RateLimiterEvent("rejected", self._name, now_ns() / _NS, n, wait / _NS)
                self._listeners.emit(event, "rejected")
            raise RateLimited(
                retry_after=wait / _NS, name=self._name, requested=n, limit=self._burst
            )
        return now + wait, wait

    def _max_wait_ns(self) -> int | None:
        return None if self._max_wait is None else round(self._max_wait * _NS)

    def _listeners_changed(self) -> None:
        self._reject_in_python(self._listeners.wants("rejected"))

    @property
    def rejections(self) -> int:
        """Calls this object rejected (RateLimited) since it was made, in this process,
        listened to or not."""
        return self._rejections()

    def state(self) -> RateLimitState:
        """The limit, remaining tokens, retry_after and reset_after, now."""
        limit, remaining, retry_after, reset_after = self._report()
        return RateLimitState(limit, remaining, retry_after / _NS, reset_after / _NS)

    def reconfigure(
        self,
        *,
        rate: float | str | None = None,
        per: float | timedelta | None = None,
        burst: int | None = None,
    ) -> None:
        """Changes the rate and/or burst while in use, keeping the tokens taken.

        A limiter with k tokens out still has k out, now returning at the new
        rate; if k exceeds the new burst, the excess is waited out, not forgiven.
        Unspecified settings keep their values (`per` alone rescales the
        current rate's period).

        Args:
            rate: As for the constructor.
            per: As for the constructor.
            burst: As for the constructor.

        Raises:
            ValueError: For a shared limiter (store=): its configuration is
                fixed by its creator for now.
        """
        if self._store is not None:
            raise ValueError(f"reconfigure: the limiter {self._name!r} in store {self._store!r} is shared; its rate "
                             "and burst are fixed while its region lives (brace.shm.unlink removes it)")  # fmt: skip
        if rate is None:
            events, period = self._events, (
                self._period if per is None else _config.positive_duration(per, "per")
            )
        else:
            events, period = _config.rate(rate, per)
        interval = _config.interval_ns(events, period)
        new_burst = self._burst if burst is None else _config.count(burst, "burst", maximum=None)
        _config.burst_within_depth(new_burst, interval)
        self._configure(interval, new_burst, self._name, self._max_wait_ns())
        self._events, self._period, self._burst = events, period, new_burst

    def _call_slow(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """`call`'s rare path (pyx/entries.h): no token now (wait up to max_wait), or fn
        is not a plain function the compiled entry could judge."""
        if _guarding.sync_entry(fn, self, "RateLimiter.call"):
            return _guarding.call_guarded(fn, args, kwargs, "RateLimiter.call")
        self.acquire(1, self._max_wait)
        result = fn(*args, **kwargs)
        if is_awaitable(result):
            self._refund(1)  # nothing of its work ran
            raise _guarding.refuse_awaitable(result, fn, "RateLimiter.call")
        return result

    async def call_async(self, fn: Callable[P, Awaitable[R]], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Takes one token (awaiting up to max_wait), then awaits fn(*args, **kwargs)
        (a plain fn's value is used as it is).

        Raises:
            RateLimited: No token could come within max_wait; fn was not called.
        """
        if _guarding.kind(fn, self) == CALLABLE_GUARDED:
            return cast(R, await _guarding.awaited(fn(*args, **kwargs)))
        await self.acquire_async(1, self._max_wait)
        return cast(R, await _guarding.awaited(fn(*args, **kwargs)))

    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]:
        """Decorates fn so that each call first takes one token (waiting up to max_wait).

        A function this limiter already decorates is returned as it is.
        """
        return _guarding.guard_function(self, fn, self._guard, self._guard_async)

    def _guard_async(self, fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def limited_async(*args: Any, **kwargs: Any) -> Any:
            await self.__aenter__()  # the token taken (or refused) in C when it need not wait
            return await fn(*args, **kwargs)

        return limited_async

    # -- the compiled guards' slow paths (pyx/guard.h, pyx/entries.h): no token now

    def _guard_call(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """A decorated call with no token now: wait for one up to max_wait."""
        self.acquire(1, self._max_wait)
        return fn(*args, **kwargs)

    def _guard_failed(self, fn: object, args: object, kwargs: object, error: BaseException, token: int,
                      start: int) -> object:  # fmt: skip
        """A decorated call raised: its token is spent, the error propagates as it was."""
        return RERAISE

    def _guard_awaitable(self, fn: object, args: object, kwargs: object, awaitable: Awaitable[Any], token: int,
                         start: int) -> Awaitable[Any]:  # fmt: skip
        """A decorated plain function returned an awaitable: it ran on its token, as it is."""
        return awaitable

    def _enter_slow(self) -> RateLimiter:
        """`with`'s wait for a token that comes within max_wait."""
        self.acquire(1, self._max_wait)
        return self

    async def _enter_slow_async(self) -> RateLimiter:
        """`async with`'s wait for a token that comes within max_wait."""
        await self.acquire_async(1, self._max_wait)
        return self

    # -- the stage protocol (brace._stages.AdmissionStage): each attempt takes a token

    _brace_stage_in_python = False  # a Redis limiter's is True

    def _brace_stage_admit(self) -> int:
        self.__enter__()
        return 0

    async def _brace_stage_admit_async(self) -> int:
        await self.__aenter__()
        return 0

    def _brace_stage_give_back(self, ticket: int) -> None:
        self._refund(1)

    def _brace_stage_failed(self, ticket: int, start: int, error: BaseException) -> None:
        return None  # the attempt ran: its token is spent

    def _brace_stage_returned(self, ticket: int, start: int, result: R) -> R:
        return result

    def __repr__(self) -> str:
        name = f"name={self._name!r}, " if self._name else ""
        store = f", store={self._store!r}" if self._store is not None else ""
        return (
            f"RateLimiter({name}rate={self._events:g}, per={self._period:g}, "
            f"burst={self._burst}, max_wait={self._max_wait!r}{store})"
        )


class RedisRateLimiter(RateLimiter, _redis_gcra.RedisBacked):
    """brace.RateLimiter with a Redis store (see brace.RateLimiter)."""

    event_kinds: ClassVar[tuple[str, ...]] = _redis_gcra.EVENT_KINDS
    #: A Policy admits through this limiter's Python stage methods, never the compiled check.
    _brace_stage_in_python = True

    __slots__ = ("_redis", "_key", "_args_interval", "_interval", "_on_store_error", "_local_share",
                 "_local", "_last_remaining", "_switch", "_tasks")  # fmt: skip

    def __new__(cls, *positional: object, **config: object) -> RedisRateLimiter:
        _config.keywords_only("RateLimiter", positional)
        return RateLimiterCore.__new__(cls)

    def __init__(
        self,
        *positional: NoReturn,
        name: str | None = None,
        rate: float | str,
        per: float | timedelta | None = None,
        burst: int = 1,
        max_wait: float | timedelta | None = None,
        store: object = None,
        on_store_error: _redis.OnStoreError | None = None,
        local_share: float | None = None,
    ) -> None:
        _config.keywords_only("RateLimiter", positional)
        events, period, interval, self._burst = _config.bucket(rate, per, burst)
        _redis_gcra.check_depth(interval, self._burst)
        self._max_wait = _config.duration(max_wait, "max_wait", allow_none=True)
        self._name = _redis.key_part(name, "RateLimiter")
        self._on_store_error, self._local_share = _redis.check_failure_policy(
            on_store_error, local_share, store, "RateLimiter")
        self._listeners = Listeners(f"rate limiter {name!r}", _redis_gcra.EVENT_KINDS)
        self._events, self._period, self._interval = events, period, interval
        self._store = store
        self._redis = _redis.store_for(store)
        self._key = f"brace:rl:{{{self._name}}}"
        self._args_interval = str(interval)
        self._local: RateLimiter | None = None
        self._last_remaining: int | None = None
        self._switch = threading.Lock()
        self._tasks: set[Any] = set()  # refunds under way on a loop
        self._redis.watch(self._store_changed)

    # -- deciding

    def _args(self, n: int, max_wait_ns: int | None, mode: str) -> tuple[str, ...]:
        return self._args_interval, str(self._burst), str(n), "-1" if max_wait_ns is None else str(max_wait_ns), mode

    def _decide(self, n: int, max_wait_ns: int | None, mode: str) -> _redis_gcra.Reply:
        if self._local is not None and self._redis.up:
            self._resume()
        if self._local is None:
            try:
                raw = self._redis.evalsha(_GCRA, (self._key,), self._args(n, max_wait_ns, mode), self._name)
            except _redis.Outage as outage:
                return self._fallback(n, max_wait_ns, mode, outage.cause)
            reply = _redis_gcra.reply(raw)
            self._last_remaining = reply[1]
            return reply
        return self._fallback(n, max_wait_ns, mode, None)

    async def _decide_async(self, n: int, max_wait_ns: int | None, mode: str) -> _redis_gcra.Reply:
        if self._local is not None and self._redis.up:
            await self._resume_async()
        if self._local is None:
            try:
                raw = await self._redis.evalsha_async(_GCRA, (self._key,), self._args(n, max_wait_ns, mode), self._name)
            except _redis.Outage as outage:
                return self._fallback(n, max_wait_ns, mode, outage.cause)
            reply = _redis_gcra.reply(raw)
            self._last_remaining = reply[1]
            return reply
        return self._fallback(n, max_wait_ns, mode, None)

    def _fallback(self, n: int, max_wait_ns: int | None, mode: str, cause: BaseException | None) -> _redis_gcra.Reply:
        """A decision while the store is away, by the failure policy."""
        if self._on_store_error == "closed":
            raise self._redis.unavailable(self._name, "RateLimiter", cause)
        if self._on_store_error == "open":
            return 1, self._burst, 0, 0, 0
        local = self._local
        if local is None:
            with self._switch:
                local = self._local
                if local is None:
                    local = self._local = self._make_local()
        if mode == "s":
            limit, remaining, retry_after, reset_after = local._report()
            return 1, remaining, retry_after, reset_after, 0
        if n > local.burst:  # more than the local share can ever hold: refused while the store is away
            return 0, 0, self._interval * n, 0, self._interval * n
        if mode == "r":
            local._refund(n)
            return 1, 0, 0, 0, 0
        if mode == "c":
            local._reserve(n, None)
            return 1, 0, 0, 0, 0
        if mode == "p":
            return (1, 0, 0, 0, 0) if local.peek(n) else (0, 0, self._interval, 0, self._interval)
        booked, _, wait = local._reserve(n, max_wait_ns)
        limit, remaining, retry_after, reset_after = local._report()
        return int(booked), remaining, retry_after, reset_after, wait

    def _make_local(self) -> RateLimiter:
        """The local share: share x rate, floor(share x burst) (at least 1), starting no fuller than
        the shared bucket last was (scaled by the share)."""
        share = self._local_share
        burst = max(1, math.floor(self._burst * share))
        local = RateLimiter(rate=self._events * share, per=self._period, burst=burst)
        if self._last_remaining is not None:
            owed = burst - min(burst, math.floor(self._last_remaining * share))
            if owed:
                local._reserve(owed, None)
        return local

    def _owed(self) -> int:
        """Tokens the local limiter still owes (its debt at its own rate), to charge the shared bucket."""
        local = self._local
        if local is None:
            return 0
        limit, remaining, retry_after, reset_after = local._report()
        return math.ceil(reset_after * local.rate / _NS - 1e-9) if reset_after else 0

    def _resume(self) -> None:
        """Back to the store: charge it with what the local share still owes, then decide there."""
        with self._switch:
            owed = self._owed()
            if self._local is None:
                return
            if owed:
                try:
                    self._redis.evalsha(_GCRA, (self._key,), self._args(owed, None, "c"), self._name)
                except _redis.Outage:
                    return
            self._local = None

    async def _resume_async(self) -> None:
        owed = self._owed()
        self._local = None  # first, so that no other task charges the same debt
        if owed:
            try:
                await self._redis.evalsha_async(_GCRA, (self._key,), self._args(owed, None, "c"), self._name)
            except _redis.Outage:
                return

    def _store_changed(self, kind: str) -> None:
        if self._listeners.wants(kind):
            event = RateLimiterEvent(cast(EventKind, kind), self._name, now_ns() / _NS, 0, 0.0)
            self._listeners.emit(event, kind)

    # -- what the entry points of RateLimiter call

    def try_acquire(self, n: int = 1) -> bool:
        """Takes n tokens if all are available now; returns whether it did."""
        return bool(self._decide(_redis_gcra.checked_n(n, self._burst), 0, "a")[0])

    async def try_acquire_async(self, n: int = 1) -> bool:
        """try_acquire for coroutines (the round trip on the loop's asyncio client)."""
        return bool((await self._decide_async(_redis_gcra.checked_n(n, self._burst), 0, "a"))[0])

    def peek(self, n: int = 1) -> bool:
        """Would try_acquire(n) succeed now? Takes nothing."""
        return bool(self._decide(_redis_gcra.checked_n(n, self._burst), 0, "p")[0])

    def _reserve(self, n: int, max_wait_ns: int | None) -> tuple[bool, int, int]:
        reply = self._decide(_redis_gcra.checked_n(n, self._burst), max_wait_ns, "a")
        return bool(reply[0]), now_ns(), reply[4]

    def _refund(self, n: int) -> None:
        self._decide(_redis_gcra.checked_n(n, self._burst), None, "r")

    def _report(self) -> tuple[int, int, int, int]:
        reply = self._decide(1, None, "s")
        return self._burst, reply[1], reply[2], reply[3]

    async def state_async(self) -> RateLimitState:
        """state() for coroutines."""
        reply = await self._decide_async(1, None, "s")
        return RateLimitState(self._burst, reply[1], reply[2] / _NS, reply[3] / _NS)

    async def _book_async(self, n: int, max_wait: object) -> tuple[int, int]:
        seconds = _config.duration(max_wait, "max_wait", allow_none=True)
        limit = None if seconds is None else round(seconds * _NS)
        reply = await self._decide_async(_redis_gcra.checked_n(n, self._burst), limit, "a")
        now, wait = now_ns(), reply[4]
        if not reply[0]:
            self._count_rejection()
            if self._listeners.wants("rejected"):
                self._listeners.emit(RateLimiterEvent("rejected", self._name, now / _NS, n, wait / _NS), "rejected")
            raise RateLimited(retry_after=wait / _NS, name=self._name, requested=n, limit=self._burst)
        return now + wait, wait

    async def acquire_async(self, n: int = 1, max_wait: float | timedelta | None = None, *,
                            timeout: float | timedelta | None = None) -> float:  # fmt: skip
        """`acquire` for coroutines: the round trip on the loop's asyncio client, then an await
        instead of a sleep. A cancelled wait gives its booked tokens back."""
        ready_ns, wait_ns = await self._book_async(n, _max_wait(max_wait, timeout))
        if wait_ns:
            try:
                await sleep_until_async(ready_ns)
            except BaseException:
                await self._decide_async(n, None, "r")
                raise
        return wait_ns / _NS

    def call(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """Takes one token (waiting up to max_wait), then calls fn(*args, **kwargs).

        Raises:
            RateLimited: No token could come within max_wait; fn was not called.
        """
        return self._call_slow(fn, args, kwargs)

    def _guard(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        def limited(*args: Any, **kwargs: Any) -> Any:
            self.acquire(1, self._max_wait)
            return fn(*args, **kwargs)

        return limited

    def __enter__(self) -> RedisRateLimiter:
        self.acquire(1, self._max_wait)
        return self

    def __exit__(self, *exc_info: object) -> None:
        return None  # the block ran: its token is spent

    async def __aenter__(self) -> RedisRateLimiter:
        await self.acquire_async(1, self._max_wait)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        return None

    def _brace_stage_give_back(self, ticket: int) -> None:
        import asyncio

        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._refund(1)
            return
        task = loop.create_task(self._decide_async(1, None, "r"))  # not on the loop's thread's socket
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def reconfigure(self, *, rate: float | str | None = None, per: float | timedelta | None = None,
                    burst: int | None = None) -> None:  # fmt: skip
        """Not for a limiter on a Redis store: every host passes its rate and burst with each
        decision, so they change by deploying a new configuration everywhere.

        Raises:
            ValueError: Always.
        """
        raise ValueError(f"reconfigure: the limiter {self._name!r} on store {self._redis.shown} is shared by every "
                         "host; change its rate and burst in each host's configuration")  # fmt: skip

    def __repr__(self) -> str:
        return (f"RateLimiter(name={self._name!r}, rate={self._events:g}, per={self._period:g}, burst={self._burst}, "
                f"max_wait={self._max_wait!r}, store={self._redis.shown!r}, on_store_error={self._on_store_error!r}, "
                f"local_share={self._local_share:g})")  # fmt: skip


def _max_wait(max_wait: object, timeout: object) -> object:
    """acquire()'s wait, from max_wait or from its deprecated old name."""
    if timeout is None:
        return max_wait
    warnings.warn("acquire(timeout=) is deprecated: it is max_wait= now, the name the constructor, the "
                  "bulkhead and the policy use for the same idea", DeprecationWarning, stacklevel=3)  # fmt: skip
    if max_wait is not None:
        raise TypeError("give max_wait or its deprecated old name timeout, not both")
    return timeout
