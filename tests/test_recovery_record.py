"""What brace.Recovery records: every attempt logged, correlation ids, stats(), dead letters."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import brace
from brace import Category, Decision, EscalationPolicy, Recovery, RecoveryEvent, RecoveryFailed
from brace.deadletter import MemoryDeadLetters, SQLiteDeadLetters, replay
from brace.recovery_log import JsonLinesSink, MemorySink, RecoveryLog, correlation
from brace.testing import FakeClock

_REQUEST = httpx.Request("POST", "https://payments.example/v1/charges")


def status(code: int, **headers: str) -> httpx.HTTPStatusError:
    response = httpx.Response(code, request=_REQUEST, headers=headers)
    return httpx.HTTPStatusError(f"status {code}", request=_REQUEST, response=response)


FAILURES: dict[str, Callable[[], Exception]] = {
    "timeout": lambda: TimeoutError("read timed out"),
    "reset": lambda: ConnectionResetError(104, "reset"),
    "429": lambda: status(429, **{"Retry-After": "2"}),
    "503": lambda: status(503),
    "500": lambda: status(500),
    "404": lambda: status(404),
    "schema": lambda: json.JSONDecodeError("Expecting value", "<html>", 0),
    "401": lambda: status(401),
}


class Remote:
    """A remote that fails as scripted (names of FAILURES), then answers; counts what it receives."""

    def __init__(self, *script: str) -> None:
        self.script = list(script)
        self.received = 0

    def __call__(self, *args: object, **kwargs: object) -> str:
        self.received += 1
        if self.script:
            raise FAILURES[self.script.pop(0)]()
        return "done"


def recovery_with_log(**kwargs: Any) -> tuple[Recovery, MemorySink, MemoryDeadLetters]:
    sink, store = MemorySink(capacity=1_000_000), MemoryDeadLetters()
    recovery = Recovery(escalation=EscalationPolicy(), dead_letters=store, healing_time=3600.0, **kwargs)
    recovery.add_listener(RecoveryLog(sink))
    return recovery, sink, store


@settings(max_examples=40, deadline=None)
@given(scripts=st.lists(st.lists(st.sampled_from(sorted(FAILURES)), max_size=8), min_size=1, max_size=12))
def test_every_attempt_made_is_logged(scripts: list[list[str]]) -> None:
    recovery, sink, store = recovery_with_log()
    received = 0
    with brace.testing.fake_clock():
        for script in scripts:
            remote = Remote(*script)
            try:
                recovery.call(remote, "invoice-7", amount=12)
            except RecoveryFailed as failed:
                assert failed.dead_letter is not None and store.get(failed.dead_letter).operation
            received += remote.received
    attempts = [event for event in sink.events() if event.kind == "attempt"]
    assert len(attempts) == received  # 100%: one attempt event per attempt made
    assert recovery.stats().attempts_made == received
    assert recovery.stats().calls == len(scripts)


def test_every_attempt_made_is_logged_async(clock: FakeClock) -> None:
    recovery, sink, _ = recovery_with_log()
    remote = Remote("timeout", "reset", "503")

    async def call() -> str:
        return remote()

    assert asyncio.run(recovery.call_async(call)) == "done"
    assert [event.outcome for event in sink.events() if event.kind == "attempt"] == ["failure"] * 3 + ["success"]


class TestCorrelation:
    def test_the_events_of_one_call_share_an_id_and_calls_differ(self, clock: FakeClock) -> None:
        recovery, sink, _ = recovery_with_log()
        recovery.call(Remote("timeout", "reset"))
        recovery.call(Remote("timeout"))
        ids = [event.correlation_id for event in sink.events()]
        assert all(ids)
        first_call = [event for event in sink.events() if event.correlation_id == ids[0]]
        assert [event.kind for event in first_call] == ["attempt", "attempt", "attempt", "recovered"]
        assert len(set(ids)) == 2

    def test_the_callers_id_is_kept(self, clock: FakeClock, run_kind: str) -> None:
        recovery, sink, store = recovery_with_log()
        with correlation("order-42"):
            with pytest.raises(RecoveryFailed) as caught:
                if run_kind == "sync":
                    recovery.call(Remote("404"))
                else:
                    async def call() -> str:
                        return Remote("404")()

                    asyncio.run(recovery.call_async(call))
        assert {event.correlation_id for event in sink.events()} == {"order-42"}
        assert caught.value.dead_letter is not None
        assert store.get(caught.value.dead_letter).correlation_id == "order-42"


@pytest.fixture(params=["sync", "async"])
def run_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


class TestStats:
    def test_a_mix_of_calls(self, clock: FakeClock) -> None:
        recovery, _, _ = recovery_with_log()
        recovery.call(Remote())                             # first try
        recovery.call(Remote("429", "429"))                 # recovered after 2 + 2 s
        recovery.call(Remote("timeout"))                    # recovered after a backoff
        with pytest.raises(RecoveryFailed):
            recovery.call(Remote("404"))                    # escalated at once, dead-lettered
        with pytest.raises(RecoveryFailed):
            recovery.call(Remote("500", "500", "500"))      # 1 + 2 attempts, then escalated
        stats = recovery.stats()
        assert (stats.calls, stats.first_try, stats.failed) == (5, 1, 4)
        assert (stats.transient_failures, stats.transient_recovered, stats.transient_recovery_rate) == (2, 2, 1.0)
        assert stats.recovered == 2
        assert stats.attempts_made == 1 + 3 + 2 + 1 + 3
        assert stats.attempts_per_recovery == pytest.approx((3 + 2) / 2)
        assert (stats.escalations, stats.dead_lettered, stats.fallbacks) == (2, 2, 0)
        rate_limited = stats.by_category["rate_limited"]
        assert (rate_limited.failed, rate_limited.recovered) == (1, 1)
        # The server's 2 s, twice, each spread over up to 20% more.
        assert rate_limited.mean_recovery_time is not None and 4.0 <= rate_limited.mean_recovery_time <= 5.0
        assert stats.by_category["not_found"].escalated == 1
        assert stats.by_category["internal_error"].attempts == 3
        assert stats.p95_recovery_time is not None and stats.mean_recovery_time is not None
        assert stats.p95_recovery_time >= stats.mean_recovery_time
        json.dumps(stats.as_dict())

    def test_no_failures_no_rates(self) -> None:
        recovery, _, _ = recovery_with_log()
        recovery.call(Remote())
        stats = recovery.stats()
        assert stats.transient_recovery_rate is None and stats.mean_recovery_time is None
        assert stats.by_category == {}

    def test_threads_are_all_counted(self, clock: FakeClock) -> None:
        recovery, sink, _ = recovery_with_log()

        def work() -> None:
            for _ in range(200):
                recovery.call(Remote())

        threads = [threading.Thread(target=work) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert recovery.stats().calls == 800 == len(sink.events())


class TestDeadLetters:
    def test_an_aborted_call_is_stored_before_the_error_reaches_the_caller(self, clock: FakeClock) -> None:
        store = MemoryDeadLetters()
        seen: list[int] = []

        def remote(invoice: str, *, amount: int) -> None:
            raise status(404)

        recovery = Recovery(name="charge", escalation=EscalationPolicy(), dead_letters=store)
        try:
            recovery.call(remote, "invoice-7", amount=12)
        except RecoveryFailed as failed:
            seen.append(store.counts()["dead"])
            letter = store.get(failed.dead_letter or "")
        assert seen == [1]
        assert (letter.operation, letter.args, letter.kwargs) == ("charge", ("invoice-7",), {"amount": 12})
        assert (letter.category, letter.attempts, letter.status) == ("not_found", 1, "dead")
        assert letter.error_type == "httpx.HTTPStatusError"

    @pytest.mark.parametrize("read_only", [False, True])
    def test_a_skip_or_a_used_value_is_stored_unless_the_operation_only_reads(self, clock: FakeClock,
                                                                               read_only: bool) -> None:  # fmt: skip
        store = MemoryDeadLetters()
        skip = Recovery(escalation=EscalationPolicy(handlers=[lambda escalation: Decision.skip()]),
                        dead_letters=store, read_only=read_only)  # fmt: skip
        use = Recovery(escalation=EscalationPolicy(handlers=[lambda escalation: Decision.use(0)]),
                       dead_letters=store, read_only=read_only)  # fmt: skip
        skip.call(Remote("404"))
        use.call(Remote("404"))
        # A write that was skipped or replaced by a value did not happen: it is kept, replayable.
        assert sorted(letter.served or "" for letter in store.all()) == (
            [] if read_only else ["decision:skip", "decision:use"])
        assert (skip.stats().dead_lettered, use.stats().dead_lettered) == ((0, 0) if read_only else (1, 1))

    def test_replay_delivers_what_now_succeeds_and_keeps_the_rest(self, clock: FakeClock) -> None:
        store = MemoryDeadLetters()
        down = {"charge": True}

        def charge(invoice: str) -> str:
            if down["charge"]:
                raise status(503)
            return f"charged {invoice}"

        def lookup(invoice: str) -> str:
            raise status(404)

        recovery = Recovery(escalation=EscalationPolicy(), dead_letters=store, healing_time=10.0)
        for invoice in ("a", "b"):
            with pytest.raises(RecoveryFailed):
                recovery.call(charge, invoice)
        with pytest.raises(RecoveryFailed):
            recovery.call(lookup, "c")
        assert store.counts()["dead"] == 3
        down["charge"] = False
        report = replay(store, {fn.__qualname__: fn for fn in (charge, lookup)}, recovery=recovery)
        assert store.counts() == {"dead": 1, "delivered": 2, "discarded": 0}
        assert len(report.delivered) == 2 and len(report.still_dead) == 1
        assert len(store.all()) == 3  # a failed replay does not add a second letter

    def test_sqlite_is_the_default_store(self, clock: FakeClock, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
        path = tmp_path / "letters.sqlite3"
        monkeypatch.setenv("BRACE_DEAD_LETTERS", str(path))
        previous = brace.deadletter.set_default_store(None)
        try:
            with pytest.raises(RecoveryFailed) as caught:
                Recovery(escalation=EscalationPolicy()).call(Remote("404"))
            opened = brace.deadletter.set_default_store(previous)
            assert opened is not None
            opened.close()
        finally:
            brace.deadletter.set_default_store(previous)
        with SQLiteDeadLetters(path) as reopened:
            assert reopened.get(caught.value.dead_letter or "").category == "not_found"

    def test_a_store_that_fails_never_hides_the_error(self, clock: FakeClock, caplog: pytest.LogCaptureFixture) -> None:
        class Broken(MemoryDeadLetters):
            def _insert(self, *args: Any) -> None:
                raise OSError(28, "No space left on device")

        events: list[RecoveryEvent] = []
        recovery = Recovery(escalation=EscalationPolicy(), dead_letters=Broken())
        recovery.add_listener(events.append)
        with pytest.raises(RecoveryFailed) as caught:
            recovery.call(Remote("404"))
        assert caught.value.dead_letter is None
        assert any("could not store this call" in note for note in getattr(caught.value.__cause__, "__notes__", []))
        assert [event.outcome for event in events if event.kind == "dead_letter"] == ["failed"]


def test_breaker_transitions_are_events(clock: FakeClock) -> None:
    breaker = brace.CircuitBreaker(name="payments", consecutive_failures=2, wait_in_open=1.0, half_open_calls=1)
    recovery, sink, _ = recovery_with_log(policy=brace.Policy(breaker=breaker))
    remote = Remote("503", "503")
    with pytest.raises(brace.RecoveryFailed):
        recovery.call(remote)  # opens it; the open breaker's rejection settles the call at once
    clock.advance(1.0)
    recovery.call(remote)  # after its 1 s wait a probe goes through and closes it
    transitions = [event.detail for event in sink.events() if event.kind == "breaker"]
    assert transitions == ["payments: closed -> open", "payments: open -> half_open", "payments: half_open -> closed"]


def test_the_json_lines_log_has_every_attempt(clock: FakeClock, tmp_path: Path) -> None:
    path = tmp_path / "recovery.jsonl"
    sink = JsonLinesSink(path)
    recovery = Recovery(escalation=EscalationPolicy(), dead_letters=MemoryDeadLetters())
    log = RecoveryLog(sink)
    recovery.add_listener(log)
    remote = Remote("timeout", "429", "reset")
    recovery.call(remote)
    log.close()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert sum(1 for line in lines if line["kind"] == "attempt") == remote.received == 4
    assert {line["correlation_id"] for line in lines} != {None}
    categories = [line["classification"]["category"] for line in lines if line["kind"] == "attempt" and
                  line["classification"]]  # fmt: skip
    assert categories == [Category.TIMEOUT.value, Category.RATE_LIMITED.value, Category.NETWORK_ERROR.value]
