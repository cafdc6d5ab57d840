"""Client-side adaptive throttling: slow down when the server pushes back.

Two primitives that learn from the responses of the calls they admit:

- `AdaptiveRateLimiter`: the AWS SDKs' "adaptive" retry mode's client rate
  limiter. A token bucket that stays open until the server first throttles
  (429, or 503 with a wait), then limits the sending rate and moves it as
  TCP CUBIC moves a congestion window: cut to 70% of the rate that was
  throttled, then grown back along a cubic curve that flattens near it.
  Admission is a brace.RateLimiter (the compiled GCRA), reconfigured live.
- `ClientThrottle`: Google SRE's client-side throttling ("Handling Overload"):
  while a backend refuses calls for overload, refuse locally a share of the
  calls that grows with the share it refuses, so the backend spends nothing
  on requests it would reject anyway.

Both feed on what the caller tells them (`record_success` / `record_throttle`,
`record(accepted)`) or on what their guard forms see (`call`, decorator,
`with`), judged by a predicate (`throttled=`, `accepted=`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from typing import ClassVar, Literal, NamedTuple, NoReturn

from brace import _config
from brace._core import THROTTLE_BUCKETS, ThrottleCounts, now_ns
from brace._feedback import FeedbackGuard, overloaded, throttling
from brace._listeners import Listeners, Observable
from brace._safe import safe_repr
from brace.errors import RateLimited, Throttled
from brace.limiter import RateLimiter

__all__ = [
    "AdaptiveRateEvent",
    "AdaptiveRateLimiter",
    "AdaptiveRateState",
    "ClientThrottle",
    "ClientThrottleEvent",
    "ClientThrottleState",
    "overloaded",
    "throttling",
]

_NS = _config.NS_PER_SECOND

# The AWS SDKs' adaptive mode: the share of the throttled rate kept after a
# throttle (BETA), how fast the cubic grows back (SCALE, requests/s per s^3),
# how much the newest half-second counts in the measured rate (SMOOTH), the
# measuring buckets (0.5 s), and no rate ever above twice the measured one.
BETA = 0.7
SCALE = 0.4
SMOOTH = 0.8
MEASURE_BUCKET_NS = _NS // 2
# The shortest stretch of a running bucket whose count is read as a rate.
_MIN_PARTIAL_NS = 50_000_000
MEASURED_HEADROOM = 2.0
# Rates brace's GCRA can keep (one token per ns at most); the floor keeps a
# rate a person could mean (one request per ~17 minutes).
_RATE_FLOOR = 1e-3
_RATE_CEILING = 1e9

# SRE client-side throttling: the window moves in THROTTLE_BUCKETS steps (brace._core).
_WINDOW_MIN = 0.001


def _per_second(value: object, name: str, *, low: float = _RATE_FLOOR, or_none: bool = False) -> float:
    """A rate in requests per second, from `low` to 1e9 (`or_none`: None is accepted too, says the error)."""
    accepted = f"a finite number of requests per second from {low:g} to {_RATE_CEILING:g}"
    accepted += ", or None" if or_none else ""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be {accepted}, got {type(value).__name__}")
    if not low <= value <= _RATE_CEILING:  # NaN fails too
        raise ValueError(f"{name} must be {accepted}, got {safe_repr(value)}")
    return float(value)


def _optional_per_second(value: object, name: str, *, low: float) -> float | None:
    """`_per_second`, or None."""
    return None if value is None else _per_second(value, name, low=low, or_none=True)


def _predicate(value: object, name: str) -> Callable[[object], bool]:
    if not callable(value):
        raise TypeError(f"{name} must be a callable taking an outcome (a result or an exception), "
                        f"got {type(value).__name__}")  # fmt: skip
    return value


AdaptiveEventKind = Literal["throttled", "rejected"]
_ADAPTIVE_KINDS = ("throttled", "rejected")


class AdaptiveRateEvent(NamedTuple):
    """What an AdaptiveRateLimiter's listener receives.

    Attributes:
        kind: "throttled": the server throttled a call and the rate was cut;
            "rejected": a call could not be admitted within its wait (the
            caller got RateLimited).
        name: The limiter's name, or None.
        at: When it happened, seconds on brace's clock.
        rate: The fill rate then (after the cut), requests per second.
        measured_rate: The sending rate measured then, requests per second.
        retry_after: For "rejected", seconds until a token; None for "throttled".
    """

    kind: AdaptiveEventKind
    name: str | None
    at: float
    rate: float
    measured_rate: float
    retry_after: float | None


class AdaptiveRateState(NamedTuple):
    """An AdaptiveRateLimiter's state at one instant.

    Attributes:
        rate: The fill rate in requests per second, or None while not limiting
            (no throttle yet and no initial_rate).
        burst: The tokens the bucket holds when full.
        measured_rate: The smoothed rate of calls recorded, requests per second.
        last_max_rate: The rate the last throttle happened at (the cubic's plateau).
        last_throttle_at: When the server last throttled, seconds on brace's clock, or None.
    """

    rate: float | None
    burst: int
    measured_rate: float
    last_max_rate: float
    last_throttle_at: float | None


class AdaptiveRateLimiter(FeedbackGuard, Observable[AdaptiveRateEvent]):
    """A client rate limiter that finds the rate the server accepts (the AWS SDKs' adaptive mode).

    Until the server first throttles a call, every call is admitted. Each
    throttle cuts the fill rate to BETA (0.7) x the rate the calls were going
    at (the smaller of the measured sending rate and the fill rate), which
    becomes the plateau `W`; each success moves it along the cubic
    `SCALE * (t - K)**3 + W` (t: seconds since the throttle, K = cbrt(W * (1 -
    BETA) / SCALE)), which grows fast far below W, flattens as it reaches it
    and probes beyond it. The rate never exceeds twice the measured sending
    rate (so an idle client cannot bank a high rate), nor leaves
    [min_rate, max_rate]. The sending rate is measured from the recorded
    outcomes, in half-second buckets, smoothed (SMOOTH 0.8).

    Admission is a brace.RateLimiter (compiled GCRA, lock-free), reconfigured
    on each recorded outcome: `try_acquire`, `acquire`, `acquire_async`.
    After each response, tell the limiter what happened with
    `record_success()` (anything but throttling, failures included) or
    `record_throttle()`; `call` / `call_async` / the decorator / `with` do it
    for you, judging each outcome with `throttled`.

    Args:
        name: A name for messages, events and metrics.
        initial_rate: Requests per second to limit to from the start, kept
            until the first throttle; None (the default, as AWS): no limit
            until then.
        min_rate: The lowest fill rate, requests per second (AWS: 0.5).
        max_rate: The highest fill rate, or None for no cap.
        burst: Tokens the bucket holds when full, an int >= 1, the same at
            every rate (default 1: calls are paced evenly at the fill rate).
            The AWS SDKs' bucket holds one second of the fill rate instead;
            a fixed burst is what keeps the tokens available across a rate
            change here (brace.RateLimiter.reconfigure keeps the tokens
            taken, so a bucket that shrank at each cut would make callers
            wait out tokens taken at the old rate).
        max_wait: How long `call`, the decorator and `with` wait for a token:
            seconds or a timedelta, 0, or None to wait as long as needed.
        throttled: Which outcomes (a result, or an Exception raised) are
            throttling; default `brace.adaptive.throttling`: HTTP 429, or 503
            with a Retry-After (or RateLimit) wait.

    Raises:
        ValueError, TypeError: Rates outside 0.001 to 1e9 per second (max_rate
            and initial_rate at least min_rate, initial_rate at most
            max_rate), and the ranges of brace.RateLimiter for burst and max_wait.
    """

    #: The kinds of event this primitive emits (add_listener's `kinds`).
    event_kinds: ClassVar[tuple[str, ...]] = _ADAPTIVE_KINDS

    __slots__ = ("_name", "_min_rate", "_max_rate", "_burst", "_max_wait", "_throttled", "_listeners", "_lock",
                 "_limiter", "_fill", "_measured", "_count", "_bucket_ns", "_last_max_rate", "_plateau_in",
                 "_last_throttle_ns")  # fmt: skip

    def __init__(
        self,
        *positional: NoReturn,
        name: str | None = None,
        initial_rate: float | None = None,
        min_rate: float = 0.5,
        max_rate: float | None = None,
        burst: int = 1,
        max_wait: float | timedelta | None = None,
        throttled: Callable[[object], bool] = throttling,
    ) -> None:
        _config.keywords_only("AdaptiveRateLimiter", positional)
        self._name = _config.optional_name(name)
        self._min_rate = _per_second(min_rate, "min_rate")
        self._max_rate = _optional_per_second(max_rate, "max_rate", low=self._min_rate)
        ceiling = _RATE_CEILING if self._max_rate is None else self._max_rate
        start = _optional_per_second(initial_rate, "initial_rate", low=self._min_rate)
        if start is not None and start > ceiling:
            raise ValueError(f"initial_rate must be at most max_rate ({ceiling:g}), got {start:g}")
        self._burst = _config.burst_within_depth(
            _config.count(burst, "burst", maximum=None), _config.interval_ns(self._min_rate, 1.0))
        self._max_wait = _config.duration(max_wait, "max_wait", allow_none=True)
        self._throttled = _predicate(throttled, "throttled")
        self._listeners: Listeners[AdaptiveRateEvent] = Listeners(
            f"adaptive rate limiter {name!r}" if name else "an adaptive rate limiter", _ADAPTIVE_KINDS
        )
        self._lock = threading.Lock()
        now = now_ns()
        self._measured = 0.0
        self._count = 0
        self._bucket_ns = now - now % _NS  # the AWS SDKs start measuring at a whole second
        self._last_max_rate = 0.0
        self._plateau_in = 0.0  # K: seconds from the last throttle to the plateau
        self._last_throttle_ns: int | None = None
        self._fill = 0.0
        self._limiter: RateLimiter | None = None
        if start is not None:
            self._set_rate(start)

    @property
    def name(self) -> str | None:
        """The limiter's name, or None."""
        return self._name

    @property
    def rate(self) -> float | None:
        """The fill rate in requests per second, or None while not limiting."""
        return None if self._limiter is None else self._fill

    @property
    def max_wait(self) -> float | None:
        """Seconds `call`, the decorator and `with` wait for a token (None: no limit)."""
        return self._max_wait

    def try_acquire(self) -> bool:
        """Takes a token if one is there (always, while not limiting); never waits."""
        limiter = self._limiter
        return limiter is None or limiter.try_acquire()

    def acquire(self, max_wait: float | timedelta | None = None) -> float:
        """Takes a token, sleeping until it comes (on brace's clock: fake_clock() applies).

        Args:
            max_wait: The longest wait, seconds or a timedelta; None: as long as needed.

        Returns:
            The seconds waited.

        Raises:
            RateLimited: The token cannot come within max_wait (nothing was taken).
        """
        limiter = self._limiter
        if limiter is None:
            _config.duration(max_wait, "max_wait", allow_none=True)
            return 0.0
        try:
            return limiter.acquire(1, max_wait)
        except RateLimited as rejected:
            self._rejected(rejected)
            raise

    async def acquire_async(self, max_wait: float | timedelta | None = None) -> float:
        """`acquire` for coroutines; a cancelled wait gives its token back."""
        limiter = self._limiter
        if limiter is None:
            _config.duration(max_wait, "max_wait", allow_none=True)
            return 0.0
        try:
            return await limiter.acquire_async(1, max_wait)
        except RateLimited as rejected:
            self._rejected(rejected)
            raise

    def _rejected(self, rejected: RateLimited) -> None:
        if self._listeners.wants("rejected"):
            event = AdaptiveRateEvent("rejected", self._name, now_ns() / _NS, self._fill, self._measured,
                                      rejected.retry_after)  # fmt: skip
            self._listeners.emit(event, "rejected")

    def record_success(self) -> None:
        """Tells the limiter a call came back without throttling (a failure of any other
        kind included): the rate follows the cubic up from the last throttle."""
        with self._lock:
            now = now_ns()
            self._measure(now)
            if self._last_throttle_ns is None:
                return  # no throttle yet: nothing to grow back from
            since = (now - self._last_throttle_ns) / _NS
            cubic = SCALE * (since - self._plateau_in) ** 3 + self._last_max_rate
            self._set_rate(min(cubic, MEASURED_HEADROOM * self._measured))

    def record_throttle(self, *, sent_at: float | None = None) -> None:
        """Tells the limiter the server throttled a call: the rate is cut to BETA x the
        rate the calls went at, and limiting starts if it had not.

        Args:
            sent_at: When the throttled call was sent, seconds on brace's clock (as events'
                `at`). A call sent before the last cut was throttled at the rate already
                cut for: it is counted but cuts nothing more, as TCP's congestion control
                reduces its window once per loss event, so that the answers of the calls
                that were in flight together do not cut the rate once each.
        """
        if sent_at is not None and (isinstance(sent_at, bool) or not isinstance(sent_at, (int, float))):
            raise TypeError(f"sent_at must be seconds on brace's clock (a float) or None, got {safe_repr(sent_at)}")
        with self._lock:
            now = now_ns()
            if sent_at is not None and self._last_throttle_ns is not None \
                    and sent_at * _NS < self._last_throttle_ns:
                self._measure(now)
                return
            self._measure(now)
            # Before the first half-second bucket ends there is no measured rate: the AWS SDKs
            # then cut to the minimum rate and crawl back up for seconds. The calls counted so
            # far in the running bucket say what the rate was.
            measured = self._measured or self._count * _NS / max(now - self._bucket_ns, _MIN_PARTIAL_NS)
            went_at = measured if self._limiter is None else min(measured, self._fill)
            self._last_max_rate = went_at
            self._plateau_in = (went_at * (1 - BETA) / SCALE) ** (1 / 3)
            self._last_throttle_ns = now
            self._set_rate(min(went_at * BETA, MEASURED_HEADROOM * measured))
            rate, measured = self._fill, self._measured
        if self._listeners.wants("throttled"):
            event = AdaptiveRateEvent("throttled", self._name, now / _NS, rate, measured, None)
            self._listeners.emit(event, "throttled")

    def _measure(self, now: int) -> None:
        """Counts one call in the sending rate (the lock held)."""
        bucket = now - now % MEASURE_BUCKET_NS
        self._count += 1
        if bucket > self._bucket_ns:
            current = self._count * _NS / (bucket - self._bucket_ns)
            self._measured = current * SMOOTH + self._measured * (1 - SMOOTH)
            self._count = 0
            self._bucket_ns = bucket

    def _set_rate(self, rate: float) -> None:
        """Makes `rate`, kept within [min_rate, max_rate], the bucket's fill rate (the lock held)."""
        ceiling = _RATE_CEILING if self._max_rate is None else self._max_rate
        rate = min(max(rate, self._min_rate), ceiling)
        if self._limiter is None:
            self._limiter = RateLimiter(name=self._name, rate=rate, burst=self._burst, max_wait=self._max_wait)
        elif rate != self._fill:
            self._limiter.reconfigure(rate=rate)
        self._fill = rate

    def state(self) -> AdaptiveRateState:
        """The fill rate, burst, measured rate and last throttle, now."""
        with self._lock:
            limiter = self._limiter
            last = self._last_throttle_ns
            return AdaptiveRateState(
                None if limiter is None else self._fill,
                self._burst,
                self._measured,
                self._last_max_rate,
                None if last is None else last / _NS,
            )

    # -- the guard forms (brace._feedback)

    def _admit(self) -> None:
        self.acquire(self._max_wait)

    async def _admit_async(self) -> None:
        await self.acquire_async(self._max_wait)

    def _observe(self, outcome: object) -> None:
        if self._throttled(outcome):
            self.record_throttle()
        else:
            self.record_success()

    def __repr__(self) -> str:
        name = f"name={self._name!r}, " if self._name else ""
        return (f"AdaptiveRateLimiter({name}rate={self.rate!r}, min_rate={self._min_rate:g}, "
                f"max_rate={self._max_rate!r}, burst={self._burst})")  # fmt: skip


ThrottleEventKind = Literal["rejected"]
_THROTTLE_KINDS = ("rejected",)


class ClientThrottleEvent(NamedTuple):
    """What a ClientThrottle's listener receives.

    Attributes:
        kind: "rejected": a call was shed locally (the caller got Throttled).
        name: The throttle's name, or None.
        at: When it happened, seconds on brace's clock.
        probability: The reject probability it was shed with.
        requests: Requests in the window before it.
        accepts: Those of them the backend accepted.
    """

    kind: ThrottleEventKind
    name: str | None
    at: float
    probability: float
    requests: int
    accepts: int


class ClientThrottleState(NamedTuple):
    """A ClientThrottle's counts over its window, now.

    Attributes:
        requests: Requests made in the window (those shed locally included).
        accepts: Those the backend accepted.
        reject_probability: The probability the next call is shed with.
    """

    requests: int
    accepts: int
    reject_probability: float


class ClientThrottle(FeedbackGuard, Observable[ClientThrottleEvent]):
    """Sheds calls locally while a backend refuses them for overload (Google SRE's
    client-side throttling).

    Over the last `window` seconds the throttle counts `requests` (every call
    it was asked to admit, those it shed included) and `accepts` (calls the
    backend accepted), and sheds each new call with probability

        max(0, (requests - k * accepts) / (requests + 1))

    So nothing is shed while the backend accepts more than 1/k of the calls;
    beyond that, the share shed grows with the share refused, and the calls
    still sent keep probing the backend, so the throttle lets go as it
    recovers. With k = 2 the backend still sees about twice the calls it
    accepts; a smaller k sheds sooner. Counts move in steps of window / 12
    (a call counts for between 11/12 of the window and the window), on
    brace's clock. The draw uses brace's jitter RNG (brace.testing.seed
    makes it reproducible).

    Use `try_acquire()` (or `acquire()`, which raises) before each call and
    `record(accepted)` after it; `call` / `call_async` / the decorator / `with`
    do both, judging each outcome with `accepted`.

    Args:
        name: A name for messages, events and metrics.
        k: The multiplier: a finite number from 1 to 1000 (SRE: 2).
        window: How long calls count: seconds or a timedelta, from 0.001 to
            ~146 years (SRE: two minutes).
        accepted: Which outcomes (a result, or an Exception raised) the backend
            accepted; default: all but an HTTP 429 or 503 response
            (`not brace.adaptive.overloaded(outcome)`).

    Raises:
        ValueError, TypeError: For configuration outside the ranges above.
    """

    #: The kinds of event this primitive emits (add_listener's `kinds`).
    event_kinds: ClassVar[tuple[str, ...]] = _THROTTLE_KINDS

    __slots__ = ("_name", "_k", "_window", "_accepted", "_listeners", "_counts")

    def __init__(
        self,
        *positional: NoReturn,
        name: str | None = None,
        k: float = 2.0,
        window: float | timedelta = 120.0,
        accepted: Callable[[object], bool] | None = None,
    ) -> None:
        _config.keywords_only("ClientThrottle", positional)
        self._name = _config.optional_name(name)
        if isinstance(k, bool) or not isinstance(k, (int, float)):
            raise TypeError(f"k must be a finite number from 1 to 1000, got {type(k).__name__}")
        if not 1 <= k <= 1000:
            raise ValueError(f"k must be a finite number from 1 to 1000, got {safe_repr(k)}")
        self._k = float(k)
        seconds = _config.positive_duration(window, "window")
        if seconds < _WINDOW_MIN:
            raise ValueError(f"window must be {_config.seconds_range(_config.MAX_SECONDS, positive=True)} "
                             f"and at least {_WINDOW_MIN:g}, got {safe_repr(window)}")  # fmt: skip
        self._window = seconds
        self._accepted = _predicate(accepted, "accepted") if accepted is not None else _not_overloaded
        self._listeners: Listeners[ClientThrottleEvent] = Listeners(
            f"client throttle {name!r}" if name else "a client throttle", _THROTTLE_KINDS
        )
        self._counts = ThrottleCounts(round(seconds * _NS) // THROTTLE_BUCKETS, self._k)

    @property
    def name(self) -> str | None:
        """The throttle's name, or None."""
        return self._name

    @property
    def k(self) -> float:
        """The multiplier: nothing is shed while accepts * k >= requests."""
        return self._k

    @property
    def window(self) -> float:
        """Seconds calls count for."""
        return self._window

    def try_acquire(self) -> bool:
        """Counts a request and returns whether to send it (False: shed it locally)."""
        return self._counts.decide() is True

    def acquire(self) -> None:
        """Counts a request and raises Throttled when it is shed; never waits.

        Raises:
            Throttled: The call is shed locally; its facts say why.
        """
        decided = self._counts.decide()
        if decided is True:
            return
        probability, requests, accepts = decided
        if self._listeners.wants("rejected"):
            event = ClientThrottleEvent("rejected", self._name, now_ns() / _NS, probability, requests, accepts)
            self._listeners.emit(event, "rejected")
        raise Throttled(name=self._name, probability=probability, requests=requests, accepts=accepts)

    def record(self, accepted: bool) -> None:
        """Tells the throttle whether the backend accepted a call it admitted."""
        if _config.flag(accepted, "accepted"):
            self._counts.record_accept()

    def reject_probability(self) -> float:
        """The probability with which the next call would be shed, now."""
        return self._counts.state()[2]

    def state(self) -> ClientThrottleState:
        """The requests and accepts in the window, and the reject probability, now."""
        return ClientThrottleState(*self._counts.state())

    # -- the guard forms (brace._feedback)

    def _admit(self) -> None:
        self.acquire()

    async def _admit_async(self) -> None:
        self.acquire()

    def _observe(self, outcome: object) -> None:
        self.record(bool(self._accepted(outcome)))

    def __repr__(self) -> str:
        name = f"name={self._name!r}, " if self._name else ""
        return f"ClientThrottle({name}k={self._k:g}, window={self._window:g})"


def _not_overloaded(outcome: object) -> bool:
    return not overloaded(outcome)

