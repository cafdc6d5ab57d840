"""How brace recognises failures it did not raise: the errors of HTTP and data libraries
(by name, so it imports none of them), HTTP statuses, and the standard library's network,
TLS and OS errors; and how it reads what an error wraps.

ssl and socket are not imported: their errors are classes of the C modules _ssl and
_socket, so an error can be one only once that module is loaded, and sys.modules says
whether it is. A program that never loads them does not pay for them here.
"""

from __future__ import annotations

import enum
import errno as _errno
import re
import sys
from collections.abc import Mapping
from types import MappingProxyType
from typing import Final, Union

from brace.classify._categories import Category
from brace.pushback import http_status, status_number

MISSING: Final = object()


def attribute(obj: object, name: str) -> object:
    """getattr that swallows whatever an object we do not own raises."""
    try:
        return getattr(obj, name)
    except Exception:
        return MISSING


class Wrapped(enum.Enum):
    """Library-table entries that are not a category."""

    STATUS = "status"  # decided by the HTTP status rules
    REASON = "reason"  # classify the error it wraps: .reason, else args[0]
    RESPONSES = "responses"  # urllib3's "too many 503 error responses"


_C = Category
_LibraryEntry = Union[Category, Wrapped]
# (top-level module, class name) -> what it is. The most derived class of an
# error's MRO found here wins, so a specific class listed overrides its base:
# requests.ConnectTimeout is a timeout although it is also a ConnectionError,
# and urllib3's NewConnectionError a network error although it derives from
# ConnectTimeoutError.
LIBRARY: Final[Mapping[tuple[str, str], _LibraryEntry]] = MappingProxyType({
    ("httpx", "TimeoutException"): _C.TIMEOUT,
    ("httpx", "NetworkError"): _C.NETWORK_ERROR,
    ("httpx", "RemoteProtocolError"): _C.NETWORK_ERROR,
    ("httpx", "ProxyError"): _C.NETWORK_ERROR,
    ("httpx", "DecodingError"): _C.SCHEMA_MISMATCH,
    ("httpx", "HTTPStatusError"): Wrapped.STATUS,
    ("httpcore", "TimeoutException"): _C.TIMEOUT,
    ("httpcore", "NetworkError"): _C.NETWORK_ERROR,
    ("httpcore", "RemoteProtocolError"): _C.NETWORK_ERROR,
    ("httpcore", "ProxyError"): _C.NETWORK_ERROR,
    ("requests", "ConnectTimeout"): _C.TIMEOUT,
    ("requests", "Timeout"): _C.TIMEOUT,
    ("requests", "ConnectionError"): _C.NETWORK_ERROR,
    ("requests", "ChunkedEncodingError"): _C.NETWORK_ERROR,
    ("requests", "ContentDecodingError"): _C.SCHEMA_MISMATCH,
    ("requests", "JSONDecodeError"): _C.SCHEMA_MISMATCH,
    ("requests", "InvalidJSONError"): _C.SCHEMA_MISMATCH,
    ("requests", "HTTPError"): Wrapped.STATUS,
    ("requests", "RetryError"): Wrapped.REASON,
    ("urllib3", "NewConnectionError"): _C.NETWORK_ERROR,
    ("urllib3", "TimeoutError"): _C.TIMEOUT,
    ("urllib3", "EmptyPoolError"): _C.TIMEOUT,
    ("urllib3", "ProtocolError"): _C.NETWORK_ERROR,
    ("urllib3", "ProxyError"): _C.NETWORK_ERROR,
    ("urllib3", "SSLError"): _C.NETWORK_ERROR,
    ("urllib3", "IncompleteRead"): _C.NETWORK_ERROR,
    ("urllib3", "DecodeError"): _C.SCHEMA_MISMATCH,
    ("urllib3", "MaxRetryError"): Wrapped.REASON,
    ("urllib3", "ResponseError"): Wrapped.RESPONSES,
    ("aiohttp", "ServerTimeoutError"): _C.TIMEOUT,
    ("aiohttp", "ClientConnectorCertificateError"): _C.AUTH_INVALID,
    ("aiohttp", "ServerFingerprintMismatch"): _C.AUTH_INVALID,
    ("aiohttp", "ClientConnectionError"): _C.NETWORK_ERROR,
    ("aiohttp", "ClientPayloadError"): _C.NETWORK_ERROR,
    ("aiohttp", "ContentTypeError"): _C.SCHEMA_MISMATCH,
    ("aiohttp", "ClientResponseError"): Wrapped.STATUS,
    ("urllib", "HTTPError"): Wrapped.STATUS,
    ("urllib", "URLError"): Wrapped.REASON,
    ("http", "IncompleteRead"): _C.NETWORK_ERROR,
    ("http", "RemoteDisconnected"): _C.NETWORK_ERROR,
    ("json", "JSONDecodeError"): _C.SCHEMA_MISMATCH,
    ("simplejson", "JSONDecodeError"): _C.SCHEMA_MISMATCH,
    ("pydantic", "ValidationError"): _C.SCHEMA_MISMATCH,
    ("pydantic_core", "ValidationError"): _C.SCHEMA_MISMATCH,
    # Python 3.10, where these are not yet the builtin TimeoutError.
    ("asyncio", "TimeoutError"): _C.TIMEOUT,
    ("concurrent", "TimeoutError"): _C.TIMEOUT,
})  # fmt: skip

TOO_MANY_RESPONSES = re.compile(r"too many ([1-5][0-9]{2}) error responses")

_STATUSES: Final[Mapping[int, Category]] = MappingProxyType({
    400: _C.SCHEMA_MISMATCH, 401: _C.AUTH_EXPIRED, 403: _C.PERMISSION_DENIED, 404: _C.NOT_FOUND,
    405: _C.SCHEMA_MISMATCH, 406: _C.SCHEMA_MISMATCH, 407: _C.AUTH_INVALID, 408: _C.TIMEOUT,
    # 409 Conflict, 423 Locked: a concurrent writer, which may be done on the next try.
    409: _C.INTERNAL_ERROR, 410: _C.NOT_FOUND, 411: _C.SCHEMA_MISMATCH, 412: _C.SCHEMA_MISMATCH,
    413: _C.SCHEMA_MISMATCH, 414: _C.SCHEMA_MISMATCH, 415: _C.SCHEMA_MISMATCH, 422: _C.SCHEMA_MISMATCH,
    423: _C.INTERNAL_ERROR, 425: _C.NETWORK_ERROR, 429: _C.RATE_LIMITED, 431: _C.SCHEMA_MISMATCH,
    500: _C.INTERNAL_ERROR, 501: _C.UNKNOWN, 502: _C.SERVICE_DOWN, 503: _C.SERVICE_DOWN,
    504: _C.TIMEOUT, 505: _C.UNKNOWN, 511: _C.AUTH_INVALID,
})  # fmt: skip

_ERRNOS: Final[Mapping[int, Category]] = MappingProxyType({
    number: category
    for names, category in (
        (("ETIMEDOUT",), _C.TIMEOUT),
        (("ECONNRESET", "ECONNREFUSED", "ECONNABORTED", "EPIPE", "ENETUNREACH", "EHOSTUNREACH", "ENETDOWN",
          "EHOSTDOWN", "ENETRESET", "EADDRNOTAVAIL"), _C.NETWORK_ERROR),
        (("EACCES", "EPERM"), _C.PERMISSION_DENIED),
        (("ENOENT",), _C.NOT_FOUND),
    )
    for name in names
    # Not every platform has every errno.
    if isinstance(number := getattr(_errno, name, None), int)
})  # fmt: skip

# Walking what an error wraps (reasons, causes, contexts) ends at the end of
# the chain or at an error seen before (a cycle). This bound is only for
# chains made up as they are read (a `reason` property returning a new error
# each time), which never end: no chain raised by real code is this long, and
# walking one costs a few microseconds per error.
MAX_ERRORS = 100_000


def status_category(status: int, refreshed: bool) -> Category:
    if status == 401 and refreshed:
        return _C.AUTH_INVALID  # credentials refreshed during this call were refused too
    category = _STATUSES.get(status)
    if category is not None:
        return category
    return _C.INTERNAL_ERROR if 500 <= status <= 599 else _C.UNKNOWN


def status_of(outcome: object) -> int | None:
    """The HTTP status on outcome: its response's, else an exception's own status attribute."""
    status = http_status(outcome)
    if status is not None:
        return status
    # Client libraries' own errors often carry the status without the response
    # (an OSError's errno-like fields are not statuses).
    if isinstance(outcome, BaseException) and not isinstance(outcome, OSError):
        if attribute(outcome, "headers") is not MISSING:
            return None
        for name in ("status_code", "status"):
            status = status_number(attribute(outcome, name), 599, text=False)
            if status is not None:
                return status
    return None


def library_entry(error: BaseException) -> _LibraryEntry | None:
    """The library-table entry of the most derived class of error's MRO that has one."""
    mro = attribute(type(error), "__mro__")
    if not isinstance(mro, tuple):
        return None
    for cls in mro:
        module, name = attribute(cls, "__module__"), attribute(cls, "__name__")
        if isinstance(module, str) and isinstance(name, str):
            entry = LIBRARY.get((module.partition(".")[0], name))
            if entry is not None:
                return entry
    return None


def wrapped(error: BaseException) -> BaseException | None:
    """The error a wrapper holds: urllib3's MaxRetryError.reason, urllib's URLError.reason, args[0]."""
    reason = attribute(error, "reason")
    if isinstance(reason, BaseException):
        return reason
    args = attribute(error, "args")
    if isinstance(args, tuple) and args and isinstance(args[0], BaseException):
        return args[0]
    return None


def links(error: BaseException) -> list[BaseException]:
    """What error points at: its cause, its context (in that order)."""
    found = []
    for name in ("__cause__", "__context__"):
        link = attribute(error, name)
        if isinstance(link, BaseException):
            found.append(link)
    return found


def cert_failure(error: BaseException) -> bool:
    """Whether a certificate verification failure is among what error wraps."""
    tls = sys.modules.get("_ssl")
    if tls is None:
        return False  # no TLS error can exist yet (see the module's docstring)
    stack: list[BaseException] = [error]
    seen: dict[int, BaseException] = {}  # holds what it saw, so that no id is reused meanwhile
    while stack and len(seen) < MAX_ERRORS:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen[id(node)] = node
        if isinstance(node, tls.SSLCertVerificationError):
            return True
        stack.extend(links(node))
        inner = wrapped(node)
        if inner is not None:
            stack.append(inner)
    return False


def stdlib_category(error: BaseException) -> tuple[Category, str] | None:
    """The category of a standard-library error, with the rule that decided, or None."""
    # The TLS and resolver errors of modules loaded so far: those of the others cannot exist yet.
    tls, sockets = sys.modules.get("_ssl"), sys.modules.get("_socket")
    if tls is not None and isinstance(error, tls.SSLCertVerificationError):
        return _C.AUTH_INVALID, "builtin:ssl"
    if tls is not None and isinstance(error, tls.SSLError):
        return _C.NETWORK_ERROR, "builtin:ssl"
    if sockets is not None and isinstance(error, (sockets.gaierror, sockets.herror)):
        return _C.NETWORK_ERROR, "builtin:stdlib"
    if isinstance(error, TimeoutError):
        return _C.TIMEOUT, "builtin:stdlib"
    if isinstance(error, ConnectionError):
        return _C.NETWORK_ERROR, "builtin:stdlib"
    if isinstance(error, PermissionError):
        return _C.PERMISSION_DENIED, "builtin:stdlib"
    if isinstance(error, FileNotFoundError):
        return _C.NOT_FOUND, "builtin:stdlib"
    if isinstance(error, OSError):
        number = attribute(error, "errno")
        if isinstance(number, int):
            category = _ERRNOS.get(number)
            if category is not None:
                return category, "builtin:errno"
    return None
