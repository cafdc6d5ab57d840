"""`brace demo`: runs the scenario with the options given and shows the report."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from typing import Any, Literal

from brace._cli.demo._render import Progress, render_plain, render_rich
from brace._cli.demo._run import run
from brace._cli.demo._settings import HTTP_INTERVAL, HTTP_TOKEN_LIFETIME, Settings


def _rich_available() -> bool:
    try:
        import rich  # noqa: F401
    except ImportError:
        return False
    return True


def _httpx_available() -> bool:
    try:
        import httpx  # noqa: F401
    except ImportError:
        return False
    return True


def _settings(args: argparse.Namespace, error: Callable[[str], Any]) -> Settings:
    """The run the options ask for; a bad combination goes to `error`."""
    if args.http and (args.clock is not None or args.speed is not None):
        error("--clock and --speed apply to the simulated service only: --http runs in real seconds")
    if args.clock != "real" and not args.http and (args.speed is not None or args.workers is not None):
        error("--speed and --workers apply to --clock real only")
    defaults = Settings()
    return Settings(
        calls=args.calls, seed=args.seed, clock="real" if args.http else args.clock or defaults.clock,
        speed=1.0 if args.http else (defaults.speed if args.speed is None else args.speed),
        workers=defaults.workers if args.workers is None else args.workers,
        interval=args.interval or (HTTP_INTERVAL if args.http else defaults.interval),
        timeout_rate=args.timeout_rate, reset_rate=args.reset_rate, throttle_rate=args.throttle_rate,
        outage_rate=args.outage_rate,
        token_lifetime=args.token_lifetime or (HTTP_TOKEN_LIFETIME if args.http else defaults.token_lifetime),
        drift_at=args.drift_at, permanent_rate=args.permanent_rate, dead_letters=args.dead_letters, log=args.log,
        http=args.http,
    )  # fmt: skip


def main(args: argparse.Namespace, error: Callable[[str], Any]) -> int:
    """Runs `brace demo` with parsed options; returns the exit status (0: every target met, 1: not).

    The JSON report (`--json`) holds at least transient_recovery_rate (0..1 or
    null without transient failures), mean_recovery_time and p95_recovery_time
    (simulated seconds), lost, attempts_made, attempts_logged, escalated,
    dead_lettered, by_category (per category: calls, injected, recovered,
    recovery_rate, mean/p95_recovery_time, escalated, dead_lettered, lost,
    attempts_made, attempts_logged), targets and all_targets_met, replay,
    healing, brace_stats (brace's own recovery.stats()), settings, wall_time.

    Args:
        args: The options `add_arguments` defined.
        error: Reports a bad combination of options and exits 2 (argparse's parser.error).
    """
    settings = _settings(args, error)
    if settings.http and not _httpx_available():
        print("brace demo --http calls its server through httpx, which is not installed: pip install httpx",
              file=sys.stderr)  # fmt: skip
        return 2
    for path, option in ((args.dead_letters, "--dead-letters"), (args.log, "--log")):
        if path is not None and not os.path.isdir(os.path.dirname(os.path.abspath(path))):
            error(f"{option}: the directory of {path!r} does not exist")
    if args.dead_letters is not None and os.path.exists(args.dead_letters):
        # The replay would run an earlier run's dead letters too, and count them with this run's
        # (compaction, store.compact, removes settled letters only).
        error(f"--dead-letters: {args.dead_letters!r} exists; give a new file")
    show_progress = (not args.json) if args.progress is None else args.progress
    fancy = _rich_available() and not args.plain and (sys.stdout.isatty() or args.progress is True)
    console: Any = None
    if fancy:
        from rich.console import Console

        console = Console(stderr=args.json)
    kind: Literal["rich", "plain", "none"] = "none" if not show_progress else ("rich" if fancy else "plain")
    progress = Progress(settings.calls, kind, console)
    try:
        report = run(settings, progress)
    finally:
        progress.close()
    if args.json:
        json.dump(report, sys.stdout, indent=2, sort_keys=True)
        print()
    elif fancy:
        render_rich(report, console)
    else:
        render_plain(report, sys.stdout)
    return 0 if report["all_targets_met"] else 1
