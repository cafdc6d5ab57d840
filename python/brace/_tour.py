"""`python -m brace tour`: a short, runnable tour of the rate limiter."""

from __future__ import annotations

import statistics
import timeit

import brace
from brace._core import clock_source


def _say(text: str) -> None:
    print(text, flush=True)


def _show_admission() -> None:
    _say("1. A limiter of 5 requests/s with bursts of 3 (a GCRA token bucket in C).")
    _say("   brace.testing.fake_clock() freezes brace's time, so this part is exact.")
    with brace.testing.fake_clock() as clock:
        lim = brace.RateLimiter(rate="5/s", burst=3, name="sheets")
        decisions = [lim.try_acquire() for _ in range(5)]
        _say(f"   five try_acquire() at once     -> {decisions}  (the burst of 3, then no)")
        state = lim.state()
        _say(f"   state()                        -> remaining={state.remaining}, "
             f"retry_after={state.retry_after:.3f} s, reset_after={state.reset_after:.3f} s")
        _say(f"   state().headers()              -> {state.headers()}")
        clock.advance(0.2)
        _say(f"   0.2 s later, try_acquire()     -> {lim.try_acquire()}  (one token came back)")
        try:
            lim.acquire(timeout=0.1)
        except brace.RateLimited as error:
            _say(f"   acquire(timeout=0.1)           -> raises at once: {error}")
        start = clock.now()
        lim.acquire()
        _say(f"   acquire()                      -> waited {clock.now() - start:.3f} s "
             f"(the fake clock moved; no real sleep)")
        lim.reconfigure(rate="50/s", burst=10)
        _say(f"   reconfigure(rate='50/s', burst=10) -> remaining={lim.state().remaining} "
             f"(tokens already taken stay taken)")
        try:
            lim.try_acquire(11)
        except ValueError as error:
            _say(f"   try_acquire(11)                -> ValueError: {error}")


def _show_wrappers() -> None:
    _say("\n2. As a decorator and a context manager (sync and async alike).")
    with brace.testing.fake_clock() as clock:
        lim = brace.RateLimiter(rate="2/s", burst=1, max_wait=0)

        @lim
        def send(message: str) -> str:
            return f"sent {message!r}"

        _say(f"   @lim send('hi')                -> {send('hi')}")
        try:
            send("again")
        except brace.RateLimited as error:
            _say(f"   send('again') right away       -> RateLimited, retry_after={error.retry_after:.2f} s")
            clock.advance(error.retry_after)
        with lim:
            _say("   after that wait, `with lim:`   -> entered (it took the token)")


def _ns_per_call(fn: object, number: int, repeat: int) -> tuple[float, float]:
    times = timeit.repeat(fn, number=number, repeat=repeat)  # type: ignore[arg-type]
    per_call = [t / number * 1e9 for t in times]
    return statistics.median(per_call), min(per_call)


def _show_cost(quick: bool) -> None:
    _say("\n3. What a decision costs (real clock, this machine, median of repeats).")
    number, repeat = (20_000, 5) if quick else (200_000, 15)
    lim = brace.RateLimiter(rate=1e9, burst=10**9)
    bare_median, _ = _ns_per_call(lambda: None, number, repeat)
    median, best = _ns_per_call(lim.try_acquire, number, repeat)
    _say(f"   a bare Python call (lambda: None) : {bare_median:6.1f} ns")
    _say(f"   lim.try_acquire()                 : {median:6.1f} ns median, {best:.1f} ns best")
    _say(f"   (brace's clock here reads: {clock_source()})")
    _say("   peers, same method: python benchmarks/compare.py (see README)")


def run(*, quick: bool = False) -> int:
    """Prints the tour; returns the exit status."""
    _say(f"brace {brace.__version__}: resilience policies with a compiled core\n")
    _show_admission()
    _show_wrappers()
    _show_cost(quick)
    return 0
