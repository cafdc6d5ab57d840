"""The Python hooks brace's compiled base classes call on their subclasses.

Each cdef class of `brace._core` (pyx/*.pxi) keeps the fast path in C and
hands what is rare - a rejection to report, an exception to classify, a
queue to wait in - to methods that only its Python subclass defines. This
module is the one place where that contract is written down: a Protocol per
compiled base that calls back, naming every hook, its arguments and what it
returns. tests/test_hooks.py checks that each public class defines them with
these signatures. BackoffCore and RetryBudgetCore call no
hook: their subclasses only configure them and read their answers.

Tokens and starts are the compiled side's own: `token` names the state a
call was permitted in (a breaker's generation), `start` the clock reading
(ns) when the call began, or 0 when durations are not measured. Hand both
back unchanged.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, Callable, Protocol

from brace.errors import CircuitOpen

__all__ = ["BulkheadHooks", "CircuitBreakerHooks", "CoroutineGuardOwner", "EntryOwner", "GuardOwner", "PolicyHooks",
           "RateLimiterHooks", "RetryHooks"]


class GuardOwner(Protocol):
    """What a guard (pyx/guard.h, `brace._core.Guarded`) calls on its owner.

    A decorated sync function's call runs in C while the owner's compiled
    hooks let it; these methods take the rest. Each gets the call itself
    (fn, its positional arguments, its keyword arguments), so it can make
    the call again.
    """

    def _guard_call(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """The whole call, when the compiled check would not let it through in C.
        Returns what the call returns, or raises."""

    def _guard_failed(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
                      error: BaseException, token: int, start: int) -> Any:  # fmt: skip
        """fn raised `error`. Returns what the call returns instead, raises (the
        guard sets `error` as the new exception's context), or returns
        `brace._core.RERAISE` to re-raise `error` as it was."""

    def _guard_result(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
                      result: object, token: int, start: int) -> Any:  # fmt: skip
        """fn returned `result` and the compiled success hook asked Python to
        look at it (a result predicate). Returns what the call returns."""

    def _guard_awaitable(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
                         awaitable: Awaitable[Any], token: int, start: int) -> Awaitable[Any]:  # fmt: skip
        """A plain fn returned an awaitable: its work has not run yet. Returns an
        awaitable that guards the awaited outcome."""


class CoroutineGuardOwner(Protocol):
    """What a coroutine guard (pyx/awaiting.h, `brace._core.GuardedCoroutine`) calls on
    its owner. A call's first attempt, admitted and successful, runs in C; each of these
    returns a coroutine that the call's proxy awaits in its place, whose outcome is the
    call's. Each gets the call itself (fn, its positional and keyword arguments)."""

    def _guard_call_async(self, fn: Callable[..., Any], args: tuple[Any, ...],
                          kwargs: dict[str, Any]) -> Awaitable[Any]:  # fmt: skip
        """The whole call, when the compiled check would not let it through in C."""

    def _guard_failed_async(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
                            error: BaseException, token: int, start: int) -> Awaitable[Any]:  # fmt: skip
        """The first attempt raised `error` (fn, its coroutine, or what was thrown into
        it: a CancelledError, a GeneratorExit): book it, then retry, fall back or raise."""

    def _guard_result_async(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
                            result: object, token: int, start: int) -> Awaitable[Any]:  # fmt: skip
        """The first attempt returned `result` and the compiled success hook asked
        Python to look at it. Resolves to what the call returns."""


class EntryOwner(Protocol):
    """What a compiled `call` entry (pyx/entries.h) calls on its owner: the calls
    it cannot make in C."""

    def _call_slow(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """The whole `call(fn, *args, **kwargs)`, when fn is not a plain function
        (a coroutine function, one guarded already, a partial, ...) or the
        compiled check would not admit it now (it may wait). Returns what the
        call returns, or raises."""


class CircuitBreakerHooks(EntryOwner, Protocol):
    """What CircuitBreakerCore (pyx/breaker.pxi) calls on brace.CircuitBreaker.

    The guard's `_guard_call` is never needed: the breaker's enter hook
    either permits in C or raises CircuitOpen.
    """

    def _on_transition(self, from_code: int, to_code: int) -> None:
        """The state moved (codes are brace.h's BRC_CLOSED..BRC_METRICS_ONLY);
        called when listeners or a wait function are set (and on manual moves)."""

    def _probe_admitted(self, token: int) -> None:
        """A probe of the HALF_OPEN whose generation `_set_probe_gen` named (a breaker on a
        Redis store) was permitted here: take its lease, or give `token` back and raise."""

    def _probe_done(self, outcome: int) -> None:
        """Such a probe's outcome (BRC_OUTCOME_* flags) was recorded: return its lease."""

    def _probe_given_back(self) -> None:
        """Such a probe was given back (nothing recorded): return its lease, counting nothing."""

    def _aenter_probe(self, token: int) -> Awaitable[object]:
        """`async with` admitted such a probe: await its lease (or give `token` back and
        raise), then open the block (`_open_block`); the awaitable's value is the breaker."""

    def _store_refusal(self) -> BaseException:
        """A call refused while `_store_down` (on_store_error="closed", the store away): the
        error to raise (brace.StoreUnavailable), not_permitted listeners told."""

    def _on_rejected(self, error: CircuitOpen) -> None:
        """A call was refused with `error` (about to be raised); called only
        while not_permitted listeners are set."""

    def _on_success(self, duration_ns: int, would_open: bool) -> None:
        """A success recorded in C; called while success / would_open listeners
        are set, or when a METRICS_ONLY breaker would have opened."""

    def _on_error(self, error: BaseException, token: int, start: int) -> None:
        """The call raised: classify (record / ignore filters) and record it."""

    def _check_result(self, result: object, token: int, start: int) -> object:
        """Apply record_result to a returned value, record it, and return it."""

    def _record_and_tell(self, token: int, failure: bool, start: int, error: BaseException | None = None) -> None:
        """Record an outcome decided in Python and tell the listeners: `with`'s
        success when a result predicate is set (a block has no result to judge)."""

    def _guard_failed(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
                      error: BaseException, token: int, start: int) -> object:  # fmt: skip
        """As GuardOwner._guard_failed."""

    def _guard_result(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
                      result: object, token: int, start: int) -> object:  # fmt: skip
        """As GuardOwner._guard_result."""

    def _guard_awaitable(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
                         awaitable: Awaitable[Any], token: int, start: int) -> Awaitable[Any]:  # fmt: skip
        """As GuardOwner._guard_awaitable."""


class BulkheadHooks(EntryOwner, Protocol):
    """What BulkheadCore (pyx/bulkhead.pxi) calls on brace.Bulkhead.

    The compiled `with`, try_acquire and release run no Python while a slot
    is free and nobody waits; the rest is the subclass's FIFO queue (a shared
    bulkhead, store=, has none: its slow paths poll).
    """

    def _acquire_slow(self) -> Any:
        """`with` found no free slot: wait in the queue up to max_wait (or raise
        BulkheadFull). Returns what `with ... as x` binds."""

    def _enter_slow_async(self) -> Awaitable[Any]:
        """`async with` found no free slot: the wait, to await. Returns what
        `async with ... as x` binds."""

    def _handoff(self) -> None:
        """A released slot must go to the first queued waiter."""

    def _guard_call(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """As GuardOwner._guard_call: the decorated call waits for a slot."""

    def _guard_failed(self, fn: object, args: object, kwargs: object, error: BaseException, token: int,
                      start: int) -> object:  # fmt: skip
        """As GuardOwner._guard_failed: the slot goes back."""

    def _guard_awaitable(self, fn: object, args: object, kwargs: object, awaitable: Awaitable[Any], token: int,
                         start: int) -> Awaitable[Any]:  # fmt: skip
        """As GuardOwner._guard_awaitable: the slot is held until awaited."""


class RateLimiterHooks(EntryOwner, Protocol):
    """What RateLimiterCore (pyx/limiter.pxi) calls on brace.RateLimiter.

    Its guards take a token in C, and refuse in C a call whose token cannot
    come within max_wait; a token that comes later is waited for here.
    """

    def _enter_slow(self) -> Any:
        """`with` found no token now: wait for it. Returns what `with ... as x` binds."""

    def _enter_slow_async(self) -> Awaitable[Any]:
        """`async with` found no token now: the wait, to await."""

    def _guard_call(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """As GuardOwner._guard_call: the decorated call waits for its token."""

    def _guard_failed(self, fn: object, args: object, kwargs: object, error: BaseException, token: int,
                      start: int) -> object:  # fmt: skip
        """As GuardOwner._guard_failed: the token is spent."""

    def _guard_awaitable(self, fn: object, args: object, kwargs: object, awaitable: Awaitable[Any], token: int,
                         start: int) -> Awaitable[Any]:  # fmt: skip
        """As GuardOwner._guard_awaitable: returned as it is (its token is taken)."""


class RetryHooks(GuardOwner, Protocol):
    """What RetryCore (pyx/retry.pxi) calls on brace.Retry: the guard's four
    hooks. A first attempt that succeeds stays in C; the rest is Python's."""


class ExchangeHooks(Protocol):
    """What ExchangeCore (pyx/exchange.pxi) calls on the HTTP integrations' Exchange: the
    rare steps of an attempt whose success path is compiled."""

    def _releasing(self, host: Any, discard: Callable[[Any], object]) -> Any:
        """The host's policy with its hedge releasing losing copies' answers by `discard`."""

    def _wait(self, host: Any) -> str | None:
        """What an attempt waits for before it is sent (pause, turn, token), in this thread; the token."""

    def _unanswered(self, host: Any, plan: Any, start: int, error: Exception) -> None:
        """An attempt that got no answer (logged)."""

    def _learn(self, host: Any, response: object, status: int, token: str | None) -> bool:
        """What a failed answer, or one with quota fields, says for every caller."""

    def _adapt(self, host: Any, response: object, status: int, told: bool, start: int) -> None:
        """The host's adaptive limit learns from an answer."""

    def _logged(self, plan: Any, start: int, outcome: object) -> None:
        """Logs an attempt."""


class PolicyHooks(GuardOwner, CoroutineGuardOwner, Protocol):
    """What PolicyCore (pyx/policy.pxi) calls on brace.Policy: the guard's four
    hooks and the coroutine guard's three, and those of `call`'s compiled first
    attempt. A first attempt admitted by every stage and successful stays in C."""

    def _call_entry(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """`call` of a fn that is not a plain function, or by a policy that runs in Python."""

    def _call(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
              first: tuple[bool, Any] | None = None, started: int | None = None) -> Any:  # fmt: skip
        """The whole call in Python (a stage refused or would wait), begun at `started`."""

    def _first_failed(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
                      error: BaseException, token: int, start: int, started: int) -> Any:  # fmt: skip
        """Attempt 1 raised: the call's value, or RERAISE."""

    def _first_returned(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
                        result: object, token: int, start: int, started: int) -> Any:  # fmt: skip
        """Attempt 1 returned a value to judge in Python: the call's value."""

    def _first_returned_awaitable(self, fn: Callable[..., Any], result: object, token: int) -> BaseException:
        """Attempt 1 returned an awaitable: the error to raise, what it took given back."""
