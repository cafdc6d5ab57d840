#!/usr/bin/env python3
"""What brace's HTTP integrations add to a request: httpx and requests, plain and through brace,
against a local keep-alive server.

The server runs in a process of its own (a threaded http.server answering 2 bytes), so that
its threads do not take the client's GIL. Each case sends `--requests` GETs over one
keep-alive connection per repeat; the cases take turns, repeat after repeat, and each
figure is measured twice: the wall clock per request (what a caller waits for: the client,
the server and loopback) and this process's CPU time per request (the client's own work).
A case's overhead is the median, over the rounds, of its time over the plain client's in
the same round, so that a slow spell of a shared machine falls on both sides of each
ratio. Then what one request allocates (tracemalloc: blocks alive after 1,000 requests,
and the peak), plain and through brace, and the cost of the decisions alone (a host's
pause and its adaptive limit, checked without sending).

    python benchmarks/http_overhead.py               # about a minute
    python benchmarks/http_overhead.py --quick       # a few seconds

Instructions per request, which a busy machine does not change: each case's requests run under
valgrind twice, with `--count 200` and `--count 0` (gc off), the difference divided by 200:

    python benchmarks/http_overhead.py --instructions    # about ten minutes; needs valgrind
"""

from __future__ import annotations

import argparse
import gc
import os
import re
import statistics
import subprocess
import sys
import time
import timeit
import tracemalloc
from collections.abc import Callable
from importlib import metadata

import httpx
import requests

import brace
from brace.integrations import Hosts
from brace.integrations.httpx import Transport
from brace.integrations.requests import Adapter

SERVER = r"""
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # the answer's two writes must not wait for a delayed ACK
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")
    def log_message(self, *args):
        pass

server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
"""


def start_server() -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen([sys.executable, "-c", SERVER], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    port = int(process.stdout.readline())
    return process, f"http://127.0.0.1:{port}"


def clients(url: str) -> dict[str, Callable[[], object]]:
    """Each case: a pre-bound call making one request (its client made once, kept alive)."""
    plain_httpx = httpx.Client(base_url=url, transport=httpx.HTTPTransport(retries=0))
    brace_httpx = httpx.Client(base_url=url, transport=Transport(hosts=Hosts()))
    brace_httpx_adaptive = httpx.Client(base_url=url, transport=Transport(hosts=Hosts(adaptive="rate")))
    brace_httpx_bare = httpx.Client(base_url=url, transport=Transport(hosts=Hosts(), correlation_header=None))
    # What any one more header costs httpx, brace aside: the correlation header's share of brace's cost.
    plain_httpx_header = httpx.Client(base_url=url, transport=httpx.HTTPTransport(retries=0),
                                      headers={"X-Request-ID": "f0153164a35b204e00000000000186a0"})  # fmt: skip
    plain_requests = requests.Session()
    brace_requests = requests.Session()
    brace_requests.mount("http://", Adapter(hosts=Hosts()))
    path = url + "/r"
    return {
        "httpx Client.get": lambda: plain_httpx.get("/r"),
        "httpx Client.get through brace Transport": lambda: brace_httpx.get("/r"),
        "httpx ... Transport, Hosts(adaptive='rate')": lambda: brace_httpx_adaptive.get("/r"),
        "httpx ... Transport, correlation_header=None": lambda: brace_httpx_bare.get("/r"),
        "httpx Client.get, one more header (no brace)": lambda: plain_httpx_header.get("/r"),
        "requests Session.get": lambda: plain_requests.get(path),
        "requests Session.get through brace Adapter": lambda: brace_requests.get(path),
    }


def time_cases(cases: dict[str, Callable[[], object]], number: int,
               repeats: int) -> tuple[dict[str, list[float]], dict[str, list[float]]]:  # fmt: skip
    """Per case, the seconds per request of each repeat: (wall clock, this process's CPU).

    The repeats of every case take turns, so that each round measures every case within
    a few hundred milliseconds of the others, and each round begins one case further on, so
    that no case always follows the same one (whose garbage, caches and sockets it inherits)."""
    wall: dict[str, list[float]] = {name: [] for name in cases}
    cpu: dict[str, list[float]] = {name: [] for name in cases}
    for case in cases.values():
        case()  # connect, warm up
    gc.disable()
    try:
        order = list(cases.items())
        for round_ in range(repeats):
            for name, case in order[round_ % len(order):] + order[: round_ % len(order)]:
                started, used = time.perf_counter(), time.process_time()
                for _ in range(number):
                    case()
                wall[name].append((time.perf_counter() - started) / number)
                cpu[name].append((time.process_time() - used) / number)
    finally:
        gc.enable()
    return wall, cpu


def overhead(samples: dict[str, list[float]], name: str, base: str) -> float:
    """The median over rounds of a case's time over its plain client's in the same round,
    less 1: a slow spell of a shared machine falls on both sides of each ratio."""
    return statistics.median(mine / theirs for mine, theirs in zip(samples[name], samples[base])) - 1


def allocations(case: Callable[[], object], calls: int = 1000) -> tuple[int, int]:
    """(bytes alive after `calls` requests, peak bytes above the start) under tracemalloc."""
    case()
    gc.collect()
    tracemalloc.start()
    start, _ = tracemalloc.get_traced_memory()
    tracemalloc.reset_peak()
    for _ in range(calls):
        case()
    gc.collect()
    end, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return end - start, peak - start


def decisions(number: int) -> dict[str, float]:
    """The success path's decisions alone, ns per check: a host's pause, its adaptive limit."""
    table = Hosts(adaptive="rate")
    host = table.host("http://example:80")
    throttle = Hosts(adaptive="throttle").host("http://example:80")
    adaptive, shed = host.adaptive, throttle.adaptive
    assert isinstance(adaptive, brace.AdaptiveRateLimiter) and isinstance(shed, brace.ClientThrottle)
    return {
        "Hosts.host(key) (the table's lookup)": timeit.timeit(lambda: table.host("http://example:80"), number=number) / number * 1e9,
        "Gate.remaining() (the host's pause)": timeit.timeit(host.gate.remaining, number=number) / number * 1e9,
        "AdaptiveRateLimiter.try_acquire()": timeit.timeit(adaptive.try_acquire, number=number) / number * 1e9,
        "ClientThrottle.try_acquire()": timeit.timeit(shed.try_acquire, number=number) / number * 1e9,
    }


def instructions(names: list[str], count: int) -> dict[str, int]:
    """Each case's instructions per request under callgrind: `count` requests less none."""
    per_request = {}
    for name in names:
        collected = []
        for requests_sent in (count, 0):
            run = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable,
                                  __file__, "--case", name, "--count", str(requests_sent)],
                                 capture_output=True, text=True, check=True, env={**os.environ, "PYTHONHASHSEED": "0"})  # fmt: skip
            found = re.search(r"Collected : (\d+)", run.stderr)
            assert found is not None, run.stderr
            collected.append(int(found.group(1)))
        per_request[name] = (collected[0] - collected[1]) // count
    return per_request


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=100, help="requests per repeat and case")
    parser.add_argument("--repeats", type=int, default=41)
    parser.add_argument("--quick", action="store_true", help="20 requests x 3 repeats")
    parser.add_argument("--case", help="only send --count requests of this case (after 20 to warm up), print nothing")
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--instructions", action="store_true", help="instructions per request (callgrind) instead")
    args = parser.parse_args(argv)
    if args.instructions:
        process, url = start_server()
        names = list(clients(url))
        process.terminate()
        process.wait()
        counts = instructions(names, args.count)
        print(f"instructions per request (callgrind, gc off, {args.count} requests less none):")
        for name, count in counts.items():
            base = "httpx Client.get" if name.startswith("httpx") else "requests Session.get"
            extra = "" if name == base else f"{(count - counts[base]) / 1000:+7.1f}k {(count / counts[base] - 1) * 100:+6.2f}%"
            print(f"  {name:46} {count:9d} {extra}")
        return 0
    if args.case is not None:
        gc.disable()  # a collection would fall in one of the two runs and not the other
        process, url = start_server()
        try:
            case = clients(url)[args.case]
            for _ in range(20 + args.count):
                case()
        finally:
            process.terminate()
            process.wait()
        return 0
    number, repeats = (20, 3) if args.quick else (args.requests, args.repeats)
    process, url = start_server()
    try:
        cases = clients(url)
        started = time.monotonic()
        wall, cpu = time_cases(cases, number, repeats)
        print("brace HTTP integrations: overhead per request, keep-alive GET of 2 bytes on loopback")
        print(f"python {sys.version.split()[0]}; httpx {httpx.__version__}, requests {metadata.version('requests')}; "
              f"{repeats} repeats x {number} requests per case, interleaved; {time.monotonic() - started:.0f} s")
        print("time: wall clock per request (what a caller waits: client, server and loopback);")
        print("client CPU: this process's CPU time per request (the client's own work, the server's excluded);")
        print("overhead: the median over rounds of the case's time over the plain client's in the same round")
        print()
        print(f"{'case':46} {'median us':>9} {'min us':>7} {'overhead':>8} {'CPU us':>7} {'overhead':>8}")
        for name in cases:
            base = "httpx Client.get" if name.startswith("httpx") else "requests Session.get"
            extra = "" if name == base else f"{overhead(wall, name, base) * 100:+.1f}%"
            extra_cpu = "" if name == base else f"{overhead(cpu, name, base) * 100:+.1f}%"
            print(f"{name:46} {statistics.median(wall[name]) * 1e6:9.1f} {min(wall[name]) * 1e6:7.1f} {extra:>8} "
                  f"{statistics.median(cpu[name]) * 1e6:7.1f} {extra_cpu:>8}")
        print()
        print("allocations over 1,000 requests (tracemalloc): alive after / peak above start")
        for name, case in cases.items():
            alive, peak = allocations(case, 100 if args.quick else 1000)
            print(f"  {name:46} {alive:+9,d} B {peak:+9,d} B")
        print()
        print("the success path's decisions alone, ns per check (median of 5):")
        runs = [decisions(10_000 if args.quick else 200_000) for _ in range(5)]
        for name in runs[0]:
            print(f"  {name:46} {statistics.median(run[name] for run in runs):8.1f} ns")
    finally:
        process.terminate()
        process.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
