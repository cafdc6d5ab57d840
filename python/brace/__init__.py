"""brace: resilience policies with a compiled, lock-free core.

The public API; see README.md for a tour.
"""

from brace import testing
from brace.backoff import Backoff
from brace.breaker import BreakerEvent, BreakerMetrics, BreakerState, CircuitBreaker
from brace.budget import RetryBudget
from brace.bulkhead import Bulkhead
from brace.classify import Category, Classification, ErrorClassifier, Rule, Severity, Strategy, Treatment
from brace.control import control
from brace.errors import (
    BraceError,
    BulkheadFull,
    CircuitOpen,
    FailedResponse,
    FallbackFailed,
    RateLimited,
    RecoveryFailed,
    RetryBudgetExhausted,
    RetryError,
    Timeout,
)
from brace.escalation import (
    AttemptRecord,
    Decision,
    Escalation,
    EscalationPolicy,
    LoggingHandler,
    Option,
    QueueHandler,
)
from brace.fallback import Degraded, Fallback
from brace.healing import HealingAction, HealingContext, HealingStats
from brace.limiter import RateLimiter, RateLimitState
from brace.policy import Policy
from brace.pushback import http_status, server_delay
from brace.recovery import Recovery, RecoveryEvent
from brace.retry import Attempt, Retry, RetryEvent, retry
from brace.switchboard import Switchboard, ToggleEvent, switches

__version__ = "0.1.0"

__all__ = [
    "Attempt",
    "AttemptRecord",
    "Backoff",
    "BraceError",
    "BreakerEvent",
    "BreakerMetrics",
    "BreakerState",
    "Bulkhead",
    "BulkheadFull",
    "Category",
    "CircuitBreaker",
    "CircuitOpen",
    "Classification",
    "Decision",
    "Degraded",
    "ErrorClassifier",
    "Escalation",
    "EscalationPolicy",
    "FailedResponse",
    "Fallback",
    "FallbackFailed",
    "HealingAction",
    "HealingContext",
    "HealingStats",
    "LoggingHandler",
    "Option",
    "Policy",
    "QueueHandler",
    "RateLimitState",
    "RateLimited",
    "RateLimiter",
    "Recovery",
    "RecoveryEvent",
    "RecoveryFailed",
    "Retry",
    "RetryBudget",
    "RetryBudgetExhausted",
    "RetryError",
    "RetryEvent",
    "Rule",
    "Severity",
    "Strategy",
    "Switchboard",
    "Timeout",
    "ToggleEvent",
    "Treatment",
    "control",
    "http_status",
    "retry",
    "server_delay",
    "switches",
    "testing",
]
