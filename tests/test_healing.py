"""HealingAction's configuration and HealingStats: records, Thompson sampling, JSON."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import brace
from brace import Category, HealingAction, HealingStats
from brace.healing import HealingContext, StrategyRecord


def refresh(context: HealingContext) -> None:
    """A healing action that does nothing."""


async def refresh_async(context: HealingContext) -> None:
    """An async one."""


class Reconnect:
    """A callable object without a __qualname__, whose repr raises."""

    def __call__(self, context: HealingContext) -> None:
        pass

    def __repr__(self) -> str:
        raise RuntimeError("repr")


class TestHealingAction:
    def test_a_callable_object_is_named_by_its_class(self) -> None:
        assert HealingAction(Reconnect(), categories="network_error").name == "Reconnect"

    def test_defaults(self) -> None:
        action = HealingAction(refresh, categories="auth_expired")
        assert action.name == "refresh"
        assert action.categories == frozenset({Category.AUTH_EXPIRED})
        assert action.undo is None
        assert not action.is_async
        assert "refresh" in repr(action) and "auth_expired" in repr(action)

    def test_categories_as_members_names_and_iterables(self) -> None:
        action = HealingAction(refresh, categories=[Category.TIMEOUT, "network_error"], name="reconnect")
        assert action.categories == frozenset({Category.TIMEOUT, Category.NETWORK_ERROR})
        assert action.name == "reconnect"

    @pytest.mark.parametrize("run, undo", [(refresh_async, None), (refresh, refresh_async)])
    def test_is_async_when_run_or_undo_is_a_coroutine_function(self, run: Any, undo: Any) -> None:
        assert HealingAction(run, categories="timeout", undo=undo).is_async

    @pytest.mark.parametrize(
        "kwargs, error, words",
        [
            ({"run": 3, "categories": "timeout"}, TypeError, "run must be callable"),
            ({"run": refresh, "categories": "timeout", "undo": "no"}, TypeError, "undo must be callable"),
            ({"run": refresh, "categories": "teleport"}, ValueError, "categories must be a brace.Category or one of"),
            ({"run": refresh, "categories": []}, ValueError, "at least one"),
            ({"run": refresh, "categories": 7}, TypeError, "categories must be"),
            ({"run": refresh, "categories": "timeout", "name": ""}, ValueError, "name must be a non-empty str"),
        ],
    )
    def test_bad_configuration(self, kwargs: dict[str, Any], error: type[Exception], words: str) -> None:
        with pytest.raises(error, match=words):
            HealingAction(**kwargs)


class TestHealingStats:
    def test_records_per_category_and_strategy(self) -> None:
        stats = HealingStats()
        stats.record(Category.TIMEOUT, "reconnect", healed=True, seconds=2.0)
        stats.record(Category.TIMEOUT, "reconnect", healed=True, seconds=4.0)
        stats.record(Category.TIMEOUT, "reconnect", healed=False, seconds=99.0)
        stats.record(Category.NETWORK_ERROR, "reconnect", healed=False)
        assert stats.get(Category.TIMEOUT, "reconnect") == StrategyRecord(healed=2, failed=1, recovery_time=6.0)
        assert stats.get(Category.TIMEOUT, "reconnect").tried == 3
        assert stats.get(Category.NETWORK_ERROR, "reconnect") == StrategyRecord(healed=0, failed=1)
        assert stats.get(Category.TIMEOUT, "never") == StrategyRecord()

    def test_one_candidate_is_not_a_choice(self) -> None:
        assert HealingStats().ranked(Category.TIMEOUT, ["only"]) == ["only"]
        assert HealingStats().ranked(Category.TIMEOUT, []) == []

    def test_thompson_sampling_prefers_what_heals(self) -> None:
        stats = HealingStats()
        for _ in range(30):
            stats.record(Category.SERVICE_DOWN, "switch_endpoint", healed=True, seconds=1.0)
            stats.record(Category.SERVICE_DOWN, "clear_cache", healed=False)
        brace.testing.seed(7)
        firsts = [stats.ranked(Category.SERVICE_DOWN, ["clear_cache", "switch_endpoint"])[0] for _ in range(200)]
        assert firsts.count("switch_endpoint") == 200  # Beta(31, 1) vs Beta(1, 31) never cross in practice

    def test_unseen_strategies_are_explored(self) -> None:
        stats = HealingStats()
        for _ in range(3):
            stats.record(Category.TIMEOUT, "mediocre", healed=True)
            stats.record(Category.TIMEOUT, "mediocre", healed=False)
        brace.testing.seed(11)
        firsts = [stats.ranked(Category.TIMEOUT, ["mediocre", "new"])[0] for _ in range(400)]
        # Beta(4, 4) against the uniform prior: each goes first about half the time.
        assert 120 < firsts.count("new") < 280

    def test_choices_are_reproducible_under_seed(self) -> None:
        stats = HealingStats()
        candidates = ["a", "b", "c", "d"]

        def draw() -> list[list[str]]:
            brace.testing.seed(2026)
            return [stats.ranked(Category.TIMEOUT, candidates) for _ in range(50)]

        first = draw()
        assert first == draw()
        assert len({tuple(order) for order in first}) > 1  # it does vary from draw to draw

    def test_threads_lose_no_record(self) -> None:
        stats = HealingStats()

        def work() -> None:
            for index in range(500):
                stats.record(Category.TIMEOUT, "reconnect", healed=index % 2 == 0, seconds=1.0)

        threads = [threading.Thread(target=work) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert stats.get(Category.TIMEOUT, "reconnect") == StrategyRecord(2000, 2000, 2000.0)

    @given(
        st.lists(
            st.tuples(st.sampled_from(list(Category)), st.sampled_from(["refresh", "reconnect", "retry"]),
                      st.booleans(), st.just(0.0) | st.floats(1e-9, 1e6)),  # fmt: skip
            max_size=40,
        )
    )
    def test_json_round_trip(self, events: list[tuple[Category, str, bool, float]]) -> None:
        stats = HealingStats()
        for category, strategy, healed, seconds in events:
            stats.record(category, strategy, healed=healed, seconds=seconds)
        text = stats.to_json()
        again = HealingStats.from_json(text)
        assert again.to_json() == text
        for category, strategy, _, _ in events:
            assert again.get(category, strategy) == stats.get(category, strategy)

    def test_json_shape(self) -> None:
        stats = HealingStats()
        stats.record(Category.AUTH_EXPIRED, "refresh", healed=True, seconds=0.5)
        assert json.loads(stats.to_json()) == {
            "version": 1,
            "records": [{"category": "auth_expired", "strategy": "refresh", "healed": 1, "failed": 0,
                         "recovery_time": 0.5}],  # fmt: skip
        }

    @pytest.mark.parametrize(
        "text, words",
        [
            ("not json", "text is not JSON"),
            ("[]", "HealingStats export"),
            ('{"version": 2, "records": []}', "HealingStats export"),
            ('{"version": 1, "records": [3]}', r"records\[0\] must be an object"),
            ('{"version": 1, "records": [{"category": "x", "strategy": "s"}]}', r"records\[0\].category"),
            ('{"version": 1, "records": [{"category": "timeout", "strategy": ""}]}', r"records\[0\].strategy"),
            ('{"version": 1, "records": [{"category": "timeout", "strategy": "s", "healed": -1, "failed": 0,'
             ' "recovery_time": 0}]}', r"records\[0\].healed must be an int from 0 to 2\*\*53 - 1, got -1"),  # fmt: skip
            ('{"version": 1, "records": [{"category": "timeout", "strategy": "s", "healed": 1, "failed": true,'
             ' "recovery_time": 0}]}', r"records\[0\].failed"),  # fmt: skip
            ('{"version": 1, "records": [{"category": "timeout", "strategy": "s", "healed": 1, "failed": 0,'
             ' "recovery_time": -2}]}', r"records\[0\].recovery_time"),  # fmt: skip
            # Counts no run records, which Thompson sampling cannot draw on:
            # betavariate raised OverflowError, or never returned.
            ('{"version": 1, "records": [{"category": "timeout", "strategy": "s", "healed": 9007199254740992,'
             ' "failed": 0, "recovery_time": 0}]}', r"records\[0\].healed must be an int from 0 to 2\*\*53 - 1, got 9007199254740992"),
            ('{"version": 1, "records": [{"category": "timeout", "strategy": "s", "healed": 0, "failed": 1' + "0" * 400 +
             ', "recovery_time": 0}]}', r"records\[0\].failed must be an int from 0 to 2\*\*53 - 1"),
            # Recovery times no run records: each healed case took under 2**62 ns.
            ('{"version": 1, "records": [{"category": "timeout", "strategy": "s", "healed": 1, "failed": 0,'
             ' "recovery_time": 1e308}]}', r"records\[0\].recovery_time must be a finite number of seconds from 0 to "
                                           r"healed x 4.61169e\+09 \(2\*\*62 ns per healed case\), got 1e\+308"),
            ('{"version": 1, "records": [{"category": "timeout", "strategy": "s", "healed": 0, "failed": 3,'
             ' "recovery_time": 0.5}]}', r"records\[0\].recovery_time must be .* got 0.5"),
            ('{"version": 1, "records": [{"category": "timeout", "strategy": "s", "healed": 1, "failed": 0,'
             ' "recovery_time": NaN}]}', r"records\[0\].recovery_time must be .* got nan"),
        ],
    )
    def test_bad_json(self, text: str, words: str) -> None:
        with pytest.raises(ValueError, match=words):
            HealingStats.from_json(text)

    def test_the_largest_import_ranks_records_and_exports(self) -> None:
        most = 2**53 - 1
        text = json.dumps({"version": 1, "records": [
            {"category": "timeout", "strategy": "a", "healed": most, "failed": most, "recovery_time": most * 4.6e9},
            {"category": "timeout", "strategy": "b", "healed": 0, "failed": most, "recovery_time": 0},
        ]})  # fmt: skip
        stats = HealingStats.from_json(text)
        brace.testing.seed(3)
        assert sorted(stats.ranked(Category.TIMEOUT, ["a", "b", "c"])) == ["a", "b", "c"]
        stats.record(Category.TIMEOUT, "a", healed=True, seconds=4e9)  # counts no more
        stats.record(Category.TIMEOUT, "b", healed=False)
        assert HealingStats.from_json(stats.to_json()).get(Category.TIMEOUT, "a") == stats.get(Category.TIMEOUT, "a")
        assert stats.get(Category.TIMEOUT, "b").failed == most
