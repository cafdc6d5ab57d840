"""Hedged HTTP requests through the integrations, against a real server on loopback: a host
Policy(hedge=...) sends a copy of a slow idempotent request, the copy's answer wins, and
the loser's answer is released so that its connection returns to the pool; requests that
must not be sent twice are never hedged.

The slow answer is held by the server until the test lets it go (never a race of sleeps):
the copy wins whatever the machine's speed, and the hedge's small delay only says when
the copy starts."""

from __future__ import annotations

import asyncio
import threading

import httpx
import pytest

import brace
from brace.integrations import Hosts
from brace.integrations.httpx import AsyncTransport, Transport
from scripted_server import Reply, serving

WAIT = 30.0  # a guard against hangs, never a measure
POOL = httpx.Limits(max_connections=2, max_keepalive_connections=2)
# A pool wait that a leaked connection would run into (the check needs both connections).
TIMEOUT = httpx.Timeout(5.0, pool=5.0)


def hedged_hosts() -> tuple[Hosts, brace.Hedge, dict[str, threading.Event]]:
    hedge = brace.Hedge(delay=0.01)
    told = {kind: threading.Event() for kind in ("late", "cancelled", "discard_failed")}
    hedge.add_listener(lambda event: told[event.kind].set(), kinds=tuple(told))
    return Hosts(policy=brace.Policy(hedge=hedge)), hedge, told


def test_the_copys_answer_wins_and_the_losers_connection_returns_to_the_pool() -> None:
    hold = threading.Event()
    hosts, _, told = hedged_hosts()
    with serving({"/r": [Reply(body=b"slow", hold=hold), Reply(body=b"copy")]}) as server:
        inner = httpx.HTTPTransport(retries=0, limits=POOL)
        with httpx.Client(transport=Transport(transport=inner, hosts=hosts), base_url=server.url,
                          timeout=TIMEOUT) as client:  # fmt: skip
            assert client.get("/r").content == b"copy"
            assert len(server.requests_to("/r")) == 2
            hold.set()  # the primary's answer arrives after the call has returned
            assert told["late"].wait(WAIT)  # told once the loser's response was discarded
            assert not told["discard_failed"].is_set()
            # Both connections at once: had the loser's been kept, the second would wait for the
            # pool until PoolTimeout.
            with client.stream("GET", "/r") as first, client.stream("GET", "/r") as second:
                assert (first.read(), second.read()) == (b"copy", b"copy")


def test_async_the_copys_answer_wins_and_the_loser_is_cancelled() -> None:
    hold = threading.Event()
    hosts, _, told = hedged_hosts()

    async def main(url: str) -> None:
        inner = httpx.AsyncHTTPTransport(retries=0, limits=POOL)
        async with httpx.AsyncClient(transport=AsyncTransport(transport=inner, hosts=hosts), base_url=url,
                                     timeout=TIMEOUT) as client:  # fmt: skip
            assert (await client.get("/r")).content == b"copy"
            assert told["cancelled"].is_set()
            async with client.stream("GET", "/r") as first, client.stream("GET", "/r") as second:
                assert (await first.aread(), await second.aread()) == (b"copy", b"copy")

    with serving({"/r": [Reply(body=b"slow", hold=hold), Reply(body=b"copy")]}) as server:
        try:
            asyncio.run(main(server.url))
        finally:
            hold.set()
        assert len(server.requests_to("/r")) >= 2


def test_a_request_that_must_not_be_sent_twice_is_never_hedged() -> None:
    hosts, hedge, _ = hedged_hosts()
    heard: list[brace.HedgeEvent] = []
    hedge.add_listener(heard.append)
    with serving({"/r": [Reply(body=b"created", delay=0.1)]}) as server:
        with httpx.Client(transport=Transport(hosts=hosts), base_url=server.url) as client:
            assert client.post("/r", content=b"x").content == b"created"
    assert len(server.requests_to("/r")) == 1
    assert heard == []  # the request went through `once`: no hedge at all
    assert hosts.host(server.url).once.hedge is None


@pytest.mark.parametrize("own", [False, True])
def test_a_hedge_with_a_discard_of_its_own_keeps_it(own: bool) -> None:
    def mine(response: object) -> None:
        pass

    hosts = Hosts(policy=brace.Policy(hedge=brace.Hedge(delay=1.0, discard=mine if own else None)))
    with serving() as server:
        with httpx.Client(transport=Transport(hosts=hosts), base_url=server.url) as client:
            assert client.get("/r").status_code == 200
    host = hosts.host(server.url)
    if own:
        assert host.releasing == {}
    else:
        (policy,) = host.releasing.values()
        assert policy.hedge is not None and policy.hedge.discard is httpx.Response.close
        assert policy.breaker is host.policy.breaker
