"""The stage protocol: what a brace.Policy asks of the primitives it composes.

A Policy runs each attempt through its admission stages - breaker, limiter,
bulkhead, in that order - and lets its retry stage decide on the outcomes; a
hedge stage, between the two, races copies of an attempt, each admitted on its own.
It asks them only through the hooks declared here, never through their other
private names. The hooks are named `_brace_stage_*`: brace's own protocol, not
part of a primitive's public API; this module is the one place they are
declared (HOOK_PREFIX lets a check tell them from private attributes).

Times are ns on brace's clock (brace._core.now_ns). A `ticket` is what an
admission returned: the breaker's permission token; stages that issue none
return 0 and ignore the one they are given (a Policy has one breaker at most,
so an attempt has one ticket).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, TypeVar

if TYPE_CHECKING:
    from brace.budget import RetryBudget

__all__ = ["HOOK_PREFIX", "AdmissionStage", "Call", "FallbackStage", "HedgeStage", "Outcome", "RetryStage", "Sleep",
           "Steps", "ValueFromError", "Withdraw", "status_threshold"]

HOOK_PREFIX = "_brace_stage_"

T = TypeVar("T")

# An attempt's (failed, outcome): outcome is what it raised or returned.
Outcome = tuple[bool, Any]


class Call(NamedTuple):
    """An effect of the retry loop: make attempt `number`, send back its Outcome."""

    number: int


class Sleep(NamedTuple):
    """An effect of the retry loop: sleep `seconds` on brace's clock, send back None."""

    seconds: float


class Withdraw(NamedTuple):
    """An effect of the retry loop: withdraw a token from a `remote` budget (one that asks a
    store), send back whether it did. A coroutine's driver awaits it (try_withdraw_async),
    so no loop waits on a socket; the loop withdraws from any other budget itself."""

    budget: RetryBudget


# The retry loop of one call: yields effects, returns the call's value or raises what ends it.
Steps = Generator[Call | Sleep | Withdraw, Outcome | bool | None, Any]


class AdmissionStage(Protocol):
    """A stage each attempt must pass before it runs: CircuitBreaker, RateLimiter, Bulkhead."""

    @property
    def _brace_stage_in_python(self) -> bool:
        """Whether the stage decides only in Python (its state is elsewhere: a Redis store), so
        a Policy admits through `_brace_stage_admit` and never through a compiled check."""

    def _brace_stage_admit(self) -> int:
        """Admits one attempt (waiting if the stage waits) and returns its ticket, or raises
        the stage's rejection (CircuitOpen, RateLimited, BulkheadFull)."""

    async def _brace_stage_admit_async(self) -> int:
        """`_brace_stage_admit`, awaiting instead of blocking."""

    def _brace_stage_give_back(self, ticket: int) -> None:
        """An admitted attempt did not run (a later stage rejected it): undo the admission."""

    def _brace_stage_failed(self, ticket: int, start: int, error: BaseException) -> None:
        """An admitted attempt that began at `start` raised `error`."""

    def _brace_stage_returned(self, ticket: int, start: int, result: T) -> T:
        """An admitted attempt that began at `start` returned `result`; returns it."""


class RetryStage(Protocol):
    """What a Policy asks of its brace.Retry beyond its public configuration."""

    def _brace_stage_begin(self) -> None:
        """A call begins (the budget's deposit)."""

    def _brace_stage_retryable(self, error: BaseException) -> bool:
        """Whether `error`, raised by an attempt, is retried."""

    def _brace_stage_rejects(self, result: object) -> bool:
        """Whether `result`, returned by an attempt, is retried."""

    def _brace_stage_loop(self, started: int, deadline: int | None) -> Steps:
        """The retry loop of a call that began at `started`, bounded by `deadline` (None: none)."""

    def _brace_stage_ended_first(self, succeeded: bool) -> None:
        """A call ended with its first attempt, outside the loop: counted (Retry.calls()) as
        successful or failed without retry."""

    def _brace_stage_classified(self, attempt: Callable[..., object], *args: Any) -> Outcome:
        """attempt(*args)'s Outcome; what is not retried propagates."""

    async def _brace_stage_classified_async(self, attempt: Callable[..., Awaitable[object]], *args: Any) -> Outcome:
        """`_brace_stage_classified` for an awaited attempt."""


class HedgeStage(Protocol):
    """What a Policy asks of its brace.Hedge: one attempt group of hedged copies."""

    def _brace_stage_hedged(self, attempt: Callable[[], Any], stops: Callable[[BaseException], bool]) -> Any:
        """The group's outcome: attempt() and its copies raced, the winner's value returned or
        the group's failure raised; after a failure `stops` accepts, no copy starts."""

    async def _brace_stage_hedged_async(self, attempt: Callable[[], Awaitable[Any]],
                                        stops: Callable[[BaseException], bool]) -> Any:  # fmt: skip
        """`_brace_stage_hedged` with each copy a task."""


class FallbackStage(Protocol):
    """What a call returns instead of failing: a brace.Fallback (its alternatives, a Degraded
    value), or ValueFromError around a plain function of the error. One idea, one word:
    `fallback=` on Policy and Recovery, and brace.Fallback itself."""

    def _brace_stage_fall_back(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
                               error: Exception) -> Any:  # fmt: skip
        """The value for a call of fn(*args, **kwargs) that ended with `error`, or raises
        (`error` itself when this fallback does not take it)."""

    async def _brace_stage_fall_back_async(self, fn: Callable[..., Any], args: tuple[Any, ...],
                                           kwargs: dict[str, Any], error: Exception) -> Any:  # fmt: skip
        """`_brace_stage_fall_back` for coroutines (an alternative's awaitable is awaited)."""


class ValueFromError:
    """The simplest fallback: a function given the final exception, whose return value is the
    call's (brace.Fallback.from_error's idea, without the Degraded wrapper)."""

    __slots__ = ("function",)

    def __init__(self, function: Callable[[Exception], Any]) -> None:
        self.function = function

    def _brace_stage_fall_back(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
                               error: Exception) -> Any:  # fmt: skip
        return self.function(error)

    async def _brace_stage_fall_back_async(self, fn: Callable[..., Any], args: tuple[Any, ...],
                                           kwargs: dict[str, Any], error: Exception) -> Any:  # fmt: skip
        return self.function(error)


def status_threshold(judge: object) -> int:
    """The lowest HTTP status a result check fails, when it judges a response by its status
    alone (brace.pushback.http_status): every response below it passes, so a compiled success path may let
    it pass unseen. 0 when the check is not known to judge so.

    A check says so with an int `_brace_fails_from_status` in 101..1000 (brace's default
    classifier: 400; the HTTP integrations' breakers: 500); anything else is 0.
    """
    try:
        threshold = getattr(judge, "_brace_fails_from_status", 0)
    except Exception:  # a hostile __getattr__: judged in Python
        return 0
    return threshold if type(threshold) is int and 101 <= threshold <= 1000 else 0
