"""brace.get_include() and brace.get_library(): the shipped C library, for C programs."""

from __future__ import annotations

import importlib.util
import os

__all__ = ["get_include", "get_library"]

# The extension module and the C library are installed side by side (also by an editable install).
_SPEC = importlib.util.find_spec("brace._core")
_HERE = os.path.dirname(os.path.abspath(_SPEC.origin if _SPEC and _SPEC.origin else __file__))


def get_include() -> str:
    """The directory of brace.h, the C core's one header (as numpy.get_include()).

    Compile with `-I$(python -c "import brace; print(brace.get_include())")`.
    """
    return os.path.join(_HERE, "include")


def get_library() -> str:
    """The path of libbrace.so, the C core as a shared library (the same code as the extension's).

    Link with it by path, or with `-L<its directory> -lbrace` and an rpath.
    """
    return os.path.join(_HERE, "lib", "libbrace.so")
