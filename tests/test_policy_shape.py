"""The API shape Retry, Policy and RateLimiter share: name first, call / call_async,
decorator, `with` / `async with`."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

import brace
from brace.testing import FakeClock


@pytest.mark.parametrize("kind", [brace.Retry, brace.Policy, brace.CircuitBreaker, brace.RateLimiter, brace.Bulkhead,
                                  brace.RetryBudget, brace.Recovery])
def test_name_comes_first_and_everything_is_a_keyword(kind: type) -> None:
    parameters = list(inspect.signature(kind.__init__).parameters.values())[1:]  # self aside
    assert parameters[0].kind is inspect.Parameter.VAR_POSITIONAL or parameters[0].name == "name"
    keywords = [parameter for parameter in parameters if parameter.kind is not inspect.Parameter.VAR_POSITIONAL]
    assert keywords[0].name == "name"
    assert all(parameter.kind is inspect.Parameter.KEYWORD_ONLY for parameter in keywords)


def enter_sync(policy: brace.Policy, body: Callable[[], object]) -> None:
    with policy:
        body()


def enter_async(policy: brace.Policy, body: Callable[[], object]) -> None:
    async def scenario() -> None:
        async with policy:
            body()

    asyncio.run(scenario())


ENTER = pytest.mark.parametrize("enter", [enter_sync, enter_async], ids=["with", "async with"])


@ENTER
def test_a_block_holds_a_slot_and_takes_a_token(clock: FakeClock, enter: Callable[..., None]) -> None:
    limiter = brace.RateLimiter(rate=2, per=3600.0, burst=2, max_wait=0)
    bulkhead = brace.Bulkhead(max_concurrent=1)
    policy = brace.Policy(limiter=limiter, bulkhead=bulkhead)
    enter(policy, lambda: (assert_equal(bulkhead.in_use, 1)))
    assert bulkhead.in_use == 0 and limiter.state().remaining == 1


def assert_equal(value: object, expected: object) -> None:
    assert value == expected


@ENTER
def test_a_block_failure_counts_with_the_breaker(clock: FakeClock, enter: Callable[..., None]) -> None:
    breaker = brace.CircuitBreaker(name="block", consecutive_failures=1)
    bulkhead = brace.Bulkhead(max_concurrent=1)
    policy = brace.Policy(breaker=breaker, bulkhead=bulkhead, retry=brace.Retry(on=ConnectionError))

    def fail() -> None:
        raise ConnectionError("down")

    with pytest.raises(ConnectionError):  # a block is not retried
        enter(policy, fail)
    assert breaker.state is brace.BreakerState.OPEN and bulkhead.in_use == 0
    with pytest.raises(brace.CircuitOpen):
        enter(policy, lambda: None)


@ENTER
def test_a_rejected_block_gives_back_what_it_took(clock: FakeClock, enter: Callable[..., None]) -> None:
    limiter = brace.RateLimiter(rate=1, per=3600.0, max_wait=0)
    bulkhead = brace.Bulkhead(max_concurrent=1, max_wait=0)
    policy = brace.Policy(limiter=limiter, bulkhead=bulkhead)
    ran: list[str] = []
    with bulkhead, pytest.raises(brace.BulkheadFull):
        enter(policy, lambda: ran.append("ran"))
    assert ran == [] and limiter.state().remaining == 1


def limited_call(limiter: brace.RateLimiter, fn: Callable[[int], Any], x: int) -> Any:
    return limiter.call(fn, x)


def limited_call_async(limiter: brace.RateLimiter, fn: Callable[[int], Any], x: int) -> Any:
    async def coroutine(value: int) -> Any:
        return fn(value)

    return asyncio.run(limiter.call_async(coroutine, x))


@pytest.mark.parametrize("call", [limited_call, limited_call_async], ids=["call", "call_async"])
def test_rate_limiter_call_takes_a_token_first(clock: FakeClock, call: Callable[..., Any]) -> None:
    limiter = brace.RateLimiter(rate=1, per=3600.0, max_wait=0)
    assert call(limiter, lambda x: x + 1, 1) == 2
    with pytest.raises(brace.RateLimited):
        call(limiter, lambda x: pytest.fail("ran without a token"), 1)


def test_rate_limiter_call_refuses_coroutines_and_refunds(clock: FakeClock) -> None:
    limiter = brace.RateLimiter(rate=1, per=3600.0, max_wait=0)

    async def coroutine() -> int:
        return 1

    def returns_awaitable() -> Awaitable[int]:
        return coroutine()

    with pytest.raises(TypeError, match="call_async"):
        limiter.call(coroutine)  # type: ignore[call-overload]
    with pytest.raises(TypeError, match="call_async"):
        limiter.call(returns_awaitable)
    assert limiter.state().remaining == 1


# ---- fallback=: one idea with brace.Fallback ---------------------------------------------------


def _down(key: str) -> str:
    raise ConnectionError(f"down: {key}")


async def _down_async(key: str) -> str:
    raise ConnectionError(f"down: {key}")


def _policy_call(policy: brace.Policy, asynchronous: bool) -> Any:
    if asynchronous:
        return asyncio.run(policy.call_async(_down_async, "k"))
    return policy.call(_down, "k")


@pytest.mark.parametrize("asynchronous", [False, True])
def test_a_policy_serves_a_brace_fallback_as_a_degraded_value(asynchronous: bool) -> None:
    def replica(key: str) -> str:
        return f"replica of {key}"

    policy = brace.Policy(fallback=brace.Fallback(replica, name="reads"),
                          retry=brace.Retry(on=ConnectionError, attempts=2, backoff=brace.Backoff.constant(delay=0)))  # fmt: skip
    served = _policy_call(policy, asynchronous)
    assert isinstance(served, brace.Degraded)
    assert served.value == "replica of k" and served.source.endswith(".replica")
    assert isinstance(served.error, ConnectionError)


@pytest.mark.parametrize("asynchronous", [False, True])
def test_a_brace_fallback_with_categories_lets_other_failures_through(asynchronous: bool) -> None:
    policy = brace.Policy(fallback=brace.Fallback(brace.Fallback.value("spare"), categories="auth_expired"))
    with pytest.raises(ConnectionError, match="down: k"):
        _policy_call(policy, asynchronous)


@pytest.mark.parametrize("asynchronous", [False, True])
def test_a_function_of_the_error_is_the_simplest_fallback(asynchronous: bool) -> None:
    policy = brace.Policy(fallback=lambda error: f"instead of {type(error).__name__}")
    assert _policy_call(policy, asynchronous) == "instead of ConnectionError"
