"""Health: a service's checks, run on demand or on an interval, aggregated into one report."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterable
from datetime import timedelta
from typing import cast

from brace import _config
from brace._core import now_ns
from brace._listeners import Listeners, Observable
from brace._logger import logger
from brace._safe import safe_repr
from brace.classify import DEFAULT_CLASSIFIER, ErrorClassifier
from brace.health._check import Check
from brace.health._graph import cascade, ordered, overall
from brace.health._heal import Healer
from brace.health._model import HealingAttempt, HealthEvent, Outcome, Report, Result, Status
from brace.recovery import HealingStats

__all__ = ["Health"]

EVENT_KINDS = ("status_changed", "healed", "healing_failed")
_NS = 1e9


class Health(Observable[HealthEvent]):
    """A service's health checks, their dependency graph and its latest report.

    `check()` (or `await check_async()`) runs every probe at once, each under its own
    timeout, runs the healing actions of those that failed (re-checking after each),
    cascades the statuses up the dependency graph and returns a Report, which it also
    keeps as `report`. `start()` does that on a thread every `interval` seconds,
    `start_async()` as a task of the running loop; `stop()` / `await stop_async()` end them.

    Healing: when a probe fails (raises, times out or reports UNHEALTHY), the error is
    classified (`classifier`; a false or UNHEALTHY return value is a
    brace.health.CheckFailed, Category.UNKNOWN) and the check's HealingActions of that
    category run one at a time, the best record first (`healing_stats`, Thompson
    sampling as in brace.Recovery). After each, the check runs again: when it is no
    longer UNHEALTHY the healing stops; the Result records every attempt. An action
    receives a brace.HealingContext (operation: the check's name). A sync check() runs a
    coroutine action on an event loop of its own; from async code use check_async().

    Events (`add_listener`): HealthEvent of kinds "status_changed", "healed",
    "healing_failed", delivered in the thread that made the report.

    Args:
        name: The service's name in reports and events, or None.
        checks: The Check objects: unique names, dependencies among them, no cycle.
        interval: Seconds (or a timedelta) between the background runner's reports:
            from 1 ms to 2**62 ns.
        classifier: The brace.ErrorClassifier of failed probes; default brace's.
        healing_stats: Where the healing actions' record is kept (share one between
            Health objects, or with a brace.Recovery); default a new one.

    Raises:
        TypeError, ValueError: Naming the parameter, for values outside the above;
            ValueError for duplicate names, unknown dependencies or a cycle ("api -> db -> api").
    """

    __slots__ = ("name", "checks", "interval", "_healer", "_listeners", "_report", "_lock", "_stop", "_thread", "_task")

    def __init__(
        self,
        name: str | None = None,
        checks: Iterable[Check] = (),
        *,
        interval: float | timedelta = 10.0,
        classifier: ErrorClassifier | None = None,
        healing_stats: HealingStats | None = None,
    ) -> None:
        self.name = _config.optional_name(name)
        self.checks = ordered(_checks(checks))
        self.interval = _config.positive_duration(interval, "interval")
        if self.interval < 1e-3:
            raise ValueError(f"interval must be from 0.001 s to 2**62 ns, got {self.interval!r}")
        chosen = _config.instance_or_none(classifier, ErrorClassifier, "classifier") or DEFAULT_CLASSIFIER
        stats = _config.instance_or_none(healing_stats, HealingStats, "healing_stats") or HealingStats()
        self._healer = Healer(chosen, stats)
        self._listeners: Listeners[HealthEvent] = Listeners(f"health {self.name!r}", EVENT_KINDS)
        self._report: Report | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def event_kinds(self) -> tuple[str, ...]:
        """The kinds of HealthEvent this object emits."""
        return EVENT_KINDS

    @property
    def healing_stats(self) -> HealingStats:
        """The healing actions' record."""
        return self._healer.stats

    @property
    def report(self) -> Report | None:
        """The latest report (None before the first check)."""
        return self._report

    @property
    def running(self) -> bool:
        """Whether a background runner (thread or task) is running."""
        thread, task = self._thread, self._task
        return (thread is not None and thread.is_alive()) or (task is not None and not task.done())

    def check(self) -> Report:
        """Runs every check now (probes at once, each within its timeout) and returns the report."""
        started = [(check, check.start()) for check in self.checks]
        healed = [self._healer.heal(check, self._own(check, run.outcome())) for check, run in started]
        return self._publish(healed)

    async def check_async(self) -> Report:
        """check() on the running loop: async probes as tasks, sync ones in their threads."""
        outcomes = await asyncio.gather(*(check.run_async() for check in self.checks))
        healed = [await self._healer.heal_async(check, self._own(check, outcome))
                  for check, outcome in zip(self.checks, outcomes)]  # fmt: skip
        return self._publish(healed)

    def fresh(self, max_age: float) -> Report | None:
        """The latest report when it is at most max_age seconds old (brace's clock), else None."""
        report = self._report
        if report is None or now_ns() / _NS - report.at > max_age:
            return None
        return report

    def start(self) -> None:
        """Starts the background thread (a daemon, "brace-health-runner"): a report now, then
        one every `interval`. Does nothing when a runner already runs."""
        with self._lock:
            if self.running:
                return
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="brace-health-runner", daemon=True)
            self._thread.start()

    def start_async(self) -> asyncio.Task[None]:
        """Starts the background runner as a task of the running loop (call it from a coroutine)
        and returns it; the same task when one already runs."""
        with self._lock:
            if self._task is not None and not self._task.done():
                return self._task
            if self.running:
                raise RuntimeError("a background thread runs already: stop() it first")
            self._task = asyncio.get_running_loop().create_task(self._loop_async(), name="brace-health-runner")
            return self._task

    def stop(self, timeout: float | timedelta | None = None) -> None:
        """Stops the background thread, waiting for the report in progress (at most timeout
        seconds; None: as long as it takes). For a task, use stop_async()."""
        wait = _config.duration(timeout, "timeout", allow_none=True)
        self._stop.set()
        thread = self._thread
        if thread is not None:
            thread.join(wait)

    async def stop_async(self) -> None:
        """Stops the background task (cancelling the report in progress) and waits for it."""
        task = self._task
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.check()
            except Exception:
                logger().exception("brace: health %r: a background check failed", self.name)
            self._stop.wait(self.interval)

    async def _loop_async(self) -> None:
        while True:
            try:
                await self.check_async()
            except Exception:
                logger().exception("brace: health %r: a background check failed", self.name)
            await asyncio.sleep(self.interval)

    def _own(self, check: Check, probed: Outcome) -> Outcome:
        """The probe's outcome with the breaker's state in (the worse of the two; ties: the probe)."""
        broken = check.breaker_outcome()
        return broken if broken.status.rank > probed.status.rank else probed

    def _publish(self, healed: list[tuple[Outcome, tuple[HealingAttempt, ...]]]) -> Report:
        results: dict[str, Result] = {}
        for check, (own, attempts) in zip(self.checks, healed):
            status, reason = cascade(check, own, results)
            results[check.name] = Result(check.name, status, reason, own.status, check.critical, check.depends_on,
                                         own.duration, attempts)  # fmt: skip
        status, reason = overall(list(results.values()))
        report = Report(self.name, status, reason, tuple(results.values()), now_ns() / _NS, time.time())
        with self._lock:
            previous, self._report = self._report, report
        if self._listeners:
            self._emit(report, previous)
        return report

    def _emit(self, report: Report, previous: Report | None) -> None:
        before = {result.name: result.status for result in previous.results} if previous else {}
        for result in report.results:
            for attempt in result.healing:
                kind = "healed" if attempt.healed else "healing_failed"
                self._emit_one(kind, report, result.name, attempt.status, None, attempt.reason, attempt)
            if before.get(result.name) is not result.status:
                self._emit_one("status_changed", report, result.name, result.status, before.get(result.name),
                               result.reason)  # fmt: skip
        if previous is None or previous.status is not report.status:
            self._emit_one("status_changed", report, None, report.status, previous.status if previous else None,
                           report.reason)  # fmt: skip

    def _emit_one(self, kind: str, report: Report, check: str | None, status: Status | None,
                  previous: Status | None, reason: str, attempt: HealingAttempt | None = None) -> None:  # fmt: skip
        if self._listeners.wants(kind):
            self._listeners.emit(HealthEvent(kind, self.name, report.at, check, status, previous, reason, attempt), kind)

    def __repr__(self) -> str:
        latest = self._report
        shown = latest.status.value if latest else "not checked"
        return f"<brace.health.Health {self.name!r}: {len(self.checks)} checks, {shown}>"


def _checks(value: object) -> list[Check]:
    try:
        items: list[object] = list(cast("Iterable[object]", value))
    except TypeError:
        raise TypeError(f"checks must be an iterable of brace.health.Check, got {type(value).__name__}") from None
    if not items:
        raise ValueError("checks must hold at least one brace.health.Check, got none")
    for item in items:
        if not isinstance(item, Check):
            raise TypeError(f"checks must hold brace.health.Check objects, got {safe_repr(item)}")
    return cast("list[Check]", items)

