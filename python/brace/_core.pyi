# Type stub for the compiled core (pyx/_core.pyx and the .pxi files it includes).

from collections.abc import Iterable
from types import TracebackType
from contextvars import ContextVar
from typing import Any, Awaitable, Callable, Literal, ParamSpec, TypeGuard, TypeVar, overload

import numpy
from numpy.typing import NDArray
from typing_extensions import Buffer, Self

from brace._guarding import UseCallAsync
from brace.integrations._hosts import Host, Hosts
from brace.policy import Policy

_T = TypeVar("_T")
_P = ParamSpec("_P")

RERAISE: object

DURATION_MAX_NS: int

CALLABLE_SYNC: int
CALLABLE_ASYNC: int
CALLABLE_GUARDED: int
CALLABLE_UNKNOWN: int

def callable_kind(fn: object, owner: object) -> int: ...
def is_awaitable(obj: object) -> TypeGuard[Awaitable[Any]]: ...

def now_ns() -> int: ...
def clock_source() -> str: ...
def clock_freeze(now: int) -> None: ...
def clock_advance(delta: int) -> None: ...
def clock_advance_to(target: int) -> None: ...
def clock_thaw() -> None: ...
def clock_is_frozen() -> bool: ...
def rng_seed(seed: int) -> None: ...
def rng_uniform() -> float: ...

REGION_CAPACITY_MIN: int
REGION_CAPACITY_MAX: int
REGION_NAME_MAX: int
REGION_SLOTS: int
KIND_GCRA: int
KIND_BREAKER: int
KIND_BUDGET: int
KIND_KEYED: int
KIND_LEASES: int

class SharedRegion:
    name: str
    def __init__(self, name: str, capacity: int) -> None: ...
    @property
    def capacity(self) -> int: ...
    @property
    def used(self) -> int: ...
    def slot_info(self, slot: str) -> tuple[int, bytes] | None: ...
    @staticmethod
    def unlink(name: str) -> bool: ...

class RateLimiterCore:
    def _configure(self, interval_ns: int, burst: int, name: str | None, max_wait_ns: int | None) -> None: ...
    def _attach(
        self, region: SharedRegion, slot: str, interval_ns: int, burst: int, name: str | None, max_wait_ns: int | None
    ) -> bool: ...
    def _reject_in_python(self, on: bool) -> None: ...
    def _count_rejection(self) -> None: ...
    def _rejections(self) -> int: ...
    def _guard(self, fn: Callable[..., Any]) -> Callable[..., Any]: ...
    @overload
    def call(
        self, fn: Callable[_P, Awaitable[_T]], /, *args: _P.args, **kwargs: _P.kwargs
    ) -> UseCallAsync:
        """A coroutine function: refused (AsyncMisuse, a TypeError); use call_async."""
    @overload
    def call(self, fn: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs) -> _T:
        """Calls fn(*args, **kwargs) under this guard; raises its rejection when not admitted."""
    def __enter__(self) -> Self: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...
    def __aenter__(self) -> Awaitable[Self]: ...
    def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Awaitable[None]: ...
    def try_acquire(self, n: int = 1) -> bool:
        """Takes n tokens if all are available now; returns whether it did."""
    def peek(self, n: int = 1) -> bool:
        """Would try_acquire(n) succeed now? Takes nothing."""
    def _reserve(self, n: int, max_wait_ns: int | None) -> tuple[bool, int, int]: ...
    def _refund(self, n: int) -> None: ...
    def _report(self) -> tuple[int, int, int, int]: ...

KEYED_CAPACITY_MIN: int
KEYED_CAPACITY_MAX: int
KEYED_PROBE: int
KEYED_STALE_NS: int

def key_hash(key: str | bytes | int) -> int: ...

class KeyedRateLimiterCore:
    def _configure(self, capacity: int, interval_ns: int, burst: int, name: str | None) -> None: ...
    def _attach(
        self, region: SharedRegion, slot: str, capacity: int, interval_ns: int, burst: int, name: str | None
    ) -> bool: ...
    def try_acquire(self, key: str | bytes | int, n: int = 1) -> bool:
        """Takes n tokens (1 to burst) from key's bucket if all are there now; returns whether it did.

        Raises:
            KeyTableFull: The table has no room for the key now.
        """
    def try_acquire_many(self, keys: Buffer) -> NDArray[numpy.bool_] | memoryview:
        """One token for each key of a contiguous buffer of 8-byte ints (a numpy int64 or
        uint64 array, an array.array('q')), in order, in one C loop; each decides as
        try_acquire(int(k)). Returns the decisions as a numpy bool array when numpy is
        importable, else as a memoryview of bools.

        Raises:
            KeyTableFull: Some key found no room; every key was still decided, and
                the decisions are in its `admitted`.
        """
    def _report(self, key: str | bytes | int) -> tuple[int, int, int, int]: ...
    def _counters(self) -> tuple[int, int, int, int]: ...

WINDOW_COUNT_MAX: int
WINDOW_TIME_MAX: int
WINDOW_CALLS_MAX: int
HALF_OPEN_CALLS_MAX: int

class CircuitBreakerCore:
    _measure: bool
    _store_down: bool
    def _configure(
        self, *, name: str | None, window_kind: int, window_size: int, bucket_ns: int,
        failure_rate: float, slow_rate: float, minimum_calls: int, consecutive_failures: int,
        half_open_calls: int, max_half_open_ns: int, wait_base_ns: int, wait_multiplier: float,
        wait_max_ns: int, wait_jitter: float, slow_ns: int | None, checks_result: bool, passes_below: int,
        region: SharedRegion | None = None, slot: str | None = None,
    ) -> bool: ...
    def _reconfigure(
        self, *, window_kind: int, window_size: int, bucket_ns: int,
        failure_rate: float, slow_rate: float, minimum_calls: int, consecutive_failures: int,
        half_open_calls: int, max_half_open_ns: int, wait_base_ns: int, wait_multiplier: float,
        wait_max_ns: int, wait_jitter: float, slow_ns: int | None, checks_result: bool, passes_below: int,
    ) -> None: ...
    def _set_hooks(self, transitions: bool, calls: bool, rejections: bool) -> None: ...
    def _guard(self, fn: Callable[..., Any]) -> Callable[..., Any]: ...
    @overload
    def call(
        self, fn: Callable[_P, Awaitable[_T]], /, *args: _P.args, **kwargs: _P.kwargs
    ) -> UseCallAsync:
        """A coroutine function: refused (AsyncMisuse, a TypeError); use call_async."""
    @overload
    def call(self, fn: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs) -> _T:
        """Calls fn(*args, **kwargs) under this guard; raises its rejection when not admitted."""
    def __enter__(self) -> Self: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...
    def __aenter__(self) -> Awaitable[Self]: ...
    def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Awaitable[None]: ...
    def _enter(self) -> tuple[int, int]: ...
    def _admit_deferring(self) -> tuple[int, int, bool]: ...
    def _open_block(self, token: int, start: int) -> None: ...
    def _set_store_down(self, down: bool) -> None: ...
    def _finish(self, result: _T, token: int, start: int) -> _T: ...
    def _record(self, token: int, failure: bool, start: int) -> tuple[bool, int]: ...
    def _release(self, token: int) -> None: ...
    def _ignore(self, token: int) -> None: ...
    def _release_unleased(self, token: int) -> None: ...
    def _set_probe_gen(self, generation: int) -> None: ...
    def _transition(self, state: int) -> None: ...
    def _set_open_until(self, generation: int, until_ns: int) -> bool: ...
    def _report(self) -> tuple[int, int, int, int, int, int, int]: ...
    def _calls(self) -> tuple[int, int, int, int, int]: ...
    def _window_counts(self) -> tuple[int, int, int, int, int]: ...

# ---- bulkhead

BULKHEAD_MAX: int
LEASES_MAX: int
LEASES_SWEEP_NS: int

class BulkheadCore:
    def _configure(self, name: str | None, max_concurrent: int, max_wait: float) -> None: ...
    def _attach(self, region: SharedRegion, slot: str, max_concurrent: int, name: str | None,
                max_wait: float) -> bool: ...  # fmt: skip
    def _sweep(self) -> int: ...
    def _reject_in_python(self, on: bool) -> None: ...
    def _count_rejection(self) -> None: ...
    def _rejections(self) -> int: ...
    def _guard(self, fn: Callable[..., Any]) -> Callable[..., Any]: ...
    def try_acquire(self) -> bool:
        """Takes a permit if one is free and no call is waiting; returns whether it did."""
    def release(self) -> None:
        """Gives a permit back: to the first waiting call if there is one, else to the pool."""
    @overload
    def call(
        self, fn: Callable[_P, Awaitable[_T]], /, *args: _P.args, **kwargs: _P.kwargs
    ) -> UseCallAsync:
        """A coroutine function: refused (AsyncMisuse, a TypeError); use call_async."""
    @overload
    def call(self, fn: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs) -> _T:
        """Calls fn(*args, **kwargs) under this guard; raises its rejection when not admitted."""
    def __enter__(self) -> Self: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...
    def __aenter__(self) -> Awaitable[Self]: ...
    def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Awaitable[None]: ...
    def _enqueue(self) -> bool: ...
    def _pass_or_free(self, queued: int) -> bool: ...
    def _grant(self, queued: int) -> bool: ...
    def _unflag(self) -> None: ...
    def _report(self) -> tuple[int, int, bool]: ...

# ---- backoff and jitter

BACKOFF_EXPONENTIAL: int
BACKOFF_LINEAR: int
BACKOFF_CONSTANT: int
JITTER_NONE: int
JITTER_FULL: int
JITTER_EQUAL: int
JITTER_DECORRELATED: int
JITTER_PROPORTIONAL: int

class BackoffCore:
    def _configure(
        self, kind: int, initial_ns: int, max_ns: int, multiplier: float, increment_ns: int,
        jitter: int, factor: float,
    ) -> None: ...
    def _delay_ns(self, attempt: int, previous_ns: int) -> int:
        """ns before retry `attempt` (1-based); previous_ns: the last delay (0: none)."""

class RetryCore:
    _successful_without_retry: int
    def _configure_core(
        self, *, whole_call_in_python: bool, checks_result: bool, passes_below: int,
        deposit: Callable[[], object] | None,
    ) -> None: ...
    def _guard(self, fn: Callable[..., Any]) -> Callable[..., Any]: ...
    def _count_success_without_retry(self) -> None: ...

# ---- retry budget

BUDGET_BUCKETS: int
BUDGET_TOKEN: int
BUDGET_RATIO_MAX: int
BUDGET_MIN_PER_SECOND_MAX: int
BUDGET_TTL_MIN: int
BUDGET_TTL_MAX: int

class RetryBudgetCore:
    def _configure(
        self, ratio_milli: int, min_per_second: int, ttl_ns: int, region: SharedRegion | None = None,
        slot: str | None = None,
    ) -> bool: ...
    def deposit(self) -> None:
        """Records one call: its `ratio` tokens count for the next `ttl`."""
    def try_withdraw(self) -> bool:
        """Takes one token for a retry if the balance covers it; returns whether it did."""
    def _balance(self) -> int: ...
    def _deposits(self) -> int: ...
    def _reconfigure(self, ratio_milli: int, min_per_second: int, ttl_ns: int) -> None: ...
    def _count_refusal(self) -> None: ...
    def _refusals(self) -> int: ...

HISTOGRAM_WINDOW_MIN: int
HISTOGRAM_WINDOW_MAX: int
HISTOGRAM_PPM: int

class LatencyHistogramCore:
    def _configure(self, window_ns: int) -> None: ...
    def _record_ns(self, duration_ns: int) -> None:
        """Records one duration in ns at brace's clock now."""
    def _percentile_ns(self, q_ppm: int) -> tuple[int, int]:
        """(duration in ns at the q_ppm-th millionth, durations read) over the last windows."""

THROTTLE_BUCKETS: int

class ThrottleCounts:
    def __init__(self, step_ns: int, k: float) -> None: ...
    def decide(self) -> Literal[True] | tuple[float, int, int]:
        """Counts one request: True when admitted, else (probability, requests, accepts)."""
    def record_accept(self) -> None: ...
    def state(self) -> tuple[int, int, float]:
        """(requests, accepts, reject probability) now."""

BOUND: ContextVar[int | None]

class ExchangePlan:
    method: str
    host: str
    correlation: str
    attempts: int
    def __init__(self, method: str, host: str, correlation: str) -> None: ...

class ExchangeCore:
    @property
    def wire(self) -> Any: ...
    @property
    def hosts(self) -> Hosts: ...
    @property
    def credentials(self) -> Any: ...
    @property
    def correlation_header(self) -> str | None: ...
    @property
    def idempotency_key(self) -> bool: ...
    @property
    def log(self) -> Callable[[Any], object] | None: ...
    def _configure_core(
        self, *, wire: Any, hosts: Any, credentials: Any, correlation_header: str | None, idempotency_key: bool,
        log: Callable[[Any], object] | None, idempotent_methods: frozenset[str], idempotency_header: str,
        correlation_var: ContextVar[str | None],
    ) -> None: ...
    def _plan(self, request: Any, discard: Callable[[Any], object]) -> tuple[Host, ExchangePlan, Policy]: ...
    def send(self, request: Any, send: Callable[[Any, float | None], Any], release: Callable[[Any], object],
             discard: Callable[[Any], object]) -> Any: ...
    def _ready(self, request: Any, plan: ExchangePlan, token: str | None) -> float | None: ...
    def _answered(self, host: Host, response: Any, token: str | None, start: int) -> int: ...

def bound_phases(phases: dict[str, float | None], names: tuple[str, ...], timeout: float) -> dict[str, float] | None:
    """None when each named phase is bounded and no longer than timeout; else the phases bounded by it."""

def any_name_holds(fields: Iterable[tuple[bytes, bytes]], mark: bytes) -> bool:
    """Whether the name of any (name, value) field holds `mark` (lowercase ASCII letters) in any case."""

class PolicyCore:
    def _succeeded(self, token: int, start: int) -> bool: ...
    def _configure_core(
        self, *, breaker: CircuitBreakerCore | None, limiter: RateLimiterCore | None, bulkhead: BulkheadCore | None,
        retry: RetryCore | None, deposit: Callable[[], object] | None, deadline_ns: int, call_in_python: bool,
    ) -> None: ...
    def _guard(self, fn: Callable[..., Any]) -> Callable[..., Any]: ...
    def _guard_coroutine(self, fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]: ...

def recovery_replays_add(delta: int) -> None: ...
def recovery_replays() -> int: ...
def new_correlation_id() -> str:
    """A fresh correlation id: 32 hex digits, unique across processes."""

class RecoveryCore:
    @property
    def first_tries(self) -> int: ...
    def configure(
        self,
        *,
        fast: bool,
        whole_call_in_python: bool,
        targets: tuple[Callable[[tuple[str, int, int, str | None]], object], ...],
        correlation_var: ContextVar[str | None],
        report: Callable[[Callable[..., object], str, BaseException], object],
    ) -> None: ...
    def recovered(
        self,
        attempt: Callable[..., Any],
        owner: object,
        operation: str,
        whole: Callable[[tuple[Any, ...], dict[str, Any]], Any],
        rest: Callable[[tuple[Any, ...], dict[str, Any], int, bool, Any], Any],
    ) -> Recovered: ...

class Recovered:
    guarded_by: object
    def __call__(self, *args: Any, **kwargs: Any) -> Any: ...

class Tally:
    @property
    def value(self) -> int: ...
    def add(self) -> None: ...
    def __call__(self, record: object, /) -> None: ...

class EventRing:
    def __init__(self, capacity: int) -> None: ...
    @property
    def evicted(self) -> int: ...
    @property
    def capacity(self) -> int: ...
    def append(self, item: object, /) -> None: ...
    def items(self) -> list[Any]: ...
    def clear(self) -> None: ...
    def __len__(self) -> int: ...
