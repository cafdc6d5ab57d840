"""brace's command line, `brace` or `python -m brace`: the demo, a chaos run of brace.Recovery
against a simulated API; the report, the error analytics of a recovery log; and a short tour
of the rate limiter."""

from __future__ import annotations

import argparse

from brace import __version__


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="brace", description=__doc__, epilog="`brace COMMAND --help` lists a command's options."
    )
    parser.add_argument("--version", action="version", version=f"brace {__version__}")
    commands = parser.add_subparsers(dest="command", title="commands")
    demo = commands.add_parser(
        "demo",
        help="a chaos run: a simulated API with realistic faults, called through brace.Recovery",
        description="A chaos run: a simulated records API with timeouts, resets, 429s, outages, expiring "
        "tokens, a schema change and missing records, called through brace.Recovery; reports what was "
        "recovered, escalated, dead-lettered and lost, and exits 1 when a target is missed.",
    )
    from brace._cli import demo as demo_module

    demo_module.add_arguments(demo)
    report = commands.add_parser(
        "report",
        help="the error analytics of a recovery log (JSON lines): tables, --json, --chart PNG",
        description="Reads a recovery log written by brace's JsonLinesSink (`brace demo --log LOG.jsonl` writes "
        "one) and reports error fingerprints, failures by dependency and category with their impact, MTTR and "
        "MTBF, anomalies of the error rate and early warnings of failure rates rising toward a breaker's "
        "threshold. Needs numpy, and matplotlib for --chart: pip install \"brace[analytics]\".",
    )
    from brace._cli import _report

    _report.add_arguments(report)
    tour = commands.add_parser("tour", help="a short tour of the rate limiter, with its cost per call")
    tour.add_argument("--quick", action="store_true", help="fewer timing repeats")
    args = parser.parse_args(argv)
    if args.command is None:  # a newcomer typing `brace`: show what there is
        parser.print_help()
        return 0
    if args.command == "demo":
        return demo_module.main(args, demo.error)
    if args.command == "report":
        return _report.main(args, report.error)
    from brace._cli import _tour

    return _tour.run(quick=args.quick)

