"""The success paths allocate nothing (counted, not timed).

Each case runs a million times; `sys.getallocatedblocks()` counts the blocks
still alive afterwards, so one leaked object per call would show as ~10^6.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import brace
from allocations import blocks_kept

pytestmark = pytest.mark.slow

CALLS = 1_000_000


def limiter_admits() -> Callable[[], object]:
    return brace.RateLimiter(rate=1e9, burst=10**9).try_acquire


def limiter_refuses() -> Callable[[], object]:
    lim = brace.RateLimiter(rate=1e-3, burst=1)
    lim.try_acquire()
    return lim.try_acquire


def keyed_admits_str() -> Callable[[], object]:
    lim = brace.KeyedRateLimiter(rate=1e9, burst=10**9, max_keys=100)
    return lambda: lim.try_acquire("user:42")


def keyed_admits_int() -> Callable[[], object]:
    lim = brace.KeyedRateLimiter(rate=1e9, burst=10**9, max_keys=100)
    return lambda: lim.try_acquire(2**63 + 5)


def keyed_refuses() -> Callable[[], object]:
    lim = brace.KeyedRateLimiter(rate=1e-3, burst=1, max_keys=100)
    lim.try_acquire(b"key")
    return lambda: lim.try_acquire(b"key")


def keyed_batch() -> Callable[[], object]:
    """The batch returns a new array: it must be all it leaves (freed with it)."""
    import numpy as np

    lim = brace.KeyedRateLimiter(rate=1e9, burst=10**9, max_keys=100)
    keys = np.arange(4, dtype=np.int64)
    return lambda: lim.try_acquire_many(keys)


def breaker_guarded_call() -> Callable[[], object]:
    guarded = brace.CircuitBreaker(name="alloc")(abs)
    return lambda: guarded(-1)


def retry_decorated_call() -> Callable[[], object]:
    guarded = brace.retry(on=ConnectionError)(abs)
    return lambda: guarded(-1)


def policy_decorated_call() -> Callable[[], object]:
    policy = brace.Policy(
        retry=brace.Retry(on=ConnectionError), breaker=brace.CircuitBreaker(name="alloc"),
        limiter=brace.RateLimiter(rate=1e9, burst=10**9), bulkhead=brace.Bulkhead(max_concurrent=10),
    )  # fmt: skip
    guarded = policy(abs)
    return lambda: guarded(-1)


def policy_decorated_await() -> Callable[[], object]:
    """A Policy-decorated coroutine function's call, driven as `await` drives it: the
    coroutine and the proxy it returns are freed when the call ends."""
    policy = brace.Policy(
        retry=brace.Retry(on=ConnectionError), breaker=brace.CircuitBreaker(name="alloc"),
        limiter=brace.RateLimiter(rate=1e9, burst=10**9), bulkhead=brace.Bulkhead(max_concurrent=10),
    )  # fmt: skip

    async def negate(x: int) -> int:
        return -x

    guarded = policy(negate)

    def call() -> object:
        try:
            guarded(1).send(None)
        except StopIteration as stop:
            return stop.value
        raise AssertionError("the call did not end at once")

    return call


def recovery_decorated_call() -> Callable[[], object]:
    recovery = brace.Recovery(escalation=brace.EscalationPolicy(), dead_letters=brace.MemoryDeadLetters())
    guarded = recovery(abs)
    return lambda: guarded(-1)


def bulkhead_with() -> Callable[[], object]:
    bh = brace.Bulkhead(max_concurrent=10)

    def enter_and_exit() -> None:
        with bh:
            pass

    return enter_and_exit


def breaker_with() -> Callable[[], object]:
    cb = brace.CircuitBreaker(name="alloc-with")

    def enter_and_exit() -> None:
        with cb:
            pass

    return enter_and_exit


def breaker_call() -> Callable[[], object]:
    call = brace.CircuitBreaker(name="alloc-call").call
    return lambda: call(abs, -1)


def bulkhead_call() -> Callable[[], object]:
    call = brace.Bulkhead(max_concurrent=10).call
    return lambda: call(abs, -1)


def limiter_call() -> Callable[[], object]:
    call = brace.RateLimiter(rate=1e9, burst=10**9).call
    return lambda: call(abs, -1)


def limiter_decorated_call() -> Callable[[], object]:
    guarded = brace.RateLimiter(rate=1e9, burst=10**9)(abs)
    return lambda: guarded(-1)


def limiter_with() -> Callable[[], object]:
    limiter = brace.RateLimiter(rate=1e9, burst=10**9)

    def enter_and_exit() -> None:
        with limiter:
            pass

    return enter_and_exit


def async_with(make: Callable[[], Any]) -> Callable[[], Callable[[], object]]:
    """`async with` on a fresh guard, driven by hand: the compiled __aenter__ and
    __aexit__ return awaitables already done, so no event loop is needed."""

    def factory() -> Callable[[], object]:
        guard = make()

        async def block() -> None:
            async with guard:
                pass

        def run() -> None:
            coroutine = block()
            try:
                coroutine.send(None)
            except StopIteration:
                return
            raise AssertionError("the block waited")

        return run

    factory.__name__ = f"async_with_{make.__name__}"
    return factory


def new_breaker() -> brace.CircuitBreaker:
    return brace.CircuitBreaker(name="alloc-async-with")


def new_bulkhead() -> brace.Bulkhead:
    return brace.Bulkhead(max_concurrent=10)


def new_limiter() -> brace.RateLimiter:
    return brace.RateLimiter(rate=1e9, burst=10**9)


def bulkhead_try_acquire_and_release() -> Callable[[], object]:
    bh = brace.Bulkhead(max_concurrent=10)
    return lambda: bh.try_acquire() and bh.release()


def bulkhead_refuses() -> Callable[[], object]:
    bh = brace.Bulkhead(max_concurrent=1)
    bh.try_acquire()
    return bh.try_acquire


def bulkhead_decorated_call() -> Callable[[], object]:
    guarded = brace.Bulkhead(max_concurrent=10)(abs)
    return lambda: guarded(-1)


def client_throttle_admits_and_records() -> Callable[[], object]:
    throttle = brace.ClientThrottle(name="sre")
    return lambda: throttle.try_acquire() and throttle.record(True)


def adaptive_limiter_admits() -> Callable[[], object]:
    return brace.AdaptiveRateLimiter(name="aws").try_acquire


@pytest.mark.parametrize(
    "make",
    [client_throttle_admits_and_records, adaptive_limiter_admits, limiter_admits, limiter_refuses, keyed_admits_str, keyed_admits_int, keyed_refuses, keyed_batch,
     breaker_guarded_call, retry_decorated_call, policy_decorated_call,
     policy_decorated_await,
     recovery_decorated_call, bulkhead_with, breaker_with, breaker_call, bulkhead_call, limiter_call, limiter_decorated_call, limiter_with,
     async_with(new_breaker), async_with(new_bulkhead), async_with(new_limiter),
     bulkhead_try_acquire_and_release, bulkhead_refuses, bulkhead_decorated_call],  # fmt: skip
    ids=lambda make: make.__name__,
)
def test_a_million_calls_allocate_nothing(make: Callable[[], Callable[[], object]]) -> None:
    assert blocks_kept(make(), CALLS) <= 2
