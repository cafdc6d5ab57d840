"""brace.Policy: the composition order, rejections, retries, fallback, sync and async."""

from __future__ import annotations

import asyncio
import inspect
import re
from typing import Any

import pytest

import brace
from brace import Backoff, BreakerState, Policy
from brace.pushback import http_status
from brace.testing import FakeClock

NO_WAIT = Backoff.constant(delay=0.0)


class Flaky:
    def __init__(self, failures: int, error: type[BaseException] = ConnectionError) -> None:
        self.failures, self.error, self.calls = failures, error, 0

    def __call__(self, *args: object) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error(f"failure {self.calls}")
        return "ok"


def everything(**overrides: Any) -> dict[str, Any]:
    parts: dict[str, Any] = {
        "retry": brace.Retry(on=ConnectionError, attempts=3, backoff=NO_WAIT),
        "breaker": brace.CircuitBreaker(name="api", window_size=10, minimum_calls=10),
        "limiter": brace.RateLimiter(rate=1000, burst=100, max_wait=0),
        "bulkhead": brace.Bulkhead(max_concurrent=2),
    }
    parts.update(overrides)
    return parts


@pytest.mark.parametrize("form", ["decorator", "call"])
def test_a_successful_call_goes_through_every_primitive(clock: FakeClock, form: str) -> None:
    parts = everything()
    policy = Policy(**parts)
    if form == "decorator":
        assert policy(lambda x: x * 2)(21) == 42
    else:
        assert policy.call(lambda x: x * 2, 21) == 42
    assert parts["breaker"].metrics().calls == 1
    assert parts["limiter"].state().remaining == 99
    assert parts["bulkhead"].in_use == 0


@pytest.mark.parametrize("form", ["decorator", "call"])
def test_failures_are_retried_through_the_breaker_and_the_limiter(clock: FakeClock, form: str) -> None:
    parts = everything()
    flaky = Flaky(failures=2)
    policy = Policy(**parts)
    assert (policy(flaky)() if form == "decorator" else policy.call(flaky)) == "ok"
    metrics = parts["breaker"].metrics()
    assert (flaky.calls, metrics.calls, metrics.failures) == (3, 3, 2)
    assert parts["limiter"].state().remaining == 97  # one token per attempt
    assert parts["bulkhead"].in_use == 0


def test_an_open_breaker_consumes_no_limiter_token_and_reaches_the_fallback(clock: FakeClock) -> None:
    parts = everything(retry=None)
    parts["breaker"].force_open()
    seen: list[Exception] = []

    def cached(error: Exception) -> str:
        seen.append(error)
        return "cached"

    policy = Policy(fallback=cached, **parts)
    assert policy(lambda: "live")() == "cached"
    assert isinstance(seen[0], brace.CircuitOpen)
    assert parts["limiter"].state().remaining == 100


def test_a_rate_limited_attempt_gives_its_breaker_permission_back(clock: FakeClock) -> None:
    limiter = brace.RateLimiter(rate=1, burst=1, max_wait=0)
    limiter.try_acquire()
    parts = everything(retry=None, limiter=limiter, breaker=brace.CircuitBreaker(name="b", half_open_calls=1,
                                                                                  window_size=10, minimum_calls=10))  # fmt: skip
    with pytest.raises(brace.RateLimited):
        Policy(**parts)(lambda: "x")()
    assert parts["breaker"].metrics().calls == 0


def test_a_full_bulkhead_refunds_the_limiter_token(clock: FakeClock) -> None:
    bulkhead = brace.Bulkhead(max_concurrent=1)
    bulkhead.try_acquire()
    parts = everything(retry=None, bulkhead=bulkhead)
    with pytest.raises(brace.BulkheadFull):
        Policy(**parts).call(lambda: "x")
    assert parts["limiter"].state().remaining == 100
    bulkhead.release()


def test_rejections_can_be_retried_when_named(clock: FakeClock) -> None:
    limiter = brace.RateLimiter(rate=1, burst=1, max_wait=0)
    limiter.try_acquire()
    retry = brace.Retry(on=brace.RateLimited, attempts=3, backoff=Backoff.constant(delay=1.0, jitter="none"))
    start = clock.now()
    assert Policy(retry=retry, limiter=limiter)(lambda: "x")() == "x"
    assert clock.now() - start == pytest.approx(1.0)


def test_the_fallback_receives_the_final_exception(clock: FakeClock) -> None:
    flaky = Flaky(failures=10)
    errors: list[Exception] = []

    def fallback(error: Exception) -> str:
        errors.append(error)
        return "fallback"

    policy = Policy(retry=brace.Retry(on=ConnectionError, attempts=2, backoff=NO_WAIT), fallback=fallback)
    assert policy(flaky)() == "fallback"
    assert flaky.calls == 2 and isinstance(errors[0], ConnectionError)


def test_without_a_fallback_unretried_errors_propagate_untouched(clock: FakeClock) -> None:
    error = KeyError("x")

    def raises() -> None:
        raise error

    with pytest.raises(KeyError) as info:
        Policy(**everything())(raises)()
    assert info.value is error


def test_the_deadline_bounds_the_retries(clock: FakeClock) -> None:
    flaky = Flaky(failures=10)
    retry = brace.Retry(on=ConnectionError, attempts=100, backoff=Backoff.constant(delay=1.0, jitter="none"))
    start = clock.now()
    with pytest.raises(ConnectionError):
        Policy(retry=retry, deadline=2.5).call(flaky)
    assert flaky.calls == 3
    assert clock.now() - start == pytest.approx(2.0)


def test_results_checked_by_the_retry_and_the_breaker(clock: FakeClock) -> None:
    results = iter([503, 503, 200])
    breaker = brace.CircuitBreaker(name="r", window_size=10, minimum_calls=10, record_result=lambda s: s >= 500)
    retry = brace.Retry(on=(), retry_on_result=lambda s: s >= 500, backoff=NO_WAIT)
    assert Policy(retry=retry, breaker=breaker)(lambda: next(results))() == 200
    assert (breaker.metrics().calls, breaker.metrics().failures) == (3, 2)


def test_the_breaker_opens_inside_a_policy(clock: FakeClock) -> None:
    breaker = brace.CircuitBreaker(name="o", window_size=4, minimum_calls=4)
    guarded = Policy(breaker=breaker, fallback=lambda error: type(error).__name__)(Flaky(failures=100))
    assert [guarded() for _ in range(6)] == ["ConnectionError"] * 4 + ["CircuitOpen"] * 2
    assert breaker.state is BreakerState.OPEN


class TestAsync:
    def test_success_retry_and_fallback(self, clock: FakeClock) -> None:
        parts = everything()
        flaky = Flaky(failures=2)

        async def fetch() -> str:
            await asyncio.sleep(0)
            return flaky()

        policy = Policy(**parts)
        guarded = policy(fetch)
        assert inspect.iscoroutinefunction(guarded)
        assert asyncio.run(guarded()) == "ok"
        assert parts["breaker"].metrics().calls == 3 and parts["bulkhead"].in_use == 0
        parts["breaker"].force_open()
        fallback = Policy(fallback=lambda error: "cached", **everything(breaker=parts["breaker"]))
        assert asyncio.run(fallback.call_async(fetch)) == "cached"

    def test_attempt_timeout_cancels(self) -> None:
        async def hang() -> None:
            await asyncio.sleep(3600)

        policy = Policy(retry=brace.Retry(on=brace.AttemptTimeout, attempts=2, backoff=NO_WAIT), attempt_timeout=0.02)
        with pytest.raises(brace.AttemptTimeout):
            asyncio.run(policy.call_async(hang))


def test_decorator_keeps_the_signature() -> None:
    def fetch(key: str, *, page: int = 1) -> str:
        return key

    guarded = Policy(**everything())(fetch)
    assert inspect.signature(guarded) == inspect.signature(fetch)
    assert guarded.__name__ == "fetch"


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"retry": 3}, TypeError, "retry must be a brace.Retry or None, got int"),
        ({"breaker": "b"}, TypeError, "breaker must be a brace.CircuitBreaker or None, got str"),
        ({"limiter": 1.0}, TypeError, "limiter must be a brace.RateLimiter or None, got float"),
        ({"bulkhead": object()}, TypeError, "bulkhead must be a brace.Bulkhead or None, got object"),
        ({"fallback": 1}, TypeError, "fallback must be a brace.Fallback, a function of the final exception, or None, got int"),
        ({"deadline": -1}, ValueError, "deadline must be a finite number of seconds from 1e-09 to 4.61169e+09, or None"),
        ({"deadline": 0}, ValueError, "deadline must be a finite number of seconds from 1e-09 to 4.61169e+09, or None, got 0"),
        ({"attempt_timeout": float("nan")}, ValueError, "attempt_timeout must be a finite number"),
        ({"name": 1}, TypeError, "name must be a str or None, got int"),
    ],
)
def test_bad_configuration(kwargs: dict[str, Any], error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=f"^{re.escape(message)}"):
        Policy(**kwargs)


def test_async_errors_that_are_not_retried_release_everything(clock: FakeClock) -> None:
    parts = everything()

    async def broken() -> None:
        raise KeyError("x")

    with pytest.raises(KeyError):
        asyncio.run(Policy(**parts)(broken)())
    assert parts["bulkhead"].in_use == 0
    assert (parts["breaker"].metrics().calls, parts["breaker"].metrics().failures) == (1, 1)


class TestReconfigure:
    def test_a_deadline_given_and_taken_away_in_use(self) -> None:
        seen: list[float | None] = []
        policy = brace.Policy(breaker=brace.CircuitBreaker())
        guarded = policy(lambda: seen.append(brace.deadline_remaining()))
        guarded()
        policy.reconfigure(deadline=5.0)
        guarded()  # the compiled guard hands a bounded call to Python now
        policy.reconfigure(deadline=None)
        guarded()
        assert seen[0] is None and seen[1] is not None and 0.0 < seen[1] <= 5.0 and seen[2] is None

    def test_an_attempt_timeout_keeps_the_deadline_and_bad_values_change_nothing(self) -> None:
        policy = brace.Policy(deadline=10.0)
        with pytest.raises(ValueError, match="attempt_timeout"):
            policy.reconfigure(attempt_timeout=-1.0)
        policy.reconfigure(attempt_timeout=2.0)
        remaining = policy.call(brace.deadline_remaining)
        assert remaining is not None and 0.0 < remaining <= 2.0  # the tighter of the two (10 s otherwise)

    def test_a_breaker_s_new_result_check_reaches_the_compiled_path(self) -> None:
        breaker = brace.CircuitBreaker(minimum_calls=1, window_size=1, failure_rate_threshold=1.0)
        policy = brace.Policy(breaker=breaker)
        guarded = policy(lambda: "bad")
        guarded()
        breaker.reconfigure(record_result=lambda result: result == "bad")
        guarded()
        assert breaker.state is brace.BreakerState.OPEN


class Response:
    """An HTTP response as brace.pushback.http_status reads one."""

    def __init__(self, status_code: object) -> None:
        self.status_code = status_code
        self.headers: dict[str, str] = {}


class ServerError:
    """A breaker's result check by status alone, declared so (brace._stages.status_threshold)."""

    _brace_fails_from_status = 500

    def __call__(self, result: object) -> bool:
        status = http_status(result)
        return status is not None and 500 <= status <= 599


def http_policy(judged_by_status: bool, **overrides: Any) -> Policy:
    """The HTTP integrations' policy shape: the default classifier, a 5xx breaker, a deadline."""
    from brace.classify import DEFAULT_CLASSIFIER

    check = ServerError() if judged_by_status else (lambda result: ServerError()(result))
    parts: dict[str, Any] = {
        "retry": brace.Retry(name="h", classifier=DEFAULT_CLASSIFIER, attempts=3, backoff=NO_WAIT, deadline=60.0),
        "breaker": brace.CircuitBreaker(name="h", window_size=10, minimum_calls=10, record_result=check),
    }
    parts.update(overrides)
    return Policy(**parts)


class TestCallJudgedInC:
    """Policy.call runs a plain function's first attempt in C under the call's deadline, and lets
    a response below the lowest failing status pass without Python when every result check says
    it judges by status alone: it must decide exactly as the checks in Python do."""

    @pytest.mark.parametrize("status", [200, 204, 399, 404, 429, 500, 503, 599])
    def test_a_response_is_judged_as_the_checks_in_python_judge_it(self, clock: FakeClock, status: int) -> None:
        outcomes = []
        for judged_by_status in (True, False):
            policy = http_policy(judged_by_status)
            sent: list[Response] = []

            def answer() -> Response:
                sent.append(Response(status))
                return sent[-1]

            result = policy.call(answer)
            assert policy.breaker is not None and policy.retry is not None
            metrics = policy.breaker.metrics()
            outcomes.append((result.status_code, len(sent), metrics.calls, metrics.failures, policy.retry.calls()))
        assert outcomes[0] == outcomes[1]
        assert outcomes[0][1] == (3 if status == 429 or status >= 500 else 1)  # retried by the classifier

    @pytest.mark.parametrize("response", [Response(True), Response(10**30), Response("200"), Response(None)],
                             ids=["bool", "huge", "str", "none"])  # fmt: skip
    def test_what_is_not_a_plain_status_is_judged_in_python(self, clock: FakeClock, response: Response) -> None:
        policy = http_policy(True)
        assert policy.call(lambda: response) is response
        assert policy.breaker is not None and policy.breaker.metrics().calls == 1

    def test_a_response_that_raises_when_looked_at_is_judged_in_python(self, clock: FakeClock) -> None:
        class Hostile:
            headers: dict[str, str] = {}

            @property
            def status_code(self) -> int:
                raise RuntimeError("no status")

        policy = http_policy(True)
        hostile = Hostile()
        assert policy.call(lambda: hostile) is hostile
        assert policy.breaker is not None and policy.breaker.metrics().calls == 1

    def test_a_classifier_judging_otherwise_is_asked(self, clock: FakeClock) -> None:
        asked: list[object] = []

        class Asking(brace.ErrorClassifier):
            def is_failure(self, result: object) -> bool:
                asked.append(result)
                return super().is_failure(result)

        retry = brace.Retry(name="c", classifier=Asking(), attempts=2, backoff=NO_WAIT)
        response = Response(200)
        assert Policy(retry=retry).call(lambda: response) is response
        assert asked == [response]

    def test_the_deadline_binds_the_attempts_not_the_fallback(self, clock: FakeClock) -> None:
        seen: dict[str, float | None] = {}

        def attempt() -> None:
            seen["attempt"] = brace.deadline_remaining()
            raise KeyError("no")

        def fallback(error: BaseException) -> str:
            seen["fallback"] = brace.deadline_remaining()
            return "fell back"

        assert http_policy(True, fallback=fallback).call(attempt) == "fell back"
        assert seen == {"attempt": pytest.approx(60.0), "fallback": None}
        assert brace.deadline_remaining() is None
        with brace.deadline(5.0):  # a tighter bound around the call wins
            assert http_policy(True).call(brace.deadline_remaining) == pytest.approx(5.0)

    def test_a_returned_awaitable_gives_everything_back(self, clock: FakeClock) -> None:
        async def later() -> int:
            return 1

        bulkhead = brace.Bulkhead(max_concurrent=1)
        policy = http_policy(True, bulkhead=bulkhead)
        awaitable = later()
        with pytest.raises(TypeError, match="call_async"):
            policy.call(lambda: awaitable)
        awaitable.close()
        assert bulkhead.in_use == 0 and brace.deadline_remaining() is None
        assert policy.retry is not None and policy.retry.calls().failed_without_retry == 1

    @pytest.mark.parametrize("broken", ["retry_on_result", "on", "record_result"])
    def test_a_check_that_raises_ends_the_call_through_the_fallback(self, clock: FakeClock, broken: str) -> None:
        def raises(outcome: object) -> bool:
            raise ValueError("the check broke")

        retry = brace.Retry(name="b", on=raises if broken == "on" else Exception, backoff=NO_WAIT,
                            retry_on_result=raises if broken == "retry_on_result" else None)  # fmt: skip
        breaker = brace.CircuitBreaker(name="b", record_result=raises if broken == "record_result" else None)
        seen: list[BaseException] = []

        def fallback(error: Exception) -> str:
            seen.append(error)
            return "fell back"

        def attempt() -> str:
            if broken == "on":
                raise KeyError("failed")
            return "value"

        assert Policy(retry=retry, breaker=breaker, fallback=fallback).call(attempt) == "fell back"
        assert [str(error) for error in seen] == ["the check broke"]
        assert retry.calls().failed_without_retry == 1

    def test_later_attempts_run_outside_the_first_one_s_exception(self, clock: FakeClock) -> None:
        import sys

        handling: list[object] = []

        def attempt() -> str:
            handling.append(sys.exc_info()[1])
            raise (ConnectionError if len(handling) == 1 else KeyError)(f"attempt {len(handling)}")

        with pytest.raises(KeyError) as raised:
            Policy(retry=brace.Retry(name="x", on=ConnectionError, backoff=NO_WAIT)).call(attempt)
        assert handling == [None, None]
        assert raised.value.__context__ is None

    def test_a_breaker_reconfigured_in_use_is_read_on_each_call(self, clock: FakeClock) -> None:
        breaker = brace.CircuitBreaker(name="r", minimum_calls=2, window_size=4, slow_call_duration=60.0)
        policy = Policy(breaker=breaker, deadline=30.0)
        breaker.reconfigure(record_result=lambda result: result == "bad", slow_call_duration=1.0)

        def slow_and_bad() -> str:
            clock.advance(2.0)
            return "bad"

        for _ in range(2):
            policy.call(slow_and_bad)
        metrics = breaker.metrics()
        assert (metrics.failures, metrics.slow_calls) == (2, 2)
        assert breaker.state is BreakerState.OPEN

