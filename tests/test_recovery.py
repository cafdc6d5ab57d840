"""brace.Recovery: every category's path (retry, heal, fall back, escalate), sync and
async, with the real exception classes of the HTTP libraries and the fake clock."""

from __future__ import annotations

import asyncio
import json
import ssl
import threading
from collections.abc import Callable, Iterator
from typing import Any

import aiohttp
import httpx
import pytest
import requests
import yarl
from hypothesis import given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict, CIMultiDictProxy

import brace
from brace import (
    Backoff,
    Category,
    Decision,
    Degraded,
    ErrorClassifier,
    EscalationPolicy,
    Fallback,
    HealingAction,
    HealingStats,
    Option,
    Recovery,
    RecoveryEvent,
    RecoveryFailed,
)
from brace.control import control
from brace.healing import HealingContext
from brace.switchboard import switches
from brace.testing import FakeClock

_REQUEST = httpx.Request("GET", "https://sheets.example/v4/values")


def httpx_status(status: int, **headers: str) -> httpx.HTTPStatusError:
    response = httpx.Response(status, request=_REQUEST, headers=headers)
    return httpx.HTTPStatusError(f"status {status}", request=_REQUEST, response=response)


def requests_status(status: int) -> requests.HTTPError:
    response = requests.Response()
    response.status_code = status
    return requests.HTTPError(f"status {status}", response=response)


def aiohttp_status(status: int) -> aiohttp.ClientResponseError:
    url = yarl.URL("https://calendar.example/v3/events")
    info = aiohttp.RequestInfo(url, "GET", CIMultiDictProxy(CIMultiDict()), url)
    return aiohttp.ClientResponseError(info, (), status=status, message="no")


# One real failure for each category, and the further attempts its default treatment allows.
CATEGORY_CASES: list[tuple[Category, Callable[[], Exception], int]] = [
    (Category.TIMEOUT, lambda: httpx.ReadTimeout("read timed out", request=_REQUEST), 3),
    (Category.RATE_LIMITED, lambda: httpx_status(429, **{"Retry-After": "7"}), 10),
    (Category.SERVICE_DOWN, lambda: requests_status(503), 10),
    (Category.NETWORK_ERROR, lambda: ConnectionResetError(104, "Connection reset by peer"), 3),
    (Category.AUTH_EXPIRED, lambda: httpx_status(401), 2),
    (Category.AUTH_INVALID, lambda: ssl.SSLCertVerificationError(1, "certificate verify failed"), 0),
    (Category.PERMISSION_DENIED, lambda: aiohttp_status(403), 0),
    (Category.NOT_FOUND, lambda: requests_status(404), 0),
    (Category.SCHEMA_MISMATCH, lambda: json.JSONDecodeError("Expecting value", "<html>", 0), 2),
    (Category.INTERNAL_ERROR, lambda: httpx_status(500), 2),
    (Category.UNKNOWN, lambda: ValueError("the service said something odd"), 0),
]
CATEGORY_IDS = [case[0].value for case in CATEGORY_CASES]


class Service:
    """A scripted remote service: each call takes the next item of the script
    (an exception factory raises, anything else is returned), then returns "ok"."""

    def __init__(self, *script: object, then: object = "ok") -> None:
        self.script = list(script)
        self.then = then
        self.calls = 0
        self.times: list[float] = []

    def __call__(self, *args: object, **kwargs: object) -> object:
        self.calls += 1
        self.times.append(brace.testing.FakeClock().now())
        item = self.script.pop(0) if self.script else self.then
        if callable(item):
            made = item()
            if isinstance(made, BaseException):
                raise made
            return made
        return item


@pytest.fixture(params=["sync", "async"])
def run(request: pytest.FixtureRequest) -> Callable[..., Any]:
    """Runs a call through a Recovery, synchronously or in an event loop."""

    def sync(recovery: Recovery, service: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return recovery.call(service, *args, **kwargs)

    def in_loop(recovery: Recovery, service: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        async def remote(*inner: Any, **named: Any) -> Any:
            await asyncio.sleep(0)
            return service(*inner, **named)

        remote.__qualname__ = getattr(service, "__qualname__", "remote")
        return asyncio.run(recovery.call_async(remote, *args, **kwargs))

    return sync if request.param == "sync" else in_loop


@pytest.fixture(autouse=True)
def clean_overrides() -> Iterator[None]:
    yield
    control.clear_decisions()


def quiet() -> EscalationPolicy:
    """Abort without logging: the tests look at the exception."""
    return EscalationPolicy()


class TestEveryCategory:
    @pytest.mark.parametrize("category, failure, retries", CATEGORY_CASES, ids=CATEGORY_IDS)
    def test_a_lasting_failure_gets_its_allowance_then_escalates(
        self, clock: FakeClock, run: Callable[..., Any], category: Category,
        failure: Callable[[], Exception], retries: int,
    ) -> None:  # fmt: skip
        service = Service(then=failure)
        escalations: list[brace.Escalation] = []
        recovery = Recovery(escalation=EscalationPolicy(handlers=[escalations.append]), name="sync_sheet")
        with pytest.raises(RecoveryFailed) as caught:
            run(recovery, service)
        assert service.calls == 1 + retries
        failed = caught.value
        assert failed.category == category.value
        assert failed.attempts == 1 + retries
        assert failed.reason == ("attempts" if retries else "not_retryable")
        assert failed.operation == "sync_sheet"
        assert isinstance(failed.__cause__, type(failure()))
        [escalation] = escalations
        assert escalation.category is category
        assert [record.number for record in escalation.timeline] == list(range(1, 2 + retries))
        assert all(record.outcome == "failure" for record in escalation.timeline)
        assert category.value.upper() in escalation.explain()

    @pytest.mark.parametrize(
        "category, failure, retries", [case for case in CATEGORY_CASES if case[2]],
        ids=[case[0].value for case in CATEGORY_CASES if case[2]],
    )  # fmt: skip
    def test_a_passing_failure_heals_by_retrying(
        self, clock: FakeClock, run: Callable[..., Any], category: Category,
        failure: Callable[[], Exception], retries: int,
    ) -> None:  # fmt: skip
        service = Service(*[failure] * retries, then="rows")
        started = clock.now()
        assert run(Recovery(escalation=quiet()), service) == "rows"
        assert service.calls == 1 + retries
        waits = [later - earlier for earlier, later in zip(service.times, service.times[1:])]
        if category is Category.RATE_LIMITED:
            # The server's Retry-After, never less, spread over up to 20% more.
            assert all(7.0 <= wait <= 7.0 * 1.2 + 1e-6 for wait in waits)
        else:
            treatment = ErrorClassifier().treatment(category)
            assert treatment.backoff.max is not None
            assert all(0 <= wait <= treatment.backoff.max for wait in waits)
        assert clock.now() - started == pytest.approx(sum(waits))


class TestHealing:
    def test_auth_expired_refreshes_then_retries(self, clock: FakeClock, run: Callable[..., Any]) -> None:
        session = {"token": "old"}

        def service() -> str:
            if session["token"] == "old":
                raise httpx_status(401)
            return "rows"

        def refresh(context: HealingContext) -> None:
            assert context.classification.category is Category.AUTH_EXPIRED
            session["token"] = "new"

        action = HealingAction(refresh, categories="auth_expired")
        assert action.name.endswith("<locals>.refresh")  # named after the function by default
        recovery = Recovery(healing=[action], escalation=quiet())
        assert run(recovery, service) == "rows"
        record = recovery.healing_stats.get(Category.AUTH_EXPIRED, action.name)
        assert (record.healed, record.failed) == (1, 0)

    def test_a_401_after_a_refresh_is_invalid_credentials(self, clock: FakeClock, run: Callable[..., Any]) -> None:
        refreshed: list[int] = []
        action = HealingAction(lambda context: refreshed.append(context.attempt), categories="auth_expired",
                               name="refresh")  # fmt: skip
        service = Service(then=lambda: httpx_status(401))
        with pytest.raises(RecoveryFailed) as caught:
            run(Recovery(healing=[action], escalation=quiet()), service)
        assert refreshed == [1]
        assert service.calls == 2
        assert (caught.value.category, caught.value.reason) == ("auth_invalid", "not_retryable")

    @pytest.mark.parametrize(
        "category, failure", [case[:2] for case in CATEGORY_CASES if case[2]],
        ids=[case[0].value for case in CATEGORY_CASES if case[2]],
    )  # fmt: skip
    def test_the_action_fixes_what_waiting_would_not(
        self, clock: FakeClock, run: Callable[..., Any], category: Category, failure: Callable[[], Exception]
    ) -> None:
        state = {"fixed": False}

        def service() -> str:
            if not state["fixed"]:
                raise failure()
            return "ok"

        action = HealingAction(lambda context: state.update(fixed=True), categories=category, name="fix")
        recovery = Recovery(healing=[action], escalation=quiet())
        assert run(recovery, service) == "ok"
        assert recovery.healing_stats.get(category, "fix").healed == 1

    def test_an_action_that_raises_is_recorded_and_the_next_one_runs(
        self, clock: FakeClock, run: Callable[..., Any]
    ) -> None:
        state = {"connected": False}

        def broken(context: HealingContext) -> None:
            raise RuntimeError("pool is gone")

        def reconnect(context: HealingContext) -> None:
            state["connected"] = True

        def service() -> str:
            if not state["connected"]:
                raise ConnectionResetError(104, "reset")
            return "ok"

        events: list[RecoveryEvent] = []
        recovery = Recovery(healing=[HealingAction(broken, categories="network_error", name="broken"),
                                     HealingAction(reconnect, categories="network_error", name="reconnect")],
                            escalation=quiet())  # fmt: skip
        recovery.add_listener(events.append)
        assert run(recovery, service) == "ok"
        heals = [(event.detail, event.outcome) for event in events if event.kind == "heal"]
        assert ("reconnect", "ok") in heals
        assert heals.count(("broken", "failed")) <= 1  # only when Thompson sampling tried it first
        assert recovery.healing_stats.get(Category.NETWORK_ERROR, "reconnect").healed == 1

    def test_undo_rolls_back_an_action_that_did_not_help(self, clock: FakeClock, run: Callable[..., Any]) -> None:
        endpoint = {"url": "primary"}
        undone: list[str] = []

        def service() -> str:
            raise requests_status(503)  # down, whichever endpoint

        action = HealingAction(lambda context: endpoint.update(url="backup"), categories="service_down",
                               undo=lambda context: (undone.append(endpoint["url"]), endpoint.update(url="primary")),
                               name="switch_endpoint")  # fmt: skip
        stats = HealingStats()
        escalations: list[brace.Escalation] = []
        with pytest.raises(RecoveryFailed) as caught:
            run(Recovery(healing=[action], healing_stats=stats, healing_time=3.0,
                         escalation=EscalationPolicy(handlers=[escalations.append])), service)  # fmt: skip
        assert caught.value.category == "service_down"
        assert undone and set(undone) == {"backup"}  # each switch that did not help was rolled back
        assert endpoint["url"] == "primary"
        record = stats.get(Category.SERVICE_DOWN, "switch_endpoint")
        assert record.healed == 0 and record.failed >= 1
        [escalation] = escalations
        assert escalation.timeline[1].actions == ("switch_endpoint: ok",)

    def test_an_action_is_credited_for_what_it_fixed_even_when_another_failure_follows(
        self, clock: FakeClock, run: Callable[..., Any]
    ) -> None:
        session = {"token": "old"}
        undone: list[str] = []

        def service() -> str:
            # The refreshed token is accepted; then the service is found to forbid the call.
            raise httpx_status(401) if session["token"] == "old" else aiohttp_status(403)

        action = HealingAction(lambda context: session.update(token="new"), categories="auth_expired",
                               undo=lambda context: undone.append("refresh"), name="refresh_token")  # fmt: skip
        stats = HealingStats()
        with pytest.raises(RecoveryFailed) as caught:
            run(Recovery(healing=[action], healing_stats=stats, escalation=quiet()), service)
        assert caught.value.category == "permission_denied"
        assert undone == []  # it did what it was for: kept
        record = stats.get(Category.AUTH_EXPIRED, "refresh_token")
        assert (record.healed, record.failed) == (1, 0)

    def test_an_async_undo_is_awaited_by_an_async_recovery(self, clock: FakeClock) -> None:
        endpoint = {"url": "primary"}

        async def switch(context: HealingContext) -> None:
            endpoint["url"] = "backup"

        async def switch_back(context: HealingContext) -> None:
            await asyncio.sleep(0)
            endpoint["url"] = "primary"

        async def service() -> str:
            raise requests_status(503)  # the switch does not help: it is undone

        events: list[RecoveryEvent] = []
        recovery = Recovery(healing=[HealingAction(switch, categories="service_down", undo=switch_back)],
                            escalation=quiet(), healing_time=1.0)  # fmt: skip
        recovery.add_listener(events.append)
        with pytest.raises(RecoveryFailed):
            asyncio.run(recovery.call_async(service))
        assert endpoint["url"] == "primary"
        undos = [event.outcome for event in events if event.kind == "undo"]
        assert undos and set(undos) == {"ok"}

    def test_the_healing_time_bound_escalates(self, clock: FakeClock, run: Callable[..., Any]) -> None:
        classifier = ErrorClassifier(treatments={
            "timeout": {"retries": 10, "backoff": Backoff.constant(delay=2.0, jitter="none")}})  # fmt: skip
        service = Service(then=lambda: TimeoutError("slow"))
        started = clock.now()
        with pytest.raises(RecoveryFailed) as caught:
            run(Recovery(classifier=classifier, healing_time=5.0, escalation=quiet()), service)
        assert caught.value.reason == "healing_time"
        assert service.calls == 3  # at 0, 2 and 4 s: a wait to 6 s would cross the bound
        assert clock.now() - started == pytest.approx(4.0)

    def test_thompson_sampling_learns_which_action_heals(self, clock: FakeClock) -> None:
        state = {"up": False}

        def service() -> str:
            if not state["up"]:
                raise requests_status(503)
            state["up"] = False  # the next call finds it down again
            return "ok"

        actions = [HealingAction(lambda context: None, categories="service_down", name="clear_cache"),
                   HealingAction(lambda context: state.update(up=True), categories="service_down",
                                 name="switch_endpoint")]  # fmt: skip
        recovery = Recovery(healing=actions, escalation=quiet())
        brace.testing.seed(5)
        for _ in range(40):
            assert recovery.call(service) == "ok"
        stats = recovery.healing_stats
        good, bad = stats.get(Category.SERVICE_DOWN, "switch_endpoint"), stats.get(Category.SERVICE_DOWN, "clear_cache")
        assert good.healed == 40 and good.failed == 0
        assert bad.tried < 15  # tried early, then rarely: the record says it does not heal
        exported = HealingStats.from_json(stats.to_json())
        assert exported.get(Category.SERVICE_DOWN, "switch_endpoint") == good

    def test_an_async_action_in_a_sync_call_is_recorded_not_run(self, clock: FakeClock) -> None:
        async def refresh(context: HealingContext) -> None:
            raise AssertionError("never awaited")

        escalations: list[brace.Escalation] = []
        service = Service(lambda: httpx_status(401), lambda: httpx_status(401), lambda: httpx_status(401))
        with pytest.raises(RecoveryFailed):
            Recovery(healing=[HealingAction(refresh, categories="auth_expired")],
                     escalation=EscalationPolicy(handlers=[escalations.append])).call(service)  # fmt: skip
        assert "failed (an async healing action in a sync call)" in escalations[0].timeline[1].actions[0]


class TestFallback:
    @pytest.mark.parametrize("category, failure, retries", CATEGORY_CASES, ids=CATEGORY_IDS)
    def test_every_category_falls_back_when_recovery_stops(
        self, clock: FakeClock, run: Callable[..., Any], category: Category,
        failure: Callable[[], Exception], retries: int,
    ) -> None:  # fmt: skip
        service = Service(then=failure)
        served = run(Recovery(fallback=Fallback(Fallback.value("spare", name="spare")), escalation=quiet()), service)
        assert isinstance(served, Degraded)
        assert served.value == "spare" and served.source == "fallback:spare"
        assert served.classification is not None and served.classification.category is category
        assert service.calls == 1 + retries

    def test_a_chain_serves_a_marked_value(self, clock: FakeClock, run: Callable[..., Any]) -> None:
        def mirror(sheet: str) -> list[str]:
            raise ConnectionRefusedError(111, "mirror is down too")

        recovery = Recovery(fallback=Fallback(mirror, Fallback.value([], name="empty")), escalation=quiet())
        service = Service(then=lambda: requests_status(503))
        served = run(recovery, service, "sheet-1")
        assert isinstance(served, Degraded)
        assert served.value == [] and served.source == "fallback:empty"
        assert served.classification is not None and served.classification.category is Category.SERVICE_DOWN
        assert isinstance(served.error, requests.HTTPError)
        assert service.calls == 11  # SERVICE_DOWN's 10 retries first

    def test_stale_if_error_serves_the_last_good_result_for_the_same_key(
        self, clock: FakeClock, run: Callable[..., Any]
    ) -> None:
        recovery = Recovery(fallback=Fallback(Fallback.cached(max_age=600.0)), escalation=quiet())
        assert run(recovery, Service(then=["row-1"]), "sheet-1") == ["row-1"]
        clock.advance(60.0)
        served = run(recovery, Service(then=lambda: aiohttp_status(403)), "sheet-1")
        assert isinstance(served, Degraded)
        assert served.value == ["row-1"] and served.source == "cache"
        assert served.age == pytest.approx(60.0)
        with pytest.raises(RecoveryFailed) as caught:  # no entry for another key
            run(recovery, Service(then=lambda: aiohttp_status(403)), "sheet-2")
        assert caught.value.reason == "fallback_failed"

    def test_a_fallback_limited_to_categories_lets_others_escalate(
        self, clock: FakeClock, run: Callable[..., Any]
    ) -> None:
        recovery = Recovery(fallback=Fallback(Fallback.value("cached"), categories=["service_down"]), escalation=quiet())
        with pytest.raises(RecoveryFailed) as caught:
            run(recovery, Service(then=lambda: requests_status(404)))
        assert caught.value.reason == "not_retryable"


class TestEscalation:
    @pytest.mark.parametrize(
        "decision, expected",
        [(Decision.use(["from-a-person"]), Degraded(["from-a-person"], "decision:use")),
         (Decision.skip(), Degraded(None, "decision:skip"))],
        ids=["use", "skip"],
    )  # fmt: skip
    def test_a_handler_decides(self, clock: FakeClock, run: Callable[..., Any], decision: Decision,
                               expected: Degraded[Any]) -> None:  # fmt: skip
        recovery = Recovery(escalation=EscalationPolicy(handlers=[lambda escalation: decision]))
        served = run(recovery, Service(then=lambda: requests_status(404)))
        assert isinstance(served, Degraded)
        assert (served.value, served.source) == (expected.value, expected.source)
        assert isinstance(served.error, requests.HTTPError)

    def test_retry_starts_a_fresh_round(self, clock: FakeClock, run: Callable[..., Any]) -> None:
        decisions = iter([Decision.retry()])
        recovery = Recovery(escalation=EscalationPolicy(handlers=[lambda escalation: next(decisions, None)]))
        service = Service(*[lambda: httpx_status(500)] * 4, then="rows")  # 1 + 2 retries, then 1 + 1
        assert run(recovery, service) == "rows"
        assert service.calls == 5

    def test_retry_decisions_are_bounded(self, clock: FakeClock, run: Callable[..., Any]) -> None:
        recovery = Recovery(escalation=EscalationPolicy(handlers=[lambda escalation: Decision.retry()]))
        service = Service(then=lambda: requests_status(404))
        with pytest.raises(RecoveryFailed) as caught:
            run(recovery, service)
        assert service.calls == 4  # the first round and three retries decided; then RETRY is not offered
        assert caught.value.escalation is not None
        assert Option.RETRY not in caught.value.escalation.options

    def test_a_decision_from_another_thread(self, run: Callable[..., Any]) -> None:
        def page_someone(escalation: brace.Escalation) -> None:
            threading.Timer(0.05, escalation.decide, args=("use", "typed-in"), kwargs={"by": "ops"}).start()

        # No autojump: the person takes real time to answer, and the fake clock
        # must not give up on them meanwhile.
        with brace.testing.fake_clock(autojump=None):
            recovery = Recovery(escalation=EscalationPolicy(handlers=[page_someone], wait=10.0))
            served = run(recovery, Service(then=lambda: aiohttp_status(403)))
        assert isinstance(served, Degraded) and served.value == "typed-in"

    @pytest.mark.parametrize("scope", ["category", "operation"])
    def test_a_forced_decision(self, clock: FakeClock, run: Callable[..., Any], scope: str) -> None:
        if scope == "category":
            control.force_decision(Decision.skip(), category="not_found")
        else:
            control.force_decision(Decision.use("pinned"), operation="sync_sheet")
        recovery = Recovery(name="sync_sheet", escalation=quiet())
        served = run(recovery, Service(then=lambda: requests_status(404)))
        assert isinstance(served, Degraded)
        assert served.source == ("decision:skip" if scope == "category" else "decision:use")

    def test_a_raising_handler_never_crashes_the_recovery(self, clock: FakeClock, run: Callable[..., Any]) -> None:
        def broken(escalation: brace.Escalation) -> None:
            raise RuntimeError("pager down")

        recovery = Recovery(escalation=EscalationPolicy(handlers=[broken, lambda escalation: Decision.skip()]))
        served = run(recovery, Service(then=lambda: requests_status(404)))
        assert isinstance(served, Degraded) and served.source == "decision:skip"

    def test_by_default_escalations_are_logged_and_aborted(
        self, clock: FakeClock, run: Callable[..., Any], caplog: pytest.LogCaptureFixture
    ) -> None:
        with pytest.raises(RecoveryFailed) as caught:
            run(Recovery(name="charge_card"), Service(then=lambda: requests_status(403)))
        assert isinstance(caught.value.__cause__, requests.HTTPError)
        assert any("charge_card" in record.getMessage() for record in caplog.records)


class TestResponsesAndSwitches:
    def test_returned_error_responses_are_failures(self, clock: FakeClock, run: Callable[..., Any]) -> None:
        ok = httpx.Response(200, request=_REQUEST, json={"rows": 3})
        service = Service(httpx.Response(503, request=_REQUEST), httpx.Response(503, request=_REQUEST), then=ok)
        assert run(Recovery(escalation=quiet()), service) is ok
        assert service.calls == 3

    def test_a_lasting_error_response_is_kept_in_the_exception(self, clock: FakeClock,
                                                               run: Callable[..., Any]) -> None:  # fmt: skip
        gone = httpx.Response(404, request=_REQUEST)
        with pytest.raises(RecoveryFailed) as caught:
            run(Recovery(escalation=quiet()), Service(then=gone))
        cause = caught.value.__cause__
        assert isinstance(cause, brace.FailedResponse)
        assert cause.response is gone and cause.status == 404

    def test_giving_up_turns_the_feature_off_and_success_back_on(self, clock: FakeClock,
                                                                 run: Callable[..., Any]) -> None:  # fmt: skip
        flips: list[tuple[bool, str]] = []

        def listen(event: brace.ToggleEvent) -> None:
            if event.name == "sheet-sync":
                flips.append((event.on, event.by))

        switches.add_listener(listen)
        try:
            recovery = Recovery(feature="sheet-sync", fallback=Fallback(Fallback.value(None)), escalation=quiet())
            run(recovery, Service(then=lambda: requests_status(404)))
            assert not switches.is_on("sheet-sync")
            run(recovery, Service(then="rows"))
            assert switches.is_on("sheet-sync")
        finally:
            switches.remove_listener(listen)
        assert [on for on, _ in flips] == [False, True]
        assert all(by.startswith("recovery:") for _, by in flips)


class TestEvents:
    def test_every_attempt_is_an_event(self, clock: FakeClock, run: Callable[..., Any]) -> None:
        events: list[RecoveryEvent] = []
        recovery = Recovery(escalation=quiet())
        recovery.add_listener(events.append)
        service = Service(lambda: TimeoutError("slow"), lambda: ConnectionResetError(104, "reset"), then="ok")
        assert run(recovery, service) == "ok"
        attempts = [event for event in events if event.kind == "attempt"]
        assert [(event.attempt, event.outcome) for event in attempts] == [(1, "failure"), (2, "failure"),
                                                                           (3, "success")]  # fmt: skip
        [recovered] = [event for event in events if event.kind == "recovered"]
        assert recovered.duration == pytest.approx(service.times[-1] - service.times[0])
        recovery.remove_listener(events.append)
        with pytest.raises(ValueError):
            recovery.remove_listener(events.append)


# The model: what Recovery must do with a script of outcomes, from the documented semantics.
OUTCOMES = {
    "timeout": lambda: TimeoutError("slow"),
    "reset": lambda: ConnectionResetError(104, "reset"),
    "429": lambda: httpx_status(429, **{"Retry-After": "1"}),
    "503": lambda: requests_status(503),
    "500": lambda: httpx_status(500),
    "404": lambda: requests_status(404),
    "schema": lambda: json.JSONDecodeError("Expecting value", "x", 0),
}


def model(script: list[str], classifier: ErrorClassifier) -> tuple[str, int]:
    """("value" | "escalated", attempts made) for a service that fails as scripted, then succeeds."""
    tally: dict[Category, int] = {}
    for number, name in enumerate(script, start=1):
        classification = classifier.classify(OUTCOMES[name]())
        allowance = classification.retries if classification.retryable else 0
        if tally.get(classification.category, 0) >= allowance:
            return "escalated", number
        tally[classification.category] = tally.get(classification.category, 0) + 1
    return "value", len(script) + 1


@settings(max_examples=60, deadline=None)
@given(script=st.lists(st.sampled_from(sorted(OUTCOMES)), max_size=14), with_fallback=st.booleans())
def test_recovery_matches_the_model(script: list[str], with_fallback: bool) -> None:
    classifier = ErrorClassifier()
    expected, attempts = model(script, classifier)
    service = Service(*(OUTCOMES[name] for name in script), then="value")
    recovery = Recovery(classifier=classifier, healing_time=3600.0, escalation=quiet(),
                        fallback=Fallback(Fallback.value("fallback")) if with_fallback else None)  # fmt: skip
    with brace.testing.fake_clock():
        try:
            result: object = recovery.call(service)
        except RecoveryFailed as failed:
            result = failed
    assert service.calls == attempts
    if expected == "value":
        assert result == "value"
    elif with_fallback:
        assert isinstance(result, Degraded) and result.value == "fallback"
    else:
        assert isinstance(result, RecoveryFailed) and result.attempts == attempts


class TestPolicyInside:
    def test_each_attempt_goes_through_the_policy(self, clock: FakeClock, run: Callable[..., Any]) -> None:
        breaker = brace.CircuitBreaker(name="sheets-api", consecutive_failures=2, wait_in_open=30.0)
        recovery = Recovery(policy=brace.Policy(breaker=breaker), escalation=quiet(), healing_time=20.0)
        events: list[RecoveryEvent] = []
        recovery.add_listener(events.append)
        service = Service(then=lambda: requests_status(503))
        started = clock.now_ns()
        with pytest.raises(RecoveryFailed) as caught:
            run(recovery, service)
        # Two failures open the breaker; its rejection is brace's own, not the
        # server asking for 30 s: the call settles at once instead of waiting.
        assert service.calls == 2
        assert caught.value.reason == "rejected_locally"
        assert isinstance(caught.value.__cause__, brace.CircuitOpen)
        assert clock.now_ns() - started < 5 * 10**9  # two backoffs of SERVICE_DOWN at most, no open time
        attempts = [event for event in events if event.kind == "attempt"]
        assert [event.ran for event in attempts] == [True, True, False]  # nothing was sent the third time
        stats = recovery.stats()
        assert (stats.attempts_made, stats.attempts_rejected) == (2, 1)


class TestConfiguration:
    @pytest.mark.parametrize(
        "kwargs, error, words",
        [
            ({"classifier": "x"}, TypeError, "classifier must be a brace.ErrorClassifier"),
            ({"policy": 3}, TypeError, "policy must be a brace.Policy"),
            ({"fallback": min}, TypeError, "fallback must be a brace.Fallback"),
            ({"escalation": [print]}, TypeError, "escalation must be a brace.EscalationPolicy"),
            ({"healing_stats": {}}, TypeError, "healing_stats must be a brace.HealingStats"),
            ({"healing": print}, TypeError, "healing must be an iterable"),
            ({"healing": [print]}, TypeError, "healing must hold brace.HealingAction"),
            ({"healing": [HealingAction(print, categories="timeout", name="a"),
                          HealingAction(print, categories="network_error", name="a")]},
             ValueError, "unique names"),  # fmt: skip
            ({"healing_time": 0}, ValueError, "healing_time"),
            ({"healing_time": -1.0}, ValueError, "healing_time"),
            ({"healing_time": "2m"}, TypeError, "healing_time"),
            ({"feature": ""}, ValueError, "feature must be a non-empty str"),
            ({"name": 3}, ValueError, "name must be a non-empty str"),
        ],
    )
    def test_bad_configuration(self, kwargs: dict[str, Any], error: type[Exception], words: str) -> None:
        with pytest.raises(error, match=words):
            Recovery(**kwargs)

    def test_decorator_keeps_the_function(self, clock: FakeClock) -> None:
        recovery = Recovery(escalation=quiet())

        @recovery
        def fetch(sheet: str, *, limit: int = 10) -> str:
            """Fetches a sheet."""
            return f"{sheet}:{limit}"

        @recovery
        async def fetch_async(sheet: str) -> str:
            return sheet

        assert fetch("a", limit=2) == "a:2"
        assert fetch.__name__ == "fetch" and fetch.__doc__ == "Fetches a sheet."
        assert asyncio.run(fetch_async("b")) == "b"
        with pytest.raises(TypeError, match="decorates callables"):
            recovery(3)  # type: ignore[arg-type]

    def test_interrupts_pass_through(self, clock: FakeClock) -> None:
        def interrupted() -> None:
            raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            Recovery(escalation=quiet()).call(interrupted)
