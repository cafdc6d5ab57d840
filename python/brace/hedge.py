"""brace.Hedge: hedged requests - a slow or failed attempt gets a copy racing it."""

from __future__ import annotations

import contextvars
from collections.abc import Awaitable
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Callable, ClassVar, ParamSpec, TypeVar, cast, get_args, overload

from brace import _clock, _config, _guarding, _worker
from brace._core import CALLABLE_GUARDED, is_awaitable, now_ns
from brace._hedging import EventKind, HedgedCall, HedgeEvent, Mode, Outcome, Race, Rules
from brace._listeners import Listeners, Observable
from brace._safe import safe_repr
from brace.budget import RetryBudget
from brace.histogram import LatencyHistogram, percentile_spec

if TYPE_CHECKING:
    import asyncio
    from concurrent.futures import Executor, Future

__all__ = ["Hedge", "HedgeEvent"]

P = ParamSpec("P")
R = TypeVar("R")

_EVENT_KINDS: tuple[str, ...] = get_args(EventKind)
_MODES: tuple[str, ...] = get_args(Mode)
_MAX_HEDGED = 10
# A spike of latencies: the Q-th and the (100 + Q)/2-th percentiles within two of the
# histogram's buckets (8 per power of two) of each other - a spike of equal latencies
# straddles a bucket edge as often as not.
_SPIKE_WIDTH = 2 ** (2 / 8)
# ... and apart from the calls below it, at least this many times faster: in a dense tail
# the latencies just below the percentile are about as slow, and the percentile stands.
_SPIKE_GAP = 2.0


def _delay(value: object) -> float | str:
    """Seconds (float or timedelta, >= 0) or a percentile spec such as "p95"."""
    if isinstance(value, str):
        percentile_spec(value, "delay")
        return value
    seconds = _config.duration(value, "delay")
    assert seconds is not None
    return seconds


class Hedge(Observable[HedgeEvent]):
    """Hedged requests: when an attempt is slow (or fails), a copy of it races it,
    and the first acceptable outcome wins (Polly's hedging, gRPC's hedgingPolicy,
    Finagle's backup requests, tower's Hedge).

    Only hedge idempotent operations: a hedged call may run up to
    1 + max_hedged times, and a losing attempt may well complete on the server.

    Modes:
        "latency" (the default): the next attempt starts when the last one has
            run for `delay` without an outcome, or at once when an attempt
            fails with an error `on` accepts.
        "fallback": one attempt at a time; the next only after a failure.
        "parallel": all 1 + max_hedged attempts start at once.

    The first success wins; an error that `on` does not accept (and anything
    that is not an Exception) is the call's final outcome too. When every
    attempt failed, the primary's (attempt 0's) error is raised, with a note
    per other failure. Losers are cancelled in coroutines (and awaited, so no
    task is left pending); sync attempts run in worker threads (brace's pool,
    or `executor`) and cannot be stopped: a loser runs to its end, and its
    outcome is told (a "late" event) and never raised. A loser's result goes
    to `discard` (an HTTP response to close, so that its connection returns to
    its pool): a sync loser's when it ends, a coroutine loser's when it had
    returned before it could be cancelled. In "fallback" mode sync attempts
    run in the calling thread.

    In a brace.Policy (`Policy(hedge=...)`) the hedge sits between the retry
    and the breaker: each copy passes the breaker, limiter, bulkhead and
    attempt timeout, a copy those reject stops the group's hedging (the next
    would be rejected too: the copies running go on), and the retry sees one
    outcome per group.

    A percentile `delay` ("p95") hedges when an attempt is slower than that
    percentile of recent latency (every attempt that ends is recorded in
    `histogram`); until the histogram holds its `min_samples`, `initial_delay`
    is used, and never less than `min_delay`. "pQ" means: hedge about the
    (100 - Q)% slowest calls. When the Q-th percentile falls in a spike of
    latencies - the Q-th and the (100 + Q)/2-th within two histogram buckets
    (~19%) of each other (with "p95" on a server whose answers are 5% slow,
    the slow answers) and the calls below it are at least twice as fast
    (a dense tail is no spike) - the delay is the latency just below the spike:
    hedging at the spike would hedge almost no call (the slow ones end as
    their copy starts), while below it hedges the spike's calls, about
    (100 - Q)% of them.

    Args:
        name: A name for messages and events.
        delay: Seconds (float or timedelta, >= 0) before the next attempt
            starts in latency mode, or a percentile of recent latency as a
            string from "p0.0001" to "p99.9999" ("p95", "p99.9").
        max_hedged: Attempts after the primary: an int from 1 to 10.
        mode: "latency", "fallback" or "parallel".
        on: Which failures let the next attempt start: exception types (a
            type or a tuple) or a predicate of the exception. Default:
            Exception.
        budget: A RetryBudget: each call deposits, each hedge withdraws; with
            nothing left the call waits for the attempts running.
        histogram: The LatencyHistogram a percentile delay reads and every
            attempt's latency goes to (default: a new one, window 10 s, 20
            samples); with a fixed delay, given ones are filled too.
        initial_delay: The delay while a percentile delay's histogram is not
            filled yet (default 2 s, Polly's delay).
        min_delay: The least delay a percentile gives (default 0).
        executor: A concurrent.futures.Executor for sync attempts (default:
            brace's worker threads).
        discard: Called with the result of each attempt that returned but
            lost; in coroutines it may return an awaitable (an `async def`),
            which is awaited before the call returns. What it raises is told
            as a "discard_failed" event, never raised. None: losers' results
            are dropped.

    Raises:
        ValueError, TypeError: For configuration outside the ranges above.
    """

    #: The kinds of event this primitive emits (add_listener's `kinds`).
    event_kinds: ClassVar[tuple[str, ...]] = _EVENT_KINDS

    __slots__ = ("_name", "_delay", "_quantile", "_max_hedged", "_initial_ns", "_min_ns", "_executor", "_rules",
                 "_listeners")  # fmt: skip

    def __init__(
        self,
        *positional: object,
        name: str | None = None,
        delay: float | timedelta | str = 2.0,
        max_hedged: int = 1,
        mode: Mode = "latency",
        on: type[BaseException] | tuple[type[BaseException], ...] | Callable[[BaseException], bool] = Exception,
        budget: RetryBudget | None = None,
        histogram: LatencyHistogram | None = None,
        initial_delay: float | timedelta = 2.0,
        min_delay: float | timedelta = 0.0,
        executor: Executor | None = None,
        discard: Callable[[Any], object] | None = None,
    ) -> None:
        _config.keywords_only("Hedge", positional)
        self._name = _config.optional_name(name)
        self._delay = _delay(delay)
        self._quantile = percentile_spec(self._delay, "delay") if isinstance(self._delay, str) else None
        self._max_hedged = _config.count(max_hedged, "max_hedged", maximum=_MAX_HEDGED)
        if mode not in _MODES:
            raise (TypeError if not isinstance(mode, str) else ValueError)(
                f"mode must be one of {', '.join(map(repr, _MODES))}, got {safe_repr(mode)}")  # fmt: skip
        histogram = _config.instance_or_none(histogram, LatencyHistogram, "histogram")
        if histogram is None and self._quantile is not None:
            histogram = LatencyHistogram(name=name)
        self._initial_ns = self._ns(initial_delay, "initial_delay")
        self._min_ns = self._ns(min_delay, "min_delay")
        if executor is not None and not callable(getattr(executor, "submit", None)):
            raise TypeError(f"executor must be a concurrent.futures.Executor or None, got {type(executor).__name__}")
        self._executor = executor
        self._listeners: Listeners[HedgeEvent] = Listeners(
            f"hedge {name!r}" if name else "a hedge", _EVENT_KINDS
        )
        self._rules = Rules(self._name, mode, 1 + self._max_hedged, _config.exception_filter(on, "on"),
                            _config.instance_or_none(budget, RetryBudget, "budget"), histogram,
                            self._listeners, _discard(discard))  # fmt: skip

    @staticmethod
    def _ns(value: object, name: str) -> int:
        seconds = _config.duration(value, name)
        assert seconds is not None
        return round(seconds * _config.NS_PER_SECOND)

    @property
    def name(self) -> str | None:
        """The hedge's name, or None."""
        return self._name

    @property
    def delay(self) -> float | str:
        """The configured delay: seconds, or a percentile spec such as "p95"."""
        return self._delay

    @property
    def max_hedged(self) -> int:
        """Attempts after the primary."""
        return self._max_hedged

    @property
    def mode(self) -> Mode:
        """"latency", "fallback" or "parallel"."""
        return self._rules.mode

    @property
    def budget(self) -> RetryBudget | None:
        """The budget hedges withdraw from, or None."""
        return self._rules.budget

    @property
    def histogram(self) -> LatencyHistogram | None:
        """The histogram of attempt latencies, or None (a fixed delay and none given)."""
        return self._rules.histogram

    @property
    def discard(self) -> Callable[[Any], object] | None:
        """What losers' results are given to, or None."""
        return self._rules.discard

    def with_discard(self, discard: Callable[[Any], object] | None) -> Hedge:
        """This hedge with another `discard`: the same configuration, and the same
        histogram, budget and listeners (a client library's way to release what its
        losing attempts return, e.g. brace.integrations' HTTP responses)."""
        copy = Hedge.__new__(Hedge)
        for slot in Hedge.__slots__:
            setattr(copy, slot, getattr(self, slot))
        copy._rules = self._rules._replace(discard=_discard(discard))
        return copy

    def current_delay(self) -> float:
        """The delay a call starting now would use, in seconds."""
        return self._delay_ns() / _config.NS_PER_SECOND

    def _delay_ns(self) -> int:
        if self._quantile is None:
            return round(cast(float, self._delay) * _config.NS_PER_SECOND)
        histogram = self._rules.histogram
        assert histogram is not None
        seconds = histogram.percentile(self._quantile)
        if seconds is None:
            return self._initial_ns
        if cast(float, histogram.percentile((self._quantile + 100) / 2)) <= seconds * _SPIKE_WIDTH:
            below = _below_spike(histogram, self._quantile, seconds / _SPIKE_WIDTH)
            if below * _SPIKE_GAP <= seconds:  # a spike apart from the faster calls, not a dense tail
                seconds = below
        return max(self._min_ns, round(seconds * _config.NS_PER_SECOND))

    # -- the forms every primitive has -------------------------------------

    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]:
        """Decorates fn (sync or async) so that its calls are hedged. A function this
        Hedge already decorates is returned as it is."""
        return _guarding.guard_function(self, fn, self._guard, self._guard_async)

    def _guard(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        def hedged(*args: Any, **kwargs: Any) -> Any:
            return self._call(fn, args, kwargs)

        return hedged

    def _guard_async(self, fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def hedged_async(*args: Any, **kwargs: Any) -> Any:
            return await self._call_async(fn, args, kwargs)

        return hedged_async

    @overload
    def call(self, fn: Callable[P, Awaitable[R]], /, *args: P.args,
             **kwargs: P.kwargs) -> _guarding.UseCallAsync: ...  # fmt: skip

    @overload
    def call(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R: ...

    def call(self, fn: Callable[P, Any], /, *args: P.args, **kwargs: P.kwargs) -> Any:
        """Calls fn(*args, **kwargs), hedged as configured (attempts in worker threads,
        but in "fallback" mode).

        Raises:
            TypeError: fn is a coroutine function or returned an awaitable:
                use `await hedge.call_async(fn, ...)`.
        """
        if _guarding.sync_entry(fn, self, "Hedge.call"):
            return _guarding.call_guarded(fn, args, kwargs, "Hedge.call")
        return self._call(fn, args, kwargs)

    async def call_async(self, fn: Callable[P, Awaitable[R]], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Awaits fn(*args, **kwargs), hedged as configured: each attempt is a task, and
        the losers are cancelled and awaited (a plain fn's value is used as it is)."""
        if _guarding.kind(fn, self) == CALLABLE_GUARDED:
            return cast(R, await _guarding.awaited(fn(*args, **kwargs)))
        return cast(R, await self._call_async(fn, args, kwargs))

    # -- sync --------------------------------------------------------------

    def _call(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
              stops: Callable[[BaseException], bool] | None = None) -> Any:  # fmt: skip
        call = HedgedCall(self._rules, self._delay_ns(), stops)
        if self._rules.mode == "fallback":
            return self._call_in_turn(call, fn, args, kwargs)
        race = Race(call)
        self._start(race, fn, args, kwargs)
        while self._rules.mode == "parallel" and call.hedge("parallel"):
            self._start(race, fn, args, kwargs)
        try:
            while True:
                due = call.due_ns()
                if not _clock.wait(race.wait, due):
                    if call.hedge("slow"):
                        self._start(race, fn, args, kwargs)
                    continue
                taken = race.take()
                for index, outcome in enumerate(taken):
                    verdict = call.settle(outcome)
                    if verdict != "next":
                        race.untake(taken[index + 1:])  # losers: late, their results discarded
                        if verdict == "won":
                            return outcome.result
                        raise cast(BaseException, outcome.error)
                    if call.hedge("failed"):
                        self._start(race, fn, args, kwargs)
                if call.exhausted():
                    raise call.primary_failure()
        finally:
            race.decide()

    def _call_in_turn(self, call: HedgedCall, fn: Callable[..., Any], args: tuple[Any, ...],
                      kwargs: dict[str, Any]) -> Any:  # fmt: skip
        """Fallback mode, in the calling thread: one attempt at a time."""
        while True:
            attempt = call.begin()
            result, error = self._attempt(fn, args, kwargs)
            verdict = call.settle(Outcome(attempt, result, error, now_ns() - call.starts[attempt]))
            if verdict == "won":
                return result
            if verdict == "final":
                raise cast(BaseException, error)
            if not call.hedge("failed"):
                raise call.primary_failure()

    @staticmethod
    def _attempt(fn: Callable[..., Any], args: tuple[Any, ...],
                 kwargs: dict[str, Any]) -> tuple[Any, BaseException | None]:  # fmt: skip
        """One sync attempt's (result, error); an awaitable returned is refused (an error)."""
        try:
            result = fn(*args, **kwargs)
        except Exception as error:  # anything else (KeyboardInterrupt) goes to the caller
            return None, error
        if is_awaitable(result):
            return None, _guarding.refuse_awaitable(result, fn, "Hedge.call")
        return result, None

    def _start(self, race: Race, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """Starts the next attempt in a worker thread (or the executor)."""
        attempt = race.call.begin()
        started = race.call.starts[attempt]
        race.started(attempt)

        def run() -> tuple[Any, BaseException | None]:
            return self._attempt(fn, args, kwargs)

        def ended(value: Any, error: BaseException | None) -> None:
            result, failure = value if error is None else (None, error)
            race.ended(Outcome(attempt, result, failure, now_ns() - started))

        if self._executor is None:
            _worker.start(run, (), {}, ended)
            return
        future = self._executor.submit(contextvars.copy_context().run, run)
        future.add_done_callback(lambda done: _future_ended(done, ended))

    # -- async -------------------------------------------------------------

    async def _call_async(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
                          stops: Callable[[BaseException], bool] | None = None) -> Any:  # fmt: skip
        import asyncio  # loaded with the event loop, not with brace

        call = HedgedCall(self._rules, self._delay_ns(), stops)
        tasks: dict[asyncio.Task[tuple[Any, BaseException | None]], int] = {}

        def start() -> None:
            tasks[asyncio.ensure_future(_attempt_async(fn, args, kwargs))] = call.begin()

        start()
        while self._rules.mode == "parallel" and await call.hedge_async("parallel"):
            start()
        try:
            while True:
                if not await _any_done(tasks, call.due_ns()):
                    if await call.hedge_async("slow"):
                        start()
                    continue
                for task in sorted((t for t in tasks if t.done()), key=tasks.__getitem__):
                    attempt = tasks.pop(task)
                    result, error = task.result()
                    verdict = call.settle(Outcome(attempt, result, error, now_ns() - call.starts[attempt]))
                    if verdict == "won":
                        return result
                    if verdict == "final":
                        raise cast(BaseException, error)
                    if await call.hedge_async("failed"):
                        start()
                if call.exhausted():
                    raise call.primary_failure()
        finally:
            await _cancel(call, tasks)

    # -- as a brace.Policy's stage (brace._stages.HedgeStage) ----------------------

    def _brace_stage_hedged(self, attempt: Callable[[], Any], stops: Callable[[BaseException], bool]) -> Any:
        return self._call(attempt, (), {}, stops)

    async def _brace_stage_hedged_async(self, attempt: Callable[[], Awaitable[Any]],
                                        stops: Callable[[BaseException], bool]) -> Any:  # fmt: skip
        return await self._call_async(attempt, (), {}, stops)

    def __repr__(self) -> str:
        name = f"name={self._name!r}, " if self._name else ""
        return (f"Hedge({name}delay={self._delay!r}, max_hedged={self._max_hedged}, "
                f"mode={self._rules.mode!r})")  # fmt: skip


def _below_spike(histogram: LatencyHistogram, quantile: float, spike: float) -> float:
    """The highest percentile of `histogram` below `spike` (the spike's lower edge, under
    the quantile-th percentile): binary search over the rank, to 1/1000 of a percent."""
    low, high = 0.0, quantile  # percentile(low) < spike is what is searched; percentile(high) >= spike
    if cast(float, histogram.percentile(low)) >= spike:
        return cast(float, histogram.percentile(quantile))  # nothing below the spike: every call is in it
    while high - low > 0.001:
        middle = (low + high) / 2
        if cast(float, histogram.percentile(middle)) < spike:
            low = middle
        else:
            high = middle
    return cast(float, histogram.percentile(low))


def _discard(value: object) -> Callable[[Any], object] | None:
    if value is not None and not callable(value):
        raise TypeError(f"discard must be a callable of a losing attempt's result or None, "
                        f"got {type(value).__name__}")
    return cast("Callable[[Any], object] | None", value)


def _future_ended(future: Future[tuple[Any, BaseException | None]],
                  ended: Callable[[Any, BaseException | None], None]) -> None:  # fmt: skip
    """An executor's attempt ended: its outcome to `ended` (a cancelled future's too)."""
    if future.cancelled():
        import concurrent.futures

        ended(None, concurrent.futures.CancelledError())
        return
    error = future.exception()
    ended(None if error is not None else future.result(), error)


async def _attempt_async(fn: Callable[..., Any], args: tuple[Any, ...],
                         kwargs: dict[str, Any]) -> tuple[Any, BaseException | None]:  # fmt: skip
    """One async attempt's (result, error); a cancellation propagates (the task is cancelled)."""
    import asyncio

    try:
        return await _guarding.awaited(fn(*args, **kwargs)), None
    except asyncio.CancelledError:
        raise
    except Exception as error:
        return None, error


async def _any_done(tasks: dict[asyncio.Task[Any], int], due_ns: int | None) -> bool:
    """Waits until a task is done (True) or brace's clock reaches due_ns (False)."""
    import asyncio

    if any(task.done() for task in tasks):
        return True
    signal: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def wake(_: object) -> None:
        if not signal.done():
            signal.set_result(None)

    for task in tasks:
        task.add_done_callback(wake)
    try:
        return await _clock.wait_async(signal, due_ns)
    finally:
        for task in tasks:
            task.remove_done_callback(wake)
        signal.cancel()


async def _cancel(call: HedgedCall, tasks: dict[asyncio.Task[tuple[Any, BaseException | None]], int]) -> None:
    """The call is decided: the losers still running are cancelled and awaited; an
    outcome any of them reached is recorded as late, never raised."""
    import asyncio

    if not tasks:
        return
    for task, attempt in tasks.items():
        if not task.done():
            task.cancel()
            call.emit("cancelled", attempt)
    await asyncio.wait(tasks)
    for task, attempt in tasks.items():
        if task.cancelled():
            continue
        error = task.exception()
        result, failure = (None, error) if error is not None else task.result()
        await call.late_async(Outcome(attempt, result, failure, now_ns() - call.starts[attempt]))
