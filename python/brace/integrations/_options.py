"""The configuration every HTTP integration takes, checked once."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from brace._safe import safe_repr
from brace.integrations._credentials import Credentials
from brace.integrations._exchange import Exchange, Wire
from brace.integrations._hosts import Hosts, default_hosts

__all__ = ["exchange"]

DEFAULT_CORRELATION_HEADER = "X-Request-ID"


def exchange(wire: Wire, *, hosts: Hosts | None, credentials: Credentials | None,
             correlation_header: str | None, idempotency_key: bool,
             log: Callable[[Any], object] | None) -> Exchange[Any, Any]:  # fmt: skip
    """An Exchange for `wire`, each argument checked and named in its error."""
    if hosts is not None and not isinstance(hosts, Hosts):
        raise TypeError(f"hosts must be a brace.integrations.Hosts or None, got {safe_repr(hosts)}")
    if credentials is not None and not isinstance(credentials, Credentials):
        raise TypeError(f"credentials must be a brace.integrations.Credentials or None, got {safe_repr(credentials)}")
    if correlation_header is not None and (not isinstance(correlation_header, str) or not correlation_header.strip()):
        raise ValueError(f"correlation_header must be a header name or None, got {safe_repr(correlation_header)}")
    if not isinstance(idempotency_key, bool):
        raise TypeError(f"idempotency_key must be a bool, got {safe_repr(idempotency_key)}")
    if log is not None and not callable(log):
        raise TypeError(f"log must be a callable taking a brace.RecoveryEvent (a RecoveryLog, a sink) or None, "
                        f"got {safe_repr(log)}")  # fmt: skip
    return Exchange(wire, hosts=hosts if hosts is not None else default_hosts(), credentials=credentials,
                    correlation_header=correlation_header, idempotency_key=idempotency_key, log=log)  # fmt: skip
