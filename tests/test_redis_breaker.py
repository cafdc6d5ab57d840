"""CircuitBreaker on a real redis-server (store="redis://..."): hosts (processes) that share one
breaker's state - an opening seen by every host within the flush bound, the cluster's window
summed from the hosts', exactly half_open_calls probes cluster-wide, a dead host's probe lease
expiring - and the server stopped mid-run and restarted."""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import threading
import time
import uuid
from typing import Any

import pytest

import brace
from brace import _redis_breaker
from processes import run_all
from redis_server import RedisServer, server  # noqa: F401 (the fixture)

BOUND = 0.25  # the default flush_interval: an opening reaches every host within it plus one round trip
MARGIN = 10.0  # seconds a bounded wait allows (generous: the machine is shared)


def unique() -> str:
    return f"cb-{uuid.uuid4().hex[:10]}"


def wait_until(condition: Any, timeout: float = MARGIN) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the condition did not hold within the wait"
        time.sleep(0.01)


def fail() -> None:
    raise OSError("down")


def breaker(url: str, name: str, **config: Any) -> brace.CircuitBreaker:
    settings: dict[str, Any] = dict(window="time", window_size=60, minimum_calls=10, failure_rate_threshold=0.5,
                                    wait_in_open=60.0, half_open_calls=3)  # fmt: skip
    settings.update(config)
    return brace.CircuitBreaker(name=name, store=url, **settings)


def _watcher(url: str, name: str, ready: Any, answers: Any) -> None:
    cb = breaker(url, name)
    ready.wait()
    wait_until(lambda: cb.state is brace.BreakerState.OPEN)
    with pytest.raises(brace.CircuitOpen):
        cb.call(lambda: None)
    answers.put(cb.metrics().time_until_half_open)


def test_one_hosts_opening_reaches_every_host_within_the_bound(server: RedisServer) -> None:
    context = multiprocessing.get_context("spawn")
    name, ready, answers = unique(), context.Barrier(4), context.Queue()
    watchers = [context.Process(target=_watcher, args=(server.url, name, ready, answers)) for _ in range(3)]
    for process in watchers:
        process.start()
    here = breaker(server.url, name)
    ready.wait()
    for _ in range(10):
        with contextlib.suppress(OSError):
            here.call(fail)
    assert here.state is brace.BreakerState.OPEN
    waits = [answers.get(timeout=60) for _ in watchers]
    for process in watchers:
        process.join(60)
        assert process.exitcode == 0
    # Every host waits out the same OPEN (the one this host decided), give or take the bound.
    for wait in waits:
        assert 60.0 - 5.0 < wait <= 60.0


def _fails(url: str, name: str, failures: int, ready: Any, answers: Any) -> None:
    cb = breaker(url, name)
    for _ in range(failures):
        with contextlib.suppress(OSError):
            cb.call(fail)
    assert cb.state is brace.BreakerState.CLOSED  # too few calls for this host alone
    cb.flush()
    ready.wait()
    wait_until(lambda: cb.state is brace.BreakerState.OPEN)
    answers.put(True)


def test_the_cluster_window_opens_every_host(server: RedisServer) -> None:
    # Three hosts with 4 failures each: none reaches minimum_calls=10 alone, the cluster (12) does.
    context = multiprocessing.get_context("spawn")
    name, ready, answers = unique(), context.Barrier(3), context.Queue()
    hosts = [context.Process(target=_fails, args=(server.url, name, 4, ready, answers)) for _ in range(3)]
    assert run_all(hosts, answers, timeout=60) == [True] * 3
    assert breaker(server.url, name).state is brace.BreakerState.OPEN  # a new host follows at once


def _prober(url: str, name: str, ready: Any, release: Any, answers: Any) -> None:
    cb = breaker(url, name, wait_in_open=0.5)
    assert cb.state is not brace.BreakerState.CLOSED  # its first flush, at construction, applied the OPEN
    ready.wait()
    granted = 0
    with contextlib.ExitStack() as held:  # probes held (not finished) until every host has tried
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            try:
                held.enter_context(cb)
                granted += 1
            except brace.CircuitOpen:
                time.sleep(0.005)
        answers.put(granted)
        release.wait()
    wait_until(lambda: cb.state is brace.BreakerState.CLOSED)  # the probes succeeded: closed everywhere
    answers.put(cb.state.value)


def test_exactly_half_open_calls_probes_across_hosts(server: RedisServer) -> None:
    context = multiprocessing.get_context("spawn")
    name, ready, release, answers = unique(), context.Barrier(5), context.Barrier(5), context.Queue()
    here = breaker(server.url, name, wait_in_open=0.5)
    for _ in range(10):
        with contextlib.suppress(OSError):
            here.call(fail)
    assert here.state is brace.BreakerState.OPEN
    hosts = [context.Process(target=_prober, args=(server.url, name, ready, release, answers)) for _ in range(4)]
    for process in hosts:
        process.start()
    ready.wait()  # the hosts' 4 x up to 3 local probes: the store grants 3 in all
    granted = [answers.get(timeout=60) for _ in hosts]
    assert sum(granted) == 3
    release.wait()
    assert [answers.get(timeout=60) for _ in hosts] == ["closed"] * 4
    for process in hosts:
        process.join(60)
        assert process.exitcode == 0
    wait_until(lambda: here.state is brace.BreakerState.CLOSED)


def _dies_holding_a_probe(url: str, name: str) -> None:
    cb = breaker(url, name, wait_in_open=0.3, half_open_calls=1, max_wait_in_half_open=1.0)
    assert cb.state is not brace.BreakerState.CLOSED
    while True:
        try:
            cb.__enter__()
            break
        except brace.CircuitOpen:
            time.sleep(0.01)
    os._exit(0)  # the probe is never finished: only its lease's expiry gives it back


def test_a_dead_hosts_probe_lease_expires(server: RedisServer) -> None:
    name = unique()
    here = breaker(server.url, name, wait_in_open=0.3, half_open_calls=1, max_wait_in_half_open=1.0)
    for _ in range(10):
        with contextlib.suppress(OSError):
            here.call(fail)
    process = multiprocessing.get_context("spawn").Process(target=_dies_holding_a_probe, args=(server.url, name))
    run_all([process])
    refused_at = time.monotonic()
    with pytest.raises(brace.CircuitOpen):  # the dead host's lease still holds the only probe
        here.call(lambda: None)
    assert time.monotonic() - refused_at < 1.0  # else the lease could have expired: the refusal proves nothing
    wait_until(lambda: _probe_ran(here))
    assert here.state is brace.BreakerState.CLOSED


def _probe_ran(cb: brace.CircuitBreaker) -> bool:
    try:
        cb.call(lambda: None)
    except brace.CircuitOpen:
        return False
    return True


def test_redis_stopped_mid_run_and_restarted(server: RedisServer) -> None:
    name = unique()
    one, two = breaker(server.url, name), breaker(server.url, name)
    lost: list[str] = []
    one.add_listener(lambda event: lost.append(event.kind), kinds=("store_lost", "store_back"))
    assert one.call(lambda: 1) == 1
    server.stop()
    one.flush()  # the round trip fails: the store is down, never an error for a caller
    assert not one.store_up
    for _ in range(5):  # the closed-state path decides locally, with no round trip
        assert one.call(lambda: 2) == 2
    for _ in range(10):
        with contextlib.suppress(OSError, brace.CircuitOpen):
            one.call(fail)
    assert one.state is brace.BreakerState.OPEN  # its own window opened it
    assert two.state is brace.BreakerState.CLOSED  # and nobody heard: the store is away
    server.start()
    wait_until(lambda: one.store_up)
    assert lost[:1] == ["store_lost"] and "store_back" in lost
    # Sharing resumes: a fresh opening on one host reaches the other.
    wait_until(lambda: two.state is brace.BreakerState.OPEN)


def test_a_probe_while_the_store_is_away_follows_on_store_error(server: RedisServer) -> None:
    closed = breaker(server.url, unique(), wait_in_open=0.05, on_store_error="closed")
    local = breaker(server.url, unique(), wait_in_open=0.05)
    for cb in (closed, local):
        for _ in range(10):
            with contextlib.suppress(OSError):
                cb.call(fail)
        assert cb.state is brace.BreakerState.OPEN
    server.stop()
    closed.flush()
    time.sleep(0.1)  # past wait_in_open: the next call is a probe
    with pytest.raises(brace.StoreUnavailable):
        closed.call(lambda: None)
    assert local.call(lambda: 3) == 3  # the host's own breaker decided the probe
    assert local.state is brace.BreakerState.HALF_OPEN


def test_configuration_checks() -> None:
    with pytest.raises(ValueError, match="flush_interval"):
        brace.CircuitBreaker(name="x", flush_interval=1.0)
    with pytest.raises(ValueError, match="on_store_error"):
        brace.CircuitBreaker(name="x", on_store_error="open")
    with pytest.raises(ValueError, match="flush_interval must be 1 ms to 1 hour"):
        brace.CircuitBreaker(name="x", store="redis://127.0.0.1:1/0", flush_interval=7200)
    with pytest.raises(ValueError, match="needs a name"):
        brace.CircuitBreaker(store="redis://127.0.0.1:1/0")
    import redis.asyncio

    with pytest.raises(TypeError, match="needs a URL or a sync client"):
        brace.CircuitBreaker(name="x", store=redis.asyncio.Redis(port=1))


def test_a_client_object_as_the_store(server: RedisServer) -> None:
    name = unique()
    given = server.client()
    one, two = breaker(server.url, name), brace.CircuitBreaker(name=name, store=given, window="time",
                                                               minimum_calls=10)  # fmt: skip
    assert two.store is given
    for _ in range(10):
        with contextlib.suppress(OSError):
            two.call(fail)
    assert two.state is brace.BreakerState.OPEN
    wait_until(lambda: one.state is brace.BreakerState.OPEN)


def test_a_breaker_on_redis_is_not_reconfigured(server: RedisServer) -> None:
    cb = breaker(server.url, unique())
    with pytest.raises(ValueError, match="shared by every host"):
        cb.reconfigure(minimum_calls=5)
    assert cb.metrics().calls == 0 and cb.failure_rate_threshold == 0.5


def _opens_inherited(cb: brace.CircuitBreaker, url: str) -> None:
    for _ in range(10):
        with contextlib.suppress(OSError):
            cb.call(fail)
    assert cb.state is brace.BreakerState.OPEN
    # Sent by the child's own flusher (threads do not survive fork), before the child ends:
    # a breaker made afterwards follows the store's state at once.
    wait_until(lambda: breaker(url, cb.name or "").state is brace.BreakerState.OPEN)


def test_a_forked_child_shares_with_its_own_flusher(server: RedisServer) -> None:
    here = breaker(server.url, unique())
    child = multiprocessing.get_context("fork").Process(target=_opens_inherited, args=(here, server.url))
    run_all([child])
    wait_until(lambda: here.state is brace.BreakerState.OPEN)


# -- coroutine callers: a probe's lease is awaited, never waited for on the loop's thread

def _half_open(server: RedisServer, **config: Any) -> brace.CircuitBreaker:
    """A breaker opened by its failures, the opening in the store, its local wait over: its next
    call is a probe. flush_interval of an hour: no flush of its own while the test runs."""
    name = unique()
    cb = breaker(server.url, name, wait_in_open=0.05, half_open_calls=1, flush_interval=3600, **config)
    for _ in range(10):
        with contextlib.suppress(OSError):
            cb.call(fail)
    client: Any = server.client()
    # The opening's flush (woken by it) has made its round trip: the store will see no other.
    wait_until(lambda: client.hget(f"brace:cb:{{{name}}}:s", "state") == b"open")
    wait_until(lambda: cb.metrics().time_until_half_open == 0)
    return cb


async def _guarded(cb: brace.CircuitBreaker, form: str, ticks: list[int]) -> int:
    """Runs one call of `form` under cb: how many turns the ticker had from the call's start to
    the function's."""
    before = ticks[0]
    return await _started(cb, form, ticks) - before


async def _started(cb: brace.CircuitBreaker, form: str, ticks: list[int]) -> int:
    """Runs one call of `form` under cb: the ticker's count when the function started."""

    async def probe() -> int:
        return ticks[0]

    if form == "decorated":
        return await cb(probe)()
    if form == "call_async":
        return await cb.call_async(probe)
    if form == "async with":
        async with cb:
            return ticks[0]
    return await brace.Policy(breaker=cb)(probe)()


async def _while_ticking(call: Any, ticks: list[int]) -> Any:
    """call() awaited while another task counts its turns on the loop."""

    async def ticker() -> None:
        while True:
            ticks[0] += 1
            await asyncio.sleep(0)

    task = asyncio.get_running_loop().create_task(ticker())
    await asyncio.sleep(0)
    try:
        return await call()
    finally:
        task.cancel()


FORMS = ["decorated", "call_async", "async with", "policy"]


@pytest.mark.parametrize("form", FORMS)
def test_a_coroutines_probe_awaits_its_lease_from_a_hung_server(server: RedisServer, form: str) -> None:
    cb = _half_open(server)
    ticks = [0]
    server.pause()
    try:
        turns = asyncio.run(_while_ticking(lambda: _guarded(cb, form, ticks), ticks))
    finally:
        server.resume()
    # The loop ran the ticker while the lease waited out its socket timeout; then the store was
    # down and (on_store_error="local") this host's breaker let the probe run, which closed it.
    assert turns > 0
    assert cb.state is brace.BreakerState.CLOSED


@pytest.mark.parametrize("form", FORMS)
def test_a_coroutines_probe_from_a_hung_server_fails_closed(server: RedisServer, form: str) -> None:
    cb = _half_open(server, on_store_error="closed")
    ticks, ran = [0], []

    async def refused() -> None:
        before = ticks[0]
        with pytest.raises(brace.StoreUnavailable):
            ran.append(await _started(cb, form, ticks))
        ran.append(ticks[0] - before)

    server.pause()
    try:
        asyncio.run(_while_ticking(refused, ticks))
    finally:
        server.resume()
    assert len(ran) == 1 and ran[0] > 0  # the function never ran; the loop ticked while it waited


def test_a_coroutines_probe_returns_its_lease_off_the_loop(server: RedisServer) -> None:
    cb = _half_open(server)
    store: Any = cb._redis  # type: ignore[attr-defined]
    sent: list[tuple[str, Any]] = []
    evalsha = store.evalsha

    def recording(script: Any, *args: Any) -> Any:
        sent.append((threading.current_thread().name, script))
        return evalsha(script, *args)

    store.evalsha = recording
    client: Any = server.client()
    try:
        assert asyncio.run(_started(cb, "async with", [7])) == 7
        # The probe's return reached the store, which closed the breaker for every host.
        wait_until(lambda: client.hget(f"brace:cb:{{{cb.name}}}:s", "state") == b"closed")
    finally:
        del store.evalsha
    # The lease was awaited (on the loop's asyncio client), and its return sent by the flusher.
    returns = [name for name, script in sent if script is _redis_breaker.DONE]
    assert returns and all(name.startswith("brace breaker flusher") for name in returns)
    assert cb.state is brace.BreakerState.CLOSED


# -- on_store_error="closed": every call refused while the store is away

def test_closed_refuses_every_call_while_the_store_is_away(server: RedisServer) -> None:
    closed = breaker(server.url, unique(), on_store_error="closed")
    local, opened = breaker(server.url, unique()), breaker(server.url, unique(), on_store_error="open")
    events: list[tuple[str, Any]] = []
    closed.add_listener(lambda event: events.append((event.kind, getattr(event, "to_state", None))))
    ran: list[int] = []

    def work() -> int:
        ran.append(1)
        return 1

    policy, decorated = brace.Policy(breaker=closed), closed(work)
    assert closed.call(work) == 1
    server.stop()
    closed.flush()  # the round trip fails: the store is down for every primitive on it
    del ran[:]

    async def coroutine() -> int:
        return work()

    async def refused_async() -> None:
        for attempt in (lambda: closed.call_async(coroutine), lambda: closed(coroutine)(),
                        lambda: policy(coroutine)()):  # fmt: skip
            with pytest.raises(brace.StoreUnavailable):
                await attempt()
        with pytest.raises(brace.StoreUnavailable):
            async with closed:
                work()

    for attempt in (lambda: closed.call(work), decorated, lambda: policy.call(work)):
        with pytest.raises(brace.StoreUnavailable) as refused:
            attempt()
        assert refused.value.kind == "CircuitBreaker" and refused.value.name == closed.name
    with pytest.raises(brace.StoreUnavailable):
        with closed:
            work()
    asyncio.run(refused_async())
    assert ran == []  # none reached the function
    assert closed.state is brace.BreakerState.FORCED_OPEN
    assert local.call(work) == 1 and opened.call(work) == 1  # "local" and "open" decide locally
    server.start()
    wait_until(lambda: closed.state is brace.BreakerState.CLOSED)
    assert closed.call(work) == 1 and policy.call(work) == 1
    kinds = [kind for kind, _ in events if kind != "success"]
    assert kinds[:2] == ["store_lost", "state_transition"]
    assert ("state_transition", brace.BreakerState.FORCED_OPEN) in events
    assert ("state_transition", brace.BreakerState.CLOSED) in events and "store_back" in kinds
    assert kinds.count("not_permitted") == 8 and closed.calls().not_permitted == 8


def test_closed_follows_the_stores_state_when_it_is_back(server: RedisServer) -> None:
    name = unique()
    closed, other = breaker(server.url, name, on_store_error="closed"), breaker(server.url, name)
    for _ in range(10):
        with contextlib.suppress(OSError):
            other.call(fail)
    wait_until(lambda: closed.state is brace.BreakerState.OPEN)  # the cluster's opening
    server.pause()
    try:
        closed.flush()  # times out: the store is down (it keeps its state: paused, not stopped)
    finally:
        server.resume()
    assert closed.state is brace.BreakerState.FORCED_OPEN
    # Back: CLOSED a moment, then the store's OPEN (of the generation it knew before) again.
    wait_until(lambda: closed.state is brace.BreakerState.OPEN)
    assert closed.metrics().time_until_half_open > 30
