"""The process's dead-letter store: where a brace.Recovery not given one puts its letters."""

from __future__ import annotations

import os
import threading

from brace.recovery.deadletters._sqlite import DEFAULT_PATH, SQLiteDeadLetters
from brace.recovery.deadletters._store import DeadLetterStore

_default_lock = threading.Lock()
_default: DeadLetterStore | None = None


def default_store() -> DeadLetterStore:
    """The process's dead-letter store: where a brace.Recovery not given one puts its letters.

    An SQLiteDeadLetters at the path in the environment variable
    BRACE_DEAD_LETTERS, else "brace-dead-letters.sqlite3" in the working
    directory, opened on the first call (so a process that never gives up on
    a call creates no file), unless `set_default_store` gave another (tests:
    `set_default_store(MemoryDeadLetters())`).
    """
    global _default
    with _default_lock:
        if _default is None:
            _default = SQLiteDeadLetters(os.environ.get("BRACE_DEAD_LETTERS") or DEFAULT_PATH)
        return _default


def set_default_store(store: DeadLetterStore | None) -> DeadLetterStore | None:
    """Replaces the process's dead-letter store; returns the one it replaces (not closed).

    Args:
        store: The store from now on, or None to open the default SQLite file
            again on next use.

    Raises:
        TypeError: store is not a brace.DeadLetterStore or None.
    """
    global _default
    if store is not None and not isinstance(store, DeadLetterStore):
        raise TypeError(f"store must be a brace.DeadLetterStore or None, got {type(store).__name__}")
    with _default_lock:
        previous, _default = _default, store
    return previous
