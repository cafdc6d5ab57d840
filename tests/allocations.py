"""How many memory blocks a call leaves allocated when repeated: the success paths' no-allocation
promise, measured the same way by every test that checks it."""

from __future__ import annotations

import gc
import sys
from collections.abc import Callable


def blocks_kept(call: Callable[[], object], times: int = 1_000_000) -> int:
    """The blocks `sys.getallocatedblocks()` counts more after `times` calls than before them
    (after 1,000 calls to warm up caches and specializations, and a collection)."""
    for _ in range(1000):
        call()
    gc.collect()
    before = sys.getallocatedblocks()
    for _ in range(times):
        call()
    return sys.getallocatedblocks() - before
