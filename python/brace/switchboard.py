"""Kept for compatibility: brace.switchboard now lives in brace.recovery (the recovery layer).

Import these names from brace or brace.recovery."""

from brace.recovery._switchboard import (
    Switchboard,
    ToggleEvent,
    switches,
)

__all__ = [
    "Switchboard",
    "ToggleEvent",
    "switches",
]
