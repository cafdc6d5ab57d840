"""Bulkhead behaviour: the cap, FIFO waiting, no lost slot, wrappers, configuration.

Waits that must end by a handoff use a max_wait far longer than any test, so
no assertion depends on how fast the machine is; `eventually` only guards
against a hang.
"""

from __future__ import annotations

import asyncio
import inspect
import math
import pickle
import re
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

import pytest
from hypothesis import given
from hypothesis import strategies as st

import brace
from brace.bulkhead import _ThreadWaiter
from brace.testing import FakeClock

T = TypeVar("T")

LONG = 60.0  # a max_wait no test reaches: these waits end by a handoff
WAYS = ["with", "call", "decorator", "async with", "call_async", "async decorator"]


def eventually(predicate: Callable[[], bool]) -> None:
    """Waits until other threads make predicate true (a guard against hangs, not a timing)."""
    deadline = time.monotonic() + LONG
    while not predicate():
        assert time.monotonic() < deadline, "the condition never came true"
        time.sleep(0.0005)


async def eventually_async(predicate: Callable[[], bool]) -> None:
    deadline = time.monotonic() + LONG
    while not predicate():
        assert time.monotonic() < deadline, "the condition never came true"
        await asyncio.sleep(0.0005)


def use(bh: brace.Bulkhead, way: str, body: Callable[[], T]) -> T:
    """Runs body in a slot of bh, taken the given way."""
    if way == "with":
        with bh:
            return body()
    if way == "call":
        return bh.call(body)
    if way == "decorator":
        return bh(body)()

    async def body_async() -> T:
        return body()

    async def run() -> T:
        if way == "async with":
            async with bh:
                return body()
        if way == "call_async":
            return await bh.call_async(body_async)
        return await bh(body_async)()

    return asyncio.run(run())


def assert_fully_usable(bh: brace.Bulkhead) -> None:
    """Every slot is free, nobody waits, and exactly max_concurrent can be taken."""
    assert (bh.in_use, bh.waiting, bh.available) == (0, 0, bh.max_concurrent)
    taken = [bh.try_acquire() for _ in range(bh.max_concurrent + 1)]
    assert taken == [True] * bh.max_concurrent + [False]
    for _ in range(bh.max_concurrent):
        bh.release()
    assert bh.in_use == 0


class TestCap:
    @pytest.mark.parametrize("way", WAYS)
    def test_a_call_holds_a_slot_while_it_runs(self, way: str) -> None:
        bh = brace.Bulkhead(max_concurrent=2)
        assert use(bh, way, lambda: (bh.in_use, bh.available)) == (1, 1)
        assert bh.in_use == 0

    def test_threads_never_exceed_max_concurrent(self) -> None:
        bh = brace.Bulkhead(max_concurrent=3, max_wait=LONG)
        lock = threading.Lock()
        inside, peak = 0, 0

        def work() -> None:
            nonlocal inside, peak
            for _ in range(20):
                with bh:
                    with lock:
                        inside += 1
                        peak = max(peak, inside)
                    time.sleep(0.0005)  # hold the slot, so that the others queue
                    with lock:
                        inside -= 1

        threads = [threading.Thread(target=work) for _ in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert peak == 3
        assert_fully_usable(bh)

    def test_tasks_never_exceed_max_concurrent(self) -> None:
        bh = brace.Bulkhead(max_concurrent=3, max_wait=LONG)
        inside, peak = 0, 0

        async def work() -> None:
            nonlocal inside, peak
            for _ in range(10):
                async with bh:
                    inside += 1
                    peak = max(peak, inside)
                    await asyncio.sleep(0)
                    await asyncio.sleep(0)
                    inside -= 1

        async def scenario() -> None:
            await asyncio.gather(*(work() for _ in range(30)))

        asyncio.run(scenario())
        assert peak == 3
        assert_fully_usable(bh)

    def test_threads_and_tasks_share_the_slots(self) -> None:
        bh = brace.Bulkhead(max_concurrent=2, max_wait=LONG)
        lock = threading.Lock()
        inside, peak, done = 0, 0, 0

        def enter() -> None:
            nonlocal inside, peak
            with lock:
                inside += 1
                peak = max(peak, inside)

        def leave() -> None:
            nonlocal inside, done
            with lock:
                inside -= 1
                done += 1

        def thread_work() -> None:
            for _ in range(50):
                with bh:
                    enter()
                    time.sleep(0.0002)
                    leave()

        async def task_work() -> None:
            for _ in range(50):
                async with bh:
                    enter()
                    await asyncio.sleep(0.0002)
                    leave()

        async def scenario() -> None:
            threads = [threading.Thread(target=thread_work) for _ in range(4)]
            for thread in threads:
                thread.start()
            await asyncio.gather(*(task_work() for _ in range(4)))
            await eventually_async(lambda: not any(t.is_alive() for t in threads))

        asyncio.run(scenario())
        assert (peak, done) == (2, 400)
        assert_fully_usable(bh)


class TestFull:
    @pytest.mark.parametrize("way", WAYS)
    def test_max_wait_zero_fails_at_once_with_the_facts(self, way: str) -> None:
        bh = brace.Bulkhead(max_concurrent=2, name="db")
        assert bh.try_acquire() and bh.try_acquire()
        ran = []
        with pytest.raises(brace.BulkheadFull) as info:
            use(bh, way, lambda: ran.append(1))
        assert ran == []
        error = info.value
        assert (error.name, error.max_concurrent, error.max_wait) == ("db", 2, 0.0)
        assert str(error) == "bulkhead 'db' is full (2 concurrent calls); waited 0 s"
        assert isinstance(error, brace.BraceError)
        assert (bh.in_use, bh.waiting) == (2, 0)
        bh.release()
        bh.release()
        assert_fully_usable(bh)

    @pytest.mark.parametrize("way", WAYS)
    def test_raises_after_waiting_max_wait(self, way: str) -> None:
        bh = brace.Bulkhead(max_concurrent=1, max_wait=timedelta(milliseconds=20))
        bh.try_acquire()
        with pytest.raises(brace.BulkheadFull) as info:
            use(bh, way, lambda: None)
        assert info.value.max_wait == 0.02
        assert "waited 0.02 s" in str(info.value)
        assert (bh.in_use, bh.waiting) == (1, 0)  # the waiter left the queue
        bh.release()
        assert_fully_usable(bh)

    @pytest.mark.parametrize("way", ["with", "async with"])
    def test_an_idle_wait_under_a_fake_clock_jumps_to_its_end_instead_of_waiting(self, way: str) -> None:
        # max_wait is an hour: only the fake clock's jump can end this test.
        with brace.testing.fake_clock() as clock:
            bh = brace.Bulkhead(max_concurrent=1, max_wait=3600.0)
            bh.try_acquire()
            start = clock.now_ns()
            with pytest.raises(brace.BulkheadFull):
                use(bh, way, lambda: None)
            assert clock.now_ns() - start == 3600 * 10**9
            bh.release()

    def test_a_wait_under_a_fake_clock_ends_when_the_clock_passes_its_deadline(self) -> None:
        with brace.testing.fake_clock(autojump=None) as clock:
            bh = brace.Bulkhead(max_concurrent=1, max_wait=30.0)
            bh.try_acquire()
            outcome: list[BaseException] = []
            def wait_in_line() -> None:
                try:
                    use(bh, "with", lambda: None)
                except brace.BulkheadFull as error:
                    outcome.append(error)

            waiter = threading.Thread(target=wait_in_line)
            waiter.start()
            eventually(lambda: bh.waiting == 1)
            clock.advance(29.0)
            waiter.join(0.05)
            assert waiter.is_alive()  # 29 s of the 30 have passed
            clock.advance(1.0)
            waiter.join(LONG)
            assert isinstance(outcome[0], brace.BulkheadFull)
            bh.release()
            assert_fully_usable(bh)

    def test_a_wait_stops_at_an_enclosing_deadline(self, clock: FakeClock) -> None:
        bh = brace.Bulkhead(max_concurrent=1, max_wait=60.0)
        bh.try_acquire()
        start = clock.now_ns()
        with brace.deadline(2.0), pytest.raises(brace.BulkheadFull):
            use(bh, "with", lambda: None)
        assert clock.now_ns() - start == 2 * 10**9
        bh.release()

    def test_bulkhead_full_pickles_with_its_facts(self) -> None:
        error = brace.BulkheadFull(name="db", max_concurrent=4, max_wait=0.5)
        copy = pickle.loads(pickle.dumps(error))
        assert (copy.name, copy.max_concurrent, copy.max_wait) == ("db", 4, 0.5)
        assert str(copy) == str(error)


class TestFifo:
    def test_threads_are_served_in_arrival_order(self) -> None:
        bh = brace.Bulkhead(max_concurrent=1, max_wait=LONG)
        bh.try_acquire()
        order: list[int] = []

        def wait_turn(i: int) -> None:
            with bh:
                order.append(i)

        threads = []
        for i in range(6):
            threads.append(threading.Thread(target=wait_turn, args=(i,)))
            threads[-1].start()
            eventually(lambda: bh.waiting == i + 1)
        bh.release()
        for thread in threads:
            thread.join()
        assert order == list(range(6))
        assert_fully_usable(bh)

    def test_tasks_are_served_in_arrival_order(self) -> None:
        bh = brace.Bulkhead(max_concurrent=1, max_wait=LONG)
        order: list[int] = []

        async def wait_turn(i: int) -> None:
            async with bh:
                order.append(i)
                await asyncio.sleep(0)

        async def scenario() -> None:
            bh.try_acquire()
            tasks = []
            for i in range(6):
                tasks.append(asyncio.ensure_future(wait_turn(i)))
                await asyncio.sleep(0)
                assert bh.waiting == i + 1
            bh.release()
            await asyncio.gather(*tasks)

        asyncio.run(scenario())
        assert order == list(range(6))
        assert_fully_usable(bh)

    def test_threads_and_tasks_share_one_queue(self) -> None:
        bh = brace.Bulkhead(max_concurrent=1, max_wait=LONG)
        order: list[str] = []

        def thread_turn(label: str) -> None:
            with bh:
                order.append(label)

        async def task_turn(label: str) -> None:
            async with bh:
                order.append(label)

        async def scenario() -> None:
            bh.try_acquire()
            threads, tasks = [], []
            for i in range(6):
                label = f"{'thread' if i % 2 == 0 else 'task'} {i}"
                if i % 2 == 0:
                    threads.append(threading.Thread(target=thread_turn, args=(label,)))
                    threads[-1].start()
                else:
                    tasks.append(asyncio.ensure_future(task_turn(label)))
                await eventually_async(lambda: bh.waiting == i + 1)
            bh.release()
            await asyncio.gather(*tasks)
            await eventually_async(lambda: not any(t.is_alive() for t in threads))

        asyncio.run(scenario())
        assert order == [f"{'thread' if i % 2 == 0 else 'task'} {i}" for i in range(6)]
        assert_fully_usable(bh)

    def test_a_newcomer_cannot_take_a_slot_handed_to_a_waiter(self) -> None:
        bh = brace.Bulkhead(max_concurrent=1, max_wait=LONG)

        async def scenario() -> list[str]:
            events = []

            async def waiter() -> None:
                async with bh:
                    events.append("waiter")

            bh.try_acquire()
            task = asyncio.ensure_future(waiter())
            await asyncio.sleep(0)
            bh.release()  # handed to the waiter, which has not run yet
            assert bh.in_use == 1
            assert not bh.try_acquire()
            events.append("newcomer refused")
            await task
            return events

        assert asyncio.run(scenario()) == ["newcomer refused", "waiter"]
        assert_fully_usable(bh)


class TestNoSlotIsLost:
    @pytest.mark.parametrize("way", WAYS)
    def test_an_exception_in_the_call(self, way: str) -> None:
        bh = brace.Bulkhead(max_concurrent=2)

        def boom() -> None:
            raise KeyError("x")

        with pytest.raises(KeyError):
            use(bh, way, boom)
        assert_fully_usable(bh)

    def test_a_cancelled_waiter_leaves_the_queue(self) -> None:
        bh = brace.Bulkhead(max_concurrent=1, max_wait=LONG)

        async def scenario() -> None:
            bh.try_acquire()
            task = asyncio.ensure_future(bh.__aenter__())
            await asyncio.sleep(0)
            assert bh.waiting == 1
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert (bh.waiting, bh.in_use) == (0, 1)
            bh.release()

        asyncio.run(scenario())
        assert_fully_usable(bh)  # the waiters flag went with the last waiter

    def test_a_task_cancelled_as_the_slot_is_handed_to_it_frees_it(self) -> None:
        bh = brace.Bulkhead(max_concurrent=1, max_wait=LONG)
        ran = []

        async def scenario() -> None:
            async def waiter() -> None:
                async with bh:
                    ran.append(1)  # pragma: no cover

            bh.try_acquire()
            task = asyncio.ensure_future(waiter())
            await asyncio.sleep(0)
            bh.release()  # the slot is handed to the waiting task...
            task.cancel()  # ...which is cancelled before it can run
            with pytest.raises(asyncio.CancelledError):
                await task

        asyncio.run(scenario())
        assert ran == []
        assert_fully_usable(bh)

    def test_a_task_cancelled_as_the_slot_is_handed_to_it_passes_it_on(self) -> None:
        bh = brace.Bulkhead(max_concurrent=1, max_wait=LONG)
        ran = []

        async def scenario() -> None:
            async def waiter(label: str) -> None:
                async with bh:
                    ran.append(label)

            bh.try_acquire()
            first = asyncio.ensure_future(waiter("first"))
            await asyncio.sleep(0)
            second = asyncio.ensure_future(waiter("second"))
            await asyncio.sleep(0)
            bh.release()
            first.cancel()
            with pytest.raises(asyncio.CancelledError):
                await first
            await second

        asyncio.run(scenario())
        assert ran == ["second"]
        assert_fully_usable(bh)

    def test_a_slot_handed_to_a_task_as_its_wait_runs_out_is_used(self) -> None:
        bh = brace.Bulkhead(max_concurrent=1, max_wait=LONG)
        ran = []

        async def scenario() -> None:
            async def waiter() -> None:
                async with bh:
                    ran.append(bh.in_use)

            bh.try_acquire()
            task = asyncio.ensure_future(waiter())
            await asyncio.sleep(0)
            (queued,) = bh._queue
            assert not isinstance(queued, _ThreadWaiter)
            queued.future.set_result(None)  # what the max_wait timer does...
            bh.release()  # ...as the slot is handed over
            await task

        asyncio.run(scenario())
        assert ran == [1]
        assert_fully_usable(bh)

    def test_a_slot_handed_to_a_thread_as_its_wait_runs_out_is_used(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        bh = brace.Bulkhead(max_concurrent=1, max_wait=LONG)
        bh.try_acquire()

        def times_out_as_the_slot_comes(waiter: _ThreadWaiter, deadline_ns: int) -> bool:
            bh.release()  # the holder hands its slot to this waiter...
            return False  # ...just as its wait runs out

        monkeypatch.setattr(_ThreadWaiter, "park", times_out_as_the_slot_comes)
        with bh:
            assert (bh.in_use, bh.waiting) == (1, 0)
        assert_fully_usable(bh)

    @pytest.mark.parametrize("handed_over", [False, True])
    def test_an_interrupted_thread_wait(self, monkeypatch: pytest.MonkeyPatch, handed_over: bool) -> None:
        bh = brace.Bulkhead(max_concurrent=1, max_wait=LONG)
        bh.try_acquire()

        def interrupted(waiter: _ThreadWaiter, deadline_ns: int) -> bool:
            if handed_over:
                bh.release()
            raise KeyboardInterrupt

        monkeypatch.setattr(_ThreadWaiter, "park", interrupted)
        with pytest.raises(KeyboardInterrupt):
            with bh:
                pass  # pragma: no cover
        monkeypatch.undo()
        if not handed_over:
            assert (bh.in_use, bh.waiting) == (1, 0)
            bh.release()
        assert_fully_usable(bh)

    def test_a_waiter_whose_loop_is_closed_is_skipped(self) -> None:
        bh = brace.Bulkhead(max_concurrent=1, max_wait=LONG)
        bh.try_acquire()
        loop = asyncio.new_event_loop()
        stranded = loop.create_task(bh.__aenter__())
        loop.run_until_complete(asyncio.sleep(0))
        assert bh.waiting == 1
        stranded._log_destroy_pending = False  # type: ignore[attr-defined]
        loop.close()  # without running the waiting task to its end
        bh.release()  # the handoff to the stranded task fails: the slot is freed
        assert_fully_usable(bh)
        stranded.get_coro().close()  # as garbage collection would: it holds no slot
        assert_fully_usable(bh)

    def test_many_threads_and_timeouts_leave_nothing_behind(self) -> None:
        bh = brace.Bulkhead(max_concurrent=2, max_wait=0.0005)
        outcomes = {"served": 0, "full": 0}
        lock = threading.Lock()

        def work() -> None:
            for _ in range(100):
                try:
                    with bh:
                        time.sleep(0.0002)
                    key = "served"
                except brace.BulkheadFull:
                    key = "full"
                with lock:
                    outcomes[key] += 1

        threads = [threading.Thread(target=work) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert outcomes["served"] + outcomes["full"] == 800
        assert outcomes["served"] >= 2
        assert_fully_usable(bh)


class TestDecorator:
    def test_keeps_the_signature_and_metadata(self) -> None:
        bh = brace.Bulkhead(max_concurrent=1)

        def fetch(key: str, *, page: int = 1) -> str:
            """Fetches a page."""
            return f"{key}:{page}"

        wrapped = bh(fetch)
        assert inspect.signature(wrapped) == inspect.signature(fetch)
        assert (wrapped.__name__, wrapped.__doc__, wrapped.__wrapped__) == (  # type: ignore[attr-defined]
            "fetch",
            "Fetches a page.",
            fetch,
        )
        assert not inspect.iscoroutinefunction(wrapped)
        assert wrapped("a", page=2) == "a:2"

    def test_coroutine_functions_stay_coroutine_functions(self) -> None:
        bh = brace.Bulkhead(max_concurrent=1)

        @bh
        async def fetch(key: str) -> tuple[str, int]:
            await asyncio.sleep(0)
            return key, bh.in_use

        assert inspect.iscoroutinefunction(fetch)
        assert fetch.__name__ == "fetch"
        assert asyncio.run(fetch("a")) == ("a", 1)
        assert bh.in_use == 0

    def test_call_passes_arguments_through(self) -> None:
        bh = brace.Bulkhead(max_concurrent=1)

        def f(*args: Any, **kwargs: Any) -> tuple[Any, ...]:
            return args, kwargs

        async def g(*args: Any, **kwargs: Any) -> tuple[Any, ...]:
            return args, kwargs

        assert bh.call(f, 1, 2, fn=3) == ((1, 2), {"fn": 3})
        assert asyncio.run(bh.call_async(g, 1, fn=3)) == ((1,), {"fn": 3})


class TestReconfigure:
    def test_growing_serves_the_waiters_first_in_order(self) -> None:
        bh = brace.Bulkhead(max_concurrent=1, max_wait=LONG)
        order: list[int] = []

        async def scenario() -> None:
            release = asyncio.Event()

            async def waiter(i: int) -> None:
                async with bh:
                    order.append(i)
                    await release.wait()

            bh.try_acquire()
            tasks = []
            for i in range(3):
                tasks.append(asyncio.ensure_future(waiter(i)))
                await asyncio.sleep(0)
            bh.reconfigure(max_concurrent=3)  # two new slots: waiters 0 and 1
            assert (bh.in_use, bh.waiting, bh.max_concurrent) == (3, 1, 3)
            assert not bh.try_acquire()
            await eventually_async(lambda: len(order) == 2)
            bh.release()  # the first slot: waiter 2
            await eventually_async(lambda: len(order) == 3)
            release.set()
            await asyncio.gather(*tasks)

        asyncio.run(scenario())
        assert order == [0, 1, 2]
        assert_fully_usable(bh)

    def test_shrinking_retires_slots_as_calls_finish(self) -> None:
        bh = brace.Bulkhead(max_concurrent=3)
        assert all(bh.try_acquire() for _ in range(3))
        bh.reconfigure(max_concurrent=1)
        assert (bh.in_use, bh.available, bh.max_concurrent) == (3, 0, 1)
        bh.release()
        assert not bh.try_acquire()
        bh.release()
        assert not bh.try_acquire()
        bh.release()
        assert_fully_usable(bh)

    def test_shrinking_with_waiters_retires_before_handing_off(self) -> None:
        bh = brace.Bulkhead(max_concurrent=2, max_wait=LONG)
        served = []

        async def scenario() -> None:
            async def waiter() -> None:
                async with bh:
                    served.append(bh.in_use)

            bh.try_acquire()
            bh.try_acquire()
            task = asyncio.ensure_future(waiter())
            await asyncio.sleep(0)
            bh.reconfigure(max_concurrent=1)
            bh.release()  # 2 in use > 1: retired, not handed off
            assert (bh.in_use, bh.waiting) == (1, 1)
            bh.release()  # now the waiter's turn
            await task

        asyncio.run(scenario())
        assert served == [1]
        assert_fully_usable(bh)

    def test_max_wait(self) -> None:
        bh = brace.Bulkhead(max_concurrent=1)
        bh.reconfigure(max_wait=timedelta(seconds=2))
        assert (bh.max_wait, bh.max_concurrent) == (2.0, 1)
        bh.reconfigure(max_concurrent=2)  # max_wait left out: kept
        assert bh.max_wait == 2.0
        bh.reconfigure(max_wait=None)  # None: as long as it takes, as in the constructor
        assert bh.max_wait is None

    def test_bad_values_change_nothing(self) -> None:
        bh = brace.Bulkhead(max_concurrent=3, max_wait=1.0)
        for bad in ({"max_concurrent": 0}, {"max_concurrent": 2**31}, {"max_wait": -1}):
            with pytest.raises(ValueError):
                bh.reconfigure(**bad)  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            bh.reconfigure(max_concurrent=2.0)  # type: ignore[arg-type]
        assert (bh.max_concurrent, bh.max_wait, bh.available) == (3, 1.0, 3)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"max_concurrent": 0}, ValueError, "max_concurrent must be an int from 1 to 2**31 - 1, got 0"),
        ({"max_concurrent": -2}, ValueError, "max_concurrent must be an int from 1 to 2**31 - 1, got -2"),
        ({"max_concurrent": 2**31}, ValueError, "max_concurrent must be an int from 1 to 2**31 - 1, got 2147483648"),
        ({"max_concurrent": 2.0}, TypeError, "max_concurrent must be an int from 1 to 2**31 - 1, got float"),
        ({"max_concurrent": True}, TypeError, "max_concurrent must be an int from 1 to 2**31 - 1, got bool"),
        ({"max_concurrent": "4"}, TypeError, "max_concurrent must be an int from 1 to 2**31 - 1, got str"),
        ({"max_concurrent": None}, TypeError, "max_concurrent must be an int from 1 to 2**31 - 1, got NoneType"),
        ({"max_wait": -0.1}, ValueError, "max_wait must be 0 or a finite number of seconds from 1e-09 to 4.61169e+09, or None, got -0.1"),
        ({"max_wait": math.nan}, ValueError, "max_wait must be 0 or a finite number of seconds from 1e-09 to 4.61169e+09, or None, got nan"),
        ({"max_wait": math.inf}, ValueError, "max_wait must be 0 or a finite number of seconds from 1e-09 to 4.61169e+09, or None, got inf"),
        ({"max_wait": timedelta(seconds=-1)}, ValueError, "max_wait must be 0 or a finite number of seconds from 1e-09 to 4.61169e+09"),
        ({"max_wait": 1e300}, ValueError, "max_wait must be 0 or a finite number of seconds from 1e-09 to 4.61169e+09, or None, got 1e+300"),
        ({"max_wait": "1s"}, TypeError, "max_wait must be seconds (float), a timedelta or None, got str"),
        ({"max_wait": True}, TypeError, "max_wait must be seconds (float), a timedelta or None, got bool"),
        ({"name": 3}, TypeError, "name must be a str or None, got int"),
    ],
)
def test_bad_configuration(kwargs: dict[str, Any], error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=f"^{re.escape(message)}"):
        brace.Bulkhead(**{"max_concurrent": 1, **kwargs})


def test_configuration_is_keyword_only_and_max_concurrent_required() -> None:
    with pytest.raises(TypeError):
        brace.Bulkhead(4)  # type: ignore[misc]
    with pytest.raises(TypeError):
        brace.Bulkhead()  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("max_concurrent", "max_wait", "seconds"),
    [(1, 0, 0.0), (2**31 - 1, 1, 1.0), (5, timedelta(milliseconds=250), 0.25), (5, 0.5, 0.5)],
)
def test_accepted_configuration(max_concurrent: int, max_wait: float | timedelta, seconds: float) -> None:
    bh = brace.Bulkhead(max_concurrent=max_concurrent, max_wait=max_wait)
    assert (bh.max_concurrent, bh.max_wait, bh.available) == (max_concurrent, seconds, max_concurrent)


def test_release_without_a_slot_is_an_error() -> None:
    bh = brace.Bulkhead(max_concurrent=1)
    with pytest.raises(ValueError, match="^release\\(\\) without a permit in use"):
        bh.release()
    assert_fully_usable(bh)


def test_repr_and_properties() -> None:
    bh = brace.Bulkhead(max_concurrent=4, max_wait=0.5, name="db")
    bh.try_acquire()
    assert repr(bh) == "Bulkhead(name='db', max_concurrent=4, max_wait=0.5, in_use=1, waiting=0)"
    assert (bh.name, bh.max_concurrent, bh.max_wait, bh.in_use, bh.available, bh.waiting) == (
        "db", 4, 0.5, 1, 3, 0,
    )
    assert repr(brace.Bulkhead(max_concurrent=1)) == (
        "Bulkhead(max_concurrent=1, max_wait=0.0, in_use=0, waiting=0)"
    )


@given(st.lists(st.tuples(st.sampled_from(["acquire", "release", "resize"]), st.integers(1, 4))))
def test_fast_paths_match_a_counter_model(steps: list[tuple[str, int]]) -> None:
    """With nobody waiting, the bulkhead is a counter that admits while in_use < max."""
    bh = brace.Bulkhead(max_concurrent=2)
    in_use, max_concurrent = 0, 2
    for step, size in steps:
        if step == "acquire":
            admitted = in_use < max_concurrent
            assert bh.try_acquire() == admitted
            in_use += admitted
        elif step == "release" and in_use:
            bh.release()
            in_use -= 1
        elif step == "resize":
            bh.reconfigure(max_concurrent=size)
            max_concurrent = size
        assert (bh.in_use, bh.available) == (in_use, max(0, max_concurrent - in_use))


class TestMaxWaitNone:
    """max_wait=None: a call waits as long as it takes, as on the limiter; only a deadline ends it."""

    @pytest.mark.parametrize("way", WAYS)
    def test_a_call_waits_until_a_slot_frees(self, way: str) -> None:
        bh = brace.Bulkhead(max_concurrent=1, max_wait=None)
        assert bh.try_acquire()
        queued = threading.Event()
        ran: list[str] = []

        def release_once_queued() -> None:
            for _ in range(60_000):  # up to a minute: a guard against a hang, not a measure
                if bh.waiting:
                    break
                time.sleep(0.001)
            queued.set()
            bh.release()

        releaser = threading.Thread(target=release_once_queued)
        releaser.start()
        use(bh, way, lambda: ran.append("ran"))
        releaser.join(timeout=60)
        assert queued.is_set() and ran == ["ran"]
        assert_fully_usable(bh)

    @pytest.mark.parametrize("way", ["with", "async with"])
    def test_a_deadline_ends_the_wait_with_the_facts(self, way: str) -> None:
        with brace.testing.fake_clock():
            bh = brace.Bulkhead(name="pool", max_concurrent=1, max_wait=None)
            bh.try_acquire()
            with brace.deadline(5.0), pytest.raises(brace.BulkheadFull) as info:
                use(bh, way, lambda: None)
        assert info.value.max_wait is None
        assert str(info.value) == "bulkhead 'pool' is full (1 concurrent calls); waited until the call's deadline"
        assert (bh.in_use, bh.waiting) == (1, 0)
