"""brace.Retry(classifier=...): per-category attempts, backoffs and pushback; returned responses; Policy."""

from __future__ import annotations

import asyncio
import ssl
import threading
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import httpx
import pytest

import brace
from brace import Backoff, Policy, Retry, RetryEvent
from brace.classify import Category, ErrorClassifier
from brace.testing import FakeClock

C = Category
REQUEST = httpx.Request("GET", "https://api.example.com/things")
ONE_SECOND = Backoff.constant(delay=1.0, jitter="none")


def response(status: int, retry_after: str | None = None) -> httpx.Response:
    headers = {} if retry_after is None else {"Retry-After": retry_after}
    return httpx.Response(status, request=REQUEST, headers=headers)


def status_error(status: int, retry_after: str | None = None) -> httpx.HTTPStatusError:
    return httpx.HTTPStatusError(f"status {status}", request=REQUEST, response=response(status, retry_after))


# Exact, reproducible delays per category: 1, 2, 4, ... for timeouts; 10 s flat for the network;
# small allowances for the categories whose defaults ride out long outages.
EXACT = ErrorClassifier(treatments={
    C.TIMEOUT: {"backoff": Backoff.exponential(initial=1.0, multiplier=2.0, max=30.0, jitter="none")},
    C.NETWORK_ERROR: {"backoff": Backoff.constant(delay=10.0)},
    C.SERVICE_DOWN: {"backoff": Backoff.constant(delay=3.0), "retries": 3},
    C.RATE_LIMITED: {"backoff": Backoff.constant(delay=5.0), "retries": 5},
    C.INTERNAL_ERROR: {"backoff": Backoff.constant(delay=0.5)},
})  # fmt: skip


class ServerWait:
    """Equal to a gap that honoured a server's wait of `seconds`: never earlier, and
    spread over up to 20% more so that callers do not return in lockstep."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def __eq__(self, gap: object) -> bool:
        return isinstance(gap, float) and self.seconds <= gap <= self.seconds * 1.2 + 1e-6

    def __repr__(self) -> str:
        return f"ServerWait({self.seconds})"


class Script:
    """Plays outcomes in order: exceptions are raised, anything else returned; then "ok".

    Records the fake-clock time of each call.
    """

    def __init__(self, clock: FakeClock, outcomes: Iterable[object]) -> None:
        self.clock, self.outcomes, self.times = clock, list(outcomes), list[float]()

    def __call__(self, *args: object, **kwargs: object) -> object:
        self.times.append(self.clock.now())
        index = len(self.times) - 1
        outcome = self.outcomes[index] if index < len(self.outcomes) else "ok"
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    async def run_async(self) -> object:
        await asyncio.sleep(0)
        return self()

    @property
    def calls(self) -> int:
        return len(self.times)

    @property
    def gaps(self) -> list[float]:
        return [round(b - a, 6) for a, b in zip(self.times, self.times[1:])]


# -- per-category attempts -------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "calls", "gaps"),
    [
        # TIMEOUT: 3 more attempts, exponential 1, 2, 4.
        (lambda: TimeoutError("slow"), 4, [1.0, 2.0, 4.0]),
        # RATE_LIMITED: 5 more, each after the server's Retry-After.
        (lambda: status_error(429, "7"), 6, [ServerWait(7.0)] * 5),
        # SERVICE_DOWN: 3 more.
        (lambda: status_error(503), 4, [3.0] * 3),
        # INTERNAL_ERROR: 2 more.
        (lambda: status_error(500), 3, [0.5, 0.5]),
        # AUTH_INVALID, NOT_FOUND: none.
        (lambda: ssl.SSLCertVerificationError("bad cert"), 1, []),
        (lambda: status_error(404), 1, []),
    ],
    ids=["timeout", "rate_limited", "service_down", "internal_error", "auth_invalid", "not_found"],
)
def test_each_category_earns_its_own_attempts(clock: FakeClock, make: Callable[[], BaseException], calls: int,
                                              gaps: list[float]) -> None:  # fmt: skip
    script = Script(clock, [make() for _ in range(10)])
    with pytest.raises(type(make())) as info:
        Retry(classifier=EXACT)(script)()
    assert (script.calls, script.gaps) == (calls, gaps)
    notes = getattr(info.value, "__notes__", [])
    if calls > 1:
        category = EXACT.classify(info.value).category.value
        assert notes == [f"brace.retry gave up after {calls} attempt(s) (attempts: {category})"]
    else:
        assert notes == []  # not retryable: it propagates at once, untouched


def test_categories_are_counted_apart_within_a_call(clock: FakeClock) -> None:
    outcomes = [TimeoutError(), ConnectionResetError(), TimeoutError(), ConnectionResetError(), TimeoutError(),
                ConnectionResetError(), status_error(503)]  # fmt: skip
    script = Script(clock, outcomes)
    assert Retry(classifier=EXACT).call(script) == "ok"
    # Each category's k-th retry waits its own backoff at k.
    assert script.gaps == [1.0, 10.0, 2.0, 10.0, 4.0, 10.0, 3.0]


def test_a_category_gives_up_when_its_allowance_is_spent(clock: FakeClock) -> None:
    outcomes = [TimeoutError(), ConnectionResetError(), TimeoutError(), TimeoutError(), TimeoutError("fourth")]
    script = Script(clock, outcomes)
    with pytest.raises(TimeoutError, match="fourth"):
        Retry(classifier=EXACT).call(script)
    assert script.calls == 5


def test_the_tally_is_per_call(clock: FakeClock) -> None:
    retry = Retry(classifier=EXACT)
    for _ in range(3):
        script = Script(clock, [TimeoutError()] * 3)
        assert retry.call(script) == "ok"
        assert script.calls == 4


def test_concurrent_calls_keep_their_own_tallies(clock: FakeClock) -> None:
    retry = Retry(classifier=ErrorClassifier(treatments={C.TIMEOUT: {"backoff": Backoff.constant(delay=0.0)}}))
    results: list[object] = []

    def worker() -> None:
        script = Script(clock, [TimeoutError()] * 3)
        results.append(retry.call(script))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == ["ok"] * 8


def test_attempts_caps_the_total(clock: FakeClock) -> None:
    script = Script(clock, [TimeoutError(), ConnectionResetError(), status_error(503), TimeoutError("4th")])
    with pytest.raises(TimeoutError, match="4th") as info:
        Retry(classifier=EXACT, attempts=4).call(script)
    assert script.calls == 4
    assert getattr(info.value, "__notes__") == ["brace.retry gave up after 4 attempt(s) (attempts: timeout)"]


def test_treatment_and_rule_overrides_change_the_allowance(clock: FakeClock) -> None:
    classifier = ErrorClassifier(
        rules=[ErrorClassifier.rule(C.TIMEOUT, types=KeyError, retries=1, backoff=ONE_SECOND)],
        treatments={C.NOT_FOUND: {"retryable": True, "retries": 2, "backoff": ONE_SECOND}},
    )
    keys = Script(clock, [KeyError("a")] * 5)
    with pytest.raises(KeyError):
        Retry(classifier=classifier).call(keys)
    assert keys.calls == 2
    missing = Script(clock, [status_error(404)] * 5)
    with pytest.raises(httpx.HTTPStatusError):
        Retry(classifier=classifier).call(missing)
    assert missing.calls == 3


# -- delays ----------------------------------------------------------------------------


def test_default_backoffs_are_full_jitter_per_category_and_reproducible(clock: FakeClock) -> None:
    def gaps() -> list[float]:
        brace.testing.seed(7)
        script = Script(clock, [TimeoutError()] * 3 + [status_error(503)] * 3)
        Retry(classifier=ErrorClassifier()).call(script)
        return script.gaps

    first = gaps()
    assert first == gaps()
    # exponential(initial=1, multiplier=2) with full jitter: [0, 1), [0, 2), [0, 4) for each category.
    for gap, cap in zip(first, [1.0, 2.0, 4.0, 1.0, 2.0, 4.0]):
        assert 0 <= gap < cap


def test_an_explicit_backoff_replaces_the_categories(clock: FakeClock) -> None:
    script = Script(clock, [TimeoutError(), ConnectionResetError(), status_error(503)])
    assert Retry(classifier=EXACT, backoff=ONE_SECOND).call(script) == "ok"
    assert script.gaps == [1.0, 1.0, 1.0]


def test_the_server_wait_wins_over_the_backoff(clock: FakeClock) -> None:
    script = Script(clock, [status_error(503, "20"), status_error(503)])
    assert Retry(classifier=EXACT).call(script) == "ok"
    assert script.gaps == [ServerWait(20.0), 3.0]


@pytest.mark.parametrize(
    ("retry_pushback", "treatment_pushback", "gap"),
    [(True, True, ServerWait(20.0)), (False, True, 3.0), (True, False, 3.0), (False, False, 3.0)],
)
def test_pushback_needs_both_flags(clock: FakeClock, retry_pushback: bool, treatment_pushback: bool,
                                   gap: float | ServerWait) -> None:  # fmt: skip
    classifier = ErrorClassifier(treatments={C.SERVICE_DOWN: {"backoff": Backoff.constant(delay=3.0),
                                                              "pushback": treatment_pushback}})  # fmt: skip
    script = Script(clock, [status_error(503, "20")])
    assert Retry(classifier=classifier, pushback=retry_pushback).call(script) == "ok"
    assert script.gaps == [gap]


def test_the_retry_pushback_cap_bounds_the_server_wait(clock: FakeClock) -> None:
    script = Script(clock, [status_error(429, "3600")])
    assert Retry(classifier=EXACT, pushback_cap=60).call(script) == "ok"
    assert script.gaps == [60.0]


def test_brace_rate_limited_retry_after_is_honoured(clock: FakeClock) -> None:
    script = Script(clock, [brace.RateLimited(retry_after=0.25, name="api", requested=1, limit=1)])
    assert Retry(classifier=EXACT).call(script) == "ok"
    assert script.gaps == [ServerWait(0.25)]


def test_deadline_still_applies(clock: FakeClock) -> None:
    script = Script(clock, [status_error(429, "30")] * 5)
    with pytest.raises(httpx.HTTPStatusError) as info:
        Retry(classifier=EXACT, deadline=70).call(script)
    assert script.calls == 3
    assert "(deadline: rate_limited)" in getattr(info.value, "__notes__")[0]


# -- returned responses ----------------------------------------------------------------


@pytest.mark.parametrize("form", ["decorator", "call", "loop"])
def test_returned_failures_are_retried(clock: FakeClock, form: str) -> None:
    ok = response(200)
    script = Script(clock, [response(503, "2"), response(502), ok])
    retry = Retry(classifier=EXACT)
    if form == "decorator":
        result = retry(script)()
    elif form == "call":
        result = retry.call(script)
    else:
        for attempt in retry:
            with attempt:
                result = attempt.check(script())
    assert result is ok
    assert script.gaps == [ServerWait(2.0), 3.0]


def test_a_returned_failure_that_is_not_retryable_is_returned_at_once(clock: FakeClock) -> None:
    missing = response(404)
    script = Script(clock, [missing])
    assert Retry(classifier=EXACT)(script)() is missing
    assert script.calls == 1


def test_a_returned_failure_that_persists_is_returned_when_it_gives_up(clock: FakeClock) -> None:
    responses = [response(503) for _ in range(10)]
    script = Script(clock, responses)
    assert Retry(classifier=EXACT)(script)() is responses[3]
    assert script.calls == 4


def test_plain_results_pass_through_the_compiled_path(clock: FakeClock) -> None:
    script = Script(clock, [{"id": 1}])
    assert Retry(classifier=EXACT)(script)() == {"id": 1}
    assert script.calls == 1


def test_retry_on_result_is_combined_by_or(clock: FakeClock) -> None:
    bad = {"ready": False}
    script = Script(clock, [bad, response(503), bad, {"ready": True}])
    retry = Retry(classifier=EXACT, retry_on_result=lambda r: isinstance(r, dict) and not r["ready"],
                  backoff=ONE_SECOND)  # fmt: skip
    assert retry.call(script) == {"ready": True}
    assert script.calls == 4


@pytest.mark.parametrize(("attempts", "calls"), [(None, 3), (5, 5)])
def test_results_only_retry_on_result_rejects_count_against_attempts(
    clock: FakeClock, attempts: int | None, calls: int
) -> None:
    script = Script(clock, [{"ready": False}] * 10)
    retry = Retry(classifier=EXACT, retry_on_result=lambda r: not r["ready"], attempts=attempts, backoff=ONE_SECOND)
    assert retry.call(script) == {"ready": False}
    assert script.calls == calls


# -- on, hooks, configuration -----------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "retried"),
    [
        (ConnectionResetError(), True),  # both agree
        (ssl.SSLCertVerificationError("bad cert"), False),  # on accepts it, the classifier does not
        (status_error(503), False),  # the classifier accepts it, on does not
    ],
)
def test_on_and_the_classifier_must_both_agree(clock: FakeClock, error: Exception, retried: bool) -> None:
    script = Script(clock, [error])
    retry = Retry(on=OSError, classifier=EXACT, backoff=ONE_SECOND)
    if retried:
        assert retry.call(script) == "ok"
    else:
        with pytest.raises(type(error)):
            retry.call(script)
    assert script.calls == (2 if retried else 1)


def test_hooks_receive_the_classification(clock: FakeClock) -> None:
    events: list[tuple[str, RetryEvent]] = []
    retry = Retry(
        classifier=EXACT,
        before_sleep=lambda e: events.append(("sleep", e)),
        on_retry=lambda e: events.append(("retry", e)),
        on_giveup=lambda e: events.append(("giveup", e)),
    )
    with pytest.raises(ValueError):
        retry.call(Script(clock, [status_error(429, "1"), ValueError("unknown")]))
    with pytest.raises(httpx.HTTPStatusError):
        retry.call(Script(clock, [status_error(500)] * 3))
    seen = [(kind, e.attempt, e.classification and e.classification.category, e.reason) for kind, e in events]
    assert seen == [
        ("sleep", 1, C.RATE_LIMITED, None), ("retry", 1, C.RATE_LIMITED, None),
        ("sleep", 1, C.INTERNAL_ERROR, None), ("retry", 1, C.INTERNAL_ERROR, None),
        ("sleep", 2, C.INTERNAL_ERROR, None), ("retry", 2, C.INTERNAL_ERROR, None),
        ("giveup", 3, C.INTERNAL_ERROR, "attempts"),
    ]  # fmt: skip
    assert events[0][1].classification is not None and events[0][1].classification.retry_after == 1.0


def test_events_without_a_classifier_have_none(clock: FakeClock) -> None:
    events: list[RetryEvent] = []
    Retry(on=ConnectionError, backoff=ONE_SECOND, before_sleep=events.append).call(
        Script(clock, [ConnectionResetError()]))  # fmt: skip
    assert events[0].classification is None


def test_raise_retry_error_and_budget_work_with_a_classifier(clock: FakeClock) -> None:
    with pytest.raises(brace.RetryError) as info:
        Retry(classifier=EXACT, raise_retry_error=True).call(Script(clock, [TimeoutError()] * 10))
    assert info.value.attempts == 4
    budget = brace.RetryBudget(ratio=0.001, min_per_second=0)
    with pytest.raises(brace.RetryBudgetExhausted):
        Retry(classifier=EXACT, budget=budget).call(Script(clock, [TimeoutError()]))


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({}, TypeError, "on must be an exception type, a tuple of them, or a predicate (it may be left out only "
                        "with a classifier), got None"),
        ({"on": None}, TypeError, "on must be an exception type"),
        ({"classifier": "default"}, TypeError, "classifier must be a brace.ErrorClassifier (or have its classify() and is_failure()) or None, got str"),
        ({"classifier": EXACT, "attempts": 0}, ValueError, "attempts must be an int from 1 to 2\\*\\*63 - 1, got 0"),
        ({"classifier": EXACT, "on": "OSError"}, TypeError, "on must be an exception type"),
    ],
)  # fmt: skip
def test_bad_configuration(kwargs: dict[str, Any], error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message.replace("(", r"\(").replace(")", r"\)")):
        Retry(**kwargs)


def test_attempts_default_without_a_classifier_is_still_3(clock: FakeClock) -> None:
    script = Script(clock, [ConnectionResetError()] * 5)
    with pytest.raises(ConnectionResetError):
        Retry(on=ConnectionError, backoff=ONE_SECOND).call(script)
    assert script.calls == 3
    assert "classifier" not in repr(Retry(on=ConnectionError))
    assert "classifier=ErrorClassifier(" in repr(Retry(classifier=EXACT))


# -- Policy and async ------------------------------------------------------------------


def run_policy(policy: Policy, script: Script, form: str) -> object:
    if form == "decorator":
        return policy(script)()
    if form == "call":
        return policy.call(script)
    if form == "decorator_async":
        return asyncio.run(policy(script.run_async)())
    return asyncio.run(policy.call_async(script.run_async))


POLICY_FORMS = ["decorator", "call", "decorator_async", "call_async"]


@pytest.mark.parametrize("form", POLICY_FORMS)
def test_policy_retries_per_category(clock: FakeClock, form: str) -> None:
    ok = response(200)
    script = Script(clock, [TimeoutError(), status_error(429, "7"), response(503), TimeoutError(), ok])
    policy = Policy(retry=Retry(classifier=EXACT), breaker=brace.CircuitBreaker(name=f"classified-{form}"))
    assert run_policy(policy, script, form) is ok
    assert script.gaps == [1.0, ServerWait(7.0), 3.0, 2.0]


@pytest.mark.parametrize("form", POLICY_FORMS)
def test_policy_gives_up_per_category_and_falls_back(clock: FakeClock, form: str) -> None:
    seen: list[Exception] = []

    def fallback(error: Exception) -> str:
        seen.append(error)
        return "fallback"

    script = Script(clock, [status_error(500)] * 10)
    policy = Policy(retry=Retry(classifier=EXACT), fallback=fallback)
    assert run_policy(policy, script, form) == "fallback"
    assert script.calls == 3
    assert isinstance(seen[0], httpx.HTTPStatusError)


@pytest.mark.parametrize("form", POLICY_FORMS)
def test_policy_does_not_retry_what_the_classifier_refuses(clock: FakeClock, form: str) -> None:
    script = Script(clock, [status_error(403)])
    with pytest.raises(httpx.HTTPStatusError):
        run_policy(Policy(retry=Retry(classifier=EXACT)), script, form)
    assert script.calls == 1


@pytest.mark.parametrize("form", POLICY_FORMS)
def test_policy_returns_plain_results(clock: FakeClock, form: str) -> None:
    script = Script(clock, ["value"])
    assert run_policy(Policy(retry=Retry(classifier=EXACT)), script, form) == "value"
    assert script.calls == 1


@pytest.mark.parametrize("form", ["decorator", "call_async", "loop"])
def test_async(clock: FakeClock, form: str) -> None:
    ok = response(200)
    script = Script(clock, [TimeoutError(), response(503, "4"), ConnectionResetError(), TimeoutError(), ok])
    retry = Retry(classifier=EXACT)

    async def scenario() -> object:
        if form == "decorator":
            return await retry(script.run_async)()
        if form == "call_async":
            return await retry.call_async(script.run_async)
        result: object = None
        async for attempt in retry:
            with attempt:
                result = attempt.check(await script.run_async())
        return result

    assert asyncio.run(scenario()) is ok
    assert script.gaps == [1.0, ServerWait(4.0), 10.0, 2.0]


def test_async_gives_up_per_category(clock: FakeClock) -> None:
    script = Script(clock, [TimeoutError("slow")] * 10)
    run: Callable[[], Awaitable[object]] = Retry(classifier=EXACT)(script.run_async)
    with pytest.raises(TimeoutError):
        asyncio.run(run())  # type: ignore[arg-type]
    assert script.calls == 4


@pytest.mark.parametrize("form", POLICY_FORMS)
def test_policy_retries_a_first_returned_failure(clock: FakeClock, form: str) -> None:
    # The first attempt of a decorated call runs in the compiled wrapper, which must check results.
    ok = response(200)
    script = Script(clock, [response(503, "2"), ok])
    assert run_policy(Policy(retry=Retry(classifier=EXACT)), script, form) is ok
    assert script.gaps == [ServerWait(2.0)]
