"""brace.Backoff: exact schedules, caps, jitter distributions, custom functions, bad input.

The jitter distributions are checked with a one-sample Kolmogorov-Smirnov test
against the CDF each jitter is meant to have (the statistic and its asymptotic
critical value are computed here: scipy is not a dependency). Draws are seeded,
so each test is deterministic; alpha = 0.001 bounds how unlucky a seed may be.
"""

from __future__ import annotations

import copy
import math
import pickle
import re
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

import pytest

import brace
from brace.backoff import Backoff

N = 20_000
ALPHA = 0.001

Cdf = Callable[[float], float]


# ---- Kolmogorov-Smirnov -------------------------------------------------------


def ks_statistic(samples: Sequence[float], cdf: Cdf, cdf_left: Cdf | None = None) -> float:
    """sup |ECDF - F| over the samples, exact for distributions with atoms too.

    At each distinct value x the empirical CDF jumps from (count < x) / n to
    (count <= x) / n; F jumps from F(x-) (`cdf_left`, default F) to F(x).
    Comparing both ends of every jump gives the supremum.
    """
    xs = sorted(samples)
    n = len(xs)
    left = cdf_left or cdf
    d = 0.0
    i = 0
    while i < n:
        j = i
        while j < n and xs[j] == xs[i]:
            j += 1
        d = max(d, abs(j / n - cdf(xs[i])), abs(i / n - left(xs[i])))
        i = j
    return d


def ks_critical(n: int, alpha: float = ALPHA) -> float:
    """The asymptotic critical value: P(sqrt(n) D > c) ~ 2 exp(-2 c^2) = alpha."""
    return math.sqrt(-math.log(alpha / 2) / 2) / math.sqrt(n)


def uniform(lo: float, hi: float) -> Cdf:
    return lambda x: min(1.0, max(0.0, (x - lo) / (hi - lo)))


def capped(cdf: Cdf, cap: float) -> tuple[Cdf, Cdf]:
    """(F, F-) of min(cap, X): the mass above cap becomes an atom at cap."""
    return (lambda x: 1.0 if x >= cap else cdf(x)), (lambda x: 1.0 if x > cap else cdf(x))


def assert_distributed(samples: Sequence[float], cdf: Cdf, cdf_left: Cdf | None = None) -> None:
    d = ks_statistic(samples, cdf, cdf_left)
    assert d < ks_critical(len(samples)), f"KS D={d:.5f} >= {ks_critical(len(samples)):.5f}"


def draws(backoff: Backoff, attempt: int, previous: float | None = None, n: int = N) -> list[float]:
    brace.testing.seed(20_240_601)
    return [backoff.delay(attempt, previous=previous) for _ in range(n)]


def test_ks_statistic_and_critical_value() -> None:
    # Known values: a midpoint grid has D = 1/(2n); the 0.001 constant is 1.9495.
    assert ks_statistic([(i + 0.5) / 10 for i in range(10)], uniform(0, 1)) == pytest.approx(0.05)
    assert ks_critical(1) == pytest.approx(1.94947, abs=1e-5)
    # An atom: half the samples at the cap match a half-mass atom, so D stays
    # the grid's 1/(2n) instead of jumping to 1/2 at the tie.
    f, f_left = capped(uniform(0, 2), 1.0)
    samples = [(i + 0.5) / 100 for i in range(100)] + [1.0] * 100
    assert ks_statistic(samples, f, f_left) == pytest.approx(1 / 400)
    assert ks_statistic(samples, f) == pytest.approx(0.5)  # without F(x-): wrong


def test_ks_rejects_the_wrong_distribution() -> None:
    # The test has power: near-miss formulas are rejected at these sample sizes.
    full = draws(Backoff.exponential(jitter="full"), 3)  # U(0, 4)
    assert ks_statistic(full, uniform(0, 4.2)) > ks_critical(N)
    decorrelated = draws(Backoff.exponential(jitter="decorrelated"), 1, previous=2.0)
    assert ks_statistic(decorrelated, uniform(0, 6)) > ks_critical(N)  # U(0, 3p): wrong
    proportional = draws(Backoff.exponential(jitter="proportional", factor=0.2), 3)
    assert ks_statistic(proportional, uniform(4 * 0.75, 4 * 1.25)) > ks_critical(N)


# ---- jitter distributions -----------------------------------------------------

EXP = {"initial": 1.0, "multiplier": 2.0, "max": 30.0}


@pytest.mark.parametrize(
    ("backoff", "attempt", "previous", "lo", "hi", "cap"),
    [
        # full: U(0, d)
        (Backoff.exponential(**EXP, jitter="full"), 3, None, 0.0, 4.0, None),
        (Backoff.exponential(**EXP, jitter="full"), 10, None, 0.0, 30.0, None),  # d = max
        (Backoff.linear(initial=1, increment=2, max=30, jitter="full"), 4, None, 0.0, 7.0, None),
        # equal: d/2 + U(0, d/2)
        (Backoff.exponential(**EXP, jitter="equal"), 3, None, 2.0, 4.0, None),
        (Backoff.exponential(**EXP, jitter="equal"), 50, None, 15.0, 30.0, None),
        (Backoff.constant(delay=2, jitter="equal"), 7, None, 1.0, 2.0, None),
        # proportional: d * U(1 - f, 1 + f), capped at max
        (Backoff.exponential(**EXP, jitter="proportional"), 3, None, 3.2, 4.8, None),
        (Backoff.exponential(**EXP, jitter="proportional", factor=0.5), 5, None, 8.0, 24.0, None),
        (Backoff.exponential(**EXP, jitter="proportional", factor=1), 2, None, 0.0, 4.0, None),
        (Backoff.exponential(**EXP, jitter="proportional"), 6, None, 24.0, 36.0, 30.0),
        (Backoff.constant(delay=2, jitter="proportional"), 1, None, 1.6, 2.4, None),
        # decorrelated: U(initial, 3 * previous) capped at max; previous None: initial
        (Backoff.exponential(**EXP, jitter="decorrelated"), 1, None, 1.0, 3.0, None),
        (Backoff.exponential(**EXP, jitter="decorrelated"), 4, 2.5, 1.0, 7.5, None),
        (Backoff.exponential(**EXP, jitter="decorrelated"), 4, 0.2, 1.0, 3.0, None),  # < initial
        (Backoff.exponential(**EXP, jitter="decorrelated"), 2, 20.0, 1.0, 60.0, 30.0),
        (Backoff.linear(initial=0.5, max=9, jitter="decorrelated"), 9, 2.0, 0.5, 6.0, None),
    ],
    ids=lambda value: repr(value) if isinstance(value, Backoff) else None,
)
def test_jitter_distribution(
    backoff: Backoff, attempt: int, previous: float | None, lo: float, hi: float, cap: float | None
) -> None:
    samples = draws(backoff, attempt, previous)
    top = hi if cap is None else cap
    assert all(lo <= x <= top for x in samples)
    if cap is None:
        assert_distributed(samples, uniform(lo, hi))
    else:
        assert_distributed(samples, *capped(uniform(lo, hi), cap))


def test_decorrelated_chain_is_uniform_given_each_previous() -> None:
    # As the retry engine uses it: each delay fed back as `previous`, a fresh
    # chain every 12 retries. Given its previous p, a delay is U(initial, 3p)
    # (max is far away), so (x - initial) / (3p - initial) is U(0, 1) across
    # the whole chain: the probability integral transform.
    backoff = Backoff.exponential(initial=0.01, max=1e6, jitter="decorrelated")
    brace.testing.seed(99)
    transformed: list[float] = []
    previous: float | None = None
    for i in range(N):
        if i % 12 == 0:
            previous = None
        x = backoff.delay(i % 12 + 1, previous=previous)
        hi = 3 * max(previous or 0.01, 0.01)
        transformed.append((x - 0.01) / (hi - 0.01))
        previous = x
    assert_distributed(transformed, uniform(0, 1))


# ---- caps, exact values, saturation ---------------------------------------------

JITTERS = ["full", "equal", "decorrelated", "proportional", "none"]


def every_backoff() -> list[Backoff]:
    backoffs = []
    for jitter in JITTERS:
        backoffs.append(Backoff.exponential(initial=0.001, multiplier=1.7, max=5.0, jitter=jitter, factor=1.0))  # type: ignore[arg-type]  # fmt: skip
        backoffs.append(Backoff.linear(initial=0.001, increment=0.0333, max=5.0, jitter=jitter, factor=1.0))  # type: ignore[arg-type]  # fmt: skip
        if jitter != "decorrelated":
            backoffs.append(Backoff.constant(delay=0.25, jitter=jitter, factor=1.0))  # type: ignore[arg-type]  # fmt: skip
    return backoffs


@pytest.mark.parametrize("backoff", every_backoff(), ids=repr)
def test_no_delay_ever_exceeds_max(backoff: Backoff) -> None:
    brace.testing.seed(5)
    cap = backoff.max
    assert cap is not None
    previous: float | None = None
    for attempt in [*range(1, 10_001), 2**63, 2**64 - 1, 2**64, 2**200]:
        delay = backoff.delay(attempt, previous=previous)
        assert 0 <= delay <= cap
        previous = delay


def test_max_is_the_longest_delay() -> None:
    assert Backoff.exponential(max=12).max == 12.0
    assert Backoff.linear(max=timedelta(minutes=1)).max == 60.0
    assert Backoff.constant(delay=2).max == 2.0
    assert Backoff.constant(delay=2, jitter="full").max == 2.0
    # a proportional spread around a constant delay is not clipped to it
    assert Backoff.constant(delay=2, jitter="proportional", factor=0.25).max == 2.5
    assert Backoff.custom(lambda attempt, outcome: 1.0).max is None


def test_exponential_exact_without_jitter() -> None:
    b = Backoff.exponential(initial=0.5, multiplier=3, max=100, jitter="none")
    for attempt in range(1, 40):
        assert b.delay(attempt) == pytest.approx(min(100, 0.5 * 3 ** (attempt - 1)), abs=1e-9)
    assert [Backoff.exponential(jitter="none").delay(k) for k in range(1, 8)] == [
        1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0,
    ]  # fmt: skip
    flat = Backoff.exponential(initial=0.25, multiplier=1, max=1, jitter="none")
    assert {flat.delay(k) for k in [1, 2, 1000, 2**64 - 1, 2**70]} == {0.25}


def test_linear_and_constant_exact_without_jitter() -> None:
    b = Backoff.linear(initial=0.5, increment=timedelta(milliseconds=250), max=3, jitter="none")
    assert [b.delay(k) for k in range(1, 13)] == [
        0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.25, 2.5, 2.75, 3.0, 3.0,
    ]  # fmt: skip
    assert b.delay(2**64 + 1) == 3.0
    from_zero = Backoff.linear(initial=0, increment=1, max=5, jitter="none")
    assert [from_zero.delay(k) for k in range(1, 8)] == [0, 1, 2, 3, 4, 5, 5]
    assert {Backoff.constant(delay=timedelta(seconds=1.5)).delay(k) for k in range(1, 50)} == {1.5}
    assert Backoff.constant(delay=0, jitter="full").delay(3) == 0.0


@pytest.mark.parametrize("jitter", ["none", "equal"])
def test_delays_never_shrink_without_jitter_below_them(jitter: str) -> None:
    # "none" grows monotonically; "equal" never falls below half the schedule.
    b = Backoff.exponential(initial=0.001, multiplier=1.1, max=3600, jitter=jitter)  # type: ignore[arg-type]  # fmt: skip
    plain = Backoff.exponential(initial=0.001, multiplier=1.1, max=3600, jitter="none")
    last = 0.0
    for attempt in range(1, 500):
        d = plain.delay(attempt)
        assert d >= last
        last = d
        assert d / 2 - 1e-9 <= b.delay(attempt) <= d


# ---- custom ---------------------------------------------------------------------


def test_custom_receives_attempt_and_outcome() -> None:
    calls: list[tuple[int, object]] = []

    def fn(attempt: int, outcome: object) -> float | timedelta:
        calls.append((attempt, outcome))
        return timedelta(milliseconds=100 * attempt) if attempt % 2 else 0.5

    error = ConnectionError("reset")
    b = Backoff.custom(fn)
    assert b.delay(1, outcome=error) == 0.1
    assert b.delay(2, previous=0.1, outcome="a result") == 0.5
    assert b.delay(3) == pytest.approx(0.3)
    assert calls == [(1, error), (2, "a result"), (3, None)]
    assert b.kind == "custom" and b.jitter is None


def test_custom_result_is_not_jittered_or_capped() -> None:
    b = Backoff.custom(lambda attempt, outcome: 3600.0 * attempt)
    assert b.delay(24) == 86400.0


# ---- reproducibility --------------------------------------------------------------


@pytest.mark.parametrize("jitter", JITTERS)
def test_seed_reproduces_the_delays(jitter: str) -> None:
    b = Backoff.exponential(jitter=jitter)  # type: ignore[arg-type]

    def run(seed: int) -> list[float]:
        brace.testing.seed(seed)
        previous = None
        out = []
        for attempt in range(1, 30):
            previous = b.delay(attempt, previous=previous)
            out.append(previous)
        return out

    assert run(11) == run(11)
    if jitter != "none":
        assert run(11) != run(12)


# ---- value semantics ----------------------------------------------------------------


def test_repr_is_the_call_that_builds_it() -> None:
    for b in [
        Backoff.exponential(),
        Backoff.exponential(initial=timedelta(milliseconds=100), multiplier=1.5, max=10, jitter="proportional", factor=0.1),  # fmt: skip
        Backoff.linear(initial=0, increment=0.5, max=4, jitter="equal"),
        Backoff.constant(delay=2),
        Backoff.constant(delay=2, jitter="proportional"),
    ]:
        assert eval(repr(b), {"Backoff": Backoff}) == b
    assert repr(Backoff.exponential()) == (
        "Backoff.exponential(initial=1.0, multiplier=2.0, max=30.0, jitter='full')"
    )
    assert repr(Backoff.constant(jitter="proportional", factor=0.3)) == (
        "Backoff.constant(delay=1.0, jitter='proportional', factor=0.3)"
    )

    def fn(attempt: int, outcome: object) -> float:
        return 1.0

    assert repr(Backoff.custom(fn)) == f"Backoff.custom({fn!r})"


def test_equality_and_hash_follow_the_configuration() -> None:
    a = Backoff.exponential(initial=1, max=timedelta(seconds=30))
    b = Backoff.exponential(initial=timedelta(seconds=1), multiplier=2.0, max=30.0, jitter="full")
    assert a == b and hash(a) == hash(b)
    assert len({a, b, Backoff.exponential(jitter="equal")}) == 2
    assert a != Backoff.exponential(max=31)
    assert a != Backoff.linear(initial=1, increment=1, max=30)
    # factor only shapes "proportional": elsewhere it does not make a difference
    assert Backoff.exponential(factor=0.5) == Backoff.exponential()
    assert Backoff.exponential(jitter="proportional", factor=0.5) != Backoff.exponential(
        jitter="proportional"
    )

    def fn(attempt: int, outcome: object) -> float:
        return 1.0

    assert Backoff.custom(fn) == Backoff.custom(fn)
    assert Backoff.custom(fn) != Backoff.custom(lambda attempt, outcome: 1.0)
    assert a != "Backoff.exponential()"


def test_immutable() -> None:
    b = Backoff.exponential()
    with pytest.raises(AttributeError, match="Backoff is immutable"):
        b._max = 1.0  # type: ignore[misc]
    with pytest.raises(AttributeError, match="Backoff is immutable"):
        b.anything = 1  # type: ignore[attr-defined]
    with pytest.raises(AttributeError, match="Backoff is immutable"):
        del b._kind
    with pytest.raises(AttributeError):
        b.max = 3.0  # type: ignore[misc]
    assert b == Backoff.exponential()


def test_copy_and_pickle() -> None:
    for b in [Backoff.linear(jitter="none"), Backoff.constant(delay=3, jitter="proportional")]:
        for clone in [copy.copy(b), copy.deepcopy(b), pickle.loads(pickle.dumps(b))]:
            assert clone == b
            assert clone.delay(5) == b.delay(5) or b.jitter != "none"
    assert pickle.loads(pickle.dumps(Backoff.custom(max_delay))) == Backoff.custom(max_delay)


def max_delay(attempt: int, outcome: object) -> float:
    return 30.0


def test_not_built_directly() -> None:
    with pytest.raises(TypeError, match=r"^build a Backoff with Backoff.exponential\(\)"):
        Backoff()


def test_exported() -> None:
    import brace.backoff

    assert brace.backoff.__all__ == ["Backoff", "BackoffKind", "DelayFunction", "Jitter"]


# ---- bad input ------------------------------------------------------------------------

_JITTER_LIST = "'full', 'equal', 'decorrelated', 'proportional', 'none'"


@pytest.mark.parametrize(
    ("factory", "kwargs", "error", "message"),
    [
        ("exponential", {"multiplier": 0.5}, ValueError, "multiplier must be a finite number >= 1, got 0.5"),
        ("exponential", {"multiplier": 0}, ValueError, "multiplier must be a finite number >= 1, got 0"),
        ("exponential", {"multiplier": math.nan}, ValueError, "multiplier must be a finite number >= 1, got nan"),
        ("exponential", {"multiplier": math.inf}, ValueError, "multiplier must be a finite number >= 1, got inf"),
        ("exponential", {"multiplier": "2"}, TypeError, "multiplier must be a finite number >= 1, got str"),
        ("exponential", {"multiplier": True}, TypeError, "multiplier must be a finite number >= 1, got bool"),
        ("exponential", {"initial": -1}, ValueError, "initial must be a finite number of seconds from 1e-09 to 4.61169e+09 for exponential backoff, got -1"),
        ("exponential", {"initial": math.nan}, ValueError, "initial must be a finite number of seconds from 1e-09 to 4.61169e+09 for exponential backoff, got nan"),
        ("exponential", {"initial": math.inf}, ValueError, "initial must be a finite number of seconds from 1e-09 to 4.61169e+09 for exponential backoff, got inf"),
        ("exponential", {"initial": timedelta(seconds=-1)}, ValueError, "initial must be a finite number of seconds from 1e-09 to 4.61169e+09 for exponential backoff"),
        ("exponential", {"initial": "1s"}, TypeError, "initial must be seconds (float), a timedelta, got str"),
        ("exponential", {"initial": None}, TypeError, "initial must be seconds (float), a timedelta, got NoneType"),
        ("exponential", {"initial": 0}, ValueError, "initial must be a finite number of seconds from 1e-09 to 4.61169e+09 for exponential backoff, got 0"),
        ("exponential", {"initial": 1e-10}, ValueError, "initial must be a finite number of seconds from 1e-09 to 4.61169e+09 for exponential backoff"),
        ("exponential", {"initial": 2, "max": 1}, ValueError, "max must be >= initial (2.0 seconds), got 1"),
        ("exponential", {"max": -1}, ValueError, "max must be 0 or a finite number of seconds from 1e-09 to 4.61169e+09, got -1"),
        ("exponential", {"max": math.nan}, ValueError, "max must be 0 or a finite number of seconds from 1e-09 to 4.61169e+09, got nan"),
        ("exponential", {"max": math.inf}, ValueError, "max must be 0 or a finite number of seconds from 1e-09 to 4.61169e+09, got inf"),
        ("exponential", {"max": 1e12}, ValueError, "max must be 0 or a finite number of seconds from 1e-09 to 4.61169e+09, got 1000000000000.0"),
        ("exponential", {"jitter": "fulll"}, ValueError, f"jitter must be one of {_JITTER_LIST}, got 'fulll'"),
        ("exponential", {"jitter": "FULL"}, ValueError, f"jitter must be one of {_JITTER_LIST}, got 'FULL'"),
        ("exponential", {"jitter": None}, ValueError, f"jitter must be one of {_JITTER_LIST}, got None"),
        ("exponential", {"jitter": True}, ValueError, f"jitter must be one of {_JITTER_LIST}, got True"),
        ("exponential", {"factor": 0}, ValueError, "factor must be a number in (0, 1], got 0"),
        ("exponential", {"factor": -0.2}, ValueError, "factor must be a number in (0, 1], got -0.2"),
        ("exponential", {"factor": 1.5, "jitter": "proportional"}, ValueError, "factor must be a number in (0, 1], got 1.5"),
        ("exponential", {"factor": math.nan}, ValueError, "factor must be a number in (0, 1], got nan"),
        ("exponential", {"factor": "0.2"}, TypeError, "factor must be a number in (0, 1], got str"),
        ("linear", {"increment": -1}, ValueError, "increment must be 0 or a finite number of seconds from 1e-09 to 4.61169e+09, got -1"),
        ("linear", {"increment": math.inf}, ValueError, "increment must be 0 or a finite number of seconds from 1e-09 to 4.61169e+09"),
        ("linear", {"initial": -0.5}, ValueError, "initial must be 0 or a finite number of seconds from 1e-09 to 4.61169e+09, got -0.5"),
        ("linear", {"initial": 0, "jitter": "decorrelated"}, ValueError, "initial must be a finite number of seconds from 1e-09 to 4.61169e+09 with jitter='decorrelated', got 0"),
        ("linear", {"initial": 5, "max": 4}, ValueError, "max must be >= initial (5.0 seconds), got 4"),
        ("linear", {"jitter": "gaussian"}, ValueError, f"jitter must be one of {_JITTER_LIST}, got 'gaussian'"),
        ("linear", {"factor": 2}, ValueError, "factor must be a number in (0, 1], got 2"),
        ("constant", {"delay": -1}, ValueError, "delay must be 0 or a finite number of seconds from 1e-09 to 4.61169e+09, got -1"),
        ("constant", {"delay": math.nan}, ValueError, "delay must be 0 or a finite number of seconds from 1e-09 to 4.61169e+09, got nan"),
        ("constant", {"delay": math.inf}, ValueError, "delay must be 0 or a finite number of seconds from 1e-09 to 4.61169e+09, got inf"),
        ("constant", {"delay": "1"}, TypeError, "delay must be seconds (float), a timedelta, got str"),
        ("constant", {"jitter": "decorrelated"}, ValueError, "jitter must be one of 'full', 'equal', 'proportional', 'none' for a constant backoff"),
        ("constant", {"jitter": "nope"}, ValueError, f"jitter must be one of {_JITTER_LIST}, got 'nope'"),
        ("constant", {"factor": 0.0, "jitter": "proportional"}, ValueError, "factor must be a number in (0, 1], got 0.0"),
        ("custom", {"fn": 3}, TypeError, "fn must be a callable (attempt, outcome) -> seconds, got int"),
        ("custom", {"fn": None}, TypeError, "fn must be a callable (attempt, outcome) -> seconds, got NoneType"),
    ],
)  # fmt: skip
def test_bad_configuration(
    factory: str, kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=f"^{re.escape(message)}"):
        getattr(Backoff, factory)(**kwargs)


def test_configuration_is_keyword_only() -> None:
    with pytest.raises(TypeError):
        Backoff.exponential(1.0)  # type: ignore[misc]
    with pytest.raises(TypeError):
        Backoff.linear(1.0)  # type: ignore[misc]
    with pytest.raises(TypeError):
        Backoff.constant(1.0)  # type: ignore[misc]


def _returns(value: object) -> Backoff:
    return Backoff.custom(lambda attempt, outcome: value)  # type: ignore[arg-type,return-value]


@pytest.mark.parametrize(
    ("backoff", "call", "error", "message"),
    [
        (Backoff.exponential(), {"attempt": 0}, ValueError, "attempt must be an int >= 1, got 0"),
        (Backoff.exponential(), {"attempt": -3}, ValueError, "attempt must be an int >= 1, got -3"),
        (Backoff.exponential(), {"attempt": 1.0}, TypeError, "attempt must be an int >= 1, got float"),
        (Backoff.exponential(), {"attempt": True}, TypeError, "attempt must be an int >= 1, got bool"),
        (Backoff.exponential(), {"attempt": None}, TypeError, "attempt must be an int >= 1, got NoneType"),
        (_returns(1.0), {"attempt": 0}, ValueError, "attempt must be an int >= 1, got 0"),
        (Backoff.exponential(jitter="decorrelated"), {"attempt": 2, "previous": -1.0}, ValueError, "previous must be 0 or a finite number of seconds from 1e-09 to 4.61169e+09, got -1.0"),
        (Backoff.exponential(jitter="decorrelated"), {"attempt": 2, "previous": math.nan}, ValueError, "previous must be 0 or a finite number of seconds from 1e-09 to 4.61169e+09, got nan"),
        (Backoff.exponential(jitter="decorrelated"), {"attempt": 2, "previous": "1"}, TypeError, "previous must be seconds (float), a timedelta, got str"),
        (_returns(-1.0), {"attempt": 1}, ValueError, "fn's result must be 0 or a finite number of seconds from 1e-09 to 4.61169e+09, got -1.0"),
        (_returns(timedelta(seconds=-2)), {"attempt": 1}, ValueError, "fn's result must be 0 or a finite number of seconds from 1e-09 to 4.61169e+09"),
        (_returns(math.nan), {"attempt": 1}, ValueError, "fn's result must be 0 or a finite number of seconds from 1e-09 to 4.61169e+09, got nan"),
        (_returns(math.inf), {"attempt": 1}, ValueError, "fn's result must be 0 or a finite number of seconds from 1e-09 to 4.61169e+09, got inf"),
        (_returns(1e12), {"attempt": 1}, ValueError, "fn's result must be 0 or a finite number of seconds from 1e-09 to 4.61169e+09"),
        (_returns("1"), {"attempt": 1}, TypeError, "fn's result must be seconds (float), a timedelta, got str"),
        (_returns(None), {"attempt": 1}, TypeError, "fn's result must be seconds (float), a timedelta, got NoneType"),
        (_returns(True), {"attempt": 1}, TypeError, "fn's result must be seconds (float), a timedelta, got bool"),
    ],
)  # fmt: skip
def test_bad_delay_call(
    backoff: Backoff, call: dict[str, Any], error: type[Exception], message: str
) -> None:
    call = dict(call)
    attempt = call.pop("attempt")
    with pytest.raises(error, match=f"^{re.escape(message)}"):
        backoff.delay(attempt, **call)


def test_a_subclass_of_int_is_accepted_as_attempt() -> None:
    class Count(int):
        pass

    assert Backoff.exponential(jitter="none").delay(Count(3)) == 4.0


@pytest.mark.parametrize(
    "make",
    [
        lambda: Backoff.exponential(initial=0.5, multiplier=2.0, max=4.0, jitter="none"),
        lambda: Backoff.linear(initial=1.0, increment=0.5, max=10.0, jitter="none"),
        lambda: Backoff.constant(delay=2.0, jitter="none"),
    ],
)
def test_scaled_multiplies_every_duration(make: Callable[[], Backoff]) -> None:
    backoff = make()
    faster = backoff.scaled(0.01)
    assert [faster.delay(k) for k in range(1, 8)] == pytest.approx([backoff.delay(k) / 100 for k in range(1, 8)])
    assert faster.max == pytest.approx(backoff.max / 100)  # type: ignore[operator]
    assert backoff.scaled(1.0) == backoff


@pytest.mark.parametrize("bad", [0, -1.0, math.inf, math.nan, True, "2"])
def test_scaled_refuses_a_factor_that_is_not_a_positive_finite_number(bad: object) -> None:
    with pytest.raises((ValueError, TypeError), match="^factor must be a finite number > 0"):
        Backoff.exponential().scaled(bad)  # type: ignore[arg-type]


def test_a_custom_backoff_cannot_be_scaled() -> None:
    with pytest.raises(ValueError, match="custom backoff cannot be scaled"):
        Backoff.custom(lambda attempt, outcome: 1.0).scaled(0.5)
