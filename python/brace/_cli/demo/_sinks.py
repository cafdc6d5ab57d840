"""The recovery log of a demo run, and how to read its attempt events back."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator

from brace.recovery import JsonLinesSink, MemorySink, RecoveryLog

__all__ = ["Sinks"]


class Sinks:
    """The recovery log's sink, and how to read back what reached it.

    Args:
        path: A JSON-lines file (overwritten), or None to keep the events in memory.
        calls: The calls of the run (sizes the memory sink).
        operation: Whose "attempt" events are the attempts counted: the events of this
            operation (a brace.Recovery's name), or, when `exclude` is true, those of
            every other operation (an HTTP transport logs one per request, under
            "GET <host>", into the same log as the Recovery).
        exclude: See `operation`.
    """

    def __init__(self, path: str | None, calls: int, *, operation: str, exclude: bool = False) -> None:
        self.path = path
        self.operation = operation
        self.exclude = exclude
        self.memory: MemorySink | None = None
        self.file: JsonLinesSink | None = None
        if path is None:
            # Roomy enough to keep every event of the run: an eviction would show as attempts not logged.
            self.memory = MemorySink(capacity=max(10_000, 64 * calls))
            self.log = RecoveryLog(self.memory)
        else:
            open(path, "w", encoding="utf-8").close()
            self.file = JsonLinesSink(path)
            self.log = RecoveryLog(self.file)

    def _attempt_events(self) -> Iterator[tuple[str, str]]:
        """(correlation id, detail) of each counted attempt event that reached the sink."""
        if self.memory is not None:
            for event in self.memory.events():
                if event.kind == "attempt" and (event.operation == self.operation) != self.exclude:
                    yield event.correlation_id or "", event.detail or ""
            return
        assert self.file is not None and self.path is not None
        self.file.flush(timeout=30.0)
        with open(self.path, encoding="utf-8") as lines:
            for line in lines:
                event = json.loads(line)
                if event["kind"] == "attempt" and (event["operation"] == self.operation) != self.exclude:
                    yield event["correlation_id"] or "", event.get("detail") or ""

    def attempts(self) -> Counter[str]:
        """Attempt events that reached the sink, by correlation id."""
        return Counter(correlation for correlation, _ in self._attempt_events())

    def first_attempts(self) -> int:
        """Attempt events of first sends (an HTTP transport's detail "resend_count=0"): the
        requests as the application made them, before the transport's retries."""
        return sum(1 for _, detail in self._attempt_events() if detail == "resend_count=0")

    def close(self) -> None:
        self.log.close()
