"""brace.Retry / brace.retry: retrying, giving up, pushback, budgets, deadlines, timeouts."""

from __future__ import annotations

import asyncio
import inspect
import logging
import re
import threading
from datetime import timedelta
from typing import Any

import pytest

import brace
from brace import Backoff, Retry
from brace.retry import RetryCalls
from brace.testing import FakeClock

LONG = 60.0  # a guard against hangs that no passing test reaches, not a timing
ONE_SECOND = Backoff.constant(delay=1.0, jitter="none")


class Flaky:
    """Fails `failures` times with `error`, then returns "ok"; counts its calls."""

    def __init__(self, failures: int, error: type[BaseException] = ConnectionError) -> None:
        self.failures, self.error, self.calls = failures, error, 0

    def __call__(self, *args: object, **kwargs: object) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error(f"failure {self.calls}")
        return "ok"


class Response:
    def __init__(self, status_code: int, headers: dict[str, str]) -> None:
        self.status_code, self.headers = status_code, headers


class HTTPError(Exception):
    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


@pytest.mark.parametrize("form", ["decorator", "call", "loop"])
def test_retries_until_it_succeeds(clock: FakeClock, form: str) -> None:
    flaky = Flaky(failures=2)
    retry = Retry(on=ConnectionError, attempts=3, backoff=ONE_SECOND)
    start = clock.now()
    if form == "decorator":
        assert retry(flaky)() == "ok"
    elif form == "call":
        assert retry.call(flaky) == "ok"
    else:
        for attempt in retry:
            with attempt:
                flaky()
    assert flaky.calls == 3
    assert clock.now() - start == pytest.approx(2.0)


@pytest.mark.parametrize("form", ["decorator", "call_async", "loop"])
def test_retries_coroutines(clock: FakeClock, form: str) -> None:
    flaky = Flaky(failures=2)

    async def fetch() -> str:
        await asyncio.sleep(0)
        return flaky()

    retry = Retry(on=ConnectionError, attempts=3, backoff=ONE_SECOND)

    async def scenario() -> None:
        if form == "decorator":
            assert await retry(fetch)() == "ok"
        elif form == "call_async":
            assert await retry.call_async(fetch) == "ok"
        else:
            async for attempt in retry:
                with attempt:
                    await fetch()

    asyncio.run(scenario())
    assert flaky.calls == 3


def test_gives_up_with_the_last_exception_and_a_note(clock: FakeClock) -> None:
    flaky = Flaky(failures=10)
    fetch = brace.retry(on=ConnectionError, attempts=3, backoff=ONE_SECOND, name="sheets")(flaky)
    with pytest.raises(ConnectionError, match="failure 3") as info:
        fetch()
    assert flaky.calls == 3
    assert getattr(info.value, "__notes__") == ["retry 'sheets' gave up after 3 attempt(s) (attempts)"]


def test_raise_retry_error_chains_the_last_exception(clock: FakeClock) -> None:
    flaky = Flaky(failures=10)
    with pytest.raises(brace.RetryError) as info:
        Retry(on=ConnectionError, attempts=2, backoff=ONE_SECOND, raise_retry_error=True).call(flaky)
    assert info.value.attempts == 2
    assert isinstance(info.value.__cause__, ConnectionError)


def test_exceptions_it_does_not_name_propagate_at_once(clock: FakeClock) -> None:
    flaky = Flaky(failures=10, error=KeyError)
    with pytest.raises(KeyError):
        brace.retry(on=ConnectionError, attempts=5)(flaky)()
    assert flaky.calls == 1


@pytest.mark.parametrize("on", [ConnectionError, (TimeoutError, ConnectionError), lambda e: "failure" in str(e)])
def test_on_takes_types_and_predicates(clock: FakeClock, on: Any) -> None:
    flaky = Flaky(failures=1)
    assert Retry(on=on, backoff=ONE_SECOND).call(flaky) == "ok"


def test_cancellation_and_keyboard_interrupt_are_never_retried(clock: FakeClock) -> None:
    flaky = Flaky(failures=10, error=KeyboardInterrupt)
    with pytest.raises(KeyboardInterrupt):
        Retry(on=BaseException, attempts=5).call(flaky)
    assert flaky.calls == 1


class TestCalls:
    """calls(): every call once, by how it ended (resilience4j's four kinds)."""

    @pytest.mark.parametrize("form", ["decorator", "call", "loop", "checked result", "deadline", "async"])
    def test_a_first_try_success_counts_on_every_path(self, clock: FakeClock, form: str) -> None:
        settings: dict[str, Any] = {"on": ConnectionError, "backoff": ONE_SECOND}
        if form == "checked result":
            settings["retry_on_result"] = lambda value: value is None
        elif form == "deadline":
            settings["deadline"] = 10.0  # the whole call runs in Python
        retry = Retry(**settings)
        flaky = Flaky(failures=0)
        if form == "decorator" or form == "checked result" or form == "deadline":
            assert retry(flaky)() == "ok"
        elif form == "call":
            assert retry.call(flaky) == "ok"
        elif form == "loop":
            for attempt in retry:
                with attempt:
                    flaky()
        else:
            assert asyncio.run(retry.call_async(asyncio.sleep, 0, "ok")) == "ok"
        assert retry.calls() == RetryCalls(successful_without_retry=1, successful_with_retry=0,
                                                 failed_with_retry=0, failed_without_retry=0)  # fmt: skip

    @pytest.mark.parametrize("deadline", [None, 10.0])
    def test_an_error_not_to_retry_ends_a_call_and_counts(self, clock: FakeClock, deadline: float | None) -> None:
        retry = Retry(on=ConnectionError, attempts=3, backoff=ONE_SECOND, deadline=deadline)
        with pytest.raises(KeyError):
            retry(Flaky(failures=10, error=KeyError))()  # at the first attempt
        later = Flaky(failures=2)
        later.error = ConnectionError

        def then_key_error() -> str:
            if later.calls == 1:
                later.calls += 1
                raise KeyError("second")
            return later()

        with pytest.raises(KeyError):
            retry.call(then_key_error)  # at the second attempt, after one retry
        assert retry(Flaky(failures=1))() == "ok"
        with pytest.raises(ConnectionError):
            retry.call(Flaky(failures=5))
        with pytest.raises(KeyboardInterrupt):
            retry.call(Flaky(failures=5, error=KeyboardInterrupt))  # counts in no kind
        assert retry.calls() == RetryCalls(successful_without_retry=0, successful_with_retry=1,
                                                 failed_with_retry=2, failed_without_retry=1)  # fmt: skip

    def test_async_errors_not_to_retry(self, clock: FakeClock) -> None:
        retry = Retry(on=ConnectionError, attempts=3, backoff=ONE_SECOND)
        failures = iter([ConnectionError("first"), KeyError("second")])

        async def second_is_fatal() -> None:
            raise next(failures)

        async def fatal() -> None:
            raise KeyError("first")

        for fn in (fatal, second_is_fatal):
            with pytest.raises(KeyError):
                asyncio.run(retry.call_async(fn))
        assert (retry.calls().failed_without_retry, retry.calls().failed_with_retry) == (1, 1)


class TestRetryOnResult:
    def test_retries_rejected_results(self, clock: FakeClock) -> None:
        results = iter([{"status": 503}, {"status": 503}, {"status": 200}])
        retry = Retry(on=(), retry_on_result=lambda r: r["status"] >= 500, backoff=ONE_SECOND)
        assert retry(lambda: next(results))() == {"status": 200}

    def test_gives_up_with_the_last_result(self, clock: FakeClock) -> None:
        calls = []

        def busy() -> int:
            calls.append(1)
            return len(calls)

        assert Retry(on=(), retry_on_result=lambda n: True, attempts=3, backoff=ONE_SECOND).call(busy) == 3

    def test_or_raises_retry_error(self, clock: FakeClock) -> None:
        retry = Retry(on=(), retry_on_result=lambda n: True, attempts=2, raise_retry_error=True, backoff=ONE_SECOND)
        with pytest.raises(brace.RetryError):
            retry.call(lambda: 1)

    def test_in_an_explicit_loop(self, clock: FakeClock) -> None:
        results = iter([None, None, "x"])
        seen = []
        for attempt in Retry(on=(), retry_on_result=lambda r: r is None, backoff=ONE_SECOND):
            with attempt:
                seen.append(attempt.check(next(results)))
        assert seen == [None, None, "x"]


class TestDeadline:
    def test_gives_up_when_the_next_sleep_would_cross_it(self, clock: FakeClock) -> None:
        flaky = Flaky(failures=10)
        start = clock.now()
        retry = Retry(on=ConnectionError, attempts=100, deadline=timedelta(seconds=3.5), backoff=ONE_SECOND)
        with pytest.raises(ConnectionError) as info:
            retry.call(flaky)
        assert flaky.calls == 4  # at 0, 1, 2, 3 s; a 4th sleep would end at 4 s > 3.5 s
        assert clock.now() - start == pytest.approx(3.0)  # never slept past the deadline
        assert "(deadline)" in getattr(info.value, "__notes__")[0]

    def test_applies_to_the_compiled_first_attempt_too(self, clock: FakeClock) -> None:
        def slow_failure() -> None:
            clock.advance(10.0)
            raise ConnectionError

        with pytest.raises(ConnectionError):
            brace.retry(on=ConnectionError, deadline=5.0, backoff=ONE_SECOND)(slow_failure)()


def failing_once_with(response: Response) -> Any:
    """A call that raises HTTPError(response) once, then returns "ok"."""
    responses = iter([response, None])

    def fetch() -> str:
        failure = next(responses)
        if failure is not None:
            raise HTTPError(failure)
        return "ok"

    return fetch


class TestPushback:
    def test_retry_after_wins_over_the_backoff(self, clock: FakeClock) -> None:
        start = clock.now()
        assert Retry(on=HTTPError, backoff=ONE_SECOND).call(failing_once_with(Response(429, {"Retry-After": "7"}))) == "ok"
        # Never earlier than asked; spread over up to 20% more.
        assert 7.0 <= clock.now() - start <= 7.0 * 1.2 + 1e-6

    def test_callers_told_the_same_wait_do_not_all_return_at_once(self, clock: FakeClock) -> None:
        retry = Retry(on=HTTPError, backoff=ONE_SECOND)
        returns = []
        for _ in range(12):  # twelve throttled callers, all told "Retry-After: 2"
            start = clock.now_ns()
            retry.call(failing_once_with(Response(429, {"Retry-After": "2"})))
            returns.append(clock.now_ns() - start)
        assert len(set(returns)) == 12
        assert all(2 * 10**9 <= wait <= 2.4 * 10**9 for wait in returns)

    def test_capped(self, clock: FakeClock) -> None:
        start = clock.now()
        Retry(on=HTTPError, pushback_cap=60.0).call(failing_once_with(Response(503, {"Retry-After": "86400"})))
        assert clock.now() - start == pytest.approx(60.0)

    def test_can_be_turned_off(self, clock: FakeClock) -> None:
        start = clock.now()
        Retry(on=HTTPError, pushback=False, backoff=ONE_SECOND).call(failing_once_with(Response(503, {"Retry-After": "50"})))
        assert clock.now() - start == pytest.approx(1.0)


def test_an_exhausted_budget_gives_up_with_its_own_error(clock: FakeClock) -> None:
    budget = brace.RetryBudget(ratio=0.5, min_per_second=0, ttl=10.0)
    retry = Retry(on=ConnectionError, attempts=10, budget=budget, backoff=ONE_SECOND)
    assert retry.call(lambda: "fine") == "fine"  # deposits 0.5
    assert retry.call(Flaky(failures=1)) == "ok"  # deposits 0.5; its retry withdraws 1
    with pytest.raises(brace.RetryBudgetExhausted) as info:
        retry.call(Flaky(failures=1))  # deposits 0.5: not enough for a retry
    assert isinstance(info.value.__cause__, ConnectionError)


def test_hooks_see_every_step(clock: FakeClock, caplog: pytest.LogCaptureFixture) -> None:
    events: list[tuple[str, int, float | None, str | None]] = []

    def hook(kind: str) -> Any:
        return lambda e: events.append((kind, e.attempt, e.delay, e.reason))

    def broken(event: brace.RetryEvent) -> None:
        raise RuntimeError("hook bug")

    retry = Retry(on=ConnectionError, attempts=3, backoff=ONE_SECOND, before_sleep=hook("before_sleep"),
                  on_retry=hook("retry"), on_giveup=hook("giveup"), name="x")  # fmt: skip
    with pytest.raises(ConnectionError):
        retry.call(Flaky(failures=10))
    assert events == [
        ("before_sleep", 1, 1.0, None), ("retry", 1, 1.0, None),
        ("before_sleep", 2, 1.0, None), ("retry", 2, 1.0, None),
        ("giveup", 3, None, "attempts"),
    ]  # fmt: skip
    with caplog.at_level(logging.ERROR, logger="brace"):
        assert Retry(on=ConnectionError, before_sleep=broken, backoff=ONE_SECOND).call(Flaky(1)) == "ok"
    assert "a hook of retry None failed" in caplog.text


class TestAttemptTimeout:
    def test_async_attempts_are_cancelled(self) -> None:
        calls = []

        async def hang() -> None:
            calls.append(1)
            await asyncio.sleep(3600)

        retry = Retry(on=brace.AttemptTimeout, attempts=2, attempt_timeout=0.05, backoff=Backoff.constant(delay=0.0))
        with pytest.raises(brace.AttemptTimeout) as info:
            asyncio.run(retry.call_async(hang))
        assert calls == [1, 1]
        assert isinstance(info.value, TimeoutError)
        assert info.value.timeout == 0.05

    def test_sync_attempts_stop_being_waited_for(self) -> None:
        caller_gave_up, finished = threading.Event(), threading.Event()

        def slow() -> str:
            caller_gave_up.wait(LONG)  # runs on until the caller has stopped waiting for it
            finished.set()
            return "too late"

        with pytest.raises(brace.AttemptTimeout):
            Retry(on=TimeoutError, attempts=1, attempt_timeout=0.05).call(slow)
        assert not finished.is_set()  # the caller did not wait for the attempt
        caller_gave_up.set()

    def test_sync_attempts_return_and_raise_through_the_thread(self) -> None:
        retry = Retry(on=ConnectionError, attempts=3, attempt_timeout=5.0, backoff=Backoff.constant(delay=0.0))
        assert retry(Flaky(failures=2))() == "ok"
        with pytest.raises(KeyError):
            retry.call(Flaky(failures=1, error=KeyError))


class TestDecorator:
    def test_keeps_the_function_s_face_and_binds_methods(self) -> None:
        retry = Retry(on=ConnectionError)

        class Client:
            @retry
            def get(self, path: str, *, page: int = 1) -> str:
                """Gets a page."""
                return f"{path}:{page}"

        assert Client().get("/a", page=2) == "/a:2"
        assert Client.get.__doc__ == "Gets a page."
        assert str(inspect.signature(Client.get)) == "(self, path: 'str', *, page: 'int' = 1) -> 'str'"

    def test_a_failure_keeps_its_traceback_when_not_retried(self) -> None:
        def raises() -> None:
            raise KeyError("original")

        with pytest.raises(KeyError) as info:
            Retry(on=ConnectionError)(raises)()
        assert info.traceback[-1].name == "raises"


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"on": "ConnectionError"}, TypeError, "on must be an exception type, a tuple of them, or a predicate"),
        ({"on": ConnectionError, "attempts": 0}, ValueError, "attempts must be an int from 1 to 2**63 - 1, got 0"),
        ({"on": ConnectionError, "attempts": 2.5}, TypeError, "attempts must be an int from 1 to 2**63 - 1, got float"),
        ({"on": ConnectionError, "deadline": -1}, ValueError, "deadline must be a finite number of seconds from 1e-09 to 4.61169e+09, or None"),
        ({"on": ConnectionError, "deadline": float("nan")}, ValueError, "deadline must be a finite number"),
        ({"on": ConnectionError, "attempt_timeout": 0}, ValueError, "attempt_timeout must be a finite number of seconds from 1e-09 to 4.61169e+09, or None"),
        ({"on": ConnectionError, "attempt_timeout": float("inf")}, ValueError, "attempt_timeout must be a finite number"),
        ({"on": ConnectionError, "backoff": 1.0}, TypeError, "backoff must be a brace.Backoff or None, got float"),
        ({"on": ConnectionError, "budget": 3}, TypeError, "budget must be a brace.RetryBudget or None"),
        ({"on": ConnectionError, "pushback_cap": 0}, ValueError, "pushback_cap must be a finite number of seconds from 1e-09 to 4.61169e+09"),
        ({"on": ConnectionError, "pushback": "yes"}, TypeError, "pushback must be a bool"),
        ({"on": ConnectionError, "retry_on_result": 1}, TypeError, "retry_on_result must be a predicate or None"),
        ({"on": ConnectionError, "before_sleep": 1}, TypeError, "before_sleep must be callable or None"),
        ({"on": ConnectionError, "name": 1}, TypeError, "name must be a str or None"),
    ],
)
def test_bad_configuration(kwargs: dict[str, Any], error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=f"^{re.escape(message)}"):
        Retry(**kwargs)


def test_on_is_required() -> None:
    with pytest.raises(TypeError):
        Retry()  # type: ignore[call-arg]
