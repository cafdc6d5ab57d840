"""Health checks of a service's dependencies, and their report over HTTP.

A `Check` probes one dependency (a sync or async callable under its own timeout,
a brace.CircuitBreaker's state, or both) and names the checks it depends on; a
`Health` runs them all on demand (`check()`, `check_async()`) or on an interval in
the background (`start()`, `start_async()`), heals failing ones with brace's
HealingActions (re-checking to verify), cascades the statuses up the dependency
graph with the chain of reasons ("api unhealthy: db unhealthy: timed out after 1 s")
and keeps the latest `Report`. `asgi_app` and `wsgi_app` serve it as JSON: 200 when
healthy or degraded, 503 when unhealthy.
"""

from brace.health._apps import asgi_app, wsgi_app
from brace.health._check import Check, ProbeRun
from brace.health._heal import CheckFailed
from brace.health._health import Health
from brace.health._model import HealingAttempt, HealthEvent, Outcome, Report, Result, Status

__all__ = [
    "Check",
    "CheckFailed",
    "HealingAttempt",
    "Health",
    "HealthEvent",
    "Outcome",
    "ProbeRun",
    "Report",
    "Result",
    "Status",
    "asgi_app",
    "wsgi_app",
]
