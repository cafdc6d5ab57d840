"""brace.Registry: named breakers, retries, limiters, bulkheads, budgets and policies made from
configuration, each once and on first use, and reloaded while in use."""

from __future__ import annotations

import inspect
import os
import threading
from collections.abc import Mapping
from typing import Any, ClassVar, Literal, NamedTuple, cast

from brace._core import now_ns
from brace._listeners import Listeners, Observable
from brace._registry_config import (
    DEFAULT, KEYS, PARTS, PRIMITIVES, Config, ConfigError, backoff, exception_types, keyword_error, merged, resolve,
    settings,
)  # fmt: skip
from brace._registry_sources import read_env, read_env_origins, read_toml
from brace.breaker import LIVE_SETTINGS, CircuitBreaker
from brace.budget import RetryBudget
from brace.bulkhead import Bulkhead
from brace.classify import DEFAULT_CLASSIFIER
from brace.limiter import RateLimiter
from brace.policy import Policy
from brace.retry import Retry

__all__ = ["Registry", "RegistryEvent"]

_NS = 1e9
EventKind = Literal["reloaded", "reload_failed"]
_EVENT_KINDS = ("reloaded", "reload_failed")
_TIMEOUT = "(timeout)"  # a policy's made settings: its timeout's, under a name no section key has
# Settings a part applies while in use (through its reconfigure), per kind; a change to any other
# setting of a part already made applies to the parts made after the reload.
_LIVE = {"limiter": ("rate", "per", "burst"), "bulkhead": ("max_concurrent", "max_wait"), "breaker": LIVE_SETTINGS,
         "retry": ("on", "attempts", "backoff", "idempotent", "pushback", "pushback_cap", "raise_retry_error"),
         "budget": ("ratio", "min_per_second"), "policy": (_TIMEOUT,)}
# Settings that place a part in a shared store: checked when the part is made, not by a dry run
# (which would open the store).
_SHARED = ("store", "on_store_error", "local_share")


class RegistryEvent(NamedTuple):
    """What a reload did.

    Attributes:
        kind: "reloaded" (the new configuration is in force) or "reload_failed" (the
            old one stays, every part unchanged).
        name: The registry's name, or None.
        at: When (seconds on brace's clock).
        error: Why the reload failed (its message names the key), else None.
        applied: The parts changed in place ("limiter.search"), keeping their state.
        deferred: The parts made before whose changed settings cannot apply while in use:
            they keep their old settings and state; the new ones apply to parts made later.
    """

    kind: EventKind
    name: str | None
    at: float
    error: Exception | None = None
    applied: tuple[str, ...] = ()
    deferred: tuple[str, ...] = ()


def _default(kind: str, key: str) -> Any:
    return inspect.signature(PRIMITIVES[kind].__init__).parameters[key].default


class Registry(Observable[RegistryEvent]):
    """Named resilience parts made from configuration, each once, on first use.

    A configuration maps a kind ("breaker", "retry", "limiter", "bulkhead", "budget",
    "timeout", "policy") to sections: `default`, and named ones that inherit from it (or
    from the section their `extends` names) and override the keys they set. The keys are
    the primitives' own keywords (CircuitBreaker's, Retry's, RateLimiter's, Bulkhead's,
    RetryBudget's; a timeout section takes Policy's `attempt_timeout` and `deadline`), with
    a written form for what a file cannot hold: exception types by name ("ConnectionError",
    "package.module.Error") for retry `on` and breaker `record` / `ignore`; a retry's
    `backoff` as a table ({kind = "exponential", initial = 0.1, max = 5, jitter = "full"});
    a retry's `budget` as a budget's name (true: the budget of the retry's own name).

    `registry.breaker("payments")` is the breaker named "payments", made the first time it
    is asked for from breaker.default overridden by breaker.payments (a name without a
    section gets the default's settings); every later call returns the same object, on
    every thread. `registry.policy("payments")` composes the retry, breaker, limiter,
    bulkhead and timeout of that name (of the kinds the configuration has; a policy
    section's `retry = "other"` takes another's, `retry = false` none).

    Args:
        *configs: Configurations, layered in order: a later one's keys override an earlier
            one's (`Registry(defaults, Registry.read_toml(path), Registry.read_env())`).
        name: A name for events and errors.

    Raises:
        ValueError, TypeError: A configuration with an unknown kind or key, or a value its
            primitive refuses: the message begins with the key's path
            ("breaker.payments.failure_rate_threshold: ...").
    """

    #: The kinds of event a registry emits (add_listener's `kinds`).
    event_kinds: ClassVar[tuple[str, ...]] = _EVENT_KINDS

    def __init__(self, *configs: Mapping[str, Any], name: str | None = None) -> None:
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name must be a str or None, got {type(name).__name__}")
        self._name = name
        self._config: Config = _validated(merged(*configs), ())
        self._parts: dict[tuple[str, str], Any] = {}
        self._made: dict[tuple[str, str], dict[str, Any]] = {}  # each part's settings when made
        self._lock = threading.RLock()  # making a policy makes its parts
        self._listeners: Listeners[RegistryEvent] = Listeners(
            f"registry {name!r}" if name else "a registry", _EVENT_KINDS)  # fmt: skip

    # -- loaders ----------------------------------------------------------------

    @classmethod
    def from_dict(cls, *configs: Mapping[str, Any], name: str | None = None) -> Registry:
        """A registry of the configurations (dicts, layered in order)."""
        return cls(*configs, name=name)

    @classmethod
    def from_toml(cls, path: str | os.PathLike[str], *, name: str | None = None) -> Registry:
        """A registry of a TOML file's configuration (its tables are the kinds' sections)."""
        return cls(read_toml(path), name=name)

    @classmethod
    def from_env(cls, prefix: str = "BRACE_", environ: Mapping[str, str] | None = None, *,
                 name: str | None = None) -> Registry:  # fmt: skip
        """A registry of the environment's configuration (see `read_env` for the names). A value
        outside its key's range is an error naming the variable that set it."""
        config, origins = read_env_origins(prefix, environ)
        try:
            return cls(config, name=name)
        except (ValueError, TypeError) as error:
            path, _, rest = str(error).partition(": ")
            if path not in origins:
                raise
            raise type(error)(f"{origins[path]} ({path}): {rest}") from error

    read_toml = staticmethod(read_toml)
    read_env = staticmethod(read_env)

    # -- the parts --------------------------------------------------------------

    @property
    def name(self) -> str | None:
        """The registry's name, or None."""
        return self._name

    @property
    def config(self) -> dict[str, dict[str, dict[str, Any]]]:
        """The configuration in force (a copy)."""
        return {kind: {name: dict(section) for name, section in sections.items()}
                for kind, sections in self._config.items()}  # fmt: skip

    def breaker(self, name: str) -> CircuitBreaker:
        """The breaker named `name` (made on first use)."""
        return cast(CircuitBreaker, self._part("breaker", name))

    def retry(self, name: str) -> Retry:
        """The retry named `name` (made on first use)."""
        return cast(Retry, self._part("retry", name))

    def limiter(self, name: str) -> RateLimiter:
        """The rate limiter named `name` (made on first use)."""
        return cast(RateLimiter, self._part("limiter", name))

    def bulkhead(self, name: str) -> Bulkhead:
        """The bulkhead named `name` (made on first use)."""
        return cast(Bulkhead, self._part("bulkhead", name))

    def budget(self, name: str) -> RetryBudget:
        """The retry budget named `name` (made on first use)."""
        return cast(RetryBudget, self._part("budget", name))

    def policy(self, name: str) -> Policy:
        """The Policy named `name`, of the parts of that name (made on first use)."""
        return cast(Policy, self._part("policy", name))

    def parts(self) -> list[Any]:
        """The parts made so far (breakers, retries, limiters, bulkheads, budgets, policies)."""
        return list(self._parts.values())  # a copy: parts are only ever added

    def _part(self, kind: str, name: str) -> Any:
        part = self._parts.get((kind, name))  # lock-free once made: a dict read
        if part is not None:
            return part
        if not isinstance(name, str) or not name:
            raise TypeError(f"name must be a non-empty str, got {name!r}")
        with self._lock:
            part = self._parts.get((kind, name))
            if part is None:
                part, made = _make(self._config, kind, name, self._part)
                self._made[(kind, name)] = made
                self._parts[(kind, name)] = part
        return part

    # -- hot reload -------------------------------------------------------------

    def reload(self, *configs: Mapping[str, Any]) -> RegistryEvent:
        """Puts new configurations (layered in order) in force, all or nothing.

        The whole new configuration is checked first, with every part already made. Then
        limiters (rate, per, burst) and bulkheads (max_concurrent, max_wait) change in place
        through their reconfigure, keeping their state: the tokens already taken, the slots in
        use; so do local breakers (every setting but the store's), keeping their state (an OPEN
        breaker stays OPEN for the wait it had, its window keeps its counts). Other changed
        settings of parts already made (a retry's, a budget's, a shared breaker's, ...) apply to
        the parts made after the reload: a part in use keeps its settings and its state; the
        event lists it as deferred.

        Returns:
            The "reloaded" event (also sent to the listeners).

        Raises:
            ValueError, TypeError: The new configuration is refused (the message names the
                key); the old one stays in force, and listeners get a "reload_failed" event.
        """
        failure: Exception | None = None
        with self._lock:
            try:
                config = _validated(merged(*configs), tuple(self._parts))
                applied, deferred = self._apply(config)
            except Exception as error:
                failure = error
            else:
                self._config = config
        if failure is not None:  # the listeners are told outside the lock, as for a success
            self._emit(RegistryEvent("reload_failed", self._name, now_ns() / _NS, error=failure))
            raise failure
        event = RegistryEvent("reloaded", self._name, now_ns() / _NS, applied=applied, deferred=deferred)
        self._emit(event)
        return event

    def _apply(self, config: Config) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """Reconfigures the parts that can change in place; the others are deferred. A failure
        part way puts back the settings of those already changed."""
        live: list[tuple[tuple[str, str], dict[str, Any]]] = []
        deferred: list[str] = []
        for (kind, name), made in self._made.items():
            new = _settings_of(config, kind, name)
            if new == made:
                continue
            changed = {key for key in made.keys() | new.keys() if made.get(key) != new.get(key)}
            part = self._parts[(kind, name)]
            if kind in _LIVE and changed <= set(_LIVE[kind]) and getattr(part, "store", None) is None:
                live.append(((kind, name), new))
            else:
                deferred.append(f"{kind}.{name}")
        done: list[tuple[tuple[str, str], dict[str, Any]]] = []
        try:
            for key, new in live:
                _reconfigure(self._parts[key], key, new)
                done.append((key, self._made[key]))
                self._made[key] = new
        except BaseException:
            for key, old in reversed(done):
                _reconfigure(self._parts[key], key, old)
                self._made[key] = old
            raise
        return tuple(f"{kind}.{name}" for (kind, name), _ in live), tuple(deferred)

    def _emit(self, event: RegistryEvent) -> None:
        if self._listeners.wants(event.kind):
            self._listeners.emit(event, event.kind)

    def __repr__(self) -> str:
        shown = f"name={self._name!r}, " if self._name else ""
        return f"Registry({shown}kinds={sorted(self._config)}, made={len(self._parts)})"


def _reconfigure(part: Any, key: tuple[str, str], new: Mapping[str, Any]) -> None:
    kind, name = key
    try:
        if kind == "limiter":
            part.reconfigure(rate=new["rate"], per=new.get("per"), burst=new.get("burst", _default(kind, "burst")))
        elif kind == "retry":  # every live setting, as for a breaker
            given = {key: new.get(key, _default(kind, key)) for key in _LIVE[kind]}
            if given["on"] is not None:
                given["on"] = exception_types(given["on"], f"{kind}.{name}.on")
            if given["backoff"] is not None:
                given["backoff"] = backoff(given["backoff"], f"{kind}.{name}.backoff")
            part.reconfigure(**given)
        elif kind == "policy":  # its timeout section: a setting it no longer sets is none
            part.reconfigure(deadline=new[_TIMEOUT].get("deadline"), attempt_timeout=new[_TIMEOUT].get("attempt_timeout"))
        elif kind == "budget":
            part.reconfigure(**{key: new.get(key, _default(kind, key)) for key in _LIVE[kind]})
        elif kind == "breaker":  # every live setting: one the new section drops goes back to its default
            part.reconfigure(**{key: exception_types(new[key], f"{kind}.{name}.{key}") if key in new
                                else _default(kind, key) for key in LIVE_SETTINGS})  # fmt: skip
        else:
            part.reconfigure(max_concurrent=new["max_concurrent"],
                             max_wait=new.get("max_wait", _default(kind, "max_wait")))  # fmt: skip
    except (ValueError, TypeError) as error:
        raise keyword_error(error, f"{kind}.{name}", KEYS[kind]) from error


# -- making parts (and dry runs of them, to check a configuration) -------------------------



def _timeout_choice(config: Config, name: str, policy: Mapping[str, Any]) -> dict[str, Any]:
    chosen = _chosen(config, "timeout", name, policy)
    return {} if chosen is None else settings(config, "timeout", chosen)


def _checked_timeout(timeout: Mapping[str, Any], path: str) -> None:
    try:
        Policy(**timeout)
    except (ValueError, TypeError) as error:
        raise keyword_error(error, path, KEYS["timeout"]) from error


def _chosen(config: Config, kind: str, name: str, policy: Mapping[str, Any]) -> str | None:
    """The name of the part of `kind` a policy takes: its own by default, when the configuration
    has that kind; another by name; none with false."""
    choice = policy.get(kind)
    if choice is None:
        return name if config.get(kind) else None
    if choice is True:
        return name
    if choice is False:
        return None
    if isinstance(choice, str) and choice:
        return choice
    raise ConfigError(f"policy.{name}.{kind}: must be the name of a {kind} section, true or false, got {choice!r}")


def _settings_of(config: Config, kind: str, name: str) -> dict[str, Any]:
    """What a part is made of: its section with what it inherits (a policy's: its timeout's too)."""
    found = settings(config, kind, name)
    if kind == "policy":
        found = {**found, _TIMEOUT: _timeout_choice(config, name, found)}
    return found


def _make(config: Config, kind: str, name: str, find: Any, dry: bool = False) -> tuple[Any, dict[str, Any]]:
    """The part `name` of `kind` and its settings; dry: a nameless one, never in a store, to check them."""
    made = _settings_of(config, kind, name)
    if kind == "policy":
        return _make_policy(config, name, made, find), made
    if kind == "timeout":
        raise ConfigError(f"timeout.{name}: a timeout is part of a policy (policy.{name}), not made alone")
    keywords = resolve(config, kind, name, find)
    if kind == "retry" and keywords.get("on") is None and keywords.get("classifier") is None:
        # Told only how often to retry (RETRY_MAX_ATTEMPTS alone): what brace's classifier calls
        # transient, as the HTTP integrations retry.
        keywords["classifier"] = DEFAULT_CLASSIFIER
    if dry:
        for key in _SHARED:
            keywords.pop(key, None)
    try:
        return PRIMITIVES[kind](name=None if dry else name, **keywords), made
    except (ValueError, TypeError) as error:
        raise keyword_error(error, f"{kind}.{name}", KEYS[kind]) from error


def _make_policy(config: Config, name: str, made: Mapping[str, Any], find: Any) -> Policy:
    parts = {kind: find(kind, chosen) for kind in PARTS if kind != "timeout"
             if (chosen := _chosen(config, kind, name, made)) is not None}  # fmt: skip
    timeout = made[_TIMEOUT]
    _checked_timeout(timeout, f"timeout.{_chosen(config, 'timeout', name, made)}")
    return Policy(name=name, **parts, **timeout)


def _validated(config: Config, made: tuple[tuple[str, str], ...]) -> Config:
    """The configuration, once every named section (a kind's default too, when it has no other)
    and every part already made has been made in a dry run."""
    wanted = {(kind, name) for kind, sections in config.items() if kind != "timeout"
              for name in sections if name != DEFAULT or len(sections) == 1}  # fmt: skip
    for name in config.get("timeout", {}):
        _checked_timeout(settings(config, "timeout", name), f"timeout.{name}")
    dry: dict[tuple[str, str], Any] = {}

    def find(kind: str, name: str) -> Any:
        if (kind, name) not in dry:
            dry[(kind, name)] = _make(config, kind, name, find, dry=True)[0]
        return dry[(kind, name)]

    for key in sorted(wanted | set(made)):
        find(*key)
    return config

