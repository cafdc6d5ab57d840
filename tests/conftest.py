from __future__ import annotations

import gc
import math
import warnings
from collections.abc import Iterator

import pytest
from hypothesis import settings

import brace
from brace._core import clock_advance_to, now_ns
from brace.testing import FakeClock

_NS = 1_000_000_000


@pytest.fixture(autouse=True, scope="session")
def dead_letters_in_memory() -> Iterator[None]:
    """Recoveries given no store put their dead letters in memory, not in a file here."""
    with brace.testing.dead_letters_in_memory():
        yield


def awkward_time_ns(after_ns: int) -> int:
    """A time in ns, at least 1 ms after after_ns, where float seconds round worst.

    brace's clock counts nanoseconds since boot; events and `clock.now()` give
    it as float seconds. The time returned lies in the last millisecond below
    a power of two seconds, 2**k, and in seconds it is an odd multiple of the
    spacing of floats below 2**k. Any later time past 2**k lies on the doubled
    spacing above it, so the float difference of the two is never a whole or
    half number of seconds: a test that compares float times exactly fails
    here every time, not only when the machine's uptime happens to be just
    below a power of two. Compare such differences with an absolute tolerance
    of 1 us (floats below 2**32 s are spaced more finely) or in integer ns.
    """
    k = max(1, math.ceil(math.log2((after_ns + 1_000_000) / _NS)))
    top_ns = (1 << k) * _NS
    spacing = math.ulp(2.0 ** (k - 1))  # between floats in [2**(k-1), 2**k)
    for candidate in range(top_ns - 1, top_ns - 1_000_000, -1):
        if candidate / _NS / spacing % 2 == 1:
            return candidate
    raise AssertionError(f"no odd multiple of {spacing} s in the millisecond below 2**{k} s")


@pytest.fixture
def clock() -> Iterator[FakeClock]:
    """brace's clock, frozen for the test at awkward_time_ns()."""
    with brace.testing.fake_clock() as frozen:
        clock_advance_to(awkward_time_ns(now_ns()))
        yield frozen


@pytest.fixture
def no_coroutine_left_unawaited() -> Iterator[None]:
    """Makes a "coroutine was never awaited" RuntimeWarning fail the test."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        yield
        gc.collect()


def pytest_collection_finish(session: pytest.Session) -> None:
    # Everything alive once the tests are collected (modules, hypothesis, fixtures' code)
    # lives for the whole run: moved out of the collector's sight, so that the gc.collect()
    # of a test (no_coroutine_left_unawaited) scans only what tests made, not the world.
    gc.collect()
    gc.freeze()


# The inner loop (`pytest -m "not slow"`) runs every property test, on fewer examples;
# the README's command runs them on Hypothesis's full default.
settings.register_profile("inner", max_examples=15)


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("markexpr", "").replace(" ", "") == "notslow":
        settings.load_profile("inner")
