"""The demo's settings (one chaos run) and the `brace demo` options that make them."""

from __future__ import annotations

import argparse
import dataclasses
import math
from collections.abc import Callable
from typing import Any, Literal


@dataclasses.dataclass(frozen=True)
class Settings:
    """One chaos run. Durations are simulated seconds; rates are probabilities per request
    (`permanent_rate`: per call).

    Attributes:
        calls: Calls to make, >= 1.
        seed: Seeds the workload, the faults and brace's jitter (fake clock: the same report).
        clock: "fake" (brace's clock frozen, waits advance it) or "real".
        speed: Real clock only: simulated seconds per real second, > 0.
        workers: Real clock only: threads calling concurrently, >= 1.
        interval: Mean simulated seconds between two calls' arrivals (Poisson), > 0.
        timeout_rate: A request hangs until the client's 2 s timeout.
        reset_rate: A request's connection is reset; it stays broken until reconnected.
        throttle_rate: A request starts a 1-5 s window of 429s with Retry-After.
        outage_rate: A request starts a 2-12 s outage (503) of the region it reached.
        token_lifetime: Seconds an access token lives (then 401 until refreshed), > 0.
        drift_at: When the payload's shape changes: after drift_at * calls requests, 0..1.
        permanent_rate: A call asks for a record that does not exist (404).
        dead_letters: The SQLite dead-letter file to keep, or None for a temporary one.
        log: A JSON-lines file for the recovery log (overwritten), or None for memory.
        http: Call a real HTTP server on 127.0.0.1 through httpx and brace's transport
            (brace.integrations.httpx) instead of the simulated service: the clock is
            real, durations are real seconds, the fault windows last 1-3 s and the
            client's timeout is 1 s (see `http_settings`).
    """

    calls: int = 3000
    seed: int = 7
    clock: Literal["fake", "real"] = "fake"
    speed: float = 100.0
    workers: int = 4
    interval: float = 0.5
    timeout_rate: float = 0.03
    reset_rate: float = 0.01
    throttle_rate: float = 0.01
    outage_rate: float = 0.005
    token_lifetime: float = 300.0
    drift_at: float = 0.4
    permanent_rate: float = 0.01
    dead_letters: str | None = None
    log: str | None = None
    http: bool = False


# --http: the same scenario in real seconds, fast enough that 300 calls take seconds.
# The other durations of an --http run are the server's (brace._cli.demo._http_server).
HTTP_INTERVAL = 0.04
HTTP_TOKEN_LIFETIME = 5.0


def _probability(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number from 0 to 1, got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be a number from 0 to 1, got {text}")
    return value


def _positive(kind: type[int] | type[float]) -> Callable[[str], Any]:
    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {'an integer' if kind is int else 'a number'} > 0, "
                                             f"got {text!r}") from None  # fmt: skip
        if not value > 0 or not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be {'an integer' if kind is int else 'a number'} > 0, got {text}")
        return value

    return parse


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer from 0 to 2**64 - 1, got {text!r}") from None
    if not 0 <= value < 1 << 64:
        raise argparse.ArgumentTypeError(f"must be an integer from 0 to 2**64 - 1, got {text}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `demo` subcommand's options."""
    d = Settings()
    parser.add_argument("--calls", type=_positive(int), default=d.calls, help=f"calls to make (default {d.calls})")
    parser.add_argument("--seed", type=_seed, default=d.seed,
                        help=f"seeds the workload, the faults and brace's jitter (default {d.seed})")
    parser.add_argument("--http", action="store_true",
                        help="call a real HTTP server on 127.0.0.1 through httpx and brace's transport "
                             "(brace.integrations.httpx) instead of the simulated service: real seconds, "
                             "1-3 s fault windows; needs httpx")  # fmt: skip
    parser.add_argument("--clock", choices=("fake", "real"), default=None,
                        help="fake: brace's clock frozen, waits advance it (default); real: waits are slept, "
                             "divided by --speed")  # fmt: skip
    parser.add_argument("--speed", type=_positive(float), default=None,
                        help=f"--clock real: simulated seconds per real second (default {d.speed:g})")
    parser.add_argument("--workers", type=_positive(int), default=None,
                        help=f"--clock real: threads calling concurrently (default {d.workers})")
    parser.add_argument("--interval", type=_positive(float), default=None,
                        help=f"mean simulated seconds between calls (default {d.interval:g}; "
                             f"--http: {HTTP_INTERVAL:g} real seconds)")  # fmt: skip
    faults = parser.add_argument_group("faults (probabilities from 0 to 1)")
    for name, meaning in (("timeout", "a request hangs until the client's 2 s timeout"),
                          ("reset", "a request's connection is reset (broken until reconnected)"),
                          ("throttle", "a request starts a 1-5 s window of 429 with Retry-After"),
                          ("outage", "a request starts a 2-12 s 503 outage of its region"),
                          ("permanent", "a call asks for a record that does not exist (404)")):  # fmt: skip
        default = getattr(d, f"{name}_rate")
        faults.add_argument(f"--{name}-rate", type=_probability, default=default,
                            help=f"{meaning}; per {'call' if name == 'permanent' else 'request'} (default {default:g})")
    faults.add_argument("--token-lifetime", type=_positive(float), default=None,
                        help=f"simulated seconds an access token lives (default {d.token_lifetime:g}; "
                             f"--http: {HTTP_TOKEN_LIFETIME:g} real seconds)")  # fmt: skip
    faults.add_argument("--drift-at", type=_probability, default=d.drift_at,
                        help=f"the payload's shape changes after this fraction of --calls requests "
                             f"(default {d.drift_at:g})")  # fmt: skip
    parser.add_argument("--dead-letters", metavar="PATH", help="keep the SQLite dead-letter store in this new "
                                                               "file (default: a temporary file)")  # fmt: skip
    parser.add_argument("--log", metavar="PATH", help="write the recovery log here as JSON lines (overwritten; "
                                                      "default: in memory)")  # fmt: skip
    parser.add_argument("--json", action="store_true", help="print only a JSON report on stdout")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="show progress (default: unless --json); with rich installed, a bar and rich tables")
    parser.add_argument("--plain", action="store_true", help="plain text even on a terminal with rich installed")
