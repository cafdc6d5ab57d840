"""The peer comparison still runs and reports every case (a smoke test: no timing is judged)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent

# Per section of the JSON report: the cases it must time, and the bars it must report.
SECTIONS = {
    "breaker": (
        ("bare call: f(1)", "brace @CircuitBreaker(name=...)", "pybreaker @CircuitBreaker()",
         "circuitbreaker @circuit", "resilix @CircuitBreaker()"),
        {"brace guarded-call overhead (median)", "pybreaker overhead / brace overhead",
         "circuitbreaker overhead / brace overhead", "resilix overhead / brace overhead"},
    ),
    "breaker_async": (
        ("bare await: await f(1)", "brace @CircuitBreaker(name=...) on async def",
         "resilix @CircuitBreaker() on async def"),
        {"brace async guarded-await overhead (median)"},
    ),
    "breaker_open": (
        ("brace FORCED_OPEN (force_open()), CircuitOpen caught",
         "pybreaker OPEN (open()), CircuitBreakerError caught"),
        {"brace rejection (FORCED_OPEN) median"},
    ),
    "bulkhead": (
        ("brace bh.try_acquire(); bh.release()", "brace with bh: pass"),
        {"brace try_acquire()+release() median", "brace `with bh:` median"},
    ),
    "bulkhead_decorator": (("bare call: f(1)", "brace @Bulkhead(max_concurrent=10)"), set()),
    "retry": (
        ("bare call: f(1)", "brace @retry(on=ConnectionError)",
         "tenacity @retry(stop_after_attempt(3), retry_if_exception_type)",
         "stamina @retry(on=ConnectionError, attempts=3)",
         "backoff @on_exception(expo, ConnectionError, max_tries=3)",
         "resilix @protect.when(ConnectionError, retry=3)"),
        {"brace retried-call overhead (median)", "tenacity overhead / brace overhead",
         "resilix overhead / brace overhead"},
    ),
    "policy": (
        ("bare call: f(1)", "brace @Policy(retry, breaker, limiter, bulkhead)",
         "tenacity @retry(3, ConnectionError) over pybreaker @CircuitBreaker()",
         "resilix @protect.when(retry=3) over @CircuitBreaker() over @protect.bulkhead(10)"),
        {"brace policy-call overhead (median)"},
    ),
    "policy_async": (
        ("bare await: await f(1)", "brace @Policy(retry, breaker, limiter, bulkhead) on async def"),
        {"brace async policy-await overhead (median)"},
    ),
    "recovery": (
        ("bare call: f(1)", "brace @Recovery()", "brace @Recovery() with RecoveryLog(MemorySink())",
         "tenacity @retry(stop_after_attempt(3), retry_if_exception_type)"),
        set(),
    ),
}  # fmt: skip


def test_compare_quick_reports_every_case_and_the_allocation_check() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "compare.py"), "--quick", "--json"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    medians = {row["name"]: row["median_ns"] for row in report["results"]}
    for name in ("brace RateLimiter.try_acquire()", "limits FixedWindow+MemoryStorage .hit(item)",
                 "pyrate-limiter InMemoryBucket .try_acquire('key')",
                 "token-bucket MemoryStorage .consume(b'key')"):  # fmt: skip
        assert medians[name] > 0
    assert {bar["description"] for bar in report["bars"]} >= {"brace try_acquire median"}
    assert report["allocations"]["measured"]["calls"] == 1_000_000

    for key, (names, bars) in SECTIONS.items():
        section = report[key]
        rows = {row["name"]: row for row in section["results"]}
        for name in names:
            assert rows[name]["median_ns"] > 0, (key, name)
            if section["baseline"] is not None:
                assert "overhead_ns" in rows[name], (key, name)
        assert {bar["description"] for bar in section["bars"]} >= bars, key
    for key in ("breaker", "bulkhead", "retry", "policy"):
        checks = report[key]["allocations"]
        assert checks and all(check["measured"]["calls"] == 1_000_000 for check in checks), key


def test_costs_runs_at_its_smallest_size() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "costs.py"), "--max-size", "1000"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    sections = result.stdout.split("\n\n")
    assert [section.splitlines()[0] for section in sections] == [
        "dead letters (SQLite, N dead letters)", "recovery.stats() (7 categories, N recoveries each)",
        "server_delay (one response)"]  # fmt: skip
    for section in sections:
        rows = [line.split() for line in section.splitlines()[2:]]
        assert rows and all(float(row[-1]) >= 0 for row in rows), section
    assert sections[0].splitlines()[2].split()[0] == "1000"


def test_keyed_quick_reports_every_case() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "keyed.py"), "--quick"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    rows = {line[:66].strip(): line[66:].split() for line in result.stdout.splitlines()[1:]}
    assert set(rows) == {f"{case} (1k {unit})" for case, unit in [
        ("empty loop", "keys"), ("hash(key), str", "keys"), ("hash(key), int", "keys"),
        ("RateLimiter.try_acquire()", "calls"),
        ("KeyedRateLimiter.try_acquire(str)", "keys"), ("KeyedRateLimiter.try_acquire(int)", "keys"),
        ("KeyedRateLimiter.try_acquire_many(int64 array)", "keys")]}  # fmt: skip
    assert all(float(figures[0]) > 0 for figures in rows.values())


def test_shared_runs_quickly() -> None:
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "shared.py"), "--quick"],
                            capture_output=True, text=True, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    rows = [line.split() for line in lines if line.startswith("  ")]
    assert [words[0] for words in rows] == ["admitted", "rejected", "admitted", "with", "full"]
    for words in rows:
        line = " ".join(words)
        assert words[1] == "local" and float(words[2]) > 0 and words[3] == "shared" and float(words[4]) > 0, line


def test_scaling_quick_reports_brace_at_every_process_count_never_over_its_bound() -> None:
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "scaling.py"), "--quick", "--json"],
                            capture_output=True, text=True, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    rows = {(row["case"], row["processes"]): row for row in report["results"]}
    for processes in (1, 2, 4):
        row = rows['brace RateLimiter(store="shm://")', processes]
        assert row["decisions"] > 0
        # every process decided on one bucket: at least its burst, never more than its rate allows
        assert report["burst"] <= row["admitted"] <= row["allowed"]
    for case in ("pyrate-limiter MultiprocessBucket", "limits MovingWindow + RedisStorage"):
        assert (case, 4) in rows or case in report["skipped"]
    assert set(report["skipped"]) <= {'brace KeyedRateLimiter(store="shm://")', "limits MovingWindow + RedisStorage"}


def test_redis_limiter_quick_reports_one_round_trip_per_decision() -> None:
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "redis_limiter.py"), "--quick", "--json"],
                            capture_output=True, text=True, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr
    rows = {row["case"]: row for row in json.loads(result.stdout)}
    assert len(rows) == 6  # brace's three cases and three peers
    for case, row in rows.items():
        assert row["decisions"] >= 1900 and row["decisions_per_s"] > 0 and row["p99_us"] >= row["p50_us"] > 0
        assert row["round_trips_per_decision"] > 0 and row["commands_per_decision"] >= 1, case
        if case.startswith("brace"):
            # one EVALSHA per decision, give or take the first (sent again after NOSCRIPT)
            assert 1.0 <= row["evalsha_per_decision"] <= 1.001 and row["script_loads"] == 1
    # one round trip per decision, besides a few to connect and load the script
    assert 1.0 <= rows["brace RateLimiter.try_acquire (sync)"]["round_trips_per_decision"] <= 1.005


def test_redis_breaker_quick_reports_both_breakers() -> None:
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "redis_breaker.py"), "--quick", "--json"],
                            capture_output=True, text=True, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr
    rows = {row["case"]: row for row in json.loads(result.stdout)}
    assert set(rows) == {"decorated call", "breaker.call(fn)"}
    for row in rows.values():
        assert row["calls"] == 60_000 and row["local_ns"] > 0 and row["redis_ns"] > 0
        # the flushes only: at most one per 0.25 s (plus the one at construction), never one per call
        assert row["evalsha"] <= 2 + row["seconds"] / 0.25


def test_redis_budget_quick_reports_deposits_and_withdrawals() -> None:
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "redis_budget.py"), "--quick", "--json"],
                            capture_output=True, text=True, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    deposits = {row["case"]: row for row in report["deposits"]}
    assert set(deposits) == {"budget.deposit()", "Policy(retry=Retry(budget=...)) call"}
    for row in deposits.values():
        assert row["calls"] == 60_000 and row["local_ns"] > 0 and row["redis_ns"] > 0
        # the flushes only: at most one per 0.25 s, never one per call
        assert row["evalsha"] <= 1 + row["seconds"] / 0.25
    withdrawals = {row["case"]: row for row in report["withdrawals"]}
    assert withdrawals["local try_withdraw()"]["round_trips_per_withdrawal"] == 0
    for case in ("redis try_withdraw()", "redis await try_withdraw_async()"):
        row = withdrawals[case]
        assert row["p99_us"] >= row["p50_us"] > 0 and row["evalsha_per_withdrawal"] == 1.0
        # one round trip per withdrawal, besides the few that connect a new asyncio client
        assert 1.0 <= row["round_trips_per_withdrawal"] <= 1.005
