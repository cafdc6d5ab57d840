"""The field test: brace.Recovery against a real HTTP server over loopback sockets, through httpx,
requests and httpx.AsyncClient, held to brace's promises.

The harness is benchmarks/field.py (`python benchmarks/field.py` runs it with bigger numbers).
Each client gets one run of its own (10-15 s of real time: the faults are real, and so are
brace's waits), shared by the tests of that client. The verdicts are the promises themselves:
>= 95% of the transient failures healed automatically, a mean recovery time under 10 s, no
call lost (writes included), every attempt the server received logged; plus no write applied
twice. The faults are seeded, per call and attempt, so each run meets the same mix.
"""

from __future__ import annotations

import asyncio
import dataclasses
import http.client
import importlib.util
import json
import math
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

import brace

ROOT = Path(__file__).resolve().parent.parent


def _load_harness() -> ModuleType:
    spec = importlib.util.spec_from_file_location("brace_field_harness", ROOT / "benchmarks" / "field.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


field = _load_harness()
pytestmark = [pytest.mark.field, pytest.mark.slow]

# The harness's defaults: 240 calls from 8 threads over 8 s, two outages, seed 10.
SETTINGS = field.Settings()
# A server that fails only where a test says so.
QUIET = dataclasses.replace(SETTINGS, slow_rate=0.0, reset_rate=0.0, throttle_rate=0.0, outages=0,
                            token_lifetime=3600.0, shape_change_at=1e6)  # fmt: skip


@pytest.fixture(scope="module", params=field.CLIENTS)
def report(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One field run through the client, shared by that client's tests."""
    directory = tmp_path_factory.mktemp(f"field-{request.param}")
    result: dict[str, Any] = field.run_client(request.param, SETTINGS, str(directory))
    return result


def explain(report: dict[str, Any]) -> str:
    """The run's table and every call that went wrong (as far as the report lists them)."""
    result = {"settings": dataclasses.asdict(SETTINGS), "clients": {report["client"]: report}}
    text: str = field.render(result, details=None)
    return "\n" + text


# -- the promises, per client -----------------------------------------------------------------------


def test_run_meets_every_kind_of_fault(report: dict[str, Any]) -> None:
    # Without faults the promises below would hold trivially.
    for kind in field.FAULT_CATEGORY:
        assert report["injected"].get(kind, 0) > 0, f"no {kind} fault was served" + explain(report)
    assert report["transient_met"] >= 15, explain(report)
    assert report["writes"] >= 50 and report["recovered"] >= 10, explain(report)


def test_transient_failures_heal_automatically(report: dict[str, Any]) -> None:
    assert report["transient_healed_rate"] >= field.TARGET_TRANSIENT_HEALED, explain(report)


def test_mean_recovery_time_is_under_10_s(report: dict[str, Any]) -> None:
    assert report["mean_recovery_time"] < field.TARGET_MEAN_RECOVERY, explain(report)


def test_no_call_is_lost(report: dict[str, Any]) -> None:
    # Each call ended with its real value, a Degraded, or RecoveryFailed whose dead letter holds
    # it; and each write is on the server or in a dead letter, whatever the call returned.
    assert report["lost_calls"] == 0, explain(report)
    assert report["writes_lost"] == 0, explain(report)
    assert sum(report["outcomes"].values()) == report["calls"] == SETTINGS.calls


def test_every_attempt_the_server_received_is_logged(report: dict[str, Any]) -> None:
    assert report["events_evicted"] == 0, explain(report)
    assert report["attempts_mismatched"] == [], explain(report)
    assert report["attempts_logged"] == report["attempts_received"] > report["calls"], explain(report)


def test_no_write_is_applied_twice(report: dict[str, Any]) -> None:
    assert report["writes_applied_twice"] == 0, explain(report)


# -- the server -------------------------------------------------------------------------------------


@contextmanager
def serving(settings: Any = QUIET) -> Iterator[Any]:
    with field.RecordsServer(settings) as server, httpx.Client(base_url=server.url, timeout=5.0) as client:
        yield server, client


def token(client: httpx.Client) -> dict[str, str]:
    response = client.post("/token")
    assert response.status_code == 200
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def category(error: BaseException) -> str:
    return brace.ErrorClassifier().classify(error).category.value


def test_server_serves_records_and_logs_every_attempt_by_correlation_id() -> None:
    with serving() as (server, client):
        headers = token(client)
        for _ in range(2):
            response = client.get("/records/7", headers={**headers, "X-Correlation-Id": "c-1"})
            assert response.status_code == 200 and response.json() == field.record(7)
        assert client.get("/records/8", headers={**headers, "X-Correlation-Id": "c-2"}).status_code == 200
        missing = client.get(f"/records/{field.READ_RECORDS + 1}", headers={**headers, "X-Correlation-Id": "c-3"})
        assert missing.status_code == 404
        with pytest.raises(httpx.HTTPStatusError) as raised:
            missing.raise_for_status()
        assert category(raised.value) == "not_found"
    assert server.attempts() == {"c-1": 2, "c-2": 1, "c-3": 1}  # POST /token is not an attempt
    assert [entry.kind for entry in server.received] == ["ok", "ok", "ok", "not_found"]


def test_expired_token_is_401_until_refreshed() -> None:
    with serving(dataclasses.replace(QUIET, token_lifetime=1e-9)) as (server, client):
        response = client.get("/records/1", headers=token(client))
        assert response.status_code == 401 and "Bearer" in response.headers["WWW-Authenticate"]
        with pytest.raises(httpx.HTTPStatusError) as raised:
            response.raise_for_status()
        assert category(raised.value) == "auth_expired"
        assert client.get("/records/1").status_code == 401  # no token at all
    assert server.tokens_issued == 1


def test_throttling_is_429_with_retry_after() -> None:
    with serving(dataclasses.replace(QUIET, throttle_rate=1.0, retry_after=2)) as (server, client):
        response = client.get("/records/1", headers=token(client))
        assert response.status_code == 429 and response.headers["Retry-After"] == "2"
        with pytest.raises(httpx.HTTPStatusError) as raised:
            response.raise_for_status()
        classification = brace.ErrorClassifier().classify(raised.value)
        assert classification.category.value == "rate_limited" and classification.retry_after == 2.0
    assert server.injected() == {"throttled": 1}


def test_reset_closes_the_connection_without_a_response() -> None:
    with serving(dataclasses.replace(QUIET, reset_rate=1.0)) as (server, client):
        headers = token(client)
        with pytest.raises(httpx.TransportError) as raised:
            client.get("/records/1", headers=headers)
        assert category(raised.value) == "network_error"
    assert server.injected() == {"reset": 1}


def test_slow_response_outlasts_the_clients_timeout_and_a_write_is_applied() -> None:
    with serving(dataclasses.replace(QUIET, slow_rate=1.0, client_timeout=0.2)) as (server, client):
        headers = {**token(client), "X-Correlation-Id": "w-1"}
        with pytest.raises(httpx.TimeoutException) as raised:
            client.put(f"/records/{field.PUT_BASE + 1}", json={"value": "red"}, headers=headers, timeout=0.2)
        assert category(raised.value) == "timeout"
    # The server did the work before answering too late: a retry must not count on it not having.
    assert server.put_applied == {"w-1": ["red"]}
    assert server.injected() == {"slow": 1}


def test_outage_is_a_state_every_request_meets() -> None:
    with serving() as (server, client):
        headers = token(client)
        server.outages = [(0.0, math.inf)]
        for path in ("/records/1", "/records/2"):
            response = client.get(path, headers=headers)
            assert response.status_code == 503
        assert client.post("/token").status_code == 503
        with pytest.raises(httpx.HTTPStatusError) as raised:
            response.raise_for_status()
        assert category(raised.value) == "service_down"
    assert server.injected() == {"outage": 2}


def test_payload_shape_changes_and_old_parsers_fail() -> None:
    with serving(dataclasses.replace(QUIET, shape_change_at=0.0)) as (server, client):
        headers = token(client)
        old = client.get("/records/3", headers={**headers, "X-Schema": "1"}).json()
        new = client.get("/records/3", headers={**headers, "X-Schema": "2"}).json()
    assert old == new == {"schema": 2, "data": field.record(3)}
    assert field.parse(2, new) == field.record(3)
    with pytest.raises(field.PayloadShapeError) as raised:
        field.parse(1, old)
    # The Recovery's rule names the parse error a schema mismatch, which adapt_schema heals.
    rule = brace.ErrorClassifier.rule("schema_mismatch", types=field.PayloadShapeError)
    assert brace.ErrorClassifier(rules=[rule]).classify(raised.value).category.value == "schema_mismatch"
    assert [entry.kind for entry in server.received] == ["schema_drift", "ok"]


def test_notes_are_appended_once_per_idempotency_key() -> None:
    record_id = field.NOTE_BASE + 1
    with serving() as (server, client):
        headers = token(client)
        for key in ("k-1", "k-1", "k-2"):
            response = client.post(f"/records/{record_id}", json={"note": f"from {key}"},
                                   headers={**headers, "Idempotency-Key": key})  # fmt: skip
            assert response.json() == {"id": record_id, "note": f"from {key}"}
        assert client.post(f"/records/{record_id}", json={"note": "x"}, headers=headers).status_code == 400
    assert server.notes == {record_id: ["from k-1", "from k-2"]}


def test_server_closes_with_a_stalled_response_and_an_idle_connection() -> None:
    # A stall of a minute and a kept-alive connection: close() must end both, and join every thread.
    server = field.RecordsServer(dataclasses.replace(QUIET, slow_rate=1.0, client_timeout=60.0)).start()
    host, port = server.url.removeprefix("http://").split(":")
    idle = http.client.HTTPConnection(host, int(port))
    idle.request("POST", "/token")
    idle.getresponse().read()
    stalled_outcome: list[object] = []

    def stalled() -> None:
        connection = http.client.HTTPConnection(host, int(port), timeout=120)
        try:
            connection.request("GET", "/records/1")
            stalled_outcome.append(connection.getresponse().status)
        except OSError as error:
            stalled_outcome.append(error)
        finally:
            connection.close()

    caller = threading.Thread(target=stalled)
    caller.start()
    for _ in range(3000):  # until the server holds the request (at most 30 s)
        if server.received:
            break
        time.sleep(0.01)
    assert server.received, "the stalled request never reached the server"
    closer = threading.Thread(target=server.close)
    closer.start()
    closer.join(timeout=30.0)
    caller.join(timeout=30.0)
    idle.close()
    assert not closer.is_alive(), "RecordsServer.close() hangs"
    assert not caller.is_alive() and stalled_outcome, "the stalled request was never ended"
    handlers = [thread for thread in threading.enumerate() if "process_request_thread" in thread.name
                or thread.name == "field-server"]  # fmt: skip
    assert handlers == []


# -- the clients -------------------------------------------------------------------------------------


def _call_once(client_name: str, server: Any, settings: Any, prepare: Callable[[Any], None]) -> BaseException:
    """One call_api through the harness's client for client_name, without brace, once the client
    has its token and prepare(server) ran: what it raised."""

    async def once_async() -> None:
        client = field.AsyncRecords(server.url, settings)
        try:
            await client.refresh_token()
            prepare(server)
            await client.call_api("GET", 1, None)
        finally:
            await client.close()

    with brace.correlation("once"), pytest.raises(Exception) as raised:
        if client_name == "httpx-async":
            asyncio.run(once_async())
        else:
            client = field.SyncRecords(client_name, server.url, settings)
            try:
                prepare(server)
                client.call_api("GET", 1, None)
            finally:
                client.close()
    return raised.value


def _outage(server: Any) -> None:
    server.outages = [(0.0, math.inf)]


FAULTS: dict[str, tuple[dict[str, float], Callable[[Any], None], str]] = {
    "reset": ({"reset_rate": 1.0}, lambda server: None, "network_error"),
    "slow": ({"slow_rate": 1.0}, lambda server: None, "timeout"),
    "outage": ({}, _outage, "service_down"),
}


@pytest.mark.parametrize("client_name", field.CLIENTS)
@pytest.mark.parametrize("fault", FAULTS)
def test_clients_do_not_retry_on_their_own(client_name: str, fault: str) -> None:
    # Every attempt the server receives must be one brace made: one call, one request.
    changes, prepare, expected = FAULTS[fault]
    settings = dataclasses.replace(QUIET, client_timeout=0.2, **changes)
    with field.RecordsServer(settings) as server:
        error = _call_once(client_name, server, settings, prepare)
    assert server.attempts() == {"once": 1}, error
    assert category(error) == expected, error


# -- the accounting can fail ------------------------------------------------------------------------


def test_accounting_sees_what_brace_did_not_log_lost_or_applied_twice(tmp_path: Path) -> None:
    settings = dataclasses.replace(QUIET, calls=40, workers=2, duration=0.2, reset_rate=0.1)
    store = brace.SQLiteDeadLetters(tmp_path / "letters.sqlite3")
    sink = brace.MemorySink()
    try:
        with field.RecordsServer(settings) as server:
            ended, recovery = field.drive("httpx", server, settings, store, brace.RecoveryLog(sink))
        events = sink.events()
        honest = field.account("httpx", server, ended, events, store, recovery)
        assert honest["all_promises_met"], explain(honest)
        assert honest["attempts_received"] > honest["calls"]  # some resets were healed

        # One attempt event missing from the log.
        attempt = next(event for event in events if event.kind == "attempt")
        unlogged = field.account("httpx", server, ended, [event for event in events if event is not attempt], store,
                                 recovery)  # fmt: skip
        assert unlogged["attempts_mismatched"] == [f"{attempt.correlation_id}: received "
                                                   f"{server.attempts()[attempt.correlation_id]}, logged "
                                                   f"{server.attempts()[attempt.correlation_id] - 1}"]  # fmt: skip
        assert not unlogged["promises"][3]["met"]

        # A write the server never applied (and no dead letter holds), and a note appended twice.
        put = next(item.call for item in ended if item.call.method == "PUT")
        del server.put_applied[put.correlation]
        note = next(item.call for item in ended if item.call.method == "POST")
        server.notes[note.record_id].append(note.data)
        tampered = field.account("httpx", server, ended, events, store, recovery)
        assert (tampered["writes_lost"], tampered["writes_applied_twice"]) == (1, 1)
        assert [promise["met"] for promise in tampered["promises"]] == [True, True, False, True, False]
    finally:
        store.close()


# -- the script ---------------------------------------------------------------------------------------


def test_script_reports_in_json_and_in_80_columns() -> None:
    command = [sys.executable, str(ROOT / "benchmarks" / "field.py"), "--calls", "20", "--workers", "3",
               "--duration", "0.3", "--outages", "0", "--clients", "httpx", "requests", "--json"]  # fmt: skip
    run = subprocess.run(command, capture_output=True, text=True, timeout=300)
    result = json.loads(run.stdout)  # stdout holds the JSON and nothing else
    assert result["settings"]["calls"] == 20 and list(result["clients"]) == ["httpx", "requests"]
    for name, report in result["clients"].items():
        assert report["client"] == name and report["calls"] == 20
        assert [promise["name"] for promise in report["promises"]] == [
            "transient failures healed", "mean recovery time", "calls lost, writes included", "attempts logged",
            "writes applied twice"]  # fmt: skip
        assert report["all_promises_met"] == all(promise["met"] for promise in report["promises"])
    all_met = all(report["all_promises_met"] for report in result["clients"].values())
    assert run.returncode == (0 if all_met else 1), run.stderr
    # What the script prints without --json: the same report as text.
    lines = field.render(result).splitlines()
    assert [line for line in lines if len(line) > 80] == []
    assert lines[0] == "brace field test: 20 calls per client from 3 threads over 0.3 s, seed 10"
    header = next(line for line in lines if line.startswith("Promise"))
    assert header.split() == ["Promise", "httpx", "requests"]
    assert lines[-1] == ("Every promise met." if all_met else "Some promises NOT MET.")
