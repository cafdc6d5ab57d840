"""Many processes on one limiter: decisions per second in all, and exactness, brace against peers.

For 1, 2 and 4 processes (forked, as pyrate-limiter's setup needs) deciding at once on one
limiter for DURATION seconds, each as fast as it can: the decisions per second of all the
processes together, and the exactness: the tokens admitted against the most the limiter may
admit in the elapsed time (from the first process's first decision to the last one's last),
burst + rate x elapsed for a bucket (brace), BURST x ceil(elapsed / 1 s) for a window of
BURST a second (the peers). Every limiter admits RATE = BURST a second, far below the
demand, so that it decides every call (a row whose demand was below the bound says so).
The median of REPEAT runs per case and process count.

- brace `RateLimiter(store="shm://REGION")`: a GCRA bucket in shared memory, one CAS;
- brace `KeyedRateLimiter`: the hook for a keyed limiter in shared memory (issue 13): run
  when this build's KeyedRateLimiter accepts a shm:// store, reported as skipped until then;
- pyrate-limiter `MultiprocessBucket`, its documented multiprocessing setup: the bucket made
  once with `MultiprocessBucket.init(rates)` (a Manager's ListProxy under a multiprocessing
  RLock), each process's limiter made from it by `limiter_factory.init_global_limiter`;
- limits `MovingWindowRateLimiter` over `RedisStorage`, against a redis-server started here on
  a free loopback port (skipped, with the reason, when there is no redis-server binary).

Run from the repository root: `python benchmarks/scaling.py [--quick] [--json]`
(--quick: short runs, for the smoke test; --json: the report as JSON).
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import shutil
import socket
import statistics
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import brace

RATE = 1000  # tokens a second
BURST = 1000
PROCESSES = (1, 2, 4)
CHUNK = 64  # brace's decisions between two looks at the clock (a peer's decision costs more than a look: 1)
SECOND = 1_000_000_000

Decide = Callable[[], bool]


# -- the limiters, each made in the process that decides on it (names: CASES below)

def _brace(region: str, slot: str) -> Decide:
    limiter = brace.RateLimiter(rate=RATE, burst=BURST, name=slot, store=f"shm://{region}")
    return limiter.try_acquire


def _brace_keyed(region: str, slot: str) -> Decide:
    # The hook: a keyed table in shared memory, every process deciding on one key's bucket.
    keyed = brace.KeyedRateLimiter(rate=RATE, burst=BURST, max_keys=1024, name=slot,
                                   store=f"shm://{region}")  # fmt: skip
    return lambda: bool(keyed.try_acquire("one-key"))


def _pyrate(bucket: Any) -> Decide:
    from pyrate_limiter import limiter_factory

    limiter_factory.init_global_limiter(bucket)
    limiter = limiter_factory.LIMITER
    assert limiter is not None
    return lambda: bool(limiter.try_acquire("bench", blocking=False))


def _limits(url: str, key: str) -> Decide:
    from limits import RateLimitItemPerSecond
    from limits.storage import RedisStorage
    from limits.strategies import MovingWindowRateLimiter

    limiter, item = MovingWindowRateLimiter(RedisStorage(url)), RateLimitItemPerSecond(BURST)
    return lambda: limiter.hit(item, key)


MAKERS: dict[str, Callable[..., Decide]] = {"brace": _brace, "brace-keyed": _brace_keyed, "pyrate": _pyrate,
                                            "limits": _limits}  # fmt: skip


def _decide(maker: str, args: tuple[Any, ...], duration_ns: int, barrier: Any, results: Any) -> None:
    """One process: make the limiter, wait for the others, decide for duration_ns; put the counts."""
    try:
        decide = MAKERS[maker](*args)
    except Exception as error:  # a case this build or setup cannot run: every process says why
        barrier.abort()
        results.put(("error", f"{type(error).__name__}: {error}"))
        return
    try:
        barrier.wait()
    except threading.BrokenBarrierError:
        results.put(("error", "another process could not make its limiter"))
        return
    decisions = admitted = 0
    chunk = CHUNK if maker.startswith("brace") else 1
    first = time.monotonic_ns()
    deadline = first + duration_ns
    while True:
        for _ in range(chunk):
            admitted += decide()
        decisions += chunk
        if time.monotonic_ns() >= deadline:
            break
    results.put(("ok", (os.getpid(), first, time.monotonic_ns(), decisions, admitted)))


def run(maker: str, args: tuple[Any, ...], processes: int, duration: float) -> dict[str, Any]:
    """One run of `processes` processes on one limiter: decisions/s in all, admitted, allowed."""
    window = maker in ("pyrate", "limits")
    context = multiprocessing.get_context("fork")
    barrier, results = context.Barrier(processes), context.Queue()
    workers = [context.Process(target=_decide, args=(maker, args, int(duration * SECOND), barrier, results))
               for _ in range(processes)]  # fmt: skip
    for worker in workers:
        worker.start()
    answers = [results.get(timeout=300) for _ in workers]
    for worker in workers:
        worker.join()
    errors = [detail for kind, detail in answers if kind == "error"]
    if errors:
        raise RuntimeError(errors[0])
    counts = [detail for _, detail in answers]
    elapsed = (max(last for _, _, last, _, _ in counts) - min(first for _, first, _, _, _ in counts)) / SECOND
    decisions, admitted = sum(c[3] for c in counts), sum(c[4] for c in counts)
    allowed = BURST * math.ceil(elapsed) if window else BURST + math.floor(RATE * elapsed)
    return {"decisions_per_s": decisions / elapsed, "decisions": decisions, "admitted": admitted, "allowed": allowed,
            "exactness": admitted / allowed, "elapsed_s": elapsed}  # fmt: skip


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def redis_server() -> Iterator[str | None]:
    """redis://127.0.0.1:PORT of a redis-server started here (no persistence), or None when there is none."""
    binary = shutil.which("redis-server")
    if binary is None:
        yield None
        return
    port = _free_port()
    server = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError(f"redis-server did not listen on 127.0.0.1:{port}") from None
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=30)


def cases(region: str, redis_url: str | None) -> Iterator[tuple[str, Callable[[int], tuple[str, tuple[Any, ...]]] | str]]:
    """(case name, a function of the process count giving (maker, args) for a fresh limiter, or why it is skipped)."""
    yield 'brace RateLimiter(store="shm://")', lambda n: ("brace", (region, f"scaling-{n}-{uuid.uuid4().hex[:6]}"))
    yield 'brace KeyedRateLimiter(store="shm://")', lambda n: ("brace-keyed", (region, f"keyed-{n}-{uuid.uuid4().hex[:6]}"))
    yield "pyrate-limiter MultiprocessBucket", _pyrate_bucket
    if redis_url is None:
        yield "limits MovingWindow + RedisStorage", "skipped: no redis-server binary on PATH (apt-get install redis-server)"
    else:
        yield "limits MovingWindow + RedisStorage", lambda n: ("limits", (redis_url, f"scaling-{n}-{uuid.uuid4().hex}"))


def _pyrate_bucket(processes: int) -> tuple[str, tuple[Any, ...]]:
    from pyrate_limiter import Duration, MultiprocessBucket, Rate

    return "pyrate", (MultiprocessBucket.init([Rate(BURST, Duration.SECOND)]),)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short runs, one each (a smoke test)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args()
    # 2.5 s: the window limiters' third second starts within the run, so their bound can be met
    duration, repeat = (0.5, 1) if args.quick else (2.5, 3)
    region = f"brace-scaling-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    report: dict[str, Any] = {"rate": RATE, "burst": BURST, "duration_s": duration, "repeat": repeat,
                              "results": [], "skipped": {}}  # fmt: skip
    try:
        with redis_server() as redis_url:
            for name, make in cases(region, redis_url):
                if isinstance(make, str):
                    report["skipped"][name] = make
                    continue
                try:
                    for processes in PROCESSES:
                        runs = [run(*make(processes), processes, duration) for _ in range(repeat)]
                        report["results"].append({"case": name, "processes": processes, **{
                            key: statistics.median(r[key] for r in runs) for key in runs[0]}})  # fmt: skip
                except RuntimeError as error:
                    report["skipped"][name] = f"skipped: {error}"
    finally:
        brace.shm.unlink(region)
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"One limiter, {RATE}/s with bursts of {BURST}, N processes deciding at once for {duration} s "
          f"(median of {repeat}); allowed: burst + rate x elapsed (bucket), {BURST} x ceil(elapsed) (window)")  # fmt: skip
    print(f"{'case':<40} {'procs':>5} {'decisions/s':>13} {'admitted':>9} {'allowed':>9} {'exactness':>9}")
    for row in report["results"]:
        print(f"{row['case']:<40} {row['processes']:>5} {row['decisions_per_s']:>13,.0f} {row['admitted']:>9.0f} "
              f"{row['allowed']:>9.0f} {row['exactness']:>9.2%}"
              + ("  (demand below the bound)" if row["decisions"] < row["allowed"] else ""))  # fmt: skip
    for name, why in report["skipped"].items():
        print(f"{name}: {why}")


if __name__ == "__main__":
    main()
