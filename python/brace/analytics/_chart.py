"""The report's chart: error rate and recovery time over time, as a PNG (matplotlib).

Drawn on matplotlib's Agg canvas directly (a Figure of its own, never pyplot): it
needs no display and leaves the program's matplotlib backend as it was.
"""

from __future__ import annotations

import os

import numpy as np

from brace.analytics._report import Report

__all__ = ["chart"]


def chart(report: Report, path: str | os.PathLike[str]) -> None:
    """Draws the report's error rate (with its anomalies) and recovery times, per window, into a PNG.

    Raises:
        ImportError: Without matplotlib (the `analytics` extra).
        OSError: When the file cannot be written.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    series = report.overall
    data = report.as_dict()
    x = series.starts - series.origin + series.window / 2  # each window's middle, seconds from the first
    figure = Figure(figsize=(10, 6), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    rate_axes, time_axes = figure.subplots(2, 1, sharex=True)
    rate_axes.plot(x, series.error_rate * 100, marker=".", linewidth=1, label="error rate, all operations")
    for name, kept in report.by_dependency.items():
        if len(report.by_dependency) > 1:
            rate_axes.plot(x, kept.error_rate * 100, linewidth=0.8, alpha=0.7, label=name[:40])
    anomalies = [row for row in data["anomalies"] if row["scope"] == "all"]
    if anomalies:
        rate_axes.scatter([x[row["window"]] for row in anomalies], [row["error_rate"] * 100 for row in anomalies],
                          color="red", zorder=3, label="anomaly")  # fmt: skip
    rate_axes.axhline(data["parameters"]["threshold"] * 100, color="grey", linestyle="--", linewidth=0.8,
                      label="breaker threshold")  # fmt: skip
    rate_axes.set_ylabel("failed attempts (%)")
    rate_axes.set_title(f"{os.path.basename(str(data['source']))}: windows of {series.window:g} s")
    rate_axes.legend(loc="best", fontsize="small")
    has_times = bool(np.isfinite(series.mean_recovery_time).any())
    time_axes.plot(x, series.mean_recovery_time, marker=".", linewidth=1, label="mean recovery time")
    time_axes.plot(x, series.p95_recovery_time, marker="x", linewidth=0.8, linestyle=":", label="p95 recovery time")
    time_axes.set_ylabel("recovery time (s)")
    time_axes.set_xlabel(f"seconds from the first event (clock {report.clock!r})")
    if has_times:
        time_axes.legend(loc="best", fontsize="small")
    else:
        time_axes.text(0.5, 0.5, "no recoveries", transform=time_axes.transAxes, ha="center", va="center")
    figure.savefig(os.fspath(path), format="png")
