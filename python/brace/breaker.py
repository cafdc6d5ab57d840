"""brace.CircuitBreaker: resilience4j's breaker with a compiled closed-state path."""

# size: one primitive (its configuration's checks, its state and metrics, its overrides, its shared store)

from __future__ import annotations

import collections
import enum
import math
import sys
import threading
import weakref
from collections.abc import Awaitable
from datetime import timedelta
from typing import Any, Callable, ClassVar, Literal, NamedTuple, NoReturn, ParamSpec, TypeVar, Union, cast

import os
import random

from brace import _config, _guarding, _redis, _redis_breaker, _slots, _stores
from brace._core import (
    CALLABLE_GUARDED,
    HALF_OPEN_CALLS_MAX,
    RERAISE,
    WINDOW_CALLS_MAX,
    WINDOW_COUNT_MAX,
    WINDOW_TIME_MAX,
    CircuitBreakerCore,
    is_awaitable,
    now_ns,
)
from brace._listeners import Listeners, Observable
from brace._logger import logger
from brace._stages import status_threshold
from brace.errors import CircuitOpen, StoreError

__all__ = ["BreakerCalls", "BreakerEvent", "BreakerMetrics", "BreakerState", "CircuitBreaker", "EventKind", "RedisCircuitBreaker"]

P = ParamSpec("P")
R = TypeVar("R")

_NS = 1_000_000_000
SHARED_MAX_WAIT_IN_HALF_OPEN = 60.0  # s: bounds how long a hung process's probe holds a shared breaker
_BY_STORE: Any = object()  # max_wait_in_half_open's default: None, or the above for a shared breaker
_KEEP: Any = object()  # reconfigure()'s default: the setting stays as it is

# The settings reconfigure() changes on a breaker in use: all but name and the store's.
LIVE_SETTINGS = (
    "failure_rate_threshold", "slow_call_rate_threshold", "slow_call_duration", "window", "window_size",
    "window_bucket", "minimum_calls", "wait_in_open", "wait_in_open_multiplier", "max_wait_in_open",
    "wait_in_open_jitter", "half_open_calls", "max_wait_in_half_open", "consecutive_failures", "record", "ignore",
    "record_result",
)  # fmt: skip

# Named breakers, for brace.control to find by name. Weak, so that being named
# keeps no breaker alive; the lock keeps a snapshot from racing a registration.
_registry: weakref.WeakValueDictionary[str, CircuitBreaker] = weakref.WeakValueDictionary()
_registry_lock = threading.Lock()


def named_breakers() -> dict[str, CircuitBreaker]:
    """The live named breakers, by name (a snapshot)."""
    with _registry_lock:
        return dict(_registry.items())

WaitInOpen = Union[float, timedelta, Callable[[int], Union[float, timedelta]]]
EventKind = Literal["state_transition", "not_permitted", "success", "error", "ignored_error", "would_open",
                    "store_lost", "store_back"]
_EVENT_KINDS = ("state_transition", "not_permitted", "success", "error", "ignored_error", "would_open")


class BreakerState(enum.Enum):
    """A circuit breaker's state."""

    CLOSED = "closed"  # permits every call, counts outcomes
    OPEN = "open"  # rejects every call until its wait has passed
    HALF_OPEN = "half_open"  # permits a few probe calls and decides on them
    DISABLED = "disabled"  # permits every call, never changes state
    FORCED_OPEN = "forced_open"  # rejects every call until changed by hand
    METRICS_ONLY = "metrics_only"  # counts and reports, never changes state


# In the order of the C core's BRC_CLOSED (1) .. BRC_METRICS_ONLY (6).
_STATES = (None, *BreakerState)
_STATE_CODES = {state: code for code, state in enumerate(_STATES) if state is not None}


class BreakerMetrics(NamedTuple):
    """A breaker's counters at one instant.

    Attributes:
        state: The current state.
        failure_rate: Failed / recorded calls in the window, or None while the
            window holds fewer than `minimum_calls` calls.
        slow_call_rate: Slow / recorded calls, or None likewise.
        calls: Calls recorded in the window.
        failures: Failed calls in the window.
        slow_calls: Slow calls (failed or not) in the window.
        slow_failures: Calls both slow and failed.
        not_permitted: Calls rejected since creation or the last reset().
        time_until_half_open: Seconds until an OPEN breaker lets probes in; 0.0 otherwise.
        openings: Consecutive openings since the breaker last closed.
    """

    state: BreakerState
    failure_rate: float | None
    slow_call_rate: float | None
    calls: int
    failures: int
    slow_calls: int
    slow_failures: int
    not_permitted: int
    time_until_half_open: float
    openings: int


class BreakerCalls(NamedTuple):
    """A breaker's calls by how they ended, counted since it was made or last reset().

    Unlike BreakerMetrics' window counts these only grow (resilience4j's
    `resilience4j_circuitbreaker_calls`): each is a relaxed atomic add where the
    outcome is recorded anyway. A breaker in a shared-memory store counts the
    calls of every process sharing it; one on a Redis store counts this host's.

    Attributes:
        successful: Calls recorded as successes (in any state, probes included).
        failed: Calls recorded as failures.
        slow: Calls at least `slow_call_duration` long, successful or failed (also
            counted in one of the two above).
        ignored: Calls that raised an exception `ignore` accepts (cancellations and
            other BaseExceptions count in no kind).
        not_permitted: Calls rejected with CircuitOpen (or, on a Redis store with
            on_store_error="closed" while it is away, with StoreUnavailable).
    """

    successful: int
    failed: int
    slow: int
    ignored: int
    not_permitted: int


class BreakerEvent(NamedTuple):
    """What a listener receives.

    Attributes:
        kind: "state_transition", "not_permitted", "success", "error",
            "ignored_error" or "would_open" (a METRICS_ONLY breaker crossed a threshold);
            a breaker on a Redis store also emits "store_lost" (a round trip failed)
            and "store_back" (the server answers again).
        name: The breaker's name, or None (also as `breaker`, its older name).
        at: When it happened, seconds on brace's clock.
        from_state: The state left (state_transition only).
        to_state: The state entered (state_transition only).
        duration: Seconds the call took, when measured (slow-call detection on).
        error: The exception (error, ignored_error, not_permitted).
    """

    kind: EventKind
    name: str | None
    at: float
    from_state: BreakerState | None = None
    to_state: BreakerState | None = None
    duration: float | None = None
    error: BaseException | None = None

    @property
    def breaker(self) -> str | None:
        """The breaker's name: `name`, under the field's older name."""
        return self.name


Listener = Callable[[BreakerEvent], object]


def _window(window: object, window_size: object, window_bucket: object, minimum_calls: object,
            consecutive_failures: object) -> tuple[int, float, int]:  # fmt: skip
    """The window's (size, bucket seconds, minimum calls), checked against each other."""
    if window not in ("count", "time"):
        raise ValueError(f"window must be 'count' or 'time', got {window!r}")
    size_max = WINDOW_COUNT_MAX if window == "count" else WINDOW_TIME_MAX
    size = _config.count(window_size, "window_size", maximum=size_max)
    bucket = _config.positive_duration(window_bucket, "window_bucket")
    minimum = _config.count(minimum_calls, "minimum_calls", maximum=WINDOW_CALLS_MAX)
    if window == "count" and minimum > size and consecutive_failures is None:
        raise ValueError(
            f"minimum_calls must be at most window_size ({size}) for a count window, "
            f"which never holds more calls; got {minimum}"
        )
    return size, bucket, minimum


def _wait_growth(wait_base: float, multiplier: object, max_wait: object, jitter: object) -> float | None:
    """Checks how the open wait grows (multiplier, jitter) and returns its cap in seconds, if any."""
    if isinstance(multiplier, bool) or not isinstance(multiplier, (int, float)):
        raise TypeError(f"wait_in_open_multiplier must be a number >= 1, got {type(multiplier).__name__}")
    if not (math.isfinite(multiplier) and multiplier >= 1):
        raise ValueError(f"wait_in_open_multiplier must be a finite number >= 1, got {multiplier!r}")
    wait_max = _config.duration(max_wait, "max_wait_in_open", allow_none=True)
    if wait_max is not None and wait_max < wait_base:
        raise ValueError(f"max_wait_in_open must be >= wait_in_open ({wait_base:g} s), got {wait_max:g}")
    if isinstance(jitter, bool) or not isinstance(jitter, (int, float)):
        raise TypeError(f"wait_in_open_jitter must be a number in [0, 1), got {type(jitter).__name__}")
    if not (0 <= jitter < 1):
        raise ValueError(f"wait_in_open_jitter must be a number in [0, 1), got {jitter!r}")
    return wait_max


def _not_shared(store: object, flush_interval: object, on_store_error: object) -> None:
    """ValueError for the Redis store's options given with another store."""
    _redis.check_failure_policy(on_store_error, None, store, "CircuitBreaker")
    if flush_interval is not None and not _redis.is_redis(store):
        raise ValueError(f"flush_interval is only meaningful with a Redis store (store='redis://...' or a "
                         f"client); this CircuitBreaker's store is {store!r}")  # fmt: skip


class _Settings(NamedTuple):
    """A breaker's settings, checked: what the compiled core takes, and what Python keeps."""

    core: dict[str, Any]  # CircuitBreakerCore._configure's and _reconfigure's keywords
    slow_ns: int | None  # calls at least this long are slow; None: calls are not timed
    window: str
    window_size: int
    minimum_calls: int
    failure_rate: float
    wait_fn: Callable[[int], float | timedelta] | None
    first_wait_ns: int
    record_filter: Callable[[BaseException], object]
    ignore_filter: Callable[[BaseException], object]
    record_result: Callable[[Any], bool] | None


def _checked(given: dict[str, Any], store: object) -> _Settings:
    """Checks the live settings (every name in LIVE_SETTINGS) against each other; changes nothing."""
    # size: one check per setting (17 of them), each in a line or two
    failure_rate = _rate_threshold(given["failure_rate_threshold"], "failure_rate_threshold")
    slow_rate = _rate_threshold(given["slow_call_rate_threshold"], "slow_call_rate_threshold")
    slow = _config.duration(given["slow_call_duration"], "slow_call_duration", allow_none=True, positive=True)
    consecutive_failures = given["consecutive_failures"]
    window = given["window"]
    size, bucket, minimum = _window(window, given["window_size"], given["window_bucket"], given["minimum_calls"],
                                    consecutive_failures)  # fmt: skip
    wait_in_open = given["wait_in_open"]
    wait_fn: Callable[[int], float | timedelta] | None = None
    if callable(wait_in_open) and not isinstance(wait_in_open, timedelta):
        wait_fn = wait_in_open
        wait_base = CircuitBreaker._wait_from(wait_in_open, 1)
    else:
        wait_base = _config.positive_duration(wait_in_open, "wait_in_open")
    multiplier, jitter = given["wait_in_open_multiplier"], given["wait_in_open_jitter"]
    wait_max = _wait_growth(wait_base, multiplier, given["max_wait_in_open"], jitter)
    probes = _config.count(given["half_open_calls"], "half_open_calls", maximum=HALF_OPEN_CALLS_MAX)
    max_wait_in_half_open = given["max_wait_in_half_open"]
    if max_wait_in_half_open is _BY_STORE:  # None, or a bound for a shared breaker's dead probes
        max_wait_in_half_open = None if store is None else SHARED_MAX_WAIT_IN_HALF_OPEN
    max_half_open = _config.duration(max_wait_in_half_open, "max_wait_in_half_open", allow_none=True, positive=True)
    consecutive = 0 if consecutive_failures is None else _config.count(consecutive_failures, "consecutive_failures")
    record_filter = _config.exception_filter(given["record"], "record")
    ignore_filter = _config.exception_filter(given["ignore"], "ignore")
    record_result = given["record_result"]
    if record_result is not None and not callable(record_result):
        raise TypeError(f"record_result must be a predicate or None, got {type(record_result).__name__}")
    core: dict[str, Any] = dict(
        window_kind=1 if window == "count" else 2, window_size=size,
        bucket_ns=_ns(bucket), failure_rate=failure_rate, slow_rate=slow_rate,
        minimum_calls=minimum, consecutive_failures=consecutive, half_open_calls=probes,
        max_half_open_ns=0 if max_half_open is None else _ns(max_half_open),
        wait_base_ns=_ns(wait_base), wait_multiplier=float(multiplier),
        wait_max_ns=_wait_cap_ns(wait_base, float(multiplier), wait_max),
        wait_jitter=float(jitter),
    )  # fmt: skip
    return _Settings(
        core, None if slow is None else _ns(slow), window, size, minimum, failure_rate, wait_fn, _ns(wait_base),
        record_filter, ignore_filter, record_result,
    )  # fmt: skip


def _register(name: str, breaker: CircuitBreaker) -> None:
    with _registry_lock:
        _registry[name] = breaker


def _rate_threshold(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number in (0, 1], got {type(value).__name__}")
    if not (0 < value <= 1):
        raise ValueError(f"{name} must be a number in (0, 1], got {value!r}")
    return float(value)


def _ns(seconds: float) -> int:
    return max(1, round(seconds * _NS))


def _wait_cap_ns(wait_base: float, multiplier: float, wait_max: float | None) -> int:
    if wait_max is not None:
        return min(_ns(wait_max), _config.MAX_DEPTH_NS)
    return _ns(wait_base) if multiplier == 1 else _config.MAX_DEPTH_NS


class CircuitBreaker(CircuitBreakerCore, Observable[BreakerEvent]):
    """A circuit breaker with resilience4j's semantics.

    CLOSED, it permits every call and records outcomes in a sliding window;
    once the window holds at least `minimum_calls` calls and the failure rate
    (or the slow-call rate) reaches its threshold, it OPENs and rejects calls
    with `brace.CircuitOpen` for `wait_in_open`. Then it goes HALF_OPEN and
    permits exactly `half_open_calls` probes: if their failure and slow rates
    stay below the thresholds it closes (with a fresh window), else it opens
    again, for longer if the wait grows with the opening count. With
    `consecutive_failures=N` it instead opens after N failures in a row, and
    one failed probe re-opens it.

    No lock is ever held while your function runs. The closed-state path of a
    decorated sync function is compiled: a few atomic operations and no
    allocation.

    Args:
        name: A name for errors, events and metrics, and for `brace.control`
            to find the breaker by (a later breaker with the same name
            replaces this one there).
        failure_rate_threshold: Failure rate in (0, 1] at which to open.
        slow_call_rate_threshold: Slow-call rate in (0, 1] at which to open.
        slow_call_duration: Calls taking at least this long are slow (seconds
            or timedelta); None: calls are not timed.
        window: "count" (the last `window_size` calls) or "time" (the last
            `window_size` buckets of `window_bucket` seconds).
        window_size: 1..16384 calls, or 1..3600 buckets.
        window_bucket: Bucket width of a time window (seconds or timedelta).
        minimum_calls: Calls the window must hold before a rate can open it,
            1 to 2**32 - 1 (for a count window, at most `window_size`).
        wait_in_open: Time spent OPEN (seconds or timedelta), or a function
            of the opening count (1, 2, ... since the last close) returning it.
            A function is called at construction for opening 1 (so a bad one
            fails there) and at every opening; if it raises or returns an
            invalid wait at a later opening, that is logged to the "brace"
            logger and the breaker waits what it returned for opening 1: the
            call that opened the breaker keeps its own result or exception.
        wait_in_open_multiplier: >= 1: the wait grows by this factor per
            consecutive opening (with a numeric `wait_in_open`).
        max_wait_in_open: Cap on the grown wait; default: no growth cap
            beyond 2**62 ns.
        wait_in_open_jitter: In [0, 1): the wait varies by +-this fraction, so
            that many processes do not probe in lockstep.
        half_open_calls: Probes permitted in HALF_OPEN, 1..1023.
        max_wait_in_half_open: Re-open if the probes have not all finished
            after this long; None: wait for them. Default: None, or 60 s
            for a shared breaker (store=): a probe whose process dies is
            given back within 10 ms (its lease is swept), but one whose
            process hangs never finishes, and this bounds how long it keeps
            the breaker HALF_OPEN (then OPEN for wait_in_open, then fresh
            probes). A shared breaker given None waits for such a probe forever.
        consecutive_failures: Open after this many failures in a row (simple
            mode), 1 to 2**63 - 1; None: rate mode.
        record: Which exceptions count as failures: exception types or a
            predicate (default: every Exception). Others count as successes.
        ignore: Exceptions that count as neither (types or a predicate).
        record_result: A predicate on return values that counts as failures.
        store: Where the state and window live. None: in this object.
            "shm://REGION" (see RateLimiter and brace.shm): in a shared-memory
            region, in the slot named `name` (required), so that every
            process's breaker of that store and name opens and closes as one.
            The first process fixes the configuration above (ValueError, naming
            the fields that differ, for another); slow_call_duration, record,
            ignore, record_result, a wait_in_open function and listeners stay
            each process's own (a process sees the transitions it makes).
            "redis://...", "rediss://...", "unix://..." or a Redis client (as
            for RateLimiter; `name` required): every host that creates a
            CircuitBreaker with the same store and name shares its state. Each
            host still decides in its compiled breaker (the closed-state path
            makes no round trip); a background thread sends the host's window
            to the server every `flush_interval` and applies the shared state:
            the cluster's window (the sum of the hosts') opens it for every
            host, and so does one host's own opening, seen by the others
            within flush_interval plus one round trip. HALF_OPEN admits
            exactly `half_open_calls` probes cluster-wide, each holding a lease
            that expires after max_wait_in_half_open (default 60 s there), so
            a dead host's probe is given to another. See README "Many hosts".
        flush_interval: With a Redis store only: seconds (or timedelta)
            between flushes, 1 ms to 1 hour; default 0.25.
        on_store_error: With a Redis store only: what the breaker does while
            the server is away. "local" (default) and "open": the host's own
            breaker decides every call, probes included (the closed-state path
            never needs the server). "closed": every call is refused with
            brace.StoreUnavailable while this process knows the server is down
            (the breaker reads FORCED_OPEN then; back to CLOSED, then the
            server's state, once it answers; a state set by hand stays).
            A coroutine caller awaits a probe's lease (the loop never waits on
            the socket); a sync caller makes it on its thread.

    Every duration is 1 ns to 2**62 ns (~146 years): brace keeps time in
    whole nanoseconds, and nothing shorter or longer is rounded or clamped.

    Raises:
        ValueError, TypeError: For configuration outside the ranges above.
    """

    #: The kinds of event this primitive emits (add_listener's `kinds`).
    event_kinds: ClassVar[tuple[str, ...]] = _EVENT_KINDS

    __slots__ = (
        "_breaker_name", "_record_filter", "_ignore_filter", "_record_result", "_wait_fn", "_first_wait_ns",
        "_listeners",
        "_window_kind", "_window_size", "_minimum_calls", "_calls_offset", "_store",
        "_failure_rate_threshold", "_given", "_settings",
    )  # fmt: skip

    def __init__(
        self,
        *positional: NoReturn,
        name: str | None = None,
        failure_rate_threshold: float = 0.5,
        slow_call_rate_threshold: float = 1.0,
        slow_call_duration: float | timedelta | None = None,
        window: Literal["count", "time"] = "count",
        window_size: int = 100,
        window_bucket: float | timedelta = 1.0,
        minimum_calls: int = 100,
        wait_in_open: WaitInOpen = 60.0,
        wait_in_open_multiplier: float = 1.0,
        max_wait_in_open: float | timedelta | None = None,
        wait_in_open_jitter: float = 0.0,
        half_open_calls: int = 10,
        max_wait_in_half_open: float | timedelta | None = _BY_STORE,
        consecutive_failures: int | None = None,
        record: _config.ExceptionFilter = Exception,
        ignore: _config.ExceptionFilter = (),
        record_result: Callable[[Any], bool] | None = None,
        store: object = None,
        flush_interval: float | timedelta | None = None,
        on_store_error: _redis.OnStoreError | None = None,
    ) -> None:
        _config.keywords_only("CircuitBreaker", positional)
        _not_shared(store, flush_interval, on_store_error)
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name must be a str or None, got {type(name).__name__}")
        given = dict(
            failure_rate_threshold=failure_rate_threshold, slow_call_rate_threshold=slow_call_rate_threshold,
            slow_call_duration=slow_call_duration, window=window, window_size=window_size,
            window_bucket=window_bucket, minimum_calls=minimum_calls, wait_in_open=wait_in_open,
            wait_in_open_multiplier=wait_in_open_multiplier, max_wait_in_open=max_wait_in_open,
            wait_in_open_jitter=wait_in_open_jitter, half_open_calls=half_open_calls,
            max_wait_in_half_open=max_wait_in_half_open, consecutive_failures=consecutive_failures,
            record=record, ignore=ignore, record_result=record_result,
        )  # fmt: skip
        settings = _checked(given, store)
        self._take(settings, given)
        self._breaker_name = name
        self._listeners: Listeners[BreakerEvent] = Listeners(f"breaker {name!r}" if name else "a breaker",
                                                             _EVENT_KINDS)  # fmt: skip
        self._calls_offset = BreakerCalls(0, 0, 0, 0, 0)
        self._configure_in(cast("str | None", store), settings.core, name=name, **self._python_facts(settings))
        self._update_hooks()
        if name is not None:
            _register(name, self)

    def __new__(cls, *positional: object, **config: object) -> CircuitBreaker:
        if cls is CircuitBreaker and _redis.is_redis(config.get("store")):
            return super().__new__(RedisCircuitBreaker)
        return super().__new__(cls)

    def _configure_in(self, store: str | None, settings: dict[str, Any], **facts: Any) -> None:
        """Configures the state in this object, or in the store's shared slot named `name`."""
        self._store = store
        shared = _stores.parse(store)
        if shared is None:
            self._configure(**settings, **facts)
            return
        slot = _stores.slot_name(facts["name"], "CircuitBreaker")
        region = _stores.region(*shared)
        if not self._configure(**settings, **facts, region=region, slot=slot):
            raise ValueError(_slots.breaker_mismatch(region.slot_info(slot), store, slot, settings))

    def _take(self, settings: _Settings, given: dict[str, Any]) -> None:
        """Keeps the settings Python applies (the compiled core keeps the rest)."""
        self._given, self._settings = given, settings
        self._window_kind, self._window_size, self._minimum_calls = settings.window, settings.window_size, \
            settings.minimum_calls
        self._failure_rate_threshold = settings.failure_rate
        self._wait_fn, self._first_wait_ns = settings.wait_fn, settings.first_wait_ns
        self._record_filter, self._ignore_filter = settings.record_filter, settings.ignore_filter
        self._record_result = settings.record_result

    @staticmethod
    def _python_facts(settings: _Settings) -> dict[str, Any]:
        """The core's keywords about the calls Python times and judges."""
        return dict(slow_ns=settings.slow_ns, checks_result=settings.record_result is not None,
                    passes_below=status_threshold(settings.record_result))

    def reconfigure(
        self,
        *positional: NoReturn,
        failure_rate_threshold: float = _KEEP,
        slow_call_rate_threshold: float = _KEEP,
        slow_call_duration: float | timedelta | None = _KEEP,
        window: Literal["count", "time"] = _KEEP,
        window_size: int = _KEEP,
        window_bucket: float | timedelta = _KEEP,
        minimum_calls: int = _KEEP,
        wait_in_open: WaitInOpen = _KEEP,
        wait_in_open_multiplier: float = _KEEP,
        max_wait_in_open: float | timedelta | None = _KEEP,
        wait_in_open_jitter: float = _KEEP,
        half_open_calls: int = _KEEP,
        max_wait_in_half_open: float | timedelta | None = _KEEP,
        consecutive_failures: int | None = _KEEP,
        record: _config.ExceptionFilter = _KEEP,
        ignore: _config.ExceptionFilter = _KEEP,
        record_result: Callable[[Any], bool] | None = _KEEP,
    ) -> None:
        """Changes settings of the breaker in use, keeping its state; the others keep their values.

        The state and its counts stay: an OPEN breaker stays OPEN for the wait
        it had (the wait settings apply from its next opening), a HALF_OPEN one
        keeps its probes (and decides at once if those completed reach a lowered
        `half_open_calls`), and the window keeps its counts: a count window
        resized keeps its newest outcomes, as many as it now holds; a change of
        kind, or of a time window's size or bucket, starts an empty window. New
        thresholds decide from the next recorded outcome. Concurrent calls see
        the old or the new thresholds, never a mix (the C core publishes them
        at once, with no lock on the calls' path); `record`, `ignore`,
        `record_result` and `slow_call_duration` apply to the calls that end
        after this returns.

        Args: as for the constructor (all but name, store, flush_interval and
            on_store_error), each checked as there; all or nothing.

        Raises:
            ValueError, TypeError: For settings outside their ranges (nothing
                changes), or a shared breaker (store=): its configuration is its
                creator's while its region lives.
        """
        _config.keywords_only("reconfigure", positional)
        passed = locals()
        changes = {setting: passed[setting] for setting in LIVE_SETTINGS if passed[setting] is not _KEEP}
        if self._store is not None:
            raise ValueError(f"reconfigure: the breaker {self._breaker_name!r} in store {self._store!r} is shared; "
                             "its configuration is fixed while its region lives (brace.shm.unlink removes it)")  # fmt: skip
        before, given = (self._settings, self._given), {**self._given, **changes}
        settings = _checked(given, None)
        self._take(settings, given)  # first: a transition made by the reconfigure calls the new wait function
        try:
            self._reconfigure(**settings.core, **self._python_facts(settings))
        except BaseException:
            self._take(*before)
            raise
        self._update_hooks()

    @staticmethod
    def _wait_from(wait_fn: Callable[[int], float | timedelta], openings: int) -> float:
        return _config.positive_duration(wait_fn(openings), "wait_in_open(openings)")

    # -- public state -----------------------------------------------------------

    @property
    def name(self) -> str | None:
        """The breaker's name, or None."""
        return self._breaker_name

    @property
    def failure_rate_threshold(self) -> float:
        """The failure rate in (0, 1] at which the breaker opens (once it holds minimum_calls)."""
        return self._failure_rate_threshold

    @property
    def store(self) -> str | None:
        """Where the state lives: None (in this object) or "shm://REGION"."""
        return self._store

    @property
    def state(self) -> BreakerState:
        """The current state."""
        return cast(BreakerState, _STATES[self._report()[0]])

    def metrics(self) -> BreakerMetrics:
        """The breaker's counters now (see BreakerMetrics)."""
        state, _, openings, not_permitted, _, retry_after, _ = self._report()
        calls, failures, slow_calls, slow_failures, _ = self._window_counts()
        rated = calls >= self._minimum_calls and calls > 0
        return BreakerMetrics(
            state=cast(BreakerState, _STATES[state]),
            failure_rate=failures / calls if rated else None,
            slow_call_rate=slow_calls / calls if rated else None,
            calls=calls, failures=failures, slow_calls=slow_calls, slow_failures=slow_failures,
            not_permitted=not_permitted - self._calls_offset.not_permitted,
            time_until_half_open=retry_after / _NS, openings=openings,
        )  # fmt: skip

    def calls(self) -> BreakerCalls:
        """The calls since the breaker was made or last reset(), by how they ended (see BreakerCalls)."""
        offset = self._calls_offset
        return BreakerCalls(*(count - before for count, before in zip(self._calls(), offset)))

    # -- manual overrides -------------------------------------------------------

    def force_open(self) -> None:
        """Rejects every call until changed by hand (FORCED_OPEN)."""
        self._transition(_STATE_CODES[BreakerState.FORCED_OPEN])

    def disable(self) -> None:
        """Permits every call and never changes state (DISABLED)."""
        self._transition(_STATE_CODES[BreakerState.DISABLED])

    def metrics_only(self) -> None:
        """Records and reports, but never opens (METRICS_ONLY): a shadow mode."""
        self._transition(_STATE_CODES[BreakerState.METRICS_ONLY])

    def close(self) -> None:
        """Closes the breaker with an empty window."""
        self._transition(_STATE_CODES[BreakerState.CLOSED])

    def reset(self) -> None:
        """Closes the breaker with an empty window and zeroes its counters."""
        self.close()
        self._calls_offset = BreakerCalls(*self._calls())

    # -- events -----------------------------------------------------------------

    def _listeners_changed(self) -> None:
        self._update_hooks()

    def _update_hooks(self) -> None:
        wants = self._listeners.wants
        self._set_hooks(
            self._wait_fn is not None or wants("state_transition"),
            wants("success") or wants("would_open"),
            wants("not_permitted"),
        )

    def _emit(self, kind: EventKind, **facts: Any) -> None:
        if self._listeners.wants(kind):
            self._listeners.emit(BreakerEvent(kind, self._breaker_name, now_ns() / _NS, **facts), kind)

    # -- called by the compiled core (rare paths) ------------------------------

    def _wait_ns(self, wait_fn: Callable[[int], float | timedelta], openings: int) -> int:
        """The wait function's wait for this opening; its wait for opening 1 if it fails now.

        Called while recording a call's outcome: a failure here must not take
        the place of that call's result or exception.
        """
        try:
            return _ns(self._wait_from(wait_fn, openings))
        except Exception:
            logger().exception("brace: wait_in_open(%d) of breaker %r failed; waiting %g s, its wait for opening 1",
                           openings, self._breaker_name, self._first_wait_ns / _NS)  # fmt: skip
            return self._first_wait_ns

    def _on_transition(self, from_code: int, to_code: int) -> None:
        to_state = _STATES[to_code]
        if to_state is BreakerState.OPEN and self._wait_fn is not None:
            generation, openings = self._report()[1:3]
            self._set_open_until(generation, now_ns() + self._wait_ns(self._wait_fn, max(openings, 1)))
        self._emit("state_transition", from_state=_STATES[from_code], to_state=to_state)

    def _on_rejected(self, error: CircuitOpen) -> None:
        self._emit("not_permitted", error=error)

    # Probes leased from a Redis store (RedisCircuitBreaker): a local breaker's tickets never call these.
    def _probe_admitted(self, token: int) -> None:
        return None

    def _probe_done(self, outcome: int) -> None:
        return None

    def _probe_given_back(self) -> None:
        return None

    async def _lease_async(self, token: int) -> int:
        raise AssertionError("only a breaker on a Redis store admits probes that lease remotely")

    async def _aenter_probe(self, token: int) -> CircuitBreaker:
        raise AssertionError("only a breaker on a Redis store admits probes that lease remotely")

    def _store_refusal(self) -> BaseException:
        raise AssertionError("only a breaker on a Redis store refuses calls for its store")

    def _on_success(self, duration_ns: int, would_open: bool) -> None:
        duration = duration_ns / _NS if duration_ns else None
        self._emit("success", duration=duration)
        if would_open:
            self._emit("would_open")

    def _on_error(self, error: BaseException, token: int, start: int) -> None:
        """Classifies an exception raised by a guarded call, and records it."""
        try:
            ignored = not isinstance(error, Exception) or bool(self._ignore_filter(error))
            failure = not ignored and bool(self._record_filter(error))
        except BaseException:
            self._release(token)  # a predicate that raises must not keep a probe slot
            raise
        if ignored:
            # Cancellation, KeyboardInterrupt and ignored errors: the permission
            # (maybe a half-open probe slot) is given back, nothing counts in the window.
            if isinstance(error, Exception):
                self._ignore(token)
                self._emit("ignored_error", error=error)
            else:
                self._release(token)
            return
        self._record_and_tell(token, failure, start, error)

    def _check_result(self, result: object, token: int, start: int) -> object:
        """Records a returned value, a failure if `record_result` says so."""
        predicate = self._record_result  # None: a reconfigure removed it since the call began
        try:
            failure = predicate is not None and bool(predicate(result))
        except BaseException:
            self._release(token)
            raise
        self._record_and_tell(token, failure, start)
        return result

    # The compiled wrapper's slow paths (pyx/guard.h).
    def _guard_failed(self, fn: object, args: object, kwargs: object, error: BaseException, token: int,
                      start: int) -> object:  # fmt: skip
        self._on_error(error, token, start)
        return RERAISE

    def _guard_result(self, fn: object, args: object, kwargs: object, result: object, token: int,
                      start: int) -> object:  # fmt: skip
        return self._check_result(result, token, start)

    def _record_and_tell(self, token: int, failure: bool, start: int, error: BaseException | None = None) -> None:
        """Records an outcome decided in Python and tells the listeners."""
        would_open, duration_ns = self._record(token, failure, start)
        if self._listeners:
            duration = duration_ns / _NS if duration_ns else None
            self._emit("error" if failure else "success", duration=duration, error=error if failure else None)
            if would_open:
                self._emit("would_open")

    def _guard_awaitable(self, fn: object, args: object, kwargs: object, awaitable: Awaitable[Any], token: int,
                         start: int) -> Awaitable[Any]:  # fmt: skip
        """A decorated plain function returned an awaitable: its awaited outcome is the call's."""
        return self._adopt(awaitable, token, start)

    async def _adopt(self, awaitable: Awaitable[Any], token: int, start: int) -> Any:
        try:
            result = await awaitable
        except BaseException as error:
            self._on_error(error, token, start)
            raise
        return self._finish(result, token, start)

    # -- ways to guard a call ---------------------------------------------------

    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]:
        """Decorates fn (sync or async) so that every call goes through the breaker.

        A function this breaker already decorates is returned as it is. A
        plain function that returns an awaitable gets its awaited outcome
        recorded, as a coroutine function would.
        """
        return _guarding.guard_function(self, fn, self._guard, self._guard_async)

    def _guard_async(self, fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def guarded_async(*args: Any, **kwargs: Any) -> Any:
            # _adopt's body, inlined: one coroutine less per call.
            token, start, probe = self._admit_deferring()
            if probe:
                start = await self._lease_async(token)
            try:
                result = await fn(*args, **kwargs)
            except BaseException as error:
                self._on_error(error, token, start)
                raise
            return self._finish(result, token, start)

        return guarded_async

    def _call_slow(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """`call`'s rare path (pyx/entries.h): fn is not a plain function the compiled
        entry could judge (a coroutine function, one guarded already, a partial, ...)."""
        if _guarding.sync_entry(fn, self, "CircuitBreaker.call"):
            return _guarding.call_guarded(fn, args, kwargs, "CircuitBreaker.call")
        token, start = self._enter()
        try:
            result = fn(*args, **kwargs)
        except BaseException as error:
            self._on_error(error, token, start)
            raise
        if is_awaitable(result):
            self._release(token)
            raise _guarding.refuse_awaitable(result, fn, "CircuitBreaker.call")
        return self._finish(result, token, start)

    async def call_async(self, fn: Callable[P, Awaitable[R]], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Awaits fn(*args, **kwargs) under the breaker (a plain fn's value is used as it is)."""
        if _guarding.kind(fn, self) == CALLABLE_GUARDED:
            return cast(R, await _guarding.awaited(fn(*args, **kwargs)))
        token, start, probe = self._admit_deferring()
        if probe:
            start = await self._lease_async(token)
        try:
            first = fn(*args, **kwargs)
        except BaseException as error:
            self._on_error(error, token, start)
            raise
        return cast(R, await self._adopt(_guarding.awaited(first), token, start))

    # -- the stage protocol (brace._stages.AdmissionStage): what a Policy asks of it

    _brace_stage_in_python = False

    def _brace_stage_admit(self) -> int:
        return self._enter()[0]

    async def _brace_stage_admit_async(self) -> int:
        token, _, probe = self._admit_deferring()
        if probe:
            await self._lease_async(token)
        return int(token)

    def _brace_stage_give_back(self, ticket: int) -> None:
        self._release(ticket)

    def _brace_stage_failed(self, ticket: int, start: int, error: BaseException) -> None:
        self._on_error(error, ticket, start)

    def _brace_stage_returned(self, ticket: int, start: int, result: R) -> R:
        return self._finish(result, ticket, start)

    def __repr__(self) -> str:
        name = f"name={self._breaker_name!r}, " if self._breaker_name else ""
        return f"CircuitBreaker({name}state={self.state.value}, window={self._window_kind}:{self._window_size})"


_CLOSED, _OPEN, _HALF_OPEN, _FORCED_OPEN = (_STATE_CODES[state] for state in (
    BreakerState.CLOSED, BreakerState.OPEN, BreakerState.HALF_OPEN, BreakerState.FORCED_OPEN))  # fmt: skip
_FLUSH_INTERVAL_MAX = 3600.0
_REFUSAL_KEPT_NS = 20_000_000  # a refused probe refuses this host's next probes for 20 ms without asking
_live: weakref.WeakSet[RedisCircuitBreaker] = weakref.WeakSet()  # for a forked child to restart their flushers


def _on_a_loop() -> bool:
    """Whether this thread runs an asyncio event loop (whose thread must not wait on a socket)."""
    asyncio = sys.modules.get("asyncio")  # not imported: no loop runs
    if asyncio is None:
        return False
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _flusher(ref: weakref.ref[RedisCircuitBreaker], wake: threading.Event, interval: float) -> None:
    """A Redis breaker's background thread: flushes every `interval` (or when woken) until the
    breaker is gone. Holds it only during a flush."""
    while True:
        wake.wait(interval)
        wake.clear()
        breaker = ref()
        if breaker is None or breaker._flusher_wake is not wake:
            return
        try:
            breaker._flush()
        except Exception:
            logger().exception("brace: flushing breaker %r to its store failed", breaker._breaker_name)
        del breaker


class RedisCircuitBreaker(CircuitBreaker):
    """brace.CircuitBreaker with a Redis store (see brace.CircuitBreaker)."""

    event_kinds: ClassVar[tuple[str, ...]] = _redis_breaker.EVENT_KINDS

    __slots__ = ("_redis", "_redis_given", "_keys", "_host", "_flush_interval", "_on_store_error", "_known_gen",
                 "_applying", "_opened_wait_ms", "_leases", "_lease_seq", "_flusher_wake", "_apply_lock",
                 "_script_args", "_refused_until", "_returns")  # fmt: skip

    def __init__(self, *positional: NoReturn, name: str | None = None, store: object = None,
                 flush_interval: float | timedelta | None = None, on_store_error: _redis.OnStoreError | None = None,
                 **config: Any) -> None:  # fmt: skip
        _config.keywords_only("CircuitBreaker", positional)
        key = _redis.key_part(name, "CircuitBreaker")
        self._on_store_error = _redis.check_failure_policy(on_store_error, None, store, "CircuitBreaker")[0]
        interval = _config.positive_duration(_redis_breaker.FLUSH_INTERVAL if flush_interval is None
                                             else flush_interval, "flush_interval")  # fmt: skip
        if not 0.001 <= interval <= _FLUSH_INTERVAL_MAX:
            raise ValueError(f"flush_interval must be 1 ms to 1 hour (seconds or timedelta), got {interval!r}")
        if config.get("max_wait_in_half_open", _BY_STORE) is _BY_STORE:
            config["max_wait_in_half_open"] = SHARED_MAX_WAIT_IN_HALF_OPEN
        super().__init__(name=key, **config)
        self._listeners = Listeners(f"breaker {key!r}", _redis_breaker.EVENT_KINDS)
        lease = config["max_wait_in_half_open"]
        lease_ms = 0 if lease is None else max(1, math.ceil(_config.positive_duration(lease, "max_wait_in_half_open")
                                                            * 1000))  # fmt: skip
        simple = config.get("consecutive_failures") is not None
        size, bucket = config.get("window_size", 100), _config.positive_duration(config.get("window_bucket", 1.0), "window_bucket")
        window_ms = math.ceil(size * bucket * 1000) if config.get("window", "count") == "time" else 0
        self._script_args = dict(
            probes=str(config.get("half_open_calls", 10)),
            lease_ms=str(lease_ms or 365 * 86400 * 1000),  # None: a probe's lease never expires (a year)
            minimum="0" if simple else str(self._minimum_calls),
            failure_rate=repr(self._failure_rate_threshold),
            slow_rate=repr(float(config.get("slow_call_rate_threshold", 1.0))),
            simple="1" if simple else "0",
            stale_ms=str(max(1000, math.ceil(interval * 4000))),
            ttl_ms=str(window_ms + max(60_000, math.ceil(interval * 8000))),
        )  # fmt: skip
        self._store, self._redis_given, self._flush_interval = None, store, interval
        self._redis = _redis.store_for(store)
        try:
            self._redis.sync_client(key)
        except StoreError:
            raise TypeError("store: a CircuitBreaker on Redis needs a URL or a sync client (redis.Redis, "
                            "valkey.Valkey): its flusher is a thread, which an asyncio client cannot "
                            "serve") from None  # fmt: skip
        self._keys = _redis_breaker.keys(key)
        self._refused_until = 0
        self._known_gen, self._applying, self._opened_wait_ms = -1, False, -1  # a forked child keeps them
        self._start_sharing()
        self._redis.watch(self._store_changed)
        self._update_hooks()
        self._flush()  # a new host follows the shared state from its first call
        self._refuse_while_down()  # a store another primitive found down already

    def _start_sharing(self) -> None:
        """This process's id on the store, and its flusher (again in a forked child)."""
        self._host = f"{os.uname().nodename}:{os.getpid()}:{random.getrandbits(32):08x}"
        self._leases: list[str] = []
        self._lease_seq = 0
        # (lease, outcome, mode) of probes that ended on an event loop's thread, for the flusher to send.
        self._returns: collections.deque[tuple[str, int, str]] = collections.deque()
        self._apply_lock = threading.Lock()  # a forked child's own: its parent's flusher may have held it
        self._flusher_wake = wake = threading.Event()
        _live.add(self)
        weakref.finalize(self, wake.set)  # the thread sees the breaker gone at once
        threading.Thread(target=_flusher, args=(weakref.ref(self), wake, self._flush_interval), daemon=True,
                         name=f"brace breaker flusher {self._breaker_name}").start()  # fmt: skip

    @property
    def store(self) -> Any:
        """Where the shared state lives: the URL or client object given."""
        return self._redis_given

    def reconfigure(self, *positional: NoReturn, **changes: Any) -> None:
        """Not for a breaker on a Redis store: every host sends its thresholds with its window,
        so they change by deploying a new configuration everywhere.

        Raises:
            ValueError: Always.
        """
        raise ValueError(f"reconfigure: the breaker {self._breaker_name!r} on store {self._redis.shown} is shared by "
                         "every host; change its settings in each host's configuration")  # fmt: skip

    @property
    def flush_interval(self) -> float:
        """Seconds between flushes of this host's window to the store."""
        return self._flush_interval

    @property
    def on_store_error(self) -> str:
        """What the breaker does while the store is away: "local", "open" or "closed"
        (every call refused with brace.StoreUnavailable)."""
        return self._on_store_error

    @property
    def store_up(self) -> bool:
        """Whether the store answers (False: each host decides alone)."""
        return self._redis.up

    def flush(self) -> None:
        """Sends this host's window and applies the shared state now (the background
        thread does so every flush_interval). A store that is away changes nothing."""
        self._flush()

    # -- the shared state

    def _update_hooks(self) -> None:
        wants = self._listeners.wants
        self._set_hooks(True, wants("success") or wants("would_open"), wants("not_permitted"))

    def _on_transition(self, from_code: int, to_code: int) -> None:
        super()._on_transition(from_code, to_code)
        if to_code == _HALF_OPEN:
            self._set_probe_gen(self._report()[1])  # its probes lease from the store
        elif to_code == _OPEN and from_code == _CLOSED and not self._applying:
            self._opened_wait_ms = max(1, math.ceil(self._report()[5] / 1e6))
            self._flusher_wake.set()  # tell the other hosts now

    def _flush(self) -> None:
        while self._returns:
            self._send_done(*self._returns.popleft())
        calls, failures, slow, _, _ = self._window_counts()
        opened, self._opened_wait_ms = self._opened_wait_ms, -1
        a = self._script_args
        try:
            raw = self._redis.evalsha(_redis_breaker.FLUSH, self._keys, (
                self._host, self._known_gen, calls, failures, slow, opened, a["minimum"], a["failure_rate"],
                a["slow_rate"], a["stale_ms"], a["ttl_ms"], self._next_wait_ms()), self._breaker_name)  # fmt: skip
        except _redis.Outage:
            if opened >= 0:
                self._opened_wait_ms = opened  # told when the store is back
            return
        self._apply(raw, keep_open=opened >= 0)
        if opened >= 0 and raw[1] in (b"closed", "closed") and self._report()[0] == _OPEN:
            self._opened_wait_ms = opened  # the store did not take it (it had lost its state): again

    def _next_wait_ms(self) -> int:
        """The wait of the next opening the cluster decides (counts or probes): this host's
        wait for its next opening count, without jitter."""
        openings = self._report()[2] + 1
        if self._wait_fn is not None:
            return max(1, math.ceil(self._wait_ns(self._wait_fn, openings) / 1e6))
        return max(1, math.ceil(self._first_wait_ns / 1e6))

    def _apply(self, raw: Any, keep_open: bool = False) -> None:
        """Makes the local breaker follow a newer shared state (OPEN until T, or CLOSED; with
        keep_open, not CLOSED: this host opened and the store has yet to take it)."""
        gen, state, left_ms = int(raw[0]), raw[1], int(raw[2])
        with self._apply_lock:
            if gen == self._known_gen:
                return
            newer, self._known_gen = gen > self._known_gen, gen
            local = self._report()[0]
            if not newer or local not in (_CLOSED, _OPEN, _HALF_OPEN):
                return  # the store lost its state (restarted), or a state set by hand here
            self._applying = True
            try:
                if state in (b"open", "open"):
                    if local != _OPEN:
                        self._transition(_OPEN)
                    self._set_open_until(self._report()[1], now_ns() + max(0, left_ms) * 1_000_000)
                elif local != _CLOSED and not keep_open:
                    self._transition(_CLOSED)
            finally:
                self._applying = False

    # -- probes (called by the compiled core for tickets of the HALF_OPEN's generation)

    def _probe_admitted(self, token: int) -> None:
        lease = self._next_lease(token)
        try:
            raw = self._redis.evalsha(_redis_breaker.PROBE, self._keys, self._probe_args(lease), self._breaker_name)
        except _redis.Outage as outage:
            self._probe_without_store(token, outage)
            return
        except BaseException:
            self._release_unleased(token)
            raise
        self._probe_answered(token, lease, raw)

    async def _lease_async(self, token: int) -> int:
        """_probe_admitted for a coroutine: the lease awaited (the loop's thread never waits on
        the socket). The probe's start (0 unless calls are timed)."""
        lease = self._next_lease(token)
        try:
            raw = await self._redis.evalsha_async(_redis_breaker.PROBE, self._keys, self._probe_args(lease),
                                                  self._breaker_name)  # fmt: skip
        except _redis.Outage as outage:
            self._probe_without_store(token, outage)
        except BaseException:  # cancelled while waiting: the server may have granted it all the same
            self._release_unleased(token)
            self._send_later(lease, 0, "g")
            raise
        else:
            self._probe_answered(token, lease, raw)
        return now_ns() if self._measure else 0

    async def _aenter_probe(self, token: int) -> RedisCircuitBreaker:
        start = await self._lease_async(token)
        self._open_block(token, start)
        return self

    def _next_lease(self, token: int) -> str:
        """A new lease id, or (every probe was out a moment ago) gives token back and raises
        CircuitOpen without a round trip."""
        if now_ns() < self._refused_until:
            self._release_unleased(token)
            raise CircuitOpen(name=self._breaker_name, retry_after=0.0)
        self._lease_seq += 1
        return f"{self._host}:{self._lease_seq}"

    def _probe_args(self, lease: str) -> tuple[str, ...]:
        a = self._script_args
        return lease, a["probes"], a["lease_ms"], a["ttl_ms"]

    def _probe_without_store(self, token: int, outage: _redis.Outage) -> None:
        """The store is away: "closed" gives token back and raises StoreUnavailable; else this
        host's breaker decides the probe alone."""
        if self._on_store_error == "closed":
            self._release_unleased(token)
            raise self._redis.unavailable(self._breaker_name, "CircuitBreaker", outage.cause) from None

    def _probe_answered(self, token: int, lease: str, raw: Any) -> None:
        """The store's answer to a lease: kept, or token given back and CircuitOpen raised."""
        if int(raw[0]) == 1:
            self._leases.append(lease)
        elif int(raw[0]) == 0:
            self._release_unleased(token)
            self._refused_until = now_ns() + min(_REFUSAL_KEPT_NS, int(raw[1]) * 1_000_000 or _REFUSAL_KEPT_NS)
            error = CircuitOpen(name=self._breaker_name, retry_after=int(raw[1]) / 1000)
            self._emit("not_permitted", error=error)
            raise error

    def _probe_done(self, outcome: int) -> None:
        self._return_lease(outcome, "d")

    def _probe_given_back(self) -> None:
        self._return_lease(0, "g")

    def _return_lease(self, outcome: int, mode: str) -> None:
        try:
            lease = self._leases.pop()
        except IndexError:
            return  # decided by this host alone (the store was away)
        if _on_a_loop():
            self._send_later(lease, outcome, mode)
        else:
            self._send_done(lease, outcome, mode)

    def _send_later(self, lease: str, outcome: int, mode: str) -> None:
        """A lease's return for the flusher thread to send: a coroutine's probe ended on the
        loop's thread, which must not wait on the socket."""
        self._returns.append((lease, outcome, mode))
        self._flusher_wake.set()

    def _send_done(self, lease: str, outcome: int, mode: str) -> None:
        a = self._script_args
        try:
            raw = self._redis.evalsha(_redis_breaker.DONE, self._keys, (
                lease, mode, outcome & 1, (outcome >> 1) & 1, a["probes"], a["failure_rate"], a["slow_rate"],
                self._next_wait_ms(), a["simple"], a["ttl_ms"]), self._breaker_name)  # fmt: skip
        except (_redis.Outage, StoreError):
            return  # its lease expires; the call's outcome is the caller's, never a store error
        self._apply(raw)

    # -- the store away and back

    def _store_changed(self, kind: str) -> None:
        if kind == "store_back":
            self._serve_again()
            self._flusher_wake.set()
        self._emit(cast(EventKind, kind))
        if kind == "store_lost":
            self._refuse_while_down()

    def _refuse_while_down(self) -> None:
        """on_store_error="closed": FORCED_OPEN, every call refused with StoreUnavailable, until
        the store is back (a state set by hand - disabled, metrics_only, forced_open - stays)."""
        if self._on_store_error != "closed":
            return
        with self._apply_lock:
            if self._store_down or self._redis.up or self._report()[0] not in (_CLOSED, _OPEN, _HALF_OPEN):
                return
            self._set_store_down(True)
            self._applying = True
            try:
                self._transition(_FORCED_OPEN)
            finally:
                self._applying = False

    def _serve_again(self) -> None:
        """The store is back: CLOSED, then the next flush applies the store's state whatever
        its generation (OPEN if the cluster opened meanwhile)."""
        with self._apply_lock:
            if not self._store_down:
                return
            self._applying = True
            try:
                if self._report()[0] == _FORCED_OPEN:
                    self._transition(_CLOSED)
            finally:
                self._applying = False
                self._set_store_down(False)
            self._known_gen = -1

    def _store_refusal(self) -> BaseException:
        error = self._redis.unavailable(self._breaker_name, "CircuitBreaker", None)
        self._emit("not_permitted", error=error)
        return error

    _brace_stage_in_python = False  # the compiled check calls the probe hooks itself

    def __repr__(self) -> str:
        return (f"CircuitBreaker(name={self._breaker_name!r}, state={self.state.value}, "
                f"window={self._window_kind}:{self._window_size}, store={self._redis.shown!r})")  # fmt: skip


def _after_fork_in_child() -> None:
    for breaker in list(_live):
        breaker._start_sharing()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
