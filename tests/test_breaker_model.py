"""Property tests: the compiled circuit breaker against a small reference model.

The model is written from the specification (resilience4j's semantics, as
csrc/brace.h states them), not from csrc/breaker.c: the window is a plain list of outcomes
(the last N for a count window; those of the last N buckets for a time window),
a half-open probe is a call tagged with the number of the half-open episode
that admitted it, and times are integer nanoseconds. Agreement on every step is
evidence, not a tautology.

Hypothesis drives one breaker under the fake clock with random operations:
calls that succeed, fail, are slow, raise an ignored or an unrecorded error or
are cancelled; time advances (short, long, and to one step either side of the
end of an OPEN wait or of the half-open deadline); calls left in flight and finished
later in any order; and manual overrides. After every operation the test
compares the decision (permitted or rejected, retry_after), the state, the
window counters, not_permitted, openings, time_until_half_open, and the
state-transition and would-open events.

Every time in these tests (the clock's start, waits, the half-open limit, the
slow-call threshold, call durations, advances) is a multiple of 65536 ns, so the
properties hold whether the core keeps open_until / half_open_since in exact
nanoseconds or in 65.536 us units (rounding the end of a wait up and the start
of a half-open down): on this grid both agree, and the model asserts it stays
on it. Boundaries are probed one grid step either side. Time-window buckets are
whole milliseconds, off the grid.
"""

from __future__ import annotations

import asyncio
import enum
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Union

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import brace
from brace import BreakerEvent, BreakerState, CircuitBreaker
from brace._config import MAX_DEPTH_NS, NS_PER_SECOND
from brace._core import now_ns
from brace.testing import FakeClock

pytestmark = pytest.mark.slow

UNIT_NS = 1 << 16  # the time grid of these tests (the core's former unit for open_until)

CLOSED, OPEN, HALF_OPEN = BreakerState.CLOSED, BreakerState.OPEN, BreakerState.HALF_OPEN
DISABLED, FORCED_OPEN, METRICS_ONLY = BreakerState.DISABLED, BreakerState.FORCED_OPEN, BreakerState.METRICS_ONLY


class Recorded(Exception):
    """Counts as a failure (the breakers below record only this type)."""


class Unrecorded(Exception):
    """Matches neither `record` nor `ignore`: counts as a success."""


class Ignored(Exception):
    """Matches `ignore`: counts as nothing and gives the permission back."""


class Outcome(enum.Enum):
    SUCCESS = "success"
    FAILURE = "failure"
    UNRECORDED = "unrecorded"
    IGNORED = "ignored"
    CANCELLED = "cancelled"  # a BaseException: counts as nothing

    def error(self) -> BaseException | None:
        return {
            Outcome.SUCCESS: None,
            Outcome.FAILURE: Recorded("down"),
            Outcome.UNRECORDED: Unrecorded("not ours"),
            Outcome.IGNORED: Ignored("ignore me"),
            Outcome.CANCELLED: asyncio.CancelledError(),
        }[self]


def ns(seconds: float) -> int:
    """Nanoseconds, rounded as brace rounds a configured duration."""
    return max(1, round(seconds * NS_PER_SECOND))


def seconds(units: int) -> float:
    """`units` grid steps in seconds (converts back to exactly units * UNIT_NS ns)."""
    return units * UNIT_NS / NS_PER_SECOND


# -- configuration ---------------------------------------------------------------


@dataclass(frozen=True)
class Config:
    window: Literal["count", "time"]
    window_size: int
    bucket_ms: int
    minimum_calls: int
    failure_rate: float
    slow_rate: float
    slow_units: int | None  # durations in grid steps of UNIT_NS
    wait_units: int
    multiplier: float
    max_wait_units: int | None
    half_open_calls: int
    max_half_open_units: int | None
    consecutive: int | None

    @property
    def slow_ns(self) -> int | None:
        return None if self.slow_units is None else self.slow_units * UNIT_NS

    @property
    def wait_ns(self) -> int:
        return self.wait_units * UNIT_NS

    @property
    def max_wait_ns(self) -> int | None:
        return None if self.max_wait_units is None else self.max_wait_units * UNIT_NS

    @property
    def max_half_open_ns(self) -> int | None:
        return None if self.max_half_open_units is None else self.max_half_open_units * UNIT_NS

    @property
    def bucket_ns(self) -> int:
        return ns(self.bucket_ms / 1000)

    def breaker(self) -> CircuitBreaker:
        return CircuitBreaker(
            name="model",
            failure_rate_threshold=self.failure_rate,
            slow_call_rate_threshold=self.slow_rate,
            slow_call_duration=None if self.slow_units is None else seconds(self.slow_units),
            window=self.window,
            window_size=self.window_size,
            window_bucket=self.bucket_ms / 1000,
            minimum_calls=self.minimum_calls,
            wait_in_open=seconds(self.wait_units),
            wait_in_open_multiplier=self.multiplier,
            max_wait_in_open=None if self.max_wait_units is None else seconds(self.max_wait_units),
            half_open_calls=self.half_open_calls,
            max_wait_in_half_open=None if self.max_half_open_units is None else seconds(self.max_half_open_units),
            consecutive_failures=self.consecutive,
            record=Recorded,
            ignore=Ignored,
        )


thresholds = st.one_of(st.sampled_from([0.2, 0.25, 0.5, 0.75, 1.0]), st.floats(0.01, 1.0))


@st.composite
def configs(draw: st.DrawFn, *, window: Literal["count", "time"], consecutive: bool) -> Config:
    size = draw(st.integers(1, 10))
    if window == "count":
        minimum = draw(st.integers(1, size))
    else:
        minimum = draw(st.integers(1, 6))
    wait_units = draw(st.integers(1, 50_000))  # up to ~3.3 s
    # Whole multipliers keep every grown wait on the grid.
    multiplier = draw(st.sampled_from([1.0, 1.0, 2.0, 3.0]))
    max_wait_units = draw(st.one_of(st.none(), st.integers(1, 8).map(lambda k: wait_units * k)))
    return Config(
        window=window,
        window_size=size,
        bucket_ms=draw(st.one_of(st.sampled_from([10, 100, 250, 1000]), st.integers(1, 2000))),
        minimum_calls=minimum,
        failure_rate=draw(thresholds),
        slow_rate=draw(thresholds),
        # Consecutive mode does not measure slow calls here: its half-open re-opens on
        # slow successful probes, against the spec (test_breaker_scenarios.py,
        # test_consecutive_mode_slow_successful_probes_close_it), which would mask the rest.
        slow_units=None if consecutive else draw(st.one_of(st.none(), st.integers(1, 8000))),
        wait_units=wait_units,
        multiplier=multiplier,
        max_wait_units=max_wait_units,
        half_open_calls=draw(st.integers(1, 4)),
        max_half_open_units=draw(st.one_of(st.none(), st.integers(1, 50_000))),
        consecutive=draw(st.integers(1, 4)) if consecutive else None,
    )


# -- the reference model -----------------------------------------------------------


@dataclass
class ModelCall:
    """A call the model permitted: when it started and which half-open (if any) it probes."""

    start: int
    probe_of: int | None


@dataclass
class Rejected:
    retry_after: float  # seconds; inf when forced open


@dataclass
class BreakerModel:
    config: Config
    now: int
    state: BreakerState = CLOSED
    outcomes: list[tuple[int, bool, bool]] = field(default_factory=list)  # (bucket, failed, slow)
    openings: int = 0
    not_permitted: int = 0
    open_until: int = 0
    half_open_since: int = 0
    episode: int = 0  # half-opens entered so far: a probe carries the number of its own
    probes_out: int = 0  # probes permitted in this half-open and not given back
    probe_results: list[tuple[bool, bool]] = field(default_factory=list)  # (failed, slow)
    run: int = 0  # failures in a row (consecutive mode)
    transitions: list[tuple[BreakerState, BreakerState]] = field(default_factory=list)
    would_open: int = 0
    notes: set[str] = field(default_factory=set)  # rarer situations reached, for hypothesis.event

    # time

    def advance(self, dt: int) -> None:
        self.now += dt

    def bucket(self) -> int:
        return self.now // self.config.bucket_ns

    def window(self) -> list[tuple[int, bool, bool]]:
        if self.config.window == "count":
            return self.outcomes[-self.config.window_size :]
        current = self.bucket()
        return [o for o in self.outcomes if current - self.config.window_size < o[0] <= current]

    def counts(self) -> tuple[int, int, int, int]:
        window = self.window()
        return (
            len(window),
            sum(failed for _, failed, _ in window),
            sum(slow for _, _, slow in window),
            sum(failed and slow for _, failed, slow in window),
        )

    def open_wait(self) -> int:
        """ns to stay OPEN after the `openings`-th opening (jitter 0), as the core computes it in double."""
        c = self.config
        base = c.wait_ns
        if c.max_wait_ns is not None:
            cap = c.max_wait_ns
        else:
            cap = base if c.multiplier == 1 else MAX_DEPTH_NS
        wait = float(base) * math.pow(c.multiplier, self.openings - 1)
        return max(1, int(min(wait, float(cap))))

    def time_until_half_open(self) -> int:
        return max(0, self.open_until - self.now) if self.state is OPEN else 0

    # transitions

    def move(self, to: BreakerState) -> None:
        self.transitions.append((self.state, to))
        self.state = to
        if to is OPEN:
            self.openings += 1
            if self.openings > 1:
                self.notes.add("consecutive openings")
            self.open_until = self.now + self.open_wait()
            assert self.open_until % UNIT_NS == 0, "the test left the grid"
        elif to is HALF_OPEN:
            self.episode += 1
            self.half_open_since = self.now
            self.probes_out = 0
            self.probe_results = []
        elif to is CLOSED:
            self.outcomes = []
            self.openings = 0
            self.run = 0

    def tripped(self, calls: int, failures: int, slow: int, minimum: int) -> bool:
        c = self.config
        return calls >= minimum and calls > 0 and (failures >= c.failure_rate * calls or slow >= c.slow_rate * calls)

    # calls

    def reject(self, retry_after_ns: float) -> Rejected:
        self.not_permitted += 1
        return Rejected(retry_after_ns / NS_PER_SECOND)

    def acquire(self) -> ModelCall | Rejected:
        c = self.config
        if self.state in (CLOSED, METRICS_ONLY, DISABLED):
            return ModelCall(self.now, None)
        if self.state is FORCED_OPEN:
            return self.reject(math.inf)
        if self.state is OPEN:
            if self.now < self.open_until:
                return self.reject(self.open_until - self.now)
            self.move(HALF_OPEN)
            self.probes_out = 1
            return ModelCall(self.now, self.episode)
        # HALF_OPEN
        if c.max_half_open_ns is not None:
            deadline = self.half_open_since + c.max_half_open_ns
            if self.now >= deadline:
                self.notes.add("half-open deadline re-opens")
                self.move(OPEN)
                return self.reject(self.open_until - self.now)
        if self.probes_out >= c.half_open_calls:
            if c.max_half_open_ns is None:
                return self.reject(0)  # unknown: every probe is out
            return self.reject(self.half_open_since + c.max_half_open_ns - self.now)
        self.probes_out += 1
        return ModelCall(self.now, self.episode)

    def finish(self, call: ModelCall, outcome: Outcome) -> None:
        c = self.config
        if outcome in (Outcome.IGNORED, Outcome.CANCELLED):
            if self.state is HALF_OPEN and call.probe_of == self.episode:
                self.notes.add("probe slot given back")
                self.probes_out -= 1  # the probe slot goes back
            return
        failed = outcome is Outcome.FAILURE
        slow = c.slow_ns is not None and self.now - call.start >= c.slow_ns
        if self.state is HALF_OPEN:
            if call.probe_of != self.episode:
                self.notes.add("late outcome ignored in HALF_OPEN")
                return  # permitted in an earlier state: not a probe of this half-open
            self.probe_results.append((failed, slow))
            if c.consecutive is not None and failed:
                self.move(OPEN)
            elif len(self.probe_results) == c.half_open_calls:
                results = self.probe_results
                if c.consecutive is not None:
                    opened = False  # simple mode: half_open_calls successes close
                else:
                    opened = self.tripped(len(results), sum(f for f, _ in results), sum(s for _, s in results), 1)
                self.move(OPEN if opened else CLOSED)
            return
        if self.state not in (CLOSED, METRICS_ONLY):
            return
        if call.probe_of is not None:
            self.notes.add("a probe's late outcome recorded in the window")
        self.outcomes.append((self.bucket(), failed, slow))
        if c.window == "count":
            del self.outcomes[: -c.window_size]
        if c.consecutive is not None:
            self.run = self.run + 1 if failed else 0
            trip = self.run >= c.consecutive
        else:
            trip = self.tripped(*self.counts()[:3], c.minimum_calls)
        if trip:
            if self.state is METRICS_ONLY:
                self.would_open += 1
            else:
                self.move(OPEN)

    # manual overrides

    def override(self, to: BreakerState, *, reset: bool = False) -> None:
        """A manual transition. Only close()/reset() empty the window (the spec says
        nothing of the others: like the core, the model keeps it)."""
        self.transitions.append((self.state, to))
        self.state = to
        if to is CLOSED:
            self.outcomes = []
            self.openings = 0
            self.run = 0
        if reset:
            self.not_permitted = 0


# -- operations --------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """A call that runs to completion now, taking `units` grid steps of fake time."""

    outcome: Outcome
    units: int
    decorated: bool


@dataclass(frozen=True)
class Start:
    """A call permitted now and left in flight."""


@dataclass(frozen=True)
class Finish:
    """Finishes the in-flight call number `index` (modulo how many there are)."""

    index: int
    outcome: Outcome


@dataclass(frozen=True)
class Advance:
    units: int


@dataclass(frozen=True)
class AdvanceToBoundary:
    """Moves time to `offset` grid steps from the end of the OPEN wait, or from the half-open deadline."""

    offset: int


@dataclass(frozen=True)
class Override:
    method: Literal["force_open", "disable", "metrics_only", "close", "reset"]


Operation = Union[Call, Start, Finish, Advance, AdvanceToBoundary, Override]

OVERRIDES: dict[str, BreakerState] = {
    "force_open": FORCED_OPEN,
    "disable": DISABLED,
    "metrics_only": METRICS_ONLY,
    "close": CLOSED,
    "reset": CLOSED,
}

_S, _F, _U, _I, _C = Outcome.SUCCESS, Outcome.FAILURE, Outcome.UNRECORDED, Outcome.IGNORED, Outcome.CANCELLED
MOODS: dict[str, list[Outcome]] = {  # how often a scenario's calls fail
    "healthy": [_S, _S, _S, _S, _S, _S, _F, _U, _I, _C],
    "flaky": [_S, _S, _F, _F, _U, _I, _C],
    "down": [_F, _F, _F, _F, _F, _S, _U, _I, _C],
}


def operations(
    config: Config, mood: str, *, in_flight: bool, overrides: bool
) -> st.SearchStrategy[Operation]:
    outcomes = st.sampled_from(MOODS[mood])
    slow = config.slow_units or 1000
    durations = st.one_of(st.just(0), st.just(0), st.sampled_from([slow - 1, slow, slow + 1]), st.integers(0, 2 * slow))
    bucket = -(-config.bucket_ns // UNIT_NS)
    long = 10**12 // UNIT_NS  # ~17 minutes
    short = st.one_of(st.integers(0, bucket), st.integers(0, 2 * config.wait_units))
    calls = st.builds(Call, outcomes, durations, st.booleans())
    choices: list[st.SearchStrategy[Operation]] = [
        calls, calls, calls, calls,
        st.builds(Advance, short),
        st.builds(Advance, st.one_of(short, short, short, st.integers(0, long))),
        st.builds(AdvanceToBoundary, st.integers(-1, 1)),
    ]  # fmt: skip
    if in_flight:
        choices += [st.builds(Start), st.builds(Start), st.builds(Finish, st.integers(0, 7), outcomes)]
    if overrides:
        choices.append(st.builds(Override, st.sampled_from(sorted(OVERRIDES))))
    return st.one_of(choices)


@st.composite
def scenarios(
    draw: st.DrawFn, *, window: Literal["count", "time"], consecutive: bool, in_flight: bool, overrides: bool
) -> tuple[Config, list[Operation]]:
    config = draw(configs(window=window, consecutive=consecutive))
    ops: list[Operation] = []
    for mood in draw(st.lists(st.sampled_from(sorted(MOODS)), min_size=1, max_size=3)):  # e.g. down, then healthy
        phase = operations(config, mood, in_flight=in_flight, overrides=overrides)
        ops += draw(st.lists(phase, min_size=5, max_size=30))
    return config, ops


# -- the driver --------------------------------------------------------------------


class Driver:
    """Runs operations on a real breaker and on the model, and compares them."""

    def __init__(self, config: Config, clock: FakeClock) -> None:
        self.config = config
        self.clock = clock
        self.cb = config.breaker()
        self.clock.advance(seconds(1) - now_ns() % UNIT_NS / NS_PER_SECOND)  # onto the grid
        assert now_ns() % UNIT_NS == 0
        self.model = BreakerModel(config, now_ns())
        self.in_flight: list[tuple[tuple[int, int], ModelCall]] = []
        self.events: list[BreakerEvent] = []
        self.cb.add_listener(self.events.append, kinds=["state_transition", "would_open"])

    def advance(self, units: int) -> None:
        self.clock.advance(seconds(units))
        self.model.advance(units * UNIT_NS)

    def run(self, op: Operation) -> None:
        model = self.model
        if isinstance(op, Advance):
            self.advance(op.units)
        elif isinstance(op, AdvanceToBoundary):
            max_half_open = self.config.max_half_open_ns
            if model.state is OPEN:
                target = model.open_until + op.offset * UNIT_NS
            elif model.state is HALF_OPEN and max_half_open is not None:
                target = model.half_open_since + max_half_open + op.offset * UNIT_NS
            else:
                return
            if target > model.now:
                self.advance((target - model.now) // UNIT_NS)
        elif isinstance(op, Override):
            getattr(self.cb, op.method)()
            model.override(OVERRIDES[op.method], reset=op.method == "reset")
        elif isinstance(op, Start):
            expected = model.acquire()
            try:
                permit = self.cb._enter()
            except brace.CircuitOpen as rejected:
                self.check_rejection(expected, rejected)
            else:
                assert isinstance(expected, ModelCall), f"permitted; the model rejects ({expected})"
                self.in_flight.append((permit, expected))
        elif isinstance(op, Finish):
            if not self.in_flight:
                return
            (token, start), call = self.in_flight.pop(op.index % len(self.in_flight))
            raised = op.outcome.error()
            if raised is None:
                self.cb._finish(None, token, start)
            else:
                self.cb._on_error(raised, token, start)
            model.finish(call, op.outcome)
        else:
            self.call(op)

    def call(self, op: Call) -> None:
        def work() -> None:
            self.clock.advance(seconds(op.units))
            error = op.outcome.error()
            if error is not None:
                raise error

        expected = self.model.acquire()
        try:
            if op.decorated:
                self.cb(work)()
            else:
                self.cb.call(work)
        except brace.CircuitOpen as error:
            self.check_rejection(expected, error)
            return
        except (Exception, asyncio.CancelledError) as error:
            assert op.outcome.error().__class__ is type(error), f"the call raised {error!r}"
        assert isinstance(expected, ModelCall), f"permitted; the model rejects ({expected})"
        self.model.advance(op.units * UNIT_NS)
        self.model.finish(expected, op.outcome)

    def check_rejection(self, expected: ModelCall | Rejected, error: brace.CircuitOpen) -> None:
        assert isinstance(expected, Rejected), f"rejected (retry_after={error.retry_after}); the model permits"
        assert error.name == "model"
        if math.isinf(expected.retry_after):
            assert math.isinf(error.retry_after)
        else:
            assert round(error.retry_after * NS_PER_SECOND) == round(expected.retry_after * NS_PER_SECOND)

    def compare(self) -> None:
        model, metrics = self.model, self.cb.metrics()
        assert now_ns() == model.now
        assert metrics.state is model.state
        assert (metrics.calls, metrics.failures, metrics.slow_calls, metrics.slow_failures) == model.counts()
        assert metrics.not_permitted == model.not_permitted
        assert metrics.openings == model.openings
        assert round(metrics.time_until_half_open * NS_PER_SECOND) == model.time_until_half_open()
        transitions = [(e.from_state, e.to_state) for e in self.events if e.kind == "state_transition"]
        assert [t for t in transitions if t[0] is not t[1]] == [t for t in model.transitions if t[0] is not t[1]]
        assert sum(e.kind == "would_open" for e in self.events) == model.would_open


def run_scenario(scenario: tuple[Config, list[Operation]]) -> None:
    config, ops = scenario
    with brace.testing.fake_clock() as clock:
        driver = Driver(config, clock)
        for step, op in enumerate(ops):
            try:
                driver.run(op)
                driver.compare()
            except AssertionError as error:
                raise AssertionError(f"step {step}: {op} -> {error}") from error
        for from_state, to_state in sorted({t for t in driver.model.transitions if t[0] is not t[1]}, key=str):
            event(f"{from_state.name} -> {to_state.name}")
        for note in sorted(driver.model.notes):
            event(note)
        if driver.model.would_open:
            event("would_open")
        if driver.model.not_permitted:
            event("rejections")


# -- the properties ----------------------------------------------------------------

model_settings: Callable[[Any], Any] = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@pytest.mark.parametrize("window", ["count", "time"])
@model_settings
@given(data=st.data())
def test_rate_mode_matches_the_model(window: Literal["count", "time"], data: st.DataObject) -> None:
    """Calls and time only: the CLOSED -> OPEN -> HALF_OPEN -> CLOSED/OPEN cycle of rate mode."""
    run_scenario(data.draw(scenarios(window=window, consecutive=False, in_flight=False, overrides=False)))


@pytest.mark.parametrize("window", ["count", "time"])
@model_settings
@given(data=st.data())
def test_calls_in_flight_across_transitions_match_the_model(
    window: Literal["count", "time"], data: st.DataObject
) -> None:
    """Calls left in flight and finished in any order: late outcomes, probe slots given back."""
    run_scenario(data.draw(scenarios(window=window, consecutive=False, in_flight=True, overrides=False)))


@pytest.mark.parametrize("window", ["count", "time"])
@model_settings
@given(data=st.data())
def test_consecutive_mode_matches_the_model(window: Literal["count", "time"], data: st.DataObject) -> None:
    """consecutive_failures=N, with calls in flight (slow calls are not measured here)."""
    run_scenario(data.draw(scenarios(window=window, consecutive=True, in_flight=True, overrides=False)))


@pytest.mark.parametrize("consecutive", [False, True], ids=["rate", "consecutive"])
@model_settings
@given(data=st.data())
def test_manual_overrides_match_the_model(consecutive: bool, data: st.DataObject) -> None:
    """force_open / disable / metrics_only / close / reset mixed in; METRICS_ONLY reports would_open."""
    window: Literal["count", "time"] = data.draw(st.sampled_from(["count", "time"]))
    run_scenario(data.draw(scenarios(window=window, consecutive=consecutive, in_flight=True, overrides=True)))
