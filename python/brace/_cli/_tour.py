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
            lim.acquire(max_wait=0.1)
        except brace.RateLimited as error:
            _say(f"   acquire(max_wait=0.1)          -> raises at once: {error}")
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


def _say_transition(event: brace.BreakerEvent) -> None:
    assert event.from_state is not None and event.to_state is not None
    _say(f"   event: {event.from_state.value} -> {event.to_state.value}")


def _show_breaker() -> None:
    _say("\n3. A circuit breaker (resilience4j's semantics; the closed path is compiled).")
    with brace.testing.fake_clock() as clock:
        cb = brace.CircuitBreaker(name="mail", window_size=10, minimum_calls=10,
                                  wait_in_open=30.0, half_open_calls=2)  # fmt: skip
        cb.add_listener(_say_transition, kinds=["state_transition"])

        @cb
        def send(ok: bool) -> str:
            if not ok:
                raise ConnectionError("connection reset")
            return "sent"

        for ok in [True] * 5 + [False] * 5:
            try:
                send(ok)
            except ConnectionError:
                pass
        _say(f"   5 successes, 5 resets          -> state {cb.state.value}, "
             f"failure rate {cb.metrics().failure_rate:.0%}")
        try:
            send(True)
        except brace.CircuitOpen as error:
            _say(f"   the next call                  -> CircuitOpen: {error} (the function did not run)")
        clock.advance(30.0)
        _say(f"   30 s later, two probes         -> {send(True)!r}, {send(True)!r}; state {cb.state.value}")


def _ns_per_call(fn: object, number: int, repeat: int) -> tuple[float, float]:
    times = timeit.repeat(fn, number=number, repeat=repeat)  # type: ignore[arg-type]
    per_call = [t / number * 1e9 for t in times]
    return statistics.median(per_call), min(per_call)


def _show_cost(quick: bool) -> None:
    _say("\n4. What a decision costs (real clock, this machine, median of repeats).")
    number, repeat = (20_000, 5) if quick else (200_000, 15)
    lim = brace.RateLimiter(rate=1e9, burst=10**9)
    bare_median, _ = _ns_per_call(lambda: None, number, repeat)
    median, best = _ns_per_call(lim.try_acquire, number, repeat)
    _say(f"   a bare Python call (lambda: None) : {bare_median:6.1f} ns")
    _say(f"   lim.try_acquire()                 : {median:6.1f} ns median, {best:.1f} ns best")
    guarded = brace.CircuitBreaker(name="cost")(abs)
    guarded_median, _ = _ns_per_call(lambda: guarded(-1), number, repeat)
    bare_abs, _ = _ns_per_call(lambda: abs(-1), number, repeat)
    _say(f"   a breaker-guarded call, closed     : {guarded_median - bare_abs:6.1f} ns over the bare call")
    _say(f"   (brace's clock here reads: {clock_source()})")
    _say("   peers, same method: python benchmarks/compare.py (see README)")


def run(*, quick: bool = False) -> int:
    """Prints the tour; returns the exit status."""
    _say(f"brace {brace.__version__}: resilience policies with a compiled core\n")
    _show_admission()
    _show_wrappers()
    _show_breaker()
    _show_cost(quick)
    return 0
