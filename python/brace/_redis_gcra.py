"""The GCRA of brace.RateLimiter and brace.KeyedRateLimiter on a Redis (or Valkey) server: the
same algorithm as the C core, decided by one Lua script in one round trip, and the helpers
their Redis subclasses (RedisRateLimiter in brace.limiter, RedisKeyedRateLimiter in
brace.keyed) share.

A RateLimiter or KeyedRateLimiter made with a Redis store is an instance of such a
subclass (their __new__ picks it): every entry point - try_acquire, peek, acquire,
acquire_async, call, call_async, the decorator, `with` / `async with`, state(), a
Policy's admission - decides on the server, and the async ones on an asyncio client
(the loop never waits on a socket). The compiled fast paths of the local limiter are
never used (their state is left unconfigured, so one reached by mistake raises instead
of deciding).

The script (GCRA below) keeps one key per bucket: its theoretical arrival time (TAT),
nanoseconds since the Unix epoch as a decimal string, with PEXPIRE at the moment the
bucket is full again, so a bucket that owes nothing has no key and memory stays
bounded by the buckets in use. Time comes from the server (TIME): the hosts' clocks
do not matter. Lua numbers are doubles, exact to 2**53; nanoseconds since 1970 are
not (about 2**61), so the script never forms one: it splits the TAT into seconds and
nanoseconds and computes only the bucket's debt (TAT - now), which is at most twice
the bucket's depth (burst x per / rate), kept <= 2**52 ns (about 52 days) at
construction. Every number the script computes is then an exact integer.

While the server is away (brace._redis: the store is down), each decision follows the
primitive's on_store_error: "local" decides on a local limiter holding local_share of
the rate and burst (starting no fuller than the shared bucket last was, scaled), "open"
admits, "closed" raises brace.StoreUnavailable. When the store is back, the first
decision first charges the shared bucket with the tokens the local limiter still owes
(its debt in tokens), so the switch back adds no burst above the limit.
"""

from __future__ import annotations

from typing import Any, Sequence

from brace import _redis

__all__ = ["DEPTH_MAX_NS", "EVENT_KINDS", "GCRA", "LOCAL_MAX_KEYS", "RedisBacked", "Reply", "bools", "check_depth",
           "checked_n", "reply"]

#: The deepest bucket (burst x per / rate) a Redis limiter takes: its numbers stay exact in Lua.
DEPTH_MAX_NS = 1 << 52
#: A Redis limiter's events: the local limiter's, and its store's.
EVENT_KINDS = ("rejected", "store_lost", "store_back")
#: The local fallback table of a Redis KeyedRateLimiter given no max_keys.
LOCAL_MAX_KEYS = 1 << 16

class RedisBacked:
    """What a primitive on a Redis store tells of its store: its failure policy and where
    its decisions go now (a mixin of the Redis limiters)."""

    __slots__ = ()

    _redis: _redis.RedisStore
    _local: object
    _on_store_error: str
    _local_share: float

    @property
    def on_store_error(self) -> str:
        """What decisions do while the store is away: "local", "open" or "closed"."""
        return self._on_store_error

    @property
    def local_share(self) -> float:
        """The share of rate and burst the local fallback holds (on_store_error="local")."""
        return self._local_share

    @property
    def store_up(self) -> bool:
        """Whether decisions go to the store now (False: the failure policy decides)."""
        return self._redis.up and self._local is None

    @property
    def store_failures(self) -> int:
        """Round trips to the store that failed for an outage, in this process (the prober's
        included; shared by every primitive on the same store)."""
        return self._redis.failed_round_trips


# KEYS[1]: the bucket's TAT key. ARGV: interval_ns, burst, n, max_wait_ns (-1: any), mode:
#   a: take n if they come within max_wait (book them); p: would n come now (takes nothing);
#   r: give n back; s: the state; c: charge n (no admission check; the debt stops at the depth).
# Reply: {admitted (1/0), remaining, retry_after_ns, reset_after_ns, wait_ns}, after the decision.
GCRA = _redis.Script("""
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local n = tonumber(ARGV[3])
local limit = tonumber(ARGV[4])
local mode = ARGV[5]
local t = redis.call('TIME')
local sec = tonumber(t[1])
local nsec = tonumber(t[2]) * 1000
local depth = interval * burst
local debt = 0
local stored = redis.call('GET', KEYS[1])
if stored then
  debt = (tonumber(string.sub(stored, 1, -10)) - sec) * 1000000000 + (tonumber(string.sub(stored, -9)) - nsec)
  if debt < 0 then debt = 0 end
end
local function reply(admitted, d, wait)
  local remaining = 0
  if d < depth then remaining = math.floor((depth - d) / interval) end
  local retry = d + interval - depth
  if retry < 0 then retry = 0 end
  return {admitted, remaining, retry, d, wait}
end
local function keep(d)
  if d <= 0 then
    redis.call('DEL', KEYS[1])
    return
  end
  local total = nsec + d
  local rest = total % 1000000000
  redis.call('SET', KEYS[1], string.format('%d%09d', sec + (total - rest) / 1000000000, rest),
             'PX', math.ceil(d / 1000000))
end
if mode == 's' then
  return reply(1, debt, 0)
end
if mode == 'r' then
  if debt == 0 then return reply(1, 0, 0) end
  local d = debt - interval * n
  if d < 0 then d = 0 end
  keep(d)
  return reply(1, d, 0)
end
if mode == 'c' then
  local d = debt + interval * n
  if d > depth then d = depth end
  keep(d)
  return reply(1, d, 0)
end
local due = debt + interval * n
local wait = due - depth
if wait < 0 then wait = 0 end
if mode == 'p' then
  if wait == 0 then return reply(1, debt, 0) end
  return reply(0, debt, wait)
end
if limit >= 0 and wait > limit then
  return reply(0, debt, wait)
end
keep(due)
return reply(1, due, wait)
""")


def checked_n(n: object, burst: int) -> int:
    """n checked as the compiled limiter checks it: an int from 1 to burst."""
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"n must be an int from 1 to the limiter's burst, got {type(n).__name__}")
    if n < 1:
        raise ValueError(f"n must be an int from 1 to the limiter's burst, got {n}")
    if n > burst:
        raise ValueError(f"n={n} can never be admitted: n must be an int from 1 to burst={burst}")
    return int(n)


def check_depth(interval: int, burst: int) -> None:
    if interval * burst > DEPTH_MAX_NS:
        raise ValueError(f"burst x per / rate must be at most 2**52 ns (about 52 days) on a Redis store, got "
                         f"burst={burst} x {interval} ns")  # fmt: skip


Reply = tuple[int, int, int, int, int]  # admitted, remaining, retry_after_ns, reset_after_ns, wait_ns


def reply(raw: Sequence[Any]) -> Reply:
    return int(raw[0]), int(raw[1]), int(raw[2]), int(raw[3]), int(raw[4])


def bools(values: list[bool]) -> Any:
    """values as an array of bools: numpy's when numpy is importable, else a memoryview '?'."""
    try:
        import numpy
    except ImportError:
        return memoryview(bytearray(values)).cast("?")
    return numpy.array(values, dtype=numpy.bool_)

