"""Kept for compatibility: brace.recovery_log now lives in brace.recovery (the recovery layer).

Import these names from brace or brace.recovery."""

from brace.recovery._log import (
    JsonLinesSink,
    LoggingSink,
    MemorySink,
    RecoveryLog,
    correlation,
    correlation_id,
    event_dict,
    new_correlation_id,
)

__all__ = [
    "JsonLinesSink",
    "LoggingSink",
    "MemorySink",
    "RecoveryLog",
    "correlation",
    "correlation_id",
    "event_dict",
    "new_correlation_id",
]
