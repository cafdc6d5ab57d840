"""brace.Fallback and brace.Degraded: a value to serve when an operation fails.

A Fallback is an ordered chain of alternatives - another service, a fixed
value, the last good result (stale-if-error), a value made from the error -
tried in turn until one produces a value. What it serves comes wrapped in a
`Degraded`, so the caller always knows the value did not come from the
operation itself.
"""

from __future__ import annotations

import inspect
import logging
import threading
import warnings
from collections import OrderedDict
from collections.abc import Awaitable, Coroutine, Hashable, Iterable
from datetime import timedelta
from typing import Any, Callable, ClassVar, ParamSpec, TypeVar, cast, overload

from brace import _config, _guarding
from brace._core import CALLABLE_GUARDED, is_awaitable, now_ns
from brace._listeners import Listeners, Observable
from brace._safe import describe, name_of, safe_repr
from brace.classify import DEFAULT_CLASSIFIER, Category, Classification
from brace.classify._categories import parse_categories
from brace.errors import FallbackFailed
from brace.recovery._drivers import Steps, drive, drive_async, wait_for
from brace.recovery._served import EVENT_KINDS, Degraded, FallbackEvent
from brace._config import NS_PER_SECOND


__all__ = ["Alternative", "Degraded", "Fallback", "FallbackEvent"]

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")

_log = logging.getLogger("brace")

_Served = tuple[object, float | None]  # an alternative's value, and its age if cached


class _Miss(Exception):
    """An alternative had nothing to serve (a cache without a fresh entry)."""


class Alternative:
    """One alternative of a Fallback, as made by `Fallback.value`, `cached` or `from_error`.

    Plain callables passed to `Fallback` become alternatives too.
    """

    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    @property
    def name(self) -> str:
        """The name shown in Degraded.source and in failure lines."""
        return self._name

    @property
    def source(self) -> str:
        """Degraded.source for a value served by this alternative."""
        return f"fallback:{self._name}"

    def _produce(self, operation: str, args: tuple[Any, ...], kwargs: dict[str, Any],
                 error: BaseException) -> _Served:  # fmt: skip
        """(value, age) for the failed call; raises _Miss when there is nothing to serve."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__.lstrip('_')} {self._name!r}>"


class _Call(Alternative):
    """A callable called like the guarded operation: another service or endpoint."""

    __slots__ = ("_fn",)

    def __init__(self, fn: Callable[..., object], name: str) -> None:
        super().__init__(name)
        self._fn = fn

    def _produce(self, operation: str, args: tuple[Any, ...], kwargs: dict[str, Any],
                 error: BaseException) -> _Served:  # fmt: skip
        return self._fn(*args, **kwargs), None


class _Value(Alternative):
    __slots__ = ("_value",)

    def __init__(self, value: object, name: str) -> None:
        super().__init__(name)
        self._value = value

    def _produce(self, operation: str, args: tuple[Any, ...], kwargs: dict[str, Any],
                 error: BaseException) -> _Served:  # fmt: skip
        return self._value, None


class _FromError(Alternative):
    __slots__ = ("_fn",)

    def __init__(self, fn: Callable[[BaseException], object], name: str) -> None:
        super().__init__(name)
        self._fn = fn

    def _produce(self, operation: str, args: tuple[Any, ...], kwargs: dict[str, Any],
                 error: BaseException) -> _Served:  # fmt: skip
        return self._fn(error), None


class _Cached(Alternative):
    """Stale-if-error: the last good result for the same key, if young enough."""

    __slots__ = ("_max_age_ns", "_key", "_max_entries", "_lock", "_entries")

    def __init__(self, max_age: float, key: Callable[..., Hashable] | None, max_entries: int, name: str) -> None:
        super().__init__(name)
        self._max_age_ns = round(max_age * NS_PER_SECOND)
        self._key = key
        self._max_entries = max_entries
        self._lock = threading.Lock()
        # key -> (value, stored at, ns); least recently used first.
        self._entries: OrderedDict[Hashable, tuple[object, int]] = OrderedDict()

    @property
    def source(self) -> str:
        return "cache"

    def key_of(self, operation: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Hashable:
        """The entry's key: the operation, and its arguments (or `key` of them).

        One Fallback may serve several operations: a result is served only
        for the operation it came from, never another one's.
        """
        if self._key is not None:
            key = self._key(*args, **kwargs)
            hash(key)  # an unhashable key fails here, named, not deep in the dict
            return operation, key
        # kwargs sorted by name: the same call written in another order is the same key.
        key = (operation, args, tuple(sorted(kwargs.items())))
        try:
            hash(key)
        except TypeError:
            # A str never equals the tuples above, so the two kinds cannot collide.
            return repr(key)
        return key

    def store(self, operation: str, args: tuple[Any, ...], kwargs: dict[str, Any], value: object) -> None:
        key = self.key_of(operation, args, kwargs)
        stored = now_ns()
        with self._lock:
            self._entries[key] = (value, stored)
            self._entries.move_to_end(key)
            if len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)

    def _produce(self, operation: str, args: tuple[Any, ...], kwargs: dict[str, Any],
                 error: BaseException) -> _Served:  # fmt: skip
        key = self.key_of(operation, args, kwargs)
        now = now_ns()
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                raise _Miss("no entry for these arguments")
            value, stored = entry
            age_ns = now - stored
            if age_ns > self._max_age_ns:
                # Time only moves on: it can never be served again.
                del self._entries[key]
                raise _Miss(f"entry {age_ns / NS_PER_SECOND:.6g} s old, max_age {self._max_age_ns / NS_PER_SECOND:.6g} s")
            self._entries.move_to_end(key)
        return value, age_ns / NS_PER_SECOND


def _checked_name(name: object) -> str | None:
    if name is not None and not isinstance(name, str):
        raise TypeError(f"name must be a str or None, got {type(name).__name__}")
    return name


class Fallback(Observable[FallbackEvent]):
    """Serves a value from the first alternative that has one when an operation fails.

    Alternatives are tried in order; one that raises (or a cache with no
    fresh entry) is recorded and the next is tried. The value is returned as
    a `Degraded` naming its source, with the failure it stands in for.

    Alternatives:
        - a callable: called with the failed call's args and kwargs (another
          service, a replica, a simpler endpoint); named by its __qualname__.
          Coroutine functions work with the async paths.
        - `Fallback.value(x)`: always x.
        - `Fallback.cached(max_age=...)`: the last good result for the same
          arguments (stale-if-error), fed by `remember`.
        - `Fallback.from_error(fn)`: fn(error).

    Inside `brace.Recovery` the Recovery decides when to fall back (using
    `applies` and the failure's classification). On its own, a Fallback is a
    decorator (sync and coroutine functions), `call(fn, ...)` or
    `await call_async(fn, ...)`: it runs fn, remembers a success, and serves
    on an Exception (BaseExceptions such as KeyboardInterrupt or
    CancelledError propagate). Used on its own with `categories` set, it
    classifies the failure with brace.classify.DEFAULT_CLASSIFIER to apply
    the filter.

    Args:
        *alternatives: One or more alternatives, in the order to try them.
        name: A name for errors and messages.
        categories: The failures to fall back on, by category (the word
            brace.HealingAction uses for the same idea): a brace.Category,
            its string value (e.g. "service_down"), an iterable of them, or
            None for every failure.
        on: The old name of `categories`; deprecated (on= is an exception
            filter on brace.Retry, a different idea).

    Raises:
        ValueError: No alternative, or `categories` names no known category.
        TypeError: An alternative is neither callable nor made by the
            factories above; or `categories` or `name` is of the wrong type.
    """

    #: The kinds of FallbackEvent a Fallback emits (add_listener's `kinds`).
    event_kinds: ClassVar[tuple[str, ...]] = EVENT_KINDS

    __slots__ = ("_alternatives", "_caches", "_on", "_name", "_listeners")

    def __init__(self, *alternatives: Alternative | Callable[..., Any], name: str | None = None,
                 categories: Category | str | Iterable[Category | str] | None = None,
                 on: Category | str | Iterable[Category | str] | None = None) -> None:  # fmt: skip
        if not alternatives:
            raise ValueError("alternatives must hold at least one alternative, got none")
        chain: list[Alternative] = []
        for index, alternative in enumerate(alternatives):
            if isinstance(alternative, Alternative):
                chain.append(alternative)
            elif isinstance(alternative, Fallback):
                # A Fallback is callable (as a decorator), but calling it with
                # the operation's arguments would decorate them.
                raise TypeError(
                    f"alternatives[{index}] is a Fallback; pass its alternatives instead"
                )
            elif callable(alternative):
                chain.append(_Call(alternative, name_of(alternative)))
            else:
                raise TypeError(
                    f"alternatives[{index}] must be a callable or made by Fallback.value, "
                    f"Fallback.cached or Fallback.from_error, got {type(alternative).__name__}: "
                    f"{safe_repr(alternative)}"
                )
        self._alternatives = tuple(chain)
        self._caches = tuple(a for a in chain if isinstance(a, _Cached))
        if on is not None:
            warnings.warn("Fallback(on=) is deprecated: it is categories= now (on= filters exceptions on "
                          "brace.Retry)", DeprecationWarning, stacklevel=2)  # fmt: skip
            if categories is not None:
                raise TypeError("give categories or its deprecated old name on, not both")
            categories, parameter = on, "on"
        else:
            parameter = "categories"
        self._on = None if categories is None else parse_categories(categories, parameter)
        self._name = _checked_name(name)
        self._listeners: Listeners[FallbackEvent] = Listeners(
            f"fallback {self._name!r}" if self._name else "a fallback", EVENT_KINDS
        )

    # -- alternatives -------------------------------------------------------------

    @staticmethod
    def value(value: object, *, name: str | None = None) -> Alternative:
        """An alternative that serves `value` itself.

        Args:
            value: What to serve.
            name: Its name in Degraded.source ("fallback:<name>"); default "value".
        """
        return _Value(value, _checked_name(name) or "value")

    @staticmethod
    def cached(*, max_age: float | timedelta, key: Callable[..., Hashable] | None = None,
               max_entries: int = 1024, name: str | None = None) -> Alternative:  # fmt: skip
        """An alternative that serves the last good result for the same arguments.

        Each success given to `remember` is stored under its key; on a failure
        the entry for the call's key is served (Degraded.source "cache",
        Degraded.age its age) if it is at most `max_age` old by brace's clock.
        An older entry is not served, and is dropped. The least recently used
        entry goes when there are more than `max_entries`. Thread-safe.

        The key is (args, kwargs sorted by name) when they are hashable, else
        `key(*args, **kwargs)` if given, else the repr of the arguments (so
        unhashable arguments with equal reprs share an entry). With `key`
        given it is always used, and must return a hashable value.

        Args:
            max_age: How stale a served result may be: seconds > 0 or a timedelta.
            key: A function of the call's arguments returning the cache key.
            max_entries: Entries kept, >= 1.
            name: Its name in failure lines; default "cache".

        Raises:
            ValueError, TypeError: For arguments outside the ranges above.
        """
        age = _config.positive_duration(max_age, "max_age")
        if key is not None and not callable(key):
            raise TypeError(f"key must be a callable or None, got {type(key).__name__}")
        entries = _config.count(max_entries, "max_entries")
        return _Cached(age, key, entries, _checked_name(name) or "cache")

    @staticmethod
    def from_error(fn: Callable[[BaseException], object], *, name: str | None = None) -> Alternative:
        """An alternative that serves fn(error), error being the failure.

        Args:
            fn: A function of the exception (a coroutine function on the async paths).
            name: Its name in Degraded.source; default fn's __qualname__.

        Raises:
            TypeError: fn is not callable.
        """
        if not callable(fn):
            raise TypeError(f"fn must be callable, got {type(fn).__name__}")
        return _FromError(fn, _checked_name(name) or name_of(fn))

    # -- serving ------------------------------------------------------------------

    @property
    def name(self) -> str | None:
        """The fallback's name, or None."""
        return self._name

    @property
    def alternatives(self) -> tuple[Alternative, ...]:
        """The alternatives, in the order they are tried."""
        return self._alternatives

    @property
    def remembers(self) -> bool:
        """Whether `remember` keeps anything: the chain has a cached alternative."""
        return bool(self._caches)

    def applies(self, classification: Classification | None) -> bool:
        """Whether this fallback serves failures of this classification.

        Always True without `on`; with `on`, True when the classification's
        category is among them (never for None: an unclassified failure).
        """
        if self._on is None:
            return True
        return classification is not None and classification.category in self._on

    def serve(self, args: tuple[Any, ...], kwargs: dict[str, Any], error: BaseException,
              classification: Classification | None, *, operation: str = "") -> Degraded[Any]:  # fmt: skip
        """Serves a value for a failed call from the first alternative that has one.

        The `on` filter is the caller's to check (see `applies`). A
        coroutine function alternative cannot run here: it is recorded as a
        failure (use `serve_async`).

        Args:
            args, kwargs: The failed call's arguments.
            error: Its failure.
            classification: The failure's classification, or None.
            operation: The failed operation's name: a cached result is served
                only for the operation (and arguments) it came from.

        Raises:
            FallbackFailed: Every alternative failed; `error` is the cause.
        """
        return drive(self.serving(args, kwargs, error, classification, operation=operation, is_async=False))

    async def serve_async(self, args: tuple[Any, ...], kwargs: dict[str, Any], error: BaseException,
                          classification: Classification | None, *, operation: str = "") -> Degraded[Any]:  # fmt: skip
        """`serve`, awaiting what alternatives return when it is awaitable.

        Raises:
            FallbackFailed: Every alternative failed; `error` is the cause.
        """
        steps = self.serving(args, kwargs, error, classification, operation=operation, is_async=True)
        return await drive_async(steps)

    def serving(self, args: tuple[Any, ...], kwargs: dict[str, Any], error: BaseException,
                classification: Classification | None, *, operation: str, is_async: bool) -> Steps[Degraded[Any]]:  # fmt: skip
        """`serve` (is_async False) or `serve_async` as steps for brace.recovery's drivers:
        what brace.Recovery runs inside a recovered call."""
        failures: list[str] = []
        for alternative in self._alternatives:
            try:
                value, age = alternative._produce(operation, args, kwargs, error)
                if inspect.isawaitable(value):
                    if not is_async:
                        if isinstance(value, Coroutine):  # a coroutine, or brace's compiled one
                            value.close()  # never awaited: close it without a warning
                        raise TypeError("returned an awaitable; serve it with serve_async")
                    value = yield wait_for(value)
            except _Miss as miss:
                failures.append(f"{alternative.name}: miss ({miss})")
                continue
            except Exception as exc:
                failures.append(f"{alternative.name}: {describe(exc)}")
                continue
            served = Degraded(value, alternative.source, error, classification, age, tuple(failures))
            if self._listeners.wants("served"):
                self._listeners.emit(FallbackEvent("served", self._name, now_ns() / NS_PER_SECOND, operation,
                                                   alternative.source, error, tuple(failures)), "served")  # fmt: skip
            return served
        if self._listeners.wants("failed"):
            self._listeners.emit(FallbackEvent("failed", self._name, now_ns() / NS_PER_SECOND, operation, None, error,
                                               tuple(failures)), "failed")  # fmt: skip
        raise FallbackFailed(name=self._name, failures=tuple(failures)) from error

    def remember(self, args: tuple[Any, ...], kwargs: dict[str, Any], result: object, *,
                 operation: str = "") -> None:  # fmt: skip
        """Feeds a successful call's result to the cached alternatives.

        Costs one attribute check when there are none. A Degraded result is
        not stored: it did not come from the operation. A key function that
        raises is logged to the "brace" logger, never raised.

        Args:
            args, kwargs: The call's arguments.
            result: What it returned.
            operation: The operation's name (see `serve`).
        """
        if not self._caches or isinstance(result, Degraded):
            return
        for cache in self._caches:
            try:
                cache.store(operation, args, kwargs, result)
            except Exception:
                _log.exception("brace: fallback %r could not cache a result (key function failed)", self._name)

    # -- standalone use -----------------------------------------------------------

    @overload
    def call(self, fn: Callable[P, Awaitable[R]], /, *args: P.args,
             **kwargs: P.kwargs) -> _guarding.UseCallAsync: ...  # fmt: skip

    @overload
    def call(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R | Degraded[R]: ...

    def call(self, fn: Callable[P, Any], /, *args: P.args, **kwargs: P.kwargs) -> Any:
        """Calls fn(*args, **kwargs); on an Exception, serves a fallback value.

        Raises:
            FallbackFailed: fn failed and so did every alternative (fn's
                error is the cause).
            TypeError: fn is a coroutine function or returned an awaitable
                (a cache would keep the coroutine, not its value): use
                `await fallback.call_async(fn, ...)`.
        """
        if _guarding.sync_entry(fn, self, "Fallback.call"):
            return _guarding.call_guarded(fn, args, kwargs, "Fallback.call")
        return self._call(name_of(fn), fn, args, kwargs)

    def _call(self, operation: str, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        try:
            result = fn(*args, **kwargs)
            if is_awaitable(result):
                raise _guarding.refuse_awaitable(result, fn, "Fallback.call")
        except Exception as error:
            if isinstance(error, _guarding.AsyncMisuse):
                raise
            classification = self._classified(error)
            if not self.applies(classification):
                raise
            return self.serve(args, kwargs, error, classification, operation=operation)
        self.remember(args, kwargs, result, operation=operation)
        return result

    async def call_async(self, fn: Callable[P, Awaitable[R]], /, *args: P.args,
                         **kwargs: P.kwargs) -> R | Degraded[R]:  # fmt: skip
        """Awaits fn(*args, **kwargs); on an Exception, serves a fallback value.

        Raises:
            FallbackFailed: fn failed and so did every alternative (fn's
                error is the cause).
        """
        if _guarding.kind(fn, self) == CALLABLE_GUARDED:
            return cast("R | Degraded[R]", await _guarding.awaited(fn(*args, **kwargs)))
        return cast("R | Degraded[R]", await self._call_async(name_of(fn), fn, args, kwargs))

    async def _call_async(self, operation: str, fn: Callable[..., Any], args: tuple[Any, ...],
                          kwargs: dict[str, Any]) -> Any:  # fmt: skip
        try:
            result = await _guarding.awaited(fn(*args, **kwargs))
        except Exception as error:
            classification = self._classified(error)
            if not self.applies(classification):
                raise
            return await self.serve_async(args, kwargs, error, classification, operation=operation)
        self.remember(args, kwargs, result, operation=operation)
        return result

    def _classified(self, error: Exception) -> Classification | None:
        """Standalone, an `on` filter needs a classification: the default classifier's."""
        return None if self._on is None else DEFAULT_CLASSIFIER.classify(error)

    # -- the fallback stage of a brace.Policy (brace._stages.FallbackStage) -----------

    def _brace_stage_fall_back(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
                               error: Exception) -> Any:  # fmt: skip
        classification = self._classified(error)
        if not self.applies(classification):
            raise error
        return self.serve(args, kwargs, error, classification, operation=name_of(fn))

    async def _brace_stage_fall_back_async(self, fn: Callable[..., Any], args: tuple[Any, ...],
                                           kwargs: dict[str, Any], error: Exception) -> Any:  # fmt: skip
        classification = self._classified(error)
        if not self.applies(classification):
            raise error
        return await self.serve_async(args, kwargs, error, classification, operation=name_of(fn))

    @overload
    def __call__(
        self, fn: Callable[P, Coroutine[Any, Any, R]]
    ) -> Callable[P, Coroutine[Any, Any, R | Degraded[R]]]: ...

    @overload
    def __call__(self, fn: Callable[P, R]) -> Callable[P, R | Degraded[R]]: ...

    def __call__(self, fn: Callable[P, Any]) -> Callable[P, Any]:
        """Decorates fn (sync or coroutine function) to serve a fallback value when it fails.

        A plain function that returns an awaitable gets its awaited outcome
        handled, as a coroutine function would. A function this fallback
        already decorates is returned as it is.
        """
        if not callable(fn):
            raise TypeError(
                f"a Fallback decorates callables, got {type(fn).__name__} (to decorate, write "
                f"@brace.Fallback(alternative, ...): a bare @brace.Fallback makes the function an alternative)"
            )
        return _guarding.guard_function(self, fn, self._guard_sync, self._guard_async)

    def _guard_async(self, fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        operation = name_of(fn)

        async def with_fallback_async(*args: Any, **kwargs: Any) -> Any:
            return await self._call_async(operation, fn, args, kwargs)

        return with_fallback_async

    def _guard_sync(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        operation = name_of(fn)

        def with_fallback(*args: Any, **kwargs: Any) -> Any:
            try:
                result = fn(*args, **kwargs)
            except Exception as error:
                classification = self._classified(error)
                if not self.applies(classification):
                    raise
                return self.serve(args, kwargs, error, classification, operation=operation)
            if is_awaitable(result):  # a plain def returning a coroutine: handle what it awaits to
                return self._call_async(operation, lambda *_args, **_kwargs: result, args, kwargs)
            self.remember(args, kwargs, result, operation=operation)
            return result

        return with_fallback

    def __repr__(self) -> str:
        name = f"name={self._name!r}, " if self._name else ""
        on = "" if self._on is None else f", on={sorted(c.value for c in self._on)}"
        return f"Fallback({name}{', '.join(map(repr, self._alternatives))}{on})"

