"""The README's main command: `python -m brace tour` runs and says what it does."""

from __future__ import annotations

import re
import subprocess
import sys


def test_tour_runs_and_reports_the_cost_per_call() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "brace", "tour", "--quick"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "[True, True, True, False, False]" in out
    assert "raises at once: rate limiter 'sheets' did not admit 1 token(s) in time" in out
    assert re.search(r"lim\.try_acquire\(\)\s+:\s+\d+\.\d ns median", out)

