"""Server pushback: Retry-After, the IETF RateLimit fields and X-RateLimit-*, read from any response.

The HTTP libraries are not dependencies: their responses, header containers
and exceptions are stood in for by small fakes of the same shape (the
attributes and methods `server_delay` touches), next to the stdlib's real ones.
"""

from __future__ import annotations

import email.message
import http.client
import io
import math
import re
import urllib.error
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from http import HTTPStatus
from types import SimpleNamespace
from typing import Any, SupportsIndex
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from brace.classify import ErrorClassifier
from brace.pushback import MAX_FIELDS_CHARS, ServerWait, http_status, server_delay, server_wait

NOW = datetime(2026, 5, 1, 12, 0, 0, tzinfo=timezone.utc)
EPOCH = NOW.timestamp()

Pairs = list[tuple[str, str]]


def at(seconds: float) -> datetime:
    return NOW + timedelta(seconds=seconds)


def imf(when: datetime) -> str:
    """IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT."""
    return format_datetime(when, usegmt=True)


def rfc850(when: datetime) -> str:
    """The obsolete RFC 850 format: Sunday, 06-Nov-94 08:49:37 GMT."""
    return when.strftime("%A, %d-%b-%y %H:%M:%S GMT")


def asctime(when: datetime) -> str:
    """The obsolete asctime format: Sun Nov  6 08:49:37 1994 (day padded with a space)."""
    return when.strftime("%a %b ") + f"{when.day:>2}" + when.strftime(" %H:%M:%S %Y")


# -- fakes shaped like the libraries' objects ---------------------------------------------------


class CaseInsensitiveDict(MutableMapping[str, str]):
    """requests.structures.CaseInsensitiveDict: keeps the last key's case, looks up any case."""

    def __init__(self, pairs: Pairs = ()) -> None:  # type: ignore[assignment]
        self._store: dict[str, tuple[str, str]] = {}
        for name, value in pairs:
            # urllib3 (under requests) joins a repeated field with ", ".
            old = self._store.get(name.lower())
            self[name] = value if old is None else f"{old[1]}, {value}"

    def __setitem__(self, key: str, value: str) -> None:
        self._store[key.lower()] = (key, value)

    def __getitem__(self, key: str) -> str:
        return self._store[key.lower()][1]

    def __delitem__(self, key: str) -> None:
        del self._store[key.lower()]

    def __iter__(self) -> Iterator[str]:
        return (key for key, _ in self._store.values())

    def __len__(self) -> int:
        return len(self._store)


class HttpxHeaders:
    """httpx.Headers: items() joins repeated fields, multi_items() keeps them apart."""

    def __init__(self, pairs: Pairs) -> None:
        self._list = [(n.lower(), v) for n, v in pairs]

    def multi_items(self) -> list[tuple[str, str]]:
        return list(self._list)

    def items(self) -> list[tuple[str, str]]:
        joined: dict[str, list[str]] = {}
        for name, value in self._list:
            joined.setdefault(name, []).append(value)
        return [(name, ", ".join(values)) for name, values in joined.items()]

    def __iter__(self) -> Iterator[str]:
        return iter(dict(self.items()))


class istr(str):  # noqa: N801 - multidict's name
    """multidict.istr: a str subclass for case-insensitive keys."""

    __slots__ = ()

    def lower(self) -> str:  # a subclass may override anything: server_delay must not rely on it
        raise RuntimeError("istr.lower() must not be called")


class CIMultiDictProxy(Mapping[str, str]):
    """aiohttp's CIMultiDictProxy: items() yields every field, repeated ones included."""

    def __init__(self, pairs: Pairs) -> None:
        self._pairs = [(istr(n), v) for n, v in pairs]

    def __getitem__(self, key: str) -> str:
        for name, value in self._pairs:
            if str.lower(name) == key.lower():
                return value
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return (name for name, _ in self._pairs)

    def __len__(self) -> int:
        return len(self._pairs)

    def items(self) -> list[tuple[str, str]]:  # type: ignore[override]
        return list(self._pairs)


class HTTPHeaderDict(CIMultiDictProxy):
    """urllib3 2.x HTTPHeaderDict: items() yields each repeated field separately."""


class WerkzeugHeaders:
    """werkzeug.datastructures.Headers: iterating it yields (name, value) tuples."""

    def __init__(self, pairs: Pairs) -> None:
        self._list = list(pairs)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._list)

    def items(self, lower: bool = False) -> Iterator[tuple[str, str]]:
        return ((n.lower() if lower else n, v) for n, v in self._list)


class StarletteHeaders(Mapping[str, str]):
    """starlette.datastructures.Headers: built from raw latin-1 bytes, lowercase names."""

    def __init__(self, pairs: Pairs) -> None:
        self.raw = [(n.lower().encode("latin-1"), v.encode("latin-1")) for n, v in pairs]

    def __getitem__(self, key: str) -> str:
        for name, value in self.raw:
            if name == key.lower().encode("latin-1"):
                return value.decode("latin-1")
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return (name.decode("latin-1") for name, _ in self.raw)

    def __len__(self) -> int:
        return len(self.raw)

    def items(self) -> list[tuple[str, str]]:  # type: ignore[override]
        return [(n.decode("latin-1"), v.decode("latin-1")) for n, v in self.raw]


class RequestsResponse:
    def __init__(self, status_code: int, headers: Pairs) -> None:
        self.status_code = status_code
        self.headers = CaseInsensitiveDict(headers)
        self.reason = "Too Many Requests"


class RequestsHTTPError(OSError):
    """requests.HTTPError: response and request are keyword arguments, both may be None."""

    def __init__(self, *args: object, response: object = None, request: object = None) -> None:
        super().__init__(*args)
        self.response = response
        self.request = request


class HttpxResponse:
    def __init__(self, status_code: int, headers: Pairs) -> None:
        self.status_code = status_code
        self.headers = HttpxHeaders(headers)


class HttpxHTTPStatusError(Exception):
    def __init__(self, message: str, *, request: object, response: HttpxResponse) -> None:
        super().__init__(message)
        self.request = request
        self.response = response


class HttpxConnectError(Exception):
    """httpx.RequestError: `.request` raises when unset, and there is no response."""

    @property
    def request(self) -> object:
        raise RuntimeError("The .request property has not been set.")


class AiohttpClientResponse:
    def __init__(self, status: int, headers: Pairs) -> None:
        self.status = status
        self.headers = CIMultiDictProxy(headers)


class AiohttpClientResponseError(Exception):
    """aiohttp.ClientResponseError: status and headers of its own (headers may be None)."""

    def __init__(self, status: int = 0, headers: Pairs | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.headers = None if headers is None else CIMultiDictProxy(headers)
        self.message = ""


class Urllib3HTTPResponse:
    def __init__(self, status: int, headers: Pairs) -> None:
        self.status = status
        self.headers = HTTPHeaderDict(headers)


class WerkzeugResponse:
    def __init__(self, status_code: int, headers: Pairs) -> None:
        self.status_code = status_code
        self.status = f"{status_code} {HTTPStatus(status_code).phrase.upper()}"
        self.headers = WerkzeugHeaders(headers)


class StarletteResponse:
    def __init__(self, status_code: int, headers: Pairs) -> None:
        self.status_code = status_code
        self._pairs = headers

    @property
    def headers(self) -> StarletteHeaders:
        return StarletteHeaders(self._pairs)


def http_message(pairs: Pairs) -> http.client.HTTPMessage:
    raw = "".join(f"{name}: {value}\r\n" for name, value in pairs) + "\r\n"
    return http.client.parse_headers(io.BytesIO(raw.encode("latin-1")))


def email_message(pairs: Pairs) -> email.message.Message:
    message = email.message.Message()
    for name, value in pairs:
        message[name] = value
    return message


class _Socket:
    def __init__(self, data: bytes) -> None:
        self._data = data

    def makefile(self, mode: str) -> io.BytesIO:
        return io.BytesIO(self._data)


def http_client_response(status: int, pairs: Pairs) -> http.client.HTTPResponse:
    """A real http.client.HTTPResponse, read from bytes instead of a socket."""
    head = f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in pairs)
    head += "Content-Length: 0\r\n\r\n"
    response = http.client.HTTPResponse(_Socket(head.encode("latin-1")))  # type: ignore[arg-type]
    response.begin()
    return response


def urllib_http_error(status: int, pairs: Pairs) -> urllib.error.HTTPError:
    return urllib.error.HTTPError(
        "https://api.example/", status, "error", http_message(pairs), None
    )


# Header containers, each taking [(name, value), ...].
CONTAINERS: dict[str, Callable[[Pairs], object]] = {
    "dict": dict,
    "list of pairs": list,
    "tuple of byte pairs": lambda pairs: tuple((n.encode(), v.encode()) for n, v in pairs),
    "email.message.Message": email_message,
    "http.client.HTTPMessage": http_message,
    "requests CaseInsensitiveDict": CaseInsensitiveDict,
    "httpx.Headers": HttpxHeaders,
    "aiohttp CIMultiDictProxy": CIMultiDictProxy,
    "urllib3 HTTPHeaderDict": HTTPHeaderDict,
    "werkzeug Headers": WerkzeugHeaders,
    "starlette Headers": StarletteHeaders,
}

# Outcomes an attempt may produce, each carrying status 429 and the given headers.
OUTCOMES: dict[str, Callable[[Pairs], object]] = {
    "requests.Response": lambda h: RequestsResponse(429, h),
    "requests.HTTPError": lambda h: RequestsHTTPError("429", response=RequestsResponse(429, h)),
    "httpx.Response": lambda h: HttpxResponse(429, h),
    "httpx.HTTPStatusError": lambda h: HttpxHTTPStatusError(
        "429", request=object(), response=HttpxResponse(429, h)
    ),
    "aiohttp.ClientResponse": lambda h: AiohttpClientResponse(429, h),
    "aiohttp.ClientResponseError": lambda h: AiohttpClientResponseError(429, h),
    "urllib3.HTTPResponse": lambda h: Urllib3HTTPResponse(429, h),
    "werkzeug Response": lambda h: WerkzeugResponse(429, h),
    "starlette Response": lambda h: StarletteResponse(429, h),
    "http.client.HTTPResponse": lambda h: http_client_response(429, h),
    "urllib.error.HTTPError": lambda h: urllib_http_error(429, h),
}


def response(headers: object, status: int = 429) -> SimpleNamespace:
    return SimpleNamespace(status_code=status, headers=headers)


def delay(headers: Pairs | dict[str, str], **kwargs: Any) -> float | None:
    pairs = list(headers.items()) if isinstance(headers, dict) else headers
    kwargs.setdefault("now", NOW)
    return server_delay(response(pairs), **kwargs)


# -- Retry-After --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        ("0", 0.0),
        ("  30\t", 30.0),
        ("007", 7.0),
        ("1.5", 1.5),  # not delta-seconds, but unambiguous: rounding it would retry too early
        ("300", 300.0),
        ("301", 300.0),
        ("86400", 300.0),
        ("9" * 40, 300.0),
        ("9" * 500, 300.0),  # overflows a float to inf: still the longest wait allowed
        (imf(at(90)), 90.0),
        (rfc850(at(90)), 90.0),
        (asctime(at(90)), 90.0),
        (asctime(datetime(2026, 5, 1, 12, 1, 30, tzinfo=timezone.utc)), 90.0),  # "May  1"
        ("Fri May 1 12:01:30 2026", 90.0),  # one space before a one-digit day
        ("Fri, 1 May 2026 12:01:30 GMT", 90.0),  # RFC 1123 allowed a one-digit day
        ("fri, 01 may 2026 12:01:30 gmt", 90.0),  # names in any case
        ("Friday, 01-May-26 12:01:30 GMT", 90.0),
        ("Mon, 01 May 2026 12:01:30 GMT", 90.0),  # the weekday is not checked (a Friday)
        (imf(at(0)), 0.0),
        (imf(at(-1)), 0.0),  # a date in the past means now
        ("Sun, 06 Nov 1994 08:49:37 GMT", 0.0),
        ("Sunday, 06-Nov-94 08:49:37 GMT", 0.0),  # 94 is 1994: 2094 is over 50 years ahead
        ("Sun Nov  6 08:49:37 1994", 0.0),
        ("Thursday, 01-Jan-70 00:00:00 GMT", 300.0),  # 2070: 44 years ahead, not 1970
        ("Thursday, 01-Jan-77 00:00:00 GMT", 0.0),  # 1977: 2077 is over 50 years ahead
        (imf(at(10_000)), 300.0),
        ("Wed, 31 Dec 9999 23:59:59 GMT", 300.0),
        ("Fri, 01 May 2026 12:00:60 GMT", 60.0),  # a leap second ends at the next minute
        ("120, 120", 120.0),  # a repeated field joined by a library
        ("120, 60", 120.0),  # disagreeing repeats: the longest wait
        (f"{imf(at(30))}, {imf(at(60))}", 60.0),
        (f"{imf(at(30))}, {rfc850(at(45))}", 45.0),
    ],
)
def test_retry_after(value: str, expected: float) -> None:
    assert delay({"Retry-After": value}) == expected


def test_a_two_digit_year_within_50_years_is_ahead() -> None:
    # RFC 9110: only a year more than 50 years ahead is taken from the past century.
    assert delay({"Retry-After": "Monday, 01-Jan-35 00:00:00 GMT"}) == 300.0
    assert delay({"Retry-After": "Monday, 01-Jan-35 00:00:00 GMT"}, cap=1e9) == pytest.approx(
        (datetime(2035, 1, 1, tzinfo=timezone.utc) - NOW).total_seconds()
    )


MALFORMED = [
    "",
    " ",
    "-1",
    "-0",
    "+5",
    "abc",
    "nan",
    "NaN",
    "inf",
    "-inf",
    "Infinity",
    "1e3",
    "0x10",
    "1_000",
    "١٢٣",  # Arabic-Indic digits: float() takes them, HTTP does not
    "１２",  # fullwidth digits
    "12 s",
    "12s",
    ".5",
    "5.",
    "1.2.3",
    "\x00",
    "1\r\n2",
    "9" * 2000,  # absurdly long
    "1" * 100_000,
    "Sun, 32 Nov 1994 08:49:37 GMT",
    "Sun, 06 Foo 1994 08:49:37 GMT",
    "Sun, 06 Nov 1994 25:00:00 GMT",
    "Sun, 06 Nov 1994 08:60:00 GMT",
    "Sun, 06 Nov 1994 08:49:61 GMT",
    "Sun, 06 Nov 1994 08:49:37 PST",
    "Sun, 06 Nov 1994 08:49:37",
    "Sun, 06 Nov 94 08:49:37 GMT",
    "Fri, 29 Feb 2026 00:00:00 GMT",  # 2026 is not a leap year
    "Sun, 06 Nov 0000 08:49:37 GMT",  # no year 0
    "Xyz, 06 Nov 1994 08:49:37 GMT",
    "Sunday, 06-Nov-1994 08:49:37 GMT",
    "Sun Nov  6 08:49:37",
    "2026-05-01T12:01:30Z",
    "1714564890",  # 10 digits but still delta-seconds: capped (checked below), not an epoch
]


@pytest.mark.parametrize("value", MALFORMED[:-1])
def test_malformed_retry_after_is_ignored(value: str) -> None:
    assert delay({"Retry-After": value}) is None


@pytest.mark.parametrize("value", MALFORMED[:-1])
def test_malformed_retry_after_falls_through_to_the_next_header(value: str) -> None:
    assert delay({"Retry-After": value, "X-RateLimit-Reset": "42"}) == 42.0


def test_retry_after_is_never_an_epoch() -> None:
    assert delay({"Retry-After": MALFORMED[-1]}) == 300.0


# -- RateLimit (IETF draft) ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        # Drafts 08+: a List of service-limit items with r (remaining) and t (seconds).
        ([("RateLimit", '"default";r=0;t=30')], 30.0),
        (
            [("RateLimit", '"default";r=0;t=30'), ("RateLimit-Policy", '"default";q=100;w=60')],
            30.0,
        ),
        ([("RateLimit", "default;r=0;t=30")], 30.0),  # a token for a name (draft 08)
        ([("RateLimit", '"default";t=30')], 30.0),  # r absent
        ([("RateLimit", '"default";r=0;t=0')], 0.0),
        ([("RateLimit", '"default";r=0;t=2.5')], 2.5),  # a Decimal
        ([("RateLimit", '"default";r=0;t=3000')], 300.0),
        ([("RateLimit", '"default";r=0;t=30;pk=:cHsdsRa894==:')], 30.0),
        ([("RateLimit", '"default"; r=0; t=30')], 30.0),  # spaces after ";" are allowed
        ([("RateLimit", '"default";r=1;t=30')], None),  # quota left: nothing to wait for
        ([("RateLimit", '"default";r=999;pk=:dHJpYWwxMjEzMjM=:')], None),
        ([("RateLimit", '"permin";r=5;t=10, "perhr";r=0;t=40')], 40.0),
        ([("RateLimit", '"a";r=0;t=10,"b";r=0;t=40')], 40.0),  # all exhausted: the longest
        ([("RateLimit", '"a";r=5;t=10'), ("RateLimit", '"b";r=0;t=40')], 40.0),  # split lines
        ([("RateLimit", '"a";r=0;t=10;comment="x, y"')], 10.0),
        ([("RateLimit", '"default";r=0;acme-burst=?1;t=12')], 12.0),
        # Exhausted without t: the policy's window w is the longest it can take.
        (
            [("RateLimit", '"default";r=0'), ("RateLimit-Policy", '"default";q=100;w=60')],
            60.0,
        ),
        (
            [
                ("RateLimit", '"daily";r=0'),
                ("RateLimit-Policy", '"burst";q=100;w=60,"daily";q=1000;w=86400'),
            ],
            300.0,
        ),
        ([("RateLimit", '"default";r=0'), ("RateLimit-Policy", '"other";q=100;w=60')], None),
        ([("RateLimit", '"default";r=0'), ("RateLimit-Policy", '"default";q=100')], None),
        ([("RateLimit", '"default";r=0'), ("RateLimit-Policy", '"default";q=1;w=0')], None),
        ([("RateLimit", '"default";r=0')], None),
        ([("RateLimit", '("a" "b");x=1, "d";r=0;t=9')], 9.0),  # an inner list is skipped
        ([("RateLimit", '( "a" );x=1,"d";r=0;t=9')], 9.0),
        ([("RateLimit", '();x=1,"d";r=0;t=9')], 9.0),
        # Draft 07: a Dictionary.
        ([("RateLimit", "limit=10, remaining=0, reset=7")], 7.0),
        ([("RateLimit", "limit=10, reset=7")], 7.0),
        ([("RateLimit", "limit=10,remaining=0,reset=7"), ("RateLimit-Policy", "10;w=1")], 7.0),
        ([("RateLimit", "limit=10, remaining=3, reset=7")], None),
        ([("RateLimit", "limit=10, remaining=0")], None),
        # Drafts 00-06: separate fields.
        ([("RateLimit-Reset", "30"), ("RateLimit-Remaining", "0")], 30.0),
        ([("RateLimit-Limit", "100"), ("RateLimit-Reset", "30")], 30.0),
        ([("RateLimit-Reset", "30"), ("RateLimit-Remaining", "2")], None),
        ([("RateLimit-Reset", str(EPOCH + 20)), ("RateLimit-Remaining", "0")], 20.0),
        # Malformed structured fields are ignored as a whole (RFC 9651).
        ([("RateLimit", '"default";r=0;t=30,')], None),
        ([("RateLimit", '"default;r=0;t=30')], None),
        ([("RateLimit", '"default";R=0;T=30')], None),
        ([("RateLimit", '"default";r=0;t=-5')], None),
        ([("RateLimit", '"default";r=-1;t=5')], None),
        ([("RateLimit", '"default";r=0;t="30"')], None),
        ([("RateLimit", '"default";r=?0;t=30')], None),
        ([("RateLimit", '"default";r=0;t=1234567890123456')], None),  # 16 digits
        ([("RateLimit", '"default";r=0;t=1.2345')], None),
        ([("RateLimit", '"default";r=0;t=1234567890123.5')], None),  # 13 integer digits
        ([("RateLimit", '("a""b"), "d";r=0;t=9')], None),
        ([("RateLimit", '("a" "b", "d";r=0;t=9')], None),
        ([("RateLimit", '"default";r=0;t=30 "other"')], None),
        ([("RateLimit", "limit=10, remaining=0, reset=-7")], None),
        ([("RateLimit", "r=0;t=30;" * 200)], None),
        ([("RateLimit", "")], None),
    ],
)
def test_ratelimit(headers: Pairs, expected: float | None) -> None:
    assert delay(headers) == expected


# -- X-RateLimit-* --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"X-RateLimit-Reset": str(int(EPOCH) + 42), "X-RateLimit-Remaining": "0"}, 42.0),
        ({"X-RateLimit-Reset": str(int(EPOCH) + 42)}, 42.0),
        ({"X-RateLimit-Reset": f"{EPOCH + 0.25:.3f}"}, 0.25),  # Discord sends fractions
        ({"X-RateLimit-Reset": str(int(EPOCH) - 42)}, 0.0),  # already reset
        ({"X-RateLimit-Reset": str(int(EPOCH) + 4200)}, 300.0),
        ({"X-RateLimit-Reset": "42"}, 42.0),  # small: a delta
        ({"X-RateLimit-Reset": "1000000000"}, 300.0),  # 10^9 itself is still a delta
        ({"X-RateLimit-Reset": "1000000001"}, 0.0),  # above: an epoch (2001)
        ({"X-RateLimit-Reset": str(int(EPOCH) + 42), "X-RateLimit-Remaining": "4999"}, None),
        ({"X-RateLimit-Reset": "42", "X-RateLimit-Remaining": "1"}, None),
        ({"X-RateLimit-Reset": "42", "X-RateLimit-Remaining": "0.5"}, None),
        ({"X-RateLimit-Reset": "42", "X-RateLimit-Remaining": "abc"}, 42.0),  # read as absent
        ({"X-RateLimit-Reset": "42", "X-RateLimit-Remaining": "-1"}, 42.0),
        ({"X-RateLimit-Reset": "42", "X-RateLimit-Remaining": "5, 0"}, 42.0),
        ({"X-RateLimit-Reset-After": "1.5"}, 1.5),
        ({"X-RateLimit-Reset-After": "64.57", "X-RateLimit-Remaining": "0"}, 64.57),
        ({"X-RateLimit-Reset-After": "1.5", "X-RateLimit-Remaining": "3"}, None),
        ({"X-RateLimit-Reset-After": "2000000000"}, 300.0),  # never an epoch
        ({"X-RateLimit-Reset-After": "1.5", "X-RateLimit-Reset": str(int(EPOCH) + 9)}, 1.5),
        ({"X-RateLimit-Reset-After": "soon", "X-RateLimit-Reset": str(int(EPOCH) + 9)}, 9.0),
        ({"X-RateLimit-Reset": "nan"}, None),
        ({"X-RateLimit-Reset": "-42"}, None),
        ({"X-RateLimit-Reset": "Fri, 01 May 2026 12:01:30 GMT"}, None),
        ({"X-RateLimit-Limit": "60", "X-RateLimit-Remaining": "0"}, None),
    ],
)
def test_x_ratelimit(headers: dict[str, str], expected: float | None) -> None:
    assert delay(headers) == pytest.approx(expected)


# -- precedence ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        (
            {
                "Retry-After": "5",
                "RateLimit": '"d";r=0;t=30',
                "RateLimit-Reset": "40",
                "X-RateLimit-Reset": "50",
            },
            5.0,
        ),
        ({"Retry-After": "0", "RateLimit": '"d";r=0;t=30'}, 0.0),  # "now" is an answer
        ({"Retry-After": imf(at(-5)), "X-RateLimit-Reset": "50"}, 0.0),
        ({"Retry-After": "soon", "RateLimit": '"d";r=0;t=30', "X-RateLimit-Reset": "50"}, 30.0),
        ({"RateLimit": '"d";r=0;t=30', "RateLimit-Reset": "40", "X-RateLimit-Reset": "50"}, 30.0),
        ({"RateLimit": '"d";r=2;t=30', "RateLimit-Reset": "40", "X-RateLimit-Reset": "50"}, 40.0),
        ({"RateLimit": '"d";r=2;t=30', "X-RateLimit-Reset": "50"}, 50.0),
        ({"RateLimit": "garbage(", "X-RateLimit-Reset": "50"}, 50.0),
        ({"RateLimit-Reset": "40", "RateLimit-Remaining": "1", "X-RateLimit-Reset": "50"}, 50.0),
        ({"RateLimit-Reset": "forty", "X-RateLimit-Reset": "50"}, 50.0),
        ({"Retry-After": "700", "X-RateLimit-Reset": "50"}, 300.0),  # capped, not skipped
        ({"Content-Type": "application/json", "Date": imf(NOW)}, None),
        ({}, None),
    ],
)
def test_precedence(headers: dict[str, str], expected: float | None) -> None:
    assert delay(headers) == expected


# -- header names and containers ------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["Retry-After", "retry-after", "RETRY-AFTER", "rEtRy-AfTeR", " Retry-After"],
)
def test_names_are_matched_in_any_case(name: str) -> None:
    assert delay([(name, "17")]) == 17.0


@pytest.mark.parametrize("name", ["Retry_After", "RetryAfter", "Retry-After-Ms", "X-Retry-After"])
def test_other_names_are_not_matched(name: str) -> None:
    assert delay([(name, "17")]) is None


@pytest.mark.parametrize("container", CONTAINERS.values(), ids=CONTAINERS.keys())
@pytest.mark.parametrize(
    ("pairs", "expected"),
    [
        ([("Retry-After", "17")], 17.0),
        ([("retry-after", imf(at(25)))], 25.0),
        ([("RETRY-AFTER", "x"), ("x-ratelimit-reset", "9")], 9.0),
        ([("Retry-After", "17"), ("Retry-After", "23")], 23.0),  # repeated
        ([("RateLimit", '"a";r=0;t=10'), ("RateLimit", '"b";r=0;t=20')], 20.0),  # split list
        ([("ratelimit", "limit=10, remaining=0, reset=7")], 7.0),
        ([("X-RateLimit-Remaining", "0"), ("X-RateLimit-Reset", str(int(EPOCH) + 8))], 8.0),
        ([("Content-Length", "17")], None),
        ([], None),
    ],
)
def test_every_container(
    container: Callable[[Pairs], object], pairs: Pairs, expected: float
) -> None:
    assert server_delay(response(container(pairs)), now=NOW) == expected


@pytest.mark.parametrize("make", OUTCOMES.values(), ids=OUTCOMES.keys())
def test_every_outcome_shape(make: Callable[[Pairs], object]) -> None:
    outcome = make([("Retry-After", "17"), ("X-RateLimit-Reset", "99")])
    assert server_delay(outcome, now=NOW) == 17.0
    assert http_status(outcome) == 429
    assert server_delay(make([("Content-Type", "text/plain")]), now=NOW) is None


@pytest.mark.parametrize(
    "headers",
    [
        {"Retry-After": 17},  # built by hand with numbers
        {"Retry-After": 17.0},
        {"Retry-After": b"17"},
        {b"Retry-After": bytearray(b"17")},
        {"Retry-After": memoryview(b"17")},
        {istr("Retry-After"): "17"},
    ],
)
def test_names_and_values_of_other_types(headers: dict[Any, Any]) -> None:
    assert server_delay(response(headers), now=NOW) == 17.0


@pytest.mark.parametrize(
    "headers",
    [
        {"Retry-After": True},
        {"Retry-After": math.nan},
        {"Retry-After": math.inf},
        {"Retry-After": -17},
        {"Retry-After": None},
        {"Retry-After": ["17"]},
        {17: "17"},
        {None: "17"},
        {"Rétry-After": "17"},
        {"Retry-After": "17".encode("utf-16")},
    ],
)
def test_names_and_values_that_are_not_text_are_ignored(headers: dict[Any, Any]) -> None:
    assert server_delay(response(headers), now=NOW) is None


# -- finding the response and its status ------------------------------------------------------------


def test_status_of_each_outcome() -> None:
    assert http_status(RequestsResponse(503, [])) == 503
    assert http_status(RequestsHTTPError("x", response=RequestsResponse(503, []))) == 503
    assert (
        http_status(HttpxHTTPStatusError("x", request=None, response=HttpxResponse(502, []))) == 502
    )
    assert http_status(AiohttpClientResponse(500, [])) == 500
    assert http_status(Urllib3HTTPResponse(504, [])) == 504
    assert http_status(WerkzeugResponse(418, [])) == 418
    assert http_status(StarletteResponse(429, [])) == 429
    assert http_status(http_client_response(503, [])) == 503
    assert http_status(urllib_http_error(403, [])) == 403
    assert http_status(urllib.error.HTTPError("u", 404, "gone", None, None)) == 404  # type: ignore[arg-type]


def test_an_exception_without_a_response_has_no_status() -> None:
    error = RequestsHTTPError("connection reset", response=None)
    assert http_status(error) is None
    assert server_delay(error, now=NOW) is None
    assert http_status(HttpxConnectError("refused")) is None
    assert server_delay(HttpxConnectError("refused"), now=NOW) is None


def test_a_response_without_headers_has_a_status_but_no_delay() -> None:
    error = AiohttpClientResponseError(503, None)
    assert http_status(error) == 503
    assert server_delay(error, now=NOW) is None
    assert server_delay(urllib.error.HTTPError("u", 503, "m", None, None), now=NOW) is None  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("outcome", "expected"),
    [
        (SimpleNamespace(status_code=HTTPStatus.TOO_MANY_REQUESTS, headers={}), 429),
        (SimpleNamespace(status=429, headers={}), 429),
        (SimpleNamespace(code=429, headers={}), 429),
        (SimpleNamespace(status_code=None, status=503, headers={}), 503),  # first usable
        (SimpleNamespace(status_code=0, status=503, headers={}), 503),
        (SimpleNamespace(status="503 Service Unavailable", headers={}), 503),
        (SimpleNamespace(status="503", headers={}), 503),
        (SimpleNamespace(status_code=True, headers={}), None),
        (SimpleNamespace(status_code=42, headers={}), None),
        (SimpleNamespace(status_code=1000, headers={}), None),
        (SimpleNamespace(status_code=429.0, headers={}), None),
        (SimpleNamespace(status="OK", headers={}), None),
        (SimpleNamespace(status="5030", headers={}), None),
        (SimpleNamespace(status="099 Odd", headers={}), None),
        (SimpleNamespace(status_code=429), None),  # no headers: not a response
        (SimpleNamespace(headers={}), None),  # no status: not a response
        (SimpleNamespace(response=SimpleNamespace(status_code=429, headers={})), 429),
        (SimpleNamespace(response=SimpleNamespace(status_code=429)), None),
        (SimpleNamespace(response=None), None),
        (
            SimpleNamespace(
                response=SimpleNamespace(response=SimpleNamespace(status=429, headers={}))
            ),
            None,
        ),
        (None, None),
        (429, None),
        ("429", None),
        ({"status_code": 429, "headers": {}}, None),
        (ValueError("boom"), None),
        (RequestsResponse, None),  # the class, not an instance
    ],
)
def test_http_status(outcome: object, expected: int | None) -> None:
    status = http_status(outcome)
    assert status == expected
    assert status is None or type(status) is int


def test_the_outcome_itself_wins_over_its_response_attribute() -> None:
    outcome = SimpleNamespace(
        status_code=503,
        headers={"Retry-After": "5"},
        response=SimpleNamespace(status_code=429, headers={"Retry-After": "50"}),
    )
    assert http_status(outcome) == 503
    assert server_delay(outcome, now=NOW) == 5.0


# -- hostile objects never raise ----------------------------------------------------------------------


class Exploding:
    """Every attribute access raises something other than AttributeError."""

    def __getattr__(self, name: str) -> object:
        if name.startswith("__"):  # left alone for pytest's and Python's own probing
            raise AttributeError(name)
        raise RuntimeError(name)


class ExplodingHeaders:
    @property
    def status_code(self) -> int:
        return 429

    @property
    def headers(self) -> object:
        raise ValueError("stream closed")


class ExplodingItems:
    def items(self) -> object:
        raise RuntimeError("items")


class ExplodingMidway:
    def __iter__(self) -> Iterator[tuple[str, str]]:
        yield ("Retry-After", "7")
        raise ConnectionError("reset")


class BadStr(str):
    def strip(self, chars: str | None = None) -> str:
        raise RuntimeError("strip")

    def split(self, sep: str | None = None, maxsplit: SupportsIndex = -1) -> list[str]:
        raise RuntimeError("split")


class BadPair:
    def __iter__(self) -> Iterator[str]:
        raise RuntimeError("unpack")


@pytest.mark.parametrize(
    "outcome",
    [
        Exploding(),
        ExplodingHeaders(),
        response(ExplodingItems()),
        response(object()),
        response("Retry-After: 5"),
        response(b"Retry-After: 5"),
        response(42),
        response([("Retry-After",), ("Retry-After", "1", "2"), "ab", None, 5, BadPair()]),
        response({BadStr("Retry-After"): BadStr("abc")}),
        response(iter([])),
        mock.Mock(),
        mock.MagicMock(),
        SimpleNamespace(response=Exploding()),
    ],
)
def test_hostile_objects_never_raise(outcome: object) -> None:
    assert server_delay(outcome, now=NOW) is None
    assert http_status(outcome) in (None, 429)


def test_a_mock_with_headers_is_a_response() -> None:
    outcome = mock.NonCallableMock(headers={"Retry-After": "5"})
    assert server_delay(outcome, now=NOW) == 5.0
    assert http_status(outcome) is None


def test_what_was_read_before_a_container_failed_still_counts() -> None:
    assert server_delay(response(ExplodingMidway()), now=NOW) == 7.0


def test_a_str_subclass_with_broken_methods_is_read_as_plain_text() -> None:
    assert server_delay(response({BadStr("Retry-After"): BadStr("17")}), now=NOW) == 17.0


# -- cap and now ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cap", "expected"),
    [
        (10, 10.0),
        (10.5, 10.5),
        (120, 120.0),
        (1e9, 120.0),
        (timedelta(seconds=5), 5.0),
        (0.001, 0.001),
    ],
)
def test_cap(cap: float | timedelta, expected: float) -> None:
    assert delay({"Retry-After": "120"}, cap=cap) == expected
    assert delay({"Retry-After": imf(at(120))}, cap=cap) == expected


def test_the_default_cap_is_300_seconds() -> None:
    assert delay({"Retry-After": "100000"}) == 300.0


@pytest.mark.parametrize(
    ("cap", "error", "message"),
    [
        (0, ValueError, "cap must be a finite number of seconds from 1e-09 to 4.61169e+09, got 0"),
        (-1, ValueError, "cap must be a finite number of seconds from 1e-09 to 4.61169e+09, got -1"),
        (math.nan, ValueError, "cap must be a finite number of seconds from 1e-09 to 4.61169e+09, got nan"),
        (math.inf, ValueError, "cap must be a finite number of seconds from 1e-09 to 4.61169e+09, got inf"),
        (timedelta(0), ValueError, "cap must be a finite number of seconds from 1e-09 to 4.61169e+09"),
        ("300", TypeError, "cap must be seconds (float), a timedelta, got str"),
        (None, TypeError, "cap must be seconds (float), a timedelta, got NoneType"),
        (True, TypeError, "cap must be seconds (float), a timedelta, got bool"),
    ],
)
def test_bad_cap(cap: object, error: type[Exception], message: str) -> None:
    # Checked on every call, even when there is no response to read.
    for outcome in (None, response({"Retry-After": "1"})):
        with pytest.raises(error, match=f"^{re.escape(message)}"):
            server_delay(outcome, cap=cap)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("now", "error", "message"),
    [
        (
            datetime(2026, 5, 1),
            ValueError,
            "now must be an aware datetime (with a tzinfo), got naive",
        ),
        ("2026-05-01", TypeError, "now must be an aware datetime or None, got str"),
        (EPOCH, TypeError, "now must be an aware datetime or None, got float"),
    ],
)
def test_bad_now(now: object, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=f"^{re.escape(message)}"):
        server_delay(None, now=now)  # type: ignore[arg-type]


def test_now_in_another_time_zone_is_the_same_instant() -> None:
    paris = NOW.astimezone(timezone(timedelta(hours=2)))
    headers = [("Retry-After", imf(at(90))), ("X-RateLimit-Reset", str(int(EPOCH) + 42))]
    assert server_delay(response(headers), now=paris) == 90.0
    assert server_delay(response(headers[1:]), now=paris) == 42.0


def test_now_defaults_to_the_current_utc_time(monkeypatch: pytest.MonkeyPatch) -> None:
    class Stopped(datetime):
        """The wall clock stopped at NOW (the real one moves, and may step back)."""

        @classmethod
        def now(cls, tz: Any = None) -> Stopped:
            assert tz is timezone.utc
            return cls.fromtimestamp(EPOCH, tz)

    monkeypatch.setattr("brace.pushback.datetime", Stopped)
    assert server_delay(response({"Retry-After": imf(at(3600))}), cap=7200) == 3600.0
    assert server_delay(response({"Retry-After": imf(at(-3600))})) == 0.0
    assert server_delay(response({"X-RateLimit-Reset": str(int(EPOCH) + 42)})) == 42.0
    assert server_delay(response({"X-RateLimit-Reset": str(int(EPOCH) - 5)})) == 0.0


def test_results_are_floats() -> None:
    for headers in ({"Retry-After": "5"}, {"Retry-After": imf(NOW)}, {"RateLimit": '"d";r=0;t=3'}):
        assert type(delay(headers)) is float


# -- properties -----------------------------------------------------------------------------------

NAMES = [
    "Retry-After",
    "RateLimit",
    "RateLimit-Policy",
    "RateLimit-Reset",
    "RateLimit-Remaining",
    "RateLimit-Limit",
    "X-RateLimit-Reset",
    "X-RateLimit-Reset-After",
    "X-RateLimit-Remaining",
]
names = st.sampled_from(NAMES).flatmap(
    lambda n: st.sampled_from([n, n.lower(), n.upper(), n.swapcase()])
) | st.text(max_size=30)
# Text made of the characters the parsers look at, so that examples reach past the first check.
syntax = st.text(alphabet='0123456789-.,;:=" ()?*aprtwqlimesdGMTSunNovJanFebDecMon\t', max_size=60)
values = (
    st.text()
    | syntax
    | st.integers(-(10**20), 10**20).map(str)
    | st.floats(allow_nan=True, allow_infinity=True).map(str)
    | st.datetimes(timezones=st.just(timezone.utc)).map(imf)
    | st.datetimes(timezones=st.just(timezone.utc)).map(rfc850)
    | st.datetimes(timezones=st.just(timezone.utc)).map(asctime)
    | st.builds(
        lambda r, t, w: f'"p";r={r};t={t}, "q";r=0' + f", x;w={w}",
        st.integers(-5, 5),
        st.integers(-(10**16), 10**16) | st.floats().map(lambda f: f"{f:.3f}"),
        st.integers(-5, 10**6),
    )
)
headers = st.lists(st.tuples(names, values), max_size=8)
# Up to the longest duration brace accepts, 2**62 ns (~146 years).
caps = (
    st.floats(min_value=1e-6, max_value=4e9)
    | st.integers(1, 4 * 10**9)
    | st.timedeltas(min_value=timedelta(microseconds=1), max_value=timedelta(days=53_000))
)
nows = st.datetimes(timezones=st.just(timezone.utc))
containers = st.sampled_from(
    [
        dict,
        list,
        CaseInsensitiveDict,
        HttpxHeaders,
        CIMultiDictProxy,
        WerkzeugHeaders,
        email_message,
    ]
)


def cap_seconds(cap: float | timedelta) -> float:
    return cap.total_seconds() if isinstance(cap, timedelta) else float(cap)


@pytest.mark.slow  # many examples: the README's command runs it, the inner loop does not
@settings(max_examples=500, deadline=None)
@given(headers, caps, nows, containers)
def test_arbitrary_headers_never_raise_and_stay_in_range(
    pairs: Pairs, cap: float | timedelta, now: datetime, container: Callable[[Pairs], object]
) -> None:
    waited = server_delay(response(container(pairs)), cap=cap, now=now)
    assert waited is None or (type(waited) is float and 0.0 <= waited <= cap_seconds(cap))


@settings(deadline=None)
@given(st.binary(max_size=200), st.binary(max_size=200), nows)
def test_arbitrary_bytes_never_raise(name: bytes, value: bytes, now: datetime) -> None:
    for pairs in ([(name, value)], [(b"Retry-After", value)], [(b"RateLimit", value)]):
        waited = server_delay(response(pairs), now=now)
        assert waited is None or 0.0 <= waited <= 300.0


@given(st.integers(0, 10**30), caps)
def test_delta_seconds_round_trip(seconds: int, cap: float | timedelta) -> None:
    assert delay({"Retry-After": str(seconds)}, cap=cap) == min(float(seconds), cap_seconds(cap))


@given(
    st.datetimes(
        min_value=datetime(1990, 1, 1),
        max_value=datetime(2070, 1, 1),
        timezones=st.just(timezone.utc),
    ),
    st.sampled_from([imf, rfc850, asctime]),
)
def test_http_dates_round_trip(when: datetime, form: Callable[[datetime], str]) -> None:
    when = when.replace(microsecond=0)  # HTTP-dates have whole seconds
    expected = min(max(0.0, (when - NOW).total_seconds()), 4e9)
    assert delay({"Retry-After": form(when)}, cap=4e9) == expected


@given(st.integers(-(10**7), 10**7), st.booleans())
def test_epoch_resets_round_trip(offset: int, say_remaining: bool) -> None:
    headers = {"X-RateLimit-Reset": str(int(EPOCH) + offset)}
    if say_remaining:
        headers["X-RateLimit-Remaining"] = "0"
    assert delay(headers, cap=4e9) == max(0.0, float(offset))


@given(st.integers(0, 10**6), headers)
def test_a_valid_retry_after_always_wins(seconds: int, others: Pairs) -> None:
    others = [(n, v) for n, v in others if n.strip(" \t").lower() != "retry-after"]
    assert delay([("Retry-After", str(seconds)), *others], cap=4e9) == float(seconds)


# -- one budget on the whole set of wait fields -----------------------------------------------------

# ~1,000 characters: 45 exhausted policies, the longest asking for 90 s.
POLICIES = ", ".join(f'"policy{index:03d}";r=0;t={30 + index % 3 * 30}' for index in range(45))


def test_wait_fields_within_the_budget_are_read() -> None:
    assert len(POLICIES) * 3 + len("ratelimit") * 3 < MAX_FIELDS_CHARS
    assert server_wait(response([("RateLimit", POLICIES)] * 3), now=NOW) == ServerWait(90.0, None)


@pytest.mark.parametrize(
    "headers",
    [
        [("RateLimit", POLICIES)] * 100,  # 100 lines of 1,000 characters
        [("Retry-After", "5")] * 100_000,  # a value each is fine, so many are not
        [("Retry-After", "5"), *[("RateLimit-Reset", "1" * 5_000)] * 5],  # lines too long to read still count
        [("X-RateLimit-Reset", "7"), *[("RATELIMIT", POLICIES * 1000)] * 4],
    ],
    ids=["100 long lines", "100,000 short lines", "over-long lines", "huge lines after a good one"],
)
def test_wait_fields_over_the_budget_are_ignored_and_say_so(headers: Pairs) -> None:
    result = server_wait(response(headers), now=NOW)
    assert result.seconds is None  # never a wait read from part of them, never a clamped one
    assert result.ignored == ("the server's wait fields (Retry-After, RateLimit, X-RateLimit-*) hold over "
                              f"{MAX_FIELDS_CHARS} characters in all: ignored")  # fmt: skip
    assert server_delay(response(headers), now=NOW) is None


def test_reading_stops_at_the_budget() -> None:
    read = 0

    def endless() -> Iterator[tuple[str, str]]:
        nonlocal read
        while True:
            read += 1
            yield "RateLimit", '"p";r=0;t=1'

    assert server_wait(response(endless()), now=NOW).ignored is not None
    assert read <= MAX_FIELDS_CHARS // len("ratelimit")


def test_fields_brace_does_not_read_do_not_count() -> None:
    headers = [*[("Set-Cookie", "c" * 4000)] * 1000, ("Retry-After", "5")]
    assert server_wait(response(headers), now=NOW) == ServerWait(5.0, None)


def test_the_classifier_says_why_it_ignored_the_server_s_wait() -> None:
    classifier = ErrorClassifier()
    flooded = classifier.classify(response([("RateLimit", POLICIES)] * 100))
    assert flooded.retry_after is None and flooded.pushback_ignored is not None
    assert flooded.pushback_ignored in flooded.describe()
    plain = classifier.classify(response([("Retry-After", "5")]))
    assert plain.retry_after == 5.0 and plain.pushback_ignored is None
    assert "ignored" not in plain.describe()
