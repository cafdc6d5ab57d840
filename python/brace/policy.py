"""brace.Policy: fallback, deadline, retry, breaker, limiter, bulkhead and attempt
timeout composed into one guard, whose success path is one compiled wrapper."""

from __future__ import annotations

import functools
import inspect
from datetime import timedelta
from typing import Any, Awaitable, Callable, ParamSpec, TypeVar, cast

from brace import _config
from brace._core import RERAISE, PolicyCore, now_ns
from brace.breaker import CircuitBreaker
from brace.bulkhead import Bulkhead
from brace.limiter import RateLimiter
from brace.retry import Retry, _call_in_thread, _with_timeout

__all__ = ["Policy"]

P = ParamSpec("P")
R = TypeVar("R")

_NS = 1_000_000_000


class Policy(PolicyCore):
    """Every resilience primitive around one call, in this order (docs/architecture.md says why):

    fallback -> deadline -> retry -> breaker -> limiter -> bulkhead -> attempt
    timeout -> fn. Each attempt asks the breaker (an open breaker consumes no
    limiter token), takes a limiter token (waiting up to the limiter's
    max_wait), then a bulkhead slot (waiting up to its max_wait); the retry
    decides on the attempt's outcome, including the rejections of the others
    (name CircuitOpen, RateLimited or BulkheadFull in its `on` to retry them);
    the fallback receives whatever exception ends the call. Any subset works.

    A decorated sync function's first attempt runs every check in C through
    one compiled wrapper; failures, waits and retries continue in Python.

    Args:
        fallback: Called with the final exception; its return value is the
            call's. None: the exception propagates.
        deadline: Bounds all attempts and sleeps of the retry (seconds or
            timedelta): it never sleeps past it. Without a retry, it bounds
            the one attempt like attempt_timeout.
        retry: A brace.Retry (its own deadline and attempt timeout apply too).
        breaker: A brace.CircuitBreaker.
        limiter: A brace.RateLimiter: each attempt takes one token.
        bulkhead: A brace.Bulkhead: each attempt holds one slot.
        attempt_timeout: Bounds each attempt (see brace.Retry's).
        name: A name for repr and notes.

    Raises:
        ValueError, TypeError: For configuration outside the ranges above.
    """

    __slots__ = ("_fallback", "_deadline", "_retry", "_breaker_obj", "_limiter_obj", "_bulkhead_obj",
                 "_attempt_timeout", "_name")  # fmt: skip

    def __init__(
        self,
        *,
        fallback: Callable[[Exception], Any] | None = None,
        deadline: float | timedelta | None = None,
        retry: Retry | None = None,
        breaker: CircuitBreaker | None = None,
        limiter: RateLimiter | None = None,
        bulkhead: Bulkhead | None = None,
        attempt_timeout: float | timedelta | None = None,
        name: str | None = None,
    ) -> None:
        if fallback is not None and not callable(fallback):
            raise TypeError(f"fallback must be callable or None, got {type(fallback).__name__}")
        for value, kind, param in ((retry, Retry, "retry"), (breaker, CircuitBreaker, "breaker"),
                                   (limiter, RateLimiter, "limiter"), (bulkhead, Bulkhead, "bulkhead")):  # fmt: skip
            if value is not None and not isinstance(value, kind):
                raise TypeError(f"{param} must be a brace.{kind.__name__} or None, got {type(value).__name__}")
        deadline_s = _config.duration(deadline, "deadline", allow_none=True)
        timeout = _config.duration(attempt_timeout, "attempt_timeout", allow_none=True)
        for seconds, param in ((deadline_s, "deadline"), (timeout, "attempt_timeout")):
            if seconds == 0:
                raise ValueError(f"{param} must be a finite number of seconds > 0 or None, got 0")
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name must be a str or None, got {type(name).__name__}")
        if retry is None and deadline_s is not None:
            timeout = deadline_s if timeout is None else min(timeout, deadline_s)
        retry_deadline = None if retry is None else retry._deadline
        own_deadline = None if deadline_s is None else round(deadline_s * _NS)
        self._deadline = (own_deadline if retry_deadline is None else
                          retry_deadline if own_deadline is None else min(own_deadline, retry_deadline))  # fmt: skip
        self._fallback, self._retry, self._attempt_timeout, self._name = fallback, retry, timeout, name
        self._breaker_obj, self._limiter_obj, self._bulkhead_obj = breaker, limiter, bulkhead
        self._configure_core(
            breaker=breaker, limiter=limiter, bulkhead=bulkhead,
            deposit=None if retry is None or retry._budget is None else retry._budget.deposit,
            whole_call_in_python=timeout is not None or (retry is not None and retry._attempt_timeout is not None),
            checks_result=(retry is not None and retry._checks_result)
            or (breaker is not None and breaker._record_result is not None),
            needs_start=self._deadline is not None or (breaker is not None and breaker._measure),
        )  # fmt: skip

    # -- ways to use it -----------------------------------------------------------

    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]:
        """Decorates fn (sync or async) so that every call goes through the policy."""
        if not callable(fn):
            raise TypeError(f"a Policy decorates callables, got {type(fn).__name__}")
        if inspect.iscoroutinefunction(fn):
            coroutine_fn = fn

            @functools.wraps(fn)
            async def guarded_async(*args: P.args, **kwargs: P.kwargs) -> Any:
                admitted = self._try_enter()
                if admitted is None:
                    return await self._call_async(coroutine_fn, args, kwargs)
                token, start = admitted
                try:
                    result = await coroutine_fn(*args, **kwargs)
                except BaseException as error:
                    return await self._failed_async(coroutine_fn, args, kwargs, error, token, start)
                if self._succeeded(token, start):
                    return await self._result_async(coroutine_fn, args, kwargs, result, token, start)
                return result

            return cast(Callable[P, R], guarded_async)
        guarded = self._guard(fn)
        functools.update_wrapper(guarded, fn)
        return cast(Callable[P, R], guarded)

    def call(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Calls fn(*args, **kwargs) under the policy."""
        return cast(R, self._call(fn, args, kwargs))

    async def call_async(self, fn: Callable[P, Awaitable[R]], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Awaits fn(*args, **kwargs) under the policy."""
        return cast(R, await self._call_async(fn, args, kwargs))

    # -- the compiled wrapper's slow paths (pyx/guard.h) ------------------------

    def _guard_call(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        return self._call(fn, args, kwargs)

    def _guard_failed(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
                      error: BaseException, token: int, start: int) -> Any:  # fmt: skip
        if self._retries_after(error, token, start):
            return self._finish(lambda: self._continue(fn, args, kwargs, error, start or now_ns()))
        if self._fallback is None or not isinstance(error, Exception):
            return RERAISE
        return self._fallback(error)

    def _guard_result(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
                      result: object, token: int, start: int) -> Any:  # fmt: skip
        if self._bulkhead_obj is not None:
            self._bulkhead_obj.release()
        if self._breaker_obj is not None:
            result = self._breaker_obj._finish(result, token, start)
        if self._retry is None or not self._retry._rejects(result):
            return result
        return self._finish(lambda: self._continue(fn, args, kwargs, result, start or now_ns()))

    # -- attempts -----------------------------------------------------------------

    def _finish(self, run: Callable[[], Any]) -> Any:
        """Runs the rest of the call; the fallback takes the exception that ends it."""
        try:
            return run()
        except Exception as error:
            if self._fallback is None:
                raise
            return self._fallback(error)

    def _call(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        return self._finish(lambda: self._run(fn, args, kwargs))

    def _run(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        retry = self._retry
        if retry is None:
            return self._attempt(fn, args, kwargs)
        retry._deposit()
        started = now_ns()
        failed, outcome = retry._classified(lambda: self._attempt(fn, args, kwargs))
        return self._continue(fn, args, kwargs, outcome, started) if failed else outcome

    def _continue(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
                  outcome: object, started: int) -> Any:  # fmt: skip
        retry = self._retry
        assert retry is not None
        return retry._continue(lambda: retry._classified(lambda: self._attempt(fn, args, kwargs)),
                               outcome, started, self._deadline)  # fmt: skip

    def _retries_after(self, error: BaseException, token: int, start: int) -> bool:
        """Books a first attempt admitted in C that raised; True when the retry takes it on."""
        self._after_error(error, token, start)
        return self._retry is not None and self._retry._retryable(error)

    def _after_error(self, error: BaseException, token: int, start: int) -> None:
        if self._bulkhead_obj is not None:
            self._bulkhead_obj.release()
        if self._breaker_obj is not None:
            self._breaker_obj._on_error(error, token, start)

    def _admit(self) -> tuple[int, int]:
        """Breaker permission, a limiter token, a bulkhead slot: (token, start) or raises."""
        token, start = self._enter_breaker()
        try:
            if self._limiter_obj is not None:
                self._limiter_obj.acquire(1, self._limiter_obj.max_wait)
        except BaseException:
            self._give_back(token, refund=False)
            raise
        try:
            if self._bulkhead_obj is not None:
                self._bulkhead_obj.__enter__()
        except BaseException:
            self._give_back(token, refund=True)
            raise
        return token, start

    def _enter_breaker(self) -> tuple[int, int]:
        return self._breaker_obj._enter() if self._breaker_obj is not None else (0, now_ns())

    def _give_back(self, token: int, *, refund: bool) -> None:
        """What an attempt took before a rejection goes back: its token, its permission."""
        if refund and self._limiter_obj is not None:
            self._limiter_obj._refund(1)
        if self._breaker_obj is not None:
            self._breaker_obj._release(token)

    def _attempt(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        token, start = self._admit()
        try:
            if self._attempt_timeout is None:
                result = fn(*args, **kwargs)
            else:
                result = _call_in_thread(fn, args, kwargs, self._attempt_timeout)
        except BaseException as error:
            self._after_error(error, token, start)
            raise
        if self._bulkhead_obj is not None:
            self._bulkhead_obj.release()
        return result if self._breaker_obj is None else self._breaker_obj._finish(result, token, start)

    async def _call_async(self, fn: Callable[..., Awaitable[Any]], args: tuple[Any, ...],
                          kwargs: dict[str, Any]) -> Any:  # fmt: skip
        try:
            retry = self._retry
            if retry is None:
                return await self._attempt_async(fn, args, kwargs)
            retry._deposit()
            return await retry._drive_async(
                lambda: retry._classified_async(lambda: self._attempt_async(fn, args, kwargs)), self._deadline)
        except Exception as error:
            if self._fallback is None:
                raise
            return self._fallback(error)

    async def _failed_async(self, fn: Callable[..., Awaitable[Any]], args: tuple[Any, ...], kwargs: dict[str, Any],
                            error: BaseException, token: int, start: int) -> Any:  # fmt: skip
        """A first attempt admitted in C raised: book it, then retry or fall back."""
        if self._retries_after(error, token, start):
            return await self._finish_async(fn, args, kwargs, (True, error), start or now_ns())
        if self._fallback is None or not isinstance(error, Exception):
            raise error
        return self._fallback(error)

    async def _result_async(self, fn: Callable[..., Awaitable[Any]], args: tuple[Any, ...], kwargs: dict[str, Any],
                            result: object, token: int, start: int) -> Any:  # fmt: skip
        if self._bulkhead_obj is not None:
            self._bulkhead_obj.release()
        if self._breaker_obj is not None:
            result = self._breaker_obj._finish(result, token, start)
        if self._retry is None or not self._retry._rejects(result):
            return result
        return await self._finish_async(fn, args, kwargs, (True, result), start or now_ns())

    async def _finish_async(self, fn: Callable[..., Awaitable[Any]], args: tuple[Any, ...], kwargs: dict[str, Any],
                            first: tuple[bool, Any], started: int) -> Any:  # fmt: skip
        retry = self._retry
        assert retry is not None
        try:
            return await retry._drive_async(
                lambda: retry._classified_async(lambda: self._attempt_async(fn, args, kwargs)), self._deadline,
                first, started)  # fmt: skip
        except Exception as error:
            if self._fallback is None:
                raise
            return self._fallback(error)

    async def _attempt_async(self, fn: Callable[..., Awaitable[Any]], args: tuple[Any, ...],
                             kwargs: dict[str, Any]) -> Any:  # fmt: skip
        token, start = self._enter_breaker()
        try:
            if self._limiter_obj is not None:
                await self._limiter_obj.acquire_async(1, self._limiter_obj.max_wait)
        except BaseException:
            self._give_back(token, refund=False)
            raise
        try:
            if self._bulkhead_obj is not None:
                await self._bulkhead_obj.__aenter__()
        except BaseException:
            self._give_back(token, refund=True)
            raise
        try:
            result = await _with_timeout(fn(*args, **kwargs), self._attempt_timeout)
        except BaseException as error:
            self._after_error(error, token, start)
            raise
        if self._bulkhead_obj is not None:
            self._bulkhead_obj.release()
        return result if self._breaker_obj is None else self._breaker_obj._finish(result, token, start)

    def __repr__(self) -> str:
        parts = [f"{name}={value!r}" for name, value in (
            ("name", self._name), ("retry", self._retry), ("breaker", self._breaker_obj),
            ("limiter", self._limiter_obj), ("bulkhead", self._bulkhead_obj)) if value is not None]  # fmt: skip
        return f"Policy({', '.join(parts)})"
