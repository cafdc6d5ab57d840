"""One HTTP request through brace, written once for every client and for sync and async.

A client integration (httpx, requests, aiohttp) hands each request to an
`Exchange` together with a `Wire`: the few facts and verbs that differ between
clients (the method, the host, setting headers, sending, reading a response's
status, releasing its body). The exchange runs the request through the host's
Policy (brace.integrations.Hosts): its retry, budget, breaker, limiter and
bulkhead, each attempt being one request sent. An attempt is written once, as
steps that two small drivers (`_attempt` in a thread, `_attempt_async` in a
coroutine) run in order; what it may wait for before it is sent (`_waits`)
yields effects - a pause, a limiter's turn, a token - that the drivers carry out,
and runs only when one of them applies:

1. wait while the host is paused (a 429/503 with a wait, or a spent quota,
   heard by any caller), or fail fast with HostThrottled;
2. put on the credentials' token (the correlation id and the idempotency key
   are put on once, for every attempt of the request);
3. bound the request's timeout by the time left of brace's deadline;
4. send, and learn from the answer: pause the host when it asks, expire a
   refused token, read and close the body of a failed answer (so that its
   connection returns to the pool and a retry does not leak it);
5. log the attempt (one "attempt" event per request sent, with its
   correlation id; `resend_count` is its attempt number less one).

The success path in a thread - the plan, the sync driver, the deadline's
bound, the answer's status and quota test - is compiled (brace._core's
ExchangeCore, the base of Exchange), so that brace adds little to a request;
the waits, what an answer teaches, the log and the async driver are here.

A host policy with a brace.Hedge sends hedged copies of idempotent requests;
the answer of a copy that lost is released by the client's `discard` (closed,
so that its connection returns to the pool), unless the hedge has a discard
of its own.

Requests that are not idempotent (RFC 9110: POST, PATCH, CONNECT; any method
the server may apply twice) are sent once, through the same breaker, limiter
and bulkhead but without the retry and the hedge, unless they carry an `Idempotency-Key`
header (which the exchange adds itself with `idempotency_key=True`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator
from typing import Any, Generic, NamedTuple, Protocol, TypeVar, Union

from brace import _clock
from brace._core import ExchangeCore, ExchangePlan, now_ns
from brace._config import NS_PER_SECOND
from brace._deadline import deadline_remaining
from brace.adaptive import AdaptiveRateLimiter, overloaded, throttling
from brace.pushback import server_wait
from brace.recovery import RecoveryEvent
from brace.recovery._correlation import correlation_var
from brace.integrations._credentials import Credentials
from brace.integrations._errors import HostThrottled
from brace.integrations._hosts import Host, Hosts
from brace.policy import Policy

__all__ = ["IDEMPOTENT_METHODS", "QUOTA_MARK", "Exchange", "Wire"]

Request = TypeVar("Request")
Response = TypeVar("Response")

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})
IDEMPOTENCY_KEY = "Idempotency-Key"
# What the name of every field by which a successful answer can say that the quota is spent
# holds (RateLimit, RateLimit-Remaining, X-RateLimit-Remaining), in any case.
QUOTA_MARK = "ratelimit"
# Statuses whose wait, when the answer gives one, pauses every caller of the host.
_PAUSING = frozenset({429, 503})


class Wire(Protocol):
    """What the exchange needs to know of one HTTP client's requests and responses."""

    def method(self, request: Any, /) -> str: ...

    def host(self, request: Any, /) -> str: ...

    def header(self, request: Any, name: str, /) -> str | None: ...

    def set_header(self, request: Any, name: str, value: str, /) -> None: ...

    def status(self, response: Any, /) -> int: ...

    def may_have_quota_fields(self, response: Any, /) -> bool:
        """False when the answer has no quota field: a cheap test (is QUOTA_MARK in its
        header names, in lowercase?), which may say True of an answer without one (the
        exact read that follows then finds none)."""
        ...


class _Pause(NamedTuple):
    seconds: float


class _Turn(NamedTuple):
    limiter: AdaptiveRateLimiter
    max_wait: float | None


class _Token(NamedTuple):
    credentials: Credentials


Result = TypeVar("Result")
# A client's way to send one attempt: the request and its timeout in seconds (None: the client's own).
Send = Callable[[Request, "float | None"], Result]

# What an attempt may wait for before it is sent; the steps return the token to send, or None.
_Wait = Union[_Pause, _Turn, _Token]
_Waits = Generator[_Wait, Any, "str | None"]


class Exchange(ExchangeCore, Generic[Request, Response]):
    """The integrations' shared engine (see the module's docstring). Its success path in a
    thread - the plan, the sync driver, the bound, the answer's test - is compiled
    (ExchangeCore); the rare steps and the async driver are here."""

    def __init__(self, wire: Wire, *, hosts: Hosts, credentials: Credentials | None,
                 correlation_header: str | None, idempotency_key: bool,
                 log: Callable[[RecoveryEvent], object] | None) -> None:  # fmt: skip
        self._configure_core(wire=wire, hosts=hosts, credentials=credentials, correlation_header=correlation_header,
                             idempotency_key=idempotency_key, log=log, idempotent_methods=IDEMPOTENT_METHODS,
                             idempotency_header=IDEMPOTENCY_KEY, correlation_var=correlation_var)  # fmt: skip

    async def send_async(self, request: Request, send: Send[Request, Awaitable[Response]],
                         release: Callable[[Response], Awaitable[object]],
                         discard: Callable[[Response], object]) -> Response:  # fmt: skip
        """`send` in a coroutine: `send` and `release` return awaitables (`discard` may)."""
        host, plan, policy = self._plan(request, discard)
        return await policy.call_async(self._attempt_async, host, request, plan, send, release)

    def _releasing(self, host: Host, discard: Callable[[Any], object]) -> Policy:
        """The host's policy with its hedge releasing losers' answers by `discard` (the hedge
        has no discard of its own)."""
        hedge = host.policy.hedge
        assert hedge is not None
        releasing = host.releasing.get(discard)
        if releasing is None:  # one per client kind: a race makes two, and either serves
            releasing = host.releasing.setdefault(discard, host.policy.with_hedge(hedge.with_discard(discard)))
        return releasing

    # -- one attempt: the async driver (the sync one is compiled), and the steps they share ----------

    def _wait(self, host: Host) -> str | None:
        """The sync driver of `_waits`: what an attempt waits for, waited in this thread; the token."""
        steps, sent = self._waits(host), None
        while True:
            try:
                effect = steps.send(sent)
            except StopIteration as done:
                token: str | None = done.value
                return token
            sent = None
            if isinstance(effect, _Pause):
                _clock.sleep_until(now_ns() + round(effect.seconds * NS_PER_SECOND))
            elif isinstance(effect, _Turn):
                effect.limiter.acquire(effect.max_wait)
            else:
                sent = effect.credentials.token()

    async def _attempt_async(self, host: Host, request: Request, plan: ExchangePlan,
                             send: Send[Request, Awaitable[Response]],
                             release: Callable[[Response], Awaitable[object]]) -> Response:  # fmt: skip
        token = None
        if host.gate.until_ns or host.adaptive is not None or self.credentials is not None:
            steps, sent = self._waits(host), None
            while True:
                try:
                    effect = steps.send(sent)
                except StopIteration as done:
                    token = done.value
                    break
                sent = None
                if isinstance(effect, _Pause):
                    await _clock.sleep_until_async(now_ns() + round(effect.seconds * NS_PER_SECOND))
                elif isinstance(effect, _Turn):
                    await effect.limiter.acquire_async(effect.max_wait)
                else:
                    sent = await effect.credentials.token_async()
        timeout = self._ready(request, plan, token)
        start = now_ns()
        try:
            response = await send(request, timeout)
        except Exception as error:
            self._unanswered(host, plan, start, error)
            raise
        if self._answered(host, response, token, start) >= 400:
            await release(response)
        if self.log is not None:
            self._logged(plan, start, response)
        return response

    def _waits(self, host: Host) -> _Waits:
        """What an attempt waits for before it is sent (the drivers run these steps only when
        one of them may apply): the host's pause, its adaptive limit's turn, the token."""
        pause = host.gate.remaining()
        if pause:
            left = deadline_remaining()
            if self.hosts.throttle == "reject" or (left is not None and pause > left):
                raise HostThrottled(host=host.key, retry_after=pause,
                                    waited=self.hosts.throttle == "wait")  # fmt: skip
            yield _Pause(pause)
        adaptive = host.adaptive
        if isinstance(adaptive, AdaptiveRateLimiter):
            yield _Turn(adaptive, deadline_remaining())  # RateLimited when its turn lies past the deadline
        elif adaptive is not None:
            adaptive.acquire()  # brace.Throttled when shed
        credentials = self.credentials
        if credentials is None:
            return None
        token: str = yield _Token(credentials)
        return token

    def _unanswered(self, host: Host, plan: ExchangePlan, start: int, error: Exception) -> None:
        """An attempt that got no answer: logged; not a throttle for the adaptive rate."""
        if self.log is not None:
            self._logged(plan, start, error)
        if isinstance(host.adaptive, AdaptiveRateLimiter):
            host.adaptive.record_success()  # the AWS rate only learns from throttling

    def _adapt(self, host: Host, response: object, status: int, told: bool, start: int) -> None:
        """The host's adaptive limit learns from an answer (`told`: it said how long to wait)."""
        adaptive = host.adaptive
        if isinstance(adaptive, AdaptiveRateLimiter):
            # A throttle that said how long to wait is the host's pause's to handle, exactly;
            # the adaptive rate learns from the ones that did not.
            if status in _PAUSING and throttling(response) and not told:
                adaptive.record_throttle(sent_at=start / NS_PER_SECOND)
            elif status not in _PAUSING:
                adaptive.record_success()
        elif adaptive is not None:
            adaptive.record(not overloaded(response))

    def _learn(self, host: Host, response: object, status: int, token: str | None) -> bool:
        """What the answer says for every caller: a pause of the host, a refused token.
        Returns whether the answer said how long to wait."""
        if status == 401 and token is not None and self.credentials is not None:
            self.credentials.expire(token)
        wait = server_wait(response, cap=self.hosts.max_pause).seconds
        if wait and (status in _PAUSING or status < 400):
            # On a success, a wait is only ever the reset of a spent quota (RateLimit
            # remaining 0): the next request would be refused.
            host.gate.close_for(wait)
        return wait is not None

    def _logged(self, plan: ExchangePlan, start: int, outcome: object) -> None:
        assert self.log is not None
        end = now_ns()
        failed = isinstance(outcome, BaseException) or self.wire.status(outcome) >= 400
        self.log(RecoveryEvent("attempt", f"{plan.method} {plan.host}", plan.attempts, start / NS_PER_SECOND,
                               (end - start) / NS_PER_SECOND, "failure" if failed else "success",
                               error=outcome if failed else None, detail=f"resend_count={plan.attempts - 1}",
                               correlation_id=plan.correlation))  # fmt: skip

