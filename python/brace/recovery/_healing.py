"""Self-healing: actions that fix the cause of a failure before the next attempt,
and the statistics that learn which fix works.

A `HealingAction` is registered for categories of failure (refresh credentials
on AUTH_EXPIRED, reconnect on NETWORK_ERROR, adapt on SCHEMA_MISMATCH, switch
endpoint on SERVICE_DOWN, ...). `brace.Recovery` runs one before the retry
that follows such a failure; the retry's outcome verifies it, and an action
that declared an `undo` is rolled back when the retry fails worse than before.
When a category has several actions, `HealingStats` picks among them by
Thompson sampling over their record, so the fix that works is tried first
while the others still get an occasional chance.
"""

from __future__ import annotations

import inspect
import json
import random
import threading
from collections.abc import Iterable, Sequence
from typing import Any, Callable, NamedTuple

from brace import _config
from brace._safe import name_of, safe_repr
from brace._core import rng_uniform
from brace.classify import Category, Classification
from brace.classify._categories import parse_categories

__all__ = ["HealingAction", "HealingContext", "HealingStats", "StrategyRecord"]

# The Beta draws take the counts as floats: beyond 2**53 they are no longer
# exact, and near the largest float random.betavariate never returns (or, past
# it, raises OverflowError). No process records that many outcomes.
_COUNT_MAX = (1 << 53) - 1


class HealingContext(NamedTuple):
    """What a healing action (and its undo) receives.

    Attributes:
        operation: The operation's name.
        classification: How the failure was classified.
        error: What the failed attempt raised (a brace.FailedResponse holding
            the response when it returned one with an error status).
        attempt: The number of the attempt that failed (1 for the first).
    """

    operation: str
    classification: Classification
    error: Exception
    attempt: int


ActionFn = Callable[[HealingContext], object]


class HealingAction:
    """A fix for a category of failure, run before the next attempt.

    Sync recoveries call `run(context)`; async recoveries also accept
    coroutine functions and await them. What `run` returns is ignored: the
    retry that follows is the verification. An action that raises is
    recorded and the recovery goes on (to another action, or to the retry).

    Args:
        run: Called with a HealingContext.
        categories: The categories it heals: Category members or their names.
        undo: Rolls the action back; run when the attempt after it fails
            worse (a more severe failure, or one that can no longer be
            retried). None: the action is kept whatever happens.
        name: Its name in statistics, timelines and events; default run's
            __qualname__. Names must be unique within one Recovery.

    Raises:
        ValueError, TypeError: For a run or undo that is not callable, or
            categories that name no brace.Category.
    """

    __slots__ = ("run", "undo", "categories", "name")

    def __init__(
        self,
        run: ActionFn,
        *,
        categories: Category | str | Iterable[Category | str],
        undo: ActionFn | None = None,
        name: str | None = None,
    ) -> None:
        if not callable(run):
            raise TypeError(f"run must be callable, got {type(run).__name__}")
        if undo is not None and not callable(undo):
            raise TypeError(f"undo must be callable or None, got {type(undo).__name__}")
        if name is not None and (not isinstance(name, str) or not name):
            raise ValueError(f"name must be a non-empty str or None, got {safe_repr(name)}")
        self.run = run
        self.undo = undo
        self.categories = parse_categories(categories, "categories")
        self.name = name if name is not None else name_of(run)

    @property
    def is_async(self) -> bool:
        """Whether run or undo is a coroutine function (usable by async recoveries only)."""
        return inspect.iscoroutinefunction(self.run) or inspect.iscoroutinefunction(self.undo)

    def __repr__(self) -> str:
        kinds = ", ".join(sorted(category.value for category in self.categories))
        return f"HealingAction({self.name!r}, categories=[{kinds}], undo={self.undo is not None})"


class StrategyRecord(NamedTuple):
    """The record of one strategy against one category.

    Attributes:
        healed: Times the attempt after it succeeded.
        failed: Times it raised, or the attempt after it failed.
        recovery_time: Total seconds from the failure to the successful attempt
            after it, over the `healed` cases (mean: recovery_time / healed).
    """

    healed: int = 0
    failed: int = 0
    recovery_time: float = 0.0

    @property
    def tried(self) -> int:
        """Times it was applied."""
        return self.healed + self.failed


class HealingStats:
    """Outcome counts and recovery times per (category, strategy), and the choice they inform.

    A strategy is a healing action's name, or for failures healed by waiting
    and retrying alone, the category's suggested strategy (e.g.
    "retry_with_backoff"). Thread-safe. Choices draw from brace's random
    stream, so `brace.testing.seed` makes them reproducible.
    """

    __slots__ = ("_lock", "_records")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: dict[tuple[Category, str], StrategyRecord] = {}

    def record(self, category: Category, strategy: str, *, healed: bool, seconds: float = 0.0) -> None:
        """Books one application of `strategy` to a failure of `category`.

        Args:
            category: The failure's category.
            strategy: The strategy's name.
            healed: Whether the attempt after it succeeded.
            seconds: Time from the failure to that success (read only when
                healed): 0, or from 1e-09 to 2**62 ns (~146 years).

        A record counts at most 2**53 - 1 healed and as many failed outcomes
        (no run gets there): the Beta draws of `ranked` take them as floats.

        Raises:
            ValueError, TypeError: For arguments outside the ranges above.
        """
        if not isinstance(category, Category):
            raise TypeError(f"category must be a brace.Category, got {type(category).__name__}")
        if not isinstance(strategy, str) or not strategy:
            raise ValueError(f"strategy must be a non-empty str, got {safe_repr(strategy)}")
        if not isinstance(healed, bool):
            raise TypeError(f"healed must be a bool, got {type(healed).__name__}")
        took = _config.duration(seconds, "seconds")
        assert took is not None
        key = (category, strategy)
        with self._lock:
            good, bad, total = self._records.get(key, StrategyRecord())
            # Past 2**53 - 1 outcomes of a kind a record counts no more, so
            # that its export can always be imported.
            if healed and good < _COUNT_MAX:
                self._records[key] = StrategyRecord(good + 1, bad, total + took)
            elif not healed and bad < _COUNT_MAX:
                self._records[key] = StrategyRecord(good, bad + 1, total)

    def get(self, category: Category, strategy: str) -> StrategyRecord:
        """The record of `strategy` against `category` (zeros when never tried)."""
        with self._lock:
            return self._records.get((category, strategy), StrategyRecord())

    def ranked(self, category: Category, candidates: Sequence[str]) -> list[str]:
        """The candidates in the order to try them, by Thompson sampling.

        Each candidate draws from Beta(1 + healed, 1 + failed), its posterior
        chance of healing under a uniform prior; the highest draw goes first.
        Unseen strategies draw from the uniform prior, so they get explored.
        """
        if len(candidates) < 2:
            return list(candidates)
        # One draw from brace's stream seeds the Beta draws: reproducible under
        # brace.testing.seed, and independent of the global `random` state.
        draws = random.Random(int(rng_uniform() * (1 << 53)))
        with self._lock:
            records = [self._records.get((category, name), StrategyRecord()) for name in candidates]
        scored = [(draws.betavariate(1 + record.healed, 1 + record.failed), index)
                  for index, record in enumerate(records)]  # fmt: skip
        return [candidates[index] for _, index in sorted(scored, key=lambda pair: (-pair[0], pair[1]))]

    def to_json(self) -> str:
        """The statistics as JSON: {"version": 1, "records": [{category, strategy, healed, failed,
        recovery_time}, ...]}."""
        with self._lock:
            items = sorted(self._records.items(), key=lambda item: (item[0][0].value, item[0][1]))
        records = [{"category": category.value, "strategy": strategy, **record._asdict()}
                   for (category, strategy), record in items]  # fmt: skip
        return json.dumps({"version": 1, "records": records}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> HealingStats:
        """Statistics exported by `to_json` (e.g. by an earlier run of the process).

        Raises:
            ValueError: For text that is not such an export, or whose numbers
                no run could have recorded: healed and failed are ints from 0
                to 2**53 - 1, recovery_time a number of seconds from 0 to
                healed x 2**62 ns (each healed case took less than ~146 years).
        """
        try:
            data: Any = json.loads(text)
        except ValueError as error:
            raise ValueError(f"text is not JSON: {error}") from None
        if not isinstance(data, dict) or data.get("version") != 1 or not isinstance(data.get("records"), list):
            raise ValueError('text must be a HealingStats export: {"version": 1, "records": [...]}')
        stats = cls()
        for index, item in enumerate(data["records"]):
            key = _key(item, index)  # checks that item is an object, before _record reads it
            stats._records[key] = _record(item, index)
        return stats

    def __repr__(self) -> str:
        with self._lock:
            return f"<brace.HealingStats: {len(self._records)} (category, strategy) records>"


def _key(item: object, index: int) -> tuple[Category, str]:
    if not isinstance(item, dict):
        raise ValueError(f"records[{index}] must be an object, got {type(item).__name__}")
    try:
        category = Category(item.get("category"))
    except ValueError:
        raise ValueError(f"records[{index}].category must be a brace.Category value, got {item.get('category')!r}") from None
    strategy = item.get("strategy")
    if not isinstance(strategy, str) or not strategy:
        raise ValueError(f"records[{index}].strategy must be a non-empty string, got {strategy!r}")
    return category, strategy


def _record(item: dict[str, Any], index: int) -> StrategyRecord:
    counts = []
    for field in ("healed", "failed"):
        value = item.get(field)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _COUNT_MAX:
            raise ValueError(f"records[{index}].{field} must be an int from 0 to 2**53 - 1, got {safe_repr(value)}")
        counts.append(value)
    seconds = item.get("recovery_time")
    most = counts[0] * _config.MAX_SECONDS
    # Written so that NaN fails too; an int beyond any float fails the bound first.
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 <= seconds <= most:
        raise ValueError(f"records[{index}].recovery_time must be a finite number of seconds from 0 to "
                         f"healed x {_config.MAX_SECONDS:g} (2**62 ns per healed case), got {safe_repr(seconds)}")  # fmt: skip
    return StrategyRecord(counts[0], counts[1], float(seconds))
