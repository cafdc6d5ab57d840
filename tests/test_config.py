"""Bad configuration fails at construction, naming the parameter and the range."""

from __future__ import annotations

import math
import re
from datetime import timedelta
from typing import Any

import pytest

import brace


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"rate": 0}, ValueError, "rate must be a finite number of events > 0"),
        ({"rate": -5}, ValueError, "rate must be a finite number of events > 0"),
        ({"rate": math.nan}, ValueError, "rate must be a finite number"),
        ({"rate": math.inf}, ValueError, "rate must be a finite number"),
        ({"rate": True}, TypeError, "rate must be a number"),
        ({"rate": None}, TypeError, "rate must be a number"),
        ({"rate": b"10/s"}, TypeError, "rate must be a number"),
        ({"rate": "10"}, ValueError, "rate must look like '100/s'"),
        ({"rate": "ten/s"}, ValueError, "rate must look like"),
        ({"rate": "10/fortnight"}, ValueError, "rate must look like"),
        ({"rate": "-1/s"}, ValueError, "rate must look like"),
        ({"rate": "0/s"}, ValueError, "rate must have a count > 0"),
        ({"rate": "10/0s"}, ValueError, "rate must have a count > 0 and a period > 0"),
        ({"rate": "10/s", "per": 1.0}, ValueError, "per must be None when rate is a string"),
        ({"rate": 2e9}, ValueError, "rate must be at most 1e9 events per second"),
        ({"rate": 1, "per": 0}, ValueError, "per must be a finite number of seconds from 1e-09 to 4.61169e+09"),
        ({"rate": 1, "per": -1}, ValueError, "per must be a finite number of seconds from 1e-09 to 4.61169e+09"),
        ({"rate": 1, "per": math.inf}, ValueError, "per must be a finite number"),
        ({"rate": 1, "per": math.nan}, ValueError, "per must be a finite number"),
        ({"rate": 1, "per": timedelta(seconds=-1)}, ValueError, "per must be a finite"),
        ({"rate": 1, "per": "1s"}, TypeError, "per must be seconds (float), a timedelta"),
        ({"rate": 1, "burst": 0}, ValueError, "burst must be an int >= 1, got 0"),
        ({"rate": 1, "burst": -3}, ValueError, "burst must be an int >= 1, got -3"),
        ({"rate": 1, "burst": 2.0}, TypeError, "burst must be an int >= 1, got float"),
        ({"rate": 1, "burst": True}, TypeError, "burst must be an int >= 1, got bool"),
        ({"rate": "1/d", "burst": 10**9}, ValueError, "burst must be at most 53375"),
        ({"rate": 1, "max_wait": -0.1}, ValueError, "max_wait must be 0 or a finite number of seconds from 1e-09 to 4.61169e+09, or None"),
        ({"rate": 1, "max_wait": math.nan}, ValueError, "max_wait must be 0 or a finite number of seconds from 1e-09 to 4.61169e+09, or None"),
        ({"rate": 1, "max_wait": "1"}, TypeError, "max_wait must be seconds (float), a timedelta or None"),
        ({"rate": 1, "name": 3}, TypeError, "name must be a str or None"),
    ],
)
def test_bad_configuration(kwargs: dict[str, Any], error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=f"^{re.escape(message)}"):
        brace.RateLimiter(**kwargs)


def test_configuration_is_keyword_only() -> None:
    with pytest.raises(TypeError):
        brace.RateLimiter(10)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("n", "error", "message"),
    [
        (0, ValueError, "n must be an int from 1 to the limiter's burst, got 0"),
        (-1, ValueError, "n must be an int from 1 to the limiter's burst, got -1"),
        (6, ValueError, "n=6 can never be admitted: n must be an int from 1 to burst=5"),
        (2**70, ValueError, "n=1180591620717411303424 can never be admitted"),
        (1.0, TypeError, "n must be an int from 1 to the limiter's burst, got float"),
        (True, TypeError, "n must be an int from 1 to the limiter's burst, got bool"),
        ("1", TypeError, "n must be an int"),
        (None, TypeError, "n must be an int"),
    ],
)
@pytest.mark.parametrize("method", ["try_acquire", "peek", "acquire"])
def test_bad_n(method: str, n: object, error: type[Exception], message: str) -> None:
    lim = brace.RateLimiter(rate=1, burst=5)
    with pytest.raises(error, match=f"^{re.escape(message)}"):
        getattr(lim, method)(n)
    assert lim.state().remaining == 5


@pytest.mark.parametrize(
    ("timeout", "error"),
    [(-1, ValueError), (math.nan, ValueError), (math.inf, ValueError), ("1", TypeError)],
)
def test_bad_max_wait(timeout: object, error: type[Exception]) -> None:
    lim = brace.RateLimiter(rate=1)
    with pytest.raises(error, match="^max_wait must be"):
        lim.acquire(max_wait=timeout)  # type: ignore[arg-type]


def test_a_subclass_of_int_is_accepted_as_n() -> None:
    class Count(int):
        pass

    lim = brace.RateLimiter(rate=1, burst=5)
    assert lim.try_acquire(Count(5))


class Unshowable(float):
    """A number whose repr raises: a bad value must still be refused with a ValueError naming it."""

    def __repr__(self) -> str:
        raise RuntimeError("repr")


@pytest.mark.parametrize(
    ("make", "parameter"),
    [
        (lambda: brace.RetryBudget(ratio=Unshowable(5000.0)), "ratio"),
        (lambda: brace.Backoff.exponential(multiplier=Unshowable(0.5)), "multiplier"),
        (lambda: brace.Backoff.constant(delay=Unshowable(-1.0)), "delay"),
        (lambda: brace.RateLimiter(rate=Unshowable(-1.0)), "rate"),
        (lambda: brace.EscalationPolicy(wait=Unshowable(-1.0)), "wait"),
    ],
    ids=["ratio", "multiplier", "delay", "rate", "wait"],
)
def test_a_bad_value_whose_repr_raises_is_still_refused_by_name(make: Any, parameter: str) -> None:
    with pytest.raises(ValueError, match=rf"^{parameter} .*got <test_config\.Unshowable object at 0x[0-9a-f]+; repr\(\) raised"):
        make()
