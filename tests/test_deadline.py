"""Bounded time: deadlines bound running attempts, sync code can read its time left,
sync attempt timeouts run in a pool and keep what they hold until they really end."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

import brace
from brace.testing import FakeClock

NO_WAIT = brace.Backoff.constant(delay=0.0)
ONE_SECOND = brace.Backoff.constant(delay=1.0, jitter="none")
LONG = 60.0  # a guard against hangs, never reached by a passing test


def eventually(predicate: Callable[[], bool]) -> None:
    deadline = time.monotonic() + LONG
    while not predicate():
        assert time.monotonic() < deadline, "the condition never came true"
        time.sleep(0.001)


# -- reading the time left -------------------------------------------------------------------


def test_deadline_remaining_is_none_outside_any_bound() -> None:
    assert brace.deadline_remaining() is None


@pytest.mark.parametrize("form", ["retry", "policy", "block"])
def test_a_sync_attempt_reads_the_time_left_of_its_deadline(clock: FakeClock, form: str) -> None:
    seen: list[float | None] = []

    def attempt() -> None:
        seen.append(brace.deadline_remaining())
        if len(seen) < 2:
            raise ConnectionError("first attempt fails")

    retry = brace.Retry(on=ConnectionError, attempts=2, backoff=ONE_SECOND,
                        deadline=None if form == "block" else 5.0)  # fmt: skip
    if form == "retry":
        retry.call(attempt)
    elif form == "policy":
        brace.Policy(retry=retry).call(attempt)
    else:
        with brace.deadline(5.0):
            retry.call(attempt)
    assert seen == [5.0, 4.0]  # the frozen clock makes these exact; the 1 s backoff came between
    assert brace.deadline_remaining() is None


def test_the_tightest_enclosing_bound_wins(clock: FakeClock) -> None:
    seen: list[float | None] = []
    with brace.deadline(2.0):
        brace.Retry(on=ConnectionError, deadline=30.0).call(lambda: seen.append(brace.deadline_remaining()))
        with brace.deadline(10.0):  # looser than the block around it
            seen.append(brace.deadline_remaining())
    assert seen == [2.0, 2.0]


def test_a_sync_attempt_that_bounds_itself_keeps_the_retry_within_its_deadline(clock: FakeClock) -> None:
    calls: list[float] = []

    def slow() -> None:
        # 0.8 s of work per attempt, cut to the time left, as a socket timeout would.
        remaining = brace.deadline_remaining()
        assert remaining is not None
        calls.append(remaining)
        clock.advance(min(0.8, remaining))
        raise TimeoutError("the server did not answer in time")

    start = clock.now_ns()
    with pytest.raises(TimeoutError) as info:
        brace.Retry(on=TimeoutError, attempts=5, backoff=NO_WAIT, deadline=1.0).call(slow)
    assert clock.now_ns() - start == 10**9  # not 1.6 s: the second attempt used what was left
    assert calls == [1.0, pytest.approx(0.2)]
    assert "(deadline)" in info.value.__notes__[-1]


def test_a_deadline_block_bounds_a_retry_that_has_none(clock: FakeClock) -> None:
    calls = 0

    def failing() -> None:
        nonlocal calls
        calls += 1
        raise ConnectionError("down")

    with brace.deadline(2.5), pytest.raises(ConnectionError) as info:
        brace.Retry(on=ConnectionError, attempts=10, backoff=ONE_SECOND).call(failing)
    assert calls == 3  # at 0, 1 and 2 s; a fourth would start at 3 s, past the bound
    assert "(deadline)" in info.value.__notes__[-1]


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), "1"])
def test_deadline_refuses_a_bound_that_is_not_a_positive_duration(bad: object) -> None:
    with pytest.raises((ValueError, TypeError), match="^seconds must be"):
        with brace.deadline(bad):  # type: ignore[arg-type]
            pass  # pragma: no cover


# -- async attempts are cancelled at the deadline ---------------------------------------------


@pytest.mark.parametrize("form", ["retry", "policy", "policy without retry", "block"])
def test_an_async_attempt_running_at_the_deadline_is_cancelled(form: str) -> None:
    cancelled: list[str] = []
    calls = 0

    async def slow() -> str:
        nonlocal calls
        calls += 1
        if calls == 1 and form != "policy without retry":
            raise ConnectionError("the first attempt fails at once")
        try:
            await asyncio.sleep(LONG)
        except asyncio.CancelledError:
            cancelled.append("cancelled")
            raise
        return "never"  # pragma: no cover

    retry = brace.Retry(on=ConnectionError, attempts=3, backoff=NO_WAIT, deadline=0.2)

    async def run() -> str:
        if form == "retry":
            return await retry.call_async(slow)
        if form == "policy":
            return await brace.Policy(retry=retry).call_async(slow)
        if form == "policy without retry":
            return await brace.Policy(deadline=0.2).call_async(slow)
        with brace.deadline(0.2):
            return await brace.Retry(on=ConnectionError, attempts=3, backoff=NO_WAIT).call_async(slow)

    with pytest.raises(brace.AttemptTimeout) as info:
        asyncio.run(run())
    assert cancelled == ["cancelled"]
    assert info.value.still_running is False


def test_an_async_attempt_timeout_under_a_fake_clock_follows_the_clock() -> None:
    with brace.testing.fake_clock(autojump=None) as clock:

        async def slow() -> None:
            clock.advance(10.0)  # the attempt "takes" 10 s of fake time...
            await asyncio.sleep(LONG)  # ...and then would hang

        start = clock.now_ns()
        with pytest.raises(brace.AttemptTimeout) as info:
            asyncio.run(brace.Retry(on=ConnectionError, attempt_timeout=5.0).call_async(slow))
        assert info.value.timeout == 5.0
        assert clock.now_ns() - start == 10 * 10**9


# -- sync attempt timeouts --------------------------------------------------------------------


def test_a_sync_attempt_runs_with_the_callers_contextvars() -> None:
    retry = brace.Retry(on=ConnectionError, attempt_timeout=LONG)
    with brace.correlation("order-42"):
        seen = retry.call(lambda: (brace.correlation_id(), brace.deadline_remaining()))
    assert seen[0] == "order-42"
    assert seen[1] is not None and 0 < seen[1] <= LONG


def test_sync_attempts_reuse_the_worker_threads() -> None:
    retry = brace.Retry(on=ConnectionError, attempt_timeout=LONG)
    workers = [retry.call(threading.current_thread) for _ in range(50)]  # held: no id is reused
    assert len({id(worker) for worker in workers}) == 1  # one after the other: the same idle worker
    assert threading.current_thread() not in workers


@pytest.mark.parametrize("idempotent", [False, True])
def test_a_timed_out_sync_attempt_that_may_still_run_is_retried_only_when_idempotent(idempotent: bool) -> None:
    release = threading.Event()
    calls = 0

    def hangs() -> str:
        nonlocal calls
        calls += 1
        release.wait(LONG)
        return "late"

    retry = brace.Retry(on=brace.AttemptTimeout, attempts=3, backoff=NO_WAIT, attempt_timeout=0.02, idempotent=idempotent)
    try:
        with pytest.raises(brace.AttemptTimeout) as info:
            retry.call(hangs)
    finally:
        release.set()
    assert info.value.still_running is True
    assert calls == (3 if idempotent else 1)
    if not idempotent:
        assert "(still_running)" in info.value.__notes__[-1]


@pytest.mark.parametrize("way", ["sync", "async"])
def test_a_timeout_error_raised_by_the_function_itself_is_not_relabelled(way: str) -> None:
    own = TimeoutError("the function's own timeout")

    def raising() -> None:
        raise own

    async def raising_async() -> None:
        raise own

    retry = brace.Retry(on=ConnectionError, attempt_timeout=LONG)
    with pytest.raises(TimeoutError) as info:
        if way == "sync":
            retry.call(raising)
        else:
            asyncio.run(retry.call_async(raising_async))
    assert info.value is own
    assert not isinstance(info.value, brace.AttemptTimeout)


def test_a_timed_out_sync_attempt_keeps_its_bulkhead_slot_until_it_really_ends() -> None:
    bulkhead = brace.Bulkhead(max_concurrent=2)
    breaker = brace.CircuitBreaker(name="deadline-slot", minimum_calls=50, window_size=50)
    policy = brace.Policy(bulkhead=bulkhead, breaker=breaker, attempt_timeout=0.02)
    release = threading.Event()
    lock = threading.Lock()
    running = peak = 0

    def hangs() -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        release.wait(LONG)
        with lock:
            running -= 1

    outcomes: list[str] = []
    for _ in range(20):
        try:
            policy.call(hangs)
        except brace.AttemptTimeout:
            outcomes.append("timeout")
        except brace.BulkheadFull:
            outcomes.append("full")
    assert outcomes == ["timeout", "timeout"] + ["full"] * 18
    assert (bulkhead.in_use, breaker.metrics().calls) == (2, 0)  # both still running, not yet booked
    release.set()
    eventually(lambda: bulkhead.in_use == 0)
    eventually(lambda: breaker.metrics().failures == 2)  # booked as failures when they ended
    assert peak == 2


def test_the_late_outcome_of_a_timed_out_attempt_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    release = threading.Event()
    ended = threading.Event()

    def hangs_then_fails() -> None:
        release.wait(LONG)
        ended.set()
        raise ValueError("what the late attempt found")

    with caplog.at_level(logging.WARNING, logger="brace"), pytest.raises(brace.AttemptTimeout):
        brace.Retry(on=ValueError, attempts=1, attempt_timeout=0.02).call(hangs_then_fails)
    release.set()
    eventually(lambda: any(record.exc_info and record.exc_info[0] is ValueError for record in caplog.records))


def test_an_idle_sync_attempt_timeout_under_a_fake_clock_jumps_instead_of_waiting() -> None:
    release = threading.Event()
    with brace.testing.fake_clock() as clock:
        start = clock.now_ns()
        try:
            with pytest.raises(brace.AttemptTimeout) as info:
                # An hour's timeout: only the clock's jump can end this attempt's wait.
                brace.Retry(on=ConnectionError, attempt_timeout=3600.0).call(lambda: release.wait(LONG))
        finally:
            release.set()
        assert clock.now_ns() - start == 3600 * 10**9
        assert info.value.still_running is True


def test_a_sync_attempt_timeout_under_a_fake_clock_ends_when_the_clock_passes_it() -> None:
    release = threading.Event()
    with brace.testing.fake_clock(autojump=None) as clock:

        def slow() -> Any:
            clock.advance(6.0)
            return release.wait(LONG)

        try:
            with pytest.raises(brace.AttemptTimeout):
                brace.Retry(on=ConnectionError, attempt_timeout=5.0).call(slow)
        finally:
            release.set()
