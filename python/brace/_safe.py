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

import sys
from types import TracebackType
from typing import Any, cast

__all__ = ["add_note", "clean_text", "describe", "error_dict", "innermost_frames", "name_of", "safe_repr",
           "safe_str", "type_name"]  # fmt: skip

# type's own descriptors: they read the class's C-level slots, so a metaclass
# that overrides __qualname__ or __module__ cannot run code here.
_QUALNAME: Any = type.__dict__["__qualname__"]
_MODULE: Any = type.__dict__["__module__"]
# BaseException's own descriptor: an exception class cannot put code of its own behind it.
_TRACEBACK: Any = BaseException.__dict__["__traceback__"]
# A frame's module or function name is cut to this many characters (a module may name itself anything).
_FRAME_NAME = 200


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


def innermost_frames(error: object, limit: int = 3) -> list[str]:
    """Where an exception was raised: its traceback's innermost `limit` frames, innermost
    first, as "module:function" ("app.billing:Client.charge"). No file, line number or
    local variable: nothing sensitive, and the same after the code around it is edited.

    Frames of brace itself that called the failing code (Recovery, Policy, the
    integrations' transports: the way the call went, not where it failed) end the
    walk outward once a frame of other code was taken, so an error reads the same
    whichever of brace's paths ran it. An error raised inside brace keeps brace's
    frames. [] for an error without a traceback (never raised, or no exception).
    Runs none of the error's code; costs a walk of the traceback and `limit` strings.
    """
    if not isinstance(error, BaseException):
        return []
    # The traceback runs from the outermost frame to the innermost: count it, then skip to
    # the last `limit` entries (two walks of a linked list, nothing allocated for a deep one).
    entry: TracebackType | None = _TRACEBACK.__get__(error)
    depth = 0
    while entry is not None:
        depth += 1
        entry = entry.tb_next
    entry = _TRACEBACK.__get__(error)
    for _ in range(depth - limit):
        entry = entry.tb_next  # type: ignore[union-attr]  # depth counted them
    last: list[TracebackType] = []
    while entry is not None:
        last.append(entry)
        entry = entry.tb_next
    frames: list[str] = []
    inside_brace = True  # only brace's frames taken so far
    for entry in reversed(last):
        frame = entry.tb_frame
        module = _module_of(frame.f_globals)
        ours = module == "brace" or module.startswith("brace.")
        if ours and not inside_brace:
            break
        inside_brace = inside_brace and ours
        if sys.version_info >= (3, 11):
            function = frame.f_code.co_qualname
        else:  # no qualified name before 3.11: a method reads as its bare name
            function = frame.f_code.co_name
        frames.append(f"{module}:{_plain(function)}")
    return frames


def _module_of(namespace: dict[str, Any]) -> str:
    """The module name a frame's globals hold, or "?" when they hold no str one."""
    # dict.get, not the mapping's own: exec() accepts a dict subclass as globals.
    name = dict.get(namespace, "__name__")
    return _plain(cast(str, name)) if issubclass(type(name), str) else "?"


def _plain(name: str) -> str:
    """A module's or function's name as clean text, cut to _FRAME_NAME characters."""
    if type(name) is str and str.isascii(name):  # the common case, without clean_text's copy
        return name[:_FRAME_NAME]
    return clean_text(name)[:_FRAME_NAME]


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
