"""Checked by mypy --strict in tests/test_typing.py: retries keep signatures."""

from __future__ import annotations

from typing import Any, Callable, Coroutine

from typing_extensions import assert_type

import brace


@brace.retry(on=ConnectionError, attempts=5, backoff=brace.Backoff.exponential(max=10.0))
def fetch(key: str, *, page: int = 1) -> bytes:
    return key.encode() * page


retry = brace.Retry(on=(ConnectionError, TimeoutError), retry_on_result=lambda r: r is None)


@retry
async def fetch_async(key: str) -> int:
    return len(key)


assert_type(fetch("a", page=2), bytes)
keeps_coroutine_type: Callable[[str], Coroutine[Any, Any, int]] = fetch_async
assert_type(retry.call(len, "abc"), int)
fetch(1)  # type: ignore[arg-type]
brace.Retry(on=ConnectionError, attempts="3")  # type: ignore[arg-type]

for attempt in retry:
    with attempt:
        assert_type(attempt.check(fetch("a")), bytes)


async def use_async() -> None:
    assert_type(await retry.call_async(fetch_async, "a"), int)
    async for attempt in retry:
        with attempt:
            await fetch_async("a")


policy = brace.Policy(retry=retry, breaker=brace.CircuitBreaker(name="p"), fallback=lambda error: b"")


@policy
def guarded(key: str) -> bytes:
    return key.encode()


assert_type(guarded("a"), bytes)
assert_type(policy.call(len, "abc"), int)
brace.Policy(retry=3)  # type: ignore[arg-type]
