"""brace for requests: `Adapter`, a requests.adapters.HTTPAdapter that runs every request
through brace.

    import requests
    from brace.integrations.requests import Adapter

    session = requests.Session()
    session.mount("https://", Adapter())
    session.mount("http://", Adapter())

What each request goes through is as for brace.integrations.httpx; urllib3's own
retries are off (`max_retries=0`), so that no request escapes brace.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Union
from urllib.parse import urlsplit

import requests
import requests.adapters

from brace.integrations._credentials import Credentials
from brace.integrations._exchange import QUOTA_MARK
from brace.integrations._hosts import Hosts, origin
from brace.integrations._options import DEFAULT_CORRELATION_HEADER, exchange
from brace.recovery import RecoveryEvent

__all__ = ["Adapter"]

Timeout = Union[None, float, tuple[Union[float, None], Union[float, None]]]


class _Wire:
    """requests' prepared requests and responses, as brace.integrations._exchange reads them."""

    @staticmethod
    def method(request: requests.PreparedRequest) -> str:
        return request.method or "GET"

    @staticmethod
    def host(request: requests.PreparedRequest) -> str:
        parts = urlsplit(request.url or "")
        return origin(parts.scheme, parts.hostname, parts.port)

    @staticmethod
    def header(request: requests.PreparedRequest, name: str) -> str | None:
        value = request.headers.get(name)
        return None if value is None else str(value)

    @staticmethod
    def set_header(request: requests.PreparedRequest, name: str, value: str) -> None:
        request.headers[name] = value

    @staticmethod
    def may_have_quota_fields(response: requests.Response) -> bool:
        return QUOTA_MARK in "\n".join(response.headers).lower()  # the names as they came

    @staticmethod
    def status(response: requests.Response) -> int:
        return response.status_code


def _bounded(timeout: Timeout, bound: float | None) -> Timeout:
    """requests' timeout (seconds, or (connect, read)) with each part no longer than `bound`."""
    if bound is None:
        return timeout
    if isinstance(timeout, tuple):
        connect, read = timeout
        return (bound if connect is None else min(connect, bound), bound if read is None else min(read, bound))
    return bound if timeout is None else min(timeout, bound)


def _release(response: requests.Response) -> None:
    response.content  # noqa: B018 (read to its end, kept for the caller)
    response.close()


class Adapter(requests.adapters.HTTPAdapter):
    """A requests transport adapter that runs every request through brace.

    Args:
        hosts, credentials, correlation_header, idempotency_key, log: As for
            brace.integrations.httpx.Transport.
        pool_connections, pool_maxsize, pool_block: As for requests' HTTPAdapter.
    """

    def __init__(self, *, hosts: Hosts | None = None, credentials: Credentials | None = None,
                 correlation_header: str | None = DEFAULT_CORRELATION_HEADER, idempotency_key: bool = False,
                 log: Callable[[RecoveryEvent], object] | None = None, pool_connections: int = 10,
                 pool_maxsize: int = 10, pool_block: bool = False) -> None:  # fmt: skip
        self._exchange = exchange(_Wire(), hosts=hosts, credentials=credentials,
                                  correlation_header=correlation_header, idempotency_key=idempotency_key,
                                  log=log)  # fmt: skip
        super().__init__(pool_connections=pool_connections, pool_maxsize=pool_maxsize, max_retries=0,
                         pool_block=pool_block)  # fmt: skip

    @property
    def hosts(self) -> Hosts:
        return self._exchange.hosts

    def send(self, request: requests.PreparedRequest, stream: bool = False, timeout: Timeout = None,
             verify: bool | str = True, cert: Any = None,
             proxies: dict[str, str] | None = None) -> requests.Response:  # fmt: skip
        def attempt(prepared: requests.PreparedRequest, bound: float | None) -> requests.Response:
            return super(Adapter, self).send(prepared, stream=stream, timeout=_bounded(timeout, bound),
                                             verify=verify, cert=cert, proxies=proxies)  # fmt: skip

        response: requests.Response = self._exchange.send(request, attempt, _release, requests.Response.close)
        return response
