#!/usr/bin/env python3
"""Throttling shared by every caller of a host: what a rate-limited server receives.

A server (a process of its own) admits `--limit` requests per `--window` seconds and answers
429 beyond it, telling the wait (`RateLimit: limit=L, remaining=0, reset=S`) or, with
`--silent`, nothing. `--callers` threads each make requests back to back for `--seconds`,
through three clients:

- each caller on its own: a plain httpx.Client inside `brace.Retry(classifier=...)`, which
  honours the wait it was told, as every retrying client does today;
- brace's httpx Transport: the first 429 pauses every caller of the host until the reset;
- brace's httpx Transport with Hosts(adaptive="rate"): the AWS SDK's adaptive rate too
  (what helps when the server says nothing).

Per client it prints the requests the server received per window, how many of them came
after the window's first 429 (the requests that could not succeed), and the 429s in all.

    python benchmarks/throttling.py            # about 30 s
    python benchmarks/throttling.py --silent   # a server that gives no wait
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable

import httpx

import brace
from brace.classify import DEFAULT_CLASSIFIER
from brace.integrations import Hosts
from brace.integrations.httpx import Transport

SERVER = r"""
import json, sys, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
limit, window, silent = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3] == "1"
lock = threading.Lock()
state = {"start": time.monotonic(), "windows": {}}

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    def answer(self, status, body, headers=()):
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def do_GET(self):
        if self.path == "/stats":
            with lock:
                return self.answer(200, json.dumps(state["windows"]).encode())
        if self.path == "/reset":
            with lock:
                state["start"], state["windows"] = time.monotonic(), {}
            return self.answer(200, b"ok")
        now = time.monotonic()
        with lock:
            index = int((now - state["start"]) / window)
            w = state["windows"].setdefault(str(index), {"received": 0, "after_first_429": 0, "throttled": 0})
            w["received"] += 1
            if w["throttled"]:
                w["after_first_429"] += 1
            admitted = w["received"] <= limit
            if not admitted:
                w["throttled"] += 1
            reset = state["start"] + (index + 1) * window - now
        if admitted:
            return self.answer(200, b"ok")
        headers = () if silent else (("RateLimit", f"limit={limit}, remaining=0, reset={max(reset, 0):.3f}"),)
        self.answer(429, b"slow down", headers)
    def log_message(self, *args):
        pass

server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
server.daemon_threads = True
print(server.server_address[1], flush=True)
server.serve_forever()
"""


def run(url: str, send: Callable[[], int], callers: int, seconds: float) -> None:
    httpx.get(url + "/reset")
    end = time.monotonic() + seconds

    def caller() -> None:
        while time.monotonic() < end:
            try:
                send()
            except Exception:  # a caller that gave up starts its next request
                pass

    threads = [threading.Thread(target=caller) for _ in range(callers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def report(name: str, url: str, limit: int) -> dict[str, float]:
    windows = json.loads(httpx.get(url + "/stats").text)
    full = [w for index, w in sorted(windows.items(), key=lambda kv: int(kv[0]))][1:-1]  # whole windows only
    received = [w["received"] for w in full]
    after = [w["after_first_429"] for w in full]
    throttled = sum(w["throttled"] for w in full)
    print(f"{name:44} {statistics.median(received):9.0f} {max(received):8d} {statistics.median(after):11.0f} "
          f"{max(after):8d} {throttled:9d}")
    return {"median_received": statistics.median(received), "max_after_first_429": max(after)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=20)
    parser.add_argument("--window", type=float, default=1.0)
    parser.add_argument("--callers", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--silent", action="store_true", help="429s without any wait field")
    args = parser.parse_args(argv)
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(args.limit), str(args.window),
                               "1" if args.silent else "0"], stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert server.stdout is not None
    url = f"http://127.0.0.1:{int(server.stdout.readline())}"
    try:
        plain = httpx.Client(transport=httpx.HTTPTransport(retries=0))
        retry = brace.Retry(classifier=DEFAULT_CLASSIFIER, deadline=30.0)
        shared = httpx.Client(transport=Transport(hosts=Hosts()))
        adaptive = httpx.Client(transport=Transport(hosts=Hosts(adaptive="rate")))
        clients: dict[str, Callable[[], int]] = {
            "each caller on its own (brace.Retry + httpx)": lambda: retry.call(plain.get, url + "/r").status_code,
            "brace Transport (the host's pause, shared)": lambda: shared.get(url + "/r").status_code,
            "brace Transport, Hosts(adaptive='rate')": lambda: adaptive.get(url + "/r").status_code,
        }
        kind = "silent 429s" if args.silent else "429 + RateLimit reset"
        print(f"server: {args.limit} requests per {args.window:g} s window, {kind}; {args.callers} callers, "
              f"{args.seconds:g} s per client; whole windows only")
        print(f"{'client':44} {'received':>9} {'max':>8} {'after 429':>11} {'max':>8} {'429s':>9}")
        print(f"{'':44} {'(median)':>9} {'':>8} {'(median)':>11} {'':>8} {'(all)':>9}")
        for name, send in clients.items():
            run(url, send, args.callers, args.seconds)
            report(name, url, args.limit)
    finally:
        server.terminate()
        server.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
