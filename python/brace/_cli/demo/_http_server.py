"""The records service of `brace demo --http`: a real HTTP/1.1 server on 127.0.0.1 (an ephemeral
port, threads of its own) with the scenario's faults, in real seconds, made with the standard
library only.

GET /records/{id} answers a record (404 above RECORDS); POST /token issues a bearer token (the
identity provider: never faulted, and not counted as an attempt). Faults, per request received:
an answer slower than the client's timeout, a connection reset without an answer (TCP RST), a
window of 429s with Retry-After, an outage window of 503s, 401 once the token has expired, and,
after `drift_at * calls` requests, the payload's new shape (a "schema_drift" for a client still
declaring `X-Schema: 1`). Windows are short (1-3 s) so that a run of a few hundred calls takes
seconds. Like the simulated service it keeps its own access log, per correlation id (the
`X-Request-ID` header): the ground truth of the demo's accounting.
"""

from __future__ import annotations

import json
import math
import random
import re
import socket
import struct
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from brace._config import NS_PER_SECOND
from brace._core import now_ns
from brace._cli.demo._service import RECORDS, Books, record
from brace._cli.demo._settings import Settings

__all__ = ["CLIENT_TIMEOUT", "CORRELATION_HEADER", "ChaosServer"]

CLIENT_TIMEOUT = 1.0  # seconds the client waits for an answer
CORRELATION_HEADER = "X-Request-ID"  # what brace's transport sends
_SLOW = CLIENT_TIMEOUT + 0.5  # a slow answer comes this long after the request
_THROTTLE_WINDOW = (1.0, 2.0)  # seconds a window of 429s lasts
_OUTAGE = (1.0, 3.0)  # seconds an outage lasts
_RECORD_PATH = re.compile(r"/records/([0-9]{1,9})")


class _Reply(NamedTuple):
    kind: str  # "ok" or a fault kind of the scenario (brace._cli.demo._scenario.FAULT_CATEGORY)
    status: int
    payload: object = None
    headers: tuple[tuple[str, str], ...] = ()


class _Server(ThreadingHTTPServer):
    """ThreadingHTTPServer that can end the connections it holds, so that closing never hangs
    on a handler waiting for the next request of a kept-alive connection."""

    daemon_threads = False  # server_close() joins the handler threads
    block_on_close = True

    def __init__(self, chaos: ChaosServer) -> None:
        self.chaos = chaos
        self.open_connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.connections_lock:
            self.open_connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.connections_lock:
            self.open_connections.discard(request)
        super().shutdown_request(request)

    def end_connections(self) -> None:
        with self.connections_lock:
            connections = list(self.open_connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # closed by its handler meanwhile

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up on a slow answer, or a connection reset on purpose: expected.
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real APIs serve
    server: _Server

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self.server.chaos.serve(self)

    do_POST = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: the server keeps its own access log (ChaosServer.ledger)."""


class ChaosServer(Books):
    """The records API with the scenario's faults, on 127.0.0.1, keeping the same books as the
    simulated service (brace._cli.demo._service.Books). Use as a context manager."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self._drift_after = round(settings.drift_at * settings.calls)
        self._rng = random.Random(f"{settings.seed}:faults")
        self._stop = threading.Event()
        self._throttled_until = -math.inf
        self._down_until = -math.inf
        self._origin = now_ns()
        self._http: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._http is not None, "the server is not started"
        host, port = self._http.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> ChaosServer:
        self._http = _Server(self)
        self._origin = now_ns()
        self._thread = threading.Thread(target=self._http.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="brace-demo-server", daemon=True)  # fmt: skip
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Stops serving, ends slow answers and kept-alive connections, joins every thread."""
        self._stop.set()
        if self._http is None:
            return
        self._http.shutdown()
        self._http.end_connections()
        self._http.server_close()
        assert self._thread is not None
        self._thread.join()
        self._http = None

    def now(self) -> float:
        """Seconds since the server started."""
        return (now_ns() - self._origin) / NS_PER_SECOND

    # -- serving ----------------------------------------------------------------------------------

    def serve(self, handler: _Handler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        if length:
            handler.rfile.read(length)
        path = urlsplit(handler.path).path
        found = _RECORD_PATH.fullmatch(path)
        if handler.command == "POST" and path == "/token":
            reply = self._issue_token()
        elif handler.command != "GET" or found is None:
            reply = _Reply("bad_request", 404, {"error": f"no route {handler.command} {path}"})
        else:
            reply = self._record_request(handler, int(found[1]))
        if reply.kind == "reset":
            # No answer: linger 0 makes the close a TCP RST, as a crashing proxy sends.
            handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            handler.connection.close()
            handler.close_connection = True
            return
        if reply.kind == "timeout":
            self._stop.wait(_SLOW)
        _respond(handler, reply)

    def _issue_token(self) -> _Reply:
        return _Reply("ok", 200, {"access_token": self.issue_token(), "token_type": "Bearer"})

    def _record_request(self, handler: _Handler, record_id: int) -> _Reply:
        token = handler.headers.get("Authorization", "").removeprefix("Bearer ")
        schema = handler.headers.get("X-Schema", "1")
        with self._lock:
            reply = self._decide(record_id, token, schema)
            answered = now_ns() + (round(CLIENT_TIMEOUT * NS_PER_SECOND) if reply.kind == "timeout" else 0)
            self._book(reply.kind, handler.headers.get(CORRELATION_HEADER) or "", answered)
        return reply

    def _decide(self, record_id: int, token: str, schema: str) -> _Reply:
        """What this request gets (called under the lock)."""
        settings, rng, now = self.settings, self._rng, self.now()
        if rng.random() < settings.reset_rate:
            return _Reply("reset", 0)
        if rng.random() < settings.timeout_rate:
            return _Reply("timeout", 200, record(record_id) if 1 <= record_id <= RECORDS else None)
        if now >= self._throttled_until and rng.random() < settings.throttle_rate:
            self._throttled_until = now + rng.uniform(*_THROTTLE_WINDOW)
            self.episodes["throttle windows"] += 1
        if now < self._throttled_until:
            wait = str(max(1, math.ceil(self._throttled_until - now)))  # delta-seconds: a whole number
            return _Reply("throttled", 429, {"error": "rate limited"}, (("Retry-After", wait),))
        if now >= self._down_until and rng.random() < settings.outage_rate:
            self._down_until = now + rng.uniform(*_OUTAGE)
            self.episodes["outages"] += 1
        if now < self._down_until:
            return _Reply("outage", 503, {"error": "service unavailable"})
        if self._expired(token, now):
            return _Reply("expired_token", 401, {"error": "token expired"},
                          (("WWW-Authenticate", 'Bearer error="invalid_token"'),))  # fmt: skip
        if not 1 <= record_id <= RECORDS:
            return _Reply("not_found", 404, {"error": f"no record {record_id}"})
        truth = record(record_id)
        if self.requests < self._drift_after:
            return _Reply("ok", 200, truth)
        # The provider's new shape; a client still declaring schema 1 cannot read it.
        payload = {"schema": 2, "record": {"id": truth["id"], "cells": truth["values"]}}
        return _Reply("schema_drift" if schema == "1" else "ok", 200, payload)


def _respond(handler: _Handler, reply: _Reply) -> None:
    data = json.dumps(reply.payload).encode()
    try:
        handler.send_response(reply.status)
        for name, value in reply.headers:
            handler.send_header(name, value)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)
        handler.wfile.flush()
    except OSError:
        handler.close_connection = True  # the client went away (it gave up waiting)
