"""brace.recovery's drivers: one algorithm, written as steps, run in a thread or a coroutine."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Generator
from typing import Any

import pytest

import brace
from brace.classify import DEFAULT_CLASSIFIER
from brace.recovery._drivers import Effect, Steps, call, drive, drive_async, wait_for


def run(mode: str, steps: Steps[Any]) -> Any:
    if mode == "sync":
        return drive(steps)
    return asyncio.run(drive_async(steps))


@pytest.fixture(params=["sync", "async"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def doubled(x: int) -> int:
    return 2 * x


async def doubled_async(x: int) -> int:
    return 2 * x


def fails(x: int) -> int:
    raise ValueError(x)


async def fails_async(x: int) -> int:
    raise ValueError(x)


def test_each_driver_runs_its_own_form_of_an_effect_and_sends_the_value_back(mode: str) -> None:
    ran: list[str] = []

    def steps() -> Generator[Effect, Any, int]:
        first = yield Effect(lambda x: ran.append("sync") or doubled(x),
                             lambda x: (ran.append("async"), doubled_async(x))[1], (3,))  # fmt: skip
        second = yield Effect(doubled, doubled_async, (first,))
        return int(second) + 1

    assert run(mode, steps()) == 13
    assert ran == [mode]


def test_an_effects_exception_is_thrown_into_the_steps_which_decide(mode: str) -> None:
    def steps() -> Generator[Effect, Any, str]:
        try:
            yield Effect(fails, fails_async, (7,))
        except ValueError as error:
            return f"recovered from {error.args[0]}"
        return "not reached"

    assert run(mode, steps()) == "recovered from 7"


def test_what_the_steps_do_not_catch_reaches_the_caller_as_it_was(mode: str) -> None:
    def steps() -> Generator[Effect, Any, None]:
        yield Effect(fails, fails_async, (5,))

    with pytest.raises(ValueError) as raised:
        run(mode, steps())
    assert raised.value.args == (5,)


def test_a_call_effect_awaits_an_awaitable_only_on_the_async_path(mode: str) -> None:
    def steps() -> Generator[Effect, Any, Any]:
        return (yield call(doubled_async, 4))

    result = run(mode, steps())
    if mode == "sync":
        assert asyncio.iscoroutine(result)  # handed back as it is: the steps decide what it means
        assert asyncio.run(result) == 8
    else:
        assert result == 8


def test_the_sync_driver_hands_an_await_over_to_a_coroutine_that_runs_the_rest() -> None:
    trail: list[str] = []

    def steps() -> Generator[Effect, Any, int]:
        trail.append("before")
        value = yield wait_for(doubled_async(10))
        trail.append("after")
        return int(value) + (yield call(doubled, 1))

    rest = drive(steps())
    assert trail == ["before"]
    assert asyncio.run(rest) == 22
    assert trail == ["before", "after"]


@pytest.mark.parametrize("via", ["serve", "escalate"])
def test_fallback_and_escalation_write_their_algorithm_once(mode: str, via: str) -> None:
    """serve/serve_async and escalate/escalate_async are the same steps under the two drivers."""
    error = ConnectionError("down")
    if via == "serve":

        async def replica(x: int) -> str:
            return f"replica {x}"

        fallback = brace.Fallback(replica, brace.Fallback.value("stale"))
        if mode == "sync":  # an awaitable cannot be served in a thread: the next alternative serves
            served = fallback.serve((1,), {}, error, None)
            assert (served.value, len(served.failures)) == ("stale", 1)
            assert "returned an awaitable" in served.failures[0]
        else:
            served = asyncio.run(fallback.serve_async((1,), {}, error, None))
            assert (served.value, served.failures) == ("replica 1", ())
        return

    async def handler(escalation: brace.Escalation) -> brace.Decision:
        return brace.Decision(brace.Option.SKIP)

    policy = brace.EscalationPolicy(handlers=[handler])
    escalation = brace.Escalation(operation="op", classification=DEFAULT_CLASSIFIER.classify(error),
                                  error=error, reason="attempts")  # fmt: skip
    if mode == "sync":  # an async handler cannot be awaited in a thread: recorded, and the default decides
        assert policy.escalate(escalation).option is brace.Option.ABORT
        assert escalation.handler_errors == (f"{handler.__qualname__}: async handler in a sync recovery",)
    else:
        assert asyncio.run(policy.escalate_async(escalation)).option is brace.Option.SKIP
        assert escalation.handler_errors == ()


@pytest.mark.filterwarnings("ignore:coroutine .*fetch' was never awaited:RuntimeWarning")
def test_an_adopted_coroutine_dropped_unawaited_leaves_its_outbox_entry_for_recover_interrupted() -> None:
    """A plain function whose call returned a coroutine hands the call to that coroutine; dropped
    unawaited, the call never went out: no dead letter is made for it."""
    store = brace.MemoryDeadLetters()
    recovery = brace.Recovery(dead_letters=store, write_ahead=True, escalation=brace.EscalationPolicy())

    async def fetch() -> int:
        return 1

    @recovery
    def plain() -> Any:
        return fetch()

    rest = plain()
    assert asyncio.iscoroutine(rest)
    rest.close()
    del rest
    gc.collect()
    assert store.all() == []
    assert [call.operation for call in store.in_flight()] == [plain.__qualname__]
