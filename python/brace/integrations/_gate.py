"""The pause a host asked for, shared by every caller of that host in the process.

When one caller hears 429 or 503 with a wait (Retry-After, RateLimit, X-RateLimit-*), or a
response of any status says the quota is spent (`RateLimit-Remaining: 0` with its reset),
the host's gate closes until that instant. Every request to the host checks the gate before
it is sent: it waits for the reopening, or is rejected at once (brace.integrations.HostThrottled),
instead of each caller discovering the limit with a request of its own.
"""

from __future__ import annotations

import threading

from brace._core import now_ns
from brace._config import NS_PER_SECOND

__all__ = ["Gate"]


class Gate:
    """One host's pause: closed until an instant on brace's clock (ns), or open.

    Thread-safe: the reopening instant only moves later while it is in the future
    (two answers asking for different waits: the later one wins), so a short
    Retry-After heard after a long one does not reopen the host early.
    """

    __slots__ = ("until_ns", "_lock", "closings")

    def __init__(self) -> None:
        self.until_ns = 0  # 0: never closed (a request then needs no clock read)
        self._lock = threading.Lock()
        self.closings = 0  # how many answers closed or extended the pause

    def remaining(self, now: int | None = None) -> float:
        """Seconds until the host reopens (0.0 when open). The success path: one read."""
        until = self.until_ns
        if not until:
            return 0.0
        left = until - (now_ns() if now is None else now)
        return left / NS_PER_SECOND if left > 0 else 0.0

    def close_for(self, seconds: float, now: int | None = None) -> None:
        """Pauses the host for `seconds` from now, unless it is already paused for longer."""
        start = now_ns() if now is None else now
        until = start + round(seconds * NS_PER_SECOND)
        with self._lock:
            if until > self.until_ns:
                self.until_ns = until
                self.closings += 1

    def __repr__(self) -> str:
        left = self.remaining()
        return f"<Gate {'open' if not left else f'closed for {left:.3g} s'}>"
