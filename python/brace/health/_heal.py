"""Automated recovery: a failing check's healing actions, each verified by running the check again."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

from brace._safe import describe
from brace.classify import Classification, ErrorClassifier
from brace.errors import BraceError
from brace.health._check import Check
from brace.health._model import HealingAttempt, Outcome, Status
from brace.recovery import HealingAction, HealingContext, HealingStats

__all__ = ["CheckFailed", "Course", "Healer"]


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

    def course(self, check: Check, outcome: Outcome) -> Course | None:
        """The healing of a failed probe, or None when there is nothing to heal."""
        plan = self.plan(check, outcome)
        return None if plan is None else Course(self.stats, check, outcome, *plan)

    def heal(self, check: Check, outcome: Outcome) -> tuple[Outcome, tuple[HealingAttempt, ...]]:
        """Runs the fitting actions until a re-check passes; the last outcome and the attempts."""
        course = self.course(check, outcome)
        if course is None:
            return outcome, ()
        for number, action in enumerate(course.actions, 1):
            try:
                _finish(action.run(course.context(number)))
            except Exception as error:
                course.raised(action, error)
            else:
                if course.rechecked(action, *check.recheck()):
                    break
        return course.outcome, tuple(course.attempts)

    async def heal_async(self, check: Check, outcome: Outcome) -> tuple[Outcome, tuple[HealingAttempt, ...]]:
        """heal() for async code: coroutine actions are awaited, the re-check runs on the loop."""
        course = self.course(check, outcome)
        if course is None:
            return outcome, ()
        for number, action in enumerate(course.actions, 1):
            try:
                done = action.run(course.context(number))
                if inspect.isawaitable(done):
                    await done
            except Exception as error:
                course.raised(action, error)
            else:
                if course.rechecked(action, *await check.recheck_async()):
                    break
        return course.outcome, tuple(course.attempts)


class Course:
    """One failed check's healing: its actions in order, the attempts so far, the latest outcome."""

    __slots__ = ("stats", "check", "outcome", "classification", "actions", "attempts")

    def __init__(self, stats: HealingStats, check: Check, outcome: Outcome, classification: Classification,
                 actions: list[HealingAction]) -> None:  # fmt: skip
        self.stats = stats
        self.check = check
        self.outcome = outcome
        self.classification = classification
        self.actions = actions
        self.attempts: list[HealingAttempt] = []

    def context(self, attempt: int) -> HealingContext:
        """What the action receives: operation the check's name, the first failure's error."""
        error = self.classification.error
        if not isinstance(error, Exception):
            error = CheckFailed(self.check.name, self.outcome)
        return HealingContext(self.check.name, self.classification, error, attempt)

    def raised(self, action: HealingAction, error: Exception) -> None:
        """Books an action that raised (not healed, no re-check)."""
        self.stats.record(self.classification.category, action.name, healed=False)
        self.attempts.append(HealingAttempt(action.name, describe(error), False))

    def rechecked(self, action: HealingAction, recheck: Outcome, verdict: bool) -> bool:
        """Books the re-check after an action; whether it healed (is no longer UNHEALTHY). A
        re-check that could not run (`verdict` False: the probe still hangs) tells nothing of
        the action, so its record of healings is left as it was."""
        healed = recheck.status is not Status.UNHEALTHY
        if verdict:
            self.stats.record(self.classification.category, action.name, healed=healed)
        self.attempts.append(HealingAttempt(action.name, None, healed, recheck.status, recheck.reason))
        self.outcome = recheck
        return healed


def _finish(done: object) -> None:
    """Awaits what a coroutine action returned, on a loop of its own (sync checks)."""
    if inspect.isawaitable(done):
        asyncio.run(_awaited(done))


async def _awaited(done: Any) -> None:
    await done
