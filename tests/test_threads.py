"""Python threads sharing one limiter (the C tests cover real parallelism under TSan)."""

from __future__ import annotations

import threading

import pytest

import brace
from brace.testing import FakeClock


def test_threads_under_a_frozen_clock_admit_exactly_burst(clock: FakeClock) -> None:
    lim = brace.RateLimiter(rate=1, burst=2500)
    admitted = [0] * 8
    barrier = threading.Barrier(8)

    def hammer(slot: int) -> None:
        barrier.wait()
        for i in range(2000):
            n = 1 + i % 3
            if lim.try_acquire(n):
                admitted[slot] += n

    threads = [threading.Thread(target=hammer, args=(slot,)) for slot in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(admitted) <= 2500
    assert lim.state().remaining == 2500 - sum(admitted)
    assert 2500 - sum(admitted) < 3  # drained to less than the largest request


def test_threads_waiting_in_acquire_each_get_their_own_slot(clock: FakeClock) -> None:
    lim = brace.RateLimiter(rate=100, burst=1)
    lim.try_acquire()
    start = clock.now()
    threads = [threading.Thread(target=lim.acquire) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # eight bookings of one 10 ms slot each, whatever the interleaving
    assert clock.now() - start == pytest.approx(0.08)
    assert lim.state().reset_after == pytest.approx(0.01)
