"""The report over HTTP: a plain ASGI application and a WSGI one, no framework needed."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from datetime import timedelta
from typing import Any

from brace import _config
from brace.health._health import Health
from brace.health._model import Report

__all__ = ["asgi_app", "wsgi_app"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]]
StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

_HEADERS = (("content-type", "application/json"), ("cache-control", "no-store"))
_NOT_ALLOWED = b'{"error": "method not allowed: GET or HEAD"}'


def _max_age(health: Health, max_age: object) -> float | None:
    if not isinstance(health, Health):
        raise TypeError(f"health must be a brace.health.Health, got {type(health).__name__}")
    return _config.duration(max_age, "max_age", allow_none=True)


def _cached(health: Health, max_age: float | None) -> Report | None:
    """The report to serve without checking: with max_age None, the latest while a background
    runner runs; else the latest when at most max_age old."""
    if max_age is None:
        return health.report if health.running else None
    return health.fresh(max_age)


def asgi_app(health: Health, *, max_age: float | timedelta | None = None) -> ASGIApp:
    """An ASGI application answering GET (and HEAD) with the report as JSON (Report.as_dict()).

    Status 200 when the report is healthy or degraded (the service still serves), 503
    when unhealthy, so that a load balancer or orchestrator takes the instance out.
    Other methods get 405. Mount it at the path the probes use (/health, /ready).

    Args:
        health: The Health to serve.
        max_age: How old a served report may be: None (default) serves the background
            runner's latest report while it runs and checks on each request otherwise;
            a number of seconds (or a timedelta) serves the latest report when at most that
            old and checks otherwise (0: always check).

    Raises:
        TypeError, ValueError: For a health that is not a Health, or a max_age that is not
            None or a duration from 0 to 2**62 ns.
    """
    age = _max_age(health, max_age)

    async def app(scope: Scope, receive: Callable[[], Awaitable[Message]],
                  send: Callable[[Message], Awaitable[None]]) -> None:  # fmt: skip
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        if scope.get("method") not in ("GET", "HEAD"):
            await _send(send, 405, _NOT_ALLOWED, True)
            return
        report = _cached(health, age) or await health.check_async()
        await _send(send, report.http_status, report.to_json().encode(), scope.get("method") == "GET")

    return app


async def _lifespan(receive: Callable[[], Awaitable[Message]], send: Callable[[Message], Awaitable[None]]) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _send(send: Callable[[Message], Awaitable[None]], status: int, body: bytes, with_body: bool) -> None:
    headers = [(name.encode(), value.encode()) for name, value in _HEADERS]
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body if with_body else b""})


def wsgi_app(health: Health, *, max_age: float | timedelta | None = None) -> WSGIApp:
    """A WSGI application answering GET (and HEAD) with the report as JSON: asgi_app's
    statuses (200 healthy or degraded, 503 unhealthy, 405 other methods) and max_age.

    Raises:
        TypeError, ValueError: As asgi_app.
    """
    age = _max_age(health, max_age)

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD")
        if method not in ("GET", "HEAD"):
            return _respond(start_response, 405, _NOT_ALLOWED, True)
        report = _cached(health, age) or health.check()
        return _respond(start_response, report.http_status, report.to_json().encode(), method == "GET")

    return app


_REASONS = {200: "200 OK", 405: "405 Method Not Allowed", 503: "503 Service Unavailable"}


def _respond(start_response: StartResponse, status: int, body: bytes, with_body: bool) -> list[bytes]:
    start_response(_REASONS[status], [*_HEADERS, ("content-length", str(len(body)))])
    return [body] if with_body else []
