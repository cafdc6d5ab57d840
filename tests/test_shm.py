"""RateLimiter and CircuitBreaker with store="shm://REGION": one state for many processes.

Real processes (multiprocessing, spawn and fork) share one limiter under a
frozen clock (each process freezes its own at the same instants) and must
admit exactly what one limiter admits; under the real clock, never more than
burst + rate x elapsed. Then the configuration checks, the region's
permissions, bad store strings, removal and reopening.
"""

from __future__ import annotations

import multiprocessing
import os
import re
import shutil
import signal
import stat
import subprocess
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import brace
from brace._core import LEASES_SWEEP_NS, REGION_CAPACITY_MIN, SharedRegion, clock_freeze, clock_thaw, now_ns

from processes import run_all

SECOND = 1_000_000_000
RATE, BURST = 100, 50  # one token per 10 ms
PROCESSES = 4
ATTEMPTS = 150  # per process and instant: more than a full bucket

# The instants the processes decide at, after a start T: a full bucket, 0.2 s
# later (20 tokens back), and much later (full again).
STEPS = (0, SECOND // 5, 1000 * SECOND)


@pytest.fixture
def region() -> Iterator[str]:
    name = f"brace-test-{os.getpid()}-{uuid.uuid4().hex[:12]}"
    yield name
    brace.shm.unlink(name)


def _shared(region: str, **config: Any) -> brace.RateLimiter:
    return brace.RateLimiter(**{"rate": RATE, "burst": BURST, "name": "api", "store": f"shm://{region}", **config})


def _take(limiter: brace.RateLimiter, start: int, barrier: Any, results: Any) -> None:
    """At each step's instant, ATTEMPTS requests of 1 or 2 tokens; puts the tokens taken."""
    taken = []
    for step in STEPS:
        clock_freeze(start + step)
        barrier.wait()  # every process at this instant before any takes
        taken.append(sum(n for n in (1 + i % 2 for i in range(ATTEMPTS)) if limiter.try_acquire(n)))
        barrier.wait()  # and all done before any moves on
    clock_thaw()
    results.put(taken)


def _take_spawned(region: str, start: int, barrier: Any, results: Any) -> None:
    _take(_shared(region), start, barrier, results)


def _reference(start: int) -> list[int]:
    """What one limiter admits when all the processes' requests come to it."""
    limiter = brace.RateLimiter(rate=RATE, burst=BURST)
    taken = []
    for step in STEPS:
        clock_freeze(start + step)
        taken.append(sum(n for n in (1 + i % 2 for i in range(ATTEMPTS * PROCESSES)) if limiter.try_acquire(n)))
    clock_thaw()
    return taken


@pytest.mark.parametrize("how", ["spawn", "fork-inherited", "fork-own"])
@pytest.mark.slow
def test_processes_admit_exactly_what_one_limiter_admits(region: str, how: str) -> None:
    context = multiprocessing.get_context("spawn" if how == "spawn" else "fork")
    start = now_ns() + 3600 * SECOND
    barrier, results = context.Barrier(PROCESSES), context.Queue()
    if how == "fork-inherited":  # opened here, used by the children as it is
        inherited = _shared(region)
        processes = [context.Process(target=_take, args=(inherited, start, barrier, results))
                     for _ in range(PROCESSES)]  # fmt: skip
    else:
        processes = [context.Process(target=_take_spawned, args=(region, start, barrier, results))
                     for _ in range(PROCESSES)]  # fmt: skip
    taken = run_all(processes, results)
    totals = [sum(counts[i] for counts in taken) for i in range(len(STEPS))]
    assert totals == _reference(start) == [BURST, 20, BURST]


def _hammer(region: str, attempts: int, results: Any) -> None:
    limiter = _shared(region)
    results.put(sum(limiter.try_acquire() for _ in range(attempts)))


@pytest.mark.slow
def test_under_the_real_clock_never_more_than_burst_plus_rate_times_elapsed(region: str) -> None:
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    began = now_ns()
    processes = [context.Process(target=_hammer, args=(region, 20_000, results)) for _ in range(3)]
    admitted = sum(run_all(processes, results))
    elapsed = now_ns() - began
    assert BURST <= admitted <= BURST + RATE * elapsed // SECOND


def test_limiters_of_one_slot_share_their_tokens(region: str, clock: Any) -> None:
    first, second = _shared(region), _shared(region)
    other = _shared(region, name="other")
    assert sum(first.try_acquire() + second.try_acquire() for _ in range(BURST)) == BURST
    assert other.try_acquire(BURST)  # another slot, another bucket
    assert second.state().remaining == 0
    clock.advance(0.05)
    assert first.state().remaining == 5
    # the compiled paths decide on the shared state too: the decorator, `with`, Policy
    guarded = first(lambda: "ran")
    policy = brace.Policy(limiter=second)
    with first:
        pass
    assert guarded() == "ran" and policy.call(lambda: "ran") == "ran"
    assert first.try_acquire(2) and not second.try_acquire()


@pytest.mark.parametrize(
    ("config", "differs"),
    [
        ({"rate": RATE * 2}, ["rate: 100/s there, 200/s here"]),
        ({"rate": RATE, "per": 2.0}, ["rate: 100/s there, 50/s here"]),
        ({"burst": BURST + 1}, ["burst: 50 there, 51 here"]),
        ({"rate": 1, "burst": 1}, ["rate: 100/s there, 1/s here", "burst: 50 there, 1 here"]),
    ],
)
def test_another_configuration_of_a_slot_is_refused_naming_the_fields(
    region: str, config: dict[str, Any], differs: list[str]
) -> None:
    _shared(region)
    with pytest.raises(ValueError, match="another configuration") as raised:
        _shared(region, **config)
    for field in differs:
        assert field in str(raised.value)
    assert str(raised.value).count(" there, ") == len(differs)
    _shared(region, max_wait=1.0)  # the guards' wait is this process's own


def test_a_shared_limiter_needs_a_name(region: str) -> None:
    with pytest.raises(ValueError, match="needs a name="):
        _shared(region, name=None)
    with pytest.raises(ValueError, match="1 to 63 bytes"):
        _shared(region, name="x" * 64)


@pytest.mark.parametrize(
    "store",
    ["http://localhost", "shm:/x", "SHM://x", "shm://", "shm://a/b", "shm://sp ace", "shm://x?size=",
     "shm://x?size=abc", "shm://x?size=1000", "shm://x?size=2048G", "shm://x?colour=blue", "memory", ""],
)  # fmt: skip
def test_bad_store_strings_are_refused(store: str) -> None:
    with pytest.raises(ValueError, match="store"):
        brace.RateLimiter(rate=1, name="api", store=store)


@pytest.mark.parametrize("store", [1, b"shm://x", ["shm://x"]])
def test_a_store_that_is_not_a_string_is_a_type_error(store: object) -> None:
    with pytest.raises(TypeError, match="store must be None or 'shm://REGION'"):
        brace.RateLimiter(rate=1, name="api", store=store)  # type: ignore[arg-type]


def test_the_region_is_its_owners_only_and_sized_as_asked(region: str) -> None:
    limiter = _shared(region, store=f"shm://{region}?size=2M")
    info = os.stat(f"/dev/shm/{region}")
    assert stat.S_IMODE(info.st_mode) == 0o600
    assert info.st_uid == os.getuid()
    assert info.st_size == 2 * REGION_CAPACITY_MIN
    assert limiter.store == f"shm://{region}?size=2M"
    assert f"store='shm://{region}?size=2M'" in repr(limiter)


def test_removal_and_reopening(region: str, clock: Any) -> None:
    old = _shared(region)
    assert old.try_acquire(BURST)
    assert brace.shm.unlink(region) is True
    assert brace.shm.unlink(region) is False
    assert not os.path.exists(f"/dev/shm/{region}")
    assert not old.try_acquire()  # its mapping lives on, with its state
    fresh = _shared(region, rate=1, burst=3)  # a new region: any configuration, a full bucket
    assert os.path.exists(f"/dev/shm/{region}")
    assert fresh.state().remaining == 3 and not old.try_acquire()
    with pytest.raises(ValueError, match="region name"):
        brace.shm.unlink("a/b")


def test_a_shared_limiter_is_not_reconfigured(region: str) -> None:
    limiter = _shared(region)
    with pytest.raises(ValueError, match="shared"):
        limiter.reconfigure(rate=5)
    assert limiter.rate == RATE


def test_a_shared_breaker_is_not_reconfigured(region: str) -> None:
    breaker = brace.CircuitBreaker(name="api", store=f"shm://{region}", minimum_calls=4)
    with pytest.raises(ValueError, match="shared"):
        breaker.reconfigure(minimum_calls=2)
    assert breaker.failure_rate_threshold == 0.5


def test_the_c_library_ships_with_its_header() -> None:
    assert os.path.isfile(os.path.join(brace.get_include(), "brace.h"))
    assert os.path.isfile(brace.get_library())
    with open(brace.get_library(), "rb") as library:
        assert library.read(4) == b"\x7fELF"


@pytest.mark.slow
def test_the_readmes_c_program_shares_the_limiter_with_python(region: str, tmp_path: Any) -> None:
    """The README's C example, built against the shipped header and library, takes a token
    from the bucket of a Python limiter of the same store and name."""
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    source = re.findall(r"^```c\n(.*?)^```$", readme, re.DOTALL | re.MULTILINE)[0].replace("myservice", region)
    (tmp_path / "gateway.c").write_text(source)
    compiler = shutil.which("cc") or shutil.which("gcc")
    assert compiler, "a C compiler builds the C tests too"
    program = tmp_path / "gateway"
    library = brace.get_library()
    subprocess.run([compiler, str(tmp_path / "gateway.c"), f"-I{brace.get_include()}", library,
                    f"-Wl,-rpath,{os.path.dirname(library)}", "-o", str(program)], check=True)  # fmt: skip
    python = brace.RateLimiter(rate="100/hour", burst=20, name="partner-api", store=f"shm://{region}")
    assert python.try_acquire(19)  # real time: the next token comes back in 36 s
    assert subprocess.run([program], capture_output=True, text=True, check=True).stdout == "admitted\n"
    assert subprocess.run([program], capture_output=True, text=True, check=True).stdout == "refused\n"
    assert not python.try_acquire()


# -- CircuitBreaker(store=...): one state and one window for every process

def _shared_breaker(region: str, **config: Any) -> brace.CircuitBreaker:
    settings = {"name": "db", "store": f"shm://{region}", "minimum_calls": 100, "window_size": 100,
                "failure_rate_threshold": 0.5, "wait_in_open": 3600.0}  # fmt: skip
    return brace.CircuitBreaker(**{**settings, **config})


def _fail(breaker: brace.CircuitBreaker, calls: int) -> None:
    for _ in range(calls):
        try:
            with breaker:
                raise ConnectionError("down")
        except ConnectionError:
            pass


def _fail_spawned(region: str, calls: int, barrier: Any) -> None:
    breaker = _shared_breaker(region)
    barrier.wait()
    _fail(breaker, calls)


@pytest.mark.parametrize("how", ["spawn", "fork-inherited"])
@pytest.mark.slow
def test_processes_fill_one_window_and_open_one_breaker(region: str, how: str) -> None:
    context = multiprocessing.get_context("spawn" if how == "spawn" else "fork")
    barrier = context.Barrier(PROCESSES)
    if how == "fork-inherited":
        inherited = _shared_breaker(region)
        processes = [context.Process(target=lambda: (barrier.wait(), _fail(inherited, 25))) for _ in range(PROCESSES)]
    else:
        processes = [context.Process(target=_fail_spawned, args=(region, 25, barrier)) for _ in range(PROCESSES)]
    run_all(processes)
    breaker = _shared_breaker(region)
    metrics = breaker.metrics()
    # 4 x 25 failures: the window holds every one, and the 100th opened the breaker for all
    assert (metrics.calls, metrics.failures, metrics.openings) == (100, 100, 1)
    assert breaker.state is brace.BreakerState.OPEN
    with pytest.raises(brace.CircuitOpen):
        breaker.call(lambda: None)


def test_breakers_of_one_slot_share_state_and_window(region: str) -> None:
    first, second = _shared_breaker(region), _shared_breaker(region)
    assert first.store == f"shm://{region}"
    _fail(first, 30)
    assert second.metrics().failures == 30
    second.force_open()
    assert first.state is brace.BreakerState.FORCED_OPEN
    guarded, policy = first(lambda: "ran"), brace.Policy(breaker=second)
    with pytest.raises(brace.CircuitOpen):
        guarded()
    with pytest.raises(brace.CircuitOpen):
        policy.call(lambda: "ran")
    first.reset()
    assert second.state is brace.BreakerState.CLOSED and second.metrics().calls == 0
    assert guarded() == "ran" and policy.call(lambda: "ran") == "ran"
    assert first.metrics().calls == 2


@pytest.mark.parametrize(
    ("config", "differs"),
    [
        ({"failure_rate_threshold": 0.25}, ["failure_rate_threshold: 0.5 there, 0.25 here"]),
        ({"window_size": 200}, ["window_size: 100 there, 200 here"]),
        ({"window": "time", "window_size": 10}, ["window: count there, time here", "window_size: 100 there, 10 here",
                                                 "window_bucket: 0 s there, 1 s here"]),
        ({"wait_in_open": 5.0}, ["wait_in_open: 3600 s there, 5 s here", "max_wait_in_open: 3600 s there, 5 s here"]),
        ({"consecutive_failures": 3}, ["consecutive_failures: 0 there, 3 here"]),
    ],
)  # fmt: skip
def test_another_configuration_of_a_breakers_slot_is_refused_naming_the_fields(
    region: str, config: dict[str, Any], differs: list[str]
) -> None:
    _shared_breaker(region)
    with pytest.raises(ValueError, match="another configuration") as raised:
        _shared_breaker(region, **config)
    for field in differs:
        assert field in str(raised.value)
    assert str(raised.value).count(" there, ") == len(differs)
    # what each process keeps its own may differ
    _shared_breaker(region, slow_call_duration=1.0, record=OSError, record_result=lambda result: False)


def test_a_slot_of_another_kind_and_a_missing_name(region: str) -> None:
    _shared(region)  # a RateLimiter named "api"
    with pytest.raises(ValueError, match="another kind of primitive than a CircuitBreaker"):
        _shared_breaker(region, name="api")
    _shared_breaker(region)  # a CircuitBreaker named "db"
    with pytest.raises(ValueError, match="another kind of primitive than a RateLimiter"):
        _shared(region, name="db")
    with pytest.raises(ValueError, match="needs a name="):
        _shared_breaker(region, name=None)


# -- RetryBudget(store=...): one balance for every process

DEPOSITS = 50  # per process: 0.2 x 4 x 50 = 40 tokens, on a floor of 1/s x 10 s = 10


def _shared_budget(region: str, **config: Any) -> brace.RetryBudget:
    settings = {"name": "retries", "store": f"shm://{region}", "ratio": 0.2, "min_per_second": 1, "ttl": 10.0}
    return brace.RetryBudget(**{**settings, **config})


def _spend(region: str, start: int, barrier: Any, results: Any) -> None:
    budget = _shared_budget(region)
    clock_freeze(start)
    for _ in range(DEPOSITS):
        budget.deposit()
    barrier.wait()  # every deposit made before any withdrawal
    results.put(sum(budget.try_withdraw() for _ in range(100)))
    clock_thaw()


@pytest.mark.slow
def test_processes_spend_one_balance_exactly(region: str) -> None:
    context = multiprocessing.get_context("spawn")
    start = now_ns() + 3600 * SECOND
    barrier, results = context.Barrier(PROCESSES), context.Queue()
    processes = [context.Process(target=_spend, args=(region, start, barrier, results)) for _ in range(PROCESSES)]
    withdrawn = sum(run_all(processes, results))
    reference = brace.RetryBudget(ratio=0.2, min_per_second=1, ttl=10.0)
    clock_freeze(start)
    for _ in range(DEPOSITS * PROCESSES):
        reference.deposit()
    expected = sum(reference.try_withdraw() for _ in range(100 * PROCESSES))
    clock_thaw()
    assert withdrawn == expected == 50


@pytest.mark.parametrize(
    ("config", "differs"),
    [({"ratio": 0.25}, ["ratio: 0.2 there, 0.25 here"]), ({"min_per_second": 2}, ["min_per_second: 1 there, 2 here"]),
     ({"ttl": 5.0, "ratio": 1.0}, ["ratio: 0.2 there, 1 here", "ttl: 10 s there, 5 s here"])],
)  # fmt: skip
def test_another_configuration_of_a_budgets_slot_is_refused_naming_the_fields(
    region: str, config: dict[str, Any], differs: list[str]
) -> None:
    first = _shared_budget(region)
    assert first.store == f"shm://{region}"
    with pytest.raises(ValueError, match="another configuration") as raised:
        _shared_budget(region, **config)
    for field in differs:
        assert field in str(raised.value)
    assert str(raised.value).count(" there, ") == len(differs)
    with pytest.raises(ValueError, match="needs a name="):
        _shared_budget(region, name=None)


def test_budgets_of_one_slot_share_their_balance(region: str, clock: Any) -> None:
    first, second = _shared_budget(region), _shared_budget(region)
    for _ in range(10):
        first.deposit()
    assert second.balance == first.balance == 12.0
    assert sum(second.try_withdraw() for _ in range(20)) == 12 and not first.try_withdraw()


# -- regions that cannot be used: a clear OSError, and unlink as the way out

def _dead_pid() -> int:
    child = multiprocessing.get_context("fork").Process(target=lambda: None)
    child.start()
    child.join()
    assert child.pid is not None
    return child.pid


def test_a_region_of_another_layout_is_refused(region: str) -> None:
    SharedRegion(region, REGION_CAPACITY_MIN)  # made, as by another program (this process keeps no mapping)
    with open(f"/dev/shm/{region}", "r+b") as raw:
        raw.seek(8)  # brc_region_header_t.version
        raw.write((2**32).to_bytes(8, "little"))
    with pytest.raises(OSError, match="has another layout"):
        _shared(region)
    assert brace.shm.unlink(region)
    assert _shared(region).try_acquire()


def test_a_region_whose_creator_died_half_way_is_reported_then_removed(region: str) -> None:
    with open(f"/dev/shm/{region}", "wb") as raw:  # sized, no magic: what a creator leaves when killed
        raw.truncate(REGION_CAPACITY_MIN)
        raw.seek(112)  # brc_region_header_t.creator
        raw.write(_dead_pid().to_bytes(8, "little"))
    with pytest.raises(OSError, match="died before finishing it: unlink it"):
        _shared(region)
    assert brace.shm.unlink(region)
    assert _shared(region).try_acquire()


# -- a shared breaker's probes: one whose process dies cannot keep it HALF_OPEN for ever


def _probe_and_hang(region: str, ready: Any) -> None:
    breaker = _probing_breaker(region)
    with breaker:  # the probe: the breaker is HALF_OPEN while it runs
        ready.set()
        threading.Event().wait()  # until killed


def _probing_breaker(region: str, **config: Any) -> brace.CircuitBreaker:
    return brace.CircuitBreaker(**{"name": "probed", "store": f"shm://{region}", "consecutive_failures": 1,
                                   "wait_in_open": 10.0, "half_open_calls": 1, **config})  # fmt: skip


def _raise_down() -> None:
    raise ConnectionError("down")


def _kill_a_prober(region: str, clock: Any) -> None:
    """Opens the breaker, lets a forked process (on the frozen clock) take the one probe, kills it."""
    breaker = _probing_breaker(region)
    with pytest.raises(ConnectionError):
        breaker.call(_raise_down)
    assert breaker.state is brace.BreakerState.OPEN
    clock.advance(10.0)
    context = multiprocessing.get_context("fork")
    ready = context.Event()
    prober = context.Process(target=_probe_and_hang, args=(region, ready))
    prober.start()  # it inherits the frozen clock, and takes the one probe
    assert ready.wait(30)
    assert prober.pid is not None
    with pytest.raises(brace.CircuitOpen):  # alive: its probe stays out (this call swept and found it alive)
        breaker.call(lambda: None)
    os.kill(prober.pid, signal.SIGKILL)
    prober.join(30)
    assert prober.exitcode == -signal.SIGKILL
    assert breaker.state is brace.BreakerState.HALF_OPEN


def test_a_dead_processs_probe_comes_back_within_the_sweep_spacing(region: str) -> None:
    with brace.testing.fake_clock(autojump=None) as clock:
        _kill_a_prober(region, clock)
        breaker = _probing_breaker(region)
        clock.advance(LEASES_SWEEP_NS / 1e9 / 2)
        with pytest.raises(brace.CircuitOpen):  # dead, but the last sweep (the alive one) was 5 ms ago
            breaker.call(lambda: None)
        clock.advance(LEASES_SWEEP_NS / 1e9 / 2)
        assert breaker.call(lambda: "probe") == "probe"  # 10 ms on: swept, given back, and it closes
        assert breaker.state is brace.BreakerState.CLOSED
        assert breaker.metrics().openings == 0


def test_a_dead_processs_probe_comes_back_in_another_process(region: str) -> None:
    """The dead probe comes back to the first caller of any process (here a spawned one, on the real clock)."""
    with brace.testing.fake_clock(autojump=None) as clock:
        _kill_a_prober(region, clock)
    context = multiprocessing.get_context("spawn")
    closer = context.Process(target=_close_by_probing, args=(region,))
    closer.start()
    closer.join(60)
    assert closer.exitcode == 0
    assert _probing_breaker(region).state is brace.BreakerState.CLOSED


def _close_by_probing(region: str) -> None:
    breaker = _probing_breaker(region)
    assert breaker.call(lambda: "probe") == "probe"  # the sweep spacing has passed on any clock
    assert breaker.state is brace.BreakerState.CLOSED


def test_a_shared_breakers_max_wait_in_half_open_defaults_to_a_bound(region: str) -> None:
    _probing_breaker(region)
    with pytest.raises(ValueError, match="max_wait_in_half_open: 60 s there, 0 s here"):
        _probing_breaker(region, max_wait_in_half_open=None)
    _probing_breaker(region, max_wait_in_half_open=60.0)  # the default, spelt out
