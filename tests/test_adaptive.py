"""brace.AdaptiveRateLimiter (the AWS SDKs' adaptive mode) and brace.ClientThrottle (Google SRE's
client-side throttling): reference models under Hypothesis, simulated servers in fake time, the
guard forms, events and bad input."""

from __future__ import annotations

import asyncio
import pickle
import re
import threading
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import brace
from brace._core import rng_uniform
from brace.adaptive import overloaded, throttling
from brace.testing import FakeClock

NS = 1_000_000_000


class Response:
    """An HTTP response as an HTTP library returns one (what brace.http_status reads)."""

    def __init__(self, status_code: int, headers: dict[str, str] | None = None) -> None:
        self.status_code = status_code
        self.headers = headers or {}


class HTTPError(Exception):
    """An HTTP library's error carrying its response (as requests.HTTPError does)."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


# ---- the AWS model


@dataclass
class AwsModel:
    """The client rate limiter of the AWS SDKs' adaptive retry mode, step by step as their
    specification writes it (times in ns of brace's clock, rates in requests per second),
    with brace's one change: a throttle before the first half-second bucket has ended reads
    the rate from the calls counted so far, where the SDKs read 0."""

    now: int
    min_fill_rate: float = 0.5
    enabled: bool = False
    fill_rate: float = 0.0
    measured_tx_rate: float = 0.0
    request_count: int = 0
    last_tx_rate_bucket: int = 0
    last_max_rate: float = 0.0
    last_throttle_time: int = 0
    time_window: float = 0.0

    def __post_init__(self) -> None:
        self.last_tx_rate_bucket = self.now // NS * NS  # floor(now()), in whole seconds
        self.last_throttle_time = self.now

    def update_measured_rate(self) -> None:
        time_bucket = self.now // (NS // 2) * (NS // 2)  # floor(t * 2) / 2
        self.request_count += 1
        if time_bucket > self.last_tx_rate_bucket:
            current_rate = self.request_count / ((time_bucket - self.last_tx_rate_bucket) / NS)
            self.measured_tx_rate = current_rate * 0.8 + self.measured_tx_rate * (1 - 0.8)
            self.request_count = 0
            self.last_tx_rate_bucket = time_bucket

    def update_client_sending_rate(self, throttled: bool) -> None:
        self.update_measured_rate()
        measured = self.measured_tx_rate
        if throttled:
            measured = measured or self.request_count * NS / max(self.now - self.last_tx_rate_bucket, NS // 20)
            rate_to_use = min(measured, self.fill_rate) if self.enabled else measured
            self.last_max_rate = rate_to_use
            self.time_window = (self.last_max_rate * (1 - 0.7) / 0.4) ** (1 / 3)
            self.last_throttle_time = self.now
            calculated_rate = rate_to_use * 0.7
            self.enabled = True
        else:
            self.time_window = (self.last_max_rate * (1 - 0.7) / 0.4) ** (1 / 3)
            dt = (self.now - self.last_throttle_time) / NS
            calculated_rate = 0.4 * (dt - self.time_window) ** 3 + self.last_max_rate
        new_rate = min(calculated_rate, 2 * measured)
        self.fill_rate = max(new_rate, self.min_fill_rate)

    @property
    def rate(self) -> float | None:
        return self.fill_rate if self.enabled else None


aws_operation = st.one_of(
    st.tuples(st.just("advance"), st.integers(0, 2 * NS)),
    st.tuples(st.just("advance"), st.integers(0, NS // 20)),  # bursts of responses
    st.tuples(st.just("success"), st.just(0)),
    st.tuples(st.just("throttle"), st.just(0)),
)


@pytest.mark.slow  # many examples: the README's command runs it, the inner loop does not
@settings(max_examples=300, deadline=None)
@given(operations=st.lists(aws_operation, max_size=120), min_rate=st.sampled_from([0.5, 0.01, 3.0]))
def test_the_rate_follows_the_aws_model(operations: list[tuple[str, int]], min_rate: float) -> None:
    with brace.testing.fake_clock() as clock:
        limiter = brace.AdaptiveRateLimiter(min_rate=min_rate)
        model = AwsModel(now=clock.now_ns(), min_fill_rate=min_rate)
        for kind, amount in operations:
            if kind == "advance":
                clock.advance(amount / NS)
                model.now = clock.now_ns()
            elif kind == "success":
                limiter.record_success()
                model.update_client_sending_rate(throttled=False)
            else:
                limiter.record_throttle()
                model.update_client_sending_rate(throttled=True)
            state = limiter.state()
            assert state.measured_rate == pytest.approx(model.measured_tx_rate, rel=1e-9)
            if model.rate is None:
                assert limiter.rate is None and limiter.try_acquire()
            else:
                assert limiter.rate == pytest.approx(model.rate, rel=1e-9)


def test_the_first_throttle_starts_limiting_at_beta_times_the_measured_rate(clock: FakeClock) -> None:
    limiter = brace.AdaptiveRateLimiter(name="s3")
    for _ in range(400):  # 100 responses a second for 4 s: unlimited meanwhile
        assert limiter.try_acquire()
        clock.advance(0.01)
        limiter.record_success()
    assert limiter.rate is None
    measured = limiter.state().measured_rate
    assert measured == pytest.approx(100, rel=0.01)
    limiter.record_throttle()
    state = limiter.state()
    assert state.rate == pytest.approx(0.7 * measured) and state.last_max_rate == measured
    assert state.burst == 1 and state.last_throttle_at == clock.now()


def test_the_rate_grows_back_along_the_cubic_to_the_throttled_rate(clock: FakeClock) -> None:
    limiter = brace.AdaptiveRateLimiter()

    def respond_until(when: float) -> None:  # 100 responses a second, the last one at `when`
        while clock.now() + 0.01 < when:
            clock.advance(0.01)
            limiter.record_success()
        clock.advance_to(when)
        limiter.record_success()

    respond_until(clock.now() + 4)
    limiter.record_throttle()
    throttled_at, plateau = limiter.state().last_throttle_at, limiter.state().last_max_rate
    assert throttled_at is not None and limiter.rate == pytest.approx(0.7 * plateau)
    k = (plateau * 0.3 / 0.4) ** (1 / 3)  # seconds from the throttle to the plateau
    respond_until(throttled_at + k / 2)
    assert limiter.rate == pytest.approx(plateau - 0.4 * (k / 2) ** 3, rel=1e-6)  # fast far below it
    respond_until(throttled_at + k)
    assert limiter.rate == pytest.approx(plateau, rel=1e-6)
    respond_until(throttled_at + k + 1)
    assert limiter.rate == pytest.approx(plateau + 0.4, rel=1e-6)  # probing beyond it, slowly


def test_admission_follows_the_fill_rate_and_burst(clock: FakeClock) -> None:
    limiter = brace.AdaptiveRateLimiter(initial_rate=4.0, burst=4, max_wait=0)
    assert limiter.rate == 4.0 and limiter.state().burst == 4
    assert [limiter.try_acquire() for _ in range(5)] == [True] * 4 + [False]
    with pytest.raises(brace.RateLimited) as rejected:
        limiter.call(lambda: None)
    assert rejected.value.retry_after == pytest.approx(0.25) and rejected.value.limit == 4
    assert limiter.acquire() == pytest.approx(0.25)  # waited on the fake clock
    limiter.record_success()
    assert limiter.rate == 4.0  # no throttle yet: initial_rate holds


def test_min_rate_max_rate_and_a_fixed_burst_bound_the_bucket(clock: FakeClock) -> None:
    limiter = brace.AdaptiveRateLimiter(min_rate=2.0, max_rate=10.0, burst=3)
    clock.advance(0.5)  # a bucket with no call in it: a measured rate of 0
    limiter.record_success()
    limiter.record_throttle()  # the floor
    assert limiter.state()[:2] == (2.0, 3)
    for _ in range(1000):
        clock.advance(0.01)
        limiter.record_success()
    assert limiter.state()[:2] == (10.0, 3)


class CapacityServer:
    """A server that serves `capacity` requests a second and answers 429 above it."""

    def __init__(self, capacity: float) -> None:
        self.bucket = brace.RateLimiter(rate=capacity, burst=max(1, int(capacity / 10)))

    def handle(self) -> Response:
        return Response(200) if self.bucket.try_acquire() else Response(429, {"Retry-After": "1"})


def test_the_client_converges_on_the_servers_capacity_and_throttles_become_rare(clock: FakeClock) -> None:
    server = CapacityServer(50)
    client = brace.AdaptiveRateLimiter(name="api", max_wait=0)
    sent: list[tuple[float, int]] = []  # (when, status) of what reached the server
    start = clock.now()
    while clock.now() - start < 120:  # the client wants 200 requests a second
        clock.advance(0.005)
        try:
            response = client.call(server.handle)
        except brace.RateLimited:
            continue
        sent.append((clock.now() - start, response.status_code))
    late = [status for when, status in sent if when >= 60]  # the last minute
    assert 0.8 * 50 * 60 <= len(late) <= 1.05 * 50 * 60  # near the capacity, not above it
    assert late.count(429) / len(late) < 0.05
    first = [status for when, status in sent if when < 10]
    assert first.count(429) > late.count(429) / 6  # the first seconds throttled far more often


# ---- the guard forms of the adaptive limiter


def test_the_default_predicate_knows_throttling_from_outages_and_failures() -> None:
    assert throttling(Response(429)) and throttling(HTTPError(Response(429)))
    assert throttling(Response(503, {"Retry-After": "3"}))
    assert not throttling(Response(503))  # an outage, not a throttle
    assert not throttling(Response(500)) and not throttling(ConnectionError()) and not throttling(None)
    assert overloaded(Response(503)) and overloaded(HTTPError(Response(429)))
    assert not overloaded(Response(500)) and not overloaded(TimeoutError())


def test_every_form_records_what_it_sees(clock: FakeClock) -> None:
    limiter = brace.AdaptiveRateLimiter(name="forms")
    seen: list[brace.AdaptiveRateEvent] = []
    limiter.add_listener(seen.append, kinds="throttled")

    @limiter
    def fetch(status: int) -> Response:
        return Response(status)

    @limiter
    async def fetch_async(status: int) -> Response:
        return Response(status)

    def failing() -> None:
        raise HTTPError(Response(429))

    assert fetch(200).status_code == 200 and seen == []
    assert fetch(429).status_code == 429  # a throttling result is returned, and recorded
    assert limiter.call(fetch, 200).status_code == 200  # guarded once, not twice
    with pytest.raises(HTTPError):
        limiter.call(failing)
    assert asyncio.run(fetch_async(429)).status_code == 429
    assert asyncio.run(limiter.call_async(fetch_async, 200)).status_code == 200

    async def block() -> None:
        async with limiter:
            raise HTTPError(Response(429))

    with pytest.raises(HTTPError):
        asyncio.run(block())
    with pytest.raises(HTTPError), limiter:
        raise HTTPError(Response(429))
    with limiter:
        pass
    assert [event.kind for event in seen] == ["throttled"] * 5
    assert all(event.name == "forms" and event.retry_after is None and event.at <= clock.now() for event in seen)
    assert all(event.rate >= 0.5 and event.measured_rate >= 0 for event in seen)


def test_a_predicate_decides_what_throttling_is(clock: FakeClock) -> None:
    limiter = brace.AdaptiveRateLimiter(throttled=lambda outcome: isinstance(outcome, OverflowError))
    limiter.call(lambda: Response(429))
    assert limiter.rate is None

    def overflowing() -> None:
        raise OverflowError("too much")

    with pytest.raises(OverflowError):
        limiter.call(overflowing)
    assert limiter.rate is not None


# ---- the SRE model


@dataclass
class SreModel:
    """Google SRE's client-side throttling, counted per bucket of window / 12."""

    step: int
    k: float
    requests: list[int] = field(default_factory=list)  # the bucket index of each request
    accepts: list[int] = field(default_factory=list)

    def counts(self, now: int) -> tuple[int, int]:
        oldest = now // self.step - 11
        return (sum(index >= oldest for index in self.requests), sum(index >= oldest for index in self.accepts))

    def probability(self, now: int) -> float:
        requests, accepts = self.counts(now)
        return max(0.0, (requests - self.k * accepts) / (requests + 1))


throttle_operation = st.one_of(
    st.tuples(st.just("advance"), st.integers(0, 30 * NS)),
    st.tuples(st.just("request"), st.just(0)),
    st.tuples(st.just("accepted"), st.just(0)),
    st.tuples(st.just("refused"), st.just(0)),
)


@pytest.mark.slow
@settings(max_examples=200, deadline=None)
@given(operations=st.lists(throttle_operation, max_size=150), k=st.sampled_from([1.0, 1.5, 2.0, 5.0]),
       seed=st.integers(0, 2**64 - 1))  # fmt: skip
def test_the_counts_and_draws_follow_the_sre_model(operations: list[tuple[str, int]], k: float, seed: int) -> None:
    with brace.testing.fake_clock() as clock:
        throttle = brace.ClientThrottle(k=k, window=120.0)
        model = SreModel(step=120 * NS // 12, k=k)
        for kind, amount in operations:
            now = clock.now_ns()
            if kind == "advance":
                clock.advance(amount / NS)
            elif kind == "request":
                probability = model.probability(now)
                brace.testing.seed(seed)
                expected = not (probability > 0 and rng_uniform() < probability)
                brace.testing.seed(seed)
                assert throttle.try_acquire() == expected
                model.requests.append(now // model.step)
            else:
                throttle.record(kind == "accepted")
                if kind == "accepted":
                    model.accepts.append(now // model.step)
            now = clock.now_ns()
            state = throttle.state()
            assert (state.requests, state.accepts) == model.counts(now)
            assert state.reject_probability == pytest.approx(model.probability(now), rel=1e-12)


def test_the_reject_probability_is_the_sre_formula(clock: FakeClock) -> None:
    throttle = brace.ClientThrottle(name="db", k=2.0)
    for _ in range(100):
        throttle.try_acquire()
    for _ in range(30):
        throttle.record(True)
    assert throttle.reject_probability() == pytest.approx((100 - 2 * 30) / 101)
    for _ in range(20):
        throttle.record(True)  # accepts * k >= requests: nothing shed
    assert throttle.reject_probability() == 0.0 and throttle.try_acquire()


def test_counts_leave_the_window_in_twelfths(clock: FakeClock) -> None:
    throttle = brace.ClientThrottle(window=timedelta(seconds=12))
    clock.advance_to((clock.now_ns() // NS + 1))  # the start of a one-second bucket
    throttle.try_acquire()
    clock.advance(6)
    throttle.try_acquire()
    assert throttle.state().requests == 2
    clock.advance(5.999)
    assert throttle.state().requests == 2
    clock.advance(0.001)  # the first request's bucket has left the window
    assert throttle.state().requests == 1
    clock.advance(3600)
    assert throttle.state() == (0, 0, 0.0)


def test_draws_are_reproducible_under_a_seed(clock: FakeClock) -> None:
    def draws() -> list[bool]:
        throttle = brace.ClientThrottle()
        brace.testing.seed(42)
        return [throttle.try_acquire() for _ in range(200)]

    first = draws()
    assert first == draws()
    assert 0 < first.count(False) < 200  # the probability grows as refusals (no accepts) pile up


def test_a_throttle_sends_about_k_times_what_an_overloaded_backend_accepts(clock: FakeClock) -> None:
    backend = brace.RateLimiter(rate=10, burst=5)  # accepts 10 a second, refuses the rest with 503
    throttle = brace.ClientThrottle(name="backend", k=2.0, window=60.0)
    brace.testing.seed(7)
    sent = accepted = shed = 0
    start = clock.now()
    while clock.now() - start < 300:  # the client wants 100 a second; count the last 180 s
        clock.advance(0.01)
        counted = clock.now() - start >= 120
        try:
            response = throttle.call(lambda: Response(200) if backend.try_acquire() else Response(503))
        except brace.Throttled:
            shed += counted
            continue
        sent += counted
        accepted += counted and response.status_code == 200
    assert 10 * 180 * 0.95 <= accepted <= 10 * 180 + 5  # the backend still serves its capacity...
    assert 2 * accepted * 0.9 <= sent <= 2 * accepted * 1.1  # ...and sees about k times that
    assert shed == pytest.approx(100 * 180 - sent, abs=2)


def test_a_shed_call_raises_throttled_with_its_facts(clock: FakeClock) -> None:
    throttle = brace.ClientThrottle(name="search", k=1.0)
    seen: list[brace.ClientThrottleEvent] = []
    throttle.add_listener(seen.append)
    for _ in range(50):
        throttle.try_acquire()
    brace.testing.seed(3)
    calls = 0

    def call() -> None:
        nonlocal calls
        calls += 1

    rejected = None
    for _ in range(20):
        try:
            throttle.call(call)
        except brace.Throttled as error:
            rejected = error
            break
    assert isinstance(rejected, brace.Rejected) and rejected.name == "search"
    assert rejected.probability == pytest.approx((rejected.requests - rejected.accepts) / (rejected.requests + 1))
    assert "client throttle 'search' shed the call locally" in str(rejected)
    copy = pickle.loads(pickle.dumps(rejected))
    assert (copy.name, copy.probability, copy.requests, copy.accepts) == (
        rejected.name, rejected.probability, rejected.requests, rejected.accepts)  # fmt: skip
    [event] = seen
    assert event == ("rejected", "search", clock.now(), rejected.probability, rejected.requests, rejected.accepts)


def test_every_form_counts_and_judges_outcomes(clock: FakeClock) -> None:
    throttle = brace.ClientThrottle()

    @throttle
    async def fetch_async(status: int) -> Response:
        return Response(status)

    throttle.call(lambda: Response(200))
    throttle(lambda: Response(503))()
    asyncio.run(fetch_async(429))
    asyncio.run(throttle.call_async(fetch_async, 200))  # guarded once
    with pytest.raises(HTTPError), throttle:
        raise HTTPError(Response(503))
    with throttle:
        pass

    async def block() -> None:
        async with throttle:
            pass

    asyncio.run(block())
    assert throttle.state()[:2] == (7, 4)
    custom = brace.ClientThrottle(accepted=lambda outcome: outcome == "ok")
    custom.call(lambda: "ok")
    custom.call(lambda: "busy")
    assert custom.state()[:2] == (2, 1)


def test_threads_share_one_of_each_and_lose_no_count(clock: FakeClock) -> None:
    throttle = brace.ClientThrottle()
    limiter = brace.AdaptiveRateLimiter(initial_rate=1e6, burst=1000)
    start = threading.Barrier(8)

    def work(index: int) -> None:
        start.wait(timeout=60)
        for step in range(1000):
            throttle.record(True)  # accepted first, so nothing is ever shed
            assert throttle.try_acquire()
            if (index + step) % 7 == 0:
                limiter.record_throttle()
            else:
                limiter.record_success()
            limiter.try_acquire()

    threads = [threading.Thread(target=work, args=(index,)) for index in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert throttle.state() == (8000, 8000, 0.0)
    assert limiter.rate is not None and 0.5 <= limiter.rate <= 1e6


# ---- bad input


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"min_rate": 0}, ValueError, "min_rate must be a finite number of requests per second from 0.001 to 1e+09, got 0"),
        ({"min_rate": float("nan")}, ValueError, "min_rate must be a finite number of requests per second"),
        ({"min_rate": "1/s"}, TypeError, "min_rate must be a finite number of requests per second from 0.001 to 1e+09, got str"),
        ({"max_rate": 0.1}, ValueError, "max_rate must be a finite number of requests per second from 0.5 to 1e+09, or None, got 0.1"),
        ({"max_rate": float("inf")}, ValueError, "max_rate must be a finite number"),
        ({"initial_rate": 0.2}, ValueError, "initial_rate must be a finite number of requests per second from 0.5"),
        ({"initial_rate": 20, "max_rate": 10}, ValueError, "initial_rate must be at most max_rate (10), got 20"),
        ({"initial_rate": True}, TypeError, "initial_rate must be a finite number"),
        ({"burst": 0}, ValueError, "burst must be an int >= 1, got 0"),
        ({"burst": 2.5}, TypeError, "burst must be an int >= 1, got float"),
        ({"max_wait": -1}, ValueError, "max_wait must be 0 or a finite number of seconds"),
        ({"throttled": 429}, TypeError, "throttled must be a callable taking an outcome"),
        ({"name": 5}, TypeError, "name must be a str or None, got int"),
    ],
)  # fmt: skip
def test_bad_adaptive_configuration(kwargs: dict[str, Any], error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=f"^{re.escape(message)}"):
        brace.AdaptiveRateLimiter(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"k": 0.5}, ValueError, "k must be a finite number from 1 to 1000, got 0.5"),
        ({"k": float("nan")}, ValueError, "k must be a finite number from 1 to 1000, got nan"),
        ({"k": "2"}, TypeError, "k must be a finite number from 1 to 1000, got str"),
        ({"window": 0}, ValueError, "window must be a finite number of seconds from 1e-09"),
        ({"window": 0.0001}, ValueError, "window must be a finite number of seconds from 1e-09 to 4.61169e+09 and at least 0.001, got 0.0001"),
        ({"window": "2m"}, TypeError, "window must be seconds (float), a timedelta"),
        ({"accepted": True}, TypeError, "accepted must be a callable taking an outcome"),
    ],
)  # fmt: skip
def test_bad_throttle_configuration(kwargs: dict[str, Any], error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=f"^{re.escape(message)}"):
        brace.ClientThrottle(**kwargs)


def test_bad_runtime_input_names_its_parameter() -> None:
    with pytest.raises(TypeError, match="^accepted must be a bool, got int"):
        brace.ClientThrottle().record(1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="^max_wait must be 0 or a finite number"):
        brace.AdaptiveRateLimiter().acquire(-1)
    with pytest.raises(TypeError, match=r"@brace.AdaptiveRateLimiter\(\.\.\.\)"):
        brace.AdaptiveRateLimiter(print)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"@brace.ClientThrottle\(...\)"):
        brace.ClientThrottle(print)  # type: ignore[arg-type]


def test_a_throttle_before_the_first_measurement_reads_the_calls_so_far(clock: FakeClock) -> None:
    # The AWS SDKs read a measured rate of 0 here and fall to the 0.5/s floor.
    clock.advance_to((clock.now_ns() // NS + 1))  # the start of a whole second
    limiter = brace.AdaptiveRateLimiter()
    for _ in range(10):
        clock.advance(0.01)
        limiter.record_success()
    limiter.record_throttle()  # 11 calls in 0.1 s: 110/s
    assert limiter.rate == pytest.approx(0.7 * 110)


def test_the_answers_of_calls_in_flight_together_cut_the_rate_once(clock: FakeClock) -> None:
    limiter = brace.AdaptiveRateLimiter()
    for _ in range(100):
        clock.advance(0.01)
        limiter.record_success()
    sent = clock.now()
    clock.advance(0.01)
    limiter.record_throttle(sent_at=sent)
    cut = limiter.rate
    for _ in range(7):  # the other callers' answers, sent before the cut
        limiter.record_throttle(sent_at=sent)
    assert limiter.rate == cut
    clock.advance(0.01)
    limiter.record_throttle(sent_at=clock.now())  # sent after the cut: a new loss
    assert limiter.rate is not None and cut is not None and limiter.rate < cut
    with pytest.raises(TypeError, match="sent_at"):
        limiter.record_throttle(sent_at="now")  # type: ignore[arg-type]
