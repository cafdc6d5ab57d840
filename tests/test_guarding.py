"""Every guarded call is really guarded: async callables at sync entry points, functions
guarded twice by the same guard, awaitables returned by plain functions, bare decorators.

Parametrized over the guards: each case names how to build one and how to read
what it counted, so that one test checks the same promise for all of them.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

import brace
from brace.testing import FakeClock

NO_WAIT = brace.Backoff.constant(delay=0.0)


class Counted:
    """A guard under test and how to read the calls it let through and counted."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.breaker = brace.CircuitBreaker(name=f"guarding-{name}", minimum_calls=10, window_size=10)
        self.bulkhead = brace.Bulkhead(max_concurrent=1)
        self.retry = brace.Retry(on=ConnectionError, attempts=4, backoff=NO_WAIT)
        self.guard: Any = {
            "breaker": self.breaker,
            "bulkhead": self.bulkhead,
            "retry": self.retry,
            "policy": brace.Policy(retry=self.retry, breaker=self.breaker, bulkhead=self.bulkhead),
        }[name]

    @property
    def recorded(self) -> int:
        """Calls the breaker counted (guards without a breaker count none)."""
        return self.breaker.metrics().calls if self.name in ("breaker", "policy") else 0


GUARDS = ["breaker", "bulkhead", "retry", "policy"]
ENTRY = {"breaker": "CircuitBreaker.call", "bulkhead": "Bulkhead.call", "retry": "Retry.call",
         "policy": "Policy.call"}  # fmt: skip


# A coroutine brace refused must be closed, not left for Python to warn about.
pytestmark = pytest.mark.usefixtures("no_coroutine_left_unawaited")


async def work() -> str:
    return "done"


class AsyncCallable:
    async def __call__(self) -> str:
        return "done"


ASYNC_CALLABLES: dict[str, Callable[[], Any]] = {
    "async def": lambda: work,
    "functools.partial of an async def": lambda: functools.partial(work),
    "object with async __call__": AsyncCallable,
    "bound async method": lambda: AsyncMethods().work,
}


class AsyncMethods:
    async def work(self) -> str:
        return "done"


@pytest.mark.parametrize("guard", GUARDS)
@pytest.mark.parametrize("kind", ASYNC_CALLABLES)
def test_a_sync_entry_point_refuses_a_coroutine_function_before_calling_it(guard: str, kind: str) -> None:
    counted = Counted(guard)
    with pytest.raises(TypeError, match=rf"{ENTRY[guard]}\(\) got .*coroutine function.*{ENTRY[guard]}_async"):
        counted.guard.call(ASYNC_CALLABLES[kind]())
    assert counted.recorded == 0
    assert counted.bulkhead.in_use == 0


@pytest.mark.parametrize("guard", GUARDS)
def test_a_sync_entry_point_refuses_an_awaitable_returned_by_a_plain_function(guard: str) -> None:
    counted = Counted(guard)
    started: list[str] = []

    async def body() -> str:
        started.append("ran")  # never: the coroutine is closed before it starts
        return "done"

    with pytest.raises(TypeError, match=r"returned coroutine, an awaitable.*_async"):
        counted.guard.call(lambda: body())
    assert started == []
    assert counted.recorded == 0  # the permission went back uncounted
    assert (counted.bulkhead.in_use, counted.bulkhead.available) == (0, 1)


@pytest.mark.parametrize("guard", GUARDS)
def test_a_decorated_plain_function_returning_a_coroutine_is_guarded_until_awaited(guard: str) -> None:
    counted = Counted(guard)
    inside: list[int] = []
    attempts = 0

    async def body() -> str:
        nonlocal attempts
        attempts += 1
        inside.append(counted.bulkhead.in_use)
        if guard in ("retry", "policy") and attempts == 1:
            raise ConnectionError("the first attempt fails")
        if guard in ("breaker", "bulkhead"):
            raise ConnectionError("fails when awaited")
        return "done"

    def plain() -> Awaitable[str]:
        return body()

    decorated = counted.guard(plain)
    if guard in ("retry", "policy"):
        assert asyncio.run(decorated()) == "done"
        assert attempts == 2  # the awaited failure was retried
    else:
        with pytest.raises(ConnectionError):
            asyncio.run(decorated())
    if guard in ("breaker", "policy"):
        assert counted.breaker.metrics().failures == 1  # the awaited outcome was recorded
    if guard in ("bulkhead", "policy"):
        assert inside[0] == 1  # the slot was held while the work ran
        assert counted.bulkhead.in_use == 0


@pytest.mark.parametrize("guard", GUARDS)
def test_a_function_is_guarded_once_by_the_same_guard(guard: str) -> None:
    counted = Counted(guard)
    calls = 0

    def fn() -> str:
        nonlocal calls
        calls += 1
        raise ConnectionError("down")

    decorated = counted.guard(fn)
    assert counted.guard(decorated) is decorated  # decorating again changes nothing
    with pytest.raises(ConnectionError):
        counted.guard.call(decorated)
    # A retry of 4 attempts makes 4 calls, not 4 x 4; a breaker counts 1 call, not 2;
    # a bulkhead of 1 slot does not reject its own decorated function.
    assert calls == (4 if guard in ("retry", "policy") else 1)
    assert counted.recorded == (1 if guard == "breaker" else 4 if guard == "policy" else 0)


@pytest.mark.parametrize("guard", GUARDS)
def test_an_async_function_is_guarded_once_by_the_same_guard(guard: str) -> None:
    counted = Counted(guard)
    calls = 0

    async def fn() -> str:
        nonlocal calls
        calls += 1
        return "done"

    decorated = counted.guard(fn)
    assert counted.guard(decorated) is decorated
    assert asyncio.run(counted.guard.call_async(decorated)) == "done"
    assert calls == 1
    assert counted.recorded == (1 if guard in ("breaker", "policy") else 0)


def test_a_bound_method_of_a_guarded_method_is_guarded_once() -> None:
    cb = brace.CircuitBreaker(name="guarding-method")

    class Client:
        @cb
        def get(self) -> str:
            return "ok"

    assert cb.call(Client().get) == "ok"
    assert cb.metrics().calls == 1


@pytest.mark.parametrize("guard", GUARDS)
def test_call_async_accepts_a_plain_function_and_guards_it(guard: str) -> None:
    counted = Counted(guard)
    assert asyncio.run(counted.guard.call_async(lambda: counted.bulkhead.in_use)) == (
        1 if guard in ("bulkhead", "policy") else 0
    )
    assert counted.recorded == (1 if guard in ("breaker", "policy") else 0)


def test_bare_retry_decorates_and_retries_any_exception(clock: FakeClock) -> None:
    calls = 0

    @brace.retry
    def flaky(x: int) -> int:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise RuntimeError("flaky")
        return x * 2

    assert flaky(21) == 42
    assert calls == 3
    assert flaky.__name__ == "flaky"


def test_bare_retry_on_a_coroutine_function(clock: FakeClock) -> None:
    calls = 0

    @brace.retry
    async def flaky() -> str:
        nonlocal calls
        calls += 1
        if calls < 2:
            raise RuntimeError("flaky")
        return "ok"

    assert asyncio.run(flaky()) == "ok"
    assert calls == 2


def test_retry_with_arguments_is_still_a_retry() -> None:
    assert isinstance(brace.retry(on=ConnectionError, attempts=2), brace.Retry)


@pytest.mark.parametrize("kind", ["CircuitBreaker", "Bulkhead", "RateLimiter", "Retry", "Policy"])
def test_a_bare_primitive_decorator_says_to_add_parentheses(kind: str) -> None:
    def fetch() -> None:
        pass  # pragma: no cover

    with pytest.raises(TypeError, match=rf"brace\.{kind} takes keyword arguments only.*@brace\.{kind}\(\.\.\.\)"):
        getattr(brace, kind)(fetch)


GUARDS = {
    "Retry": lambda: brace.Retry(on=ConnectionError),
    "Policy": lambda: brace.Policy(),
    "CircuitBreaker": lambda: brace.CircuitBreaker(name="guard-function"),
    "Bulkhead": lambda: brace.Bulkhead(max_concurrent=1),
    "RateLimiter": lambda: brace.RateLimiter(rate="1000/s", burst=10),
}


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize("kind", sorted(GUARDS))
def test_every_decorator_follows_the_same_rules(kind: str, is_async: bool) -> None:
    guard = GUARDS[kind]()

    def plain(x: int, *, y: str = "y") -> str:
        """Its docstring."""
        return f"{x}{y}"

    async def coroutine(x: int, *, y: str = "y") -> str:
        """Its docstring."""
        return f"{x}{y}"

    fn = coroutine if is_async else plain
    decorated = guard(fn)
    assert decorated is not fn
    assert (decorated.__name__, decorated.__doc__, decorated.__wrapped__) == (fn.__name__, "Its docstring.", fn)
    assert inspect.signature(decorated) == inspect.signature(fn)
    assert inspect.iscoroutinefunction(decorated) == is_async
    assert guard(decorated) is decorated
    result = asyncio.run(decorated(1, y="z")) if is_async else decorated(1, y="z")
    assert result == "1z"
    with pytest.raises(TypeError, match=f"a {kind} decorates callables, got int"):
        guard(3)
