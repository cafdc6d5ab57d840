"""brace's RetryBudget on a Redis store vs the local budget: a deposit's cost, a withdrawal's latency.

Starts a redis-server (Debian's package) on a free loopback port, with no persistence, and
measures, in one process:

- deposits (every call's cost, the success path): `budget.deposit()` and a compiled
  `Policy(retry=Retry(budget=...))`'s decorated function that succeeds, under a local budget
  and under a budget on the Redis store, repeats interleaved (local, Redis, local, ...), the
  medians in ns per call, with the EVALSHA calls the server saw meanwhile (the flusher's
  sends, every 0.25 s: none per call);
- withdrawals (a retry's cost, the rare path): `try_withdraw()` and `await
  try_withdraw_async()` one after another, their p50 / p99 latency, beside the local
  budget's, and the round trips per withdrawal: the writes redis-py's connections sent
  (counted in this process), divided by the withdrawals made.

Run from the repository root: `python benchmarks/redis_budget.py [--quick] [--json]`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

import redis
import redis.asyncio.connection
import redis.connection
import scaling  # its redis_server(), from this directory (sys.path[0] when run as a script)
from redis_limiter import round_trips  # its count of the clients' writes (importing it starts the count)

import brace

PLENTY: dict[str, Any] = dict(ratio=1000.0, min_per_second=10**6, ttl=3600.0)  # every withdrawal granted



def _budgets(url: str) -> tuple[brace.RetryBudget, brace.RetryBudget]:
    tag = uuid.uuid4().hex[:8]
    return brace.RetryBudget(name=f"bench-local-{tag}", **PLENTY), \
        brace.RetryBudget(name=f"bench-{tag}", store=url, **PLENTY)  # fmt: skip


def _loop(call: Callable[[], object], calls: int) -> float:
    began = time.perf_counter_ns()
    for _ in range(calls):
        call()
    return (time.perf_counter_ns() - began) / calls


def deposits(url: str, db: Any, calls: int, repeats: int) -> list[dict[str, Any]]:
    local, shared = _budgets(url)

    def work() -> None:
        return None

    def decorated(budget: brace.RetryBudget) -> Callable[[], object]:
        return brace.Policy(retry=brace.Retry(on=ConnectionError, budget=budget))(work)

    rows = []
    for case, (local_call, shared_call) in {
        "budget.deposit()": (local.deposit, shared.deposit),
        "Policy(retry=Retry(budget=...)) call": (decorated(local), decorated(shared)),
    }.items():
        db.config_resetstat()
        began = time.monotonic()
        timings: dict[str, list[float]] = {"local": [], "redis": []}
        for _ in range(repeats):
            timings["local"].append(_loop(local_call, calls))
            timings["redis"].append(_loop(shared_call, calls))
        seconds = time.monotonic() - began
        evalsha = int(db.info("commandstats").get("cmdstat_evalsha", {"calls": 0})["calls"])
        local_ns, redis_ns = statistics.median(timings["local"]), statistics.median(timings["redis"])
        rows.append(dict(case=case, calls=calls * repeats, local_ns=round(local_ns, 1), redis_ns=round(redis_ns, 1),
                         overhead_ns=round(redis_ns - local_ns, 1), evalsha=evalsha, seconds=round(seconds, 2)))  # fmt: skip
    return rows


def _latencies(withdraw: Callable[[], bool], count: int) -> list[float]:
    latencies = []
    for _ in range(count):
        began = time.perf_counter()
        assert withdraw()
        latencies.append(time.perf_counter() - began)
    return latencies


async def _latencies_async(budget: brace.RetryBudget, count: int) -> list[float]:
    await budget.try_withdraw_async()  # this loop's client connected
    latencies = []
    for _ in range(count):
        began = time.perf_counter()
        assert await budget.try_withdraw_async()
        latencies.append(time.perf_counter() - began)
    return latencies


def withdrawals(url: str, db: Any, count: int) -> list[dict[str, Any]]:
    local, shared = _budgets(url)
    shared.try_withdraw()  # connected, the script loaded
    rows = []
    cases: dict[str, Callable[[], list[float]]] = {
        "local try_withdraw()": lambda: _latencies(local.try_withdraw, count),
        "redis try_withdraw()": lambda: _latencies(shared.try_withdraw, count),
        "redis await try_withdraw_async()": lambda: asyncio.run(_latencies_async(shared, count)),
    }
    for case, measure in cases.items():
        db.config_resetstat()
        writes = round_trips()
        latencies = measure()
        writes = round_trips() - writes
        evalsha = int(db.info("commandstats").get("cmdstat_evalsha", {"calls": 0})["calls"])
        cuts = statistics.quantiles(latencies, n=100)
        made = len(latencies) + (1 if case.endswith("async()") else 0)  # the async case's connecting one
        rows.append(dict(case=case, withdrawals=made, p50_us=round(cuts[49] * 1e6, 2), p99_us=round(cuts[98] * 1e6, 2),
                         round_trips_per_withdrawal=round(writes / made, 4),
                         evalsha_per_withdrawal=round(evalsha / made, 4)))  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls and repeats (the smoke test)")
    parser.add_argument("--json", action="store_true", help="one JSON object: the deposit and withdrawal rows")
    options = parser.parse_args()
    calls, repeats, count = (20_000, 3, 2_000) if options.quick else (1_000_000, 15, 20_000)
    with scaling.redis_server() as base:
        if base is None:
            sys.exit("redis-server is not installed (Debian: apt-get install redis-server)")
        url = f"{base}/0"
        db = redis.Redis.from_url(url)
        report = {"deposits": deposits(url, db, calls, repeats), "withdrawals": withdrawals(url, db, count)}
    if options.json:
        print(json.dumps(report))
        return
    for row in report["deposits"]:
        print(f"{row['case']:<38} local {row['local_ns']:6.1f} ns/call   redis store {row['redis_ns']:6.1f} ns/call   "
              f"overhead {row['overhead_ns']:+5.1f} ns   ({row['calls']} calls each, {row['evalsha']} EVALSHA in "
              f"{row['seconds']} s: the flushes)")  # fmt: skip
    for row in report["withdrawals"]:
        print(f"{row['case']:<38} p50 {row['p50_us']:7.2f} us   p99 {row['p99_us']:7.2f} us   "
              f"{row['round_trips_per_withdrawal']:.3f} round trips, {row['evalsha_per_withdrawal']:.3f} EVALSHA "
              f"per withdrawal ({row['withdrawals']})")  # fmt: skip


if __name__ == "__main__":
    main()
