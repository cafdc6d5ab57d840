"""What a dead-letter store holds: letters (calls given up on), their statuses, and the
calls in flight in the outbox with the process that owns them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

Status = Literal["dead", "delivered", "discarded"]
STATUSES: tuple[Status, ...] = ("dead", "delivered", "discarded")
SETTLED: tuple[Status, ...] = ("delivered", "discarded")

INTERRUPTED = "brace.Interrupted"
"""The error_type of a dead letter recovered from the outbox: its process ended during the call."""


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One call that was given up on, and what became of it.

    Attributes:
        id: A uuid4 hex string (the call's outbox id when it was begun in the outbox).
        operation: The operation's name: the key `replay` looks it up by.
        args: The positional arguments, decoded from JSON (tuples come back as lists).
        kwargs: The keyword arguments, decoded from JSON.
        unserialisable: The arguments stored as their repr because JSON could
            not hold them, as paths: "args[1]", "kwargs['when']",
            "args[0]['at'][2]". Empty when the call can be replayed as made.
        error_type: The error's class, qualified by its module unless builtin;
            INTERRUPTED ("brace.Interrupted") for a call recovered from the outbox.
        error_message: str() of the error, or "<str() raised Type>" when that raises.
        category: The failure's brace.Category value ("timeout", ...), or None.
        correlation_id: The correlation id of the call, or None.
        attempts: How many attempts were made before giving up (0 for a call
            recovered from the outbox: how many its process began is not known;
            the recovery log's attempt_started records say).
        created_at: When the letter was stored (time.time(): it outlives the process).
        served: What the caller got instead of the operation's result: None
            when it got an error, else the source of the brace.Degraded value
            it was served ("cache", "fallback:<name>", "decision:skip",
            "decision:use"). Either way the operation did not succeed: a served
            letter is dead like the others, and replay makes the call.
        status: "dead" (not settled), "delivered" (a replay succeeded) or
            "discarded" (a person gave it up).
        resolved_at: When it was delivered or discarded (time.time()), or None.
        resolved_by: Who settled it: "replay", or the person's name.
        note: Why it was discarded, or the error of its last failed replay.
        replays: Delivery attempts made since it was stored: failed replays,
            plus the one that delivered it.
    """

    id: str
    operation: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    unserialisable: tuple[str, ...]
    error_type: str
    error_message: str
    category: str | None
    correlation_id: str | None
    attempts: int
    created_at: float
    served: str | None = None
    status: Status = "dead"
    resolved_at: float | None = None
    resolved_by: str | None = None
    note: str = ""
    replays: int = 0

    @property
    def replayable(self) -> bool:
        """Whether every argument was stored as it was: the call can be made again."""
        return not self.unserialisable


class Owner(NamedTuple):
    """The process a call in the outbox belongs to.

    Attributes:
        host: Its host name (socket.gethostname()).
        pid: Its process id.
        started: When it started, as "<boot id>/<start time in clock ticks>"
            (Linux's /proc): with the pid, it names one process, so a pid the
            system hands to a new process is not mistaken for the owner. ""
            where the system does not tell.
    """

    host: str
    pid: int
    started: str


@dataclass(frozen=True, slots=True)
class InFlightCall:
    """A call in the outbox: begun, and neither ended nor made a dead letter yet.

    Attributes:
        id: Its outbox id (a uuid4 hex string); its dead letter gets the same id.
        operation: The operation's name.
        args, kwargs, unserialisable: Its arguments, stored as a letter's are.
        correlation_id: Its correlation id, or None.
        started_at: When it was begun (time.time()).
        owner: The process making it.
    """

    id: str
    operation: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    unserialisable: tuple[str, ...]
    correlation_id: str | None
    started_at: float
    owner: Owner

