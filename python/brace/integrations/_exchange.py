"""One HTTP request through brace, written once for every client and for sync and async.

A client integration (httpx, requests, aiohttp) hands each request to an
`Exchange` together with a `Wire`: the few facts and verbs that differ between
clients (the method, the host, setting headers, sending, reading a response's
status, releasing its body). The exchange runs the request through the host's
Policy (brace.integrations.Hosts): its retry, budget, breaker, limiter and
bulkhead, each attempt being one request sent. An attempt, as `_attempt_steps`
writes it, yields effects (pause, token, send, release) that two small drivers
carry out, in a thread or in a coroutine:

1. wait while the host is paused (a 429/503 with a wait, or a spent quota,
   heard by any caller), or fail fast with HostThrottled;
2. put on the credentials' token, the correlation id and the idempotency key;
3. bound the request's timeout by the time left of brace's deadline;
4. send, and learn from the answer: pause the host when it asks, expire a
   refused token, read and close the body of a failed answer (so that its
   connection returns to the pool and a retry does not leak it);
5. log the attempt (one "attempt" event per request sent, with its
   correlation id; `resend_count` is its attempt number less one).

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
from brace._core import new_correlation_id, now_ns
from brace._config import NS_PER_SECOND
from brace._deadline import deadline_remaining
from brace.adaptive import AdaptiveRateLimiter, overloaded, throttling
from brace.errors import AttemptTimeout
from brace.pushback import server_wait
from brace.recovery import RecoveryEvent, correlation_id
from brace.integrations._credentials import Credentials
from brace.integrations._errors import HostThrottled
from brace.integrations._hosts import Host, Hosts
from brace.policy import Policy

__all__ = ["IDEMPOTENT_METHODS", "QUOTA_FIELDS", "Exchange", "Wire"]

Request = TypeVar("Request")
Response = TypeVar("Response")

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})
IDEMPOTENCY_KEY = "Idempotency-Key"
# The fields by which a successful answer can say that the quota is spent, lowercase.
QUOTA_FIELDS = frozenset({"ratelimit", "ratelimit-remaining", "x-ratelimit-remaining"})
# Statuses whose wait, when the answer gives one, pauses every caller of the host.
_PAUSING = frozenset({429, 503})


class Wire(Protocol):
    """What the exchange needs to know of one HTTP client's requests and responses."""

    def method(self, request: Any, /) -> str: ...

    def host(self, request: Any, /) -> str: ...

    def header(self, request: Any, name: str, /) -> str | None: ...

    def set_headers(self, request: Any, headers: dict[str, str], /) -> None: ...

    def status(self, response: Any, /) -> int: ...

    def has_quota_fields(self, response: Any, /) -> bool:
        """Whether the answer has any of QUOTA_FIELDS (one pass over its header names)."""
        ...


class _Pause(NamedTuple):
    seconds: float


class _Turn(NamedTuple):
    limiter: AdaptiveRateLimiter
    max_wait: float | None


class _Token(NamedTuple):
    credentials: Credentials


class _Send(NamedTuple):
    request: Any
    timeout: float | None


class _Release(NamedTuple):
    response: Any


Result = TypeVar("Result")
# A client's way to send one attempt: the request and its timeout in seconds (None: the client's own).
Send = Callable[[Request, "float | None"], Result]

_Effect = Union[_Pause, _Turn, _Token, _Send, _Release]
_Steps = Generator[_Effect, Any, Any]


class _Plan:
    """One logical request: what every attempt of it shares."""

    __slots__ = ("method", "host", "correlation", "key", "attempts")

    def __init__(self, method: str, host: str, correlation: str, key: str | None) -> None:
        self.method = method
        self.host = host
        self.correlation = correlation
        self.key = key
        self.attempts = 0


class Exchange(Generic[Request, Response]):
    """The integrations' shared engine (see the module's docstring)."""

    def __init__(self, wire: Wire, *, hosts: Hosts, credentials: Credentials | None,
                 correlation_header: str | None, idempotency_key: bool,
                 log: Callable[[RecoveryEvent], object] | None) -> None:  # fmt: skip
        self.wire = wire
        self.hosts = hosts
        self.credentials = credentials
        self.correlation_header = correlation_header
        self.idempotency_key = idempotency_key
        self.log = log

    # -- a logical request ---------------------------------------------------------------------

    def _plan(self, request: Request) -> tuple[Host, _Plan, bool]:
        wire = self.wire
        method = wire.method(request).upper()
        host = self.hosts.host(wire.host(request))
        if method in IDEMPOTENT_METHODS:
            key, idempotent = None, True  # a key of the caller's own stays on the request as it is
        else:
            key = wire.header(request, IDEMPOTENCY_KEY)
            if key is None and self.idempotency_key:
                key = new_correlation_id()
            idempotent = key is not None
        plan = _Plan(method, host.key, correlation_id() or new_correlation_id(), key)
        return host, plan, idempotent

    def send(self, request: Request, send: Send[Request, Response], release: Callable[[Response], object],
             discard: Callable[[Response], object]) -> Response:  # fmt: skip
        """The request through its host's policy, in this thread: `send` sends one attempt
        (the request and its timeout, None: the client's), `release` reads a failed answer's
        body, `discard` closes the answer of a hedged copy that lost."""
        host, plan, idempotent = self._plan(request)
        policy = _policy(host, idempotent, discard)
        return policy.call(self._attempt, host, request, plan, send, release)

    async def send_async(self, request: Request, send: Send[Request, Awaitable[Response]],
                         release: Callable[[Response], Awaitable[object]],
                         discard: Callable[[Response], object]) -> Response:  # fmt: skip
        """`send` in a coroutine: `send` and `release` return awaitables (`discard` may)."""
        host, plan, idempotent = self._plan(request)
        policy = _policy(host, idempotent, discard)
        return await policy.call_async(self._attempt_async, host, request, plan, send, release)

    # -- one attempt: the steps, and their two drivers ------------------------------------------------

    def _attempt(self, host: Host, request: Request, plan: _Plan, send: Send[Request, Response],
                 release: Callable[[Response], object]) -> Response:  # fmt: skip
        steps = self._attempt_steps(host, request, plan)
        sent: Any = None
        failed: BaseException | None = None
        while True:
            try:
                effect = steps.send(sent) if failed is None else steps.throw(failed)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]
            sent, failed = None, None
            try:
                if isinstance(effect, _Send):  # the one effect of every attempt, first
                    sent = send(effect.request, effect.timeout)
                elif isinstance(effect, _Pause):
                    _clock.sleep_until(now_ns() + round(effect.seconds * NS_PER_SECOND))
                elif isinstance(effect, _Turn):
                    effect.limiter.acquire(effect.max_wait)
                elif isinstance(effect, _Token):
                    sent = effect.credentials.token()
                else:
                    release(effect.response)
            except Exception as error:
                failed = error

    async def _attempt_async(self, host: Host, request: Request, plan: _Plan, send: Send[Request, Awaitable[Response]],
                             release: Callable[[Response], Awaitable[object]]) -> Response:  # fmt: skip
        steps = self._attempt_steps(host, request, plan)
        sent: Any = None
        failed: BaseException | None = None
        while True:
            try:
                effect = steps.send(sent) if failed is None else steps.throw(failed)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]
            sent, failed = None, None
            try:
                if isinstance(effect, _Send):
                    sent = await send(effect.request, effect.timeout)
                elif isinstance(effect, _Pause):
                    await _clock.sleep_until_async(now_ns() + round(effect.seconds * NS_PER_SECOND))
                elif isinstance(effect, _Turn):
                    await effect.limiter.acquire_async(effect.max_wait)
                elif isinstance(effect, _Token):
                    sent = await effect.credentials.token_async()
                else:
                    await release(effect.response)
            except Exception as error:
                failed = error

    def _attempt_steps(self, host: Host, request: Request, plan: _Plan) -> _Steps:
        wire = self.wire
        plan.attempts += 1
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
        headers: dict[str, str] = {}
        token = None
        credentials = self.credentials
        if credentials is not None:
            token = yield _Token(credentials)
            headers[credentials.header] = credentials.value(token)
        if self.correlation_header is not None:
            headers[self.correlation_header] = plan.correlation
        if plan.key is not None:
            headers[IDEMPOTENCY_KEY] = plan.key
        wire.set_headers(request, headers)
        timeout = deadline_remaining()
        if timeout is not None and timeout <= 0:
            raise AttemptTimeout(timeout=0.0)
        start = now_ns()
        try:
            response = yield _Send(request, timeout)
        except Exception as error:
            self._logged(plan, start, "failure", error)
            if isinstance(adaptive, AdaptiveRateLimiter):
                adaptive.record_success()  # not throttled: the AWS rate only learns from throttling
            raise
        status = wire.status(response)
        told = self._learn(host, response, status, token)
        if isinstance(adaptive, AdaptiveRateLimiter):
            # A throttle that said how long to wait is the host's pause's to handle, exactly;
            # the adaptive rate learns from the ones that did not.
            if status in _PAUSING and throttling(response) and not told:
                adaptive.record_throttle(sent_at=start / NS_PER_SECOND)
            elif status not in _PAUSING:
                adaptive.record_success()
        elif adaptive is not None:
            adaptive.record(not overloaded(response))
        if status >= 400:
            # Read to its end (the client then returns the connection to its pool) and kept,
            # so that the caller still reads the body of the answer it is given at the end.
            yield _Release(response)
        self._logged(plan, start, "failure" if status >= 400 else "success", response)
        return response

    def _learn(self, host: Host, response: object, status: int, token: str | None) -> bool:
        """What the answer says for every caller: a pause of the host, a refused token.
        Returns whether the answer said how long to wait."""
        if status == 401 and token is not None and self.credentials is not None:
            self.credentials.expire(token)
        if status < 400 and not self.wire.has_quota_fields(response):
            return False  # the common success: no quota fields to read
        wait = server_wait(response, cap=self.hosts.max_pause).seconds
        if wait and (status in _PAUSING or status < 400):
            # On a success, a wait is only ever the reset of a spent quota (RateLimit
            # remaining 0): the next request would be refused.
            host.gate.close_for(wait)
        return wait is not None

    def _logged(self, plan: _Plan, start: int, outcome: str, what: object) -> None:
        log = self.log
        if log is None:
            return
        end = now_ns()
        log(RecoveryEvent("attempt", f"{plan.method} {plan.host}", plan.attempts, start / NS_PER_SECOND,
                          (end - start) / NS_PER_SECOND, outcome, error=None if outcome == "success" else what,
                          detail=f"resend_count={plan.attempts - 1}", correlation_id=plan.correlation))  # fmt: skip


def _policy(host: Host, idempotent: bool, discard: Callable[[Any], object]) -> Policy:
    """The policy a request goes through: `once` if it must not be sent twice; else the
    host's, whose hedge (if any, and without a discard of its own) releases losers' answers."""
    if not idempotent:
        return host.once
    hedge = host.policy.hedge
    if hedge is None or hedge.discard is not None:
        return host.policy
    releasing = host.releasing.get(discard)
    if releasing is None:  # one per client kind: a race makes two, and either serves
        releasing = host.releasing.setdefault(discard, host.policy.with_hedge(hedge.with_discard(discard)))
    return releasing
