"""Dead letters: both stores, serialisation, settling, replay (sync and async),
the accounting invariant, crash durability of the SQLite store, threads."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import functools
import json
import math
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from brace import Degraded, Recovery, RecoveryFailed
from brace.classify import Category
from brace._safe import safe_repr
from brace.recovery import ReplayReport, replay, replay_async
from brace.recovery.deadletters import (
    INTERRUPTED,
    Status,
    DeadLetter,
    DeadLetterStore,
    InFlightCall,
    MemoryDeadLetters,
    Owner,
    SQLiteDeadLetters,
    default_store,
    set_default_store,
)
from brace.recovery.deadletters import _process as process
from brace.recovery.deadletters import _schema as schema
from brace.recovery_log import correlation_id
from brace.testing import FakeClock
from hostile import Recipe, Sly, built, recipes

STORES = ["memory", "sqlite"]
LONG = 60.0  # a timeout no test reaches: the child processes answer at once


def open_store(kind: str, path: Path) -> DeadLetterStore:
    return MemoryDeadLetters() if kind == "memory" else SQLiteDeadLetters(path / "letters.sqlite3")


@pytest.fixture(params=STORES)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DeadLetterStore]:
    with open_store(request.param, tmp_path) as opened:
        yield opened


def put(store: DeadLetterStore, operation: str = "sync_sheet", *args: Any, served: str | None = None,
        **kwargs: Any) -> DeadLetter:  # fmt: skip
    return store.put(operation=operation, args=args, kwargs=kwargs, error=ConnectionResetError(104, "reset"),
                     category=Category.NETWORK_ERROR, correlation_id="req-1", attempts=4, served=served)  # fmt: skip


# -- putting and reading -------------------------------------------------------------


def test_a_letter_keeps_the_call_and_its_failure(store: DeadLetterStore) -> None:
    letter = put(store, "sync_sheet", 7, "rows", sheet={"id": 3, "tabs": ["a", "b"]})
    assert (letter.operation, letter.args, letter.kwargs) == ("sync_sheet", (7, "rows"), {"sheet": {"id": 3, "tabs": ["a", "b"]}})  # fmt: skip
    assert (letter.error_type, letter.error_message) == ("ConnectionResetError", "[Errno 104] reset")
    assert (letter.category, letter.correlation_id, letter.attempts) == ("network_error", "req-1", 4)
    assert (letter.status, letter.resolved_at, letter.resolved_by, letter.note, letter.replays) == ("dead", None, None, "", 0)  # fmt: skip
    assert letter.replayable and letter.unserialisable == ()
    assert len(letter.id) == 32 and int(letter.id, 16) >= 0
    assert store.get(letter.id) == letter


def test_a_letter_read_is_a_copy(store: DeadLetterStore) -> None:
    letter = put(store, "op", [1], rows={"a": 1})
    letter.args[0].append(2)
    letter.kwargs["rows"]["b"] = 2
    assert (store.get(letter.id).args, store.get(letter.id).kwargs) == (([1],), {"rows": {"a": 1}})


@pytest.mark.parametrize("source", ["cache", "fallback:replica", "decision:skip", "decision:use"])
def test_a_call_served_a_stand_in_is_a_dead_letter_saying_what_it_got(store: DeadLetterStore, source: str) -> None:
    letter = put(store, "sync_sheet", 1, rows=[1], served=source)
    assert (letter.served, letter.status) == (source, "dead") and store.get(letter.id) == letter
    assert put(store, "sync_sheet", 2, rows=[]).served is None  # the caller got the error
    ran: list[int] = []
    report = replay(store, {"sync_sheet": lambda sheet, rows: ran.append(sheet)})
    assert ran == [1, 2] and letter.id in report.delivered  # the write a stand-in covered is made now
    assert store.counts() == {"dead": 0, "delivered": 2, "discarded": 0}


def test_letters_list_oldest_first_and_counts_cover_every_status(store: DeadLetterStore) -> None:
    letters = [put(store, f"op{i}", i) for i in range(5)]
    ids = [letter.id for letter in letters]
    store.mark_delivered(ids[1])
    store.discard(ids[3], by="ana", reason="customer cancelled")
    assert [letter.id for letter in store.all()] == ids
    assert [letter.id for letter in store.dead()] == [ids[0], ids[2], ids[4]]
    assert store.counts() == {"dead": 3, "delivered": 1, "discarded": 1}


def test_an_empty_store_counts_zero_of_each(store: DeadLetterStore) -> None:
    assert store.counts() == {"dead": 0, "delivered": 0, "discarded": 0}
    assert store.dead() == store.all() == []


def test_get_of_an_unknown_id_names_it(store: DeadLetterStore) -> None:
    with pytest.raises(KeyError, match="no dead letter with id 'nope'"):
        store.get("nope")
    settles: list[Callable[[], object]] = [lambda: store.mark_delivered("nope"),
                                           lambda: store.discard("nope", by="ana", reason="x"),
                                           lambda: store.record_failed_replay("nope", "x")]  # fmt: skip
    for settle in settles:
        with pytest.raises(KeyError, match="'nope'"):
            settle()


def test_the_category_may_be_given_by_value_or_left_out(store: DeadLetterStore) -> None:
    by_value = store.put(operation="op", args=(), kwargs={}, error=TimeoutError(), category="timeout",
                         correlation_id=None, attempts=1)  # fmt: skip
    none = store.put(operation="op", args=(), kwargs={}, error=TimeoutError(), category=None,
                     correlation_id=None, attempts=0)  # fmt: skip
    assert (store.get(by_value.id).category, store.get(none.id).category) == ("timeout", None)
    assert store.get(none.id).correlation_id is None


class LibraryError(Exception):
    pass


class BadStr(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no message for you")


class ModuleNotAStr(Exception):
    pass


ModuleNotAStr.__module__ = 42  # type: ignore[assignment]


@pytest.mark.parametrize(
    ("error", "error_type", "message"),
    [
        (ValueError("bad row"), "ValueError", "bad row"),
        (LibraryError("quota"), f"{__name__}.LibraryError", "quota"),
        (httpx.ConnectTimeout("slow"), "httpx.ConnectTimeout", "slow"),
        (BadStr(), f"{__name__}.BadStr", "<str() raised RuntimeError>"),
        (ModuleNotAStr("quota"), "ModuleNotAStr", "quota"),
    ],
    ids=["builtin", "local class", "library", "str raises", "module not a str"],
)
def test_the_error_is_kept_as_its_qualified_type_and_message(
    store: DeadLetterStore, error: BaseException, error_type: str, message: str
) -> None:
    letter = store.put(operation="op", args=(), kwargs={}, error=error, category=None, correlation_id=None,
                       attempts=1)  # fmt: skip
    assert (store.get(letter.id).error_type, store.get(letter.id).error_message) == (error_type, message)


@pytest.mark.parametrize(
    ("change", "error", "match"),
    [
        ({"operation": ""}, ValueError, "operation must be a non-empty str"),
        ({"operation": None}, TypeError, "operation must be a non-empty str"),
        ({"args": [1]}, TypeError, "args must be a tuple"),
        ({"kwargs": [("a", 1)]}, TypeError, "kwargs must be a mapping"),
        ({"kwargs": {1: "a"}}, TypeError, "kwargs must be a mapping of str to values, got dict"),
        ({"attempts": -1}, ValueError, "attempts must be an int from 0 to 2\\*\\*63 - 1"),
        ({"attempts": 1.5}, TypeError, "attempts must be an int from 0 to 2\\*\\*63 - 1"),
        ({"category": "slow"}, ValueError, "category must be a brace.Category, one of its values"),
        ({"correlation_id": 7}, TypeError, "correlation_id must be a str or None"),
        ({"served": ""}, ValueError, "served must be a non-empty str"),
        ({"served": 3}, TypeError, "served must be a non-empty str"),
    ],
)
def test_put_refuses_what_is_not_a_call(store: DeadLetterStore, change: dict[str, Any], error: type[Exception],
                                        match: str) -> None:  # fmt: skip
    given: dict[str, Any] = {"operation": "op", "args": (), "kwargs": {}, "error": ValueError(), "category": None,
                             "correlation_id": None, "attempts": 1, **change}  # fmt: skip
    with pytest.raises(error, match=match):
        store.put(**given)
    assert store.all() == []


# -- serialisation ---------------------------------------------------------------------


class HostileRepr:
    def __repr__(self) -> str:
        raise RuntimeError("repr refuses")


class Plain:
    def __repr__(self) -> str:
        return "Plain()"


class HostileClass:
    """isinstance() raises on it: it asks its __class__, which raises."""

    @property  # type: ignore[misc]
    def __class__(self) -> type:
        raise RuntimeError("__class__")

    def __repr__(self) -> str:
        return "HostileClass()"


class Point(NamedTuple):
    x: int
    y: int


WHEN = datetime.datetime(2024, 5, 1, 12, 30, tzinfo=datetime.timezone.utc)
looped: list[Any] = [1]
looped.append(looped)
deep: list[Any] = []
for _ in range(100_000):
    deep = [deep]


@pytest.mark.parametrize(
    ("value", "stored", "flagged"),
    [
        (42, 42, []),
        (-1.5, -1.5, []),
        (True, True, []),
        (None, None, []),
        ("naïve ☃", "naïve ☃", []),
        ("lone \udc80 surrogate", "lone \udc80 surrogate", []),
        ({"a": [1, {"b": None}], "c": "d"}, {"a": [1, {"b": None}], "c": "d"}, []),
        ((1, (2, 3)), [1, [2, 3]], []),
        (WHEN, repr(WHEN), ["args[0]"]),
        ({"when": WHEN, "n": 1}, {"when": repr(WHEN), "n": 1}, ["args[0]['when']"]),
        ([1, [Plain(), 2]], [1, ["Plain()", 2]], ["args[0][1][0]"]),
        ({1: "a"}, "{1: 'a'}", ["args[0]"]),
        (b"\x00raw", "b'\\x00raw'", ["args[0]"]),
        ({"x", }, "{'x'}", ["args[0]"]),
        (Point(1, 2), "Point(x=1, y=2)", ["args[0]"]),
        (Category.TIMEOUT, "<Category.TIMEOUT: 'timeout'>", ["args[0]"]),
        (looped, [1, "[1, [...]]"], ["args[0][1]"]),
        (10**4300 - 1, 10**4300 - 1, []),
        (-(10**4300), f"<int {-(10**4300):#x}; repr() raised ValueError>", ["args[0]"]),
        ([1, 10**5000], [1, f"<int {10**5000:#x}; repr() raised ValueError>"], ["args[0][1]"]),
        (HostileClass(), "HostileClass()", ["args[0]"]),
        ({"k": HostileClass()}, {"k": "HostileClass()"}, ["args[0]['k']"]),
        ({Sly("k"): 1}, {"k": 1}, []),
    ],
    ids=["int", "float", "bool", "None", "unicode", "surrogate", "nested", "tuple", "datetime", "nested datetime",
         "object in a list", "int keys", "bytes", "set", "namedtuple", "enum", "self-containing", "4300 digits",
         "4301 digits", "5001 digits inside", "raising __class__", "raising __class__ inside",
         "str subclass key"],  # fmt: skip
)
def test_arguments_json_holds_are_kept_and_others_become_flagged_reprs(
    store: DeadLetterStore, value: object, stored: object, flagged: list[str]
) -> None:
    letter = put(store, "op", value)
    for seen in (letter, store.get(letter.id)):
        assert seen.args == (stored,)
        assert list(seen.unserialisable) == flagged
        assert seen.replayable == (not flagged)


def test_keyword_arguments_are_flagged_by_name(store: DeadLetterStore) -> None:
    letter = store.get(put(store, "op", 1, when=WHEN, rows=[1, 2]).id)
    assert letter.kwargs == {"when": repr(WHEN), "rows": [1, 2]}
    assert letter.unserialisable == ("kwargs['when']",)


def test_special_floats_come_back_as_they_went_in(store: DeadLetterStore) -> None:
    letter = store.get(put(store, "op", math.inf, -math.inf, math.nan).id)
    assert letter.args[:2] == (math.inf, -math.inf) and math.isnan(letter.args[2])
    assert letter.replayable


def test_an_int_is_flagged_when_decimal_text_of_it_would_not_read_back(store: DeadLetterStore) -> None:
    previous = sys.get_int_max_str_digits()
    try:
        sys.set_int_max_str_digits(0)  # this process writes any int; a reader with the default limit would not
        unlimited = store.get(put(store, "op", 10**4300).id)
        sys.set_int_max_str_digits(640)  # the lowest limit: json cannot write 641 digits here
        lowered = store.get(put(store, "op", 10**640, 10**639).id)
    finally:
        sys.set_int_max_str_digits(previous)
    assert unlimited.unserialisable == ("args[0]",) and lowered.unserialisable == ("args[0]",)
    assert lowered.args[1] == 10**639


@pytest.mark.parametrize("value", [HostileRepr(), [HostileRepr()], deep], ids=["hostile repr", "nested", "too deep"])
def test_an_argument_nothing_can_show_is_still_stored_as_some_text(store: DeadLetterStore, value: object) -> None:
    letter = store.get(put(store, "op", value).id)
    assert not letter.replayable
    shown = letter.args[0] if isinstance(letter.args[0], str) else letter.args[0][0]
    assert isinstance(shown, str) and "object at 0x" in shown and "; repr() raised " in shown


arguments = st.one_of(recipes(), st.integers(), st.just(10**5000), st.text(), st.floats(), st.lists(recipes(), max_size=3),
                      st.dictionaries(st.one_of(st.text(), st.builds(Sly, st.text()), st.integers()), recipes(),
                                      max_size=3))  # fmt: skip


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(args=st.lists(arguments, max_size=3), kwargs=st.dictionaries(st.text(), arguments, max_size=3),
       error=recipes())  # fmt: skip
def test_put_stores_any_call_whatever_its_objects_do(store: DeadLetterStore, args: list[object],
                                                       kwargs: dict[str, object], error: Recipe) -> None:  # fmt: skip
    letter = store.put(operation="op", args=built(tuple(args)), kwargs=built(kwargs), error=error.build(),
                       category=None, correlation_id=None, attempts=1)  # fmt: skip
    assert store.get(letter.id) == letter
    assert len(letter.args) == len(args) and list(letter.kwargs) == list(kwargs)
    assert all(isinstance(text, str) for text in (letter.error_type, letter.error_message))
    assert letter.replayable == (not letter.unserialisable)


# -- settling -------------------------------------------------------------------------


def test_a_person_discards_a_dead_letter_with_a_reason(
    store: DeadLetterStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    wall_clock = [1_777_000_000.25]  # the real one may step back between two readings
    monkeypatch.setattr(time, "time", lambda: wall_clock[0])
    letter = put(store)
    wall_clock[0] += 60.0
    discarded = store.discard(letter.id, by="ana", reason="the order was refunded")
    assert discarded == store.get(letter.id)
    assert (discarded.status, discarded.resolved_by, discarded.note) == ("discarded", "ana", "the order was refunded")
    assert letter.created_at == discarded.created_at == 1_777_000_000.25
    assert discarded.resolved_at == 1_777_000_060.25


@pytest.mark.parametrize(
    ("by", "reason", "error", "match"),
    [
        ("", "why", ValueError, "by must be a non-empty str"),
        (None, "why", TypeError, "by must be a non-empty str"),
        ("ana", "", ValueError, "reason must be a non-empty str"),
        ("ana", 3, TypeError, "reason must be a non-empty str"),
    ],
)
def test_discarding_needs_a_person_and_a_reason(store: DeadLetterStore, by: Any, reason: Any,
                                                error: type[Exception], match: str) -> None:  # fmt: skip
    letter = put(store)
    with pytest.raises(error, match=match):
        store.discard(letter.id, by=by, reason=reason)
    assert store.get(letter.id).status == "dead"


@pytest.mark.parametrize("first", ["delivered", "discarded"])
def test_a_settled_letter_cannot_be_settled_again(store: DeadLetterStore, first: str) -> None:
    letter = put(store)
    if first == "delivered":
        store.mark_delivered(letter.id)
    else:
        store.discard(letter.id, by="ana", reason="duplicate")
    settled = store.get(letter.id)
    agains: list[Callable[[], object]] = [lambda: store.discard(letter.id, by="bo", reason="x"),
                                          lambda: store.mark_delivered(letter.id),
                                          lambda: store.record_failed_replay(letter.id, "x")]  # fmt: skip
    for again in agains:
        with pytest.raises(ValueError, match=f"is {first}, not dead"):
            again()
    assert store.get(letter.id) == settled


def test_failed_replays_are_counted_and_the_last_error_kept(store: DeadLetterStore) -> None:
    letter = put(store)
    store.record_failed_replay(letter.id, TimeoutError("still slow"))
    failed = store.record_failed_replay(letter.id, LibraryError("quota"))
    assert (failed.status, failed.replays, failed.note) == ("dead", 2, f"{__name__}.LibraryError: quota")
    delivered = store.mark_delivered(letter.id, by="ana")
    assert (delivered.status, delivered.replays, delivered.resolved_by) == ("delivered", 3, "ana")


# -- replay -----------------------------------------------------------------------------


class Sheets:
    """Operations to replay: records what ran; fails while told to."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.failing = 0

    def sync_sheet(self, sheet: int, *, rows: list[int]) -> int:
        self.calls.append((sheet, rows, correlation_id()))
        if self.failing:
            self.failing -= 1
            raise ConnectionResetError(104, "reset again")
        return len(rows)


def test_replay_delivers_what_succeeds_and_accounts_for_the_rest(store: DeadLetterStore) -> None:
    sheets = Sheets()
    ok = put(store, "sync_sheet", 1, rows=[1, 2])
    failing = put(store, "sync_sheet", 2, rows=[3])
    stale = put(store, "sync_sheet", WHEN, rows=[])
    unknown = put(store, "sync_calendar", 3)
    calls = {"sync_sheet": sheets.sync_sheet}

    def sync_sheet(sheet: int, *, rows: list[int]) -> int:
        if sheet == 2:
            raise ConnectionResetError(104, "reset again")
        return sheets.sync_sheet(sheet, rows=rows)

    report = replay(store, {**calls, "sync_sheet": sync_sheet})
    assert report == ReplayReport(delivered=(ok.id,), still_dead=(failing.id,), skipped_unreplayable=(stale.id,),
                                  missing_operation=(unknown.id,))  # fmt: skip
    assert report.counts() == {"delivered": 1, "still_dead": 1, "skipped_unreplayable": 1, "missing_operation": 1}
    assert str(report) == "delivered: 1, still dead: 1, skipped unreplayable: 1, missing operation: 1"
    assert sheets.calls == [(1, [1, 2], "req-1")]  # run under the letter's correlation id
    assert store.counts() == {"dead": 3, "delivered": 1, "discarded": 0}
    assert store.get(ok.id).resolved_by == "replay"
    assert store.get(failing.id).note == "ConnectionResetError: [Errno 104] reset again"
    assert store.get(unknown.id).note == "no operation named 'sync_calendar' among those given to replay"
    assert (store.get(stale.id).replays, store.get(stale.id).note) == (0, "")

    again = replay(store, {"sync_sheet": lambda sheet, rows: "ok"})
    assert again.delivered == (failing.id,) and again.still_dead == ()
    assert store.get(failing.id).replays == 2


@pytest.mark.parametrize(
    "result",
    [
        Degraded(value=[], source="cache", error=TimeoutError("slow")),
        httpx.Response(503, request=httpx.Request("GET", "https://sheets.example/")),
    ],
    ids=["degraded", "failed response"],
)
def test_a_stand_in_value_or_a_failed_response_is_not_a_delivery(store: DeadLetterStore, result: object) -> None:
    letter = put(store, "op")
    report = replay(store, {"op": lambda: result})
    assert report.still_dead == (letter.id,)
    assert store.get(letter.id).status == "dead" and store.get(letter.id).note


def test_replay_runs_at_most_limit_letters_oldest_first(store: DeadLetterStore) -> None:
    ids = [put(store, "op", i).id for i in range(5)]
    ran: list[int] = []
    report = replay(store, {"op": ran.append}, limit=2)
    assert (report.delivered, ran) == (tuple(ids[:2]), [0, 1])
    assert replay(store, {"op": ran.append}).delivered == tuple(ids[2:])


class CountingReads(MemoryDeadLetters):
    """A memory store that records how many letters each page read returned."""

    def __init__(self) -> None:
        super().__init__()
        self.pages: list[int] = []

    def _page(self, status: Status | None, after: int, limit: int) -> list[tuple[int, DeadLetter]]:
        page = super()._page(status, after, limit)
        self.pages.append(len(page))
        return page


def test_replay_reads_the_store_a_page_at_a_time() -> None:
    store = CountingReads()
    ids = [put(store, "op", i).id for i in range(1200)]
    assert replay(store, {"op": lambda i: None}, limit=3).delivered == tuple(ids[:3])
    assert store.pages == [3]  # what it ran, not the 1,200 letters kept
    store.pages.clear()
    assert len(replay(store, {"op": lambda i: None}).delivered) == 1197
    assert max(store.pages) == 500 and sum(store.pages) == 1197


def test_replay_with_a_limit_reads_past_the_letters_it_cannot_run() -> None:
    store = CountingReads()
    stale = put(store, "op", WHEN).id
    missing = put(store, "gone").id
    ran = [put(store, "op", i).id for i in range(3)]
    report = replay(store, {"op": lambda i: None}, limit=2)
    assert report == ReplayReport(delivered=tuple(ran[:2]), still_dead=(), skipped_unreplayable=(stale,),
                                  missing_operation=(missing,))  # fmt: skip
    assert store.get(ran[2]).status == "dead"


def test_replay_runs_through_a_recovery(store: DeadLetterStore, clock: FakeClock) -> None:
    sheets = Sheets()
    sheets.failing = 2  # the recovery's retries get past these
    healed = put(store, "sync_sheet", 1, rows=[1])
    report = replay(store, {"sync_sheet": sheets.sync_sheet}, recovery=Recovery(name="sync_sheet"))
    assert report.delivered == (healed.id,)
    assert len(sheets.calls) == 3


def test_a_replay_the_recovery_gives_up_on_stays_dead(store: DeadLetterStore, clock: FakeClock) -> None:
    letter = put(store, "op")

    def broken() -> None:
        raise PermissionError(13, "denied")

    report = replay(store, {"op": broken}, recovery=Recovery(name="op", dead_letters=store))
    assert report.still_dead == (letter.id,)
    assert store.get(letter.id).note.startswith(f"{RecoveryFailed.__module__}.RecoveryFailed")
    assert [entry.id for entry in store.all()] == [letter.id]  # not dead-lettered a second time


def test_a_recovery_inside_a_replayed_operation_does_not_dead_letter_it_again(store: DeadLetterStore,
                                                                            clock: FakeClock) -> None:  # fmt: skip
    @Recovery(name="op", dead_letters=store)
    def guarded() -> None:
        raise PermissionError(13, "denied")

    with pytest.raises(RecoveryFailed):
        guarded()  # outside a replay: the call goes to the store
    (letter,) = store.all()
    assert replay(store, {"op": guarded}).still_dead == (letter.id,)
    assert asyncio.run(replay_async(store, {"op": guarded})).still_dead == (letter.id,)
    assert [entry.id for entry in store.all()] == [letter.id]
    assert store.get(letter.id).replays == 2


def test_the_process_store_opens_on_first_use_and_can_be_replaced(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.chdir(tmp_path)
    previous = set_default_store(None)
    try:
        assert not (tmp_path / "brace-dead-letters.sqlite3").exists()
        opened = default_store()
        assert isinstance(opened, SQLiteDeadLetters) and default_store() is opened
        assert (tmp_path / "brace-dead-letters.sqlite3").exists()
        memory = MemoryDeadLetters()
        assert set_default_store(memory) is opened and default_store() is memory
        opened.close()
        with pytest.raises(TypeError, match="store must be a brace.DeadLetterStore or None, got str"):
            set_default_store("letters.sqlite3")  # type: ignore[arg-type]
    finally:
        set_default_store(previous)


def test_what_is_not_an_exception_stops_the_replay_with_the_letters_so_far_booked(store: DeadLetterStore) -> None:
    first, second = put(store, "ok").id, put(store, "stop").id

    def stop() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        replay(store, {"ok": lambda: 1, "stop": stop})
    assert (store.get(first).status, store.get(second).status) == ("delivered", "dead")


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"store": {}}, TypeError, "store must be a brace.DeadLetterStore"),
        ({"operations": [("op", print)]}, TypeError, "operations must be a mapping"),
        ({"recovery": object()}, TypeError, "recovery must be a brace.Recovery or None"),
        ({"limit": 0}, ValueError, "limit must be an int from 1 to 2\\*\\*63 - 1"),
    ],
)
def test_replay_refuses_bad_arguments(kwargs: dict[str, Any], error: type[Exception], match: str) -> None:
    given: dict[str, Any] = {"store": MemoryDeadLetters(), "operations": {}, **kwargs}
    with pytest.raises(error, match=match):
        replay(**given)


def test_replay_async_awaits_coroutine_operations(store: DeadLetterStore) -> None:
    done = put(store, "fetch", 1)
    failed = put(store, "fetch", 2)
    plain = put(store, "plain", 3)
    seen: list[str | None] = []

    async def fetch(n: int) -> int:
        await asyncio.sleep(0)
        seen.append(correlation_id())
        if n == 2:
            raise TimeoutError("slow")
        return n

    report = asyncio.run(replay_async(store, {"fetch": fetch, "plain": lambda n: n}))
    assert (report.delivered, report.still_dead) == ((done.id, plain.id), (failed.id,))
    assert seen == ["req-1", "req-1"]
    assert store.get(failed.id).note == "TimeoutError: slow"


def test_replay_async_runs_through_a_recovery(store: DeadLetterStore, clock: FakeClock) -> None:
    letter = put(store, "fetch", 1)
    attempts: list[int] = []

    async def fetch(n: int) -> int:
        attempts.append(n)
        if len(attempts) == 1:
            raise ConnectionResetError(104, "reset")
        return n

    report = asyncio.run(replay_async(store, {"fetch": fetch}, recovery=Recovery(name="fetch")))
    assert report.delivered == (letter.id,) and attempts == [1, 1]


# -- accounting --------------------------------------------------------------------------


class Accounting(RuleBasedStateMachine):
    """Whatever happens to the letters, each is in exactly one status and none is lost."""

    store_kind = "memory"

    def __init__(self) -> None:
        super().__init__()
        self.directory = tempfile.TemporaryDirectory()
        self.store: DeadLetterStore = (MemoryDeadLetters() if self.store_kind == "memory"
                                       else SQLiteDeadLetters(Path(self.directory.name) / "letters.sqlite3"))  # fmt: skip
        self.model: dict[str, str] = {}  # id -> status, in the order put
        self.in_flight: list[str] = []  # outbox ids, in the order begun

    def ids(self, status: str) -> list[str]:
        return [id for id, now in self.model.items() if now == status]

    @rule(value=st.one_of(st.integers(), st.text(), st.dates(), st.lists(st.integers())))
    def put(self, value: object) -> None:
        self.model[put(self.store, "op", value).id] = "dead"

    @precondition(lambda self: self.ids("dead"))
    @rule(data=st.data())
    def deliver(self, data: st.DataObject) -> None:
        id = data.draw(st.sampled_from(self.ids("dead")))
        self.store.mark_delivered(id)
        self.model[id] = "delivered"

    @precondition(lambda self: self.ids("dead"))
    @rule(data=st.data(), by=st.text(min_size=1), reason=st.text(min_size=1))
    def discard(self, data: st.DataObject, by: str, reason: str) -> None:
        id = data.draw(st.sampled_from(self.ids("dead")))
        self.store.discard(id, by=by, reason=reason)
        self.model[id] = "discarded"

    @precondition(lambda self: self.ids("dead"))
    @rule(data=st.data())
    def fail(self, data: st.DataObject) -> None:
        self.store.record_failed_replay(data.draw(st.sampled_from(self.ids("dead"))), "still failing")

    @precondition(lambda self: len(self.ids("dead")) < len(self.model))
    @rule(data=st.data())
    def settle_again(self, data: st.DataObject) -> None:
        id = data.draw(st.sampled_from([id for id, status in self.model.items() if status != "dead"]))
        with pytest.raises(ValueError, match="not dead"):
            self.store.discard(id, by="bo", reason="again")

    @rule(succeed=st.booleans())
    def replay_all(self, succeed: bool) -> None:
        def op(value: object) -> None:
            if not succeed:
                raise TimeoutError

        report = replay(self.store, {"op": op})
        assert set(report.delivered) | set(report.still_dead) | set(report.skipped_unreplayable) == set(self.ids("dead"))
        for id in report.delivered:
            self.model[id] = "delivered"

    @rule(states=st.sampled_from([("delivered",), ("discarded",), ("delivered", "discarded")]))
    def compact(self, states: tuple[Status, ...]) -> None:
        removed = [id for id, status in self.model.items() if status in states]
        assert self.store.compact(older_than=0, states=states) == len(removed)
        for id in removed:
            del self.model[id]

    @rule(value=st.one_of(st.integers(), st.text(), st.dates()))
    def begin(self, value: object) -> None:
        self.in_flight.append(self.store.begin(operation="op", args=(value,), kwargs={}, correlation_id=None))

    @precondition(lambda self: self.in_flight)
    @rule(data=st.data())
    def end(self, data: st.DataObject) -> None:
        id = data.draw(st.sampled_from(self.in_flight))
        self.store.end(id)
        self.in_flight.remove(id)

    @precondition(lambda self: self.in_flight)
    @rule(data=st.data(), served=st.sampled_from([None, "cache"]))
    def give_up_on_a_call_in_flight(self, data: st.DataObject, served: str | None) -> None:
        id = data.draw(st.sampled_from(self.in_flight))
        self.store.put(operation="op", args=(), kwargs={}, error=TimeoutError(), category=None, correlation_id=None,
                       attempts=1, served=served, outbox_id=id)  # fmt: skip
        self.in_flight.remove(id)
        self.model[id] = "dead"

    @invariant()
    def every_call_in_flight_is_in_the_outbox(self) -> None:
        assert [call.id for call in self.store.in_flight()] == self.in_flight
        assert self.store.recover_interrupted() == []  # their process runs: this one

    @invariant()
    def every_letter_is_accounted_for(self) -> None:
        counts = self.store.counts()
        assert sum(counts.values()) == len(self.model)
        assert counts == {status: len(self.ids(status)) for status in ("dead", "delivered", "discarded")}
        assert [(letter.id, letter.status) for letter in self.store.all()] == list(self.model.items())

    @invariant()
    def pages_list_every_letter_once_in_order(self) -> None:
        for status in (None, "dead", "delivered", "discarded"):
            listed: list[str] = []
            while page := self.store.page(status=status, after=listed[-1] if listed else None, limit=2):
                listed.extend(letter.id for letter in page)
            assert listed == [id for id, known in self.model.items() if status in (None, known)]

    def teardown(self) -> None:
        self.store.close()
        self.directory.cleanup()


class SQLiteAccounting(Accounting):
    store_kind = "sqlite"


TestMemoryAccounting = pytest.mark.slow(Accounting.TestCase)  # a state machine over many runs
TestMemoryAccounting.settings = settings(max_examples=50, stateful_step_count=30, deadline=None)
TestSQLiteAccounting = pytest.mark.slow(SQLiteAccounting.TestCase)
TestSQLiteAccounting.settings = settings(max_examples=25, stateful_step_count=30, deadline=None)


# -- paging and compaction ----------------------------------------------------------------


def test_pages_follow_each_other_oldest_first(store: DeadLetterStore) -> None:
    ids = [put(store, "op", i).id for i in range(7)]
    store.discard(ids[1], by="ana", reason="dup")
    assert [letter.id for letter in store.page(limit=3)] == ids[:3]
    assert [letter.id for letter in store.page(after=ids[2], limit=3)] == ids[3:6]
    assert [letter.id for letter in store.page(after=ids[5], limit=3)] == ids[6:]
    assert store.page(after=ids[6]) == []
    assert [letter.id for letter in store.page(status="dead", after=ids[0], limit=2)] == [ids[2], ids[3]]
    # after a letter of another status:
    assert [letter.id for letter in store.page(status="dead", after=ids[1])] == ids[2:]
    assert [letter.id for letter in store.page(status="discarded")] == [ids[1]]
    assert store.page(status="delivered") == []


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"status": "lost"}, ValueError, "status must be one of 'dead', 'delivered', 'discarded' or None, got 'lost'"),
        ({"limit": 0}, ValueError, "limit must be an int from 1 to 10000, got 0"),
        ({"limit": 10_001}, ValueError, "limit must be an int from 1 to 10000"),
        ({"limit": 2.0}, TypeError, "limit must be an int"),
        ({"after": 3}, TypeError, "after must be a non-empty str, got int"),
        ({"after": "nope"}, KeyError, "no dead letter with id 'nope'"),
    ],
)
def test_page_refuses_bad_arguments(store: DeadLetterStore, kwargs: dict[str, Any], error: type[Exception],
                                    match: str) -> None:  # fmt: skip
    put(store, "op")
    with pytest.raises(error, match=match):
        store.page(**kwargs)


def settled_at(store: DeadLetterStore, when: float, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    """A delivered and a discarded letter, settled at time.time() == when."""
    delivered, discarded = put(store, "op", 1).id, put(store, "op", 2).id
    with monkeypatch.context() as patched:
        patched.setattr(time, "time", lambda: when)
        store.mark_delivered(delivered)
        store.discard(discarded, by="ana", reason="dup")
    return delivered, discarded


def test_compaction_removes_old_settled_letters_only_never_a_dead_one_nor_a_call_in_flight(
    store: DeadLetterStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = settled_at(store, time.time() - 7200, monkeypatch)
    dead = put(store, "op", 3)
    failed = put(store, "op", 4)
    store.record_failed_replay(failed.id, "still failing")
    recent = settled_at(store, time.time(), monkeypatch)
    in_flight = begin(store, "op", 5)

    assert store.compact(older_than=datetime.timedelta(hours=1)) == 2
    assert [letter.id for letter in store.all()] == [dead.id, failed.id, *recent]
    assert store.counts() == {"dead": 2, "delivered": 1, "discarded": 1}
    assert store.compact(older_than=0, states=["discarded"]) == 1
    assert store.compact(older_than=0, states=("delivered", "discarded")) == 1
    assert store.compact(older_than=0) == 0
    assert store.all() == [dead, store.get(failed.id)] and store.get(failed.id).replays == 1
    assert [call.id for call in store.in_flight()] == [in_flight]
    assert store.counts() == {"dead": 2, "delivered": 0, "discarded": 0}
    with pytest.raises(KeyError, match=f"no dead letter with id {old[0]!r}"):
        store.get(old[0])


def test_compaction_archives_what_it_removes_first(store: DeadLetterStore, tmp_path: Path) -> None:
    delivered = put(store, "sync_sheet", 1, WHEN, rows=[1.5, math.inf])
    store.mark_delivered(delivered.id)
    discarded = put(store, "op", served="cache")
    store.discard(discarded.id, by="ana", reason="dup")
    put(store, "op", 3)
    archive = tmp_path / "settled.jsonl"
    archive.write_text('{"kept": "what was there"}\n')
    assert store.compact(older_than=0, archive=archive) == 2
    lines = archive.read_text().splitlines()
    assert lines[0] == '{"kept": "what was there"}'  # appended to, never truncated
    rows = [json.loads(line) for line in lines[1:]]
    assert [(row["id"], row["status"]) for row in rows] == [(delivered.id, "delivered"), (discarded.id, "discarded")]
    assert rows[0] == {**dataclasses.asdict(delivered), "args": [1, safe_repr(WHEN)], "status": "delivered",
                       "resolved_at": rows[0]["resolved_at"], "resolved_by": "replay", "replays": 1,
                       "unserialisable": ["args[1]"]}  # fmt: skip
    assert rows[0]["kwargs"] == {"rows": [1.5, math.inf]} and rows[1]["served"] == "cache"


def test_compaction_removes_nothing_when_the_archive_cannot_be_written(store: DeadLetterStore, tmp_path: Path) -> None:
    letter = put(store, "op")
    store.mark_delivered(letter.id)
    with pytest.raises(OSError):
        store.compact(older_than=0, archive=tmp_path / "no such directory" / "settled.jsonl")
    assert store.counts() == {"dead": 0, "delivered": 1, "discarded": 0}


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"older_than": 0, "states": ("dead",)}, ValueError,
         "states must name settled statuses only .*never removes a dead letter"),
        ({"older_than": 0, "states": ("delivered", "dead")}, ValueError, "states must name settled statuses only"),
        ({"older_than": 0, "states": ()}, ValueError, "states must name settled statuses only"),
        ({"older_than": 0, "states": "delivered"}, TypeError, "states must be an iterable of statuses, got str"),
        ({"older_than": -1}, ValueError, "older_than must be 0 or a finite number of seconds"),
        ({"older_than": math.nan}, ValueError, "older_than must be 0 or a finite number of seconds"),
        ({"older_than": "1h"}, TypeError, "older_than must be seconds"),
        ({"older_than": 0, "archive": 3}, TypeError, "archive must be a str, an os.PathLike or None, got int"),
    ],
)
def test_compaction_refuses_bad_arguments(store: DeadLetterStore, kwargs: dict[str, Any], error: type[Exception],
                                          match: str) -> None:  # fmt: skip
    letter = put(store, "op")
    store.mark_delivered(letter.id)
    with pytest.raises(error, match=match):
        store.compact(**kwargs)
    assert store.counts()["delivered"] == 1


# -- the outbox -------------------------------------------------------------------------


def begin(store: DeadLetterStore, operation: str = "charge", *args: Any, **kwargs: Any) -> str:
    return store.begin(operation=operation, args=args, kwargs=kwargs, correlation_id="order-7")


def test_a_call_begun_is_in_flight_until_it_ends(store: DeadLetterStore) -> None:
    before = time.time()
    id = begin(store, "charge", 42, WHEN, currency="EUR")
    (call,) = store.in_flight()
    assert call == InFlightCall(id=id, operation="charge", args=(42, repr(WHEN)), kwargs={"currency": "EUR"},
                                unserialisable=("args[1]",), correlation_id="order-7", started_at=call.started_at,
                                owner=Owner(socket.gethostname(), os.getpid(), call.owner.started))  # fmt: skip
    assert before <= call.started_at <= time.time()
    start_ticks = Path(f"/proc/{os.getpid()}/stat").read_text().rpartition(")")[2].split()[19]  # field 22
    assert call.owner.started.endswith(f"/{start_ticks}")  # with the boot id: this process, not its pid alone
    assert store.counts() == {"dead": 0, "delivered": 0, "discarded": 0}  # not a letter
    store.end(id)
    assert store.in_flight() == [] and store.all() == []
    with pytest.raises(KeyError, match=f"no call in the outbox with id {id!r}"):
        store.end(id)


def test_a_call_given_up_on_becomes_its_dead_letter_at_once(store: DeadLetterStore) -> None:
    kept = begin(store, "charge", 1)
    id = begin(store, "charge", 2)
    letter = store.put(operation="charge", args=(2,), kwargs={}, error=TimeoutError("slow"), category="timeout",
                       correlation_id="order-7", attempts=3, served="cache", outbox_id=id)  # fmt: skip
    assert (letter.id, letter.served, letter.status) == (id, "cache", "dead") and store.get(id) == letter
    assert [call.id for call in store.in_flight()] == [kept]
    for again in (lambda: store.put(operation="charge", args=(2,), kwargs={}, error=TimeoutError(), category=None,
                                    correlation_id=None, attempts=3, outbox_id=id),
                  lambda: store.end(id)):  # fmt: skip
        with pytest.raises(KeyError, match="no call in the outbox"):
            again()
    assert store.all() == [letter]  # a call accounted for already is not stored twice


@pytest.mark.parametrize(
    ("change", "error", "match"),
    [
        ({"operation": ""}, ValueError, "operation must be a non-empty str"),
        ({"args": [1]}, TypeError, "args must be a tuple"),
        ({"kwargs": {1: "a"}}, TypeError, "kwargs must be a mapping of str to values"),
        ({"correlation_id": 7}, TypeError, "correlation_id must be a str or None"),
    ],
)
def test_begin_refuses_what_is_not_a_call(store: DeadLetterStore, change: dict[str, Any], error: type[Exception],
                                          match: str) -> None:  # fmt: skip
    given: dict[str, Any] = {"operation": "op", "args": (), "kwargs": {}, "correlation_id": None, **change}
    with pytest.raises(error, match=match):
        store.begin(**given)
    assert store.in_flight() == []


def test_an_outbox_id_must_be_a_str(store: DeadLetterStore) -> None:
    with pytest.raises(TypeError, match="outbox_id must be a non-empty str"):
        store.put(operation="op", args=(), kwargs={}, error=TimeoutError(), category=None, correlation_id=None,
                  attempts=1, outbox_id=3)  # type: ignore[arg-type]  # fmt: skip


def begun_by(store: DeadLetterStore, owner: Owner, monkeypatch: pytest.MonkeyPatch, *args: Any) -> str:
    """A call begun as if by the process `owner`."""
    monkeypatch.setattr(process, "_process", owner)
    try:
        return begin(store, "charge", *args, currency="EUR")
    finally:
        monkeypatch.setattr(process, "_process", None)


def test_the_calls_of_a_process_that_ended_become_interrupted_dead_letters(
    store: DeadLetterStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    host, pid = socket.gethostname(), os.getpid()
    # This pid runs, but a process that started at another time had it: that one has ended.
    ended = begun_by(store, Owner(host, pid, "another-boot/1"), monkeypatch, 42)
    elsewhere = begun_by(store, Owner("another-host", pid, "another-boot/1"), monkeypatch, 43)
    live = begin(store, "charge", 44)
    before = time.time()
    (letter,) = store.recover_interrupted()
    assert (letter.id, letter.operation, letter.args, letter.kwargs, letter.correlation_id) == (
        ended, "charge", (42,), {"currency": "EUR"}, "order-7")
    assert (letter.error_type, letter.category, letter.attempts, letter.status, letter.served) == (
        INTERRUPTED, None, 0, "dead", None)
    assert letter.error_message.startswith(f"process {pid} on {host} ended during the call, begun at ")
    assert letter.error_message.endswith(" UTC: the server may or may not have seen it")
    assert letter.replayable and before <= letter.created_at <= time.time()
    assert store.get(ended) == letter
    assert [call.id for call in store.in_flight()] == [elsewhere, live]  # not judged from here; running
    assert store.recover_interrupted() == []
    assert store.counts() == {"dead": 1, "delivered": 0, "discarded": 0}
    charged: list[int] = []
    assert replay(store, {"charge": lambda n, currency: charged.append(n)}).delivered == (ended,)
    assert charged == [42]


def test_concurrent_recoveries_recover_each_call_once(store: DeadLetterStore,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    ids = [begun_by(store, Owner(socket.gethostname(), os.getpid(), "another-boot/1"), monkeypatch, n)
           for n in range(50)]  # fmt: skip
    recovered: list[DeadLetter] = []
    run_threads(4, lambda n: recovered.extend(store.recover_interrupted()))
    assert sorted(letter.id for letter in recovered) == sorted(ids)
    assert store.counts()["dead"] == 50 and store.in_flight() == []


def test_whether_a_process_runs_is_told_only_where_it_can_be(monkeypatch: pytest.MonkeyPatch) -> None:
    me = process.this_process()
    host, pid = me.host, me.pid
    assert me.started  # Linux: from /proc
    assert process.running(me) is True
    assert process.running(Owner(host, pid, "")) is True  # begun where start times are unknown: the pid
    assert process.running(Owner(host, pid, "another-boot/1")) is False  # the pid is another process's now
    assert process.running(Owner("another-host", pid, me.started)) is None
    with monkeypatch.context() as patched:
        patched.setattr(process, "_started", lambda pid: None)  # /proc hides it (hidepid)
        assert process.running(me) is None
    for answer, running in ((PermissionError(1, "not yours"), True), (ProcessLookupError(3, "no such"), False)):
        with monkeypatch.context() as patched:
            patched.setattr(os, "kill", functools.partial(answering, answer))
            assert process.running(me) is running  # another user's process exists; a missing one ended


def answering(error: OSError, pid: int, signal: int) -> None:
    """os.kill(pid, 0) as it answers for another user's process, or for none."""
    raise error


MID_CALL = """
import sys
from brace.deadletter import SQLiteDeadLetters
store = SQLiteDeadLetters(sys.argv[1])
id = store.begin(operation="charge", args=(42, {"cents": 1999}), kwargs={"currency": "EUR"}, correlation_id="order-7")
print(id, flush=True)
sys.stdin.readline()  # mid-call until the parent says
store.end(id)
"""


def test_a_call_whose_process_is_killed_mid_call_is_recovered(tmp_path: Path) -> None:
    path = tmp_path / "letters.sqlite3"
    child = subprocess.Popen([sys.executable, "-c", MID_CALL, str(path)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert child.stdout is not None
        id = child.stdout.readline().strip()
    finally:
        os.kill(child.pid, signal.SIGKILL)  # not an exit: nothing of the child's runs after this
        assert child.wait(LONG) == -signal.SIGKILL
    with SQLiteDeadLetters(path) as store:
        (call,) = store.in_flight()
        assert (call.id, call.owner.pid) == (id, child.pid)
        (letter,) = store.recover_interrupted()
        assert (letter.id, letter.operation, letter.args, letter.kwargs, letter.correlation_id, letter.error_type) == (
            id, "charge", (42, {"cents": 1999}), {"currency": "EUR"}, "order-7", INTERRUPTED)
        assert letter.replayable and store.in_flight() == []
    with SQLiteDeadLetters(path) as store:
        assert store.dead() == [letter]


def test_the_calls_of_a_running_process_are_not_recovered(tmp_path: Path) -> None:
    path = tmp_path / "letters.sqlite3"
    child = subprocess.Popen([sys.executable, "-c", MID_CALL, str(path)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert child.stdout is not None and child.stdin is not None
        id = child.stdout.readline().strip()
        with SQLiteDeadLetters(path) as store:
            assert store.recover_interrupted() == []
            assert [call.id for call in store.in_flight()] == [id]
            child.stdin.write("ended\n")
            child.stdin.flush()
            assert child.wait(LONG) == 0
            assert store.in_flight() == [] and store.all() == []
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(LONG)


# -- SQLite: durability, schema, threads --------------------------------------------------


def test_letters_put_survive_a_crash_of_the_process(tmp_path: Path) -> None:
    path = tmp_path / "crash.sqlite3"
    script = textwrap.dedent(f"""
        import os
        from brace.deadletter import SQLiteDeadLetters
        store = SQLiteDeadLetters({str(path)!r})
        for i in range(50):
            store.put(operation="op", args=(i,), kwargs={{}}, error=TimeoutError(i), category="timeout",
                      correlation_id=None, attempts=3)
        os._exit(1)  # no close, no flush, no atexit
    """)
    crashed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert crashed.returncode == 1, crashed.stderr
    with SQLiteDeadLetters(path) as store:
        assert [letter.args for letter in store.dead()] == [(i,) for i in range(50)]
        assert store.counts() == {"dead": 50, "delivered": 0, "discarded": 0}


def test_the_database_is_in_wal_mode_with_its_schema_version(tmp_path: Path) -> None:
    path = tmp_path / "letters.sqlite3"
    SQLiteDeadLetters(path).close()
    with sqlite3.connect(path) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert connection.execute("PRAGMA user_version").fetchone() == (3,)
    with SQLiteDeadLetters(str(path)) as store:  # reopening keeps the table
        assert store.path == str(path) and store.all() == []
        letter = put(store, "op", 1, rows=(2, 3))
    with sqlite3.connect(path) as connection:
        row = connection.execute("SELECT args, kwargs, unserialisable FROM dead_letters WHERE id = ?", (letter.id,))
        assert row.fetchone() == ("[1]", '{"rows": [2, 3]}', "[]")


# A file written by the first dead-letter schema (version 1), as sqlite3's iterdump() shows it.
VERSION_1 = """
CREATE TABLE dead_letters (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,  -- the order letters were put
    id TEXT NOT NULL UNIQUE,
    operation TEXT NOT NULL,
    args TEXT NOT NULL,            -- JSON array
    kwargs TEXT NOT NULL,          -- JSON object
    unserialisable TEXT NOT NULL,  -- JSON array of paths
    error_type TEXT NOT NULL,
    error_message TEXT NOT NULL,
    category TEXT,
    correlation_id TEXT,
    attempts INTEGER NOT NULL,
    created_at REAL NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('dead', 'delivered', 'discarded')),
    resolved_at REAL,
    resolved_by TEXT,
    note TEXT NOT NULL,
    replays INTEGER NOT NULL
);
INSERT INTO "dead_letters" VALUES(1,'c33537ede02342b9aa48dc2fad8675e3','sync_sheet','[7, "rows"]','{"sheet": {"id": 3}}',
    '[]','TimeoutError','slow','timeout','req-1',4,1700000000.5,'dead',NULL,NULL,'',0);
INSERT INTO "dead_letters" VALUES(2,'04e6bacdce76440483ec29057e920501','op','[]','{}','[]','ValueError','x',NULL,NULL,1,
    1700000001.5,'discarded',1700000002.5,'ana','dup',0);
CREATE INDEX dead_letters_status ON dead_letters (status, seq);
PRAGMA user_version = 1;
"""


def test_a_file_of_schema_version_1_is_migrated_with_its_letters(tmp_path: Path) -> None:
    path = tmp_path / "letters.sqlite3"
    with sqlite3.connect(path) as connection:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.executescript(VERSION_1)
    connection.close()
    with SQLiteDeadLetters(path) as store:
        old = store.all()
        assert [(letter.id, letter.args, letter.kwargs, letter.status, letter.served) for letter in old] == [
            ("c33537ede02342b9aa48dc2fad8675e3", (7, "rows"), {"sheet": {"id": 3}}, "dead", None),
            ("04e6bacdce76440483ec29057e920501", (), {}, "discarded", None),
        ]
        assert (old[0].error_type, old[0].correlation_id, old[0].attempts, old[1].note) == ("TimeoutError", "req-1",
                                                                                           4, "dup")  # fmt: skip
        served = put(store, "op", 1, served="cache")
        in_flight = begin(store, "op", 2)
    with SQLiteDeadLetters(path) as store:  # once migrated, it opens as it is
        assert store.all() == [*old, served]
        assert [call.id for call in store.in_flight()] == [in_flight]
        assert store.counts() == {"dead": 2, "delivered": 0, "discarded": 1}
    with sqlite3.connect(path) as connection:
        assert connection.execute("PRAGMA user_version").fetchone() == (3,)
    connection.close()


def test_a_file_of_schema_version_2_is_migrated_with_its_letters_counted(tmp_path: Path) -> None:
    path = tmp_path / "letters.sqlite3"
    with sqlite3.connect(path) as connection:
        connection.executescript(VERSION_1)
        connection.executescript(schema.MIGRATIONS[1] + "PRAGMA user_version = 2;")
        connection.execute("UPDATE dead_letters SET served = 'cache' WHERE seq = 1")
    connection.close()
    with SQLiteDeadLetters(path) as store:
        assert store.counts() == {"dead": 1, "delivered": 0, "discarded": 1}  # counted by the migration
        assert store.all()[0].served == "cache"
        letter = put(store, "op")
        store.mark_delivered(letter.id)
        assert store.counts() == {"dead": 1, "delivered": 1, "discarded": 1}  # and kept up to date since
        assert store.compact(older_than=0) == 2
        assert store.counts() == {"dead": 1, "delivered": 0, "discarded": 0}
    with sqlite3.connect(path) as connection:
        assert connection.execute("PRAGMA user_version").fetchone() == (3,)
    connection.close()


def test_a_database_from_a_newer_brace_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "letters.sqlite3"
    with sqlite3.connect(path) as connection:
        connection.execute("PRAGMA user_version = 99")
    with pytest.raises(ValueError, match="schema version 99; this brace reads versions up to 3"):
        SQLiteDeadLetters(path)


@pytest.mark.parametrize("path", ["", ":memory:"])
def test_a_database_that_dies_with_the_process_is_refused(path: str) -> None:
    with pytest.raises(ValueError, match=f"^path must name a file, got {path!r}: .*use brace.MemoryDeadLetters"):
        SQLiteDeadLetters(path)


@pytest.mark.parametrize("name", ["file::memory:", "file:letters?mode=memory"])
def test_a_name_sqlite_could_read_as_a_uri_is_a_file_of_that_name(name: str, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.chdir(tmp_path)
    with SQLiteDeadLetters(name) as store:
        letter = put(store, "op", 1)
    assert (tmp_path / name).is_file()
    with SQLiteDeadLetters(name) as store:
        assert store.all() == [letter]


def test_the_path_must_be_a_path() -> None:
    with pytest.raises(TypeError, match="path must be a str or os.PathLike, got int"):
        SQLiteDeadLetters(3)  # type: ignore[arg-type]


def test_two_stores_on_one_file_see_each_others_letters(tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite3"
    with SQLiteDeadLetters(path) as one, SQLiteDeadLetters(path) as two:
        letter = put(one, "op")
        two.discard(letter.id, by="ana", reason="seen elsewhere")
        assert one.get(letter.id).status == "discarded"
        with pytest.raises(ValueError, match="is discarded, not dead"):
            one.mark_delivered(letter.id)


def run_threads(count: int, work: Callable[[int], object]) -> None:
    start = threading.Barrier(count)
    errors: list[BaseException] = []

    def run(n: int) -> None:
        start.wait()
        try:
            work(n)
        except BaseException as error:  # noqa: BLE001 (reported by the test)
            errors.append(error)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def test_concurrent_puts_from_eight_threads_lose_none(store: DeadLetterStore) -> None:
    run_threads(8, lambda n: [put(store, "op", n, i) for i in range(100)])
    letters = store.all()
    assert sorted(letter.args for letter in letters) == sorted((n, i) for n in range(8) for i in range(100))
    assert len({letter.id for letter in letters}) == 800


def test_concurrent_settling_settles_each_letter_once(store: DeadLetterStore) -> None:
    ids = [put(store, "op", i).id for i in range(200)]
    settled: list[str] = []

    def settle(n: int) -> None:
        for id in ids:
            try:
                if n % 2:
                    store.mark_delivered(id)
                else:
                    store.discard(id, by=f"person{n}", reason="race")
            except ValueError:
                continue
            settled.append(id)

    run_threads(8, settle)
    assert sorted(settled) == sorted(ids)
    counts = store.counts()
    assert counts["dead"] == 0 and counts["delivered"] + counts["discarded"] == 200
