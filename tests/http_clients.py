"""The HTTP clients the integrations' tests drive, behind one small interface.

`make(kind, url, **integration)` gives a Caller that sends requests through brace's
integration for that client: "httpx" (Transport), "httpx-async" (AsyncTransport), "requests"
(Adapter), "aiohttp" (Middleware). `send` makes one request; `concurrently` makes several at
once (threads for the sync clients, one event loop's tasks for the async ones).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

import aiohttp
import httpx
import pytest
import requests

from brace.integrations.aiohttp import Middleware
from brace.integrations.httpx import AsyncTransport, Transport
from brace.integrations.requests import Adapter

KINDS = ("httpx", "httpx-async", "requests", "aiohttp")
# The inner loop (-m "not slow") drives httpx alone; the whole suite drives every client.
PARAMS = [kind if kind == "httpx" else pytest.param(kind, marks=pytest.mark.slow) for kind in KINDS]


class Answer(NamedTuple):
    status: int
    body: bytes


class Request(NamedTuple):
    method: str
    path: str
    headers: dict[str, str] = {}
    timeout: float = 5.0


class Caller:
    def __init__(self, kind: str, url: str, integration: dict[str, Any], *, pool: int = 10) -> None:
        self.kind, self.url, self.integration, self.pool = kind, url, integration, pool

    # -- one request -------------------------------------------------------------------------------
    def send(self, method: str, path: str, *, headers: dict[str, str] | None = None,
             timeout: float = 5.0) -> Answer:  # fmt: skip
        return self.concurrently([Request(method, path, headers or {}, timeout)])[0]

    # -- several at once ---------------------------------------------------------------------------
    def concurrently(self, requests_: Sequence[Request], *, callers: int | None = None) -> list[Answer]:
        """The requests, sent by `callers` concurrent callers (default: one per request)."""
        self.callers = callers or len(requests_)
        if self.kind in ("httpx", "requests"):
            return self._threads(requests_)
        return asyncio.run(self._tasks(requests_))

    def _threads(self, requests_: Sequence[Request]) -> list[Answer]:
        if self.kind == "httpx":
            transport = Transport(transport=httpx.HTTPTransport(retries=0, limits=httpx.Limits(max_connections=self.pool)),
                                  **self.integration)  # fmt: skip
            with httpx.Client(transport=transport, base_url=self.url) as client:
                def one(r: Request) -> Answer:
                    response = client.request(r.method, r.path, headers=r.headers, timeout=r.timeout)
                    return Answer(response.status_code, response.content)
                return self._pool(one, requests_)
        with requests.Session() as session:
            session.mount("http://", Adapter(pool_maxsize=self.pool, pool_block=True, **self.integration))

            def one(r: Request) -> Answer:
                response = session.request(r.method, self.url + r.path, headers=r.headers, timeout=r.timeout)
                return Answer(response.status_code, response.content)
            return self._pool(one, requests_)

    def _pool(self, one: Any, requests_: Sequence[Request]) -> list[Answer]:
        if len(requests_) == 1:
            return [one(requests_[0])]
        with ThreadPoolExecutor(self.callers) as pool:
            return list(pool.map(one, requests_))

    async def _gather(self, one: Any, requests_: Sequence[Request]) -> list[Answer]:
        callers = asyncio.Semaphore(self.callers)

        async def by_a_caller(r: Request) -> Answer:
            async with callers:
                answer: Answer = await one(r)
                return answer
        return list(await asyncio.gather(*map(by_a_caller, requests_)))

    async def _tasks(self, requests_: Sequence[Request]) -> list[Answer]:
        if self.kind == "httpx-async":
            inner = httpx.AsyncHTTPTransport(retries=0, limits=httpx.Limits(max_connections=self.pool))
            async with httpx.AsyncClient(transport=AsyncTransport(transport=inner, **self.integration),
                                         base_url=self.url) as client:  # fmt: skip
                async def one(r: Request) -> Answer:
                    response = await client.request(r.method, r.path, headers=r.headers, timeout=r.timeout)
                    return Answer(response.status_code, response.content)
                return await self._gather(one, requests_)
        connector = aiohttp.TCPConnector(limit=self.pool)
        async with aiohttp.ClientSession(middlewares=(Middleware(**self.integration),), connector=connector) as session:
            async def one_aiohttp(r: Request) -> Answer:
                async with session.request(r.method, self.url + r.path, headers=r.headers,
                                           timeout=aiohttp.ClientTimeout(sock_connect=r.timeout, sock_read=r.timeout)) as response:  # fmt: skip
                    return Answer(response.status, await response.read())
            return await self._gather(one_aiohttp, requests_)


def make(kind: str, url: str, *, pool: int = 10, **integration: Any) -> Caller:
    return Caller(kind, url, integration, pool=pool)
