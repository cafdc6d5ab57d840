"""Kept for compatibility: brace.deadletter now lives in brace.recovery (the recovery layer).

Import these names from brace or brace.recovery."""

from brace.recovery import (
    INTERRUPTED,
    DeadLetter,
    DeadLetterStore,
    InFlightCall,
    MemoryDeadLetters,
    Owner,
    ReplayReport,
    SQLiteDeadLetters,
    default_store,
    replay,
    replay_async,
    set_default_store,
)

__all__ = [
    "INTERRUPTED",
    "DeadLetter",
    "DeadLetterStore",
    "InFlightCall",
    "MemoryDeadLetters",
    "Owner",
    "ReplayReport",
    "SQLiteDeadLetters",
    "default_store",
    "replay",
    "replay_async",
    "set_default_store",
]
