"""Costs that must stay bounded as the work grows, printed at sizes 10^3 .. 10^6.

For each size N:

- dead letters, in an SQLite store of N dead letters: `replay(limit=1000)`
  (time, and peak memory under tracemalloc in a second run), `counts()`, and
  the first page of `page(limit=100)`;
- `recovery.stats()` after N recoveries in each of 7 categories: its time,
  and the memory the record holds per category;
- `server_delay` on a response with N `RateLimit` lines (and, once, the 100
  lines of 1,000 characters the issue measured).

Run from the repository root: `python benchmarks/costs.py [--max-size N]`.
The whole run up to 10^6 takes about 1.5 minutes on a 2-core machine, most
of it filling the stores (one executemany transaction per size: ~25 s at
10^6) and recording the 7 million recoveries; `--max-size 1000` takes about
two seconds.
"""

from __future__ import annotations

import argparse
import gc
import sqlite3
import statistics
import tempfile
import time
import tracemalloc
import uuid
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

from brace.classify import Category
from brace.deadletter import SQLiteDeadLetters, replay
from brace.pushback import server_delay
from brace.recovery._stats import Book

SIZES = (10**3, 10**4, 10**5, 10**6)
CATEGORIES = tuple(Category)[:7]
_COLUMNS = ("id, operation, args, kwargs, unserialisable, error_type, error_message, category, correlation_id, "
            "attempts, created_at, served, status, resolved_at, resolved_by, note, replays")  # fmt: skip


def median_seconds(work: Callable[[], object], repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def peak_bytes(work: Callable[[], object]) -> int:
    gc.collect()
    tracemalloc.start()
    try:
        work()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def fill(path: Path, letters: int) -> None:
    """Adds dead letters to the store's file in one transaction (the store made the schema)."""
    now = time.time()
    start = uuid.uuid4().int >> 64  # ids unique across the files of one run
    rows = ((f"{start + index:032x}", "op", f'[{index}, "row"]', '{"sheet": 3}', "[]", "TimeoutError", "slow",
             "timeout", None, 3, now, None, "dead", None, None, "", 0) for index in range(letters))  # fmt: skip
    with sqlite3.connect(path) as connection:
        connection.executemany(f"INSERT INTO dead_letters ({_COLUMNS}) VALUES ({', '.join('?' * 17)})", rows)
    connection.close()


def dead_letters(size: int, directory: Path) -> dict[str, float]:
    path = directory / f"letters-{size}.sqlite3"
    SQLiteDeadLetters(path).close()
    start = time.perf_counter()
    fill(path, size + 2_000)  # the two replays below deliver 1,000 each: N stay dead
    filled = time.perf_counter() - start
    with SQLiteDeadLetters(path) as store:
        operations = {"op": lambda *args, **kwargs: None}
        start = time.perf_counter()
        replay(store, operations, limit=1000)
        replayed = time.perf_counter() - start
        memory = peak_bytes(lambda: replay(store, operations, limit=1000))
        return {
            "fill_s": filled,
            "replay_s": replayed,
            "replay_peak_mib": memory / 2**20,
            "counts_ms": median_seconds(store.counts) * 1e3,
            "page_ms": median_seconds(lambda: store.page(status="dead", limit=100)) * 1e3,
        }


def held_per_category(recoveries: int) -> int:
    """Bytes a record of `recoveries` recoveries in one category holds."""
    gc.collect()
    tracemalloc.start()
    try:
        book = Book()
        empty = tracemalloc.get_traced_memory()[0]
        add_recoveries(book, recoveries, CATEGORIES[:1])
        return tracemalloc.get_traced_memory()[0] - empty
    finally:
        tracemalloc.stop()


def add_recoveries(book: Book, per_category: int, categories: tuple[Category, ...] = CATEGORIES) -> None:
    for index in range(per_category):
        seconds = 0.05 + (index % 1000) * 0.01  # 50 ms to 10 s
        for category in categories:
            book.failed_call(category, transient=True, ending="recovered", attempts=2, rejected=0, escalated=False,
                             dead_lettered=False, recovery_time=seconds)  # fmt: skip


def response(lines: list[tuple[str, str]]) -> SimpleNamespace:
    return SimpleNamespace(status_code=429, headers=lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-size", type=int, default=SIZES[-1], help="the largest N (default 10^6)")
    sizes = [size for size in SIZES if size <= parser.parse_args().max_size] or [SIZES[0]]

    print("dead letters (SQLite, N dead letters)")
    print(f"{'N':>9} {'fill s':>7} {'replay(limit=1000) s':>21} {'peak MiB':>9} {'counts() ms':>12} "
          f"{'page(limit=100) ms':>19}")  # fmt: skip
    with tempfile.TemporaryDirectory() as directory:
        for size in sizes:
            row = dead_letters(size, Path(directory))
            print(f"{size:>9} {row['fill_s']:>7.1f} {row['replay_s']:>21.3f} {row['replay_peak_mib']:>9.1f} "
                  f"{row['counts_ms']:>12.3f} {row['page_ms']:>19.3f}", flush=True)  # fmt: skip

    print("\nrecovery.stats() (7 categories, N recoveries each)")
    print(f"{'N':>9} {'stats() ms':>11} {'KiB per category':>17}")
    book, kept = Book(), 0
    for size in sizes:
        add_recoveries(book, size - kept)
        kept = size
        took = median_seconds(book.snapshot)
        # What one category's record holds, in a record of its own, traced as it fills.
        print(f"{size:>9} {took * 1e3:>11.3f} {held_per_category(size) / 1024:>17.1f}", flush=True)

    print("\nserver_delay (one response)")
    print(f"{'header lines':>22} {'ms per call':>12}")
    issue = response([("RateLimit", ", ".join(f'"policy{index:03d}";r=0;t=30' for index in range(45)))] * 100)
    print(f"{'100 x 1,000 characters':>22} {median_seconds(lambda: server_delay(issue), 20) * 1e3:>12.3f}")
    for size in sizes:
        flood = response([("RateLimit", '"p";r=0;t=1')] * size)
        print(f"{size:>22} {median_seconds(lambda: server_delay(flood), 5) * 1e3:>12.3f}", flush=True)


if __name__ == "__main__":
    main()
