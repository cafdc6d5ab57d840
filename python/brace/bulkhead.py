"""brace.Bulkhead: caps concurrent calls; its permits are counted in the C core."""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Awaitable
from datetime import timedelta
from typing import (
    TYPE_CHECKING,
    Any,
    Callable,
    ClassVar,
    Literal,
    NamedTuple,
    NoReturn,
    ParamSpec,
    TypeVar,
    cast,
)

from brace import _clock, _config, _deadline, _guarding, _slots, _stores
from brace._core import (
    BULKHEAD_MAX,
    CALLABLE_GUARDED,
    LEASES_MAX,
    RERAISE,
    BulkheadCore,
    is_awaitable,
    now_ns,
)
from brace._listeners import Listeners, Observable
from brace.errors import BulkheadFull

if TYPE_CHECKING:
    import asyncio

__all__ = ["Bulkhead", "BulkheadEvent"]

P = ParamSpec("P")
R = TypeVar("R")

_NS = 1_000_000_000
# A shared bulkhead's wait polls: the first nap, and the longest (doubling in between).
_POLL_FIRST_NS = 1_000_000
_POLL_MAX_NS = 20_000_000

EventKind = Literal["rejected"]
_EVENT_KINDS = ("rejected",)


class BulkheadEvent(NamedTuple):
    """What a bulkhead's listener receives.

    Attributes:
        kind: "rejected": no slot came free within max_wait (the caller got
            BulkheadFull).
        name: The bulkhead's name, or None.
        at: When it happened, seconds on brace's clock.
        max_concurrent: The bulkhead's size then.
        max_wait: Seconds the call was allowed to wait (None: no limit but its deadline).
    """

    kind: EventKind
    name: str | None
    at: float
    max_concurrent: int
    max_wait: float | None


Listener = Callable[[BulkheadEvent], object]


class _ThreadWaiter:
    """A thread in the queue: blocks on a held lock until a granter releases it."""

    __slots__ = ("granted", "_parked")

    def __init__(self) -> None:
        self.granted = False
        self._parked = threading.Lock()
        self._parked.acquire()

    def park(self, deadline_ns: int | None) -> bool:
        """Blocks until woken (True) or until brace's clock reaches deadline_ns (False; None: never)."""
        return _clock.wait(lambda seconds: self._parked.acquire(timeout=-1 if seconds is None else seconds),
                           deadline_ns)  # fmt: skip

    def wake(self) -> bool:
        self._parked.release()
        return True


class _TaskWaiter:
    """A coroutine in the queue: awaits a future that a granter resolves."""

    __slots__ = ("granted", "future")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.granted = False
        self.future: asyncio.Future[None] = loop.create_future()

    def wake(self) -> bool:
        """Resolves the future from any thread; False when its loop is closed."""
        try:
            self.future.get_loop().call_soon_threadsafe(_resolve, self.future)
        except RuntimeError:  # a closed loop never runs its tasks again
            return False
        return True


_Waiter = _ThreadWaiter | _TaskWaiter


def _compiled_wait(max_wait: float | None) -> float:
    """max_wait as the compiled base keeps it (it sheds a call at once only when this is 0)."""
    return math.inf if max_wait is None else max_wait


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _wait_limit(value: object) -> float | None:
    return _config.duration(value, "max_wait", maximum=_config.THREAD_WAIT_MAX, allow_none=True)


# reconfigure()'s "leave max_wait as it is": None there means "wait as long as it takes".
_KEEP: Any = object()


class Bulkhead(BulkheadCore, Observable[BulkheadEvent]):
    """A bulkhead: at most `max_concurrent` calls run at once.

    A call that finds every slot taken waits up to `max_wait` seconds for one,
    then raises `BulkheadFull`. Waiters are served in strict FIFO order, threads
    and coroutines in one queue: a slot freed while calls wait is handed to the
    first waiter directly, never put up for grabs, so a newcomer cannot overtake
    the queue. A slot is never lost: not on an exception in the call, not on a
    timeout, not on a cancelled task (a slot handed to a waiter just as it
    timed out is used; one handed to a task just as it was cancelled goes to
    the next waiter).

    Taking and returning a free slot is one lock-free compare-and-swap each in
    the C core, and `with bh:` on a bulkhead with room runs no Python code.
    Waiting takes a lock and parks the thread (or awaits a future); it is the
    only path that allocates.

    A wait ends at `max_wait`, or earlier at an enclosing deadline
    (brace.deadline, a Retry's or Policy's): brace never waits past the
    bound its caller set. Under `brace.testing.fake_clock()` it follows the
    fake clock (see there). In a coroutine use `async with`
    (or `call_async`, or decorate the coroutine function): a plain `with`
    that waits blocks the event loop, and with it the calls it waits for.

    Usable as a context manager (`with bh:` / `async with bh:`), as a
    decorator (sync and coroutine functions), through `call(fn, ...)` and
    `await call_async(fn, ...)`, or by hand: `try_acquire()`, then `release()`.

    Args:
        max_concurrent: Calls that may run at once, 1 to 2**31 - 1.
        max_wait: How long a call waits for a slot: 0 or 1 ns to 2**62 ns
            (seconds or a timedelta); 0 fails at once when the bulkhead is
            full; None waits as long as it takes (an enclosing brace.deadline
            still ends the wait).
        name: A name for messages and metrics; with `store`, required: the
            slot in the region.
        store: Where the permits live. None: in this object, shared by this
            process's threads. "shm://REGION": in the shared-memory region
            REGION (created on first use), so that every process's Bulkhead
            with the same store and name holds from one set of
            max_concurrent (at most 4096) permits. A shared bulkhead's wait
            polls (1 ms, doubling to 20 ms) instead of queueing, so it is not
            FIFO; the permits of a process that dies are reclaimed (see the
            README's "Many processes").

    Raises:
        ValueError, TypeError: For configuration outside the ranges above.
    """

    #: The kinds of event this primitive emits (add_listener's `kinds`).
    event_kinds: ClassVar[tuple[str, ...]] = _EVENT_KINDS

    __slots__ = ("_name", "_max_concurrent", "_max_wait", "_lock", "_queue", "_listeners", "_store", "__weakref__")

    def __new__(cls, *positional: object, **config: object) -> Bulkhead:
        # Before __init__ binds its required keywords, so that a bare
        # `@brace.Bulkhead` gets the error that says how to write it.
        _config.keywords_only("Bulkhead", positional)
        return super().__new__(cls)

    def __init__(
        self,
        *positional: NoReturn,
        name: str | None = None,
        max_concurrent: int,
        max_wait: float | timedelta | None = 0.0,
        store: str | None = None,
    ) -> None:
        _config.keywords_only("Bulkhead", positional)
        self._max_concurrent = _config.count(
            max_concurrent, "max_concurrent", maximum=BULKHEAD_MAX
        )
        self._max_wait = _wait_limit(max_wait)
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name must be a str or None, got {type(name).__name__}")
        self._name = name
        self._listeners: Listeners[BulkheadEvent] = Listeners(f"bulkhead {name!r}" if name else "a bulkhead",
                                                              _EVENT_KINDS)  # fmt: skip
        # Guards the queue and every slow-path call into the core; the fast
        # paths never take it.
        self._lock = threading.Lock()
        self._queue: OrderedDict[_Waiter, None] = OrderedDict()
        shared = _stores.parse(store)
        self._store = store
        if shared is None:
            self._configure(name, self._max_concurrent, _compiled_wait(self._max_wait))
            return
        if self._max_concurrent > LEASES_MAX:
            raise ValueError(f"max_concurrent of a shared bulkhead (store=) must be 1 to {LEASES_MAX}, "
                             f"got {self._max_concurrent}")  # fmt: skip
        slot = _stores.slot_name(name, "Bulkhead")
        region = _stores.region(*shared)
        if not self._attach(region, slot, self._max_concurrent, name, _compiled_wait(self._max_wait)):
            raise ValueError(_slots.bulkhead_mismatch(region.slot_info(slot), store, slot, self._max_concurrent))

    @property
    def store(self) -> str | None:
        """Where the permits live: None (this object) or the "shm://REGION" they are shared in."""
        return self._store

    def reclaim(self) -> int:
        """Frees the permits that dead processes held in a shared bulkhead now, rather than at
        the next acquire that finds none free; returns how many (0 for a local bulkhead)."""
        return int(self._sweep())

    @property
    def name(self) -> str | None:
        """The bulkhead's name, or None."""
        return self._name

    @property
    def max_concurrent(self) -> int:
        """Calls that may run at once."""
        return self._max_concurrent

    @property
    def max_wait(self) -> float | None:
        """Seconds a call waits for a slot before `BulkheadFull`."""
        return self._max_wait

    @property
    def in_use(self) -> int:
        """Slots taken now (above max_concurrent only after it was lowered)."""
        return self._report()[0]

    @property
    def available(self) -> int:
        """Slots free now."""
        in_use, max_concurrent, _ = self._report()
        return max(0, max_concurrent - in_use)

    @property
    def waiting(self) -> int:
        """Calls queued for a slot now."""
        return len(self._queue)

    @property
    def rejections(self) -> int:
        """Calls this object rejected (BulkheadFull) since it was made, in this process,
        listened to or not."""
        return self._rejections()

    def _call_slow(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """`call`'s rare path (pyx/entries.h): no free slot (wait for one), or fn is not a
        plain function the compiled entry could judge."""
        if _guarding.sync_entry(fn, self, "Bulkhead.call"):
            return _guarding.call_guarded(fn, args, kwargs, "Bulkhead.call")
        with self:
            result = fn(*args, **kwargs)
            if is_awaitable(result):
                raise _guarding.refuse_awaitable(result, fn, "Bulkhead.call")
            return result

    async def call_async(self, fn: Callable[P, Awaitable[R]], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Awaits fn(*args, **kwargs) in a slot, awaiting up to max_wait for one
        (a plain fn's value is used as it is).

        Raises:
            BulkheadFull: No slot came free within max_wait; fn was not called.
        """
        if _guarding.kind(fn, self) == CALLABLE_GUARDED:
            return cast(R, await _guarding.awaited(fn(*args, **kwargs)))
        async with self:
            return cast(R, await _guarding.awaited(fn(*args, **kwargs)))

    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]:
        """Decorates fn so that each call runs in a slot (waiting up to max_wait).

        Coroutine functions stay coroutine functions: their calls hold the
        slot until the coroutine finishes, and wait for it without blocking.
        So do plain functions that return an awaitable. A function this
        bulkhead already decorates is returned as it is.
        """
        return _guarding.guard_function(self, fn, self._guard, self._guard_async)

    def _guard_async(self, fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def bulkheaded_async(*args: Any, **kwargs: Any) -> Any:
            async with self:
                return await fn(*args, **kwargs)

        return bulkheaded_async

    def _guard_call(self, fn: Callable[..., R], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """A decorated call that found no free slot: wait for one in the queue."""
        self._acquire_slow()
        try:
            result = fn(*args, **kwargs)
        except BaseException:
            self.release()
            raise
        if is_awaitable(result):
            return self._hold_until_awaited(result)
        self.release()
        return result

    def _guard_failed(self, fn: object, args: object, kwargs: object, error: BaseException, token: int,
                      start: int) -> object:  # fmt: skip
        """A decorated call raised: its slot goes back, the error propagates as it was."""
        self.release()
        return RERAISE

    def _guard_awaitable(self, fn: object, args: object, kwargs: object, awaitable: Awaitable[Any], token: int,
                         start: int) -> Awaitable[Any]:  # fmt: skip
        """A decorated plain function returned an awaitable: the slot is held until it is awaited."""
        return self._hold_until_awaited(awaitable)

    async def _hold_until_awaited(self, awaitable: Awaitable[Any]) -> Any:
        try:
            return await awaitable
        finally:
            self.release()

    async def _enter_slow_async(self) -> Bulkhead:
        """`async with`'s wait, when no slot is free now (pyx/entries.h)."""
        await self._acquire_slow_async()
        return self

    def reconfigure(
        self,
        *,
        max_concurrent: int | None = None,
        max_wait: float | timedelta | None = _KEEP,
    ) -> None:
        """Changes the number of slots and/or the wait while in use.

        Calls running keep their slots. Growing hands the new slots to the
        queued waiters first; shrinking retires slots as calls finish until at
        most the new number are in use. A new max_wait applies to waits that
        start afterwards. Unspecified settings keep their values.

        Args:
            max_concurrent: As for the constructor.
            max_wait: As for the constructor.
        """
        if self._store is not None:
            raise ValueError(f"reconfigure: the bulkhead {self._name!r} in store {self._store!r} is shared; its "
                             "max_concurrent is fixed by the process that created it (unlink the region to "
                             "change it)")  # fmt: skip
        new_max = (
            self._max_concurrent
            if max_concurrent is None
            else _config.count(max_concurrent, "max_concurrent", maximum=BULKHEAD_MAX)
        )
        new_wait = self._max_wait if max_wait is _KEEP else _wait_limit(max_wait)
        with self._lock:
            self._configure(self._name, new_max, _compiled_wait(new_wait))
            self._max_concurrent, self._max_wait = new_max, new_wait
            while self._queue and self._grant(len(self._queue)):
                self._pass_locked()

    # -- the stage protocol (brace._stages.AdmissionStage): each attempt holds a slot

    _brace_stage_in_python = False

    def _brace_stage_admit(self) -> int:
        self.__enter__()
        return 0

    async def _brace_stage_admit_async(self) -> int:
        await self.__aenter__()
        return 0

    def _brace_stage_give_back(self, ticket: int) -> None:
        self.release()

    def _brace_stage_failed(self, ticket: int, start: int, error: BaseException) -> None:
        self.release()

    def _brace_stage_returned(self, ticket: int, start: int, result: R) -> R:
        self.release()
        return result

    def __repr__(self) -> str:
        name = f"name={self._name!r}, " if self._name else ""
        store = f", store={self._store!r}" if self._store is not None else ""
        return (
            f"Bulkhead({name}max_concurrent={self._max_concurrent}, "
            f"max_wait={self._max_wait!r}, in_use={self.in_use}, waiting={self.waiting}{store})"
        )

    # ---- slow paths: the compiled fast paths call _acquire_slow and _handoff

    def _wait_deadline(self) -> int | None:
        """When a wait starting now ends: after max_wait, or at an enclosing deadline (None: never)."""
        return _deadline.tighter(None if self._max_wait is None else now_ns() + round(self._max_wait * _NS))

    def _acquire_slow(self) -> Bulkhead:
        """`with`'s and call's wait: queues the thread and blocks up to max_wait for a slot."""
        if self._max_wait == 0:
            raise self._full()
        deadline = self._wait_deadline()
        if self._store is not None:
            self._poll(deadline)
            return self
        waiter = _ThreadWaiter()
        if self._join(waiter):
            return self
        try:
            woken = waiter.park(deadline)
        except BaseException:
            if self._leave(waiter):
                self.release()
            raise
        if not woken and not self._leave(waiter):
            raise self._full()
        return self

    async def _acquire_slow_async(self) -> None:
        """`async with`'s wait: queues the task and awaits up to max_wait for a slot."""
        import asyncio  # loaded with the event loop, not with brace

        if self._max_wait == 0:
            raise self._full()
        deadline = self._wait_deadline()
        if self._store is not None:
            await self._poll_async(deadline)
            return
        waiter = _TaskWaiter(asyncio.get_running_loop())
        if self._join(waiter):
            return
        try:
            await _clock.wait_async(waiter.future, deadline)
        except BaseException:
            if self._leave(waiter):
                self.release()
            raise
        # A task woken by a handoff may run before the granter sets granted;
        # _leave waits for the granter's lock and sees it then.
        if not waiter.granted and not self._leave(waiter):
            raise self._full()

    def _poll(self, deadline: int | None) -> None:
        """A shared bulkhead's wait: other processes' releases wake nobody here, so it
        retries, napping 1 ms and doubling up to 20 ms, until the deadline."""
        nap = _POLL_FIRST_NS
        while not self.try_acquire():
            now = now_ns()
            if deadline is not None and now >= deadline:
                raise self._full()
            _clock.sleep_until(now + nap if deadline is None else min(now + nap, deadline))
            nap = min(2 * nap, _POLL_MAX_NS)

    async def _poll_async(self, deadline: int | None) -> None:
        """_poll for a coroutine: it naps without blocking the event loop."""
        nap = _POLL_FIRST_NS
        while not self.try_acquire():
            now = now_ns()
            if deadline is not None and now >= deadline:
                raise self._full()
            await _clock.sleep_until_async(now + nap if deadline is None else min(now + nap, deadline))
            nap = min(2 * nap, _POLL_MAX_NS)

    def _join(self, waiter: _Waiter) -> bool:
        """Queues waiter, unless a slot came free meanwhile: then takes it (True)."""
        with self._lock:
            if self._enqueue():
                return True
            self._queue[waiter] = None
            return False

    def _leave(self, waiter: _Waiter) -> bool:
        """Takes a waiter that stopped waiting out of the queue.

        Returns True when a slot was handed to it first (a handoff racing its
        timeout or cancellation): the slot is then the waiter's to use or
        release.
        """
        with self._lock:
            if waiter.granted:
                return True
            # Absent when a handoff could not wake it (its loop was closed).
            self._queue.pop(waiter, None)
            if not self._queue:
                self._unflag()
            return False

    def _handoff(self) -> None:
        """release()'s slow path: waiters are queued, so the slot goes to the first."""
        with self._lock:
            self._pass_locked()

    def _pass_locked(self) -> None:
        """With the lock held and a slot owned: hands it to the first waiter, or frees it."""
        while self._pass_or_free(len(self._queue)):
            waiter, _ = self._queue.popitem(last=False)
            if waiter.wake():
                # Set after the wake, but under the lock that _leave takes, so
                # a woken waiter that reads it early still learns it in _leave;
                # a waiter that could not be woken never believes it holds one.
                waiter.granted = True
                return

    def _full(self) -> BulkheadFull:
        self._count_rejection()
        if self._listeners.wants("rejected"):
            event = BulkheadEvent("rejected", self._name, now_ns() / _NS, self._max_concurrent, self._max_wait)
            self._listeners.emit(event, "rejected")
        return BulkheadFull(
            name=self._name, max_concurrent=self._max_concurrent, max_wait=self._max_wait
        )

    def _listeners_changed(self) -> None:
        self._reject_in_python(self._listeners.wants("rejected"))
