"""brace.Recovery: one entry point that classifies a failure, heals it, retries,
falls back, and escalates to a human, losing nothing.

A call runs the operation (through a brace.Policy when one is given). A
success returns at once. A failure is classified (brace.ErrorClassifier); a
retryable one gets its category's allowance of further attempts, each
preceded by a healing action registered for the category (verified by the
attempt that follows) and by its category's wait (the server's, when it said
one). When the failure cannot be retried, its allowance is spent, or the
bound on healing time is reached, the fallback serves a marked value
(brace.Degraded) if it can; otherwise the failure is escalated, and the
decision (retry, skip, use a value, abort) settles the call. Nothing is
dropped: every call ends in the operation's value, a Degraded value, or an
exception.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import inspect
import logging
import threading
from collections.abc import Awaitable, Coroutine, Iterable, Iterator
from datetime import timedelta
from typing import Any, Callable, Literal, NamedTuple, NoReturn, ParamSpec, TypeVar, cast, overload

from brace import _config, _deadline, _guarding
from brace._clock import sleep_until, sleep_until_async
from brace._core import CALLABLE_GUARDED, is_awaitable, now_ns
from brace.recovery import deadletters as deadletter
from brace._safe import add_note, name_of, safe_repr
from brace.breaker import BreakerEvent
from brace.classify import DEFAULT_CLASSIFIER, Category, Classification, ErrorClassifier
from brace.recovery.deadletters import DeadLetterStore
from brace.errors import (
    BulkheadFull,
    CircuitOpen,
    FailedResponse,
    FallbackFailed,
    RecoveryFailed,
    RetryBudgetExhausted,
    Timeout,
)
from brace.recovery._events import EventKind, Listener, RecoveryEvent, StopReason
from brace.recovery._escalation import AttemptRecord, Decision, Escalation, EscalationPolicy, LoggingHandler, Option
from brace.recovery._fallback import Degraded, Fallback
from brace.recovery._healing import HealingAction, HealingContext, HealingStats
from brace.policy import Policy, not_run
from brace.pushback import http_status
from brace.recovery._correlation import correlation_var
from brace.recovery._log import correlation_id, new_correlation_id
from brace.recovery._stats import Ending, RecoveryStats, Book
from brace.recovery._switchboard import switches

__all__ = ["Recovery", "RecoveryEvent"]

P = ParamSpec("P")
R = TypeVar("R")

_log = logging.getLogger("brace")
_NS = 1_000_000_000
# A handler that always answers "retry" must not keep an operation alive
# forever: after this many RETRY decisions in one call, RETRY is no longer offered.
_MAX_RETRY_DECISIONS = 3

# Rejections brace made itself, before anything was sent: retrying at once would be
# rejected again (an open breaker, a full bulkhead, a spent budget), and waiting out a
# breaker's open time would hold the call for up to a minute. They settle at once.
_LOCAL_REJECTIONS = (CircuitOpen, BulkheadFull, RetryBudgetExhausted)
_AUTH_FAILURES = (Category.AUTH_EXPIRED, Category.AUTH_INVALID)




class _Again(Exception):
    """An escalation decided RETRY: the call starts a new round of attempts."""


# Set while dead letters are replayed, so that a replay that fails again does not
# dead-letter its call a second time (the letter it replays stays in the store).
_replaying: contextvars.ContextVar[bool] = contextvars.ContextVar("brace_replaying", default=False)
# Replays running anywhere in the process: while there are none, a call's success
# path need not read the context variable.
_replays_running = 0
_replays_lock = threading.Lock()


class _Outbox:
    """A call's entry in the dead-letter store's outbox (write-ahead), until the call ends."""

    __slots__ = ("store", "id")

    def __init__(self, store: DeadLetterStore, id: str) -> None:
        self.store = store
        self.id: str | None = id

    def take(self) -> str | None:
        """The entry's id, for the dead letter that replaces it (once)."""
        id, self.id = self.id, None
        return id

    def end(self, operation: str) -> None:
        """The call returned the operation's value (or never ran): the entry goes."""
        id = self.take()
        if id is None:
            return
        try:
            self.store.end(id)
        except Exception:
            _log.exception("brace: could not settle the outbox entry of a call of %r", operation)


class _Run:
    """The state of one call after its first failure (the rare path)."""

    __slots__ = ("operation", "number", "timeline", "tally", "previous", "refreshed", "healing_deadline",
                 "first_failure", "failed_at", "waited", "pending", "actions_log", "retry_decisions", "args",
                 "kwargs", "began", "escalated", "dead_lettered", "undo_due", "not_run", "outbox")  # fmt: skip

    def __init__(self, operation: str, args: tuple[Any, ...], kwargs: dict[str, Any], healing_time: int,
                 outbox: _Outbox | None) -> None:  # fmt: skip
        self.operation = operation
        self.outbox = outbox
        self.args, self.kwargs = args, kwargs
        self.number = 1
        self.not_run = 0  # attempts the policy rejected before running the operation
        self.timeline: list[AttemptRecord] = []
        self.retry_decisions = 0
        # Credentials were refreshed and no attempt since has shown them accepted:
        # a 401 now means the refresh did not help (AUTH_INVALID).
        self.refreshed = False
        self.escalated = self.dead_lettered = False
        self.new_round(healing_time)
        self.began = self.first_failure  # the call's first failure, kept across rounds

    def new_round(self, healing_time: int) -> None:
        """Fresh allowances and a fresh healing clock (the start, or a RETRY decision)."""
        self.tally: dict[Category, int] = {}
        self.previous: dict[Category, float] = {}
        self.first_failure = self.failed_at = now_ns()
        self.healing_deadline = self.first_failure + healing_time
        self.waited = 0.0
        # Healing actions applied before the attempt in flight, awaiting its verdict.
        self.pending: list[tuple[str, HealingAction | None, HealingContext, int]] = []
        # Actions the last attempt showed to have made things worse, to roll back next.
        self.undo_due: list[tuple[HealingAction, HealingContext]] = []
        self.actions_log: list[str] = []


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
    running (brace.Timeout with still_running) is retried only when the
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

    __slots__ = ("_classifier", "_policy", "_actions", "_fallback", "_escalation", "_healing_time",
                 "healing_stats", "_feature", "_dead_letters", "_name", "_listeners", "_book", "_replay_book",
                 "_idempotent", "_read_only", "_write_ahead", "__weakref__")  # fmt: skip

    def __init__(
        self,
        *positional: NoReturn,
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
        name: str | None = None,
    ) -> None:
        _config.keywords_only("Recovery", positional)
        for value, kind, param in ((classifier, ErrorClassifier, "classifier"), (policy, Policy, "policy"),
                                   (fallback, Fallback, "fallback"), (escalation, EscalationPolicy, "escalation"),
                                   (healing_stats, HealingStats, "healing_stats"),
                                   (dead_letters, DeadLetterStore, "dead_letters")):  # fmt: skip
            if value is not None and not isinstance(value, kind):
                raise TypeError(f"{param} must be a brace.{kind.__name__} or None, got {type(value).__name__}")
        if isinstance(healing, (str, bytes)) or not isinstance(healing, Iterable):
            raise TypeError(f"healing must be an iterable of brace.HealingAction, got {type(healing).__name__}")
        actions = tuple(healing)
        for action in actions:
            if not isinstance(action, HealingAction):
                raise TypeError(f"healing must hold brace.HealingAction objects, got {type(action).__name__}")
        names = [action.name for action in actions]
        if len(set(names)) != len(names):
            raise ValueError(f"healing actions must have unique names, got {names}")
        self._healing_time = round(_config.positive_duration(healing_time, "healing_time") * _NS)
        for flag, param in ((idempotent, "idempotent"), (read_only, "read_only"), (write_ahead, "write_ahead")):
            if not isinstance(flag, bool):
                raise TypeError(f"{param} must be a bool, got {type(flag).__name__}")
        self._read_only = read_only
        self._write_ahead = write_ahead
        self._idempotent = idempotent or read_only
        for text, param in ((feature, "feature"), (name, "name")):
            if text is not None and (not isinstance(text, str) or not text):
                raise ValueError(f"{param} must be a non-empty str or None, got {text!r}")
        self._classifier = DEFAULT_CLASSIFIER if classifier is None else classifier
        self._policy = policy
        self._actions = actions
        self._fallback = fallback
        self._escalation = EscalationPolicy(handlers=[LoggingHandler()]) if escalation is None else escalation
        self.healing_stats = HealingStats() if healing_stats is None else healing_stats
        self._feature = feature
        self._dead_letters = dead_letters
        self._name = name
        self._listeners: tuple[Listener, ...] = ()
        self._book = Book()
        self._replay_book = Book()
        breaker = None if policy is None else policy.breaker
        if breaker is not None:
            breaker.add_listener(self._on_breaker, kinds=("state_transition",))

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
        if _guarding.is_async_callable(fn):
            coroutine_fn = fn

            @functools.wraps(fn)
            async def recovered_async(*args: P.args, **kwargs: P.kwargs) -> Any:
                return await self._call_async(operation, coroutine_fn, args, kwargs)

            return _guarding.mark(recovered_async, self)
        # The policy's compiled guard: it also finds out a plain function that
        # returns an awaitable, which is then recovered as a coroutine.
        attempt = fn if self._policy is None else self._policy(fn)

        @functools.wraps(fn)
        def recovered(*args: P.args, **kwargs: P.kwargs) -> Any:
            return self._call(operation, attempt, args, kwargs, fn)

        return _guarding.mark(recovered, self)

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
        attempt = fn if self._policy is None else functools.partial(self._policy.call, fn)
        return self._call(self._operation(fn), attempt, args, kwargs, None)

    async def call_async(self, fn: Callable[P, Awaitable[R]], /, *args: P.args,
                         **kwargs: P.kwargs) -> R | Degraded[R]:  # fmt: skip
        """Awaits fn(*args, **kwargs) with recovery (a plain fn's value is used as it is)."""
        if _guarding.kind(fn, self) == CALLABLE_GUARDED:
            return cast("R | Degraded[R]", await _guarding.awaited(fn(*args, **kwargs)))
        return cast("R | Degraded[R]", await self._call_async(self._operation(fn), fn, args, kwargs))

    def add_listener(self, listener: Listener) -> None:
        """Calls listener(RecoveryEvent) for every step of every call (failures are logged)."""
        if not callable(listener):
            raise TypeError(f"listener must be callable, got {type(listener).__name__}")
        self._listeners = (*self._listeners, listener)

    def remove_listener(self, listener: Listener) -> None:
        """Stops calling listener; ValueError if it was not added."""
        if listener not in self._listeners:
            raise ValueError(f"listener {listener!r} was not added")
        listeners = list(self._listeners)
        listeners.remove(listener)
        self._listeners = tuple(listeners)

    @property
    def name(self) -> str | None:
        """The operation name given at construction, or None."""
        return self._name

    def stats(self) -> RecoveryStats:
        """What this Recovery has done: calls, recoveries and their times, escalations, by category.

        Calls made while replaying dead letters (brace.replay) are not among
        them, so that replays do not change the live recovery rate: see
        `replay_stats()`.
        """
        return self._book.snapshot()

    def replay_stats(self) -> RecoveryStats:
        """What this Recovery did with replayed dead letters, kept apart from `stats()`."""
        return self._replay_book.snapshot()

    def _ledger(self) -> Book:
        return self._replay_book if _replays_running and _replaying.get() else self._book

    @staticmethod
    @contextlib.contextmanager
    def replaying() -> Iterator[None]:
        """Within the block (this thread or task), recoveries do not dead-letter calls.

        brace.deadletter.replay() runs dead letters through a Recovery in
        this block: a replay that fails again leaves its letter in the store
        instead of adding a second one.
        """
        global _replays_running
        with _replays_lock:
            _replays_running += 1
        token = _replaying.set(True)
        try:
            yield
        finally:
            _replaying.reset(token)
            with _replays_lock:
                _replays_running -= 1

    # -- the sync path --------------------------------------------------------------

    def _call(self, operation: str, attempt: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
              adopt: Callable[..., Any] | None) -> Any:  # fmt: skip
        """One call; `attempt` makes one attempt. `adopt`: the decorated function, when a
        first attempt that returns an awaitable is to be recovered as a coroutine."""
        if self._listeners and correlation_id() is None:
            token = correlation_var.set(new_correlation_id())
            try:
                return self._run(operation, attempt, args, kwargs, adopt)
            finally:
                correlation_var.reset(token)
        return self._run(operation, attempt, args, kwargs, adopt)

    def _run(self, operation: str, attempt: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
             adopt: Callable[..., Any] | None) -> Any:  # fmt: skip
        outbox = self._begin(operation, args, kwargs) if self._write_ahead else None
        start = now_ns()
        run: _Run | None = None
        try:
            while True:
                if self._write_ahead:
                    self._starting(operation, 1 if run is None else run.number, start)
                try:
                    result = attempt(*args, **kwargs)
                except _guarding.AsyncMisuse:
                    raise
                except Exception as error:
                    outcome: Exception = error
                else:
                    if is_awaitable(result):
                        if adopt is not None and run is None:
                            # Recovered as a coroutine, which takes the outbox entry over.
                            adopted, outbox = outbox, None
                            return self._call_async(operation, adopt, args, kwargs, result, adopted)
                        raise _guarding.refuse_awaitable(result, attempt, "Recovery.call")
                    failure = self._failure_in(result, run, operation, args, kwargs, start, outbox)
                    if failure is None:
                        return result
                    outcome = failure
                if run is None:
                    run = _Run(operation, args, kwargs, self._healing_time, outbox)
                try:
                    return self._recover_sync(run, attempt, outcome, start)
                except _Again:
                    start = now_ns()
                except (RecoveryFailed, _guarding.AsyncMisuse):
                    raise
                except Exception as internal:
                    raise self._recovery_error(run, outcome, internal) from outcome
        except BaseException as error:
            if outbox is not None:
                self._interrupted(operation, args, kwargs, outbox, error)
            raise

    def _recover_sync(self, run: _Run, attempt: Callable[..., Any], outcome: Exception, start: int) -> Any:
        """Retries after a failure until success, or settles the call; raises _Again on RETRY."""
        while True:
            classification, planned = self._after_failure(run, outcome, start)
            if isinstance(planned, str):
                return self._settle(run, classification, outcome, planned)
            self._heal(run, classification, outcome)
            sleep_until(run.failed_at + round(planned * _NS))
            start = now_ns()
            if self._write_ahead:
                self._starting(run.operation, run.number, start)
            try:
                result = attempt(*run.args, **run.kwargs)
            except _guarding.AsyncMisuse:
                raise
            except Exception as error:
                outcome = error
                continue
            if is_awaitable(result):
                raise _guarding.refuse_awaitable(result, attempt, "Recovery.call")
            failure = self._failure_in(result, run, run.operation, run.args, run.kwargs, start, run.outbox)
            if failure is None:
                return result
            outcome = failure

    def _heal(self, run: _Run, classification: Classification, outcome: Exception) -> None:
        self._undo(run)
        for action, context in self._candidates(run, classification, outcome):
            if action.is_async:
                self._action_failed(run, action, context, "an async healing action in a sync call")
                continue
            at = now_ns()
            try:
                action.run(context)
            except Exception as error:
                self._action_failed(run, action, context, safe_repr(error), at)
                continue
            self._action_ran(run, action, context, at)
            return
        self._no_action(run, classification, outcome)

    def _settle(self, run: _Run, classification: Classification, outcome: Exception, reason: StopReason) -> Any:
        self._undo(run)
        if self._fallback is not None and self._fallback.applies(classification):
            at = now_ns()
            try:
                degraded = self._fallback.serve(run.args, run.kwargs, outcome, classification,
                                                operation=run.operation)  # fmt: skip
            except FallbackFailed as failed:
                self._emit("fallback", run, at, "failed", classification, failed, str(failed))
                reason = "fallback_failed"
            else:
                return self._served(run, at, classification, degraded)
        escalation = self._escalation_for(run, classification, outcome, reason)
        return self._decided(run, classification, outcome, escalation, self._escalation.escalate(escalation))

    # -- the async path -------------------------------------------------------------

    async def _call_async(self, operation: str, fn: Callable[..., Any], args: tuple[Any, ...],
                          kwargs: dict[str, Any], first: Awaitable[Any] | None = None,
                          outbox: _Outbox | None = None) -> Any:  # fmt: skip
        """One call; `first`: the awaitable of a first attempt already made (with the
        outbox entry made for it)."""
        if self._listeners and correlation_id() is None:
            token = correlation_var.set(new_correlation_id())
            try:
                return await self._guarded_async(operation, fn, args, kwargs, first, outbox)
            finally:
                correlation_var.reset(token)
        return await self._guarded_async(operation, fn, args, kwargs, first, outbox)

    async def _guarded_async(self, operation: str, fn: Callable[..., Any], args: tuple[Any, ...],
                             kwargs: dict[str, Any], first: Awaitable[Any] | None,
                             outbox: _Outbox | None) -> Any:  # fmt: skip
        if first is None and self._write_ahead:
            outbox = self._begin(operation, args, kwargs)
        try:
            return await self._run_async(operation, fn, args, kwargs, first, outbox)
        except BaseException as error:
            if outbox is not None:
                self._interrupted(operation, args, kwargs, outbox, error)
            raise

    async def _attempt_async(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if self._policy is None:
            return await _guarding.awaited(fn(*args, **kwargs))
        return await self._policy.call_async(fn, *args, **kwargs)

    async def _run_async(self, operation: str, fn: Callable[..., Any], args: tuple[Any, ...],
                         kwargs: dict[str, Any], first: Awaitable[Any] | None, outbox: _Outbox | None) -> Any:  # fmt: skip
        start = now_ns()
        run: _Run | None = None
        while True:
            try:
                if first is None:
                    if self._write_ahead:
                        self._starting(operation, 1 if run is None else run.number, start)
                    result = await self._attempt_async(fn, args, kwargs)
                else:
                    result, first = await first, None
            except Exception as error:
                outcome: Exception = error
            else:
                failure = self._failure_in(result, run, operation, args, kwargs, start, outbox)
                if failure is None:
                    return result
                outcome = failure
            if run is None:
                run = _Run(operation, args, kwargs, self._healing_time, outbox)
            try:
                return await self._recover_async(run, fn, outcome, start)
            except _Again:
                start = now_ns()
            except RecoveryFailed:
                raise
            except Exception as internal:
                raise self._recovery_error(run, outcome, internal) from outcome

    async def _recover_async(self, run: _Run, fn: Callable[..., Any], outcome: Exception, start: int) -> Any:
        while True:
            classification, planned = self._after_failure(run, outcome, start)
            if isinstance(planned, str):
                return await self._settle_async(run, classification, outcome, planned)
            await self._heal_async(run, classification, outcome)
            await sleep_until_async(run.failed_at + round(planned * _NS))
            start = now_ns()
            if self._write_ahead:
                self._starting(run.operation, run.number, start)
            try:
                result = await self._attempt_async(fn, run.args, run.kwargs)
            except Exception as error:
                outcome = error
                continue
            failure = self._failure_in(result, run, run.operation, run.args, run.kwargs, start, run.outbox)
            if failure is None:
                return result
            outcome = failure

    async def _heal_async(self, run: _Run, classification: Classification, outcome: Exception) -> None:
        await self._undo_async(run)
        for action, context in self._candidates(run, classification, outcome):
            at = now_ns()
            try:
                done = action.run(context)
                if inspect.isawaitable(done):
                    await done
            except Exception as error:
                self._action_failed(run, action, context, safe_repr(error), at)
                continue
            self._action_ran(run, action, context, at)
            return
        self._no_action(run, classification, outcome)

    async def _settle_async(self, run: _Run, classification: Classification, outcome: Exception,
                            reason: StopReason) -> Any:  # fmt: skip
        await self._undo_async(run)
        if self._fallback is not None and self._fallback.applies(classification):
            at = now_ns()
            try:
                degraded = await self._fallback.serve_async(run.args, run.kwargs, outcome, classification,
                                                            operation=run.operation)  # fmt: skip
            except FallbackFailed as failed:
                self._emit("fallback", run, at, "failed", classification, failed, str(failed))
                reason = "fallback_failed"
            else:
                return self._served(run, at, classification, degraded)
        escalation = self._escalation_for(run, classification, outcome, reason)
        decision = await self._escalation.escalate_async(escalation)
        return self._decided(run, classification, outcome, escalation, decision)

    # -- decisions shared by both paths ---------------------------------------------

    def _operation(self, fn: Callable[..., Any]) -> str:
        return self._name if self._name is not None else name_of(fn)

    def _after_failure(self, run: _Run, outcome: Exception, start: int) -> tuple[Classification, float | StopReason]:
        """Books a failed attempt; returns its classification and the wait before
        the next attempt, or the reason to stop."""
        end = now_ns()
        classification = self._classifier.classify(outcome, refreshed=run.refreshed)
        ran = not not_run(outcome)
        if not ran:
            run.not_run += 1
        run.timeline.append(AttemptRecord(
            number=run.number, started=start / _NS, duration=(end - start) / _NS, outcome="failure",
            error=outcome, classification=classification,
            actions=tuple(run.actions_log), delay=run.waited))  # fmt: skip
        run.failed_at = end
        self._emit("attempt", run, start, "failure", classification, outcome, duration=end - start, ran=ran)
        self._verify(run, classification, healed=False)
        if ran and classification.category not in _AUTH_FAILURES:
            run.refreshed = False  # the credentials were accepted: a later 401 is a new expiry
        run.actions_log = []
        category = classification.category
        if isinstance(outcome, _LOCAL_REJECTIONS):
            return classification, "rejected_locally"
        if isinstance(outcome, Timeout) and outcome.still_running and not self._idempotent:
            return classification, "still_running"
        if not classification.retryable:
            return classification, "not_retryable"
        used = run.tally.get(category, 0)
        if used >= classification.max_attempts:
            return classification, "attempts"
        delay = classification.delay(used + 1, previous=run.previous.get(category))
        retry_at = end + round(delay * _NS)
        if retry_at > run.healing_deadline:
            return classification, "healing_time"
        bound = _deadline.current_ns()
        if bound is not None and retry_at >= bound:
            return classification, "deadline"
        run.tally[category] = used + 1
        run.previous[category] = run.waited = delay
        run.number += 1
        return classification, delay

    def _candidates(self, run: _Run, classification: Classification,
                    outcome: Exception) -> Iterable[tuple[HealingAction, HealingContext]]:  # fmt: skip
        category = classification.category
        actions = {action.name: action for action in self._actions if category in action.categories}
        if not actions:
            return ()
        context = HealingContext(run.operation, classification, outcome, run.number - 1)
        order = self.healing_stats.ranked(category, list(actions))
        return ((actions[name], context) for name in order)

    def _action_ran(self, run: _Run, action: HealingAction, context: HealingContext, at: int) -> None:
        if context.classification.category is Category.AUTH_EXPIRED:
            run.refreshed = True
        run.pending.append((action.name, action, context, run.failed_at))
        run.actions_log.append(f"{action.name}: ok")
        self._emit("heal", run, at, "ok", context.classification, context.error, action.name, attempt=run.number)

    def _action_failed(self, run: _Run, action: HealingAction, context: HealingContext, why: str,
                       at: int | None = None) -> None:  # fmt: skip
        _log.warning("brace: healing action %r of %r failed: %s", action.name, run.operation, why)
        self.healing_stats.record(context.classification.category, action.name, healed=False)
        run.actions_log.append(f"{action.name}: failed ({why})")
        self._emit("heal", run, now_ns() if at is None else at, "failed", context.classification,
                   context.error, action.name, attempt=run.number)  # fmt: skip

    def _no_action(self, run: _Run, classification: Classification, outcome: Exception) -> None:
        """No action healed it: the wait and the retry alone are the strategy on record."""
        context = HealingContext(run.operation, classification, outcome, run.number - 1)
        run.pending.append((classification.strategy.value, None, context, run.failed_at))

    def _verify(self, run: _Run, classification: Classification | None, *, healed: bool) -> None:
        """The attempt after the pending strategies ended: book them, queue the undo of
        those that did not help.

        A strategy is judged by what it was for, its failure's category: it
        healed when the next attempt succeeded or failed for another reason
        (a refreshed token that meets a 503 did its job); it failed when the
        same category failed again, and then its action is undone.
        """
        now = now_ns()
        for strategy, action, context, failed_at in run.pending:
            before = context.classification
            fixed = healed or classification is None or classification.category is not before.category
            self.healing_stats.record(before.category, strategy, healed=fixed, seconds=(now - failed_at) / _NS)
            if not fixed and action is not None and action.undo is not None:
                run.undo_due.append((action, context))
        run.pending = []

    def _undo(self, run: _Run) -> None:
        for action, context in run.undo_due:
            at = now_ns()
            assert action.undo is not None  # and not async: _heal does not run async actions
            try:
                action.undo(context)
            except Exception as error:
                self._undone(run, action, context, at, error)
                continue
            self._undone(run, action, context, at, None)
        run.undo_due = []

    async def _undo_async(self, run: _Run) -> None:
        for action, context in run.undo_due:
            at = now_ns()
            assert action.undo is not None
            try:
                done = action.undo(context)
                if inspect.isawaitable(done):
                    await done
            except Exception as error:
                self._undone(run, action, context, at, error)
                continue
            self._undone(run, action, context, at, None)
        run.undo_due = []

    def _undone(self, run: _Run, action: HealingAction, context: HealingContext, at: int,
                error: Exception | None) -> None:  # fmt: skip
        if error is not None:
            _log.warning("brace: undo of healing action %r of %r failed: %s", action.name, run.operation,
                         safe_repr(error))  # fmt: skip
            run.actions_log.append(f"{action.name}: undo failed ({safe_repr(error)})")
            self._emit("undo", run, at, "failed", context.classification, error, action.name)
            return
        run.actions_log.append(f"{action.name}: undone")
        self._emit("undo", run, at, "ok", context.classification, context.error, action.name)

    def _failure_in(self, result: object, run: _Run | None, operation: str, args: tuple[Any, ...],
                    kwargs: dict[str, Any], start: int, outbox: _Outbox | None) -> FailedResponse | None:  # fmt: skip
        """A returned failure (an error response) to recover from, or None: then the
        call succeeded, and is booked."""
        if self._classifier.is_failure(result):
            return FailedResponse(response=result, status=http_status(result))
        if outbox is not None:
            outbox.end(operation)
        if run is None:
            self._succeeded(operation, args, kwargs, result, start)
        else:
            self._recovered(run, result, start)
        return None

    def _succeeded(self, operation: str, args: tuple[Any, ...], kwargs: dict[str, Any], result: object,
                   start: int) -> None:  # fmt: skip
        """A first attempt succeeded."""
        self._remember(operation, args, kwargs, result)
        # Inline: this is the success path of every call.
        (self._replay_book if _replays_running and _replaying.get() else self._book).first_try()
        if self._listeners:
            end = now_ns()
            self._dispatch(RecoveryEvent("attempt", operation, 1, start / _NS, (end - start) / _NS, "success",
                                         correlation_id=correlation_id()))  # fmt: skip

    def _recovered(self, run: _Run, result: object, start: int) -> None:
        """An attempt after a failure succeeded."""
        end = now_ns()
        self._verify(run, None, healed=True)
        self._remember(run.operation, run.args, run.kwargs, result)
        self._book_failed_call(run, "retried_by_decision" if run.retry_decisions else "recovered", end)
        if self._listeners:
            self._emit("attempt", run, start, "success", None, None, ", ".join(run.actions_log), duration=end - start)
            self._emit("recovered", run, run.began, "success", None, None, duration=end - run.began)

    def _remember(self, operation: str, args: tuple[Any, ...], kwargs: dict[str, Any], result: object) -> None:
        if self._fallback is not None:
            self._fallback.remember(args, kwargs, result, operation=operation)
        if self._feature is not None and not switches.is_on(self._feature):
            switches.turn_on(self._feature, reason=f"{operation} succeeded", by=f"recovery:{operation}")

    def _served(self, run: _Run, at: int, classification: Classification, degraded: Degraded[Any]) -> Degraded[Any]:
        self._turn_off(run, classification, "fallback")
        self._emit("fallback", run, at, "served", classification, degraded.error, degraded.source)
        if not self._read_only:
            # A write served a stand-in did not happen: kept, replayable, never dropped.
            outcome = degraded.error if isinstance(degraded.error, Exception) else FallbackFailed(
                name=None, failures=())  # fmt: skip
            self._dead_letter(run, classification, outcome, served=degraded.source)
        self._book_failed_call(run, "fallback")
        return degraded

    def _escalation_for(self, run: _Run, classification: Classification, outcome: Exception,
                        reason: StopReason) -> Escalation:  # fmt: skip
        options = tuple(option for option in Option
                        if option is not Option.RETRY or run.retry_decisions < _MAX_RETRY_DECISIONS)  # fmt: skip
        return Escalation(operation=run.operation, classification=classification, error=outcome, reason=reason,
                          timeline=tuple(run.timeline), options=options,
                          correlation_id=correlation_id())  # fmt: skip

    def _decided(self, run: _Run, classification: Classification, outcome: Exception, escalation: Escalation,
                 decision: Decision) -> Any:  # fmt: skip
        option = decision.option
        run.escalated = True
        self._emit("escalation", run, now_ns(), option.value, classification, outcome, escalation.reason)
        if option is Option.RETRY:
            run.retry_decisions += 1
            run.number += 1
            run.new_round(self._healing_time)
            raise _Again
        self._turn_off(run, classification, escalation.reason)
        source = "decision:use" if option is Option.USE else "decision:skip"
        letter = None
        if option is Option.ABORT:
            letter = self._dead_letter(run, classification, outcome)
        elif not self._read_only:  # a skipped or replaced write did not happen: kept, replayable
            letter = self._dead_letter(run, classification, outcome, served=source)
        self._book_failed_call(run, option.value)
        if option is Option.ABORT:
            raise RecoveryFailed(operation=run.operation, category=classification.category.value,
                                 attempts=len(run.timeline), reason=escalation.reason, escalation=escalation,
                                 dead_letter=letter) from outcome  # fmt: skip
        value = decision.value if option is Option.USE else None
        return Degraded(value=value, source=source, error=outcome, classification=classification, age=None)

    def _store(self) -> DeadLetterStore:
        return deadletter.default_store() if self._dead_letters is None else self._dead_letters

    def _begin(self, operation: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> _Outbox | None:
        """With write_ahead (unless read-only, or replaying: the letter exists), the call's
        outbox entry, committed before anything goes out."""
        if self._read_only or _replaying.get():
            return None
        store = self._store()
        return _Outbox(store, store.begin(operation=operation, args=args, kwargs=kwargs,
                                          correlation_id=correlation_id()))  # fmt: skip

    def _starting(self, operation: str, number: int, start: int) -> None:
        """With write_ahead, the record of an attempt about to go out (a durable sink writes it through)."""
        if self._listeners:
            self._dispatch(RecoveryEvent("attempt_started", operation, number, start / _NS, 0.0, "started",
                                         correlation_id=correlation_id()))  # fmt: skip

    def _interrupted(self, operation: str, args: tuple[Any, ...], kwargs: dict[str, Any], outbox: _Outbox,
                     error: BaseException) -> None:  # fmt: skip
        """A call left with its outbox entry open (KeyboardInterrupt, cancellation): the server may
        have seen it, so it becomes a dead letter, as after a crash. A refused awaitable never ran."""
        if outbox.id is None:
            return
        if isinstance(error, _guarding.AsyncMisuse):
            outbox.end(operation)
            return
        try:
            # attempts=0: how many attempts went out before it ended is not known here.
            self._store().put(operation=operation, args=args, kwargs=kwargs, error=error, category=None,
                              correlation_id=correlation_id(), attempts=0, outbox_id=outbox.take())  # fmt: skip
        except Exception:
            _log.exception("brace: could not dead-letter an interrupted call of %r", operation)

    def _dead_letter(self, run: _Run, classification: Classification, outcome: Exception,
                     served: str | None = None) -> str | None:  # fmt: skip
        """Stores a call given up on (or served a stand-in: `served` says which); its id, or
        None while replaying or when the store failed (then the failure is logged and noted
        on the error, which still reaches the caller)."""
        if _replaying.get():
            return None
        at = now_ns()
        try:
            outbox_id = None if run.outbox is None else run.outbox.take()
            letter = self._store().put(operation=run.operation, args=run.args, kwargs=run.kwargs, error=outcome,
                                       category=classification.category, correlation_id=correlation_id(),
                                       attempts=run.number - run.not_run, served=served,
                                       outbox_id=outbox_id)  # fmt: skip
        except Exception as error:
            _log.exception("brace: could not dead-letter a call of %r", run.operation)
            add_note(outcome, f"brace could not store this call as a dead letter: {safe_repr(error)}")
            self._emit("dead_letter", run, at, "failed", classification, error)
            return None
        run.dead_lettered = True
        self._emit("dead_letter", run, at, "stored", classification, outcome, letter.id)
        return letter.id

    def _book_failed_call(self, run: _Run, ending: Ending, end: int | None = None) -> None:
        first = run.timeline[0].classification
        assert first is not None
        recovery_time = None if end is None else (end - run.began) / _NS
        self._ledger().failed_call(first.category, transient=first.transient, ending=ending,
                                   attempts=run.number - run.not_run, rejected=run.not_run,
                                   escalated=run.escalated, dead_lettered=run.dead_lettered,
                                   recovery_time=recovery_time)  # fmt: skip

    def _recovery_error(self, run: _Run, outcome: Exception, internal: Exception) -> RecoveryFailed:
        """brace's own recovery failed (a component raised what it never should): the call
        still ends with brace's error, its dead letter stored, never with a stray exception."""
        _log.error("brace: recovering %r failed inside brace; the call is dead-lettered", run.operation,
                   exc_info=internal)  # fmt: skip
        add_note(outcome, f"brace's recovery failed: {safe_repr(internal)}")
        category = self._classifier.classify(outcome)
        letter = self._dead_letter(run, category, outcome)
        self._book_failed_call(run, "abort")
        return RecoveryFailed(operation=run.operation, category=category.category.value, attempts=len(run.timeline),
                              reason="recovery_error", dead_letter=letter)  # fmt: skip

    def _on_breaker(self, event: BreakerEvent) -> None:
        if not self._listeners:
            return
        assert event.from_state is not None and event.to_state is not None
        at = now_ns()
        self._dispatch(RecoveryEvent("breaker", self._name or str(event.breaker), 0, at / _NS, 0.0,
                                     event.to_state.value, None, None,
                                     f"{event.breaker}: {event.from_state.value} -> {event.to_state.value}",
                                     correlation_id()))  # fmt: skip

    def _turn_off(self, run: _Run, classification: Classification, why: str) -> None:
        if self._feature is not None and switches.is_on(self._feature):
            switches.turn_off(self._feature, reason=f"{run.operation}: {classification.category.value} ({why})",
                              by=f"recovery:{run.operation}")  # fmt: skip

    # -- events -----------------------------------------------------------------------

    def _emit(self, kind: EventKind, run: _Run, at: int, outcome: str, classification: Classification | None,
              error: object, detail: str = "", *, duration: int = 0, attempt: int | None = None,
              ran: bool = True) -> None:  # fmt: skip
        if self._listeners:
            self._dispatch(RecoveryEvent(kind, run.operation, run.number if attempt is None else attempt,
                                         at / _NS, duration / _NS, outcome, classification, error, detail,
                                         correlation_id(), ran))  # fmt: skip

    def _dispatch(self, event: RecoveryEvent) -> None:
        for listener in self._listeners:
            try:
                listener(event)
            except Exception:
                _log.exception("brace: a listener of recovery %r failed", event.operation)

    def __repr__(self) -> str:
        parts = [f"name={self._name!r}"] if self._name else []
        parts += [f"healing={[action.name for action in self._actions]}"] if self._actions else []
        parts += [f"fallback={self._fallback!r}"] if self._fallback is not None else []
        return f"Recovery({', '.join(parts)})"
