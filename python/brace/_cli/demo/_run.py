"""The run: the recovery as a user configures it, the calls made through it at their
arrival times, and the replay of the dead letters it left."""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from typing import Any

import brace
from brace._clock import sleep_until
from brace._config import NS_PER_SECOND
from brace._core import now_ns
from brace._cli.demo._report import account, targets
from brace._cli.demo._scenario import OPERATION, Call, Ended, workload
from brace._cli.demo._service import RecordsAPI, RecordsClient, record
from brace._cli.demo._settings import Settings
from brace.recovery import (
    DeadLetterStore,
    Escalation,
    JsonLinesSink,
    MemorySink,
    RecoveryLog,
    SQLiteDeadLetters,
    correlation,
    replay,
)
from brace.testing import FakeClock


def build_recovery(client: RecordsClient, store: DeadLetterStore, *, speed: float,
                   on_escalation: Callable[[Escalation], None]) -> brace.Recovery:  # fmt: skip
    """The Recovery a user of this service would write (durations in simulated seconds / speed)."""

    # brace's defaults. With the real clock sped up K times, every default backoff
    # runs K times faster too (an identity with the fake clock, where speed is 1).
    treatments: dict[brace.Category | str, Mapping[str, object]] | None = None
    if speed != 1:
        treatments = {category: {"backoff": treatment.backoff.scaled(1 / speed)}
                      for category, treatment in brace.classify.DEFAULT_TREATMENTS.items()}  # fmt: skip
    classifier = brace.ErrorClassifier(
        # The parser failing on a key means the provider changed the payload's shape.
        rules=[brace.ErrorClassifier.rule("schema_mismatch", types=KeyError, name="payload-shape")],
        treatments=treatments,
        pushback_cap=300.0 / speed,
    )
    return brace.Recovery(
        name=OPERATION,
        classifier=classifier,
        healing=[
            brace.HealingAction(client.refresh_token, categories="auth_expired", name="refresh_token"),
            # A fresh connection for resets, and (the user's guess) for 503s too:
            # HealingStats learns which of the two heals an outage.
            brace.HealingAction(client.reconnect, categories=["network_error", "service_down"], name="reconnect"),
            brace.HealingAction(client.switch_region, categories="service_down", name="switch_region"),
            brace.HealingAction(client.adapt_schema, categories="schema_mismatch", name="adapt_schema"),
        ],
        escalation=brace.EscalationPolicy(handlers=[on_escalation], default="abort"),
        healing_time=120.0 / speed,
        dead_letters=store,
    )



class Sinks:
    """The recovery log's sink, and how to read back what reached it."""

    def __init__(self, path: str | None, calls: int) -> None:
        self.path = path
        self.memory: MemorySink | None = None
        self.file: JsonLinesSink | None = None
        if path is None:
            # Roomy enough to keep every event of the run: an eviction would show as attempts not logged.
            self.memory = MemorySink(capacity=max(10_000, 64 * calls))
            self.log = RecoveryLog(self.memory)
        else:
            open(path, "w", encoding="utf-8").close()
            self.file = JsonLinesSink(path)
            self.log = RecoveryLog(self.file)

    def attempts(self) -> Counter[str]:
        """Attempt events that reached the sink, by correlation id."""
        found: Counter[str] = Counter()
        if self.memory is not None:
            for event in self.memory.events():
                if event.kind == "attempt":
                    found[event.correlation_id or ""] += 1
            return found
        assert self.file is not None and self.path is not None
        self.file.flush(timeout=30.0)
        with open(self.path, encoding="utf-8") as lines:
            for line in lines:
                event = json.loads(line)
                if event["kind"] == "attempt":
                    found[event["correlation_id"] or ""] += 1
        return found

    def close(self) -> None:
        self.log.close()


class Run:
    """One chaos run: the service, the client, the recovery, and what each call did."""

    def __init__(self, settings: Settings, store: DeadLetterStore, sinks: Sinks, calls: list[Call]) -> None:
        self.settings = settings
        self.speed = settings.speed if settings.clock == "real" else 1.0
        self.origin = now_ns()
        self.api = RecordsAPI(settings, origin_ns=self.origin, speed=self.speed)
        self.client = RecordsClient(self.api)
        self.store = store
        self.sinks = sinks
        self.calls = calls
        self._lock = threading.Lock()
        self.escalations: dict[str, str] = {}  # correlation id -> "category (reason)"
        self.recovery = build_recovery(self.client, store, speed=self.speed, on_escalation=self._escalated)
        self.recovery.add_listener(sinks.log)

    def _escalated(self, escalation: Escalation) -> None:
        # Tells "the on-call person" (here: the report) and leaves the decision to the
        # default, ABORT: the call raises brace.RecoveryFailed and is dead-lettered.
        with self._lock:
            self.escalations[escalation.correlation_id or ""] = f"{escalation.category.value} ({escalation.reason})"

    def fetch_record(self, record_id: int) -> dict[str, Any]:
        return self.client.get_record(record_id)

    def one(self, call: Call) -> Ended:
        with correlation(call.correlation):
            try:
                value = self.recovery.call(self.fetch_record, call.record_id)
            except brace.RecoveryFailed as failed:
                return self._given_up(call, failed)
            except Exception as error:  # anything else reaching the caller is a loss
                return Ended(call, "lost", f"raised {type(error).__name__}: {error}")
        if isinstance(value, brace.Degraded):
            return Ended(call, "degraded", value.source)
        if value != record(call.record_id):
            return Ended(call, "wrong_value", repr(value))
        return Ended(call, "value")

    def _given_up(self, call: Call, failed: brace.RecoveryFailed) -> Ended:
        if failed.dead_letter is None:
            return Ended(call, "lost", "RecoveryFailed without a dead letter")
        try:
            letter = self.store.get(failed.dead_letter)
        except KeyError:
            return Ended(call, "lost", f"dead letter {failed.dead_letter} is not in the store")
        if (letter.operation, letter.args, letter.correlation_id) != (OPERATION, (call.record_id,), call.correlation):
            return Ended(call, "lost", f"dead letter {letter.id} does not hold this call")
        return Ended(call, "dead_letter", letter.id)


def _drive(run: Run, clock: FakeClock | None, progress: Callable[[Ended], None]) -> list[Ended]:
    """Makes the calls at their arrival times; returns how each ended, in call order.

    With the fake clock, one caller: a call arriving while the previous one is
    still recovering waits for it (a backlog, as with a single worker).
    """
    settings = run.settings
    if clock is not None:
        ended = []
        for call in run.calls:
            clock.advance_to((run.origin + round(call.arrival * NS_PER_SECOND)) / NS_PER_SECOND)
            ended.append(run.one(call))
            progress(ended[-1])
        return ended

    def one(call: Call) -> Ended:
        result = run.one(call)
        progress(result)
        return result

    with ThreadPoolExecutor(max_workers=settings.workers, thread_name_prefix="brace-demo") as pool:
        futures = []
        for call in run.calls:
            sleep_until(run.origin + round(call.arrival / run.speed * NS_PER_SECOND))
            futures.append(pool.submit(one, call))
        return [future.result() for future in futures]


def run(settings: Settings, progress: Callable[[Ended], None] | None = None) -> dict[str, Any]:
    """Runs the chaos scenario; returns the report (see `main` for its keys).

    Args:
        settings: The run.
        progress: Called after each call with how it ended (from worker threads
            with the real clock).
    """
    wall = time.perf_counter()
    calls = workload(settings)
    brace.testing.seed(settings.seed)
    with ExitStack() as stack:
        if settings.dead_letters is None:
            directory = stack.enter_context(tempfile.TemporaryDirectory(prefix="brace-demo-"))
            store: DeadLetterStore = SQLiteDeadLetters(os.path.join(directory, "dead-letters.sqlite3"))
        else:
            store = SQLiteDeadLetters(settings.dead_letters)
        stack.callback(store.close)
        sinks = Sinks(settings.log, settings.calls)
        stack.callback(sinks.close)
        clock = stack.enter_context(brace.testing.fake_clock()) if settings.clock == "fake" else None
        chaos = Run(settings, store, sinks, calls)
        ended = _drive(chaos, clock, progress or (lambda _: None))
        report = account(chaos, ended)
        report["replay"] = _replay_letters(chaos, {ended_call.detail for ended_call in ended
                                           if ended_call.outcome == "dead_letter"})  # fmt: skip
        report["simulated_time"] = chaos.api.now()
    report["wall_time"] = time.perf_counter() - wall
    report["lost"] += report["replay"]["unaccounted"]
    report["targets"] = targets(report)
    report["all_targets_met"] = all(target["met"] for target in report["targets"])
    return report



def _replay_letters(run: Run, letters: set[str]) -> dict[str, Any]:
    """Replays the dead letters once through the recovery, and checks that each is accounted for."""
    made_before = run.api.requests
    logged_before = sum(run.sinks.attempts().values())
    outcome = replay(run.store, {OPERATION: run.fetch_record}, recovery=run.recovery)
    still_dead: Counter[str] = Counter(letter.category or "unknown" for letter in run.store.dead())
    counts = run.store.counts()
    # Each letter the calls were given is in the store, delivered or still dead (no one discarded any).
    status = {letter.id: letter.status for letter in run.store.all()}
    return {
        "letters": len(letters),
        "delivered": len(outcome.delivered),
        "still_dead": len(outcome.still_dead),
        "skipped": len(outcome.skipped_unreplayable) + len(outcome.missing_operation),
        "still_dead_by_category": dict(sorted(still_dead.items())),
        "store_counts": counts,
        "unaccounted": sum(1 for id in letters if status.get(id) not in ("dead", "delivered")),
        "attempts_made": run.api.requests - made_before,
        "attempts_logged": sum(run.sinks.attempts().values()) - logged_before,
    }
