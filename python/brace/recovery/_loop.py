"""The recovery algorithm, written once for threads and coroutines.

`Engine.steps(run)` is one call, from its first attempt to its end, as a
generator of effects (brace.recovery._drivers): make an attempt, sleep, run a
healing action or its undo, serve a fallback, escalate and wait for the
decision. `drive` runs it in a thread, `drive_async` in a coroutine; every
decision below is made here, once.

A failure is classified; a retryable one gets its category's allowance of
further attempts, each preceded by a healing action registered for the
category (verified by the attempt that follows) and by its category's wait
(the server's, when it said one). When the failure cannot be retried, its
allowance is spent, or the bound on healing time is reached, the fallback
serves a marked value if it can; otherwise the failure is escalated, and the
decision (retry, skip, use a value, abort) settles the call.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from brace import _deadline, _guarding
from brace._clock import sleep_until, sleep_until_async
from brace._core import is_awaitable, now_ns
from brace._safe import safe_repr
from brace.classify import Category, Classification
from brace.errors import (
    AttemptTimeout,
    BulkheadFull,
    CircuitOpen,
    FailedResponse,
    FallbackFailed,
    RecoveryFailed,
    RetryBudgetExhausted,
)
from brace.policy import not_run
from brace.pushback import http_status
from brace.recovery._correlation import correlation_id
from brace.recovery._drivers import Effect, Steps, call, wait_for
from brace.recovery._escalation import AttemptRecord, Decision, Escalation, Option
from brace.recovery._events import StopReason
from brace.recovery._served import Degraded
from brace.recovery._healing import HealingAction, HealingContext
from brace.recovery._outbox import open_outbox, replaying_now
from brace.recovery._record import Record
from brace.recovery._run import Run
from brace._config import NS_PER_SECOND

__all__ = ["Engine"]

_log = logging.getLogger("brace")
# A handler that always answers "retry" must not keep an operation alive
# forever: after this many RETRY decisions in one call, RETRY is no longer offered.
_MAX_RETRY_DECISIONS = 3

# Rejections brace made itself, before anything was sent: retrying at once would be
# rejected again (an open breaker, a full bulkhead, a spent budget), and waiting out a
# breaker's open time would hold the call for up to a minute. They settle at once.
_LOCAL_REJECTIONS = (CircuitOpen, BulkheadFull, RetryBudgetExhausted)
_AUTH_FAILURES = (Category.AUTH_EXPIRED, Category.AUTH_INVALID)


class _Again(Exception):
    """An escalation decided RETRY: the call starts a new round of attempts."""


def _attempt_sync(run: Run) -> Any:
    assert run.attempt is not None  # a thread's call
    return run.attempt(*run.args, **run.kwargs)


async def _attempt_async(run: Run) -> Any:
    assert run.attempt_async is not None  # a coroutine's call
    return await run.attempt_async(*run.args, **run.kwargs)


class Engine(Record):
    """A Recovery's algorithm over its settings, listeners and books."""

    __slots__ = ()

    def steps(self, run: Run) -> Steps[Any]:
        """One call: the operation's value, a Degraded stand-in, or an exception."""
        settings = self.settings
        if settings.write_ahead and run.outbox is None and not (settings.read_only or replaying_now()):
            # Committed before anything goes out; a replay's letter exists already.
            run.outbox = open_outbox(settings.store(), run.operation, run.args, run.kwargs)
        try:
            start = now_ns() if run.made is None else run.made[0]
            while True:
                ok, outcome = yield from self._attempt(run, start)
                if ok:
                    return outcome
                if not run.failed:
                    run.first_failed(settings.healing_time_ns)
                try:
                    return (yield from self._recover(run, outcome, start))
                except _Again:
                    start = now_ns()
                except (RecoveryFailed, _guarding.AsyncMisuse):
                    raise
                except Exception as internal:
                    raise self.recovery_error(run, outcome, internal) from outcome
        except GeneratorExit:  # an adopted coroutine dropped unawaited: the call never went on
            raise
        except BaseException as error:
            if run.outbox is not None:
                run.outbox.interrupted(error)
            raise

    def _attempt(self, run: Run, start: int) -> Steps[tuple[bool, Any]]:
        """One attempt: (True, the value to return) or (False, the failure to recover from)."""
        if self.settings.write_ahead:
            self.starting(run, start)
        made, run.made = run.made, None
        try:
            if made is None:
                result = yield Effect(_attempt_sync, _attempt_async, (run,))
            elif made[1]:
                result = made[2]
            else:
                raise made[2]
        except Exception as error:
            if isinstance(error, _guarding.AsyncMisuse) and not run.is_async:
                raise  # a programming error, not a failure of the call
            return False, error
        if not run.is_async and is_awaitable(result):
            if run.attempt_async is None or run.failed:
                raise _guarding.refuse_awaitable(result, run.attempt, "Recovery.call")
            run.is_async = True  # a plain function that returned an awaitable: recovered as a coroutine
            try:
                result = yield wait_for(result)
            except Exception as error:
                return False, error
        failure = self.returned(run, result, start)
        return (True, result) if failure is None else (False, failure)

    def returned(self, run: Run, result: object, start: int) -> FailedResponse | None:
        """An attempt returned `result` (not an awaitable): the failure it is (an error response),
        or None: the call succeeded, and is booked."""
        if self.settings.classifier.is_failure(result):
            return FailedResponse(response=result, status=http_status(result))
        if run.failed:
            self._verify(run, None, healed=True)
        self.succeeded(run, result, start)
        return None

    def _recover(self, run: Run, outcome: Exception, start: int) -> Steps[Any]:
        """Retries after a failure until success, or settles the call; raises _Again on RETRY."""
        while True:
            classification, planned = self._after_failure(run, outcome, start)
            if isinstance(planned, str):
                return (yield from self._settle(run, classification, outcome, planned))
            yield from self._heal(run, classification, outcome)
            yield Effect(sleep_until, sleep_until_async, (run.failed_at + round(planned * NS_PER_SECOND),))
            start = now_ns()
            ok, outcome = yield from self._attempt(run, start)
            if ok:
                return outcome

    def _after_failure(self, run: Run, outcome: Exception, start: int) -> tuple[Classification, float | StopReason]:
        """Books a failed attempt; returns its classification and the wait before
        the next attempt, or the reason to stop."""
        end = now_ns()
        classification = self.settings.classifier.classify(outcome, refreshed=run.refreshed)
        ran = not not_run(outcome)
        if not ran:
            run.not_run += 1
        run.timeline.append(AttemptRecord(
            number=run.number, started=start / NS_PER_SECOND, duration=(end - start) / NS_PER_SECOND, outcome="failure",
            error=outcome, classification=classification,
            actions=tuple(run.actions_log), delay=run.waited))  # fmt: skip
        run.failed_at = end
        self.emit("attempt", run, start, "failure", classification, outcome, duration=end - start, ran=ran)
        self._verify(run, classification, healed=False)
        if ran and classification.category not in _AUTH_FAILURES:
            run.refreshed = False  # the credentials were accepted: a later 401 is a new expiry
        run.actions_log = []
        stop = self._stop_reason(outcome, classification)
        if stop is not None:
            return classification, stop
        return classification, self._plan_retry(run, classification, end)

    def _stop_reason(self, outcome: Exception, classification: Classification) -> StopReason | None:
        """Why this failure is not retried whatever the allowances say, or None."""
        if isinstance(outcome, _LOCAL_REJECTIONS):
            return "rejected_locally"
        if isinstance(outcome, AttemptTimeout) and outcome.still_running and not self.settings.idempotent:
            return "still_running"
        if not classification.retryable:
            return "not_retryable"
        return None

    def _plan_retry(self, run: Run, classification: Classification, end: int) -> float | StopReason:
        """The wait before the next attempt (its allowance taken), or why there is none."""
        category = classification.category
        used = run.tally.get(category, 0)
        if used >= classification.retries:
            return "attempts"
        delay = classification.delay(used + 1, previous=run.previous.get(category))
        retry_at = end + round(delay * NS_PER_SECOND)
        if retry_at > run.healing_deadline:
            return "healing_time"
        bound = _deadline.current_ns()
        if bound is not None and retry_at >= bound:
            return "deadline"
        run.tally[category] = used + 1
        run.previous[category] = run.waited = delay
        run.number += 1
        return delay

    # -- settling -------------------------------------------------------------------

    def _settle(self, run: Run, classification: Classification, outcome: Exception, reason: StopReason) -> Steps[Any]:
        """Recovery stopped: a fallback's value, or the escalation's decision."""
        yield from self._undo(run)
        fallback = self.settings.fallback
        if fallback is not None and fallback.applies(classification):
            at = now_ns()
            try:
                degraded = yield from fallback.serving(run.args, run.kwargs, outcome, classification,
                                                       operation=run.operation, is_async=run.is_async)  # fmt: skip
            except FallbackFailed as failed:
                self.emit("fallback", run, at, "failed", classification, failed, str(failed))
                reason = "fallback_failed"
            else:
                return self.served(run, at, classification, degraded)
        options = tuple(option for option in Option
                        if option is not Option.RETRY or run.retry_decisions < _MAX_RETRY_DECISIONS)  # fmt: skip
        escalation = Escalation(operation=run.operation, classification=classification, error=outcome, reason=reason,
                                timeline=tuple(run.timeline), options=options,
                                correlation_id=correlation_id())  # fmt: skip
        decision = yield from self.settings.escalation.escalating(escalation, is_async=run.is_async)
        return self._decided(run, classification, outcome, escalation, decision)

    def _decided(self, run: Run, classification: Classification, outcome: Exception, escalation: Escalation,
                 decision: Decision) -> Any:  # fmt: skip
        option = decision.option
        run.escalated = True
        self.emit("escalation", run, now_ns(), option.value, classification, outcome, escalation.reason)
        if option is Option.RETRY:
            run.retry_decisions += 1
            run.number += 1
            run.new_round(self.settings.healing_time_ns)
            raise _Again
        self.turn_off(run, classification, escalation.reason)
        source = "decision:use" if option is Option.USE else "decision:skip"
        letter = None
        if option is Option.ABORT:
            letter = self.dead_letter(run, classification, outcome)
        elif not self.settings.read_only:  # a skipped or replaced write did not happen: kept, replayable
            letter = self.dead_letter(run, classification, outcome, served=source)
        self.book_failed_call(run, option.value)
        if option is Option.ABORT:
            raise RecoveryFailed(operation=run.operation, category=classification.category.value,
                                 attempts=len(run.timeline), reason=escalation.reason, escalation=escalation,
                                 dead_letter=letter) from outcome  # fmt: skip
        value = decision.value if option is Option.USE else None
        return Degraded(value=value, source=source, error=outcome, classification=classification, age=None)

    # -- healing --------------------------------------------------------------------

    def _heal(self, run: Run, classification: Classification, outcome: Exception) -> Steps[None]:
        """Runs the first healing action for the failure that does not fail (the best ranked first)."""
        yield from self._undo(run)
        for action, context in self._candidates(run, classification, outcome):
            if action.is_async and not run.is_async:
                self._action_failed(run, action, context, "an async healing action in a sync call")
                continue
            at = now_ns()
            try:
                yield call(action.run, context)
            except Exception as error:
                self._action_failed(run, action, context, safe_repr(error), at)
                continue
            self._action_ran(run, action, context, at)
            return
        # No action healed it: the wait and the retry alone are the strategy on record.
        context = HealingContext(run.operation, classification, outcome, run.number - 1)
        run.pending.append((classification.strategy.value, None, context, run.failed_at))

    def _candidates(self, run: Run, classification: Classification,
                    outcome: Exception) -> Iterable[tuple[HealingAction, HealingContext]]:  # fmt: skip
        category = classification.category
        actions = {action.name: action for action in self.settings.actions if category in action.categories}
        if not actions:
            return ()
        context = HealingContext(run.operation, classification, outcome, run.number - 1)
        order = self.settings.healing_stats.ranked(category, list(actions))
        return ((actions[name], context) for name in order)

    def _action_ran(self, run: Run, action: HealingAction, context: HealingContext, at: int) -> None:
        if context.classification.category is Category.AUTH_EXPIRED:
            run.refreshed = True
        run.pending.append((action.name, action, context, run.failed_at))
        run.actions_log.append(f"{action.name}: ok")
        self.emit("heal", run, at, "ok", context.classification, context.error, action.name, attempt=run.number)

    def _action_failed(self, run: Run, action: HealingAction, context: HealingContext, why: str,
                       at: int | None = None) -> None:  # fmt: skip
        _log.warning("brace: healing action %r of %r failed: %s", action.name, run.operation, why)
        self.settings.healing_stats.record(context.classification.category, action.name, healed=False)
        run.actions_log.append(f"{action.name}: failed ({why})")
        self.emit("heal", run, now_ns() if at is None else at, "failed", context.classification,
                  context.error, action.name, attempt=run.number)  # fmt: skip

    def _verify(self, run: Run, classification: Classification | None, *, healed: bool) -> None:
        """The attempt after the pending strategies ended: book them, queue the undo of
        those that did not help.

        A strategy is judged by what it was for, its failure's category: it
        healed when the next attempt succeeded or failed for another reason
        (a refreshed token that meets a 503 did its job); it failed when the
        same category failed again, and then its action is undone.
        """
        now = now_ns()
        for strategy, action, context, failed_at in run.pending:
            before = context.classification
            fixed = healed or classification is None or classification.category is not before.category
            self.settings.healing_stats.record(before.category, strategy, healed=fixed,
                                               seconds=(now - failed_at) / NS_PER_SECOND)  # fmt: skip
            if not fixed and action is not None and action.undo is not None:
                run.undo_due.append((action, context))
        run.pending = []

    def _undo(self, run: Run) -> Steps[None]:
        """Rolls back the actions the last attempt showed to have made things worse."""
        for action, context in run.undo_due:
            at = now_ns()
            assert action.undo is not None  # and on a sync call not async: _heal does not run those there
            try:
                yield call(action.undo, context)
            except Exception as error:
                _log.warning("brace: undo of healing action %r of %r failed: %s", action.name, run.operation,
                             safe_repr(error))  # fmt: skip
                run.actions_log.append(f"{action.name}: undo failed ({safe_repr(error)})")
                self.emit("undo", run, at, "failed", context.classification, error, action.name)
                continue
            run.actions_log.append(f"{action.name}: undone")
            self.emit("undo", run, at, "ok", context.classification, context.error, action.name)
        run.undo_due = []
