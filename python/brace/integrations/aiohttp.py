"""brace for aiohttp: `Middleware`, an aiohttp client middleware that runs every request
through brace.

    import aiohttp
    from brace.integrations.aiohttp import Middleware

    async with aiohttp.ClientSession(middlewares=(Middleware(),)) as session:
        async with session.get("https://api.example.com/records/1") as response:
            ...

What each request goes through is as for brace.integrations.httpx. aiohttp has no
retries of its own; its session timeout (ClientTimeout) still bounds the whole
request, retries included, and brace's deadline bounds each attempt.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import aiohttp

from brace._core import any_name_holds
from brace.errors import AttemptTimeout
from brace.integrations._credentials import Credentials
from brace.integrations._exchange import QUOTA_MARK
from brace.integrations._hosts import Hosts, origin
from brace.integrations._options import DEFAULT_CORRELATION_HEADER, exchange
from brace.recovery import RecoveryEvent

__all__ = ["Middleware"]

_MARK = QUOTA_MARK.encode()


class _Wire:
    """aiohttp's requests and responses, as brace.integrations._exchange reads them."""

    @staticmethod
    def method(request: aiohttp.ClientRequest) -> str:
        return request.method

    @staticmethod
    def host(request: aiohttp.ClientRequest) -> str:
        url = request.url
        return origin(url.scheme, url.host, url.port)

    @staticmethod
    def header(request: aiohttp.ClientRequest, name: str) -> str | None:
        return request.headers.get(name)

    @staticmethod
    def set_header(request: aiohttp.ClientRequest, name: str, value: str) -> None:
        request.headers[name] = value

    @staticmethod
    def may_have_quota_fields(response: aiohttp.ClientResponse) -> bool:
        return any_name_holds(response.raw_headers, _MARK)

    @staticmethod
    def status(response: aiohttp.ClientResponse) -> int:
        return response.status


async def _release(response: aiohttp.ClientResponse) -> None:
    # Read to its end, aiohttp gives the connection back to the pool; the body stays on
    # the response for the caller.
    await response.read()


class Middleware:
    """An aiohttp client middleware (`ClientSession(middlewares=(Middleware(),))`).

    Args:
        hosts, credentials, correlation_header, idempotency_key, log: As for
            brace.integrations.httpx.Transport.
    """

    def __init__(self, *, hosts: Hosts | None = None, credentials: Credentials | None = None,
                 correlation_header: str | None = DEFAULT_CORRELATION_HEADER, idempotency_key: bool = False,
                 log: Callable[[RecoveryEvent], object] | None = None) -> None:  # fmt: skip
        self._exchange = exchange(_Wire(), hosts=hosts, credentials=credentials,
                                  correlation_header=correlation_header, idempotency_key=idempotency_key,
                                  log=log)  # fmt: skip

    @property
    def hosts(self) -> Hosts:
        return self._exchange.hosts

    async def __call__(self, request: aiohttp.ClientRequest,
                       handler: aiohttp.ClientHandlerType) -> aiohttp.ClientResponse:  # fmt: skip
        async def attempt(sent: aiohttp.ClientRequest, bound: float | None) -> aiohttp.ClientResponse:
            if bound is None:
                return await handler(sent)
            # Not asyncio.wait_for: aiohttp's own timeouts are asyncio.TimeoutErrors too, and
            # they must reach the caller as aiohttp raised them.
            task = asyncio.ensure_future(handler(sent))
            try:
                done, _ = await asyncio.wait((task,), timeout=bound)
            finally:
                if not task.done():
                    task.cancel()
                    await asyncio.wait((task,))
            if not done:
                raise AttemptTimeout(timeout=bound)
            return task.result()

        response: aiohttp.ClientResponse = await self._exchange.send_async(request, attempt, _release,
                                                                           aiohttp.ClientResponse.release)  # fmt: skip
        return response
