"""Checked by mypy --strict: a Recovery keeps signatures and adds Degraded to the result."""

from __future__ import annotations

from typing import Any, Callable, Coroutine

from typing_extensions import assert_type

import brace
from brace import Degraded

recovery = brace.Recovery(
    healing=[brace.HealingAction(lambda context: None, categories=["auth_expired"], name="refresh")],
    fallback=brace.Fallback(brace.Fallback.cached(max_age=60.0)),
    escalation=brace.EscalationPolicy(handlers=[brace.LoggingHandler()], wait=5.0, default="skip"),
    name="sync_sheet",
)


@recovery
def fetch(sheet: str, *, limit: int = 10) -> list[str]:
    return [sheet] * limit


@recovery
async def fetch_async(sheet: str) -> int:
    return len(sheet)


assert_type(fetch("a", limit=2), list[str] | Degraded[list[str]])
keeps_coroutine_type: Callable[[str], Coroutine[Any, Any, int | Degraded[int]]] = fetch_async
assert_type(recovery.call(len, "abc"), int | Degraded[int])


async def count(sheet: str) -> int:
    return len(sheet)


async def use() -> None:
    assert_type(await recovery.call_async(count, "k"), int | Degraded[int])


fetch(1)  # type: ignore[arg-type]
brace.Recovery(healing_time="2m")  # type: ignore[arg-type]
