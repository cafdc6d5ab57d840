"""recovery.stats()'s recovery times: an exact mean and a p95 within RELATIVE_ERROR, in bounded memory."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from brace.classify import Category
from brace.recovery._stats import RELATIVE_ERROR, Book, _Times

# Recovery times within the span the histogram keeps apart (a factor of 5 * 10^8), and times under
# 1 ns, which count as 0.
TIMES = st.lists(
    st.one_of(st.floats(min_value=1e-6, max_value=100.0), st.sampled_from([0.0, 1e-10])), min_size=1, max_size=300
)


def exact(times: list[float], q: float) -> float:
    """The reference model: the q-quantile by nearest rank over every time kept."""
    ordered = sorted(times)
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]


def close(estimate: float | None, truth: float) -> bool:
    assert estimate is not None
    if truth < 1e-9:
        return estimate == 0.0
    return abs(estimate - truth) <= RELATIVE_ERROR * truth


def book(times: dict[Category, list[float]]) -> Book:
    kept = Book()
    for category, recoveries in times.items():
        for seconds in recoveries:
            kept.failed_call(category, transient=True, ending="recovered", attempts=2, rejected=0, escalated=False,
                             dead_lettered=False, recovery_time=seconds)  # fmt: skip
    return kept


@given(timeouts=TIMES, network=TIMES)
def test_p95_is_within_the_relative_error_and_the_mean_is_exact(timeouts: list[float], network: list[float]) -> None:
    stats = book({Category.TIMEOUT: timeouts, Category.NETWORK_ERROR: network}).snapshot()
    for category, times in ((Category.TIMEOUT, timeouts), (Category.NETWORK_ERROR, network)):
        row = stats.by_category[category.value]
        assert close(row.p95_recovery_time, exact(times, 0.95)), (row, exact(times, 0.95))
        assert row.mean_recovery_time == sum(times) / len(times)
    every = timeouts + network
    assert close(stats.p95_recovery_time, exact(every, 0.95))
    assert stats.mean_recovery_time is not None and math.isclose(stats.mean_recovery_time, sum(every) / len(every))


@given(times=TIMES, q=st.floats(min_value=0.0, max_value=1.0))
def test_every_quantile_is_within_the_relative_error(times: list[float], q: float) -> None:
    kept = _Times()
    for seconds in times:
        kept.add(seconds)
    assert close(kept.quantile(q), exact(times, q))


def test_no_recoveries_have_no_times() -> None:
    assert _Times().quantile(0.95) is None and _Times().mean() is None
    stats = book({Category.TIMEOUT: []}).snapshot()
    assert stats.p95_recovery_time is None and stats.mean_recovery_time is None


def test_memory_stays_bounded_however_many_and_however_spread_the_times() -> None:
    kept = _Times()
    times = [step * 10.0**exponent for exponent in range(-9, 10) for step in range(1, 1001)]  # 1 ns to 10^12 s
    for seconds in times:
        kept.add(seconds)
    assert kept.count == 19_000
    assert len(kept._counts) == 1024  # a span of 10^21 in 1,024 buckets, of 8 bytes each
    # The long times keep their accuracy; only those 5 * 10^8 times shorter than the longest are merged.
    for q in (index / 100 for index in range(101)):
        estimate, truth = kept.quantile(q), exact(times, q)
        assert estimate is not None
        if truth * 5e8 >= max(times):
            assert close(estimate, truth), q
        else:
            assert estimate >= truth, q  # merged: read as longer, never shorter
    assert kept.quantile(0.0) == kept.quantile(0.05)  # the shortest times share the lowest bucket


def test_a_time_far_longer_than_the_rest_merges_them_and_keeps_the_count() -> None:
    kept = _Times()
    for _ in range(99):
        kept.add(1e-6)
    kept.add(1e9)  # 10^15 times longer
    assert kept.count == 100 and close(kept.quantile(1.0), 1e9)
    assert len(kept._counts) == 1024
    median = kept.quantile(0.5)
    assert median is not None and median > 1e-6  # merged: read as longer, never lost
