"""brace: resilience policies with a compiled, lock-free core.

The public API; see README.md for a tour.
"""

from brace import testing
from brace.backoff import Backoff
from brace.breaker import BreakerEvent, BreakerMetrics, BreakerState, CircuitBreaker
from brace.budget import RetryBudget
from brace.bulkhead import Bulkhead
from brace.errors import (
    BraceError,
    BulkheadFull,
    CircuitOpen,
    RateLimited,
    RetryBudgetExhausted,
    RetryError,
    Timeout,
)
from brace.limiter import RateLimiter, RateLimitState
from brace.policy import Policy
from brace.pushback import http_status, server_delay
from brace.retry import Attempt, Retry, RetryEvent, retry

__version__ = "0.1.0"

__all__ = [
    "Attempt",
    "Backoff",
    "BraceError",
    "BreakerEvent",
    "BreakerMetrics",
    "BreakerState",
    "Bulkhead",
    "BulkheadFull",
    "CircuitBreaker",
    "CircuitOpen",
    "Policy",
    "RateLimitState",
    "RateLimited",
    "RateLimiter",
    "Retry",
    "RetryBudget",
    "RetryBudgetExhausted",
    "RetryError",
    "RetryEvent",
    "Timeout",
    "http_status",
    "retry",
    "server_delay",
    "testing",
]
