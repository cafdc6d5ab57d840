"""The success path allocates nothing (counted, not timed)."""

from __future__ import annotations

import sys

import brace


def test_try_acquire_allocates_no_memory_over_a_million_calls() -> None:
    lim = brace.RateLimiter(rate=1e9, burst=10**9)
    try_acquire = lim.try_acquire
    for _ in range(1000):  # warm up caches and specializations
        try_acquire()
    before = sys.getallocatedblocks()
    for _ in range(1_000_000):
        try_acquire()
    assert sys.getallocatedblocks() - before <= 2


def test_a_rejected_try_acquire_allocates_nothing_either() -> None:
    lim = brace.RateLimiter(rate=1e-3, burst=1)
    lim.try_acquire()
    try_acquire = lim.try_acquire
    for _ in range(1000):
        try_acquire()
    before = sys.getallocatedblocks()
    for _ in range(200_000):
        assert not try_acquire()
    assert sys.getallocatedblocks() - before <= 2
