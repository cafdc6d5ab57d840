"""CircuitBreaker's API: the ways to guard a call, events, metrics, bad input.

The state machine itself is covered by test_breaker_scenarios.py (resilience4j's
documented scenarios) and test_breaker_model.py (properties against a model).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import pickle
import threading
import traceback
from datetime import timedelta
from typing import Any

import pytest

import brace
from brace import BreakerEvent, BreakerState, CircuitBreaker
from brace.testing import FakeClock


def tripping(**overrides: Any) -> CircuitBreaker:
    """A breaker that opens after 2 failures of 4 calls and waits 10 s."""
    settings: dict[str, Any] = {"name": "api", "window_size": 4, "minimum_calls": 4, "wait_in_open": 10.0,
                                "half_open_calls": 1}  # fmt: skip
    settings.update(overrides)
    return CircuitBreaker(**settings)


def fail() -> None:
    raise ConnectionError("reset by peer")


def open_it(cb: CircuitBreaker) -> None:
    for outcome in (fail, fail, int, int):
        try:
            cb.call(outcome)
        except ConnectionError:
            pass
    assert cb.state is BreakerState.OPEN


class TestWaysToGuardACall:
    def test_decorator_keeps_the_function_s_face(self) -> None:
        cb = tripping()

        def fetch(key: str, *, page: int = 1) -> str:
            """Fetches a page."""
            return f"{key}:{page}"

        guarded = cb(fetch)
        assert guarded("a", page=2) == "a:2"
        assert inspect.signature(guarded) == inspect.signature(fetch)
        assert (guarded.__name__, guarded.__doc__, guarded.__wrapped__) == ("fetch", "Fetches a page.", fetch)  # type: ignore[attr-defined]
        assert guarded.guarded_by is cb  # type: ignore[attr-defined]
        assert "fetch" in repr(guarded)

    def test_decorated_methods_bind(self) -> None:
        cb = tripping()

        class Client:
            def __init__(self) -> None:
                self.base = "https://x"

            @cb
            def get(self, path: str) -> str:
                return self.base + path

        client = Client()
        assert client.get("/a") == "https://x/a"
        assert Client.get(client, "/b") == "https://x/b"
        assert cb.metrics().calls == 2

    def test_call_and_context_manager(self) -> None:
        cb = tripping()
        assert cb.call(lambda a, b=0: a + b, 1, b=2) == 3
        with cb as entered:
            assert entered is cb
        with pytest.raises(ConnectionError):
            with cb:
                fail()
        assert (cb.metrics().calls, cb.metrics().failures) == (3, 1)

    def test_async_decorator_call_and_context_manager(self) -> None:
        cb = tripping()

        @cb
        async def fetch(key: str) -> str:
            await asyncio.sleep(0)
            return key

        async def failing() -> None:
            await asyncio.sleep(0)
            fail()

        async def scenario() -> None:
            assert await fetch("a") == "a"
            assert await cb.call_async(fetch.__wrapped__, "b") == "b"  # type: ignore[attr-defined]
            async with cb:
                await asyncio.sleep(0)
            with pytest.raises(ConnectionError):
                await cb.call_async(failing)

        assert inspect.iscoroutinefunction(fetch)
        asyncio.run(scenario())
        assert (cb.metrics().calls, cb.metrics().failures) == (4, 1)

    def test_context_managers_nest_and_interleave_across_tasks(self) -> None:
        cb = tripping(window_size=20, minimum_calls=20)

        async def worker(delay: int, fails: bool) -> None:
            async with cb:
                for _ in range(delay):
                    await asyncio.sleep(0)
                with cb:
                    pass
                if fails:
                    raise ConnectionError

        async def scenario() -> list[object]:
            return await asyncio.gather(*(worker(d, d % 2 == 0) for d in range(6)), return_exceptions=True)

        results = asyncio.run(scenario())
        assert sum(isinstance(r, ConnectionError) for r in results) == 3
        assert (cb.metrics().calls, cb.metrics().failures) == (12, 3)

    def test_the_exception_reaches_the_caller_untouched(self) -> None:
        cb = tripping()
        error = ConnectionError("boom")

        @cb
        def raising() -> None:
            raise error

        with pytest.raises(ConnectionError) as info:
            raising()
        assert info.value is error
        frames = [frame.name for frame in traceback.extract_tb(info.value.__traceback__)]
        assert frames[-1] == "raising"


class TestRejection:
    def test_open_rejects_with_name_and_retry_after(self, clock: FakeClock) -> None:
        cb = tripping()
        open_it(cb)
        clock.advance(4.0)
        with pytest.raises(brace.CircuitOpen) as info:
            cb.call(int)
        assert info.value.name == "api"
        assert info.value.retry_after == pytest.approx(6.0, abs=1e-3)
        assert str(info.value) == "circuit breaker 'api' is open; retry after 6 s"
        assert isinstance(info.value, brace.BraceError)
        assert cb.metrics().not_permitted == 1

    def test_the_rejected_function_does_not_run(self, clock: FakeClock) -> None:
        cb = tripping()
        open_it(cb)
        ran = []
        with pytest.raises(brace.CircuitOpen):
            cb(lambda: ran.append(1))()
        assert ran == []

    def test_forced_open_retry_after_is_infinite(self) -> None:
        cb = tripping()
        cb.force_open()
        with pytest.raises(brace.CircuitOpen, match="is forced open") as info:
            cb.call(int)
        assert info.value.retry_after == float("inf")

    def test_circuit_open_pickles(self) -> None:
        error = brace.CircuitOpen(name="x", retry_after=2.5)
        copy = pickle.loads(pickle.dumps(error))
        assert (copy.name, copy.retry_after, str(copy)) == ("x", 2.5, str(error))


class TestCancellationAndIgnoredErrors:
    def test_cancellation_is_not_a_failure_and_frees_the_probe(self, clock: FakeClock) -> None:
        cb = tripping()
        open_it(cb)
        clock.advance(10.0)
        started = asyncio.Event()

        @cb
        async def hang() -> None:
            started.set()
            await asyncio.sleep(3600)

        async def scenario() -> None:
            probe = asyncio.ensure_future(hang())
            await asyncio.wait_for(started.wait(), timeout=30)
            assert cb.state is BreakerState.HALF_OPEN
            with pytest.raises(brace.CircuitOpen):  # the only probe slot is taken
                await cb.call_async(asyncio.sleep, 0)
            probe.cancel()
            with pytest.raises(asyncio.CancelledError):
                await probe
            await cb.call_async(asyncio.sleep, 0)  # the slot came back: a successful probe

        asyncio.run(scenario())
        assert cb.state is BreakerState.CLOSED
        assert cb.metrics().failures == 0

    def test_keyboard_interrupt_counts_as_nothing(self) -> None:
        cb = tripping()

        def interrupted() -> None:
            raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            cb.call(interrupted)
        assert cb.metrics().calls == 0

    @pytest.mark.parametrize(
        "ignore", [ValueError, (KeyError, ValueError), lambda error: "ignore me" in str(error)]
    )
    def test_ignored_errors_count_as_nothing(self, ignore: Any) -> None:
        cb = tripping(ignore=ignore)
        with pytest.raises(ValueError):
            cb.call(lambda: (_ for _ in ()).throw(ValueError("ignore me")))
        assert cb.metrics().calls == 0

    @pytest.mark.parametrize("record", [ConnectionError, (ConnectionError, TimeoutError), lambda e: isinstance(e, OSError)])
    def test_unrecorded_errors_count_as_successes(self, record: Any) -> None:
        cb = tripping(record=record)
        for error in (ConnectionError(), KeyError()):
            with pytest.raises(type(error)):
                cb.call(lambda: (_ for _ in ()).throw(error))
        assert (cb.metrics().calls, cb.metrics().failures) == (2, 1)

    def test_record_result_counts_values_as_failures(self) -> None:
        cb = tripping(record_result=lambda response: response["status"] >= 500)
        assert cb.call(lambda: {"status": 503}) == {"status": 503}
        assert cb.call(lambda: {"status": 200}) == {"status": 200}
        assert (cb.metrics().calls, cb.metrics().failures) == (2, 1)


class TestEvents:
    def test_transitions_in_order(self, clock: FakeClock) -> None:
        cb = tripping()
        seen: list[brace.BreakerEvent] = []
        cb.add_listener(seen.append, kinds=["state_transition"])
        open_it(cb)
        clock.advance(10.0)
        cb.call(int)
        transitions = [(e.from_state, e.to_state) for e in seen]
        assert transitions == [
            (BreakerState.CLOSED, BreakerState.OPEN),
            (BreakerState.OPEN, BreakerState.HALF_OPEN),
            (BreakerState.HALF_OPEN, BreakerState.CLOSED),
        ]
        assert all(e.name == e.breaker == "api" and e.kind == "state_transition" for e in seen)

    def test_every_kind(self, clock: FakeClock) -> None:
        cb = tripping(ignore=KeyError)
        seen: list[str] = []
        cb.add_listener(lambda e: seen.append(e.kind))
        cb.call(int)
        with pytest.raises(KeyError):
            cb.call(lambda: {}["x"])
        for _ in range(2):
            with pytest.raises(ConnectionError):
                cb.call(fail)
        cb.call(int)  # the 4th recorded call: 2 of 4 failed, it opens
        with pytest.raises(brace.CircuitOpen):
            cb.call(int)
        assert seen == ["success", "ignored_error", "error", "error", "state_transition", "success", "not_permitted"]

    def test_metrics_only_reports_would_open(self) -> None:
        cb = tripping()
        cb.metrics_only()
        seen: list[str] = []
        cb.add_listener(lambda e: seen.append(e.kind), kinds=["would_open"])
        for _ in range(6):
            with pytest.raises(ConnectionError):
                cb.call(fail)
        assert cb.state is BreakerState.METRICS_ONLY
        assert seen == ["would_open"] * 3

    def test_a_failing_listener_is_logged_not_raised(self, caplog: pytest.LogCaptureFixture) -> None:
        cb = tripping()

        def broken(event: brace.BreakerEvent) -> None:
            raise RuntimeError("listener bug")

        cb.add_listener(broken)
        with caplog.at_level(logging.ERROR, logger="brace"):
            assert cb.call(lambda: 7) == 7
        assert "a listener (TestEvents.test_a_failing_listener_is_logged_not_raised.<locals>.broken) of breaker " \
               "'api' failed on a 'success' event" in caplog.text  # fmt: skip

    def test_remove_listener(self) -> None:
        cb = tripping()
        seen: list[str] = []
        cb.add_listener(seen.append)  # type: ignore[arg-type]
        cb.remove_listener(seen.append)  # type: ignore[arg-type]
        cb.call(int)
        assert seen == []
        with pytest.raises(ValueError, match="was not added"):
            cb.remove_listener(seen.append)  # type: ignore[arg-type]

    def test_bad_listeners(self) -> None:
        cb = tripping()
        with pytest.raises(TypeError, match="listener must be callable"):
            cb.add_listener(3)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="kinds must be among"):
            cb.add_listener(print, kinds=["opened"])  # type: ignore[list-item]


class TestMetricsAndOverrides:
    def test_metrics(self, clock: FakeClock) -> None:
        cb = tripping(slow_call_duration=0.5)

        def slow() -> None:
            clock.advance(0.6)

        cb.call(int)
        cb.call(slow)
        metrics = cb.metrics()
        assert (metrics.calls, metrics.slow_calls, metrics.failure_rate) == (2, 1, None)  # below minimum_calls
        with pytest.raises(ConnectionError):
            cb.call(fail)
        cb.call(int)
        metrics = cb.metrics()
        assert (metrics.failure_rate, metrics.slow_call_rate, metrics.state) == (0.25, 0.25, BreakerState.CLOSED)
        assert metrics.time_until_half_open == 0.0

    def test_overrides_and_reset(self, clock: FakeClock) -> None:
        cb = tripping()
        open_it(cb)
        with pytest.raises(brace.CircuitOpen):
            cb.call(int)
        assert cb.metrics().openings == 1 and cb.metrics().time_until_half_open == pytest.approx(10.0, abs=1e-3)
        cb.disable()
        for _ in range(10):
            with pytest.raises(ConnectionError):
                cb.call(fail)
        assert cb.state is BreakerState.DISABLED
        cb.close()
        assert (cb.state, cb.metrics().calls, cb.metrics().not_permitted) == (BreakerState.CLOSED, 0, 1)
        cb.reset()
        assert cb.metrics().not_permitted == 0
        assert cb.calls() == brace.BreakerCalls(successful=0, failed=0, slow=0, ignored=0, not_permitted=0)
        assert repr(cb) == "CircuitBreaker(name='api', state=closed, window=count:4)"


class TestCallsSinceMade:
    """calls(): totals by kind that outlive the window (resilience4j_circuitbreaker_calls)."""

    def test_every_form_and_outcome_counts_once(self, clock: FakeClock) -> None:
        cb = tripping(window_size=100, minimum_calls=100, slow_call_duration=0.5, ignore=KeyError)

        def slow() -> None:
            clock.advance(0.6)

        def missing() -> None:
            raise KeyError("id")

        def interrupted() -> None:
            raise KeyboardInterrupt

        guarded = cb(int)
        guarded()
        cb.call(int)
        with cb:
            pass
        cb.call(slow)
        for outcome, error in ((fail, ConnectionError), (missing, KeyError), (interrupted, KeyboardInterrupt)):
            with pytest.raises(error):
                cb.call(outcome)
        with pytest.raises(ConnectionError):
            with cb:
                clock.advance(0.6)
                fail()

        async def awaited() -> None:
            await cb.call_async(asyncio.sleep, 0)
            async with cb:
                pass

        asyncio.run(awaited())
        cb.force_open()
        with pytest.raises(brace.CircuitOpen):
            guarded()
        assert cb.calls() == brace.BreakerCalls(successful=6, failed=2, slow=2, ignored=1, not_permitted=1)

    def test_counts_outlive_the_window_and_its_closing(self, clock: FakeClock) -> None:
        cb = tripping()
        open_it(cb)  # 2 failed, 2 successful: the window opens the breaker
        clock.advance(10.0)
        cb.call(int)  # the probe closes it, with an empty window
        assert cb.metrics().calls == 0
        assert cb.calls()[:2] == (3, 2)


class TestReconfigure:
    """reconfigure(): settings change on a breaker in use; its state and counts stay."""

    def test_new_thresholds_decide_over_the_window_as_it_stands(self) -> None:
        cb = tripping(window_size=20, minimum_calls=10)
        for outcome in [fail] * 3 + [int] * 7:  # 30%: below 50%
            try:
                cb.call(outcome)
            except ConnectionError:
                pass
        cb.reconfigure(failure_rate_threshold=0.25)
        assert (cb.state, cb.metrics().calls, cb.failure_rate_threshold) == (BreakerState.CLOSED, 10, 0.25)
        cb.call(int)  # 3 of 11: 27%
        assert cb.state is BreakerState.OPEN

    def test_an_open_breaker_keeps_its_wait_and_the_next_opening_takes_the_new_one(self, clock: FakeClock) -> None:
        cb = tripping()
        open_it(cb)
        clock.advance(4.0)
        cb.reconfigure(wait_in_open=1.0)
        assert cb.state is BreakerState.OPEN
        assert cb.metrics().time_until_half_open == pytest.approx(6.0)
        clock.advance(6.0)
        with pytest.raises(ConnectionError):
            cb.call(fail)  # the one probe fails: open again, now for 1 s
        assert cb.metrics().time_until_half_open == pytest.approx(1.0)

    def test_a_resized_count_window_keeps_its_newest_outcomes(self) -> None:
        cb = tripping(window_size=10, minimum_calls=10)
        for outcome in [fail] * 3 + [int] * 5:
            try:
                cb.call(outcome)
            except ConnectionError:
                pass
        cb.reconfigure(window_size=4, minimum_calls=4)  # the newest 4: all successes
        assert (cb.metrics().calls, cb.metrics().failures) == (4, 0)
        cb.reconfigure(window_size=100)
        assert (cb.metrics().calls, cb.metrics().failures) == (4, 0)
        cb.reconfigure(window="time", window_size=10)  # a time window keeps totals, not outcomes: it starts empty
        assert cb.metrics().calls == 0
        assert repr(cb) == "CircuitBreaker(name='api', state=closed, window=time:10)"

    def test_lowering_the_probes_decides_a_half_open_at_once(self, clock: FakeClock) -> None:
        cb = tripping(half_open_calls=3)
        seen: list[BreakerEvent] = []
        open_it(cb)
        cb.add_listener(seen.append, kinds="state_transition")
        clock.advance(10.0)
        cb.call(int)
        cb.call(int)
        assert cb.state is BreakerState.HALF_OPEN
        cb.reconfigure(half_open_calls=2)
        assert cb.state is BreakerState.CLOSED
        assert [(event.from_state, event.to_state) for event in seen] == [
            (BreakerState.OPEN, BreakerState.HALF_OPEN), (BreakerState.HALF_OPEN, BreakerState.CLOSED)]

    def test_a_call_begun_untimed_is_not_slow(self, clock: FakeClock) -> None:
        cb = tripping()
        with cb:
            cb.reconfigure(slow_call_duration=0.5)
            clock.advance(1.0)
        assert cb.metrics().slow_calls == 0
        with cb:
            clock.advance(1.0)
        assert cb.metrics().slow_calls == 1

    def test_filters_and_predicates_change(self) -> None:
        cb = tripping(window_size=100, minimum_calls=100)
        cb.reconfigure(ignore=ConnectionError, record_result=lambda value: value == 0)
        with pytest.raises(ConnectionError):
            cb.call(fail)
        cb.call(int)  # 0: a failure now
        assert (cb.calls().ignored, cb.calls().failed) == (1, 1)
        cb.reconfigure(ignore=(), record_result=None)
        cb.call(int)
        assert cb.calls().successful == 1

    @pytest.mark.parametrize(
        ("changes", "error", "message"),
        [
            ({"failure_rate_threshold": 1.5}, ValueError, "failure_rate_threshold must be a number in"),
            ({"minimum_calls": 5}, ValueError, "minimum_calls must be at most window_size"),
            ({"window_size": 2}, ValueError, "minimum_calls must be at most window_size"),
            ({"half_open_calls": 0}, ValueError, "half_open_calls"),
            ({"record_result": 3}, TypeError, "record_result must be a predicate"),
        ],
    )
    def test_bad_settings_change_nothing(self, changes: dict[str, Any], error: type[Exception], message: str) -> None:
        cb = tripping()
        cb.call(int)
        with pytest.raises(error, match=message):
            cb.reconfigure(**changes)
        assert (cb.failure_rate_threshold, cb.metrics().calls) == (0.5, 1)
        assert repr(cb) == "CircuitBreaker(name='api', state=closed, window=count:4)"
        with pytest.raises(TypeError):
            cb.reconfigure(0.9)  # type: ignore[misc]


def test_no_lock_is_held_while_the_function_runs() -> None:
    """8 threads are inside one breaker's function at once (a barrier proves it)."""
    cb = CircuitBreaker(name="shared")
    inside = threading.Barrier(8, timeout=30)

    @cb
    def rendezvous() -> int:
        return inside.wait()

    results: list[int] = []
    threads = [threading.Thread(target=lambda: results.append(rendezvous())) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == list(range(8))
    assert cb.metrics().calls == 8


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"failure_rate_threshold": 0}, ValueError, "failure_rate_threshold must be a number in (0, 1], got 0"),
        ({"failure_rate_threshold": 1.5}, ValueError, "failure_rate_threshold must be a number in (0, 1]"),
        ({"failure_rate_threshold": float("nan")}, ValueError, "failure_rate_threshold must be a number in (0, 1]"),
        ({"failure_rate_threshold": "0.5"}, TypeError, "failure_rate_threshold must be a number"),
        ({"slow_call_rate_threshold": 0}, ValueError, "slow_call_rate_threshold must be a number in (0, 1]"),
        ({"slow_call_duration": -1}, ValueError, "slow_call_duration must be a finite number of seconds from 1e-09 to 4.61169e+09, or None"),
        ({"slow_call_duration": 0}, ValueError, "slow_call_duration must be a finite number of seconds from 1e-09 to 4.61169e+09, or None"),
        ({"window": "sliding"}, ValueError, "window must be 'count' or 'time'"),
        ({"window_size": 0}, ValueError, "window_size must be an int from 1 to 16384, got 0"),
        ({"window_size": 16385, "minimum_calls": 1}, ValueError, "window_size must be an int from 1 to 16384"),
        ({"window": "time", "window_size": 3601, "minimum_calls": 1}, ValueError, "window_size must be an int from 1 to 3600"),
        ({"window_bucket": 0}, ValueError, "window_bucket must be a finite number of seconds from 1e-09 to 4.61169e+09"),
        ({"minimum_calls": 0}, ValueError, "minimum_calls must be an int from 1 to 2**32 - 1, got 0"),
        ({"window_size": 10}, ValueError, "minimum_calls must be at most window_size (10) for a count window"),
        ({"wait_in_open": -1}, ValueError, "wait_in_open must be a finite number of seconds from 1e-09 to 4.61169e+09"),
        ({"wait_in_open": float("inf")}, ValueError, "wait_in_open must be a finite number"),
        ({"wait_in_open": 0}, ValueError, "wait_in_open must be a finite number of seconds from 1e-09 to 4.61169e+09"),
        ({"wait_in_open": lambda n: -1}, ValueError, "wait_in_open(openings) must be a finite number of seconds from 1e-09 to 4.61169e+09"),
        ({"wait_in_open_multiplier": 0.5}, ValueError, "wait_in_open_multiplier must be a finite number >= 1"),
        ({"max_wait_in_open": 1, "wait_in_open": 5}, ValueError, "max_wait_in_open must be >= wait_in_open (5 s)"),
        ({"wait_in_open_jitter": 1}, ValueError, "wait_in_open_jitter must be a number in [0, 1)"),
        ({"half_open_calls": 0}, ValueError, "half_open_calls must be an int from 1 to 1023, got 0"),
        ({"half_open_calls": 1024}, ValueError, "half_open_calls must be an int from 1 to 1023"),
        ({"max_wait_in_half_open": -2}, ValueError, "max_wait_in_half_open must be a finite number of seconds from 1e-09 to 4.61169e+09, or None"),
        ({"consecutive_failures": 0}, ValueError, "consecutive_failures must be an int from 1 to 2**63 - 1, got 0"),
        ({"consecutive_failures": 2.0}, TypeError, "consecutive_failures must be an int from 1 to 2**63 - 1, got float"),
        ({"record": "ConnectionError"}, TypeError, "record must be an exception type, a tuple of them, or a predicate"),
        ({"ignore": (ValueError, 3)}, TypeError, "ignore must be an exception type, a tuple of them, or a predicate"),
        ({"record_result": 5}, TypeError, "record_result must be a predicate or None"),
        ({"name": 5}, TypeError, "name must be a str or None"),
    ],
)
def test_bad_configuration(kwargs: dict[str, Any], error: type[Exception], message: str) -> None:
    import re

    with pytest.raises(error, match=f"^{re.escape(message)}"):
        CircuitBreaker(**kwargs)


def test_configuration_accepts_timedeltas_and_callables(clock: FakeClock) -> None:
    waits: list[int] = []

    def wait(openings: int) -> timedelta:
        waits.append(openings)
        return timedelta(seconds=5 * openings)

    cb = tripping(wait_in_open=wait, slow_call_duration=timedelta(milliseconds=100),
                  max_wait_in_half_open=timedelta(minutes=1), window_bucket=timedelta(seconds=2))  # fmt: skip
    open_it(cb)
    assert cb.metrics().time_until_half_open == pytest.approx(5.0, abs=1e-3)
    assert waits[-1] == 1


def test_decorating_a_non_callable_is_a_type_error() -> None:
    cb = tripping()
    with pytest.raises(TypeError, match="a CircuitBreaker decorates callables, got int"):
        cb(3)  # type: ignore[arg-type]
