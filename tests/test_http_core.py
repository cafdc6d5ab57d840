"""What the HTTP integrations compute in C on every request and answer (pyx/http.pxi), against
small Python models: the quota test of an answer's field names, and a request's timeouts
bounded by brace's deadline."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from brace._core import any_name_holds, bound_phases

MARK = b"ratelimit"
PHASES = ("connect", "read", "write", "pool")


def holds_model(fields: list[tuple[bytes, bytes]], mark: bytes) -> bool:
    return any(mark in name.lower() for name, _ in fields)


names = st.one_of(st.binary(max_size=30), st.sampled_from([b"RateLimit", b"X-RATELIMIT-Remaining", b"ratelimi",
                                                             b"rate-limit", b"RATELIMIT", b"\xd2ATELIMIT"]))  # fmt: skip


@given(st.lists(st.tuples(names, st.binary(max_size=8)), max_size=6))
def test_the_quota_test_agrees_with_the_model(fields: list[tuple[bytes, bytes]]) -> None:
    assert any_name_holds(fields, MARK) == holds_model(fields, MARK)


@pytest.mark.parametrize(("fields", "expected"), [
    ([], False),
    ([(b"Content-Length", b"2"), (b"RateLimit-Policy", b"10;w=1")], True),
    ([(b"x-ratelimit-remaining", b"0")], True),
    ([(b"Rate-Limit", b"0"), (b"ratelimi", b"")], False),
    ([(b"Server", b"ratelimit")], False),  # a value is not a name
])  # fmt: skip
def test_the_quota_test_reads_names_in_any_case(fields: list[tuple[bytes, bytes]], expected: bool) -> None:
    assert any_name_holds(fields, MARK) is expected


def test_a_name_that_is_not_bytes_is_refused() -> None:
    with pytest.raises(TypeError, match="bytes, got str"):
        any_name_holds([("RateLimit", b"0")], MARK)  # type: ignore[list-item]


def bound_model(phases: dict[str, Any], timeout: float) -> dict[str, float] | None:
    values = [phases.get(name) for name in PHASES]
    if all(value is not None and value <= timeout for value in values):
        return None
    return {name: timeout if value is None else min(value, timeout) for name, value in zip(PHASES, values)}


seconds = st.one_of(st.none(), st.floats(min_value=0, max_value=1e6), st.integers(min_value=0, max_value=10**6))


@given(st.dictionaries(st.sampled_from(PHASES + ("other",)), seconds), st.floats(min_value=0, max_value=1e6))
def test_the_bound_agrees_with_the_model(phases: dict[str, Any], timeout: float) -> None:
    assert bound_phases(phases, PHASES, timeout) == bound_model(phases, timeout)


@pytest.mark.parametrize(("phases", "expected"), [
    ({"connect": 5.0, "read": 5.0, "write": 5.0, "pool": 5.0}, None),  # httpx's default, within 60 s
    ({"connect": 5.0, "read": None, "write": 5.0, "pool": 5.0}, {"connect": 5.0, "read": 60.0, "write": 5.0,
                                                                "pool": 5.0}),
    ({"connect": 90.0, "read": 5.0}, {"connect": 60.0, "read": 5.0, "write": 60.0, "pool": 60.0}),
    ({}, {"connect": 60.0, "read": 60.0, "write": 60.0, "pool": 60.0}),
])  # fmt: skip
def test_each_phase_is_bounded_and_nothing_is_copied_when_all_are(phases: dict[str, Any],
                                                                  expected: dict[str, float] | None) -> None:  # fmt: skip
    assert bound_phases(phases, PHASES, 60.0) == expected
