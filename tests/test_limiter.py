"""RateLimiter behaviour: admission, waiting, state, reconfiguration, wrappers."""

from __future__ import annotations

import asyncio
import inspect
import pickle
from datetime import timedelta

import pytest

import brace
from brace._core import now_ns
from brace.testing import FakeClock


@pytest.mark.parametrize(
    ("rate", "per", "interval"),
    [
        (10, None, 0.1),
        (10, 2.0, 0.2),
        (10, timedelta(minutes=1), 6.0),
        ("100/s", None, 0.01),
        ("5000/min", None, 0.012),
        ("10/hour", None, 360.0),
        ("10 per hour", None, 360.0),
        ("3/5s", None, 5 / 3),
        ("1/d", None, 86400.0),
        ("2.5/ms", None, 0.0004),
    ],
)
def test_rate_sets_the_refill_interval(clock: FakeClock, rate: float | str, per: float | None, interval: float) -> None:
    lim = brace.RateLimiter(rate=rate, per=per, burst=1)
    assert lim.try_acquire()
    assert not lim.try_acquire()
    assert lim.state().retry_after == pytest.approx(interval, abs=1e-9)
    clock.advance(interval * 0.999)
    assert not lim.try_acquire()
    clock.advance(interval * 0.002)
    assert lim.try_acquire()


@pytest.mark.parametrize("burst", [1, 2, 7, 100])
def test_a_full_bucket_admits_exactly_burst(clock: FakeClock, burst: int) -> None:
    lim = brace.RateLimiter(rate=1, burst=burst)
    assert sum(lim.try_acquire() for _ in range(burst * 3)) == burst


def test_tokens_return_one_per_interval_up_to_burst(clock: FakeClock) -> None:
    lim = brace.RateLimiter(rate=10, burst=5)
    assert sum(lim.try_acquire() for _ in range(10)) == 5
    clock.advance(0.25)
    assert sum(lim.try_acquire() for _ in range(10)) == 2
    clock.advance(100.0)
    assert sum(lim.try_acquire() for _ in range(10)) == 5


def test_weighted_acquire_is_all_or_nothing(clock: FakeClock) -> None:
    lim = brace.RateLimiter(rate=1, burst=10)
    assert lim.try_acquire(7)
    assert not lim.try_acquire(4)
    assert lim.state().remaining == 3
    assert lim.try_acquire(3)
    assert lim.state().remaining == 0


def test_peek_takes_nothing(clock: FakeClock) -> None:
    lim = brace.RateLimiter(rate=1, burst=2)
    assert lim.peek(2) and lim.peek(2)
    assert lim.try_acquire(2)
    assert not lim.peek()
    clock.advance(1.0)
    assert lim.peek() and not lim.peek(2)


def test_state_reports_the_redis_cell_fields(clock: FakeClock) -> None:
    lim = brace.RateLimiter(rate=10, burst=10)
    assert lim.state() == brace.RateLimitState(limit=10, remaining=10, retry_after=0.0, reset_after=0.0)
    lim.try_acquire(10)
    clock.advance(0.15)
    state = lim.state()
    assert (state.limit, state.remaining, state.retry_after) == (10, 1, 0.0)
    assert state.reset_after == pytest.approx(0.85)
    lim.try_acquire()
    assert lim.state().retry_after == pytest.approx(0.05)


def test_state_headers(clock: FakeClock) -> None:
    lim = brace.RateLimiter(rate="1/s", burst=3)
    assert lim.state().headers() == {
        "RateLimit-Limit": "3",
        "RateLimit-Remaining": "3",
        "RateLimit-Reset": "0",
    }
    lim.try_acquire(3)
    clock.advance(0.5)
    assert lim.state().headers() == {
        "RateLimit-Limit": "3",
        "RateLimit-Remaining": "0",
        "RateLimit-Reset": "3",
        "Retry-After": "1",
    }


class TestAcquire:
    def test_takes_at_once_when_available(self, clock: FakeClock) -> None:
        lim = brace.RateLimiter(rate=1, burst=2)
        start = clock.now()
        assert lim.acquire(2) == 0.0
        assert clock.now() == start

    def test_sleeps_until_the_tokens_come(self, clock: FakeClock) -> None:
        lim = brace.RateLimiter(rate=2, burst=1)
        lim.try_acquire()
        start = clock.now()
        assert lim.acquire() == pytest.approx(0.5)
        assert clock.now() - start == pytest.approx(0.5)
        assert not lim.try_acquire()

    def test_waiters_are_served_in_order(self, clock: FakeClock) -> None:
        lim = brace.RateLimiter(rate=1, burst=1)
        lim.try_acquire()
        waits = [lim._reserve(1, None)[2] / 1e9 for _ in range(3)]
        assert waits == pytest.approx([1.0, 2.0, 3.0])

    @pytest.mark.parametrize("timeout", [0, 0.5, timedelta(milliseconds=999)])
    def test_raises_at_once_when_the_timeout_cannot_be_met(self, clock: FakeClock, timeout: float | timedelta) -> None:
        lim = brace.RateLimiter(rate=1, burst=1, name="sheets")
        lim.try_acquire()
        start = clock.now()
        with pytest.raises(brace.RateLimited) as info:
            lim.acquire(max_wait=timeout)
        assert clock.now() == start  # no sleep in vain
        error = info.value
        assert (error.name, error.requested, error.limit) == ("sheets", 1, 1)
        assert error.retry_after == pytest.approx(1.0)
        assert "sheets" in str(error) and "retry after 1 s" in str(error)
        clock.advance(1.0)
        assert lim.try_acquire()  # the rejection booked nothing

    def test_timeout_that_is_just_enough(self, clock: FakeClock) -> None:
        lim = brace.RateLimiter(rate=1, burst=1)
        lim.try_acquire()
        assert lim.acquire(max_wait=1.0) == pytest.approx(1.0)

    def test_an_interrupted_wait_gives_its_tokens_back(self, clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> None:
        lim = brace.RateLimiter(rate=1, burst=1)
        lim.try_acquire()

        def interrupted(deadline_ns: int) -> None:
            raise KeyboardInterrupt

        monkeypatch.setattr("brace.limiter.sleep_until", interrupted)
        with pytest.raises(KeyboardInterrupt):
            lim.acquire()
        clock.advance(1.0)
        assert lim.try_acquire()

    def test_real_time_wait_sleeps_at_least_the_wait(self) -> None:
        lim = brace.RateLimiter(rate=50, burst=1)
        lim.try_acquire()
        start = now_ns()
        waited = lim.acquire()
        assert now_ns() - start >= waited * 1e9
        assert not lim.try_acquire()


class TestAcquireAsync:
    def test_awaits_until_the_tokens_come(self, clock: FakeClock) -> None:
        lim = brace.RateLimiter(rate=4, burst=1)
        lim.try_acquire()
        start = clock.now()
        assert asyncio.run(lim.acquire_async()) == pytest.approx(0.25)
        assert clock.now() - start == pytest.approx(0.25)

    def test_raises_at_once_when_the_timeout_cannot_be_met(self, clock: FakeClock) -> None:
        lim = brace.RateLimiter(rate=1, burst=1)
        lim.try_acquire()
        with pytest.raises(brace.RateLimited):
            asyncio.run(lim.acquire_async(max_wait=0.1))

    def test_cancelled_waiter_gives_its_slot_to_the_next(self, clock: FakeClock) -> None:
        lim = brace.RateLimiter(rate=10, burst=1)

        async def scenario() -> tuple[float, float]:
            lim.try_acquire()
            first = asyncio.ensure_future(lim.acquire_async())
            await asyncio.sleep(0)
            first.cancel()
            with pytest.raises(asyncio.CancelledError):
                await first
            return lim.state().reset_after, await lim.acquire_async()

        reset_after, waited = asyncio.run(scenario())
        assert reset_after == pytest.approx(0.1)  # only the first token is out
        assert waited == pytest.approx(0.1)  # the next waiter took the returned slot

    def test_concurrent_waiters_each_get_a_slot(self, clock: FakeClock) -> None:
        lim = brace.RateLimiter(rate=10, burst=1)

        async def scenario() -> list[float]:
            return list(await asyncio.gather(*(lim.acquire_async() for _ in range(5))))

        assert asyncio.run(scenario()) == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4])


class TestReconfigure:
    def test_keeps_the_tokens_taken(self, clock: FakeClock) -> None:
        lim = brace.RateLimiter(rate=10, burst=10)
        lim.try_acquire(6)
        lim.reconfigure(rate=100, burst=20)
        assert (lim.rate, lim.burst) == (100, 20)
        state = lim.state()
        assert (state.limit, state.remaining) == (20, 14)
        assert state.reset_after == pytest.approx(0.06)

    def test_a_debt_beyond_the_new_burst_is_waited_out(self, clock: FakeClock) -> None:
        lim = brace.RateLimiter(rate=10, burst=10)
        lim.try_acquire(8)
        lim.reconfigure(burst=2)
        assert lim.state().retry_after == pytest.approx(0.7)
        clock.advance(0.7)
        assert lim.try_acquire() and not lim.try_acquire()

    def test_per_alone_changes_the_period(self, clock: FakeClock) -> None:
        lim = brace.RateLimiter(rate=10, burst=1)
        lim.reconfigure(per=60)
        assert lim.rate == pytest.approx(10 / 60)
        lim.try_acquire()
        assert lim.state().retry_after == pytest.approx(6.0)

    def test_a_rate_string(self, clock: FakeClock) -> None:
        lim = brace.RateLimiter(rate=1, burst=1)
        lim.reconfigure(rate="120/min")
        assert lim.rate == 2.0

    def test_bad_values_change_nothing(self) -> None:
        lim = brace.RateLimiter(rate=10, burst=3)
        for bad in ({"rate": 0}, {"burst": 0}, {"per": -1}, {"rate": "10/s", "per": 1}):
            with pytest.raises(ValueError):
                lim.reconfigure(**bad)  # type: ignore[arg-type]
        assert (lim.rate, lim.burst, lim.state().limit) == (10, 3, 3)


class TestDecorator:
    def test_each_call_takes_a_token(self, clock: FakeClock) -> None:
        lim = brace.RateLimiter(rate=1, burst=2, max_wait=0)
        calls = []

        @lim
        def fetch(key: str, *, page: int = 1) -> str:
            calls.append((key, page))
            return f"{key}:{page}"

        assert fetch("a") == "a:1"
        assert fetch("b", page=2) == "b:2"
        with pytest.raises(brace.RateLimited):
            fetch("c")
        assert calls == [("a", 1), ("b", 2)]

    def test_keeps_the_signature_and_metadata(self) -> None:
        lim = brace.RateLimiter(rate=1)

        def fetch(key: str, *, page: int = 1) -> str:
            """Fetches a page."""
            return key

        wrapped = lim(fetch)
        assert inspect.signature(wrapped) == inspect.signature(fetch)
        assert (wrapped.__name__, wrapped.__doc__) == ("fetch", "Fetches a page.")

    def test_waits_up_to_max_wait(self, clock: FakeClock) -> None:
        lim = brace.RateLimiter(rate=2, burst=1, max_wait=timedelta(seconds=1))
        wrapped = lim(lambda: clock.now())
        first, second, third = wrapped(), wrapped(), wrapped()
        assert (second - first, third - second) == pytest.approx((0.5, 0.5))

    def test_coroutine_functions(self, clock: FakeClock) -> None:
        lim = brace.RateLimiter(rate=1, burst=1, max_wait=0)

        @lim
        async def fetch(key: str) -> str:
            await asyncio.sleep(0)
            return key

        assert inspect.iscoroutinefunction(fetch)
        assert asyncio.run(fetch("a")) == "a"
        with pytest.raises(brace.RateLimited):
            asyncio.run(fetch("b"))


class TestContextManager:
    def test_sync(self, clock: FakeClock) -> None:
        lim = brace.RateLimiter(rate=1, burst=1, max_wait=0.5)
        with lim as entered:
            assert entered is lim
        with pytest.raises(brace.RateLimited):
            with lim:
                pass  # pragma: no cover

    def test_async(self, clock: FakeClock) -> None:
        lim = brace.RateLimiter(rate=1, burst=1, max_wait=None)

        async def scenario() -> float:
            start = clock.now()
            for _ in range(3):
                async with lim:
                    pass
            return clock.now() - start

        assert asyncio.run(scenario()) == pytest.approx(2.0)


def test_exceptions_pass_through_untouched(clock: FakeClock) -> None:
    lim = brace.RateLimiter(rate=1)

    @lim
    def boom() -> None:
        raise KeyError("x")

    with pytest.raises(KeyError):
        boom()


def test_repr_and_properties() -> None:
    lim = brace.RateLimiter(rate="5000/min", burst=20, max_wait=2, name="gmail")
    assert repr(lim) == "RateLimiter(name='gmail', rate=5000, per=60, burst=20, max_wait=2.0)"
    assert (lim.name, lim.rate, lim.burst, lim.max_wait) == ("gmail", pytest.approx(5000 / 60), 20, 2.0)


def test_rate_limited_pickles_with_its_facts() -> None:
    error = brace.RateLimited(retry_after=1.5, name="x", requested=2, limit=3)
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.retry_after, copy.name, copy.requested, copy.limit) == (1.5, "x", 2, 3)
    assert str(copy) == str(error)


class TestEvents:
    @pytest.mark.parametrize("form", ["acquire", "acquire_async", "call", "with", "decorator"])
    def test_a_rejection_is_an_event_with_its_facts(self, clock: FakeClock, form: str) -> None:
        lim = brace.RateLimiter(name="api", rate=1, burst=1, max_wait=0)
        seen: list[brace.RateLimiterEvent] = []
        lim.add_listener(seen.append, kinds=("rejected",))
        assert lim.try_acquire()

        def go() -> None:
            if form == "acquire":
                lim.acquire(max_wait=0)
            elif form == "acquire_async":
                asyncio.run(lim.acquire_async(max_wait=0))
            elif form == "call":
                lim.call(lambda: None)
            elif form == "with":
                with lim:
                    pass
            else:
                lim(lambda: None)()

        with pytest.raises(brace.RateLimited) as rejected:
            go()
        [event] = seen
        assert (event.kind, event.name, event.requested) == ("rejected", "api", 1)
        assert event.retry_after == rejected.value.retry_after
        assert event.at == now_ns() / 1e9  # the frozen clock's instant: exact

    def test_no_listener_after_removal(self, clock: FakeClock) -> None:
        lim = brace.RateLimiter(rate=1, burst=1)
        seen: list[brace.RateLimiterEvent] = []
        lim.add_listener(seen.append)
        lim.remove_listener(seen.append)
        lim.try_acquire()
        with pytest.raises(brace.RateLimited):
            lim.acquire(max_wait=0)
        assert seen == []


def test_acquire_timeout_is_the_deprecated_name_of_max_wait(clock: FakeClock) -> None:
    lim = brace.RateLimiter(rate=1, burst=1)
    lim.try_acquire()
    with pytest.warns(DeprecationWarning, match=r"acquire\(timeout=\) is deprecated: it is max_wait="):
        with pytest.raises(brace.RateLimited):
            lim.acquire(timeout=0.5)
    with pytest.warns(DeprecationWarning), pytest.raises(TypeError, match="not both"):
        lim.acquire(max_wait=1, timeout=1)
