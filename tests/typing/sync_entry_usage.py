"""Checked by mypy --strict in tests/test_typing.py: sync entry points reject coroutine
functions for type checkers too (at run time they raise TypeError), bare decorators."""

from __future__ import annotations

from typing_extensions import assert_type

import brace

cb = brace.CircuitBreaker(name="typing-sync-entry")
bh = brace.Bulkhead(max_concurrent=2)
retry = brace.Retry(on=ConnectionError)
policy = brace.Policy(breaker=cb)


async def fetch(key: str) -> bytes:
    return key.encode()


def fetch_sync(key: str) -> bytes:
    return key.encode()


async def misuse() -> None:
    await cb.call(fetch, "k")  # type: ignore[misc]
    await bh.call(fetch, "k")  # type: ignore[misc]
    await retry.call(fetch, "k")  # type: ignore[misc]
    await policy.call(fetch, "k")  # type: ignore[misc]


async def right_use() -> None:
    assert_type(cb.call(fetch_sync, "k"), bytes)
    assert_type(bh.call(fetch_sync, "k"), bytes)
    assert_type(retry.call(fetch_sync, "k"), bytes)
    assert_type(policy.call(fetch_sync, "k"), bytes)
    assert_type(await cb.call_async(fetch, "k"), bytes)
    assert_type(await bh.call_async(fetch, "k"), bytes)
    assert_type(await retry.call_async(fetch, "k"), bytes)
    assert_type(await policy.call_async(fetch, "k"), bytes)


@brace.retry
def bare(key: str, *, page: int = 1) -> bytes:
    return key.encode() * page


assert_type(bare("a", page=2), bytes)
assert_type(brace.retry(on=ConnectionError, attempts=2), brace.Retry)
brace.retry(attempts="3")  # type: ignore[call-overload]
brace.CircuitBreaker(fetch_sync)  # type: ignore[arg-type]
brace.Bulkhead(fetch_sync, max_concurrent=1)  # type: ignore[arg-type]
