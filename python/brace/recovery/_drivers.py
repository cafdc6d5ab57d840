"""The recovery layer's algorithms are written once, as steps; two drivers run them.

An algorithm that must work for a thread and for a coroutine (a recovered
call, a fallback serving a value, an escalation waiting for its decision) is a
generator of Effects: each names what to do to the outside world (call the
operation, sleep, run a healing action, wait for a person's decision) in its
sync and its async form. `drive` performs the sync forms in the calling
thread, `drive_async` awaits the async forms; both send the outcome back into
the generator (its value, or its exception thrown in) until the generator
returns the result. So every decision lives in the algorithm, once, and the
drivers only do what they are told.
"""

from __future__ import annotations

from collections.abc import Awaitable, Generator
from typing import Any, Callable, NamedTuple, TypeVar

from brace import _guarding

__all__ = ["Effect", "Steps", "awaiting", "call", "drive", "drive_async", "wait_for"]

R = TypeVar("R")


class Effect(NamedTuple):
    """One thing an algorithm asks its driver to do: `run(*args)` on the sync path,
    `await run_async(*args)` on the async path. `run` None: only an async driver can
    do it (the sync driver hands the algorithm over to an async one)."""

    run: Callable[..., Any] | None
    run_async: Callable[..., Awaitable[Any]]
    args: tuple[Any, ...]


Steps = Generator[Effect, Any, R]


async def awaiting(fn: Callable[..., Any], *args: Any) -> Any:
    """fn(*args), awaited when it returns an awaitable: a callable that may be a coroutine function."""
    return await _guarding.awaited(fn(*args))


def call(fn: Callable[..., Any], *args: Any) -> Effect:
    """The effect of calling fn(*args), whose result an async driver awaits when it is awaitable
    (a sync driver hands back what fn returned: the algorithm decides what an awaitable means there)."""
    return Effect(_calling, awaiting, (fn, *args))


def _calling(fn: Callable[..., Any], *args: Any) -> Any:
    return fn(*args)


def wait_for(awaitable: object) -> Effect:
    """The effect of awaiting `awaitable`: only an async driver can (`drive` hands the steps over to one)."""
    return Effect(None, _guarding.awaited, (awaitable,))


def drive(steps: Steps[R], handover: Callable[[Steps[R], Effect], Awaitable[R]] | None = None) -> R:
    """Runs an algorithm's steps in this thread; returns its result or raises its exception.

    An effect only a coroutine can do (see `wait_for`) ends the thread's part:
    `drive` returns handover(steps, effect), the awaitable that runs the rest
    (default: drive_async(steps, effect)).
    """
    sent: Any = None
    thrown: BaseException | None = None
    while True:
        try:
            effect = steps.send(sent) if thrown is None else steps.throw(thrown)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        sent = thrown = None
        if effect.run is None:
            return (drive_async if handover is None else handover)(steps, effect)  # type: ignore[return-value]
        try:
            sent = effect.run(*effect.args)
        except BaseException as error:  # the algorithm decides, KeyboardInterrupt included
            thrown = error


async def drive_async(steps: Steps[R], pending: Effect | None = None) -> R:
    """Runs an algorithm's steps in this coroutine, awaiting each effect; `pending`: an effect
    the algorithm already asked for (handed over by `drive`)."""
    sent: Any = None
    thrown: BaseException | None = None
    effect = pending
    while True:
        if effect is None:
            try:
                effect = steps.send(sent) if thrown is None else steps.throw(thrown)
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]
        sent = thrown = None
        try:
            sent = await effect.run_async(*effect.args)
        except BaseException as error:  # cancellation included: the algorithm settles its outbox
            thrown = error
        effect = None

