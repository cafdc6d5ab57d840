"""The run: the recovery as a user configures it, the calls made through it at their
arrival times, and the replay of the dead letters it left."""

from __future__ import annotations

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
from brace._cli.demo._report import Chaos, account, targets
from brace._cli.demo._scenario import CATEGORIES, OPERATION, Call, Ended, call_through, workload
from brace._cli.demo._service import RecordsAPI, RecordsClient
from brace._cli.demo._settings import Settings
from brace._cli.demo._sinks import Sinks
from brace.recovery import (
    DeadLetterStore,
    Escalation,
    RecoveryStats,
    SQLiteDeadLetters,
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

    def agrees(self, stats: RecoveryStats, first_failures: dict[str, int], calls: int) -> bool:
        """brace's record agrees with the service's: the same calls under the same categories,
        one attempt of the Recovery per request received."""
        failed = {name: (stats.by_category[name].failed if name in stats.by_category else 0) for name in CATEGORIES}
        return failed == first_failures and stats.attempts_made == self.api.requests and stats.calls == calls

    def one(self, call: Call) -> Ended:
        return call_through(self.recovery, self.store, self.fetch_record, call)


def _drive(run: Chaos, clock: FakeClock | None, progress: Callable[[Ended], None]) -> list[Ended]:
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
        # Over HTTP the attempts counted are the transport's, one per request; the Recovery's
        # own events go to the same log.
        sinks = Sinks(settings.log, settings.calls, operation=OPERATION, exclude=settings.http)
        stack.callback(sinks.close)
        clock = stack.enter_context(brace.testing.fake_clock()) if settings.clock == "fake" else None
        chaos: Chaos
        facts: Callable[[], dict[str, Any] | None] = lambda: None
        if settings.http:
            from brace._cli.demo._http_run import HTTPRun  # needs httpx, which only --http does

            http_run = stack.enter_context(HTTPRun(settings, store, sinks, calls))
            chaos, facts = http_run, http_run.facts
        else:
            chaos = Run(settings, store, sinks, calls)
        ended = _drive(chaos, clock, progress or (lambda _: None))
        report = account(chaos, ended)
        report["replay"] = _replay_letters(chaos, {ended_call.detail for ended_call in ended
                                           if ended_call.outcome == "dead_letter"})  # fmt: skip
        report["simulated_time"] = chaos.api.now()
        report["http"] = facts()
    report["wall_time"] = time.perf_counter() - wall
    report["lost"] += report["replay"]["unaccounted"]
    report["targets"] = targets(report)
    report["all_targets_met"] = all(target["met"] for target in report["targets"])
    return report



def _replay_letters(run: Chaos, letters: set[str]) -> dict[str, Any]:
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
