"""The HTTP integrations (httpx sync and async, requests, aiohttp) against a real server on
loopback: each fault healed, idempotency rules, deadlines, credentials, shared pauses,
per-host state and the attempt log. Parametrised over the four clients."""

from __future__ import annotations

import threading
import time
from email.utils import format_datetime
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

import brace
from brace.integrations import Credentials, Hosts, HostThrottled
from http_clients import PARAMS, Request, make
from scripted_server import Received, Reply, serving

pytestmark = pytest.mark.parametrize("kind", PARAMS)


def fake_time() -> Any:
    """brace's clock frozen, its sleeps (backoffs, pauses) taking no real time; autojump off,
    since the server's answers take real time that must not push the clock to a deadline."""
    return brace.testing.fake_clock(autojump=None)


def hosts(**kwargs: Any) -> Hosts:
    return Hosts(**kwargs)  # a table of the test's own: no state shared with other tests


def token_source() -> tuple[Credentials, list[str]]:
    issued: list[str] = []
    lock = threading.Lock()

    def fetch() -> str:
        with lock:
            issued.append(f"token-{len(issued) + 1}")
            return issued[-1]
    return Credentials(fetch), issued


# -- each fault, healed on an idempotent request --------------------------------------------------

FAULTS = {
    "reset": [Reply(reset=True), Reply(body=b"healed")],
    "503": [Reply(503), Reply(503), Reply(body=b"healed")],
    "429 Retry-After seconds": [Reply(429, (("Retry-After", "1"),)), Reply(body=b"healed")],
    "429 Retry-After date": [Reply(429, (("Retry-After", format_datetime(datetime.now(timezone.utc) + timedelta(seconds=2),
                                                                          usegmt=True)),)), Reply(body=b"healed")],
    "429 RateLimit": [Reply(429, (("RateLimit", 'limit=5, remaining=0, reset=2'),)), Reply(body=b"healed")],
    "500": [Reply(500), Reply(body=b"healed")],
}


@pytest.mark.parametrize("fault", FAULTS)
def test_a_transient_fault_is_healed(kind: str, fault: str) -> None:
    with serving({"/r": FAULTS[fault]}) as server, fake_time():
        answer = make(kind, server.url, hosts=hosts()).send("GET", "/r")
    assert answer == (200, b"healed")
    assert len(server.requests_to("/r")) == len(FAULTS[fault])


def test_a_slow_answer_times_out_and_is_sent_again(kind: str) -> None:
    with serving({"/r": [Reply(delay=2.0), Reply(body=b"healed")]}) as server, fake_time():
        answer = make(kind, server.url, hosts=hosts()).send("GET", "/r", timeout=0.3)
    assert answer == (200, b"healed")


def test_a_404_is_returned_at_once(kind: str) -> None:
    with serving({"/r": [Reply(404, body=b"no such record")]}) as server, fake_time():
        answer = make(kind, server.url, hosts=hosts()).send("GET", "/r")
    assert answer == (404, b"no such record")
    assert len(server.requests_to("/r")) == 1


def test_a_failure_that_lasts_returns_the_last_answer_with_its_body(kind: str) -> None:
    with serving({"/r": [Reply(503, body=b"down")]}) as server, fake_time():
        answer = make(kind, server.url, hosts=hosts()).send("GET", "/r")
    assert answer == (503, b"down")
    assert len(server.requests_to("/r")) > 3  # SERVICE_DOWN rides out an outage


def test_failed_answers_give_their_connection_back(kind: str) -> None:
    # One connection in the pool, blocking when taken: a retry whose failed answer were
    # not read and released would wait for it until its timeout.
    with serving({"/r": [Reply(503, body=b"x" * 100_000), Reply(503), Reply(body=b"healed")]}) as server, \
            fake_time():
        answer = make(kind, server.url, hosts=hosts(), pool=1).send("GET", "/r", timeout=3.0)
    assert answer == (200, b"healed")


# -- idempotency -------------------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["POST", "PATCH"])
def test_a_request_that_is_not_idempotent_is_sent_once(kind: str, method: str) -> None:
    with serving({"/r": [Reply(503), Reply(body=b"applied twice")]}) as server, fake_time():
        answer = make(kind, server.url, hosts=hosts()).send(method, "/r")
    assert answer.status == 503
    assert len(server.requests_to("/r")) == 1


def test_a_correlation_header_is_never_taken_for_an_idempotency_key(kind: str) -> None:
    with serving({"/r": [Reply(503), Reply(body=b"applied twice")]}) as server, fake_time():
        answer = make(kind, server.url, hosts=hosts(), correlation_header="Idempotency-Key").send("POST", "/r")
    assert answer.status == 503
    assert len(server.requests_to("/r")) == 1  # the key was the exchange's own id, not the caller's


@pytest.mark.parametrize("method", ["PUT", "DELETE"])
def test_idempotent_writes_are_retried(kind: str, method: str) -> None:
    with serving({"/r": [Reply(503), Reply(body=b"done")]}) as server, fake_time():
        assert make(kind, server.url, hosts=hosts()).send(method, "/r") == (200, b"done")


def test_a_post_with_an_idempotency_key_is_retried_with_the_same_key(kind: str) -> None:
    with serving({"/r": [Reply(503), Reply(body=b"done")]}) as server, fake_time():
        answer = make(kind, server.url, hosts=hosts()).send("POST", "/r", headers={"Idempotency-Key": "k-1"})
    assert answer == (200, b"done")
    assert [r.headers["idempotency-key"] for r in server.requests_to("/r")] == ["k-1", "k-1"]


def test_the_integration_adds_an_idempotency_key_when_asked(kind: str) -> None:
    with serving({"/r": [Reply(503), Reply(body=b"done")]}) as server, fake_time():
        answer = make(kind, server.url, hosts=hosts(), idempotency_key=True).send("POST", "/r")
        make(kind, server.url, hosts=hosts(), idempotency_key=True).send("GET", "/g")
    assert answer == (200, b"done")
    keys = [r.headers["idempotency-key"] for r in server.requests_to("/r")]
    assert len(keys) == 2 and keys[0] == keys[1] and keys[0]
    assert "idempotency-key" not in server.requests_to("/g")[0].headers  # a GET needs none


# -- deadlines -----------------------------------------------------------------------------------------

def test_a_deadline_bounds_the_request_and_leaves_no_thread(kind: str) -> None:
    threads = threading.active_count()
    with serving({"/r": [Reply(delay=6.0)]}) as server:
        caller = make(kind, server.url, hosts=hosts())
        start = time.monotonic()
        with pytest.raises(Exception) as raised, brace.deadline(0.5):
            caller.send("GET", "/r", timeout=30.0)
        took = time.monotonic() - start
    # The client's own timeout was 30 s and the server answers after 6 s: only brace's
    # deadline can have ended the call this early (the bound is generous on purpose).
    assert took < 3.0, took
    assert brace.classify.DEFAULT_CLASSIFIER.classify(raised.value).category is brace.Category.TIMEOUT
    assert threading.active_count() <= threads + 1  # the server's own handler thread, at most


# -- credentials ---------------------------------------------------------------------------------------

def _refuse_first_token(request: Received) -> Reply:
    return Reply(401) if request.headers.get("authorization") == "Bearer token-1" else Reply(body=b"welcome")


def test_credentials_are_applied_and_refreshed_once_on_401_under_8_callers(kind: str) -> None:
    credentials, issued = token_source()
    with serving({"/r": _refuse_first_token}) as server, fake_time():
        answers = make(kind, server.url, hosts=hosts(), credentials=credentials).concurrently(
            [Request("GET", "/r")] * 8)
    assert answers == [(200, b"welcome")] * 8
    assert issued == ["token-1", "token-2"]  # one first fetch, one refresh, for 8 callers
    assert {r.headers["authorization"] for r in server.requests_to("/r")} <= {"Bearer token-1", "Bearer token-2"}


def test_a_token_is_refreshed_before_it_expires(kind: str) -> None:
    fetched: list[int] = []

    def fetch() -> tuple[str, float]:
        fetched.append(1)
        return f"t{len(fetched)}", 60.0

    with serving() as server, fake_time() as clock:
        caller = make(kind, server.url, hosts=hosts(), credentials=Credentials(fetch, refresh_early=10.0))
        caller.send("GET", "/r")
        clock.advance(45.0)
        caller.send("GET", "/r")
        clock.advance(10.0)  # 55 s: within refresh_early of the expiry
        caller.send("GET", "/r")
    assert [r.headers["authorization"] for r in server.received] == ["Bearer t1", "Bearer t1", "Bearer t2"]


# -- every request logged, with its correlation id ------------------------------------------------------

def test_every_request_sent_is_one_logged_attempt_with_its_correlation_id(kind: str) -> None:
    sink = brace.MemorySink()
    with serving({"/r": [Reply(503), Reply(reset=True), Reply(body=b"ok")]}) as server, fake_time():
        with brace.correlation("job-7"):
            make(kind, server.url, hosts=hosts(), log=sink).send("GET", "/r")
    events = sink.events()
    assert len(events) == len(server.received) == 3
    assert [r.headers["x-request-id"] for r in server.received] == ["job-7"] * 3
    assert [(e.attempt, e.outcome, e.detail, e.correlation_id) for e in events] == [
        (1, "failure", "resend_count=0", "job-7"), (2, "failure", "resend_count=1", "job-7"),
        (3, "success", "resend_count=2", "job-7")]


# -- pauses shared by every caller of a host ---------------------------------------------------------

class FixedWindow:
    """A server-side limit: `limit` requests per `window` seconds of real time, 429 beyond it."""

    def __init__(self, limit: int, window: float) -> None:
        self.limit, self.window = limit, window
        self.start = time.monotonic()
        self.counts: dict[int, int] = {}
        self.after_first_429: dict[int, int] = {}
        self.lock = threading.Lock()

    def __call__(self, request: Received) -> Reply:
        with self.lock:
            index = int((request.at - self.start) / self.window)
            seen = self.counts[index] = self.counts.get(index, 0) + 1
            if index in self.after_first_429:
                self.after_first_429[index] += 1
            if seen <= self.limit:
                return Reply(body=b"ok")
            if index not in self.after_first_429:
                self.after_first_429[index] = 0
            left = self.start + (index + 1) * self.window - time.monotonic()
            return Reply(429, (("RateLimit", f"limit={self.limit}, remaining=0, reset={max(left, 0.0):.3f}"),))


@pytest.mark.slow  # three windows of real time
def test_a_throttled_host_pauses_every_caller_until_its_reset(kind: str) -> None:
    limit = FixedWindow(limit=10, window=1.0)
    with serving({"/r": limit}) as server:
        caller = make(kind, server.url, hosts=hosts(), pool=8)
        answers = caller.concurrently([Request("GET", "/r", timeout=10.0)] * 40, callers=8)
    assert [a.status for a in answers] == [200] * 40
    # After a window's first 429, the requests already in flight arrive (at most the 7
    # other callers); nobody sends a new one until the window resets.
    assert limit.after_first_429, "the server never throttled: the test proves nothing"
    assert max(limit.after_first_429.values()) <= limit.limit, limit.after_first_429


# The forms of a quota in a successful answer, spelled as servers spell them.
QUOTA_FORMS = {
    "RateLimit": lambda remaining: (("RateLimit", f"limit=3, remaining={remaining}, reset=30"),),
    "RateLimit-Remaining": lambda remaining: (("RateLimit-Remaining", str(remaining)), ("RateLimit-Reset", "30")),
    "x-ratelimit-remaining": lambda remaining: (("x-ratelimit-remaining", str(remaining)),
                                                ("x-ratelimit-reset", "30")),  # fmt: skip
}


@pytest.mark.parametrize("form", QUOTA_FORMS)
def test_a_spent_quota_pauses_the_host_before_any_429(kind: str, form: str) -> None:
    served = {"n": 0}
    lock = threading.Lock()

    def quota(request: Received) -> Reply:
        with lock:
            served["n"] += 1
            remaining = max(0, 3 - served["n"])
        return Reply(headers=QUOTA_FORMS[form](remaining))

    with serving({"/r": quota}) as server, fake_time() as clock:
        table = hosts(throttle="reject")
        caller = make(kind, server.url, hosts=table)
        for _ in range(3):
            assert caller.send("GET", "/r").status == 200
        with pytest.raises(HostThrottled) as raised:
            caller.send("GET", "/r")
        assert 29 <= raised.value.retry_after <= 30 and raised.value.host.startswith("http://127.0.0.1:")
        clock.advance(30.0)
        assert caller.send("GET", "/r").status == 200
    assert len(server.received) == 4  # the refused request never reached the server


def test_a_pause_longer_than_the_deadline_ends_the_call_at_once(kind: str) -> None:
    with serving({"/r": [Reply(429, (("Retry-After", "120"),)), Reply()]}) as server, fake_time():
        caller = make(kind, server.url, hosts=hosts())
        with brace.deadline(5.0):
            assert caller.send("GET", "/r").status == 429  # the server's answer, as it came
        with pytest.raises(HostThrottled) as raised, brace.deadline(5.0):
            caller.send("GET", "/r")  # every caller of the host now knows: not sent at all
    assert len(server.received) == 1 and raised.value.waited


# -- per-host state ---------------------------------------------------------------------------------------

def _breaking_policy(host: str) -> brace.Policy:
    return brace.Policy(breaker=brace.CircuitBreaker(name=host, consecutive_failures=3, wait_in_open=60.0,
                                                     record_result=lambda r: getattr(r, "status_code", getattr(r, "status", 0)) >= 500))


def test_one_failing_host_opens_its_own_breaker_only(kind: str) -> None:
    table = hosts(policy=_breaking_policy)
    with serving({"/r": [Reply(500)]}) as failing, serving() as healthy:
        bad, good = make(kind, failing.url, hosts=table), make(kind, healthy.url, hosts=table)
        for _ in range(3):
            assert bad.send("GET", "/r").status == 500
        with pytest.raises(brace.CircuitOpen):
            bad.send("GET", "/r")
        assert good.send("GET", "/r").status == 200
    assert len(failing.received) == 3 and len(table) == 2


# -- adaptive client-side limits per host ---------------------------------------------------------------

def _no_retry(host: str) -> brace.Policy:
    return brace.Policy(name=host)


def test_an_adaptive_rate_starts_limiting_at_the_first_throttle(kind: str) -> None:
    table = hosts(policy=_no_retry, adaptive="rate")
    with serving({"/r": [Reply(), Reply(), Reply(429), Reply()]}) as server, fake_time():
        caller = make(kind, server.url, hosts=table)
        statuses = [caller.send("GET", "/r").status for _ in range(4)]
        host = table.host(server.url)
    assert statuses == [200, 200, 429, 200]
    limiter = host.adaptive
    assert isinstance(limiter, brace.AdaptiveRateLimiter)
    assert limiter.rate is not None and limiter.state().last_throttle_at is not None


def test_a_client_throttle_sheds_requests_to_an_overloaded_host(kind: str) -> None:
    table = hosts(policy=_no_retry, adaptive="throttle")
    with serving({"/r": [Reply(503)]}) as server, fake_time():
        brace.testing.seed(3)
        caller = make(kind, server.url, hosts=table)
        outcomes = []
        for _ in range(40):
            try:
                outcomes.append(caller.send("GET", "/r").status)
            except brace.Throttled:
                outcomes.append("shed")
    assert outcomes.count("shed") > 10  # the backend refused everything: most requests stay home
    assert len(server.received) == outcomes.count(503) == 40 - outcomes.count("shed")


def test_every_client_names_a_host_alike(kind: str) -> None:
    # One table for all clients: a host's state is shared only if they agree on its key.
    table = hosts()
    with serving() as server:
        make(kind, server.url, hosts=table).send("GET", "/r")
    assert server.url in table and len(table) == 1  # scheme://host:port, as given
    assert brace.integrations.origin("HTTP", "Example.com", 80) == "http://example.com"
    assert brace.integrations.origin("https", "example.com", 443) == "https://example.com"
    assert brace.integrations.origin("https", "example.com", 8443) == "https://example.com:8443"
