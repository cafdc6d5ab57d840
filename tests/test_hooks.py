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
from brace.integrations._exchange import Exchange

PAIRS = [
    (brace.CircuitBreaker, _hooks.CircuitBreakerHooks),
    (brace.Bulkhead, _hooks.BulkheadHooks),
    (brace.RateLimiter, _hooks.RateLimiterHooks),
    (brace.Retry, _hooks.RetryHooks),
    (brace.Policy, _hooks.PolicyHooks),
    (Exchange, _hooks.ExchangeHooks),
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


# The private members the compiled bases show on the public classes: only the
# entries their Python subclasses (and Policy, which composes them) call. Each
# is one C call with a documented job; anything else a base needs is cdef and
# invisible from Python. Adding one here is a decision, not an accident.
COMPILED_PRIVATE = {
    # _attach: a shared limiter (store=) decides on a slot of a shared-memory region; _count_rejection,
    # _rejections: rejections counted where they are refused (RateLimiter.rejections)
    brace.RateLimiter: {"_configure", "_attach", "_reject_in_python", "_guard", "_reserve", "_refund", "_report",
                        "_count_rejection", "_rejections"},  # fmt: skip
    # _set_probe_gen and _release_unleased: a breaker on a Redis store leases its HALF_OPEN's probes
    # from the server (the probes of that generation call Python; a refused one is given back);
    # _ignore, _calls: the counts of calls since made (CircuitBreaker.calls()); _reconfigure: its
    # settings changed in use (CircuitBreaker.reconfigure); _admit_deferring and _open_block: a
    # coroutine awaits such a lease (`async with` opens its block once leased); _set_store_down and
    # _store_down: on_store_error="closed" refuses while the store is away
    brace.CircuitBreaker: {
        "_configure", "_set_hooks", "_guard", "_enter", "_finish", "_record", "_release",
        "_transition", "_set_open_until", "_report", "_window_counts", "_measure",
        "_set_probe_gen", "_release_unleased", "_ignore", "_calls", "_reconfigure", "_admit_deferring",
        "_open_block", "_set_store_down", "_store_down",
    },
    # listened-to rejections go through Python, where events are built; _attach and _sweep: a shared
    # bulkhead's leased permits in a region's slot, and the freeing of dead processes' permits;
    # _count_rejection, _rejections: as the limiter's
    brace.Bulkhead: {"_configure", "_attach", "_sweep", "_reject_in_python", "_guard", "_enqueue", "_pass_or_free",
                     "_grant", "_unflag", "_report", "_count_rejection", "_rejections"},  # fmt: skip
    # _successful_without_retry, _count_success_without_retry: first-try successes (Retry.calls())
    brace.Retry: {"_configure_core", "_guard", "_successful_without_retry", "_count_success_without_retry"},
    brace.Backoff: {"_configure", "_delay_ns"},
    # _deposits: the count a budget on a Redis store sends from its flusher thread; _count_refusal,
    # _refusals: exhaustions counted where the budget refuses (RetryBudget.exhaustions)
    # _reconfigure: a new ratio and floor on a budget in use (RetryBudget.reconfigure)
    brace.RetryBudget: {"_configure", "_balance", "_deposits", "_count_refusal", "_refusals", "_reconfigure"},
    brace.Policy: {"_configure_core", "_guard", "_guard_coroutine", "_succeeded"},
}


@pytest.mark.parametrize("public", list(COMPILED_PRIVATE), ids=[p.__name__ for p in COMPILED_PRIVATE])
def test_public_classes_show_only_the_agreed_compiled_machinery(public: type) -> None:
    compiled = [klass for klass in public.__mro__ if klass.__module__ == "brace._core"]
    assert compiled, f"{public.__name__} has no compiled base"
    shown = {name for name in dir(public) if name.startswith("_") and not name.startswith("__")
             and any(name in vars(klass) for klass in compiled)}  # fmt: skip
    assert shown == COMPILED_PRIVATE[public]
