"""The dependency graph of checks: its order, its cycles, and statuses cascading up it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from brace.health._check import Check
from brace.health._model import Outcome, Result, Status, worst

__all__ = ["cascade", "ordered", "overall"]


def ordered(checks: Sequence[Check]) -> tuple[Check, ...]:
    """The checks, each after those it depends on.

    Raises:
        ValueError: Two checks share a name, a check depends on a name no check has,
            or the dependencies form a cycle (named in order: "api -> db -> api").
    """
    by_name: dict[str, Check] = {}
    for check in checks:
        if check.name in by_name:
            raise ValueError(f"checks must have unique names, got {check.name!r} twice")
        by_name[check.name] = check
    for check in checks:
        for needed in check.depends_on:
            if needed not in by_name:
                raise ValueError(f"checks: {check.name!r} depends_on {needed!r}, which no check is called "
                                 f"(checks: {', '.join(sorted(by_name))})")  # fmt: skip
    done: dict[str, Check] = {}
    for check in checks:
        _visit(check, by_name, done, [])
    return tuple(done.values())


def _visit(check: Check, by_name: Mapping[str, Check], done: dict[str, Check], path: list[str]) -> None:
    if check.name in done:
        return
    if check.name in path:
        cycle = [*path[path.index(check.name) :], check.name]
        raise ValueError(f"checks: the dependencies form a cycle: {' -> '.join(cycle)}")
    path.append(check.name)
    for needed in check.depends_on:
        _visit(by_name[needed], by_name, done, path)
    path.pop()
    done[check.name] = check


def passed_up(result: Result) -> Status:
    """What a check passes to its dependents: its status, at worst DEGRADED when not critical."""
    if not result.critical and result.status is Status.UNHEALTHY:
        return Status.DEGRADED
    return result.status


def cascade(check: Check, own: Outcome, results: Mapping[str, Result]) -> tuple[Status, str]:
    """A check's status and reason: the worst of its own and its dependencies' (ties: its own)."""
    passed = [(passed_up(results[name]), results[name]) for name in check.depends_on]
    status = worst([own.status, *(up for up, _ in passed)])
    if status is Status.HEALTHY or own.status is status:
        return status, own.reason
    cause = next(result for up, result in passed if up is status)
    return status, cause.explain()


def overall(results: Sequence[Result]) -> tuple[Status, str]:
    """The report's status and reason, from the checks no other check depends on."""
    needed = {name for result in results for name in result.depends_on}
    top = [result for result in results if result.name not in needed]
    status = worst([passed_up(result) for result in top])
    reason = "; ".join(result.explain() for result in top if result.status is not Status.HEALTHY)
    return status, reason
