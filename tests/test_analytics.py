"""brace.analytics and `brace report`: fingerprints, aggregates against a reference model, the
anomaly and early-warning rules, MTTR/MTBF on hand-built timelines, and the command on logs
written by real recovered calls (a Recovery, the httpx transport against a real server, the demo)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import uuid
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import brace
from brace.analytics import (
    LogFormatError,
    analyze,
    dependency_of,
    detect_anomalies,
    early_warning,
    episodes,
    fingerprint,
    load,
    template,
)
from brace.integrations import Hosts
from brace.integrations.httpx import Transport
from brace.recovery import JsonLinesSink, MemorySink, RecoveryEvent, RecoveryLog, correlation
from scripted_server import Reply, serving

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def report_command(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "brace", "report", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)  # fmt: skip


def attempt(operation: str, at: float, *, failed: bool, correlation_id: str | None = None, attempt_number: int = 1,
            error: BaseException | None = None, duration: float = 0.0, ran: bool = True) -> RecoveryEvent:  # fmt: skip
    if failed and error is None:
        error = TimeoutError("timed out")
    return RecoveryEvent("attempt", operation, attempt_number, at, duration, "failure" if failed else "success",
                         error=error if failed else None, correlation_id=correlation_id, ran=ran)  # fmt: skip


# -- fingerprints --------------------------------------------------------------------------------

class TestFingerprints:
    @pytest.mark.parametrize("message, expected", [
        ("GET /records/40705: no response within 2 s", "GET /records/<n>: no response within <n> s"),
        ("user 3f2c9a1e-0b7d-4c1e-9a8f-1234567890ab not found", "user <uuid> not found"),
        ("object at 0x7f3a2b1c failed", "object at <hex> failed"),
        ("request deadbeef42 timed out", "request <hex> timed out"),
        ("KeyError 'id'", "KeyError '<str>'"),
        ('missing field "name" in payload', 'missing field "<str>" in payload'),
        ("GET https://api.example/items?id=17&page=3 failed", "GET https://api.example/items?id=<*>&page=<*> failed"),
        ("took 1.5e3 ms,   retry   -2", "took <n> ms, retry <n>"),
        ("HTTP 503 Service Unavailable", "HTTP <n> Service Unavailable"),
        ("utf8 codec: v2 error", "utf8 codec: v2 error"),  # digits inside words are no ids
    ])  # fmt: skip
    def test_templates(self, message: str, expected: str) -> None:
        assert template(message) == expected

    @given(st.integers(-10**12, 10**12), st.integers(0, 10**6), st.uuids(), st.text("abcdefghij", min_size=1, max_size=12),
           st.integers(2**32, 2**60))
    @settings(max_examples=200, deadline=None)
    def test_messages_differing_in_ids_share_a_fingerprint(self, number: int, other: int, ident: uuid.UUID,
                                                          quoted: str, hex_id: int) -> None:  # fmt: skip
        def message(n: int, m: int, u: uuid.UUID, q: str, h: int) -> str:
            return f"call {n} for '{q}' failed after {m}.5 s: request {u} (span {h:x}1a) GET /x?token={q}&n={m}"

        first = fingerprint("TimeoutError", message(number, other, ident, quoted, hex_id))
        second = fingerprint("TimeoutError", message(7, 0, uuid.UUID(int=0), "zz", 2**40))
        assert first == second
        assert first[1] == "call <n> for '<str>' failed after <n> s: request <uuid> (span <hex>) GET /x?token=<*>&n=<*>"

    @given(st.sampled_from(["TimeoutError", "KeyError", "httpx.ReadTimeout", "brace.HTTPError"]),
           st.sampled_from(["TimeoutError", "KeyError", "httpx.ReadTimeout", "brace.HTTPError"]), st.text(max_size=50))
    def test_different_types_or_statuses_differ(self, one: str, two: str, message: str) -> None:
        assert (fingerprint(one, message)[0] == fingerprint(two, message)[0]) == (one == two)
        assert fingerprint(one, message, 503)[0] != fingerprint(one, message, 502)[0]
        assert fingerprint(one, message, None)[0] != fingerprint(one, message, 502)[0]

    def test_the_id_is_stable_across_runs(self) -> None:
        # The id is part of `--json`: a dashboard may key on it, so it must not change between releases.
        # As documented: 12 hex digits of SHA-256 over type, template and status, one a line.
        digest = hashlib.sha256(b"TimeoutError\nread timed out after <n> s\nNone").hexdigest()
        assert fingerprint("TimeoutError", "read timed out after 5 s") == (digest[:12], "read timed out after <n> s")
        assert fingerprint("TimeoutError", "read timed out after 5 s")[0] == "1c9e428f04a1"

    def test_frames_tell_places_apart_and_none_keep_the_old_id(self) -> None:
        bare = fingerprint("TimeoutError", "read timed out after 5 s")
        here = fingerprint("TimeoutError", "read timed out after 5 s", None, ["app.db:read", "app.api:get"])
        there = fingerprint("TimeoutError", "read timed out after 5 s", None, ["app.cache:read", "app.api:get"])
        assert len({bare[0], here[0], there[0]}) == 3 and bare[1] == here[1] == there[1]
        assert fingerprint("TimeoutError", "read timed out after 5 s", None, []) == bare  # a log without frames
        digest = hashlib.sha256(b"TimeoutError\nread timed out after <n> s\nNone\napp.db:read\napp.api:get")
        assert here[0] == digest.hexdigest()[:12]  # as documented: the frames one a line after the status

    def test_a_huge_message_costs_a_bounded_template(self) -> None:
        assert len(template("x" * 10_000_000)) == 2_000

    def test_dependencies_of_http_operations_are_their_origins(self) -> None:
        assert dependency_of("GET http://127.0.0.1:8000") == "http://127.0.0.1:8000"
        assert dependency_of("POST https://api.example") == "https://api.example"
        assert dependency_of("fetch_record") == "fetch_record"
        assert dependency_of("load user profile") == "load user profile"


# -- aggregation against a reference model -----------------------------------------------------

TEMPLATES = [("TimeoutError", "read of item {} timed out"), ("ConnectionResetError", "[Errno {}] reset"),
             ("KeyError", "'{}'"), ("TimeoutError", "connect to shard {} timed out")]  # fmt: skip
EVENT = st.tuples(
    st.sampled_from(["fetch", "store", "GET http://127.0.0.1:9"]),  # operation
    st.sampled_from([None, "c1", "c2", "c3", "c4"]),  # correlation id
    st.booleans(),  # failed
    st.integers(0, len(TEMPLATES) - 1),  # which error
    st.integers(0, 10**6),  # the number in its message
    st.floats(0, 1000),  # at
)


class TestAggregation:
    @given(st.lists(EVENT, max_size=60))
    @settings(max_examples=150, deadline=None)
    def test_counts_match_a_reference_model(self, drawn: list[tuple[str, str | None, bool, int, int, float]]) -> None:
        events = []
        failures: Counter[tuple[str, int]] = Counter()
        calls: dict[tuple[str, int], set[object]] = defaultdict(set)
        by_dependency: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        first_ids: dict[tuple[str, int], list[str]] = defaultdict(list)  # in the log's order
        for index, (operation, correlation_id, failed, which, number, at) in enumerate(drawn):
            kind, text = TEMPLATES[which]
            error = {"TimeoutError": TimeoutError, "ConnectionResetError": ConnectionResetError,
                     "KeyError": KeyError}[kind](text.format(number))  # fmt: skip
            events.append(attempt(operation, at, failed=failed, correlation_id=correlation_id, error=error))
            by_dependency[dependency_of(operation)][0] += 1
            if failed:
                by_dependency[dependency_of(operation)][1] += 1
                failures[(kind, which)] += 1
                calls[(kind, which)].add(correlation_id if correlation_id is not None else ("none", index))
                if correlation_id is not None and correlation_id not in first_ids[(kind, which)]:
                    first_ids[(kind, which)].append(correlation_id)
        data = analyze(events).as_dict()
        ids = {fingerprint(kind, text.format(0))[0]: (kind, which) for which, (kind, text) in enumerate(TEMPLATES)}
        if any(kind == "KeyError" for kind, _ in failures):
            # KeyError's str() is the repr of its key: "'17'" templated as quoted text.
            ids[fingerprint("KeyError", "\"'0'\"")[0]] = ("KeyError", 2)
        seen = {ids[row["id"]]: (row["failures"], row["calls"]) for row in data["fingerprints"]}
        assert seen == {key: (count, len(calls[key])) for key, count in failures.items()}
        for row in data["fingerprints"]:
            assert row["correlation_id_sample"] == first_ids[ids[row["id"]]]
            assert row["correlation_ids"] == len(first_ids[ids[row["id"]]])
        assert {row["dependency"]: [row["attempts"], row["failures"]] for row in data["dependencies"]} == by_dependency
        assert data["totals"]["attempts"] == len(drawn)
        assert data["totals"]["failures"] == sum(failures.values())
        assert sum(row["failures"] for row in data["categories"]) == sum(failures.values())
        assert sum(row["attempts"] for row in data["windows"]) == len(drawn)
        assert sum(row["errors"] for row in data["windows"]) == sum(failures.values())

    def test_impact_lists_the_first_correlation_ids_and_counts_them_all(self) -> None:
        events = [attempt("fetch", float(index), failed=True, correlation_id=f"order-{index % 50}")
                  for index in range(200)]  # fmt: skip
        events += [attempt("fetch", 300.0, failed=True)]  # no correlation id: a call, but no id to list
        (row,) = analyze(events).as_dict()["fingerprints"]
        assert row["correlation_id_sample"] == [f"order-{index}" for index in range(20)]
        assert (row["correlation_ids"], row["calls"], row["failures"]) == (50, 51, 201)


# -- anomalies ---------------------------------------------------------------------------------

class TestAnomalies:
    def binomial(self, rate: float, windows: int, n: int = 400, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(seed)
        attempts = np.full(windows, n)
        return rng.binomial(n, rate, windows) / n, attempts

    @pytest.mark.parametrize("seed", range(10))
    def test_a_steady_noisy_series_raises_nothing(self, seed: int) -> None:
        rates, attempts = self.binomial(0.05, 200, seed=seed)
        assert detect_anomalies(rates, attempts) == []

    def test_a_constant_series_raises_nothing(self) -> None:
        assert detect_anomalies(np.full(100, 0.1), np.full(100, 50)) == []
        assert detect_anomalies(np.zeros(100), np.full(100, 50)) == []

    @pytest.mark.parametrize("seed", range(10))
    def test_an_injected_spike_is_found_where_it_is(self, seed: int) -> None:
        rates, attempts = self.binomial(0.05, 80, seed=seed)
        rates[50] = 0.25
        found = detect_anomalies(rates, attempts)
        assert [anomaly.window for anomaly in found] == [50]
        assert found[0].z > 3 and found[0].expected == pytest.approx(0.05, abs=0.02)

    def test_windows_without_attempts_are_skipped_and_the_warmup_is_kept(self) -> None:
        rates = np.array([0.0, np.nan, 0.0, 0.0, 0.9, 0.0, 0.0, 0.0, 0.0, 0.9])
        attempts = np.array([100, 0, 100, 100, 100, 100, 100, 100, 100, 100])
        # Window 4 is the 4th with attempts: still warming up (5); window 9 is past it.
        assert [anomaly.window for anomaly in detect_anomalies(rates, attempts, warmup=5)] == [9]
        assert [anomaly.window for anomaly in detect_anomalies(rates, attempts, warmup=3)] == [4, 9]

    def test_a_drop_is_no_anomaly(self) -> None:
        rates, attempts = self.binomial(0.3, 40)
        rates[30] = 0.0
        assert detect_anomalies(rates, attempts) == []

    def test_few_attempts_are_measured_against_their_noise(self) -> None:
        # 1 failure of 2 attempts after steady 10% of 2: binomial noise, no alarm.
        rates = np.array([0.0, 0.5] * 10 + [0.5])
        assert detect_anomalies(rates, np.full(21, 2)) == []

    @pytest.mark.parametrize("kwargs, message", [
        ({"alpha": 0}, "alpha must be a number in (0, 1)"), ({"alpha": 1.5}, "alpha must be"),
        ({"z": float("nan")}, "z must be a finite number > 0"), ({"warmup": 0}, "warmup must be an int from 1"),
        ({"min_std": 0}, "min_std must be a number in (0, 1]"), ({"warmup": True}, "warmup must be"),
    ])  # fmt: skip
    def test_bad_parameters(self, kwargs: dict[str, Any], message: str) -> None:
        with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")
                           .replace("]", r"\]")):  # fmt: skip
            detect_anomalies([0.1], [1], **kwargs)


# -- early warning -----------------------------------------------------------------------------

class TestEarlyWarning:
    def test_a_rising_rate_warns_before_the_threshold(self) -> None:
        rates = np.array([0.05, 0.05, 0.2, 0.25, 0.3, 0.35, 0.4])
        warning = early_warning(rates, np.full(7, 100), 0.5)
        assert warning is not None and warning.status == "rising"
        assert warning.rate == pytest.approx(0.4) and warning.slope == pytest.approx(0.05)
        assert warning.windows_to_threshold == pytest.approx(2.0) and warning.window == 6
        assert max(rates) < 0.5  # warned before any window reached it

    def test_a_flat_rate_does_not_warn(self) -> None:
        assert early_warning(np.full(10, 0.4), np.full(10, 100), 0.5) is None
        assert early_warning(np.array([0.45, 0.4, 0.35, 0.3, 0.25]), np.full(5, 100), 0.5) is None

    def test_a_slow_rise_beyond_the_horizon_does_not_warn(self) -> None:
        rates = np.array([0.10, 0.11, 0.12, 0.13, 0.14])  # 36 windows from 0.5
        assert early_warning(rates, np.full(5, 100), 0.5) is None
        assert early_warning(rates, np.full(5, 100), 0.5, horizon=40) is not None

    def test_at_the_threshold_is_above(self) -> None:
        warning = early_warning(np.full(5, 0.6), np.full(5, 100), 0.5)
        assert warning is not None and warning.status == "above" and warning.windows_to_threshold == 0

    def test_the_threshold_of_a_breaker(self) -> None:
        breaker = brace.CircuitBreaker(name="analytics-test", failure_rate_threshold=0.3)
        assert breaker.failure_rate_threshold == pytest.approx(0.3)
        rates = np.array([0.1, 0.15, 0.2, 0.25])
        assert early_warning(rates, np.full(4, 100), 0.5, lookback=4) is None
        warning = early_warning(rates, np.full(4, 100), breaker, lookback=4)
        assert warning is not None and warning.threshold == pytest.approx(0.3)
        assert warning.windows_to_threshold == pytest.approx(1.0)

    def test_too_few_windows_and_empty_ones(self) -> None:
        assert early_warning(np.array([0.1, 0.4]), np.array([10, 10]), 0.5) is None
        rates = np.array([0.1, np.nan, 0.2, np.nan, 0.3, 0.35, 0.4])
        attempts = np.array([10, 0, 10, 0, 10, 10, 10])
        warning = early_warning(rates, attempts, 0.5)
        assert warning is not None and warning.window == 6

    @pytest.mark.parametrize("kwargs, message", [
        ({"threshold": 0}, "threshold must be a CircuitBreaker or a failure rate in"),
        ({"threshold": 1.5}, "threshold must be"), ({"threshold": "0.5"}, "threshold must be"),
        ({"lookback": 1}, "lookback must be an int from 2"), ({"horizon": 0}, "horizon must be a finite number > 0"),
    ])  # fmt: skip
    def test_bad_parameters(self, kwargs: dict[str, Any], message: str) -> None:
        arguments: dict[str, Any] = {"threshold": 0.5, **kwargs}
        with pytest.raises(ValueError, match=message):
            early_warning([0.1], [1], **arguments)

    def test_a_dependency_rising_toward_its_breaker_is_in_the_report(self) -> None:
        events = []
        for window, failing in enumerate([2, 2, 10, 15, 20, 25, 30]):  # of 100 per 10 s window
            for index in range(100):
                events.append(attempt("GET http://db:5432", window * 10.0 + index * 0.09, failed=index < failing))
                events.append(attempt("cache", window * 10.0 + index * 0.09, failed=index < 2))
        data = analyze(events, window=10.0, threshold=0.4).as_dict()
        assert [(row["dependency"], row["status"]) for row in data["warnings"]] == [("http://db:5432", "rising")]
        assert data["warnings"][0]["windows_to_threshold"] == pytest.approx(2.0, abs=0.3)
        # Each dependency's own breaker: the cache's opens at 1.5%, and it is at 2%.
        cache = brace.CircuitBreaker(name="analytics-cache", failure_rate_threshold=0.015)
        data = analyze(events, window=10.0, threshold=0.4, thresholds={"cache": cache}).as_dict()
        assert [(row["dependency"], row["status"], row["threshold"]) for row in data["warnings"]] == [
            ("cache", "above", pytest.approx(0.015)), ("http://db:5432", "rising", 0.4)]
        assert data["parameters"]["thresholds"] == {"cache": pytest.approx(0.015)}
        with pytest.raises(ValueError, match="threshold must be a CircuitBreaker or a failure rate"):
            analyze(events, thresholds={"cache": 2.0})
        with pytest.raises(TypeError, match="thresholds must be a mapping"):
            analyze(events, thresholds=[0.5])  # type: ignore[arg-type]

    def test_rejections_by_the_callers_own_policy_do_not_count_toward_the_breaker(self) -> None:
        # 10% of the calls fail at the dependency all along; rejections by the caller's own
        # limiter (ran=False: nothing was sent) rise from 0 to 40% of the attempts.
        events = []
        for window, rejected in enumerate([0, 0, 10, 20, 30, 40]):  # of 100 per 10 s window
            for index in range(100):
                at = window * 10.0 + index * 0.09
                if index < rejected:
                    events.append(attempt("GET http://db:5432", at, failed=True, ran=False))
                else:
                    events.append(attempt("GET http://db:5432", at, failed=index % 10 == 0))
        data = analyze(events, window=10.0, threshold=0.3).as_dict()
        assert data["warnings"] == []
        assert data["windows"][-1]["error_rate"] > 0.4  # the callers did see the rejections fail
        ran = [attempt(event.operation, event.at, failed=event.outcome == "failure") for event in events]
        data = analyze(ran, window=10.0, threshold=0.3).as_dict()  # the same failures, all of them sent
        assert [(row["dependency"], row["status"]) for row in data["warnings"]] == [("http://db:5432", "above")]


# -- episodes, MTTR and MTBF ---------------------------------------------------------------------

class TestEpisodes:
    def test_hand_built_timeline(self) -> None:
        # (end time, failed): down 10..14 (two failures), up, down 30..31, up, down from 50 to the end.
        timeline = [(5.0, False), (10.0, True), (11.0, True), (14.0, False), (15.0, False), (20.0, False),
                    (30.0, True), (31.0, False), (50.0, True)]  # fmt: skip
        found = episodes(list(reversed(timeline)))
        assert [(e.start, e.end, e.failures) for e in found] == [(10.0, 14.0, 2), (30.0, 31.0, 1), (50.0, None, 1)]
        assert [e.repair_time for e in found] == [4.0, 1.0, None]

    def test_mttr_and_mtbf_in_the_report(self) -> None:
        # Attempts begin at `at` and end at at + duration: the episodes are by end times.
        events = [attempt("db", 0.0, failed=False, duration=1.0),
                  attempt("db", 9.0, failed=True, duration=1.0),  # down at 10
                  attempt("db", 11.0, failed=True, duration=1.0, ran=False),  # a rejection: no news of db
                  attempt("db", 13.0, failed=False, duration=1.0),  # up at 14: 4 s to repair
                  attempt("db", 29.0, failed=True, duration=1.0),  # down at 30, 16 s after
                  attempt("db", 30.0, failed=True, duration=0.5),
                  attempt("db", 31.0, failed=False, duration=1.0),  # up at 32: 2 s
                  attempt("db", 40.0, failed=True, duration=2.0),  # down at 42, 10 s after; open
                  attempt("other", 1.0, failed=False)]  # fmt: skip
        rows = {row["dependency"]: row for row in analyze(events).as_dict()["dependencies"]}
        assert rows["db"]["episodes"] == 3 and rows["db"]["open_episode"] is True
        assert rows["db"]["mttr"] == pytest.approx(3.0)  # (4 + 2) / 2
        assert rows["db"]["mtbf"] == pytest.approx(13.0)  # (16 + 10) / 2
        assert rows["db"]["rejected"] == 1
        assert rows["other"]["episodes"] == 0 and rows["other"]["mttr"] is None and rows["other"]["mtbf"] is None

    def test_one_closed_episode_has_a_mttr_and_no_mtbf(self) -> None:
        events = [attempt("db", 0.0, failed=True), attempt("db", 3.0, failed=False)]
        row = analyze(events).as_dict()["dependencies"][0]
        assert (row["episodes"], row["open_episode"], row["mttr"], row["mtbf"]) == (1, False, 3.0, None)


# -- logs written by real recovered calls --------------------------------------------------------

def recovered_calls(log: RecoveryLog, calls: int = 30) -> None:
    """Real calls through a brace.Recovery: every third call times out twice, then succeeds."""
    failures = {"n": 0}

    def fetch(item: int) -> int:
        if item % 3 == 0 and failures["n"] < 2:
            failures["n"] += 1
            raise TimeoutError(f"read of item {item} timed out after 2.5 s")
        failures["n"] = 0
        return item

    recovery = brace.Recovery(name="fetch")
    recovery.add_listener(log)
    with brace.testing.fake_clock():
        for item in range(calls):
            with correlation(f"job-{item}"):
                assert recovery.call(fetch, item) == item


class TestRealLogs:
    def test_memory_and_file_agree(self, tmp_path: Path) -> None:
        path = tmp_path / "log.jsonl"
        memory, jsonl = MemorySink(), JsonLinesSink(path)
        log = RecoveryLog(memory, jsonl)
        assert log.sinks == (memory, jsonl) and jsonl.path == str(path)
        recovered_calls(log)
        assert analyze(jsonl).as_dict()["totals"]["attempts"] == 50  # flushed, then read
        assert analyze(RecoveryLog(jsonl)).as_dict()["totals"]["attempts"] == 50
        log.close()
        from_file = analyze(path).as_dict()
        from_memory = analyze(memory).as_dict()
        from_log = analyze(log).as_dict()
        for data in (from_file, from_memory, from_log):
            assert data["totals"]["attempts"] == 30 + 20  # 10 calls with two failures each
            assert data["totals"]["calls"] == 30 and data["totals"]["recovered"] == 10
            (row,) = data["fingerprints"]
            assert (row["type"], row["template"]) == ("TimeoutError", "read of item <n> timed out after <n> s")
            assert (row["failures"], row["calls"], row["correlation_ids"], row["recovered"]) == (20, 10, 10, 10)
            assert row["category"] == "timeout"
            assert data["categories"] == [{"category": "timeout", "failures": 20, "calls": 10, "recovered": 10,
                                           "mean_recovery_time": pytest.approx(from_file["totals"]["mean_recovery_time"])}]  # fmt: skip
            assert data["dependencies"][0]["episodes"] == 10 and data["dependencies"][0]["mttr"] > 0
        for key in ("fingerprints", "dependencies", "categories", "anomalies", "warnings", "totals"):
            assert from_memory[key] == from_file[key]
        assert len(load(path).records) == len(memory.events())

    def test_the_same_error_raised_in_two_places_is_two_fingerprints(self, tmp_path: Path) -> None:
        def read_cache(item: int) -> int:
            raise KeyError(f"item {item}")

        def read_database(item: int) -> int:
            raise KeyError(f"item {item}")

        memory, jsonl = MemorySink(), JsonLinesSink(tmp_path / "log.jsonl")
        log = RecoveryLog(memory, jsonl)
        recovery = brace.Recovery(name="read", escalation=brace.EscalationPolicy())  # abort: not retried
        recovery.add_listener(log)
        for item in range(6):
            with correlation(f"job-{item}"), pytest.raises(brace.RecoveryFailed):
                recovery.call(read_cache if item % 3 else read_database, item)
        log.close()
        where = "test_analytics:TestRealLogs.test_the_same_error_raised_in_two_places_is_two_fingerprints.<locals>."
        for source in (memory, jsonl.path):
            rows = analyze(source).as_dict()["fingerprints"]
            assert [(row["template"], row["frames"], row["failures"]) for row in rows] == [
                ("'<str>'", [where + "read_cache"], 4), ("'<str>'", [where + "read_database"], 2)]

    def test_clock_time_reads_the_logging_time(self, tmp_path: Path) -> None:
        path = tmp_path / "log.jsonl"
        log = RecoveryLog(JsonLinesSink(path))
        recovered_calls(log)
        log.close()
        data = analyze(path, clock="time").as_dict()
        assert data["clock"] == "time" and abs(data["origin"] - __import__("time").time()) < 600
        assert data["totals"]["attempts"] == 50
        with pytest.raises(ValueError, match="clock 'time' reads each event's logging time"):
            memory = MemorySink()
            memory(attempt("x", 1.0, failed=False))
            analyze(memory, clock="time")

    def test_the_httpx_transports_attempts(self, tmp_path: Path) -> None:
        path = tmp_path / "http.jsonl"
        log = RecoveryLog(JsonLinesSink(path))
        script = {"/r": [Reply(503), Reply(reset=True), Reply(429, headers=(("Retry-After", "0"),)), Reply(body=b"ok")]}
        with serving(script) as server, brace.testing.fake_clock(autojump=None):
            transport = Transport(hosts=Hosts(), log=log)
            with httpx.Client(transport=transport, base_url=server.url) as client, correlation("job-1"):
                assert client.get("/r").status_code == 200
        log.close()
        data = analyze(path).as_dict()
        origin = server.url.rstrip("/")
        assert [row["dependency"] for row in data["dependencies"]] == [origin]
        assert data["dependencies"][0]["attempts"] == 4 and data["dependencies"][0]["failures"] == 3
        statuses = {row["status"]: row for row in data["fingerprints"]}
        assert statuses[503]["category"] == "service_down" and statuses[429]["category"] == "rate_limited"
        assert statuses[503]["type"] == "httpx.Response"
        reset = statuses[None]
        assert reset["category"] == "network_error" and reset["type"].startswith("httpx.")
        assert {row["correlation_ids"] for row in data["fingerprints"]} == {1}


# -- hostile and broken logs ---------------------------------------------------------------------

GOOD = {"time": 1.0, "kind": "attempt", "operation": "op", "correlation_id": "c", "attempt": 1, "at": 5.0,
        "duration": 0.5, "outcome": "failure", "detail": "", "classification": None,
        "error": {"type": "TimeoutError", "message": "timed out"}, "ran": True}  # fmt: skip


def write(path: Path, *lines: str) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def load_lines(lines: list[str]) -> Any:
    directory = Path(os.environ.get("TMPDIR", "/tmp"))
    with open(directory / f"brace-analytics-{os.getpid()}.jsonl", "w", encoding="utf-8") as file:
        file.write("".join(line + "\n" for line in lines))
    try:
        return load(file.name)
    finally:
        os.unlink(file.name)


class TestBadLogs:
    @pytest.mark.parametrize("line, reason", [
        ("{not json", "not JSON"),
        ("[1, 2]", "not a JSON object but a list"),
        (json.dumps({**GOOD, "kind": "party"}), "'kind' must be one of"),
        (json.dumps({**GOOD, "at": "soon"}), "'at' must be a number, got str"),
        (json.dumps({**GOOD, "attempt": 1.5}), "'attempt' must be an integer"),
        (json.dumps({**GOOD, "error": "boom"}), "'error' must be null or an object"),
        (json.dumps({**GOOD, "error": {**GOOD["error"], "frames": "app:f"}}), "'frames' must be absent, null or a list"),
        (json.dumps({**GOOD, "error": {**GOOD["error"], "frames": ["app:f", 3]}}), "'frames' must be absent"),
        (json.dumps({k: v for k, v in GOOD.items() if k != "operation"}), "'operation' must be a string"),
        ('{"kind": "attempt", "attempt": ' + "9" * 5000 + "}", "not JSON"),
    ])  # fmt: skip
    def test_a_malformed_line_is_named(self, tmp_path: Path, line: str, reason: str) -> None:
        path = write(tmp_path / "log.jsonl", json.dumps(GOOD), "", line, json.dumps(GOOD))
        with pytest.raises(LogFormatError, match=reason) as info:
            load(path)
        assert (info.value.path, info.value.line) == (str(path), 3)
        assert isinstance(info.value, ValueError) and isinstance(info.value, brace.BraceError)
        result = report_command(str(path))
        assert result.returncode == 2 and result.stdout == ""
        assert f"{path}, line 3: " in result.stderr and reason in result.stderr

    def test_a_log_without_frames_loads_with_the_fingerprint_it_always_had(self, tmp_path: Path) -> None:
        path = write(tmp_path / "old.jsonl", json.dumps(GOOD), json.dumps({**GOOD, "error": {**GOOD["error"], "frames": None}}))
        assert [record.frames for record in load(path).records] == [(), ()]
        (row,) = analyze(path).as_dict()["fingerprints"]
        assert row["id"] == fingerprint("TimeoutError", "timed out")[0] and row["frames"] == []

    def test_hostile_frames_cost_a_bounded_record(self, tmp_path: Path) -> None:
        frames = ["m" * 1_000_000, *(f"app:f{index}" for index in range(100_000))]
        path = write(tmp_path / "log.jsonl", json.dumps({**GOOD, "error": {**GOOD["error"], "frames": frames}}))
        (record,) = load(path).records
        assert record.frames == ("m" * 401, "app:f0", "app:f1")

    def test_a_json_document_is_told_from_a_log(self, tmp_path: Path) -> None:
        report = analyze(write(tmp_path / "log.jsonl", json.dumps(GOOD))).as_dict()
        documents = {"report.json": (json.dumps(report, indent=2), "the output of `brace report --json`"),
                     "compact.json": (json.dumps(report), "the output of `brace report --json`"),
                     "list.json": (json.dumps([GOOD, GOOD], indent=1), "`brace demo --log run.jsonl` writes one")}
        for name, (text, hint) in documents.items():
            path = write(tmp_path / name, text)
            with pytest.raises(LogFormatError, match="a JSON document, not a recovery log") as info:
                load(path)
            assert info.value.line is None and hint in info.value.reason
        # Not a document: a log whose first line is broken, or one malformed event, says what is wrong with the line.
        for lines, reason in ((["{not json", json.dumps(GOOD)], "line 1: not JSON"),
                              ([json.dumps({**GOOD, "at": "soon"})], "line 1: 'at' must be a number"),
                              (["", json.dumps({**GOOD, "kind": "party"})], "line 2: 'kind' must be one of")):
            with pytest.raises(LogFormatError, match=reason):
                load(write(tmp_path / "broken.jsonl", *lines))

    def test_an_unreadable_file(self, tmp_path: Path) -> None:
        for path in (tmp_path / "missing.jsonl", tmp_path):
            with pytest.raises(LogFormatError, match="cannot read the file") as info:
                load(path)
            assert info.value.line is None
            result = report_command(str(path))
            assert result.returncode == 2 and "cannot read the file" in result.stderr
        binary = tmp_path / "binary.jsonl"
        binary.write_bytes(json.dumps(GOOD).encode() + b"\n\xff\xfe\n")
        with pytest.raises(LogFormatError, match="line 2: not UTF-8"):
            load(binary)

    def test_hostile_numbers_are_set_aside(self, tmp_path: Path) -> None:
        hostile = [{**GOOD, "at": float("nan")}, {**GOOD, "at": float("inf")}, {**GOOD, "at": 1e308},
                   {**GOOD, "duration": -1.0}, {**GOOD, "duration": float("nan")}, {**GOOD, "time": float("-inf")},
                   {**GOOD, "at": -1e300}]  # fmt: skip
        path = write(tmp_path / "log.jsonl", json.dumps(GOOD), *(json.dumps(line) for line in hostile),
                     json.dumps({**GOOD, "at": 65.0, "outcome": "success", "error": None}))  # fmt: skip
        loaded = load(path)
        assert len(loaded.records) == 2 and loaded.skipped == len(hostile)
        assert loaded.skipped_reasons[0] == "line 2: 'at' is nan, no clock's time"
        result = report_command(str(path), "--json")
        assert result.returncode == 0, result.stderr
        data = json.loads(result.stdout)
        assert data["skipped"] == len(hostile) and data["totals"]["attempts"] == 2
        assert data["dependencies"][0]["mttr"] == pytest.approx(60.0)

    @given(st.dictionaries(st.sampled_from(sorted(GOOD)), st.recursive(
        st.none() | st.booleans() | st.integers(-10**400, 10**400) | st.floats() | st.text(max_size=20),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
        max_leaves=8), max_size=4))
    @settings(max_examples=300, deadline=None)
    def test_any_json_is_read_or_named_never_crashes(self, changes: dict[str, Any]) -> None:
        # A line of brace's with some fields replaced by any JSON value (NaN, huge ints, nesting).
        events = [{**GOOD, "at": 5.0 + index} for index in range(3)] + [{**GOOD, **changes}]
        lines = [json.dumps(event) for event in events]
        try:
            loaded = load_lines(lines)
        except LogFormatError as error:
            assert error.line == 4 and error.reason
            return
        data = analyze(loaded).as_dict()
        json.dumps(data, allow_nan=False)  # strict JSON, whatever the numbers were
        assert len(loaded.records) + loaded.skipped == 4

    def test_a_window_too_short_for_the_log(self, tmp_path: Path) -> None:
        path = write(tmp_path / "log.jsonl", json.dumps(GOOD), json.dumps({**GOOD, "at": 1e9}))
        with pytest.raises(ValueError, match=r"window must give at most 100,000 windows"):
            analyze(path, window=1.0)
        assert len(analyze(path).as_dict()["windows"]) <= 100  # the automatic window fits any span
        result = report_command(str(path), "--window", "0.001")
        assert result.returncode == 2 and "window must give at most 100,000 windows" in result.stderr

    def test_an_empty_log(self, tmp_path: Path) -> None:
        data = analyze(write(tmp_path / "log.jsonl")).as_dict()
        assert data["events"] == 0 and data["fingerprints"] == [] and data["totals"]["failure_rate"] is None

    @pytest.mark.parametrize("option, value", [("--window", "0"), ("--window", "nan"), ("--threshold", "2"),
                                               ("--clock", "sundial")])  # fmt: skip
    def test_bad_options(self, tmp_path: Path, option: str, value: str) -> None:
        result = report_command(str(write(tmp_path / "log.jsonl", json.dumps(GOOD))), option, value)
        assert result.returncode == 2 and option in result.stderr

    def test_bad_sources_and_arguments(self, tmp_path: Path) -> None:
        with pytest.raises(TypeError, match="source must be a JSON-lines path"):
            analyze(42)
        with pytest.raises(TypeError, match="source must hold RecoveryEvents, got int"):
            analyze([1])
        with pytest.raises(TypeError, match="has neither"):
            analyze(RecoveryLog(lambda event: None))
        with pytest.raises(ValueError, match="window must be"):
            analyze([], window=0)
        with pytest.raises(ValueError, match="clock must be 'at' or 'time'"):
            analyze([], clock="sundial")  # type: ignore[arg-type]


# -- the command -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def real_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("report") / "log.jsonl"
    log = RecoveryLog(JsonLinesSink(path))
    recovered_calls(log, calls=300)
    log.close()
    return path


@pytest.mark.slow  # runs the command line in subprocesses
class TestCommand:
    def test_json_parses_back_to_the_analysis(self, real_log: Path) -> None:
        result = report_command(str(real_log), "--json", "--window", "1")
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout) == json.loads(json.dumps(analyze(real_log, window=1.0).as_dict()))
        data = json.loads(result.stdout)
        assert set(data) == {"source", "clock", "window", "origin", "events", "skipped", "skipped_reasons", "totals",
                             "windows", "fingerprints", "dependencies", "categories", "anomalies", "warnings",
                             "parameters"}  # fmt: skip

    def test_tables(self, real_log: Path) -> None:
        for extra in ([], ["--plain"]):
            result = report_command(str(real_log), *extra)
            assert result.returncode == 0, result.stderr
            for heading in ("Error fingerprints", "Dependencies", "Categories", "Anomalies", "Early warnings"):
                assert heading in result.stdout
            assert "TimeoutError: read of item <n> timed out after <n> s" in result.stdout
            assert "job-0, job-3, job-6, job-9, job-12, ..." in result.stdout  # the calls affected
            assert "fetch" in result.stdout and "timeout" in result.stdout

    def test_thresholds_per_dependency(self, tmp_path: Path) -> None:
        lines = [json.dumps({**GOOD, "operation": operation, "at": float(at), "outcome": outcome,
                             "error": None if outcome == "success" else GOOD["error"]})
                 for at in range(100) for operation, outcome in (("db", "failure" if at % 5 else "success"),
                                                                  ("cache", "failure" if at % 5 == 0 else "success"))]
        path = write(tmp_path / "log.jsonl", *lines)  # db fails 80% of its attempts, cache 20%
        result = report_command(str(path), "--json", "--window", "10", "--threshold", "0.9", "--threshold",
                                "cache=0.1", "--threshold", "db=0.85")  # fmt: skip
        assert result.returncode == 0 and result.stderr == ""
        data = json.loads(result.stdout)
        assert data["parameters"]["threshold"] == 0.9 and data["parameters"]["thresholds"] == {"cache": 0.1, "db": 0.85}
        assert [(row["dependency"], row["status"], row["threshold"]) for row in data["warnings"]] == [
            ("cache", "above", 0.1)]  # db's 80% is below its own 85%
        result = report_command(str(path), "--plain", "--window", "10", "--threshold", "db=0.5", "--threshold",
                                "dbb=0.5")  # fmt: skip
        assert result.returncode == 0  # a name in no dependency: said, not fatal (another log may have it)
        assert "has no dependency 'dbb' (it has: cache, db)" in result.stderr
        assert ["db", "above", "50.0%", "80.0%"] in [line.split()[:4] for line in result.stdout.splitlines()]

    @pytest.mark.parametrize("values, message", [
        (["0.3", "0.4"], "one RATE for every dependency, got 2"), (["=0.3"], "must be RATE or NAME=RATE"),
        (["db=1.5"], "must be a failure rate in (0, 1], got 1.5"), (["db=0.2", "db=0.3"], "'db' given twice"),
        (["db="], "must be a failure rate in (0, 1], got ''"),
    ])  # fmt: skip
    def test_bad_thresholds(self, tmp_path: Path, values: list[str], message: str) -> None:
        arguments = [item for value in values for item in ("--threshold", value)]
        result = report_command(str(write(tmp_path / "log.jsonl", json.dumps(GOOD))), *arguments)
        assert result.returncode == 2 and "--threshold" in result.stderr and message in result.stderr

    def test_tables_show_a_logs_text_as_it_is(self, tmp_path: Path) -> None:
        # Messages and correlation ids are the log's text, not rich markup: "[/x]" would raise in markup.
        line = {**GOOD, "correlation_id": "[/x]", "error": {"type": "RuntimeError", "message": "[bold]boom[/]"}}
        path = write(tmp_path / "log.jsonl", json.dumps(line))
        for extra in ([], ["--plain"]):
            result = report_command(str(path), *extra)
            assert result.returncode == 0, result.stderr
            assert "RuntimeError: [bold]boom[/]" in result.stdout and "[/x]" in result.stdout

    def test_the_chart_is_a_png_drawn_headless(self, real_log: Path, tmp_path: Path) -> None:
        chart = tmp_path / "chart.png"
        # No display, and a backend that needs one: the chart must use Agg on its own.
        env = {key: value for key, value in os.environ.items() if key not in ("DISPLAY", "WAYLAND_DISPLAY")}
        env["MPLBACKEND"] = "TkAgg"
        result = report_command(str(real_log), "--chart", str(chart), "--json", env=env)
        assert result.returncode == 0, result.stderr
        content = chart.read_bytes()
        assert content.startswith(PNG_SIGNATURE) and len(content) > 10_000
        json.loads(result.stdout)  # --json and --chart together: stdout is still only the JSON

    def test_the_chart_draws_on_agg_without_pyplot(self, real_log: Path, tmp_path: Path) -> None:
        code = ("import sys, brace.analytics as a; from brace.analytics._chart import chart; "
                f"chart(a.analyze({str(real_log)!r}), {str(tmp_path / 'c.png')!r}); "
                "assert 'matplotlib.pyplot' not in sys.modules; print('ok')")  # fmt: skip
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
        assert done.stdout == "ok\n", done.stderr
        assert (tmp_path / "c.png").read_bytes().startswith(PNG_SIGNATURE)

    @pytest.mark.parametrize("blocked, option, message", [
        ("matplotlib", ["--chart", "out.png"], "--chart draws with matplotlib, which is not installed"),
        ("numpy", [], "the analytics need numpy, which is not installed"),
    ])  # fmt: skip
    def test_a_missing_extra_is_named(self, real_log: Path, tmp_path: Path, blocked: str, option: list[str],
                                      message: str) -> None:  # fmt: skip
        # The extra's module made unimportable in this interpreter (as if not installed).
        code = (f"import sys; sys.modules[{blocked!r}] = None; from brace._cli._main import main; "
                f"sys.exit(main(['report', {str(real_log)!r}, *{option!r}]))")
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path)
        assert done.returncode == 2 and done.stdout == ""
        assert message in done.stderr and 'pip install "brace[analytics]"' in done.stderr
        assert not (tmp_path / "out.png").exists()

    def test_importing_the_analytics_without_numpy_names_the_extra(self) -> None:
        code = "import sys; sys.modules['numpy'] = None; import brace.analytics"
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
        assert done.returncode == 1
        assert 'ImportError: brace.analytics needs numpy, which is not installed: pip install "brace[analytics]"' in done.stderr

    def test_importing_brace_imports_neither_numpy_nor_matplotlib(self) -> None:
        code = ("import sys, brace, brace.recovery; assert 'numpy' not in sys.modules; "
                "import brace.analytics; assert 'matplotlib' not in sys.modules; print('ok')")
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
        assert done.stdout == "ok\n", done.stderr

    def test_the_demos_log(self, tmp_path: Path) -> None:
        log, chart = tmp_path / "demo.jsonl", tmp_path / "demo.png"
        demo = subprocess.run([sys.executable, "-m", "brace", "demo", "--calls", "300", "--log", str(log), "--json"],
                              capture_output=True, text=True, timeout=300)  # fmt: skip
        assert demo.returncode in (0, 1), demo.stderr
        figures = json.loads(demo.stdout)
        result = report_command(str(log), "--json", "--chart", str(chart))
        assert result.returncode == 0, result.stderr
        data = json.loads(result.stdout)
        # Every attempt the demo counted in its log (the calls' and the replay's), and its calls.
        assert data["totals"]["attempts"] == figures["attempts_logged"] + figures["replay"]["attempts_logged"]
        assert data["totals"]["calls"] == figures["calls"] + figures["replay"]["letters"]
        assert data["totals"]["recovered"] >= figures["recovered"]
        categories = {row["category"] for row in data["categories"]}
        injected = {name for name, row in figures["by_category"].items() if row["calls"]}
        assert injected <= categories
        assert chart.read_bytes().startswith(PNG_SIGNATURE)
        # The demo's --json figures are no log: the command says which file to give it instead.
        figures_file = tmp_path / "demo.json"
        figures_file.write_text(demo.stdout, encoding="utf-8")
        result = report_command(str(figures_file))
        assert result.returncode == 2 and result.stdout == ""
        assert f"{figures_file}: a JSON document, not a recovery log" in result.stderr
        assert "the output of `brace demo --json`: the demo writes its recovery log with --log" in result.stderr
