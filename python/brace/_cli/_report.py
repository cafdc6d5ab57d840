"""`brace report LOG.jsonl`: the error analytics of a recovery log (brace.analytics) as
tables (rich when installed, plain text otherwise), `--json`, and `--chart out.png`."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Callable
from typing import IO, Any

EXTRA = 'pip install "brace[analytics]"'
# A table shows a fingerprint's first few correlation ids: enough to start looking calls up.
_SHOWN_IDS = 5
# The columns of figures, right-aligned in rich tables.
_NUMBERS = {"events", "calls", "attempts", "failures", "failure rate", "recovered", "dead-lettered", "mean recovery",
            "p95 recovery", "episodes", "MTTR", "MTBF", "recovered (first failure)", "window", "starts at (+s)",
            "error rate", "expected", "z", "fitted rate", "per window", "windows to threshold", "correlation ids", "threshold"}


def _number(accepted: str, fits: Callable[[float], bool]) -> Callable[[str], float]:
    """An option's parser: a float that `fits`, else an error saying what is `accepted`."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {accepted}, got {text!r}") from None
        if not fits(value):
            raise argparse.ArgumentTypeError(f"must be {accepted}, got {text}")
        return value

    return parse


_positive = _number("a number of seconds > 0", lambda value: value > 0 and math.isfinite(value))
_rate = _number("a failure rate in (0, 1]", lambda value: 0 < value <= 1)


def _threshold(text: str) -> tuple[str | None, float]:
    """--threshold's parser: "RATE" (every dependency) or "NAME=RATE" (one dependency; the
    rate follows the last "=", so a name may hold one)."""
    name, equals, rate = text.rpartition("=")
    if not equals:
        return None, _rate(text)
    if not name:
        raise argparse.ArgumentTypeError(f"must be RATE or NAME=RATE with a dependency's name, got {text!r}")
    return name, _rate(rate)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `report` subcommand's options."""
    parser.add_argument("log", metavar="LOG.jsonl", help="a recovery log written by brace's JsonLinesSink "
                                                         "(for instance by `brace demo --log LOG.jsonl`)")  # fmt: skip
    parser.add_argument("--window", type=_positive, default=None, metavar="SECONDS",
                        help="the windows' length (default: 1, 2 or 5 times a power of ten giving about "
                             "60 windows)")  # fmt: skip
    parser.add_argument("--clock", choices=("at", "time"), default="at",
                        help="at: brace's clock, the one durations are measured on (default; the simulated "
                             "time of a demo run); time: when each line was logged (for a log appended "
                             "across restarts or by several machines)")  # fmt: skip
    parser.add_argument("--threshold", type=_threshold, action="append", default=[], metavar="[NAME=]RATE",
                        help="the breakers' failure-rate threshold the early warning looks ahead to: RATE for "
                             "every dependency (default 0.5), NAME=RATE for the dependency NAME as the report "
                             "names it; repeatable")  # fmt: skip
    parser.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    parser.add_argument("--chart", metavar="PNG", help="draw error rate and recovery time over time into this "
                                                       "PNG file (needs matplotlib: " + EXTRA + ")")  # fmt: skip
    parser.add_argument("--top", type=int, default=10, metavar="N", help="fingerprints shown (default 10)")
    parser.add_argument("--plain", action="store_true", help="plain text even with rich installed")


def main(args: argparse.Namespace, error: Callable[[str], Any]) -> int:
    """Runs `brace report`; returns the exit status (0, or 2 for a log or option it cannot use)."""
    try:
        import numpy  # noqa: F401
    except ImportError:
        print(f"brace report: the analytics need numpy, which is not installed: {EXTRA}", file=sys.stderr)
        return 2
    if args.chart is not None:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            print(f"brace report: --chart draws with matplotlib, which is not installed: {EXTRA}", file=sys.stderr)
            return 2
        if not os.path.isdir(os.path.dirname(os.path.abspath(args.chart))):
            error(f"--chart: the directory of {args.chart!r} does not exist")
    if args.top < 0:
        error(f"--top must be an int >= 0, got {args.top}")
    threshold, thresholds = _thresholds(args.threshold, error)
    from brace.analytics import LogFormatError, analyze

    try:
        report = analyze(args.log, window=args.window, clock=args.clock, threshold=threshold, thresholds=thresholds)
    except LogFormatError as failure:
        print(f"brace report: {failure}", file=sys.stderr)
        return 2
    except ValueError as failure:
        print(f"brace report: {args.log}: {failure}", file=sys.stderr)
        return 2
    data = report.as_dict()
    named = {row["dependency"] for row in data["dependencies"]}
    for name in sorted(set(thresholds) - named):  # a typo would otherwise pass unnoticed
        print(f"brace report: --threshold {name}=...: {args.log} has no dependency {name!r} (it has: "
              f"{', '.join(sorted(named)) or 'none'})", file=sys.stderr)  # fmt: skip
    if args.chart is not None:
        from brace.analytics._chart import chart

        chart(report, args.chart)
    if args.json:
        json.dump(data, sys.stdout, indent=2, sort_keys=True, allow_nan=False)
        print()
    else:
        render(data, sys.stdout, top=args.top, fancy=not args.plain and _rich_available())
        if args.chart is not None:
            print(f"chart: {args.chart}")
    return 0


def _thresholds(given: list[tuple[str | None, float]], error: Callable[[str], Any]) -> tuple[float, dict[str, float]]:
    """--threshold's values as analyze() takes them: (every dependency's, per dependency)."""
    plain = [rate for name, rate in given if name is None]
    if len(plain) > 1:
        error(f"--threshold: one RATE for every dependency, got {len(plain)}; use NAME=RATE for one dependency")
    each: dict[str, float] = {}
    for name, rate in given:
        if name is not None:
            if name in each:
                error(f"--threshold: {name!r} given twice")
            each[name] = rate
    return (plain[0] if plain else 0.5), each


def _rich_available() -> bool:
    try:
        import rich  # noqa: F401
    except ImportError:
        return False
    return True


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 1:
        return f"{value * 1000:.1f} ms"
    return f"{value:.2f} s"


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _first_ids(row: dict[str, Any]) -> str:
    """A fingerprint's first correlation ids, "..." when it affected more."""
    shown = [identifier[:40] for identifier in row["correlation_id_sample"][:_SHOWN_IDS]]
    more = ", ..." if row["correlation_ids"] > len(shown) else ""
    return (", ".join(shown) + more) if shown else "-"


def _tables(data: dict[str, Any], top: int) -> list[tuple[str, list[str], list[list[str]]]]:
    """The report's tables: (title, headers, rows of text)."""
    totals = data["totals"]
    summary = [[
        str(data["events"]), str(totals["calls"]), str(totals["attempts"]), str(totals["failures"]),
        _percent(totals["failure_rate"]), str(totals["recovered"]), str(totals["dead_lettered"]),
        _seconds(totals["mean_recovery_time"]), _seconds(totals["p95_recovery_time"]),
    ]]  # fmt: skip
    tables = [(f"{data['source']}: {len(data['windows'])} windows of {data['window']:g} s (clock {data['clock']})",
               ["events", "calls", "attempts", "failures", "failure rate", "recovered", "dead-lettered",
                "mean recovery", "p95 recovery"], summary)]  # fmt: skip
    prints = data["fingerprints"][:top]
    tables.append((f"Error fingerprints (top {len(prints)} of {len(data['fingerprints'])}, by failures)",
                   ["id", "error", "raised in", "status", "category", "failures", "calls", "recovered",
                    "dead-lettered", "dependencies"],
                   [[row["id"], f"{row['type']}: {row['template']}"[:90],
                     row["frames"][0][:50] if row["frames"] else "-", "-" if row["status"] is None
                     else str(row["status"]), row["category"] or "-", str(row["failures"]), str(row["calls"]),
                     str(row["recovered"]), str(row["dead_lettered"]), ", ".join(row["dependencies"])[:40]]
                    for row in prints]))  # fmt: skip
    tables.append((f"Calls affected (correlation ids: the first {_SHOWN_IDS} of each, more with --json)",
                   ["id", "correlation ids", "first of them"],
                   [[row["id"], str(row["correlation_ids"]), _first_ids(row)] for row in prints]))  # fmt: skip
    tables.append(("Dependencies", ["dependency", "attempts", "failures", "failure rate", "recovered",
                                    "mean recovery", "episodes", "MTTR", "MTBF"],
                   [[row["dependency"], str(row["attempts"]), str(row["failures"]), _percent(row["failure_rate"]),
                     str(row["recovered"]), _seconds(row["mean_recovery_time"]),
                     f"{row['episodes']}{' (1 open)' if row['open_episode'] else ''}", _seconds(row["mttr"]),
                     _seconds(row["mtbf"])] for row in data["dependencies"]]))  # fmt: skip
    tables.append(("Categories", ["category", "failures", "calls", "recovered (first failure)", "mean recovery"],
                   [[row["category"], str(row["failures"]), str(row["calls"]), str(row["recovered"]),
                     _seconds(row["mean_recovery_time"])] for row in data["categories"]]))  # fmt: skip
    parameters = data["parameters"]
    origin = data["origin"]
    tables.append((f"Anomalies (EWMA alpha {parameters['alpha']:g}, z > {parameters['z']:g} after "
                   f"{parameters['warmup']} windows)",
                   ["scope", "window", "starts at (+s)", "error rate", "expected", "z"],
                   [[row["scope"], str(row["window"]), f"{row['start'] - origin:.1f}", _percent(row["error_rate"]),
                     _percent(row["expected"]), f"{row['z']:.1f}"] for row in data["anomalies"]]))  # fmt: skip
    tables.append((f"Early warnings (failure rate of the attempts that ran, toward the threshold: "
                   f"{parameters['threshold']:.0%}{' unless set per dependency' if parameters['thresholds'] else ''}; "
                   f"line over the last {parameters['lookback']} windows, {parameters['horizon']:g} windows ahead)",
                   ["dependency", "status", "threshold", "fitted rate", "per window", "windows to threshold"],
                   [[row["dependency"], row["status"], _percent(row["threshold"]), _percent(row["rate"]),
                     f"{row['slope']:+.1%}", f"{row['windows_to_threshold']:.1f}"]
                    for row in data["warnings"]]))  # fmt: skip
    return tables


def render(data: dict[str, Any], out: IO[str], *, top: int = 10, fancy: bool = False) -> None:
    """Writes the report's tables to `out`: rich tables when `fancy`, else plain text."""
    tables = _tables(data, top)
    if data["skipped"]:
        note = f"{data['skipped']} events set aside for numbers no clock gives: " + "; ".join(data["skipped_reasons"][:3])
    else:
        note = ""
    if fancy:
        from rich.console import Console
        from rich.table import Table
        from rich.text import Text

        # A terminal's own width; a file or pipe gets rich's 80 columns, too narrow for the fingerprints.
        console = Console(file=out)
        if not console.is_terminal:
            console = Console(file=out, width=200)
        for title, headers, rows in tables:
            table = Table(title=title, title_justify="left")
            for index, header in enumerate(headers):
                # A fingerprint's id and text are what a reader searches for: kept whole, on one line.
                table.add_column(header, justify="right" if header in _NUMBERS else "left",
                                 no_wrap=header in ("id", "error"))  # fmt: skip
            for row in rows:
                # As Text: a log's messages and correlation ids are not rich markup ("[/x]" would raise).
                table.add_row(*(Text(cell) for cell in row))
            if not rows:
                table.add_row("none", *[""] * (len(headers) - 1))
            console.print(table)
        if note:
            console.print(note, markup=False)
        return
    for title, headers, rows in tables:
        out.write(f"{title}\n")
        shown = rows or [["none", *[""] * (len(headers) - 1)]]
        widths = [max(len(header), *(len(row[index]) for row in shown)) for index, header in enumerate(headers)]
        out.write("  ".join(header.ljust(width) for header, width in zip(headers, widths)).rstrip() + "\n")
        for row in shown:
            out.write("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() + "\n")
        out.write("\n")
    if note:
        out.write(note + "\n")
