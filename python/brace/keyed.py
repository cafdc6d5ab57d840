"""brace.KeyedRateLimiter: one GCRA token bucket per key, in a fixed-size table in the C core."""

from __future__ import annotations

from datetime import timedelta
from typing import NamedTuple, NoReturn

from brace import _config, _slots, _stores
from brace._core import KEYED_CAPACITY_MAX, KEYED_CAPACITY_MIN, KeyedRateLimiterCore
from brace.limiter import RateLimitState

__all__ = ["KeyedRateLimiter", "KeyedRateLimiterMetrics"]

_NS = 1e9
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
            for, 1 to 2**31: the table has the next power of two >= 2 x
            max_keys entries (at least 64), 16 bytes each, so it is at most
            half full with max_keys such keys. A key may use any of the 32
            entries from its hash's place, so a table can refuse a key before
            max_keys keys are out: with max_keys keys owing at once (load
            1/2), about 3 keys in a million find no room (measured with 2**21
            entries); at a load of 3/8, none did.
        name: A name for messages and metrics; with `store`, required: the
            table's slot in the region.
        store: Where the table lives. None: in this object, shared by this
            process's threads. "shm://REGION" (optionally
            "shm://REGION?size=BYTES", as brace.RateLimiter takes it): in the
            named shared-memory region, so that every process's
            KeyedRateLimiter with the same store, name and configuration
            decides on one table (the region must have room for it: 16 bytes
            an entry; the default region of 64 MiB holds a table for
            max_keys up to 2**20, a larger one needs ?size=).

    Raises:
        ValueError, TypeError: For configuration outside the ranges above.
    """

    __slots__ = ("_name", "_events", "_period", "_burst", "_max_keys", "_capacity", "_store")

    def __new__(cls, *positional: object, **config: object) -> KeyedRateLimiter:
        _config.keywords_only("KeyedRateLimiter", positional)
        return super().__new__(cls)

    def __init__(
        self,
        *positional: NoReturn,
        name: str | None = None,
        rate: float | str,
        per: float | timedelta | None = None,
        burst: int = 1,
        max_keys: int,
        store: str | None = None,
    ) -> None:
        _config.keywords_only("KeyedRateLimiter", positional)
        shared = _stores.parse(store)
        events, period = _config.rate(rate, per)
        interval = _config.interval_ns(events, period)
        self._burst = _config.burst_within_depth(_config.count(burst, "burst", maximum=None), interval)
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
    def store(self) -> str | None:
        """Where the table lives: None (in this object) or "shm://REGION"."""
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
