"""Metrics and traces for operations: a Prometheus collector, OpenTelemetry instruments, span events.

- `PrometheusCollector(registry=None)`: register it once with prometheus_client
  (`prometheus_client.REGISTRY.register(collector)`); each scrape reads every
  primitive made by the brace.Registry given and every one added with `add()`.
- `OpenTelemetryMetrics(registry=None, meter_provider=None)`: observable
  instruments of the meter "brace", read by the callbacks at each collection.
- `trace_events(target)`: span events on the current span for a breaker's state
  transitions, a retry's retries and a limiter's rejections.

Counters are read when a scrape or collection asks for them: from the counters
the primitives keep anyway (a breaker's window and calls by outcome, a limiter's
tokens, a bulkhead's slots, a budget's balance, a retry's calls by how they ended,
a Recovery's record, the rejections of limiters and bulkheads and the exhaustions
of budgets, counted by each object where it refuses, since it was made). Nothing
is added to a success path.

Primitives are held weakly: a collector keeps nothing alive, and a primitive
that is gone disappears from the next scrape. Importing this module imports
neither prometheus_client nor opentelemetry: each is imported when first used
(the extras `brace[prometheus]` and `brace[otel]`).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, Callable, NamedTuple

from brace._registry import Registry
from brace.breaker import BreakerEvent, BreakerState, CircuitBreaker
from brace.budget import RetryBudget
from brace.bulkhead import Bulkhead
from brace.limiter import RateLimiter, RateLimiterEvent
from brace.policy import Policy
from brace.recovery import Recovery
from brace.retry import Retry, RetryEvent

if TYPE_CHECKING:
    from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation

__all__ = [
    "RECOVERY_TIME_BUCKETS",
    "OpenTelemetryMetrics",
    "PrometheusCollector",
    "Tracing",
    "trace_events",
]

RECOVERY_TIME_BUCKETS: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                                            60.0, 300.0)  # fmt: skip
"""Upper bounds (seconds) of brace_recovery_time_seconds' buckets (and +Inf). A Recovery
keeps its times in log-spaced buckets 1% wide, so each count is within 1% of the bound."""

Part = CircuitBreaker | RateLimiter | Bulkhead | Retry | RetryBudget | Recovery
_ACCEPTED = "a CircuitBreaker, RateLimiter, Bulkhead, Retry, RetryBudget, Policy, Recovery or Registry"


class _Sample(NamedTuple):
    labels: tuple[str, ...]
    value: float


class _Family(NamedTuple):
    """One metric: its Prometheus and OpenTelemetry names, its type, and how to read it."""

    prometheus: str  # counters without the _total Prometheus adds
    otel: str
    kind: str  # "gauge" or "counter"
    doc: str
    unit: str  # OpenTelemetry's unit
    labels: tuple[str, ...]  # Prometheus label names
    attributes: tuple[str, ...]  # OpenTelemetry attribute names, in the same order
    part: type
    read: Callable[[Any, _Sources], Iterable[_Sample]]


# -- what is read -------------------------------------------------------------------------


class _Sources:
    """The primitives read at collection: a registry's parts and those added, all held weakly."""

    def __init__(self, registry: Registry | None) -> None:
        self._lock = threading.Lock()
        self._registries: list[weakref.ref[Registry]] = []
        self._added: dict[int, weakref.ref[Any]] = {}
        if registry is not None:
            self.add(registry)

    def add(self, target: object) -> None:
        if isinstance(target, Registry):
            with self._lock:
                self._registries.append(weakref.ref(target))
            return
        if not isinstance(target, (CircuitBreaker, RateLimiter, Bulkhead, Retry, RetryBudget, Policy, Recovery)):
            raise TypeError(f"target must be {_ACCEPTED}, got {type(target).__name__}")
        if target.name is None and not isinstance(target, Policy):
            raise ValueError(f"target must have a name (its metrics are labelled with it), got an unnamed "
                             f"{type(target).__name__}")  # fmt: skip
        key = id(target)
        with self._lock:
            self._added[key] = weakref.ref(target, lambda _, key=key: self._forget(key))  # type: ignore[misc]

    def _forget(self, key: int) -> None:
        with self._lock:
            self._added.pop(key, None)

    def parts(self) -> list[Part]:
        """Every named primitive alive now, each once (a Policy's parts, a Retry's budget included)."""
        with self._lock:
            registries = [registry for ref in self._registries if (registry := ref()) is not None]
            added = [target for ref in self._added.values() if (target := ref()) is not None]
        for registry in registries:
            added.extend(registry.parts())
        found: dict[int, Part] = {}
        for target in added:
            for part in _expanded(target):
                if part.name is not None:
                    found.setdefault(id(part), part)
        return list(found.values())


def _expanded(target: object) -> Iterator[Part]:
    if isinstance(target, Policy):
        for part in (target.breaker, target.limiter, target.bulkhead, target.retry):
            if part is not None:
                yield from _expanded(part)
    elif isinstance(target, Retry):
        yield target
        if target.budget is not None:
            yield target.budget
    elif isinstance(target, (CircuitBreaker, RateLimiter, Bulkhead, RetryBudget, Recovery)):
        yield target


def _breaker_state(breaker: CircuitBreaker, _: _Sources) -> Iterator[_Sample]:
    current = breaker.state
    for state in BreakerState:
        yield _Sample((_name(breaker), state.value), 1.0 if state is current else 0.0)


def _breaker_buffered(breaker: CircuitBreaker, _: _Sources) -> Iterator[_Sample]:
    m = breaker.metrics()
    yield _Sample((_name(breaker), "successful"), m.calls - m.failures)
    yield _Sample((_name(breaker), "failed"), m.failures)


def _breaker_slow(breaker: CircuitBreaker, _: _Sources) -> Iterator[_Sample]:
    m = breaker.metrics()
    yield _Sample((_name(breaker), "successful"), m.slow_calls - m.slow_failures)
    yield _Sample((_name(breaker), "failed"), m.slow_failures)


def _breaker_failure_rate(breaker: CircuitBreaker, _: _Sources) -> Iterator[_Sample]:
    rate = breaker.metrics().failure_rate
    yield _Sample((_name(breaker),), -1.0 if rate is None else rate)


def _breaker_slow_rate(breaker: CircuitBreaker, _: _Sources) -> Iterator[_Sample]:
    rate = breaker.metrics().slow_call_rate
    yield _Sample((_name(breaker),), -1.0 if rate is None else rate)


def _breaker_calls(breaker: CircuitBreaker, _: _Sources) -> Iterator[_Sample]:
    calls = breaker.calls()
    for kind, count in zip(calls._fields, calls):
        yield _Sample((_name(breaker), kind), count)


def _breaker_not_permitted(breaker: CircuitBreaker, _: _Sources) -> Iterator[_Sample]:
    yield _Sample((_name(breaker),), breaker.metrics().not_permitted)


def _limiter_available(limiter: RateLimiter, _: _Sources) -> Iterator[_Sample]:
    yield _Sample((_name(limiter),), limiter.state().remaining)


def _limiter_limit(limiter: RateLimiter, _: _Sources) -> Iterator[_Sample]:
    yield _Sample((_name(limiter),), limiter.state().limit)


def _bulkhead_rejections(bulkhead: Bulkhead, _: _Sources) -> Iterator[_Sample]:
    yield _Sample((_name(bulkhead),), bulkhead.rejections)


def _budget_exhaustions(budget: RetryBudget, _: _Sources) -> Iterator[_Sample]:
    yield _Sample((_name(budget),), budget.exhaustions)


def _limiter_rejections(limiter: RateLimiter, _: _Sources) -> Iterator[_Sample]:
    yield _Sample((_name(limiter), "rejected"), limiter.rejections)


def _bulkhead_in_use(bulkhead: Bulkhead, _: _Sources) -> Iterator[_Sample]:
    yield _Sample((_name(bulkhead),), bulkhead.in_use)


def _bulkhead_available(bulkhead: Bulkhead, _: _Sources) -> Iterator[_Sample]:
    yield _Sample((_name(bulkhead),), bulkhead.available)


def _bulkhead_max(bulkhead: Bulkhead, _: _Sources) -> Iterator[_Sample]:
    yield _Sample((_name(bulkhead),), bulkhead.max_concurrent)


def _bulkhead_waiting(bulkhead: Bulkhead, _: _Sources) -> Iterator[_Sample]:
    yield _Sample((_name(bulkhead),), bulkhead.waiting)


def _retry_calls(retry: Retry, _: _Sources) -> Iterator[_Sample]:
    calls = retry.calls()
    for kind, count in zip(calls._fields, calls):
        yield _Sample((_name(retry), kind), count)


def _budget_balance(budget: RetryBudget, _: _Sources) -> Iterator[_Sample]:
    yield _Sample((_name(budget),), budget.balance)


def _recovery_calls(recovery: Recovery, _: _Sources) -> Iterator[_Sample]:
    stats = recovery.stats()
    yield _Sample((_name(recovery), "first_try"), stats.first_try)
    yield _Sample((_name(recovery), "failed"), stats.failed)


def _recovery_outcomes(recovery: Recovery, _: _Sources) -> Iterator[_Sample]:
    stats = recovery.stats()
    for outcome, count in (("recovered", stats.recovered), ("fallback", stats.fallbacks),
                           ("escalated", stats.escalations), ("dead_lettered", stats.dead_lettered)):  # fmt: skip
        yield _Sample((_name(recovery), outcome), count)


def _recovery_attempts(recovery: Recovery, _: _Sources) -> Iterator[_Sample]:
    stats = recovery.stats()
    yield _Sample((_name(recovery), "made"), stats.attempts_made)
    yield _Sample((_name(recovery), "rejected"), stats.attempts_rejected)


def _name(part: Part) -> str:
    name = part.name
    assert name is not None  # _Sources.parts() keeps named parts only
    return name


_CB = ("name",), ("circuitbreaker.name",)
_CB_KIND = ("name", "kind"), ("circuitbreaker.name", "brace.kind")
FAMILIES: tuple[_Family, ...] = (
    _Family("brace_circuitbreaker_state", "brace.circuit_breaker.state", "gauge",
            "1 for the breaker's current state, 0 for the others", "1",
            ("name", "state"), ("circuitbreaker.name", "circuitbreaker.state"), CircuitBreaker, _breaker_state),
    _Family("brace_circuitbreaker_buffered_calls", "brace.circuit_breaker.buffered_calls", "gauge",
            "Calls in the breaker's window, by outcome", "{call}", *_CB_KIND, CircuitBreaker, _breaker_buffered),
    _Family("brace_circuitbreaker_slow_calls", "brace.circuit_breaker.slow_calls", "gauge",
            "Slow calls in the breaker's window, by outcome", "{call}", *_CB_KIND, CircuitBreaker, _breaker_slow),
    _Family("brace_circuitbreaker_failure_rate", "brace.circuit_breaker.failure_rate", "gauge",
            "Failed / recorded calls in the window; -1 below minimum_calls", "1", *_CB, CircuitBreaker,
            _breaker_failure_rate),
    _Family("brace_circuitbreaker_slow_call_rate", "brace.circuit_breaker.slow_call_rate", "gauge",
            "Slow / recorded calls in the window; -1 below minimum_calls", "1", *_CB, CircuitBreaker,
            _breaker_slow_rate),
    _Family("brace_circuitbreaker_calls", "brace.circuit_breaker.calls", "counter",
            "Calls since the breaker was made or last reset, by how they ended (slow ones are also "
            "successful or failed)", "{call}", *_CB_KIND, CircuitBreaker, _breaker_calls),
    _Family("brace_circuitbreaker_not_permitted_calls", "brace.circuit_breaker.not_permitted_calls", "counter",
            "Calls the breaker rejected since it was made or last reset", "{call}", *_CB, CircuitBreaker,
            _breaker_not_permitted),
    _Family("brace_ratelimiter_available_permissions", "brace.rate_limiter.available_permissions", "gauge",
            "Tokens that could be taken now", "{token}", ("name",), ("ratelimiter.name",), RateLimiter,
            _limiter_available),
    _Family("brace_ratelimiter_limit", "brace.rate_limiter.limit", "gauge",
            "The burst: the most tokens available at once", "{token}", ("name",), ("ratelimiter.name",),
            RateLimiter, _limiter_limit),
    _Family("brace_ratelimiter_calls", "brace.rate_limiter.calls", "counter",
            "Calls the limiter rejected (RateLimited) since it was made",
            "{call}", ("name", "result"), ("ratelimiter.name", "ratelimiter.result"), RateLimiter,
            _limiter_rejections),
    _Family("brace_bulkhead_concurrent_calls", "brace.bulkhead.concurrent_calls", "gauge",
            "Slots in use", "{call}", ("name",), ("bulkhead.name",), Bulkhead, _bulkhead_in_use),
    _Family("brace_bulkhead_available_concurrent_calls", "brace.bulkhead.available_concurrent_calls", "gauge",
            "Slots free", "{call}", ("name",), ("bulkhead.name",), Bulkhead, _bulkhead_available),
    _Family("brace_bulkhead_max_allowed_concurrent_calls", "brace.bulkhead.max_allowed_concurrent_calls",
            "gauge", "max_concurrent", "{call}", ("name",), ("bulkhead.name",), Bulkhead, _bulkhead_max),
    _Family("brace_bulkhead_waiting_calls", "brace.bulkhead.waiting_calls", "gauge",
            "Calls waiting for a slot", "{call}", ("name",), ("bulkhead.name",), Bulkhead, _bulkhead_waiting),
    _Family("brace_bulkhead_rejections", "brace.bulkhead.rejections", "counter",
            "Calls the bulkhead rejected (BulkheadFull) since it was made",
            "{call}", ("name",), ("bulkhead.name",), Bulkhead, _bulkhead_rejections),
    _Family("brace_retry_calls", "brace.retry.calls", "counter",
            "Calls by how they ended: with or without a retry, successful or failed", "{call}", ("name", "kind"),
            ("retry.name", "retry.result"), Retry, _retry_calls),
    _Family("brace_retry_budget_balance", "brace.retry_budget.balance", "gauge",
            "Retries the budget would allow now", "{retry}", ("name",), ("retry_budget.name",), RetryBudget,
            _budget_balance),
    _Family("brace_retry_budget_exhaustions", "brace.retry_budget.exhaustions", "counter",
            "Retries refused for want of budget since it was made", "{retry}",
            ("name",), ("retry_budget.name",), RetryBudget, _budget_exhaustions),
    _Family("brace_recovery_calls", "brace.recovery.calls", "counter",
            "Calls that ended: first attempt succeeded, or failed", "{call}", ("name", "kind"),
            ("recovery.name", "brace.kind"), Recovery, _recovery_calls),
    _Family("brace_recovery_outcomes", "brace.recovery.outcomes", "counter",
            "Failed calls by what became of them (escalated and dead_lettered may overlap the others)",
            "{call}", ("name", "outcome"), ("recovery.name", "recovery.outcome"), Recovery, _recovery_outcomes),
    _Family("brace_recovery_attempts", "brace.recovery.attempts", "counter",
            "Attempts made, and attempts the Recovery's policy rejected before running", "{attempt}",
            ("name", "kind"), ("recovery.name", "brace.kind"), Recovery, _recovery_attempts),
)  # fmt: skip


def _samples(family: _Family, parts: list[Part], sources: _Sources) -> Iterator[_Sample]:
    for part in parts:
        if isinstance(part, family.part):
            yield from family.read(part, sources)


# -- Prometheus ---------------------------------------------------------------------------


class PrometheusCollector:
    """A prometheus_client collector of every named primitive of a brace.Registry and of those added.

    Register it once: `prometheus_client.REGISTRY.register(PrometheusCollector(registry))`.
    Each scrape reads the primitives then; between scrapes it costs nothing.
    """

    def __init__(self, registry: Registry | None = None) -> None:
        if registry is not None and not isinstance(registry, Registry):
            raise TypeError(f"registry must be a brace.Registry or None, got {type(registry).__name__}")
        self._sources = _Sources(registry)

    def add(self, target: object) -> None:
        """Also collects `target` (a named primitive, a Policy's parts, a Recovery, or a Registry's parts).

        Held weakly: once it is gone it is no longer collected."""
        self._sources.add(target)

    def describe(self) -> list[Any]:
        """Nothing: prometheus_client then collects once at registration to learn the names."""
        return []

    def collect(self) -> Iterator[Any]:
        """The metric families now (prometheus_client calls this at each scrape)."""
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

        parts = self._sources.parts()
        for family in FAMILIES:
            made: Any
            if family.kind == "counter":
                made = CounterMetricFamily(family.prometheus, family.doc, labels=family.labels)
            else:
                made = GaugeMetricFamily(family.prometheus, family.doc, labels=family.labels)
            for sample in _samples(family, parts, self._sources):
                made.add_metric(list(sample.labels), sample.value)
            yield made
        times = HistogramMetricFamily("brace_recovery_time_seconds",
                                      "Seconds from a call's first failure to its success, over the calls "
                                      "that recovered on their own", labels=("name",))  # fmt: skip
        for part in parts:
            if isinstance(part, Recovery):
                cumulative, count, total = part.recovery_times(RECOVERY_TIME_BUCKETS)
                buckets = [(_bound(bound), float(seen)) for bound, seen in zip(RECOVERY_TIME_BUCKETS, cumulative)]
                buckets.append(("+Inf", float(count)))
                times.add_metric([_name(part)], buckets, total)
        yield times


def _bound(bound: float) -> str:
    return repr(float(bound))


# -- OpenTelemetry ------------------------------------------------------------------------


class OpenTelemetryMetrics:
    """Observable instruments of the meter "brace", read by their callbacks at each collection.

    Attribute names follow the OpenTelemetry proposal for resilience conventions
    (circuitbreaker.name, circuitbreaker.state, ratelimiter.name, ratelimiter.result,
    retry.name, retry.result) and brace's own in the same form for the rest
    (bulkhead.name, retry_budget.name, recovery.name, recovery.outcome, brace.kind).
    """

    def __init__(self, registry: Registry | None = None, meter_provider: MeterProvider | None = None) -> None:
        from opentelemetry import metrics

        if registry is not None and not isinstance(registry, Registry):
            raise TypeError(f"registry must be a brace.Registry or None, got {type(registry).__name__}")
        self._sources = _Sources(registry)
        meter = (metrics.get_meter_provider() if meter_provider is None else meter_provider).get_meter("brace")
        self._instruments = []
        for family in FAMILIES:
            make = meter.create_observable_counter if family.kind == "counter" else meter.create_observable_gauge
            self._instruments.append(make(family.otel, callbacks=[self._callback(family)], unit=family.unit,
                                          description=family.doc))  # fmt: skip

    def add(self, target: object) -> None:
        """Also observes `target` (as PrometheusCollector.add); held weakly."""
        self._sources.add(target)

    def _callback(self, family: _Family) -> Callable[[CallbackOptions], Iterable[Observation]]:
        from opentelemetry.metrics import Observation

        sources = weakref.ref(self._sources)

        def observe(options: CallbackOptions) -> Iterable[Observation]:
            held = sources()
            if held is None:
                return []
            return [Observation(sample.value, dict(zip(family.attributes, sample.labels)))
                    for sample in _samples(family, held.parts(), held)]  # fmt: skip

        return observe


# -- span events --------------------------------------------------------------------------


class Tracing:
    """The listeners trace_events added; `remove()` takes them off again."""

    def __init__(self, added: list[tuple[Any, Callable[[Any], object]]]) -> None:
        self._added = added

    def remove(self) -> None:
        """Removes every listener trace_events added."""
        for part, listener in self._added:
            part.remove_listener(listener)
        self._added = []


def trace_events(target: object) -> Tracing:
    """Adds span events to the current span (OpenTelemetry) for what `target` does.

    `target`: a CircuitBreaker, Retry, RateLimiter, a Policy (its parts), or a
    brace.Registry (the parts it has made so far). Events:
    "brace.circuit_breaker.state_transition" (circuitbreaker.name,
    circuitbreaker.state: the state entered, brace.circuit_breaker.from_state),
    "brace.retry" (retry.name, retry.attempt: the attempt about to start, and
    http.request.resend_count when the failed attempt was an HTTP call: its
    outcome carries a status code or a response), and "brace.rate_limiter.rejected"
    (ratelimiter.name, ratelimiter.result="rejected"). Nothing happens outside a
    recording span. Returns a Tracing whose remove() takes the listeners off.
    """
    from opentelemetry import trace

    found: list[object]
    if isinstance(target, Registry):
        found = target.parts()
    elif isinstance(target, (Policy, CircuitBreaker, Retry, RateLimiter)):
        found = [target]
    else:
        raise TypeError(f"target must be a CircuitBreaker, Retry, RateLimiter, Policy or Registry, "
                        f"got {type(target).__name__}")  # fmt: skip
    parts = {id(part): part for each in found for part in _expanded(each)}

    def on_breaker(event: BreakerEvent) -> None:
        span = trace.get_current_span()
        if span.is_recording() and event.to_state is not None and event.from_state is not None:
            span.add_event("brace.circuit_breaker.state_transition", {
                "circuitbreaker.name": event.name or "", "circuitbreaker.state": event.to_state.value,
                "brace.circuit_breaker.from_state": event.from_state.value})  # fmt: skip

    def on_retry(event: RetryEvent) -> None:
        span = trace.get_current_span()
        if span.is_recording():
            attributes: dict[str, str | int] = {"retry.name": event.name or "", "retry.attempt": event.attempt + 1}
            if _is_http(event.outcome):
                attributes["http.request.resend_count"] = event.attempt
            span.add_event("brace.retry", attributes)

    def on_limiter(event: RateLimiterEvent) -> None:
        span = trace.get_current_span()
        if span.is_recording():
            span.add_event("brace.rate_limiter.rejected",
                           {"ratelimiter.name": event.name or "", "ratelimiter.result": "rejected"})  # fmt: skip

    added: list[tuple[Any, Callable[[Any], object]]] = []
    for part in parts.values():
        if isinstance(part, CircuitBreaker):
            part.add_listener(on_breaker, kinds="state_transition")
            added.append((part, on_breaker))
        elif isinstance(part, Retry):
            part.add_listener(on_retry, kinds="retry")
            added.append((part, on_retry))
        elif isinstance(part, RateLimiter):
            part.add_listener(on_limiter, kinds="rejected")
            added.append((part, on_limiter))
    return Tracing(added)


def _is_http(outcome: object) -> bool:
    """An HTTP response (a status code), or an error carrying one (httpx, requests)."""
    if hasattr(outcome, "status_code") or hasattr(outcome, "status"):
        return True
    return getattr(outcome, "response", None) is not None
