"""brace's CircuitBreaker on a Redis store vs the local-only breaker: the success path's cost.

Starts a redis-server (Debian's package) on a free loopback port, with no persistence, and
times, in one process, a decorated function (`@breaker`) and `breaker.call(fn)` that succeed,
under a local breaker and under a breaker on the Redis store (window="time", as a shared breaker
would run; its background thread flushes every 0.25 s while the loop runs). Both decide in the
compiled breaker: the Redis one only adds a compare of the ticket with its HALF_OPEN's
generation. Repeats are interleaved (local, Redis, local, Redis, ...) and the medians reported,
in ns per call, with the Redis breaker's overhead and the round trips the server saw
(EVALSHA calls: the flushes, none per call).

Run from the repository root: `python benchmarks/redis_breaker.py [--quick] [--json]`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import uuid
from typing import Any, Callable

import redis
import scaling  # its redis_server(), from this directory (sys.path[0] when run as a script)

import brace

CONFIG: dict[str, Any] = dict(window="time", window_size=10, minimum_calls=100)


def _loop(call: Callable[[], object], calls: int) -> float:
    began = time.perf_counter_ns()
    for _ in range(calls):
        call()
    return (time.perf_counter_ns() - began) / calls


def cases(url: str) -> dict[str, tuple[Callable[[], object], Callable[[], object]]]:
    local = brace.CircuitBreaker(name=f"bench-local-{uuid.uuid4().hex[:8]}", **CONFIG)
    shared = brace.CircuitBreaker(name=f"bench-{uuid.uuid4().hex[:8]}", store=url, **CONFIG)

    def work() -> None:
        return None

    local_call, shared_call = local.call, shared.call
    return {
        "decorated call": (local(work), shared(work)),
        "breaker.call(fn)": (lambda: local_call(work), lambda: shared_call(work)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls and repeats (the smoke test)")
    parser.add_argument("--json", action="store_true", help="one JSON list of rows")
    options = parser.parse_args()
    calls, repeats = (20_000, 3) if options.quick else (1_000_000, 15)
    with scaling.redis_server() as base:
        if base is None:
            sys.exit("redis-server is not installed (Debian: apt-get install redis-server)")
        url = f"{base}/0"
        server = redis.Redis.from_url(url)
        rows = []
        for case, (local, shared) in cases(url).items():
            server.config_resetstat()
            began = time.monotonic()
            timings: dict[str, list[float]] = {"local": [], "redis": []}
            for _ in range(repeats):
                timings["local"].append(_loop(local, calls))
                timings["redis"].append(_loop(shared, calls))
            seconds = time.monotonic() - began
            stats = server.info("commandstats").get("cmdstat_evalsha", {"calls": 0})
            local_ns, redis_ns = statistics.median(timings["local"]), statistics.median(timings["redis"])
            rows.append(dict(case=case, calls=calls * repeats, local_ns=round(local_ns, 1), redis_ns=round(redis_ns, 1),
                             overhead_ns=round(redis_ns - local_ns, 1), evalsha=int(stats["calls"]),
                             seconds=round(seconds, 2)))  # fmt: skip
    if options.json:
        print(json.dumps(rows))
        return
    for row in rows:
        print(f"{row['case']:<18} local {row['local_ns']:7.1f} ns/call   redis store {row['redis_ns']:7.1f} ns/call   "
              f"overhead {row['overhead_ns']:+5.1f} ns   ({row['calls']} calls each, {row['evalsha']} EVALSHA in "
              f"{row['seconds']} s: the flushes)")  # fmt: skip


if __name__ == "__main__":
    main()
