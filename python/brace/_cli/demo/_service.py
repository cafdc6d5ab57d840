"""The simulated records service, with its faults, and the application's client for it."""

from __future__ import annotations

import errno
import itertools
import math
import random
import threading
from collections import Counter
from typing import Any

import brace
from brace._clock import sleep_until
from brace._config import NS_PER_SECOND
from brace._core import now_ns
from brace._cli.demo._settings import Settings
from brace.recovery import correlation_id

# The service: existing records are 1..RECORDS; a permanent failure asks for one above.
RECORDS = 50_000
_CLIENT_TIMEOUT = 2.0  # seconds the client waits for a response
_THROTTLE_WINDOW = (1.0, 5.0)  # seconds a 429 episode lasts
_OUTAGE = (2.0, 12.0)  # seconds a region's outage lasts
_REGIONS = ("eu", "us")


class Response:
    """An HTTP response as brace's classifier sees responses: `status_code` and `headers`."""

    __slots__ = ("status_code", "headers", "payload")

    def __init__(self, status_code: int, payload: object = None, headers: dict[str, str] | None = None) -> None:
        self.status_code = status_code
        self.payload = payload
        self.headers = {} if headers is None else headers

    def raise_for_status(self) -> None:
        if self.status_code >= 400:
            raise HTTPError(self)

    def json(self) -> Any:
        return self.payload

    def __repr__(self) -> str:
        return f"<Response [{self.status_code}]>"


_REASONS = {401: "Unauthorized", 404: "Not Found", 429: "Too Many Requests", 503: "Service Unavailable"}


class HTTPError(Exception):
    """What the client raises for an error status; the response travels on `.response`."""

    def __init__(self, response: Response) -> None:
        super().__init__(f"HTTP {response.status_code} {_REASONS.get(response.status_code, '')}".rstrip())
        self.response = response


def record(record_id: int) -> dict[str, Any]:
    """The true content of a record: what every successful call must return."""
    return {"id": record_id, "values": [f"r{record_id}c{column}" for column in range(3)]}


class Books:
    """What a chaos service counts, under one lock: the ground truth of the demo's accounting.

    Attributes (read under `snapshot` for a consistent view):
        requests: Requests for records received.
        injected: Faults served, by kind.
        episodes: Throttle windows and outages begun.
        ledger: Correlation id -> (kind, ns on brace's clock) of each of its requests, in
            arrival order; the time is when the client had its answer (for a slow answer:
            when it gave up waiting).
    A service says what `now()` is and books each request with `_book`, its lock held.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings  # the fault rates: a test may change them between requests
        self._lock = threading.Lock()
        self._tokens: dict[str, float] = {}  # token -> when it expires, in the service's seconds
        self.requests = 0
        self.injected: Counter[str] = Counter()
        self.episodes: Counter[str] = Counter()
        self.ledger: dict[str, list[tuple[str, int]]] = {}

    def now(self) -> float:
        """The service's seconds since it began."""
        raise NotImplementedError

    def issue_token(self) -> str:
        with self._lock:
            token = f"token-{len(self._tokens) + 1}"
            self._tokens[token] = self.now() + self.settings.token_lifetime
            return token

    def _expired(self, token: str, now: float) -> bool:
        return self._tokens.get(token, -math.inf) <= now

    def _book(self, kind: str, correlation: str, answered_ns: int) -> None:
        """Counts one request (the lock held)."""
        self.requests += 1
        if kind != "ok":
            self.injected[kind] += 1
        self.ledger.setdefault(correlation, []).append((kind, answered_ns))

    def snapshot(self) -> tuple[dict[str, list[tuple[str, int]]], int, Counter[str]]:
        """Copies of the ledger, the requests received and the faults injected, taken together."""
        with self._lock:
            return {key: list(entries) for key, entries in self.ledger.items()}, self.requests, Counter(self.injected)

    def expire_count(self) -> int:
        """Tokens that expired by now (each meant 401s to whoever still held it)."""
        now = self.now()
        with self._lock:
            return sum(1 for expiry in self._tokens.values() if expiry <= now)


class RecordsAPI(Books):
    """The records service and its faults, in simulated seconds. Thread-safe.

    It counts what it received and what it did, per fault kind and per
    correlation id (the `X-Correlation-ID` its access log would keep): this
    is the ground truth the demo's accounting uses.
    """

    def __init__(self, settings: Settings, *, origin_ns: int, speed: float) -> None:
        super().__init__(settings)
        self._origin = origin_ns
        self._speed = speed
        # The provider deploys its new payload shape after this many requests.
        self._drift_after = round(settings.drift_at * settings.calls)
        self._received = 0
        self._rng = random.Random(f"{settings.seed}:faults")
        self._connections = itertools.count(1)
        self._broken: set[int] = set()
        self._throttled_until = -math.inf
        self._down_until = dict.fromkeys(_REGIONS, -math.inf)

    def now(self) -> float:
        """Simulated seconds since the run began."""
        return (now_ns() - self._origin) / NS_PER_SECOND * self._speed

    def connect(self) -> int:
        with self._lock:
            return next(self._connections)

    def get(self, record_id: int, *, connection: int, region: str, token: str, schema: int,
            correlation: str | None) -> Response:  # fmt: skip
        """GET /records/{record_id}: a response, or TimeoutError / ConnectionResetError."""
        with self._lock:
            kind, response = self._serve(record_id, connection, region, token, schema)
        if kind == "timeout":
            # The server never answers; the client gives up after its timeout.
            sleep_until(now_ns() + round(_CLIENT_TIMEOUT / self._speed * NS_PER_SECOND))
        with self._lock:
            self._book(kind, correlation or "", now_ns())
        if kind == "timeout":
            raise TimeoutError(f"GET /records/{record_id}: no response within {_CLIENT_TIMEOUT:g} s")
        if kind == "reset":
            raise ConnectionResetError(errno.ECONNRESET, "Connection reset by peer")
        assert response is not None
        return response

    def _serve(self, record_id: int, connection: int, region: str, token: str,
               schema: int) -> tuple[str, Response | None]:  # fmt: skip
        settings, rng, now = self.settings, self._rng, self.now()
        self._received += 1
        if connection in self._broken:
            return "reset", None
        if rng.random() < settings.reset_rate:
            self._broken.add(connection)
            return "reset", None
        if rng.random() < settings.timeout_rate:
            return "timeout", None
        if now >= self._throttled_until and rng.random() < settings.throttle_rate:
            self._throttled_until = now + rng.uniform(*_THROTTLE_WINDOW)
            self.episodes["throttle windows"] += 1
        if now < self._throttled_until:
            wait = math.ceil(self._throttled_until - now) / self._speed
            return "throttled", Response(429, {"error": "rate limited"}, {"Retry-After": format(wait, "g")})
        if now >= self._down_until[region] and rng.random() < settings.outage_rate:
            self._down_until[region] = now + rng.uniform(*_OUTAGE)
            self.episodes["outages"] += 1
        if now < self._down_until[region]:
            return "outage", Response(503, {"error": f"region {region} unavailable"})
        if self._expired(token, now):
            return "expired_token", Response(401, {"error": "token expired"}, {"WWW-Authenticate": "Bearer"})
        if not 1 <= record_id <= RECORDS:
            return "not_found", Response(404, {"error": f"no record {record_id}"})
        truth = record(record_id)
        if self._received <= self._drift_after:
            return "ok", Response(200, truth)
        # The provider's new shape; a client still declaring schema 1 cannot read it.
        payload = {"schema": 2, "record": {"id": truth["id"], "cells": truth["values"]}}
        return ("schema_drift" if schema == 1 else "ok"), Response(200, payload)


class RecordsClient:
    """The application's client: a pooled connection, a token, a region and a parser.

    Its methods ending in the healing actions are what a user registers with
    brace.Recovery.
    """

    def __init__(self, api: RecordsAPI) -> None:
        self._api = api
        self.connection = api.connect()
        self.token = api.issue_token()
        self.region = _REGIONS[0]
        self.schema = 1

    def get_record(self, record_id: int) -> dict[str, Any]:
        schema = self.schema
        response = self._api.get(record_id, connection=self.connection, region=self.region, token=self.token,
                                 schema=schema, correlation=correlation_id())  # fmt: skip
        response.raise_for_status()
        return parse_record(schema, response.json())

    # The healing actions.
    def reconnect(self, context: brace.HealingContext) -> None:
        self.connection = self._api.connect()

    def refresh_token(self, context: brace.HealingContext) -> None:
        self.token = self._api.issue_token()

    def switch_region(self, context: brace.HealingContext) -> None:
        # Blind failover: the retry that follows tells whether the other region is up.
        self.region = _REGIONS[1] if self.region == _REGIONS[0] else _REGIONS[0]

    def adapt_schema(self, context: brace.HealingContext) -> None:
        self.schema = 2


def parse_record(schema: int, payload: dict[str, Any]) -> dict[str, Any]:
    """A record from a payload of `schema` (1: as it was; 2: the provider's new shape): KeyError if it is not one."""
    if schema == 1:
        return {"id": payload["id"], "values": list(payload["values"])}
    return {"id": payload["record"]["id"], "values": list(payload["record"]["cells"])}
