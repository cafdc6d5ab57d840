"""Sync attempts under a time limit: run in a pool of worker threads, waited for with a deadline.

Python cannot interrupt a running function, so a sync attempt with an
attempt timeout runs in a worker thread while the caller waits for it until
the deadline. When the deadline comes first, the caller stops waiting and
gets brace.AttemptTimeout with `still_running=True`; the attempt goes on in its
worker until it really ends, and only then is what it holds given back (the
caller's `on_late_end`: a bulkhead slot, a breaker's permission or probe).
Its late outcome is logged, never dropped.

Each attempt runs in a copy of the caller's contextvars (correlation id,
deadline, ...). Objects bound to the calling thread (an sqlite3 connection
made with check_same_thread, thread-locals) are not available in the worker:
such calls should bound themselves with brace.deadline_remaining() instead.

Workers are reused: an idle worker takes the next attempt, a new one starts
only when none is idle, and one idle for a minute ends.
"""

from __future__ import annotations

import contextvars
import itertools
import os
import threading
from collections.abc import Callable
from typing import Any, Protocol

from brace import _clock
from brace._logger import logger
from brace.errors import AttemptTimeout

__all__ = ["run", "start"]

_IDLE_SECONDS = 60.0

LateEnd = Callable[[BaseException | None], None]


class _Job:
    """One attempt handed to a worker. Its `done` lock is held until the attempt has ended
    (a lock, not an Event: acquiring it with a timeout is one C call, no Condition)."""

    __slots__ = ("fn", "args", "kwargs", "context", "done", "finished", "result", "error", "abandoned",
                 "on_late_end", "lock")  # fmt: skip

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self.fn, self.args, self.kwargs = fn, args, kwargs
        self.context = contextvars.copy_context()
        self.done = threading.Lock()
        self.done.acquire()
        self.finished = False
        self.result: Any = None
        self.error: BaseException | None = None
        self.abandoned = False
        self.on_late_end: LateEnd | None = None
        self.lock = threading.Lock()

    def run(self, idle: Callable[[], None]) -> None:
        """Runs the attempt; `idle` puts the worker back in the pool before the caller
        learns the outcome, so that a caller's next attempt finds it there."""
        try:
            self.result = self.context.run(self.fn, *self.args, **self.kwargs)
        except BaseException as error:  # handed to the caller, or logged when it stopped waiting
            self.error = error
        with self.lock:
            abandoned = self.abandoned
            self.finished = True
        if abandoned:
            self._ended_late()
        idle()
        self.done.release()

    def ended(self, seconds: float | None) -> bool:
        """Waits up to `seconds` (None: without limit) for the attempt to end."""
        return self.done.acquire(timeout=-1 if seconds is None else seconds)

    def _ended_late(self) -> None:
        error = self.error
        if error is None:
            logger().info("brace: an attempt of %r that timed out ended later with a result (discarded)",
                      _name(self.fn))  # fmt: skip
        else:
            logger().warning("brace: an attempt of %r that timed out ended later with an error", _name(self.fn),
                         exc_info=error)  # fmt: skip
        if self.on_late_end is not None:
            try:
                self.on_late_end(error)
            except Exception:
                logger().exception("brace: giving back what a timed-out attempt of %r held failed", _name(self.fn))

    def abandon(self, on_late_end: LateEnd | None) -> bool:
        """Stops waiting for the job: True when it is still running (on_late_end will
        run when it ends), False when it ended just now (its outcome is there)."""
        with self.lock:
            if self.finished:
                return False
            self.abandoned = True
            self.on_late_end = on_late_end
            return True

    def outcome(self) -> Any:
        if self.error is not None:
            error, self.error = self.error, None
            raise error
        return self.result


def _name(fn: object) -> str:
    name = getattr(fn, "__qualname__", None)
    return name if isinstance(name, str) else type(fn).__name__


class _Runnable(Protocol):
    def run(self, idle: Callable[[], None]) -> None: ...


Ended = Callable[[Any, BaseException | None], None]


class _Started:
    """A call started without a caller waiting for it: its outcome goes to `ended`."""

    __slots__ = ("fn", "args", "kwargs", "context", "ended")

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], ended: Ended) -> None:
        self.fn, self.args, self.kwargs, self.ended = fn, args, kwargs, ended
        self.context = contextvars.copy_context()

    def run(self, idle: Callable[[], None]) -> None:
        result: Any = None
        error: BaseException | None = None
        try:
            result = self.context.run(self.fn, *self.args, **self.kwargs)
        except BaseException as caught:  # handed to `ended`, never raised into the worker
            error = caught
        idle()
        try:
            self.ended(result, error)
        except BaseException:
            logger().exception("brace: handing the outcome of %r on failed", _name(self.fn))


class _Worker:
    """A worker thread's mailbox: `wake` is held until it is handed a job."""

    __slots__ = ("job", "wake")

    def __init__(self, job: _Runnable) -> None:
        self.job: _Runnable | None = job
        self.wake = threading.Lock()
        self.wake.acquire()


class _Pool:
    """Daemon worker threads handed one job at a time; idle ones wait for the next."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._idle: list[_Worker] = []
        self._names = itertools.count(1)

    def submit(self, job: _Runnable) -> None:
        with self._lock:
            if self._idle:
                worker = self._idle.pop()
                worker.job = job
                worker.wake.release()
                return
        worker = _Worker(job)
        threading.Thread(target=self._serve, args=(worker,), name=f"brace-attempt-{next(self._names)}",
                         daemon=True).start()  # fmt: skip

    def _serve(self, worker: _Worker) -> None:
        while True:
            job, worker.job = worker.job, None
            assert job is not None
            job.run(lambda: self._park(worker))
            del job
            if not worker.wake.acquire(timeout=_IDLE_SECONDS):
                with self._lock:
                    if worker in self._idle:  # not handed a job while the wait ended
                        self._idle.remove(worker)
                        return
                worker.wake.acquire()  # handed one just then: take the hand-over

    def _park(self, worker: _Worker) -> None:
        with self._lock:
            self._idle.append(worker)

    def forget(self) -> None:
        """After fork: the parent's workers do not exist in the child."""
        self._lock = threading.Lock()
        self._idle = []


_pool = _Pool()
os.register_at_fork(after_in_child=_pool.forget)


def run(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], *, deadline_ns: int,
        timeout: float, on_late_end: LateEnd | None = None) -> Any:  # fmt: skip
    """fn(*args, **kwargs) in a worker, waited for until deadline_ns (brace's clock).

    Returns what fn returns, or raises what it raised (the same exception,
    never relabelled). When the deadline comes first, raises brace.AttemptTimeout
    (timeout=`timeout`, still_running=True) and calls on_late_end(error or
    None) from the worker once fn really ends.
    """
    job = _Job(fn, args, kwargs)
    _pool.submit(job)
    try:
        ended = _clock.wait(job.ended, deadline_ns)
    except BaseException:
        # Interrupted while waiting (KeyboardInterrupt): the attempt still runs.
        if job.abandon(on_late_end):
            raise
        ended = True
    if not ended and job.abandon(on_late_end):
        raise AttemptTimeout(timeout=timeout, still_running=True)
    return job.outcome()


def start(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], ended: Ended) -> None:
    """Starts fn(*args, **kwargs) in a worker (in a copy of the caller's context) and returns
    at once; `ended(result, error)` runs in the worker when fn ends (error None: it returned).
    An exception of `ended` is logged, never raised into the worker."""
    _pool.submit(_Started(fn, args, kwargs, ended))
