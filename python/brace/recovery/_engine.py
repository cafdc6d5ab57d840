"""brace.Recovery: one entry point that classifies a failure, heals it, retries,
falls back, and escalates to a human, losing nothing.

A call runs the operation (through a brace.Policy when one is given). A
success returns at once. A failure is classified (brace.ErrorClassifier) and
recovered as brace.recovery._loop describes: healed and retried within its
category's allowance, else served a marked value by the fallback
(brace.Degraded), else escalated, and the decision (retry, skip, use a value,
abort) settles the call. Nothing is dropped: every call ends in the
operation's value, a Degraded value, or an exception.

This module is the front: configuration (brace.recovery._settings), the ways
to call (decorator, `call`, `call_async`), listeners and statistics. The
algorithm is brace.recovery._loop, written once and run by the drivers of
brace.recovery._drivers in a thread or a coroutine.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
from collections.abc import Awaitable, Coroutine, Iterable, Iterator
from datetime import timedelta
from typing import Any, Callable, ClassVar, NoReturn, ParamSpec, TypeVar, cast, overload

from brace import _config, _guarding
from brace._core import CALLABLE_GUARDED, RecoveryCore, is_awaitable
from brace._listeners import checked_kinds
from brace._safe import name_of, safe_repr
from brace.classify import ErrorClassifier
from brace.policy import Policy
from brace.recovery import _outbox
from brace.recovery._correlation import correlation_var, new_correlation_id
from brace.recovery.deadletters import DeadLetterStore
from brace.recovery._drivers import Effect, Steps, drive, drive_async
from brace.recovery._escalation_policy import EscalationPolicy
from brace.recovery._events import EVENT_KINDS, EventKind, FirstTry, Listener, RecoveryEvent, first_try_event
from brace.recovery._fallback import Fallback
from brace.recovery._served import Degraded
from brace.recovery._healing import HealingAction, HealingStats
from brace.recovery._loop import Engine
from brace.recovery._run import Run
from brace.recovery._settings import Settings
from brace.recovery._stats import RecoveryStats

__all__ = ["Recovery", "RecoveryEvent"]

P = ParamSpec("P")
R = TypeVar("R")


class Recovery:
    """Classify, heal, retry, fall back, escalate: one wrapper for a call to another service.

    Use it as a decorator (sync or coroutine functions; a plain function
    that returns an awaitable is recovered as the coroutine it returns) or
    through `call` / `call_async`. A call returns the operation's value; or a
    brace.Degraded holding a value that did not come from the operation (a
    fallback's, or an escalation's decision to skip or to use a given value);
    or raises brace.RecoveryFailed (chained to the last error) when
    escalation decides to abort. Exceptions that are not Exceptions
    (KeyboardInterrupt, cancellation) pass through untouched, and so does
    the TypeError of a coroutine function given to the sync `call`.

    Rejections by brace itself (an open breaker, a full bulkhead, a spent
    retry budget) are not retried: nothing was sent, and a breaker's open
    time is not the server asking for a pause. They go to the fallback or
    escalation at once. A sync attempt that timed out and may still be
    running (brace.AttemptTimeout with still_running) is retried only when the
    operation is `idempotent`. An enclosing deadline (brace.deadline, an
    outer Retry) bounds the retries and the wait for an escalation's
    decision, like `healing_time`.

    Args:
        classifier: Classifies failures and sets each category's attempts,
            backoff and pushback; default brace.classify.DEFAULT_CLASSIFIER.
            Returned values it calls failures (HTTP responses with an error
            status) are treated like raised errors.
        policy: A brace.Policy each attempt runs through (breaker, limiter,
            bulkhead, attempt timeout; a retry in it nests inside each attempt).
        healing: HealingActions; before the retry after a failure, one action
            registered for its category runs (chosen by `healing_stats` when
            there are several; if it raises, the next is tried).
        fallback: A brace.Fallback serving a value when recovery stops.
        escalation: A brace.EscalationPolicy for failures nothing else
            settled; default: log the explanation (logger "brace", ERROR) and abort.
        healing_time: Bound on the time from a call's first failure to its
            last retry (seconds or timedelta, > 0): a retry whose wait would
            cross it is not made and the failure escalates.
        healing_stats: The record that picks among healing actions and learns
            from their outcomes; share one between recoveries to pool it.
            Default: a fresh brace.HealingStats.
        feature: A brace.switches feature this operation serves: recovery
            giving up turns it off, the next success turns it back on.
        dead_letters: Where calls given up on go (their name, arguments,
            error, classification and correlation id), before the error or
            the skip reaches the caller: a brace.DeadLetterStore. Default: the
            process's store (brace.deadletter.default_store(): SQLite, opened
            on the first dead letter).
        idempotent: Whether running the operation twice is harmless: only
            then is an attempt that timed out and may still be running
            retried.
        read_only: Whether the operation only reads (and so is idempotent):
            a value it was served instead (a fallback, a decision) then
            loses nothing. A call that is not read-only and was served a
            stand-in value is also kept as a dead letter, replayable, so that
            a write is never silently dropped.
        write_ahead: Record each call before it goes out, so that a crash
            of the process loses no trace of it: an "attempt_started" event
            before every attempt (JsonLinesSink writes it through to the
            operating system before the attempt starts), and, unless
            `read_only`, an entry in the dead-letter store's outbox before
            the first attempt, which the call's end settles (`end` on a value,
            its dead letter otherwise) and which
            `store.recover_interrupted()` turns into a dead letter after a
            crash. Costs a committed write per call (SQLite: tens of
            microseconds); if the outbox cannot be written the call is not
            made and the store's error is raised.
        name: The operation's name in escalations, events and overrides;
            default the wrapped function's __qualname__.

    Raises:
        ValueError, TypeError: For configuration outside the ranges above.
    """

    __slots__ = ("_settings", "_engine", "_core", "__weakref__")

    def __init__(
        self,
        *positional: NoReturn,
        name: str | None = None,
        classifier: ErrorClassifier | None = None,
        policy: Policy | None = None,
        healing: Iterable[HealingAction] = (),
        fallback: Fallback | None = None,
        escalation: EscalationPolicy | None = None,
        healing_time: float | timedelta = 120.0,
        healing_stats: HealingStats | None = None,
        feature: str | None = None,
        dead_letters: DeadLetterStore | None = None,
        idempotent: bool = False,
        read_only: bool = False,
        write_ahead: bool = False,
    ) -> None:
        _config.keywords_only("Recovery", positional)
        self._settings = Settings(classifier=classifier, policy=policy, healing=healing, fallback=fallback,
                                  escalation=escalation, healing_time=healing_time, healing_stats=healing_stats,
                                  feature=feature, dead_letters=dead_letters, idempotent=idempotent,
                                  read_only=read_only, write_ahead=write_ahead, name=name)  # fmt: skip
        self._engine = Engine(self._settings)
        self._core = RecoveryCore()
        self._configure_core()
        breaker = None if policy is None else policy.breaker
        if breaker is not None:
            breaker.add_listener(self._engine.on_breaker, kinds=("state_transition",))

    # -- ways to use it -----------------------------------------------------------

    @overload
    def __call__(self, fn: Callable[P, Coroutine[Any, Any, R]]) -> Callable[P, Coroutine[Any, Any, R | Degraded[R]]]: ...

    @overload
    def __call__(self, fn: Callable[P, R]) -> Callable[P, R | Degraded[R]]: ...

    def __call__(self, fn: Callable[P, Any]) -> Callable[P, Any]:
        """Decorates fn (sync or async) so that every call recovers as configured.

        A function this Recovery already decorates is returned as it is.
        """
        if not callable(fn):
            raise TypeError(f"a Recovery decorates callables, got {type(fn).__name__}")
        if _guarding.kind(fn, self) == CALLABLE_GUARDED:
            return fn
        operation = self._operation(fn)
        attempt_async = self._attempt_async(fn)
        if _guarding.is_async_callable(fn):

            @functools.wraps(fn)
            async def recovered_async(*args: P.args, **kwargs: P.kwargs) -> Any:
                return await self._call_async(Run(operation, args, kwargs, attempt=None, attempt_async=attempt_async))

            return _guarding.mark(recovered_async, self)
        # The policy's compiled guard: it also finds out a plain function that
        # returns an awaitable, which is then recovered as a coroutine.
        policy = self._settings.policy
        attempt = fn if policy is None else policy(fn)

        def whole(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            return self._call(Run(operation, args, kwargs, attempt=attempt, attempt_async=attempt_async))

        def rest(args: tuple[Any, ...], kwargs: dict[str, Any], start: int, returned: bool, outcome: Any) -> Any:
            run = Run(operation, args, kwargs, attempt=attempt, attempt_async=attempt_async)
            if returned and not is_awaitable(outcome):
                failure = self._engine.returned(run, outcome, start)
                if failure is None:
                    return outcome
                returned, outcome = False, failure
            run.made = (start, returned, outcome)
            return self._call(run)

        return functools.update_wrapper(self._core.recovered(attempt, self, operation, whole, rest), fn)

    @overload
    def call(self, fn: Callable[P, Awaitable[R]], /, *args: P.args,
             **kwargs: P.kwargs) -> _guarding.UseCallAsync: ...  # fmt: skip

    @overload
    def call(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R | Degraded[R]: ...

    def call(self, fn: Callable[P, Any], /, *args: P.args, **kwargs: P.kwargs) -> Any:
        """Calls fn(*args, **kwargs) with recovery.

        Raises:
            TypeError: fn is a coroutine function or returned an awaitable:
                use `await recovery.call_async(fn, ...)`.
        """
        if _guarding.sync_entry(fn, self, "Recovery.call"):
            return _guarding.call_guarded(fn, args, kwargs, "Recovery.call")
        policy = self._settings.policy
        attempt = fn if policy is None else functools.partial(policy.call, fn)
        return self._call(Run(self._operation(fn), args, kwargs, attempt=attempt, attempt_async=None))

    async def call_async(self, fn: Callable[P, Awaitable[R]], /, *args: P.args,
                         **kwargs: P.kwargs) -> R | Degraded[R]:  # fmt: skip
        """Awaits fn(*args, **kwargs) with recovery (a plain fn's value is used as it is)."""
        if _guarding.kind(fn, self) == CALLABLE_GUARDED:
            return cast("R | Degraded[R]", await _guarding.awaited(fn(*args, **kwargs)))
        run = Run(self._operation(fn), args, kwargs, attempt=None, attempt_async=self._attempt_async(fn))
        return cast("R | Degraded[R]", await self._call_async(run))

    #: The kinds of RecoveryEvent a Recovery emits (add_listener's `kinds`).
    event_kinds: ClassVar[tuple[str, ...]] = EVENT_KINDS

    def add_listener(self, listener: Listener, *, kinds: EventKind | Iterable[EventKind] | None = None) -> None:
        """Calls listener(RecoveryEvent) for every step of every call of the given kinds (default:
        all; failures of the listener are logged, never raised into the call)."""
        if not callable(listener):
            raise TypeError(f"listener must be callable, got {type(listener).__name__}")
        if kinds is not None:
            listener = _Kinds(listener, checked_kinds(kinds, EVENT_KINDS))
        self._engine.listeners = (*self._engine.listeners, listener)
        self._configure_core()

    def remove_listener(self, listener: Listener) -> None:
        """Stops calling listener (its first registration); ValueError if it was not added."""
        listeners = list(self._engine.listeners)
        for index, known in enumerate(listeners):
            if known == listener or (isinstance(known, _Kinds) and known.listener == listener):
                del listeners[index]
                self._engine.listeners = tuple(listeners)
                self._configure_core()
                return
        raise ValueError(f"listener {safe_repr(listener)} was not added")

    @property
    def name(self) -> str | None:
        """The operation name given at construction, or None."""
        return self._settings.name

    @property
    def healing_stats(self) -> HealingStats:
        """The record that picks among healing actions and learns from their outcomes."""
        return self._settings.healing_stats

    @property
    def _classifier(self) -> ErrorClassifier:
        return self._settings.classifier

    def stats(self) -> RecoveryStats:
        """What this Recovery has done: calls, recoveries and their times, escalations, by category.

        Calls made while replaying dead letters (brace.replay) are not among
        them, so that replays do not change the live recovery rate: see
        `replay_stats()`.
        """
        stats = self._engine.book.snapshot()
        fast = self._core.first_tries  # first-try successes the compiled first attempt decided
        return dataclasses.replace(stats, calls=stats.calls + fast, first_try=stats.first_try + fast,
                                   attempts_made=stats.attempts_made + fast)  # fmt: skip

    def recovery_times(self, bounds: tuple[float, ...]) -> tuple[list[int], int, float]:
        """The recovery times of `stats()` as a histogram: for each bound (seconds, ascending) the
        recoveries that took at most that long (within 1%), their count and their sum in seconds."""
        return self._engine.book.recovery_times(bounds)

    def replay_stats(self) -> RecoveryStats:
        """What this Recovery did with replayed dead letters, kept apart from `stats()`."""
        return self._engine.replay_book.snapshot()

    @staticmethod
    @contextlib.contextmanager
    def replaying() -> Iterator[None]:
        """Within the block (this thread or task), recoveries do not dead-letter calls.

        brace.deadletter.replay() runs dead letters through a Recovery in
        this block: a replay that fails again leaves its letter in the store
        instead of adding a second one.
        """
        with _outbox.replaying():
            yield

    # -- one call -------------------------------------------------------------------

    def _configure_core(self) -> None:
        """Tells the compiled first attempt what a call needs from Python (see pyx/recovered.h).

        Fast: a first-try success needs nothing but a count and the record
        handed to the listeners - no write-ahead record, no feature to turn
        on, no cache to feed, and the classifier's own test of returned values.
        """
        settings, engine = self._settings, self._engine
        fast = (not settings.write_ahead and settings.feature is None
                and (settings.fallback is None or not settings.fallback.remembers)
                and type(settings.classifier).is_failure is ErrorClassifier.is_failure)  # fmt: skip
        self._core.configure(fast=fast, whole_call_in_python=settings.write_ahead, targets=engine.first_try_targets(),
                             correlation_var=correlation_var, report=engine.report_target)  # fmt: skip

    def _operation(self, fn: Callable[..., Any]) -> str:
        return self._settings.name if self._settings.name is not None else name_of(fn)

    def _attempt_async(self, fn: Callable[..., Any]) -> Callable[..., Awaitable[Any]]:
        """One async attempt of fn: through the policy, or fn's value awaited when awaitable."""
        policy = self._settings.policy
        if policy is not None:
            return functools.partial(policy.call_async, fn)

        async def attempt(*args: Any, **kwargs: Any) -> Any:
            return await _guarding.awaited(fn(*args, **kwargs))

        return attempt

    def _call(self, run: Run) -> Any:
        """One call in this thread (or, when its first attempt returned an awaitable it
        adopts, the coroutine that makes the rest of it)."""
        if self._engine.listeners and correlation_var.get() is None:
            token = correlation_var.set(new_correlation_id())
            try:
                return drive(self._engine.steps(run), self._rest_async)
            finally:
                correlation_var.reset(token)
        return drive(self._engine.steps(run), self._rest_async)

    async def _call_async(self, run: Run) -> Any:
        return await self._rest_async(self._engine.steps(run), None)

    async def _rest_async(self, steps: Steps[Any], pending: Effect | None) -> Any:
        """Runs a call's steps (from `pending` on, when a thread handed them over) in this coroutine,
        with a correlation id: one made for it when it is listened to and none is set."""
        if self._engine.listeners and correlation_var.get() is None:
            token = correlation_var.set(new_correlation_id())
            try:
                return await drive_async(steps, pending)
            finally:
                correlation_var.reset(token)
        return await drive_async(steps, pending)

    def __repr__(self) -> str:
        settings = self._settings
        parts = [f"name={settings.name!r}"] if settings.name else []
        parts += [f"healing={[action.name for action in settings.actions]}"] if settings.actions else []
        parts += [f"fallback={settings.fallback!r}"] if settings.fallback is not None else []
        return f"Recovery({', '.join(parts)})"


class _Kinds:
    """A listener that asked for some kinds of event only."""

    __slots__ = ("listener", "kinds")

    def __init__(self, listener: Listener, kinds: frozenset[str]) -> None:
        self.listener = listener
        self.kinds = kinds

    def __call__(self, event: RecoveryEvent) -> object:
        return self.listener(event) if event.kind in self.kinds else None

    def _brace_first_try_targets(self) -> tuple[Callable[[FirstTry], object], ...]:
        """The compiled first attempt's successes are "attempt" events: the listener's own
        targets when it wants them (a RecoveryLog's), none when it does not."""
        if "attempt" not in self.kinds:
            return ()
        compact = getattr(self.listener, "_brace_first_try_targets", None)
        if compact is not None:
            return tuple(compact())
        listener = self.listener
        return (lambda record: listener(first_try_event(record)),)
