"""The app tests/test_workers.py serves with real multi-worker servers (gunicorn, uvicorn).

Every worker process imports this module and makes its own `brace.RateLimiter` from the
environment: BRACE_WORKERS_STORE ("shm://REGION", or empty for a limiter in the worker),
BRACE_WORKERS_BURST (tokens), at one token an hour, so that nothing refills during a test.
GET /limited asks the limiter for one token: 200 when admitted, 429 when refused; GET /pid
asks nothing. Every answer is JSON with the worker's pid. A request takes WORK seconds of
blocking work (as a real handler's would), so that a worker serving it is busy and the
requests that come meanwhile are accepted by the other workers.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import brace

WORK = 0.02  # seconds of a request's work

limiter = brace.RateLimiter(
    rate="1/hour",
    burst=int(os.environ.get("BRACE_WORKERS_BURST", "10")),
    name="workers-api",
    store=os.environ.get("BRACE_WORKERS_STORE") or None,
)


def _answer(path: str) -> tuple[int, bytes]:
    time.sleep(WORK)
    if path == "/pid":
        return 200, json.dumps({"pid": os.getpid()}).encode()
    if path == "/limited":
        admitted = limiter.try_acquire()
        return (200 if admitted else 429), json.dumps({"pid": os.getpid(), "admitted": admitted}).encode()
    return 404, json.dumps({"pid": os.getpid()}).encode()


_REASONS = {200: "200 OK", 404: "404 Not Found", 429: "429 Too Many Requests"}
_HEADERS = [("Content-Type", "application/json")]


def wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    status, body = _answer(environ["PATH_INFO"])
    start_response(_REASONS[status], [*_HEADERS, ("Content-Length", str(len(body)))])
    return [body]


async def asgi(scope: dict[str, Any], receive: Callable[[], Awaitable[Any]],
               send: Callable[[dict[str, Any]], Awaitable[None]]) -> None:  # fmt: skip
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    status, body = _answer(scope["path"])  # blocks the loop: one request at a time, like a sync worker
    headers = [(name.lower().encode(), value.encode()) for name, value in _HEADERS]
    await send({"type": "http.response.start", "status": status,
                "headers": [*headers, (b"content-length", str(len(body)).encode())]})  # fmt: skip
    await send({"type": "http.response.body", "body": body})
