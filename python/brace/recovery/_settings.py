"""What a brace.Recovery is configured with, checked once at construction."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

from brace import _config
from brace.classify import DEFAULT_CLASSIFIER, ErrorClassifier
from brace.policy import Policy
from brace.recovery import deadletters as deadletter
from brace.recovery.deadletters import DeadLetterStore
from brace.recovery._escalation_policy import EscalationPolicy, LoggingHandler
from brace.recovery._fallback import Fallback
from brace.recovery._healing import HealingAction, HealingStats
from brace._config import NS_PER_SECOND

__all__ = ["Settings"]



class Settings:
    """A Recovery's configuration, its defaults filled in (see brace.Recovery for each parameter).

    Raises:
        ValueError, TypeError: For configuration outside the documented ranges.
    """

    __slots__ = ("classifier", "policy", "actions", "fallback", "escalation", "healing_time_ns", "healing_stats",
                 "feature", "dead_letters", "idempotent", "read_only", "write_ahead", "name")  # fmt: skip

    def __init__(
        self,
        *,
        classifier: ErrorClassifier | None,
        policy: Policy | None,
        healing: Iterable[HealingAction],
        fallback: Fallback | None,
        escalation: EscalationPolicy | None,
        healing_time: float | timedelta,
        healing_stats: HealingStats | None,
        feature: str | None,
        dead_letters: DeadLetterStore | None,
        idempotent: bool,
        read_only: bool,
        write_ahead: bool,
        name: str | None,
    ) -> None:
        for value, kind, param in ((classifier, ErrorClassifier, "classifier"), (policy, Policy, "policy"),
                                   (fallback, Fallback, "fallback"), (escalation, EscalationPolicy, "escalation"),
                                   (healing_stats, HealingStats, "healing_stats"),
                                   (dead_letters, DeadLetterStore, "dead_letters")):  # fmt: skip
            if value is not None and not isinstance(value, kind):
                raise TypeError(f"{param} must be a brace.{kind.__name__} or None, got {type(value).__name__}")
        self.actions = _actions(healing)
        self.healing_time_ns = round(_config.positive_duration(healing_time, "healing_time") * NS_PER_SECOND)
        for flag, param in ((idempotent, "idempotent"), (read_only, "read_only"), (write_ahead, "write_ahead")):
            if not isinstance(flag, bool):
                raise TypeError(f"{param} must be a bool, got {type(flag).__name__}")
        for text, param in ((feature, "feature"), (name, "name")):
            if text is not None and (not isinstance(text, str) or not text):
                raise ValueError(f"{param} must be a non-empty str or None, got {text!r}")
        self.read_only = read_only
        self.write_ahead = write_ahead
        self.idempotent = idempotent or read_only  # reading twice is harmless
        self.classifier = DEFAULT_CLASSIFIER if classifier is None else classifier
        self.policy = policy
        self.fallback = fallback
        self.escalation = EscalationPolicy(handlers=[LoggingHandler()]) if escalation is None else escalation
        self.healing_stats = HealingStats() if healing_stats is None else healing_stats
        self.feature = feature
        self.dead_letters = dead_letters
        self.name = name

    def store(self) -> DeadLetterStore:
        """Where dead letters go: the one given, else the process's default store (opened on first use)."""
        return deadletter.default_store() if self.dead_letters is None else self.dead_letters


def _actions(healing: Iterable[HealingAction]) -> tuple[HealingAction, ...]:
    if isinstance(healing, (str, bytes)) or not isinstance(healing, Iterable):
        raise TypeError(f"healing must be an iterable of brace.HealingAction, got {type(healing).__name__}")
    actions = tuple(healing)
    for action in actions:
        if not isinstance(action, HealingAction):
            raise TypeError(f"healing must hold brace.HealingAction objects, got {type(action).__name__}")
    names = [action.name for action in actions]
    if len(set(names)) != len(names):
        raise ValueError(f"healing actions must have unique names, got {names}")
    return actions
