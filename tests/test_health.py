"""brace.health: checks under their timeouts, the dependency graph's cascade, breakers, healing,
the background runners and the report served over real sockets (uvicorn and wsgiref)."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any, Optional
from wsgiref.simple_server import WSGIRequestHandler, make_server

import httpx
import pytest
import requests
import uvicorn

import brace
from brace import Category, HealingAction
from brace.health import Check, CheckFailed, Health, HealthEvent, Report, Status, asgi_app, wsgi_app
from brace.recovery import HealingContext

H, D, U = Status.HEALTHY, Status.DEGRADED, Status.UNHEALTHY
WAIT = 10.0  # a bound on waits for other threads: never reached when things work


def ok() -> bool:
    return True


def down() -> None:
    raise ConnectionRefusedError("connection refused")


def lagging() -> tuple[Status, str]:
    return Status.DEGRADED, "replica lag 12 s"


PROBES: dict[str, Callable[[], object]] = {"ok": ok, "down": down, "lagging": lagging, "false": lambda: False}


def runner_threads(name: str) -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == f"brace-health-{name}"]


def wait_until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, "the condition did not come true within the bound"
        time.sleep(0.01)


# -- the cascade -----------------------------------------------------------------------------

# (checks as (name, probe, critical, depends_on), expected status per check, report status, report reason)
Spec = list[tuple[str, Optional[str], bool, tuple[str, ...]]]
GRAPHS: dict[str, tuple[Spec, dict[str, Status], Status, str]] = {
    "all healthy": ([("db", "ok", True, ()), ("api", None, True, ("db",))], {"db": H, "api": H}, H, ""),
    "a critical dependency down": (
        [("db", "down", True, ()), ("api", None, True, ("db",))], {"db": U, "api": U}, U,
        "api unhealthy: db unhealthy: ConnectionRefusedError: connection refused"),
    "a non-critical dependency down degrades": (
        [("db", "ok", True, ()), ("cache", "false", False, ()), ("api", "ok", True, ("db", "cache"))],
        {"db": H, "cache": U, "api": D}, D, "api degraded: cache unhealthy: returned False"),
    "degraded passes up as degraded": (
        [("db", "lagging", True, ()), ("api", "ok", True, ("db",))], {"db": D, "api": D}, D,
        "api degraded: db degraded: replica lag 12 s"),
    "three levels": (
        [("disk", "down", True, ()), ("db", "ok", True, ("disk",)), ("api", None, True, ("db",)),
         ("web", "ok", True, ("api",))],
        {"disk": U, "db": U, "api": U, "web": U}, U,
        "web unhealthy: api unhealthy: db unhealthy: disk unhealthy: ConnectionRefusedError: connection refused"),
    "its own failure comes first on a tie": (
        [("db", "down", True, ()), ("api", "false", True, ("db",))], {"db": U, "api": U}, U,
        "api unhealthy: returned False"),
    "the worse dependency wins": (
        [("db", "lagging", True, ()), ("queue", "down", True, ()), ("api", None, True, ("db", "queue"))],
        {"db": D, "queue": U, "api": U}, U,
        "api unhealthy: queue unhealthy: ConnectionRefusedError: connection refused"),
    "a non-critical top check degrades the report": (
        [("db", "ok", True, ()), ("metrics", "down", False, ())], {"db": H, "metrics": U}, D,
        "metrics unhealthy: ConnectionRefusedError: connection refused"),
    "two top checks": (
        [("db", "down", True, ()), ("api", None, True, ("db",)), ("admin", "lagging", True, ())],
        {"db": U, "api": U, "admin": D}, U,
        "api unhealthy: db unhealthy: ConnectionRefusedError: connection refused; "
        "admin degraded: replica lag 12 s"),
}


def build(spec: Spec) -> Health:
    return Health("shop", [Check(name, PROBES[probe] if probe else None, timeout=WAIT, critical=critical,
                                 depends_on=needs) for name, probe, critical, needs in spec])  # fmt: skip


@pytest.mark.parametrize("graph", list(GRAPHS.values()), ids=list(GRAPHS))
def test_statuses_cascade_up_the_graph_with_their_reasons(graph: Any) -> None:
    spec, statuses, status, reason = graph
    health = build(spec)
    for run in (health.check, lambda: asyncio.run(health.check_async())):
        report = run()
        assert {result.name: result.status for result in report.results} == statuses
        assert (report.status, report.reason) == (status, reason)
        assert health.report is report


def test_dependencies_come_before_their_dependents_whatever_the_order_given() -> None:
    health = Health(checks=[Check("api", depends_on=["db", "cache"]), Check("db", ok), Check("cache", ok)])
    assert [check.name for check in health.checks] == ["db", "cache", "api"]


@pytest.mark.parametrize("edges,cycle", [
    ({"a": ["a"]}, "a -> a"),
    ({"a": ["b"], "b": ["a"]}, "a -> b -> a"),
    ({"a": ["b"], "b": ["c"], "c": ["a"], "d": []}, "a -> b -> c -> a"),
])  # fmt: skip
def test_a_cycle_is_refused_at_construction_and_named(edges: dict[str, list[str]], cycle: str) -> None:
    checks = [Check(name, ok, depends_on=needs) for name, needs in edges.items()]
    with pytest.raises(ValueError, match=f"form a cycle: {cycle}$"):
        Health(checks=checks)


def test_the_report_as_json() -> None:
    spec, _, _, _ = GRAPHS["a non-critical dependency down degrades"]
    report = build(spec).check()
    data = json.loads(report.to_json())
    assert data["status"] == "degraded" and data["name"] == "shop"
    assert data["checks"]["cache"] == {"status": "unhealthy", "reason": "returned False", "own_status": "unhealthy",
                                       "critical": False, "depends_on": [], "healing": [],
                                       "duration": data["checks"]["cache"]["duration"]}  # fmt: skip
    assert data["checks"]["cache"]["duration"] >= 0
    assert data["checks"]["api"]["depends_on"] == ["db", "cache"]
    assert data["checked_at"].endswith("+00:00")


# -- timeouts ----------------------------------------------------------------------------------


def test_a_sync_probe_that_overruns_is_unhealthy_and_not_started_again_while_it_runs() -> None:
    release = threading.Event()
    calls = []

    def hung() -> None:
        calls.append(1)
        release.wait(WAIT)

    health = Health(checks=[Check("db", hung, timeout=0.05)])
    try:
        first = health.check().result("db")
        assert (first.status, first.reason, first.duration) == (U, "timed out after 0.05 s", None)
        assert not release.is_set() and len(runner_threads("db")) == 1  # returned while the probe still runs
        second = health.check().result("db")
        assert second.status is U and second.reason.startswith("still running, started ")
        assert second.reason.endswith("(timed out after 0.05 s)")
        assert len(calls) == 1 and len(runner_threads("db")) == 1  # not stacked
    finally:
        release.set()
    wait_until(lambda: not runner_threads("db"))  # the worker thread ends with its probe
    assert health.check().status is H and len(calls) == 2


def test_an_async_probe_that_overruns_is_cancelled() -> None:
    cancelled = []

    async def hung() -> None:
        try:
            await asyncio.sleep(WAIT * 10)
        except asyncio.CancelledError:
            cancelled.append(1)
            raise

    health = Health(checks=[Check("db", hung, timeout=timedelta(milliseconds=50))])
    report = asyncio.run(health.check_async())
    assert (report.status, report.reason) == (U, "db unhealthy: timed out after 0.05 s")
    assert cancelled == [1]
    # in a sync check() the coroutine runs on a loop of the worker thread, cancelled there
    report = health.check()
    assert report.result("db").reason == "timed out after 0.05 s"
    wait_until(lambda: len(cancelled) == 2 and not runner_threads("db"))


def test_an_async_probe_that_ignores_cancellation_is_not_started_again() -> None:
    release = asyncio.Event()
    calls = []

    async def stubborn() -> None:
        calls.append(1)
        while not release.is_set():
            try:
                await release.wait()
            except asyncio.CancelledError:
                pass

    async def scenario() -> tuple[Report, Report]:
        health = Health(checks=[Check("db", stubborn, timeout=0.05)])
        first = await health.check_async()
        second = await health.check_async()
        release.set()
        return first, second

    first, second = asyncio.run(scenario())
    assert first.result("db").reason == "timed out after 0.05 s"
    assert second.result("db").reason.startswith("still running, started ")
    assert calls == [1]


def test_reports_at_once_share_a_run_within_its_timeout() -> None:
    release = threading.Event()
    calls = []

    def slow() -> None:
        calls.append(1)
        release.wait(WAIT)

    check = Check("db", slow, timeout=WAIT)
    first, second = check.start(), check.start()  # the second joins the first's run
    assert len(calls) == 1 and len(runner_threads("db")) == 1
    release.set()
    assert first.outcome().status is H and second.outcome().status is H
    wait_until(lambda: not runner_threads("db"))
    assert check.run().status is H and len(calls) == 2  # ended: the next report runs it again


def test_a_sync_probe_from_async_code_runs_in_its_thread() -> None:
    seen = []
    health = Health(checks=[Check("db", lambda: seen.append(threading.current_thread().name))])
    assert asyncio.run(health.check_async()).status is H
    assert seen == ["brace-health-db"]


# -- breakers --------------------------------------------------------------------------------


def fail(breaker: brace.CircuitBreaker) -> None:
    with pytest.raises(ConnectionError):
        breaker.call(down)


def test_a_breaker_s_state_makes_its_dependency_healthy_degraded_or_unhealthy() -> None:
    breaker = brace.CircuitBreaker(name="payments", consecutive_failures=1, wait_in_open=0.5, half_open_calls=2)
    health = Health(checks=[Check("payments", breaker=breaker), Check("api", ok, depends_on="payments")])
    with brace.testing.fake_clock() as clock:
        assert health.check().status is H
        fail(breaker)
        report = health.check()
        assert report.result("payments").reason == "breaker 'payments' is open"
        assert (report.status, report.reason) == (U, "api unhealthy: payments unhealthy: breaker 'payments' is open")
        clock.advance(0.5)
        breaker.call(ok)  # the first of two probes: HALF_OPEN
        assert breaker.state is brace.BreakerState.HALF_OPEN
        assert health.check().reason == "api degraded: payments degraded: breaker 'payments' is half_open"
        breaker.call(ok)
        assert health.check().status is H
    breaker.force_open()
    assert health.check().result("payments").reason == "breaker 'payments' is forced_open"
    breaker.disable()
    assert health.check().status is H


def test_the_worse_of_probe_and_breaker_counts() -> None:
    breaker = brace.CircuitBreaker(name="db")
    breaker.force_open()
    result = Health(checks=[Check("db", lagging, breaker=breaker)]).check().result("db")
    assert (result.status, result.reason) == (U, "breaker 'db' is forced_open")


# -- healing ---------------------------------------------------------------------------------


class Flaky:
    """A dependency that is down until reconnected."""

    def __init__(self) -> None:
        self.up = False
        self.contexts: list[HealingContext] = []

    def probe(self) -> None:
        if not self.up:
            raise ConnectionResetError("connection reset by peer")

    def reconnect(self, context: HealingContext) -> None:
        self.contexts.append(context)
        self.up = True


def test_a_healing_action_runs_and_the_recheck_verifies_it() -> None:
    db = Flaky()
    events: list[HealthEvent] = []
    action = HealingAction(db.reconnect, categories=Category.NETWORK_ERROR, name="reconnect")
    health = Health("shop", [Check("db", db.probe, healing=action)])
    health.add_listener(events.append, kinds="healed")
    report = health.check()
    result = report.result("db")
    assert (report.status, result.own_status) == (H, H)
    assert [(attempt.action, attempt.error, attempt.healed, attempt.status) for attempt in result.healing] == [
        ("reconnect", None, True, H)]  # fmt: skip
    context = db.contexts[0]
    assert (context.operation, context.attempt, context.classification.category) == ("db", 1, Category.NETWORK_ERROR)
    assert isinstance(context.error, ConnectionResetError)
    assert [(event.kind, event.check, event.attempt) for event in events] == [("healed", "db", result.healing[0])]
    assert health.healing_stats.get(Category.NETWORK_ERROR, "reconnect").healed == 1
    assert health.check().result("db").healing == ()  # healthy: nothing to heal


def test_a_failing_heal_is_reported_and_the_next_action_tried() -> None:
    db = Flaky()

    def broken(context: HealingContext) -> None:
        raise PermissionError("not allowed to restart")

    def useless(context: HealingContext) -> None:
        pass

    actions = [HealingAction(fn, categories="network_error") for fn in (broken, useless)]
    health = Health(checks=[Check("db", db.probe, healing=actions)])
    events: list[HealthEvent] = []
    health.add_listener(events.append, kinds=["healed", "healing_failed"])
    result = health.check().result("db")
    assert [(event.kind, event.attempt) for event in events] == [("healing_failed", attempt) for attempt in result.healing]
    assert sum(health.healing_stats.get(Category.NETWORK_ERROR, action.name).failed for action in actions) == 2
    assert result.status is U and result.reason == "ConnectionResetError: connection reset by peer"
    attempts = {attempt.action: attempt for attempt in result.healing}
    assert set(attempts) == {"test_a_failing_heal_is_reported_and_the_next_action_tried.<locals>.broken",
                             "test_a_failing_heal_is_reported_and_the_next_action_tried.<locals>.useless"}  # fmt: skip
    raised = next(attempt for attempt in result.healing if attempt.error)
    assert (raised.error, raised.healed, raised.status) == ("PermissionError: not allowed to restart", False, None)
    ran = next(attempt for attempt in result.healing if not attempt.error)
    assert (ran.healed, ran.status, ran.reason) == (False, U, "ConnectionResetError: connection reset by peer")


def test_only_actions_of_the_failure_s_category_run() -> None:
    db = Flaky()
    timeout_fix = HealingAction(db.reconnect, categories=Category.TIMEOUT)
    assert Health(checks=[Check("db", db.probe, healing=timeout_fix)]).check().result("db").healing == ()
    assert db.contexts == []
    returned_false = HealingAction(lambda context: None, categories=Category.UNKNOWN, name="kick")
    result = Health(checks=[Check("db", lambda: False, healing=returned_false)]).check().result("db")
    assert [attempt.action for attempt in result.healing] == ["kick"]


def test_a_timed_out_check_is_healed_as_a_timeout_and_verified() -> None:
    release = threading.Event()
    health = Health(checks=[Check("db", lambda: release.wait(WAIT), timeout=0.5,
                                  healing=HealingAction(lambda context: release.set(), categories="timeout", name="release"))])  # fmt: skip
    result = health.check().result("db")
    # the re-check waits for the hung run the action freed, then probes afresh
    assert [(attempt.action, attempt.error, attempt.healed, attempt.status) for attempt in result.healing] == [
        ("release", None, True, H)]
    assert result.status is H
    assert health.healing_stats.get(Category.TIMEOUT, "release").healed == 1
    wait_until(lambda: not runner_threads("db"))


def test_a_re_check_of_a_probe_still_hung_is_no_verdict_on_the_action() -> None:
    release = threading.Event()
    health = Health(checks=[Check("db", lambda: release.wait(WAIT), timeout=0.05,
                                  healing=HealingAction(lambda context: None, categories="timeout", name="noop"))])  # fmt: skip
    try:
        result = health.check().result("db")
        (attempt,) = result.healing
        assert (attempt.action, attempt.healed, attempt.status) == ("noop", False, U)
        assert attempt.reason is not None and attempt.reason.startswith("still running")
        record = health.healing_stats.get(Category.TIMEOUT, "noop")
        assert (record.healed, record.failed) == (0, 0)  # nothing learnt of the action
    finally:
        release.set()
    wait_until(lambda: not runner_threads("db"))


def test_async_healing_awaits_the_action() -> None:
    db = Flaky()

    async def probe() -> None:
        db.probe()

    async def reconnect(context: HealingContext) -> None:
        await asyncio.sleep(0)
        db.up = True

    health = Health(checks=[Check("db", probe, healing=HealingAction(reconnect, categories="network_error"))])
    result = asyncio.run(health.check_async()).result("db")
    assert result.status is H and result.healing[0].healed
    db.up = False
    assert health.check().result("db").healing[0].healed  # sync: on a loop of its own


def test_a_probe_s_failing_status_is_a_check_failed() -> None:
    seen: list[HealingContext] = []
    health = Health(checks=[Check("db", lambda: Status.UNHEALTHY,
                                  healing=HealingAction(seen.append, categories="unknown"))])  # fmt: skip
    health.check()
    assert isinstance(seen[0].error, CheckFailed) and str(seen[0].error) == "check 'db' unhealthy: reported unhealthy"


# -- events and the background runners ------------------------------------------------------------------


def test_status_changes_are_events() -> None:
    db = Flaky()
    events: list[HealthEvent] = []
    health = Health("shop", [Check("db", db.probe), Check("api", ok, depends_on="db")])
    health.add_listener(events.append, kinds=["status_changed"])
    health.check()
    health.check()  # nothing changed: no event
    db.up = True
    health.check()
    changes = [(event.check, event.previous, event.status) for event in events]
    assert changes == [("db", None, U), ("api", None, U), (None, None, U), ("db", U, H), ("api", U, H), (None, U, H)]
    assert all(event.name == "shop" and event.kind == "status_changed" for event in events)
    with pytest.raises(ValueError, match="kinds must be among 'healed', 'healing_failed', 'status_changed'"):
        health.add_listener(events.append, kinds="opened")


def test_the_background_thread_reports_on_its_interval_until_stopped() -> None:
    reports: list[HealthEvent] = []
    flips = iter(range(1000))
    health = Health(checks=[Check("db", lambda: next(flips) % 2 == 0)], interval=0.01)
    health.add_listener(reports.append, kinds="status_changed")
    health.start()
    health.start()  # already running: no second thread
    try:
        wait_until(lambda: len([event for event in reports if event.check is None]) >= 4)
        assert health.running
        assert len([thread for thread in threading.enumerate() if thread.name == "brace-health-runner"]) == 1
    finally:
        health.stop(timeout=WAIT)
    assert not health.running
    assert health.report is not None and health.fresh(WAIT) is health.report


def test_the_background_task_reports_on_its_interval_until_stopped() -> None:
    async def scenario() -> int:
        count = iter(range(1000))
        health = Health(checks=[Check("db", ok)], interval=0.01)
        seen = []
        health.add_listener(lambda event: seen.append(next(count)), kinds="status_changed")
        task = health.start_async()
        assert health.start_async() is task
        deadline = time.monotonic() + WAIT
        while health.report is None:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        first = health.report
        while health.report is first:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        assert health.running
        await health.stop_async()
        assert not health.running and task.done()
        return len(seen)

    assert asyncio.run(scenario()) >= 2  # the first report's changes (the check, the report)


# -- over HTTP ------------------------------------------------------------------------------------


@pytest.fixture
def switch() -> dict[str, object]:
    return {"db": True, "cache": True}


@pytest.fixture
def health(switch: dict[str, object]) -> Health:
    return Health("shop", [Check("db", lambda: switch["db"]), Check("cache", lambda: switch["cache"], critical=False),
                           Check("api", depends_on=["db", "cache"])])  # fmt: skip


def loopback() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    return sock


@pytest.fixture
def asgi_url(health: Health) -> Iterator[str]:
    sock = loopback()
    server = uvicorn.Server(uvicorn.Config(asgi_app(health), log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    wait_until(lambda: server.started)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}/health"
    server.should_exit = True
    thread.join(WAIT)
    sock.close()


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def wsgi_url(health: Health) -> Iterator[str]:
    server = make_server("127.0.0.1", 0, wsgi_app(health), handler_class=_Quiet)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/health"
    server.shutdown()
    thread.join(WAIT)
    server.server_close()


def served(url: str, switch: dict[str, object], client: Callable[..., Any]) -> None:
    answer = client("GET", url)
    assert (answer.status_code, answer.headers["content-type"]) == (200, "application/json")
    assert answer.json()["status"] == "healthy"
    switch["cache"] = False
    answer = client("GET", url)
    assert (answer.status_code, answer.json()["status"]) == (200, "degraded")
    assert answer.json()["reason"] == "api degraded: cache unhealthy: returned False"
    switch["db"] = False
    answer = client("GET", url)
    assert (answer.status_code, answer.json()["status"]) == (503, "unhealthy")
    assert answer.json()["checks"]["db"]["reason"] == "returned False"
    head = client("HEAD", url)
    assert (head.status_code, head.content) == (503, b"")
    assert client("POST", url).status_code == 405


def test_the_asgi_app_under_uvicorn(asgi_url: str, switch: dict[str, object]) -> None:
    with httpx.Client(timeout=WAIT) as client:
        served(asgi_url, switch, client.request)


def test_the_wsgi_app_under_wsgiref(wsgi_url: str, switch: dict[str, object]) -> None:
    with requests.Session() as session:
        served(wsgi_url, switch, lambda method, url: session.request(method, url, timeout=WAIT))


def test_the_handlers_serve_the_runner_s_report_while_it_runs(health: Health, switch: dict[str, object],
                                                              wsgi_url: str) -> None:  # fmt: skip
    health.check()  # healthy, cached
    app = wsgi_app(health, max_age=WAIT)
    switch["db"] = False
    statuses: list[str] = []
    body = b"".join(app({"REQUEST_METHOD": "GET"}, lambda status, headers: statuses.append(status)))
    assert statuses == ["200 OK"] and json.loads(body)["status"] == "healthy"  # the cached report
    assert requests.get(wsgi_url, timeout=WAIT).status_code == 503  # max_age None, no runner: checked
    fresh = wsgi_app(health, max_age=0)
    fresh({"REQUEST_METHOD": "GET"}, lambda status, headers: statuses.append(status))
    assert statuses[-1] == "503 Service Unavailable"


# -- bad configuration --------------------------------------------------------------------------


@pytest.mark.parametrize("make,error,message", [
    (lambda: Check("", ok), TypeError, "name must be a non-empty str"),
    (lambda: Check("db", 3), TypeError, "probe must be a callable or None, got int"),  # type: ignore[arg-type]
    (lambda: Check("db", ok, timeout=0), ValueError, "timeout must be"),
    (lambda: Check("db", ok, timeout=-1.0), ValueError, "timeout must be"),
    (lambda: Check("db", ok, timeout="1"), TypeError, "timeout must be"),  # type: ignore[arg-type]
    (lambda: Check("db", ok, critical=1), TypeError, "critical must be a bool"),  # type: ignore[arg-type]
    (lambda: Check("db", ok, depends_on=3), TypeError, "depends_on must be"),  # type: ignore[arg-type]
    (lambda: Check("db", ok, depends_on=["a", "a"]), ValueError, "depends_on names a check twice"),
    (lambda: Check("db", ok, breaker="b"), TypeError, "breaker must be a brace.CircuitBreaker"),  # type: ignore[arg-type]
    (lambda: Check("db", ok, healing=[ok]), TypeError, "healing must hold brace.HealingAction"),  # type: ignore[list-item]
    (lambda: Check("db"), ValueError, "needs a probe, a breaker or depends_on"),
    (lambda: Health(checks=[]), ValueError, "checks must hold at least one"),
    (lambda: Health(checks=3), TypeError, "checks must be an iterable"),  # type: ignore[arg-type]
    (lambda: Health(checks=[ok]), TypeError, "checks must hold brace.health.Check"),  # type: ignore[list-item]
    (lambda: Health(checks=[Check("db", ok), Check("db", ok)]), ValueError, "unique names, got 'db' twice"),
    (lambda: Health(checks=[Check("api", depends_on="db")]), ValueError, "'api' depends_on 'db', which no check"),
    (lambda: Health(checks=[Check("db", ok)], interval=0), ValueError, "interval must be"),
    (lambda: Health(checks=[Check("db", ok)], interval=0.0001), ValueError, "interval must be from 0.001 s"),
    (lambda: Health(3, [Check("db", ok)]), TypeError, "name must be a str or None"),  # type: ignore[arg-type]
    (lambda: Health(checks=[Check("db", ok)], classifier=1), TypeError, "classifier must be"),  # type: ignore[arg-type]
    (lambda: asgi_app(3), TypeError, "health must be a brace.health.Health"),  # type: ignore[arg-type]
    (lambda: wsgi_app(Health(checks=[Check("db", ok)]), max_age=-1), ValueError, "max_age must be"),
])  # fmt: skip
def test_bad_configuration_is_refused_naming_the_parameter(make: Callable[[], object], error: type[Exception],
                                                           message: str) -> None:  # fmt: skip
    with pytest.raises(error, match=message):
        make()
