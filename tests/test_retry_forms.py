"""Every way to run a Retry (and a Policy's retry) runs the same loop: the same
attempts, sleeps, hook events and ending, sync or async, call or block."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from brace import Backoff, Policy, Retry, RetryEvent
from brace.testing import FakeClock

FORMS = ["decorator", "call", "loop", "async decorator", "call_async", "async loop",
         "policy", "policy async"]  # fmt: skip


class Script:
    """Fails with ConnectionError `failures` times, returns "bad" `bad` times, then "ok"."""

    def __init__(self, failures: int, bad: int = 0) -> None:
        self.failures, self.bad, self.calls = failures, bad, 0

    def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise ConnectionError(f"failure {self.calls}")
        return "bad" if self.calls <= self.failures + self.bad else "ok"


def run(form: str, retry: Retry, script: Script) -> object:
    """The script's outcome under `retry`, run in `form`: its result, or what it raised."""

    async def coroutine() -> str:
        await asyncio.sleep(0)
        return script()

    async def scenario() -> object:
        if form == "async decorator":
            return await retry(coroutine)()
        if form == "call_async":
            return await retry.call_async(coroutine)
        if form == "policy async":
            return await Policy(retry=retry)(coroutine)()
        result: object = None
        async for attempt in retry:
            with attempt:
                result = attempt.check(await coroutine())
        return result

    try:
        if form == "decorator":
            return retry(script)()
        if form == "call":
            return retry.call(script)
        if form == "policy":
            return Policy(retry=retry).call(script)
        if form == "loop":
            result: object = None
            for attempt in retry:
                with attempt:
                    result = attempt.check(script())
            return result
        return asyncio.run(scenario())
    except Exception as error:  # the outcome under test
        return error


def recording(events: list[tuple[str, int, float | None, str | None]]) -> dict[str, Callable[[RetryEvent], Any]]:
    def hook(kind: str) -> Callable[[RetryEvent], None]:
        return lambda event: events.append((kind, event.attempt, event.delay, event.reason))

    return {"before_sleep": hook("before_sleep"), "on_retry": hook("on_retry"), "on_giveup": hook("on_giveup")}


@pytest.mark.parametrize("form", FORMS)
def test_every_form_retries_alike_until_success(clock: FakeClock, form: str) -> None:
    events: list[tuple[str, int, float | None, str | None]] = []
    retry = Retry(on=ConnectionError, retry_on_result=lambda result: result == "bad", attempts=4,
                  backoff=Backoff.linear(initial=1.0, increment=1.0, jitter="none"), **recording(events))  # fmt: skip
    script = Script(failures=2, bad=1)
    start = clock.now()
    assert run(form, retry, script) == "ok"
    assert script.calls == 4
    assert clock.now() - start == pytest.approx(1.0 + 2.0 + 3.0)
    assert events == [
        ("before_sleep", 1, 1.0, None), ("on_retry", 1, 1.0, None),
        ("before_sleep", 2, 2.0, None), ("on_retry", 2, 2.0, None),
        ("before_sleep", 3, 3.0, None), ("on_retry", 3, 3.0, None),
    ]  # fmt: skip


@pytest.mark.parametrize("form", FORMS)
def test_every_form_gives_up_alike(clock: FakeClock, form: str) -> None:
    events: list[tuple[str, int, float | None, str | None]] = []
    retry = Retry(on=ConnectionError, attempts=2, backoff=Backoff.constant(delay=1.0, jitter="none"),
                  name="forms", **recording(events))  # fmt: skip
    script = Script(failures=5)
    outcome = run(form, retry, script)
    # The block forms too: the loop re-raises the last failure it swallowed.
    assert isinstance(outcome, ConnectionError) and str(outcome) == "failure 2"
    assert "retry 'forms' gave up after 2 attempt(s) (attempts)" in getattr(outcome, "__notes__", [])
    assert script.calls == 2
    assert events == [("before_sleep", 1, 1.0, None), ("on_retry", 1, 1.0, None), ("on_giveup", 2, None, "attempts")]


def test_an_attempt_tells_how_it_went(clock: FakeClock) -> None:
    seen: list[tuple[int, bool, object]] = []
    script = Script(failures=1, bad=1)
    for attempt in Retry(on=ConnectionError, retry_on_result=lambda result: result == "bad", attempts=3):
        with attempt:
            attempt.check(script())
        seen.append((attempt.number, attempt.failed, attempt.outcome))
    assert [(number, failed) for number, failed, _ in seen] == [(1, True), (2, True), (3, False)]
    assert isinstance(seen[0][2], ConnectionError) and seen[1][2] == "bad" and seen[2][2] is None
