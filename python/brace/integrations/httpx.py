"""brace for httpx: `Transport` and `AsyncTransport`, wrapping httpx's own transports.

    import httpx
    from brace.integrations.httpx import Transport

    client = httpx.Client(transport=Transport(), base_url="https://api.example.com")

Every request then goes through its host's brace.Policy (retries of idempotent
requests by brace's classifier with the server's pushback honoured, a retry
budget, a breaker per host), pauses with every other caller of a host that
asked for a pause, carries its credentials, correlation id and idempotency
key, is bounded by brace's deadline, and is logged. brace.integrations says
what each part does; the transport's own retries are off (`retries=0`), so
that no request escapes brace.
"""

from __future__ import annotations

from collections.abc import Callable
from operator import attrgetter

import httpx

from brace._core import any_name_holds, bound_phases
from brace.integrations._credentials import Credentials
from brace.integrations._exchange import QUOTA_MARK
from brace.integrations._hosts import Hosts, origin
from brace.integrations._options import DEFAULT_CORRELATION_HEADER, exchange
from brace.recovery import RecoveryEvent

__all__ = ["AsyncTransport", "Transport"]

_MARK = QUOTA_MARK.encode()


class _Wire:
    """httpx's requests and responses, as brace.integrations._exchange reads them."""

    # Read on every request: C getters, not Python functions.
    method = staticmethod(attrgetter("method"))
    status = staticmethod(attrgetter("status_code"))

    @staticmethod
    def host(request: httpx.Request) -> str:
        url = request.url
        return origin(url.scheme, url.host, url.port)

    @staticmethod
    def header(request: httpx.Request, name: str) -> str | None:
        value = request.headers.get(name)
        return None if value is None else str(value)

    @staticmethod
    def set_header(request: httpx.Request, name: str, value: str) -> None:
        request.headers[name] = value

    @staticmethod
    def may_have_quota_fields(response: httpx.Response) -> bool:
        return any_name_holds(response.headers.raw, _MARK)


_PHASES = ("connect", "read", "write", "pool")


def _bound(request: httpx.Request, timeout: float) -> None:
    """Makes each of the request's timeouts no longer than `timeout` (brace's deadline)."""
    bounded = bound_phases(request.extensions.get("timeout") or {}, _PHASES, timeout)
    if bounded is not None:
        request.extensions["timeout"] = bounded


class Transport(httpx.BaseTransport):
    """An httpx transport that runs every request through brace.

    Args:
        transport: The transport that sends (default httpx.HTTPTransport(retries=0)).
        hosts: The per-host state (brace.integrations.Hosts); default the one every
            client of the process shares.
        credentials: A brace.integrations.Credentials put on each request.
        correlation_header: The header carrying the call's correlation id
            (brace.correlation_id(), else a new id per request, the same on
            its retries); None: not sent.
        idempotency_key: Add an `Idempotency-Key` to POST, PATCH and other
            requests that are not idempotent and carry none, so that they too
            may be retried.
        log: Called with a brace.RecoveryEvent ("attempt") for each request sent:
            a brace.RecoveryLog, a sink, or any callable.
    """

    def __init__(self, *, transport: httpx.BaseTransport | None = None, hosts: Hosts | None = None,
                 credentials: Credentials | None = None,
                 correlation_header: str | None = DEFAULT_CORRELATION_HEADER, idempotency_key: bool = False,
                 log: Callable[[RecoveryEvent], object] | None = None) -> None:  # fmt: skip
        if transport is not None and not isinstance(transport, httpx.BaseTransport):
            raise TypeError(f"transport must be an httpx.BaseTransport or None, got {type(transport).__name__}")
        self._inner = transport if transport is not None else httpx.HTTPTransport(retries=0)
        self._exchange = exchange(_Wire(), hosts=hosts, credentials=credentials,
                                  correlation_header=correlation_header, idempotency_key=idempotency_key,
                                  log=log)  # fmt: skip

    @property
    def hosts(self) -> Hosts:
        return self._exchange.hosts

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response: httpx.Response = self._exchange.send(request, self._send, _release, httpx.Response.close)
        return response

    def _send(self, request: httpx.Request, timeout: float | None) -> httpx.Response:
        if timeout is not None:
            _bound(request, timeout)
        return self._inner.handle_request(request)

    def close(self) -> None:
        self._inner.close()


def _release(response: httpx.Response) -> None:
    response.read()
    response.close()


async def _release_async(response: httpx.Response) -> None:
    await response.aread()
    await response.aclose()


class AsyncTransport(httpx.AsyncBaseTransport):
    """`Transport` for httpx.AsyncClient (default inner transport httpx.AsyncHTTPTransport(retries=0))."""

    def __init__(self, *, transport: httpx.AsyncBaseTransport | None = None, hosts: Hosts | None = None,
                 credentials: Credentials | None = None,
                 correlation_header: str | None = DEFAULT_CORRELATION_HEADER, idempotency_key: bool = False,
                 log: Callable[[RecoveryEvent], object] | None = None) -> None:  # fmt: skip
        if transport is not None and not isinstance(transport, httpx.AsyncBaseTransport):
            raise TypeError(f"transport must be an httpx.AsyncBaseTransport or None, got {type(transport).__name__}")
        self._inner = transport if transport is not None else httpx.AsyncHTTPTransport(retries=0)
        self._exchange = exchange(_Wire(), hosts=hosts, credentials=credentials,
                                  correlation_header=correlation_header, idempotency_key=idempotency_key,
                                  log=log)  # fmt: skip

    @property
    def hosts(self) -> Hosts:
        return self._exchange.hosts

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response: httpx.Response = await self._exchange.send_async(request, self._send, _release_async,
                                                                   httpx.Response.aclose)  # fmt: skip
        return response

    async def _send(self, request: httpx.Request, timeout: float | None) -> httpx.Response:
        if timeout is not None:
            _bound(request, timeout)
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


