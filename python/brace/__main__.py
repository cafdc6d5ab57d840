"""brace's command line: `python -m brace tour` (also the `brace` script)."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="brace", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    tour = commands.add_parser("tour", help="a short tour of the rate limiter, with its cost per call")
    tour.add_argument("--quick", action="store_true", help="fewer timing repeats")
    args = parser.parse_args(argv)
    from brace import _tour

    return _tour.run(quick=args.quick)


if __name__ == "__main__":
    sys.exit(main())
