"""The guard forms of brace's feedback primitives, written once.

brace.AdaptiveRateLimiter and brace.ClientThrottle admit a call, let it run,
and learn from what it returned or raised (did the server throttle it? did
the backend accept it?). Both offer the same forms as every primitive:
`call(fn, ...)`, `await call_async(fn, ...)`, a decorator (sync and coroutine
functions, signature kept) and `with` / `async with`; this module holds them.
A subclass says how a call is admitted (`_admit`, `_admit_async`) and what
it learns from an outcome (`_observe`).

Also here: the default judgements of an outcome, read from the HTTP response
found on it (brace.pushback's duck typing, so any HTTP library works).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, cast, overload

from brace import _guarding
from brace._core import CALLABLE_GUARDED, is_awaitable
from brace.pushback import http_status, server_wait

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["FeedbackGuard", "overloaded", "throttling"]

P = ParamSpec("P")
R = TypeVar("R")

_TOO_MANY_REQUESTS = 429
_SERVICE_UNAVAILABLE = 503


def throttling(outcome: object) -> bool:
    """Whether the server throttled the call that produced `outcome`.

    True when the HTTP response found on it (the outcome itself, or its
    `.response`: see brace.http_status) has status 429 Too Many Requests, or
    503 Service Unavailable with a wait the server asked for (Retry-After, the
    RateLimit fields: see brace.server_delay). A 503 without one is an outage,
    not throttling. AdaptiveRateLimiter's default `throttled`. Never raises.
    """
    status = http_status(outcome)
    if status == _TOO_MANY_REQUESTS:
        return True
    return status == _SERVICE_UNAVAILABLE and server_wait(outcome).seconds is not None


def overloaded(outcome: object) -> bool:
    """Whether the backend refused the call that produced `outcome` for overload.

    True when the HTTP response found on it has status 429 or 503. Any other
    outcome - a success, another error status, an exception without a
    response - was accepted by the backend as far as load goes. ClientThrottle's
    default `accepted` is its negation. Never raises.
    """
    return http_status(outcome) in (_TOO_MANY_REQUESTS, _SERVICE_UNAVAILABLE)


class FeedbackGuard:
    """call / call_async / decorator / with / async with over `_admit` and `_observe`.

    The outcome observed is what the call returned, or the `Exception` it
    raised; a `with` block that ends without an exception counts as the
    result None. Exceptions that are not `Exception`s (cancellation,
    KeyboardInterrupt) teach nothing and are not observed.
    """

    __slots__ = ()

    def _admit(self) -> None:
        """Admits one call, waiting as configured, or raises the primitive's rejection."""
        raise NotImplementedError

    async def _admit_async(self) -> None:
        """`_admit` for coroutines."""
        raise NotImplementedError

    def _observe(self, outcome: object) -> None:
        """Learns from one call's outcome: its result, or the Exception it raised."""
        raise NotImplementedError

    @overload
    def call(self, fn: Callable[P, Awaitable[R]], /, *args: P.args,
             **kwargs: P.kwargs) -> _guarding.UseCallAsync: ...  # fmt: skip

    @overload
    def call(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R: ...

    def call(self, fn: Callable[P, Any], /, *args: P.args, **kwargs: P.kwargs) -> Any:
        """Admits one call, runs fn(*args, **kwargs) and learns from its outcome.

        Raises:
            brace.Rejected: The primitive's rejection (fn was not called).
            TypeError: fn is a coroutine function or returned an awaitable:
                use `await call_async(fn, ...)`.
        """
        entry = f"{type(self).__name__}.call"
        if _guarding.sync_entry(fn, self, entry):
            return _guarding.call_guarded(fn, args, kwargs, entry)
        self._admit()
        return self._run(fn, args, kwargs, entry)

    async def call_async(self, fn: Callable[P, Awaitable[R]], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """`call` for coroutines: admits (awaiting), then awaits fn(*args, **kwargs)
        (a plain fn's value is used as it is) and learns from its outcome."""
        if _guarding.kind(fn, self) == CALLABLE_GUARDED:
            return cast(R, await _guarding.awaited(fn(*args, **kwargs)))
        await self._admit_async()
        return cast(R, await self._watched(fn, args, kwargs))

    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]:
        """Decorates fn (sync or async) so that each call goes through `call`'s steps.

        A function this primitive already decorates is returned as it is.
        """
        return _guarding.guard_function(self, fn, self._guard_sync, self._guard_async)

    def _guard_sync(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        def guarded(*args: Any, **kwargs: Any) -> Any:
            self._admit()
            return self._run(fn, args, kwargs, None)

        return guarded

    def _guard_async(self, fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def guarded_async(*args: Any, **kwargs: Any) -> Any:
            await self._admit_async()
            return await self._watched(fn, args, kwargs)

        return guarded_async

    def _run(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], entry: str | None) -> Any:
        """Runs an admitted call and observes its outcome. A plain function that returns an
        awaitable is refused at a sync entry point (`entry`); decorated, its awaited outcome
        is observed instead."""
        try:
            result = fn(*args, **kwargs)
        except Exception as error:
            self._observe(error)
            raise
        if is_awaitable(result):
            if entry is not None:
                raise _guarding.refuse_awaitable(result, fn, entry)
            return self._awaited(result)
        self._observe(result)
        return result

    async def _awaited(self, awaitable: Awaitable[Any]) -> Any:
        try:
            result = await awaitable
        except Exception as error:
            self._observe(error)
            raise
        self._observe(result)
        return result

    async def _watched(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        try:
            result = await _guarding.awaited(fn(*args, **kwargs))
        except Exception as error:
            self._observe(error)
            raise
        self._observe(result)
        return result

    def __enter__(self) -> Self:
        self._admit()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:  # fmt: skip
        if error is None or isinstance(error, Exception):
            self._observe(error)

    async def __aenter__(self) -> Self:
        await self._admit_async()
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        traceback: TracebackType | None) -> None:  # fmt: skip
        self.__exit__(kind, error, traceback)
