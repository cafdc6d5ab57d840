"""Checked by mypy --strict in tests/test_typing.py: decorators keep signatures."""

from __future__ import annotations

from typing import Any, Callable, Coroutine

from typing_extensions import assert_type

import brace

lim = brace.RateLimiter(rate="10/s", burst=5)


@lim
def fetch(key: str, *, page: int = 1) -> bytes:
    return key.encode() * page


@lim
async def fetch_async(key: str) -> int:
    return len(key)


assert_type(fetch("a", page=2), bytes)
keeps_coroutine_type: Callable[[str], Coroutine[Any, Any, int]] = fetch_async
loses_nothing: Callable[[str], Coroutine[Any, Any, str]] = fetch_async  # type: ignore[assignment]
assert_type(lim.try_acquire(2), bool)
assert_type(lim.acquire(max_wait=1.0), float)
assert_type(lim.state().retry_after, float)
assert_type(lim.state().headers(), dict[str, str])

fetch(1)  # type: ignore[arg-type]
fetch("a", pages=2)  # type: ignore[call-arg]
brace.RateLimiter(rate=1, burst="2")  # type: ignore[arg-type]


async def use_async() -> None:
    async with lim:
        pass
    with lim as entered:
        assert_type(entered, brace.RateLimiter)
    await lim.acquire_async(1, max_wait=0.5)
