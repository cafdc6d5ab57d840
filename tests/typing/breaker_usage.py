"""Checked by mypy --strict in tests/test_typing.py: the breaker keeps signatures."""

from __future__ import annotations

from typing import Any, Callable, Coroutine

from typing_extensions import assert_type

import brace

cb = brace.CircuitBreaker(name="graph", window="time", window_size=30, minimum_calls=10)


@cb
def fetch(key: str, *, page: int = 1) -> bytes:
    return key.encode() * page


@cb
async def fetch_async(key: str) -> int:
    return len(key)


assert_type(fetch("a", page=2), bytes)
keeps_coroutine_type: Callable[[str], Coroutine[Any, Any, int]] = fetch_async
assert_type(cb.call(len, "abc"), int)
assert_type(cb.state, brace.BreakerState)
assert_type(cb.metrics().failure_rate, float | None)

fetch(1)  # type: ignore[arg-type]
brace.CircuitBreaker(window="sliding")  # type: ignore[arg-type]


def on_event(event: brace.BreakerEvent) -> None:
    assert_type(event.to_state, brace.BreakerState | None)


cb.add_listener(on_event, kinds=["state_transition"])


async def use_async() -> None:
    async with cb:
        pass
    with cb as entered:
        assert_type(entered, brace.CircuitBreaker)
    assert_type(await cb.call_async(fetch_async, "a"), int)
