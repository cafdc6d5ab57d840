"""brace.Registry's configuration: its shape, inheritance, and the keyword arguments of each part.

A configuration is a mapping of kind ("breaker", "retry", "limiter", "bulkhead", "budget",
"timeout", "policy") to sections: `default` and named ones. A named section inherits from
`default` (or from the section its `extends` names) and overrides what it sets. Keys are the
primitives' own keyword names; the few values a file cannot hold as Python objects have a
written form here (exception names, a backoff table, a budget or part by name).
"""

from __future__ import annotations

import builtins
import importlib
import inspect
import re
from collections.abc import Iterable, Mapping
from typing import Any, Callable

from brace.backoff import Backoff
from brace.breaker import CircuitBreaker
from brace.budget import RetryBudget
from brace.bulkhead import Bulkhead
from brace.limiter import RateLimiter
from brace.retry import Retry

__all__ = ["KEYS", "KINDS", "PARTS", "PRIMITIVES", "Config", "ConfigError", "check", "keyword_error", "merged", "resolve", "settings"]

Config = Mapping[str, Mapping[str, Mapping[str, Any]]]

# The kinds a configuration holds, and the parts a policy composes (in Policy's keyword names).
PRIMITIVES: dict[str, Callable[..., Any]] = {
    "breaker": CircuitBreaker, "retry": Retry, "limiter": RateLimiter, "bulkhead": Bulkhead,
    "budget": RetryBudget,
}  # fmt: skip
TIMEOUT_KEYS = ("attempt_timeout", "deadline")
PARTS = ("retry", "breaker", "limiter", "bulkhead", "timeout")
KINDS = (*PRIMITIVES, "timeout", "policy")
EXTENDS = "extends"
DEFAULT = "default"
BACKOFF_KINDS = ("exponential", "linear", "constant")
# Keys whose values are exception types: given as such, or by name ("ConnectionError", "pkg.mod.Error").
EXCEPTION_KEYS = {("retry", "on"), ("breaker", "record"), ("breaker", "ignore")}


# A configuration key or value outside what it accepts: a ValueError, its message led by the key's path.
ConfigError = ValueError


def _keys(kind: str) -> frozenset[str]:
    """The keys a section of `kind` accepts: its primitive's keywords (name aside) and `extends`."""
    if kind == "timeout":
        names: tuple[str, ...] = TIMEOUT_KEYS
    elif kind == "policy":
        names = PARTS
    else:
        parameters = inspect.signature(PRIMITIVES[kind].__init__).parameters.values()
        names = tuple(p.name for p in parameters if p.kind is p.KEYWORD_ONLY and p.name != "name")
    return frozenset((*names, EXTENDS))


KEYS = {kind: _keys(kind) for kind in KINDS}


def _shown(names: frozenset[str] | tuple[str, ...]) -> str:
    return ", ".join(sorted(names))


def check(config: object, source: str = "configuration") -> dict[str, dict[str, dict[str, Any]]]:
    """The configuration's shape checked (kinds, sections, keys), as plain nested dicts.

    Raises:
        ConfigError: an unknown kind or key, a section that is no table, a bad `extends`.
    """
    if not isinstance(config, Mapping):
        raise TypeError(f"{source} must be a mapping of kind to sections, got {type(config).__name__}")
    result: dict[str, dict[str, dict[str, Any]]] = {}
    for kind, sections in config.items():
        if kind not in KINDS:
            raise ConfigError(f"{kind}: unknown kind in {source}; the kinds are {_shown(KINDS)}")
        if not isinstance(sections, Mapping):
            raise ConfigError(f"{kind}: must be a table of sections (default and named ones), "
                              f"got {type(sections).__name__}")  # fmt: skip
        result[kind] = {}
        for name, section in sections.items():
            result[kind][name] = _checked_section(kind, name, section)
    return result


def _checked_section(kind: str, name: object, section: object) -> dict[str, Any]:
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{kind}.{name!r}: a section's name must be a non-empty str")
    if not isinstance(section, Mapping):
        raise ConfigError(f"{kind}.{name}: must be a table of keys, got {type(section).__name__}")
    for key in section:
        if key not in KEYS[kind]:
            raise ConfigError(f"{kind}.{name}.{key}: unknown key; a {kind} section accepts {_shown(KEYS[kind])}")
    extends = section.get(EXTENDS)
    if extends is not None and (not isinstance(extends, str) or not extends):
        raise ConfigError(f"{kind}.{name}.{EXTENDS}: must name another {kind} section, got {extends!r}")
    if name == DEFAULT and extends is not None:
        raise ConfigError(f"{kind}.{DEFAULT}.{EXTENDS}: the default section extends nothing")
    return dict(section)


def merged(*configs: Mapping[str, Any]) -> dict[str, dict[str, dict[str, Any]]]:
    """The configurations layered in order: a later one's keys override an earlier one's, key by key."""
    result: dict[str, dict[str, dict[str, Any]]] = {}
    for index, config in enumerate(configs):
        for kind, sections in check(config, f"configuration {index + 1}").items():
            for name, section in sections.items():
                overlay(result.setdefault(kind, {}).setdefault(name, {}), section)
    return result


def overlay(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """base with over's keys set over it; a table (a backoff) is overlaid key by key."""
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), Mapping):
            base[key] = overlay(dict(base[key]), value)
        else:
            base[key] = dict(value) if isinstance(value, Mapping) else value
    return base


def settings(config: Config, kind: str, name: str) -> dict[str, Any]:
    """The section `name` of `kind` with what it inherits (default, or its `extends` chain)."""
    sections = config.get(kind, {})
    chain: list[Mapping[str, Any]] = []
    current: str | None = name
    seen: list[str] = []
    while current is not None:
        if current in seen:
            raise ConfigError(f"{kind}.{seen[0]}.{EXTENDS}: a cycle ({' -> '.join([*seen, current])})")
        seen.append(current)
        section = sections.get(current)
        if section is None:
            if current != name and current != DEFAULT:
                raise ConfigError(f"{kind}.{seen[-2]}.{EXTENDS}: no {kind} section named {current!r}")
            section = {}
        chain.append(section)
        current = section.get(EXTENDS, DEFAULT if current != DEFAULT else None)
    result: dict[str, Any] = {}
    for section in reversed(chain):
        overlay(result, section)
    result.pop(EXTENDS, None)
    return result


def keyword_error(error: Exception, path: str, keys: Iterable[str]) -> Exception:
    """The primitive's error, its message led by the path of the key it names first (else the section's)."""
    message = str(error)
    found = [(match.start(), key) for key in keys if (match := re.search(rf"\b{re.escape(key)}\b", message))]
    where = f"{path}.{min(found)[1]}" if found else path
    return (TypeError if isinstance(error, TypeError) else ValueError)(f"{where}: {message}")


def exception_types(value: object, path: str) -> object:
    """Exception types as given, or named by str ("ConnectionError", "package.module.Error")."""
    if isinstance(value, str):
        return _exception_type(value, path)
    if isinstance(value, (list, tuple)) and any(isinstance(item, str) for item in value):
        return tuple(_exception_type(item, path) if isinstance(item, str) else item for item in value)
    return value


def _exception_type(name: str, path: str) -> type[BaseException]:
    module_name, _, attribute = name.rpartition(".")
    try:
        found = getattr(importlib.import_module(module_name) if module_name else builtins, attribute)
    except (ImportError, AttributeError, ValueError):
        found = None
    if not (isinstance(found, type) and issubclass(found, BaseException)):
        raise ConfigError(f"{path}: {name!r} names no exception type (a builtin such as 'ConnectionError', "
                          "or 'package.module.Error')")  # fmt: skip
    return found


def backoff(value: object, path: str) -> object:
    """A Backoff as given, or built from a table: {kind = "exponential", initial = 0.1, ...}."""
    if not isinstance(value, Mapping):
        return value
    table = dict(value)
    kind = table.pop("kind", "exponential")
    if kind not in BACKOFF_KINDS:
        raise ConfigError(f"{path}.kind: must be one of {_shown(BACKOFF_KINDS)}, got {kind!r}")
    build: Callable[..., Backoff] = getattr(Backoff, kind)
    try:
        return build(**table)
    except (TypeError, ValueError) as error:
        raise keyword_error(error, path, table) from error


def resolve(config: Config, kind: str, name: str, find: Callable[[str, str], Any]) -> dict[str, Any]:
    """The keyword arguments of part `name` of `kind` (exception names, backoff tables and
    budgets by name turned into objects; `find(kind, name)` gives another part)."""
    keywords = settings(config, kind, name)
    path = f"{kind}.{name}"
    for key in list(keywords):
        if (kind, key) in EXCEPTION_KEYS:
            keywords[key] = exception_types(keywords[key], f"{path}.{key}")
    if kind == "retry":
        if "backoff" in keywords:
            keywords["backoff"] = backoff(keywords["backoff"], f"{path}.backoff")
        budget = keywords.get("budget")
        if budget is True:
            keywords["budget"] = find("budget", name)
        elif isinstance(budget, str):
            keywords["budget"] = find("budget", budget)
        elif budget is False:
            keywords["budget"] = None
    return keywords
