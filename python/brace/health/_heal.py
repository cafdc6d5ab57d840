"""Automated recovery: a failing check's healing actions, each verified by running the check again."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

from brace._safe import describe
from brace.classify import Category, Classification, ErrorClassifier
from brace.errors import BraceError
from brace.health._check import Check
from brace.health._model import HealingAttempt, Outcome, Status
from brace.recovery import HealingAction, HealingContext, HealingStats

__all__ = ["CheckFailed", "Healer"]


class CheckFailed(BraceError):
    """What a probe that returned a failing status (rather than raising) is classified as:
    Category.UNKNOWN for brace's classifier. Attributes: check (its name), outcome."""

    def __init__(self, check: str, outcome: Outcome) -> None:
        super().__init__(f"check {check!r} {outcome.status.value}: {outcome.reason}")
        self.check = check
        self.outcome = outcome


class Healer:
    """Picks a failing check's healing actions (by category, then by their record) and books
    what each achieved in `stats`."""

    __slots__ = ("classifier", "stats")

    def __init__(self, classifier: ErrorClassifier, stats: HealingStats) -> None:
        self.classifier = classifier
        self.stats = stats

    def plan(self, check: Check, outcome: Outcome) -> tuple[Classification, list[HealingAction]] | None:
        """The classification of the failure and the actions to try in order, or None when
        there is nothing to heal (the probe did not fail, or no action fits)."""
        if outcome.status is not Status.UNHEALTHY or not check.healing or check.probe is None:
            return None
        error = outcome.error if outcome.error is not None else CheckFailed(check.name, outcome)
        classification = self.classifier.classify(error)
        fitting = {action.name: action for action in check.healing if classification.category in action.categories}
        if not fitting:
            return None
        return classification, [fitting[name] for name in self.stats.ranked(classification.category, list(fitting))]

    def context(self, check: Check, classification: Classification, outcome: Outcome, attempt: int) -> HealingContext:
        error = classification.error if isinstance(classification.error, Exception) else CheckFailed(check.name, outcome)
        return HealingContext(check.name, classification, error, attempt)

    def booked(self, category: Category, action: HealingAction, raised: BaseException | None,
               recheck: Outcome | None) -> HealingAttempt:  # fmt: skip
        """The attempt, recorded in the statistics (healed when the re-check is not UNHEALTHY)."""
        healed = recheck is not None and recheck.status is not Status.UNHEALTHY
        self.stats.record(category, action.name, healed=healed, seconds=0.0)
        if raised is not None or recheck is None:
            return HealingAttempt(action.name, describe(raised), False)
        return HealingAttempt(action.name, None, healed, recheck.status, recheck.reason)

    def heal(self, check: Check, outcome: Outcome) -> tuple[Outcome, tuple[HealingAttempt, ...]]:
        """Runs the fitting actions until a re-check passes; the last outcome and the attempts."""
        plan = self.plan(check, outcome)
        if plan is None:
            return outcome, ()
        classification, actions = plan
        attempts = []
        for number, action in enumerate(actions, 1):
            try:
                _finish(action.run(self.context(check, classification, outcome, number)))
            except Exception as error:
                attempts.append(self.booked(classification.category, action, error, None))
                continue
            recheck = check.run()
            attempts.append(self.booked(classification.category, action, None, recheck))
            outcome = recheck
            if attempts[-1].healed:
                break
        return outcome, tuple(attempts)

    async def heal_async(self, check: Check, outcome: Outcome) -> tuple[Outcome, tuple[HealingAttempt, ...]]:
        """heal() for async code: coroutine actions are awaited, the re-check runs on the loop."""
        plan = self.plan(check, outcome)
        if plan is None:
            return outcome, ()
        classification, actions = plan
        attempts = []
        for number, action in enumerate(actions, 1):
            try:
                done = action.run(self.context(check, classification, outcome, number))
                if inspect.isawaitable(done):
                    await done
            except Exception as error:
                attempts.append(self.booked(classification.category, action, error, None))
                continue
            recheck = await check.run_async()
            attempts.append(self.booked(classification.category, action, None, recheck))
            outcome = recheck
            if attempts[-1].healed:
                break
        return outcome, tuple(attempts)


def _finish(done: object) -> None:
    """Awaits what a coroutine action returned, on a loop of its own (sync checks)."""
    if inspect.isawaitable(done):
        asyncio.run(_awaited(done))


async def _awaited(done: Any) -> None:
    await done
