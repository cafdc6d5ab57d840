"""`python -m brace demo`: the chaos run meets its targets, says so, and fails honestly when it cannot."""

from __future__ import annotations

import dataclasses
import io
import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

import brace
from brace._cli import demo
from brace.__main__ import main
from brace._core import now_ns

pytestmark = pytest.mark.slow  # runs the demo program

TOP_LEVEL_KEYS = {"transient_recovery_rate", "mean_recovery_time", "p95_recovery_time", "lost", "attempts_made",
                  "attempts_logged", "escalated", "dead_lettered", "by_category", "targets",
                  "all_targets_met"}  # fmt: skip
ROW_KEYS = {"calls", "injected", "recovered", "recovery_rate", "mean_recovery_time", "p95_recovery_time",
            "escalated", "dead_lettered", "lost", "attempts_made", "attempts_logged"}  # fmt: skip


def _demo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "brace", "demo", *args], capture_output=True, text=True,
                          timeout=120)  # fmt: skip


def _assert_targets_met(report: dict[str, Any]) -> None:
    assert 0.95 <= report["transient_recovery_rate"] <= 1.0
    assert report["mean_recovery_time"] < 10.0
    assert report["p95_recovery_time"] >= report["mean_recovery_time"] * 0.5
    assert report["lost"] == 0
    assert report["attempts_logged"] == report["attempts_made"] > report["calls"]
    assert report["replay"]["attempts_logged"] == report["replay"]["attempts_made"]
    assert report["all_targets_met"] and all(target["met"] for target in report["targets"])


def test_json_report_as_ci_reads_it() -> None:
    result = _demo("--calls", "300", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)  # stdout holds the JSON and nothing else
    assert TOP_LEVEL_KEYS <= set(report)
    _assert_targets_met(report)
    assert set(report["by_category"]) == set(demo.CATEGORIES)
    for row in report["by_category"].values():
        assert ROW_KEYS <= set(row)
    # The breakdown adds up to the totals, and brace's own record agrees with the service's.
    rows = [*report["by_category"].values(), report["first_try_row"]]
    for key in ("calls", "escalated", "dead_lettered", "attempts_made", "attempts_logged"):
        assert sum(row[key] for row in rows) == report[key], key
    assert report["brace_agrees"]
    assert report["brace_stats"]["attempts_made"] == report["attempts_made"]


def test_default_mix_exercises_every_fault_and_heals_them(monkeypatch: pytest.MonkeyPatch) -> None:
    real_sleeps: list[float] = []
    monkeypatch.setattr(time, "sleep", real_sleeps.append)
    report = demo.run(demo.Settings(calls=3000))
    assert real_sleeps == []  # the fake clock: every wait advanced it, none was slept
    _assert_targets_met(report)
    categories = report["by_category"]
    assert all(categories[name]["injected"] > 0 for name in demo.CATEGORIES)
    for name in ("timeout", "network_error", "rate_limited", "service_down", "auth_expired", "schema_mismatch"):
        assert categories[name]["recovered"] > 0, name
    # Missing records are not healed: escalated, dead-lettered, and still dead after the replay.
    missing = categories["not_found"]
    assert missing["recovered"] == 0 and missing["escalated"] == missing["dead_lettered"] == missing["calls"] > 0
    assert report["replay"]["still_dead_by_category"].get("not_found", 0) >= missing["calls"]
    assert report["replay"]["unaccounted"] == 0
    # Thompson sampling learned that switching region heals an outage and reconnecting does not.
    healing = {(item["category"], item["strategy"]): item for item in report["healing"]}
    switch = healing["service_down", "switch_region"]
    assert switch["healed"] > switch["failed"]
    reconnect = healing.get(("service_down", "reconnect"), {"healed": 0, "failed": 0})
    assert reconnect["healed"] + reconnect["failed"] < switch["healed"] + switch["failed"]


def test_same_seed_same_report() -> None:
    def report(seed: int) -> dict[str, Any]:
        found = demo.run(demo.Settings(calls=400, seed=seed))
        del found["wall_time"]
        return found

    first = report(11)
    assert report(11) == first
    assert report(12) != first


def test_a_mix_that_cannot_be_recovered_misses_a_target() -> None:
    # Four attempts of which each times out with probability 0.8: about 40% of such calls fail.
    result = _demo("--calls", "80", "--timeout-rate", "0.8", "--plain")
    assert result.returncode == 1, result.stderr
    verdict = [" ".join(line.split()) for line in result.stdout.split("\nVerdict\n")[1].splitlines()]
    assert any(line.startswith("transient recovery rate >= 95% ") and line.endswith(" NOT MET") for line in verdict)
    assert verdict[-1].endswith("of four targets NOT MET.")
    # Given up on, yet not lost: every such call is in the dead-letter store.
    assert "data loss 0 calls lost 0 lost met" in verdict


def test_permanent_failures_are_dead_lettered_not_lost() -> None:
    report = demo.run(demo.Settings(calls=200, permanent_rate=0.5))
    assert report["lost"] == 0
    assert report["dead_lettered"] == report["escalated"] >= 80
    assert report["replay"]["delivered"] == 0
    assert report["replay"]["still_dead"] == report["replay"]["letters"] == report["dead_lettered"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--calls", "0"], "argument --calls: must be an integer > 0, got 0"),
        (["--calls", "many"], "argument --calls: must be an integer > 0, got 'many'"),
        (["--timeout-rate", "1.5"], "argument --timeout-rate: must be a number from 0 to 1, got 1.5"),
        (["--outage-rate", "-0.1"], "argument --outage-rate: must be a number from 0 to 1, got -0.1"),
        (["--outage-rate", "nan"], "must be a number from 0 to 1, got nan"),
        (["--drift-at", "2"], "argument --drift-at: must be a number from 0 to 1, got 2"),
        (["--clock", "real", "--speed", "0"], "argument --speed: must be a number > 0, got 0"),
        (["--clock", "real", "--speed", "inf"], "argument --speed: must be a number > 0, got inf"),
        (["--clock", "real", "--workers", "0"], "argument --workers: must be an integer > 0, got 0"),
        (["--speed", "10"], "--speed and --workers apply to --clock real only"),
        (["--clock", "slow"], "argument --clock: invalid choice: 'slow'"),
        (["--seed", "-1"], "argument --seed: must be an integer from 0 to 2**64 - 1, got -1"),
        (["--log", "/no/such/dir/log.jsonl"], "--log: the directory of '/no/such/dir/log.jsonl' does not exist"),
        (["--http", "--clock", "fake"], "--clock and --speed apply to the simulated service only"),
        (["--http", "--speed", "10"], "--clock and --speed apply to the simulated service only"),
    ],
)
def test_bad_options_exit_2(args: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit:
        main(["demo", *args])
    assert exit.value.code == 2
    assert message in capsys.readouterr().err


def test_real_clock_with_threads_meets_the_targets() -> None:
    # No missing records: with some ten transient failures in 100 calls, one call for a
    # missing record that also timed out first would alone be 10% "not recovered"
    # (the thread interleaving, unlike the fake clock's single caller, is not reproducible).
    result = _demo("--clock", "real", "--speed", "200", "--calls", "100", "--permanent-rate", "0", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["settings"]["clock"] == "real" and report["settings"]["workers"] == 4
    # Times are reported in simulated seconds: the run covered about 100 * 0.5 of them.
    assert report["simulated_time"] > 30.0
    assert report["lost"] == 0 and report["attempts_logged"] == report["attempts_made"]
    if report["transient_recovery_rate"] is not None:
        assert report["transient_recovery_rate"] >= 0.95
    assert report["all_targets_met"]


def test_plain_output_has_every_row_the_verdict_and_progress() -> None:
    result = _demo("--calls", "300")  # not a terminal: plain text, progress lines on stderr
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("brace demo: 300 calls through one brace.Recovery")
    for name in (*demo.CATEGORIES, "no failure", "total"):
        assert sum(line.startswith(f"{name} ") for line in lines) == 2, name  # a row in each table
    total = next(line for line in lines if line.startswith("total "))
    assert total.split()[1] == "300"
    assert "Verdict" in lines and lines[-1] == "All four targets met."
    assert sum(line.endswith("  met") for line in lines) == 4
    progress = [line for line in result.stderr.splitlines() if line.startswith("brace demo: ")]
    assert len(progress) == 10 and progress[-1].startswith("brace demo: 300/300 calls (100%)")


def test_log_file_and_dead_letters_kept_on_request(tmp_path: Path) -> None:
    log, letters = tmp_path / "events.jsonl", tmp_path / "dead.sqlite3"
    result = _demo("--calls", "300", "--permanent-rate", "0.05", "--json", "--log", str(log),
                   "--dead-letters", str(letters))  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    events = [json.loads(line) for line in log.read_text().splitlines()]
    attempts = [event for event in events if event["kind"] == "attempt"]
    assert len(attempts) == report["attempts_made"] + report["replay"]["attempts_made"]
    assert {event["operation"] for event in events} == {demo.OPERATION}
    assert report["dead_lettered"] > 0
    with sqlite3.connect(letters) as database:
        stored = database.execute("SELECT count(*) FROM dead_letters").fetchone()[0]
    assert stored == report["dead_lettered"]
    # The store is never overwritten: letters are not deleted.
    again = _demo("--calls", "10", "--dead-letters", str(letters))
    assert again.returncode == 2 and "exists; give a new file" in again.stderr


def test_the_simulated_service_keeps_its_faults_until_healed() -> None:
    calm = demo.Settings(calls=10, timeout_rate=0.0, reset_rate=0.0, throttle_rate=0.0, outage_rate=0.0,
                         permanent_rate=0.0, drift_at=1.0)  # fmt: skip
    with brace.testing.fake_clock() as clock:
        api = demo.RecordsAPI(dataclasses.replace(calm, reset_rate=1.0), origin_ns=now_ns(), speed=1.0)
        client = demo.RecordsClient(api)
        with pytest.raises(ConnectionResetError):
            client.get_record(1)
        api.settings = calm
        with pytest.raises(ConnectionResetError):  # the pooled connection stays broken
            client.get_record(1)
        client.reconnect(_context())
        assert client.get_record(1) == demo.record(1)
        # A 429 keeps coming, with the time left in Retry-After, until that time has passed.
        api.settings = dataclasses.replace(calm, throttle_rate=1.0)
        with pytest.raises(demo.HTTPError) as throttled:
            client.get_record(1)
        wait = float(throttled.value.response.headers["Retry-After"])
        assert 1.0 <= wait <= 5.0 and brace.server_delay(throttled.value) == wait
        api.settings = calm
        clock.advance(wait - 1.0)
        with pytest.raises(demo.HTTPError):
            client.get_record(1)
        clock.advance(1.0)
        assert client.get_record(1) == demo.record(1)
        # Tokens expire: 401 until a refresh.
        clock.advance(calm.token_lifetime)
        with pytest.raises(demo.HTTPError, match="HTTP 401"):
            client.get_record(1)
        client.refresh_token(_context())
        assert client.get_record(1) == demo.record(1)
        # After drift_at * calls requests, the payload has a new shape: the old parser fails
        # on a key until the client adapts.
        assert api.requests == 8
        client.get_record(1)
        client.get_record(1)
        with pytest.raises(KeyError):
            client.get_record(1)
        client.adapt_schema(_context())
        assert client.get_record(1) == demo.record(1)
        assert api.injected == {"reset": 2, "throttled": 2, "expired_token": 1, "schema_drift": 1}
        assert api.requests == 12


def _context() -> brace.HealingContext:
    error = RuntimeError("for a healing action")
    return brace.HealingContext(demo.OPERATION, brace.classify.DEFAULT_CLASSIFIER.classify(error), error, 1)


# -- the report on screen ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def default_report() -> dict[str, Any]:
    return demo.run(demo.Settings())


def _rendered(report: dict[str, Any], how: str) -> str:
    if how == "plain":
        out = io.StringIO()
        demo.render_plain(report, out)
        return out.getvalue()
    console = Console(width=80, record=True, file=io.StringIO())
    demo.render_rich(report, console)
    return console.export_text()


def _expected_rows(report: dict[str, Any]) -> list[str]:
    """Every row of both tables, cells joined by one space: what must be on screen, whole."""

    def figure(value: float | None) -> str:
        return "-" if value is None else f"{value:.2f}"

    rows = []
    for name, row in [*report["by_category"].items(), ("no failure", report["first_try_row"])]:
        first_try = name == "no failure"
        rows.append(f"{name} {row['calls']} {'-' if first_try else row['injected']} "
                    f"{'-' if first_try else row['recovered']} {row['escalated']} {row['dead_lettered']} {row['lost']}")
        rows.append(f"{name} {figure(row['mean_recovery_time'])} {figure(row['p95_recovery_time'])} "
                    f"{row['attempts_made']} {row['attempts_logged']}")  # fmt: skip
    rows.append(f"total {report['calls']} {report['failures_injected']} {report['recovered']} {report['escalated']} "
                f"{report['dead_lettered']} {report['lost']}")  # fmt: skip
    rows.append(f"total {figure(report['mean_recovery_time'])} {figure(report['p95_recovery_time'])} "
                f"{report['attempts_made']} {report['attempts_logged']}")  # fmt: skip
    rows.append(f"all transient {report['transient_failures']}")
    for target in report["targets"]:
        rows.append(f"{target['name']} {target['target']} {target['measured']} {'met' if target['met'] else 'NOT MET'}")
    return rows


@pytest.mark.parametrize("how", ["plain", "rich"])
def test_the_report_fits_80_columns_and_shows_everything(default_report: dict[str, Any], how: str) -> None:
    text = _rendered(default_report, how)
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "\u2026" not in text  # nothing cut short with an ellipsis
    shown = [" ".join(line.split()) for line in text.splitlines()]
    for row in _expected_rows(default_report):
        assert any(line.startswith(row) for line in shown), row


@pytest.mark.parametrize("how", ["plain", "rich"])
def test_the_report_gives_one_recovery_rate(default_report: dict[str, Any], how: str) -> None:
    before_verdict, verdict = _rendered(default_report, how).split("\nVerdict")
    assert "%" not in before_verdict  # no rate per category, no rate of all failures
    report = default_report
    [line] = [" ".join(line.split()) for line in verdict.splitlines() if "rate" in line]
    assert line.startswith(f"transient recovery rate >= 95% {report['transient_recovery_rate']:.1%} "
                           f"({report['transient_recovered']}/{report['transient_failures']})")  # fmt: skip


def test_the_demo_recovers_with_braces_default_treatments() -> None:
    from brace.classify import DEFAULT_TREATMENTS
    from brace._cli.demo import RecordsAPI, RecordsClient, Settings, build_recovery

    api = RecordsAPI(Settings(), origin_ns=1, speed=1.0)
    recovery = build_recovery(RecordsClient(api), brace.MemoryDeadLetters(), speed=1.0,
                              on_escalation=lambda escalation: None)  # fmt: skip
    classifier = recovery._classifier
    assert all(classifier.treatment(category) == treatment for category, treatment in DEFAULT_TREATMENTS.items())


# -- --http: the same scenario against a real server on 127.0.0.1, through httpx and brace's transport --


def test_http_json_report_meets_the_targets() -> None:
    result = _demo("--http", "--calls", "150", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert TOP_LEVEL_KEYS <= set(report) and set(report["by_category"]) == set(demo.CATEGORIES)
    _assert_targets_met(report)
    assert report["settings"]["http"] and report["settings"]["clock"] == "real"
    rows = [*report["by_category"].values(), report["first_try_row"]]
    for key in ("calls", "escalated", "dead_lettered", "attempts_made", "attempts_logged"):
        assert sum(row[key] for row in rows) == report[key], key
    # The Recovery saw each call, and each of its attempts was one request before the transport's resends.
    assert report["brace_agrees"]
    categories = report["by_category"]
    assert sum(categories[name]["injected"] for name in ("timeout", "network_error", "rate_limited",
                                                         "service_down")) > 0  # fmt: skip
    # Tokens live 5 s: a 401 came, and the transport's Credentials fetched a new one.
    assert categories["auth_expired"]["injected"] > 0 and report["http"]["token_refreshes"] >= 2
    # The payload's shape changed after 60 requests: the Recovery's healing action adapted.
    assert categories["schema_mismatch"]["injected"] > 0
    healed = {item["strategy"]: item["healed"] for item in report["healing"] if item["category"] == "schema_mismatch"}
    assert healed.get("adapt_schema", 0) >= 1


def test_http_missing_records_are_escalated_and_dead_lettered_not_lost() -> None:
    result = _demo("--http", "--calls", "40", "--permanent-rate", "0.5", "--json")
    report = json.loads(result.stdout)
    assert report["lost"] == 0
    missing = report["by_category"]["not_found"]
    assert missing["recovered"] == 0 and missing["escalated"] == missing["dead_lettered"] == missing["calls"] > 5
    # The replay sends them again (through the transport, logged), and they stay dead, for a person.
    replayed = report["replay"]
    assert replayed["still_dead"] == replayed["letters"] == report["dead_lettered"]
    assert replayed["attempts_logged"] == replayed["attempts_made"] >= replayed["letters"]
    assert report["attempts_logged"] == report["attempts_made"]


def test_http_without_httpx_says_how_to_get_it() -> None:
    hide_httpx = "import sys; sys.modules['httpx'] = None; from brace.__main__ import main; sys.exit(main())"
    result = subprocess.run([sys.executable, "-c", hide_httpx, "demo", "--http"], capture_output=True, text=True,
                            timeout=60)  # fmt: skip
    assert result.returncode == 2
    assert "pip install httpx" in result.stderr and result.stdout == ""
