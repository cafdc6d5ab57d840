"""Correlation ids: which request or job a recovered call serves.

Events carry a correlation id: the id of the request or job the call serves,
set with `with correlation(id): ...` and read with `correlation_id()`. It is
a contextvars.ContextVar, so it follows the code that runs on behalf of the
block: asyncio tasks created inside it (a task copies its creator's context),
`asyncio.to_thread` and `contextvars.copy_context().run(...)`. A plain
threading.Thread or an executor's worker starts with an empty context and so
without the id (on Python 3.14+, a thread inherits the context when
`sys.flags.thread_inherit_context` is set, the default on free-threaded
builds): hand it over with `copy_context().run`.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

from brace._core import new_correlation_id

__all__ = ["correlation", "correlation_id", "correlation_var", "new_correlation_id"]

# The id of the current context; the engine reads it on every logged call.
correlation_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("brace_correlation_id", default=None)


def correlation_id() -> str | None:
    """The correlation id of the current context, or None outside `correlation`."""
    return correlation_var.get()


# `new_correlation_id()` is compiled (pyx/recovered.c): a random per-process prefix and a
# serial, which the recovered calls also use when they make an id in C.


@contextlib.contextmanager
def correlation(id: str | None = None) -> Iterator[str]:
    """Sets the correlation id for the block (sync or inside a coroutine) and yields it.

    The previous id (or None) is restored when the block ends, so blocks nest.

    Args:
        id: The id, a non-empty str; None for a new one (`new_correlation_id()`).

    Raises:
        TypeError, ValueError: For an id that is not a non-empty str or None.
    """
    if id is None:
        id = new_correlation_id()
    elif not isinstance(id, str):
        raise TypeError(f"id must be a non-empty str or None, got {type(id).__name__}")
    elif not id:
        raise ValueError("id must be a non-empty str or None, got ''")
    token = correlation_var.set(id)
    try:
        yield id
    finally:
        correlation_var.reset(token)
