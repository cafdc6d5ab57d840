"""MemoryDeadLetters: a dead-letter store in memory, for tests and for letters that may
die with the process."""

from __future__ import annotations

import bisect
import dataclasses
import json
import threading
from collections.abc import Callable

from brace.recovery.deadletters._letter import STATUSES, DeadLetter, InFlightCall, Status
from brace.recovery.deadletters._store import DeadLetterStore, missing, not_in_flight


class MemoryDeadLetters(DeadLetterStore):
    """A dead-letter store in memory: for tests, and for processes whose
    letters may die with them. Thread-safe (one lock).

    Like SQLiteDeadLetters, it keeps the arguments as JSON and decodes them
    on every read, so a letter read from it behaves as one read from a file
    would, and changing a letter's arguments does not change the store.
    """

    __slots__ = ("_lock", "_letters", "_positions", "_order", "_last", "_calls")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # position -> (letter, its args' JSON, its kwargs' JSON).
        self._letters: dict[int, tuple[DeadLetter, str, str]] = {}
        self._positions: dict[str, int] = {}  # id -> position
        # The positions of the letters of each status (None: every letter).
        self._order: dict[Status | None, _Positions] = {status: _Positions() for status in (*STATUSES, None)}
        self._last = 0
        # The outbox: id -> (call, its args' JSON, its kwargs' JSON), in the order begun.
        self._calls: dict[str, tuple[InFlightCall, str, str]] = {}

    def counts(self) -> dict[str, int]:
        with self._lock:
            return {status: len(self._order[status]) for status in STATUSES}

    def close(self) -> None:
        """Nothing to release: the letters stay readable."""

    def _insert(self, letter: DeadLetter, args_json: str, kwargs_json: str, outbox_id: str | None) -> None:
        with self._lock:
            if outbox_id is not None and self._calls.pop(outbox_id, None) is None:
                raise not_in_flight(outbox_id)
            self._last += 1
            self._letters[self._last] = (letter, args_json, kwargs_json)
            self._positions[letter.id] = self._last
            self._order[letter.status].add(self._last)
            self._order[None].add(self._last)

    def _begin(self, call: InFlightCall, args_json: str, kwargs_json: str) -> None:
        with self._lock:
            self._calls[call.id] = (call, args_json, kwargs_json)

    def _end(self, id: str) -> bool:
        with self._lock:
            return self._calls.pop(id, None) is not None

    def _outbox(self) -> list[tuple[InFlightCall, str, str]]:
        with self._lock:
            entries = list(self._calls.values())
        return [(dataclasses.replace(call, args=tuple(json.loads(args_json)), kwargs=json.loads(kwargs_json)),
                 args_json, kwargs_json) for call, args_json, kwargs_json in entries]  # fmt: skip

    def _find(self, id: str) -> DeadLetter | None:
        with self._lock:
            position = self._positions.get(id)
            entry = None if position is None else self._letters[position]
        return None if entry is None else _decoded(*entry)

    def _change(self, id: str, change: Callable[[DeadLetter], DeadLetter]) -> DeadLetter:
        with self._lock:
            position = self._positions.get(id)
            if position is None:
                raise missing(id)
            letter, args_json, kwargs_json = self._letters[position]
            changed = change(_decoded(letter, args_json, kwargs_json))
            self._letters[position] = (changed, args_json, kwargs_json)
            if changed.status != letter.status:
                self._order[letter.status].discard(position)
                self._order[changed.status].add(position)
        return changed

    def _page(self, status: Status | None, after: int, limit: int) -> list[tuple[int, DeadLetter]]:
        with self._lock:
            entries = [(position, self._letters[position]) for position in self._order[status].after(after, limit)]
        return [(position, _decoded(*entry)) for position, entry in entries]

    def _position(self, id: str) -> int | None:
        with self._lock:
            return self._positions.get(id)

    def _remove(self, ids: list[str]) -> int:
        removed = 0
        with self._lock:
            for id in ids:
                position = self._positions.get(id)
                if position is None or self._letters[position][0].status == "dead":
                    continue  # removed already; a dead letter is never removed
                del self._positions[id]
                letter = self._letters.pop(position)[0]
                self._order[letter.status].discard(position)
                self._order[None].discard(position)
                removed += 1
        return removed

    def __repr__(self) -> str:
        return f"MemoryDeadLetters({self.counts()})"


class _Positions:
    """A sorted set of ints kept in blocks, so that adding, removing and finding
    where a page starts cost one block and a bisection, not the whole set."""

    __slots__ = ("_blocks", "_lasts", "_size")

    _BLOCK = 1000  # a block splits in two beyond twice this

    def __init__(self) -> None:
        self._blocks: list[list[int]] = []
        self._lasts: list[int] = []  # each block's highest int
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def add(self, value: int) -> None:
        """Adds an int not in the set (most often one above all of them)."""
        self._size += 1
        if not self._blocks:
            self._blocks.append([value])
            self._lasts.append(value)
            return
        index = min(bisect.bisect_left(self._lasts, value), len(self._blocks) - 1)
        block = self._blocks[index]
        bisect.insort(block, value)
        self._lasts[index] = block[-1]
        if len(block) > 2 * self._BLOCK:
            self._blocks[index : index + 1] = [block[: self._BLOCK], block[self._BLOCK :]]
            self._lasts[index : index + 1] = [block[self._BLOCK - 1], block[-1]]

    def discard(self, value: int) -> None:
        """Removes value if it is in the set."""
        index = bisect.bisect_left(self._lasts, value)
        if index == len(self._blocks):
            return
        block = self._blocks[index]
        at = bisect.bisect_left(block, value)
        if at == len(block) or block[at] != value:
            return
        del block[at]
        self._size -= 1
        if block:
            self._lasts[index] = block[-1]
        else:
            del self._blocks[index], self._lasts[index]

    def after(self, value: int, limit: int) -> list[int]:
        """The lowest `limit` ints above value, in order."""
        found: list[int] = []
        index = bisect.bisect_right(self._lasts, value)
        while index < len(self._blocks) and len(found) < limit:
            block = self._blocks[index]
            start = bisect.bisect_right(block, value)
            found.extend(block[start : start + limit - len(found)])
            index += 1
        return found


def _decoded(letter: DeadLetter, args_json: str, kwargs_json: str) -> DeadLetter:
    return dataclasses.replace(letter, args=tuple(json.loads(args_json)), kwargs=json.loads(kwargs_json))

