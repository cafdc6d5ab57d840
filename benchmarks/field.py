#!/usr/bin/env python3
"""The field test: brace.Recovery against a real HTTP server, through real clients.

`python -m brace demo` checks brace's promises against a simulated API. This
checks them the way a user meets them: a records service runs as a real
HTTP/1.1 server on 127.0.0.1 (an ephemeral port, a thread), and a few threads
(or tasks) call it through httpx, requests or httpx.AsyncClient over loopback
sockets. Each client is wrapped in one brace.Recovery configured the README's
way with brace's defaults: no treatment overrides and no custom backoffs; a
rule that names the client's payload parse error a schema mismatch; healing
actions that refresh the token, open a new session and adapt to the new
payload shape; the README's stale-if-error fallback; a RecoveryLog with a
MemorySink; and an SQLite dead-letter store. The clients' own retries are off,
so every attempt is brace's.

The server fails the way real ones do, seeded: responses slower than the
client's timeout, connections reset without a response, 429 with
Retry-After, 503 outages of 1-3 s (a server state: every request during one
gets 503), 401 once the bearer token from POST /token has expired, a change
of the payload's shape during the run, and 404 for records that do not
exist. Per-request faults are drawn from (seed, correlation id, attempt), so
each call meets the same faults whatever the threads' interleaving.

Every figure is counted outside brace: attempts received by the server, per
X-Correlation-Id, against the attempt events brace logged; each call's
outcome checked by its caller (the real value, a brace.Degraded, or
brace.RecoveryFailed whose dead letter holds the call); writes checked
against what the server holds (applied, or held by a dead letter; a note
never applied twice). The promises:

- >= 95% of the calls that met a transient failure healed automatically;
- mean recovery time (first failure to success) under 10 s;
- zero calls lost, writes included;
- every attempt the server received logged (per correlation id).

    python benchmarks/field.py [--calls 1000] [--clients httpx requests] [--json]

Prints a table per client and the verdict; exits 1 when a promise is not met.
tests/test_field.py runs the same harness with smaller numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import math
import os
import random
import re
import socket
import struct
import sys
import tempfile
import textwrap
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal, NamedTuple
from urllib.parse import urlsplit

import httpx
import requests
import requests.adapters

import brace

__all__ = ["CLIENTS", "RecordsServer", "Settings", "account", "drive", "render", "run", "run_client", "workload"]

Client = Literal["httpx", "requests", "httpx-async"]
CLIENTS: tuple[Client, ...] = ("httpx", "requests", "httpx-async")

# The targets brace promises; a run meets them or the script exits 1.
TARGET_TRANSIENT_HEALED = 0.95
TARGET_MEAN_RECOVERY = 10.0

# The records: 1..READ_RECORDS exist and are read-only; a read above them is a 404.
# Writes go to their own records, so a read's true value never changes under it.
READ_RECORDS = 10_000
PUT_BASE = 20_000  # PUT /records/{PUT_BASE + k}: set a record's value
NOTE_BASE = 30_000  # POST /records/{NOTE_BASE + k}: append a note to a record
_NOTE_RECORDS = 4
_COLOURS = ("red", "green", "blue")


@dataclasses.dataclass(frozen=True)
class Settings:
    """One field run per client. Durations are real seconds; rates are probabilities.

    Attributes:
        calls: Calls each client makes.
        workers: Threads (tasks, for httpx-async) calling concurrently.
        duration: Seconds over which the calls arrive (Poisson arrivals).
        seed: Seeds the workload, the faults, the outages and brace's jitter.
        client_timeout: The clients' timeout; a slow response stalls past it.
        slow_rate, reset_rate, throttle_rate: Per attempt: a response slower
            than the client's timeout; a connection reset without a response;
            a 429 with Retry-After.
        retry_after: The seconds a 429 asks the client to wait.
        outages: How many 503 outages the server goes through.
        outage_length: The shortest and longest outage, seconds.
        token_lifetime: Seconds a token from POST /token is accepted.
        shape_change_at: When the payload's shape changes, as a fraction of duration.
        missing_rate: Per read: the record does not exist (404).
        put_share, note_share: The shares of the calls that PUT a record's
            value and that POST a note; the rest are reads.
        put_records: How many records the PUTs share (with three values, the
            same write is sent again now and then, as a sync job does).
    """

    calls: int = 240
    workers: int = 8
    duration: float = 8.0
    seed: int = 10
    client_timeout: float = 1.0
    slow_rate: float = 0.03
    reset_rate: float = 0.03
    throttle_rate: float = 0.03
    retry_after: int = 1
    outages: int = 2
    outage_length: tuple[float, float] = (1.0, 3.0)
    token_lifetime: float = 5.0
    shape_change_at: float = 0.5
    missing_rate: float = 0.05
    put_share: float = 0.25
    note_share: float = 0.15
    put_records: int = 6


# -- the server ----------------------------------------------------------------------------------

# What the server did with a request, and the category brace should see for it.
FAULT_CATEGORY: dict[str, str] = {
    "slow": "timeout",
    "reset": "network_error",
    "throttled": "rate_limited",
    "outage": "service_down",
    "expired_token": "auth_expired",
    "schema_drift": "schema_mismatch",
    "not_found": "not_found",
}
TRANSIENT_FAULTS = frozenset({"slow", "reset", "throttled", "outage"})
_RECORD_PATH = re.compile(r"/records/([0-9]{1,9})")


def record(record_id: int) -> dict[str, Any]:
    """The true content of a read-only record."""
    return {"id": record_id, "values": [f"r{record_id}c{column}" for column in range(3)]}


class Received:
    """One request to /records as the server's access log keeps it."""

    __slots__ = ("correlation_id", "method", "record_id", "kind", "received", "ended")

    def __init__(self, correlation_id: str, method: str, record_id: int, kind: str, received: float) -> None:
        self.correlation_id = correlation_id
        self.method = method
        self.record_id = record_id
        self.kind = kind  # "ok" or a key of FAULT_CATEGORY
        self.received = received  # seconds since the server started
        self.ended = received  # when the response was sent (or the connection reset)


class _Reply(NamedTuple):
    kind: str
    status: int
    payload: object
    headers: dict[str, str]


class _HTTPServer(ThreadingHTTPServer):
    """ThreadingHTTPServer that can end every connection it holds, so that closing never hangs."""

    daemon_threads = False  # server_close() joins the handler threads
    block_on_close = True

    def __init__(self, app: RecordsServer) -> None:
        self.app = app
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def end_connections(self) -> None:
        """Wakes every handler blocked on a kept-alive connection: its read returns EOF."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed by its handler

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up on a slow response leaves a broken pipe behind: expected.
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real APIs serve
    server: _HTTPServer

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self.server.app._serve(self)

    do_PUT = do_POST = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        """The server keeps its own access log (RecordsServer.received)."""


class RecordsServer:
    """A records API with seeded faults, served over HTTP/1.1 on 127.0.0.1 in a background thread.

    GET /records/{id} reads a record; PUT /records/{id} sets a record's value
    ({"value": ...}); POST /records/{id} appends a note ({"note": ...}),
    applied once per Idempotency-Key; POST /token issues a bearer token that
    lives `token_lifetime` seconds. Faults: see Settings. Use as a context
    manager (or start() / close()); close() ends every connection and joins
    every thread.

    Attributes:
        received: The access log of /records requests, in arrival order.
        put_applied: Correlation id -> the values its PUTs applied (a PUT may be
            applied again by a retry: it is idempotent).
        values: Record id -> the value its last applied PUT set.
        notes: Record id -> the notes appended, in order.
        tokens_issued: Tokens issued by POST /token.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.received: list[Received] = []
        self.put_applied: dict[str, list[str]] = {}
        self.values: dict[int, str] = {}
        self.notes: dict[int, list[str]] = {}
        self.tokens_issued = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._attempts: Counter[str] = Counter()
        self._tokens: dict[str, float] = {}
        self._idempotent: dict[str, dict[str, Any]] = {}  # Idempotency-Key -> the note's response
        rng = random.Random(f"{settings.seed}:outages")
        self.outages = _outage_windows(settings, rng)
        self.shape_change = settings.shape_change_at * settings.duration
        self._origin = time.monotonic()
        self._http: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The base URL, e.g. http://127.0.0.1:40123."""
        assert self._http is not None, "start() the server first"
        host, port = self._http.server_address[:2]
        return f"http://{host!s}:{port}"

    def now(self) -> float:
        """Seconds since the server started."""
        return time.monotonic() - self._origin

    def start(self) -> RecordsServer:
        self._http = _HTTPServer(self)
        self._origin = time.monotonic()
        self._thread = threading.Thread(target=self._http.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="field-server", daemon=True)  # fmt: skip
        self._thread.start()
        return self

    def close(self) -> None:
        """Stops serving, ends stalled responses and kept-alive connections, joins every thread."""
        self._stop.set()
        if self._http is None:
            return
        self._http.shutdown()
        self._http.end_connections()
        self._http.server_close()  # joins the handler threads
        assert self._thread is not None
        self._thread.join()
        self._http = None

    def __enter__(self) -> RecordsServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def attempts(self) -> Counter[str]:
        """Requests to /records received, by correlation id."""
        with self._lock:
            return Counter(entry.correlation_id for entry in self.received)

    def log_by_call(self) -> dict[str, list[Received]]:
        """The access log by correlation id, each call's requests in arrival order."""
        with self._lock:
            found: dict[str, list[Received]] = {}
            for entry in self.received:
                found.setdefault(entry.correlation_id, []).append(entry)
            return found

    def injected(self) -> Counter[str]:
        """Faults served, by kind."""
        with self._lock:
            return Counter(entry.kind for entry in self.received if entry.kind != "ok")

    # -- serving --------------------------------------------------------------------------------

    def _serve(self, handler: _Handler) -> None:
        received = self.now()
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        path = urlsplit(handler.path).path
        if path == "/token" and handler.command == "POST":
            self._respond(handler, self._issue_token(received))
            return
        found = _RECORD_PATH.fullmatch(path)
        if found is None:
            self._respond(handler, _Reply("bad_request", 404, {"error": f"no route {path}"}, {}))
            return
        correlation = handler.headers.get("X-Correlation-Id") or ""
        with self._lock:
            attempt = self._attempts[correlation]
            self._attempts[correlation] += 1
            reply = self._decide(handler, int(found[1]), body, correlation, attempt, received)
            entry = Received(correlation, handler.command, int(found[1]), reply.kind, received)
            self.received.append(entry)
        if reply.kind == "reset":
            # No response: linger 0 makes the close a TCP RST, as a crashing proxy sends.
            handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            handler.connection.close()
            handler.close_connection = True
        else:
            if reply.kind == "slow":
                self._stop.wait(self.settings.client_timeout + 1.0)
            self._respond(handler, reply)
        entry.ended = self.now()

    def _decide(self, handler: _Handler, record_id: int, body: bytes, correlation: str, attempt: int,
                now: float) -> _Reply:  # fmt: skip
        """What this request gets; applies a write that succeeds. Called under the lock."""
        settings = self.settings
        if self._in_outage(now):
            return _Reply("outage", 503, {"error": "service unavailable"}, {})
        draw = random.Random(f"{settings.seed}:{correlation}:{attempt}").random()
        slow = draw < settings.slow_rate
        draw -= settings.slow_rate
        if 0 <= draw < settings.reset_rate:
            return _Reply("reset", 0, None, {})
        draw -= settings.reset_rate
        if 0 <= draw < settings.throttle_rate:
            return _Reply("throttled", 429, {"error": "too many requests"}, {"Retry-After": str(settings.retry_after)})
        reply = self._handle(handler, record_id, body, now)
        if slow:
            # The server did the work (a write is applied) but answers after the client gave up.
            return reply._replace(kind="slow")
        return reply

    def _handle(self, handler: _Handler, record_id: int, body: bytes, now: float) -> _Reply:
        token = handler.headers.get("Authorization", "").removeprefix("Bearer ")
        if self._tokens.get(token, -math.inf) <= now:
            challenge = {"WWW-Authenticate": 'Bearer error="invalid_token"'}
            return _Reply("expired_token", 401, {"error": "token expired"}, challenge)
        method = handler.command
        if method == "GET" and 1 <= record_id <= READ_RECORDS:
            content: dict[str, Any] = record(record_id)
        elif method == "PUT" and PUT_BASE < record_id <= PUT_BASE + self.settings.put_records:
            value = str(json.loads(body)["value"])
            self.values[record_id] = value
            self.put_applied.setdefault(handler.headers.get("X-Correlation-Id") or "", []).append(value)
            content = {"id": record_id, "value": value}
        elif method == "POST" and NOTE_BASE < record_id:
            key = handler.headers.get("Idempotency-Key")
            if key is None:
                return _Reply("bad_request", 400, {"error": "Idempotency-Key required"}, {})
            content = self._idempotent.get(key) or {}
            if not content:
                note = str(json.loads(body)["note"])
                self.notes.setdefault(record_id, []).append(note)
                content = self._idempotent[key] = {"id": record_id, "note": note}
        else:
            return _Reply("not_found", 404, {"error": f"no record {record_id}"}, {})
        if now < self.shape_change:
            return _Reply("ok", 200, content, {})
        # The provider's new shape; a client still parsing the old one says so in X-Schema.
        drifted = handler.headers.get("X-Schema") == "1"
        return _Reply("schema_drift" if drifted else "ok", 200, {"schema": 2, "data": content}, {})

    def _issue_token(self, now: float) -> _Reply:
        with self._lock:
            if self._in_outage(now):
                return _Reply("outage", 503, {"error": "service unavailable"}, {})
            self.tokens_issued += 1
            token = f"token-{self.tokens_issued}"
            self._tokens[token] = now + self.settings.token_lifetime
        return _Reply("ok", 200, {"access_token": token, "expires_in": self.settings.token_lifetime}, {})

    def _in_outage(self, now: float) -> bool:
        return any(start <= now < end for start, end in self.outages)

    def _respond(self, handler: _Handler, reply: _Reply) -> None:
        data = json.dumps(reply.payload).encode()
        try:
            handler.send_response(reply.status)
            for name, value in reply.headers.items():
                handler.send_header(name, value)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(data)))
            handler.end_headers()
            handler.wfile.write(data)
            handler.wfile.flush()
        except OSError:
            handler.close_connection = True  # the client went away (it timed out)


def _outage_windows(settings: Settings, rng: random.Random) -> list[tuple[float, float]]:
    """`outages` windows spread over the middle 80% of the run, one per equal slice."""
    if settings.outages == 0:
        return []
    low, high = settings.outage_length
    first, last = 0.1 * settings.duration, 0.9 * settings.duration
    width = (last - first) / settings.outages
    windows = []
    for index in range(settings.outages):
        length = rng.uniform(low, high)
        start = first + index * width + rng.uniform(0.0, max(0.0, width - length))
        windows.append((start, start + length))
    return windows


# -- the application's clients ---------------------------------------------------------------------


class PayloadShapeError(Exception):
    """The response's payload does not have the shape this client parses."""


def parse(schema: int, payload: object) -> dict[str, Any]:
    """A record payload in the client's schema (1: the record itself; 2: {"schema": 2, "data": record})."""
    content = payload.get("data") if schema == 2 and isinstance(payload, dict) else payload
    if not isinstance(content, dict) or "id" not in content:
        keys = sorted(payload) if isinstance(payload, dict) else type(payload).__name__
        raise PayloadShapeError(f"expected a schema {schema} record, got {keys}")
    return content


def _body(method: str, data: str | None) -> dict[str, str] | None:
    if method == "PUT":
        return {"value": data or ""}
    if method == "POST":
        return {"note": data or ""}
    return None


def _headers(token: str, schema: int, method: str) -> dict[str, str]:
    correlation = brace.correlation_id() or ""
    headers = {"Authorization": f"Bearer {token}", "X-Correlation-Id": correlation, "X-Schema": str(schema)}
    if method == "POST":
        # A note must be appended once: every attempt of a call carries the call's key.
        headers["Idempotency-Key"] = correlation
    return headers


class SyncRecords:
    """The application's records client over httpx.Client or requests.Session, its own retries off.

    `call_api` is the function a Recovery wraps; `refresh_token`, `reconnect`
    and `adapt_schema` are its healing actions. Thread-safe enough for the
    driver: the session, token and schema are swapped whole.
    """

    def __init__(self, library: Literal["httpx", "requests"], base_url: str, settings: Settings) -> None:
        self._library = library
        self._base_url = base_url
        self._timeout = settings.client_timeout
        self._pool = settings.workers
        self._sessions: list[Any] = []  # every session opened, closed at the end
        self._lock = threading.Lock()
        self.session = self._connect()
        self.schema = 1
        self.token = self._fetch_token()

    def _connect(self) -> Any:
        session: Any
        if self._library == "httpx":
            session = httpx.Client(base_url=self._base_url, timeout=self._timeout,
                                   transport=httpx.HTTPTransport(retries=0))  # fmt: skip
        else:
            session = requests.Session()
            adapter = requests.adapters.HTTPAdapter(max_retries=0, pool_maxsize=self._pool)
            session.mount("http://", adapter)
        with self._lock:
            self._sessions.append(session)
        return session

    def _send(self, method: str, path: str, headers: dict[str, str], body: object) -> Any:
        if self._library == "httpx":
            return self.session.request(method, path, headers=headers, json=body)
        return self.session.request(method, self._base_url + path, headers=headers, json=body, timeout=self._timeout)

    def call_api(self, method: str, record_id: int, data: str | None) -> dict[str, Any]:
        """GET, PUT or POST /records/{record_id}: the record (or the write) as the server has it."""
        schema = self.schema
        headers = _headers(self.token, schema, method)
        response = self._send(method, f"/records/{record_id}", headers, _body(method, data))
        response.raise_for_status()
        return parse(schema, response.json())

    def _fetch_token(self) -> str:
        response = self._send("POST", "/token", {}, None)
        response.raise_for_status()
        return str(response.json()["access_token"])

    # The healing actions.
    def refresh_token(self, context: brace.HealingContext) -> None:
        self.token = self._fetch_token()

    def reconnect(self, context: brace.HealingContext) -> None:
        # The old session may still carry other threads' requests: it is closed at the end.
        self.session = self._connect()

    def adapt_schema(self, context: brace.HealingContext) -> None:
        self.schema = 2

    def close(self) -> None:
        with self._lock:
            sessions, self._sessions = self._sessions, []
        for session in sessions:
            session.close()


class AsyncRecords:
    """SyncRecords over httpx.AsyncClient (its token refresh is a coroutine)."""

    def __init__(self, base_url: str, settings: Settings) -> None:
        self._base_url = base_url
        self._timeout = settings.client_timeout
        self._sessions: list[httpx.AsyncClient] = []
        self.session = self._connect()
        self.schema = 1
        self.token = ""

    def _connect(self) -> httpx.AsyncClient:
        session = httpx.AsyncClient(base_url=self._base_url, timeout=self._timeout,
                                    transport=httpx.AsyncHTTPTransport(retries=0))  # fmt: skip
        self._sessions.append(session)
        return session

    async def call_api(self, method: str, record_id: int, data: str | None) -> dict[str, Any]:
        schema = self.schema
        response = await self.session.request(method, f"/records/{record_id}", json=_body(method, data),
                                              headers=_headers(self.token, schema, method))  # fmt: skip
        response.raise_for_status()
        return parse(schema, response.json())

    async def refresh_token(self, context: brace.HealingContext | None = None) -> None:
        response = await self.session.post("/token")
        response.raise_for_status()
        self.token = str(response.json()["access_token"])

    def reconnect(self, context: brace.HealingContext) -> None:
        self.session = self._connect()

    def adapt_schema(self, context: brace.HealingContext) -> None:
        self.schema = 2

    async def close(self) -> None:
        sessions, self._sessions = self._sessions, []
        for session in sessions:
            await session.aclose()


def build_recovery(client: SyncRecords | AsyncRecords, store: brace.DeadLetterStore) -> brace.Recovery:
    """The Recovery a user of this API writes from the README: brace's default treatments and
    backoffs, healing actions for what the client can fix, the stale-if-error fallback."""
    return brace.Recovery(
        # The client's parse error means the provider changed the payload's shape.
        classifier=brace.ErrorClassifier(
            rules=[brace.ErrorClassifier.rule("schema_mismatch", types=PayloadShapeError, name="payload-shape")],
        ),
        healing=[
            brace.HealingAction(client.refresh_token, categories="auth_expired", name="refresh_token"),
            brace.HealingAction(client.reconnect, categories="network_error", name="reconnect"),
            brace.HealingAction(client.adapt_schema, categories="schema_mismatch", name="adapt_schema"),
        ],
        fallback=brace.Fallback(brace.Fallback.cached(max_age=3600.0),
                                categories=["service_down", "timeout", "network_error", "rate_limited"]),  # fmt: skip
        dead_letters=store,
    )


# -- the workload and the run ------------------------------------------------------------------------


class Call(NamedTuple):
    number: int
    arrival: float  # seconds after the run began
    method: str
    record_id: int
    data: str | None

    @property
    def correlation(self) -> str:
        return f"call-{self.number:05d}"

    @property
    def args(self) -> tuple[str, int, str | None]:
        return (self.method, self.record_id, self.data)

    def expected(self) -> dict[str, Any]:
        """What the call returns when it reaches the server."""
        if self.method == "GET":
            return record(self.record_id)
        return {"id": self.record_id, ("value" if self.method == "PUT" else "note"): self.data}


Outcome = Literal["value", "degraded", "dead_letter", "lost"]


class Ended(NamedTuple):
    """How one call ended, as its caller saw it and checked it."""

    call: Call
    outcome: Outcome
    detail: str = ""


def workload(settings: Settings) -> list[Call]:
    """The calls: Poisson arrivals over `duration`; reads (some of missing records), PUTs, notes."""
    rng = random.Random(f"{settings.seed}:workload")
    calls, at = [], 0.0
    gap = settings.duration / settings.calls
    for number in range(settings.calls):
        draw = rng.random()
        if draw < settings.put_share:
            call = Call(number, at, "PUT", PUT_BASE + 1 + rng.randrange(settings.put_records), rng.choice(_COLOURS))
        elif draw < settings.put_share + settings.note_share:
            call = Call(number, at, "POST", NOTE_BASE + 1 + rng.randrange(_NOTE_RECORDS), f"note-{number}")
        elif rng.random() < settings.missing_rate:
            call = Call(number, at, "GET", READ_RECORDS + 1 + rng.randrange(READ_RECORDS), None)
        else:
            call = Call(number, at, "GET", 1 + rng.randrange(READ_RECORDS), None)
        calls.append(call)
        at += rng.expovariate(1.0 / gap)
    return calls


def _given_up(call: Call, failed: brace.RecoveryFailed, store: brace.DeadLetterStore, operation: str) -> Ended:
    if failed.dead_letter is None:
        return Ended(call, "lost", f"RecoveryFailed ({failed.category}) without a dead letter")
    try:
        letter = store.get(failed.dead_letter)
    except KeyError:
        return Ended(call, "lost", f"dead letter {failed.dead_letter} is not in the store")
    if (letter.operation, letter.args, letter.correlation_id) != (operation, call.args, call.correlation):
        return Ended(call, "lost", f"dead letter {letter.id} does not hold this call")
    return Ended(call, "dead_letter", letter.id)


def _checked(call: Call, value: object) -> Ended:
    if isinstance(value, brace.Degraded):
        return Ended(call, "degraded", value.source)
    if value != call.expected():
        return Ended(call, "lost", f"wrong value {value!r}")
    return Ended(call, "value")


class _Schedule:
    """The calls in arrival order, handed out to workers; each waits for its call's arrival."""

    def __init__(self, calls: Sequence[Call], origin: float) -> None:
        self._calls = iter(calls)
        self._lock = threading.Lock()
        self.origin = origin

    def next(self) -> Call | None:
        with self._lock:
            return next(self._calls, None)

    def delay(self, call: Call) -> float:
        return max(0.0, self.origin + call.arrival - time.monotonic())


def _drive_sync(client: SyncRecords, recovery: brace.Recovery, store: brace.DeadLetterStore, calls: Sequence[Call],
                settings: Settings) -> list[Ended]:  # fmt: skip
    call_api = recovery(client.call_api)
    operation = client.call_api.__qualname__
    schedule = _Schedule(calls, time.monotonic())
    ended: list[Ended] = []
    lock = threading.Lock()

    def one(call: Call) -> Ended:
        with brace.correlation(call.correlation):
            try:
                value = call_api(*call.args)
            except brace.RecoveryFailed as failed:
                return _given_up(call, failed, store, operation)
            except Exception as error:  # anything else reaching the caller is a loss
                return Ended(call, "lost", f"raised {type(error).__name__}: {error}")
        return _checked(call, value)

    def worker() -> None:
        while (call := schedule.next()) is not None:
            time.sleep(schedule.delay(call))
            result = one(call)
            with lock:
                ended.append(result)

    threads = [threading.Thread(target=worker, name=f"field-caller-{index}") for index in range(settings.workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sorted(ended, key=lambda item: item.call.number)


async def _drive_async(client: AsyncRecords, recovery: brace.Recovery, store: brace.DeadLetterStore,
                       calls: Sequence[Call], settings: Settings) -> list[Ended]:  # fmt: skip
    call_api = recovery(client.call_api)
    operation = client.call_api.__qualname__
    schedule = _Schedule(calls, time.monotonic())
    ended: list[Ended] = []

    async def one(call: Call) -> Ended:
        with brace.correlation(call.correlation):
            try:
                value = await call_api(*call.args)
            except brace.RecoveryFailed as failed:
                return _given_up(call, failed, store, operation)
            except Exception as error:
                return Ended(call, "lost", f"raised {type(error).__name__}: {error}")
        return _checked(call, value)

    async def worker() -> None:
        while (call := schedule.next()) is not None:
            await asyncio.sleep(schedule.delay(call))
            ended.append(await one(call))

    await asyncio.gather(*(worker() for _ in range(settings.workers)))
    return sorted(ended, key=lambda item: item.call.number)


def drive(client_name: Client, server: RecordsServer, settings: Settings, store: brace.DeadLetterStore,
          log: brace.RecoveryLog) -> tuple[list[Ended], brace.Recovery]:  # fmt: skip
    """Makes the workload's calls to `server` through one client and one Recovery listened to by `log`.

    Returns:
        How each call ended (in call order), and the Recovery.
    """
    calls = workload(settings)
    if client_name == "httpx-async":
        return asyncio.run(_run_async(server, settings, store, log, calls))
    client = SyncRecords(client_name, server.url, settings)
    try:
        recovery = build_recovery(client, store)
        recovery.add_listener(log)
        return _drive_sync(client, recovery, store, calls, settings), recovery
    finally:
        client.close()


async def _run_async(server: RecordsServer, settings: Settings, store: brace.DeadLetterStore, log: brace.RecoveryLog,
                     calls: Sequence[Call]) -> tuple[list[Ended], brace.Recovery]:  # fmt: skip
    client = AsyncRecords(server.url, settings)
    try:
        await client.refresh_token()
        recovery = build_recovery(client, store)
        recovery.add_listener(log)
        return await _drive_async(client, recovery, store, calls, settings), recovery
    finally:
        await client.close()


def run_client(client_name: Client, settings: Settings, directory: str) -> dict[str, Any]:
    """One field run through one client: a fresh server, client, Recovery, log and dead-letter store.

    Args:
        client_name: "httpx", "requests" or "httpx-async".
        settings: The run.
        directory: Where the SQLite dead-letter store goes (a new file per client).

    Returns:
        The report (see `account`), with the run's wall time.
    """
    wall = time.perf_counter()
    brace.testing.seed(settings.seed)
    store = brace.SQLiteDeadLetters(os.path.join(directory, f"dead-letters-{client_name}.sqlite3"))
    # Roomy enough for every event of the run: an eviction would show as attempts not logged.
    sink = brace.MemorySink(capacity=max(10_000, 64 * settings.calls))
    log = brace.RecoveryLog(sink)
    try:
        with RecordsServer(settings) as server:
            ended, recovery = drive(client_name, server, settings, store, log)
        # The server is closed: every request it received is in its log.
        report = account(client_name, server, ended, sink.events(), store, recovery, sink.evicted)
    finally:
        log.close()
        store.close()
    report["wall_time"] = time.perf_counter() - wall
    return report


def run(settings: Settings, clients: Sequence[Client] = CLIENTS) -> dict[str, Any]:
    """Runs the field test through each client in turn; the report of each, by client."""
    with tempfile.TemporaryDirectory(prefix="brace-field-") as directory:
        return {"settings": dataclasses.asdict(settings),
                "clients": {name: run_client(name, settings, directory) for name in clients}}  # fmt: skip


# -- accounting ---------------------------------------------------------------------------------------


# The report lists at most this many calls for each kind of trouble (it counts them all).
_DETAILS = 20


def _p95(times: Sequence[float]) -> float | None:
    if not times:
        return None
    ordered = sorted(times)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]  # nearest rank


def account(client_name: str, server: RecordsServer, ended: Sequence[Ended], events: Sequence[brace.RecoveryEvent],
            store: brace.DeadLetterStore, recovery: brace.Recovery, evicted: int = 0) -> dict[str, Any]:  # fmt: skip
    """The run's figures, from the server's log and data, the calls' checked outcomes, and the logged events.

    A call met a transient failure when the server served it one (slow,
    reset, 429, 503) on any attempt; it healed automatically when it went on
    to its real value, or to a permanent answer (a 404) that no retry can
    change: then it did not end on the transient failure. Recovery time:
    from the receipt of a call's first failed attempt to the end of the
    attempt that succeeded, for calls that ended with their value.

    Args:
        client_name: The client the calls went through.
        server: The (closed) server the calls went to.
        ended: How each call ended.
        events: The events the recovery log's sink holds.
        store: The dead-letter store of the Recovery.
        recovery: The Recovery (its own stats are reported as a cross-check).
        evicted: Events the sink had to drop (then attempts are not all logged).
    """
    by_call = server.log_by_call()
    received = server.attempts()
    logged: Counter[str] = Counter()
    rejected = 0  # attempts the Recovery's own policy refused: nothing was sent
    for event in events:
        if event.kind == "attempt":
            if getattr(event, "ran", True):
                logged[event.correlation_id or ""] += 1
            else:
                rejected += 1
    letters = {letter.correlation_id: letter for letter in store.all()}
    outcomes = Counter(item.outcome for item in ended)
    first_faults: Counter[str] = Counter()
    transient_met = transient_healed = 0
    times: list[float] = []
    lost_details: list[str] = []
    not_healed: list[str] = []
    writes = writes_lost = 0
    for item in ended:
        call, entries = item.call, by_call.get(item.call.correlation, [])
        faults = [entry for entry in entries if entry.kind != "ok"]
        if faults:
            first_faults[faults[0].kind] += 1
        if item.outcome == "lost":
            lost_details.append(f"{call.correlation} {call.method} {call.record_id}: {item.detail}")
        if any(entry.kind in TRANSIENT_FAULTS for entry in entries):
            transient_met += 1
            last = entries[-1].kind
            if item.outcome == "value" or (item.outcome == "dead_letter" and last != "ok"
                                           and last not in TRANSIENT_FAULTS):  # fmt: skip
                transient_healed += 1
            else:
                not_healed.append(f"{call.correlation}: {' '.join(entry.kind for entry in entries)} -> {item.outcome}")
        if faults and item.outcome == "value":
            times.append(entries[-1].ended - faults[0].received)
        if call.method == "GET":
            continue
        writes += 1
        if call.method == "PUT":
            applied = call.data in server.put_applied.get(call.correlation, [])
        else:
            applied = call.data in server.notes.get(call.record_id, [])
        letter = letters.get(call.correlation)
        held = letter is not None and letter.args == call.args
        if not applied and not held:
            writes_lost += 1
            lost_details.append(f"{call.correlation} {call.method} {call.record_id} {call.data}: neither applied nor "
                                f"dead-lettered; the call ended {item.outcome} {item.detail}".rstrip())  # fmt: skip
    applied_twice = sum(count - 1 for notes in server.notes.values() for count in Counter(notes).values() if count > 1)
    mismatched = sorted(key for key in received.keys() | logged.keys() if received[key] != logged[key])
    lost = outcomes["lost"] + writes_lost
    rate = transient_healed / transient_met if transient_met else None
    mean = sum(times) / len(times) if times else None
    report: dict[str, Any] = {
        "client": client_name,
        "calls": len(ended),
        "reads": sum(1 for item in ended if item.call.method == "GET"),
        "writes": writes,
        "outcomes": {name: outcomes[name] for name in ("value", "degraded", "dead_letter", "lost")},
        "injected": dict(sorted(server.injected().items())),
        "first_fault": dict(sorted(first_faults.items())),
        "transient_met": transient_met,
        "transient_healed": transient_healed,
        "transient_healed_rate": rate,
        "not_healed": not_healed[:_DETAILS],
        "recovered": len(times),
        "mean_recovery_time": mean,
        "p95_recovery_time": _p95(times),
        "lost_calls": outcomes["lost"],
        "writes_lost": writes_lost,
        "writes_applied_twice": applied_twice,
        "lost": lost,
        "lost_details": lost_details[:_DETAILS],
        "attempts_received": sum(received.values()),
        "attempts_logged": sum(logged.values()),
        "attempts_rejected": rejected,
        "attempts_mismatched": [f"{key or '<none>'}: received {received[key]}, logged {logged[key]}"
                                for key in mismatched[:_DETAILS]],  # fmt: skip
        "events_evicted": evicted,
        "dead_letters": len(letters),
        "tokens_issued": server.tokens_issued,
        "outages": [[round(start, 3), round(end, 3)] for start, end in server.outages],
        "brace_stats": recovery.stats().as_dict(),
    }
    report["promises"] = promises(report)
    report["all_promises_met"] = all(promise["met"] for promise in report["promises"])
    return report


def promises(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The promises, each with its target, what was measured, and whether it was met."""
    rate, mean = report["transient_healed_rate"], report["mean_recovery_time"]
    received, logged = report["attempts_received"], report["attempts_logged"]
    return [
        {"name": "transient failures healed", "target": f">= {TARGET_TRANSIENT_HEALED:.0%}",
         "measured": "none met" if rate is None else
         f"{rate:.1%} ({report['transient_healed']}/{report['transient_met']})",
         "met": rate is not None and rate >= TARGET_TRANSIENT_HEALED},
        {"name": "mean recovery time", "target": f"< {TARGET_MEAN_RECOVERY:g} s",
         "measured": "no recoveries" if mean is None else f"{mean:.2f} s",
         "met": mean is not None and mean < TARGET_MEAN_RECOVERY},
        {"name": "calls lost, writes included", "target": "= 0",
         "measured": f"{report['lost_calls']} calls, {report['writes_lost']} writes",
         "met": report["lost"] == 0},
        {"name": "attempts logged", "target": "= received",
         "measured": f"{logged}/{received}, {len(report['attempts_mismatched'])} calls differ",
         "met": logged == received and not report["attempts_mismatched"] and report["events_evicted"] == 0},
        {"name": "writes applied twice", "target": "= 0", "measured": str(report["writes_applied_twice"]),
         "met": report["writes_applied_twice"] == 0},
    ]  # fmt: skip


# -- output ------------------------------------------------------------------------------------------


def _number(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def _rows(reports: dict[str, dict[str, Any]]) -> Iterator[tuple[str, list[str]]]:
    def row(label: str, cell: Any) -> tuple[str, list[str]]:
        return label, [cell(report) for report in reports.values()]

    yield row("calls (reads + writes)", lambda r: f"{r['calls']} ({r['reads']}+{r['writes']})")
    yield row("  ended with their value", lambda r: str(r["outcomes"]["value"]))
    yield row("  ended degraded (fallback)", lambda r: str(r["outcomes"]["degraded"]))
    yield row("  ended dead-lettered", lambda r: str(r["outcomes"]["dead_letter"]))
    for kind, category in FAULT_CATEGORY.items():
        yield row(f"faults served: {category}", lambda r, kind=kind: str(r["injected"].get(kind, 0)))
    yield row("transient failures met (calls)", lambda r: str(r["transient_met"]))
    yield row("  healed automatically", lambda r: f"{r['transient_healed']} "
                                                  f"({_number(r['transient_healed_rate'], '.1%')})")  # fmt: skip
    yield row("recoveries (failed, then value)", lambda r: str(r["recovered"]))
    yield row("  mean recovery time, s", lambda r: _number(r["mean_recovery_time"], ".2f"))
    yield row("  p95 recovery time, s", lambda r: _number(r["p95_recovery_time"], ".2f"))
    yield row("calls lost", lambda r: str(r["lost_calls"]))
    yield row("writes lost", lambda r: str(r["writes_lost"]))
    yield row("writes applied twice", lambda r: str(r["writes_applied_twice"]))
    yield row("attempts received by the server", lambda r: str(r["attempts_received"]))
    yield row("attempts logged by brace", lambda r: str(r["attempts_logged"]))
    yield row("dead letters in the store", lambda r: str(r["dead_letters"]))
    yield row("wall time, s", lambda r: _number(r.get("wall_time"), ".1f"))


def render(result: dict[str, Any], *, details: int | None = 5) -> str:
    """The report as text that fits 80 columns: the figures by client, the promises, what went wrong.

    Args:
        result: What `run` returns (or the same shape for some clients).
        details: At most this many calls listed per client for each of: not
            healed, lost, attempts not logged; None: all the report holds.
    """
    reports: dict[str, dict[str, Any]] = result["clients"]
    settings = result["settings"]
    rows = list(_rows(reports))
    label_width = max(len(label) for label, _ in rows)
    width = max(11, *(len(name) for name in reports), *(len(cell) for _, cells in rows for cell in cells))
    lines = [f"brace field test: {settings['calls']} calls per client from {settings['workers']} threads over "
             f"{settings['duration']:g} s, seed {settings['seed']}", ""]  # fmt: skip
    lines.append(" " * label_width + "".join(f"  {name:>{width}}" for name in reports))
    for label, cells in rows:
        lines.append(f"{label:<{label_width}}" + "".join(f"  {cell:>{width}}" for cell in cells))
    lines += ["", "Promise".ljust(label_width) + "".join(f"  {name:>{width}}" for name in reports)]
    for index, promise in enumerate(next(iter(reports.values()))["promises"]):
        label = f"{promise['name']} {promise['target']}"
        verdicts = ["met" if report["promises"][index]["met"] else "NOT MET" for report in reports.values()]
        lines.append(f"{label:<{label_width}}" + "".join(f"  {verdict:>{width}}" for verdict in verdicts))
    notes = []
    for name, report in reports.items():
        notes += [f"not healed ({name}): {line}" for line in report["not_healed"][:details]]
        notes += [f"LOST ({name}): {line}" for line in report["lost_details"][:details]]
        notes += [f"NOT LOGGED ({name}): {line}" for line in report["attempts_mismatched"][:details]]
    if notes:
        lines.append("")
    lines += [textwrap.fill(note, width=80, subsequent_indent="    ") for note in notes]
    met = all(report["all_promises_met"] for report in reports.values())
    lines += ["", "Every promise met." if met else "Some promises NOT MET."]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    defaults = Settings()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=1000, help="calls per client (default 1000)")
    parser.add_argument("--workers", type=int, default=12, help="threads (tasks) per client (default 12)")
    parser.add_argument("--duration", type=float, default=30.0,
                        help="seconds over which the calls arrive (default 30)")  # fmt: skip
    parser.add_argument("--outages", type=int, default=6, help="503 outages of 1-3 s per run (default 6)")
    parser.add_argument("--seed", type=int, default=defaults.seed, help=f"seed (default {defaults.seed})")
    parser.add_argument("--clients", nargs="+", choices=CLIENTS, default=list(CLIENTS),
                        help="the clients to run (default: all)")  # fmt: skip
    parser.add_argument("--json", action="store_true", help="print only a JSON report on stdout")
    args = parser.parse_args(argv)
    for name in ("calls", "workers"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1")
    if not args.duration > 0 or not math.isfinite(args.duration) or args.outages < 0:
        parser.error("--duration must be a number > 0 and --outages >= 0")
    settings = dataclasses.replace(defaults, calls=args.calls, workers=args.workers, duration=args.duration,
                                   outages=args.outages, seed=args.seed)  # fmt: skip
    # Escalations are logged by brace's default handler; the report counts them instead.
    logging.getLogger("brace").addHandler(logging.NullHandler())
    logging.getLogger("brace").propagate = False
    result = run(settings, tuple(dict.fromkeys(args.clients)))
    if args.json:
        json.dump(result, sys.stdout, indent=2, sort_keys=True)
        print()
    else:
        print(render(result))
    return 0 if all(report["all_promises_met"] for report in result["clients"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
