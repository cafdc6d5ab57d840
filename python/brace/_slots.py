"""What a shared primitive's slot holds: its config bytes (csrc/region.c), read back.

When a process asks for a slot that another created with another
configuration, the region refuses (BRC_EEXIST) and these functions say which
of the primitive's parameters differ, in the words of its constructor.
"""

from __future__ import annotations

import struct
from typing import Any, Callable

from brace import _stores
from brace._core import KIND_BREAKER, KIND_BUDGET, KIND_GCRA, KIND_KEYED, KIND_LEASES

__all__ = ["breaker_mismatch", "budget_mismatch", "bulkhead_mismatch", "keyed_mismatch", "limiter_mismatch"]

_NS = 1e9


def limiter_mismatch(stored: tuple[int, bytes] | None, store: object, slot: str, interval: int, burst: int) -> str:
    """Why a shared limiter's slot refused this configuration: the fields that differ."""
    if stored is None or stored[0] != KIND_GCRA or len(stored[1]) != 16:
        return _stores.mismatch(store, slot, "RateLimiter", None)
    their_interval, their_burst = struct.unpack("=QQ", stored[1])
    fields: list[tuple[str, object, object]] = []
    if their_interval != interval:
        fields.append(("rate", f"{_NS / their_interval:g}/s", f"{_NS / interval:g}/s"))
    if their_burst != burst:
        fields.append(("burst", their_burst, burst))
    return _stores.mismatch(store, slot, "RateLimiter", fields)


def keyed_mismatch(stored: tuple[int, bytes] | None, store: object, slot: str, capacity: int, interval: int,
                   burst: int) -> str:  # fmt: skip
    """Why a shared keyed limiter's slot refused this configuration: the fields that differ."""
    kind = "KeyedRateLimiter"
    if stored is None or stored[0] != KIND_KEYED or len(stored[1]) != 24:
        return _stores.mismatch(store, slot, kind, None)
    their_capacity, their_interval, their_burst = struct.unpack("=QQQ", stored[1])
    fields: list[tuple[str, object, object]] = []
    if their_capacity != capacity:
        fields.append(("max_keys (table entries)", their_capacity, capacity))
    if their_interval != interval:
        fields.append(("rate", f"{_NS / their_interval:g}/s", f"{_NS / interval:g}/s"))
    if their_burst != burst:
        fields.append(("burst", their_burst, burst))
    return _stores.mismatch(store, slot, kind, fields)


# A shared breaker's config bytes (csrc/region.c): (parameter, setting, struct format) in their order.
_SHARED_FIELDS = (
    ("failure_rate_threshold", "failure_rate", "d"), ("slow_call_rate_threshold", "slow_rate", "d"),
    ("minimum_calls", "minimum_calls", "Q"), ("consecutive_failures", "consecutive_failures", "Q"),
    ("half_open_calls", "half_open_calls", "Q"), ("max_wait_in_half_open", "max_half_open_ns", "Q"),
    ("wait_in_open", "wait_base_ns", "Q"), ("wait_in_open_multiplier", "wait_multiplier", "d"),
    ("max_wait_in_open", "wait_max_ns", "Q"), ("wait_in_open_jitter", "wait_jitter", "d"),
    ("window", "window_kind", "Q"), ("window_size", "window_size", "Q"), ("window_bucket", "bucket_ns", "Q"),
)  # fmt: skip
_SHARED_FORMAT = "=" + "".join(kind for _, _, kind in _SHARED_FIELDS)


def breaker_mismatch(stored: tuple[int, bytes] | None, store: object, slot: str, settings: dict[str, Any]) -> str:
    """Why a shared breaker's slot refused these settings: the parameters that differ."""
    if stored is None or stored[0] != KIND_BREAKER or len(stored[1]) != struct.calcsize(_SHARED_FORMAT):
        return _stores.mismatch(store, slot, "CircuitBreaker", None)
    ours = {**settings, "bucket_ns": settings["bucket_ns"] if settings["window_kind"] == 2 else 0}
    fields: list[tuple[str, object, object]] = []
    for (parameter, key, _), there in zip(_SHARED_FIELDS, struct.unpack(_SHARED_FORMAT, stored[1])):
        if there != ours[key]:
            fields.append((parameter, _shown(key, there), _shown(key, ours[key])))
    return _stores.mismatch(store, slot, "CircuitBreaker", fields)


def _shown(key: str, value: Any) -> object:
    if key == "window_kind":
        return "count" if value == 1 else "time"
    return f"{value / _NS:g} s" if key.endswith("_ns") else value


def budget_mismatch(stored: tuple[int, bytes] | None, store: object, slot: str, ours: tuple[int, int, int]) -> str:
    """Why a shared retry budget's slot refused (ratio_milli, min_per_second, ttl_ns)."""
    if stored is None or stored[0] != KIND_BUDGET or len(stored[1]) != 24:
        return _stores.mismatch(store, slot, "RetryBudget", None)
    shown: tuple[tuple[str, Callable[[int], str]], ...] = (
        ("ratio", lambda milli: f"{milli / 1000:g}"), ("min_per_second", str), ("ttl", lambda ns: f"{ns / _NS:g} s"),
    )  # fmt: skip
    fields: list[tuple[str, object, object]] = [
        (name, show(there), show(here))
        for (name, show), there, here in zip(shown, struct.unpack("=QQQ", stored[1]), ours)
        if there != here
    ]
    return _stores.mismatch(store, slot, "RetryBudget", fields)


def bulkhead_mismatch(stored: tuple[int, bytes] | None, store: object, slot: str, max_concurrent: int) -> str:
    """Why a shared bulkhead's slot refused this max_concurrent."""
    if stored is None or stored[0] != KIND_LEASES or len(stored[1]) != 8:
        return _stores.mismatch(store, slot, "Bulkhead", None)
    (theirs,) = struct.unpack("=Q", stored[1])
    return _stores.mismatch(store, slot, "Bulkhead", [("max_concurrent", theirs, max_concurrent)])
