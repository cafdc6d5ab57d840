"""brace.Retry and brace.retry: retries with backoff, pushback, budgets and deadlines.

The first attempt of a decorated sync function runs through the compiled
wrapper (pyx/guard.h): a success costs a few tens of nanoseconds. Everything
after a failure - classification, backoff, pushback, sleeping, the next
attempts - is Python, where it belongs: it is the rare path.
"""

# size: one algorithm (the loop, its planning with and without a classifier, giving up)
# and the entry forms that share it (decorator, call, for/async for); a fifth of the file
# is the documentation of its parameters.

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Generator, Iterator
from datetime import timedelta
from types import TracebackType
from typing import (
    TYPE_CHECKING,
    Any,
    Awaitable,
    Callable,
    ClassVar,
    Generic,
    Literal,
    NamedTuple,
    NoReturn,
    ParamSpec,
    Protocol,
    TypeVar,
    cast,
    overload,
)

from brace import _config, _deadline, _guarding, _worker
from brace._clock import sleep_until, sleep_until_async
from brace._core import CALLABLE_GUARDED, RERAISE, RetryCore, is_awaitable, now_ns
from brace._listeners import Listeners, Observable
from brace._logger import logger
from brace._safe import add_note
from brace._stages import Call, Outcome, Sleep, Steps, Withdraw, status_threshold
from brace.backoff import Backoff, after_server_wait
from brace.budget import RetryBudget
from brace.errors import RetryBudgetExhausted, RetryError, AttemptTimeout
from brace._config import NS_PER_SECOND

if TYPE_CHECKING:
    from brace.classify import Category, Classification

__all__ = ["Attempt", "Retry", "RetryCalls", "RetryEvent", "retry"]

P = ParamSpec("P")
R = TypeVar("R")


GiveUpReason = Literal["attempts", "deadline", "budget", "still_running"]
# Per call, with a classifier: retries made so far and the last delay, by the
# category of the failure (None: a result only retry_on_result rejected).
_Tally = dict["Category | None", tuple[int, float]]
# Attempts for results only retry_on_result rejects, when a classifier sets no overall cap.
_UNCLASSIFIED_ATTEMPTS = 3
# reconfigure's default: the setting keeps its value (None means something of its own).
_KEEP: Any = object()


class Classifier(Protocol):
    """What a Retry asks of its classifier; brace.ErrorClassifier is one.

    A protocol, so that this primitive does not import the classification layer
    (brace.classify) that sits above it.
    """

    def classify(self, outcome: object, /) -> Classification: ...

    def is_failure(self, result: object, /) -> bool: ...


EventKind = Literal["sleep", "retry", "give_up"]
_EVENT_KINDS = ("sleep", "retry", "give_up")


class RetryEvent(NamedTuple):
    """What the before_sleep, on_retry and on_giveup hooks, and the listeners, receive.

    Attributes:
        kind: "sleep" (a retry is about to wait: before_sleep), "retry" (the
            wait is over and the next attempt starts: on_retry) or "give_up"
            (on_giveup).
        name: The retry's name, or None.
        at: When it happened, seconds on brace's clock.
        attempt: Attempts made so far.
        outcome: What the last attempt raised or returned.
        delay: Seconds about to be slept (before_sleep, on_retry), else None.
        elapsed: Seconds since the first attempt began.
        reason: Why it gave up (on_giveup): "attempts", "deadline", "budget",
            or "still_running" (a sync attempt timed out and may still be
            running, and the retry is not declared idempotent).
        classification: The outcome's brace.Classification, when the retry
            has a classifier (None otherwise, and for a result that only
            retry_on_result rejected).
    """

    kind: EventKind
    name: str | None
    at: float
    attempt: int
    outcome: object
    delay: float | None
    elapsed: float
    reason: GiveUpReason | None = None
    classification: Classification | None = None


Hook = Callable[[RetryEvent], object]
Listener = Hook


class RetryCalls(NamedTuple):
    """A retry's calls since it was made, by how they ended (resilience4j's four kinds).

    A first-try success on the compiled path is one increment of a C field (the GIL
    held: exact, no lock); the other kinds are counted where the call ends in Python.

    Attributes:
        successful_without_retry: Calls whose first attempt succeeded.
        successful_with_retry: Calls that succeeded after at least one retry.
        failed_with_retry: Calls that gave up after at least one retry, or that a later
            attempt's error not to retry ended.
        failed_without_retry: Calls that gave up after their first attempt
            (attempts=1, no budget left, no time left before the deadline), or whose
            first attempt raised an error not to retry. Exceptions that are not
            Exceptions (cancellation, KeyboardInterrupt) end a call in no kind.
    """

    successful_without_retry: int
    successful_with_retry: int
    failed_with_retry: int
    failed_without_retry: int


# RetryCalls' kinds that Retry._count tallies in Python (successful_without_retry is the compiled base's).
_SUCCESSFUL_WITH_RETRY, _FAILED_WITH_RETRY, _FAILED_WITHOUT_RETRY = 0, 1, 2


def _ending(attempt: Callable[..., Outcome], count: Callable[[int], None], kind: int, *args: Any) -> Outcome:
    """attempt(*args); an error it raises (one not to retry) ends the call, counted as `kind`."""
    try:
        return attempt(*args)
    except Exception:
        count(kind)
        raise


async def _ending_async(attempt: Awaitable[Outcome], count: Callable[[int], None], kind: int) -> Outcome:
    """As _ending, for an awaited attempt."""
    try:
        return await attempt
    except Exception:
        count(kind)
        raise


class _GiveUp(Exception):
    def __init__(self, reason: GiveUpReason) -> None:
        super().__init__(reason)
        self.reason = reason


class Attempt:
    """One attempt of an explicit retry loop; use it as a context manager.

    A retryable exception raised inside `with attempt:` is recorded and
    swallowed, and the loop goes on (after the backoff); anything else
    propagates. `attempt.number` counts from 1; `failed` and `outcome` say
    how it went.
    """

    __slots__ = ("number", "_retry", "_outcome", "_failed")

    def __init__(self, retry: Retry, number: int) -> None:
        self.number = number
        self._retry = retry
        self._outcome: object = None
        self._failed = False

    def __enter__(self) -> Attempt:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool:
        if exc is None or not self._retry._brace_stage_retryable(exc):
            return False
        self._outcome, self._failed = exc, True
        return True

    @property
    def failed(self) -> bool:
        """Whether this attempt failed: its block raised a retryable exception, or `check`
        rejected its result."""
        return self._failed

    @property
    def outcome(self) -> object:
        """What a failed attempt raised or returned (None while it has not failed)."""
        return self._outcome

    def check(self, result: R) -> R:
        """Hands a result to `retry_on_result`: a result it rejects fails this attempt."""
        if self._retry._brace_stage_rejects(result):
            self._outcome, self._failed = result, True
        return result

    def __repr__(self) -> str:
        return f"<brace.Attempt {self.number}>"


class Retry(RetryCore, Observable[RetryEvent]):
    """Retries a call on the failures you name, with backoff, until it succeeds or gives up.

    Use it as a decorator (sync and coroutine functions), with `call` /
    `call_async`, or as an explicit loop::

        for attempt in brace.Retry(on=ConnectionError):
            with attempt:
                fetch()

    (`async for attempt in retry:` in coroutines.) Between attempts it sleeps
    for the server's pushback when the failure carries an HTTP response with
    Retry-After, RateLimit or X-RateLimit-Reset (capped, malformed values
    ignored; spread over up to 20% more, so that callers told the same
    wait do not return in the same instant), else for the backoff's
    delay. Sleeps go through brace's clock,
    so under `brace.testing.fake_clock()` retries take no real time.

    It gives up when `attempts` are spent, when the next sleep would cross the
    `deadline`, or when the retry `budget` has nothing left; then the last
    exception is re-raised with a note saying how many attempts were made (or
    `brace.RetryError`, chained to it, with `raise_retry_error=True`); an
    exhausted budget raises `brace.RetryBudgetExhausted`, chained likewise. A
    result that `retry_on_result` kept rejecting is returned as it is (or
    RetryError is raised). Exceptions that `on` does not name propagate at once.

    With a `classifier` (a brace.ErrorClassifier), each failure is classified
    and retried the way its category's treatment says: only retryable
    categories are retried, each failure of category c earns at most c's
    `retries` retries per call, the delay before the k-th retry of c is
    c's backoff at k (unless `backoff` is given), and the server's wait is
    honoured when the treatment's `pushback` is set too. Returned responses
    the classifier calls failures (HTTP status >= 400) of a retryable category
    are retried like exceptions.

    Args:
        name: A name for events and notes.
        on: Which exceptions to retry: exception types or a predicate.
            Required without a classifier; with one, an error is retried only
            if `on` (when given) accepts it and the classifier calls it retryable.
        retry_on_result: A predicate on return values to retry too (with a
            classifier: as well as the failures it finds). A result that only
            this predicate rejects counts against `attempts`, or 3 attempts
            when a classifier leaves `attempts` None.
        attempts: Attempts in all, the first included, >= 1 (1: no retry; 3:
            the first and two retries). None: 3 without a
            classifier; with one, no cap beyond each category's retries.
        deadline: Bound on all attempts and sleeps together (seconds > 0 or
            timedelta); None: no bound. It never sleeps past it nor starts an
            attempt after it; a coroutine attempt running at it is cancelled
            (brace.AttemptTimeout); a sync attempt cannot be stopped, but reads its
            time left with brace.deadline_remaining() (with an
            attempt_timeout, the caller stops waiting at the deadline). A
            tighter enclosing bound (brace.deadline, an outer Retry) wins.
        backoff: The delays between attempts; default
            Backoff.exponential(initial=1.0, multiplier=2.0, max=30.0, jitter="full"),
            or with a classifier each category's own.
        attempt_timeout: Bound on each attempt (seconds or timedelta). A
            coroutine is cancelled at it and fails with brace.AttemptTimeout. A sync
            attempt runs in one of brace's worker threads (with a copy of the
            caller's contextvars) and the caller stops waiting at the bound
            with brace.AttemptTimeout(still_running=True): Python cannot stop a
            thread, so the attempt runs on until it ends, and what it holds
            (a Policy's bulkhead slot, a breaker's probe) stays taken until
            then. Such an attempt is not retried unless `idempotent` is True,
            since the server may still act on it. Inside an attempt,
            brace.deadline_remaining() tells the time left. `on` must accept
            brace.AttemptTimeout (a TimeoutError) for it to be retried.
        idempotent: Whether running the operation twice is harmless (a read,
            a PUT of the same value, a request with an idempotency key): only
            then is a sync attempt that timed out and may still be running
            retried.
        budget: A RetryBudget shared with other retries: each call deposits,
            each retry withdraws.
        pushback: Whether to honour server pushback headers (with a
            classifier, also the retry_after of brace's RateLimited, for
            categories whose treatment has pushback).
        pushback_cap: The longest server-asked delay honoured, seconds.
        raise_retry_error: Give up with brace.RetryError instead of the last exception.
        before_sleep: Called with a RetryEvent before each sleep.
        on_retry: Called with a RetryEvent as each retry starts.
        on_giveup: Called with a RetryEvent when it gives up.
        classifier: A brace.ErrorClassifier deciding what is retried and how
            (see above); None: `on` and `retry_on_result` decide.

    Raises:
        ValueError, TypeError: For configuration outside the ranges above.
    """

    #: The kinds of event this primitive emits (add_listener's `kinds`).
    event_kinds: ClassVar[tuple[str, ...]] = _EVENT_KINDS

    __slots__ = (
        "_on", "_retry_on_result", "_attempts", "_deadline", "_backoff", "_attempt_timeout",
        "_budget", "_pushback", "_pushback_cap", "_raise_retry_error", "_before_sleep",
        "_on_retry", "_on_giveup", "_name", "_classifier", "_listeners", "_backoff_given", "_checks_result", "_idempotent",
        "_calls", "_calls_lock", "__weakref__",
    )  # fmt: skip

    def __init__(
        self,
        *positional: NoReturn,
        name: str | None = None,
        on: _config.ExceptionFilter | None = None,
        retry_on_result: Callable[[Any], bool] | None = None,
        attempts: int | None = None,
        deadline: float | timedelta | None = None,
        backoff: Backoff | None = None,
        attempt_timeout: float | timedelta | None = None,
        idempotent: bool = False,
        budget: RetryBudget | None = None,
        pushback: bool = True,
        pushback_cap: float | timedelta = 300.0,
        raise_retry_error: bool = False,
        before_sleep: Hook | None = None,
        on_retry: Hook | None = None,
        on_giveup: Hook | None = None,
        classifier: Classifier | None = None,
    ) -> None:
        _config.keywords_only("Retry", positional)
        self._calls, self._calls_lock = [0, 0, 0], threading.Lock()  # calls() ended in Python (by kind)
        self._classifier = _checked_classifier(classifier)
        self._on = _checked_on(on, self._classifier)
        if retry_on_result is not None and not callable(retry_on_result):
            raise TypeError(f"retry_on_result must be a predicate or None, got {type(retry_on_result).__name__}")
        self._retry_on_result = retry_on_result
        self._checks_result = retry_on_result is not None or classifier is not None
        self._attempts = _checked_attempts(attempts, self._classifier)
        deadline_s = _config.duration(deadline, "deadline", allow_none=True, positive=True)
        self._deadline = None if deadline_s is None else round(deadline_s * NS_PER_SECOND)
        self._backoff = _config.instance_or_none(backoff, Backoff, "backoff") or Backoff.exponential()
        self._backoff_given = backoff is not None
        # A sync attempt is waited for on a thread.
        timeout = _config.duration(attempt_timeout, "attempt_timeout", allow_none=True, positive=True,
                                   maximum=_config.THREAD_WAIT_MAX)
        self._attempt_timeout = timeout
        self._idempotent = _config.flag(idempotent, "idempotent")
        self._budget = _config.instance_or_none(budget, RetryBudget, "budget")
        self._pushback = _config.flag(pushback, "pushback")
        self._pushback_cap = _config.positive_duration(pushback_cap, "pushback_cap")
        self._raise_retry_error = _config.flag(raise_retry_error, "raise_retry_error")
        for hook, hook_name in ((before_sleep, "before_sleep"), (on_retry, "on_retry"), (on_giveup, "on_giveup")):
            if hook is not None and not callable(hook):
                raise TypeError(f"{hook_name} must be callable or None, got {type(hook).__name__}")
        self._before_sleep, self._on_retry, self._on_giveup = before_sleep, on_retry, on_giveup
        self._name = _config.optional_name(name)
        self._listeners: Listeners[RetryEvent] = Listeners(f"retry {name!r}" if name else "a retry", _EVENT_KINDS)
        self._configure_core(
            # A bound the attempts can read (deadline_remaining) needs the call in Python.
            whole_call_in_python=timeout is not None or self._deadline is not None,
            checks_result=self._checks_result,
            # A response below this passes the result checks unseen (brace._stages.status_threshold).
            passes_below=0 if self._retry_on_result is not None else status_threshold(self._classifier),
            deposit=None if budget is None else budget.deposit,
        )

    @property
    def name(self) -> str | None:
        """The retry's name, or None."""
        return self._name

    @property
    def attempts(self) -> int | None:
        """Attempts in all, the first included (None: a classifier's categories cap them)."""
        return self._attempts

    @property
    def deadline(self) -> float | None:
        """Seconds that bound all attempts and sleeps of a call (None: no bound)."""
        return None if self._deadline is None else self._deadline / NS_PER_SECOND

    @property
    def attempt_timeout(self) -> float | None:
        """Seconds that bound each attempt (None: no bound)."""
        return self._attempt_timeout

    def reconfigure(
        self,
        *,
        on: _config.ExceptionFilter | None = _KEEP,
        attempts: int | None = _KEEP,
        backoff: Backoff | None = _KEEP,
        idempotent: bool = _KEEP,
        pushback: bool = _KEEP,
        pushback_cap: float | timedelta = _KEEP,
        raise_retry_error: bool = _KEEP,
    ) -> None:
        """Changes how the retry retries, while in use; unspecified settings keep their values,
        and the listeners and counts stay.

        Each setting means what it means to the constructor (None for `on`, `attempts` or
        `backoff` too). A call already in its retry loop reads each setting when it next
        needs it. What a Policy built on the retry compiled (the deadline, the attempt
        timeout, the budget, result checks) cannot change here: make a new Retry for those.

        Raises:
            ValueError, TypeError: As the constructor, for the settings given; then nothing changes.
        """
        new_on = self._on if on is _KEEP else _checked_on(on, self._classifier)
        new_attempts = self._attempts if attempts is _KEEP else _checked_attempts(attempts, self._classifier)
        new_backoff = self._backoff if backoff is _KEEP else (
            _config.instance_or_none(backoff, Backoff, "backoff") or Backoff.exponential())
        flags = [current if value is _KEEP else _config.flag(value, name)
                 for value, name, current in ((idempotent, "idempotent", self._idempotent),
                                              (pushback, "pushback", self._pushback),
                                              (raise_retry_error, "raise_retry_error", self._raise_retry_error))]  # fmt: skip
        cap = self._pushback_cap if pushback_cap is _KEEP else _config.positive_duration(pushback_cap, "pushback_cap")
        self._on, self._attempts, self._backoff = new_on, new_attempts, new_backoff
        if backoff is not _KEEP:
            self._backoff_given = backoff is not None
        self._idempotent, self._pushback, self._raise_retry_error = flags
        self._pushback_cap = cap

    def calls(self) -> RetryCalls:
        """The calls since the retry was made, by how they ended (see RetryCalls)."""
        with self._calls_lock:
            return RetryCalls(self._successful_without_retry, *self._calls)

    def _count(self, kind: int) -> None:
        with self._calls_lock:
            self._calls[kind] += 1

    @property
    def budget(self) -> RetryBudget | None:
        """The RetryBudget its retries draw on, or None."""
        return self._budget

    # -- ways to use it -----------------------------------------------------------

    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]:
        """Decorates fn (sync or async) so that its calls are retried.

        A function this Retry already decorates is returned as it is. A plain
        function that returns an awaitable gets its awaited outcome retried.
        """
        return _guarding.guard_function(self, fn, self._guard, self._guard_async)

    def _guard_async(self, fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def retried_async(*args: Any, **kwargs: Any) -> Any:
            return await self._call_async(fn, args, kwargs)

        return retried_async

    @overload
    def call(self, fn: Callable[P, Awaitable[R]], /, *args: P.args,
             **kwargs: P.kwargs) -> _guarding.UseCallAsync: ...  # fmt: skip

    @overload
    def call(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R: ...

    def call(self, fn: Callable[P, Any], /, *args: P.args, **kwargs: P.kwargs) -> Any:
        """Calls fn(*args, **kwargs), retrying as configured.

        Raises:
            TypeError: fn is a coroutine function or returned an awaitable:
                use `await retry.call_async(fn, ...)`.
        """
        if _guarding.sync_entry(fn, self, "Retry.call"):
            return _guarding.call_guarded(fn, args, kwargs, "Retry.call")
        return self._call(fn, args, kwargs)

    async def call_async(self, fn: Callable[P, Awaitable[R]], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Awaits fn(*args, **kwargs), retrying as configured (a plain fn's value is used as it is)."""
        if _guarding.kind(fn, self) == CALLABLE_GUARDED:
            return cast(R, await _guarding.awaited(fn(*args, **kwargs)))
        return cast(R, await self._call_async(fn, args, kwargs))

    def __iter__(self) -> Iterator[Attempt]:
        steps = self._brace_stage_loop(*self._begin())
        sent: Outcome | bool | None = None
        while True:
            try:
                effect = steps.send(sent)
            except StopIteration:
                return  # the caller holds the result it accepted or checked
            if isinstance(effect, Sleep):
                sleep_until(now_ns() + round(effect.seconds * NS_PER_SECOND))
                sent = None
            elif isinstance(effect, Withdraw):
                sent = effect.budget.try_withdraw()
            else:
                attempt = Attempt(self, effect.number)
                yield attempt
                sent = attempt.failed, attempt.outcome

    async def __aiter__(self) -> AsyncIterator[Attempt]:
        steps = self._brace_stage_loop(*self._begin())
        sent: Outcome | bool | None = None
        while True:
            try:
                effect = steps.send(sent)
            except StopIteration:
                return
            if isinstance(effect, Sleep):
                await sleep_until_async(now_ns() + round(effect.seconds * NS_PER_SECOND))
                sent = None
            elif isinstance(effect, Withdraw):
                sent = await effect.budget.try_withdraw_async()
            else:
                attempt = Attempt(self, effect.number)
                yield attempt
                sent = attempt.failed, attempt.outcome

    # -- the compiled wrapper's slow paths (pyx/guard.h) ------------------------

    def _guard_call(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        return self._call(fn, args, kwargs)

    def _guard_failed(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
                      error: BaseException, token: int, start: int) -> Any:  # fmt: skip
        if not self._brace_stage_retryable(error):
            if isinstance(error, Exception):
                self._count(_FAILED_WITHOUT_RETRY)
            return RERAISE
        return self._call(fn, args, kwargs, (True, error), start or now_ns())

    def _guard_result(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
                      result: object, token: int, start: int) -> Any:  # fmt: skip
        if not self._brace_stage_rejects(result):
            self._count_success_without_retry()
            return result
        return self._call(fn, args, kwargs, (True, result), start or now_ns())

    def _guard_awaitable(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
                         awaitable: Awaitable[Any], token: int, start: int) -> Awaitable[Any]:  # fmt: skip
        """A decorated plain function returned an awaitable: retry its awaited outcome."""
        return self._adopt(fn, args, kwargs, awaitable, start or now_ns())

    async def _adopt(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
                     first: Awaitable[Any], started: int) -> Any:  # fmt: skip
        with _deadline.within(self._deadline_from(started)):
            outcome = await self._brace_stage_classified_async(lambda: first)
        return await self._call_async(fn, args, kwargs, outcome, started)

    # -- the loop, written once ----------------------------------------------------
    #
    # _brace_stage_loop() is the whole retry algorithm: it yields effects - Call(number):
    # make attempt `number` and send back its (failed, outcome); Sleep(seconds):
    # sleep, then send None; Withdraw(budget): withdraw from a budget that asks a store
    # (awaited by the async drivers), send back whether it did - and returns the call's value or raises what ends
    # it. The drivers (drive and drive_async, below the class) only perform
    # effects: a sleep or an awaited one, a call or an awaited call; the `for`
    # and `async for` forms are drivers too, whose attempts are the caller's
    # blocks. The _brace_stage_* methods are brace._stages.RetryStage: what a
    # Policy asks of its retry.

    def _brace_stage_begin(self) -> None:
        """A call starts: the budget (if any) earns its share of retries."""
        if self._budget is not None:
            self._budget.deposit()

    def _begin(self) -> tuple[int, int | None]:
        """Starts a call: the deposit; (its start, its bound) in ns on brace's clock."""
        self._brace_stage_begin()
        started = now_ns()
        return started, self._deadline_from(started)

    def _deadline_from(self, started: int) -> int | None:
        """The call's bound (ns on brace's clock): its own deadline from `started`, or a
        tighter enclosing one (brace.deadline, an outer retry); None: unbounded."""
        return _deadline.tighter(None if self._deadline is None else started + self._deadline)

    def _brace_stage_loop(self, started: int, deadline: int | None) -> Steps:
        """The retry loop of one call that began at `started`, bounded by `deadline`."""
        previous: float | None = None
        number = 1
        tally: _Tally | None = None if self._classifier is None else {}
        while True:
            sent = yield Call(number)
            assert isinstance(sent, tuple)
            failed, outcome = sent
            if not failed:
                if number > 1:
                    self._count(_SUCCESSFUL_WITH_RETRY)
                else:
                    self._count_success_without_retry()
                return outcome
            try:
                delay, classification = yield from self._plan_or_give_up(number, outcome, previous, started, deadline,
                                                                         tally)  # fmt: skip
            except BaseException as ended:
                self._count(_FAILED_WITH_RETRY if number > 1 else _FAILED_WITHOUT_RETRY)
                if isinstance(ended, _LastResult):
                    return ended.value
                raise
            yield Sleep(delay)
            self._emit(self._on_retry, "retry", number, outcome, delay, started, classification=classification)
            previous, number = delay, number + 1

    def _call(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
              first: Outcome | None = None, started: int | None = None) -> Any:  # fmt: skip
        """A sync call; `first` (with its `started`): attempt 1, already made and booked."""
        if first is None or started is None:
            started, deadline = self._begin()
        else:
            deadline = self._deadline_from(started)
        bound = _deadline.BOUND.set(deadline)  # the tighter of its own and the active one
        try:
            if first is None:  # attempt 1, before the loop: it only runs when that failed
                first = _ending(self._attempt, self._count, _FAILED_WITHOUT_RETRY, fn, args, kwargs)
                if not first[0]:
                    self._count_success_without_retry()
                    return first[1]
            return drive(self._brace_stage_loop(started, deadline),
                         lambda: _ending(self._attempt, self._count, _FAILED_WITH_RETRY, fn, args, kwargs), first)
        finally:
            _deadline.BOUND.reset(bound)

    async def _call_async(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
                          first: Outcome | None = None, started: int | None = None) -> Any:  # fmt: skip
        if first is None or started is None:
            started, deadline = self._begin()
        else:
            deadline = self._deadline_from(started)
        bound = _deadline.BOUND.set(deadline)
        try:
            if first is None:
                first = await _ending_async(self._attempt_async(fn, args, kwargs), self._count, _FAILED_WITHOUT_RETRY)
                if not first[0]:
                    self._count_success_without_retry()
                    return first[1]
            return await drive_async(self._brace_stage_loop(started, deadline),
                                     lambda: _ending_async(self._attempt_async(fn, args, kwargs), self._count,
                                                           _FAILED_WITH_RETRY), first)  # fmt: skip
        finally:
            _deadline.BOUND.reset(bound)

    def _brace_stage_ended_first(self, succeeded: bool) -> None:
        if succeeded:
            self._count_success_without_retry()
        else:
            self._count(_FAILED_WITHOUT_RETRY)

    def _brace_stage_retryable(self, error: BaseException) -> bool:
        if not isinstance(error, Exception) or isinstance(error, _guarding.AsyncMisuse):
            return False
        if self._on is not None and not self._on(error):
            return False
        return self._classifier is None or self._classifier.classify(error).retryable

    def _brace_stage_rejects(self, result: object) -> bool:
        if self._retry_on_result is not None and self._retry_on_result(result):
            return True
        classifier = self._classifier
        return classifier is not None and classifier.is_failure(result) and classifier.classify(result).retryable

    def _attempt(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Outcome:
        """One sync attempt, bounded by the active bound (the call's, set by the loop):
        (failed, outcome); exceptions not to retry propagate."""
        timeout = self._attempt_timeout
        if timeout is None:
            return self._brace_stage_classified(_sync_call, fn, args, kwargs)
        bound, limit = _deadline.attempt_bound(timeout)
        assert bound is not None
        with _deadline.within(bound):
            return self._brace_stage_classified(lambda: _sync_result(_worker.run(
                fn, args, kwargs, deadline_ns=bound, timeout=limit), fn))  # fmt: skip

    def _brace_stage_classified(self, call: Callable[..., Any], *args: Any) -> Outcome:
        """(failed, what call(*args) raised or returned); exceptions not to retry propagate."""
        try:
            result = call(*args)
        except BaseException as error:
            if not self._brace_stage_retryable(error):
                raise
            return True, error
        return self._brace_stage_rejects(result), result

    async def _attempt_async(self, fn: Callable[..., Any], args: tuple[Any, ...],
                             kwargs: dict[str, Any]) -> Outcome:  # fmt: skip
        """One async attempt, cancelled at the attempt timeout or the active bound (the call's)."""
        bound, limit = _deadline.attempt_bound(self._attempt_timeout)
        return await self._brace_stage_classified_async(lambda: _deadline.bounded(
            _guarding.awaited(fn(*args, **kwargs)), bound, limit))  # fmt: skip

    async def _brace_stage_classified_async(self, call: Callable[..., Awaitable[Any]], *args: Any) -> Outcome:
        try:
            result = await call(*args)
        except BaseException as error:
            if not self._brace_stage_retryable(error):
                raise
            return True, error
        return self._brace_stage_rejects(result), result

    def _plan_or_give_up(self, attempt: int, outcome: object, previous: float | None, started: int,
                         deadline: int | None, tally: _Tally | None = None,
                         ) -> Generator[Withdraw, Outcome | bool | None, tuple[float, Classification | None]]:  # fmt: skip
        """(seconds to sleep before attempt + 1, the outcome's classification), or gives up
        (raises, or returns no delay). `tally` is the call's, given with a classifier. A
        budget that asks a store is withdrawn from through the loop's driver (a Withdraw)."""
        classification = None if tally is None else self._classification(outcome)
        try:
            delay = self._plan(attempt, outcome, previous, deadline, classification, tally)
            if self._budget is not None and self._budget.remote and not (yield Withdraw(self._budget)):
                raise _GiveUp("budget")
        except _GiveUp as give_up:
            reason = give_up.reason
        else:
            self._emit(self._before_sleep, "sleep", attempt, outcome, delay, started, classification=classification)
            return delay, classification
        # Raised outside the handler, so the internal _GiveUp is no one's context.
        self._emit(self._on_giveup, "give_up", attempt, outcome, None, started, reason, classification)
        raise self._giving_up(attempt, outcome, reason, classification)

    def _classification(self, outcome: object) -> Classification | None:
        """The classifier's verdict on a failed attempt; None for a result it does not call
        a failure (one that only retry_on_result rejected)."""
        classifier = self._classifier
        if classifier is None or not (isinstance(outcome, BaseException) or classifier.is_failure(outcome)):
            return None
        return classifier.classify(outcome)

    def _plan(self, attempt: int, outcome: object, previous: float | None, deadline: int | None,
              classification: Classification | None = None, tally: _Tally | None = None) -> float:  # fmt: skip
        if isinstance(outcome, AttemptTimeout) and outcome.still_running and not self._idempotent:
            raise _GiveUp("still_running")
        if self._attempts is not None and attempt >= self._attempts:
            raise _GiveUp("attempts")
        if tally is None:
            delay = _server_delay(outcome, self._pushback_cap) if self._pushback else None
            if delay is None:
                delay = self._backoff.delay(attempt, previous=previous, outcome=outcome)
            else:
                delay = min(after_server_wait(delay), self._pushback_cap)
        else:
            key, delay, retries = self._plan_classified(attempt, outcome, previous, classification, tally)
        # An attempt that would start at the bound or after it has no time to run.
        if deadline is not None and now_ns() + round(delay * NS_PER_SECOND) >= deadline:
            raise _GiveUp("deadline")
        if self._budget is not None and not self._budget.remote and not self._budget.try_withdraw():
            raise _GiveUp("budget")
        if tally is not None:
            tally[key] = (retries, delay)
        return delay

    def _plan_classified(self, attempt: int, outcome: object, previous: float | None,
                         classification: Classification | None,
                         tally: _Tally) -> tuple[Category | None, float, int]:  # fmt: skip
        """(the tally's key, the delay, the key's retries with this one) under a classifier."""
        if classification is not None and classification.retryable:
            key: Category | None = classification.category
            allowance = classification.retries
        else:
            key, allowance = None, (_UNCLASSIFIED_ATTEMPTS if self._attempts is None else self._attempts) - 1
        done, last = tally.get(key, (0, None))
        if done >= allowance:
            raise _GiveUp("attempts")
        delay: float | None = None
        if self._pushback and (classification is None or classification.pushback):
            delay = (_server_delay(outcome, self._pushback_cap) if classification is None
                     else classification.retry_after)  # fmt: skip
            if delay is not None:
                delay = min(after_server_wait(delay), self._pushback_cap)
        if delay is None:
            if self._backoff_given or classification is None or key is None:
                delay = self._backoff.delay(attempt, previous=previous, outcome=outcome)
            else:
                delay = classification.backoff.delay(done + 1, previous=last, outcome=outcome)
        return key, delay, done + 1

    def _giving_up(self, attempts: int, outcome: object, reason: GiveUpReason,
                   classification: Classification | None = None) -> BaseException:  # fmt: skip
        """The exception that ends the call (a last result travels in _LastResult)."""
        cause = outcome if isinstance(outcome, BaseException) else None
        if reason == "budget":
            error: BaseException = RetryBudgetExhausted(attempts=attempts)
        elif self._raise_retry_error:
            error = RetryError(attempts=attempts)
        elif cause is not None:
            who = f"retry {self._name!r}" if self._name else "brace.retry"
            why = reason if classification is None else f"{reason}: {classification.category.value}"
            add_note(cause, f"{who} gave up after {attempts} attempt(s) ({why})")
            return cause
        else:
            return _LastResult(outcome)
        error.__cause__ = cause
        return error

    def _emit(self, hook: Hook | None, kind: EventKind, attempt: int, outcome: object, delay: float | None,
              started: int, reason: GiveUpReason | None = None,
              classification: Classification | None = None) -> None:  # fmt: skip
        listened = self._listeners.wants(kind)
        if hook is None and not listened:
            return
        now = now_ns()
        event = RetryEvent(kind, self._name, now / NS_PER_SECOND, attempt, outcome, delay, (now - started) / NS_PER_SECOND, reason,
                           classification)  # fmt: skip
        if hook is not None:
            try:
                hook(event)
            except Exception:
                logger().exception("brace: a hook of retry %r failed", self._name)
        if listened:
            self._listeners.emit(event, kind)

    def __repr__(self) -> str:
        name = f"name={self._name!r}, " if self._name else ""
        classifier = "" if self._classifier is None else f", classifier={self._classifier!r}"
        return f"Retry({name}attempts={self._attempts}, backoff={self._backoff!r}{classifier})"


def drive(steps: Steps, attempt: Callable[[], Outcome], first: Outcome) -> Any:
    """Runs `steps` in this thread from `first`, the outcome of attempt 1.

    The callers make attempt 1 before the loop, which always asks for it first: when
    it did not fail, the loop would return its value at once, so the call ends with
    it and the loop never runs (the success path stays short)."""
    if not first[0]:
        return first[1]
    sent: Outcome | bool | None = None
    pending: Outcome | None = first
    while True:
        try:
            effect = steps.send(sent)
        except StopIteration as done:
            return done.value
        if isinstance(effect, Sleep):
            sleep_until(now_ns() + round(effect.seconds * NS_PER_SECOND))
            sent = None
        elif isinstance(effect, Withdraw):
            sent = effect.budget.try_withdraw()
        else:
            sent, pending = (attempt() if pending is None else pending), None


async def drive_async(steps: Steps, attempt: Callable[[], Awaitable[Outcome]], first: Outcome) -> Any:
    """`drive` for coroutines: sleeps and attempts are awaited."""
    if not first[0]:
        return first[1]
    sent: Outcome | bool | None = None
    pending: Outcome | None = first
    while True:
        try:
            effect = steps.send(sent)
        except StopIteration as done:
            return done.value
        if isinstance(effect, Sleep):
            await sleep_until_async(now_ns() + round(effect.seconds * NS_PER_SECOND))
            sent = None
        elif isinstance(effect, Withdraw):
            sent = await effect.budget.try_withdraw_async()
        else:
            sent, pending = (await attempt() if pending is None else pending), None


class _LastResult(Exception):
    """Carries the last result out of the loop when it gives up on results: the
    loops catch it and return the value (it never reaches the caller)."""

    def __init__(self, value: object) -> None:
        super().__init__()
        self.value = value


def _sync_call(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> object:
    """fn(*args, **kwargs), a sync attempt's result."""
    return _sync_result(fn(*args, **kwargs), fn)


def _sync_result(result: object, fn: object) -> object:
    """A sync attempt's result; an awaitable is refused (its work would run unretried)."""
    if is_awaitable(result):
        raise _guarding.refuse_awaitable(result, fn, "Retry.call")
    return result


C = ParamSpec("C")


class _Decorator(Generic[C]):
    """`brace.retry`: `@brace.retry` bare, or `@brace.retry(...)` with Retry's keywords."""

    __slots__ = ("_make",)

    def __init__(self, make: Callable[C, Retry]) -> None:
        self._make = make

    @overload
    def __call__(self, fn: Callable[P, R], /) -> Callable[P, R]: ...  # type: ignore[overload-overlap]

    @overload
    def __call__(self, *args: C.args, **kwargs: C.kwargs) -> Retry: ...

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if len(args) == 1 and not kwargs and callable(args[0]):
            # Bare, as tenacity users write it: any Exception, brace's default attempts and backoff.
            return Retry(on=Exception)(args[0])
        return self._make(*args, **kwargs)

    def __repr__(self) -> str:
        return "brace.retry"


#: `@brace.retry` retries any Exception with the defaults (3 attempts, exponential
#: backoff from 1 s with full jitter); `@brace.retry(on=ConnectionError, attempts=5)`
#: is `@brace.Retry(...)`, spelled as the decorator people reach for.
retry = _Decorator(Retry)


def _checked_on(on: object, classifier: Classifier | None) -> Callable[[BaseException], bool] | None:
    """`on` as a filter; None only with a classifier (which then decides alone)."""
    if on is None and classifier is None:
        raise TypeError("on must be an exception type, a tuple of them, or a predicate "
                        "(it may be left out only with a classifier), got None")  # fmt: skip
    return None if on is None else _config.exception_filter(on, "on")


def _checked_attempts(attempts: object, classifier: Classifier | None) -> int | None:
    """`attempts` checked; None: 3, or with a classifier, its categories' caps."""
    if attempts is None:
        return 3 if classifier is None else None
    return _config.count(attempts, "attempts")


def _checked_classifier(classifier: object) -> Classifier | None:
    if classifier is not None and not (callable(getattr(classifier, "classify", None))
                                       and callable(getattr(classifier, "is_failure", None))):  # fmt: skip
        raise TypeError("classifier must be a brace.ErrorClassifier (or have its classify() and is_failure()) "
                        f"or None, got {type(classifier).__name__}")
    return cast("Classifier | None", classifier)


def _server_delay(outcome: object, cap: float) -> float | None:
    """The server's requested wait (brace.pushback.server_delay), read only after a failure:
    the header parser loads then, not with `import brace`."""
    from brace.pushback import server_delay

    return server_delay(outcome, cap=cap)
