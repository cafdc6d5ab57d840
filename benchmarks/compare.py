#!/usr/bin/env python3
"""brace's RateLimiter.try_acquire against peer Python rate limiters, success path.

Every limiter is configured with a limit so large that it admits every call of
the run, so what is timed is the cost of one admitted decision. Each case is a
pre-bound callable timed in timeit loops; the cases' repeats are interleaved
round-robin so that the noise of a shared machine falls on all of them alike,
and the median over repeats is the figure reported (the minimum alongside).

    python benchmarks/compare.py            # full run, about 30 s
    python benchmarks/compare.py --quick    # a few seconds: CI smoke test
    python benchmarks/compare.py --json     # machine-readable report on stdout

Needs the `bench` extra: pip install -e '.[bench]'.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import timeit
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import brace
import limits
import pyrate_limiter
import token_bucket
from limits.storage import MemoryStorage as LimitsMemoryStorage
from limits.strategies import FixedWindowRateLimiter

# Far above any rate a Python loop reaches (~25M calls/s at best), so no limiter
# can reject during the run.
HUGE_RATE = 10**9
ALLOCATION_CALLS = 1_000_000

BRACE = "brace RateLimiter.try_acquire()"
LIMITS = "limits FixedWindow+MemoryStorage .hit(item)"
PYRATE = "pyrate-limiter InMemoryBucket .try_acquire('key')"
TOKEN_BUCKET = "token-bucket MemoryStorage .consume(b'key')"
# Not a case: the cost of timeit's own loop, included in every figure.
EMPTY_LOOP = "empty timeit loop (pass)"


@dataclass(frozen=True)
class Settings:
    repeats: int
    seconds_per_sample: float


FULL = Settings(repeats=20, seconds_per_sample=0.2)
QUICK = Settings(repeats=3, seconds_per_sample=0.01)


@dataclass(frozen=True)
class Bar:
    """One requirement the project sets for itself; checked, never asserted."""

    description: str
    measured: float
    threshold: float
    unit: str
    at_most: bool

    @property
    def met(self) -> bool:
        if self.at_most:
            return self.measured <= self.threshold
        return self.measured >= self.threshold


@dataclass(frozen=True)
class Case:
    """One callable to time; `admits` says it is a limiter that must return True."""

    name: str
    call: Callable[..., object]
    args: tuple[object, ...] = ()
    admits: bool = True


@dataclass
class Timing:
    """The samples of one timeit loop, in ns per call."""

    name: str
    timer: timeit.Timer
    number: int = 0
    samples_ns: list[float] = field(default_factory=list)

    @property
    def median_ns(self) -> float:
        return statistics.median(self.samples_ns)

    @property
    def min_ns(self) -> float:
        return min(self.samples_ns)


def make_cases() -> list[Case]:
    brace_limiter = brace.RateLimiter(rate=float(HUGE_RATE), burst=10**6)
    limits_limiter = FixedWindowRateLimiter(LimitsMemoryStorage())
    limits_item = limits.parse(f"{HUGE_RATE}/second")
    # The default in-memory setup: Limiter(Rate) builds an InMemoryBucket and
    # schedules its background leak, as an application would get it.
    pyrate = pyrate_limiter.Limiter(
        pyrate_limiter.Rate(HUGE_RATE, pyrate_limiter.Duration.SECOND)
    )
    token_bucket_limiter = token_bucket.Limiter(
        float(HUGE_RATE), HUGE_RATE, token_bucket.MemoryStorage()
    )
    return [
        # Two baselines: a no-op call of a C method (the kind of call brace's
        # try_acquire is) and of a Python function (the kind the peers are).
        Case("bare C call: {}.clear() on an empty dict", {}.clear, admits=False),
        Case("bare Python call: (lambda: None)()", lambda: None, admits=False),
        Case(BRACE, brace_limiter.try_acquire),
        Case(LIMITS, limits_limiter.hit, (limits_item,)),
        Case(PYRATE, pyrate.try_acquire, ("key",)),
        Case(TOKEN_BUCKET, token_bucket_limiter.consume, (b"key",)),
    ]


def make_timer(case: Case) -> timeit.Timer:
    """A timeit loop of one call of the case."""
    if len(case.args) > 1:
        raise ValueError(f"{case.name}: at most one argument is supported")
    # Binding in `setup` makes the callable and its argument locals of timeit's
    # inner function, so no global or attribute lookup is timed.
    stmt = "call(arg)" if case.args else "call()"
    globals_ = {"_call": case.call, "_arg": case.args[0] if case.args else None}
    return timeit.Timer(stmt, setup="call = _call; arg = _arg", globals=globals_)


def calibrate(timer: timeit.Timer, seconds: float) -> int:
    """The loop count that makes one sample last about `seconds` (also warms up)."""
    number = 1
    while True:
        elapsed = timer.timeit(number)
        if elapsed >= seconds / 10:
            return max(1, round(number * seconds / elapsed))
        number *= 10


def check_admits(case: Case) -> None:
    """Exits when a limiter rejects: its figures would not be the success path."""
    if case.admits and case.call(*case.args) is not True:
        sys.exit(f"{case.name} rejected a call: the run does not measure the success path")


def run_timings(timings: list[Timing], settings: Settings) -> None:
    """Collects every timing's samples, interleaving their repeats."""
    for timing in timings:
        timing.number = calibrate(timing.timer, settings.seconds_per_sample)
    for round_ in range(settings.repeats):
        # Rotating the start spreads any position effect (a cache warmed or
        # cooled by the previous case) over all of them.
        start = round_ % len(timings)
        for timing in timings[start:] + timings[:start]:
            elapsed = timing.timer.timeit(timing.number)
            timing.samples_ns.append(elapsed / timing.number * 1e9)


def time_cases(cases: list[Case], settings: Settings) -> tuple[list[Timing], Timing]:
    """Times the cases and an empty loop; returns the cases' timings and the loop's."""
    timings = [Timing(case.name, make_timer(case)) for case in cases]
    empty_loop = Timing(EMPTY_LOOP, timeit.Timer("pass"))
    for case in cases:
        check_admits(case)
    run_timings([*timings, empty_loop], settings)
    # Still admitting at the end: no limit was reached while being timed.
    for case in cases:
        check_admits(case)
    return timings, empty_loop


@dataclass(frozen=True)
class Allocations:
    calls: int
    blocks: int
    net_bytes: int
    peak_bytes: int


def measure_allocations(call: Callable[[], object], calls: int) -> Allocations:
    """Live-block and tracemalloc deltas over `calls` calls of `call`."""
    loop = itertools.repeat(None, calls)  # repeat yields no new int per step
    gc.collect()
    blocks_before = sys.getallocatedblocks()
    for _ in loop:
        call()
    blocks = sys.getallocatedblocks() - blocks_before

    tracemalloc.start()
    try:
        loop = itertools.repeat(None, calls)
        current_before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        for _ in loop:
            call()
        current_after, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return Allocations(calls, blocks, current_after - current_before, peak - current_before)


def check_allocations() -> tuple[Allocations, Allocations]:
    """brace's try_acquire over ALLOCATION_CALLS calls, and the same probe over 0 calls.

    The 0-call run shows what the probe itself allocates (the ints it reads),
    which is the floor the 1,000,000-call figures should sit on.
    """
    call = brace.RateLimiter(rate=float(HUGE_RATE), burst=10**6).try_acquire
    return measure_allocations(call, ALLOCATION_CALLS), measure_allocations(call, 0)


def ratios_to_brace(timings: list[Timing]) -> dict[str, float]:
    brace_ns = by_name(timings, BRACE).median_ns
    return {timing.name: timing.median_ns / brace_ns for timing in timings}


def by_name(timings: list[Timing], name: str) -> Timing:
    return next(timing for timing in timings if timing.name == name)


def make_bars(timings: list[Timing]) -> list[Bar]:
    ratios = ratios_to_brace(timings)
    return [
        Bar("brace try_acquire median", by_name(timings, BRACE).median_ns, 60.0, "ns", True),
        Bar("token-bucket median / brace median", ratios[TOKEN_BUCKET], 10.0, "x", False),
        Bar("limits FixedWindow median / brace median", ratios[LIMITS], 40.0, "x", False),
    ]


def reproduce_command() -> str:
    argv = [sys.executable, *sys.argv]
    return f"cd {shlex.quote(os.getcwd())} && {shlex.join(argv)}"


def cpu_model() -> str:
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or "unknown"
    for line in cpuinfo.splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def brace_revision() -> str:
    """The git commit brace runs from (+dirty), so a result can be traced to code."""
    repo = Path(__file__).resolve().parent.parent
    try:
        described = subprocess.run(
            ["git", "-C", str(repo), "describe", "--always", "--dirty"],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return described.stdout.strip()


def brace_clock_source() -> str:
    """Which clock brace's decisions read: "tsc" once calibrated, else "monotonic"."""
    from brace._core import clock_source

    return clock_source()


def environment() -> dict[str, Any]:
    return {
        "python": sys.version.replace("\n", " "),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "brace_clock": brace_clock_source(),
        "brace_revision": brace_revision(),
        "versions": {
            package: metadata.version(package)
            for package in ("brace", "limits", "pyrate-limiter", "token-bucket")
        },
    }


def report(
    settings: Settings,
    timings: list[Timing],
    empty_loop: Timing,
    allocations: tuple[Allocations, Allocations],
) -> dict[str, Any]:
    ratios = ratios_to_brace(timings)
    measured, probe_only = allocations
    return {
        "command": reproduce_command(),
        "environment": environment(),
        "settings": {
            "repeats": settings.repeats,
            "seconds_per_sample": settings.seconds_per_sample,
        },
        "results": [
            {
                "name": timing.name,
                "median_ns": timing.median_ns,
                "min_ns": timing.min_ns,
                "ratio_vs_brace": ratios[timing.name],
                "calls_per_sample": timing.number,
                "samples_ns": timing.samples_ns,
            }
            for timing in timings
        ],
        "empty_loop_ns": {"median": empty_loop.median_ns, "min": empty_loop.min_ns},
        "bars": [
            {
                "description": bar.description,
                "measured": bar.measured,
                "threshold": bar.threshold,
                "unit": bar.unit,
                "at_most": bar.at_most,
                "met": bar.met,
            }
            for bar in make_bars(timings)
        ],
        "allocations": {"measured": vars(measured), "probe_only": vars(probe_only)},
    }


def print_table(data: dict[str, Any]) -> None:
    env = data["environment"]
    settings = data["settings"]
    print("brace vs peer rate limiters: success path (every call admitted)")
    print(f"command:  {data['command']}")
    print(f"python:   {env['python']} ({env['implementation']})")
    print(f"platform: {env['platform']}, {env['machine']}")
    print(f"cpu:      {env['cpu']}, {env['cpu_count']} CPUs; brace clock: {env['brace_clock']}")
    versions = ", ".join(f"{name} {version}" for name, version in env["versions"].items())
    print(f"versions: {versions}; brace git {env['brace_revision']}")
    print(
        f"method:   timeit loops of a pre-bound callable, {settings['repeats']} repeats of "
        f"~{settings['seconds_per_sample']} s per case, interleaved round-robin; "
        "median and min over repeats"
    )
    print()
    name_width = max(len(result["name"]) for result in data["results"])
    print(f"{'name':<{name_width}}  {'median ns':>10}  {'min ns':>10}  {'vs brace':>9}")
    for result in data["results"]:
        print(
            f"{result['name']:<{name_width}}  {result['median_ns']:>10.1f}  "
            f"{result['min_ns']:>10.1f}  {result['ratio_vs_brace']:>8.2f}x"
        )
    empty = data["empty_loop_ns"]
    print(
        f"(every figure includes timeit's loop overhead: {empty['median']:.1f} ns median, "
        f"{empty['min']:.1f} ns min per iteration of an empty loop; not subtracted)"
    )
    print()
    print("bar:")
    for bar in data["bars"]:
        relation = "<=" if bar["at_most"] else ">="
        verdict = "met" if bar["met"] else "NOT MET"
        print(
            f"  {bar['description']}: {bar['measured']:.1f} {bar['unit']} "
            f"(required {relation} {bar['threshold']:g} {bar['unit']}): {verdict}"
        )
    print()
    print_allocations(data["allocations"])


def print_allocations(allocations: dict[str, dict[str, int]]) -> None:
    measured, probe = allocations["measured"], allocations["probe_only"]
    print(f"allocations of brace try_acquire() over {measured['calls']:,} calls:")
    print(
        f"  sys.getallocatedblocks() delta: {measured['blocks']:+d} blocks "
        f"(probe alone, 0 calls: {probe['blocks']:+d})"
    )
    print(
        f"  tracemalloc net: {measured['net_bytes']:+d} B, peak above start: "
        f"{measured['peak_bytes']:+d} B (probe alone: {probe['net_bytes']:+d} B, "
        f"{probe['peak_bytes']:+d} B)"
    )
    print(
        "  getallocatedblocks counts objects still alive after the loop (a leak shows as\n"
        "  ~1 block per call); tracemalloc's peak also catches objects created and freed\n"
        "  within a call (one would show as its size). Figures equal to the probe's own\n"
        "  mean try_acquire allocates nothing."
    )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="few short repeats: checks it runs, not for figures"
    )
    parser.add_argument(
        "--json", action="store_true", help="print a machine-readable report instead of a table"
    )
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    settings = QUICK if args.quick else FULL
    # Before the peers exist: their background threads (pyrate-limiter's leaker,
    # limits' expiry timer) allocate and would blur the count.
    allocations = check_allocations()
    timings, empty_loop = time_cases(make_cases(), settings)
    data = report(settings, timings, empty_loop, allocations)
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        print_table(data)


if __name__ == "__main__":
    main()
