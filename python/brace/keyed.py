"""brace.KeyedRateLimiter: one GCRA token bucket per key, in a fixed-size table in the C core."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal, NamedTuple, NoReturn, cast

import math
import threading
from collections import OrderedDict
from collections.abc import Iterable

from brace import _config, _redis, _redis_gcra, _slots, _stores
from brace._core import KEYED_CAPACITY_MAX, KEYED_CAPACITY_MIN, KeyedRateLimiterCore, key_hash
from brace.limiter import RateLimitState

__all__ = ["KeyedRateLimiter", "KeyedRateLimiterMetrics", "RedisKeyedRateLimiter"]

_NS = 1e9
_GCRA = _redis_gcra.GCRA
# Entries per key: the table holds max_keys keys at a load factor of at most 1/2.
_ENTRIES_PER_KEY = 2
MAX_KEYS_MAX = KEYED_CAPACITY_MAX // _ENTRIES_PER_KEY


class KeyedRateLimiterMetrics(NamedTuple):
    """A keyed limiter's counters since it was made.

    Attributes:
        admitted: Decisions that took tokens.
        rejected: Decisions refused for want of tokens.
        full: Decisions refused for want of room in the table (KeyTableFull).
        evictions: Entries taken from a key whose bucket was full again.
        capacity: Entries in the table.
    """

    admitted: int
    rejected: int
    full: int
    evictions: int
    capacity: int


class KeyedRateLimiter(KeyedRateLimiterCore):
    """A rate limiter per key: `rate` events per `per` seconds for each key, with bursts of `burst`.

    Each key (a str, bytes or int: a user, an API key, a client address) has
    its own GCRA bucket, exactly as if it had its own brace.RateLimiter with
    these settings. The buckets live in one fixed-size table in the C core, so
    memory stays bounded whatever the number of keys: a key whose bucket is
    full again (it owes nothing) is the same as a key never seen, so its entry
    is reused by new keys, least recently used first. Only when every entry a
    key could use holds a key with tokens out does a decision fail, with
    KeyTableFull (never a silent refusal or admission).

    Keys are filed under a stable 64-bit hash (the same in every process, not
    Python's hash()): a str and its UTF-8 bytes are one key, an int from
    -2**63 to 2**64 - 1 is its 64-bit two's complement (so -1 and 2**64 - 1 are
    one key, as in an int64 and a uint64 array), and two keys whose hashes
    collide (about one pair in 2**64) share a bucket.

    Decisions: `try_acquire(key, n=1)` and `try_acquire_many(keys)` (a numpy
    int64/uint64 array, one C loop), both in the C core on brace's clock;
    `state(key)` as brace.RateLimiter.state() gives it.

    Args:
        rate: Events per `per` for each key, a number > 0; or a string like
            "100/s", "5000/min", "10 per hour" (then `per` must be None), as
            brace.RateLimiter takes it.
        per: The period of `rate` in seconds (float or timedelta); default 1 s.
        burst: Tokens a key may take at once from a full bucket, >= 1.
        max_keys: Keys with tokens out at the same time that the table is sized
            for, 1 to 2**31 (required unless the store is a Redis server): the table has the next power of two >= 2 x
            max_keys entries (at least 64), 16 bytes each, so it is at most
            half full with max_keys such keys. A key may use any of the 32
            entries from its hash's place, so a table can refuse a key before
            max_keys keys are out: with max_keys keys owing at once (load
            1/2), about 3 keys in a million find no room (measured with 2**21
            entries); at a load of 3/8, none did.
        name: A name for messages and metrics; with `store`, required: the
            table's slot in the region, or its keys' prefix on a Redis server
            (1 to 200 characters, no { or }).
        store: Where the table lives. None: in this object, shared by this
            process's threads. "shm://REGION" (optionally
            "shm://REGION?size=BYTES", as brace.RateLimiter takes it): in the
            named shared-memory region, so that every process's
            KeyedRateLimiter with the same store, name and configuration
            decides on one table (the region must have room for it: 16 bytes
            an entry; the default region of 64 MiB holds a table for
            max_keys up to 2**20, a larger one needs ?size=). Or a Redis
            server, as brace.RateLimiter takes it: each key's bucket is the
            key "brace:krl:{NAME}:HASH" (HASH: the key's 64-bit hash in hex),
            which expires when the bucket is full again, so memory is bounded
            by the keys with tokens out; try_acquire_many is one pipeline.
            max_keys is then optional: it sizes only the local fallback's
            table (default 65536).
        on_store_error: With a Redis store only: "local" (default), "open" or
            "closed", as brace.RateLimiter takes it.
        local_share: With on_store_error="local": the share of each key's
            rate and burst the local table holds, 0 < local_share <= 1.

    Raises:
        ValueError, TypeError: For configuration outside the ranges above.
    """

    __slots__ = ("_name", "_events", "_period", "_burst", "_max_keys", "_capacity", "_store")

    def __new__(cls, *positional: object, **config: object) -> KeyedRateLimiter:
        _config.keywords_only("KeyedRateLimiter", positional)
        if cls is KeyedRateLimiter and _redis.is_redis(config.get("store")):
            return RedisKeyedRateLimiter.__new__(RedisKeyedRateLimiter, **config)
        return super().__new__(cls)

    def __init__(
        self,
        *positional: NoReturn,
        name: str | None = None,
        rate: float | str,
        per: float | timedelta | None = None,
        burst: int = 1,
        max_keys: int | None = None,
        store: object = None,
        on_store_error: Literal["local", "open", "closed"] | None = None,
        local_share: float | None = None,
    ) -> None:
        _config.keywords_only("KeyedRateLimiter", positional)
        _redis.check_failure_policy(on_store_error, local_share, store, "KeyedRateLimiter")
        if max_keys is None:
            raise TypeError("KeyedRateLimiter() needs max_keys= (the keys with tokens out at once its table is "
                            "sized for) unless its store is a Redis server")  # fmt: skip
        shared = _stores.parse(store)
        events, period, interval, self._burst = _config.bucket(rate, per, burst)
        self._max_keys = _config.count(max_keys, "max_keys", maximum=MAX_KEYS_MAX)
        self._name = _config.optional_name(name)
        self._events, self._period = events, period
        self._capacity = max(KEYED_CAPACITY_MIN, 1 << (_ENTRIES_PER_KEY * self._max_keys - 1).bit_length())
        self._store = store
        if shared is None:
            self._configure(self._capacity, interval, self._burst, self._name)
            return
        slot = _stores.slot_name(name, "KeyedRateLimiter")
        region = _stores.region(*shared)
        if not self._attach(region, slot, self._capacity, interval, self._burst, self._name):
            raise ValueError(
                _slots.keyed_mismatch(region.slot_info(slot), store, slot, self._capacity, interval, self._burst)
            )

    @property
    def name(self) -> str | None:
        """The limiter's name, or None."""
        return self._name

    @property
    def rate(self) -> float:
        """Events per second, for each key."""
        return self._events / self._period

    @property
    def burst(self) -> int:
        """Tokens a key may take at once from a full bucket."""
        return self._burst

    @property
    def max_keys(self) -> int:
        """The keys with tokens out at once that the table is sized for."""
        return self._max_keys

    @property
    def store(self) -> Any:
        """Where the table lives: None (in this object), "shm://REGION", or the Redis URL or
        client given."""
        return self._store

    @property
    def capacity(self) -> int:
        """Entries in the table (a power of two >= 2 x max_keys)."""
        return self._capacity

    def state(self, key: str | bytes | int) -> RateLimitState:
        """Key's limit, remaining tokens, retry_after and reset_after, now (a key not in the
        table has a full bucket)."""
        limit, remaining, retry_after, reset_after = self._report(key)
        return RateLimitState(limit, remaining, retry_after / _NS, reset_after / _NS)

    def metrics(self) -> KeyedRateLimiterMetrics:
        """The table's counters: decisions admitted, rejected and refused for room, evictions."""
        admitted, rejected, full, evictions = self._counters()
        return KeyedRateLimiterMetrics(admitted, rejected, full, evictions, self._capacity)

    def __repr__(self) -> str:
        name = f"name={self._name!r}, " if self._name else ""
        store = f", store={self._store!r}" if self._store is not None else ""
        return (
            f"KeyedRateLimiter({name}rate={self._events:g}, per={self._period:g}, "
            f"burst={self._burst}, max_keys={self._max_keys}{store})"
        )


class RedisKeyedRateLimiter(KeyedRateLimiter, _redis_gcra.RedisBacked):
    """brace.KeyedRateLimiter with a Redis store (see brace.KeyedRateLimiter)."""

    __slots__ = ("_redis", "_prefix", "_args_interval", "_interval", "_on_store_error", "_local_share",
                 "_local", "_owing", "_switch", "_admitted", "_rejected", "__weakref__")  # fmt: skip

    def __new__(cls, *positional: object, **config: object) -> RedisKeyedRateLimiter:
        _config.keywords_only("KeyedRateLimiter", positional)
        return KeyedRateLimiterCore.__new__(cls)

    def __init__(
        self,
        *positional: NoReturn,
        name: str | None = None,
        rate: float | str,
        per: float | timedelta | None = None,
        burst: int = 1,
        max_keys: int | None = None,
        store: object = None,
        on_store_error: _redis.OnStoreError | None = None,
        local_share: float | None = None,
    ) -> None:
        _config.keywords_only("KeyedRateLimiter", positional)
        events, period, interval, self._burst = _config.bucket(rate, per, burst)
        _redis_gcra.check_depth(interval, self._burst)
        self._max_keys = _redis_gcra.LOCAL_MAX_KEYS if max_keys is None else _config.count(max_keys, "max_keys",
                                                                                 maximum=MAX_KEYS_MAX)  # fmt: skip
        self._name = _redis.key_part(name, "KeyedRateLimiter")
        self._on_store_error, self._local_share = _redis.check_failure_policy(
            on_store_error, local_share, store, "KeyedRateLimiter")
        self._events, self._period, self._interval = events, period, interval
        self._capacity = 0
        self._store = store
        self._redis = _redis.store_for(store)
        self._prefix = f"brace:krl:{{{self._name}}}:"
        self._args_interval = str(interval)
        self._local: KeyedRateLimiter | None = None
        # Keys decided locally during an outage (their debt is charged to the store on return).
        self._owing: OrderedDict[str, object] = OrderedDict()
        self._switch = threading.Lock()
        self._admitted = self._rejected = 0
        self._redis.watch(self._store_changed)

    def _store_changed(self, kind: str) -> None:
        """The store was lost or is back: nothing to tell (a keyed limiter has no listeners)."""

    def key_name(self, key: str | bytes | int) -> str:
        """The Redis key of key's bucket: brace:krl:{NAME}: and the key's 64-bit hash in hex
        (the hash KeyedRateLimiter files keys under: str and its UTF-8 bytes are one key)."""
        return f"{self._prefix}{key_hash(key):016x}"

    def _args(self, n: int, mode: str) -> tuple[str, ...]:
        return self._args_interval, str(self._burst), str(n), "0", mode

    def _count(self, admitted: bool) -> bool:
        if admitted:
            self._admitted += 1
        else:
            self._rejected += 1
        return admitted

    # -- deciding

    def try_acquire(self, key: str | bytes | int, n: int = 1) -> bool:
        """Takes n tokens from key's bucket if all are available now; returns whether it did."""
        name = self.key_name(key)
        n = _redis_gcra.checked_n(n, self._burst)
        if self._local is not None and self._redis.up:
            self._resume()
        if self._local is None:
            try:
                raw = self._redis.evalsha(_GCRA, (name,), self._args(n, "a"), self._name)
            except _redis.Outage as outage:
                return self._count(self._fallback(key, name, n, outage.cause))
            return self._count(bool(int(raw[0])))
        return self._count(self._fallback(key, name, n, None))

    async def try_acquire_async(self, key: str | bytes | int, n: int = 1) -> bool:
        """try_acquire for coroutines (the round trip on the loop's asyncio client)."""
        name = self.key_name(key)
        n = _redis_gcra.checked_n(n, self._burst)
        if self._local is not None and self._redis.up:
            await self._resume_async()
        if self._local is None:
            try:
                raw = await self._redis.evalsha_async(_GCRA, (name,), self._args(n, "a"), self._name)
            except _redis.Outage as outage:
                return self._count(self._fallback(key, name, n, outage.cause))
            return self._count(bool(int(raw[0])))
        return self._count(self._fallback(key, name, n, None))

    def try_acquire_many(self, keys: Any) -> Any:
        """One token for each key, in order, in one pipeline round trip; returns the decisions
        as an array of bools (numpy's when numpy is importable).

        keys: a buffer of 8-byte ints (a numpy int64 or uint64 array, an array.array('q')), as
        the local limiter takes, or any iterable of keys (str, bytes, int)."""
        items = self._keys(keys)
        if self._local is not None and self._redis.up:
            self._resume()
        if self._local is None:
            try:
                replies = self._redis.evalsha_many(_GCRA, self._batch(items), self._name)
            except _redis.Outage as outage:
                return self._fallback_many(items, outage.cause)
            return _redis_gcra.bools([self._count(bool(int(raw[0]))) for raw in replies])
        return self._fallback_many(items, None)

    async def try_acquire_many_async(self, keys: Any) -> Any:
        """try_acquire_many for coroutines."""
        items = self._keys(keys)
        if self._local is not None and self._redis.up:
            await self._resume_async()
        if self._local is None:
            try:
                replies = await self._redis.evalsha_many_async(_GCRA, self._batch(items), self._name)
            except _redis.Outage as outage:
                return self._fallback_many(items, outage.cause)
            return _redis_gcra.bools([self._count(bool(int(raw[0]))) for raw in replies])
        return self._fallback_many(items, None)

    def _batch(self, items: list[Any]) -> list[tuple[tuple[str], tuple[str, ...]]]:
        return [((self.key_name(key),), self._args(1, "a")) for key in items]

    def _fallback_many(self, items: list[Any], cause: BaseException | None) -> Any:
        return _redis_gcra.bools([self._count(self._fallback(key, self.key_name(key), 1, cause)) for key in items])

    @staticmethod
    def _keys(keys: Any) -> list[Any]:
        if isinstance(keys, (str, bytes)):
            raise TypeError("keys must be a buffer of 8-byte ints or an iterable of keys, got a single "
                            f"{type(keys).__name__}")  # fmt: skip
        try:
            view = memoryview(keys)
        except TypeError:
            return list(cast(Iterable[Any], keys))
        if view.itemsize != 8 or view.format.lstrip("@=<") not in ("q", "Q", "l", "L"):
            raise TypeError("keys must be a contiguous buffer of 8-byte ints (numpy int64 or uint64, "
                            f"array.array('q')) or an iterable of keys, got format {view.format!r}")  # fmt: skip
        signed = view.format.lstrip("@=<") in ("q", "l")
        return list(view.cast("B").cast("q" if signed else "Q").tolist())

    def _fallback(self, key: object, name: str, n: int, cause: BaseException | None) -> bool:
        if self._on_store_error == "closed":
            raise self._redis.unavailable(self._name, "KeyedRateLimiter", cause)
        if self._on_store_error == "open":
            return True
        local = self._local
        if local is None:
            with self._switch:
                local = self._local
                if local is None:
                    local = self._local = KeyedRateLimiter(
                        rate=self._events * self._local_share, per=self._period,
                        burst=max(1, math.floor(self._burst * self._local_share)), max_keys=self._max_keys)  # fmt: skip
        if n > local.burst:
            return False
        admitted = bool(local.try_acquire(cast("str | bytes | int", key), n))
        if admitted:
            self._owing[name] = key
            self._owing.move_to_end(name)
            while len(self._owing) > self._max_keys:
                self._owing.popitem(last=False)
        return admitted

    def _charges(self) -> list[tuple[tuple[str], tuple[str, ...]]]:
        local = self._local
        if local is None:
            return []
        charges = []
        for name, key in self._owing.items():
            debt = local.state(cast("str | bytes | int", key)).reset_after
            owed = math.ceil(debt * local.rate - 1e-9) if debt else 0
            if owed:
                charges.append(((name,), self._args(owed, "c")))
        return charges

    def _resume(self) -> None:
        with self._switch:
            if self._local is None:
                return
            charges = self._charges()
            if charges:
                try:
                    self._redis.evalsha_many(_GCRA, charges, self._name)
                except _redis.Outage:
                    return
            self._local = None
            self._owing.clear()

    async def _resume_async(self) -> None:
        charges = self._charges()
        self._local = None  # first, so that no other task charges the same debt
        self._owing.clear()
        if charges:
            try:
                await self._redis.evalsha_many_async(_GCRA, charges, self._name)
            except _redis.Outage:
                return

    def _report(self, key: str | bytes | int) -> tuple[int, int, int, int]:
        if self._local is not None and self._redis.up:
            self._resume()
        cause = None
        if self._local is None:
            try:
                raw = self._redis.evalsha(_GCRA, (self.key_name(key),), self._args(1, "s"), self._name)
                return self._burst, int(raw[1]), int(raw[2]), int(raw[3])
            except _redis.Outage as outage:
                cause = outage.cause
        return self._fallback_report(key, cause)

    async def state_async(self, key: str | bytes | int) -> RateLimitState:
        """state() for coroutines (the round trip on the loop's asyncio client)."""
        if self._local is not None and self._redis.up:
            await self._resume_async()
        cause = None
        if self._local is None:
            try:
                raw = await self._redis.evalsha_async(_GCRA, (self.key_name(key),), self._args(1, "s"), self._name)
                return RateLimitState(self._burst, int(raw[1]), int(raw[2]) / _NS, int(raw[3]) / _NS)
            except _redis.Outage as outage:
                cause = outage.cause
        limit, remaining, retry_after, reset_after = self._fallback_report(key, cause)
        return RateLimitState(limit, remaining, retry_after / _NS, reset_after / _NS)

    def _fallback_report(self, key: str | bytes | int, cause: BaseException | None) -> tuple[int, int, int, int]:
        """key's state while the store is away: the local share's, or a full bucket (open)."""
        if self._on_store_error == "closed":
            raise self._redis.unavailable(self._name, "KeyedRateLimiter", cause)
        if self._on_store_error == "open" or self._local is None:
            return self._burst, self._burst, 0, 0
        limit, remaining, retry_after, reset_after = self._local._report(key)
        return limit, remaining, retry_after, reset_after

    def metrics(self) -> KeyedRateLimiterMetrics:
        """Decisions this process made on this limiter: admitted and rejected (full,
        evictions and capacity are 0: the store has no table)."""
        return KeyedRateLimiterMetrics(self._admitted, self._rejected, 0, 0, 0)

    def __repr__(self) -> str:
        return (f"KeyedRateLimiter(name={self._name!r}, rate={self._events:g}, per={self._period:g}, "
                f"burst={self._burst}, store={self._redis.shown!r}, on_store_error={self._on_store_error!r}, "
                f"local_share={self._local_share:g})")  # fmt: skip
