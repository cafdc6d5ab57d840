"""RateLimiter and KeyedRateLimiter on a real redis-server (store="redis://..."): shared decisions
across processes, weighted and keyed, every entry point deciding on the server, keys that expire,
and the failure policies while the server is stopped and after it is back."""

from __future__ import annotations

import array
import asyncio
import multiprocessing
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import redis
import redis.asyncio
import valkey
import valkey.asyncio

import brace
from brace import _redis
from processes import run_all
from redis_server import RedisServer, server, ticks_while_paused  # noqa: F401 (the fixture)

SLOW = dict(rate=1, per=3600)  # no token comes back while a test runs


@pytest.fixture
def db(server: RedisServer) -> Any:
    return server.client()


def unique(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def wait_until(condition: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the condition did not hold within the wait"
        time.sleep(0.01)


# -- one bucket shared by several processes ("hosts")


def _host(url: str, name: str, attempts: int, barrier: Any, results: Any,
          inherited: brace.RateLimiter | None = None) -> None:  # fmt: skip
    limiter = inherited or brace.RateLimiter(name=name, burst=50, store=url, **SLOW)
    barrier.wait()
    results.put(sum(n for n in (1 + i % 3 for i in range(attempts)) if limiter.try_acquire(n)))


@pytest.mark.parametrize("how", ["spawn", "fork", "fork-inherited"])
def test_hosts_share_one_bucket_exactly(server: RedisServer, how: str) -> None:
    context = multiprocessing.get_context(how.partition("-")[0])
    name, barrier, results = unique(), context.Barrier(4), context.Queue()
    # fork-inherited: the parent's limiter (its client connected here) used by its children as it is
    inherited = brace.RateLimiter(name=name, burst=50, store=server.url, **SLOW) if how == "fork-inherited" else None
    if inherited is not None:
        assert inherited.state().remaining == 50
    processes = [context.Process(target=_host, args=(server.url, name, 40, barrier, results, inherited))
                 for _ in range(4)]  # fmt: skip
    taken = run_all(processes, results, timeout=60)
    # Requests of 1, 2 and 3 tokens from four processes at once: exactly the burst is taken.
    assert sum(taken) == 50


def _hammer(url: str, name: str, seconds: float, results: Any) -> None:
    limiter = brace.RateLimiter(name=name, rate=100, burst=20, store=url)
    admitted, began = 0, time.time()
    while time.time() - began < seconds:
        admitted += limiter.try_acquire()
    results.put((admitted, began, time.time()))


def test_under_real_time_never_more_than_burst_plus_rate_times_elapsed(server: RedisServer) -> None:
    context = multiprocessing.get_context("fork")
    name, results = unique(), context.Queue()
    processes = [context.Process(target=_hammer, args=(server.url, name, 1.0, results)) for _ in range(3)]
    taken = run_all(processes, results, timeout=60)
    admitted = sum(count for count, _, _ in taken)
    elapsed = max(end for _, _, end in taken) - min(began for _, began, _ in taken)
    assert 20 + 100 * 0.5 <= admitted <= 20 + 100 * elapsed + 1


# -- decisions, state, keys


def test_weighted_requests_and_their_errors(server: RedisServer) -> None:
    limiter = brace.RateLimiter(name=unique(), burst=10, store=server.url, **SLOW)
    assert [limiter.try_acquire(4), limiter.try_acquire(4), limiter.try_acquire(4)] == [True, True, False]
    assert limiter.peek(2) and not limiter.peek(3)
    assert limiter.try_acquire(2) and not limiter.try_acquire(1)
    with pytest.raises(ValueError, match="n=11 can never be admitted"):
        limiter.try_acquire(11)
    with pytest.raises(ValueError, match="n must be"):
        limiter.try_acquire(0)
    with pytest.raises(TypeError, match="n must be"):
        limiter.try_acquire(True)


def test_state_and_headers_come_from_the_reply_and_the_key_expires_when_full(server: RedisServer, db: Any) -> None:
    name = unique()
    limiter = brace.RateLimiter(name=name, rate=2, burst=5, store=server.url)
    assert limiter.state() == brace.RateLimitState(5, 5, 0.0, 0.0)
    assert db.exists(f"brace:rl:{{{name}}}") == 0  # a full bucket has no key
    for _ in range(3):
        assert limiter.try_acquire()
    state = limiter.state()
    assert (state.limit, state.remaining) == (5, 2)
    assert 1.0 < state.reset_after <= 1.5 and state.retry_after == 0.0
    assert state.headers() == {"RateLimit-Limit": "5", "RateLimit-Remaining": "2", "RateLimit-Reset": "2"}
    # The key holds the TAT in ns since the epoch and expires when the bucket is full again.
    pttl = db.pttl(f"brace:rl:{{{name}}}")
    assert 1000 < pttl <= 1500
    assert abs(int(db.get(f"brace:rl:{{{name}}}")) / 1e9 - time.time() - state.reset_after) < 1.0
    assert limiter.try_acquire(2) and not limiter.try_acquire()
    empty = limiter.state()
    assert empty.remaining == 0 and 0.0 < empty.retry_after <= 0.5
    assert empty.headers()["Retry-After"] == "1"


def test_a_fast_bucket_s_key_is_gone_once_full_again(server: RedisServer, db: Any) -> None:
    name = unique()
    limiter = brace.RateLimiter(name=name, rate=100, burst=5, store=server.url)
    assert limiter.try_acquire(5)
    assert 0 < db.pttl(f"brace:rl:{{{name}}}") <= 50
    wait_until(lambda: db.exists(f"brace:rl:{{{name}}}") == 0, timeout=2.0)
    assert limiter.state().remaining == 5


def test_the_script_is_sent_again_after_the_server_forgets_it(server: RedisServer, db: Any) -> None:
    limiter = brace.RateLimiter(name=unique(), burst=3, store=server.url, **SLOW)
    assert limiter.try_acquire()
    db.script_flush()
    assert limiter.try_acquire(2) and not limiter.try_acquire()
    stats = db.info("commandstats")
    assert stats["cmdstat_script|load"]["calls"] == 2  # loaded at first, and again after the flush


# -- every entry point decides on the server


def _entries(limiter: brace.RateLimiter) -> dict[str, Any]:
    @limiter
    def decorated() -> int:
        return 1

    @limiter
    async def decorated_async() -> int:
        return 1

    policy = brace.Policy(limiter=limiter)

    @policy
    def by_policy() -> int:
        return 1

    def with_block() -> int:
        with limiter:
            return 1

    async def async_with_block() -> int:
        async with limiter:
            return 1

    def policy_with() -> int:
        with policy:
            return 1

    def try_acquire() -> None:
        if not limiter.try_acquire():
            raise brace.RateLimited(retry_after=0.0, name=limiter.name, requested=1, limit=1)

    return {
        "try_acquire": try_acquire,
        "acquire": lambda: limiter.acquire(max_wait=0),
        "acquire_async": lambda: asyncio.run(limiter.acquire_async(max_wait=0)),
        "call": lambda: limiter.call(lambda: 1),
        "call_async": lambda: asyncio.run(limiter.call_async(lambda: 1)),
        "decorator": decorated,
        "decorator_async": lambda: asyncio.run(decorated_async()),
        "with": with_block,
        "async_with": lambda: asyncio.run(async_with_block()),
        "policy.call": lambda: policy.call(lambda: 1),
        "policy.call_async": lambda: asyncio.run(policy.call_async(lambda: 1)),
        "policy_decorator": by_policy,
        "policy_with": policy_with,
    }


ENTRIES = list(_entries(brace.RateLimiter(rate=1)))


@pytest.mark.parametrize("entry", ENTRIES)
def test_every_entry_point_decides_on_the_server(server: RedisServer, db: Any, entry: str) -> None:
    name = unique()
    limiter = brace.RateLimiter(name=name, burst=1, max_wait=0, store=server.url, **SLOW)
    other = brace.RateLimiter(name=name, burst=1, store=server.url, **SLOW)  # another "host"
    run = _entries(limiter)[entry]
    run()  # admitted: it took the one token on the server ...
    assert db.exists(f"brace:rl:{{{name}}}") == 1 and not other.try_acquire()
    with pytest.raises(brace.RateLimited):
        run()  # ... and refused: the server's bucket is empty
    db.delete(f"brace:rl:{{{name}}}")  # the bucket full again, on the server only
    run()
    assert db.exists(f"brace:rl:{{{name}}}") == 1


def test_async_entry_points_never_block_the_loop(server: RedisServer, db: Any) -> None:
    limiter = brace.RateLimiter(name=unique(), burst=5, store=server.url, **SLOW)

    async def main() -> tuple[int, float]:
        await limiter.acquire_async()  # the loop's client connected
        return await ticks_while_paused(db, limiter.acquire_async)

    ticked, waited = asyncio.run(main())
    assert waited >= 0.08  # the decision did wait for the server (under its 0.25 s timeout) ...
    assert ticked >= 5  # ... while the loop kept running
    assert limiter.store_up and limiter.state().remaining == 3


# -- keyed


def test_keyed_limiter_decides_per_key_with_the_local_identity_rules(server: RedisServer, db: Any) -> None:
    keyed = brace.KeyedRateLimiter(name=unique(), burst=2, store=server.url, **SLOW)
    assert keyed.try_acquire("alice") and keyed.try_acquire("alice".encode())
    assert not keyed.try_acquire("alice")  # a str and its UTF-8 bytes are one key
    assert keyed.try_acquire(-1) and keyed.try_acquire(2**64 - 1) and not keyed.try_acquire(-1)
    assert keyed.try_acquire("bob", 2) and not keyed.try_acquire("bob")
    with pytest.raises(ValueError, match="n=3 can never be admitted"):
        keyed.try_acquire("carol", 3)
    state = keyed.state("bob")
    assert (state.limit, state.remaining) == (2, 0) and state.retry_after > 3000
    assert keyed.state("nobody") == brace.RateLimitState(2, 2, 0.0, 0.0)
    assert keyed.key_name("alice") == keyed.key_name(b"alice") and db.exists(keyed.key_name("alice"))
    assert keyed.metrics().admitted == 5 and keyed.metrics().rejected == 3


def test_keyed_batch_is_pipelined_and_memory_stays_bounded(server: RedisServer, db: Any) -> None:
    keyed = brace.KeyedRateLimiter(name=unique(), rate=2, burst=2, store=server.url)  # one token back in 500 ms
    keys = np.arange(5000, dtype=np.int64)
    db.config_resetstat()
    admitted = keyed.try_acquire_many(keys)
    assert admitted.dtype == np.bool_ and admitted.all()
    assert db.info("commandstats")["cmdstat_evalsha"]["calls"] == 5000
    assert db.dbsize() == 5000
    # Each key: the TAT and a TTL of at most the bucket's depth.
    assert all(0 < ttl <= 500 for ttl in (db.pttl(keyed.key_name(int(k))) for k in keys[:50]))
    assert db.memory_usage(keyed.key_name(0)) < 150
    again = keyed.try_acquire_many(array.array("q", [0, 0, 1]))
    assert list(again) == [True, False, True]
    assert list(keyed.try_acquire_many(["x", b"x", "x"])) == [True, True, False]
    wait_until(lambda: db.dbsize() == 0, timeout=5.0)  # every bucket full again: no key left


def test_keyed_async_paths(server: RedisServer) -> None:
    keyed = brace.KeyedRateLimiter(name=unique(), burst=1, store=server.url, **SLOW)

    async def main() -> tuple[bool, bool, list[bool], int]:
        first = await keyed.try_acquire_async("k")
        second = await keyed.try_acquire_async("k")
        batch = list(await keyed.try_acquire_many_async(["k", "m", "m"]))
        return first, second, batch, (await keyed.state_async("m")).remaining

    assert asyncio.run(main()) == (True, False, [False, True, False], 0)


# -- failure policies


def test_local_share_while_the_server_is_away_then_the_shared_bucket_again(server: RedisServer) -> None:
    name, events = unique(), []
    limiter = brace.RateLimiter(name=name, burst=8, store=server.url, local_share=0.5, **SLOW)
    limiter.add_listener(events.append)
    assert limiter.try_acquire(4)  # 4 of 8 left on the server
    failed_before = limiter.store_failures
    server.stop()
    began = time.monotonic()
    # The local share (rate and burst x 0.5) starts no fuller than the shared bucket was: 2 tokens.
    decisions = [limiter.try_acquire() for _ in range(2000)]
    assert sum(decisions) == 2 and not limiter.store_up
    assert [event.kind for event in events] == ["store_lost"]
    # Two thousand decisions, not two thousand failed round trips: the first, and the prober's.
    time.sleep(0.3)
    assert 1 <= limiter.store_failures - failed_before <= 1 + 4  # the prober waits >= 25, 50, 100, 200 ms...
    assert time.monotonic() - began < 2.0
    server.start()  # an empty server: the shared bucket's state is lost
    wait_until(lambda: [event.kind for event in events] == ["store_lost", "store_back"])
    # Back on the store: the local limiter's debt is charged to it: its share of the shared
    # debt when the store was lost (2 of 4) and the 2 it admitted. (Two hosts of share 1/2
    # would charge the 4 the empty server lost, and their 2 + 2.)
    assert sum(limiter.try_acquire() for _ in range(10)) == 4
    assert limiter.store_up
    other = brace.RateLimiter(name=name, burst=8, store=server.url, **SLOW)
    assert other.state().remaining == 0


@pytest.mark.parametrize("restart", [True, False])
def test_no_burst_above_the_limit_across_an_outage(server: RedisServer, db: Any, restart: bool) -> None:
    """One host holding the whole quota (local_share=1): over an outage and back, whether the server
    comes back empty (restarted) or with its state (a partition), exactly the burst is admitted."""
    name = unique()
    limiter = brace.RateLimiter(name=name, burst=8, store=server.url, **SLOW)
    admitted = sum(limiter.try_acquire() for _ in range(3))
    if restart:
        server.stop()
    else:  # the client cannot reach the server, which keeps its state
        db.execute_command("CLIENT", "PAUSE", 400, "ALL")
    admitted += sum(limiter.try_acquire() for _ in range(20))
    assert not limiter.store_up
    if restart:
        server.start()
    wait_until(lambda: limiter._redis.up)
    admitted += sum(limiter.try_acquire() for _ in range(20))
    assert admitted == 8 and limiter.store_up


def test_an_outage_costs_one_failed_round_trip_per_period(server: RedisServer) -> None:
    limiter = brace.RateLimiter(name=unique(), burst=1000, store=server.url, **SLOW)
    assert limiter.try_acquire()
    failed_before = limiter.store_failures
    server.stop()
    began = time.monotonic()
    calls = 0
    while time.monotonic() - began < 0.5:
        limiter.try_acquire()
        calls += 1
    failed = limiter.store_failures - failed_before
    # The first failed call, then the prober's pings at >= 25, 50, 100, 200 ms (jittered
    # backoff from 50 ms, doubling): at most 1 + 5 in half a second, however many calls.
    assert calls > 1000 and 1 <= failed <= 6


def test_fail_open_admits_and_fail_closed_refuses_with_store_unavailable(server: RedisServer) -> None:
    url = f"redis://:{'sekrit'}@127.0.0.1:{server.port}/0"
    server_up = brace.RateLimiter(name=unique(), burst=1, store=server.url, **SLOW)
    opened = brace.RateLimiter(name=unique(), burst=1, store=server.url, on_store_error="open", **SLOW)
    closed = brace.RateLimiter(name=unique(), burst=1, store=server.url, on_store_error="closed", **SLOW)
    assert opened.try_acquire() and not opened.try_acquire()
    server.stop()
    assert all(opened.try_acquire() for _ in range(100))
    assert opened.state().remaining == 1
    for attempt in range(3):
        with pytest.raises(brace.StoreUnavailable) as refused:
            closed.try_acquire()
        assert isinstance(refused.value, brace.Rejected)
        assert refused.value.store == server.url and refused.value.kind == "RateLimiter"
        assert isinstance(refused.value.__cause__, redis.ConnectionError)
    with pytest.raises(brace.StoreUnavailable):
        closed.call(lambda: 1)
    with pytest.raises(brace.StoreUnavailable):
        asyncio.run(closed.acquire_async())
    assert _redis.redact(url) == f"redis://:***@127.0.0.1:{server.port}/0"
    assert server_up.try_acquire()  # the default, the local share


def test_the_async_path_follows_the_policy_too(server: RedisServer) -> None:
    local = brace.RateLimiter(name=unique(), burst=2, store=server.url, **SLOW)
    closed = brace.RateLimiter(name=unique(), burst=2, store=server.url, on_store_error="closed", **SLOW)
    server.stop()

    async def main() -> list[bool]:
        taken = []
        for _ in range(3):
            try:
                await local.acquire_async(max_wait=0)
                taken.append(True)
            except brace.RateLimited:
                taken.append(False)
        with pytest.raises(brace.StoreUnavailable):
            async with closed:
                pass
        return taken

    assert asyncio.run(main()) == [True, True, False]


def test_an_asyncio_client_is_probed_from_its_loop(server: RedisServer) -> None:
    async def main() -> tuple[list[bool], list[bool], bool]:
        limiter = brace.RateLimiter(name=unique(), burst=4, store=redis.asyncio.Redis(port=server.port,
                                    socket_timeout=0.25), **SLOW)  # fmt: skip
        assert await limiter.try_acquire_async()
        server.stop()
        during = [await limiter.try_acquire_async() for _ in range(5)]  # the local share: 3 left
        server.start()
        deadline = time.monotonic() + 10
        while not limiter.store_failures or not limiter._redis.up:  # a task on this loop pings
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        after = [await limiter.try_acquire_async() for _ in range(3)]  # charged with the 4 taken
        return during, after, limiter.store_up

    assert asyncio.run(main()) == ([True, True, True, False, False], [False, False, False], True)


def test_keyed_fallback_and_return(server: RedisServer, db: Any) -> None:
    keyed = brace.KeyedRateLimiter(name=unique(), burst=4, store=server.url, local_share=0.5, **SLOW)
    assert keyed.try_acquire("a")
    server.stop()
    # The local table holds half of each key's burst; no exception reaches the caller.
    assert [keyed.try_acquire("a") for _ in range(3)] == [True, True, False]
    assert list(keyed.try_acquire_many(["b", "b", "b"])) == [True, True, False]
    server.start()
    wait_until(lambda: keyed._redis.up)
    # Back: each key's local debt is charged to the (empty) server first.
    assert [keyed.try_acquire("a") for _ in range(3)] == [True, True, False]
    assert keyed.store_up and db.exists(keyed.key_name("a"))
    closed = brace.KeyedRateLimiter(name=unique(), burst=4, store=server.url, on_store_error="closed", **SLOW)
    server.stop()
    with pytest.raises(brace.StoreUnavailable):
        closed.try_acquire("a")


def test_errors_that_are_not_outages_reach_the_caller_as_store_error(server: RedisServer, db: Any) -> None:
    name = unique()
    db.lpush(f"brace:rl:{{{name}}}", "not a bucket")
    limiter = brace.RateLimiter(name=name, store=server.url, **SLOW)
    with pytest.raises(brace.StoreError, match="WRONGTYPE") as raised:
        limiter.try_acquire()
    assert isinstance(raised.value.__cause__, redis.ResponseError) and limiter.store_up
    db.config_set("requirepass", "right")
    wrong = brace.RateLimiter(name=unique(), store=f"redis://:sekrit@127.0.0.1:{server.port}/0", **SLOW)
    with pytest.raises(brace.StoreError) as refused:
        wrong.try_acquire()
    assert "sekrit" not in str(refused.value) and "***" in refused.value.store
    assert isinstance(refused.value.__cause__, redis.AuthenticationError) and wrong.store_up


# -- client objects


def test_client_objects_as_the_store(server: RedisServer) -> None:
    name = unique()
    sync = redis.Redis(port=server.port)
    valkey_client = valkey.Valkey(port=server.port)
    by_redis = brace.RateLimiter(name=name, burst=4, store=sync, **SLOW)
    by_valkey = brace.RateLimiter(name=name, burst=4, store=valkey_client, **SLOW)
    by_socket = brace.RateLimiter(name=name, burst=4, store=f"unix://{server.directory}/redis.sock?db=0", **SLOW)
    assert by_redis.store is sync
    assert by_redis.try_acquire() and by_valkey.try_acquire(2) and by_socket.try_acquire()
    assert not by_redis.try_acquire() and by_socket.store_up

    async def main() -> bool:
        on_loop = brace.RateLimiter(name=name, burst=4, store=redis.asyncio.Redis(port=server.port), **SLOW)
        with pytest.raises(brace.StoreError, match="sync call needs a sync client"):
            on_loop.try_acquire()
        from_thread = await by_redis.try_acquire_async()  # a sync client serves async callers from a thread
        on_valkey_loop = brace.RateLimiter(name=name, burst=4, store=valkey.asyncio.Valkey(port=server.port), **SLOW)
        return from_thread or await on_loop.try_acquire_async() or await on_valkey_loop.try_acquire_async()

    assert asyncio.run(main()) is False


def test_a_valkey_server_when_installed(tmp_path: Path) -> None:
    binary = shutil.which("valkey-server")
    if binary is None:
        pytest.skip("no valkey-server binary (Debian bookworm has no valkey package); the valkey client is "
                    "tested against redis-server")  # fmt: skip
    running = RedisServer(binary, tmp_path)
    running.start()
    try:
        limiter = brace.RateLimiter(name=unique(), burst=2, store=running.url, **SLOW)
        assert [limiter.try_acquire() for _ in range(3)] == [True, True, False]
    finally:
        running.stop()


# -- configuration


def test_construction_errors_name_their_parameter(server: RedisServer) -> None:
    for url in ("http://127.0.0.1/", "redis://127.0.0.1:port/0", "redis://127.0.0.1/db", "unix://", "unix:///"):
        with pytest.raises(ValueError, match="store"):
            brace.RateLimiter(name="x", rate=1, store=url)
    with pytest.raises(TypeError, match="store"):
        brace.RateLimiter(name="x", rate=1, store=object())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="on_store_error"):
        brace.RateLimiter(name="x", rate=1, store=server.url, on_store_error="maybe")  # type: ignore[arg-type]
    for share in (0, -0.5, 1.5, float("nan")):
        with pytest.raises(ValueError, match="local_share"):
            brace.RateLimiter(name="x", rate=1, store=server.url, local_share=share)
    with pytest.raises(ValueError, match="local_share"):
        brace.RateLimiter(name="x", rate=1, store=server.url, on_store_error="open", local_share=0.5)
    for kind, extra in ((brace.RateLimiter, {}), (brace.KeyedRateLimiter, {"max_keys": 4})):
        with pytest.raises(ValueError, match="on_store_error is only meaningful with a Redis store"):
            kind(name="x", rate=1, on_store_error="local", **extra)
        with pytest.raises(ValueError, match="local_share is only meaningful with a Redis store"):
            kind(name="x", rate=1, store="shm://nowhere", local_share=0.5, **extra)
        with pytest.raises(ValueError, match="needs a name="):
            kind(rate=1, store=server.url)
        with pytest.raises(ValueError, match="without { or }"):
            kind(name="a{b}", rate=1, store=server.url)
    with pytest.raises(ValueError, match="2\\*\\*52 ns"):
        brace.RateLimiter(name="x", rate=1, per=3600, burst=2000, store=server.url)
    with pytest.raises(TypeError, match="needs max_keys="):
        brace.KeyedRateLimiter(name="x", rate=1)
    with pytest.raises(ValueError, match="shared by every host"):
        brace.RateLimiter(name="x", rate=1, store=server.url).reconfigure(rate=2)
    assert repr(brace.RateLimiter(name="x", rate=1, store="redis://:pw@127.0.0.1:1/0")).count("***") == 1
