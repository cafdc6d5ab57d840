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
from brace._deadline import deadline, deadline_remaining
from brace.deadletter import (
    DeadLetter,
    DeadLetterStore,
    InFlightCall,
    MemoryDeadLetters,
    ReplayReport,
    SQLiteDeadLetters,
    replay,
    replay_async,
)
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
from brace.recovery_log import JsonLinesSink, LoggingSink, MemorySink, RecoveryLog, correlation, correlation_id
from brace.recovery_stats import CategoryStats, RecoveryStats
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
    "CategoryStats",
    "CircuitBreaker",
    "CircuitOpen",
    "Classification",
    "DeadLetter",
    "DeadLetterStore",
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
    "InFlightCall",
    "JsonLinesSink",
    "LoggingHandler",
    "LoggingSink",
    "MemoryDeadLetters",
    "MemorySink",
    "Option",
    "Policy",
    "QueueHandler",
    "RateLimitState",
    "RateLimited",
    "RateLimiter",
    "Recovery",
    "RecoveryEvent",
    "RecoveryFailed",
    "RecoveryLog",
    "RecoveryStats",
    "ReplayReport",
    "Retry",
    "RetryBudget",
    "RetryBudgetExhausted",
    "RetryError",
    "RetryEvent",
    "Rule",
    "SQLiteDeadLetters",
    "Severity",
    "Strategy",
    "Switchboard",
    "Timeout",
    "ToggleEvent",
    "Treatment",
    "control",
    "correlation",
    "correlation_id",
    "deadline",
    "deadline_remaining",
    "http_status",
    "replay",
    "replay_async",
    "retry",
    "server_delay",
    "switches",
    "testing",
]
