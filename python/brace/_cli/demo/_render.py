"""The report shown: plain text or rich tables fitting 80 columns, and the progress of the calls."""

from __future__ import annotations

import sys
import textwrap
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any, Literal, TextIO

from brace._cli.demo._scenario import CATEGORIES, TRANSIENT, Ended

_WIDTH = 80  # the report's columns

# The report fits an 80-column terminal: one table of what happened to the calls of each
# category, one of how long their recovery took and whether every attempt was logged.
_OUTCOMES = ("Calls by the category of their first failure",
             ("category", "calls", "injected", "recovered", "escalated", "dead-lettered", "lost"),
             "lrrrrrr")  # fmt: skip
_TIMES = ("Recovery time and attempts logged", ("category", "mean s", "p95 s", "attempts", "logged"), "lrrrr")
_VERDICT = ("Verdict", ("target", "bar", "measured", "result"), "llll")
_SUMMED = ("calls", "injected", "recovered", "escalated", "dead_lettered", "lost", "attempts_made", "attempts_logged")

# A table's rows, in sections separated by rules.
_Sections = list[list[tuple[str, ...]]]


def _number(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def _row_groups(report: dict[str, Any]) -> list[list[tuple[str, dict[str, Any]]]]:
    """The rows as (name, figures): the transient categories, all of them summed, the others, the total."""
    categories = list(report["by_category"].items())
    transient = [(name, row) for name, row in categories if row["transient"]]
    others = [(name, row) for name, row in categories if not row["transient"]]
    every_row = [row for _, row in categories] + [report["first_try_row"]]
    total = {key: sum(row[key] for row in every_row) for key in _SUMMED}
    total.update(mean_recovery_time=report["mean_recovery_time"], p95_recovery_time=report["p95_recovery_time"])
    return [transient, [("all transient", {key: sum(row[key] for _, row in transient) for key in _SUMMED})],
            [*others, ("no failure", report["first_try_row"])], [("total", total)]]  # fmt: skip


def _outcome_sections(report: dict[str, Any]) -> _Sections:
    def cells(name: str, row: dict[str, Any]) -> tuple[str, ...]:
        first_try = name == "no failure"
        return (name, str(row["calls"]), "-" if first_try else str(row["injected"]),
                "-" if first_try else str(row["recovered"]), str(row["escalated"]), str(row["dead_lettered"]),
                str(row["lost"]))  # fmt: skip

    return [[cells(name, row) for name, row in group] for group in _row_groups(report)]


def _time_sections(report: dict[str, Any]) -> _Sections:
    def cells(name: str, row: dict[str, Any]) -> tuple[str, ...]:
        return (name, _number(row.get("mean_recovery_time"), ".2f"), _number(row.get("p95_recovery_time"), ".2f"),
                str(row["attempts_made"]), str(row["attempts_logged"]))  # fmt: skip

    # No "all transient" row: its times are not in the report (the verdict's mean is the total's).
    transient, _, others, total = _row_groups(report)
    return [[cells(name, row) for name, row in group] for group in (transient, others, total)]


def _verdict_sections(report: dict[str, Any]) -> _Sections:
    return [[(target["name"], target["target"], target["measured"], "met" if target["met"] else "NOT MET")
             for target in report["targets"]]]  # fmt: skip


def _summary(report: dict[str, Any]) -> str:
    settings = report["settings"]
    if settings["http"]:
        return (f"brace demo --http: {report['calls']} calls to a chaos server on {report['http']['server']}, "
                f"through httpx with brace's transport and one brace.Recovery, over {report['simulated_time']:.0f} "
                f"seconds ({settings['workers']} threads, seed {settings['seed']}); wall time "
                f"{report['wall_time']:.2f} s.")  # fmt: skip
    clock = ("fake clock" if settings["clock"] == "fake" else
             f"real clock at {settings['speed']:g}x, {settings['workers']} threads")  # fmt: skip
    return (f"brace demo: {report['calls']} calls through one brace.Recovery over {report['simulated_time']:.0f} "
            f"simulated seconds ({clock}, seed {settings['seed']}); wall time {report['wall_time']:.2f} s.")


def _notes(report: dict[str, Any]) -> list[str]:
    settings, replayed, http = report["settings"], report["replay"], report.get("http")
    notes = [
        "Rows: calls by the category of their first failure; the transient categories ("
        + ", ".join(name for name in CATEGORIES if name in TRANSIENT) + ") pass by themselves. injected: "
        "failed responses of that kind the service produced (any attempt). mean s, p95 s: from a call's first "
        f"failure to its success, in {'' if http else 'simulated '}seconds. attempts: requests the "
        + ("server received on its socket; logged: the transport's attempt events (one per request sent)"
           if http else "service received; logged: attempt events") + " read back from the recovery log.",
        "Transient recovery rate (the verdict's first target): recovered / calls of the 'all transient' row, "
        "where recovered means the call ended in its value with no person involved. Of the transient calls not "
        f"recovered, {report['transient_then_permanent']} got past the transient failure and then met a "
        "permanent one.",
        "Fault episodes: " + ", ".join(f"{name} {count}" for name, count in sorted(report["episodes"].items()))
        + f"; the payload's shape changed after {round(settings['drift_at'] * settings['calls'])} requests.",
    ]
    if http:
        notes.append(f"Over HTTP ({http['client']}): brace.integrations.httpx.Transport with brace's default host "
                     "policy sent again what it retries, paused the host on 429 "
                     f"({http['host_pauses']} pauses) and refreshed the token after a 401 ({http['token_refreshes']} "
                     "tokens); the brace.Recovery around each call adapted to the new payload shape, escalated "
                     "missing records and held a cached fallback.")  # fmt: skip
    by_category: dict[str, list[str]] = {}
    for item in report["healing"]:
        by_category.setdefault(item["category"], []).append(f"{item['strategy']} {item['healed']}/"
                                                             f"{item['healed'] + item['failed']}")  # fmt: skip
    notes.append("Healing (healed / tried, as brace.HealingStats learned it): "
                 + "; ".join(f"{category}: {', '.join(items)}" for category, items in sorted(by_category.items())))
    dead = ", ".join(f"{category} {count}" for category, count in replayed["still_dead_by_category"].items())
    notes.append(f"Replay of the {replayed['letters']} dead letters through the recovery: {replayed['delivered']} "
                 f"delivered, {replayed['still_dead']} still dead{f' ({dead})' if dead else ''}, left for a person; "
                 f"{replayed['skipped']} skipped; store: {replayed['store_counts']}. The verdict's attempts "
                 "include the replay's.")
    if not report["brace_agrees"]:
        notes.append("WARNING: brace's recovery.stats() disagrees with the service's count (see brace_stats).")
    for detail in report["lost_details"]:
        notes.append(f"LOST {detail}")
    if settings["dead_letters"] is not None:
        notes.append(f"Dead letters kept in {settings['dead_letters']}.")
    if settings["log"] is not None:
        notes.append(f"Recovery log written to {settings['log']} (JSON lines).")
    return notes


def _verdict_line(report: dict[str, Any]) -> str:
    missed = sum(1 for target in report["targets"] if not target["met"])
    return "All four targets met." if not missed else f"{missed} of four targets NOT MET."


def render_plain(report: dict[str, Any], out: TextIO) -> None:
    """The report as aligned text tables, notes and the verdict, fitting 80 columns."""

    def wrapped(text: str) -> str:
        # Paths and ids stay whole, even if longer than a line.
        return textwrap.fill(text, _WIDTH, break_long_words=False, break_on_hyphens=False)

    def table(title: str, headers: tuple[str, ...], align: str, sections: _Sections) -> None:
        rows = [headers, *(row for section in sections for row in section)]
        widths = [max(len(row[column]) for row in rows) for column in range(len(headers))]

        def aligned(row: Sequence[str]) -> str:
            return "  ".join(cell.ljust(width) if how == "l" else cell.rjust(width)
                             for cell, width, how in zip(row, widths, align)).rstrip()  # fmt: skip

        print(f"\n{title}", file=out)
        print(aligned(headers), file=out)
        for section in sections:
            print("  ".join("-" * width for width in widths), file=out)
            for row in section:
                print(aligned(row), file=out)

    print(wrapped(_summary(report)), file=out)
    table(*_OUTCOMES, _outcome_sections(report))
    table(*_TIMES, _time_sections(report))
    print(file=out)
    for note in _notes(report):
        print(wrapped(note), file=out)
    table(*_VERDICT, _verdict_sections(report))
    print(_verdict_line(report), file=out)


def render_rich(report: dict[str, Any], console: Any) -> None:
    """The report as rich tables, notes and the verdict, fitting 80 columns (the caller checked that rich is there)."""
    from rich import box
    from rich.table import Table

    def table(title: str, headers: tuple[str, ...], align: str, sections: _Sections,
              alarming: Callable[[tuple[str, ...]], bool]) -> None:  # fmt: skip
        # Rules between sections and under the header, two spaces between columns, no frame.
        shown = Table(title=title, title_justify="left", title_style="bold", box=box.HORIZONTALS, show_edge=False,
                      pad_edge=False, padding=(0, 0, 0, 1))  # fmt: skip
        for header, how in zip(headers, align):
            shown.add_column(header, justify="left" if how == "l" else "right", no_wrap=True)
        for section in sections:
            for index, row in enumerate(section):
                style = "bold red" if alarming(row) else ("bold" if row[0] in ("all transient", "total") else None)
                shown.add_row(*row, style=style, end_section=index == len(section) - 1)
        console.print(shown)

    console.print(_summary(report), highlight=False, markup=False)
    console.print()
    table(*_OUTCOMES, _outcome_sections(report), lambda row: row[-1] != "0")
    console.print()
    table(*_TIMES, _time_sections(report), lambda row: row[-2] != row[-1])
    console.print()
    for note in _notes(report):
        console.print(note, highlight=False, markup=False)
    console.print()
    table(*_VERDICT, _verdict_sections(report), lambda row: row[-1] != "met")
    console.print(_verdict_line(report), style="green" if report["all_targets_met"] else "bold red")


class Progress:
    """Progress of the calls: a rich bar, a line every 10% on stderr, or nothing. Thread-safe."""

    def __init__(self, total: int, kind: Literal["rich", "plain", "none"], console: Any = None) -> None:
        self._total, self._kind = total, kind
        self._lock = threading.Lock()
        self._done = 0
        self._counts: Counter[str] = Counter()
        self._bar: Any = None
        if kind == "rich":
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._bar = Progress(TextColumn("calls"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                                 TextColumn("{task.fields[status]}"), console=console)  # fmt: skip
            self._task = self._bar.add_task("calls", total=total, status="")
            self._bar.start()

    def __call__(self, ended: Ended) -> None:
        if self._kind == "none":
            return
        with self._lock:
            self._done += 1
            self._counts[ended.outcome] += 1
            done, status = self._done, ", ".join(f"{name} {count}" for name, count in sorted(self._counts.items()))
        if self._bar is not None:
            self._bar.update(self._task, completed=done, status=status)
        elif done * 10 // self._total != (done - 1) * 10 // self._total or done == self._total:
            print(f"brace demo: {done}/{self._total} calls ({done / self._total:.0%}): {status}", file=sys.stderr,
                  flush=True)  # fmt: skip

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
