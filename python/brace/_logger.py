"""brace's logger ("brace"), for the rare paths that report a failure of user code.

`logging` is imported on first use, so that `import brace` stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import logging

__all__ = ["logger"]


def logger() -> logging.Logger:
    """The "brace" logger."""
    import logging

    return logging.getLogger("brace")
