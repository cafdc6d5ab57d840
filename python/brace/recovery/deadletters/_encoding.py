"""How a call's arguments are stored: as JSON, with what JSON cannot hold kept as its
repr and its path flagged (see the package's docstring)."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from typing import Any, cast

from brace._safe import safe_repr



def _plain(value: object, path: str, flagged: list[str], active: set[int]) -> object:
    """value as JSON can hold it, with what it cannot hold replaced by reprs whose paths go to flagged.

    Scalars are kept as json writes them (an IntEnum comes back as its int, a
    str subclass as a str). Containers are kept only when they are exactly a
    list, tuple or dict: a namedtuple or a defaultdict would come back as a
    plain list or dict, which is not the call that was made. Types are read
    with type(), never isinstance(), which consults a `__class__` that may raise.
    """
    kind = type(value)
    # Scalars as exact str, float or int, made by their base types' own methods:
    # json would call isinstance() on a subclass, and so its __class__.
    if value is None or kind is bool:
        return value
    if issubclass(kind, str):
        return str.__str__(cast(str, value))
    if issubclass(kind, float):
        return float.__float__(cast(float, value))
    if issubclass(kind, int) and _fits(cast(int, value)):
        return int.__int__(cast(int, value))
    if kind in (list, tuple, dict):  # exactly: see above
        if id(value) in active:  # a container that holds itself
            flagged.append(path)
            return safe_repr(value)
        if kind is dict and not all(issubclass(type(key), str) for key in cast("dict[object, object]", value)):
            # json would turn int keys into strings: the dict would not come back as it was.
            flagged.append(path)
            return safe_repr(value)
        active.add(id(value))
        try:
            if kind is dict:
                return {str.__str__(key): _plain(item, f"{path}[{str.__repr__(key)}]", flagged, active)
                        for key, item in cast("dict[str, object]", value).items()}  # fmt: skip
            return [_plain(item, f"{path}[{index}]", flagged, active)
                    for index, item in enumerate(cast("list[object]", value))]  # fmt: skip
        finally:
            active.discard(id(value))
    flagged.append(path)
    return safe_repr(value)


# The ints whose decimal text every Python reads back by default: json writes
# ints in decimal, which Python refuses beyond sys.int_info.default_max_str_digits.
_INT_BOUND = 10**sys.int_info.default_max_str_digits


def _fits(value: int) -> bool:
    """Whether json can write value (under the limit in force) for any Python to read back."""
    if int.__abs__(value) >= _INT_BOUND:
        return False
    try:
        int.__repr__(value)  # what json does: raises ValueError beyond sys.get_int_max_str_digits()
    except ValueError:
        return False
    return True


def encode(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> tuple[str, str, tuple[str, ...]]:
    """The JSON texts of args and kwargs, and the paths stored as reprs."""
    flagged: list[str] = []
    plain_args = [_top(value, f"args[{index}]", flagged) for index, value in enumerate(args)]
    plain_kwargs = [f"{json.dumps(str.__str__(key))}: {_top(value, f'kwargs[{str.__repr__(key)}]', flagged)}"
                    for key, value in kwargs.items()]  # fmt: skip
    return f"[{', '.join(plain_args)}]", f"{{{', '.join(plain_kwargs)}}}", tuple(flagged)


def _top(value: object, path: str, flagged: list[str]) -> str:
    """One argument's JSON; a structure too deep to walk or write is stored whole as its repr."""
    mark = len(flagged)
    try:
        # ensure_ascii (the default): any str (reprs included) is plain ASCII in the database.
        return json.dumps(_plain(value, path, flagged, set()))
    except RecursionError:
        del flagged[mark:]
        flagged.append(path)
        return json.dumps(safe_repr(value))  # a repr too deep to make is described by safe_repr

