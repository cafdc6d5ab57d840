"""brace.Policy: fallback, deadline, retry, hedge, breaker, limiter, bulkhead and attempt
timeout composed into one guard, whose success path is one compiled wrapper."""
# size: one composition of every stage: its call in sync and async forms, hedged copies, blocks,
# and what its compiled success path may do alone (set at construction and by reconfigure)

from __future__ import annotations

from contextvars import ContextVar
from datetime import timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any, Awaitable, Callable, NoReturn, ParamSpec, TypeVar, cast, overload

from brace import _config, _deadline, _guarding, _worker
from brace._core import CALLABLE_GUARDED, CALLABLE_SYNC, RERAISE, PolicyCore, callable_kind, is_awaitable, now_ns
from brace.breaker import CircuitBreaker
from brace.bulkhead import Bulkhead
from brace.errors import AttemptTimeout
from brace.hedge import Hedge
from brace.limiter import RateLimiter
from brace._listeners import checked_kinds
from brace._stages import AdmissionStage, FallbackStage, ValueFromError
from brace.retry import Retry, drive, drive_async

__all__ = ["Policy"]

P = ParamSpec("P")
R = TypeVar("R")

_NS = 1_000_000_000
# reconfigure's default: the setting keeps its value (None means "none").
_KEEP: Any = object()


class Policy(PolicyCore):
    """Every resilience primitive around one call, in this order (docs/architecture.md says why):

    fallback -> deadline -> retry -> hedge -> breaker -> limiter -> bulkhead ->
    attempt timeout -> fn. Each attempt asks the breaker (an open breaker
    consumes no limiter token), takes a limiter token (waiting up to the
    limiter's max_wait), then a bulkhead slot (waiting up to its max_wait);
    the retry decides on the attempt's outcome, including the rejections of
    the others (name CircuitOpen, RateLimited or BulkheadFull in its `on` to
    retry them); the fallback receives whatever exception ends the call. A
    hedge makes each of the retry's attempts a group of racing copies, each
    copy passing the breaker, limiter, bulkhead and attempt timeout on its
    own; the retry sees the group's one outcome. Any subset works.

    Use it as a decorator (sync and coroutine functions), with `call` /
    `call_async`, or around a block: `with policy:` / `async with policy:`
    admits the block through the breaker, limiter and bulkhead and books its
    outcome with the breaker; a block cannot be run again, so the retry, the
    fallback, the deadline and the attempt timeout apply to calls only.

    A decorated sync function's first attempt runs every check in C through
    one compiled wrapper; failures, waits and retries continue in Python
    (a policy with a deadline, an attempt timeout or a hedge runs in Python).
    `call` runs a plain function's first attempt in C under the call's
    deadline, and books a returned HTTP response without Python when each
    result check judges by status alone (the HTTP integrations' policies);
    an attempt timeout or a hedge runs in Python.

    Args:
        name: A name for repr and notes.
        fallback: What the call returns instead of failing, as in brace.Recovery:
            a brace.Fallback (its alternatives in order, served as a
            brace.Degraded; with `categories`, only for those failures), or
            a function given the final exception whose return value is the
            call's. A Fallback's cached alternatives learn only from the
            calls it decorates itself or a Recovery makes: a Policy does not
            feed them. None: the exception propagates.
        deadline: Bounds the whole call (seconds > 0 or timedelta): the retry
            never sleeps past it nor starts an attempt after it; a coroutine
            attempt running at it is cancelled (brace.AttemptTimeout); a sync attempt
            cannot be stopped, but reads its time left with
            brace.deadline_remaining() (with an attempt timeout, the caller
            stops waiting at the deadline).
        retry: A brace.Retry (its own deadline and attempt timeout apply
            too: the tighter of each pair wins).
        hedge: A brace.Hedge: each attempt races copies of itself (in worker
            threads for sync functions, as tasks for coroutines); only for
            idempotent operations.
        breaker: A brace.CircuitBreaker.
        limiter: A brace.RateLimiter: each attempt takes one token.
        bulkhead: A brace.Bulkhead: each attempt holds one slot.
        attempt_timeout: Bounds each attempt (see brace.Retry's: a sync
            attempt runs in a worker thread and keeps its bulkhead slot and
            breaker permission until it really ends; one that may still be
            running is retried only by a retry declared idempotent).

    Raises:
        ValueError, TypeError: For configuration outside the ranges above.
    """

    __slots__ = ("_fallback", "_deadline", "_retry", "_hedge", "_breaker", "_limiter", "_bulkhead", "_stages",
                 "_stages_reversed", "_attempt_timeout", "_name", "_blocks", "_parts", "__weakref__")  # fmt: skip

    def __init__(
        self,
        *positional: NoReturn,
        name: str | None = None,
        fallback: Callable[[Exception], Any] | FallbackStage | None = None,
        deadline: float | timedelta | None = None,
        retry: Retry | None = None,
        breaker: CircuitBreaker | None = None,
        limiter: RateLimiter | None = None,
        bulkhead: Bulkhead | None = None,
        attempt_timeout: float | timedelta | None = None,
        hedge: Hedge | None = None,
    ) -> None:
        _config.keywords_only("Policy", positional)
        stage = _fallback_stage(fallback)
        for value, kind, param in ((retry, Retry, "retry"), (hedge, Hedge, "hedge"), (breaker, CircuitBreaker, "breaker"),
                                   (limiter, RateLimiter, "limiter"), (bulkhead, Bulkhead, "bulkhead")):  # fmt: skip
            if value is not None and not isinstance(value, kind):
                raise TypeError(f"{param} must be a brace.{kind.__name__} or None, got {type(value).__name__}")
        self._deadline, timeout = _bounds(deadline, attempt_timeout, retry)
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name must be a str or None, got {type(name).__name__}")
        self._fallback, self._retry, self._hedge, self._attempt_timeout, self._name = stage, retry, hedge, timeout, name
        # What with_hedge builds its copy from.
        self._parts: dict[str, Any] = dict(name=name, fallback=stage, deadline=deadline, retry=retry, breaker=breaker,
                                           limiter=limiter, bulkhead=bulkhead, attempt_timeout=attempt_timeout)
        self._breaker, self._limiter, self._bulkhead = breaker, limiter, bulkhead
        # Admission order; what an attempt took goes back, and its outcome is booked, in reverse.
        stages: tuple[AdmissionStage, ...] = tuple(stage for stage in (breaker, limiter, bulkhead) if stage is not None)
        self._stages, self._stages_reversed = stages, stages[::-1]
        # The (ticket, start) of each open `with policy:` block, per thread and per task.
        self._blocks: ContextVar[tuple[tuple[int, int], ...]] = ContextVar("brace.Policy blocks")
        self._compile()

    def reconfigure(self, *, deadline: float | timedelta | None = _KEEP,
                    attempt_timeout: float | timedelta | None = _KEEP) -> None:  # fmt: skip
        """Changes the deadline and/or the attempt timeout in use (unspecified: kept; None: none).
        Calls in progress keep their bound. (What the stages' own reconfigure changes - a
        breaker's result check, its slow-call timing - takes effect without this.)

        Raises:
            ValueError, TypeError: As the constructor (nothing changes).
        """
        own = {key: self._parts[key] if value is _KEEP else value
               for key, value in (("deadline", deadline), ("attempt_timeout", attempt_timeout))}  # fmt: skip
        self._deadline, self._attempt_timeout = _bounds(own["deadline"], own["attempt_timeout"], self._retry)
        self._parts.update(own)
        self._compile()

    def _compile(self) -> None:
        """Tells the compiled success path what it may do alone."""
        retry, stages, limiter = self._retry, self._stages, self._limiter
        budget = None if retry is None else retry.budget
        # A stage that decides elsewhere (a Redis store) is admitted in Python, never by the compiled check.
        in_python = any(stage._brace_stage_in_python for stage in stages)
        self._configure_core(
            breaker=self._breaker, limiter=None if limiter is not None and limiter._brace_stage_in_python else limiter,
            bulkhead=self._bulkhead, retry=retry,
            deposit=None if budget is None else budget.deposit, deadline_ns=self._deadline or 0,
            # An attempt timeout runs attempts on a thread; hedged copies are admitted each on its own.
            call_in_python=self._attempt_timeout is not None or self._hedge is not None or in_python,
        )  # fmt: skip

    @property
    def name(self) -> str | None:
        """The policy's name, or None."""
        return self._name

    @property
    def retry(self) -> Retry | None:
        """The policy's Retry, or None."""
        return self._retry

    @property
    def hedge(self) -> Hedge | None:
        """The policy's Hedge, or None."""
        return self._hedge

    def with_hedge(self, hedge: Hedge | None) -> Policy:
        """A policy of the same stages (the same retry, breaker, limiter and bulkhead
        objects, the same fallback and timeouts) with this hedge instead (None: none)."""
        return Policy(**self._parts, hedge=hedge)

    @property
    def breaker(self) -> CircuitBreaker | None:
        """The policy's CircuitBreaker, or None."""
        return self._breaker

    @property
    def limiter(self) -> RateLimiter | None:
        """The policy's RateLimiter, or None."""
        return self._limiter

    @property
    def bulkhead(self) -> Bulkhead | None:
        """The policy's Bulkhead, or None."""
        return self._bulkhead

    # -- events -------------------------------------------------------------------

    @property
    def event_kinds(self) -> tuple[str, ...]:
        """The kinds of event this policy's stages emit (add_listener's `kinds`)."""
        return tuple(sorted({kind for stage in self._observed() for kind in stage.event_kinds}))

    def add_listener(self, listener: Callable[[Any], object], *,
                     kinds: str | tuple[str, ...] | None = None) -> None:  # fmt: skip
        """Calls `listener(event)` for the events of every stage of this policy (its retry,
        hedge, breaker, limiter and bulkhead) of the given kinds (default: all).

        Each event is its stage's own (RetryEvent, HedgeEvent, BreakerEvent, RateLimiterEvent,
        BulkheadEvent): all begin with (kind, name, at), and `name` tells the
        stages apart. The stages keep the listener: it hears calls made through
        them outside this policy too.

        Raises:
            ValueError: A kind no stage of this policy emits.
        """
        wanted = None if kinds is None else checked_kinds(kinds, self.event_kinds)
        if not callable(listener):
            raise TypeError(f"listener must be callable, got {type(listener).__name__}")
        for stage in self._observed():
            mine = stage.event_kinds if wanted is None else tuple(wanted & frozenset(stage.event_kinds))
            if mine:
                stage.add_listener(listener, kinds=mine)

    def remove_listener(self, listener: Callable[[Any], object]) -> None:
        """Stops calling `listener` from every stage it was added to by add_listener.

        Raises:
            ValueError: It was added to no stage.
        """
        removed = False
        for stage in self._observed():
            try:
                stage.remove_listener(listener)
            except ValueError:
                continue
            removed = True
        if not removed:
            raise ValueError(f"listener was not added to {self!r}")

    def _observed(self) -> tuple[Retry | Hedge | CircuitBreaker | RateLimiter | Bulkhead, ...]:
        return tuple(stage for stage in (self._retry, self._hedge, self._breaker, self._limiter, self._bulkhead)
                     if stage is not None)  # fmt: skip

    # -- ways to use it -----------------------------------------------------------

    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]:
        """Decorates fn (sync or async) so that every call goes through the policy.

        A function this policy already decorates is returned as it is. A plain
        function that returns an awaitable gets its awaited outcome guarded.
        """
        return _guarding.guard_function(self, fn, self._guard, self._guard_async)

    def _guard_async(self, fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        # A compiled wrapper whose calls return proxies (pyx/awaiting.h): the first
        # attempt's admission and success stay in C, the rest comes back here.
        return _guarding.coroutine_function(self._guard_coroutine(fn))

    if TYPE_CHECKING:  # call is PolicyCore's, compiled: its types

        @overload
        def call(self, fn: Callable[P, Awaitable[R]], /, *args: P.args,
                 **kwargs: P.kwargs) -> _guarding.UseCallAsync: ...  # fmt: skip

        @overload
        def call(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R: ...

        def call(self, fn: Callable[P, Any], /, *args: P.args, **kwargs: P.kwargs) -> Any:
            """Calls fn(*args, **kwargs) under the policy (raises TypeError for an awaitable)."""

    def _call_entry(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """`call` of what its compiled first attempt leaves to Python: a fn that is not a
        plain function (or that this policy guards), or a policy that runs in Python."""
        if callable_kind(fn, self) != CALLABLE_SYNC and _guarding.sync_entry(fn, self, "Policy.call"):
            return _guarding.call_guarded(fn, args, kwargs, "Policy.call")
        return self._call(fn, args, kwargs)

    async def call_async(self, fn: Callable[P, Awaitable[R]], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Awaits fn(*args, **kwargs) under the policy (a plain fn's value is used as it is)."""
        if _guarding.kind(fn, self) == CALLABLE_GUARDED:
            return cast(R, await _guarding.awaited(fn(*args, **kwargs)))
        return cast(R, await self._call_async(fn, args, kwargs))

    # -- a first attempt admitted in C (the slow paths of pyx/guard.h and pyx/awaiting.h)

    def _guard_call(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        return self._call(fn, args, kwargs)

    def _guard_failed(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
                      error: BaseException, token: int, start: int) -> Any:  # fmt: skip
        return self._first_failed(fn, args, kwargs, error, token, start, start or now_ns())

    def _guard_result(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
                      result: object, token: int, start: int) -> Any:  # fmt: skip
        return self._first_returned(fn, args, kwargs, result, token, start, start or now_ns())

    # The compiled first attempt's slow paths (`start`: the attempt's, 0 if not timed; `started`: the call's).

    def _first_failed(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
                      error: BaseException, token: int, start: int, started: int) -> Any:  # fmt: skip
        """Attempt 1 raised: the call goes on (retries, the fallback), or RERAISE."""
        try:
            first = self._after_first_error(error, token, start)
        except Exception as broken:  # a predicate raised: the call ends with its error
            return self._first_broken(fn, args, kwargs, broken)
        if first is not None:
            return self._call(fn, args, kwargs, first, started)
        if not self._falls_back(error):
            return RERAISE
        return self._fall_back(fn, args, kwargs, error)

    def _first_returned(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
                        result: object, token: int, start: int, started: int) -> Any:  # fmt: skip
        """Attempt 1 returned a value Python must judge: the call's value."""
        try:
            first = self._after_first_result(result, token, start)
        except Exception as broken:  # a predicate raised: the call ends with its error
            return self._first_broken(fn, args, kwargs, broken)
        return result if first is None else self._call(fn, args, kwargs, first, started)

    def _first_broken(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
                      error: Exception) -> Any:  # fmt: skip
        """A check of attempt 1's outcome raised `error`: the call ends with it, counted and
        given to the fallback as `_call` does."""
        if self._retry is not None:
            self._retry._brace_stage_ended_first(False)
        if not self._falls_back(error):
            raise error
        return self._fall_back(fn, args, kwargs, error)

    def _first_returned_awaitable(self, fn: Callable[..., Any], result: object, token: int) -> BaseException:
        """Attempt 1 of `call` returned an awaitable: what it took goes back; the error to raise."""
        self._give_back(len(self._stages), token)
        if self._retry is not None:
            self._retry._brace_stage_ended_first(False)
        return _guarding.refuse_awaitable(result, fn, "Policy.call")

    def _guard_awaitable(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
                         awaitable: Awaitable[Any], token: int, start: int) -> Awaitable[Any]:  # fmt: skip
        """A decorated plain function returned an awaitable: guard its awaited outcome,
        keeping the permission, token and slot its first attempt took."""
        return self._adopt(fn, args, kwargs, awaitable, token, start)

    async def _adopt(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
                     first: Awaitable[Any], token: int, start: int) -> Any:  # fmt: skip
        try:
            result = await first
        except BaseException as error:
            return await self._guard_failed_async(fn, args, kwargs, error, token, start)
        if self._succeeded(token, start):
            return await self._guard_result_async(fn, args, kwargs, result, token, start)
        return result

    async def _guard_call_async(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        return await self._call_async(fn, args, kwargs)

    async def _guard_failed_async(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
                                  error: BaseException, token: int, start: int) -> Any:  # fmt: skip
        first = self._after_first_error(error, token, start)
        if first is not None:
            return await self._call_async(fn, args, kwargs, first, start or now_ns())
        if not self._falls_back(error):
            raise error
        return await self._fall_back_async(fn, args, kwargs, error)

    async def _guard_result_async(self, fn: Callable[..., Any], args: tuple[Any, ...],
                                    kwargs: dict[str, Any], result: object, token: int, start: int) -> Any:  # fmt: skip
        first = self._after_first_result(result, token, start)
        return result if first is None else await self._call_async(fn, args, kwargs, first, start or now_ns())

    def _after_first_error(self, error: BaseException, token: int, start: int) -> tuple[bool, Any] | None:
        """Books attempt 1, admitted in C, which raised: its outcome when the retry takes
        it on; None: the call ends with `error`."""
        self._failed(token, start, error)
        if self._retry is None:
            return None
        if not self._retry._brace_stage_retryable(error):
            if isinstance(error, Exception):
                self._retry._brace_stage_ended_first(False)
            return None
        return True, error

    def _after_first_result(self, result: object, token: int, start: int) -> tuple[bool, Any] | None:
        """Books attempt 1, admitted in C, which returned: its outcome when the retry
        rejects it; None: the call returns `result`."""
        result = self._returned(token, start, result)
        if self._retry is None:
            return None
        if not self._retry._brace_stage_rejects(result):
            self._retry._brace_stage_ended_first(True)
            return None
        return True, result

    # -- the call -------------------------------------------------------------------

    def _falls_back(self, error: BaseException) -> bool:
        """Whether the fallback takes the exception that ends a call."""
        return self._fallback is not None and isinstance(error, Exception) and not isinstance(
            error, _guarding.AsyncMisuse)

    def _fall_back(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
                   error: BaseException) -> Any:  # fmt: skip
        assert self._fallback is not None and isinstance(error, Exception)
        return self._fallback._brace_stage_fall_back(fn, args, kwargs, error)

    async def _fall_back_async(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
                               error: BaseException) -> Any:  # fmt: skip
        assert self._fallback is not None and isinstance(error, Exception)
        return await self._fallback._brace_stage_fall_back_async(fn, args, kwargs, error)

    def _call(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
              first: tuple[bool, Any] | None = None, started: int | None = None) -> Any:  # fmt: skip
        """A sync call; `first` (begun at `started`): attempt 1's outcome, already booked."""
        if started is None:
            started = now_ns()
        deadline = _deadline.tighter(None if self._deadline is None else started + self._deadline)
        try:
            bound = _deadline.BOUND.set(deadline)  # the fallback runs outside the bound
            try:
                retry, once = self._retry, self._attempt if self._hedge is None else self._hedged
                if retry is None:
                    return once(fn, args, kwargs)
                if first is None:  # attempt 1, before the loop: it only runs when that failed
                    retry._brace_stage_begin()
                    try:
                        first = retry._brace_stage_classified(once, fn, args, kwargs)
                    except Exception:
                        retry._brace_stage_ended_first(False)  # an error not to retry
                        raise
                    if not first[0]:
                        retry._brace_stage_ended_first(True)
                        return first[1]
                return drive(retry._brace_stage_loop(started, deadline),
                             lambda: retry._brace_stage_classified(once, fn, args, kwargs), first)  # fmt: skip
            finally:
                _deadline.BOUND.reset(bound)
        except Exception as error:
            if not self._falls_back(error):
                raise
            return self._fall_back(fn, args, kwargs, error)

    async def _call_async(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
                          first: tuple[bool, Any] | None = None, started: int | None = None) -> Any:  # fmt: skip
        if started is None:
            started = now_ns()
        deadline = _deadline.tighter(None if self._deadline is None else started + self._deadline)
        try:
            bound = _deadline.BOUND.set(deadline)
            try:
                retry, once = self._retry, self._attempt_async if self._hedge is None else self._hedged_async
                if retry is None:
                    return await once(fn, args, kwargs)
                if first is None:
                    retry._brace_stage_begin()
                    try:
                        first = await retry._brace_stage_classified_async(once, fn, args, kwargs)
                    except Exception:
                        retry._brace_stage_ended_first(False)
                        raise
                    if not first[0]:
                        retry._brace_stage_ended_first(True)
                        return first[1]
                return await drive_async(retry._brace_stage_loop(started, deadline),
                                         lambda: retry._brace_stage_classified_async(once, fn, args, kwargs),
                                         first)  # fmt: skip
            finally:
                _deadline.BOUND.reset(bound)
        except Exception as error:
            if not self._falls_back(error):
                raise
            return await self._fall_back_async(fn, args, kwargs, error)

    # -- one attempt as a group of hedged copies -----------------------------------------

    def _hedged(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        assert self._hedge is not None
        # A copy the breaker, limiter or bulkhead rejected stops the hedging: the next would be too.
        return self._hedge._brace_stage_hedged(lambda: self._attempt(fn, args, kwargs), not_run)

    async def _hedged_async(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        assert self._hedge is not None
        return await self._hedge._brace_stage_hedged_async(lambda: self._attempt_async(fn, args, kwargs), not_run)

    # -- one attempt through the admission stages -------------------------------------

    def _admit(self) -> int:
        """Admits an attempt through every stage: its ticket, or raises the rejection
        (marked as one: the operation did not run) once what it took went back."""
        ticket = 0
        for admitted, stage in enumerate(self._stages):
            try:
                ticket = stage._brace_stage_admit() or ticket
            except BaseException as error:
                self._give_back(admitted, ticket)
                raise _rejected(error)
        return ticket

    async def _admit_async(self) -> int:
        ticket = 0
        for admitted, stage in enumerate(self._stages):
            try:
                ticket = await stage._brace_stage_admit_async() or ticket
            except BaseException as error:
                self._give_back(admitted, ticket)
                raise _rejected(error)
        return ticket

    def _give_back(self, admitted: int, ticket: int) -> None:
        """The first `admitted` stages admitted an attempt that did not run: undone, in reverse."""
        for stage in reversed(self._stages[:admitted]):
            stage._brace_stage_give_back(ticket)

    def _failed(self, ticket: int, start: int, error: BaseException) -> None:
        for stage in self._stages_reversed:
            stage._brace_stage_failed(ticket, start, error)

    def _returned(self, ticket: int, start: int, result: object) -> object:
        for stage in self._stages_reversed:
            result = stage._brace_stage_returned(ticket, start, result)
        return result

    def _attempt(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        ticket = self._admit()
        start = now_ns()
        try:
            if self._attempt_timeout is None:
                result = fn(*args, **kwargs)
            else:
                bound, limit = _deadline.attempt_bound(self._attempt_timeout)
                assert bound is not None
                with _deadline.within(bound):
                    result = _worker.run(fn, args, kwargs, deadline_ns=bound, timeout=limit,
                                         on_late_end=lambda error: self._after_late_end(ticket, start))  # fmt: skip
        except AttemptTimeout as error:
            if not error.still_running:
                self._failed(ticket, start, error)
            # Else the attempt runs on: its slot and permission go back when it ends.
            raise
        except BaseException as error:
            self._failed(ticket, start, error)
            raise
        if is_awaitable(result):
            self._give_back(len(self._stages), ticket)
            raise _guarding.refuse_awaitable(result, fn, "Policy.call")
        return self._returned(ticket, start, result)

    def _after_late_end(self, ticket: int, start: int) -> None:
        """A sync attempt that timed out has ended: its slot goes back, and the breaker
        books it as the failure it was for the caller (slow, when slow calls count)."""
        self._failed(ticket, start, AttemptTimeout(timeout=(now_ns() - start) / _NS))

    async def _attempt_async(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        ticket = await self._admit_async()
        start = now_ns()
        bound, limit = _deadline.attempt_bound(self._attempt_timeout)
        try:
            result = await _deadline.bounded(_guarding.awaited(fn(*args, **kwargs)), bound, limit)
        except BaseException as error:
            self._failed(ticket, start, error)
            raise
        return self._returned(ticket, start, result)

    # -- a block through the admission stages --------------------------------------

    def __enter__(self) -> Policy:
        """Admits the block through the breaker, limiter and bulkhead (waiting as they
        wait); its outcome is booked at the block's end. A block cannot be run again, so
        the retry, the fallback and the timeouts do not apply to it."""
        ticket = self._admit()
        self._blocks.set((*self._blocks.get(()), (ticket, now_ns())))
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:  # fmt: skip
        blocks = self._blocks.get()
        ticket, start = blocks[-1]
        self._blocks.set(blocks[:-1])
        if exc is None:
            self._returned(ticket, start, None)
        else:
            self._failed(ticket, start, exc)

    async def __aenter__(self) -> Policy:
        """`with policy:` for coroutines: the limiter's and bulkhead's waits are awaited."""
        ticket = await self._admit_async()
        self._blocks.set((*self._blocks.get(()), (ticket, now_ns())))
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:  # fmt: skip
        self.__exit__(exc_type, exc, tb)

    def __repr__(self) -> str:
        parts = [f"{name}={value!r}" for name, value in (
            ("name", self._name), ("retry", self._retry), ("hedge", self._hedge), ("breaker", self._breaker),
            ("limiter", self._limiter), ("bulkhead", self._bulkhead)) if value is not None]  # fmt: skip
        return f"Policy({', '.join(parts)})"


def _bounds(deadline: object, attempt_timeout: object, retry: Retry | None) -> tuple[int | None, float | None]:
    """(the call's deadline in ns, the attempt timeout in seconds): the policy's own and its
    retry's, the tighter of each pair."""
    deadline_s = _config.duration(deadline, "deadline", allow_none=True, positive=True)
    # A sync attempt is waited for on a thread.
    timeout = _config.duration(attempt_timeout, "attempt_timeout", allow_none=True, positive=True,
                               maximum=_config.THREAD_WAIT_MAX)  # fmt: skip
    retry_timeout = None if retry is None else retry.attempt_timeout
    if timeout is None or retry_timeout is None:
        timeout = timeout if retry_timeout is None else retry_timeout
    else:
        timeout = min(timeout, retry_timeout)
    bounds = [round(seconds * _NS) for seconds in (deadline_s, None if retry is None else retry.deadline)
              if seconds is not None]  # fmt: skip
    return (min(bounds) if bounds else None), timeout


def _rejected(error: BaseException) -> BaseException:
    """Marks an exception raised while admitting an attempt: the operation did not run
    (brace.Recovery logs such an attempt with ran=False)."""
    if isinstance(error, Exception):
        error.__dict__["_brace_not_run"] = True
    return error


def not_run(error: BaseException) -> bool:
    """Whether a Policy rejected the attempt that raised `error` before running it."""
    return bool(getattr(error, "__dict__", {}).get("_brace_not_run"))


def _fallback_stage(fallback: object) -> FallbackStage | None:
    """Policy's `fallback=`: a brace.Fallback (anything with the fallback stage's hooks), or a
    plain function of the final exception."""
    if fallback is None or hasattr(fallback, "_brace_stage_fall_back"):
        return cast("FallbackStage | None", fallback)
    if not callable(fallback):
        raise TypeError(f"fallback must be a brace.Fallback, a function of the final exception, or None, "
                        f"got {type(fallback).__name__}")
    return ValueFromError(fallback)
