#!/usr/bin/env python3
"""Is a lock held while the guarded function runs? Wall time says.

8 threads each make 20 calls of a function that sleeps 10 ms, through one
shared circuit breaker. A breaker that holds a lock around the user's function
serializes them (8 x 20 x 10 ms = 1.6 s); one that does not takes the same time
as unwrapped calls (20 x 10 ms = 0.2 s). Median of --repeats runs of each.

    python benchmarks/concurrency.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from collections.abc import Callable

import circuitbreaker  # type: ignore[import-untyped]
import pybreaker

import brace

THREADS = 8
CALLS = 20
SLEEP = 0.010


def work() -> None:
    time.sleep(SLEEP)


def wall_time(call: Callable[[], object]) -> float:
    start_together = threading.Barrier(THREADS + 1)

    def worker() -> None:
        start_together.wait()
        for _ in range(CALLS):
            call()

    threads = [threading.Thread(target=worker) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    start_together.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    repeats = parser.parse_args().repeats
    cases: dict[str, Callable[[], object]] = {
        "unwrapped": work,
        "brace @CircuitBreaker": brace.CircuitBreaker(name="shared")(work),
        "pybreaker @CircuitBreaker": pybreaker.CircuitBreaker()(work),
        "circuitbreaker @circuit": circuitbreaker.circuit(work),
    }
    walls: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeats):  # interleaved, so machine noise hits every case alike
        for name, call in cases.items():
            walls[name].append(wall_time(call))
    baseline = statistics.median(walls["unwrapped"])
    print(f"{THREADS} threads x {CALLS} calls of a {SLEEP * 1000:.0f} ms function, one shared breaker; "
          f"median of {repeats} runs")  # fmt: skip
    print(f"{'case':30} {'wall s':>8} {'vs unwrapped':>13}")
    for name, samples in walls.items():
        median = statistics.median(samples)
        print(f"{name:30} {median:8.3f} {median / baseline:12.2f}x")


if __name__ == "__main__":
    main()
