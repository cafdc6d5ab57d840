"""brace.metrics against the real libraries: prometheus_client's exposition read back by its own
parser, the OpenTelemetry SDK's in-memory metric reader and span exporter."""

from __future__ import annotations

import gc
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

import brace
from brace.errors import BulkheadFull, CircuitOpen, RateLimited, RetryBudgetExhausted
from brace.metrics import RECOVERY_TIME_BUCKETS, OpenTelemetryMetrics, PrometheusCollector, trace_events
from allocations import blocks_kept

CONFIG: dict[str, Any] = {
    "breaker": {"default": {"failure_rate_threshold": 0.5, "minimum_calls": 2, "window_size": 4,
                            "wait_in_open": 60.0}},
    "limiter": {"default": {"rate": "1/h", "burst": 2, "max_wait": 0.0}},
    "bulkhead": {"default": {"max_concurrent": 2, "max_wait": 0.0}},
    "retry": {"default": {"on": ["ConnectionError"], "attempts": 3,
                          "backoff": {"initial": 0.001, "max": 0.001, "jitter": "none"}}},
}  # fmt: skip


def _fail() -> None:
    raise ConnectionError("down")


def _scrape(collector: PrometheusCollector) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """The collector's exposition, parsed by prometheus_client's parser: {(sample, labels): value}."""
    registry = CollectorRegistry()
    registry.register(collector)
    text = generate_latest(registry).decode()
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}  # fmt: skip


def _at(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], sample: str, /, **labels: str) -> float:
    return samples[(sample, frozenset(labels.items()))]


def _open(breaker: brace.CircuitBreaker) -> int:
    """Fails calls until the breaker opens; how many it took."""
    failed = 0
    while breaker.state is not brace.BreakerState.OPEN:
        assert failed < 10
        with pytest.raises(ConnectionError):
            breaker.call(_fail)
        failed += 1
    return failed


class TestPrometheus:
    def test_a_registry_s_breaker_limiter_and_bulkhead(self) -> None:
        registry = brace.Registry(CONFIG)
        collector = PrometheusCollector(registry)
        breaker, limiter, bulkhead = registry.breaker("api"), registry.limiter("api"), registry.bulkhead("db")
        before = _scrape(collector)  # the first scrape that sees the limiter starts counting its rejections
        assert _at(before, "brace_circuitbreaker_state", name="api", state="closed") == 1.0
        assert _at(before, "brace_circuitbreaker_failure_rate", name="api") == -1.0
        assert _at(before, "brace_ratelimiter_available_permissions", name="api") == 2.0

        breaker.call(lambda: None)
        assert _open(breaker) == 1  # 1 of 2 calls failed: the rate reaches the threshold
        for _ in range(3):
            with pytest.raises(CircuitOpen):
                breaker.call(lambda: None)
        limiter.call(lambda: None)
        with limiter:
            pass
        for _ in range(2):
            with pytest.raises(RateLimited):
                limiter.call(lambda: None)
        held = threading.Event()
        release = threading.Event()

        def hold() -> None:
            with bulkhead:
                held.set()
                release.wait(10)

        holder = threading.Thread(target=hold)
        holder.start()
        try:
            assert held.wait(10)
            with bulkhead:
                with pytest.raises(BulkheadFull):
                    with bulkhead:
                        pass
                during = _scrape(collector)
        finally:
            release.set()
            holder.join(10)

        samples = _scrape(collector)
        assert _at(samples, "brace_circuitbreaker_state", name="api", state="open") == 1.0
        assert _at(samples, "brace_circuitbreaker_state", name="api", state="closed") == 0.0
        assert _at(samples, "brace_circuitbreaker_buffered_calls", name="api", kind="successful") == 1.0
        assert _at(samples, "brace_circuitbreaker_buffered_calls", name="api", kind="failed") == 1.0
        assert _at(samples, "brace_circuitbreaker_failure_rate", name="api") == pytest.approx(0.5)
        assert _at(samples, "brace_circuitbreaker_not_permitted_calls_total", name="api") == 3.0
        calls = {kind: _at(samples, "brace_circuitbreaker_calls_total", name="api", kind=kind)
                 for kind in ("successful", "failed", "slow", "ignored", "not_permitted")}  # fmt: skip
        assert calls == {"successful": 1.0, "failed": 1.0, "slow": 0.0, "ignored": 0.0, "not_permitted": 3.0}
        assert _at(samples, "brace_ratelimiter_available_permissions", name="api") == 0.0
        assert _at(samples, "brace_ratelimiter_limit", name="api") == 2.0
        assert _at(samples, "brace_ratelimiter_calls_total", name="api", result="rejected") == 2.0
        assert _at(during, "brace_bulkhead_concurrent_calls", name="db") == 2.0
        assert _at(during, "brace_bulkhead_available_concurrent_calls", name="db") == 0.0
        assert _at(during, "brace_bulkhead_max_allowed_concurrent_calls", name="db") == 2.0
        assert _at(during, "brace_bulkhead_waiting_calls", name="db") == 0.0
        assert _at(samples, "brace_bulkhead_concurrent_calls", name="db") == 0.0
        assert _at(samples, "brace_bulkhead_rejections_total", name="db") == 1.0

    def test_retry_calls_by_kind_and_the_budget(self) -> None:
        budget = brace.RetryBudget(name="shared", ratio=0.1, min_per_second=1)
        retry = brace.Retry(name="fetch", on=ConnectionError, attempts=3, budget=budget,
                            backoff=brace.Backoff.constant(delay=0.001))  # fmt: skip
        once = brace.Retry(name="once", on=ConnectionError, attempts=1)
        collector = PrometheusCollector()
        collector.add(retry)
        collector.add(once)
        _scrape(collector)
        failures = iter([True, False])

        def flaky() -> str:
            if next(failures):
                raise ConnectionError("once")
            return "ok"

        assert retry.call(flaky) == "ok"  # successful_with_retry
        assert retry.call(lambda: "ok") == "ok"  # successful_without_retry
        with pytest.raises((ConnectionError, RetryBudgetExhausted)):
            retry.call(_fail)
        with pytest.raises(ConnectionError):
            once.call(_fail)  # failed_without_retry
        for _ in range(20):  # spends the budget: a call then gives up with no retry
            with pytest.raises((ConnectionError, RetryBudgetExhausted)):
                retry.call(_fail)

        samples = _scrape(collector)
        calls = retry.calls()
        assert (calls.successful_without_retry, calls.successful_with_retry) == (1, 1)
        assert calls.failed_with_retry >= 1 and calls.failed_without_retry >= 1
        assert calls.failed_with_retry + calls.failed_without_retry == 21
        for kind, count in zip(calls._fields, calls):
            assert _at(samples, "brace_retry_calls_total", name="fetch", kind=kind) == count
        assert _at(samples, "brace_retry_calls_total", name="once", kind="failed_without_retry") == 1.0
        assert _at(samples, "brace_retry_calls_total", name="once", kind="failed_with_retry") == 0.0
        assert _at(samples, "brace_retry_budget_balance", name="shared") == pytest.approx(budget.balance, abs=1.0)
        # Every call that gave up with no retry found the budget spent; some others spent it after a retry.
        exhausted = _at(samples, "brace_retry_budget_exhaustions_total", name="shared")
        assert calls.failed_without_retry <= exhausted <= calls.failed_without_retry + calls.failed_with_retry

    def test_a_policy_s_parts(self) -> None:
        breaker = brace.CircuitBreaker(name="p-breaker", minimum_calls=2, window_size=4)
        retry = brace.Retry(name="p-retry", on=ConnectionError, attempts=2, backoff=brace.Backoff.constant(delay=0.001))
        policy = brace.Policy(name="p", retry=retry, breaker=breaker)
        collector = PrometheusCollector()
        collector.add(policy)
        with pytest.raises(ConnectionError):
            policy.call(_fail)
        samples = _scrape(collector)
        assert _at(samples, "brace_circuitbreaker_buffered_calls", name="p-breaker", kind="failed") == 2.0
        assert _at(samples, "brace_retry_calls_total", name="p-retry", kind="failed_with_retry") == 1.0

    def test_recovery_outcomes_and_recovery_time_histogram(self) -> None:
        recovery = brace.Recovery(name="orders")
        collector = PrometheusCollector()
        collector.add(recovery)
        failures = iter([True, True, False])

        def flaky() -> str:
            if next(failures):
                raise ConnectionError("transient")
            return "ok"

        assert recovery.call(lambda: "fine") == "fine"
        assert recovery.call(flaky) == "ok"
        stats = recovery.stats()
        assert stats.recovered == 1 and stats.mean_recovery_time is not None

        samples = _scrape(collector)
        assert _at(samples, "brace_recovery_calls_total", name="orders", kind="first_try") == 1.0
        assert _at(samples, "brace_recovery_calls_total", name="orders", kind="failed") == 1.0
        assert _at(samples, "brace_recovery_outcomes_total", name="orders", outcome="recovered") == 1.0
        assert _at(samples, "brace_recovery_outcomes_total", name="orders", outcome="fallback") == 0.0
        assert _at(samples, "brace_recovery_attempts_total", name="orders", kind="made") == stats.attempts_made
        assert _at(samples, "brace_recovery_time_seconds_count", name="orders") == 1.0
        assert _at(samples, "brace_recovery_time_seconds_sum", name="orders") == pytest.approx(
            stats.mean_recovery_time)
        assert _at(samples, "brace_recovery_time_seconds_bucket", name="orders", le="+Inf") == 1.0
        counts = [_at(samples, "brace_recovery_time_seconds_bucket", name="orders", le=repr(bound))
                  for bound in RECOVERY_TIME_BUCKETS]  # fmt: skip
        assert counts == sorted(counts)  # cumulative
        for bound, count in zip(RECOVERY_TIME_BUCKETS, counts):
            if bound >= stats.mean_recovery_time * 1.02:
                assert count == 1.0
            elif bound <= stats.mean_recovery_time * 0.98:
                assert count == 0.0

    def test_primitives_are_held_weakly(self) -> None:
        collector = PrometheusCollector()
        breaker = brace.CircuitBreaker(name="brief")
        collector.add(breaker)
        assert ("brace_circuitbreaker_failure_rate", frozenset({("name", "brief")})) in _scrape(collector)
        del breaker
        gc.collect()
        assert ("brace_circuitbreaker_failure_rate", frozenset({("name", "brief")})) not in _scrape(collector)

    def test_a_registry_is_held_weakly_too(self) -> None:
        registry = brace.Registry(CONFIG)
        registry.limiter("gone")
        collector = PrometheusCollector(registry)
        assert ("brace_ratelimiter_limit", frozenset({("name", "gone")})) in _scrape(collector)
        del registry
        gc.collect()
        assert not any(name == "brace_ratelimiter_limit" for name, _ in _scrape(collector))

    def test_bad_targets(self) -> None:
        collector = PrometheusCollector()
        with pytest.raises(TypeError, match="target must be a CircuitBreaker"):
            collector.add(object())
        with pytest.raises(ValueError, match="target must have a name"):
            collector.add(brace.CircuitBreaker())
        with pytest.raises(TypeError, match="registry must be a brace.Registry"):
            PrometheusCollector({"breaker": {}})  # type: ignore[arg-type]


class TestOpenTelemetry:
    def _reader(self, registry: brace.Registry | None = None) -> tuple[InMemoryMetricReader, OpenTelemetryMetrics]:
        reader = InMemoryMetricReader()
        return reader, OpenTelemetryMetrics(registry, meter_provider=MeterProvider(metric_readers=[reader]))

    @staticmethod
    def _points(reader: InMemoryMetricReader) -> dict[str, list[tuple[dict[str, Any], float]]]:
        data = reader.get_metrics_data()
        assert data is not None
        found: dict[str, list[tuple[dict[str, Any], float]]] = {}
        for resource in data.resource_metrics:
            for scope in resource.scope_metrics:
                assert scope.scope.name == "brace"
                for metric in scope.metrics:
                    found[metric.name] = [(dict(point.attributes or {}), point.value)  # type: ignore[union-attr]
                                          for point in metric.data.data_points]  # fmt: skip
        return found

    def test_instruments_read_at_collection(self) -> None:
        registry = brace.Registry(CONFIG)
        reader, _ = self._reader(registry)
        breaker, limiter = registry.breaker("api"), registry.limiter("api")
        self._points(reader)  # the limiter's rejections count from here
        failed = _open(breaker)
        with pytest.raises(CircuitOpen):
            breaker.call(lambda: None)
        limiter.try_acquire(2)
        with pytest.raises(RateLimited):
            limiter.call(lambda: None)
        retry = brace.Retry(name="fetch", on=ConnectionError, attempts=2, backoff=brace.Backoff.constant(delay=0.001))
        _.add(retry)
        with pytest.raises(ConnectionError):
            retry.call(_fail)

        points = self._points(reader)
        states = {attrs["circuitbreaker.state"]: value for attrs, value in points["brace.circuit_breaker.state"]
                  if attrs["circuitbreaker.name"] == "api"}  # fmt: skip
        assert states["open"] == 1 and states["closed"] == 0
        assert points["brace.circuit_breaker.not_permitted_calls"] == [({"circuitbreaker.name": "api"}, 1)]
        calls = {attrs["brace.kind"]: value for attrs, value in points["brace.circuit_breaker.calls"]}
        assert calls == {"successful": 0, "failed": failed, "slow": 0, "ignored": 0,
                         "not_permitted": 1}  # fmt: skip
        assert points["brace.circuit_breaker.failure_rate"] == [({"circuitbreaker.name": "api"}, 1.0)]
        assert points["brace.rate_limiter.available_permissions"] == [({"ratelimiter.name": "api"}, 0)]
        assert points["brace.rate_limiter.calls"] == [({"ratelimiter.name": "api", "ratelimiter.result": "rejected"},
                                                       1)]  # fmt: skip
        retries = {attrs["retry.result"]: value for attrs, value in points["brace.retry.calls"]}
        assert retries == {"successful_without_retry": 0, "successful_with_retry": 0, "failed_with_retry": 1,
                           "failed_without_retry": 0}  # fmt: skip

    def test_span_events_for_transitions_and_retries(self) -> None:
        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        tracer = provider.get_tracer("test")
        breaker = brace.CircuitBreaker(name="api", minimum_calls=2, window_size=4)
        retry = brace.Retry(name="fetch", on=ConnectionError, attempts=3, backoff=brace.Backoff.constant(delay=0.001))
        policy = brace.Policy(name="p", retry=retry, breaker=breaker)
        tracing = trace_events(policy)
        with tracer.start_as_current_span("call"):
            with pytest.raises((ConnectionError, CircuitOpen)):
                policy.call(_fail)
        tracing.remove()
        with tracer.start_as_current_span("after"):
            breaker.close()
        spans = {span.name: span for span in exporter.get_finished_spans()}
        events = [(event.name, dict(event.attributes or {})) for event in spans["call"].events]
        assert ("brace.retry", {"retry.name": "fetch", "retry.attempt": 2}) in events
        assert ("brace.circuit_breaker.state_transition",
                {"circuitbreaker.name": "api", "circuitbreaker.state": "open",
                 "brace.circuit_breaker.from_state": "closed"}) in events  # fmt: skip
        assert spans["after"].events == ()  # removed: the close is not reported

    def test_http_retries_carry_the_resend_count(self) -> None:
        class HTTPFailure(ConnectionError):
            status_code = 503

        def fail_http() -> None:
            raise HTTPFailure("unavailable")

        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        retry = brace.Retry(name="http", on=ConnectionError, attempts=3, backoff=brace.Backoff.constant(delay=0.001))
        trace_events(retry)
        with provider.get_tracer("test").start_as_current_span("request"):
            with pytest.raises(HTTPFailure):
                retry.call(fail_http)
        (span,) = exporter.get_finished_spans()
        resends = [dict(event.attributes or {}).get("http.request.resend_count") for event in span.events]
        assert resends == [1, 2]


def test_importing_brace_imports_neither_library() -> None:
    code = ("import sys, brace, brace.metrics; "
            "print(any(m.split('.')[0] in ('prometheus_client', 'opentelemetry') for m in sys.modules))")  # fmt: skip
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip() == "False"  # fmt: skip


def test_collected_primitives_success_paths_allocate_nothing() -> None:
    """With a collector and OpenTelemetry instruments reading them (and scraped), the success
    paths still leave nothing behind (counted as tests/test_allocation.py counts them)."""
    breaker = brace.CircuitBreaker(name="alloc")
    limiter = brace.RateLimiter(name="alloc", rate=1e9, burst=10**9)
    bulkhead = brace.Bulkhead(name="alloc", max_concurrent=10)
    retry = brace.Retry(name="alloc", on=ConnectionError)
    policy = brace.Policy(name="alloc", retry=retry, breaker=breaker, limiter=limiter, bulkhead=bulkhead)
    collector = PrometheusCollector()
    collector.add(policy)
    reader = InMemoryMetricReader()
    instruments = OpenTelemetryMetrics(meter_provider=MeterProvider(metric_readers=[reader]))
    instruments.add(policy)
    _scrape(collector)
    reader.get_metrics_data()
    guarded = policy(abs)
    calls: list[Callable[[], object]] = [lambda: guarded(-1), lambda: breaker.call(abs, -1),
                                         lambda: limiter.call(abs, -1), lambda: bulkhead.call(abs, -1),
                                         limiter.try_acquire]  # fmt: skip
    for call in calls:
        assert blocks_kept(call, 200_000) <= 2


class TestCountsSinceMade:
    """Rejections and exhaustions are counted by the objects where they refuse, from the moment
    they are made: through every way in (the compiled guard and entries, a Policy, Python's
    waits), with no listener and before any scrape, exactly under threads."""

    @staticmethod
    def _limiter_ways(limiter: brace.RateLimiter) -> list[Callable[[], object]]:
        guarded = limiter(lambda: None)
        policy = brace.Policy(limiter=limiter)

        def with_block() -> None:
            with limiter:
                pass

        return [guarded, lambda: limiter.call(lambda: None), with_block, lambda: limiter.acquire(max_wait=0.0),
                lambda: policy.call(lambda: None), policy(lambda: None)]  # fmt: skip

    def test_a_limiter_s_rejections_by_every_way_in(self) -> None:
        limiter = brace.RateLimiter(name="since-made", rate="1/h", burst=1, max_wait=0.0)
        assert limiter.try_acquire()
        ways = self._limiter_ways(limiter)
        for way in ways:
            with pytest.raises(RateLimited):
                way()
        assert not limiter.try_acquire()  # asking is not a rejection
        assert limiter.rejections == len(ways)
        collector = PrometheusCollector()
        collector.add(limiter)
        assert _at(_scrape(collector), "brace_ratelimiter_calls_total", name="since-made",
                   result="rejected") == len(ways)  # fmt: skip

    def test_a_bulkhead_s_rejections_by_every_way_in(self) -> None:
        bulkhead = brace.Bulkhead(name="since-made", max_concurrent=1, max_wait=0.0)
        policy = brace.Policy(bulkhead=bulkhead)

        def with_block() -> None:
            with bulkhead:
                pass

        ways: list[Callable[[], object]] = [bulkhead(lambda: None), lambda: bulkhead.call(lambda: None), with_block,
                                            lambda: policy.call(lambda: None), policy(lambda: None)]  # fmt: skip
        assert bulkhead.try_acquire()
        try:
            for way in ways:
                with pytest.raises(BulkheadFull):
                    way()
        finally:
            bulkhead.release()
        assert bulkhead.rejections == len(ways)
        collector = PrometheusCollector()
        collector.add(bulkhead)
        assert _at(_scrape(collector), "brace_bulkhead_rejections_total", name="since-made") == len(ways)

    def test_a_budget_s_exhaustions(self) -> None:
        budget = brace.RetryBudget(name="since-made", ratio=0.001, min_per_second=0)
        retry = brace.Retry(on=ConnectionError, attempts=3, backoff=brace.Backoff.constant(delay=0.001),
                            budget=budget)  # fmt: skip
        with pytest.raises((ConnectionError, RetryBudgetExhausted)):
            retry.call(_fail)
        assert not budget.try_withdraw()
        assert budget.exhaustions == 2
        collector = PrometheusCollector()
        collector.add(budget)
        assert _at(_scrape(collector), "brace_retry_budget_exhaustions_total", name="since-made") == 2.0

    def test_rejections_counted_exactly_under_threads(self) -> None:
        limiter = brace.RateLimiter(name="threads", rate="1/h", burst=1, max_wait=0.0)
        assert limiter.try_acquire()
        guarded, per_thread, threads = limiter(lambda: None), 2000, 4
        start = threading.Barrier(threads)

        def reject() -> None:
            start.wait()
            for _ in range(per_thread):
                try:
                    guarded()
                except RateLimited:
                    pass
                try:
                    limiter.acquire(max_wait=0.0)
                except RateLimited:
                    pass

        workers = [threading.Thread(target=reject) for _ in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        assert limiter.rejections == 2 * per_thread * threads


class TestOpenTelemetryEveryPart:
    """The instruments and span events the first OpenTelemetry tests leave out: bulkheads, budgets,
    Recovery, a limiter's rejection event, and trace_events over a Registry's parts."""

    def test_bulkhead_budget_and_recovery_instruments(self) -> None:
        reader = InMemoryMetricReader()
        metrics = OpenTelemetryMetrics(meter_provider=MeterProvider(metric_readers=[reader]))
        bulkhead = brace.Bulkhead(name="db", max_concurrent=2, max_wait=0.0)
        budget = brace.RetryBudget(name="calls", ratio=0.001, min_per_second=0)
        recovery = brace.Recovery(name="orders")
        for part in (bulkhead, budget, recovery):
            metrics.add(part)
        assert bulkhead.try_acquire()
        assert not budget.try_withdraw()
        failures = iter([True, False])

        def flaky() -> str:
            if next(failures):
                raise ConnectionError("transient")
            return "ok"

        assert recovery.call(flaky) == "ok"
        points = TestOpenTelemetry._points(reader)
        try:
            assert points["brace.bulkhead.concurrent_calls"] == [({"bulkhead.name": "db"}, 1)]
            assert points["brace.bulkhead.available_concurrent_calls"] == [({"bulkhead.name": "db"}, 1)]
            assert points["brace.bulkhead.max_allowed_concurrent_calls"] == [({"bulkhead.name": "db"}, 2)]
            assert points["brace.retry_budget.exhaustions"] == [({"retry_budget.name": "calls"}, 1)]
            assert points["brace.retry_budget.balance"] == [({"retry_budget.name": "calls"}, budget.balance)]
            outcomes = {attrs["recovery.outcome"]: value for attrs, value in points["brace.recovery.outcomes"]
                        if attrs["recovery.name"] == "orders"}  # fmt: skip
            assert outcomes["recovered"] == 1
        finally:
            bulkhead.release()

    def test_a_limiter_s_rejection_is_a_span_event_and_a_registry_is_traced(self) -> None:
        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        registry = brace.Registry(CONFIG)
        limiter = registry.limiter("api")
        tracing = trace_events(registry)
        with provider.get_tracer("test").start_as_current_span("call"):
            assert limiter.try_acquire(2)
            with pytest.raises(RateLimited):
                limiter.call(lambda: None)
        tracing.remove()
        (span,) = exporter.get_finished_spans()
        assert [(event.name, dict(event.attributes or {})) for event in span.events] == [
            ("brace.rate_limiter.rejected", {"ratelimiter.name": "api", "ratelimiter.result": "rejected"})]


class TestRetryCallsThroughAPolicy:
    """A Policy's retry counts its calls in resilience4j's four kinds on every path: the compiled
    success path, the Python paths (a result to check, a deadline), and the first attempt's
    errors not to retry."""

    @staticmethod
    def _policies() -> list[tuple[str, brace.Retry, brace.Policy]]:
        cases = []
        for label, deadline in (("compiled", None), ("deadline", 30.0)):
            retry = brace.Retry(name=f"r-{label}", on=ConnectionError, attempts=2,
                                backoff=brace.Backoff.constant(delay=0.001))  # fmt: skip
            cases.append((label, retry, brace.Policy(retry=retry, breaker=brace.CircuitBreaker(), deadline=deadline)))
        return cases

    @pytest.mark.parametrize("way", ["decorator", "call"])
    def test_every_kind(self, way: str) -> None:
        for label, retry, policy in self._policies():
            failures = iter([True, False, True, True])

            def flaky() -> str:
                if next(failures):
                    raise ConnectionError("transient")
                return "ok"

            def bug() -> None:
                raise KeyError("not to retry")

            def run(fn: Callable[[], object]) -> object:
                return policy(fn)() if way == "decorator" else policy.call(fn)

            assert run(lambda: "fine") == "fine"
            assert run(flaky) == "ok"
            with pytest.raises(ConnectionError):
                run(flaky)
            with pytest.raises(KeyError):
                run(bug)
            assert retry.calls() == (1, 1, 1, 1), label
