"""Kept for compatibility: brace.recovery_stats now lives in brace.recovery (the recovery layer).

Import these names from brace or brace.recovery."""

from brace.recovery._stats import (
    CategoryStats,
    RecoveryStats,
)

__all__ = [
    "CategoryStats",
    "RecoveryStats",
]
