#!/usr/bin/env python3
"""Hedged requests against a server with a slow tail: what brace.Hedge does to p99.

A local HTTP/1.1 server on 127.0.0.1 (http.server's ThreadingHTTPServer, an
ephemeral port, started here) answers each request after a drawn latency:
most in `--fast` ms, a fraction `--slow-share` in `--slow` ms (seeded; drawn
per request received, so a hedged copy of a slow request is as likely to be
fast as any other request). A few client threads send `--requests` GETs
through one httpx.Client, once without hedging and once through
brace.Hedge(delay="p95"), and the script prints the latency percentiles the
callers saw and the extra requests the server received.

The target (brace's issue on hedging): hedging at p95 cuts p99 by at least
half for no more than 10% extra requests.

    python benchmarks/hedging.py [--requests 2000] [--threads 1] [--seed 7]
"""

from __future__ import annotations

import argparse
import multiprocessing
import random
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

import brace


class SlowTailServer(ThreadingHTTPServer):
    """Answers GET / after a seeded latency draw; counts the requests it received."""

    daemon_threads = True

    def __init__(self, fast: float, slow: float, slow_share: float, seed: int) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.fast, self.slow, self.slow_share = fast, slow, slow_share
        self.random = random.Random(seed)
        self.lock = threading.Lock()
        self.received = 0

    def latency(self) -> float:
        with self.lock:
            self.received += 1
            return self.slow if self.random.random() < self.slow_share else self.fast


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms delayed-ACK stall
    server: SlowTailServer

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        if self.path == "/count":  # not a request of the run: the count so far
            body = str(self.server.received).encode()
        else:
            time.sleep(self.server.latency())
            body = b"ok"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


def serve(fast: float, slow: float, slow_share: float, seed: int, port: Any) -> None:
    """The server, in a process of its own (so that its threads and the clients' share no GIL)."""
    server = SlowTailServer(fast, slow, slow_share, seed)
    port.send(server.server_address[1])
    server.serve_forever()


def run(send: Callable[[], None], requests: int, threads: int) -> list[float]:
    """Sends `requests` requests from `threads` threads; the latency each caller saw, in s."""
    latencies: list[float] = []
    lock = threading.Lock()
    per_thread = requests // threads

    def client() -> None:
        mine = []
        for _ in range(per_thread):
            start = time.perf_counter()
            send()
            mine.append(time.perf_counter() - start)
        with lock:
            latencies.extend(mine)

    workers = [threading.Thread(target=client) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return latencies


def percentile(sorted_values: list[float], q: float) -> float:
    return sorted_values[max(0, round(q / 100 * len(sorted_values) + 0.5) - 1)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--fast", type=float, default=0.002, help="seconds (default 0.002)")
    parser.add_argument("--slow", type=float, default=0.040, help="seconds (default 0.040)")
    parser.add_argument("--slow-share", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=7)
    options = parser.parse_args()

    rows = []
    hedge = brace.Hedge(name="bench", delay="p95", max_hedged=1)
    for label, hedged in (("no hedging", False), ('Hedge(delay="p95")', True)):
        port, child_port = multiprocessing.Pipe()
        server = multiprocessing.Process(target=serve, daemon=True, args=(
            options.fast, options.slow, options.slow_share, options.seed, child_port))  # fmt: skip
        server.start()
        url = f"http://127.0.0.1:{port.recv()}/"
        with httpx.Client(limits=httpx.Limits(max_connections=64, max_keepalive_connections=64)) as client:

            def send() -> None:
                client.get(url).raise_for_status()

            call = (lambda: hedge.call(send)) if hedged else send
            run(call, 100, options.threads)  # warm-up: connections, and the histogram
            before = int(client.get(url + "count").text)
            latencies = sorted(run(call, options.requests, options.threads))
            time.sleep(options.slow * 2)  # losers still running reach the server's count
            received = int(client.get(url + "count").text) - before
        server.terminate()
        server.join()
        extra = (received - len(latencies)) / len(latencies)
        rows.append((label, *(percentile(latencies, q) * 1000 for q in (50, 95, 99)), extra * 100))

    print(f"{options.requests} requests from {options.threads} threads; server: {options.fast * 1000:g} ms, "
          f"{options.slow_share:.0%} at {options.slow * 1000:g} ms (seed {options.seed})")  # fmt: skip
    print(f"{'case':<22}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'extra requests':>16}")
    for label, p50, p95, p99, extra in rows:
        print(f"{label:<22}{p50:>9.2f}{p95:>9.2f}{p99:>9.2f}{extra:>15.1f}%")
    cut = 1 - rows[1][3] / rows[0][3]
    met = cut >= 0.5 and rows[1][4] <= 10
    print(f"p99 cut by {cut:.0%} for {rows[1][4]:.1f}% extra requests: target (>= 50% for <= 10%) "
          f"{'met' if met else 'not met'}")  # fmt: skip
    return 0 if met else 1


if __name__ == "__main__":
    raise SystemExit(main())
