"""brace.Registry: sections and inheritance, parts made once on any thread, the loaders (dict,
TOML, environment), and reloads that keep the parts' state or change nothing."""

from __future__ import annotations

import contextlib
import json
import os
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

import brace
from brace import BreakerState, Registry, RegistryEvent

BASE: dict[str, Any] = {
    "breaker": {
        "default": {"failure_rate_threshold": 0.5, "minimum_calls": 4, "window_size": 10, "wait_in_open": 60.0},
        "payments": {"failure_rate_threshold": 0.25},
        "search": {"extends": "payments", "minimum_calls": 2},
    },
    "retry": {"default": {"on": ["ConnectionError", "TimeoutError"], "attempts": 3,
                          "backoff": {"initial": 0.001, "max": 0.002, "jitter": "none"}}},  # fmt: skip
    "limiter": {"default": {"rate": "100/s", "burst": 10}, "payments": {"burst": 5}},
    "bulkhead": {"default": {"max_concurrent": 4}},
    "timeout": {"default": {"attempt_timeout": 5.0}},
}


def _fail() -> None:
    raise ConnectionError("down")


def _backoff(retry: brace.Retry) -> str:
    """The retry's backoff, as its repr shows it (Retry has no backoff property)."""
    shown = repr(retry)
    return shown[shown.index("backoff=") + len("backoff="):-1]


def _bug() -> None:
    raise KeyError("missing")  # a programming error: never transient


def _open(breaker: brace.CircuitBreaker, failures: int) -> None:
    for _ in range(failures):
        with pytest.raises((ConnectionError, brace.CircuitOpen)):
            breaker.call(_fail)


# -- sections, inheritance, identity ------------------------------------------------------


def test_a_named_section_inherits_the_default_and_extends_another() -> None:
    registry = Registry(BASE)
    assert registry.breaker("payments").failure_rate_threshold == 0.25
    assert registry.breaker("other").failure_rate_threshold == 0.5  # no section: the default's
    search = registry.breaker("search")
    assert search.failure_rate_threshold == 0.25  # from payments, which it extends
    _open(search, 2)  # minimum_calls 2 (its own), not the default's 4
    assert search.state is BreakerState.OPEN
    assert registry.limiter("payments").state().limit == 5
    assert registry.limiter("search").state().limit == 10


def test_a_table_is_inherited_key_by_key() -> None:
    config = {"retry": {"default": {"on": "OSError", "backoff": {"initial": 0.5, "max": 10.0}},
                        "fast": {"backoff": {"initial": 0.01}}}}  # fmt: skip
    assert _backoff(Registry(config).retry("fast")) == repr(brace.Backoff.exponential(initial=0.01, max=10.0))


def test_the_same_name_is_the_same_object_and_parts_are_made_on_first_use() -> None:
    registry = Registry(BASE)
    assert repr(registry).endswith("made=0)")
    assert registry.breaker("payments") is registry.breaker("payments")
    assert registry.breaker("payments") is not registry.breaker("search")
    assert registry.limiter("payments").name == registry.bulkhead("payments").name == "payments"
    assert repr(registry).endswith("made=4)")


def test_threads_asking_at_once_get_one_object() -> None:
    for _ in range(20):
        registry = Registry(BASE)
        start = threading.Barrier(8)
        seen: list[object] = []

        def ask() -> None:
            start.wait()
            seen.append(registry.policy("payments"))

        threads = [threading.Thread(target=ask) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(seen) == 8 and all(policy is seen[0] for policy in seen)


def test_a_policy_composes_the_parts_of_its_name() -> None:
    registry = Registry(BASE, {"policy": {"lean": {"limiter": False, "breaker": "search", "bulkhead": False}}})
    policy = registry.policy("payments")
    assert policy.name == "payments"
    assert policy.retry is registry.retry("payments")
    breaker = registry.breaker("payments")
    _open(breaker, 4)
    with pytest.raises(brace.CircuitOpen):  # the policy goes through that same breaker
        policy.call(lambda: 1)
    lean = registry.policy("lean")
    assert lean.call(lambda: 7) == 7
    _open(registry.breaker("search"), 2)
    with pytest.raises(brace.CircuitOpen):
        lean.call(lambda: 1)
    assert registry.limiter("lean").state().remaining == 10  # not in the policy: never asked


def test_a_policy_of_a_configuration_without_a_kind_leaves_it_out() -> None:
    registry = Registry({"retry": {"default": {"on": "ConnectionError", "attempts": 2,
                                               "backoff": {"kind": "constant", "delay": 0}}}})  # fmt: skip
    calls: list[int] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 2:
            raise ConnectionError
        return "ok"

    assert registry.policy("api").call(flaky) == "ok" and len(calls) == 2


def test_a_retry_budget_by_name_or_its_own() -> None:
    registry = Registry({"retry": {"default": {"on": "OSError", "budget": True}, "b": {"budget": "shared"},
                                   "none": {"budget": False}},  # fmt: skip
                         "budget": {"default": {"ratio": 0.5}}})
    assert registry.retry("a").budget is registry.budget("a")
    assert registry.retry("b").budget is registry.budget("shared")
    assert registry.retry("none").budget is None


def test_exception_names_resolve_to_their_types() -> None:
    registry = Registry({"breaker": {"default": {"record": ["ConnectionError", "json.JSONDecodeError"],
                                                 "consecutive_failures": 1}}})  # fmt: skip
    breaker = registry.breaker("x")

    def lookup() -> None:
        raise KeyError("missing")

    with pytest.raises(KeyError):
        breaker.call(lookup)  # not recorded: a success
    assert breaker.metrics().state is BreakerState.CLOSED
    with pytest.raises(json.JSONDecodeError):
        breaker.call(json.loads, "{")
    assert breaker.metrics().state is BreakerState.OPEN


# -- bad configuration: the error names the key ------------------------------------------


@pytest.mark.parametrize(("config", "error", "path"), [
    ({"breaker": {"payments": {"failure_rate_threshold": 2}}}, ValueError, "breaker.payments.failure_rate_threshold: "),
    ({"breaker": {"payments": {"failure_treshold": 2}}}, ValueError, "breaker.payments.failure_treshold: unknown key"),
    ({"breaker": {"default": {"half_open_calls": 0}}}, ValueError, "breaker.default.half_open_calls: "),
    ({"breakers": {}}, ValueError, "breakers: unknown kind"),
    ({"breaker": []}, ValueError, "breaker: must be a table"),
    ({"breaker": {"a": 3}}, ValueError, "breaker.a: must be a table"),
    ({"breaker": {"a": {"extends": "b"}, "b": {"extends": "a"}}}, ValueError, "breaker.a.extends: a cycle"),
    ({"breaker": {"a": {"extends": "nowhere"}}}, ValueError, "breaker.a.extends: no breaker section named 'nowhere'"),
    ({"breaker": {"default": {"extends": "a"}}}, ValueError, "breaker.default.extends: the default section"),
    ({"retry": {"x": {"on": "NoSuchError"}}}, ValueError, "retry.x.on: 'NoSuchError' names no exception type"),
    ({"retry": {"x": {"on": "OSError", "backoff": {"initial": -1}}}}, ValueError, "retry.x.backoff.initial: "),
    ({"retry": {"x": {"on": "OSError", "backoff": {"kind": "wild"}}}}, ValueError, "retry.x.backoff.kind: "),
    ({"limiter": {"x": {"burst": 3}}}, TypeError, "limiter.x.rate: "),
    ({"limiter": {"x": {"rate": "fast"}}}, ValueError, "limiter.x.rate: "),
    ({"bulkhead": {"default": {"max_concurrent": -1}}}, ValueError, "bulkhead.default.max_concurrent: "),
    ({"budget": {"default": {"ratio": 0}}}, ValueError, "budget.default.ratio: "),
    ({"timeout": {"slow": {"deadline": 0}}}, ValueError, "timeout.slow.deadline: "),
    ({"timeout": {"slow": {"attempt_timeout": "1s"}}}, TypeError, "timeout.slow.attempt_timeout: "),
    ({"policy": {"p": {"retry": 3}}}, ValueError, "policy.p.retry: must be the name"),
    ({"policy": {"p": {"deadline": 3}}}, ValueError, "policy.p.deadline: unknown key"),
])  # fmt: skip
def test_bad_configuration_names_the_key(config: dict[str, Any], error: type[Exception], path: str) -> None:
    with pytest.raises(error) as raised:
        Registry(config)
    assert str(raised.value).startswith(path)


def test_a_part_made_later_from_a_bad_default_names_its_key() -> None:
    registry = Registry({"limiter": {"default": {"burst": 2}, "a": {"rate": 5}}})
    assert registry.limiter("a").state().limit == 2
    with pytest.raises(TypeError, match=r"^limiter\.b\.rate: "):
        registry.limiter("b")


def test_a_name_must_be_a_str() -> None:
    with pytest.raises(TypeError, match="name must be a non-empty str"):
        Registry(BASE).breaker(3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="name must be a str or None"):
        Registry(BASE, name=3)  # type: ignore[arg-type]


# -- the environment ---------------------------------------------------------------------


@pytest.mark.parametrize(("variable", "value", "path", "expected"), [
    ("CIRCUIT_BREAKER_FAILURE_THRESHOLD", "5", ("breaker", "default", "consecutive_failures"), 5),
    ("CIRCUIT_BREAKER_FAILURE_RATE_THRESHOLD", "0.4", ("breaker", "default", "failure_rate_threshold"), 0.4),
    ("CIRCUIT_BREAKER_TIMEOUT_SECONDS", "30", ("breaker", "default", "wait_in_open"), 30.0),
    ("CIRCUIT_BREAKER_HALF_OPEN_MAX_CALLS", "3", ("breaker", "default", "half_open_calls"), 3),
    ("CIRCUIT_BREAKER_MINIMUM_CALLS", "20", ("breaker", "default", "minimum_calls"), 20),
    ("CIRCUIT_BREAKER_WINDOW_SIZE", "50", ("breaker", "default", "window_size"), 50),
    ("RETRY_MAX_ATTEMPTS", "4", ("retry", "default", "attempts"), 4),
    ("RETRY_BASE_DELAY_MS", "250", ("retry", "default", "backoff", "initial"), 0.25),
    ("RETRY_MAX_DELAY_MS", "5000", ("retry", "default", "backoff", "max"), 5.0),
    ("RETRY_JITTER_ENABLED", "false", ("retry", "default", "backoff", "jitter"), "none"),
    ("RETRY_JITTER_ENABLED", "1", ("retry", "default", "backoff", "jitter"), "full"),
    ("RETRY_ON", "ConnectionError, TimeoutError", ("retry", "default", "on"), ["ConnectionError", "TimeoutError"]),
    ("RETRY_BUDGET_LIMIT", "0.1", ("budget", "default", "ratio"), 0.1),
    ("RETRY_BUDGET_MIN_PER_SECOND", "5", ("budget", "default", "min_per_second"), 5),
    ("RATE_LIMITER_RATE", "50/s", ("limiter", "default", "rate"), "50/s"),
    ("RATE_LIMITER_BURST", "7", ("limiter", "default", "burst"), 7),
    ("BULKHEAD_MAX_CONCURRENT", "8", ("bulkhead", "default", "max_concurrent"), 8),
    ("ATTEMPT_TIMEOUT_MS", "1500", ("timeout", "default", "attempt_timeout"), 1.5),
    ("DEADLINE_MS", "10000", ("timeout", "default", "deadline"), 10.0),
    ("REDIS_FAILURE_THRESHOLD", "3", ("breaker", "redis", "consecutive_failures"), 3),
    ("REDIS_TIMEOUT_SECONDS", "2.5", ("breaker", "redis", "wait_in_open"), 2.5),
    ("REDIS_CIRCUIT_BREAKER_HALF_OPEN_MAX_CALLS", "2", ("breaker", "redis", "half_open_calls"), 2),
    ("PAYMENTS_API_RETRY_MAX_ATTEMPTS", "6", ("retry", "payments_api", "attempts"), 6),
    ("SEARCH_RATE_LIMITER_RATE", "5/min", ("limiter", "search", "rate"), "5/min"),
])  # fmt: skip
def test_every_environment_name_sets_its_key(variable: str, value: str, path: tuple[str, ...],
                                             expected: object) -> None:  # fmt: skip
    config = Registry.read_env("APP_", {"APP_" + variable: value, "OTHER": "not ours"})
    found: Any = config
    for step in path:
        found = found[step]
    assert found == expected


def test_a_retry_budget_limit_gives_the_retry_its_budget() -> None:
    registry = Registry.from_env("APP_", {"APP_RETRY_BUDGET_LIMIT": "0.5", "APP_RETRY_ON": "OSError",
                                          "APP_REDIS_RETRY_MAX_ATTEMPTS": "2"})  # fmt: skip
    assert registry.retry("redis").budget is registry.budget("redis")
    assert registry.retry("redis").attempts == 2


@pytest.mark.parametrize("variable, value", [("RETRY_MAX_ATTEMPTS", "4"), ("RETRY_BUDGET_LIMIT", "0.2"),
                                             ("RETRY_JITTER_ENABLED", "false")])  # fmt: skip
def test_a_retry_told_nothing_to_retry_on_retries_what_the_classifier_calls_transient(variable: str,
                                                                                     value: str) -> None:  # fmt: skip
    retry = Registry.from_env("APP_", {"APP_" + variable: value}).retry("default")
    calls = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) == 1:
            raise ConnectionResetError("reset by peer")  # transient for the classifier
        return "ok"

    assert retry.call(flaky) == "ok" and len(calls) == 2
    with pytest.raises(KeyError):
        retry.call(_bug)  # a bug is not retried


def test_the_process_environment_is_read_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRACE_CIRCUIT_BREAKER_FAILURE_THRESHOLD", "2")
    monkeypatch.setenv("BRACE_PAYMENTS_RETRY_MAX_ATTEMPTS", "5")
    monkeypatch.setenv("BRACE_RETRY_ON", "ConnectionError")
    registry = Registry.from_env()
    breaker = registry.breaker("default")
    _open(breaker, 2)
    assert breaker.state is BreakerState.OPEN
    assert registry.retry("payments").attempts == 5
    monkeypatch.setenv("BRACE_RETRY_MAX_ATTEMPTS", "many")
    with pytest.raises(ValueError, match="BRACE_RETRY_MAX_ATTEMPTS"):
        Registry.from_env()


@pytest.mark.parametrize("variable, value, message", [
    ("CIRCUIT_BREAKER_HALF_OPEN_MAX_CALLS", "5000",
     "APP_CIRCUIT_BREAKER_HALF_OPEN_MAX_CALLS (breaker.default.half_open_calls): half_open_calls must be an int "
     "from 1 to 1023, got 5000"),
    ("PAYMENTS_RETRY_MAX_ATTEMPTS", "0", "APP_PAYMENTS_RETRY_MAX_ATTEMPTS (retry.payments.attempts): attempts must"),
    ("RETRY_BUDGET_LIMIT", "5000", "APP_RETRY_BUDGET_LIMIT (budget.default.ratio): ratio must"),
])  # fmt: skip
def test_a_value_out_of_range_names_its_variable(variable: str, value: str, message: str) -> None:
    with pytest.raises(ValueError) as raised:
        Registry.from_env("APP_", {"APP_" + variable: value, "APP_RETRY_ON": "OSError"})
    assert str(raised.value).startswith(message)


def test_the_environment_builds_working_parts() -> None:
    environ = {"BRACE_CIRCUIT_BREAKER_FAILURE_THRESHOLD": "5", "BRACE_REDIS_FAILURE_THRESHOLD": "2",
               "BRACE_CIRCUIT_BREAKER_TIMEOUT_SECONDS": "30", "BRACE_CIRCUIT_BREAKER_HALF_OPEN_MAX_CALLS": "1"}
    registry = Registry.from_env(environ=environ)
    redis = registry.breaker("redis")
    _open(redis, 2)  # its own threshold: 2, not 5
    assert redis.state is BreakerState.OPEN
    assert 29 < redis.metrics().time_until_half_open <= 30  # the default's wait, inherited
    other = registry.breaker("db")
    _open(other, 4)
    assert other.state is BreakerState.CLOSED


@pytest.mark.parametrize(("variable", "value", "message"), [
    ("APP_RETRY_MAX_ATTEMPTS", "three", r"^APP_RETRY_MAX_ATTEMPTS \(retry\.default\.attempts\): must be a whole number"),
    ("APP_RETRY_MAX_ATTEMPTS", "-1", r"^APP_RETRY_MAX_ATTEMPTS \(retry\.default\.attempts\)"),
    ("APP_RETRY_JITTER_ENABLED", "yes", r"^APP_RETRY_JITTER_ENABLED .*true, false, 1 or 0"),
    ("APP_RETRY_BASE_DELAY_MS", "1e3", r"^APP_RETRY_BASE_DELAY_MS \(retry\.default\.backoff\.initial\)"),
    ("APP_CIRCUIT_BREAKER_TIMEOUT_SECONDS", "nan", r"^APP_CIRCUIT_BREAKER_TIMEOUT_SECONDS "),
    ("APP_RETRY_ON", "OSError,,", r"^APP_RETRY_ON .*exception names"),
    ("APP_CIRCUIT_BREAKER_FAILURE_TRESHOLD", "5", r"^APP_CIRCUIT_BREAKER_FAILURE_TRESHOLD: unknown name"),
    ("APP_VERBOSE", "1", r"^APP_VERBOSE: unknown name"),
    ("APP_redis_FAILURE_THRESHOLD", "1", r"^APP_redis_FAILURE_THRESHOLD: unknown name"),
])  # fmt: skip
def test_bad_environment_values_and_unknown_names_name_the_variable(variable: str, value: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Registry.read_env("APP_", {variable: value})


def test_a_value_in_range_for_its_form_but_not_its_key_names_the_variable_and_the_key() -> None:
    with pytest.raises(ValueError, match=r"^APP_REDIS_RETRY_MAX_DELAY_MS \(retry\.redis\.backoff\.max\): "):
        Registry.from_env("APP_", {"APP_RETRY_ON": "OSError", "APP_REDIS_RETRY_BASE_DELAY_MS": "500",
                                   "APP_REDIS_RETRY_MAX_DELAY_MS": "100"})  # fmt: skip
    with pytest.raises(ValueError, match=r"^breaker\.default\.half_open_calls: "):  # no variable: the key
        Registry({"breaker": {"default": {"half_open_calls": 5000}}})


def test_without_a_prefix_only_matching_names_are_read() -> None:
    config = Registry.read_env("", {"PATH": "/bin", "RETRY_MAX_ATTEMPTS": "2", "HOME": "/root"})
    assert config == {"retry": {"default": {"attempts": 2}}}


# -- TOML, and layering --------------------------------------------------------------------

TOML = """
[breaker.default]
failure_rate_threshold = 0.5
minimum_calls = 4
wait_in_open = 30.0

[breaker.payments]
failure_rate_threshold = 0.25

[retry.default]
on = ["ConnectionError"]
attempts = 4
backoff = { kind = "exponential", initial = 0.1, max = 2.0, jitter = "equal" }

[limiter.default]
rate = "20/s"
burst = 4

[policy.payments]
bulkhead = false
"""


def test_a_toml_file_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "brace.toml"
    path.write_text(TOML, encoding="utf-8")
    registry = Registry.from_toml(path)
    assert registry.config == Registry.read_toml(str(path))
    assert registry.config["retry"]["default"]["backoff"]["jitter"] == "equal"
    assert registry.breaker("payments").failure_rate_threshold == 0.25
    assert _backoff(registry.retry("payments")) == repr(brace.Backoff.exponential(initial=0.1, max=2.0, jitter="equal"))
    assert registry.limiter("payments").state().limit == 4
    assert registry.policy("payments").limiter is registry.limiter("payments")


def test_layers_override_key_by_key(tmp_path: Path) -> None:
    path = tmp_path / "brace.toml"
    path.write_text(TOML, encoding="utf-8")
    environ = {"BRACE_PAYMENTS_RETRY_MAX_DELAY_MS": "500", "BRACE_CIRCUIT_BREAKER_MINIMUM_CALLS": "9"}
    defaults = {"breaker": {"default": {"window_size": 50, "minimum_calls": 2}}}
    registry = Registry.from_dict(defaults, Registry.read_toml(path), Registry.read_env("BRACE_", environ))
    assert registry.config["breaker"]["default"] == {"window_size": 50, "minimum_calls": 9,
                                                     "failure_rate_threshold": 0.5, "wait_in_open": 30.0}  # fmt: skip
    # the environment's max over the TOML default's backoff table, its other keys inherited
    assert _backoff(registry.retry("payments")) == repr(brace.Backoff.exponential(initial=0.1, max=0.5, jitter="equal"))


@pytest.mark.parametrize(("text", "message"), [
    ("[breaker.default\n", "not valid TOML"),
    ("[breaker.default]\nfailure_rate = 0.5\n", "breaker.default.failure_rate: unknown key"),
    ("[retries.default]\n", "retries: unknown kind"),
])  # fmt: skip
def test_a_bad_toml_file_is_named(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        Registry.from_toml(path)


# -- hot reload -----------------------------------------------------------------------------


def _events(registry: Registry) -> list[RegistryEvent]:
    events: list[RegistryEvent] = []
    registry.add_listener(events.append)
    return events


def test_a_reload_changes_breakers_in_place_keeping_their_state() -> None:
    registry = Registry(BASE, name="svc")
    events = _events(registry)
    payments, orders = registry.breaker("payments"), registry.breaker("orders")
    _open(payments, 4)
    orders.call(lambda: None)
    with pytest.raises(ConnectionError):
        orders.call(_fail)  # 1 of 2 failed: below minimum_calls (4)
    event = registry.reload(BASE, {"breaker": {"default": {"wait_in_open": 5.0}, "orders": {"minimum_calls": 3}}})
    assert event == events[-1] and event.kind == "reloaded" and event.name == "svc"
    assert set(event.applied) == {"breaker.payments", "breaker.orders"} and event.deferred == ()
    assert registry.breaker("payments") is payments and payments.state is BreakerState.OPEN
    assert payments.metrics().time_until_half_open > 50  # its wait from before: not cut short
    assert orders.metrics().calls == 2 and orders.metrics().failures == 1
    with pytest.raises(ConnectionError):
        orders.call(_fail)  # 2 of 3 failed: minimum_calls is 3 now
    assert orders.state is BreakerState.OPEN
    assert orders.metrics().time_until_half_open <= 5.0  # the new wait: this opening is after the reload
    fresh = registry.breaker("fresh")
    _open(fresh, 4)
    assert fresh.metrics().time_until_half_open <= 5.0


def test_a_reload_puts_a_dropped_breaker_setting_back_to_its_default() -> None:
    registry = Registry(BASE, {"breaker": {"payments": {"ignore": ["KeyError"]}}})
    payments = registry.breaker("payments")
    event = registry.reload(BASE)
    assert event.applied == ("breaker.payments",)
    with pytest.raises(KeyError):
        payments.call(_bug)
    assert (payments.calls().ignored, payments.calls().failed) == (0, 1)
    registry.reload(BASE, {"breaker": {"payments": {"ignore": ["KeyError"]}}})  # by name, as from TOML
    with pytest.raises(KeyError):
        payments.call(_bug)
    assert payments.calls().ignored == 1


def test_a_shared_breaker_is_deferred() -> None:
    region = f"brace-test-registry-{os.getpid()}"
    try:
        shared = {"breaker": {"payments": {"store": f"shm://{region}"}}}
        registry = Registry(BASE, shared)
        breaker = registry.breaker("payments")
        event = registry.reload(BASE, shared, {"breaker": {"payments": {"minimum_calls": 2}}})
        assert event.deferred == ("breaker.payments",) and event.applied == ()
        assert registry.breaker("payments") is breaker
    finally:
        brace.shm.unlink(region)


def test_a_reload_keeps_a_limiters_taken_tokens() -> None:
    with brace.testing.fake_clock():  # at 100/s, the tokens taken would come back while a slow machine reloads
        registry = Registry(BASE)
        limiter = registry.limiter("payments")  # burst 5
        assert limiter.try_acquire(3)
        event = registry.reload(BASE, {"limiter": {"payments": {"burst": 8, "rate": "1/min"}}})
        assert event.applied == ("limiter.payments",) and event.deferred == ()
        state = registry.limiter("payments").state()
        assert registry.limiter("payments") is limiter
        assert state.limit == 8 and state.remaining == 5  # the 3 taken stay taken
        assert limiter.try_acquire(5) and not limiter.try_acquire(1)


def test_a_reload_keeps_a_bulkheads_slots_in_use() -> None:
    registry = Registry(BASE)
    bulkhead = registry.bulkhead("db")
    with contextlib.ExitStack() as held:
        for _ in range(3):
            held.enter_context(bulkhead)
        event = registry.reload(BASE, {"bulkhead": {"db": {"max_concurrent": 3, "max_wait": 0}}})
        assert event.applied == ("bulkhead.db",)
        assert bulkhead.in_use == 3 and bulkhead.max_concurrent == 3
        with pytest.raises(brace.BulkheadFull):
            with bulkhead:
                pass
    assert bulkhead.in_use == 0 and bulkhead.available == 3


def test_a_reload_changes_a_retry_in_use_keeping_its_counts() -> None:
    config = {**BASE, "policy": {"payments": {"breaker": False}}}  # failing calls would open its breaker
    registry = Registry(config)
    retry, policy = registry.retry("payments"), registry.policy("payments")
    calls: list[int] = []

    def failing() -> None:
        calls.append(1)
        raise ConnectionError("down")

    with pytest.raises(ConnectionError):
        retry.call(failing)
    assert len(calls) == 3 and retry.calls().failed_with_retry == 1
    event = registry.reload(config, {"retry": {"payments": {"attempts": 5, "on": ["OSError"],
                                                          "backoff": {"max": 0.001}}}})  # fmt: skip
    assert event.applied == ("retry.payments",) and event.deferred == ()
    assert registry.retry("payments") is retry and retry.attempts == 5
    calls.clear()
    with pytest.raises(ConnectionError):
        policy.call(failing)  # the policy made before the reload retries by the new settings
    assert len(calls) == 5 and retry.calls().failed_with_retry == 2
    with pytest.raises(KeyError):
        retry.call(_bug)  # not an OSError: not retried


def test_a_reload_changes_a_budget_in_use_keeping_its_window() -> None:
    with brace.testing.fake_clock():
        registry = Registry({"budget": {"default": {"ratio": 0.2, "min_per_second": 0}}})
        budget = registry.budget("calls")
        for _ in range(10):
            budget.deposit()
        event = registry.reload({"budget": {"default": {"ratio": 0.5, "min_per_second": 0}}})
        assert event.applied == ("budget.calls",) and registry.budget("calls") is budget
        assert budget.balance == pytest.approx(5.0)  # the same 10 calls, at the new ratio


def test_a_retry_whose_deadline_changes_is_deferred() -> None:
    registry = Registry(BASE)
    retry = registry.retry("payments")
    event = registry.reload(BASE, {"retry": {"payments": {"deadline": 1.0}}})
    assert event.deferred == ("retry.payments",) and retry.deadline is None


def test_a_retry_refuses_a_bad_live_setting_and_keeps_its_own() -> None:
    retry = brace.Retry(on=ConnectionError, attempts=2)
    with pytest.raises(ValueError, match="attempts"):
        retry.reconfigure(attempts=0)
    with pytest.raises(TypeError, match="on must be"):
        retry.reconfigure(on=None)  # without a classifier, something must be retried
    assert retry.attempts == 2
    retry.reconfigure(pushback=False)  # the others keep their values
    assert retry.attempts == 2


def test_an_unchanged_part_is_left_alone() -> None:
    registry = Registry(BASE)
    registry.breaker("payments"), registry.limiter("payments"), registry.policy("payments")
    event = registry.reload(BASE, {"breaker": {"other": {"minimum_calls": 1}}})
    assert event.applied == () and event.deferred == ()


def test_a_policy_s_timeout_changes_in_place() -> None:
    registry = Registry(BASE)
    policy = registry.policy("payments")
    event = registry.reload(BASE, {"timeout": {"default": {"attempt_timeout": 5.0, "deadline": 2.0}}})
    assert event.applied == ("policy.payments",) and event.deferred == ()
    assert registry.policy("payments") is policy
    remaining = policy.call(brace.deadline_remaining)  # the new bound, read inside (5 s before)
    assert remaining is not None and 0.0 < remaining <= 2.0


def test_a_policy_whose_parts_change_is_deferred() -> None:
    registry = Registry(BASE)
    policy = registry.policy("payments")
    event = registry.reload(BASE, {"policy": {"payments": {"bulkhead": False}}})
    assert event.deferred == ("policy.payments",) and registry.policy("payments") is policy


def test_a_failed_reload_keeps_the_old_configuration_and_tells_the_listeners() -> None:
    with brace.testing.fake_clock():  # the tokens taken must not come back (100/s) during the reload
        registry = Registry(BASE)
        events = _events(registry)
        limiter, breaker = registry.limiter("payments"), registry.breaker("payments")
        assert limiter.try_acquire(2)
        before = registry.config
        bad = {**BASE, "limiter": {"default": {"rate": "1/s", "burst": 20}},
               "breaker": {"default": {"minimum_calls": 0}}}  # fmt: skip
        with pytest.raises(ValueError, match=r"^breaker\.default\.minimum_calls: ") as raised:
            registry.reload(bad)
        assert [event.kind for event in events] == ["reload_failed"] and events[0].error is raised.value
        assert registry.config == before
        assert limiter.state().limit == 5 and limiter.state().remaining == 3  # not half applied
        assert registry.breaker("payments") is breaker


def test_a_reload_refused_by_a_part_in_use_names_it() -> None:
    registry = Registry(BASE)
    events = _events(registry)
    registry.limiter("made-from-default")
    with pytest.raises(TypeError, match=r"^limiter\.made-from-default\.rate: "):
        registry.reload({"limiter": {"payments": {"rate": 5}}})  # the default lost its rate
    assert events[-1].kind == "reload_failed"
    assert registry.limiter("made-from-default").state().limit == 10


def test_a_reload_that_fails_part_way_puts_back_what_it_changed() -> None:
    registry = Registry({"limiter": {"default": {"rate": 10, "burst": 4}}})
    first, second = registry.limiter("a"), registry.limiter("b")
    # a burst a nanosecond-scale interval cannot hold: refused by b's reconfigure, after a's
    huge = {"limiter": {"default": {"rate": 10, "burst": 4}, "a": {"burst": 6}, "b": {"burst": 2**62}}}
    with pytest.raises(ValueError, match=r"^limiter\.b\.burst: "):
        registry.reload(huge)
    assert first.state().limit == 4 and second.state().limit == 4


def test_reloads_and_lookups_on_many_threads() -> None:
    registry = Registry(BASE)
    limiter = registry.limiter("payments")
    start = threading.Barrier(6)
    errors: list[BaseException] = []

    def reload(burst: int) -> None:
        start.wait()
        try:
            for _ in range(50):
                registry.reload(BASE, {"limiter": {"payments": {"burst": burst}}})
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    def look() -> None:
        start.wait()
        for index in range(200):
            assert registry.limiter("payments") is limiter
            registry.breaker(f"b{index % 7}")

    threads = [threading.Thread(target=reload, args=(burst,)) for burst in (3, 7, 9)]
    threads += [threading.Thread(target=look) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert limiter.state().limit in (3, 7, 9)
    assert registry.config["limiter"]["payments"]["burst"] == limiter.state().limit


def test_listeners_by_kind() -> None:
    registry = Registry(BASE)
    failed: list[RegistryEvent] = []
    registry.add_listener(failed.append, kinds="reload_failed")
    registry.reload(BASE)
    assert failed == []
    with pytest.raises(ValueError):
        registry.reload({"nope": {}})
    assert len(failed) == 1 and isinstance(failed[0].error, ValueError)
    with pytest.raises(ValueError, match="kinds must be among"):
        registry.add_listener(failed.append, kinds="changed")


def test_durations_as_timedelta_from_a_dict() -> None:
    registry = Registry({"breaker": {"default": {"wait_in_open": timedelta(seconds=90), "consecutive_failures": 1}}})
    breaker = registry.breaker("x")
    _open(breaker, 1)
    assert 80 < breaker.metrics().time_until_half_open <= 90
