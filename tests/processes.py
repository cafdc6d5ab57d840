"""Running a test's processes: start them all, take one answer of each, and check that
each one exited cleanly (a child's assertion or crash fails the test)."""

from __future__ import annotations

from typing import Any, Protocol


class _Answers(Protocol):
    def get(self, block: bool = True, timeout: float | None = None) -> Any: ...


def run_all(processes: list[Any], answers: _Answers | None = None, timeout: float = 120.0) -> list[Any]:
    """Starts `processes`, takes one item per process from `answers` (if given), joins
    them; returns the items in the order they came."""
    for process in processes:
        process.start()
    taken = [] if answers is None else [answers.get(timeout=timeout) for _ in processes]
    for process in processes:
        process.join(timeout)
        assert process.exitcode == 0, f"a test process ended with exit code {process.exitcode}"
    return taken
