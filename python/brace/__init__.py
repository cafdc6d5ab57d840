"""brace: resilience policies with a compiled, lock-free core.

The public API; see README.md for a tour. The primitives (limiter, keyed limiter, breaker,
bulkhead, retry, budget, backoff, hedge, latency histogram, Policy) load with `import brace`; the
recovery layer (brace.recovery, brace.classify) and brace.testing load the
first time one of their names is used, so a service that only rate-limits
never imports sqlite3, ssl or asyncio on brace's account.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from brace._deadline import deadline, deadline_remaining
from brace.backoff import Backoff
from brace.breaker import BreakerCalls, BreakerEvent, BreakerMetrics, BreakerState, CircuitBreaker
from brace.budget import RetryBudget, RetryBudgetEvent
from brace.bulkhead import Bulkhead, BulkheadEvent
from brace.errors import (
    AttemptTimeout,
    BraceError,
    BulkheadFull,
    CircuitOpen,
    FailedResponse,
    FallbackFailed,
    KeyTableFull,
    RateLimited,
    RecoveryFailed,
    Rejected,
    RetryBudgetExhausted,
    RetryError,
    StoreError,
    StoreUnavailable,
    Throttled,
)
from brace.hedge import Hedge, HedgeEvent
from brace.histogram import LatencyHistogram
from brace.keyed import KeyedRateLimiter, KeyedRateLimiterMetrics
from brace.limiter import RateLimiter, RateLimiterEvent, RateLimitState
from brace.policy import Policy
from brace import shm
from brace._paths import get_include, get_library
from brace.retry import Attempt, Retry, RetryEvent, retry

if TYPE_CHECKING:
    from brace import testing
    from brace.adaptive import (
        AdaptiveRateEvent,
        AdaptiveRateLimiter,
        AdaptiveRateState,
        ClientThrottle,
        ClientThrottleEvent,
        ClientThrottleState,
    )
    from brace.classify import (
        Category,
        Classification,
        ErrorClassifier,
        Rule,
        Severity,
        Strategy,
        Treatment,
    )
    from brace.recovery import (
        AttemptRecord,
        CategoryStats,
        DeadLetter,
        DeadLetterStore,
        Decision,
        Degraded,
        Escalation,
        EscalationPolicy,
        Fallback,
        FallbackEvent,
        HealingAction,
        HealingContext,
        HealingStats,
        InFlightCall,
        JsonLinesSink,
        LoggingHandler,
        LoggingSink,
        MemoryDeadLetters,
        MemorySink,
        Option,
        QueueHandler,
        Recovery,
        RecoveryEvent,
        RecoveryLog,
        RecoveryStats,
        ReplayReport,
        SQLiteDeadLetters,
        Switchboard,
        ToggleEvent,
        correlation,
        correlation_id,
        replay,
        replay_async,
        switches,
    )
    from brace.pushback import http_status, server_delay
    from brace._registry import Registry, RegistryEvent
    from brace.recovery import Control
    from brace.errors import AttemptTimeout as Timeout

    control: Control

__version__ = "0.1.0"

# The names that load on first use: name -> the module that defines it.
_LAZY: dict[str, str] = {
    "AdaptiveRateEvent": "brace.adaptive",
    "AdaptiveRateLimiter": "brace.adaptive",
    "AdaptiveRateState": "brace.adaptive",
    "AttemptRecord": "brace.recovery",
    "Category": "brace.classify",
    "CategoryStats": "brace.recovery",
    "Classification": "brace.classify",
    "ClientThrottle": "brace.adaptive",
    "ClientThrottleEvent": "brace.adaptive",
    "ClientThrottleState": "brace.adaptive",
    "DeadLetter": "brace.recovery",
    "DeadLetterStore": "brace.recovery",
    "Decision": "brace.recovery",
    "Degraded": "brace.recovery",
    "ErrorClassifier": "brace.classify",
    "Escalation": "brace.recovery",
    "EscalationPolicy": "brace.recovery",
    "Fallback": "brace.recovery",
    "FallbackEvent": "brace.recovery",
    "HealingAction": "brace.recovery",
    "HealingContext": "brace.recovery",
    "HealingStats": "brace.recovery",
    "InFlightCall": "brace.recovery",
    "JsonLinesSink": "brace.recovery",
    "LoggingHandler": "brace.recovery",
    "LoggingSink": "brace.recovery",
    "MemoryDeadLetters": "brace.recovery",
    "MemorySink": "brace.recovery",
    "Option": "brace.recovery",
    "QueueHandler": "brace.recovery",
    "Recovery": "brace.recovery",
    "Registry": "brace._registry",
    "RegistryEvent": "brace._registry",
    "RecoveryEvent": "brace.recovery",
    "RecoveryLog": "brace.recovery",
    "RecoveryStats": "brace.recovery",
    "ReplayReport": "brace.recovery",
    "Rule": "brace.classify",
    "SQLiteDeadLetters": "brace.recovery",
    "Severity": "brace.classify",
    "Strategy": "brace.classify",
    "Switchboard": "brace.recovery",
    "ToggleEvent": "brace.recovery",
    "Treatment": "brace.classify",
    "correlation": "brace.recovery",
    "correlation_id": "brace.recovery",
    "http_status": "brace.pushback",
    "replay": "brace.recovery",
    "replay_async": "brace.recovery",
    "server_delay": "brace.pushback",
    "switches": "brace.recovery",
}


def __getattr__(name: str) -> object:
    if name == "testing":
        value: object = importlib.import_module("brace.testing")
    elif name == "Timeout":  # the old name of AttemptTimeout
        import warnings

        from brace.errors import TIMEOUT_DEPRECATED

        warnings.warn(TIMEOUT_DEPRECATED, DeprecationWarning, stacklevel=2)
        return AttemptTimeout  # not cached: every use of the old name is told
    elif name == "control":
        # Through its old module path, so that a later `import brace.control` finds
        # it loaded and leaves this name bound to the Control object.
        value = importlib.import_module("brace.control").control
    elif name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
    else:
        raise AttributeError(f"module 'brace' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))

__all__ = [
    "AdaptiveRateEvent",
    "AdaptiveRateLimiter",
    "AdaptiveRateState",
    "Attempt",
    "AttemptRecord",
    "AttemptTimeout",
    "Backoff",
    "BraceError",
    "BreakerCalls",
    "BreakerEvent",
    "BreakerMetrics",
    "BreakerState",
    "Bulkhead",
    "BulkheadEvent",
    "BulkheadFull",
    "Category",
    "CategoryStats",
    "CircuitBreaker",
    "CircuitOpen",
    "Classification",
    "ClientThrottle",
    "ClientThrottleEvent",
    "ClientThrottleState",
    "DeadLetter",
    "DeadLetterStore",
    "Decision",
    "Degraded",
    "ErrorClassifier",
    "Escalation",
    "EscalationPolicy",
    "FailedResponse",
    "Fallback",
    "FallbackEvent",
    "FallbackFailed",
    "HealingAction",
    "HealingContext",
    "HealingStats",
    "Hedge",
    "HedgeEvent",
    "InFlightCall",
    "JsonLinesSink",
    "KeyTableFull",
    "KeyedRateLimiter",
    "KeyedRateLimiterMetrics",
    "LatencyHistogram",
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
    "RateLimiterEvent",
    "Recovery",
    "RecoveryEvent",
    "RecoveryFailed",
    "RecoveryLog",
    "RecoveryStats",
    "Registry",
    "RegistryEvent",
    "Rejected",
    "ReplayReport",
    "Retry",
    "RetryBudget",
    "RetryBudgetEvent",
    "RetryBudgetExhausted",
    "RetryError",
    "RetryEvent",
    "Rule",
    "SQLiteDeadLetters",
    "Severity",
    "StoreError",
    "StoreUnavailable",
    "Strategy",
    "Switchboard",
    "Throttled",
    "ToggleEvent",
    "Treatment",
    "control",
    "correlation",
    "correlation_id",
    "deadline",
    "deadline_remaining",
    "get_include",
    "get_library",
    "http_status",
    "replay",
    "replay_async",
    "retry",
    "server_delay",
    "shm",
    "switches",
    "testing",
]
