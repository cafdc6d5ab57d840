"""One limiter for every worker of a real multi-worker server (issue 13, in the field).

gunicorn with 4 sync workers and uvicorn with 4 workers, started here on a free loopback
port, serve tests/workers_app.py, whose GET /limited is limited by a
`brace.RateLimiter(rate="1/hour", burst=BURST, name=..., store=...)` that every worker
makes for itself. Clients in several threads send 4 x BURST requests on fresh connections.
With store="shm://REGION" the workers admit BURST in all, exactly, whichever workers served
them; with store=None each worker admits its own BURST (what the store fixes).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import httpx
import pytest

import brace

pytestmark = pytest.mark.slow

TESTS = Path(__file__).resolve().parent
WORKERS = 4
BURST = 10
REQUESTS = WORKERS * BURST
CLIENTS = 8  # threads sending at once: more than the workers, so that every worker is kept busy
READY_WITHIN = 90.0  # seconds for a server to answer its first request (a slow machine spawning 4 workers)

SERVERS = {
    "gunicorn": lambda port: [sys.executable, "-m", "gunicorn", "--workers", str(WORKERS), "--worker-class", "sync",
                              "--bind", f"127.0.0.1:{port}", "--chdir", str(TESTS), "workers_app:wsgi"],
    "uvicorn": lambda port: [sys.executable, "-m", "uvicorn", "--workers", str(WORKERS), "--host", "127.0.0.1",
                             "--port", str(port), "--app-dir", str(TESTS), "--no-access-log", "workers_app:asgi"],
}  # fmt: skip


@pytest.fixture
def region() -> Iterator[str]:
    name = f"brace-workers-{os.getpid()}-{uuid.uuid4().hex[:12]}"
    yield name
    brace.shm.unlink(name)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def _serving(server: str, store: str | None) -> Iterator[str]:
    """The server, its own process group, answering on http://127.0.0.1:PORT; killed, group and all, after."""
    port = _free_port()
    env = {**os.environ, "BRACE_WORKERS_STORE": store or "", "BRACE_WORKERS_BURST": str(BURST)}
    with tempfile.TemporaryFile() as log:  # the server's output, for a failure's message (a pipe could fill)
        process = subprocess.Popen(SERVERS[server](port), env=env, start_new_session=True, stdout=log,
                                   stderr=subprocess.STDOUT)  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_until_it_answers(process, url, log)
            yield url
        finally:
            _kill_group(process, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                _kill_group(process, signal.SIGKILL)
                process.wait()


def _kill_group(process: subprocess.Popen[bytes], signal_number: int) -> None:
    try:
        os.killpg(process.pid, signal_number)
    except ProcessLookupError:  # the server and its workers are gone already
        pass


def _pid(url: str) -> int | None:
    """The pid of the worker that answered GET /pid on a fresh connection, or None if none did."""
    try:
        response = httpx.get(f"{url}/pid", headers={"Connection": "close"}, timeout=5.0)
    except httpx.TransportError:
        return None
    return int(response.json()["pid"]) if response.status_code == 200 else None


def _output(log: IO[bytes]) -> str:
    log.seek(0)
    return log.read().decode(errors="replace")


def _wait_until_it_answers(process: subprocess.Popen[bytes], url: str, log: IO[bytes]) -> None:
    """Polls the port with rounds of CLIENTS requests at once until every worker has answered (a busy
    worker leaves the next connection to the others); fails with the server's output at the deadline."""
    deadline, seen = time.monotonic() + READY_WITHIN, set[int]()
    with ThreadPoolExecutor(CLIENTS) as pool:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(f"the server exited ({process.returncode}) before its workers answered:\n{_output(log)}")
            answered = {pid for pid in pool.map(_pid, [url] * CLIENTS) if pid is not None}
            seen |= answered
            if len(seen) == WORKERS:
                return
            if not answered:
                time.sleep(0.05)  # not listening or no worker yet: poll again, until the deadline
    pytest.fail(f"{len(seen)} of {WORKERS} workers answered within {READY_WITHIN} s:\n{_output(log)}")


def _request(url: str) -> tuple[int, int]:
    """(status, pid) of one GET /limited on a fresh connection (so that any worker may take it)."""
    response = httpx.get(f"{url}/limited", headers={"Connection": "close"}, timeout=30.0)
    assert response.status_code in (200, 429), response.text
    return response.status_code, int(response.json()["pid"])


def _hammer(url: str) -> tuple[Counter[int], Counter[int]]:
    """REQUESTS requests from CLIENTS threads: (requests served, requests admitted) per worker pid."""
    with ThreadPoolExecutor(CLIENTS) as pool:
        answers = list(pool.map(_request, [url] * REQUESTS))
    served = Counter(pid for _, pid in answers)
    admitted = Counter(pid for status, pid in answers if status == 200)
    return served, admitted


@pytest.mark.parametrize("server", sorted(SERVERS))
def test_the_workers_of_a_server_admit_what_one_limiter_admits(server: str, region: str) -> None:
    with _serving(server, f"shm://{region}") as url:
        served, admitted = _hammer(url)
    assert sum(served.values()) == REQUESTS
    assert len(served) >= 2, f"one worker served every request: {served}"
    assert sum(admitted.values()) == BURST, f"admitted per worker {dict(admitted)}, served {dict(served)}"
    # the bucket is the region's: a process that opens it now finds it empty
    assert not brace.RateLimiter(rate="1/hour", burst=BURST, name="workers-api", store=f"shm://{region}").try_acquire()

    # the same server and traffic, each worker with a limiter of its own
    with _serving(server, None) as url:
        served, admitted = _hammer(url)
    assert len(served) >= 2, f"one worker served every request: {served}"
    assert admitted == Counter({pid: min(BURST, count) for pid, count in served.items()})
    assert sum(admitted.values()) > BURST
