"""One hedged call's decisions, shared by brace.Hedge's sync and async drivers.

A driver starts attempts and reports how each ended; `HedgedCall` says when
the next attempt is due, whether it may start (attempts left, the budget),
and what an outcome means: the call's result, its final error, or a failure
that lets the next attempt start. `Race` is what a sync driver's worker
threads report their outcomes to, and what keeps a loser's late outcome
from reaching a caller that has moved on.
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Literal, NamedTuple

from brace import _config, _guarding
from brace._core import is_awaitable, now_ns
from brace._listeners import Listeners
from brace._safe import add_note, describe
from brace.budget import RetryBudget
from brace.histogram import LatencyHistogram

__all__ = ["EventKind", "HedgeEvent", "HedgedCall", "Mode", "Outcome", "Race", "Rules", "Verdict"]

Mode = Literal["latency", "fallback", "parallel"]
EventKind = Literal["hedged", "failed", "won", "cancelled", "late", "budget_exhausted", "discard_failed"]
Verdict = Literal["won", "final", "next"]


class HedgeEvent(NamedTuple):
    """What a hedge's listener receives.

    Attributes:
        kind: "hedged": an attempt after the first started (`reason` says
            why: "slow", "failed" or "parallel"); "failed": an attempt failed
            with an error that lets the next one start; "won": the attempt
            whose outcome the call returns (`error` set when the call raises
            it: an error `on` does not accept, or the primary's when all
            failed); "cancelled": an attempt still running when the call was
            decided (a coroutine is cancelled; a sync attempt runs on to its
            end in its worker); "late": an attempt that ended after the call
            was decided, with its error if it failed (its outcome is not
            used; a result it returned has gone to the hedge's `discard`
            when this is told); "budget_exhausted": the budget refused a
            hedge; "discard_failed": `discard` raised `error` on a loser's
            result (never raised into the caller).
        name: The hedge's name, or None.
        at: When it happened, seconds on brace's clock.
        attempt: The attempt: 0 is the primary, 1 the first hedge, ...
        elapsed: Seconds the attempt ran, once it has ended (else None).
        error: The attempt's error, if it failed.
        reason: For "hedged": "slow", "failed" or "parallel"; else None.
    """

    kind: EventKind
    name: str | None
    at: float
    attempt: int
    elapsed: float | None = None
    error: BaseException | None = None
    reason: str | None = None


class Outcome(NamedTuple):
    """How one attempt ended."""

    attempt: int
    result: Any
    error: BaseException | None
    elapsed_ns: int


class Rules(NamedTuple):
    """A Hedge's configuration as its calls read it."""

    name: str | None
    mode: Mode
    attempts: int
    accepts: Callable[[BaseException], bool]
    budget: RetryBudget | None
    histogram: LatencyHistogram | None
    listeners: Listeners[HedgeEvent]
    # Given each loser's result (a sync call's late one; a coroutine's done before its cancel).
    discard: Callable[[Any], object] | None = None


class HedgedCall:
    """The decisions of one hedged call.

    Args:
        rules: The hedge's configuration.
        delay_ns: How long an attempt runs before the next starts (latency mode).
        stops: Failures after which no copy starts, whatever `on` says (a
            brace.Policy's rejections: the next copy would be rejected too);
            the attempts running go on. None: none.
    """

    __slots__ = ("rules", "delay_ns", "stops", "starts", "failures", "settled", "may_hedge")

    def __init__(self, rules: Rules, delay_ns: int, stops: Callable[[BaseException], bool] | None = None) -> None:
        self.rules = rules
        self.delay_ns = delay_ns
        self.stops = stops
        self.starts: list[int] = []  # when each attempt started, ns
        self.failures: dict[int, BaseException] = {}
        self.settled = 0
        self.may_hedge = True
        if rules.budget is not None:
            rules.budget.deposit()

    def emit(self, kind: EventKind, attempt: int, elapsed_ns: int | None = None,
             error: BaseException | None = None, reason: str | None = None) -> None:  # fmt: skip
        listeners = self.rules.listeners
        if listeners.wants(kind):
            elapsed = None if elapsed_ns is None else elapsed_ns / _config.NS_PER_SECOND
            at = now_ns() / _config.NS_PER_SECOND
            listeners.emit(HedgeEvent(kind, self.rules.name, at, attempt, elapsed, error, reason), kind)

    def begin(self) -> int:
        """Books the next attempt's start; returns its number."""
        self.starts.append(now_ns())
        return len(self.starts) - 1

    def hedge(self, reason: str) -> bool:
        """Whether a hedge may start now (attempts left, and a budget token, which it takes).
        A refused budget ends hedging for the call: it waits for the attempts running."""
        if not self._room():
            return False
        budget = self.rules.budget
        return self._granted(budget is None or budget.try_withdraw(), reason)

    async def hedge_async(self, reason: str) -> bool:
        """`hedge` for coroutines: a budget that asks a store is awaited (the loop never
        waits on its socket)."""
        if not self._room():
            return False
        budget = self.rules.budget
        if budget is None or not budget.remote:
            return self._granted(budget is None or budget.try_withdraw(), reason)
        return self._granted(await budget.try_withdraw_async(), reason)

    def _room(self) -> bool:
        """Whether hedging goes on and an attempt is left."""
        return self.may_hedge and len(self.starts) < self.rules.attempts

    def _granted(self, granted: bool, reason: str) -> bool:
        if not granted:
            self.may_hedge = False
            self.emit("budget_exhausted", len(self.starts))
            return False
        self.emit("hedged", len(self.starts), reason=reason)
        return True

    def due_ns(self) -> int | None:
        """When the next attempt is due because the last is slow (latency mode), or None."""
        if self.rules.mode != "latency" or not self.may_hedge or len(self.starts) >= self.rules.attempts:
            return None
        return self.starts[-1] + self.delay_ns

    def settle(self, outcome: Outcome) -> Verdict:
        """What an attempt's outcome means for the call."""
        self.settled += 1
        error = outcome.error
        stops = error is not None and self.stops is not None and self.stops(error)
        if not stops:  # a rejection's time says nothing of the operation's latency
            self.record(outcome)
        if error is None:
            self.emit("won", outcome.attempt, outcome.elapsed_ns)
            return "won"
        if not isinstance(error, Exception) or isinstance(error, _guarding.AsyncMisuse) or (
                not stops and not self.accepts(error)):
            self.emit("won", outcome.attempt, outcome.elapsed_ns, error)
            return "final"
        if stops:
            self.may_hedge = False
        self.failures[outcome.attempt] = error
        self.emit("failed", outcome.attempt, outcome.elapsed_ns, error)
        return "next"

    def accepts(self, error: BaseException) -> bool:
        """Whether `on` lets this failure start the next attempt (a failing predicate: no)."""
        try:
            return bool(self.rules.accepts(error))
        except Exception as broken:
            add_note(error, f"brace.Hedge: its `on` predicate failed on this error: {describe(broken)}")
            return False

    def record(self, outcome: Outcome) -> None:
        if self.rules.histogram is not None:
            self.rules.histogram.record_ns(outcome.elapsed_ns)

    def late(self, outcome: Outcome) -> None:
        """An attempt ended after the call was decided: its result goes to `discard`, then
        it is told ("late"), never raised.

        Not recorded in the histogram, as a cancelled coroutine is not (and as
        tower's Hedge records only the responses it used): a loser's latency is
        the tail hedging already cut, and counting it would hold a percentile
        delay at that tail instead of at what the calls wait for."""
        discarding = self._discard(outcome)
        if discarding is not None:  # a sync call's discard must not need awaiting
            close = getattr(discarding, "close", None)
            if callable(close):
                close()  # a coroutine never awaited: closed, not left to warn
            self._discard_failed(outcome, TypeError(
                "brace.Hedge: discard returned an awaitable in a sync call; give a plain function"))
        self.emit("late", outcome.attempt, outcome.elapsed_ns, outcome.error)

    async def late_async(self, outcome: Outcome) -> None:
        """`late` in a coroutine: an awaitable that `discard` returns is awaited."""
        discarding = self._discard(outcome)
        if discarding is not None:
            try:
                await discarding
            except Exception as error:
                self._discard_failed(outcome, error)
        self.emit("late", outcome.attempt, outcome.elapsed_ns, outcome.error)

    def _discard(self, outcome: Outcome) -> Any:
        """A loser's result to `discard`: what it returned when that is awaitable, else None."""
        discard = self.rules.discard
        if discard is None or outcome.error is not None:
            return None
        try:
            returned = discard(outcome.result)
        except Exception as error:
            self._discard_failed(outcome, error)
            return None
        return returned if is_awaitable(returned) else None

    def _discard_failed(self, outcome: Outcome, error: BaseException) -> None:
        self.emit("discard_failed", outcome.attempt, outcome.elapsed_ns, error)

    def exhausted(self) -> bool:
        """Every attempt started has ended (so, when no other may start, all failed)."""
        return self.settled == len(self.starts)

    def primary_failure(self) -> BaseException:
        """The first attempt's failure, noting the others' (raised when all failed)."""
        first = self.failures[0]
        for attempt, error in sorted(self.failures.items())[1:]:
            add_note(first, f"brace.Hedge: attempt {attempt} (a hedge) failed too: {describe(error)}")
        self.emit("won", 0, None, first)
        return first


class Race:
    """Where a sync call's worker threads report their outcomes.

    Until the call is decided, outcomes queue for the caller (`signal` set);
    after, each is `call.late` in its worker.
    """

    __slots__ = ("call", "lock", "signal", "outcomes", "running", "decided")

    def __init__(self, call: HedgedCall) -> None:
        self.call = call
        self.lock = threading.Lock()
        self.signal = threading.Event()
        self.outcomes: list[Outcome] = []
        self.running: set[int] = set()
        self.decided = False

    def started(self, attempt: int) -> None:
        with self.lock:
            self.running.add(attempt)

    def ended(self, outcome: Outcome) -> None:
        """From the attempt's worker."""
        with self.lock:
            self.running.discard(outcome.attempt)
            if not self.decided:
                self.outcomes.append(outcome)
                self.signal.set()
                return
        self.call.late(outcome)

    def wait(self, seconds: float | None) -> bool:
        return self.signal.wait(seconds)

    def untake(self, outcomes: list[Outcome]) -> None:
        """Outcomes taken but not settled (the call was decided first): back, to be late."""
        with self.lock:
            self.outcomes[:0] = outcomes

    def take(self) -> list[Outcome]:
        """The outcomes reported since the last take, in the order of their attempts."""
        with self.lock:
            taken, self.outcomes = self.outcomes, []
            self.signal.clear()
        return sorted(taken, key=lambda outcome: outcome.attempt)

    def decide(self) -> None:
        """The call is decided: outcomes not taken are late, running attempts are losers."""
        with self.lock:
            self.decided = True
            leftover, self.outcomes = self.outcomes, []
            running = sorted(self.running)
        for outcome in leftover:
            self.call.late(outcome)
        for attempt in running:
            self.call.emit("cancelled", attempt)
