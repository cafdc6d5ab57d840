"""Property tests: the compiled limiter against a small reference model.

The model is a plain token bucket kept in integer nanoseconds of credit
(refilled 1 ns per ns, capped at burst x interval): a different formulation
from the core's GCRA, so agreement is evidence, not a tautology.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import brace
from brace._config import NS_PER_SECOND


@dataclass
class TokenBucketModel:
    interval: int
    burst: int
    credit: int = 0
    now: int = 0

    def __post_init__(self) -> None:
        self.credit = self.interval * self.burst

    def advance(self, dt: int) -> None:
        self.now += dt
        self.credit = min(self.credit + dt, self.interval * self.burst)

    def try_acquire(self, n: int) -> bool:
        if self.credit >= n * self.interval:
            self.credit -= n * self.interval
            return True
        return False

    def remaining(self) -> int:
        return self.credit // self.interval

    def retry_after(self, n: int = 1) -> int:
        return max(0, n * self.interval - self.credit)


operation = st.one_of(
    st.tuples(st.just("advance"), st.integers(0, 3 * NS_PER_SECOND)),
    st.tuples(st.just("try_acquire"), st.integers(1, 8)),
    st.tuples(st.just("peek"), st.integers(1, 8)),
    st.tuples(st.just("state"), st.just(0)),
)


@pytest.mark.slow  # many examples: the README's command runs it, the inner loop does not
@settings(max_examples=300, deadline=None)
@given(
    events=st.integers(1, 1000),
    per_ms=st.integers(1, 5000),
    burst=st.integers(8, 40),
    ops=st.lists(operation, max_size=60),
)
def test_matches_the_token_bucket_model(events: int, per_ms: int, burst: int, ops: list[tuple[str, int]]) -> None:
    with brace.testing.fake_clock() as clock:
        lim = brace.RateLimiter(rate=events, per=per_ms / 1000, burst=burst)
        interval = round(per_ms * 1_000_000 / events)
        model = TokenBucketModel(interval, burst)
        for name, arg in ops:
            if name == "advance":
                clock.advance(arg / NS_PER_SECOND)
                model.advance(arg)
            elif name == "try_acquire":
                assert lim.try_acquire(arg) == model.try_acquire(arg)
            elif name == "peek":
                assert lim.peek(arg) == (model.retry_after(arg) == 0)
            else:
                state = lim.state()
                assert state.remaining == model.remaining()
                assert round(state.retry_after * NS_PER_SECOND) == model.retry_after()
                assert round(state.reset_after * NS_PER_SECOND) == model.interval * burst - model.credit


@settings(max_examples=200, deadline=None)
@given(
    burst=st.integers(1, 50),
    taken=st.integers(0, 50),
    old_rate=st.integers(1, 100),
    new_rate=st.integers(1, 100),
    new_burst=st.integers(1, 50),
)
def test_reconfigure_keeps_the_count_of_tokens_taken(
    burst: int, taken: int, old_rate: int, new_rate: int, new_burst: int
) -> None:
    taken = min(taken, burst)
    with brace.testing.fake_clock():
        lim = brace.RateLimiter(rate=old_rate, burst=burst)
        if taken:
            assert lim.try_acquire(taken)
        lim.reconfigure(rate=new_rate, burst=new_burst)
        assert lim.state().remaining == max(0, new_burst - taken)
        # every taken token comes back at the new rate (intervals are whole ns)
        new_interval = round(NS_PER_SECOND / new_rate)
        assert round(lim.state().reset_after * NS_PER_SECOND) == taken * new_interval
