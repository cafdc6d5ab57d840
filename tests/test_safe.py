"""brace._safe: text about user objects that never raises, whatever the objects do."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from brace._safe import clean_text, describe, error_dict, name_of, safe_repr, safe_str, type_name
from hostile import Raising, Recipe, Sly, Unprintable, recipes, without_module

FUNCTIONS: list[Callable[[object], object]] = [safe_str, safe_repr, type_name, describe, error_dict, name_of]


def is_clean(text: object) -> bool:
    """An exact str that UTF-8 can encode."""
    if type(text) is not str:
        return False
    text.encode("utf-8")
    return True


deep: list[Any] = []
for _ in range(100_000):
    deep = [deep]
looped: list[Any] = [1]
looped.append(looped)

ODD_VALUES = [10**5000, -(10**4301), deep, looped, Sly("sly"), "lone \udc80", b"\xff", None, 1.5, type, Raising,
              functools.partial(print, 1), print, Unprintable(), httpx.ReadTimeout("slow")]  # fmt: skip


@given(recipes())
def test_no_function_raises_for_a_hostile_object(recipe: Recipe) -> None:
    obj = recipe.build()
    for function in FUNCTIONS:
        result = function(obj)
        if isinstance(result, dict):
            assert list(result) == ["type", "message"] and all(map(is_clean, result.values()))
        else:
            assert is_clean(result), (function, result)


@pytest.mark.parametrize("function", FUNCTIONS, ids=lambda function: function.__name__)
@pytest.mark.parametrize("value", ODD_VALUES, ids=lambda value: type(value).__name__)
def test_no_function_raises_for_odd_values(function: Callable[[object], object], value: object) -> None:
    result = function(value)
    assert result is None if value is None and function is error_dict else True
    if isinstance(result, dict):
        assert all(map(is_clean, result.values()))
    elif result is not None:
        assert is_clean(result)


@given(st.text())
def test_clean_text_keeps_what_utf8_can_hold_and_escapes_lone_surrogates(text: str) -> None:
    cleaned = clean_text(Sly(text))
    assert is_clean(cleaned)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        assert cleaned == text.encode("utf-8", "backslashreplace").decode("utf-8")
    else:
        assert cleaned == text


# -- what they say -------------------------------------------------------------------------


class Opaque(Exception):
    def __str__(self) -> str:
        raise AttributeError("response")

    def __repr__(self) -> str:
        raise AttributeError("response")


def test_well_behaved_objects_read_as_str_and_repr_make_them() -> None:
    for value in (ValueError("bad row"), [1, "a"], {"k": None}, 3.5, "text", httpx.ReadTimeout("slow")):
        assert (safe_str(value), safe_repr(value)) == (str(value), repr(value))


def test_what_cannot_be_shown_is_described() -> None:
    error = Opaque()
    assert safe_str(error) == "<str() raised AttributeError>"
    assert safe_repr(error) == f"<test_safe.Opaque object at {id(error):#x}; repr() raised AttributeError>"
    assert describe(error) == "test_safe.Opaque: <str() raised AttributeError>"
    assert error_dict(error) == {"type": "test_safe.Opaque", "message": "<str() raised AttributeError>"}


def test_an_int_too_long_for_decimal_is_shown_in_hex() -> None:
    huge = -(10**5000)
    assert safe_repr(huge) == f"<int {huge:#x}; repr() raised ValueError>"
    assert safe_str(huge) == "<str() raised ValueError>"
    assert int(safe_repr(huge).split()[1].rstrip(";"), 16) == huge


def test_the_digit_limit_in_force_decides_what_needs_hex() -> None:
    previous = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(0)  # no limit
    try:
        assert safe_repr(10**5000) == "1" + "0" * 5000
    finally:
        sys.set_int_max_str_digits(previous)


@pytest.mark.parametrize(
    ("value", "name"),
    [
        (ValueError(), "ValueError"),
        (httpx.ReadTimeout("slow"), "httpx.ReadTimeout"),  # defined in httpx._exceptions
        (Opaque(), "test_safe.Opaque"),
        (None, "NoneType"),
    ],
)
def test_type_name_is_the_public_dotted_name(value: object, name: str) -> None:
    assert type_name(value) == name


@pytest.mark.parametrize(
    ("module", "name"),
    [("pkg.mod", "pkg.mod.Odd"), ("pkg._impl.mod", "pkg.Odd"), (42, "Odd"), (property(lambda self: 1 / 0), "Odd"),
     ("absent", "Odd")],
)  # fmt: skip
def test_type_name_reads_only_what_the_class_itself_holds(module: object, name: str) -> None:
    odd = Raising("Odd", (), {} if module == "absent" else {"__module__": module})
    if module == "absent":
        without_module(odd)
    assert type_name(odd()) == name


def test_describe_leaves_out_an_empty_message() -> None:
    assert describe(TimeoutError()) == "TimeoutError"
    assert describe(ConnectionResetError(104, "reset")) == "ConnectionResetError: [Errno 104] reset"
    assert error_dict(None) is None


def test_name_of_a_callable() -> None:
    def local() -> None:
        pass

    assert name_of(local) == "test_name_of_a_callable.<locals>.local"
    assert name_of(functools.partial(local)) == "partial"
    assert name_of(Opaque) == "Opaque"
    assert name_of(Opaque()) == "Opaque"  # an instance: its class's name
