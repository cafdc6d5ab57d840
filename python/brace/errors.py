"""brace's exceptions: every runtime rejection is a BraceError carrying its facts."""

from __future__ import annotations

import warnings
from typing import cast

__all__ = [
    "AttemptTimeout",
    "BraceError",
    "BulkheadFull",
    "CircuitOpen",
    "FailedResponse",
    "FallbackFailed",
    "KeyTableFull",
    "RateLimited",
    "RecoveryFailed",
    "Rejected",
    "RetryBudgetExhausted",
    "RetryError",
    "StoreError",
    "StoreUnavailable",
    "Throttled",
]


class BraceError(Exception):
    """Base class of every exception brace raises at run time.

    Subclasses take their facts as keyword arguments and keep them as
    attributes; pickling rebuilds them from those attributes (so a rejection
    can cross a process boundary with its facts and notes intact).
    """

    def __reduce__(self) -> str | tuple[object, ...]:
        facts = {k: v for k, v in self.__dict__.items() if not k.startswith("__")}
        if not facts:
            return super().__reduce__()
        return _rebuild, (type(self), facts, self.__dict__.get("__notes__"))


class Rejected(BraceError):
    """brace refused the call itself, before running it: nothing was sent.

    The common base of the local rejections: a rate limiter out of tokens
    (RateLimited), an open breaker (CircuitOpen), a full bulkhead
    (BulkheadFull), a spent retry budget (RetryBudgetExhausted), a client
    throttle shedding load (Throttled) and a keyed limiter with no room for
    another key (KeyTableFull). Catch it
    to tell "brace held this call back" from "the call failed". Retrying at
    once would be refused again; brace.Recovery settles such a call at once
    (reason "rejected_locally") instead of retrying it.
    """


class RateLimited(Rejected):
    """A rate limiter did not admit the call within the time allowed.

    Attributes:
        retry_after: Seconds until the request would be admitted without waiting.
        name: The limiter's name, or None.
        requested: The number of tokens asked for.
        limit: The limiter's burst (the most tokens available at once).
    """

    def __init__(self, *, retry_after: float, name: str | None, requested: int, limit: int) -> None:
        super().__init__(retry_after, name, requested, limit)

    # Facts in `args`, like CircuitOpen's: a limiter's compiled rejection
    # builds these with BaseException.__new__ alone, and the message is made
    # only when someone reads it.
    @property
    def retry_after(self) -> float:
        return cast(float, self.args[0])

    @property
    def name(self) -> str | None:
        return cast("str | None", self.args[1])

    @property
    def requested(self) -> int:
        return cast(int, self.args[2])

    @property
    def limit(self) -> int:
        return cast(int, self.args[3])

    def __str__(self) -> str:
        who = f"rate limiter {self.name!r}" if self.name else "rate limiter"
        return f"{who} did not admit {self.requested} token(s) in time; retry after {self.retry_after:.6g} s"

    def __reduce__(self) -> str | tuple[object, ...]:
        facts = {"retry_after": self.retry_after, "name": self.name, "requested": self.requested,
                 "limit": self.limit}  # fmt: skip
        return _rebuild, (type(self), facts, self.__dict__.get("__notes__"))


class CircuitOpen(Rejected):
    """A circuit breaker rejected the call without running it.

    Attributes:
        name: The breaker's name, or None.
        retry_after: Seconds until the breaker lets a probe call through (0.0
            when unknown: half-open with every probe out; inf when forced open).
    """

    def __init__(self, *, name: str | None, retry_after: float) -> None:
        super().__init__(name, retry_after)

    # The facts live in `args`, not in attributes: the compiled rejection path
    # makes instances with BaseException.__new__ alone (no __init__, no
    # __dict__), which keeps a rejection in the low hundreds of nanoseconds.
    @property
    def name(self) -> str | None:
        return cast("str | None", self.args[0])

    @property
    def retry_after(self) -> float:
        return cast(float, self.args[1])

    def __str__(self) -> str:
        who = f"circuit breaker {self.name!r}" if self.name else "circuit breaker"
        if self.retry_after == float("inf"):
            return f"{who} is forced open"
        return f"{who} is open; retry after {self.retry_after:.6g} s"

    def __reduce__(self) -> str | tuple[object, ...]:
        return _rebuild, (type(self), {"name": self.name, "retry_after": self.retry_after},
                          self.__dict__.get("__notes__"))  # fmt: skip


class BulkheadFull(Rejected):
    """A bulkhead had no free slot within its maximum wait.

    Attributes:
        name: The bulkhead's name, or None.
        max_concurrent: Its number of slots.
        max_wait: Seconds the call could wait for one (None: the bulkhead
            waits as long as it takes, and this call's deadline came first).
    """

    def __init__(self, *, name: str | None, max_concurrent: int, max_wait: float | None) -> None:
        super().__init__(name, max_concurrent, max_wait)

    # Facts in `args`, like CircuitOpen's: a full bulkhead that does not wait
    # is load shedding, and its compiled path builds these with
    # BaseException.__new__ alone.
    @property
    def name(self) -> str | None:
        return cast("str | None", self.args[0])

    @property
    def max_concurrent(self) -> int:
        return cast(int, self.args[1])

    @property
    def max_wait(self) -> float | None:
        return cast("float | None", self.args[2])

    def __str__(self) -> str:
        who = f"bulkhead {self.name!r}" if self.name else "bulkhead"
        waited = "until the call's deadline" if self.max_wait is None else f"{self.max_wait:.6g} s"
        return f"{who} is full ({self.max_concurrent} concurrent calls); waited {waited}"

    def __reduce__(self) -> str | tuple[object, ...]:
        facts = {"name": self.name, "max_concurrent": self.max_concurrent, "max_wait": self.max_wait}
        return _rebuild, (type(self), facts, self.__dict__.get("__notes__"))


class RetryBudgetExhausted(Rejected):
    """A retry was not made because the shared retry budget was spent.

    Attributes:
        attempts: Attempts made before giving up.
    """

    def __init__(self, *, attempts: int) -> None:
        self.attempts = attempts
        super().__init__(f"retry budget exhausted after {attempts} attempt(s)")


class Throttled(Rejected):
    """A client throttle (brace.ClientThrottle) shed the call locally.

    The backend has been refusing calls for overload, so the throttle turned
    this one away before sending it, with the probability its counts gave
    (Google SRE's client-side throttling).

    Attributes:
        name: The throttle's name, or None.
        probability: The probability with which calls were being rejected.
        requests: Requests counted over the throttle's window (before this one).
        accepts: Those of them the backend accepted.
    """

    def __init__(self, *, name: str | None, probability: float, requests: int, accepts: int) -> None:
        self.name = name
        self.probability = probability
        self.requests = requests
        self.accepts = accepts
        who = f"client throttle {name!r}" if name else "client throttle"
        super().__init__(
            f"{who} shed the call locally (reject probability {probability:.3g}: the backend accepted "
            f"{accepts} of {requests} requests in its window)"
        )


class KeyTableFull(Rejected):
    """A keyed rate limiter had no room for the key: every entry it could use
    holds a key whose bucket is not yet full again. Nothing was taken.

    Not a refusal for want of tokens (the key may have had them all): the
    table is too small for the keys in use at once, so give the limiter a
    larger max_keys.

    Attributes:
        name: The limiter's name, or None.
        capacity: Its table's entries.
        retry_after: Seconds until an entry the key could use is free.
        admitted: For a batch (try_acquire_many): its decisions, every key
            decided (the keys admitted took their token, the others nothing);
            None for a single key.
    """

    def __init__(self, *, name: str | None, capacity: int, retry_after: float, admitted: object = None) -> None:
        self.name = name
        self.capacity = capacity
        self.retry_after = retry_after
        self.admitted = admitted
        who = f"keyed rate limiter {name!r}" if name else "keyed rate limiter"
        super().__init__(
            f"{who} has no room for another key (table of {capacity} entries full); "
            f"retry after {retry_after:.6g} s or raise max_keys"
        )


class StoreUnavailable(Rejected):
    """A primitive whose state lives in a remote store (Redis, Valkey) could not
    reach it, and its failure policy is on_store_error="closed": the call was
    refused, not run. The connection error is the ``__cause__`` (when the
    store was already known to be down, the one that took it down).

    Attributes:
        store: The store: its URL with any password replaced by "***", or the
            client object's type.
        name: The primitive's name.
        kind: The primitive's kind ("RateLimiter", "KeyedRateLimiter", ...).
    """

    def __init__(self, *, store: str, name: str | None, kind: str) -> None:
        self.store = store
        self.name = name
        self.kind = kind
        super().__init__(f"{kind} {name!r} refused the call: its store {store} is unavailable "
                         "(on_store_error='closed')")  # fmt: skip


class StoreError(BraceError):
    """A remote store (Redis, Valkey) answered with an error that is not an
    outage: a refused password, a key of another type (WRONGTYPE), a script
    error, a sync call on an asyncio-only client. Raised at once, never
    hidden by the failure policy; the store's own exception is the
    ``__cause__``.

    Attributes:
        store: The store: its URL with any password replaced by "***", or the
            client object's type.
        name: The primitive's name.
        reason: What went wrong, in words.
    """

    def __init__(self, *, store: str, name: str | None, reason: str) -> None:
        self.store = store
        self.name = name
        self.reason = reason
        super().__init__(f"store {store} of {name!r}: {reason}")


class RetryError(BraceError):
    """Retrying gave up; the last exception is the ``__cause__``.

    Attributes:
        attempts: Attempts made.
    """

    def __init__(self, *, attempts: int) -> None:
        self.attempts = attempts
        super().__init__(f"gave up after {attempts} attempt(s)")


class FailedResponse(BraceError):
    """A response returned with an error status, held as an exception.

    brace.Recovery treats an HTTP response with an error status like a raised
    error; this is the form in which it reaches fallbacks and escalations,
    and what brace.RecoveryFailed is chained to, so the response is never lost.

    Attributes:
        response: The response (None after unpickling: responses rarely pickle).
        status: Its HTTP status code.
    """

    def __init__(self, *, response: object, status: int | None) -> None:
        self.response = response
        self.status = status
        super().__init__(f"the operation returned a response with status {status}")

    def __reduce__(self) -> str | tuple[object, ...]:
        return _rebuild, (type(self), {"response": None, "status": self.status}, self.__dict__.get("__notes__"))


class FallbackFailed(BraceError):
    """Every alternative of a fallback chain failed; the original failure is the ``__cause__``.

    Attributes:
        name: The fallback's name, or None.
        failures: One line per alternative tried: its name and what it raised.
    """

    def __init__(self, *, name: str | None, failures: tuple[str, ...]) -> None:
        self.name = name
        self.failures = failures
        who = f"fallback {name!r}" if name else "fallback"
        tried = "; ".join(failures) if failures else "no alternative applied"
        super().__init__(f"{who} could not serve a value: {tried}")


class RecoveryFailed(BraceError):
    """Recovery gave up on an operation and escalation decided to abort it.

    The last error of the operation is the ``__cause__``.

    Attributes:
        operation: The operation's name.
        category: The last failure's category (a brace.Category value, e.g. "auth_invalid").
        attempts: Attempts made.
        reason: Why recovery stopped: "not_retryable", "attempts", "healing_time" or
            "fallback_failed".
        escalation: The brace.Escalation that decided (None after unpickling: it
            holds live state that does not cross processes).
        dead_letter: The id of the call's entry in the dead-letter store, or
            None (not stored: while replaying, or the store failed, which a
            note on the cause says).
    """

    def __init__(self, *, operation: str, category: str, attempts: int, reason: str,
                 escalation: object = None, dead_letter: str | None = None) -> None:  # fmt: skip
        self.operation = operation
        self.category = category
        self.attempts = attempts
        self.reason = reason
        self.escalation = escalation
        self.dead_letter = dead_letter
        super().__init__(
            f"recovery of {operation!r} failed after {attempts} attempt(s): {category} ({reason}); escalated"
        )

    def __reduce__(self) -> str | tuple[object, ...]:
        facts = {"operation": self.operation, "category": self.category, "attempts": self.attempts,
                 "reason": self.reason, "dead_letter": self.dead_letter}  # fmt: skip
        return _rebuild, (type(self), facts, self.__dict__.get("__notes__"))


class AttemptTimeout(BraceError, TimeoutError):
    """A call or an attempt ran past its time limit.

    Named so it does not clash with asyncio.Timeout or httpx.Timeout; the old
    name brace.Timeout is a deprecated alias of this class.

    Attributes:
        timeout: The limit, in seconds.
        still_running: True when the attempt could not be stopped and may
            still be running: a sync attempt, which runs on in its worker
            thread until it ends (brace retries it only when the operation
            is declared idempotent). False when it was stopped (a
            coroutine, cancelled).
    """

    def __init__(self, *, timeout: float, still_running: bool = False) -> None:
        self.timeout = timeout
        self.still_running = still_running
        running = "; the attempt may still be running" if still_running else ""
        super().__init__(f"timed out after {timeout:.6g} s{running}")


def _rebuild(
    cls: type[BraceError], facts: dict[str, object], notes: list[str] | None
) -> BraceError:
    error = cls(**facts)
    if notes is not None:
        setattr(error, "__notes__", list(notes))  # add_note() is 3.11+
    return error


def __getattr__(name: str) -> object:
    # brace.errors.Timeout: the old name of AttemptTimeout, kept (with a warning) so that
    # existing code and pickles keep working.
    if name == "Timeout":
        warnings.warn(TIMEOUT_DEPRECATED, DeprecationWarning, stacklevel=2)
        return AttemptTimeout
    raise AttributeError(f"module 'brace.errors' has no attribute {name!r}")


TIMEOUT_DEPRECATED = ("brace.Timeout is deprecated: it is brace.AttemptTimeout now (the old name clashed with "
                      "asyncio.Timeout and httpx.Timeout)")  # fmt: skip
