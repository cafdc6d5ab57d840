"""The compiled entry points (pyx/entries.h): `call`, `with` and `async with` of
the breaker, the bulkhead and the limiter, and their rejections, which every
form raises in C with the rejection's facts."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from typing import Any

import pytest

import brace
from brace._guarding import AsyncMisuse
from brace.testing import fake_clock


def target(x: int) -> int:
    return x


def open_breaker() -> brace.CircuitBreaker:
    breaker = brace.CircuitBreaker(name="entries-open")
    breaker.force_open()
    return breaker


def full_bulkhead() -> brace.Bulkhead:
    bulkhead = brace.Bulkhead(max_concurrent=1, name="entries-full")
    assert bulkhead.try_acquire()
    return bulkhead


def empty_limiter() -> brace.RateLimiter:
    limiter = brace.RateLimiter(rate=1, per=10.0, max_wait=0, name="entries-empty")
    assert limiter.try_acquire()
    return limiter


def check_facts(error: BaseException) -> None:
    """Each rejection carries its primitive's facts, and its message says them."""
    if isinstance(error, brace.CircuitOpen):
        assert (error.name, error.retry_after) == ("entries-open", float("inf"))
    elif isinstance(error, brace.BulkheadFull):
        assert (error.name, error.max_concurrent, error.max_wait) == ("entries-full", 1, 0.0)
    else:
        assert isinstance(error, brace.RateLimited)
        assert (error.name, error.requested, error.limit) == ("entries-empty", 1, 1)
        assert 9.0 < error.retry_after <= 10.0
    assert "entries-" in str(error)
    assert isinstance(error, brace.Rejected)


REJECTING = {
    "breaker": (open_breaker, brace.CircuitOpen),
    "bulkhead": (full_bulkhead, brace.BulkheadFull),
    "limiter": (empty_limiter, brace.RateLimited),
}


def call_form(guard: Any) -> object:
    return guard.call(target, 1)


def decorator_form(guard: Any) -> object:
    return guard(target)(1)


def with_form(guard: Any) -> object:
    with guard:
        pytest.fail("a rejected block must not run")
    return None


def async_with_form(guard: Any) -> object:
    async def block() -> None:
        async with guard:
            pytest.fail("a rejected block must not run")

    return asyncio.run(block())


def async_decorator_form(guard: Any) -> object:
    async def async_target(x: int) -> int:
        return x

    return asyncio.run(guard(async_target)(1))


FORMS: dict[str, Callable[[Any], object]] = {
    "call": call_form, "decorator": decorator_form, "with": with_form, "async_with": async_with_form,
    "async_decorator": async_decorator_form,
}  # fmt: skip


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("primitive", REJECTING)
def test_every_form_rejects_with_the_facts(primitive: str, form: str) -> None:
    make, error_type = REJECTING[primitive]
    guard = make()
    with pytest.raises(error_type) as info:
        FORMS[form](guard)
    check_facts(info.value)


@pytest.mark.parametrize("form", ["call", "decorator", "with", "async_with"])
def test_a_rejection_keeps_telling_the_breakers_listeners(form: str) -> None:
    breaker = open_breaker()
    events: list[brace.BreakerEvent] = []
    breaker.add_listener(events.append, kinds=["not_permitted"])
    with pytest.raises(brace.CircuitOpen) as info:
        FORMS[form](breaker)
    assert [(event.kind, event.error) for event in events] == [("not_permitted", info.value)]


ADMITTING: dict[str, Callable[[], Any]] = {
    "breaker": lambda: brace.CircuitBreaker(name="entries-admits"),
    "bulkhead": lambda: brace.Bulkhead(max_concurrent=2),
    "limiter": lambda: brace.RateLimiter(rate=1e9, burst=10**9),
}


def state(guard: Any) -> object:
    """What a call leaves behind: the breaker's calls counted, the slots in use, the tokens left."""
    if isinstance(guard, brace.CircuitBreaker):
        return guard.metrics().calls
    if isinstance(guard, brace.Bulkhead):
        return guard.in_use
    return guard.state().remaining


@pytest.mark.parametrize("primitive", ADMITTING)
def test_call_forwards_arguments_and_errors(primitive: str) -> None:
    guard = ADMITTING[primitive]()

    def both(x: int, *, y: int) -> tuple[int, int]:
        return x, y

    assert guard.call(both, 1, y=2) == (1, 2)
    with pytest.raises(KeyError, match="inside") as info:
        guard.call({}.__getitem__, "inside")
    assert info.value.__context__ is None
    if isinstance(guard, brace.Bulkhead):
        assert guard.in_use == 0


@pytest.mark.parametrize("primitive", ADMITTING)
def test_call_refuses_what_would_run_unguarded_and_gives_back_what_it_took(primitive: str) -> None:
    guard = ADMITTING[primitive]()

    async def coroutine_function() -> None:
        pass  # pragma: no cover - refused before it runs

    def returns_a_coroutine() -> object:
        return coroutine_function()

    with pytest.raises(AsyncMisuse, match="coroutine function"):
        guard.call(coroutine_function)
    before = state(guard)
    with pytest.raises(AsyncMisuse, match="an awaitable"):
        guard.call(returns_a_coroutine)
    if isinstance(guard, brace.RateLimiter):
        assert guard.state().remaining >= before  # type: ignore[operator]  # the token came back
    elif isinstance(guard, brace.Bulkhead):
        assert guard.in_use == 0
    else:
        assert state(guard) == before  # nothing recorded: the permission was given back


@pytest.mark.parametrize("primitive", ADMITTING)
def test_call_of_a_callable_python_must_look_at(primitive: str) -> None:
    guard = ADMITTING[primitive]()

    def marked(x: int) -> int:
        return x

    marked.note = "attributes send the callable to Python's check"  # type: ignore[attr-defined]
    assert guard.call(marked, 3) == 3
    assert guard.call(guard(target), 4) == 4  # guarded by it already: called as it is


@pytest.mark.parametrize("primitive", ADMITTING)
def test_the_entries_are_methods(primitive: str) -> None:
    guard = ADMITTING[primitive]()
    cls = type(guard)
    assert cls.call(guard, target, 5) == 5
    assert guard.call.__self__ is guard
    assert list(inspect.signature(cls.call).parameters) == ["self", "fn", "args", "kwargs"]
    assert "call" in repr(guard.call) and guard.call.__name__ == "call"
    with pytest.raises(TypeError, match="first argument"):
        cls.call(object(), target, 1)
    with pytest.raises(TypeError, match="missing its function"):
        guard.call()
    with pytest.raises(TypeError, match="positional argument"):
        guard.__exit__(None)
    with pytest.raises(TypeError, match="positional argument"):
        guard.__enter__(1)


@pytest.mark.parametrize("primitive", ADMITTING)
def test_async_with_admits_and_gives_back(primitive: str) -> None:
    guard = ADMITTING[primitive]()
    before = state(guard)

    async def block() -> object:
        async with guard as entered:
            assert entered is guard
            return state(guard)

    inside = asyncio.run(block())
    if isinstance(guard, brace.Bulkhead):
        assert (inside, state(guard)) == (1, 0)
    elif isinstance(guard, brace.CircuitBreaker):
        assert (inside, state(guard)) == (before, 1)


def test_an_async_with_block_that_raises_books_a_failure() -> None:
    breaker = brace.CircuitBreaker(name="entries-async-failure")

    async def block() -> None:
        async with breaker:
            raise KeyError("x")

    with pytest.raises(KeyError):
        asyncio.run(block())
    assert (breaker.metrics().calls, breaker.metrics().failures) == (1, 1)


def test_the_awaitable_of_async_with_is_already_done() -> None:
    bulkhead = brace.Bulkhead(max_concurrent=1)
    awaitable = bulkhead.__aenter__()
    iterator = awaitable.__await__()
    with pytest.raises(StopIteration) as info:
        iterator.send(None)
    assert info.value.value is bulkhead
    with pytest.raises(KeyError):
        iterator.throw(KeyError("thrown"))
    iterator.close()
    done = bulkhead.__aexit__(None, None, None)
    with pytest.raises(StopIteration) as stop:
        next(iter(done.__await__()))
    assert stop.value.value is None
    assert bulkhead.in_use == 0


@pytest.mark.parametrize("form", ["call", "decorator", "with", "async_with"])
def test_a_limiter_waits_for_a_token_that_comes_within_max_wait(form: str) -> None:
    with fake_clock(autojump=None):
        limiter = brace.RateLimiter(rate=1, per=1.0, max_wait=2.0)
        assert limiter.try_acquire()
        ran: list[bool] = []

        def work(x: int) -> int:
            ran.append(True)
            return x

        if form == "call":
            assert limiter.call(work, 1) == 1
        elif form == "decorator":
            assert limiter(work)(1) == 1
        elif form == "with":
            with limiter:
                work(1)
        else:

            async def block() -> None:
                async with limiter:
                    work(1)

            asyncio.run(block())
        assert ran == [True]
        assert limiter.state().remaining == 0


def test_a_limiter_refuses_at_once_a_token_beyond_max_wait() -> None:
    with fake_clock(autojump=None):
        limiter = brace.RateLimiter(rate=1, per=5.0, max_wait=2.0)
        assert limiter.try_acquire()
        with pytest.raises(brace.RateLimited) as info:
            limiter.call(target, 1)
        assert 2.0 < info.value.retry_after <= 5.0


LISTENED = {"bulkhead": (full_bulkhead, brace.BulkheadFull), "limiter": (empty_limiter, brace.RateLimited)}


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("primitive", LISTENED)
def test_rejections_reach_the_listeners_only_while_someone_listens(
    primitive: str, form: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    make, error_type = LISTENED[primitive]
    guard = make()
    events: list[Any] = []
    guard.add_listener(events.append, kinds=("rejected",))
    with pytest.raises(error_type) as info:
        FORMS[form](guard)
    check_facts(info.value)
    assert [event.kind for event in events] == ["rejected"]
    guard.remove_listener(events.append)
    # Nobody listens: the compiled path refuses, and the Python one (which builds
    # events) is not reached.
    slow = "_full" if primitive == "bulkhead" else "_book"
    monkeypatch.setattr(type(guard), slow, lambda *args: pytest.fail("the Python rejection path ran"))
    with pytest.raises(error_type) as info:
        FORMS[form](guard)
    check_facts(info.value)
    assert len(events) == 1
