"""brace's limiter on a Redis store: decisions per second, latency, and round trips per decision.

Starts a redis-server (Debian's package) on a free loopback port, with no persistence, and
times, in one process:

- "RateLimiter.try_acquire (sync)": one decision per call, one after another: decisions/s,
  and the p50 / p99 latency of one call;
- "RateLimiter.try_acquire_async (CONCURRENCY tasks)": tasks deciding at once on one loop's
  asyncio client;
- "KeyedRateLimiter.try_acquire_many (BATCH keys)": batches of keys, pipelined;

and, for each, the round trips per decision the server saw: its EVALSHA calls (INFO
commandstats) divided by the decisions made (plus its SCRIPT LOAD calls, once per server).

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

import redis
import scaling  # its redis_server(), from this directory (sys.path[0] when run as a script)

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


CASES: dict[str, Callable[[str, int], tuple[int, list[float]]]] = {
    "brace RateLimiter.try_acquire (sync)": sync_limiter,
    f"brace RateLimiter.try_acquire_async ({CONCURRENCY} tasks)": async_limiter,
    f"brace KeyedRateLimiter.try_acquire_many ({BATCH} keys, pipelined)": keyed_batches,
}


def run(decisions: int) -> list[dict[str, Any]]:
    results = []
    with redis_server() as url:
        db = redis.Redis.from_url(url)
        for name, case in CASES.items():
            db.config_resetstat()
            db.script_flush()
            began = time.perf_counter()
            made, latencies = case(url, decisions)
            elapsed = time.perf_counter() - began
            stats = db.info("commandstats")
            evalsha = stats.get("cmdstat_evalsha", {}).get("calls", 0)
            loads = stats.get("cmdstat_script|load", {}).get("calls", 0)
            cuts = statistics.quantiles(latencies, n=100)
            results.append({"case": name, "decisions": made, "decisions_per_s": made / elapsed,
                            "p50_us": cuts[49] * 1e6, "p99_us": cuts[98] * 1e6,
                            "round_trips_per_decision": evalsha / made, "script_loads": loads})  # fmt: skip
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
        print(f"{row['case']:<62} {row['decisions_per_s']:>9.0f} decisions/s  p50 {row['p50_us']:7.1f} us  "
              f"p99 {row['p99_us']:7.1f} us  {row['round_trips_per_decision']:.3f} EVALSHA/decision "
              f"(+{row['script_loads']} SCRIPT LOAD)")  # fmt: skip


if __name__ == "__main__":
    main()
