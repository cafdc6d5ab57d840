"""A call's write-ahead entry in the dead-letter store's outbox, and the replay flag.

With write_ahead (and unless read-only), a call is recorded in the store's
outbox before its first attempt goes out; the call's end settles the entry:
`end` when it returned the operation's value, its dead letter otherwise (the
letter takes the entry's id), and after a crash `store.recover_interrupted()`
turns the entries left into dead letters.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
from collections.abc import Iterator
from typing import Any

from brace import _guarding
from brace._core import recovery_replays, recovery_replays_add
from brace.recovery._correlation import correlation_id
from brace.recovery.deadletters import DeadLetterStore

__all__ = ["Outbox", "open_outbox", "replaying", "replaying_now"]

_log = logging.getLogger("brace")

# Set while dead letters are replayed, so that a replay that fails again does not
# dead-letter its call a second time (the letter it replays stays in the store).
_replaying: contextvars.ContextVar[bool] = contextvars.ContextVar("brace_replaying", default=False)


def replaying_now() -> bool:
    """Whether this thread or task is inside `replaying()`."""
    # While no replay runs anywhere in the process (the compiled count), the
    # context variable need not be read.
    return recovery_replays() > 0 and _replaying.get()


@contextlib.contextmanager
def replaying() -> Iterator[None]:
    """Within the block (this thread or task), recoveries do not dead-letter calls (see Recovery.replaying)."""
    recovery_replays_add(1)
    token = _replaying.set(True)
    try:
        yield
    finally:
        _replaying.reset(token)
        recovery_replays_add(-1)


class Outbox:
    """A call's entry in the dead-letter store's outbox (write-ahead), until the call ends."""

    __slots__ = ("store", "id", "operation", "args", "kwargs")

    def __init__(self, store: DeadLetterStore, id: str, operation: str, args: tuple[Any, ...],
                 kwargs: dict[str, Any]) -> None:  # fmt: skip
        self.store = store
        self.id: str | None = id
        self.operation, self.args, self.kwargs = operation, args, kwargs

    def take(self) -> str | None:
        """The entry's id, for the dead letter that replaces it (once)."""
        id, self.id = self.id, None
        return id

    def end(self) -> None:
        """The call returned the operation's value (or never ran): the entry goes."""
        id = self.take()
        if id is None:
            return
        try:
            self.store.end(id)
        except Exception:
            _log.exception("brace: could not settle the outbox entry of a call of %r", self.operation)

    def interrupted(self, error: BaseException) -> None:
        """The call left with its entry open (KeyboardInterrupt, cancellation): the server may
        have seen it, so it becomes a dead letter, as after a crash. A refused awaitable never ran."""
        if self.id is None:
            return
        if isinstance(error, _guarding.AsyncMisuse):
            self.end()
            return
        try:
            # attempts=0: how many attempts went out before it ended is not known here.
            self.store.put(operation=self.operation, args=self.args, kwargs=self.kwargs, error=error, category=None,
                           correlation_id=correlation_id(), attempts=0, outbox_id=self.take())  # fmt: skip
        except Exception:
            _log.exception("brace: could not dead-letter an interrupted call of %r", self.operation)


def open_outbox(store: DeadLetterStore, operation: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Outbox:
    """The call's outbox entry, committed before anything goes out (the store's error is raised)."""
    id = store.begin(operation=operation, args=args, kwargs=kwargs, correlation_id=correlation_id())
    return Outbox(store, id, operation, args, kwargs)
