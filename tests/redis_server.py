"""A real redis-server (or valkey-server) for the tests: started on a free loopback port with no
persistence, in its own directory, stopped (and restarted on the same port) at will."""

from __future__ import annotations

import asyncio
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class RedisServer:
    """One server process on 127.0.0.1:port; `stop()` ends it, `start()` starts it again
    on the same port (empty: nothing is saved)."""

    def __init__(self, binary: str, directory: Path) -> None:
        self.binary = binary
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.directory), "--enable-debug-command", "local",
             "--unixsocket", str(self.directory / "redis.sock"), "--unixsocketperm", "700"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as connection:
                    connection.sendall(b"PING\r\n")
                    if connection.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{self.binary} did not start on 127.0.0.1:{self.port}")
            time.sleep(0.02)

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)
            self.process = None

    def pause(self) -> None:
        """Freezes the server (SIGSTOP): connections stay open and every reply hangs, as on a
        host that stopped answering."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def client(self) -> object:
        import redis

        return redis.Redis(port=self.port, socket_timeout=5)


async def ticks_while_paused(db: Any, work: Callable[[], Awaitable[object]]) -> tuple[int, float]:
    """(turns a 5 ms ticker had, seconds) while `work()` ran with the server paused for 120 ms:
    a coroutine that waits on the socket in the loop's thread stops the ticker."""
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.005)
            ticks += 1

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0.02)
    db.execute_command("CLIENT", "PAUSE", 120, "ALL")  # the server answers no one for 120 ms
    began, before = time.monotonic(), ticks
    await work()
    waited, ticked = time.monotonic() - began, ticks - before
    task.cancel()
    return ticked, waited


def redis_binary() -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed: the Redis store's tests need a real server "
                    "(Debian: apt-get install redis-server)")  # fmt: skip
    return binary


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of the test's own, stopped after it (import it into a test module)."""
    running = RedisServer(redis_binary(), tmp_path)
    running.start()
    yield running
    running.stop()
