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


def test_fake_clock_freezes_and_advances() -> None:
    with brace.testing.fake_clock() as clock:
        start = clock.now()
        time.sleep(0.01)
        assert clock.now() == start
        clock.advance(1.5)
        assert clock.now() == pytest.approx(start + 1.5)
        clock.advance(timedelta(milliseconds=250))
        assert clock.now() == pytest.approx(start + 1.75)
        clock.advance_to(start)  # never backwards
        assert clock.now() == pytest.approx(start + 1.75)
        clock.advance_to(start + 10)
        assert clock.now() == pytest.approx(start + 10)
    assert not clock_is_frozen()


def test_fake_clock_starts_at_real_time_and_thaws_on_error() -> None:
    before = now_ns()
    with pytest.raises(KeyError):
        with brace.testing.fake_clock() as clock:
            assert clock.now() * 1e9 >= before
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


def test_sleeps_advance_the_fake_clock_instead_of_sleeping() -> None:
    with brace.testing.fake_clock():
        start_real = time.monotonic()
        start = now_ns()
        sleep_until(start + 3600 * 10**9)
        assert now_ns() == start + 3600 * 10**9

        async def concurrent_sleeps() -> None:
            base = now_ns()
            await asyncio.gather(sleep_until_async(base + 2 * 10**9), sleep_until_async(base + 10**9))

        asyncio.run(concurrent_sleeps())
        assert now_ns() == start + 3602 * 10**9  # concurrent sleeps overlap
        assert time.monotonic() - start_real < 60  # an hour of sleeping took no hour


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
