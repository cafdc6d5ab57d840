"""brace.LatencyHistogram: percentiles against the exact ones of a sorted list, recency
on brace's fake clock, threads, and bad input."""

from __future__ import annotations

import math
import threading
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

import brace
from brace.testing import FakeClock

NS = 1_000_000_000
LOW_NS, HIGH_NS = 2**10, 2**38  # the range the 6.25% bound holds for


def nearest_rank(sorted_ns: list[int], q: float) -> int:
    """The reference: the value at rank ceil(q% of n), at least the first."""
    rank = max(1, math.ceil(round(q * 10_000) * len(sorted_ns) / 1_000_000))
    return sorted_ns[rank - 1]


@given(
    durations=st.lists(st.integers(LOW_NS, HIGH_NS - 1), min_size=1, max_size=300),
    q=st.sampled_from([0, 1, 10, 50, 90, 95, 99, 99.9, 100]) | st.floats(0, 100),
)
def test_a_percentile_is_within_a_sixteenth_of_the_exact_one(durations: list[int], q: float) -> None:
    with brace.testing.fake_clock(autojump=None):
        histogram = brace.LatencyHistogram(min_samples=1)
        for duration in durations:
            histogram.record_ns(duration)
        exact = nearest_rank(sorted(durations), q)
        got = histogram.percentile(q)
        assert got is not None
        assert abs(got * NS - exact) <= exact / 16 + 1  # + 1: the float round trip
        assert histogram.count == len(durations)


def test_no_answer_until_min_samples(clock: FakeClock) -> None:
    histogram = brace.LatencyHistogram(min_samples=3)
    histogram.record(0.010)
    histogram.record(timedelta(milliseconds=20))
    assert histogram.percentile(50) is None
    histogram.record(0.030)
    p50 = histogram.percentile(50)
    assert p50 is not None and abs(p50 - 0.020) <= 0.020 / 16
    assert histogram.count == 3


def test_it_reads_the_current_and_the_previous_window_and_forgets_older(clock: FakeClock) -> None:
    histogram = brace.LatencyHistogram(window=1.0, min_samples=1)
    clock.advance_to(math.ceil(clock.now()) + 0.5)  # the middle of a window
    for _ in range(10):
        histogram.record(1.0)
    clock.advance(1.0)
    for _ in range(10):
        histogram.record(0.001)
    assert histogram.count == 20
    p100 = histogram.percentile(100)
    assert p100 is not None and p100 > 0.9  # the slow window is still read
    clock.advance(1.0)
    assert histogram.count == 10
    p100 = histogram.percentile(100)
    assert p100 is not None and p100 < 0.002  # only the fast one now
    clock.advance(2.0)
    assert histogram.count == 0
    assert histogram.percentile(50) is None


def test_threads_lose_no_record(clock: FakeClock) -> None:
    histogram = brace.LatencyHistogram(min_samples=1)
    start = threading.Barrier(4)

    def record() -> None:
        start.wait(timeout=30)
        for _ in range(2000):
            histogram.record(0.005)

    threads = [threading.Thread(target=record) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert histogram.count == 8000


def test_shortest_and_longest_durations_read_as_the_end_buckets(clock: FakeClock) -> None:
    histogram = brace.LatencyHistogram(min_samples=1)
    histogram.record(0)
    assert histogram.percentile(50) == 512 / NS
    histogram.record(10_000.0)
    assert histogram.percentile(100) == 2**38 / NS


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"window": 0}, ValueError, "window"),
        ({"window": 0.0001}, ValueError, "window must be a finite number of seconds from 0.001 to 86400"),
        ({"window": 86401}, ValueError, "window"),
        ({"window": "10s"}, TypeError, "window"),
        ({"min_samples": 0}, ValueError, "min_samples must be an int from 1"),
        ({"min_samples": 1.5}, TypeError, "min_samples"),
        ({"name": 3}, TypeError, "name"),
    ],
)
def test_bad_configuration_names_the_parameter(kwargs: dict[str, object], error: type[Exception], words: str) -> None:
    with pytest.raises(error, match=words):
        brace.LatencyHistogram(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("call", "error", "words"),
    [
        (lambda h: h.record(-1.0), ValueError, "seconds must be a finite number >= 0"),
        (lambda h: h.record(math.nan), ValueError, "seconds"),
        (lambda h: h.record("1"), TypeError, "seconds must be a float"),
        (lambda h: h.percentile(100.5), ValueError, "q must be a number from 0 to 100"),
        (lambda h: h.percentile(-1), ValueError, "q must be a number from 0 to 100"),
        (lambda h: h.percentile("p95"), TypeError, "q must be a number"),
    ],
)
def test_bad_input_names_the_parameter(call: object, error: type[Exception], words: str) -> None:
    histogram = brace.LatencyHistogram()
    with pytest.raises(error, match=words):
        call(histogram)  # type: ignore[operator]
