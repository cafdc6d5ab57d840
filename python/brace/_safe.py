"""Text about user objects that never raises: the one formatter brace uses for them.

brace writes about objects it does not own - errors, arguments, results,
callables - in messages, logs, events, escalations and dead letters, mostly
while something has already gone wrong. Their `__str__` and `__repr__` may
raise (a library error built without the attributes its `__str__` reads),
return something that is not a str, recurse without end, or take a str
subclass's methods along; an int beyond Python's 4300-digit limit cannot be
written in decimal at all; a class may carry a `__module__` that is not a str,
or a metaclass whose `__name__` is a property that raises. Every function
here returns an exact str (never a subclass, whose methods could run user
code) that encodes to UTF-8 (lone surrogates become backslash escapes), for
any object. What they cannot show they describe: "<str() raised
RuntimeError>", "<pkg.Thing object at 0x7f..; repr() raised RuntimeError>".

Only BaseExceptions that are not Exceptions (KeyboardInterrupt, SystemExit)
raised by the object's own methods go through: they are not about formatting.
"""

from __future__ import annotations

from typing import Any, cast

__all__ = ["add_note", "clean_text", "describe", "error_dict", "name_of", "safe_repr", "safe_str", "type_name"]

# type's own descriptors: they read the class's C-level slots, so a metaclass
# that overrides __qualname__ or __module__ cannot run code here.
_QUALNAME: Any = type.__dict__["__qualname__"]
_MODULE: Any = type.__dict__["__module__"]


def clean_text(text: str) -> str:
    """text as an exact str that encodes to UTF-8: lone surrogates (from bytes
    decoded with surrogateescape) become backslash escapes."""
    exact = str.__str__(text)  # a copy that is exactly a str, made without calling the subclass
    if str.isascii(exact):
        return exact
    try:
        str.encode(exact, "utf-8")
    except UnicodeEncodeError:
        return str.encode(exact, "utf-8", "backslashreplace").decode("utf-8")
    return exact


def safe_str(obj: object) -> str:
    """str(obj), or "<str() raised Type>" when that raises (or returns no str)."""
    try:
        text = str(obj)
    except Exception as error:
        return f"<str() raised {type_name(error)}>"
    return clean_text(text)


def safe_repr(obj: object) -> str:
    """repr(obj); when that raises, a description that runs none of obj's code.

    An int too long for decimal (more digits than sys.get_int_max_str_digits())
    is written in hex, which has no limit: "<int 0x1f...; repr() raised
    ValueError>". Anything else reads "<pkg.Thing object at 0x7f..; repr()
    raised RuntimeError>".
    """
    try:
        text = repr(obj)
    except Exception as error:
        cls = type(obj)
        # int.__format__, not format(): an int subclass's own __format__ is not called.
        shown = int.__format__(cast(int, obj), "#x") if issubclass(cls, int) else f"object at {id(obj):#x}"
        return f"<{_class_name(cls)} {shown}; repr() raised {type_name(error)}>"
    return clean_text(text)


def type_name(obj: object) -> str:
    """The public dotted name of obj's class: "ValueError", "httpx.ReadTimeout".

    Builtins go by their bare name; other classes are qualified by their
    module up to its first private part (httpx._exceptions.ReadTimeout reads as
    the httpx.ReadTimeout its users know), or by nothing when the class's
    `__module__` is not a str.
    """
    return _class_name(type(obj))  # type(), not obj.__class__: a property there could raise


def describe(error: object) -> str:
    """One line for an error: "Type: message", or "Type" when its message is empty."""
    message = safe_str(error)
    return f"{type_name(error)}: {message}" if message else type_name(error)


def error_dict(error: object) -> dict[str, str] | None:
    """An error as JSON-able data: {"type": type_name(error), "message": safe_str(error)}; None for None."""
    if error is None:
        return None
    return {"type": type_name(error), "message": safe_str(error)}


def name_of(fn: object) -> str:
    """A callable's name: its `__qualname__` when it has a non-empty str one (functions,
    methods, classes), else the name of its class (a functools.partial reads "partial")."""
    try:
        name = getattr(fn, "__qualname__", None)
    except Exception:  # a __getattr__ that raises something else than AttributeError
        name = None
    if issubclass(type(name), str) and name:
        return clean_text(cast(str, name))
    return clean_text(_QUALNAME.__get__(type(fn)))


def _class_name(cls: type) -> str:
    qualname = clean_text(_QUALNAME.__get__(cls))  # always a str: type refuses anything else
    try:
        module = _MODULE.__get__(cls)  # whatever the class's namespace holds, or AttributeError
    except Exception:
        return qualname
    if not issubclass(type(module), str):
        return qualname
    module = clean_text(cast(str, module))
    if module == "builtins":
        return qualname
    public: list[str] = []
    for part in module.split("."):
        if part.startswith("_"):
            break
        public.append(part)
    return ".".join((*public, qualname))


def add_note(error: BaseException, note: str) -> None:
    """error.add_note(note), on Python 3.10 too (add_note() is 3.11+)."""
    notes = getattr(error, "__notes__", None)
    if notes is None:
        notes = []
        setattr(error, "__notes__", notes)
    notes.append(note)
