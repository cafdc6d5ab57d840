"""brace._safe: text about user objects that never raises, whatever the objects do."""

from __future__ import annotations

import asyncio
import functools
import sys
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from brace._safe import clean_text, describe, error_dict, innermost_frames, name_of, safe_repr, safe_str, type_name
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


# -- innermost_frames ----------------------------------------------------------------------------


def _raised(fn: Callable[[], object]) -> BaseException:
    try:
        fn()
    except BaseException as error:
        return error
    raise AssertionError("fn did not raise")


def _innermost() -> None:
    raise TimeoutError("deep")


def _middle() -> None:
    _innermost()


def _outer() -> None:
    _middle()


def _outermost() -> None:
    _outer()


def test_frames_are_the_innermost_first_as_module_and_function() -> None:
    error = _raised(_outermost)
    assert innermost_frames(error) == ["test_safe:_innermost", "test_safe:_middle", "test_safe:_outer"]
    assert innermost_frames(error, limit=1) == ["test_safe:_innermost"]
    assert innermost_frames(error, limit=10)[:4] == [*innermost_frames(error), "test_safe:_outermost"]


def test_frames_name_methods_by_their_qualified_name() -> None:
    class Client:
        def charge(self) -> None:
            raise ConnectionResetError("reset")

    (frame, *_) = innermost_frames(_raised(Client().charge))
    name = "test_frames_name_methods_by_their_qualified_name.<locals>.Client.charge"
    assert frame == ("test_safe:" + name if sys.version_info >= (3, 11) else "test_safe:charge")


def test_an_error_never_raised_or_no_exception_has_no_frames() -> None:
    assert innermost_frames(TimeoutError("built, not raised")) == []
    assert innermost_frames(httpx.Response(503)) == [] and innermost_frames(None) == []


def test_brace_frames_that_called_the_failing_code_end_the_walk() -> None:
    import brace

    def direct() -> None:
        raise ValueError("bad input")

    # The Recovery's own frames between this test and `direct` are the way the call went.
    recovery = brace.Recovery(name="frames", escalation=brace.EscalationPolicy())
    failed = _raised(lambda: recovery.call(direct))
    cause = failed.__cause__
    assert cause is not None
    assert innermost_frames(cause) == ["test_safe:test_brace_frames_that_called_the_failing_code_end_the_walk."
                                       "<locals>.direct"]  # fmt: skip
    async def direct_async() -> None:
        raise ValueError("bad input")

    # Awaited through other frames of brace's, the same one frame.
    failed_async = _raised(lambda: asyncio.run(recovery.call_async(direct_async)))
    assert failed_async.__cause__ is not None
    assert innermost_frames(failed_async.__cause__) == [
        "test_safe:test_brace_frames_that_called_the_failing_code_end_the_walk.<locals>.direct_async"]
    # An error raised inside brace keeps brace's frames: they are where it failed.
    assert all(frame.startswith("brace.") for frame in innermost_frames(failed))


def test_frames_run_none_of_the_errors_code() -> None:
    class Hiding(Exception):
        @property
        def __traceback__(self) -> None:  # type: ignore[override]
            raise RuntimeError("a property in the way")

    error = _raised(lambda: _raise(Hiding("x")))
    assert innermost_frames(error)[0] == "test_safe:_raise"


def _raise(error: BaseException) -> None:
    raise error


@pytest.mark.parametrize("module", [None, 42, Sly("sly.module"), "lone \udc80", "m" * 10_000],
                         ids=["None", "int", "sly", "surrogate", "huge"])
def test_frames_of_code_whose_module_name_is_odd(module: object) -> None:
    namespace: dict[str, Any] = {"__name__": module}
    exec("def fail():\n    raise KeyError('k')\n", namespace)
    (frame,) = innermost_frames(_raised(namespace["fail"]), limit=1)
    assert is_clean(frame) and frame.endswith(":fail") and len(frame) <= 200 + len(":fail")
    assert frame.startswith("?:") == (not isinstance(module, str))
