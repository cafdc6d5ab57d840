"""brace.Hedge: each mode, sync and async, driven by events (which attempt ends first is
decided by the test), on brace's fake clock without autojump: the clock moves only when
an attempt moves it, so a hedge starts exactly when the test says."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

import brace
from brace.testing import FakeClock

WAIT = 30.0  # a guard against hangs, never a measure


@pytest.fixture
def still_clock() -> Iterator[FakeClock]:
    with brace.testing.fake_clock(autojump=None) as frozen:
        yield frozen


class Recorder:
    """A hedge's events, with a wait for a number of events of one kind."""

    def __init__(self, hedge: brace.Hedge) -> None:
        self.events: list[brace.HedgeEvent] = []
        self.lock = threading.Condition()
        hedge.add_listener(self)

    def __call__(self, event: brace.HedgeEvent) -> None:
        with self.lock:
            self.events.append(event)
            self.lock.notify_all()

    def wait_for(self, kind: str, count: int = 1) -> None:
        with self.lock:
            arrived = self.lock.wait_for(lambda: sum(e.kind == kind for e in self.events) >= count, WAIT)
        assert arrived, f"fewer than {count} {kind!r} events"

    def kinds(self) -> list[tuple[str, int]]:
        with self.lock:
            return [(event.kind, event.attempt) for event in self.events]


# -- latency mode, sync -------------------------------------------------------


def test_a_slow_primary_gets_a_hedge_and_the_hedge_wins(still_clock: FakeClock) -> None:
    hedge = brace.Hedge(delay=1.0)
    seen = Recorder(hedge)
    release = threading.Event()
    calls: list[str] = []

    def fetch() -> str:
        if not calls:
            calls.append("primary")
            still_clock.advance(1.5)  # slower than the delay
            release.wait(WAIT)
            raise ConnectionError("the primary, late")
        calls.append("hedge")
        return "hedge"

    assert hedge.call(fetch) == "hedge"
    assert seen.kinds() == [("hedged", 1), ("won", 1), ("cancelled", 0)]
    assert seen.events[0].reason == "slow"
    release.set()
    seen.wait_for("late")  # the loser's error is told, never raised
    late = seen.events[-1]
    assert late.attempt == 0 and isinstance(late.error, ConnectionError) and late.elapsed is not None


def test_a_fast_primary_is_not_hedged(still_clock: FakeClock) -> None:
    hedge = brace.Hedge(delay=1.0, max_hedged=3)
    seen = Recorder(hedge)
    assert hedge.call(lambda: 42) == 42
    assert seen.kinds() == [("won", 0)]


def test_a_failure_starts_the_next_attempt_at_once(still_clock: FakeClock) -> None:
    hedge = brace.Hedge(delay=60.0, on=ConnectionError)
    seen = Recorder(hedge)
    attempts: list[int] = []

    def fetch() -> str:
        attempts.append(len(attempts))
        if len(attempts) == 1:
            raise ConnectionError("reset")
        return "ok"

    assert hedge.call(fetch) == "ok"
    assert seen.kinds() == [("failed", 0), ("hedged", 1), ("won", 1)]
    assert seen.events[1].reason == "failed"


def test_when_all_fail_the_primarys_failure_is_raised_with_notes(still_clock: FakeClock) -> None:
    hedge = brace.Hedge(delay=60.0, max_hedged=2)
    lock = threading.Lock()
    count = [0]

    def fetch() -> None:
        with lock:
            count[0] += 1
            number = count[0]
        raise ConnectionError(f"attempt {number}")

    with pytest.raises(ConnectionError, match="attempt 1") as raised:
        hedge.call(fetch)
    notes = getattr(raised.value, "__notes__", [])
    assert len(notes) == 2 and "attempt 2" in notes[0] and "attempt 3" in notes[1]


def test_a_failure_on_does_not_accept_is_final(still_clock: FakeClock) -> None:
    hedge = brace.Hedge(delay=60.0, on=ConnectionError)
    seen = Recorder(hedge)
    with pytest.raises(KeyError):
        hedge.call(lambda: {}["missing"])
    assert seen.kinds() == [("won", 0)]
    assert isinstance(seen.events[0].error, KeyError)


def test_a_predicate_decides_too(still_clock: FakeClock) -> None:
    hedge = brace.Hedge(delay=60.0, on=lambda error: "retryable" in str(error))
    outcomes = iter([ValueError("retryable"), "ok"])

    def fetch() -> object:
        outcome = next(outcomes)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    assert hedge.call(fetch) == "ok"


def test_latencies_go_to_the_histogram_and_set_a_percentile_delay(still_clock: FakeClock) -> None:
    histogram = brace.LatencyHistogram(min_samples=5)
    hedge = brace.Hedge(delay="p90", histogram=histogram, initial_delay=3.0, min_delay=0.002)
    assert hedge.current_delay() == 3.0  # not filled yet

    def fetch() -> None:
        still_clock.advance(0.010)

    for _ in range(5):
        hedge.call(fetch)
    assert histogram.count == 5
    assert abs(hedge.current_delay() - 0.010) <= 0.010 / 16
    for _ in range(100):  # p90 is now one of these
        histogram.record(0.0001)
    assert hedge.current_delay() == 0.002  # never below min_delay


def test_a_percentile_in_a_spike_of_slow_latencies_steps_below_it(still_clock: FakeClock) -> None:
    histogram = brace.LatencyHistogram(min_samples=1)
    hedge = brace.Hedge(delay="p95", histogram=histogram)
    for _ in range(94):
        histogram.record(0.002)
    for _ in range(6):  # 6% alike at 40 ms: the 95th and the 97.5th percentiles both in their bucket
        histogram.record(0.040)
    assert histogram.percentile(95) == histogram.percentile(97.5) == pytest.approx(0.040, rel=0.07)
    assert hedge.current_delay() == histogram.percentile(90) == pytest.approx(0.002, rel=0.07)
    for spread in range(1, 40):  # a tail spread over many buckets: the plain percentile
        histogram.record(0.040 + spread * 0.050)
    assert hedge.current_delay() == histogram.percentile(95)


def test_a_percentile_delay_makes_its_own_histogram() -> None:
    hedge = brace.Hedge(delay="p99.9")
    assert hedge.histogram is not None and hedge.delay == "p99.9"
    assert brace.Hedge(delay=0.5).histogram is None


def test_an_executor_runs_the_attempts(still_clock: FakeClock) -> None:
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="mine") as pool:
        hedge = brace.Hedge(delay=1.0, executor=pool)
        assert hedge.call(threading.current_thread).name.startswith("mine")


# -- fallback and parallel modes, sync ----------------------------------------


def test_fallback_mode_runs_one_attempt_at_a_time_in_the_caller(still_clock: FakeClock) -> None:
    hedge = brace.Hedge(mode="fallback", max_hedged=3, delay=0.0)
    seen = Recorder(hedge)
    threads: list[threading.Thread] = []

    def fetch() -> str:
        threads.append(threading.current_thread())
        if len(threads) < 3:
            raise TimeoutError("slow")
        return "third"

    assert hedge.call(fetch) == "third"
    assert threads == [threading.current_thread()] * 3
    assert seen.kinds() == [("failed", 0), ("hedged", 1), ("failed", 1), ("hedged", 2), ("won", 2)]


def test_parallel_mode_starts_every_attempt_at_once(still_clock: FakeClock) -> None:
    hedge = brace.Hedge(mode="parallel", max_hedged=2)
    together = threading.Barrier(3)
    release = threading.Event()
    seen = Recorder(hedge)

    def fetch() -> str:
        index = together.wait(WAIT)  # all three run at once, or this breaks
        if index == 0:
            return "first"
        release.wait(WAIT)
        return "loser"

    assert hedge.call(fetch) == "first"
    assert seen.kinds()[:2] == [("hedged", 1), ("hedged", 2)]
    assert len([kind for kind, _ in seen.kinds() if kind == "cancelled"]) == 2
    release.set()
    seen.wait_for("late", 2)
    with seen.lock:
        assert sorted(e.attempt for e in seen.events if e.kind in ("won", "late")) == [0, 1, 2]


def test_an_exhausted_budget_stops_hedging(still_clock: FakeClock) -> None:
    budget = brace.RetryBudget(ratio=0.001, min_per_second=0)
    hedge = brace.Hedge(delay=60.0, budget=budget)
    seen = Recorder(hedge)
    with pytest.raises(ConnectionError, match="primary"):
        hedge.call(lambda: (_ for _ in ()).throw(ConnectionError("primary")))
    assert seen.kinds() == [("failed", 0), ("budget_exhausted", 1), ("won", 0)]


def test_a_budget_with_tokens_allows_hedges(still_clock: FakeClock) -> None:
    budget = brace.RetryBudget(ratio=1.0, min_per_second=0)
    hedge = brace.Hedge(delay=60.0, budget=budget, max_hedged=1)
    outcomes = iter([ConnectionError("x"), "ok"])

    def fetch() -> object:
        outcome = next(outcomes)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    assert hedge.call(fetch) == "ok"
    assert budget.balance == 0.0  # one call deposited 1, one hedge withdrew 1


# -- async --------------------------------------------------------------------


def test_async_a_slow_primary_is_cancelled_and_awaited(still_clock: FakeClock) -> None:
    hedge = brace.Hedge(delay=1.0)
    seen = Recorder(hedge)
    cancelled: list[int] = []

    async def fetch(forever: asyncio.Event) -> str:
        if not seen.events:
            still_clock.advance(1.5)
            try:
                await forever.wait()
            except asyncio.CancelledError:
                cancelled.append(0)
                raise
        return "hedge"

    async def main() -> str:
        result = await hedge.call_async(fetch, asyncio.Event())
        assert cancelled == [0]  # cancelled and awaited before the call returned
        assert len(asyncio.all_tasks()) == 1
        return result

    assert asyncio.run(main()) == "hedge"
    assert seen.kinds() == [("hedged", 1), ("won", 1), ("cancelled", 0)]


def test_async_all_fail_raises_the_primarys_failure(still_clock: FakeClock) -> None:
    hedge = brace.Hedge(delay=60.0, max_hedged=2)
    numbers = iter(range(3))

    async def fetch() -> None:
        raise ConnectionError(f"attempt {next(numbers)}")

    with pytest.raises(ConnectionError, match="attempt 0") as raised:
        asyncio.run(hedge.call_async(fetch))
    assert len(getattr(raised.value, "__notes__", [])) == 2


def test_async_parallel_first_success_wins(still_clock: FakeClock) -> None:
    hedge = brace.Hedge(mode="parallel", max_hedged=2)
    seen = Recorder(hedge)

    async def main() -> str:
        gate = asyncio.Event()
        started: list[int] = []

        async def fetch() -> str:
            started.append(len(started))
            if len(started) == 3:
                gate.set()
                return "last started"
            await gate.wait()
            await asyncio.Event().wait()  # never: cancelled
            return "never"

        return await hedge.call_async(fetch)

    assert asyncio.run(main()) == "last started"
    assert sorted(seen.kinds()) == [("cancelled", 0), ("cancelled", 1), ("hedged", 1), ("hedged", 2), ("won", 2)]


def test_async_fallback_mode(still_clock: FakeClock) -> None:
    hedge = brace.Hedge(mode="fallback", max_hedged=1)
    outcomes = iter([TimeoutError("x"), "ok"])

    async def fetch() -> object:
        outcome = next(outcomes)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    assert asyncio.run(hedge.call_async(fetch)) == "ok"


def test_a_cancelled_caller_cancels_every_attempt(still_clock: FakeClock) -> None:
    hedge = brace.Hedge(mode="parallel", max_hedged=1)
    cancelled: list[str] = []

    async def fetch() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.append("attempt")
            raise

    async def main() -> None:
        task = asyncio.ensure_future(hedge.call_async(fetch))
        while len(asyncio.all_tasks()) < 4:  # main, the call, two attempts
            await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert cancelled == ["attempt", "attempt"]

    asyncio.run(main())


# -- the forms every primitive has ----------------------------------------------


def test_decorators_keep_working_sync_and_async(still_clock: FakeClock) -> None:
    hedge = brace.Hedge(delay=1.0)

    @hedge
    def double(x: int) -> int:
        return 2 * x

    @hedge
    async def triple(x: int) -> int:
        return 3 * x

    assert double(2) == 4 and double.guarded_by is hedge  # type: ignore[attr-defined]
    assert asyncio.run(triple(2)) == 6
    assert hedge(double) is double
    assert hedge.call(double, 5) == 10  # guarded once, not twice


def test_the_sync_call_refuses_a_coroutine_function() -> None:
    async def fetch() -> None:
        pass

    with pytest.raises(TypeError, match="call_async"):
        brace.Hedge().call(fetch)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"delay": -1.0}, ValueError, "delay"),
        ({"delay": "p100"}, ValueError, r'delay must be seconds, a timedelta or a percentile .*"p95"'),
        ({"delay": "p0"}, ValueError, "delay"),
        ({"delay": "fast"}, ValueError, "delay"),
        ({"delay": [1]}, TypeError, "delay"),
        ({"max_hedged": 0}, ValueError, "max_hedged must be an int from 1 to 10"),
        ({"max_hedged": 11}, ValueError, "max_hedged must be an int from 1 to 10"),
        ({"max_hedged": True}, TypeError, "max_hedged"),
        ({"mode": "eager"}, ValueError, "mode must be one of 'latency', 'fallback', 'parallel'"),
        ({"mode": 1}, TypeError, "mode"),
        ({"on": 3}, TypeError, "on must be an exception type"),
        ({"budget": 3}, TypeError, "budget must be a brace.RetryBudget"),
        ({"histogram": 3}, TypeError, "histogram must be a brace.LatencyHistogram"),
        ({"initial_delay": -1}, ValueError, "initial_delay"),
        ({"min_delay": float("nan")}, ValueError, "min_delay"),
        ({"executor": 3}, TypeError, "executor"),
        ({"discard": 3}, TypeError, "discard must be a callable"),
        ({"name": 3}, TypeError, "name"),
    ],
)
def test_bad_configuration_names_the_parameter(kwargs: dict[str, Any], error: type[Exception], words: str) -> None:
    with pytest.raises(error, match=words):
        brace.Hedge(**kwargs)


def test_positional_arguments_are_refused() -> None:
    with pytest.raises(TypeError, match=r"@brace.Hedge\(...\)"):
        brace.Hedge(lambda: None)  # type: ignore[misc]


def test_listener_kinds_are_checked() -> None:
    with pytest.raises(ValueError, match="kinds"):
        brace.Hedge().add_listener(print, kinds=["slow"])
    assert "hedged" in brace.Hedge.event_kinds


# -- discard: losers' results are released, never leaked ------------------------


class Resource:
    """A result that holds something until it is closed (an HTTP response and its connection)."""

    def __init__(self, label: str) -> None:
        self.label, self.closed = label, False

    def close(self) -> None:
        self.closed = True


def test_a_late_losers_result_is_discarded_before_late_is_told(still_clock: FakeClock) -> None:
    discarded: list[str] = []
    hedge = brace.Hedge(delay=1.0, discard=lambda resource: discarded.append(resource.label))
    seen = Recorder(hedge)
    release = threading.Event()
    made: list[Resource] = []

    def fetch() -> Resource:
        resource = Resource("primary" if not made else "hedge")
        made.append(resource)
        if resource.label == "primary":
            still_clock.advance(1.5)
            release.wait(WAIT)
        return resource

    assert hedge.call(fetch).label == "hedge"
    assert discarded == []
    release.set()
    seen.wait_for("late")
    assert discarded == ["primary"]  # the winner is the caller's: never discarded


def test_results_reported_together_leave_the_losers_to_discard(still_clock: FakeClock) -> None:
    resources: list[Resource] = []
    both = threading.Barrier(2)
    hedge = brace.Hedge(mode="parallel", max_hedged=1, discard=Resource.close)
    seen = Recorder(hedge)

    def fetch() -> Resource:
        resource = Resource(f"attempt {len(resources)}")
        resources.append(resource)
        both.wait(WAIT)  # both end at about the same time: one may be taken with the winner
        return resource

    winner = hedge.call(fetch)
    seen.wait_for("late")
    assert sorted(r.closed for r in resources) == [False, True]
    assert not winner.closed


def test_a_failing_discard_is_told_never_raised(still_clock: FakeClock) -> None:
    def broken(result: object) -> None:
        raise OSError("cannot close")

    hedge = brace.Hedge(mode="parallel", max_hedged=1, discard=broken)
    seen = Recorder(hedge)
    assert hedge.call(lambda: "value") == "value"
    seen.wait_for("late")
    failed = [e for e in seen.events if e.kind == "discard_failed"]
    assert len(failed) == 1 and isinstance(failed[0].error, OSError)


def test_a_sync_call_refuses_a_discard_that_needs_awaiting(still_clock: FakeClock) -> None:
    async def close(result: object) -> None:
        pass

    hedge = brace.Hedge(mode="parallel", max_hedged=1, discard=close)
    seen = Recorder(hedge)
    assert hedge.call(lambda: "value") == "value"
    seen.wait_for("late")
    failed = [e for e in seen.events if e.kind == "discard_failed"]
    assert len(failed) == 1 and "plain function" in str(failed[0].error)


def test_async_a_loser_done_before_its_cancel_is_discarded_and_awaited(still_clock: FakeClock) -> None:
    closed: list[str] = []

    async def aclose(resource: Resource) -> None:
        await asyncio.sleep(0)
        closed.append(resource.label)

    hedge = brace.Hedge(mode="parallel", max_hedged=2, discard=aclose)
    seen = Recorder(hedge)
    labels = iter(["primary", "hedge 1", "hedge 2"])

    async def fetch() -> Resource:
        return Resource(next(labels))  # no await: every copy is done when the caller wakes

    async def main() -> str:
        resource = await hedge.call_async(fetch)
        assert len(closed) == 2  # awaited before the call returned
        return resource.label

    assert asyncio.run(main()) == "primary"
    assert closed == ["hedge 1", "hedge 2"]
    assert seen.kinds()[-2:] == [("late", 1), ("late", 2)]


def test_with_discard_shares_the_histogram_and_the_listeners(still_clock: FakeClock) -> None:
    hedge = brace.Hedge(delay="p90", max_hedged=1)
    closing = hedge.with_discard(Resource.close)
    seen = Recorder(hedge)
    assert hedge.discard is None and closing.discard is Resource.close
    assert closing.histogram is hedge.histogram and closing.delay == "p90"
    closing.call(lambda: 1)
    assert ("won", 0) in seen.kinds()


def test_a_spike_across_two_buckets_is_a_spike_too(still_clock: FakeClock) -> None:
    # Slow answers of 40-44 ms straddle a bucket edge: p95 and p97.5 in neighbouring buckets.
    histogram = brace.LatencyHistogram(min_samples=1)
    hedge = brace.Hedge(delay="p95", histogram=histogram)
    for _ in range(940):
        histogram.record(0.002)
    for index in range(60):
        histogram.record(0.040 + 0.004 * index / 59)
    assert histogram.percentile(95) != histogram.percentile(97.5)
    assert hedge.current_delay() == pytest.approx(0.002, rel=0.07)
