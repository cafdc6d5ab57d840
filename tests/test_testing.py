"""brace.testing: the fake clock and reproducible jitter."""

from __future__ import annotations

import asyncio
import math
import time
from datetime import timedelta

import pytest

import brace
from brace._clock import sleep_until, sleep_until_async
from brace._core import clock_is_frozen, now_ns, rng_uniform
from brace.testing import FakeClock


def test_fake_clock_freezes_and_advances() -> None:
    with brace.testing.fake_clock() as clock:
        start, start_ns = clock.now(), now_ns()
        time.sleep(0.01)
        assert clock.now() == start
        clock.advance(1.5)
        assert now_ns() - start_ns == 1_500_000_000
        clock.advance(timedelta(milliseconds=250))
        assert now_ns() - start_ns == 1_750_000_000
        clock.advance_to(start)  # never backwards
        assert now_ns() - start_ns == 1_750_000_000
        clock.advance_to(start + 10)  # start + 10 in float seconds: exact to well under 1 us
        assert clock.now() == pytest.approx(start + 10, abs=1e-6)
    assert not clock_is_frozen()


@pytest.mark.parametrize("seconds", [0.001, 0.5, 1.0, 90.0])
def test_the_clock_fixture_starts_where_float_times_round_worst(clock: FakeClock, seconds: float) -> None:
    """conftest's `clock` makes an exact comparison of float times fail every time (awkward_time_ns)."""
    start = clock.now()
    clock.advance(seconds)
    assert clock.now() - start != seconds
    assert clock.now() - start == pytest.approx(seconds, abs=1e-6)


def test_fake_clock_starts_at_real_time_and_thaws_on_error() -> None:
    before = now_ns()
    with pytest.raises(KeyError):
        with brace.testing.fake_clock() as clock:
            assert clock.now() >= before / 1e9  # dividing by 1e9 keeps the order; multiplying back may not
            raise KeyError
    assert not clock_is_frozen()
    assert now_ns() >= before


def test_fake_clocks_nest_and_share_one_clock_until_the_outermost_ends() -> None:
    with brace.testing.fake_clock() as outer:
        with brace.testing.fake_clock() as inner:
            inner.advance(5.0)
        assert clock_is_frozen()  # the inner block's end does not thaw the outer one's clock
        before = outer.now_ns()
        outer.advance(1.0)
        assert outer.now_ns() - before == 10**9
    assert not clock_is_frozen()


@pytest.mark.parametrize("bad", [-1, math.nan, "1"])
def test_fake_clock_refuses_a_bad_autojump(bad: object) -> None:
    with pytest.raises((ValueError, TypeError), match="^autojump must be"):
        with brace.testing.fake_clock(autojump=bad):  # type: ignore[arg-type]
            pass  # pragma: no cover
    assert not clock_is_frozen()


@pytest.mark.parametrize("bad", [-1, math.nan, "1"])
def test_fake_clock_advance_rejects_bad_durations(bad: object) -> None:
    with brace.testing.fake_clock() as clock:
        with pytest.raises((ValueError, TypeError), match="^duration must be"):
            clock.advance(bad)  # type: ignore[arg-type]


def test_sleeps_advance_the_fake_clock_instead_of_sleeping(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_real_sleep(seconds: float) -> None:
        raise AssertionError(f"slept {seconds} s of real time under the fake clock")

    yield_once = asyncio.sleep

    async def only_yields(seconds: float) -> None:
        if seconds:
            no_real_sleep(seconds)
        await yield_once(0)

    monkeypatch.setattr(time, "sleep", no_real_sleep)
    monkeypatch.setattr(asyncio, "sleep", only_yields)
    with brace.testing.fake_clock():
        start = now_ns()
        sleep_until(start + 3600 * 10**9)
        assert now_ns() == start + 3600 * 10**9

        async def concurrent_sleeps() -> None:
            base = now_ns()
            await asyncio.gather(sleep_until_async(base + 2 * 10**9), sleep_until_async(base + 10**9))

        asyncio.run(concurrent_sleeps())
        assert now_ns() == start + 3602 * 10**9  # concurrent sleeps overlap: an hour and 2 s, none real


def test_seed_makes_jitter_reproducible() -> None:
    brace.testing.seed(1234)
    first = [rng_uniform() for _ in range(5)]
    brace.testing.seed(1234)
    assert [rng_uniform() for _ in range(5)] == first
    brace.testing.seed(1235)
    assert [rng_uniform() for _ in range(5)] != first
    assert all(0.0 <= u < 1.0 for u in first)


@pytest.mark.parametrize(("bad", "error"), [(-1, ValueError), (2**64, ValueError), (1.0, TypeError), (True, TypeError)])
def test_seed_rejects_values_outside_64_bits(bad: object, error: type[Exception]) -> None:
    with pytest.raises(error, match=r"^value must be an int from 0 to 2\*\*64 - 1"):
        brace.testing.seed(bad)  # type: ignore[arg-type]


def test_dead_letters_in_memory_replaces_the_default_store_for_the_block() -> None:
    from brace.deadletter import default_store

    outer = default_store()
    with brace.testing.dead_letters_in_memory() as store:
        assert default_store() is store
        with pytest.raises(brace.RecoveryFailed) as caught:
            brace.Recovery(escalation=brace.EscalationPolicy()).call(_not_found)
        assert store.get(caught.value.dead_letter or "").category == "not_found"
    assert default_store() is outer


def _not_found() -> None:
    raise FileNotFoundError(2, "No such file or directory")
