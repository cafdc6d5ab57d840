"""A Policy-decorated coroutine function: the compiled proxy its calls return
(pyx/awaiting.h) behaves as the coroutine of an `async def` wrapper would."""

from __future__ import annotations

import asyncio
import gc
import inspect
import types
import warnings
from collections.abc import Awaitable, Callable, Generator
from typing import Any

import pytest

import brace
from brace import Backoff, Policy, _guarding
from brace._core import CALLABLE_ASYNC, CALLABLE_GUARDED
from brace.testing import FakeClock

NO_WAIT = Backoff.constant(delay=0.0)


def everything(**overrides: Any) -> dict[str, Any]:
    parts: dict[str, Any] = {
        "retry": brace.Retry(on=ConnectionError, attempts=3, backoff=NO_WAIT),
        "breaker": brace.CircuitBreaker(name="api", window_size=10, minimum_calls=10),
        "limiter": brace.RateLimiter(rate=1e9, burst=10**9, max_wait=0),
        "bulkhead": brace.Bulkhead(max_concurrent=2),
    }
    parts.update(overrides)
    return parts


def booked(parts: dict[str, Any]) -> tuple[int, int, int]:
    """(breaker calls, breaker failures, bulkhead slots in use)."""
    metrics = parts["breaker"].metrics()
    return metrics.calls, metrics.failures, parts["bulkhead"].in_use


class Pause:
    """An awaitable that suspends once, yielding itself, and returns what is sent back."""

    def __await__(self) -> Generator[Any, Any, Any]:
        return (yield self)


def test_a_decorated_coroutine_function_is_a_coroutine_function() -> None:
    policy = Policy(**everything())

    async def fetch(x: int) -> int:
        return x

    guarded = policy(fetch)
    assert inspect.iscoroutinefunction(guarded)
    assert asyncio.iscoroutinefunction(guarded)
    assert _guarding.is_async_callable(guarded)
    assert _guarding.kind(guarded, policy) == CALLABLE_GUARDED
    assert _guarding.kind(guarded, brace.CircuitBreaker(name="other")) == CALLABLE_ASYNC
    assert guarded.__name__ == "fetch" and inspect.signature(guarded) == inspect.signature(fetch)
    assert policy(guarded) is guarded
    with pytest.raises(_guarding.AsyncMisuse):
        policy.call(guarded, 1)


def test_a_decorated_coroutine_method_binds_and_stays_a_coroutine_function() -> None:
    policy = Policy(**everything())

    class Client:
        @policy
        async def get(self, x: int) -> tuple[Client, int]:
            return self, x

    client = Client()
    assert inspect.iscoroutinefunction(client.get)
    assert asyncio.run(client.get(2)) == (client, 2)


@pytest.mark.parametrize("form", ["sync", "async"])
def test_success_is_booked_once_and_everything_given_back(form: str) -> None:
    parts = everything()
    policy = Policy(**parts)

    def plain(x: int, *, scale: int) -> int:
        return x * scale

    async def coroutine(x: int, *, scale: int) -> int:
        await asyncio.sleep(0)
        return x * scale

    if form == "sync":
        assert policy(plain)(3, scale=2) == 6
    else:
        assert asyncio.run(policy(coroutine)(3, scale=2)) == 6
    assert booked(parts) == (1, 0, 0)


@pytest.mark.parametrize("form", ["sync", "async"])
def test_failures_are_retried_with_the_same_arguments(form: str) -> None:
    parts = everything()
    policy = Policy(**parts)
    seen: list[tuple[int, int]] = []

    def plain(x: int, *, y: int) -> str:
        seen.append((x, y))
        if len(seen) < 3:
            raise ConnectionError(f"failure {len(seen)}")
        return "ok"

    async def coroutine(x: int, *, y: int) -> str:
        await asyncio.sleep(0)
        return plain(x, y=y)

    if form == "sync":
        assert policy(plain)(1, y=2) == "ok"
    else:
        assert asyncio.run(policy(coroutine)(1, y=2)) == "ok"
    assert seen == [(1, 2)] * 3
    assert booked(parts) == (3, 2, 0)


def test_a_failure_that_ends_the_call_keeps_its_chain_as_a_python_wrapper_would() -> None:
    parts = everything(retry=brace.Retry(on=ConnectionError, attempts=2, backoff=NO_WAIT))
    attempts: list[ConnectionError] = []

    async def broken() -> None:
        attempts.append(ConnectionError(f"failure {len(attempts) + 1}"))
        raise attempts[-1]

    with pytest.raises(ConnectionError) as raised:
        asyncio.run(Policy(**parts)(broken)())
    assert raised.value is attempts[-1] and raised.value.__context__ is attempts[0]
    assert booked(parts) == (2, 2, 0)


def test_a_rejection_takes_the_python_path_and_runs_nothing() -> None:
    parts = everything(bulkhead=brace.Bulkhead(max_concurrent=1))
    calls = 0

    async def fetch() -> str:
        nonlocal calls
        calls += 1
        return "ok"

    guarded = Policy(**parts)(fetch)
    assert parts["bulkhead"].try_acquire()
    with pytest.raises(brace.BulkheadFull):
        asyncio.run(guarded())
    assert calls == 0 and parts["breaker"].metrics().calls == 0
    parts["bulkhead"].release()
    parts["breaker"].force_open()
    fallen_back = Policy(**parts, fallback=lambda error: type(error).__name__)(fetch)
    assert asyncio.run(fallen_back()) == "CircuitOpen"
    assert calls == 0 and parts["bulkhead"].in_use == 0


def test_cancellation_mid_await_reaches_fn_and_gives_the_slot_back() -> None:
    parts = everything()
    reached: list[type[BaseException]] = []

    async def hang() -> None:
        try:
            await asyncio.sleep(3600)
        except BaseException as error:
            reached.append(type(error))
            raise

    async def main() -> None:
        task = asyncio.create_task(Policy(**parts)(hang)())
        await asyncio.sleep(0)
        assert parts["bulkhead"].in_use == 1
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert reached == [asyncio.CancelledError]
    assert parts["bulkhead"].in_use == 0


def test_a_cancelled_half_open_probe_gives_its_permission_back(clock: FakeClock) -> None:
    breaker = brace.CircuitBreaker(name="probe", consecutive_failures=1, wait_in_open=1, half_open_calls=1)
    policy = Policy(breaker=breaker)
    with pytest.raises(ZeroDivisionError):
        breaker.call(lambda: 1 / 0)
    clock.advance(2)

    async def hang() -> None:
        await asyncio.sleep(3600)

    async def main() -> None:
        task = asyncio.create_task(policy(hang)())
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # The one probe's permission came back: another call may probe.
        assert await policy(asyncio.sleep)(0, "probe again") == "probe again"

    asyncio.run(main())


def test_send_throw_and_close_are_forwarded_to_fns_coroutine() -> None:
    parts = everything()
    heard: list[object] = []

    async def conversation() -> str:
        heard.append(await Pause())
        try:
            await Pause()
        except KeyError as error:
            heard.append(error.args[0])
        try:
            await Pause()
        finally:
            heard.append("closed")
        return "never"

    proxy: Any = Policy(**parts)(conversation)()
    assert isinstance(proxy.send(None), Pause) and parts["bulkhead"].in_use == 1
    assert isinstance(proxy.send("hello"), Pause)
    assert isinstance(proxy.throw(KeyError("thrown")), Pause)
    proxy.close()
    assert heard == ["hello", "thrown", "closed"]
    # Closed mid-await: the slot goes back; the breaker books no GeneratorExit (nor did it before).
    assert booked(parts) == (0, 0, 0)
    proxy.close()
    with pytest.raises(RuntimeError, match="cannot reuse already awaited coroutine"):
        proxy.send(None)


def test_a_throw_fn_handles_ends_in_a_booked_success() -> None:
    parts = everything()

    async def forgiving() -> str:
        try:
            await Pause()
        except KeyError:
            return "forgiven"
        return "not thrown"

    proxy: Any = Policy(**parts)(forgiving)()
    proxy.send(None)
    with pytest.raises(StopIteration) as stopped:
        proxy.throw(KeyError)
    assert stopped.value.value == "forgiven"
    assert booked(parts) == (1, 0, 0)


def test_throw_into_an_unstarted_call_runs_nothing() -> None:
    parts = everything()
    calls = 0

    async def fetch() -> None:
        nonlocal calls
        calls += 1

    proxy: Any = Policy(**parts)(fetch)()
    with pytest.raises(KeyError):
        proxy.throw(KeyError("early"))
    proxy.close()
    assert calls == 0 and booked(parts) == (0, 0, 0)


def test_a_call_never_awaited_warns_and_takes_nothing() -> None:
    parts = everything()

    async def fetch() -> None:
        raise AssertionError("never runs")

    proxy = Policy(**parts)(fetch)()
    with pytest.warns(RuntimeWarning, match="coroutine '.*fetch' was never awaited"):
        del proxy
        gc.collect()
    assert booked(parts) == (0, 0, 0)


def test_a_call_dropped_mid_await_gives_its_slot_back() -> None:
    parts = everything()

    async def fetch() -> None:
        await Pause()

    proxy: Any = Policy(**parts)(fetch)()
    proxy.send(None)
    assert parts["bulkhead"].in_use == 1
    del proxy
    gc.collect()
    assert booked(parts) == (0, 0, 0)


def test_gather_and_create_task_take_the_calls_as_coroutines() -> None:
    parts = everything(bulkhead=brace.Bulkhead(max_concurrent=100))
    guarded = Policy(**parts)(asyncio.sleep)

    async def main() -> list[int]:
        proxy = guarded(0, -1)
        assert asyncio.iscoroutine(proxy) and not isinstance(proxy, types.CoroutineType)
        first = await asyncio.create_task(proxy)
        return [first, *await asyncio.gather(*(guarded(0, n) for n in range(100)))]

    assert asyncio.run(main()) == [-1, *range(100)]
    assert booked(parts) == (10, 0, 0)  # the breaker's window holds the last 10


def test_a_plain_function_returning_an_awaitable_is_still_adopted() -> None:
    parts = everything()

    def deferred(x: int) -> Awaitable[int]:
        async def later() -> int:
            return x

        return later()

    guarded: Callable[[int], Any] = Policy(**parts)(deferred)
    assert not inspect.iscoroutinefunction(guarded)
    assert asyncio.run(guarded(5)) == 5
    assert booked(parts) == (1, 0, 0)


def test_a_fn_that_raises_before_its_coroutine_exists_is_a_failure() -> None:
    parts = everything()

    async def fetch(x: int) -> int:
        return x

    with pytest.raises(TypeError):
        asyncio.run(Policy(**parts)(fetch)())  # type: ignore[call-arg]
    assert booked(parts) == (1, 1, 0)


def test_warnings_stay_quiet_for_awaited_calls() -> None:
    async def fetch() -> str:
        return "ok"

    guarded = Policy(**everything())(fetch)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert asyncio.run(guarded()) == "ok"
        gc.collect()


def test_a_call_that_sends_into_itself_is_refused_as_a_coroutine_would_be() -> None:
    parts = everything()
    calls: list[Any] = []

    async def reentrant() -> str:
        with pytest.raises(ValueError, match="already executing"):
            calls[0].send(None)
        return "ok"

    calls.append(Policy(**parts)(reentrant)())
    assert asyncio.run(calls[0]) == "ok"
    assert booked(parts) == (1, 0, 0)


def test_cancellation_during_a_retry_wait_propagates_and_books_the_attempts() -> None:
    parts = everything(retry=brace.Retry(on=ConnectionError, attempts=3, backoff=Backoff.constant(delay=3600.0)))

    async def broken() -> None:
        raise ConnectionError("down")

    guarded = Policy(**parts)(broken)
    contexts: list[BaseException | None] = []

    async def caller() -> None:
        try:
            await guarded()
        except asyncio.CancelledError as error:
            contexts.append(error.__context__)
            raise

    async def main() -> None:
        task = asyncio.create_task(caller())
        for _ in range(5):
            await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # Thrown in while the first failure was being handled, as in a Python wrapper.
        assert [type(context) for context in contexts] == [ConnectionError]

    asyncio.run(main())
    assert booked(parts) == (1, 1, 0)
