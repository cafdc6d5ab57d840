"""Where a shared primitive keeps its state: the `store=` argument.

`store=None` keeps the state in the object (this process's threads share it);
`store="shm://REGION"` keeps it in a named POSIX shared-memory region
(csrc/region.c), in the slot named by the primitive's `name`, so that every
process on the machine that opens the same region and name decides on one
state. One region is opened (mapped) per name per process and kept for the
process's life; a fork()ed child inherits the mapping and its cache entry.
"""

from __future__ import annotations

import os
import threading

from brace._core import REGION_CAPACITY_MAX, REGION_CAPACITY_MIN, REGION_NAME_MAX, SharedRegion

__all__ = ["DEFAULT_SIZE", "SCHEME", "check_region_name", "mismatch", "parse", "region", "slot_name", "unlink"]

SCHEME = "shm://"
DEFAULT_SIZE = 64 << 20  # bytes: sparse, so only the pages used cost memory
_FORMS = ("None or 'shm://REGION' (optionally 'shm://REGION?size=BYTES'); a RateLimiter, KeyedRateLimiter, "
          "CircuitBreaker or RetryBudget also takes a 'redis://', 'rediss://' or 'unix://' URL or a Redis client")
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
_NAME_MAX = 200
_SUFFIXES = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}

_regions: dict[str, SharedRegion] = {}
_lock = threading.Lock()


def _after_fork_in_child() -> None:
    """A child forked while another thread held the lock gets a free one (its mappings stay)."""
    global _lock
    _lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def parse(store: object) -> tuple[str, int] | None:
    """(region name, size in bytes) from a `store=` value, or None for a local state."""
    if store is None:
        return None
    if not isinstance(store, str):
        raise TypeError(f"store must be {_FORMS}, got {type(store).__name__}")
    if not store.startswith(SCHEME):
        raise ValueError(f"store must be {_FORMS}, got {store!r}: only the shm:// scheme is supported here")
    name, _, query = store[len(SCHEME) :].partition("?")
    check_region_name(name, f"store {store!r}")
    size = DEFAULT_SIZE
    if query:
        key, equals, value = query.partition("=")
        if key != "size" or not equals:
            raise ValueError(f"store {store!r}: the only option is size=BYTES (such as ?size=16M), got {query!r}")
        size = _size(value, store)
    return name, size


def check_region_name(name: object, what: str) -> str:
    """The region's name, checked: 1 to 200 characters of A-Z a-z 0-9 . _ -"""
    if not isinstance(name, str) or not 1 <= len(name) <= _NAME_MAX or not set(name) <= _NAME_CHARS:
        raise ValueError(f"{what}: a region name is 1 to {_NAME_MAX} characters of A-Z a-z 0-9 . _ -, got {name!r}")
    return name


def _size(text: str, store: str) -> int:
    digits, multiplier = text, 1
    if text[-1:].lower() in _SUFFIXES:
        digits, multiplier = text[:-1], _SUFFIXES[text[-1].lower()]
    if not digits.isdigit() or not digits.isascii():
        raise ValueError(f"store {store!r}: size must be a whole number of bytes, with an optional K, M or G suffix")
    size = int(digits) * multiplier
    if not REGION_CAPACITY_MIN <= size <= REGION_CAPACITY_MAX:
        raise ValueError(f"store {store!r}: size must be {REGION_CAPACITY_MIN} (1M) to {REGION_CAPACITY_MAX} (1024G) "
                         f"bytes, got {size}")  # fmt: skip
    return size


def slot_name(name: object, kind: str) -> str:
    """The slot of a shared primitive: its `name`, required, at most REGION_NAME_MAX bytes."""
    if name is None:
        raise ValueError(f"a shared {kind} (store='shm://...') needs a name=: its slot in the region")
    if not isinstance(name, str) or not 1 <= len(name.encode()) <= REGION_NAME_MAX or "\0" in name:
        raise ValueError(f"the name of a shared {kind} is 1 to {REGION_NAME_MAX} bytes of UTF-8, got {name!r}")
    return name


def region(name: str, size: int) -> SharedRegion:
    """This process's mapping of the region `name`, opened (or created with `size` bytes) once."""
    with _lock:
        opened = _regions.get(name)
        if opened is None:
            opened = _regions[name] = SharedRegion(name, size)
        return opened


def mismatch(store: object, slot: str, kind: str, fields: list[tuple[str, object, object]] | None) -> str:
    """Why a slot refused a configuration: `fields` (parameter, there, here) that differ, or
    None when the slot holds another kind of primitive."""
    where = f"store {store!r} holds {slot!r}"
    if fields is None:
        return f"{where} as another kind of primitive than a {kind}; choose another name (or brace.shm.unlink " \
               "the region)"  # fmt: skip
    differ = "; ".join(f"{field}: {there} there, {here} here" for field, there, here in fields)
    return (f"{where} with another configuration ({differ}); every process must configure the shared {kind} "
            "alike (or brace.shm.unlink the region to start afresh)")  # fmt: skip


def unlink(name: str) -> bool:
    """Removes the region `name`; False when there was none. Primitives that use it keep it."""
    check_region_name(name, "region")
    with _lock:
        _regions.pop(name, None)
        return bool(SharedRegion.unlink(name))
