"""Hostile objects for the tests: what user code may hand brace to show or store."""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import Any, NamedTuple

from hypothesis import strategies as st

__all__ = ["Raising", "Recipe", "Sly", "Unprintable", "built", "recipes", "without_module"]


class Sly(str):
    """A str subclass whose methods must never be used on brace's behalf."""

    def __format__(self, spec: str) -> str:
        raise RuntimeError("Sly.__format__")

    def __str__(self) -> str:
        raise RuntimeError("Sly.__str__")

    def split(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("Sly.split")

    def encode(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("Sly.encode")


class Unprintable(Exception):
    """An error whose own str raises: raised by a hostile __str__, it must not be shown either."""

    def __str__(self) -> str:
        raise Unprintable()


class Raising(type):
    """A metaclass whose __name__ and __module__ raise."""

    @property
    def __name__(cls) -> str:  # type: ignore[override]
        raise RuntimeError("metaclass __name__")

    @property
    def __module__(cls) -> str:  # type: ignore[override]
        raise RuntimeError("metaclass __module__")


def endless(self: object) -> str:
    return endless(self)


def raiser(error: BaseException) -> Callable[[object], str]:
    def method(self: object) -> str:
        raise error

    return method


TEXT_BEHAVIOURS: dict[str, Callable[[object], Any] | None] = {
    "inherited": None,
    "plain": lambda self: "plain text",
    "surrogate": lambda self: "lone \udc80 surrogate",
    "str subclass": lambda self: Sly("sly"),
    "not a str": lambda self: 42,
    "raises": raiser(RuntimeError("no")),
    "raises an unprintable error": raiser(Unprintable()),
    "raises a huge-int ValueError": lambda self: str(10**5000),
    "recurses": endless,
}
MODULES: dict[str, object] = {"normal": "pkg._private.mod", "builtins": "builtins", "int": 42, "None": None,
                              "surrogate": "pkg.\udc80", "str subclass": Sly("pkg.sub"),
                              "property": property(lambda self: 1 / 0)}  # fmt: skip


def without_module(cls: type) -> None:
    """Takes __module__ out of the class's namespace, as classes made in C may lack it
    (type itself refuses to delete it: the dict is reached through the garbage collector)."""
    namespace = gc.get_referents(cls.__dict__)[0]
    del namespace["__module__"]


class Recipe(NamedTuple):
    """How to make one hostile object: what hypothesis draws and prints (the object itself
    cannot be printed, so a failing example would take the test report down with it)."""

    str_method: str
    repr_method: str
    format_raises: bool
    class_raises: bool
    getattr_raises: bool
    qualname: str | None
    module: str
    base: str
    raising_metaclass: bool
    value: object

    def build(self) -> object:
        namespace: dict[str, Any] = {}
        for method, behaviour in (("__str__", self.str_method), ("__repr__", self.repr_method)):
            if TEXT_BEHAVIOURS[behaviour] is not None:
                namespace[method] = TEXT_BEHAVIOURS[behaviour]
        if self.format_raises:
            namespace["__format__"] = raiser(RuntimeError("__format__"))
        if self.class_raises:
            namespace["__class__"] = property(raiser(RuntimeError("__class__")))
        if self.getattr_raises:
            namespace["__getattr__"] = raiser(RuntimeError("__getattr__"))
        if self.qualname is not None:
            namespace["__qualname__"] = self.qualname
        if self.module != "absent":
            namespace["__module__"] = MODULES[self.module]
        base = BASES[self.base]
        cls = (Raising if self.raising_metaclass else type)("Thing", (base,), namespace)
        if self.module == "absent":
            without_module(cls)
        return cls() if self.value is None else cls(self.value)


BASES: dict[str, type] = {"object": object, "Exception": Exception, "int": int, "str": str, "list": list,
                          "dict": dict}  # fmt: skip


@st.composite
def recipes(draw: st.DrawFn) -> Recipe:
    """Recipes of hostile objects: build() each inside the test (see `built`)."""
    base = draw(st.sampled_from(sorted(BASES)))
    value = (draw(st.sampled_from([0, -7, 10**5000, -(10**5000)])) if base == "int"
             else draw(st.text()) if base == "str" else None)  # fmt: skip
    return Recipe(
        str_method=draw(st.sampled_from(sorted(TEXT_BEHAVIOURS))),
        repr_method=draw(st.sampled_from(sorted(TEXT_BEHAVIOURS))),
        format_raises=draw(st.booleans()),
        class_raises=draw(st.booleans()),
        getattr_raises=draw(st.booleans()),
        qualname=draw(st.sampled_from([None, "Thing", "Outer.<locals>.Thing", "Th\udc80ing"])),
        module=draw(st.sampled_from([*MODULES, "absent"])),
        base=base,
        raising_metaclass=draw(st.booleans()),
        value=value,
    )


def built(tree: Any) -> Any:
    """tree with every Recipe in it (in lists, tuples and dict values) replaced by its object."""
    if isinstance(tree, Recipe):
        return tree.build()
    if type(tree) in (list, tuple):
        return type(tree)(built(item) for item in tree)
    if type(tree) is dict:
        return {key: built(item) for key, item in tree.items()}
    return tree
