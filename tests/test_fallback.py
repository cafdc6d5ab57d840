"""Fallback behaviour: alternatives in order, the stale-if-error cache, the `on` filter, wrappers, bad input."""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import threading
import warnings
from collections import OrderedDict
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import brace
from brace.classify import DEFAULT_CLASSIFIER, Category
from brace.errors import FallbackFailed
from brace.fallback import Degraded, Fallback
from brace.testing import FakeClock

WAYS = ["call", "decorator", "call_async", "async decorator"]
ASYNC_WAYS = ["call_async", "async decorator"]


def run(fb: Fallback, way: str, body: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Runs body(*args, **kwargs) guarded by fb, the given way."""
    if way == "call":
        return fb.call(body, *args, **kwargs)
    if way == "decorator":
        return fb(body)(*args, **kwargs)

    async def body_async(*a: Any, **kw: Any) -> Any:
        await asyncio.sleep(0)
        return body(*a, **kw)

    if way == "call_async":
        return asyncio.run(fb.call_async(body_async, *args, **kwargs))
    return asyncio.run(fb(body_async)(*args, **kwargs))


def ok(*args: Any, **kwargs: Any) -> tuple[Any, ...]:
    return ("ok", args, kwargs)


def down(*args: Any, **kwargs: Any) -> Any:
    raise ConnectionError("primary down")


def replica(*args: Any, **kwargs: Any) -> tuple[Any, ...]:
    return ("replica", args, kwargs)


def broken_replica(*args: Any, **kwargs: Any) -> Any:
    raise TimeoutError("replica slow")


class Echo(tuple):  # type: ignore[type-arg]
    """A class as an alternative: constructed with the call's arguments."""

    def __new__(cls, *args: Any, **kwargs: Any) -> Echo:
        return super().__new__(cls, (args, kwargs))


class ProxyAuthRequired(Exception):
    status_code = 407


# Real classifications, as brace.Recovery passes them.
SERVICE_DOWN = DEFAULT_CLASSIFIER.classify(brace.CircuitOpen(name="x", retry_after=1.0))
AUTH_INVALID = DEFAULT_CLASSIFIER.classify(ProxyAuthRequired())
TIMEOUT = DEFAULT_CLASSIFIER.classify(TimeoutError())


# ---- passing through and serving -----------------------------------------------------


@pytest.mark.parametrize("way", WAYS)
def test_a_success_is_returned_as_it_is(way: str) -> None:
    fb = Fallback(Fallback.value("spare"))
    assert run(fb, way, ok, 1, b=2) == ("ok", (1,), {"b": 2})


async def _replica_async(*args: Any, **kwargs: Any) -> tuple[Any, ...]:
    await asyncio.sleep(0)
    return ("async replica", args, kwargs)


async def _from_error_async(error: BaseException) -> str:
    await asyncio.sleep(0)
    return f"async {error}"


# (alternative, expected value from down(1, b=2), expected source, async only)
KINDS = {
    "callable": (replica, ("replica", (1,), {"b": 2}), "fallback:replica", False),
    "lambda": (lambda *a, **kw: len(a) + len(kw), 2, "fallback:<lambda>", False),
    "class": (Echo, ((1,), {"b": 2}), "fallback:Echo", False),
    "partial": (functools.partial(replica, 0), ("replica", (0, 1), {"b": 2}), "fallback:partial", False),
    "value": (Fallback.value("spare"), "spare", "fallback:value", False),
    "named value": (Fallback.value(None, name="empty"), None, "fallback:empty", False),
    "from_error": (Fallback.from_error(str), "primary down", "fallback:str", False),
    "named from_error": (Fallback.from_error(repr, name="why"), "ConnectionError('primary down')", "fallback:why",
                         False),  # fmt: skip
    "coroutine function": (_replica_async, ("async replica", (1,), {"b": 2}), "fallback:_replica_async", True),
    "async from_error": (Fallback.from_error(_from_error_async), "async primary down",
                         "fallback:_from_error_async", True),  # fmt: skip
}


@pytest.mark.parametrize(
    ("kind", "way"), [(kind, way) for kind in KINDS for way in WAYS if way in ASYNC_WAYS or not KINDS[kind][3]]
)
def test_each_kind_of_alternative_serves_a_degraded_value(kind: str, way: str) -> None:
    alternative, value, source, _ = KINDS[kind]
    fb = Fallback(alternative)
    served = run(fb, way, down, 1, b=2)
    assert isinstance(served, Degraded)
    assert (served.value, served.source, served.age, served.classification, served.failures) == (
        value, source, None, None, ()
    )  # fmt: skip
    assert isinstance(served.error, ConnectionError) and str(served.error) == "primary down"


@pytest.mark.parametrize("way", WAYS)
def test_alternatives_are_tried_in_order_and_failures_recorded(way: str) -> None:
    cache = Fallback.cached(max_age=60)
    fb = Fallback(broken_replica, cache, Fallback.from_error(lambda e: 1 / 0, name="zero"), replica,
                  Fallback.value("never reached"))  # fmt: skip
    served = run(fb, way, down, 7)
    assert served.value == ("replica", (7,), {})
    assert served.source == "fallback:replica"
    assert served.failures == (
        "broken_replica: TimeoutError: replica slow",
        "cache: miss (no entry for these arguments)",
        "zero: ZeroDivisionError: division by zero",
    )


@pytest.mark.parametrize("way", WAYS)
def test_when_every_alternative_fails_fallback_failed_lists_them(way: str) -> None:
    fb = Fallback(broken_replica, Fallback.cached(max_age=1, name="recent"), name="profile")
    with pytest.raises(FallbackFailed) as caught:
        run(fb, way, down)
    error = caught.value
    assert error.name == "profile"
    assert error.failures == (
        "broken_replica: TimeoutError: replica slow",
        "recent: miss (no entry for these arguments)",
    )
    assert isinstance(error.__cause__, ConnectionError)
    assert str(error) == (
        "fallback 'profile' could not serve a value: broken_replica: TimeoutError: replica slow; "
        "recent: miss (no entry for these arguments)"
    )
    assert isinstance(error, brace.BraceError)


@pytest.mark.parametrize("way", WAYS)
def test_base_exceptions_are_not_served(way: str) -> None:
    def interrupted() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(Fallback(Fallback.value(1)), way, interrupted)


def test_a_cancelled_task_is_not_served() -> None:
    fb = Fallback(Fallback.value(1))

    async def hang() -> None:
        await asyncio.sleep(3600)

    async def scenario() -> None:
        task = asyncio.ensure_future(fb.call_async(hang))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())


def test_a_base_exception_in_an_alternative_propagates() -> None:
    def interrupted(*args: Any) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        Fallback(interrupted, Fallback.value(1)).serve((), {}, ValueError(), None)


def test_sync_serve_records_a_coroutine_alternative_without_leaking_it() -> None:
    fb = Fallback(_replica_async, Fallback.value("sync spare"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a coroutine never awaited would warn
        served = fb.serve((1,), {}, ConnectionError("x"), None)
    assert served.value == "sync spare"
    assert served.failures == ("_replica_async: TypeError: returned an awaitable; serve it with serve_async",)


def test_serve_passes_the_classification_through_and_chains_the_error() -> None:
    classification = TIMEOUT
    error = ConnectionError("x")
    served = Fallback(Fallback.value(1)).serve((), {}, error, classification)
    assert served.classification is classification and served.error is error
    with pytest.raises(FallbackFailed) as caught:
        asyncio.run(Fallback(broken_replica).serve_async((), {}, error, classification))
    assert caught.value.__cause__ is error


def test_the_decorator_keeps_the_function_and_works_on_methods() -> None:
    fb = Fallback(Fallback.cached(max_age=10))

    class Service:
        def __init__(self) -> None:
            self.up = True

        @fb
        def fetch(self, item: str) -> str:
            """Fetches."""
            if not self.up:
                raise ConnectionError("down")
            return item.upper()

        @fb
        async def fetch_async(self, item: str) -> str:
            return item

    service = Service()
    assert Service.fetch.__name__ == "fetch" and Service.fetch.__doc__ == "Fetches."
    assert asyncio.iscoroutinefunction(Service.fetch_async)
    assert service.fetch("a") == "A"
    service.up = False
    served = service.fetch("a")
    assert (served.value, served.source) == ("A", "cache")


# ---- the stale-if-error cache --------------------------------------------------------


def cache_chain(**config: Any) -> Fallback:
    return Fallback(Fallback.cached(**{"max_age": 30, **config}))


class Profiles:
    """One operation that answers until it is taken down."""

    def __init__(self) -> None:
        self.down = False

    def __call__(self, user: str) -> str:
        if self.down:
            raise ConnectionError("primary down")
        return f"profile of {user}"


@pytest.mark.parametrize("way", WAYS)
def test_a_fresh_cached_result_is_served_with_its_age(way: str, clock: FakeClock) -> None:
    fb = cache_chain(max_age=timedelta(seconds=30))
    profiles = Profiles()
    assert run(fb, way, profiles, "ada") == "profile of ada"
    clock.advance(12.5)
    profiles.down = True
    served = run(fb, way, profiles, "ada")
    assert (served.value, served.source, served.age) == ("profile of ada", "cache", 12.5)
    assert isinstance(served.error, ConnectionError)


@pytest.mark.parametrize("way", ["call", "decorator"])
def test_one_operations_cached_result_is_never_served_for_another(way: str, clock: FakeClock) -> None:
    fb = cache_chain()

    def price(item: int) -> str:
        return f"price of {item}"

    def stock(item: int) -> str:
        raise ConnectionError("stock service down")

    assert run(fb, way, price, 7) == "price of 7"
    with pytest.raises(FallbackFailed, match="no entry for these arguments"):
        run(fb, way, stock, 7)  # same arguments, another operation: nothing to serve


def test_an_entry_exactly_max_age_old_is_served_and_an_older_one_is_not(clock: FakeClock) -> None:
    fb = cache_chain(max_age=30)
    fb.remember(("k",), {}, "v")
    clock.advance(30)
    assert fb.serve(("k",), {}, ValueError(), None).age == 30.0
    clock.advance(0.001)
    with pytest.raises(FallbackFailed) as caught:
        fb.serve(("k",), {}, ValueError(), None)
    assert caught.value.failures == ("cache: miss (entry 30.001 s old, max_age 30 s)",)
    # The stale entry was dropped, not kept: the next miss finds nothing at all.
    with pytest.raises(FallbackFailed, match="no entry for these arguments"):
        fb.serve(("k",), {}, ValueError(), None)


def test_a_fresher_success_replaces_a_stale_entry(clock: FakeClock) -> None:
    fb = cache_chain(max_age=10)
    fb.remember(("k",), {}, "old")
    clock.advance(60)
    fb.remember(("k",), {}, "new")
    clock.advance(4)
    served = fb.serve(("k",), {}, ValueError(), None)
    assert (served.value, served.age) == ("new", 4.0)


def test_entries_are_per_arguments_and_kwargs_order_does_not_matter(clock: FakeClock) -> None:
    fb = cache_chain()
    fb.remember((1,), {"a": 1, "b": 2}, "one")
    fb.remember((2,), {"a": 1, "b": 2}, "two")
    assert fb.serve((1,), {"b": 2, "a": 1}, ValueError(), None).value == "one"
    assert fb.serve((2,), {"b": 2, "a": 1}, ValueError(), None).value == "two"
    with pytest.raises(FallbackFailed):
        fb.serve((1,), {"a": 1}, ValueError(), None)


def test_the_least_recently_used_entry_is_evicted(clock: FakeClock) -> None:
    fb = cache_chain(max_entries=2)
    fb.remember(("a",), {}, "A")
    fb.remember(("b",), {}, "B")
    assert fb.serve(("a",), {}, ValueError(), None).value == "A"  # a hit is a use: b is now oldest
    fb.remember(("c",), {}, "C")
    assert fb.serve(("a",), {}, ValueError(), None).value == "A"
    assert fb.serve(("c",), {}, ValueError(), None).value == "C"
    with pytest.raises(FallbackFailed, match="no entry"):
        fb.serve(("b",), {}, ValueError(), None)


def test_a_key_function_picks_the_entry(clock: FakeClock) -> None:
    fb = cache_chain(key=lambda user, **options: user["id"])
    fb.remember(({"id": 7, "name": "ada"},), {"verbose": True}, "seven")
    served = fb.serve(({"id": 7, "name": "renamed"},), {}, ValueError(), None)
    assert served.value == "seven"


def test_unhashable_arguments_without_a_key_function_are_keyed_by_repr(clock: FakeClock) -> None:
    fb = cache_chain()
    fb.remember(([1, 2],), {"tags": {"x"}}, "list")
    assert fb.serve(([1, 2],), {"tags": {"x"}}, ValueError(), None).value == "list"
    with pytest.raises(FallbackFailed):
        fb.serve(([1, 3],), {"tags": {"x"}}, ValueError(), None)
    # The repr key (a str) never collides with a hashable call's key.
    fb.remember(("([1, 2], (('tags', {'x'}),))",), {}, "str")
    assert fb.serve(([1, 2],), {"tags": {"x"}}, ValueError(), None).value == "list"


def test_a_failing_key_function_is_logged_on_remember_and_recorded_on_serve(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    fb = Fallback(Fallback.cached(max_age=5, key=lambda item: item["id"]), Fallback.value("spare"),
                  name="items")  # fmt: skip
    with caplog.at_level(logging.ERROR, logger="brace"):
        assert fb.call(lambda item: "fine", {}) == "fine"
    assert "fallback 'items' could not cache a result" in caplog.text
    served = fb.serve(({},), {}, ValueError(), None)
    assert served.value == "spare"
    assert served.failures == ("cache: KeyError: 'id'",)


def test_an_unhashable_key_from_the_key_function_is_recorded(clock: FakeClock) -> None:
    fb = Fallback(Fallback.cached(max_age=5, key=lambda item: [item]), Fallback.value("spare"))
    served = fb.serve((1,), {}, ValueError(), None)
    assert served.failures == ("cache: TypeError: unhashable type: 'list'",)


def test_degraded_results_are_not_remembered(clock: FakeClock) -> None:
    fb = cache_chain()
    fb.remember((), {}, Degraded("stale", "fallback:x"))
    with pytest.raises(FallbackFailed, match="no entry"):
        fb.serve((), {}, ValueError(), None)


def test_every_cached_alternative_is_fed(clock: FakeClock) -> None:
    short, long = Fallback.cached(max_age=1, name="short"), Fallback.cached(max_age=100, name="long")
    fb = Fallback(short, long)
    fb.remember(("k",), {}, "v")
    clock.advance(50)
    served = fb.serve(("k",), {}, ValueError(), None)
    assert (served.value, served.age) == ("v", 50.0)
    assert served.failures == ("short: miss (entry 50 s old, max_age 1 s)",)


def test_the_cache_stays_bounded_and_consistent_under_threads(clock: FakeClock) -> None:
    fb = cache_chain(max_entries=8)
    barrier = threading.Barrier(8)

    def worker(n: int) -> None:
        barrier.wait()
        for i in range(500):
            fb.remember((n, i % 16), {}, (n, i % 16))
            try:
                served = fb.serve((n, (i * 7) % 16), {}, ValueError(), None)
            except FallbackFailed:
                continue
            assert served.value == (n, (i * 7) % 16)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    (cache,) = fb.alternatives
    assert len(cache._entries) == 8  # type: ignore[attr-defined]


@pytest.mark.slow  # many examples: the README's command runs it, the inner loop does not
@settings(max_examples=200, deadline=None)
@given(
    max_entries=st.integers(1, 4),
    max_age=st.integers(1, 10),
    operations=st.lists(
        st.one_of(
            st.tuples(st.just("advance"), st.integers(0, 6)),
            st.tuples(st.just("remember"), st.integers(0, 5)),
            st.tuples(st.just("serve"), st.integers(0, 5)),
        ),
        max_size=40,
    ),
)
@example(max_entries=1, max_age=3, operations=[("remember", 0), ("advance", 3), ("serve", 0)])  # exactly max_age old
def test_the_cache_matches_a_model(max_entries: int, max_age: int, operations: list[tuple[str, int]]) -> None:
    # The model: key -> (value, stored at), least recently used first; times in whole
    # seconds since the start, counted here, not read back as float seconds since boot.
    model: OrderedDict[int, tuple[int, int]] = OrderedDict()
    fb = cache_chain(max_age=max_age, max_entries=max_entries)
    now = 0
    with brace.testing.fake_clock() as clock:
        for step, (op, n) in enumerate(operations):
            if op == "advance":
                clock.advance(n)
                now += n
            elif op == "remember":
                fb.remember((n,), {}, step)
                model[n] = (step, now)
                model.move_to_end(n)
                if len(model) > max_entries:
                    model.popitem(last=False)
            else:
                entry = model.get(n)
                if entry is not None and now - entry[1] <= max_age:
                    model.move_to_end(n)
                    served = fb.serve((n,), {}, ValueError(), None)
                    assert (served.value, served.age) == (entry[0], now - entry[1])
                else:
                    model.pop(n, None)
                    with pytest.raises(FallbackFailed):
                        fb.serve((n,), {}, ValueError(), None)


# ---- the `on` filter -------------------------------------------------------------------


def test_without_on_every_failure_applies() -> None:
    fb = Fallback(Fallback.value(1))
    assert fb.applies(None)
    assert fb.applies(AUTH_INVALID)


@pytest.mark.parametrize(
    "on",
    ["service_down", "SERVICE_DOWN", ["timeout", "service_down"], ("TIMEOUT", "service_down")],
    ids=["value", "member", "values", "mixed"],
)
def test_on_applies_to_its_categories_only(on: Any) -> None:
    def as_categories(item: Any) -> Any:
        return Category[item] if item.isupper() else item

    given = as_categories(on) if isinstance(on, str) else [as_categories(item) for item in on]
    fb = Fallback(Fallback.value(1), categories=given)
    assert fb.applies(SERVICE_DOWN)
    assert not fb.applies(AUTH_INVALID)
    assert not fb.applies(None)  # unclassified failures never match a filter


@pytest.mark.parametrize("way", WAYS)
def test_used_on_its_own_a_filtered_fallback_classifies_with_the_default_classifier(way: str) -> None:
    fb = Fallback(Fallback.value(1), categories="network_error")

    def unavailable() -> None:
        raise brace.CircuitOpen(name="db", retry_after=3.0)  # SERVICE_DOWN

    served = run(fb, way, down)  # ConnectionError: NETWORK_ERROR
    assert isinstance(served, Degraded) and served.value == 1
    assert served.classification is not None and served.classification.category is Category.NETWORK_ERROR
    with pytest.raises(brace.CircuitOpen):
        run(fb, way, unavailable)


# ---- Degraded --------------------------------------------------------------------------


def test_degraded_is_frozen_slotted_and_readable() -> None:
    degraded = Degraded(3, "cache", ConnectionError("x"), None, 1.5, ("a: miss (no entry)",))
    with pytest.raises(AttributeError):
        degraded.value = 4  # type: ignore[misc]
    assert not hasattr(degraded, "__dict__")
    assert repr(degraded) == (
        "Degraded(3, source='cache', age=1.5, error=ConnectionError('x'), failures=('a: miss (no entry)',))"
    )
    assert repr(Degraded(None, "decision:skip")) == "Degraded(None, source='decision:skip')"
    assert Degraded(1, "x") == Degraded(1, "x")


def test_degraded_repr_shows_the_category() -> None:
    degraded = Degraded(1, "fallback:x", classification=TIMEOUT)
    assert repr(degraded) == "Degraded(1, source='fallback:x', category='timeout')"


def test_fallback_repr_names_its_alternatives() -> None:
    fb = Fallback(replica, Fallback.value(0), Fallback.cached(max_age=1), name="p")
    assert repr(fb) == "Fallback(name='p', <Call 'replica'>, <Value 'value'>, <Cached 'cache'>)"
    assert [a.name for a in fb.alternatives] == ["replica", "value", "cache"]


# ---- bad input ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (lambda: Fallback(), ValueError, "alternatives must hold at least one"),
        (lambda: Fallback(42), TypeError, "alternatives[0] must be a callable or made by Fallback.value"),
        (lambda: Fallback(replica, "x"), TypeError, "alternatives[1] must be a callable"),
        (lambda: Fallback(Fallback(replica)), TypeError, "alternatives[0] is a Fallback"),
        (lambda: Fallback(replica, name=3), TypeError, "name must be a str or None"),
        (lambda: Fallback.value(1, name=b"x"), TypeError, "name must be a str or None"),
        (lambda: Fallback.cached(max_age=0), ValueError, "max_age must be a finite number of seconds from 1e-09 to 4.61169e+09"),
        (lambda: Fallback.cached(max_age=-1), ValueError, "max_age must be a finite number of seconds from 1e-09 to 4.61169e+09"),
        (lambda: Fallback.cached(max_age=float("inf")), ValueError, "max_age must be a finite"),
        (lambda: Fallback.cached(max_age="1m"), TypeError, "max_age must be seconds (float), a timedelta"),
        (lambda: Fallback.cached(max_age=timedelta(0)), ValueError, "max_age must be"),
        (lambda: Fallback.cached(max_age=1, max_entries=0), ValueError, "max_entries must be an int from 1 to 2**63 - 1"),
        (lambda: Fallback.cached(max_age=1, max_entries=1.5), TypeError, "max_entries must be an int from 1 to 2**63 - 1"),
        (lambda: Fallback.cached(max_age=1, max_entries=True), TypeError, "max_entries must be an int"),
        (lambda: Fallback.cached(max_age=1, key="id"), TypeError, "key must be a callable or None"),
        (lambda: Fallback.cached(max_age=1, name=1), TypeError, "name must be a str or None"),
        (lambda: Fallback.from_error("x"), TypeError, "fn must be callable"),
        (lambda: Fallback(replica)(3), TypeError, "a Fallback decorates callables"),
    ],
)
def test_bad_input_is_refused_naming_the_parameter(make: Callable[[], object], error: type[Exception],
                                                   message: str) -> None:  # fmt: skip
    with pytest.raises(error, match=re.escape(message)):
        make()


@pytest.mark.parametrize(
    ("on", "error", "message"),
    [("nope", ValueError, "categories must be a brace.Category or one of 'timeout', "),
     (["timeout", 5], TypeError, "got int"),
     ([], ValueError, "categories must name at least one category"),
     (3, TypeError, "categories must be a Category, its value, or an iterable")],
)  # fmt: skip
def test_bad_categories_are_refused_naming_categories(on: Any, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=re.escape(message)):
        Fallback(replica, categories=on)


def test_on_is_the_deprecated_name_of_categories() -> None:
    with pytest.warns(DeprecationWarning, match=r"Fallback\(on=\) is deprecated: it is categories= now"):
        fb = Fallback(replica, on="service_down")
    assert fb.applies(SERVICE_DOWN) and not fb.applies(AUTH_INVALID)
    with pytest.warns(DeprecationWarning), pytest.raises(TypeError, match="not both"):
        Fallback(replica, on="service_down", categories="network_error")


class Opaque(Exception):
    """A library error whose __str__ needs attributes a hand-built instance lacks."""

    def __str__(self) -> str:
        raise AttributeError("response")

    def __repr__(self) -> str:
        raise AttributeError("response")


def opaque_replica(*args: Any) -> Any:
    raise Opaque()


@pytest.mark.parametrize("way", ["serve", "serve_async"])
def test_an_alternative_whose_error_cannot_be_shown_is_recorded_and_the_next_serves(way: str) -> None:
    fb = Fallback(opaque_replica, Fallback.value("stale"))
    error = TimeoutError("slow")
    served = (fb.serve((), {}, error, None) if way == "serve"
              else asyncio.run(fb.serve_async((), {}, error, None)))  # fmt: skip
    assert served.value == "stale"
    assert served.failures == ("opaque_replica: test_fallback.Opaque: <str() raised AttributeError>",)


def test_a_degraded_value_shows_whatever_it_holds() -> None:
    value, error = Opaque(), Opaque()
    shown = repr(Degraded(value, "cache", error=error))
    assert shown == (f"Degraded(<test_fallback.Opaque object at {id(value):#x}; repr() raised AttributeError>, "
                     f"source='cache', error=<test_fallback.Opaque object at {id(error):#x}; "
                     f"repr() raised AttributeError>)")  # fmt: skip
