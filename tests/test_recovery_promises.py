"""brace.Recovery keeps its promises on the paths that used to break them: async callables,
local rejections, deadlines, timed-out attempts, credentials that expire again, replays,
and one fallback shared by several operations."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import httpx
import pytest

import brace
from brace import Category, Degraded, EscalationPolicy, Fallback, HealingAction, Recovery, RecoveryFailed
from brace.testing import FakeClock

_REQUEST = httpx.Request("GET", "https://api.example/v1/records")
LONG = 60.0


def status_error(status: int) -> httpx.HTTPStatusError:
    response = httpx.Response(status, request=_REQUEST)
    return httpx.HTTPStatusError(f"status {status}", request=_REQUEST, response=response)


def quiet(**config: Any) -> Recovery:
    return Recovery(escalation=EscalationPolicy(), **config)


# A coroutine brace refused must be closed, not left for Python to warn about.
pytestmark = pytest.mark.usefixtures("no_coroutine_left_unawaited")


# -- async callables ----------------------------------------------------------------------------


@pytest.mark.parametrize("guard", ["recovery", "fallback"])
def test_the_sync_entry_point_refuses_a_coroutine_function(guard: str) -> None:
    ran: list[str] = []

    async def fetch() -> str:
        ran.append("ran")  # pragma: no cover
        return "rows"  # pragma: no cover

    entry = quiet() if guard == "recovery" else Fallback(Fallback.value("stale"))
    with pytest.raises(TypeError, match=r"\.call\(\) got .*fetch, a coroutine function.*call_async"):
        entry.call(fetch)
    with pytest.raises(TypeError, match=r"returned coroutine, an awaitable"):
        entry.call(lambda: fetch())
    assert ran == []


def test_a_cached_fallback_never_keeps_a_coroutine() -> None:
    fallback = Fallback(Fallback.cached(max_age=60.0))

    async def fetch(key: str) -> str:
        return f"value of {key}"  # pragma: no cover

    def returns_a_coroutine(key: str) -> Any:
        return fetch(key)

    with pytest.raises(TypeError):
        fallback.call(returns_a_coroutine, "k")
    with pytest.raises(brace.FallbackFailed, match="no entry"):  # nothing was cached
        fallback.serve(("k",), {}, ConnectionError("down"), None, operation="returns_a_coroutine")


def test_a_decorated_plain_function_returning_a_coroutine_is_recovered_when_awaited(clock: FakeClock) -> None:
    calls = 0

    async def fetch() -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionResetError(104, "reset")
        return "rows"

    @quiet()
    def plain() -> Any:
        return fetch()

    assert asyncio.run(plain()) == "rows"
    assert calls == 2


def test_a_function_is_recovered_once_by_the_same_recovery(clock: FakeClock) -> None:
    calls = 0
    recovery = quiet()

    @recovery
    def flaky() -> str:
        nonlocal calls
        calls += 1
        raise ConnectionResetError(104, "reset")

    assert recovery(flaky) is flaky
    with pytest.raises(RecoveryFailed):
        recovery.call(flaky)
    assert calls == 4  # NETWORK_ERROR's 3 retries once, not 4 x 4
    assert recovery.stats().calls == 1


def test_a_bare_recovery_decorator_says_to_add_parentheses() -> None:
    with pytest.raises(TypeError, match=r"brace\.Recovery takes keyword arguments only.*@brace\.Recovery\(\.\.\.\)"):
        Recovery(print)  # type: ignore[arg-type]


# -- local rejections ---------------------------------------------------------------------------


def test_an_open_breaker_is_served_the_fallback_at_once_not_after_its_open_time(clock: FakeClock) -> None:
    breaker = brace.CircuitBreaker(name="promises-open", consecutive_failures=1, wait_in_open=60.0)
    breaker.force_open()
    recovery = quiet(policy=brace.Policy(breaker=breaker), fallback=Fallback(Fallback.value("stale")),
                     read_only=True)  # fmt: skip
    started = clock.now_ns()
    served = recovery.call(lambda: "never called")
    assert isinstance(served, Degraded) and served.value == "stale"
    assert clock.now_ns() == started  # no wait at all: the breaker's 60 s are not the server's


def test_a_full_bulkhead_settles_the_call_at_once(clock: FakeClock) -> None:
    bulkhead = brace.Bulkhead(max_concurrent=1)
    bulkhead.try_acquire()
    escalations: list[brace.Escalation] = []
    recovery = Recovery(policy=brace.Policy(bulkhead=bulkhead), escalation=EscalationPolicy(
        handlers=[escalations.append]), dead_letters=brace.MemoryDeadLetters())  # fmt: skip
    with pytest.raises(RecoveryFailed) as caught:
        recovery.call(lambda: "never called")
    assert caught.value.reason == "rejected_locally"
    assert "nothing was sent" in escalations[0].reason_text()
    bulkhead.release()


# -- time ---------------------------------------------------------------------------------------


def test_an_enclosing_deadline_bounds_the_recovery(clock: FakeClock) -> None:
    calls = 0

    def down() -> str:
        nonlocal calls
        calls += 1
        raise status_error(503)

    started = clock.now_ns()
    with brace.deadline(2.0), pytest.raises(RecoveryFailed) as caught:
        quiet().call(down)
    assert caught.value.reason == "deadline"
    assert clock.now_ns() - started <= 2 * 10**9
    assert 1 < calls < 11  # it retried, and stopped before SERVICE_DOWN's allowance ran out


@pytest.mark.parametrize("idempotent", [False, True])
def test_a_timed_out_attempt_that_may_still_run_is_retried_only_when_idempotent(idempotent: bool) -> None:
    release = threading.Event()
    calls = 0

    def hangs() -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            release.wait(LONG)
        return "rows"

    # The first attempt hangs until released; the second returns at once, well inside the
    # 0.5 s, however slow a loaded machine hands it to its worker.
    recovery = quiet(policy=brace.Policy(attempt_timeout=0.5), idempotent=idempotent,
                     dead_letters=brace.MemoryDeadLetters())  # fmt: skip
    try:
        if idempotent:
            assert recovery.call(hangs) == "rows"
        else:
            with pytest.raises(RecoveryFailed) as caught:
                recovery.call(hangs)
            assert caught.value.reason == "still_running"
    finally:
        release.set()
    assert calls == (2 if idempotent else 1)


# -- credentials --------------------------------------------------------------------------------


@pytest.mark.parametrize("way", ["sync", "async"])
def test_a_credential_that_expires_again_during_one_call_is_refreshed_again(clock: FakeClock, way: str) -> None:
    # 401 -> refresh -> 503 -> 503 -> 401 (the new token expired too) -> refresh -> ok
    script = [status_error(401), status_error(503), status_error(503), status_error(401)]
    refreshes: list[int] = []

    def service() -> str:
        if script:
            raise script.pop(0)
        return "rows"

    async def service_async() -> str:
        return service()

    recovery = quiet(healing=[HealingAction(lambda context: refreshes.append(context.attempt),
                                            categories="auth_expired", name="refresh")])  # fmt: skip
    if way == "sync":
        assert recovery.call(service) == "rows"
    else:
        assert asyncio.run(recovery.call_async(service_async)) == "rows"
    assert refreshes == [1, 4]


def test_a_401_right_after_a_refresh_is_still_auth_invalid(clock: FakeClock) -> None:
    def service() -> str:
        raise status_error(401)

    recovery = quiet(healing=[HealingAction(lambda context: None, categories="auth_expired", name="refresh")])
    with pytest.raises(RecoveryFailed) as caught:
        recovery.call(service)
    assert caught.value.category == "auth_invalid"


# -- one fallback, several operations -----------------------------------------------------------


def test_one_operations_cached_value_is_never_served_for_another(clock: FakeClock) -> None:
    recovery = quiet(fallback=Fallback(Fallback.cached(max_age=3600.0)), read_only=True)

    @recovery
    def price(item: int) -> str:
        return f"price of {item}"

    @recovery
    def stock(item: int) -> str:
        raise status_error(404)

    assert price(7) == "price of 7"
    with pytest.raises(RecoveryFailed) as caught:
        stock(7)
    assert caught.value.reason == "fallback_failed"


# -- replays ------------------------------------------------------------------------------------


def test_replays_through_the_same_recovery_are_kept_apart_from_its_live_figures(clock: FakeClock) -> None:
    store = brace.MemoryDeadLetters()
    up = False

    def sync_sheet(sheet: str) -> str:
        if not up:
            raise status_error(404)
        return f"rows of {sheet}"

    recovery = quiet(dead_letters=store, name="sync_sheet")
    with pytest.raises(RecoveryFailed):
        recovery.call(sync_sheet, "s1")
    live = recovery.stats()
    up = True
    report = brace.replay(store, {"sync_sheet": sync_sheet}, recovery=recovery)
    assert len(report.delivered) == 1
    assert recovery.stats() == live  # the replay did not change the live figures
    replayed = recovery.replay_stats()
    assert (replayed.calls, replayed.first_try) == (1, 1)
    assert live.by_category[Category.NOT_FOUND.value].failed == 1


# -- nothing lost: writes served a stand-in, crashes, interruptions, hostile errors -------------


@pytest.mark.parametrize("way", ["sync", "async"])
def test_a_write_served_a_fallback_is_also_kept_as_a_replayable_dead_letter(clock: FakeClock, way: str) -> None:
    store = brace.MemoryDeadLetters()
    applied: list[int] = []
    up = False

    def save(cents: int) -> str:
        if not up:
            raise status_error(503)
        applied.append(cents)
        return "saved"

    async def save_async(cents: int) -> str:
        return save(cents)

    recovery = quiet(fallback=Fallback(Fallback.value("queued")), dead_letters=store, name="save")
    served = recovery.call(save, 1999) if way == "sync" else asyncio.run(recovery.call_async(save_async, 1999))
    assert isinstance(served, Degraded) and served.value == "queued"
    (letter,) = store.dead()
    assert (letter.operation, letter.args, letter.served) == ("save", (1999,), "fallback:value")
    up = True
    assert len(brace.replay(store, {"save": save}).delivered) == 1
    assert applied == [1999]  # the write the fallback stood in for was made after all


def test_a_read_served_a_fallback_leaves_no_dead_letter(clock: FakeClock) -> None:
    store = brace.MemoryDeadLetters()
    recovery = quiet(fallback=Fallback(Fallback.value([])), dead_letters=store, read_only=True)
    assert isinstance(recovery.call(lambda: (_ for _ in ()).throw(status_error(503))), Degraded)
    assert store.all() == []


def test_write_ahead_records_each_attempt_and_the_call_before_they_go_out(clock: FakeClock) -> None:
    store = brace.MemoryDeadLetters()
    seen: list[tuple[str, int]] = []
    in_flight: list[int] = []
    calls = 0

    def save(cents: int) -> str:
        nonlocal calls
        calls += 1
        in_flight.append(len(store.in_flight()))  # the call is in the outbox while it runs
        if calls == 1:
            raise ConnectionResetError(104, "reset")
        return "saved"

    recovery = quiet(dead_letters=store, write_ahead=True)
    recovery.add_listener(lambda event: seen.append((event.kind, event.attempt)))
    assert recovery.call(save, 1999) == "saved"
    assert [entry for entry in seen if entry[0] in ("attempt_started", "attempt")] == [
        ("attempt_started", 1), ("attempt", 1), ("attempt_started", 2), ("attempt", 2)]
    assert in_flight == [1, 1]
    assert store.in_flight() == [] and store.all() == []  # it ended with its value: nothing left


WRITE_AHEAD_CHILD = """
import sys, brace
store = brace.SQLiteDeadLetters(sys.argv[1])
sink = brace.JsonLinesSink(sys.argv[2])
recovery = brace.Recovery(dead_letters=store, write_ahead=True, name="charge")
recovery.add_listener(brace.RecoveryLog(sink))

def charge(invoice, cents):
    print("sent", flush=True)  # the request is out: the server has it
    sys.stdin.readline()  # and the process is killed before it answers

with brace.correlation("order-9"):
    recovery.call(charge, "inv-9", cents=1999)
"""


def test_after_a_crash_mid_attempt_the_call_is_logged_and_recoverable(tmp_path: Any) -> None:
    import json
    import os
    import signal
    import subprocess
    import sys

    letters, log = tmp_path / "letters.sqlite3", tmp_path / "recovery.jsonl"
    child = subprocess.Popen([sys.executable, "-c", WRITE_AHEAD_CHILD, str(letters), str(log)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "sent"
    finally:
        os.kill(child.pid, signal.SIGKILL)  # nothing of the child runs after this
        assert child.wait(LONG) == -signal.SIGKILL
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(record["kind"], record["attempt"], record["correlation_id"]) for record in records] == [
        ("attempt_started", 1, "order-9")]
    with brace.SQLiteDeadLetters(letters) as store:
        (letter,) = store.recover_interrupted()
        assert (letter.operation, letter.args, letter.kwargs, letter.correlation_id) == (
            "charge", ("inv-9",), {"cents": 1999}, "order-9")
        assert letter.replayable


@pytest.mark.parametrize("interruption", [KeyboardInterrupt, asyncio.CancelledError])
def test_a_call_interrupted_with_its_outbox_entry_open_becomes_a_dead_letter(clock: FakeClock,
                                                                            interruption: type) -> None:  # fmt: skip
    store = brace.MemoryDeadLetters()

    def save(cents: int) -> str:
        raise interruption()

    with pytest.raises(interruption):
        quiet(dead_letters=store, write_ahead=True, name="save").call(save, 5)
    (letter,) = store.dead()
    assert (letter.operation, letter.args) == ("save", (5,))
    assert store.in_flight() == []


class Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("__str__ of a library error built without its attributes")

    def __repr__(self) -> str:
        raise RuntimeError("__repr__ too")


@pytest.mark.parametrize("where", ["fallback alternative", "healing action", "undo"])
def test_an_error_that_cannot_be_shown_never_escapes_a_recovery(clock: FakeClock, where: str) -> None:
    def raising(*args: object) -> Any:
        raise Unprintable()

    store = brace.MemoryDeadLetters()
    healing = []
    if where == "healing action":
        healing = [HealingAction(raising, categories="service_down", name="broken")]
    elif where == "undo":
        healing = [HealingAction(lambda context: None, categories="service_down", undo=raising, name="undone")]
    recovery = quiet(healing=healing, dead_letters=store, healing_time=3.0,
                     fallback=Fallback(raising) if where == "fallback alternative" else None)  # fmt: skip
    # The same failure twice (an action that did not help is undone), then a worse one.
    script = [status_error(503), status_error(503), status_error(403)]

    def service() -> str:
        raise script.pop(0) if script else status_error(403)

    with pytest.raises(RecoveryFailed) as caught:  # brace's error, never Unprintable or a RuntimeError
        recovery.call(service)
    assert caught.value.dead_letter is not None and len(store.dead()) == 1
