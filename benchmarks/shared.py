"""A shared limiter (store="shm://REGION") against a local one: ns per decision.

In one process, the median ns of one `try_acquire()` over REPEAT samples of
CALLS calls each, admitted (a limiter that admits every call) and rejected
(one drained for an hour), local and shared; the shared one decides on a
brc_gcra_t in the mapping instead of the one inside the object, through the
same pointer, so the difference is the memory it lives in. Then PROCESSES
processes (spawned) each calling try_acquire CALLS times at once, on one
shared limiter (one cache line bounced between the cores) and on a local
limiter each: the median ns per call each process saw. Last, a Bulkhead's
`with bh: pass` ("with": take and give back a permit, a lease word's two CASes
when shared) and a full one's try_acquire ("full") (which sweeps for dead holders at most
once per 10 ms), local and shared.

Run from the repository root: `python benchmarks/shared.py [--quick]`
(--quick: fewer samples, for the smoke test).
"""

from __future__ import annotations

import argparse
import itertools
import multiprocessing
import os
import statistics
import time
import uuid
from typing import Any

import brace

HUGE_RATE = 1e9  # far above what a Python loop reaches: every call admitted
PROCESSES = 2


def _limiters(region: str | None) -> tuple[brace.RateLimiter, brace.RateLimiter]:
    store = None if region is None else f"shm://{region}"
    admitting = brace.RateLimiter(rate=HUGE_RATE, burst=10**6, name="admitting", store=store)
    drained = brace.RateLimiter(rate=1, per=3600.0, burst=1, name="drained", store=store)
    drained.try_acquire()
    if not admitting.try_acquire() or drained.try_acquire():
        raise RuntimeError("the limiters do not admit or refuse as the benchmark needs")
    return admitting, drained


def _sample(limiter: brace.RateLimiter | brace.Bulkhead, calls: int) -> float:
    try_acquire = limiter.try_acquire
    start = time.perf_counter_ns()
    for _ in itertools.repeat(None, calls):
        try_acquire()
    return (time.perf_counter_ns() - start) / calls


def ns_per_call(limiters: list[brace.RateLimiter], calls: int, repeat: int) -> list[float]:
    """The median ns per call of each limiter, their samples interleaved (after one to warm up)."""
    samples: list[list[float]] = [[] for _ in limiters]
    for round_ in range(repeat + 1):
        for limiter, kept in zip(limiters, samples):
            measured = _sample(limiter, calls)
            if round_:
                kept.append(measured)
    return [statistics.median(kept) for kept in samples]


def _contend(region: str | None, calls: int, repeat: int, barrier: Any, results: Any) -> None:
    admitting, _ = _limiters(region)
    barrier.wait()
    results.put(ns_per_call([admitting], calls, repeat)[0])


def contended(region: str | None, calls: int, repeat: int) -> float:
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(PROCESSES), context.Queue()
    processes = [context.Process(target=_contend, args=(region, calls, repeat, barrier, results))
                 for _ in range(PROCESSES)]  # fmt: skip
    for process in processes:
        process.start()
    seen = [results.get(timeout=300) for _ in processes]
    for process in processes:
        process.join()
    return statistics.median(seen)


def _bulkheads(region: str | None) -> tuple[brace.Bulkhead, brace.Bulkhead]:
    store = None if region is None else f"shm://{region}"
    free = brace.Bulkhead(max_concurrent=64, name="free", store=store)
    full = brace.Bulkhead(max_concurrent=64, name="full", store=store)
    while full.try_acquire():
        pass
    return free, full


def _sample_with(bulkhead: brace.Bulkhead, calls: int) -> float:
    start = time.perf_counter_ns()
    for _ in itertools.repeat(None, calls):
        with bulkhead:
            pass
    return (time.perf_counter_ns() - start) / calls


def bulkhead_ns(local: brace.Bulkhead, shared: brace.Bulkhead, calls: int, repeat: int, enter: bool) -> list[float]:
    """The median ns per `with` (enter) or try_acquire of each, samples interleaved (one to warm up)."""
    samples: list[list[float]] = [[], []]
    for round_ in range(repeat + 1):
        for bulkhead, kept in zip((local, shared), samples):
            measured = _sample_with(bulkhead, calls) if enter else _sample(bulkhead, calls)
            if round_:
                kept.append(measured)
    return [statistics.median(kept) for kept in samples]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer samples (a smoke test)")
    args = parser.parse_args()
    calls, repeat = (10_000, 3) if args.quick else (200_000, 15)
    region = f"brace-bench-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        local, shared = _limiters(None), _limiters(region)
        print("RateLimiter.try_acquire(), one process (ns per call, median)")
        for index, case in enumerate(("admitted", "rejected")):
            local_ns, shared_ns = ns_per_call([local[index], shared[index]], calls, repeat)
            print(f"  {case:<9} local {local_ns:6.1f}   shared {shared_ns:6.1f}   "
                  f"shared - local {shared_ns - local_ns:+5.1f}")  # fmt: skip
        print(f"RateLimiter.try_acquire(), {PROCESSES} processes at once (ns per call, median)")
        local_ns = contended(None, calls, repeat)
        shared_ns = contended(region, calls, repeat)
        print(f"  admitted  local {local_ns:6.1f}   shared {shared_ns:6.1f}   "
              f"shared - local {shared_ns - local_ns:+5.1f}")  # fmt: skip
        local_bh, shared_bh = _bulkheads(None), _bulkheads(region)
        print("Bulkhead, one process (ns per call, median)")
        for index, case in enumerate(("with", "full")):
            local_ns, shared_ns = bulkhead_ns(local_bh[index], shared_bh[index], calls, repeat, index == 0)
            print(f"  {case:<9} local {local_ns:6.1f}   shared {shared_ns:6.1f}   "
                  f"shared - local {shared_ns - local_ns:+5.1f}")  # fmt: skip
    finally:
        brace.shm.unlink(region)


if __name__ == "__main__":
    main()
