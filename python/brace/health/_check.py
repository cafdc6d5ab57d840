"""One health check: its probe, run under its own timeout, never stacked on an overrunning run."""

from __future__ import annotations

import asyncio
import inspect
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from datetime import timedelta
from typing import Any, Union, cast

from brace import _config
from brace._safe import describe, safe_repr
from brace.breaker import BreakerState, CircuitBreaker
from brace.health._model import Outcome, Status
from brace.recovery import HealingAction

__all__ = ["Check", "ProbeRun"]

Probe = Callable[[], Union[object, Awaitable[object]]]


class Check:
    """A dependency to check: a probe, a breaker, the checks it depends on, or any of them.

    The probe is a sync or async callable taking no argument. It reports HEALTHY by
    returning None or a true value, a status by returning a `Status` (or a pair
    `(Status, reason)`), and UNHEALTHY by returning a false value or raising.

    Timeout: the probe has `timeout` seconds (real time). A sync probe runs in a
    worker thread of its own (a daemon thread, named "brace-health-<name>"), so the
    caller waits at most `timeout`; an async probe runs as a task that is cancelled
    at the timeout (in a sync `Health.check()`, on an event loop of the worker thread).
    A probe that overruns is reported UNHEALTHY "timed out after <timeout> s"; a sync
    probe cannot be stopped, so it runs on, and while it does the check is not
    started again: each later run reports UNHEALTHY "still running, started <n> s
    ago" at once, so a hung dependency never piles up threads. Reports made at once
    (two requests to the handlers) share a run still within its timeout.

    Breaker: an OPEN or FORCED_OPEN breaker makes the check UNHEALTHY, a HALF_OPEN one
    DEGRADED (it is trying the dependency again); the other states add nothing. Its
    state is read at each run.

    Args:
        name: The check's name, unique within its Health (the dependency: "db").
        probe: The callable to run, or None for a check made only of its breaker
            and dependencies (an "api" that is as healthy as what it uses).
        timeout: Seconds (or a timedelta) the probe may take: from 1 ns to 2**62 ns.
        critical: Whether this check failing makes its dependents and the report
            UNHEALTHY (True) or DEGRADED only (False: a cache the service can do without).
        depends_on: The names of the checks this one depends on (a str for one).
        breaker: A brace.CircuitBreaker guarding this dependency, or None.
        healing: brace.HealingAction(s) run when the probe fails with an error of
            their categories (a timeout is Category.TIMEOUT); the check is run again
            after each to verify it. See `Health`.

    Raises:
        TypeError, ValueError: Naming the parameter, for a value outside the above;
            ValueError for a check with no probe, no breaker and no dependency.
    """

    __slots__ = ("name", "probe", "timeout", "critical", "depends_on", "breaker", "healing", "_lock", "_running", "_began")

    def __init__(
        self,
        name: str,
        probe: Probe | None = None,
        *,
        timeout: float | timedelta = 5.0,
        critical: bool = True,
        depends_on: str | Iterable[str] = (),
        breaker: CircuitBreaker | None = None,
        healing: HealingAction | Iterable[HealingAction] = (),
    ) -> None:
        if not isinstance(name, str) or not name:
            raise TypeError(f"name must be a non-empty str, got {safe_repr(name)}")
        if probe is not None and not callable(probe):
            raise TypeError(f"probe must be a callable or None, got {type(probe).__name__}")
        self.name = name
        self.probe = probe
        self.timeout = _config.positive_duration(timeout, "timeout")
        self.critical = _config.flag(critical, "critical")
        self.depends_on = _names(depends_on)
        self.breaker = _config.instance_or_none(breaker, CircuitBreaker, "breaker")
        self.healing = _actions(healing)
        if probe is None and breaker is None and not self.depends_on:
            raise ValueError(f"check {name!r} needs a probe, a breaker or depends_on: it would check nothing")
        self._lock = threading.Lock()
        self._running: _Run | asyncio.Task[object] | None = None
        self._began = 0.0

    def breaker_outcome(self) -> Outcome:
        """What the breaker's state says (HEALTHY without a breaker)."""
        if self.breaker is None:
            return Outcome(Status.HEALTHY)
        state = self.breaker.state
        label = f"breaker {self.breaker.name!r}" if self.breaker.name else "its breaker"
        if state in (BreakerState.OPEN, BreakerState.FORCED_OPEN):
            return Outcome(Status.UNHEALTHY, f"{label} is {state.value}")
        if state is BreakerState.HALF_OPEN:
            return Outcome(Status.DEGRADED, f"{label} is half_open")
        return Outcome(Status.HEALTHY)

    def start(self) -> ProbeRun:
        """Starts the probe in its worker thread and returns the run, whose `outcome()` waits for
        it up to the timeout. A run still within its timeout is joined rather than doubled (two
        reports at once share it); one past it makes the outcome "still running" at once."""
        if self.probe is None:
            return ProbeRun(None, Outcome(Status.HEALTHY))
        with self._lock:
            running = self._joinable()
            if isinstance(running, _Run):
                return ProbeRun(running, None)
            busy = self._busy()
            if busy is not None:
                return ProbeRun(None, busy)
            run = _Run(self.probe, self.timeout)
            self._running, self._began = run, run.began
        thread = threading.Thread(target=run.run, name=f"brace-health-{self.name}", daemon=True)
        thread.start()
        return ProbeRun(run, None)

    def run(self) -> Outcome:
        """Runs the probe once and returns what it found (waiting at most the timeout)."""
        return self.start().outcome()

    def recheck(self) -> tuple[Outcome, bool]:
        """A run after a healing action: (what it found, whether it is a fresh verdict). A sync
        run still going past its timeout (hung) is first given up to the timeout to end, since
        the action may have freed it; if it has not, no fresh run can start, and the outcome
        only says that it still runs (False)."""
        hung = self._hung()
        if hung is not None and not hung.finished.wait(self.timeout):
            busy = self._still_busy()
            if busy is not None:
                return busy, False
        return self.run(), True

    async def recheck_async(self) -> tuple[Outcome, bool]:
        """recheck() on the running loop (the wait for a hung run in a worker thread)."""
        hung = self._hung()
        if hung is not None and not await asyncio.get_running_loop().run_in_executor(None, hung.finished.wait,
                                                                                      self.timeout):  # fmt: skip
            busy = self._still_busy()
            if busy is not None:
                return busy, False
        return await self.run_async(), True

    def _hung(self) -> _Run | None:
        """The sync run still going past its timeout, if any."""
        with self._lock:
            running = self._running
            return running if isinstance(running, _Run) and self._busy() is not None else None

    def _still_busy(self) -> Outcome | None:
        with self._lock:
            return self._busy()

    async def run_async(self) -> Outcome:
        """Runs the probe once on the running loop: an async probe as a task (cancelled at the
        timeout), a sync one in its worker thread; a run in progress is joined as by start()."""
        if self.probe is None or not inspect.iscoroutinefunction(self.probe):
            started = self.start()
            return await asyncio.get_running_loop().run_in_executor(None, started.outcome)
        with self._lock:
            running = self._joinable()
            if isinstance(running, asyncio.Task) and running.get_loop() is asyncio.get_running_loop():
                task = running
            elif isinstance(running, _Run):
                return await asyncio.get_running_loop().run_in_executor(None, ProbeRun(running, None).outcome)
            else:
                busy = self._busy()
                if busy is not None:
                    return busy
                task = asyncio.ensure_future(self.probe())
                task.add_done_callback(_retrieved)
                self._running, self._began = task, time.monotonic()
            began = self._began
        done, _ = await asyncio.wait({task}, timeout=max(0.0, began + self.timeout - time.monotonic()))
        if not done:
            task.cancel()
            return _timed_out(self.timeout)
        return _ended(task, time.monotonic() - began)

    def _joinable(self) -> _Run | asyncio.Task[object] | None:
        """The run in progress when it is still within its timeout (under self._lock)."""
        running = self._running
        if running is None or running.done() or time.monotonic() - self._began >= self.timeout:
            return None
        return running

    def _busy(self) -> Outcome | None:
        """The outcome "still running" when the last run has not ended (under self._lock)."""
        running = self._running
        if running is None or running.done():
            return None
        age = time.monotonic() - self._began
        return Outcome(Status.UNHEALTHY, f"still running, started {age:.3g} s ago (timed out after {self.timeout:g} s)",
                       TimeoutError(f"check {self.name!r} still running"))  # fmt: skip

    def __repr__(self) -> str:
        return f"Check({self.name!r}, timeout={self.timeout:g}, critical={self.critical}, depends_on={list(self.depends_on)})"


class ProbeRun:
    """A started probe: `outcome()` waits for it, up to its check's timeout from its start."""

    __slots__ = ("_run", "_known")

    def __init__(self, run: _Run | None, known: Outcome | None) -> None:
        self._run = run
        self._known = known

    def outcome(self) -> Outcome:
        """What the probe found, or UNHEALTHY "timed out" when it has not ended by its timeout."""
        if self._known is not None:
            return self._known
        assert self._run is not None
        return self._run.wait()


class _Run:
    """One run of a probe in a worker thread: its result, once it is there."""

    __slots__ = ("probe", "timeout", "began", "finished", "ended", "value", "error")

    def __init__(self, probe: Probe, timeout: float) -> None:
        self.probe = probe
        self.timeout = timeout
        self.began = time.monotonic()
        self.finished = threading.Event()
        self.ended = 0.0
        self.value: object = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            value = self.probe()
            if inspect.isawaitable(value):
                value = asyncio.run(_within(value, self.timeout))
            self.value = value
        except BaseException as error:  # noqa: B036 - reported as the probe's failure
            self.error = error
        finally:
            self.ended = time.monotonic()
            self.finished.set()

    def done(self) -> bool:
        return self.finished.is_set()

    def wait(self) -> Outcome:
        if not self.finished.wait(max(0.0, self.began + self.timeout - time.monotonic())):
            return _timed_out(self.timeout)
        took = self.ended - self.began
        return _failed(self.error, took) if self.error is not None else judged(self.value, took)


def _ended(task: asyncio.Task[object], took: float) -> Outcome:
    """What a finished probe task found."""
    if task.cancelled():
        return Outcome(Status.UNHEALTHY, "cancelled", asyncio.CancelledError(), took)
    error = task.exception()
    return _failed(error, took) if error is not None else judged(task.result(), took)


def _retrieved(task: asyncio.Task[object]) -> None:
    """Marks a probe task's exception as seen: one that ends after its timeout is not logged."""
    if not task.cancelled():
        task.exception()


class _TimedOut(TimeoutError):
    """A probe's coroutine cancelled at its timeout in the worker thread."""


async def _within(awaitable: Awaitable[Any], timeout: float) -> Any:
    try:
        return await asyncio.wait_for(awaitable, timeout)
    except asyncio.TimeoutError:
        raise _TimedOut(f"timed out after {timeout:g} s") from None


def judged(value: object, took: float | None = None) -> Outcome:
    """What a probe's return value means: None or true HEALTHY, a Status (or (Status, reason))
    that status, a false value UNHEALTHY."""
    if isinstance(value, Status):
        return Outcome(value, "" if value is Status.HEALTHY else f"reported {value.value}", None, took)
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], Status) and isinstance(value[1], str):
        return Outcome(value[0], "" if value[0] is Status.HEALTHY else value[1], None, took)
    if value is None or value:
        return Outcome(Status.HEALTHY, "", None, took)
    return Outcome(Status.UNHEALTHY, f"returned {safe_repr(value)}", None, took)


def _failed(error: BaseException, took: float) -> Outcome:
    if isinstance(error, _TimedOut):
        return Outcome(Status.UNHEALTHY, str(error), error, None)
    if isinstance(error, (TimeoutError, asyncio.TimeoutError)) and not str(error):
        return Outcome(Status.UNHEALTHY, f"timed out after {took:.3g} s", error, took)
    return Outcome(Status.UNHEALTHY, describe(error), error, took)


def _timed_out(timeout: float) -> Outcome:
    reason = f"timed out after {timeout:g} s"
    return Outcome(Status.UNHEALTHY, reason, TimeoutError(reason), None)


def _items(value: object, single: type, name: str, accepted: str) -> tuple[object, ...]:
    """A parameter taking one item or an iterable of them, as a tuple (items not yet checked)."""
    if isinstance(value, single):
        return (value,)
    try:
        return tuple(cast("Iterable[object]", value))
    except TypeError:
        raise TypeError(f"{name} must be {accepted} or an iterable of them, got {type(value).__name__}") from None


def _names(value: object) -> tuple[str, ...]:
    names = _items(value, str, "depends_on", "a check's name")
    for item in names:
        if not isinstance(item, str) or not item:
            raise TypeError(f"depends_on must hold non-empty str names, got {safe_repr(item)}")
    if len(set(names)) != len(names):
        raise ValueError(f"depends_on names a check twice: {list(names)}")
    return cast("tuple[str, ...]", names)


def _actions(value: object) -> tuple[HealingAction, ...]:
    actions = _items(value, HealingAction, "healing", "a brace.HealingAction")
    if not all(isinstance(item, HealingAction) for item in actions):
        strange = next(item for item in actions if not isinstance(item, HealingAction))
        raise TypeError(f"healing must hold brace.HealingAction objects, got {type(strange).__name__}")
    checked = cast("tuple[HealingAction, ...]", actions)
    names = [action.name for action in checked]
    if len(set(names)) != len(names):
        raise ValueError(f"healing actions' names must be unique, got {names}")
    return checked
