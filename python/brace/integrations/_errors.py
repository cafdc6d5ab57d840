"""The HTTP integrations' own rejection."""

from __future__ import annotations

from brace.errors import Rejected

__all__ = ["HostThrottled"]


class HostThrottled(Rejected):
    """A host asked its callers to pause (429/503 with a wait, or a spent quota), and this
    request was not sent: the host's throttle is "reject", or the pause outlasts the
    request's deadline.

    Attributes:
        host: The host's key.
        retry_after: Seconds until the host reopens.
        waited: Whether the request would have waited (throttle "wait") had the pause fit
            in its deadline.
    """

    def __init__(self, *, host: str, retry_after: float, waited: bool) -> None:
        super().__init__(host, retry_after, waited)
        self.host = host
        self.retry_after = retry_after
        self.waited = waited

    def __str__(self) -> str:
        why = "longer than the request's deadline allows" if self.waited else "and its throttle is 'reject'"
        return f"host {self.host} is paused for {self.retry_after:.3g} s more, {why}: request not sent"
