"""The stage protocol (brace._stages): Policy composes the primitives only through it,
and shows them through public read-only properties."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

import brace
from brace import _stages

PACKAGE = Path(brace.__file__).parent
# The modules that compose other primitives: they may call the declared hooks, nothing else private.
COMPOSERS = ["policy.py", "retry.py", "recovery/_engine.py"]
SELF_NAMES = {"self", "cls"}


def foreign_private_reads(path: Path) -> list[str]:
    """`obj._name` reads (obj not self/cls, _name not a dunder nor a declared hook) in a module."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if not isinstance(node, ast.Attribute) or not node.attr.startswith("_") or node.attr.startswith("__"):
            continue
        if isinstance(node.value, ast.Name) and node.value.id in SELF_NAMES:
            continue
        if node.attr.startswith(_stages.HOOK_PREFIX) or node.attr == "_configure_core":
            continue
        found.append(f"{path.name}:{node.lineno}: .{node.attr}")
    return found


@pytest.mark.parametrize("module", COMPOSERS)
def test_composers_read_no_private_attribute_of_another_object(module: str) -> None:
    assert foreign_private_reads(PACKAGE / module) == []


def protocol_hooks(protocol: type) -> set[str]:
    return {name for name in vars(protocol) if name.startswith(_stages.HOOK_PREFIX)}


@pytest.mark.parametrize("make", [
    lambda: brace.CircuitBreaker(name="stage"),
    lambda: brace.RateLimiter(rate="10/s"),
    lambda: brace.Bulkhead(max_concurrent=1),
])  # fmt: skip
def test_every_admission_stage_has_every_hook(make: object) -> None:
    stage = make()  # type: ignore[operator]
    hooks = protocol_hooks(_stages.AdmissionStage)
    assert hooks == {name for name in dir(stage) if name.startswith(_stages.HOOK_PREFIX)}
    for name in hooks:
        declared = getattr(_stages.AdmissionStage, name)
        if isinstance(declared, property):  # of the type the protocol declares
            assert type(getattr(stage, name)).__name__ == declared.fget.__annotations__["return"]
        else:
            assert inspect.iscoroutinefunction(declared) == inspect.iscoroutinefunction(getattr(stage, name))


def test_retry_has_every_retry_stage_hook() -> None:
    retry = brace.Retry(on=ConnectionError)
    hooks = protocol_hooks(_stages.RetryStage)
    assert hooks <= {name for name in dir(retry) if name.startswith(_stages.HOOK_PREFIX)}


@pytest.mark.parametrize("stage", ["limiter", "bulkhead"])
def test_a_stage_gives_back_what_it_admitted(stage: str) -> None:
    limiter = brace.RateLimiter(rate=1, per=3600.0, max_wait=0)
    bulkhead = brace.Bulkhead(max_concurrent=1)
    subject: _stages.AdmissionStage = limiter if stage == "limiter" else bulkhead
    ticket = subject._brace_stage_admit()
    with pytest.raises((brace.RateLimited, brace.BulkheadFull)):
        subject._brace_stage_admit()
    subject._brace_stage_give_back(ticket)
    subject._brace_stage_give_back(subject._brace_stage_admit())


def test_policy_shows_its_stages_read_only() -> None:
    retry, breaker = brace.Retry(on=ConnectionError), brace.CircuitBreaker(name="shown")
    limiter, bulkhead = brace.RateLimiter(rate="10/s"), brace.Bulkhead(max_concurrent=2)
    policy = brace.Policy(name="p", retry=retry, breaker=breaker, limiter=limiter, bulkhead=bulkhead)
    assert (policy.name, policy.retry, policy.breaker, policy.limiter, policy.bulkhead) == (
        "p", retry, breaker, limiter, bulkhead)
    assert brace.Policy().breaker is None
    with pytest.raises(AttributeError):
        policy.breaker = None  # type: ignore[misc]


def test_retry_shows_its_configuration() -> None:
    budget = brace.RetryBudget()
    retry = brace.Retry(on=ConnectionError, attempts=4, deadline=2.5, attempt_timeout=0.5, budget=budget, name="r")
    assert (retry.name, retry.attempts, retry.deadline, retry.attempt_timeout, retry.budget) == (
        "r", 4, 2.5, 0.5, budget)
    assert brace.Retry(on=ConnectionError).attempts == 3
