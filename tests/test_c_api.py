"""The shipped C library (brace.get_library(), brace.get_include()) deciding with Python.

examples/gateway, built by CMake against the installed brace, runs at once with Python
processes on one shared limiter: together they admit exactly what one limiter admits, and
the breaker the gateways share is the one a Python CircuitBreaker of that name reads. Then
libbrace.so driven through cffi's ABI mode (dlopen, prototypes copied from brace.h) from
spawned processes, with Python limiters in other processes, at the same frozen instants:
the same totals as one limiter.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import brace
from brace._core import clock_freeze, clock_thaw, now_ns

from processes import run_all

ROOT = Path(__file__).resolve().parent.parent
SECOND = 1_000_000_000


@pytest.fixture
def region() -> Iterator[str]:
    name = f"brace-capi-{os.getpid()}-{uuid.uuid4().hex[:12]}"
    yield name
    brace.shm.unlink(name)


# -- examples/gateway, built with CMake, with Python processes

GATEWAYS, PYTHONS = 2, 2
BURST = 100_000  # deep enough that the race for it lasts longer than the processes take to start
ATTEMPTS = BURST  # per process: each could take the whole bucket alone


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """examples/gateway built as its README says, into a temporary directory."""
    cmake = shutil.which("cmake")
    assert cmake, "cmake is in the test extra"
    build = tmp_path_factory.mktemp("gateway")
    generator = ["-G", "Ninja"] if shutil.which("ninja") else []
    subprocess.run([cmake, "-S", str(ROOT / "examples" / "gateway"), "-B", str(build), *generator,
                    f"-DBRACE_INCLUDE_DIR={brace.get_include()}", f"-DBRACE_LIBRARY={brace.get_library()}"],
                   check=True, capture_output=True)  # fmt: skip
    subprocess.run([cmake, "--build", str(build)], check=True, capture_output=True)
    return build / "gateway"


def _python_client(region: str, barrier: Any, results: Any) -> None:
    limiter = brace.RateLimiter(rate="1/hour", burst=BURST, name="gateway-api", store=f"shm://{region}")
    barrier.wait()
    results.put(sum(limiter.try_acquire() for _ in range(ATTEMPTS)))


def _counts(line: str) -> dict[str, int]:
    return {key: int(value) for key, value in (field.split("=") for field in line.split())}


@pytest.mark.slow
def test_the_gateway_and_python_processes_admit_what_one_limiter_admits(gateway: Path, region: str) -> None:
    command = [str(gateway), "-r", region, "-l", "gateway-api", "-p", "1", "-b", str(BURST), "-n", str(ATTEMPTS), "-s"]
    gateways = [subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
                for _ in range(GATEWAYS)]  # fmt: skip
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(PYTHONS + 1), context.Queue()
    pythons = [context.Process(target=_python_client, args=(region, barrier, results)) for _ in range(PYTHONS)]
    try:
        for process in gateways:
            assert process.stdout is not None and process.stdout.readline() == "ready\n"
        for python in pythons:
            python.start()
        barrier.wait(timeout=120)  # every Python client ready: release them and the gateways at once
        for process in gateways:
            assert process.stdin is not None
            process.stdin.write("go\n")
            process.stdin.flush()
        by_python = [results.get(timeout=120) for _ in pythons]
        by_gateway = [_counts(process.communicate(timeout=120)[0]) for process in gateways]
    finally:
        for process in gateways:
            process.kill()
            process.wait()
        for python in pythons:
            python.join(timeout=120)
    assert all(process.returncode == 0 for process in gateways)
    assert all(python.exitcode == 0 for python in pythons)
    for counts in by_gateway:
        assert counts["admitted"] + counts["limited"] == ATTEMPTS and counts["open"] == counts["failed"] == 0
    admitted_by_c = sum(counts["admitted"] for counts in by_gateway)
    assert admitted_by_c + sum(by_python) == BURST, (by_gateway, by_python)
    # the gateways' breaker, read from Python: the calls they forwarded, in one window of 100
    upstream = brace.CircuitBreaker(name="upstream", store=f"shm://{region}", minimum_calls=20, wait_in_open=30.0,
                                    half_open_calls=1)  # fmt: skip
    assert upstream.metrics().calls == min(100, admitted_by_c)
    assert upstream.state is brace.BreakerState.CLOSED


def test_the_gateway_refuses_a_configuration_the_region_holds_otherwise(gateway: Path, region: str) -> None:
    brace.RateLimiter(rate="2/hour", burst=BURST, name="gateway-api", store=f"shm://{region}")
    result = subprocess.run([str(gateway), "-r", region, "-l", "gateway-api", "-p", "1", "-b", str(BURST)],
                            capture_output=True, text=True)  # fmt: skip
    assert result.returncode == 1
    assert "gateway-api: the shared slot exists with another kind or configuration (BRC_EEXIST)" in result.stderr


# -- libbrace.so through cffi's ABI mode

CDEF = """
typedef struct brc_region_s brc_region_t;
typedef struct brc_gcra_s brc_gcra_t;
const char *brc_strerror(int status);
uint64_t brc_now_ns(void);
int brc_region_open(const char *name, uint64_t capacity, brc_region_t **out);
void brc_region_close(brc_region_t *r);
int brc_region_gcra(brc_region_t *r, const char *slot_name, uint64_t interval, uint64_t burst, brc_gcra_t **out);
int brc_gcra_acquire(brc_gcra_t *g, uint64_t n, uint64_t now, uint64_t max_wait, uint64_t *wait);
"""  # copied from brace.h
BRC_OK, BRC_REFUSED = 0, 1
RATE, CFFI_BURST = 100, 50  # one token per 10 ms
INSTANTS = (0, SECOND // 5, 1000 * SECOND)  # a full bucket, 20 tokens back, full again
REQUESTS = 150  # per process and instant, of 1 or 2 tokens
CFFIS, LIMITERS = 2, 2


class Library:
    """libbrace.so, dlopen()ed by cffi, and one limiter of a region opened through it."""

    def __init__(self, region: str, slot: str) -> None:
        import cffi

        self.ffi = cffi.FFI()
        self.ffi.cdef(CDEF)
        self.lib = self.ffi.dlopen(brace.get_library())
        handle, limiter = self.ffi.new("brc_region_t **"), self.ffi.new("brc_gcra_t **")
        self._check(self.lib.brc_region_open(region.encode(), 64 << 20, handle))
        self.region = handle[0]
        self._check(self.lib.brc_region_gcra(self.region, slot.encode(), SECOND // RATE, CFFI_BURST, limiter))
        self.limiter = limiter[0]

    def _check(self, status: int) -> None:
        assert status == BRC_OK, self.ffi.string(self.lib.brc_strerror(status)).decode()

    def acquire(self, n: int, now: int) -> bool:
        status = self.lib.brc_gcra_acquire(self.limiter, n, now, 0, self.ffi.NULL)
        assert status in (BRC_OK, BRC_REFUSED), self.ffi.string(self.lib.brc_strerror(status)).decode()
        return bool(status == BRC_OK)

    def close(self) -> None:
        self.lib.brc_region_close(self.region)


def _python_limiter(region: str) -> brace.RateLimiter:
    return brace.RateLimiter(rate=RATE, burst=CFFI_BURST, name="api", store=f"shm://{region}")


def _sizes() -> list[int]:
    return [1 + i % 2 for i in range(REQUESTS)]


def _by_cffi(region: str, start: int, barrier: Any, results: Any) -> None:
    library = Library(region, "api")
    taken = []
    for instant in INSTANTS:
        barrier.wait()  # every process at this instant before any takes
        taken.append(sum(n for n in _sizes() if library.acquire(n, start + instant)))
        barrier.wait()  # and all done before any moves on
    library.close()
    results.put(taken)


def _by_python(region: str, start: int, barrier: Any, results: Any) -> None:
    limiter = _python_limiter(region)
    taken = []
    for instant in INSTANTS:
        clock_freeze(start + instant)
        barrier.wait()
        taken.append(sum(n for n in _sizes() if limiter.try_acquire(n)))
        barrier.wait()
    clock_thaw()
    results.put(taken)


@pytest.mark.slow
def test_cffi_and_python_processes_admit_what_one_limiter_admits(region: str) -> None:
    context = multiprocessing.get_context("spawn")
    start = now_ns() + 3600 * SECOND
    barrier, results = context.Barrier(CFFIS + LIMITERS), context.Queue()
    processes = [context.Process(target=_by_cffi, args=(region, start, barrier, results)) for _ in range(CFFIS)]
    processes += [context.Process(target=_by_python, args=(region, start, barrier, results)) for _ in range(LIMITERS)]
    taken = run_all(processes, results)
    totals = [sum(counts[i] for counts in taken) for i in range(len(INSTANTS))]
    reference = brace.RateLimiter(rate=RATE, burst=CFFI_BURST)
    expected = []
    for instant in INSTANTS:
        clock_freeze(start + instant)
        expected.append(sum(n for n in _sizes() * (CFFIS + LIMITERS) if reference.try_acquire(n)))
    clock_thaw()
    assert totals == expected == [CFFI_BURST, 20, CFFI_BURST]


def test_cffi_and_a_python_limiter_in_one_process_take_from_one_bucket(region: str, clock: Any) -> None:
    python = _python_limiter(region)
    library = Library(region, "api")
    now = now_ns()  # the frozen clock: the C calls are given the instant the Python limiter decides at
    try:
        assert python.try_acquire(CFFI_BURST - 1)
        assert library.acquire(1, now) and not library.acquire(1, now)
        assert not python.try_acquire()
        clock.advance(0.05)  # 5 tokens back, for both
        assert library.acquire(3, now_ns()) and python.try_acquire(2) and not python.try_acquire()
    finally:
        library.close()
