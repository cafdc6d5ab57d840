"""Checked by mypy --strict: a Fallback keeps signatures and adds Degraded to the result."""

from __future__ import annotations

from typing import Any, Callable, Coroutine

from typing_extensions import assert_type

from brace.fallback import Degraded, Fallback

fb = Fallback(Fallback.cached(max_age=30), Fallback.value(b""), name="blobs")


@fb
def fetch(key: str, *, page: int = 1) -> bytes:
    return key.encode() * page


@fb
async def fetch_async(key: str) -> int:
    return len(key)


assert_type(fetch("a", page=2), bytes | Degraded[bytes])
keeps_coroutine_type: Callable[[str], Coroutine[Any, Any, int | Degraded[int]]] = fetch_async
assert_type(fb.call(len, "abc"), int | Degraded[int])


async def count(key: str) -> int:
    return len(key)


async def use() -> None:
    assert_type(await fb.call_async(count, "k"), int | Degraded[int])


fetch(1)  # type: ignore[arg-type]
Fallback.cached(max_age="1m")  # type: ignore[arg-type]
