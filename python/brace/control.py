"""Kept for compatibility: brace.control now lives in brace.recovery (the recovery layer).

Import these names from brace or brace.recovery."""

from brace.recovery._control import (
    Control,
    control,
)

__all__ = [
    "Control",
    "control",
]


def __getattr__(name: str) -> object:
    # `brace.control` is the Control object, but a first `import brace.control`
    # binds that name to this module instead: so the object's API answers here too.
    return getattr(control, name)
