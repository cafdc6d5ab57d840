"""mypy --strict passes on the package and keeps decorated signatures."""

from __future__ import annotations

from pathlib import Path

import pytest
from mypy import api

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent


def run_mypy(*targets: Path) -> None:
    stdout, stderr, status = api.run(
        ["--strict", "--warn-unused-ignores", "--no-incremental", *map(str, targets)]
    )
    assert status == 0, stdout + stderr


def test_package_is_strictly_typed() -> None:
    run_mypy(ROOT / "python" / "brace")


def test_decorators_keep_signatures_for_type_checkers() -> None:
    run_mypy(
        ROOT / "tests" / "typing" / "limiter_usage.py",
        ROOT / "tests" / "typing" / "bulkhead_usage.py",
        ROOT / "tests" / "typing" / "breaker_usage.py",
        ROOT / "tests" / "typing" / "retry_usage.py",
        ROOT / "tests" / "typing" / "fallback_usage.py",
        ROOT / "tests" / "typing" / "recovery_usage.py",
        ROOT / "tests" / "typing" / "sync_entry_usage.py",
        ROOT / "tests" / "typing" / "adaptive_usage.py",
    )
