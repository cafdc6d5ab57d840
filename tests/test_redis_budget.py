"""RetryBudget on a real redis-server (store="redis://..."): hosts (processes) withdrawing from
one balance exactly as a reference model allows, the script's arithmetic and window against
that model (hypothesis), keys that expire, a compiled Policy's retries capped cluster-wide,
the async path off the loop, and the server stopped mid-run and restarted."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import brace
from allocations import blocks_kept
from processes import run_all
from redis_server import RedisServer, server, ticks_while_paused  # noqa: F401 (the fixture)

MARGIN = 10.0  # seconds a bounded wait allows (generous: the machine is shared)
NO_WAIT = brace.Backoff.constant(delay=0.0, jitter="none")
HOUR = 3600.0  # a ttl no test outlives: nothing expires unless a test says so


def unique() -> str:
    return f"rb-{uuid.uuid4().hex[:10]}"


def wait_until(condition: Any, timeout: float = MARGIN) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the condition did not hold within the wait"
        time.sleep(0.01)


def allowance(calls: int, ratio_milli: int, min_per_second: int, ttl: float) -> int:
    """The reference model (Finagle's, in milli-tokens): retries that calls within one ttl pay for."""
    return (min_per_second * round(ttl * 1000) + calls * ratio_milli) // 1000


@pytest.fixture
def db(server: RedisServer) -> Any:
    return server.client()


# -- many hosts


def _host(url: str, name: str, calls: int, barrier: Any, results: Any) -> None:
    budget = brace.RetryBudget(name=name, ratio=0.5, min_per_second=1, ttl=HOUR, store=url)
    barrier.wait()
    taken = 0
    for _ in range(calls):  # calls and retries interleaved on every host at once
        budget.deposit()
        taken += budget.try_withdraw()
    budget.flush()
    barrier.wait()  # every deposit is on the server
    while budget.try_withdraw():
        taken += 1
    results.put(taken)


def test_hosts_withdraw_exactly_what_the_model_allows(server: RedisServer) -> None:
    context = multiprocessing.get_context("spawn")
    name, barrier, results = unique(), context.Barrier(4), context.Queue()
    hosts = [context.Process(target=_host, args=(server.url, name, 200, barrier, results)) for _ in range(4)]
    taken = run_all(hosts, results)
    # 4 x 200 calls x 0.5 + 1 per second x 3600 s: never more (no token spent twice across
    # hosts), and no fewer once every deposit is sent.
    assert sum(taken) == allowance(800, 500, 1, HOUR) == 4000


def _deposits_in_a_forked_child(budget: brace.RetryBudget, url: str) -> None:
    for _ in range(3):
        budget.deposit()
    # Sent by the child's own flusher (threads do not survive fork): a budget made here sees
    # the parent's 5 deposits (sent before the fork) and these 3, none twice.
    fresh = brace.RetryBudget(name=budget.name, ratio=1, min_per_second=0, ttl=HOUR, store=url)
    wait_until(lambda: fresh.balance == 8.0)


def test_a_forked_child_sends_its_deposits_with_its_own_flusher(server: RedisServer) -> None:
    budget = brace.RetryBudget(name=unique(), ratio=1, min_per_second=0, ttl=HOUR, store=server.url,
                               flush_interval=0.01)  # fmt: skip
    for _ in range(5):
        budget.deposit()
    budget.flush()
    child = multiprocessing.get_context("fork").Process(target=_deposits_in_a_forked_child,
                                                        args=(budget, server.url))  # fmt: skip
    run_all([child])
    assert budget.balance == 8.0


def _sends_only_its_own(budget: brace.RetryBudget, url: str) -> None:
    for _ in range(3):
        budget.deposit()
    budget.flush()
    assert brace.RetryBudget(name=budget.name, ratio=1, min_per_second=0, ttl=HOUR, store=url).balance == 3.0


def test_a_forked_child_never_sends_its_parent_s_unsent_deposits(server: RedisServer) -> None:
    budget = brace.RetryBudget(name=unique(), ratio=1, min_per_second=0, ttl=HOUR, store=server.url,
                               flush_interval=HOUR)  # fmt: skip
    for _ in range(5):
        budget.deposit()  # not sent yet: the parent sends them, not the child too
    run_all([multiprocessing.get_context("fork").Process(target=_sends_only_its_own, args=(budget, server.url))])
    assert budget.balance == 8.0


# -- the script against the model


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ratio_milli=st.integers(1, 5000), min_per_second=st.integers(0, 2),
       ops=st.lists(st.one_of(st.tuples(st.just("deposit"), st.integers(1, 30)), st.just(("withdraw", 0)),
                              st.just(("balance", 0)), st.just(("flush", 0))), max_size=40))  # fmt: skip
def test_the_script_matches_the_model(server: RedisServer, ratio_milli: int, min_per_second: int,
                                      ops: list[tuple[str, int]]) -> None:  # fmt: skip
    ttl = HOUR
    budget = brace.RetryBudget(name=unique(), ratio=ratio_milli / 1000, min_per_second=min_per_second, ttl=ttl,
                               store=server.url, flush_interval=HOUR)  # fmt: skip
    calls = withdrawals = 0
    for op, n in ops:
        if op == "deposit":
            for _ in range(n):
                budget.deposit()
            calls += n
        elif op == "withdraw":
            covered = allowance(calls, ratio_milli, min_per_second, ttl) > withdrawals
            assert budget.try_withdraw() is covered
            withdrawals += covered
        elif op == "balance":
            expected = (min_per_second * round(ttl * 1000) + calls * ratio_milli - 1000 * withdrawals) / 1000
            assert budget.balance == expected
        else:
            budget.flush()


def _server_bucket(db: Any, bucket_us: int) -> int:
    seconds, micros = db.time()
    return (seconds * 1_000_000 + micros) // bucket_us


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(deposits=st.dictionaries(st.integers(0, 14), st.integers(1, 10_000), max_size=8),
       withdrawals=st.dictionaries(st.integers(0, 14), st.integers(1, 5), max_size=8))  # fmt: skip
def test_the_window_is_the_last_ten_buckets_on_the_server_clock(server: RedisServer, db: Any,
                                                                 deposits: dict[int, int],
                                                                 withdrawals: dict[int, int]) -> None:  # fmt: skip
    # Buckets written `back` buckets ago (the server's TIME // ttl/10) count for back <= 9, as
    # the local budget's; older fields are deleted by the next call.
    name = unique()
    budget = brace.RetryBudget(name=name, ratio=1, min_per_second=0, ttl=HOUR, store=server.url,
                               flush_interval=HOUR)  # fmt: skip
    bucket_us = round(HOUR * 1e6) // 10
    now = _server_bucket(db, bucket_us)
    for key, fields in (("d", deposits), ("w", withdrawals)):
        for back, amount in fields.items():
            db.hset(f"brace:rb:{{{name}}}:{key}", str(now - back), amount)
    balance = budget.balance
    # a 6-minute bucket ending between the two reads (rare) moves the window: hypothesis draws again
    assume(_server_bucket(db, bucket_us) == now)
    live_deposits = sum(amount for back, amount in deposits.items() if back <= 9)
    live_withdrawals = sum(amount for back, amount in withdrawals.items() if back <= 9)
    assert balance == (live_deposits - 1000 * live_withdrawals) / 1000
    for key, fields in (("d", deposits), ("w", withdrawals)):
        kept = {int(field) for field in db.hkeys(f"brace:rb:{{{name}}}:{key}")}
        assert kept == {now - back for back in fields if back <= 9}


# -- keys and memory


def test_keys_expire_after_ttl(server: RedisServer, db: Any) -> None:
    name = unique()
    budget = brace.RetryBudget(name=name, ratio=1, min_per_second=0, ttl=0.5, store=server.url)
    budget.deposit()
    assert budget.try_withdraw()
    keys = sorted(db.keys(f"brace:rb:{{{name}}}:*"))
    assert keys == [f"brace:rb:{{{name}}}:{kind}".encode() for kind in "cdw"]
    assert all(0 < db.pttl(key) <= 500 for key in keys)
    wait_until(lambda: not db.keys(f"brace:rb:{{{name}}}:*"))  # nothing left once nothing counts
    assert budget.balance == 0.0  # and the balance is the model's: everything expired
    assert not db.keys(f"brace:rb:{{{name}}}:d") and not db.keys(f"brace:rb:{{{name}}}:w")


def test_an_idle_host_makes_no_round_trip(server: RedisServer, db: Any) -> None:
    budget = brace.RetryBudget(name=unique(), store=server.url, flush_interval=0.01)
    assert budget.balance == 100.0

    def scripts_run() -> int:
        return int(db.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0))

    before = scripts_run()
    time.sleep(0.1)  # ten flush intervals with nothing to send (a window to see nothing happen)
    assert scripts_run() == before
    budget.deposit()
    wait_until(lambda: scripts_run() == before + 1)  # a deposit to send: the flusher sends it


# -- policies and retries


def _always_fails() -> None:
    raise ConnectionError("down")


def test_a_policy_s_retries_are_paid_by_every_host_s_calls(server: RedisServer) -> None:
    name = unique()
    here, there = (brace.RetryBudget(name=name, ratio=0.5, min_per_second=0, ttl=HOUR, store=server.url)
                   for _ in range(2))  # fmt: skip
    succeeds = brace.Policy(retry=brace.Retry(on=ConnectionError, attempts=100, backoff=NO_WAIT, budget=here))
    attempts = 0

    @brace.Policy(retry=brace.Retry(on=ConnectionError, attempts=100, backoff=NO_WAIT, budget=there))
    def fails() -> None:
        nonlocal attempts
        attempts += 1
        _always_fails()

    answer = succeeds(lambda: 42)
    for _ in range(20):  # the compiled success path: each call deposits on this host only
        assert answer() == 42
    here.flush()
    with pytest.raises(brace.RetryBudgetExhausted):
        fails()
    # 21 calls x 0.5 (20 on one host, 1 on the other): 10 retries, then the budget refuses.
    assert attempts == 1 + 10
    with pytest.raises(brace.RetryBudgetExhausted):
        fails()
    assert attempts == 11 + 2  # its deposit and the half token left: one more retry
    assert here.balance == there.balance == 0.0


async def _ticks_while(db: Any, budget: brace.RetryBudget, work: Callable[[], Awaitable[object]]) -> tuple[int, float]:
    """ticks_while_paused, once the loop's client has connected (nothing to take)."""
    assert await budget.try_withdraw_async() is False
    return await ticks_while_paused(db, work)


def test_the_async_retry_loop_never_waits_on_the_socket(server: RedisServer, db: Any) -> None:
    budget = brace.RetryBudget(name=unique(), ratio=1, min_per_second=0, ttl=HOUR, store=server.url)
    retry = brace.Retry(on=ConnectionError, attempts=2, backoff=NO_WAIT, budget=budget)
    failures = [ConnectionError("once")]

    async def flaky() -> str:
        if failures:
            raise failures.pop()
        return "ok"

    answers: list[str] = []

    async def one_call() -> None:  # one failure: its retry withdraws
        answers.append(await retry.call_async(flaky))

    ticked, waited = asyncio.run(_ticks_while(db, budget, one_call))
    assert answers == ["ok"] and budget.store_up
    assert waited >= 0.08  # the withdrawal did wait for the server (under its 0.25 s timeout) ...
    assert ticked >= 5  # ... while the loop kept running
    assert budget.balance == 0.0  # the call's deposit paid the retry, on the server


def test_an_async_hedge_never_waits_on_the_socket(server: RedisServer, db: Any) -> None:
    budget = brace.RetryBudget(name=unique(), ratio=1, min_per_second=0, ttl=HOUR, store=server.url)
    hedge = brace.Hedge(mode="parallel", max_hedged=1, budget=budget)
    events: list[str] = []
    hedge.add_listener(lambda event: events.append(event.kind))

    async def answer() -> str:
        return "ok"

    async def one_call() -> None:  # its deposit pays the parallel copy's token
        assert await hedge.call_async(answer) == "ok"

    ticked, waited = asyncio.run(_ticks_while(db, budget, one_call))
    assert "hedged" in events and waited >= 0.08 and ticked >= 5
    assert budget.balance == 0.0


def test_deposits_allocate_nothing(server: RedisServer) -> None:
    # the success path: budget.deposit() and a compiled Policy's call, with the flusher idle
    budget = brace.RetryBudget(name=unique(), store=server.url, flush_interval=HOUR)
    decorated = brace.Policy(retry=brace.Retry(on=ConnectionError, budget=budget))(lambda: None)
    for call in (budget.deposit, decorated):
        assert blocks_kept(call) <= 2


# -- the server away


@pytest.mark.parametrize("policy", ["local", "open", "closed"])
def test_redis_stopped_mid_run_and_restarted(server: RedisServer, policy: str) -> None:
    budget = brace.RetryBudget(name=unique(), ratio=1, min_per_second=0, ttl=HOUR, store=server.url,
                               on_store_error=policy)  # type: ignore[arg-type]  # fmt: skip
    events: list[str] = []
    budget.add_listener(lambda event: events.append(event.kind))
    for _ in range(5):
        budget.deposit()
    assert [budget.try_withdraw() for _ in range(2)] == [True, True]
    server.stop()
    decided = [budget.try_withdraw() for _ in range(5)]  # no exception reaches the caller
    assert not budget.store_up and events[:1] == ["store_lost"]
    if policy == "local":
        # this host's own budget: its 5 deposits, the 2 shared withdrawals it mirrored
        assert decided == [True, True, True, False, False]
    else:
        assert decided == [policy == "open"] * 5
    assert budget.balance == (0.0 if policy == "local" else 3.0)  # this host's own, while away
    server.start()
    wait_until(lambda: budget.store_up)
    assert "store_back" in events
    # Shared again, on a server that restarted empty: only deposits made from now on count.
    assert budget.try_withdraw() is False
    budget.deposit()
    assert budget.try_withdraw() is True


def test_an_outage_costs_one_failed_round_trip_per_period(server: RedisServer) -> None:
    budget = brace.RetryBudget(name=unique(), store=server.url)
    assert budget.try_withdraw()
    failed_before = budget.store_failures
    server.stop()
    began = time.monotonic()
    withdrawals = 0
    while time.monotonic() - began < 0.5:
        budget.deposit()
        budget.try_withdraw()
        withdrawals += 1
    failed = budget.store_failures - failed_before
    # The first failed withdrawal, then the prober's pings at >= 25, 50, 100, 200 ms (jittered
    # backoff from 50 ms, doubling): at most 1 + 5 in half a second, however many withdrawals.
    assert withdrawals > 1000 and 1 <= failed <= 6


def test_errors_that_are_not_outages_are_logged_and_decided_by_the_policy(
        server: RedisServer, db: Any, caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    name = unique()
    budget = brace.RetryBudget(name=name, ratio=1, min_per_second=0, ttl=HOUR, store=server.url)
    budget.deposit()
    db.set(f"brace:rb:{{{name}}}:d", "not a hash")  # WRONGTYPE for the script
    with caplog.at_level(logging.ERROR, logger="brace"):
        assert budget.try_withdraw() is True  # this host's own budget decided: its deposit
        assert budget.try_withdraw() is False
    assert budget.store_up  # not an outage
    assert len([r for r in caplog.records if "WRONGTYPE" in r.getMessage()]) == 1  # logged once


# -- configuration


def test_configuration_checks(server: RedisServer) -> None:
    url = server.url
    with pytest.raises(ValueError, match="flush_interval is only meaningful"):
        brace.RetryBudget(name="x", flush_interval=1.0)
    with pytest.raises(ValueError, match="on_store_error is only meaningful"):
        brace.RetryBudget(name="x", on_store_error="open")
    with pytest.raises(ValueError, match="on_store_error must be 'local', 'open' or 'closed'"):
        brace.RetryBudget(name="x", store=url, on_store_error="sometimes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="flush_interval must be 1 ms to 1 hour"):
        brace.RetryBudget(name="x", store=url, flush_interval=7200)
    with pytest.raises(TypeError, match="flush_interval"):
        brace.RetryBudget(name="x", store=url, flush_interval="1s")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="needs a name"):
        brace.RetryBudget(store=url)
    with pytest.raises(ValueError, match="without { or }"):
        brace.RetryBudget(name="a{b}", store=url)
    with pytest.raises(ValueError, match="ratio must be"):
        brace.RetryBudget(name="x", store=url, ratio=0)
    import redis.asyncio

    with pytest.raises(TypeError, match="needs a URL or a sync client"):
        brace.RetryBudget(name="x", store=redis.asyncio.Redis(port=1))


def test_every_host_has_the_first_host_s_configuration(server: RedisServer) -> None:
    name = unique()
    first = brace.RetryBudget(name=name, ratio=0.2, ttl=10.0, store=server.url)
    with pytest.raises(ValueError, match=r"ratio \(milli-tokens\) 200 there, 300 here"):
        brace.RetryBudget(name=name, ratio=0.3, ttl=10.0, store=server.url)
    assert brace.RetryBudget(name=name, ratio=0.2, ttl=10.0, store=server.url).balance == first.balance


def test_properties_repr_and_a_client_object(server: RedisServer) -> None:
    given_client = server.client()
    budget = brace.RetryBudget(name="props", ratio=0.25, min_per_second=2, ttl=5.0, store=given_client,
                               flush_interval=0.5, on_store_error="closed")  # fmt: skip
    assert isinstance(budget, brace.RetryBudget) and budget.remote
    assert budget.store is given_client and budget.flush_interval == 0.5 and budget.on_store_error == "closed"
    assert repr(budget).startswith("RetryBudget(name='props', ratio=0.25, min_per_second=2, ttl=5, store='<")
    assert budget.balance == 10.0 and budget.event_kinds == ("exhausted", "store_lost", "store_back")
    assert not brace.RetryBudget().remote
