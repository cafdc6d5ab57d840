"""Kept for compatibility: brace.fallback now lives in brace.recovery (the recovery layer).

Import these names from brace or brace.recovery."""

from brace.recovery._fallback import (
    Alternative,
    Degraded,
    Fallback,
    FallbackEvent,
)

__all__ = [
    "Alternative",
    "Degraded",
    "Fallback",
    "FallbackEvent",
]
