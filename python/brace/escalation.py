"""Kept for compatibility: brace.escalation now lives in brace.recovery (the recovery layer).

Import these names from brace or brace.recovery."""

from brace.recovery._escalation import AttemptRecord, Decision, Escalation, Option
from brace.recovery._escalation_policy import EscalationHandler, EscalationPolicy, LoggingHandler, QueueHandler

__all__ = [
    "AttemptRecord",
    "Decision",
    "Escalation",
    "EscalationHandler",
    "EscalationPolicy",
    "LoggingHandler",
    "Option",
    "QueueHandler",
]
