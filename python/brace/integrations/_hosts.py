"""Per-host state for the HTTP integrations: a Policy (breaker, limiter, budget, retry) and
a pause gate per host, made on first use and kept in a bounded table.

One failing host opens its own breaker and pauses its own callers, not the
others'. The table holds at most `max_hosts` hosts; past that, the host used
least recently is forgotten (its state is made afresh if it comes back), so a
client that talks to many hosts keeps bounded memory. By default every client
of the process shares one table (`default_hosts()`), so that a host's pause is
seen by every caller of that host.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from functools import lru_cache
from typing import NamedTuple

from brace import _config
from brace.adaptive import AdaptiveRateLimiter, ClientThrottle
from brace.breaker import CircuitBreaker
from brace.budget import RetryBudget
from brace.errors import Rejected
from brace.policy import Policy
from brace.pushback import http_status
from brace.retry import Retry
from brace._safe import safe_repr
from brace.integrations._gate import Gate

__all__ = ["Host", "Hosts", "PolicyFactory", "default_hosts", "default_policy", "origin"]

PolicyFactory = Callable[[str], Policy]
MAX_HOSTS_LIMIT = 1_000_000


_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


@lru_cache(maxsize=1024)  # asked on every request, of few hosts
def origin(scheme: str, host: str | None, port: int | None) -> str:
    """A host's key: scheme://host[:port], the port left out when it is the scheme's default,
    so that every client names a host alike (httpx and urllib leave a default port out,
    yarl fills it in)."""
    scheme = scheme.lower()
    host = (host or "").lower()
    if port is None or _DEFAULT_PORTS.get(scheme) == port:
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


class _ServerError:
    """The breaker's result check: a response with a 5xx status is a failure."""

    _brace_fails_from_status = 500  # by its status alone (brace._stages.status_threshold)

    def __call__(self, result: object) -> bool:
        status = http_status(result)
        return status is not None and 500 <= status <= 599


_server_error = _ServerError()


def default_policy(host: str) -> Policy:
    """brace's policy for one host: retries by the default classifier (pushback honoured,
    60 s in all), a retry budget, and a breaker that opens when half of the last 30 s of
    calls (20 at least) failed with a connection error, a timeout or a 5xx."""
    from brace.classify import DEFAULT_CLASSIFIER

    budget = RetryBudget(name=host)
    retry = Retry(name=host, classifier=DEFAULT_CLASSIFIER, deadline=60.0, budget=budget)
    breaker = CircuitBreaker(name=f"http:{host}", window="time", window_size=30, minimum_calls=20,
                             wait_in_open=5.0, half_open_calls=2, ignore=Rejected,
                             record_result=_server_error)  # fmt: skip
    return Policy(name=host, retry=retry, breaker=breaker)


class Host(NamedTuple):
    """One host's state.

    Attributes:
        key: The host's key (scheme://host:port unless the table's `key` says otherwise).
        policy: The policy of requests that may be sent again (idempotent).
        once: The same breaker, limiter and bulkhead without the retry and
            without the hedge: for requests that must not be sent twice.
        gate: The pause the host asked for, shared by its callers.
        releasing: `policy` with its hedge releasing the responses of losing
            copies, per client's way to release one (made on first use).
        adaptive: The host's adaptive client-side limit (Hosts' `adaptive`), or None.
        releases: Whether `policy` hedges with no discard of its own: the
            integrations then release losers' answers (through `releasing`).
    """

    key: str
    policy: Policy
    once: Policy
    gate: Gate
    releasing: dict[Callable[[object], object], Policy]
    adaptive: AdaptiveRateLimiter | ClientThrottle | None = None
    releases: bool = False


class Hosts:
    """The per-host state of one or more HTTP clients.

    Args:
        policy: A function from a host's key to the Policy of that host's
            requests, called once per host (default `default_policy`); or one
            Policy shared by every host.
        max_hosts: The most hosts kept (1 to 1,000,000); the least recently
            used is forgotten past it.
        throttle: What a request to a paused host does: "wait" until the host
            reopens (within the request's deadline; longer pauses are
            rejected at once), or "reject" at once with HostThrottled.
        max_pause: The longest pause a host's answer may impose on its
            callers (seconds or timedelta, > 0): longer waits are shortened.
        adaptive: A client-side limit per host that learns from the server,
            for servers that throttle without saying how much they allow
            (with RateLimit headers, the shared pause is exact and needs none):
            "rate": a brace.AdaptiveRateLimiter (the AWS SDK's adaptive mode:
            after the first throttling answer, the rate follows CUBIC and
            requests wait for their turn within their deadline), when the
            server throttles you and you want to settle at its rate;
            "throttle": a brace.ClientThrottle (Google SRE's client-side
            throttling: shed requests locally with probability
            max(0, (requests - 2 x accepts) / (requests + 1)) over 2 minutes,
            raising brace.Throttled), when a backend is overloaded and you
            want to shed load in proportion to its refusals; None: neither.

    Raises:
        TypeError, ValueError: For arguments outside these ranges.
    """

    def __init__(self, *, policy: Policy | PolicyFactory | None = None, max_hosts: int = 1024,
                 throttle: str = "wait", max_pause: float = 300.0, adaptive: str | None = None) -> None:  # fmt: skip
        if policy is None:
            factory: PolicyFactory = default_policy
        elif isinstance(policy, Policy):
            shared = policy
            factory = lambda key: shared  # noqa: E731
        elif callable(policy):
            factory = policy
        else:
            raise TypeError(f"policy must be a brace.Policy, a function of the host returning one, or None; "
                            f"got {safe_repr(policy)}")  # fmt: skip
        if throttle not in ("wait", "reject"):
            raise ValueError(f"throttle must be 'wait' or 'reject', got {safe_repr(throttle)}")
        if adaptive not in (None, "rate", "throttle"):
            raise ValueError(f"adaptive must be 'rate', 'throttle' or None, got {safe_repr(adaptive)}")
        self.adaptive = adaptive
        self._factory = factory
        self._max_hosts = _config.count(max_hosts, "max_hosts", minimum=1, maximum=MAX_HOSTS_LIMIT)
        self.throttle = throttle
        self.max_pause = float(_config.positive_duration(max_pause, "max_pause"))
        self._hosts: OrderedDict[str, Host] = OrderedDict()
        self._lock = threading.Lock()

    def host(self, key: str) -> Host:
        """The state of the host `key`, made on first use."""
        found = self._hosts.get(key)
        if found is not None:
            try:
                self._hosts.move_to_end(key)  # one C call, atomic under the GIL
            except KeyError:  # forgotten by another thread just now: it stays usable for this request
                pass
            return found
        with self._lock:
            found = self._hosts.get(key)
            if found is None:
                found = self._make(key)
                self._hosts[key] = found
                while len(self._hosts) > self._max_hosts:
                    self._hosts.popitem(last=False)
            else:
                self._hosts.move_to_end(key)
            return found

    def _make(self, key: str) -> Host:
        policy = self._factory(key)
        if not isinstance(policy, Policy):
            raise TypeError(f"the policy function returned {safe_repr(policy)} for host {key!r}, not a brace.Policy")
        # Neither retry nor hedge: a request that must not be sent twice is sent once.
        once = Policy(name=policy.name, breaker=policy.breaker, limiter=policy.limiter, bulkhead=policy.bulkhead)
        adaptive: AdaptiveRateLimiter | ClientThrottle | None = None
        if self.adaptive == "rate":
            adaptive = AdaptiveRateLimiter(name=key)
        elif self.adaptive == "throttle":
            adaptive = ClientThrottle(name=key)
        hedge = policy.hedge
        return Host(key, policy, once, Gate(), {}, adaptive, hedge is not None and hedge.discard is None)

    def __len__(self) -> int:
        return len(self._hosts)

    def __contains__(self, key: object) -> bool:
        return key in self._hosts

    def __repr__(self) -> str:
        return f"<Hosts {len(self._hosts)}/{self._max_hosts} throttle={self.throttle!r} adaptive={self.adaptive!r}>"


_default: Hosts | None = None
_default_lock = threading.Lock()


def default_hosts() -> Hosts:
    """The table every client of this process shares unless given its own."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Hosts()
        return _default
