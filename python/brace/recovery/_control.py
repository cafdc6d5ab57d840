"""brace.control: manual override of the recovery layer, for the people running it.

One small API for an operator (or an admin endpoint) to take over: force the
decision recovery escalations get, force a named circuit breaker into a
state, and turn features off and on. `brace.control` is the process-wide
`Control`; import it with `from brace import control`.
"""

from __future__ import annotations

import enum
import threading
from typing import TYPE_CHECKING, Callable

from brace._safe import safe_repr
from brace.breaker import BreakerState, CircuitBreaker, named_breakers
from brace.recovery._decisions import Decision, Option, parse_option

if TYPE_CHECKING:
    from brace.classify import Category

__all__ = ["Control", "control"]

_BREAKER_ACTIONS: dict[str, Callable[[CircuitBreaker], None]] = {
    "open": CircuitBreaker.force_open,
    "closed": CircuitBreaker.close,
    "disabled": CircuitBreaker.disable,
    "metrics_only": CircuitBreaker.metrics_only,
    "reset": CircuitBreaker.reset,
}


def _category_key(category: object) -> str:
    from brace.classify import Category

    if isinstance(category, Category):
        return category.value
    try:
        return Category(category).value
    except ValueError:
        accepted = ", ".join(repr(member.value) for member in Category)
        raise ValueError(f"category must be a brace.Category or one of {accepted}, got {safe_repr(category)}") from None


class Control:
    """Manual overrides: forced decisions, forced breaker states, feature toggles.

    Thread-safe: writes take a lock and swap in new tables, so that the
    recovery engine reads them without one.
    """

    __slots__ = ("_lock", "_by_category", "_by_operation")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_category: dict[str, Decision] = {}
        self._by_operation: dict[str, Decision] = {}

    # -- decisions --------------------------------------------------------------

    def force_decision(
        self,
        decision: Decision | Option | str,
        *,
        category: Category | str | None = None,
        operation: str | None = None,
    ) -> None:
        """Makes every escalation of a category, or of an operation, take `decision`.

        It decides before any handler, by "control" (whatever the `by` of a
        Decision given), until `clear_decisions()`.
        A decision for an operation wins over one for its failure's category.
        Forcing again for the same category or operation replaces the decision.

        Args:
            decision: A brace.Decision (Decision.use(value) to return a value),
                or an Option or its value for the others ("retry", "skip", "abort").
            category: The failures' category (a brace.Category or its value, e.g. "auth_invalid").
            operation: The operation's name.

        Raises:
            ValueError: Unless exactly one of category and operation is given; for
                an unknown category or option, or USE without a value.
            TypeError: For a decision or an operation of the wrong type.
        """
        if (category is None) == (operation is None):
            raise ValueError("give exactly one of category and operation")
        if isinstance(decision, Decision):
            chosen = parse_option(decision.option, "decision.option")
            forced = Decision(chosen, decision.value if chosen is Option.USE else None, "control")
        elif isinstance(decision, (Option, str)):
            chosen = parse_option(decision, "decision")
            if chosen is Option.USE:
                raise ValueError("decision 'use' needs a value: pass brace.Decision.use(value)")
            forced = Decision(chosen, None, "control")
        else:
            raise TypeError(f"decision must be a brace.Decision, a brace.Option or its value, got {type(decision).__name__}")
        if operation is not None and not isinstance(operation, str):
            raise TypeError(f"operation must be a str, got {type(operation).__name__}")
        with self._lock:
            if operation is not None:
                self._by_operation = {**self._by_operation, operation: forced}
            else:
                self._by_category = {**self._by_category, _category_key(category): forced}

    def clear_decisions(self) -> None:
        """Forgets every forced decision."""
        with self._lock:
            self._by_category = {}
            self._by_operation = {}

    def forced_decision(self, category: Category | str | None, operation: str | None) -> Decision | None:
        """The decision forced for an operation, else for its category, or None.

        Args:
            category: The failure's category (a brace.Category or its value), or None.
            operation: The operation's name, or None.
        """
        if operation is not None:
            forced = self._by_operation.get(operation)
            if forced is not None:
                return forced
        if category is None:
            return None
        key = category.value if isinstance(category, enum.Enum) else category
        return self._by_category.get(key)

    # -- breakers ---------------------------------------------------------------

    def force_breaker(self, name: str, state: str) -> None:
        """Puts the named circuit breaker into a state by hand.

        Args:
            name: The breaker's name (the most recent live CircuitBreaker made with it).
            state: "open" (forced open: rejects every call), "closed",
                "disabled" (permits every call), "metrics_only" (records, never
                opens) or "reset" (closed, counters zeroed).

        Raises:
            ValueError: For another state.
            KeyError: When no live breaker has that name.
        """
        action = _BREAKER_ACTIONS.get(state)
        if action is None:
            accepted = ", ".join(map(repr, _BREAKER_ACTIONS))
            raise ValueError(f"state must be one of {accepted}, got {safe_repr(state)}")
        # No lock of ours around it: the transition is the breaker's own atomic
        # step, and its listeners (brace.switches.follow...) may call back here.
        action(self._breaker(name))

    def breakers(self) -> dict[str, BreakerState]:
        """The live named circuit breakers' states, by name."""
        return {name: breaker.state for name, breaker in sorted(named_breakers().items())}

    @staticmethod
    def _breaker(name: str) -> CircuitBreaker:
        known = named_breakers()
        breaker = known.get(name)
        if breaker is None:
            listed = ", ".join(map(repr, sorted(known))) or "none"
            raise KeyError(f"no circuit breaker named {name!r}; known: {listed}")
        return breaker

    # -- features ---------------------------------------------------------------

    def turn_off(self, name: str, *, reason: str) -> bool:
        """Turns a feature off in brace.switches, by "human"; True if it was on.

        Args:
            name: The feature's name.
            reason: Why, for the toggle's event and the people reading it.
        """
        from brace.recovery._switchboard import switches

        return switches.turn_off(name, reason=reason, by="human")

    def turn_on(self, name: str, *, reason: str) -> bool:
        """Turns a feature back on in brace.switches, by "human"; True if it was off.

        Args:
            name: The feature's name.
            reason: Why, for the toggle's event and the people reading it.
        """
        from brace.recovery._switchboard import switches

        return switches.turn_on(name, reason=reason, by="human")

    def __repr__(self) -> str:
        return f"Control(forced decisions: {len(self._by_operation)} by operation, {len(self._by_category)} by category)"


control = Control()
