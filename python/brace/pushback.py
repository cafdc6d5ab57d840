"""Server pushback: how long the server asked a client to wait before retrying.

The retry engine calls `server_delay` after a failed attempt; when the server
said something usable, that wait replaces the computed backoff. Waits are
capped (300 s by default, Envoy's default too; Envoy skips a longer value and
tries the next header, brace shortens it to the cap, so a server asking for a
long pause gets the longest one allowed). Responses are found by duck typing, so
brace depends on no HTTP library: requests, httpx, aiohttp, urllib3,
urllib/http.client, starlette and werkzeug responses and their exceptions all
work, and so does any object shaped like them.

Headers are read in this order; the first that yields a wait wins, and a
malformed value is skipped as if absent (nothing here raises on what a server
sent):

1. `Retry-After` (RFC 9110 section 10.2.3): delta-seconds, or an HTTP-date in
   any of its three formats (a date in the past means 0).
2. The IETF RateLimit fields (draft-ietf-httpapi-ratelimit-headers):
   `RateLimit: "policy";r=0;t=30` (drafts 08+; `t` counts when `r` is 0 or
   absent, and an exhausted policy without `t` falls back to its window `w`
   from `RateLimit-Policy`), then `RateLimit: limit=10, remaining=0, reset=30`
   (draft 07), then `RateLimit-Reset` with `RateLimit-Remaining` (drafts 00-06).
3. `X-RateLimit-Reset-After` (delta seconds, Discord style), then
   `X-RateLimit-Reset` (epoch seconds above 10^9, GitHub/Twitter style; delta
   seconds below), both unless `X-RateLimit-Remaining` is above 0.

What is read is bounded, as HTTP parsers bound a header section: a line of
these fields longer than 1,024 characters is skipped (and counts as 1,024),
and the lines of these fields together (names and values) may hold at most
4,096 characters (bytes as sent: MAX_FIELDS_CHARS). A response over that
budget asked for nothing usable: its wait fields are all ignored, as if
absent - never an exception, never a wait read from part of them - and
`server_wait` says so (the classifier's Classification.pushback_ignored and
describe() carry it).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from typing import NamedTuple, cast

from brace import _config
from brace._structured import StructuredField

__all__ = ["ServerWait", "http_status", "server_delay", "server_wait"]

# Values above this are epoch seconds (10^9 s is 2001-09-09); below, a delta.
# No server means a delta of 31 years, so reading such a value as a timestamp
# loses nothing, and it is how GitHub and Twitter send it.
_EPOCH_THRESHOLD = 1e9
# A single field line longer than this is not a wait a server meant to send;
# skipping it keeps the cost of hostile input bounded.
_MAX_FIELD_CHARS = 1024
# The most characters the lines of the fields read (names and values) may
# hold together: one budget on the whole set, as HTTP parsers keep one on a
# header section, so repeated lines cannot make a call's cost grow without bound.
MAX_FIELDS_CHARS = 4096

_RETRY_AFTER = "retry-after"
_RATELIMIT = "ratelimit"
_RATELIMIT_POLICY = "ratelimit-policy"
_RATELIMIT_RESET = "ratelimit-reset"
_RATELIMIT_REMAINING = "ratelimit-remaining"
_X_RESET = "x-ratelimit-reset"
_X_RESET_AFTER = "x-ratelimit-reset-after"
_X_REMAINING = "x-ratelimit-remaining"
_WANTED = frozenset(
    {
        _RETRY_AFTER,
        _RATELIMIT,
        _RATELIMIT_POLICY,
        _RATELIMIT_RESET,
        _RATELIMIT_REMAINING,
        _X_RESET,
        _X_RESET_AFTER,
        _X_REMAINING,
    }
)
# Attribute names a response's status goes by (requests/httpx/starlette/werkzeug,
# aiohttp/urllib3/http.client, urllib.error.HTTPError), in order of preference:
# werkzeug's `status` is a string such as "429 TOO MANY REQUESTS".
_STATUS_ATTRIBUTES = ("status_code", "status", "code")

_MISSING = object()

# delta-seconds is 1*DIGIT; a fraction is accepted because rounding it away
# would retry before the server asked. ASCII only: str.isdigit and float()
# accept other scripts' digits, which HTTP does not.
_SECONDS = re.compile(r"[0-9]+(?:\.[0-9]+)?", re.ASCII)
_STATUS_TEXT = re.compile(r"([1-9][0-9]{2})(?:[ \t]|$)", re.ASCII)

_DAY = r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)"
_MONTH = r"(?P<month>Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"
_TIME = r"(?P<hour>[0-9]{2}):(?P<minute>[0-9]{2}):(?P<second>[0-9]{2})"
_HTTP_DATES = tuple(
    re.compile(pattern, re.ASCII | re.IGNORECASE)
    for pattern in (
        # IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT (RFC 1123 also allowed a 1-digit day).
        rf"{_DAY},[ ]+(?P<day>[0-9]{{1,2}})[ ]+{_MONTH}[ ]+(?P<year>[0-9]{{4}})[ ]+{_TIME}[ ]+GMT",
        # rfc850-date (obsolete): Sunday, 06-Nov-94 08:49:37 GMT
        rf"(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday),[ ]+"
        rf"(?P<day>[0-9]{{2}})-{_MONTH}-(?P<year>[0-9]{{2}})[ ]+{_TIME}[ ]+GMT",
        # asctime-date (obsolete): Sun Nov  6 08:49:37 1994
        rf"{_DAY}[ ]+{_MONTH}[ ]+(?P<day>[0-9]{{1,2}})[ ]+{_TIME}[ ]+(?P<year>[0-9]{{4}})",
    )
)
_MONTHS = {
    name: number
    for number, name in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"),
        start=1,
    )
}
# Where a library joined repeated Retry-After dates with commas: the commas
# before a day name (a date holds a comma of its own, after its day name).
_DATE_LIST = re.compile(rf",[ \t]*(?={_DAY})", re.ASCII | re.IGNORECASE)


class ServerWait(NamedTuple):
    """What the server asked for, and why it was not read when it was not.

    Attributes:
        seconds: The wait, as `server_delay` returns it, or None.
        ignored: Why the response's wait fields were ignored (over the
            MAX_FIELDS_CHARS budget), or None when they were read.
    """

    seconds: float | None
    ignored: str | None = None


def server_delay(
    outcome: object, *, cap: float | timedelta = 300.0, now: datetime | None = None
) -> float | None:
    """Seconds the server asked the client to wait, or None if it said nothing usable.

    Reads the response found on `outcome` (see `http_status`): `Retry-After`,
    then the IETF `RateLimit` fields, then `X-RateLimit-Reset-After` and
    `X-RateLimit-Reset`; the first that yields a wait wins (the module's
    docstring has the details). Header names are matched case-insensitively in
    any container: a dict, a list of (name, value) pairs, email.message.Message,
    requests' CaseInsensitiveDict, httpx.Headers, aiohttp's CIMultiDictProxy,
    urllib3's HTTPHeaderDict. A header sent more than once counts as the
    longest wait among its values. Malformed values are skipped, never raised.

    Args:
        outcome: What the attempt produced: an exception or a returned value.
        cap: The longest wait returned, seconds > 0 (float or timedelta);
            longer waits are shortened to it.
        now: The current time, an aware datetime, for HTTP-dates and epoch
            timestamps; default `datetime.now(timezone.utc)`.

    Returns:
        A wait in [0, cap] seconds (0.0 when the server's time has passed), or
        None (also when the wait fields are over the MAX_FIELDS_CHARS budget:
        `server_wait` says so).

    Raises:
        ValueError, TypeError: If `cap` is not a finite duration > 0 or `now`
            is not an aware datetime.
    """
    return server_wait(outcome, cap=cap, now=now).seconds


def server_wait(outcome: object, *, cap: float | timedelta = 300.0, now: datetime | None = None) -> ServerWait:
    """`server_delay`, and why the server's wait fields were ignored when they were.

    Arguments, checks and the wait as for `server_delay`; `ignored` names the
    budget a response went over (MAX_FIELDS_CHARS characters of wait fields in
    all), in which case the wait is None.
    """
    limit = _config.positive_duration(cap, "cap")
    if now is None:
        now = datetime.now(timezone.utc)
    elif not isinstance(now, datetime):
        raise TypeError(f"now must be an aware datetime or None, got {type(now).__name__}")
    elif now.utcoffset() is None:
        raise ValueError(f"now must be an aware datetime (with a tzinfo), got naive {now!r}")
    response = _response(outcome)
    if response is None:
        return ServerWait(None)
    fields = _fields(_attribute(response, "headers"))
    if fields is None:
        return ServerWait(None, f"the server's wait fields (Retry-After, RateLimit, X-RateLimit-*) hold over "
                                f"{MAX_FIELDS_CHARS} characters in all: ignored")  # fmt: skip
    if not fields:
        return ServerWait(None)
    wait = _wait(fields, now)
    if wait is None:
        return ServerWait(None)
    # Normalises -0.0 and keeps the result a float in [0, cap].
    return ServerWait(0.0 if wait <= 0 else min(wait, limit))


def http_status(outcome: object) -> int | None:
    """The HTTP status code of the response found on `outcome`, or None.

    The response is `outcome` itself when it has `headers` and a status
    (`status_code`, `status` or `code`): requests, httpx, aiohttp, urllib3,
    http.client, starlette and werkzeug responses, urllib.error.HTTPError,
    aiohttp.ClientResponseError. Otherwise it is `outcome.response` when that
    has them: requests.HTTPError, httpx.HTTPStatusError. Never raises.

    Args:
        outcome: What the attempt produced: an exception or a returned value.

    Returns:
        A three-digit status code (100-999), or None if none was found.
    """
    # The common case first, cheaply: a response with a plain int `status_code` (httpx,
    # requests) - the answer the general walk below would give.
    try:
        status = outcome.status_code  # type: ignore[attr-defined]
        if type(status) is int and 100 <= status <= 999 and hasattr(outcome, "headers"):
            return status
    except Exception:
        pass
    response = _response(outcome)
    if response is None:
        return None
    for name in _STATUS_ATTRIBUTES:
        status = status_number(_attribute(response, name), 999)
        if status is not None:
            return status
    return None


def status_number(value: object, highest: int, *, text: bool = True) -> int | None:
    """An HTTP status from 100 to `highest` as a plain int, from an int or (with `text`) a
    str such as "429 TOO MANY REQUESTS"; else None.

    Never raises: `value` may be anything a response holds, including objects
    that only claim to be ints or strs (a Mock(spec=int)) and int or str
    subclasses whose methods raise; only int's and str's own code runs on it.
    """
    try:
        if isinstance(value, int) and not isinstance(value, bool):
            number = int.__index__(value)  # a plain int, also from http.HTTPStatus
            return number if 100 <= number <= highest else None
        if text and isinstance(value, str):
            match = _STATUS_TEXT.match(str.__str__(value))
            return int(match[1]) if match is not None and int(match[1]) <= highest else None
    except Exception:  # isinstance itself may raise, through a hostile __class__
        pass
    return None


# Finding the response and its headers: duck typing over objects we do not own,
# so every access is guarded (a property may raise, a mock has every attribute).


def _attribute(obj: object, name: str) -> object:
    try:
        return getattr(obj, name)
    except Exception:
        return _MISSING


def _is_response(obj: object) -> bool:
    if obj is None or _attribute(obj, "headers") is _MISSING:
        return False
    return any(_attribute(obj, name) is not _MISSING for name in _STATUS_ATTRIBUTES)


def _response(outcome: object) -> object | None:
    if _is_response(outcome):
        return outcome
    inner = _attribute(outcome, "response")
    return inner if _is_response(inner) else None


def _fields(headers: object) -> dict[str, list[str]] | None:
    """The values of the fields this module reads, by lowercase name, in order;
    None when their lines hold more than MAX_FIELDS_CHARS characters in all."""
    found: dict[str, list[str]] = {}
    if headers is None:
        return found
    spent = 0
    try:
        # httpx.Headers.items() joins repeated fields; multi_items() keeps them apart.
        items = _attribute(headers, "multi_items")
        if not callable(items):
            items = _attribute(headers, "items")
        # Not iterable (a mock, say) raises TypeError below, which ends the reading.
        pairs = cast("Iterable[tuple[object, object]]", items() if callable(items) else headers)
        for pair in pairs:
            try:
                raw_name, raw_value = pair
            except Exception:  # not a pair, or one whose iteration raises
                continue
            name = _text(raw_name)
            if name is None or not name.isascii():
                continue
            name = name.strip(" \t").lower()
            if name not in _WANTED:
                continue
            value = _text(raw_value)
            # A line too long to read counts as much as the longest read: skipped, it costs nothing more.
            spent += len(name) + (0 if value is None else min(len(value), _MAX_FIELD_CHARS))
            if spent > MAX_FIELDS_CHARS:
                return None  # read no further: the cost stays bounded whatever was sent
            if value is not None and len(value) <= _MAX_FIELD_CHARS:
                found.setdefault(name, []).append(value.strip(" \t"))
    except Exception:
        # A container that cannot be read (a mock, a closed response) says
        # nothing more; what was read before it failed still counts.
        pass
    return found


def _text(value: object) -> str | None:
    """A field name or value as an exact str, or None; never raises.

    Only str's, bytes', int's and float's own code runs on `value`: their
    subclasses may override methods, and other objects may claim to be them.
    """
    try:
        if isinstance(value, str):
            return str.__str__(value)
        if isinstance(value, (bytes, bytearray, memoryview)):
            # Field values are octets; latin-1 maps each to one character, never fails.
            return bytes(memoryview(value)).decode("latin-1")
        # Numbers in a dict built by hand: {"Retry-After": 30}.
        if isinstance(value, int) and not isinstance(value, bool):
            return int.__repr__(int.__index__(value))
        if isinstance(value, float):
            number = float.__float__(value)
            # Never an exponent, which no header grammar has.
            return format(number, "f") if math.isfinite(number) else None
    except Exception:  # isinstance itself may raise, through a hostile __class__
        pass
    return None


# Reading the waits.


def _wait(fields: dict[str, list[str]], now: datetime) -> float | None:
    """The first usable wait in precedence order, uncapped, or None."""
    retry_after = fields.get(_RETRY_AFTER)
    if retry_after:
        wait = _retry_after(retry_after, now)
        if wait is not None:
            return wait
    ratelimit = fields.get(_RATELIMIT)
    if ratelimit:
        wait = _ratelimit(ratelimit, fields.get(_RATELIMIT_POLICY, []))
        if wait is not None:
            return wait
    wait = _reset(fields, _RATELIMIT_REMAINING, ((_RATELIMIT_RESET, True),), now)
    if wait is not None:
        return wait
    # Reset-After first: a delta does not depend on the two clocks agreeing.
    return _reset(fields, _X_REMAINING, ((_X_RESET_AFTER, False), (_X_RESET, True)), now)


def _retry_after(values: list[str], now: datetime) -> float | None:
    waits: list[float] = []
    for value in values:
        wait = _retry_after_value(value, now)
        if wait is not None:
            waits.append(wait)
            continue
        # Repeated fields joined with commas by a library ("120, 120"): split
        # dates before their day names, and seconds at every comma; pieces
        # that are neither ("Sun", "06 Nov 1994 ...") parse as nothing.
        for piece in _DATE_LIST.split(value) + value.split(","):
            wait = _retry_after_value(piece.strip(" \t"), now)
            if wait is not None:
                waits.append(wait)
    return max(waits, default=None)


def _retry_after_value(text: str, now: datetime) -> float | None:
    seconds = _seconds(text)
    if seconds is not None:
        return seconds
    date = _http_date(text, now)
    return None if date is None else max(0.0, (date - now).total_seconds())


def _seconds(text: str) -> float | None:
    """A non-negative decimal number of seconds, or None."""
    if not _SECONDS.fullmatch(text):
        return None
    # Hundreds of digits overflow to inf, which the cap then bounds: a server
    # asking for a very long wait still gets the longest wait allowed.
    return float(text)


def _http_date(text: str, now: datetime) -> datetime | None:
    """An HTTP-date (RFC 9110 section 5.6.7) as an aware UTC datetime, or None."""
    for pattern in _HTTP_DATES:
        match = pattern.fullmatch(text)
        if match:
            break
    else:
        return None
    year = int(match["year"])
    if len(match["year"]) == 2:
        # RFC 9110: a two-digit year more than 50 years ahead is in the past century.
        year += now.year // 100 * 100
        if year > now.year + 50:
            year -= 100
    second = int(match["second"])
    if second > 60:
        return None
    try:
        date = datetime(
            year,
            _MONTHS[match["month"].lower()],
            int(match["day"]),
            int(match["hour"]),
            int(match["minute"]),
            min(second, 59),
            tzinfo=timezone.utc,
        )
    except ValueError:  # 31 Feb, hour 25, year 0
        return None
    if second == 60:  # a leap second: the instant after 59
        try:
            return date + timedelta(seconds=1)
        except OverflowError:  # 31 Dec 9999 23:59:60: as far as a datetime goes
            return date
    return date


def _numbers(values: list[str]) -> list[float]:
    """The non-negative numbers among the comma-separated members of values."""
    numbers: list[float] = []
    for value in values:
        for member in value.split(","):
            number = _seconds(member.strip(" \t"))
            if number is not None:
                numbers.append(number)
    return numbers


def _reset(
    fields: dict[str, list[str]],
    remaining_name: str,
    resets: Iterable[tuple[str, bool]],
    now: datetime,
) -> float | None:
    """The first reset found, unless the remaining quota is above 0.

    Args:
        fields: The response's fields by lowercase name.
        remaining_name: The field counting the quota left.
        resets: (field name, whether a value above 10^9 is an epoch timestamp).
        now: The current time.
    """
    # An unreadable remaining count is treated as absent: the server sent a
    # reset, and waiting for it is the safe reading.
    remaining = _numbers(fields.get(remaining_name, []))
    if remaining and min(remaining) > 0:
        return None
    for name, may_be_epoch in resets:
        values = _numbers(fields.get(name, []))
        if not values:
            continue
        reset = max(values)
        if may_be_epoch and reset > _EPOCH_THRESHOLD:
            return max(0.0, reset - now.timestamp())
        return reset
    return None


def _ratelimit(values: list[str], policies: list[str]) -> float | None:
    """The wait the IETF RateLimit field asks for, or None.

    Drafts 08 and later: a List of service-limit Items, `"name";r=<remaining>;
    t=<seconds>`; an exhausted item (r = 0, or r absent) asks for its t, or,
    without t, for its policy's window w. Draft 07: a Dictionary `limit=10,
    remaining=0, reset=30`. Several exhausted policies: the longest wait, since
    all of them must reset before a request passes.
    """
    text = ", ".join(values)  # RFC 9651 section 4.2: repeated lines form one list
    items = StructuredField(text).parse_list()
    if items is None:
        return _ratelimit_draft07(text)
    waits: list[float] = []
    windows: dict[str, float] | None = None
    for name, params in items:
        remaining = params.get("r")
        if remaining is not None and _count(remaining) != 0:
            continue  # quota left, or an unreadable count: this item asks for no wait
        reset = params.get("t")
        if reset is not None:
            seconds = _count(reset)
            if seconds is not None:
                waits.append(seconds)
            continue
        if isinstance(name, str):
            if windows is None:
                windows = _policy_windows(policies)
            window = windows.get(name)
            if window is not None:
                waits.append(window)
    return max(waits, default=None)


def _ratelimit_draft07(text: str) -> float | None:
    members = StructuredField(text).parse_dictionary()
    if members is None:
        return None
    remaining = members.get("remaining")
    if remaining is not None and _count(remaining[0]) != 0:
        return None
    reset = members.get("reset")
    return None if reset is None else _count(reset[0])


def _policy_windows(values: list[str]) -> dict[str, float]:
    """Policy name -> window w (seconds > 0) from RateLimit-Policy, drafts 08+."""
    windows: dict[str, float] = {}
    for name, params in StructuredField(", ".join(values)).parse_list() or []:
        window = _count(params.get("w"))
        if isinstance(name, str) and window is not None and window > 0:
            windows[name] = window
    return windows


def _count(value: object) -> float | None:
    """A structured-field Integer or Decimal >= 0 as a float, or None."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
        return float(value)
    return None
