"""KeyedRateLimiter's decisions, in ns, beside RateLimiter.try_acquire() in the same run.

Cases (every decision admitted: rate 1e9/s, burst 10**9, so the success path):

- `RateLimiter.try_acquire()`: one limiter, the reference;
- `KeyedRateLimiter.try_acquire(key)` with str keys ("user:12345") and int
  keys (one limiter each), cycling over 1k keys (max_keys=1k) and over 1M
  keys (max_keys=1M: a table of 2M entries, 32 MiB, mostly out of the CPU's
  caches, as are the 1M key objects);
- `try_acquire_many(keys)` on a numpy int64 array of all the keys: ns per key.

Each per-call case is a `for key in keys: call(key)` loop over the keys (the
reference calls `try_acquire()` in the same loop; `hash(key)` shows what
merely calling a C function on each key object costs), timed with timeit; the
figure is ns per call, the median over interleaved repeats, and "net" takes
off the empty loop (`for key in keys: pass`) measured alike.

Run from the repository root: `python benchmarks/keyed.py [--quick]` (about
a minute; --quick: a few seconds, 1k keys only).
"""

from __future__ import annotations

import argparse
import statistics
import timeit
from collections.abc import Callable

import numpy as np

import brace

RATE = {"rate": 1e9, "burst": 10**9}


def measure(stmt: str, count: int, **names: object) -> Callable[[], float]:
    """A sample: ns per key of passes of `stmt` over the keys (names bound as locals)."""
    setup = "; ".join(f"{name} = _names[{name!r}]" for name in names)
    timer = timeit.Timer(stmt, setup=setup, globals={"_names": names})
    passes = max(1, 200_000 // count)  # a sample of at least 200k keys
    return lambda: timer.timeit(passes) * 1e9 / (count * passes)


def cases(sizes: tuple[int, ...]) -> dict[str, Callable[[], float]]:
    found: dict[str, Callable[[], float]] = {}
    for size in sizes:
        label = f"{size // 1000}k" if size < 10**6 else f"{size // 10**6}M"
        ints = list(range(size))
        strs = [f"user:{key}" for key in ints]
        array = np.arange(size, dtype=np.int64)
        single = brace.RateLimiter(**RATE)
        # One table per kind of key (each sized for its keys), every key in it before timing.
        by_str = brace.KeyedRateLimiter(**RATE, max_keys=size)
        keyed = brace.KeyedRateLimiter(**RATE, max_keys=size)
        for key in strs:
            by_str.try_acquire(key)
        try:
            keyed.try_acquire_many(array)
        except brace.KeyTableFull:
            pass
        found[f"empty loop ({label} keys)"] = measure("for key in keys: pass", size, keys=ints)
        # What reading each key object costs (at 1M they are out of cache too): a C call on it.
        found[f"hash(key), str ({label} keys)"] = measure("for key in keys: h(key)", size, keys=strs, h=hash)
        found[f"hash(key), int ({label} keys)"] = measure("for key in keys: h(key)", size, keys=ints, h=hash)
        found[f"RateLimiter.try_acquire() ({label} calls)"] = measure(
            "for key in keys: acquire()", size, keys=ints, acquire=single.try_acquire)
        found[f"KeyedRateLimiter.try_acquire(str) ({label} keys)"] = measure(
            "for key in keys: acquire(key)", size, keys=strs, acquire=by_str.try_acquire)
        found[f"KeyedRateLimiter.try_acquire(int) ({label} keys)"] = measure(
            "for key in keys: acquire(key)", size, keys=ints, acquire=keyed.try_acquire)
        # Every key of one batch owes its token at once: at max_keys, a few in a million find
        # no room (every key is still decided); the figure includes that rare raise.
        found[f"KeyedRateLimiter.try_acquire_many(int64 array) ({label} keys)"] = measure(
            "try:\n    many(array)\nexcept full:\n    pass", size, array=array, many=keyed.try_acquire_many,
            full=brace.KeyTableFull)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1k keys, 3 repeats")
    options = parser.parse_args()
    sizes, repeats = ((1000,), 3) if options.quick else ((1000, 10**6), 15)
    timed = cases(sizes)
    samples: dict[str, list[float]] = {name: [] for name in timed}
    for _ in range(repeats):  # interleaved: a slow moment of the machine hits every case alike
        for name, sample in timed.items():
            samples[name].append(sample())
    medians = {name: statistics.median(values) for name, values in samples.items()}
    print(f"{'case':<66} {'ns':>7} {'net ns':>7}")
    for name, value in medians.items():
        if name.startswith("empty loop") or "many" in name:
            print(f"{name:<66} {value:7.1f}")
            continue
        empty = medians[f"empty loop ({name.rsplit('(', 1)[1].split()[0]} keys)"]
        print(f"{name:<66} {value:7.1f} {value - empty:7.1f}")


if __name__ == "__main__":
    main()
