"""The peer comparison still runs and reports every case (a smoke test: no timing is judged)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


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
