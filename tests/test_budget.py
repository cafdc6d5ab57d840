"""brace.RetryBudget: Finagle's semantics, against a small reference model.

The model is the definition itself: a list of timestamped deposits and
withdrawals, each counting while it is younger than ttl. The core counts in
ten buckets of ttl / 10, so on bucket boundaries the two agree exactly; at
other times the model counts by bucket, as documented.
"""

from __future__ import annotations

import math
import re
import threading
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import brace
from brace import _core
from brace.budget import RetryBudget
from brace.testing import FakeClock
from allocations import blocks_kept

NS = 1_000_000_000
BUCKETS = _core.BUDGET_BUCKETS


@dataclass
class BudgetModel:
    """Finagle's budget as a list of events: (time ns, +ratio or -1 token), in milli-tokens."""

    ratio_milli: int
    floor_milli: int
    ttl_ns: int
    bucketed: bool = False  # count by bucket, as the core does between boundaries
    events: list[tuple[int, int]] = field(default_factory=list)

    def counts(self, t: int, now: int) -> bool:
        if self.bucketed:
            bucket = self.ttl_ns // BUCKETS
            return now // bucket - t // bucket < BUCKETS
        return now - t < self.ttl_ns

    def balance(self, now: int) -> int:
        return self.floor_milli + sum(v for t, v in self.events if self.counts(t, now))

    def deposit(self, now: int) -> None:
        self.events.append((now, self.ratio_milli))

    def try_withdraw(self, now: int) -> bool:
        if self.balance(now) < 1000:
            return False
        self.events.append((now, -1000))
        return True


def align(ttl_ns: int) -> int:
    """Moves the frozen clock to the next bucket boundary; returns the time."""
    bucket = ttl_ns // BUCKETS
    _core.clock_advance((-_core.now_ns()) % bucket)
    return _core.now_ns()


operation = st.one_of(
    st.tuples(st.just("advance"), st.integers(0, 3 * BUCKETS)),  # buckets (or ns / bucket)
    st.tuples(st.just("deposit"), st.integers(1, 6)),
    st.tuples(st.just("withdraw"), st.integers(1, 6)),
)
config = {
    "ratio_milli": st.integers(1, 3000),
    "min_per_second": st.integers(0, 5),
    "ttl_ms": st.integers(1, 20_000),
}


def run(budget: RetryBudget, model: BudgetModel, ops: list[tuple[str, int]], step_ns: int) -> None:
    for name, arg in ops:
        if name == "advance":
            _core.clock_advance(arg * step_ns)
        elif name == "deposit":
            for _ in range(arg):
                budget.deposit()
                model.deposit(_core.now_ns())
        else:
            for _ in range(arg):
                assert budget.try_withdraw() == model.try_withdraw(_core.now_ns())
        assert budget._balance() == model.balance(_core.now_ns())
        assert budget.balance == model.balance(_core.now_ns()) / 1000


@pytest.mark.slow  # many examples: the README's command runs it, the inner loop does not
@settings(max_examples=200, deadline=None)
@given(**config, ops=st.lists(operation, max_size=50))
def test_matches_the_sliding_window_model_on_bucket_boundaries(
    ratio_milli: int, min_per_second: int, ttl_ms: int, ops: list[tuple[str, int]]
) -> None:
    with brace.testing.fake_clock():
        budget = RetryBudget(ratio=ratio_milli / 1000, min_per_second=min_per_second, ttl=ttl_ms / 1000)
        ttl_ns = ttl_ms * 1_000_000
        model = BudgetModel(ratio_milli, min_per_second * ttl_ms, ttl_ns)
        align(ttl_ns)
        run(budget, model, ops, ttl_ns // BUCKETS)


@pytest.mark.slow  # many examples: the README's command runs it, the inner loop does not
@settings(max_examples=200, deadline=None)
@given(**config, ops=st.lists(operation, max_size=50), step_ns=st.integers(1, 10**9))
def test_matches_the_bucketed_model_at_any_time(
    ratio_milli: int, min_per_second: int, ttl_ms: int, ops: list[tuple[str, int]], step_ns: int
) -> None:
    with brace.testing.fake_clock():
        budget = RetryBudget(ratio=ratio_milli / 1000, min_per_second=min_per_second, ttl=ttl_ms / 1000)
        model = BudgetModel(ratio_milli, min_per_second * ttl_ms, ttl_ms * 1_000_000, bucketed=True)
        run(budget, model, ops, step_ns % (ttl_ms * 1_000_000) + 1)


def test_the_floor_allows_min_per_second_times_ttl_retries(clock: FakeClock) -> None:
    budget = RetryBudget()  # Finagle's defaults: 0.2, 10/s, 10 s
    assert budget.balance == 100.0
    assert sum(budget.try_withdraw() for _ in range(150)) == 100
    assert budget.balance == 0.0
    assert not budget.try_withdraw()
    assert budget.balance == 0.0  # a refusal takes nothing


def test_each_call_pays_for_ratio_of_a_retry(clock: FakeClock) -> None:
    budget = RetryBudget(ratio=0.2, min_per_second=0)
    for _ in range(4):
        budget.deposit()
    assert budget.balance == pytest.approx(0.8)
    assert not budget.try_withdraw()
    budget.deposit()
    assert budget.try_withdraw()
    for _ in range(1000):
        budget.deposit()
    assert sum(budget.try_withdraw() for _ in range(300)) == 200  # 20% of 1000, exactly


def test_a_ratio_above_one_pays_for_several_retries(clock: FakeClock) -> None:
    budget = RetryBudget(ratio=3, min_per_second=0)
    budget.deposit()
    assert [budget.try_withdraw() for _ in range(4)] == [True, True, True, False]


def test_deposits_and_withdrawals_expire_after_ttl(clock: FakeClock) -> None:
    budget = RetryBudget(ratio=1, min_per_second=0, ttl=10)
    start = align(10 * NS)
    budget.deposit()
    _core.clock_advance_to(start + 10 * NS - 1)
    assert budget.balance == 1.0
    _core.clock_advance_to(start + 10 * NS)
    assert budget.balance == 0.0
    # withdrawals expire too: the floor comes back
    floored = RetryBudget(ratio=0.2, min_per_second=1, ttl=timedelta(seconds=10))
    assert sum(floored.try_withdraw() for _ in range(20)) == 10
    clock.advance(9.0)
    assert not floored.try_withdraw()
    clock.advance(1.0)
    assert floored.balance == 10.0


def test_a_retry_can_outlive_the_call_that_paid_for_it(clock: FakeClock) -> None:
    budget = RetryBudget(ratio=1, min_per_second=0, ttl=10)
    align(10 * NS)
    budget.deposit()
    clock.advance(5.0)
    assert budget.try_withdraw()
    clock.advance(5.0)
    assert budget.balance == -1.0
    assert not budget.try_withdraw()
    clock.advance(5.0)
    assert budget.balance == 0.0


def test_expiry_is_exact_to_one_bucket(clock: FakeClock) -> None:
    budget = RetryBudget(ratio=1, min_per_second=0, ttl=10)
    assert budget.granularity == 1.0
    start = align(10 * NS)
    _core.clock_advance_to(start + NS // 2)  # mid-bucket
    budget.deposit()
    _core.clock_advance_to(start + 10 * NS - 1)
    assert budget.balance == 1.0
    _core.clock_advance_to(start + 10 * NS)  # 9.5 s after the deposit: its bucket left
    assert budget.balance == 0.0


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"ratio": 0}, ValueError, "ratio must be a finite number from 0.001 to 1000 (retries per call), got 0"),
        ({"ratio": -0.2}, ValueError, "ratio must be a finite number from 0.001 to 1000"),
        ({"ratio": 0.0004}, ValueError, "ratio must be a finite number from 0.001 to 1000"),
        ({"ratio": 1000.5}, ValueError, "ratio must be a finite number from 0.001 to 1000"),
        ({"ratio": math.nan}, ValueError, "ratio must be a finite number from 0.001 to 1000 (retries per call), got nan"),
        ({"ratio": math.inf}, ValueError, "ratio must be a finite number"),
        ({"ratio": "0.2"}, TypeError, "ratio must be a finite number from 0.001 to 1000 (retries per call), got str"),
        ({"ratio": True}, TypeError, "ratio must be a finite number from 0.001 to 1000 (retries per call), got bool"),
        ({"ratio": None}, TypeError, "ratio must be a finite number"),
        ({"min_per_second": -1}, ValueError, "min_per_second must be an int from 0 to 1000000000, got -1"),
        ({"min_per_second": 10**9 + 1}, ValueError, "min_per_second must be an int from 0 to 1000000000"),
        ({"min_per_second": 2.5}, TypeError, "min_per_second must be an int from 0 to 1000000000, got float"),
        ({"min_per_second": True}, TypeError, "min_per_second must be an int from 0 to 1000000000, got bool"),
        ({"min_per_second": "10"}, TypeError, "min_per_second must be an int"),
        ({"ttl": 0}, ValueError, "ttl must be a finite number of seconds from 0.001 to 3600, got 0"),
        ({"ttl": -1.0}, ValueError, "ttl must be a finite number of seconds from 0.001 to 3600, got -1.0"),
        ({"ttl": 0.0005}, ValueError, "ttl must be a finite number of seconds from 0.001 to 3600"),
        ({"ttl": 3601}, ValueError, "ttl must be a finite number of seconds from 0.001 to 3600"),
        ({"ttl": math.nan}, ValueError, "ttl must be a finite number of seconds"),
        ({"ttl": math.inf}, ValueError, "ttl must be a finite number of seconds"),
        ({"ttl": timedelta(0)}, ValueError, "ttl must be a finite number of seconds from 0.001 to 3600"),
        ({"ttl": timedelta(hours=2)}, ValueError, "ttl must be a finite number of seconds from 0.001 to 3600"),
        ({"ttl": "10s"}, TypeError, "ttl must be seconds (float) or a timedelta, got str"),
        ({"ttl": None}, TypeError, "ttl must be seconds (float) or a timedelta, got NoneType"),
        ({"ttl": False}, TypeError, "ttl must be seconds (float) or a timedelta, got bool"),
    ],
)
def test_bad_configuration(kwargs: dict[str, Any], error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=f"^{re.escape(message)}"):
        RetryBudget(**kwargs)


def test_configuration_is_keyword_only() -> None:
    with pytest.raises(TypeError):
        RetryBudget(0.2)  # type: ignore[call-arg, arg-type]


def test_the_extremes_of_each_range_are_accepted(clock: FakeClock) -> None:
    low = RetryBudget(ratio=0.001, min_per_second=0, ttl=0.001)
    assert (low.ratio, low.min_per_second, low.ttl, low.balance) == (0.001, 0, 0.001, 0.0)
    high = RetryBudget(ratio=1000, min_per_second=10**9, ttl=timedelta(hours=1))
    assert high.balance == 3600 * 10**9
    high.deposit()
    assert high.balance == 3600 * 10**9 + 1000


def test_properties_and_repr() -> None:
    budget = RetryBudget(ratio=1 / 3, min_per_second=2, ttl=timedelta(seconds=30))
    assert budget.ratio == 0.333  # kept to the nearest 0.001
    assert budget.min_per_second == 2
    assert budget.ttl == 30.0
    assert budget.granularity == 3.0
    assert repr(budget) == "RetryBudget(ratio=0.333, min_per_second=2, ttl=30)"
    assert repr(RetryBudget()) == "RetryBudget(ratio=0.2, min_per_second=10, ttl=10)"


def test_an_unconfigured_core_refuses_to_work() -> None:
    core = _core.RetryBudgetCore()
    for call in (core.deposit, core.try_withdraw, core._balance):
        with pytest.raises(ValueError, match=r"^retry budget \(not configured\): invalid argument"):
            call()


def test_it_runs_on_brace_s_clock() -> None:
    budget = RetryBudget(ratio=1, min_per_second=0, ttl=0.001)
    with brace.testing.fake_clock() as clock:
        budget.deposit()
        assert budget.balance == 1.0
        clock.advance(0.001)  # no real time passes
        assert budget.balance == 0.0


def test_threads_sharing_one_budget_never_spend_a_token_twice(clock: FakeClock) -> None:
    budget = RetryBudget(ratio=0.2, min_per_second=5, ttl=10)  # floor: 50 tokens
    deposits = [0] * 8
    admitted = [0] * 8
    overdrawn: list[float] = []
    barrier = threading.Barrier(8)

    def work(slot: int) -> None:
        barrier.wait()
        for i in range(5000):
            if i % 3:
                budget.deposit()
                deposits[slot] += 1
            elif budget.try_withdraw():
                admitted[slot] += 1
                if budget.balance < 0:  # frozen: nothing expires, so never
                    overdrawn.append(budget.balance)

    threads = [threading.Thread(target=work, args=(slot,)) for slot in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert overdrawn == []
    total_milli = 50_000 + 200 * sum(deposits)
    assert sum(admitted) * 1000 <= total_milli
    assert budget._balance() == total_milli - 1000 * sum(admitted)  # no update lost
    drained = sum(iter(budget.try_withdraw, False))
    assert sum(admitted) + drained == total_milli // 1000  # spent to the last token


def _refusing() -> RetryBudget:
    return RetryBudget(ratio=0.2, min_per_second=0)


def _admitting() -> RetryBudget:
    return RetryBudget(ratio=1000, min_per_second=10**9, ttl=3600)


@pytest.mark.parametrize(
    "make_call",
    [
        lambda: RetryBudget().deposit,
        lambda: _admitting().try_withdraw,
        lambda: _refusing().try_withdraw,
    ],
    ids=["deposit", "try_withdraw-admitted", "try_withdraw-refused"],
)
def test_a_million_calls_allocate_nothing(make_call: Any) -> None:
    assert blocks_kept(make_call()) <= 2


def test_reconfigure_keeps_the_window_and_values_its_deposits_at_the_new_ratio() -> None:
    with brace.testing.fake_clock():
        budget = brace.RetryBudget(ratio=0.2, min_per_second=0, ttl=10.0)
        for _ in range(10):
            budget.deposit()
        assert budget.balance == pytest.approx(2.0)
        assert budget.try_withdraw()
        budget.reconfigure(ratio=0.5)
        assert budget.balance == pytest.approx(4.0) and budget.ratio == pytest.approx(0.5)
        budget.reconfigure(min_per_second=1)  # the ratio given before stays
        assert budget.balance == pytest.approx(14.0) and budget.ratio == pytest.approx(0.5)
        budget.reconfigure(ratio=0.05, min_per_second=0)
        assert budget.balance == pytest.approx(-0.5) and not budget.try_withdraw()


@pytest.mark.parametrize("changes, error", [({"ratio": 0}, ValueError), ({"ratio": "0.2"}, TypeError),
                                            ({"min_per_second": -1}, ValueError)])  # fmt: skip
def test_reconfigure_refuses_what_the_constructor_refuses_and_changes_nothing(changes: dict[str, Any],
                                                                              error: type[Exception]) -> None:  # fmt: skip
    budget = brace.RetryBudget(ratio=0.2, min_per_second=3)
    with pytest.raises(error):
        budget.reconfigure(**changes)
    assert budget.ratio == pytest.approx(0.2) and budget.min_per_second == 3
