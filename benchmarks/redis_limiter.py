"""brace's limiter on a Redis store: decisions per second, latency, and round trips per decision.

Starts a redis-server (Debian's package) on a free loopback port, with no persistence, and
times, in one process:

- "RateLimiter.try_acquire (sync)": one decision per call, one after another: decisions/s,
  and the p50 / p99 latency of one call;
- "RateLimiter.try_acquire_async (CONCURRENCY tasks)": tasks deciding at once on one loop's
  asyncio client;
- "KeyedRateLimiter.try_acquire_many (BATCH keys)": batches of keys, pipelined;
- the peers, in the same run, one decision per call as brace's sync case: `limits`' Redis
  storage with its moving window and its fixed window (`limits.strategies`), and
  throttled-py's GCRA on its Redis store;

and, for each, the round trips per decision: the writes the clients sent (redis-py's
connections, sync and asyncio, counted in this process; a pipeline is one write), divided by
the decisions made; and the commands the server executed per decision (INFO commandstats,
which also counts the commands a script runs). For brace, its EVALSHA calls per decision
too (plus its SCRIPT LOAD calls, once per server).

Each case is a function in CASES taking the server's URL and the number of decisions and
returning the decisions it made and the latencies it measured (seconds per decision, one
per call, or per batch divided by its size): peers can be added as more entries.

Run from the repository root: `python benchmarks/redis_limiter.py [--quick] [--json]`
(--quick: fewer decisions, for the smoke test).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import limits
import redis
import redis.asyncio.connection
import redis.connection
import scaling  # its redis_server(), from this directory (sys.path[0] when run as a script)

import throttled

import brace

HUGE_RATE = 1e9  # every decision admitted: the cost measured is the round trip, not a refusal
CONCURRENCY = 16
BATCH = 1000


@contextmanager
def redis_server() -> Iterator[str]:
    """redis://127.0.0.1:PORT/0 of a redis-server started here (no persistence)."""
    with scaling.redis_server() as url:
        if url is None:
            sys.exit("redis-server is not installed (Debian: apt-get install redis-server)")
        yield f"{url}/0"


def sync_limiter(url: str, decisions: int) -> tuple[int, list[float]]:
    limiter = brace.RateLimiter(name=f"bench-{uuid.uuid4().hex[:8]}", rate=HUGE_RATE, burst=10**6, store=url)
    limiter.try_acquire()  # connected, script loaded
    latencies = []
    for _ in range(decisions - 1):
        began = time.perf_counter()
        limiter.try_acquire()
        latencies.append(time.perf_counter() - began)
    return len(latencies) + 1, latencies


def async_limiter(url: str, decisions: int) -> tuple[int, list[float]]:
    limiter = brace.RateLimiter(name=f"bench-{uuid.uuid4().hex[:8]}", rate=HUGE_RATE, burst=10**6, store=url)
    latencies: list[float] = []

    async def worker(count: int) -> None:
        for _ in range(count):
            began = time.perf_counter()
            await limiter.try_acquire_async()
            latencies.append(time.perf_counter() - began)

    async def main() -> None:
        await limiter.try_acquire_async()
        await asyncio.gather(*(worker((decisions - 1) // CONCURRENCY) for _ in range(CONCURRENCY)))

    asyncio.run(main())
    return len(latencies) + 1, latencies


def keyed_batches(url: str, decisions: int) -> tuple[int, list[float]]:
    keyed = brace.KeyedRateLimiter(name=f"bench-{uuid.uuid4().hex[:8]}", rate=HUGE_RATE, burst=10**6, store=url)
    latencies = []
    for start in range(0, decisions, BATCH):
        keys = list(range(start, start + BATCH))
        began = time.perf_counter()
        keyed.try_acquire_many(keys)
        latencies.extend([(time.perf_counter() - began) / BATCH] * BATCH)
    return len(latencies), latencies


_writes = 0  # the clients' writes to the server: one per round trip


def _counting(send: Callable[..., Any]) -> Callable[..., Any]:
    def counted(*args: Any, **kwargs: Any) -> Any:
        global _writes
        _writes += 1
        return send(*args, **kwargs)

    return counted


for _connection in (redis.connection.AbstractConnection, redis.asyncio.connection.AbstractConnection):
    _connection.send_packed_command = _counting(_connection.send_packed_command)  # type: ignore[method-assign]


def round_trips() -> int:
    """The writes redis-py's clients (sync and asyncio) have sent to a server so far in this
    process: one per round trip (counted from this module's import)."""
    return _writes


def timed(decide: Callable[[], object], decisions: int) -> tuple[int, list[float]]:
    """`decide()` called `decisions` times (the first untimed: connected, scripts loaded)."""
    decide()
    latencies = []
    for _ in range(decisions - 1):
        began = time.perf_counter()
        decide()
        latencies.append(time.perf_counter() - began)
    return len(latencies) + 1, latencies


def limits_window(strategy: type[limits.strategies.RateLimiter]) -> Callable[[str, int], tuple[int, list[float]]]:
    def case(url: str, decisions: int) -> tuple[int, list[float]]:
        limiter = strategy(limits.storage.RedisStorage(url))
        item, key = limits.parse(f"{int(HUGE_RATE)}/second"), uuid.uuid4().hex[:8]
        return timed(lambda: limiter.hit(item, key), decisions)

    return case


def throttled_gcra(url: str, decisions: int) -> tuple[int, list[float]]:
    limiter = throttled.Throttled(key=f"bench-{uuid.uuid4().hex[:8]}", using=throttled.RateLimiterType.GCRA.value,
                                  quota=throttled.per_sec(10**6, burst=10**6),
                                  store=throttled.RedisStore(server=url))  # fmt: skip
    return timed(limiter.limit, decisions)


CASES: dict[str, Callable[[str, int], tuple[int, list[float]]]] = {
    "brace RateLimiter.try_acquire (sync)": sync_limiter,
    f"brace RateLimiter.try_acquire_async ({CONCURRENCY} tasks)": async_limiter,
    f"brace KeyedRateLimiter.try_acquire_many ({BATCH} keys, pipelined)": keyed_batches,
    f"limits {limits.__version__} moving window (RedisStorage)": limits_window(limits.strategies.MovingWindowRateLimiter),
    f"limits {limits.__version__} fixed window (RedisStorage)": limits_window(limits.strategies.FixedWindowRateLimiter),
    f"throttled-py {throttled.__version__} GCRA (RedisStore)": throttled_gcra,
}
# What the benchmark itself sends between cases, not counted as the cases' commands.
_OURS = ("cmdstat_config|resetstat", "cmdstat_script|flush", "cmdstat_info", "cmdstat_flushall")


def run(decisions: int) -> list[dict[str, Any]]:
    results = []
    with redis_server() as url:
        db = redis.Redis.from_url(url)
        for name, case in CASES.items():
            db.flushall()
            db.script_flush()
            db.config_resetstat()
            writes = _writes
            began = time.perf_counter()
            made, latencies = case(url, decisions)
            elapsed = time.perf_counter() - began
            writes = _writes - writes
            stats = db.info("commandstats")
            evalsha = stats.get("cmdstat_evalsha", {}).get("calls", 0)
            loads = stats.get("cmdstat_script|load", {}).get("calls", 0)
            commands = sum(stat["calls"] for command, stat in stats.items() if command not in _OURS)
            cuts = statistics.quantiles(latencies, n=100)
            results.append({"case": name, "decisions": made, "decisions_per_s": made / elapsed,
                            "p50_us": cuts[49] * 1e6, "p99_us": cuts[98] * 1e6,
                            "round_trips_per_decision": writes / made, "commands_per_decision": commands / made,
                            "evalsha_per_decision": evalsha / made if name.startswith("brace") else None,
                            "script_loads": loads})  # fmt: skip
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer decisions (a smoke test)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    options = parser.parse_args()
    results = run(2_000 if options.quick else 20_000)
    if options.json:
        print(json.dumps(results, indent=2))
        return
    for row in results:
        evalsha = "" if row["evalsha_per_decision"] is None else \
            f"  ({row['evalsha_per_decision']:.3f} EVALSHA, +{row['script_loads']} SCRIPT LOAD)"
        print(f"{row['case']:<62} {row['decisions_per_s']:>7.0f}/s  p50 {row['p50_us']:7.1f} us  "
              f"p99 {row['p99_us']:7.1f} us  {row['round_trips_per_decision']:.3f} round trips, "
              f"{row['commands_per_decision']:.2f} commands per decision{evalsha}")  # fmt: skip


if __name__ == "__main__":
    main()
