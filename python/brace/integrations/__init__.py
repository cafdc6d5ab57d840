"""brace for HTTP clients: httpx, requests and aiohttp, each in its own module, loaded on use.

    brace.integrations.httpx      Transport, AsyncTransport
    brace.integrations.requests   Adapter

Shared by all: `Hosts` (per-host policies and pauses, bounded), `Credentials` (a token put on
each request and refreshed single-flight), `HostThrottled` (a request not sent because its
host asked for a pause). The client libraries are not dependencies of brace: install the one
you use.
"""

from __future__ import annotations

from brace.integrations._credentials import Credentials
from brace.integrations._errors import HostThrottled
from brace.integrations._exchange import IDEMPOTENT_METHODS
from brace.integrations._hosts import Host, Hosts, default_hosts, default_policy, origin

__all__ = ["IDEMPOTENT_METHODS", "Credentials", "Host", "HostThrottled", "Hosts", "default_hosts", "default_policy", "origin"]
