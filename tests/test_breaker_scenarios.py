"""The circuit breaker's state machine, scenario by scenario (resilience4j's documentation).

Each test tells one story under the fake clock (the `clock` fixture): how the
sliding window opens the breaker, what HALF_OPEN admits and decides, how the
wait in OPEN grows, the simple consecutive-failures mode, which exceptions
count, the manual states, events, and probes shared by threads.

The end of a wait is exact to the nanosecond: `wait_in_open=10.0` lets the
first call at 10 s after the opening through (see
test_the_open_wait_ends_exactly_after_wait_in_open).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

import brace
from brace import BreakerEvent, BreakerState, CircuitBreaker
from brace.testing import FakeClock

CLOSED, OPEN, HALF_OPEN = BreakerState.CLOSED, BreakerState.OPEN, BreakerState.HALF_OPEN
DISABLED, FORCED_OPEN, METRICS_ONLY = BreakerState.DISABLED, BreakerState.FORCED_OPEN, BreakerState.METRICS_ONLY
NS = 1e-9  # one nanosecond, in seconds
THREAD_TIMEOUT = 30.0  # only so that a broken breaker fails the test instead of hanging it


def fail() -> None:
    raise ConnectionError("connection refused")


def succeed() -> str:
    return "ok"


def attempt(cb: CircuitBreaker, outcome: str) -> None:
    """One call through `cb`: "F" fails with ConnectionError, "S" succeeds."""
    if outcome == "F":
        with pytest.raises(ConnectionError):
            cb.call(fail)
    else:
        assert cb.call(succeed) == "ok"


def attempts(cb: CircuitBreaker, outcomes: str) -> list[BreakerState]:
    """One call per character of `outcomes`; the state after each."""
    states = []
    for outcome in outcomes:
        attempt(cb, outcome)
        states.append(cb.state)
    return states


def open_breaker(cb: CircuitBreaker) -> None:
    """Fails calls until `cb` opens."""
    while cb.state is not OPEN:
        attempt(cb, "F")


def half_opened(clock: FakeClock, **settings: Any) -> CircuitBreaker:
    """A breaker (one failure opens it, 10 s wait) opened and waited out: the next call is a probe."""
    cb = CircuitBreaker(**{"name": "api", "consecutive_failures": 1, "wait_in_open": 10.0, **settings})
    open_breaker(cb)
    clock.advance(10.0)
    return cb


def rejection(cb: CircuitBreaker) -> brace.CircuitOpen:
    with pytest.raises(brace.CircuitOpen) as caught:
        cb.call(succeed)
    return caught.value


# -- the ways to guard a call ------------------------------------------------------


def via_call(cb: CircuitBreaker, fn: Callable[[], Any]) -> Any:
    return cb.call(fn)


def via_decorator(cb: CircuitBreaker, fn: Callable[[], Any]) -> Any:
    return cb(fn)()


def via_with(cb: CircuitBreaker, fn: Callable[[], Any]) -> Any:
    with cb:
        return fn()


def via_async(cb: CircuitBreaker, fn: Callable[[], Any]) -> Any:
    async def run() -> Any:
        return fn()

    return asyncio.run(cb.call_async(run))


def via_async_with(cb: CircuitBreaker, fn: Callable[[], Any]) -> Any:
    async def run() -> Any:
        async with cb:
            return fn()

    return asyncio.run(run())


GUARDS = pytest.mark.parametrize(
    "guard", [via_call, via_decorator, via_with, via_async, via_async_with],
    ids=["call", "decorator", "with", "call_async", "async_with"],
)  # fmt: skip


Guard = Callable[[CircuitBreaker, Callable[[], Any]], Any]


def guarded_attempt(guard: Guard, cb: CircuitBreaker, outcome: str) -> None:
    if outcome == "F":
        with pytest.raises(ConnectionError):
            guard(cb, fail)
    else:
        assert guard(cb, succeed) == "ok"


# -- CLOSED: the count window --------------------------------------------------------


class TestCountWindow:
    """window_size=10, minimum_calls=10, failure_rate_threshold=50%."""

    @staticmethod
    def breaker() -> CircuitBreaker:
        return CircuitBreaker(name="api", window_size=10, minimum_calls=10, failure_rate_threshold=0.5)

    @pytest.mark.parametrize("outcomes", ["FFFFFSSSSS", "SSSSSFFFFF", "FSFSFSFSFS", "SFSFSFSFSF", "SSFFSSFFSF"])
    def test_opens_on_the_tenth_call_when_five_failed(self, outcomes: str) -> None:
        cb = self.breaker()
        states = attempts(cb, outcomes)
        assert states == [CLOSED] * 9 + [OPEN]  # even when the 10th call itself succeeded
        metrics = cb.metrics()
        assert (metrics.calls, metrics.failures, metrics.failure_rate, metrics.openings) == (10, 5, 0.5, 1)

    @pytest.mark.parametrize("outcomes", ["FFFFSSSSSS", "SSSSSSFFFF", "FSFSFSFSSS"])
    def test_stays_closed_when_four_of_ten_failed(self, outcomes: str) -> None:
        cb = self.breaker()
        assert attempts(cb, outcomes) == [CLOSED] * 10
        assert cb.metrics().failure_rate == 0.4

    @pytest.mark.parametrize(
        ("outcomes", "state"),
        [
            ("SFFFFSSSSS" + "F", OPEN),  # the 11th call evicts the 1st, a success: 5 of the last 10 failed
            ("FFFFSSSSSS" + "F", CLOSED),  # it evicts a failure: still 4 of the last 10
            ("FFFFSSSSSS" + "SSSS" + "FFFF", CLOSED),  # the old failures slid out: 4 of the last 10
        ],
        ids=["evicts-a-success", "evicts-a-failure", "failures-slid-out"],
    )
    def test_the_window_holds_the_last_window_size_calls(self, outcomes: str, state: BreakerState) -> None:
        cb = self.breaker()
        states = attempts(cb, outcomes)
        assert states[:10] == [CLOSED] * 10
        assert states[-1] is state
        assert cb.metrics().calls == 10


@pytest.mark.parametrize("window", ["count", "time"])
def test_below_minimum_calls_it_stays_closed_even_at_100_percent_failures(window: str, clock: FakeClock) -> None:
    cb = CircuitBreaker(name="api", window=window, window_size=20, minimum_calls=10)  # type: ignore[arg-type]
    assert attempts(cb, "F" * 9) == [CLOSED] * 9
    metrics = cb.metrics()
    assert (metrics.calls, metrics.failures, metrics.failure_rate) == (9, 9, None)  # no rate below the minimum
    attempt(cb, "F")
    assert cb.state is OPEN


# -- CLOSED: the time window -------------------------------------------------------


@pytest.mark.parametrize(
    ("elapsed", "remembered"),
    [(0.0, True), (5.0, True), (9.999, True), (10.0, False), (25.0, False)],
)
def test_a_time_window_forgets_failures_older_than_window_size_buckets(
    elapsed: float, remembered: bool, clock: FakeClock
) -> None:
    """10 buckets of 1 s: failures made in one bucket count until 10 buckets later."""
    cb = CircuitBreaker(name="api", window="time", window_size=10, window_bucket=1.0, minimum_calls=5)
    clock.advance_to(float(math.ceil(clock.now())))  # at the start of a bucket
    attempts(cb, "FFFF")
    clock.advance(elapsed)
    assert cb.metrics().calls == (4 if remembered else 0)
    attempt(cb, "F")
    assert cb.state is (OPEN if remembered else CLOSED)


def test_a_time_window_counts_calls_of_every_bucket_in_it(clock: FakeClock) -> None:
    cb = CircuitBreaker(name="api", window="time", window_size=3, window_bucket=timedelta(seconds=2), minimum_calls=4)
    clock.advance_to(float(math.ceil(clock.now() / 2) * 2))
    for _ in range(3):  # three buckets of S, S, F: a third failed
        assert attempts(cb, "SSF") == [CLOSED] * 3
        clock.advance(2.0)
    # the first bucket has just left the window; the next two stay in it
    assert (cb.metrics().calls, cb.metrics().failures) == (6, 2)
    assert attempts(cb, "FF") == [CLOSED, OPEN]  # 3 of 7, then 4 of 8


# -- slow calls --------------------------------------------------------------------


@pytest.mark.parametrize(("duration", "slow"), [(1.999, False), (2.0, True), (30.0, True)])
def test_slow_calls_open_it_at_the_slow_call_rate_threshold(duration: float, slow: bool, clock: FakeClock) -> None:
    cb = CircuitBreaker(name="api", window_size=4, minimum_calls=4, slow_call_duration=2.0,
                        slow_call_rate_threshold=0.5)  # fmt: skip

    def takes_a_while() -> str:
        clock.advance(duration)
        return "ok"

    for _ in range(2):
        cb.call(takes_a_while)  # successful, maybe slow
    attempts(cb, "SS")
    metrics = cb.metrics()
    assert (metrics.failures, metrics.slow_calls) == (0, 2 if slow else 0)
    assert cb.state is (OPEN if slow else CLOSED)
    if slow:
        assert metrics.slow_call_rate == 0.5


def test_slow_failures_are_counted_apart(clock: FakeClock) -> None:
    cb = CircuitBreaker(name="api", window_size=10, minimum_calls=10, slow_call_duration=1.0)

    def slow_failure() -> None:
        clock.advance(1.0)
        raise ConnectionError("timed out upstream")

    with pytest.raises(ConnectionError):
        cb.call(slow_failure)
    attempts(cb, "FS")
    metrics = cb.metrics()
    assert (metrics.calls, metrics.failures, metrics.slow_calls, metrics.slow_failures) == (3, 2, 1, 1)


# -- OPEN ----------------------------------------------------------------------------


def test_open_rejects_with_the_name_and_retry_after(clock: FakeClock) -> None:
    cb = CircuitBreaker(name="payments", consecutive_failures=1, wait_in_open=10.0)
    open_breaker(cb)
    error = rejection(cb)
    assert isinstance(error, brace.BraceError)
    assert (error.name, error.retry_after) == ("payments", 10.0)
    assert "payments" in str(error)
    clock.advance(2.5)
    assert rejection(cb).retry_after == 7.5
    assert cb.metrics().time_until_half_open == 7.5
    assert cb.metrics().not_permitted == 2


def test_the_open_wait_ends_exactly_after_wait_in_open(clock: FakeClock) -> None:
    cb = CircuitBreaker(name="api", consecutive_failures=1, wait_in_open=10.0)
    open_breaker(cb)
    clock.advance(10.0 - NS)
    assert rejection(cb).retry_after == pytest.approx(NS)
    assert cb.state is OPEN
    clock.advance(NS)
    attempt(cb, "S")  # the first call at the end of the wait is a probe (#1 of the default 10)
    assert cb.state is HALF_OPEN


def test_the_rejected_function_never_runs(clock: FakeClock) -> None:
    cb = CircuitBreaker(name="api", consecutive_failures=1)
    open_breaker(cb)
    ran: list[str] = []
    for guard in (via_call, via_decorator, via_with, via_async, via_async_with):
        with pytest.raises(brace.CircuitOpen):
            guard(cb, lambda: ran.append("ran"))
    assert ran == []
    assert cb.metrics().not_permitted == 5


def test_the_open_wait_grows_with_each_opening_up_to_the_cap_and_resets_after_a_close(clock: FakeClock) -> None:
    cb = CircuitBreaker(name="api", consecutive_failures=1, half_open_calls=1, wait_in_open=10.0,
                        wait_in_open_multiplier=2.0, max_wait_in_open=30.0)  # fmt: skip
    waits = []
    open_breaker(cb)
    for _ in range(4):
        waits.append(cb.metrics().time_until_half_open)
        clock.advance(waits[-1])
        attempt(cb, "F")  # the probe fails: open again, for longer
    assert waits == [10.0, 20.0, 30.0, 30.0]
    assert cb.metrics().openings == 5
    clock.advance(30.0)
    attempt(cb, "S")  # a successful probe closes it ...
    assert (cb.state, cb.metrics().openings) == (CLOSED, 0)
    open_breaker(cb)
    assert cb.metrics().time_until_half_open == 10.0  # ... and the next opening is the first again


def test_wait_in_open_may_be_a_function_of_the_opening_count(clock: FakeClock) -> None:
    asked: list[int] = []

    def wait_in_open(openings: int) -> timedelta:
        asked.append(openings)
        return timedelta(seconds=5 * openings)

    cb = CircuitBreaker(name="api", consecutive_failures=1, half_open_calls=1, wait_in_open=wait_in_open)
    asked.clear()  # the constructor may call it once to check what it returns
    open_breaker(cb)
    waits = [cb.metrics().time_until_half_open]
    for _ in range(2):
        clock.advance(waits[-1])
        attempt(cb, "F")
        waits.append(cb.metrics().time_until_half_open)
    assert waits == [5.0, 10.0, 15.0]
    assert asked == [1, 2, 3]
    assert rejection(cb).retry_after == 15.0
    cb.close()
    open_breaker(cb)
    assert cb.metrics().time_until_half_open == 5.0
    assert asked[-1] == 1


# -- HALF_OPEN -----------------------------------------------------------------------


def test_half_open_admits_exactly_half_open_calls_probes(clock: FakeClock) -> None:
    cb = half_opened(clock, half_open_calls=3)
    with contextlib.ExitStack() as probes:
        for _ in range(3):
            probes.enter_context(cb)  # three probes in flight
            assert cb.state is HALF_OPEN
        error = rejection(cb)  # the 4th call
        assert (error.name, error.retry_after) == ("api", 0.0)  # unknown: it depends on the probes
        assert cb.metrics().not_permitted == 1
    assert cb.state is CLOSED  # the three probes succeeded


def test_successful_probes_close_it_with_a_fresh_window(clock: FakeClock) -> None:
    cb = CircuitBreaker(name="api", window_size=10, minimum_calls=4, half_open_calls=3, wait_in_open=10.0)
    assert attempts(cb, "FFFF")[-1] is OPEN
    clock.advance(10.0)
    assert attempts(cb, "SSS") == [HALF_OPEN, HALF_OPEN, CLOSED]
    metrics = cb.metrics()
    assert (metrics.calls, metrics.failures, metrics.openings, metrics.failure_rate) == (0, 0, 0, None)
    # the old failures are gone: it takes minimum_calls new calls to open again
    assert attempts(cb, "FFFF") == [CLOSED, CLOSED, CLOSED, OPEN]


@pytest.mark.parametrize(
    ("probes", "state"),
    [("SSS", CLOSED), ("FSS", CLOSED), ("SSF", CLOSED), ("FFS", OPEN), ("SFF", OPEN), ("FFF", OPEN)],
)
def test_the_probes_decide_at_the_failure_rate_threshold(probes: str, state: BreakerState, clock: FakeClock) -> None:
    cb = CircuitBreaker(name="api", window_size=4, minimum_calls=4, half_open_calls=3, wait_in_open=10.0,
                        failure_rate_threshold=0.5)  # fmt: skip
    attempts(cb, "FFFF")
    clock.advance(10.0)
    assert attempts(cb, probes) == [HALF_OPEN, HALF_OPEN, state]  # no decision before the last probe
    assert cb.metrics().openings == (2 if state is OPEN else 0)


def test_slow_probes_reopen_it(clock: FakeClock) -> None:
    cb = CircuitBreaker(name="api", window_size=2, minimum_calls=2, half_open_calls=2, wait_in_open=10.0,
                        slow_call_duration=1.0, slow_call_rate_threshold=1.0)  # fmt: skip
    attempts(cb, "FF")
    clock.advance(10.0)
    for _ in range(2):
        cb.call(lambda: clock.advance(1.0))  # successful, slow
    assert cb.state is OPEN


def test_max_wait_in_half_open_reopens_a_wedged_half_open(clock: FakeClock) -> None:
    cb = half_opened(clock, half_open_calls=2, max_wait_in_half_open=5.0)
    with contextlib.ExitStack() as stuck:
        stuck.enter_context(cb)
        stuck.enter_context(cb)  # both probes hang
        clock.advance(5.0 - NS)
        assert rejection(cb).retry_after == pytest.approx(NS)  # until the half-open deadline
        assert cb.state is HALF_OPEN
        clock.advance(NS)
        error = rejection(cb)  # this call re-opens it, and is rejected
        assert cb.state is OPEN
        assert error.retry_after == 10.0
        assert cb.metrics().openings == 2
    # the wedged probes finished (successfully) after the re-opening: ignored
    assert cb.state is OPEN
    assert cb.metrics().time_until_half_open == 10.0


def test_outcomes_of_calls_permitted_before_the_half_open_are_not_probes(clock: FakeClock) -> None:
    cb = CircuitBreaker(name="api", window_size=2, minimum_calls=2, half_open_calls=1, wait_in_open=10.0)
    late = cb._enter()  # permitted while CLOSED, finishes much later
    attempts(cb, "FF")
    clock.advance(10.0)
    with cb:  # the one probe, in flight
        cb._record(late[0], True, late[1])  # a failure from before the half-open: ignored
        assert cb.state is HALF_OPEN
    assert cb.state is CLOSED


# -- the consecutive-failures mode ---------------------------------------------------


@pytest.mark.parametrize(
    ("outcomes", "state"),
    [("FFF", OPEN), ("FFSFF", CLOSED), ("FFSFFF", OPEN), ("SFSFSFSF", CLOSED), ("S" * 50 + "FFF", OPEN)],
)
def test_consecutive_failures_open_it_and_a_success_resets_the_run(outcomes: str, state: BreakerState) -> None:
    cb = CircuitBreaker(name="api", consecutive_failures=3)
    states = attempts(cb, outcomes)
    assert states[:-1] == [CLOSED] * (len(outcomes) - 1)
    assert states[-1] is state


@pytest.mark.parametrize(
    ("probes", "states"),
    [
        ("F", [OPEN]),
        ("SF", [HALF_OPEN, OPEN]),
        ("SSF", [HALF_OPEN, HALF_OPEN, OPEN]),
        ("SSS", [HALF_OPEN, HALF_OPEN, CLOSED]),
    ],
)
def test_consecutive_mode_one_failed_probe_reopens_and_all_successes_close(
    probes: str, states: list[BreakerState], clock: FakeClock
) -> None:
    cb = half_opened(clock, consecutive_failures=2, half_open_calls=3)
    assert attempts(cb, probes) == states


def test_consecutive_mode_slow_successful_probes_close_it(clock: FakeClock) -> None:
    """Simple mode counts failures only: slow calls never open it while CLOSED, so
    `half_open_calls` successful probes close it, however long they took."""
    cb = CircuitBreaker(name="api", consecutive_failures=2, half_open_calls=2, wait_in_open=10.0,
                        slow_call_duration=1.0)  # fmt: skip
    for _ in range(5):
        cb.call(lambda: clock.advance(2.0))  # slow successes never open it while CLOSED
    assert cb.state is CLOSED
    attempts(cb, "FF")
    clock.advance(10.0)
    for _ in range(2):
        cb.call(lambda: clock.advance(2.0))  # two successful (slow) probes
    assert cb.state is CLOSED


# -- which exceptions count ---------------------------------------------------------


class Ignored(Exception):
    pass


@pytest.mark.parametrize(
    "ignore",
    [Ignored, (KeyError, Ignored), lambda error: isinstance(error, Ignored)],
    ids=["type", "tuple", "predicate"],
)
def test_ignored_exceptions_count_as_nothing(ignore: Any) -> None:
    cb = CircuitBreaker(name="api", window_size=2, minimum_calls=2, ignore=ignore)
    kinds: list[str] = []
    cb.add_listener(lambda event: kinds.append(event.kind))
    for _ in range(5):
        with pytest.raises(Ignored):
            cb.call(lambda: (_ for _ in ()).throw(Ignored("not our fault")))
    assert (cb.state, cb.metrics().calls) == (CLOSED, 0)
    assert kinds == ["ignored_error"] * 5


@pytest.mark.parametrize(
    "record",
    [ConnectionError, (ConnectionError, TimeoutError), lambda error: isinstance(error, OSError)],
    ids=["type", "tuple", "predicate"],
)
def test_exceptions_record_does_not_match_count_as_successes(record: Any) -> None:
    cb = CircuitBreaker(name="api", window_size=4, minimum_calls=4, record=record)
    for _ in range(4):
        with pytest.raises(ValueError):
            cb.call(lambda: int("not a number"))
    metrics = cb.metrics()
    assert (cb.state, metrics.calls, metrics.failures) == (CLOSED, 4, 0)
    attempts(cb, "FF")
    assert cb.state is OPEN


def test_ignore_wins_over_record() -> None:
    cb = CircuitBreaker(name="api", window_size=1, minimum_calls=1, record=ConnectionError,
                        ignore=lambda error: "retry later" in str(error))  # fmt: skip
    with pytest.raises(ConnectionError):
        cb.call(lambda: (_ for _ in ()).throw(ConnectionError("retry later")))
    assert (cb.state, cb.metrics().calls) == (CLOSED, 0)


@pytest.mark.parametrize(
    "interruption", [Ignored("ignored"), KeyboardInterrupt(), asyncio.CancelledError(), SystemExit(1)],
    ids=["ignored", "KeyboardInterrupt", "CancelledError", "SystemExit"],
)  # fmt: skip
def test_an_interrupted_probe_gives_its_slot_back(interruption: BaseException, clock: FakeClock) -> None:
    cb = half_opened(clock, half_open_calls=1, ignore=Ignored)

    def interrupted() -> None:
        assert cb.state is HALF_OPEN
        raise interruption

    with pytest.raises(type(interruption)):
        cb.call(interrupted)
    assert cb.state is HALF_OPEN
    attempt(cb, "S")  # the slot came back: this is the probe, and it closes the breaker
    assert cb.state is CLOSED


@pytest.mark.parametrize("holder", ["decorator", "call_async", "async_with"])
def test_a_task_cancelled_while_holding_a_probe_permit_frees_the_slot(holder: str, clock: FakeClock) -> None:
    cb = half_opened(clock, half_open_calls=1)

    async def scenario() -> None:
        holding, never = asyncio.Event(), asyncio.Event()

        async def hold() -> None:
            holding.set()
            await never.wait()

        async def hold_in_async_with() -> None:
            async with cb:
                await hold()

        probe_holder: Callable[[], Any] = {
            "decorator": cb(hold),
            "call_async": lambda: cb.call_async(hold),
            "async_with": hold_in_async_with,
        }[holder]
        probe = asyncio.ensure_future(probe_holder())
        holds = asyncio.ensure_future(holding.wait())
        done, _ = await asyncio.wait({probe, holds}, return_when=asyncio.FIRST_COMPLETED)
        assert holds in done, f"the probe was not permitted: {probe.exception() if probe.done() else None!r}"
        assert cb.state is HALF_OPEN
        with pytest.raises(brace.CircuitOpen):  # the only slot is taken
            await cb.call_async(asyncio.sleep, 0)
        probe.cancel()
        with pytest.raises(asyncio.CancelledError):
            await probe
        assert cb.state is HALF_OPEN
        await cb.call_async(asyncio.sleep, 0)  # the slot came back: a successful probe

    asyncio.run(scenario())
    assert cb.state is CLOSED
    assert cb.metrics().failures == 0


@pytest.mark.parametrize(
    ("results", "state"), [([200, 503, 200, 503], OPEN), ([200, 503, 200, 200], CLOSED)], ids=["half-5xx", "one-5xx"]
)
def test_record_result_counts_returned_values_as_failures(results: list[int], state: BreakerState) -> None:
    cb = CircuitBreaker(name="api", window_size=4, minimum_calls=4,
                        record_result=lambda response: response["status"] >= 500)  # fmt: skip
    for status in results:
        assert cb.call(lambda: {"status": status}) == {"status": status}  # the value reaches the caller
    metrics = cb.metrics()
    assert (metrics.calls, metrics.failures) == (4, results.count(503))
    assert cb.state is state


def test_a_record_result_predicate_that_raises_does_not_wedge_a_half_open_breaker(clock: FakeClock) -> None:
    """A half-open breaker can never wedge: a predicate that raises on an
    unexpected value must not keep the probe's permission forever."""
    cb = half_opened(clock, half_open_calls=1, record_result=lambda response: response["status"] >= 500)
    with pytest.raises(TypeError):
        cb.call(lambda: None)  # the predicate raises on None
    clock.advance(3600.0)
    assert cb.call(lambda: {"status": 200}) == {"status": 200}  # a probe must get through eventually
    assert cb.state is CLOSED


# -- manual states -------------------------------------------------------------------


def test_forced_open_rejects_everything_until_closed_by_hand(clock: FakeClock) -> None:
    cb = CircuitBreaker(name="maintenance", minimum_calls=1, window_size=1)
    cb.force_open()
    for _ in range(3):
        error = rejection(cb)
        assert (error.name, error.retry_after) == ("maintenance", math.inf)
        assert "forced open" in str(error)
        clock.advance(3600.0)
    assert cb.state is FORCED_OPEN
    assert cb.metrics().not_permitted == 3
    cb.close()
    attempt(cb, "S")
    assert cb.state is CLOSED


def test_disabled_permits_everything_and_never_transitions(clock: FakeClock) -> None:
    cb = CircuitBreaker(name="api", window_size=2, minimum_calls=2)
    cb.disable()
    attempts(cb, "F" * 20)
    clock.advance(3600.0)
    assert cb.state is DISABLED
    assert cb.metrics().not_permitted == 0


@GUARDS
def test_metrics_only_records_and_reports_would_open_but_never_opens(
    guard: Guard,
) -> None:
    cb = CircuitBreaker(name="shadow", window_size=4, minimum_calls=4)
    cb.metrics_only()
    kinds: list[str] = []
    cb.add_listener(lambda event: kinds.append(event.kind), kinds=["would_open", "state_transition"])
    for outcome in "FFSS":  # the 4th call, a success, takes the window to 50%
        guarded_attempt(guard, cb, outcome)
    assert kinds == ["would_open"]
    metrics = cb.metrics()
    assert (metrics.state, metrics.calls, metrics.failures, metrics.failure_rate) == (METRICS_ONLY, 4, 2, 0.5)


@GUARDS
def test_every_way_of_guarding_reports_success_and_error_events(
    guard: Guard,
) -> None:
    cb = CircuitBreaker(name="api")
    kinds: list[str] = []
    cb.add_listener(lambda event: kinds.append(event.kind), kinds=["success", "error"])
    for outcome in "SFS":
        guarded_attempt(guard, cb, outcome)
    assert kinds == ["success", "error", "success"]


def test_close_and_reset_empty_the_window(clock: FakeClock) -> None:
    cb = CircuitBreaker(name="api", window_size=10, minimum_calls=5)
    attempts(cb, "FFFF")
    cb.close()
    assert (cb.state, cb.metrics().calls) == (CLOSED, 0)
    open_breaker(cb)
    rejection(cb)
    cb.reset()
    metrics = cb.metrics()
    assert (metrics.state, metrics.calls, metrics.not_permitted, metrics.openings) == (CLOSED, 0, 0, 0)


# -- events --------------------------------------------------------------------------


def test_state_transitions_reach_a_listener_in_order(clock: FakeClock) -> None:
    cb = CircuitBreaker(name="api", window_size=2, minimum_calls=2, half_open_calls=1, wait_in_open=10.0)
    seen: list[BreakerEvent] = []
    cb.add_listener(seen.append, kinds=["state_transition"])
    attempts(cb, "FF")  # CLOSED -> OPEN
    clock.advance(10.0)
    attempt(cb, "F")  # OPEN -> HALF_OPEN, the probe fails: -> OPEN
    clock.advance(10.0)
    attempt(cb, "S")  # OPEN -> HALF_OPEN -> CLOSED
    assert [(event.from_state, event.to_state) for event in seen] == [
        (CLOSED, OPEN),
        (OPEN, HALF_OPEN),
        (HALF_OPEN, OPEN),
        (OPEN, HALF_OPEN),
        (HALF_OPEN, CLOSED),
    ]
    assert all(event.kind == "state_transition" and event.breaker == "api" for event in seen)


def test_a_rejection_event_carries_the_circuit_open_error(clock: FakeClock) -> None:
    cb = CircuitBreaker(name="api", consecutive_failures=1, wait_in_open=10.0)
    seen: list[BreakerEvent] = []
    cb.add_listener(seen.append, kinds=["not_permitted"])
    open_breaker(cb)
    error = rejection(cb)
    assert [event.kind for event in seen] == ["not_permitted"]
    assert seen[0].error is not None
    assert (seen[0].error.args, seen[0].breaker) == (error.args, "api")


# -- threads -------------------------------------------------------------------------


@pytest.mark.parametrize("half_open_calls", [1, 3, 5])
def test_eight_threads_in_half_open_exactly_half_open_calls_probes_get_through(
    half_open_calls: int, clock: FakeClock
) -> None:
    cb = CircuitBreaker(name="shared", consecutive_failures=1, half_open_calls=half_open_calls, wait_in_open=1.0)
    for _ in range(10):  # rounds: each opens the breaker and lets 8 threads race for the probes
        open_breaker(cb)
        clock.advance(1.0)  # the next call, whichever thread makes it, is the first probe
        start = threading.Barrier(8)
        finish = threading.Event()
        decided = threading.Semaphore(0)
        lock = threading.Lock()
        permitted: list[int] = []
        rejected: list[float] = []

        def probe(index: int) -> None:
            with lock:
                permitted.append(index)
            decided.release()
            assert finish.wait(THREAD_TIMEOUT)  # hold the probe slot until every thread has tried

        def worker(index: int) -> None:
            start.wait(THREAD_TIMEOUT)
            try:
                cb.call(probe, index)
            except brace.CircuitOpen as error:
                with lock:
                    rejected.append(error.retry_after)
                decided.release()

        threads = [threading.Thread(target=worker, args=(index,)) for index in range(8)]
        for thread in threads:
            thread.start()
        try:
            for _ in range(8):
                assert decided.acquire(timeout=THREAD_TIMEOUT), "a thread was neither permitted nor rejected"
            assert cb.state is HALF_OPEN
            assert len(permitted) == half_open_calls
            assert len(rejected) == 8 - half_open_calls
        finally:
            finish.set()
            for thread in threads:
                thread.join(THREAD_TIMEOUT)
        assert cb.state is CLOSED  # every probe succeeded


# -- found bugs (see each docstring) ------------------------------------------------


def test_the_retry_after_of_a_half_open_timeout_uses_the_wait_function(clock: FakeClock) -> None:
    """The call that re-opens a wedged half-open is told retry_after of the new
    wait: wait_in_open(2) here, as time_until_half_open reports."""
    cb = CircuitBreaker(name="api", consecutive_failures=1, half_open_calls=1, wait_in_open=lambda n: 5.0 * n,
                        max_wait_in_half_open=1.0)  # fmt: skip
    open_breaker(cb)
    clock.advance(5.0)
    with cb:  # the probe hangs past max_wait_in_half_open
        clock.advance(1.0)
        error = rejection(cb)
    assert cb.metrics().time_until_half_open == 10.0
    assert error.retry_after == 10.0


def test_a_half_open_never_inherits_the_probe_tally_of_an_earlier_one(clock: FakeClock) -> None:
    """A half-open left with probes outstanding (here by close()) must not lend its
    tally to a later half-open, however many transitions later it comes."""
    cb = half_opened(clock, half_open_calls=2)
    attempt(cb, "S")  # probe 1 of 2 of this half-open
    abandoned = cb._report()[1]  # its generation
    cb.close()
    # Each close() is one transition; the next half-open comes two transitions
    # after the last of them (CLOSED -> OPEN -> HALF_OPEN).
    while (cb._report()[1] + 2 - abandoned) % 65536:
        cb.close()
    open_breaker(cb)
    clock.advance(10.0)
    attempt(cb, "S")  # probe 1 of 2 of a new half-open
    assert cb.state is HALF_OPEN
    attempt(cb, "S")
    assert cb.state is CLOSED
