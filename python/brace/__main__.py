"""`python -m brace`: brace's command line (its home is brace._cli)."""

import sys

from brace._cli._main import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
