"""Kept for compatibility: brace.healing now lives in brace.recovery (the recovery layer).

Import these names from brace or brace.recovery."""

from brace.recovery._healing import (
    HealingAction,
    HealingContext,
    HealingStats,
    StrategyRecord,
)

__all__ = [
    "HealingAction",
    "HealingContext",
    "HealingStats",
    "StrategyRecord",
]
