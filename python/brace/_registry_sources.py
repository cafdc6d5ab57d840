"""brace.Registry's sources: a TOML file and environment variables, read into a configuration.

The environment's names (after the prefix) and the keys they set:

    CIRCUIT_BREAKER_FAILURE_THRESHOLD       breaker.consecutive_failures   (a count >= 1)
    CIRCUIT_BREAKER_FAILURE_RATE_THRESHOLD  breaker.failure_rate_threshold (0 < rate <= 1)
    CIRCUIT_BREAKER_TIMEOUT_SECONDS         breaker.wait_in_open           (seconds)
    CIRCUIT_BREAKER_HALF_OPEN_MAX_CALLS     breaker.half_open_calls
    CIRCUIT_BREAKER_MINIMUM_CALLS           breaker.minimum_calls
    CIRCUIT_BREAKER_WINDOW_SIZE             breaker.window_size
    RETRY_MAX_ATTEMPTS                      retry.attempts
    RETRY_BASE_DELAY_MS                     retry.backoff.initial          (milliseconds)
    RETRY_MAX_DELAY_MS                      retry.backoff.max              (milliseconds)
    RETRY_JITTER_ENABLED                    retry.backoff.jitter           ("full" or "none")
    RETRY_ON                                retry.on                       (exception names, comma-separated)
    RETRY_BUDGET_LIMIT                      budget.ratio, and retry.budget = true
    RETRY_BUDGET_MIN_PER_SECOND             budget.min_per_second
    RATE_LIMITER_RATE                       limiter.rate                   ("100/s")
    RATE_LIMITER_BURST                      limiter.burst
    BULKHEAD_MAX_CONCURRENT                 bulkhead.max_concurrent
    ATTEMPT_TIMEOUT_MS                      timeout.attempt_timeout        (milliseconds)
    DEADLINE_MS                             timeout.deadline               (milliseconds)

Each sets the `default` section; `<DEP>_<NAME>` sets the section `<dep>` (lower case) instead,
and a breaker's names also go without CIRCUIT_BREAKER_: `REDIS_FAILURE_THRESHOLD`.
"""

from __future__ import annotations

import importlib
import math
import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Callable

from brace._registry_config import ConfigError, check

__all__ = ["ENV_NAMES", "read_env", "read_env_origins", "read_toml"]


def _count(text: str) -> int:
    if not re.fullmatch(r"[0-9]+", text):
        raise ValueError("must be a whole number (digits only)")
    return int(text)


def _number(text: str) -> float:
    if not re.fullmatch(r"[0-9]+(\.[0-9]+)?|\.[0-9]+", text):
        raise ValueError("must be a number >= 0 (digits, an optional decimal point)")
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("must be finite")
    return value


def _millis(text: str) -> float:
    return _number(text) / 1000


def _switch(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("true", "1"):
        return True
    if lowered in ("false", "0"):
        return False
    raise ValueError("must be true, false, 1 or 0")


def _names(text: str) -> list[str]:
    names = [part.strip() for part in text.split(",")]
    if not all(names):
        raise ValueError("must be exception names separated by commas")
    return names


def _text(text: str) -> str:
    return text


# name -> (kind, key path inside the section, parser, what it accepts)
ENV_NAMES: dict[str, tuple[str, tuple[str, ...], Callable[[str], Any], str]] = {
    "CIRCUIT_BREAKER_FAILURE_THRESHOLD": ("breaker", ("consecutive_failures",), _count, "a count >= 1"),
    "CIRCUIT_BREAKER_FAILURE_RATE_THRESHOLD": ("breaker", ("failure_rate_threshold",), _number, "0 < rate <= 1"),
    "CIRCUIT_BREAKER_TIMEOUT_SECONDS": ("breaker", ("wait_in_open",), _number, "seconds > 0"),
    "CIRCUIT_BREAKER_HALF_OPEN_MAX_CALLS": ("breaker", ("half_open_calls",), _count, "1..1023"),
    "CIRCUIT_BREAKER_MINIMUM_CALLS": ("breaker", ("minimum_calls",), _count, "a count >= 1"),
    "CIRCUIT_BREAKER_WINDOW_SIZE": ("breaker", ("window_size",), _count, "a count >= 1"),
    "RETRY_MAX_ATTEMPTS": ("retry", ("attempts",), _count, "a count >= 1"),
    "RETRY_BASE_DELAY_MS": ("retry", ("backoff", "initial"), _millis, "milliseconds > 0"),
    "RETRY_MAX_DELAY_MS": ("retry", ("backoff", "max"), _millis, "milliseconds >= the base delay"),
    "RETRY_JITTER_ENABLED": ("retry", ("backoff", "jitter"), _switch, "true, false, 1 or 0"),
    "RETRY_ON": ("retry", ("on",), _names, "exception names, comma-separated"),
    "RETRY_BUDGET_LIMIT": ("budget", ("ratio",), _number, "retries per call, 0.001 to 1000"),
    "RETRY_BUDGET_MIN_PER_SECOND": ("budget", ("min_per_second",), _count, "a count >= 0"),
    "RATE_LIMITER_RATE": ("limiter", ("rate",), _text, "a rate such as '100/s' or '5000/min'"),
    "RATE_LIMITER_BURST": ("limiter", ("burst",), _count, "a count >= 1"),
    "BULKHEAD_MAX_CONCURRENT": ("bulkhead", ("max_concurrent",), _count, "a count >= 1"),
    "ATTEMPT_TIMEOUT_MS": ("timeout", ("attempt_timeout",), _millis, "milliseconds > 0"),
    "DEADLINE_MS": ("timeout", ("deadline",), _millis, "milliseconds > 0"),
}  # fmt: skip
_BREAKER = "CIRCUIT_BREAKER_"
# The suffixes a variable may end with, longest first (so that _FAILURE_RATE_THRESHOLD wins over
# _THRESHOLD-like overlaps), each with its full name.
_SUFFIXES = sorted(
    [(name, name) for name in ENV_NAMES]
    + [(name[len(_BREAKER):], name) for name in ENV_NAMES if name.startswith(_BREAKER)],
    key=lambda pair: -len(pair[0]),
)  # fmt: skip


def _lookup(variable: str) -> tuple[str, str] | None:
    """(section, full name) of a variable (prefix removed), or None if it matches no name."""
    if variable in ENV_NAMES:
        return "default", variable
    for suffix, full in _SUFFIXES:
        if variable.endswith("_" + suffix) and len(variable) > len(suffix) + 1:
            dependency = variable[: -len(suffix) - 1]
            if re.fullmatch(r"[A-Z0-9]+(_[A-Z0-9]+)*", dependency):
                return dependency.lower(), full
    return None


def read_env(prefix: str = "BRACE_", environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """A configuration from the environment's variables that begin with `prefix`.

    With a prefix, every variable that has it must be one of ENV_NAMES (or `<DEP>_` and one);
    with prefix "", only the variables that match a name are read.

    Raises:
        ConfigError: an unknown name (with a prefix), or a value its name does not accept; the
            message names the variable, its key and the accepted values.
    """
    return read_env_origins(prefix, environ)[0]


def read_env_origins(prefix: str = "BRACE_",
                     environ: Mapping[str, str] | None = None) -> tuple[dict[str, Any], dict[str, str]]:  # fmt: skip
    """read_env's configuration, and the variable that set each key (by the key's path,
    "breaker.default.half_open_calls"), so that an error found later can name it."""
    if not isinstance(prefix, str):
        raise TypeError(f"prefix must be a str, got {type(prefix).__name__}")
    source = os.environ if environ is None else environ
    config: dict[str, Any] = {}
    origins: dict[str, str] = {}
    for variable in sorted(source):
        if not variable.startswith(prefix):
            continue
        found = _lookup(variable[len(prefix):])
        if found is None:
            if prefix:
                raise ConfigError(f"{variable}: unknown name; brace reads {prefix}<NAME> or {prefix}<DEP>_<NAME> "
                                  f"with NAME among {', '.join(ENV_NAMES)}")  # fmt: skip
            continue
        origins[_set(config, variable, found, source[variable])] = variable
    return config, origins


def _set(config: dict[str, Any], variable: str, found: tuple[str, str], text: str) -> str:
    """Sets the variable's key; returns the key's path."""
    section, full = found
    kind, path, parse, accepted = ENV_NAMES[full]
    where = ".".join((kind, section, *path))
    try:
        value = parse(text.strip())
    except ValueError as error:
        raise ConfigError(f"{variable} ({where}): {error}; accepted: {accepted}, got {text!r}") from None
    if full == "RETRY_JITTER_ENABLED":
        value = "full" if value else "none"
    table = config.setdefault(kind, {}).setdefault(section, {})
    for key in path[:-1]:
        table = table.setdefault(key, {})
    table[path[-1]] = value
    if full == "RETRY_BUDGET_LIMIT":  # the retry of the same section draws on this budget
        config.setdefault("retry", {}).setdefault(section, {})["budget"] = True
    return where


def read_toml(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A configuration from a TOML file (tomllib; on Python 3.10, tomli: brace[toml]).

    Raises:
        ConfigError: the file is no valid TOML, or its shape is not a configuration's.
        OSError: the file cannot be read.
    """
    try:  # the standard library's from 3.11 on; the same parser as tomli before
        toml: Any = importlib.import_module("tomllib" if sys.version_info >= (3, 11) else "tomli")
    except ImportError:
        raise ImportError("reading TOML on Python 3.10 needs tomli: pip install 'brace[toml]'") from None
    data = Path(path).read_bytes()
    try:
        config = toml.loads(data.decode("utf-8"))
    except (toml.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(f"{os.fspath(path)}: not valid TOML: {error}") from None
    return check(config, os.fspath(path))
