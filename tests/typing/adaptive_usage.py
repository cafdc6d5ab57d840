"""Checked by mypy --strict in tests/test_typing.py: the adaptive primitives keep signatures."""

from __future__ import annotations

from typing import Any, Callable, Coroutine

from typing_extensions import assert_type

import brace

adaptive = brace.AdaptiveRateLimiter(name="s3", max_wait=1.0)
throttle = brace.ClientThrottle(name="search", k=2.0, window=60.0)


@adaptive
def fetch(key: str, *, page: int = 1) -> bytes:
    return key.encode() * page


@throttle
async def search(query: str) -> int:
    return len(query)


assert_type(fetch("a", page=2), bytes)
keeps_coroutine_type: Callable[[str], Coroutine[Any, Any, int]] = search
loses_nothing: Callable[[str], Coroutine[Any, Any, str]] = search  # type: ignore[assignment]
assert_type(adaptive.try_acquire(), bool)
assert_type(adaptive.acquire(max_wait=0.5), float)
assert_type(adaptive.rate, float | None)
assert_type(adaptive.state().measured_rate, float)
assert_type(adaptive.call(fetch, "k"), bytes)
assert_type(throttle.try_acquire(), bool)
assert_type(throttle.reject_probability(), float)
assert_type(throttle.call(len, "abc"), int)
adaptive.record_success()
adaptive.record_throttle()
throttle.record(True)

fetch(1)  # type: ignore[arg-type]
search("a", limit=2)  # type: ignore[call-arg, unused-coroutine]
brace.ClientThrottle(k="2")  # type: ignore[arg-type]
brace.AdaptiveRateLimiter(burst=None)  # type: ignore[arg-type]


async def use_async() -> None:
    async with adaptive:
        pass
    with throttle as entered:
        assert_type(entered, brace.ClientThrottle)
    await adaptive.acquire_async(max_wait=0.5)
    assert_type(await throttle.call_async(search, "q"), int)
