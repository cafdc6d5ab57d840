"""`brace demo --http`: the scenario over real sockets, written the way a user of the README writes it.

The application talks to the records server (brace._cli.demo._http_server) through one
httpx.Client whose transport is brace's (brace.integrations.httpx.Transport) with brace's
defaults: the per-host policy (retries by brace's classifier with the server's pushback
honoured, a retry budget, a breaker), the host's pause shared on 429, the bearer token put
on each request and refreshed after a 401 (brace.integrations.Credentials), and one
"attempt" event per request sent into the recovery log. What a transport cannot do is
left to one brace.Recovery around each call: adapting to the payload's new shape (a
HealingAction), escalating and dead-lettering a record that does not exist, and a cached
fallback when recovery stops.
"""

from __future__ import annotations

import threading
from contextlib import ExitStack
from typing import Any

import httpx

import brace
from brace._core import now_ns
from brace._cli.demo._http_server import CLIENT_TIMEOUT, ChaosServer
from brace._cli.demo._scenario import OPERATION, TRANSIENT, Call, Ended, call_through
from brace._cli.demo._service import parse_record
from brace._cli.demo._settings import Settings
from brace._cli.demo._sinks import Sinks
from brace.integrations import Credentials, Hosts
from brace.integrations.httpx import Transport
from brace.recovery import DeadLetterStore, Escalation, RecoveryStats

__all__ = ["HTTPRun"]


class HTTPRun:
    """One --http run: the server, the application's client and its recovery. A context
    manager: leaving it closes the clients and stops the server."""

    def __init__(self, settings: Settings, store: DeadLetterStore, sinks: Sinks, calls: list[Call]) -> None:
        self.settings = settings
        self.speed = 1.0  # real seconds
        self.store = store
        self.sinks = sinks
        self.calls = calls
        self.escalations: dict[str, str] = {}
        self._lock = threading.Lock()
        self._stack = ExitStack()
        self.api = self._stack.enter_context(ChaosServer(settings))
        self.origin = now_ns()
        # The identity provider (here the same server's /token, never faulted): a plain client.
        self._identity = self._stack.enter_context(httpx.Client(base_url=self.api.url, timeout=5.0))
        # The provider does not say how long a token lives: the first 401 tells, and the
        # transport refreshes the token (once, for every thread) before sending again.
        self.credentials = Credentials(self._fetch_token, name="records")
        # brace's default per-host policy, in a table of the run's own (default_hosts() would
        # carry one run's breaker and pauses into the next run of the same process).
        self.hosts = Hosts()
        transport = Transport(hosts=self.hosts, credentials=self.credentials, log=sinks.log)
        self.http = self._stack.enter_context(httpx.Client(base_url=self.api.url, timeout=CLIENT_TIMEOUT,
                                                           transport=transport))  # fmt: skip
        self.schema = 1
        self.recovery = brace.Recovery(
            name=OPERATION,
            # The parser failing on a key means the provider changed the payload's shape.
            classifier=brace.ErrorClassifier(
                rules=[brace.ErrorClassifier.rule("schema_mismatch", types=KeyError, name="payload-shape")]
            ),
            healing=[brace.HealingAction(self.adapt_schema, categories="schema_mismatch", name="adapt_schema")],
            fallback=brace.Fallback(brace.Fallback.cached(max_age=3600.0), categories=sorted(TRANSIENT)),
            read_only=True,  # a read: a cached record stands in without losing anything
            escalation=brace.EscalationPolicy(handlers=[self._escalated], default="abort"),
            dead_letters=store,
        )
        self.recovery.add_listener(sinks.log)

    def __enter__(self) -> HTTPRun:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stack.close()

    def facts(self) -> dict[str, Any]:
        """What the report says of the HTTP side: the server, the client, the transport's work."""
        host = self.hosts.host(self.api.url)
        return {"server": self.api.url, "client": f"httpx {httpx.__version__}",
                "token_refreshes": self.credentials.refreshes, "host_pauses": host.gate.closings}  # fmt: skip

    def _fetch_token(self) -> str:
        response = self._identity.post("/token")
        response.raise_for_status()
        return str(response.json()["access_token"])

    def _escalated(self, escalation: Escalation) -> None:
        # Tells "the on-call person" (the report) and leaves the decision to the default, ABORT.
        with self._lock:
            self.escalations[escalation.correlation_id or ""] = f"{escalation.category.value} ({escalation.reason})"

    def fetch_record(self, record_id: int) -> dict[str, Any]:
        """GET /records/{record_id}, parsed in the schema the client knows."""
        schema = self.schema
        response = self.http.get(f"/records/{record_id}", headers={"X-Schema": str(schema)})
        response.raise_for_status()
        return parse_record(schema, response.json())

    def adapt_schema(self, context: brace.HealingContext) -> None:
        """The healing action for the provider's new payload shape."""
        self.schema = 2

    def one(self, call: Call) -> Ended:
        return call_through(self.recovery, self.store, self.fetch_record, call)

    def agrees(self, stats: RecoveryStats, first_failures: dict[str, int], calls: int) -> bool:
        """brace's record agrees with the count outside it: the Recovery saw every call, and
        each of its attempts is one request as the application made it (the transport's
        first send; its resends are below the Recovery, which never sees the failures they
        healed, so its categories are not compared)."""
        return stats.calls == calls and stats.attempts_made == self.sinks.first_attempts()
