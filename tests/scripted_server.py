"""A real HTTP server on loopback whose answers a test scripts, for the integrations' tests.

Each path has a script: a list of replies, answered in order (the last one repeats), or a
function of the request. Every request is recorded with its headers and the time it arrived,
so that a test can check what reached the server, not what the client meant to send.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Union


@dataclass(frozen=True)
class Reply:
    status: int = 200
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b"ok"
    delay: float = 0.0  # seconds before the answer (real time)
    reset: bool = False  # close the connection without an answer
    hold: threading.Event | None = None  # answer only once the test sets it


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.monotonic()


Script = Union[list[Reply], Callable[[Received], Reply]]


@dataclass
class ScriptedServer:
    scripts: dict[str, Script] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._served: dict[str, int] = {}
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body are two writes: no delayed-ACK stall

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                got = Received(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body,
                               time.monotonic())
                reply = server._reply(got)
                if reply.delay:
                    time.sleep(reply.delay)
                if reply.hold is not None:
                    reply.hold.wait(30.0)
                if reply.reset:
                    self.close_connection = True
                    self.connection.close()
                    return
                self.send_response(reply.status)
                for name, value in reply.headers:
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _handle  # noqa: N815

            def log_message(self, format: str, *args: object) -> None:
                pass

        class Quiet(ThreadingHTTPServer):
            def handle_error(self, request: object, client_address: object) -> None:
                pass  # a client that hung up (a timeout, a cancelled copy): the test's own business

        self._http = Quiet(("127.0.0.1", 0), Handler)
        self._http.daemon_threads = True
        self._thread = threading.Thread(target=self._http.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    def _reply(self, got: Received) -> Reply:
        with self._lock:
            self.received.append(got)
            script = self.scripts.get(got.path.split("?")[0], [Reply()])
            if callable(script):
                return script(got)
            index = self._served.get(got.path, 0)
            self._served[got.path] = index + 1
            return script[min(index, len(script) - 1)]

    @property
    def url(self) -> str:
        host, port = self._http.server_address[:2]
        return f"http://{host!s}:{port}"

    def requests_to(self, path: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.path == path]


@contextmanager
def serving(scripts: dict[str, Script] | None = None) -> Iterator[ScriptedServer]:
    server = ScriptedServer(scripts or {})
    server._thread.start()
    try:
        yield server
    finally:
        server._http.shutdown()
        server._http.server_close()
