"""Bulkhead with store="shm://REGION": one set of permits for many processes.

Processes with threads, through every way in (with, call, the decorator, a
Policy, try_acquire/release, a wait that polls), never hold more than
max_concurrent permits at once: each holder counts itself in and out of a
shared counter and records the most it saw. A process killed with SIGKILL
while it holds permits loses them to the next process that needs them. Then
the configuration checks, reopening, and what a shared bulkhead refuses.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import signal
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

import brace
from brace.errors import BulkheadFull

from processes import run_all

MAX = 3
PROCESSES = 3
THREADS = 3
ROUNDS = 150
WAYS = ("with", "call", "decorated", "policy", "manual", "waiting")


@pytest.fixture
def region() -> Iterator[str]:
    name = f"brace-test-{os.getpid()}-{uuid.uuid4().hex[:12]}"
    yield name
    brace.shm.unlink(name)


def _shared(region: str, **config: Any) -> brace.Bulkhead:
    return brace.Bulkhead(**{"max_concurrent": MAX, "name": "db", "store": f"shm://{region}", **config})


def _hold(inside: Any, most: Any, held: Any) -> None:
    """Counts this holder in, records the most inside at once, and counts it out."""
    with inside.get_lock():
        inside.value += 1
        if inside.value > most.value:
            most.value = inside.value
    for _ in range(3000):  # hold the permit a moment: the others contend meanwhile
        pass
    with inside.get_lock():
        inside.value -= 1
        held.value += 1


def _worker(region: str, way: str, inside: Any, most: Any, held: Any) -> None:
    bulkhead = _shared(region, max_wait=None if way == "waiting" else 0.0)
    policy = brace.Policy(bulkhead=bulkhead)
    decorated = bulkhead(lambda: _hold(inside, most, held))
    for _ in range(ROUNDS):
        try:
            if way in ("with", "waiting"):
                with bulkhead:
                    _hold(inside, most, held)
            elif way == "call":
                bulkhead.call(_hold, inside, most, held)
            elif way == "decorated":
                decorated()
            elif way == "policy":
                policy.call(_hold, inside, most, held)
            elif bulkhead.try_acquire():
                try:
                    _hold(inside, most, held)
                finally:
                    bulkhead.release()
        except BulkheadFull:
            pass


def _process(region: str, way: str, inside: Any, most: Any, held: Any, start: Any) -> None:
    start.wait()  # every process ready before any starts: they contend from the first call
    threads = [threading.Thread(target=_worker, args=(region, way, inside, most, held)) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


@pytest.mark.parametrize("way", WAYS)
@pytest.mark.slow
def test_processes_never_hold_more_than_max(region: str, way: str) -> None:
    context = multiprocessing.get_context("fork")
    inside, most, held = context.Value("q", 0), context.Value("q", 0), context.Value("q", 0)
    start = context.Barrier(PROCESSES)
    processes = [context.Process(target=_process, args=(region, way, inside, most, held, start))
                 for _ in range(PROCESSES)]  # fmt: skip
    run_all(processes, timeout=60)
    assert 1 <= most.value <= MAX
    assert inside.value == 0
    assert held.value > 0
    if way == "waiting":  # nobody gave up: every call was admitted
        assert held.value == PROCESSES * THREADS * ROUNDS
    assert _shared(region).in_use == 0


def _take_all_and_wait(region: str, ready: Any) -> None:
    bulkhead = _shared(region)
    assert all(bulkhead.try_acquire() for _ in range(MAX))
    ready.set()
    threading.Event().wait()  # until killed


@pytest.mark.parametrize("how", ["waiting acquire", "reclaim"])
@pytest.mark.slow
def test_a_killed_holders_permits_come_back(region: str, how: str) -> None:
    context = multiprocessing.get_context("fork")
    ready = context.Event()
    victim = context.Process(target=_take_all_and_wait, args=(region, ready))
    victim.start()
    assert ready.wait(30)
    bulkhead = _shared(region, max_wait=1.0)
    assert bulkhead.in_use == MAX
    assert not bulkhead.try_acquire()
    assert bulkhead.reclaim() == 0  # alive: its permits are its own
    assert victim.pid is not None
    os.kill(victim.pid, signal.SIGKILL)
    victim.join(30)
    assert victim.exitcode == -signal.SIGKILL
    if how == "reclaim":
        assert bulkhead.reclaim() == MAX
        assert bulkhead.in_use == 0
    with contextlib.ExitStack() as stack:
        for _ in range(MAX):  # within max_wait (1 s): the polls' next sweep frees them
            stack.enter_context(bulkhead)
        assert bulkhead.in_use == MAX
        assert not bulkhead.try_acquire()
    assert bulkhead.in_use == 0


def test_processes_share_the_permits_through_separate_objects(region: str) -> None:
    first, second = _shared(region), _shared(region)
    assert first.try_acquire() and first.try_acquire()
    assert second.available == MAX - 2
    with second:
        assert first.in_use == MAX
        assert not first.try_acquire()
        with pytest.raises(BulkheadFull):
            with second:
                pass
    first.release()
    second.release()  # the process's permits, whichever object took them
    assert first.in_use == 0
    with pytest.raises(ValueError, match="without a permit this process holds"):
        first.release()


def test_another_thread_may_release_a_permit(region: str) -> None:
    bulkhead = _shared(region)
    assert bulkhead.try_acquire()
    thread = threading.Thread(target=bulkhead.release)
    thread.start()
    thread.join()
    assert bulkhead.in_use == 0


def test_a_full_shared_bulkhead_polls_until_max_wait() -> None:
    region = f"brace-test-{os.getpid()}-{uuid.uuid4().hex[:12]}"
    try:
        bulkhead = _shared(region, max_wait=0.5)
        assert all(bulkhead.try_acquire() for _ in range(MAX))
        with brace.testing.fake_clock() as clock:
            start = clock.now()
            with pytest.raises(BulkheadFull) as raised:
                with bulkhead:
                    pass
            assert clock.now() - start == pytest.approx(0.5)

            async def wait() -> None:
                async with bulkhead:
                    pass

            with pytest.raises(BulkheadFull):
                asyncio.run(wait())
        assert raised.value.max_concurrent == MAX
        for _ in range(MAX):
            bulkhead.release()
    finally:
        brace.shm.unlink(region)


async def _released_later(bulkhead: brace.Bulkhead) -> None:
    async def release() -> None:
        await asyncio.sleep(0)
        bulkhead.release()

    task = asyncio.ensure_future(release())
    async with bulkhead:  # polls: the release above lets it in
        assert bulkhead.in_use == MAX
    await task


def test_an_async_wait_gets_a_permit_released_meanwhile(region: str) -> None:
    bulkhead = _shared(region, max_wait=5.0)
    assert all(bulkhead.try_acquire() for _ in range(MAX))
    asyncio.run(_released_later(bulkhead))
    assert bulkhead.in_use == MAX - 1
    for _ in range(MAX - 1):
        bulkhead.release()


def test_reopening_with_another_configuration_names_the_field(region: str) -> None:
    _shared(region)
    with pytest.raises(ValueError, match=r"max_concurrent: 3 there, 4 here"):
        _shared(region, max_concurrent=4)
    brace.RateLimiter(rate=10, name="limiter", store=f"shm://{region}")
    with pytest.raises(ValueError, match="another kind of primitive than a Bulkhead"):
        _shared(region, name="limiter")
    _shared(region, max_wait=2.0)  # the wait is each process's own


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"max_concurrent": 4097}, "max_concurrent of a shared bulkhead .* 1 to 4096, got 4097"),
        ({"name": None}, "needs a name="),
        ({"store": "redis://x"}, "only the shm:// scheme"),
    ],
)
def test_bad_shared_configurations(region: str, config: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _shared(region, **config)


def test_a_shared_bulkhead_is_not_reconfigured(region: str) -> None:
    bulkhead = _shared(region)
    with pytest.raises(ValueError, match="is shared"):
        bulkhead.reconfigure(max_concurrent=5)
    assert bulkhead.store == f"shm://{region}"
    assert "store='shm://" in repr(bulkhead)
    assert brace.Bulkhead(max_concurrent=1).reclaim() == 0
