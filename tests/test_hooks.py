"""The contract between the compiled base classes and their Python subclasses.

brace._hooks declares, per compiled base, the Python hooks it calls; every
public class must define each of them with the declared parameters, or the
compiled side would fail with AttributeError on a rare path only. The guard's
error handling (pyx/guard.c) is checked through the hooks too.
"""

from __future__ import annotations

import inspect
import traceback
from typing import Any

import pytest

import brace
from brace import _hooks

PAIRS = [
    (brace.CircuitBreaker, _hooks.CircuitBreakerHooks),
    (brace.Bulkhead, _hooks.BulkheadHooks),
    (brace.Retry, _hooks.RetryHooks),
    (brace.Policy, _hooks.PolicyHooks),
]


def hooks(protocol: type) -> dict[str, Any]:
    """The hooks a Protocol declares, with those of the Protocols it extends."""
    declared: dict[str, Any] = {}
    for klass in reversed(protocol.__mro__):
        if klass is not object and getattr(klass, "_is_protocol", False):
            declared.update({name: value for name, value in vars(klass).items()
                             if name.startswith("_") and not name.startswith("__") and callable(value)})
    return declared


@pytest.mark.parametrize(("public", "protocol"), PAIRS, ids=[p.__name__ for p, _ in PAIRS])
def test_every_public_class_defines_the_hooks_its_base_calls(public: type, protocol: type) -> None:
    declared = hooks(protocol)
    assert declared, f"{protocol.__name__} declares no hook"
    for name, hook in declared.items():
        defined = getattr(public, name, None)
        assert defined is not None, f"{public.__name__} lacks {name}, which its compiled base calls"
        assert list(inspect.signature(defined).parameters) == list(inspect.signature(hook).parameters), name


def test_the_guard_hooks_are_the_guards_four() -> None:
    assert set(hooks(_hooks.GuardOwner)) == {"_guard_call", "_guard_failed", "_guard_result", "_guard_awaitable"}


def test_a_reraised_error_keeps_the_call_and_its_traceback() -> None:
    breaker = brace.CircuitBreaker()

    @breaker
    def broken() -> None:
        raise KeyError("lost")

    with pytest.raises(KeyError) as info:
        broken()
    assert "broken" in [frame.name for frame in traceback.extract_tb(info.value.__traceback__)]
    assert info.value.__context__ is None


def test_an_error_raised_by_a_hook_has_the_calls_error_as_its_context() -> None:
    def record(error: BaseException) -> bool:
        raise ZeroDivisionError("the record filter failed")

    breaker = brace.CircuitBreaker(record=record)

    @breaker
    def broken() -> None:
        raise KeyError("lost")

    with pytest.raises(ZeroDivisionError) as info:
        broken()
    assert isinstance(info.value.__context__, KeyError)
