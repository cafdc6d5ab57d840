"""Checked by mypy --strict in tests/test_typing.py: the bulkhead keeps signatures."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Callable, Coroutine

from typing_extensions import assert_type

import brace

bh = brace.Bulkhead(max_concurrent=10, max_wait=timedelta(milliseconds=500), name="db")


@bh
def query(sql: str, *, limit: int = 10) -> list[str]:
    return [sql] * limit


@bh
async def query_async(sql: str) -> int:
    return len(sql)


async def fetch(url: str, *, retries: int = 0) -> bytes:
    return url.encode() * (retries + 1)


assert_type(query("select 1", limit=2), list[str])
keeps_coroutine_type: Callable[[str], Coroutine[Any, Any, int]] = query_async
loses_nothing: Callable[[str], Coroutine[Any, Any, str]] = query_async  # type: ignore[assignment]
assert_type(bh.call(query, "select 1", limit=3), list[str])
assert_type(bh.try_acquire(), bool)
assert_type(bh.release(), None)
assert_type(bh.in_use, int)
assert_type(bh.available, int)
assert_type(bh.waiting, int)
assert_type(bh.max_concurrent, int)
assert_type(bh.max_wait, float | None)
assert_type(bh.name, str | None)

query(1)  # type: ignore[arg-type]
query("a", limits=2)  # type: ignore[call-arg]
bh.call(query, "a", page=2)  # type: ignore[arg-type, call-arg]
brace.Bulkhead(max_concurrent="2")  # type: ignore[arg-type]
brace.Bulkhead(max_concurrent=2, max_wait=None)  # waits as long as it takes
brace.Bulkhead(2)  # type: ignore[arg-type, call-arg]
bh.reconfigure(max_concurrent=20, max_wait=1.0)


async def use_async() -> None:
    async with bh as entered_async:
        assert_type(entered_async, brace.Bulkhead)
    with bh as entered:
        assert_type(entered, brace.Bulkhead)
    assert_type(await bh.call_async(fetch, "https://example.org", retries=2), bytes)
    await bh.call_async(fetch, 3)  # type: ignore[arg-type]
    await bh.call_async(query, "a")  # type: ignore[arg-type]
