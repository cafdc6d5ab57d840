"""brace.control: forced decisions, forced breaker states, feature toggles, the breaker registry."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from typing import Any

import pytest

import brace
from brace.breaker import named_breakers
from brace.classify import DEFAULT_CLASSIFIER, Category
from brace.control import Control, control
from brace.escalation import Decision, Escalation, EscalationPolicy, Option
from brace.switchboard import ToggleEvent, switches


@pytest.fixture(autouse=True)
def _no_forced_decisions() -> Iterator[None]:
    control.clear_decisions()
    yield
    control.clear_decisions()


@pytest.fixture
def feature() -> Iterator[str]:
    """A feature of this test alone, on again afterwards (brace.switches is process-wide)."""
    name = f"control-test-{threading.get_ident()}-{id(object())}"
    yield name
    switches.turn_on(name, reason="test over", by="test")


def escalation(operation: str = "fetch_user", options: tuple[Option, ...] = tuple(Option)) -> Escalation:
    error = TimeoutError("read timed out")
    return Escalation(operation=operation, classification=DEFAULT_CLASSIFIER.classify(error), error=error,
                      reason="attempts", options=options)  # fmt: skip


# -- forced decisions ------------------------------------------------------------


@pytest.mark.parametrize("category", [Category.TIMEOUT, "timeout"])
def test_a_decision_forced_for_a_category(category: Category | str) -> None:
    control.force_decision(Option.SKIP, category=category)
    assert control.forced_decision(Category.TIMEOUT, "fetch_user") == Decision.skip(by="control")
    assert control.forced_decision("timeout", None) == Decision.skip(by="control")
    assert control.forced_decision(Category.RATE_LIMITED, "fetch_user") is None


def test_a_decision_forced_for_an_operation_wins_over_its_category() -> None:
    control.force_decision("abort", category=Category.TIMEOUT)
    control.force_decision(Decision.use({"cached": True}, by="ann"), operation="fetch_user")
    assert control.forced_decision(Category.TIMEOUT, "fetch_user") == Decision(Option.USE, {"cached": True}, "control")
    assert control.forced_decision(Category.TIMEOUT, "fetch_order") == Decision.abort(by="control")
    assert control.forced_decision(None, "fetch_user") == Decision(Option.USE, {"cached": True}, "control")
    assert control.forced_decision(None, None) is None


def test_forcing_again_replaces_and_clear_forgets() -> None:
    control.force_decision("abort", operation="op")
    control.force_decision(Decision.retry(), operation="op")
    control.force_decision("skip", category="timeout")
    assert control.forced_decision(None, "op") == Decision.retry(by="control")
    control.clear_decisions()
    assert control.forced_decision(Category.TIMEOUT, "op") is None


@pytest.mark.parametrize(
    ("decision", "kwargs", "error", "message"),
    [
        ("abort", {}, ValueError, "give exactly one of category and operation"),
        ("abort", {"category": "timeout", "operation": "op"}, ValueError, "give exactly one of category and operation"),
        ("abort", {"category": "slow"}, ValueError, r"category must be a brace.Category or one of 'timeout', .*'unknown', got 'slow'"),
        ("use", {"operation": "op"}, ValueError, r"decision 'use' needs a value: pass brace.Decision.use\(value\)"),
        (Option.USE, {"operation": "op"}, ValueError, "decision 'use' needs a value"),
        ("later", {"operation": "op"}, ValueError, "decision must be a brace.Option or one of 'retry', 'skip', 'abort', 'use'"),
        (None, {"operation": "op"}, TypeError, "decision must be a brace.Decision, a brace.Option or its value, got NoneType"),
        ("abort", {"operation": 3}, TypeError, "operation must be a str, got int"),
    ],
)  # fmt: skip
def test_force_decision_validates(decision: Any, kwargs: dict[str, Any], error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        control.force_decision(decision, **kwargs)
    assert control.forced_decision(Category.TIMEOUT, "op") is None


def test_a_forced_decision_decides_first_and_the_handlers_still_run() -> None:
    told: list[Decision | None] = []

    def handler(escalation: Escalation) -> Decision:
        told.append(escalation.decision)
        return Decision.abort(by="handler")

    control.force_decision(Decision.use("stale"), category=Category.TIMEOUT)
    esc = escalation()
    assert EscalationPolicy(handlers=[handler], wait=60.0).escalate(esc) == Decision.use("stale", by="control")
    assert told == [Decision.use("stale", by="control")]


def test_a_forced_decision_for_the_operation_wins_on_the_async_path() -> None:
    import asyncio

    control.force_decision("skip", category="timeout")
    control.force_decision("retry", operation="fetch_user")
    policy = EscalationPolicy()
    assert asyncio.run(policy.escalate_async(escalation())) == Decision.retry(by="control")
    assert asyncio.run(policy.escalate_async(escalation("fetch_order"))) == Decision.skip(by="control")


def test_a_forced_option_the_escalation_does_not_offer_is_recorded() -> None:
    control.force_decision("retry", operation="fetch_user")
    esc = escalation(options=(Option.SKIP, Option.ABORT))
    assert EscalationPolicy(default="skip").escalate(esc) == Decision.skip(by="default")
    (error,) = esc.handler_errors
    assert error.startswith("control: option must be one of this escalation's options")


def test_forcing_from_many_threads_loses_nothing() -> None:
    barrier = threading.Barrier(8)

    def force(n: int) -> None:
        barrier.wait()
        for i in range(50):
            control.force_decision("abort", operation=f"op-{n}-{i}")

    threads = [threading.Thread(target=force, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(control.forced_decision(None, f"op-{n}-{i}") is not None for n in range(8) for i in range(50))


def test_repr() -> None:
    fresh = Control()
    fresh.force_decision("abort", operation="op")
    assert repr(fresh) == "Control(forced decisions: 1 by operation, 0 by category)"


# -- breakers -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ("open", brace.BreakerState.FORCED_OPEN),
        ("disabled", brace.BreakerState.DISABLED),
        ("metrics_only", brace.BreakerState.METRICS_ONLY),
        ("closed", brace.BreakerState.CLOSED),
        ("reset", brace.BreakerState.CLOSED),
    ],
)
def test_force_breaker(state: str, expected: brace.BreakerState) -> None:
    breaker = brace.CircuitBreaker(name="payments")
    breaker.force_open()
    control.force_breaker("payments", state)
    assert breaker.state is expected
    assert control.breakers()["payments"] is expected


def test_force_open_rejects_calls_and_reset_zeroes_the_counters() -> None:
    breaker = brace.CircuitBreaker(name="inventory")
    control.force_breaker("inventory", "open")
    with pytest.raises(brace.CircuitOpen):
        breaker.call(lambda: None)
    assert breaker.metrics().not_permitted == 1
    control.force_breaker("inventory", "reset")
    assert breaker.call(lambda: 7) == 7
    assert breaker.metrics().not_permitted == 0


def test_an_unknown_breaker_name_is_a_key_error_naming_the_known_ones() -> None:
    keep = [brace.CircuitBreaker(name="alpha"), brace.CircuitBreaker(name="beta")]
    with pytest.raises(KeyError, match=r"no circuit breaker named 'gamma'; known: ") as raised:
        control.force_breaker("gamma", "open")
    assert "'alpha'" in str(raised.value) and "'beta'" in str(raised.value)
    assert all(breaker.state is brace.BreakerState.CLOSED for breaker in keep)


def test_an_unknown_state_is_a_value_error_listing_the_states() -> None:
    breaker = brace.CircuitBreaker(name="search")
    with pytest.raises(ValueError, match="state must be one of 'open', 'closed', 'disabled', 'metrics_only', 'reset', got 'half_open'"):
        control.force_breaker("search", "half_open")
    assert breaker.state is brace.BreakerState.CLOSED


def test_the_registry_holds_named_breakers_weakly_and_the_latest_of_a_name() -> None:
    unnamed = brace.CircuitBreaker()
    first = brace.CircuitBreaker(name="ledger")
    second = brace.CircuitBreaker(name="ledger")
    assert named_breakers()["ledger"] is second
    assert unnamed not in named_breakers().values()
    control.force_breaker("ledger", "open")
    assert (first.state, second.state) == (brace.BreakerState.CLOSED, brace.BreakerState.FORCED_OPEN)
    del first, second
    gc.collect()
    assert "ledger" not in control.breakers()


def test_an_invalid_breaker_is_not_registered() -> None:
    with pytest.raises(ValueError):
        brace.CircuitBreaker(name="broken", window_size=0)
    assert "broken" not in named_breakers()


def test_breakers_report_states_by_name() -> None:
    one = brace.CircuitBreaker(name="b-one")
    two = brace.CircuitBreaker(name="b-two")
    two.disable()
    states = control.breakers()
    assert (states["b-one"], states["b-two"]) == (brace.BreakerState.CLOSED, brace.BreakerState.DISABLED)
    assert one.name == "b-one"


# -- features --------------------------------------------------------------------


def test_turn_off_and_on_through_switches_by_human(feature: str) -> None:
    events: list[ToggleEvent] = []
    listener = events.append
    switches.add_listener(listener)
    try:
        assert control.turn_off(feature, reason="vendor outage") is True
        assert switches.is_on(feature) is False
        assert control.turn_off(feature, reason="again") is False
        assert control.turn_on(feature, reason="vendor back") is True
        assert switches.is_on(feature) is True
    finally:
        switches.remove_listener(listener)
    mine = [(event.on, event.reason, event.by) for event in events if event.name == feature]
    assert mine == [(False, "vendor outage", "human"), (True, "vendor back", "human")]
