"""Credentials the HTTP integrations put on each request, refreshed once per expiry.

A `Credentials` holds a token from a provider (a callable returning the token,
or the token and its lifetime). The integration applies it to every request; on
a 401 to a request that carried the current token, or shortly before the token
expires, the next request refreshes it. Refreshes are single-flight per
credential: however many callers (threads or coroutines) find the token stale
at once, the provider is called once, and the others use what it returned.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta, timezone
from typing import Union

from brace import _config
from brace._core import now_ns
from brace._config import NS_PER_SECOND
from brace._safe import safe_repr

__all__ = ["Credentials", "Fetched"]

# What a provider returns: the token, or the token and its lifetime (seconds,
# a timedelta, or the aware datetime it expires at; None: no known expiry).
Fetched = Union[str, tuple[str, Union[float, timedelta, datetime, None]]]


def _seconds(value: object, name: str) -> float:
    seconds = _config.duration(value, name)
    assert seconds is not None  # None is refused without allow_none
    return seconds


class Credentials:
    """A token for the HTTP integrations: applied to each request, refreshed single-flight.

    Args:
        fetch: The provider: called with no argument, it returns the token,
            or (token, lifetime) where lifetime is seconds, a timedelta, an
            aware datetime of expiry, or None. A coroutine function works with
            the async integrations only.
        name: A name for repr and errors.
        header: The request header the token goes in.
        scheme: The word before the token in that header ("Bearer"); None: the token alone.
        refresh_early: Refresh this long before a known expiry (seconds or
            timedelta, >= 0), so that no request carries a token about to lapse.

    Raises:
        TypeError, ValueError: For a `fetch` that is not callable, an empty
            header, or a duration outside the range.
    """

    __slots__ = ("_fetch", "_name", "_header", "_scheme", "_early_ns", "_token", "_expires_ns", "_lock",
                 "_flights", "refreshes")

    def __init__(self, fetch: Callable[[], Fetched | Awaitable[Fetched]], *, name: str | None = None,
                 header: str = "Authorization", scheme: str | None = "Bearer",
                 refresh_early: float | timedelta = 30.0) -> None:  # fmt: skip
        if not callable(fetch):
            raise TypeError(f"fetch must be a callable returning a token, got {safe_repr(fetch)}")
        if not isinstance(header, str) or not header.strip():
            raise ValueError(f"header must be a non-empty header name, got {safe_repr(header)}")
        if scheme is not None and not isinstance(scheme, str):
            raise TypeError(f"scheme must be a str or None, got {safe_repr(scheme)}")
        self._fetch = fetch
        self._name = _config.optional_name(name)
        self._header = header
        self._scheme = scheme
        self._early_ns = round(_seconds(refresh_early, "refresh_early") * NS_PER_SECOND)
        self._token: str | None = None
        self._expires_ns: int | None = None
        self._lock = threading.Lock()
        self._flights: dict[asyncio.AbstractEventLoop, asyncio.Future[str]] = {}
        self.refreshes = 0  # how many times the provider was called

    @property
    def header(self) -> str:
        return self._header

    def value(self, token: str) -> str:
        """The header's value for `token`."""
        return token if self._scheme is None else f"{self._scheme} {token}"

    def _fresh(self) -> str | None:
        token, expires = self._token, self._expires_ns
        if token is None or (expires is not None and now_ns() >= expires - self._early_ns):
            return None
        return token

    def expire(self, token: str) -> None:
        """The server refused `token` (a 401): the next request refreshes it, unless it was
        refreshed already."""
        with self._lock:
            if self._token == token:
                self._token = None

    def token(self) -> str:
        """The current token, refreshing it first (single-flight) when it is missing or stale."""
        token = self._fresh()
        if token is not None:
            return token
        with self._lock:  # one refresh at a time; those who waited find it fresh
            token = self._fresh()
            if token is None:
                if inspect.iscoroutinefunction(self._fetch):
                    raise TypeError(f"credentials {self._name or ''}: fetch {safe_repr(self._fetch)} is a "
                                    "coroutine function, usable with the async integrations only")  # fmt: skip
                token = self._store(self._fetch())
            return token

    async def token_async(self) -> str:
        """`token` in a coroutine: a coroutine provider is awaited, a plain one runs in a thread;
        callers on one event loop share one refresh."""
        token = self._fresh()
        if token is not None:
            return token
        if not inspect.iscoroutinefunction(self._fetch):
            return await asyncio.to_thread(self.token)  # the threads' single flight
        loop = asyncio.get_running_loop()
        flight = self._flights.get(loop)
        if flight is not None:
            return await asyncio.shield(flight)
        flight = loop.create_future()
        self._flights[loop] = flight
        try:
            token = self._fresh() or self._store(await self._fetch())
            flight.set_result(token)
            return token
        except BaseException as error:
            flight.set_exception(error)
            flight.exception()  # retrieved: a flight no one else awaited is not reported as lost
            raise
        finally:
            del self._flights[loop]

    def _store(self, fetched: object) -> str:
        token, lifetime = (fetched if isinstance(fetched, tuple) and len(fetched) == 2 else (fetched, None))
        if not isinstance(token, str) or not token:
            raise TypeError(f"credentials {self._name or ''}: fetch must return a non-empty str token or "
                            f"(token, lifetime), got {safe_repr(fetched)}")  # fmt: skip
        now = now_ns()
        if lifetime is None:
            expires = None
        elif isinstance(lifetime, datetime):
            if lifetime.utcoffset() is None:
                raise ValueError(f"credentials {self._name or ''}: an expiry datetime must be aware, got {lifetime!r}")
            left = (lifetime - datetime.now(timezone.utc)).total_seconds()
            expires = now + round(max(0.0, left) * NS_PER_SECOND)
        else:
            expires = now + round(_seconds(lifetime, "the token's lifetime") * NS_PER_SECOND)
        self._token, self._expires_ns = token, expires
        self.refreshes += 1
        return token

    def __repr__(self) -> str:
        state = "no token" if self._token is None else "token held"
        return f"<Credentials {self._name or ''} header={self._header!r} {state} refreshes={self.refreshes}>"
