"""`with cb:` is compiled (pyx/breaker.pxi, pyx/scopes.c): each block's __exit__
gets the permission and start time of its own __enter__, whatever threads and
asyncio tasks share the breaker and however their blocks interleave."""

from __future__ import annotations

import asyncio
import threading

import pytest

import brace
from brace.testing import fake_clock


def test_interleaved_tasks_each_record_their_own_block() -> None:
    # A fails slowly, B succeeds quickly; their blocks overlap and A's closes
    # first. Paired with each other's start, A's failure would look quick.
    breaker = brace.CircuitBreaker(name="interleaved", slow_call_duration=5.0)

    async def main() -> None:
        a_inside, b_inside, a_done = asyncio.Event(), asyncio.Event(), asyncio.Event()

        async def a() -> None:
            with pytest.raises(ValueError):
                async with breaker:
                    a_inside.set()
                    await b_inside.wait()
                    clock.advance(1.0)
                    raise ValueError("slow failure")
            a_done.set()

        async def b() -> None:
            await a_inside.wait()
            clock.advance(10.0)
            async with breaker:
                b_inside.set()
                await a_done.wait()
                clock.advance(1.0)

        await asyncio.gather(a(), b())

    with fake_clock(autojump=None) as clock:
        asyncio.run(main())
    metrics = breaker.metrics()
    assert (metrics.calls, metrics.failures, metrics.slow_calls, metrics.slow_failures) == (2, 1, 1, 1)


def test_threads_keep_their_blocks_apart() -> None:
    # Half the calls fail, below the threshold of 1.0: it stays closed.
    breaker = brace.CircuitBreaker(name="threads-with", failure_rate_threshold=1.0, window_size=800,
                                   minimum_calls=800)  # fmt: skip
    barrier = threading.Barrier(4, timeout=10)
    errors: list[BaseException] = []

    def work(fail: bool) -> None:
        try:
            for _ in range(200):
                try:
                    with breaker:
                        barrier.wait()
                        if fail:
                            raise KeyError("x")
                except KeyError:
                    pass
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(i % 2 == 0,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    metrics = breaker.metrics()
    assert (metrics.calls, metrics.failures) == (800, 400)


def test_nested_blocks_of_one_breaker_close_in_order() -> None:
    breaker = brace.CircuitBreaker(name="nested", slow_call_duration=5.0)
    with fake_clock(autojump=None) as clock:
        with breaker:
            clock.advance(10.0)
            with breaker:
                clock.advance(1.0)
    metrics = breaker.metrics()
    assert (metrics.calls, metrics.slow_calls) == (2, 1)


def test_exit_without_enter_is_refused() -> None:
    breaker = brace.CircuitBreaker(name="no-enter")
    with pytest.raises(RuntimeError, match="without its __enter__"):
        breaker.__exit__(None, None, None)


def test_a_rejected_block_raises_with_its_facts_and_tells_listeners() -> None:
    breaker = brace.CircuitBreaker(name="rejects")
    events: list[brace.BreakerEvent] = []
    breaker.add_listener(events.append, kinds=["not_permitted"])
    breaker.force_open()
    with pytest.raises(brace.CircuitOpen) as info:
        with breaker:
            pytest.fail("a rejected block must not run")
    assert info.value.name == "rejects"
    assert [event.kind for event in events] == ["not_permitted"]
