"""brace.classify: categories of real library errors, statuses, user rules, treatments, robustness."""

from __future__ import annotations

import dataclasses
import email.message
import errno
import json
import logging
import re
import socket
import ssl
import urllib.error
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import aiohttp
import httpx
import pytest
import requests
import urllib3
from aiohttp.client_reqrep import ConnectionKey
from hypothesis import given, settings
from hypothesis import strategies as st

import brace
from brace.classify import (
    DEFAULT_CLASSIFIER,
    DEFAULT_TREATMENTS,
    Category,
    Classification,
    ErrorClassifier,
    Rule,
    Severity,
    Strategy,
    Treatment,
)

C = Category
REQUEST = httpx.Request("GET", "https://api.example.com/things")


def httpx_response(status: int, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, request=REQUEST, headers=headers or {})


def httpx_status_error(status: int, headers: dict[str, str] | None = None) -> httpx.HTTPStatusError:
    response = httpx_response(status, headers)
    return httpx.HTTPStatusError(f"status {status}", request=REQUEST, response=response)


def requests_response(status: int, headers: dict[str, str] | None = None) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response.headers.update(headers or {})
    return response


def requests_http_error(status: int, headers: dict[str, str] | None = None) -> requests.HTTPError:
    return requests.HTTPError(f"status {status}", response=requests_response(status, headers))


def aiohttp_response_error(status: int, headers: dict[str, str] | None = None) -> aiohttp.ClientResponseError:
    return aiohttp.ClientResponseError(None, (), status=status, headers=headers)  # type: ignore[arg-type]


def urllib_http_error(status: int, headers: dict[str, str] | None = None) -> urllib.error.HTTPError:
    message = email.message.Message()
    for name, value in (headers or {}).items():
        message[name] = value
    return urllib.error.HTTPError("https://api.example.com", status, "error", message, None)


class StatusCodeError(Exception):
    """A client library's own error: the status, no response."""

    def __init__(self, status_code: int) -> None:
        super().__init__(f"server said {status_code}")
        self.status_code = status_code


CONNECTION_KEY = ConnectionKey("api.example.com", 443, True, True, None, None, None)


def urllib3_pool() -> urllib3.HTTPConnectionPool:
    return urllib3.HTTPConnectionPool("api.example.com")


# -- libraries and the standard library --------------------------------------------

ERRORS: list[tuple[str, Callable[[], BaseException], Category]] = [
    ("httpx.ConnectTimeout", lambda: httpx.ConnectTimeout("connect"), C.TIMEOUT),
    ("httpx.ReadTimeout", lambda: httpx.ReadTimeout("read"), C.TIMEOUT),
    ("httpx.WriteTimeout", lambda: httpx.WriteTimeout("write"), C.TIMEOUT),
    ("httpx.PoolTimeout", lambda: httpx.PoolTimeout("pool"), C.TIMEOUT),
    ("httpx.ConnectError", lambda: httpx.ConnectError("refused"), C.NETWORK_ERROR),
    ("httpx.ReadError", lambda: httpx.ReadError("reset"), C.NETWORK_ERROR),
    ("httpx.WriteError", lambda: httpx.WriteError("broken"), C.NETWORK_ERROR),
    ("httpx.RemoteProtocolError", lambda: httpx.RemoteProtocolError("peer closed"), C.NETWORK_ERROR),
    ("httpx.ProxyError", lambda: httpx.ProxyError("proxy"), C.NETWORK_ERROR),
    ("httpx.DecodingError", lambda: httpx.DecodingError("gzip"), C.SCHEMA_MISMATCH),
    ("httpx.LocalProtocolError", lambda: httpx.LocalProtocolError("bad header"), C.UNKNOWN),
    ("httpx.UnsupportedProtocol", lambda: httpx.UnsupportedProtocol("ftp"), C.UNKNOWN),
    ("requests.Timeout", lambda: requests.Timeout("slow"), C.TIMEOUT),
    ("requests.ConnectTimeout", lambda: requests.ConnectTimeout("slow"), C.TIMEOUT),
    ("requests.ReadTimeout", lambda: requests.ReadTimeout("slow"), C.TIMEOUT),
    ("requests.ConnectionError", lambda: requests.ConnectionError("refused"), C.NETWORK_ERROR),
    ("requests.ChunkedEncodingError", lambda: requests.exceptions.ChunkedEncodingError("cut"), C.NETWORK_ERROR),
    ("requests.JSONDecodeError", lambda: requests.JSONDecodeError("Expecting value", "<html>", 0), C.SCHEMA_MISMATCH),
    ("requests.HTTPError without response", lambda: requests.HTTPError("no response"), C.UNKNOWN),
    ("urllib3.ReadTimeoutError", lambda: urllib3.exceptions.ReadTimeoutError(urllib3_pool(), "/", "read"), C.TIMEOUT),
    ("urllib3.ConnectTimeoutError", lambda: urllib3.exceptions.ConnectTimeoutError("connect"), C.TIMEOUT),
    ("urllib3.NewConnectionError",
     lambda: urllib3.exceptions.NewConnectionError(None, "refused"), C.NETWORK_ERROR),  # type: ignore[arg-type]
    ("urllib3.ProtocolError", lambda: urllib3.exceptions.ProtocolError("Connection aborted."), C.NETWORK_ERROR),
    ("urllib3.MaxRetryError(NewConnectionError)", lambda: urllib3.exceptions.MaxRetryError(
        urllib3_pool(), "/", reason=urllib3.exceptions.NewConnectionError(None, "refused")),  # type: ignore[arg-type]
     C.NETWORK_ERROR),
    ("urllib3.MaxRetryError(ReadTimeoutError)", lambda: urllib3.exceptions.MaxRetryError(
        urllib3_pool(), "/", reason=urllib3.exceptions.ReadTimeoutError(urllib3_pool(), "/", "read")), C.TIMEOUT),
    ("urllib3.MaxRetryError(too many 503)", lambda: urllib3.exceptions.MaxRetryError(
        urllib3_pool(), "/", reason=urllib3.exceptions.ResponseError("too many 503 error responses")),
     C.SERVICE_DOWN),
    ("requests.RetryError(MaxRetryError(too many 429))", lambda: requests.exceptions.RetryError(
        urllib3.exceptions.MaxRetryError(
            urllib3_pool(), "/", reason=urllib3.exceptions.ResponseError("too many 429 error responses"))),
     C.RATE_LIMITED),
    ("aiohttp.ServerTimeoutError", lambda: aiohttp.ServerTimeoutError("read"), C.TIMEOUT),
    ("aiohttp.ConnectionTimeoutError", lambda: aiohttp.ConnectionTimeoutError("connect"), C.TIMEOUT),
    ("aiohttp.ClientConnectorError", lambda: aiohttp.ClientConnectorError(
        CONNECTION_KEY, ConnectionRefusedError(errno.ECONNREFUSED, "refused")), C.NETWORK_ERROR),
    ("aiohttp.ClientConnectorCertificateError", lambda: aiohttp.ClientConnectorCertificateError(
        CONNECTION_KEY, ssl.SSLCertVerificationError("self-signed certificate")), C.AUTH_INVALID),
    ("aiohttp.ClientConnectionError", lambda: aiohttp.ClientConnectionError("gone"), C.NETWORK_ERROR),
    ("aiohttp.ServerDisconnectedError", lambda: aiohttp.ServerDisconnectedError(), C.NETWORK_ERROR),
    ("aiohttp.ClientPayloadError", lambda: aiohttp.ClientPayloadError("truncated"), C.NETWORK_ERROR),
    ("aiohttp.ContentTypeError", lambda: aiohttp.ContentTypeError(None, (), status=200),  # type: ignore[arg-type]
     C.SCHEMA_MISMATCH),
    ("urllib.URLError(refused)", lambda: urllib.error.URLError(ConnectionRefusedError(errno.ECONNREFUSED, "no")),
     C.NETWORK_ERROR),
    ("TimeoutError", lambda: TimeoutError("slow"), C.TIMEOUT),
    ("socket.timeout", lambda: socket.timeout("slow"), C.TIMEOUT),
    ("ConnectionResetError", lambda: ConnectionResetError("reset"), C.NETWORK_ERROR),
    ("ConnectionRefusedError", lambda: ConnectionRefusedError("refused"), C.NETWORK_ERROR),
    ("ConnectionAbortedError", lambda: ConnectionAbortedError("aborted"), C.NETWORK_ERROR),
    ("BrokenPipeError", lambda: BrokenPipeError("pipe"), C.NETWORK_ERROR),
    ("socket.gaierror", lambda: socket.gaierror(socket.EAI_NONAME, "unknown host"), C.NETWORK_ERROR),
    ("ssl.SSLCertVerificationError", lambda: ssl.SSLCertVerificationError("expired certificate"), C.AUTH_INVALID),
    ("ssl.SSLEOFError", lambda: ssl.SSLEOFError("eof"), C.NETWORK_ERROR),
    ("ssl.SSLError", lambda: ssl.SSLError("handshake"), C.NETWORK_ERROR),
    ("PermissionError", lambda: PermissionError("denied"), C.PERMISSION_DENIED),
    ("FileNotFoundError", lambda: FileNotFoundError("missing"), C.NOT_FOUND),
    ("json.JSONDecodeError", lambda: json.JSONDecodeError("Expecting value", "<html>", 0), C.SCHEMA_MISMATCH),
    ("KeyError", lambda: KeyError("id"), C.UNKNOWN),
    ("OSError without errno", lambda: OSError("something"), C.UNKNOWN),
    ("brace.AttemptTimeout", lambda: brace.AttemptTimeout(timeout=2.0), C.TIMEOUT),
    ("brace.RateLimited", lambda: brace.RateLimited(retry_after=1.5, name="api", requested=1, limit=10),
     C.RATE_LIMITED),
    ("brace.BulkheadFull", lambda: brace.BulkheadFull(name="db", max_concurrent=4, max_wait=0.0), C.RATE_LIMITED),
    ("brace.CircuitOpen", lambda: brace.CircuitOpen(name="api", retry_after=4.0), C.SERVICE_DOWN),
]


@pytest.mark.parametrize(("make", "expected"), [(make, expected) for _, make, expected in ERRORS],
                         ids=[label for label, _, _ in ERRORS])  # fmt: skip
def test_library_and_stdlib_errors(make: Callable[[], BaseException], expected: Category) -> None:
    error = make()
    verdict = DEFAULT_CLASSIFIER.classify(error)
    assert verdict.category is expected
    assert verdict.error is error
    assert_consistent(DEFAULT_CLASSIFIER, verdict)


ERRNOS = [
    (errno.ETIMEDOUT, C.TIMEOUT), (errno.ECONNRESET, C.NETWORK_ERROR), (errno.ECONNREFUSED, C.NETWORK_ERROR),
    (errno.ECONNABORTED, C.NETWORK_ERROR), (errno.EPIPE, C.NETWORK_ERROR), (errno.ENETUNREACH, C.NETWORK_ERROR),
    (errno.EHOSTUNREACH, C.NETWORK_ERROR), (errno.ENETDOWN, C.NETWORK_ERROR), (errno.EHOSTDOWN, C.NETWORK_ERROR),
    (errno.ENETRESET, C.NETWORK_ERROR), (errno.EADDRNOTAVAIL, C.NETWORK_ERROR), (errno.EACCES, C.PERMISSION_DENIED),
    (errno.EPERM, C.PERMISSION_DENIED), (errno.ENOENT, C.NOT_FOUND), (errno.EEXIST, C.UNKNOWN),
]  # fmt: skip


@pytest.mark.parametrize(("number", "expected"), ERRNOS, ids=[errno.errorcode[n] for n, _ in ERRNOS])
def test_oserror_errnos(number: int, expected: Category) -> None:
    assert DEFAULT_CLASSIFIER.classify(OSError(number, "os error")).category is expected


def test_errno_rule_name() -> None:
    verdict = DEFAULT_CLASSIFIER.classify(OSError(errno.ENETUNREACH, "unreachable"))
    assert (verdict.category, verdict.rule) == (C.NETWORK_ERROR, "builtin:errno")


def test_a_certificate_failure_inside_a_library_error_is_auth_invalid() -> None:
    try:
        try:
            raise ssl.SSLCertVerificationError("certificate verify failed: self-signed certificate")
        except ssl.SSLError as error:
            raise httpx.ConnectError(str(error)) from error
    except httpx.ConnectError as error:
        verdict = DEFAULT_CLASSIFIER.classify(error)
    assert (verdict.category, verdict.rule) == (C.AUTH_INVALID, "builtin:ssl")


@pytest.mark.parametrize(
    ("error", "retry_after"),
    [
        (brace.RateLimited(retry_after=1.5, name="api", requested=1, limit=10), 1.5),
        # An open breaker is brace's own decision to stop calling, not the server asking for a pause.
        (brace.CircuitOpen(name="api", retry_after=4.0), None),
        (brace.CircuitOpen(name="api", retry_after=float("inf")), None),
        (brace.CircuitOpen(name="api", retry_after=0.0), None),  # unknown
        (brace.RateLimited(retry_after=1e9, name="api", requested=1, limit=10), 300.0),  # capped
        (brace.AttemptTimeout(timeout=1.0), None),
    ],
)
def test_retry_after_of_brace_errors(error: BaseException, retry_after: float | None) -> None:
    verdict = DEFAULT_CLASSIFIER.classify(error)
    assert verdict.retry_after == retry_after
    assert verdict.rule == "builtin:brace"


def test_brace_errors_chained_to_a_cause_are_classified_by_the_cause() -> None:
    error = brace.RetryError(attempts=3)
    error.__cause__ = ConnectionResetError("reset")
    assert DEFAULT_CLASSIFIER.classify(error).category is C.NETWORK_ERROR


# -- HTTP statuses ------------------------------------------------------------------

STATUSES = [
    (408, C.TIMEOUT), (425, C.NETWORK_ERROR), (429, C.RATE_LIMITED), (500, C.INTERNAL_ERROR),
    (502, C.SERVICE_DOWN), (503, C.SERVICE_DOWN), (504, C.TIMEOUT), (401, C.AUTH_EXPIRED), (407, C.AUTH_INVALID),
    (511, C.AUTH_INVALID), (403, C.PERMISSION_DENIED), (404, C.NOT_FOUND), (410, C.NOT_FOUND),
    (400, C.SCHEMA_MISMATCH), (405, C.SCHEMA_MISMATCH), (406, C.SCHEMA_MISMATCH), (411, C.SCHEMA_MISMATCH),
    (412, C.SCHEMA_MISMATCH), (413, C.SCHEMA_MISMATCH), (414, C.SCHEMA_MISMATCH), (415, C.SCHEMA_MISMATCH),
    (422, C.SCHEMA_MISMATCH), (431, C.SCHEMA_MISMATCH), (409, C.INTERNAL_ERROR), (423, C.INTERNAL_ERROR),
    (507, C.INTERNAL_ERROR), (599, C.INTERNAL_ERROR), (501, C.UNKNOWN), (505, C.UNKNOWN), (418, C.UNKNOWN),
    (451, C.UNKNOWN),
]  # fmt: skip

STATUS_CARRIERS: dict[str, Callable[[int], object]] = {
    "httpx.HTTPStatusError": httpx_status_error,
    "httpx.Response": httpx_response,
    "requests.HTTPError": requests_http_error,
    "requests.Response": requests_response,
    "aiohttp.ClientResponseError": aiohttp_response_error,
    "urllib.error.HTTPError": urllib_http_error,
    "exception with status_code": StatusCodeError,
}


@pytest.mark.parametrize("carrier", STATUS_CARRIERS)
@pytest.mark.parametrize(("status", "expected"), STATUSES)
def test_statuses(carrier: str, status: int, expected: Category) -> None:
    verdict = DEFAULT_CLASSIFIER.classify(STATUS_CARRIERS[carrier](status))
    assert (verdict.category, verdict.status, verdict.rule) == (expected, status, "builtin:http-status")
    assert_consistent(DEFAULT_CLASSIFIER, verdict)


@pytest.mark.parametrize("carrier", STATUS_CARRIERS)
def test_401_after_a_refresh_is_auth_invalid(carrier: str) -> None:
    outcome = STATUS_CARRIERS[carrier](401)
    assert DEFAULT_CLASSIFIER.classify(outcome).category is C.AUTH_EXPIRED
    assert DEFAULT_CLASSIFIER.classify(outcome, refreshed=True).category is C.AUTH_INVALID


@pytest.mark.parametrize(
    "make",
    [httpx_status_error, httpx_response, requests_http_error, requests_response, aiohttp_response_error,
     urllib_http_error],
)  # fmt: skip
def test_retry_after_from_the_response(make: Callable[[int, dict[str, str]], object]) -> None:
    verdict = DEFAULT_CLASSIFIER.classify(make(503, {"Retry-After": "7"}))
    assert (verdict.category, verdict.retry_after) == (C.SERVICE_DOWN, 7.0)


def test_retry_after_is_capped_by_pushback_cap() -> None:
    classifier = ErrorClassifier(pushback_cap=timedelta(seconds=10))
    assert classifier.classify(httpx_status_error(429, {"Retry-After": "3600"})).retry_after == 10.0


def test_an_exception_with_a_status_attribute_and_headers_is_not_read_as_a_bare_status() -> None:
    class Odd(Exception):
        status = 503
        headers = "unreadable"

    # With headers it is a response: http_status decides (and reads 503).
    assert DEFAULT_CLASSIFIER.classify(Odd()).status == 503


def test_oserror_status_attributes_are_not_statuses() -> None:
    error = OSError("x")
    error.status = 503  # type: ignore[attr-defined]
    assert DEFAULT_CLASSIFIER.classify(error).category is C.UNKNOWN


def test_an_error_with_a_successful_response_is_classified_by_its_cause() -> None:
    error = ValueError("bad body")
    error.response = httpx_response(200)  # type: ignore[attr-defined]
    error.__cause__ = json.JSONDecodeError("Expecting value", "<html>", 0)
    assert DEFAULT_CLASSIFIER.classify(error).category is C.SCHEMA_MISMATCH


@pytest.mark.parametrize(
    ("result", "failure"),
    [
        (httpx_response(503, {"Retry-After": "7"}), True),
        (httpx_response(404), True),
        (httpx_response(200), False),
        (httpx_response(302), False),
        (requests_response(429), True),
        (requests_response(204), False),
        (None, False),
        ("text", False),
        ({"status_code": 500}, False),
        (42, False),
    ],
)
def test_is_failure(result: object, failure: bool) -> None:
    assert DEFAULT_CLASSIFIER.is_failure(result) is failure


def test_returned_responses() -> None:
    down = DEFAULT_CLASSIFIER.classify(httpx_response(503, {"Retry-After": "7"}))
    assert (down.category, down.status, down.retry_after, down.retryable) == (C.SERVICE_DOWN, 503, 7.0, True)
    fine = DEFAULT_CLASSIFIER.classify(httpx_response(200))
    assert (fine.category, fine.status) == (C.UNKNOWN, 200)


# -- treatments and classifications ---------------------------------------------------


def assert_consistent(classifier: ErrorClassifier, verdict: Classification) -> None:
    assert isinstance(verdict, Classification)
    assert verdict.treatment == classifier.treatment(verdict.category)


DEFAULTS = [
    (C.TIMEOUT, True, True, Severity.MEDIUM, Strategy.RETRY_WITH_BACKOFF, 3),
    (C.RATE_LIMITED, True, True, Severity.LOW, Strategy.WAIT_FOR_SERVER, 10),
    (C.SERVICE_DOWN, True, True, Severity.HIGH, Strategy.RETRY_THEN_FALLBACK, 10),
    (C.NETWORK_ERROR, True, True, Severity.MEDIUM, Strategy.RETRY_WITH_BACKOFF, 3),
    (C.AUTH_EXPIRED, False, True, Severity.LOW, Strategy.REFRESH_AND_RETRY, 2),
    (C.AUTH_INVALID, False, False, Severity.CRITICAL, Strategy.ESCALATE, 0),
    (C.PERMISSION_DENIED, False, False, Severity.HIGH, Strategy.ESCALATE, 0),
    (C.NOT_FOUND, False, False, Severity.MEDIUM, Strategy.ESCALATE, 0),
    (C.SCHEMA_MISMATCH, False, True, Severity.HIGH, Strategy.ADAPT_AND_RETRY, 2),
    (C.INTERNAL_ERROR, False, True, Severity.MEDIUM, Strategy.RETRY, 2),
    (C.UNKNOWN, False, False, Severity.HIGH, Strategy.ESCALATE, 0),
]
# Outages and throttling windows last seconds: equal jitter (never under half the
# nominal wait), capped low so that the call comes back soon after the server does.
RIDING_OUT = {C.RATE_LIMITED: 8.0, C.SERVICE_DOWN: 4.0}


@pytest.mark.parametrize(("category", "transient", "retryable", "severity", "strategy", "retries"), DEFAULTS)
def test_default_treatments(category: Category, transient: bool, retryable: bool, severity: Severity,
                            strategy: Strategy, retries: int) -> None:  # fmt: skip
    treatment = DEFAULT_TREATMENTS[category]
    assert (treatment.transient, treatment.retryable, treatment.severity, treatment.strategy,
            treatment.retries, treatment.pushback) == (transient, retryable, severity, strategy,
                                                            retries, True)  # fmt: skip
    assert treatment.backoff.kind == "exponential"
    if category in RIDING_OUT:
        assert (treatment.backoff.jitter, treatment.backoff.max) == ("equal", RIDING_OUT[category])
    else:
        assert (treatment.backoff.jitter, treatment.backoff.max) == ("full", 30.0)
    assert DEFAULT_CLASSIFIER.treatment(category) == treatment == DEFAULT_CLASSIFIER.treatment(category.value)


@pytest.mark.parametrize("category", [C.SERVICE_DOWN, C.RATE_LIMITED])
@given(seed=st.integers(0, 2**64 - 1))
def test_the_default_waits_ride_out_a_ten_second_outage_whatever_the_jitter(category: Category, seed: int) -> None:
    brace.testing.seed(seed)
    treatment = DEFAULT_TREATMENTS[category]
    waits = [treatment.backoff.delay(retry) for retry in range(1, treatment.retries + 1)]
    assert sum(waits) >= 10.0  # so the last retry comes after the outage is over
    assert max(waits) <= RIDING_OUT[category]  # and none waits long after it


def test_describe() -> None:
    verdict = DEFAULT_CLASSIFIER.classify(httpx_status_error(429, {"Retry-After": "2"}))
    assert verdict.describe() == (
        "RATE_LIMITED (HTTP 429, transient, retryable, severity LOW; wait for the server's time, then retry; "
        "up to 10 more attempts; server asked 2.0 s)"
    )
    assert DEFAULT_CLASSIFIER.classify(ssl.SSLCertVerificationError("x")).describe() == (
        "AUTH_INVALID (not transient, not retryable, severity CRITICAL; escalate)"
    )
    one_more = ErrorClassifier(treatments={C.TIMEOUT: {"retries": 1}}).classify(TimeoutError())
    assert one_more.describe().endswith("retry with backoff; up to 1 more attempt)")


def test_classifications_are_frozen_slotted_dataclasses() -> None:
    verdict = DEFAULT_CLASSIFIER.classify(TimeoutError())
    assert dataclasses.is_dataclass(verdict)
    assert not hasattr(verdict, "__dict__")
    with pytest.raises(dataclasses.FrozenInstanceError):
        verdict.category = C.UNKNOWN  # type: ignore[misc]
    # The verdict compares; the error it was about does not.
    assert verdict == DEFAULT_CLASSIFIER.classify(TimeoutError("another"))
    hash(DEFAULT_CLASSIFIER.classify(httpx_response(503)))


def test_treatment_overrides_by_mapping_and_by_treatment() -> None:
    patient = brace.Backoff.constant(delay=5.0)
    custom = Treatment(True, True, "low", "retry", 9, patient, pushback=False)  # type: ignore[arg-type]
    classifier = ErrorClassifier(treatments={
        C.TIMEOUT: {"retries": 7, "strategy": "retry", "severity": 4},
        "rate_limited": custom,
        C.NOT_FOUND: {"retryable": True, "retries": 1},
    })  # fmt: skip
    timeout = classifier.classify(TimeoutError())
    assert (timeout.retries, timeout.strategy, timeout.severity) == (7, Strategy.RETRY, Severity.CRITICAL)
    assert timeout.backoff == DEFAULT_TREATMENTS[C.TIMEOUT].backoff  # fields not named keep the default
    limited = classifier.classify(httpx_status_error(429))
    assert limited.treatment == custom
    assert (custom.severity, custom.strategy, limited.backoff) == (Severity.LOW, Strategy.RETRY, patient)
    assert classifier.classify(httpx_status_error(404)).retryable
    assert DEFAULT_CLASSIFIER.treatment(C.TIMEOUT).retries == 3  # the defaults are untouched


# -- user rules -----------------------------------------------------------------------


class QuotaError(Exception):
    pass


MATCHERS: list[tuple[str, dict[str, Any], object, object]] = [
    # (label, matcher, an outcome it matches, an outcome it does not)
    ("types", {"types": QuotaError}, QuotaError("x"), KeyError("x")),
    ("types tuple", {"types": (QuotaError, KeyError)}, KeyError("x"), ValueError("x")),
    ("types of results", {"types": dict}, {"error": "quota"}, ["error"]),
    ("predicate", {"predicate": lambda e: "quota" in str(e)}, ValueError("quota spent"), ValueError("bad")),
    ("status int", {"status": 418}, httpx_status_error(418), httpx_status_error(419)),
    ("status range", {"status": range(520, 530)}, httpx_response(522), httpx_response(530)),
    ("status iterable", {"status": [418, 451]}, StatusCodeError(451), StatusCodeError(452)),
    ("errno int", {"errno": errno.EEXIST}, OSError(errno.EEXIST, "exists"), OSError(errno.ENOENT, "missing")),
    ("errno iterable", {"errno": {errno.EEXIST, errno.EBUSY}}, OSError(errno.EBUSY, "busy"), OSError("x")),
    ("message str", {"message": r"quota \d+"}, ValueError("quota 42 spent"), ValueError("quota spent")),
    ("message pattern", {"message": re.compile("QUOTA", re.I)}, ValueError("quota"), ValueError("limit")),
    ("all must match", {"types": ValueError, "message": "quota"}, ValueError("quota"), KeyError("quota")),
]


@pytest.mark.parametrize(("matcher", "hit", "miss"), [(m, h, x) for _, m, h, x in MATCHERS],
                         ids=[label for label, _, _, _ in MATCHERS])  # fmt: skip
def test_user_rule_matchers(matcher: dict[str, Any], hit: object, miss: object) -> None:
    classifier = ErrorClassifier(rules=[ErrorClassifier.rule(C.RATE_LIMITED, name="quota", **matcher)])
    verdict = classifier.classify(hit)
    assert (verdict.category, verdict.rule) == (C.RATE_LIMITED, "quota")
    assert classifier.classify(miss).rule != "quota"


def test_user_rules_run_in_order_before_the_builtin_ones() -> None:
    first = ErrorClassifier.rule("not_found", types=ConnectionError, name="first")
    second = ErrorClassifier.rule("permission_denied", types=ConnectionResetError, name="second")
    classifier = ErrorClassifier(rules=[first, second])
    assert classifier.classify(ConnectionResetError()).rule == "first"
    assert classifier.classify(TimeoutError()).rule == "builtin:stdlib"
    classifier.add_rule(ErrorClassifier.rule(C.SERVICE_DOWN, types=TimeoutError, name="third"))
    classifier.add_rule(ErrorClassifier.rule(C.UNKNOWN, types=TimeoutError, name="fourth"))
    assert classifier.rules == (first, second, classifier.rules[2], classifier.rules[3])
    assert classifier.classify(TimeoutError()).rule == "third"


def test_builtin_false_runs_only_the_user_rules() -> None:
    classifier = ErrorClassifier(rules=[Rule(C.TIMEOUT, types=KeyError)], builtin=False)
    assert classifier.classify(KeyError()).category is C.TIMEOUT
    assert classifier.classify(TimeoutError()).category is C.UNKNOWN
    assert classifier.classify(httpx_response(503)).category is C.UNKNOWN


def test_rule_overrides_apply_to_what_the_rule_classifies() -> None:
    rule = ErrorClassifier.rule(C.SERVICE_DOWN, status=503, retries=5, strategy="retry", pushback=False)
    classifier = ErrorClassifier(rules=[rule], treatments={C.SERVICE_DOWN: {"severity": Severity.CRITICAL}})
    verdict = classifier.classify(httpx_status_error(503))
    assert (verdict.retries, verdict.strategy, verdict.pushback) == (5, Strategy.RETRY, False)
    assert verdict.severity is Severity.CRITICAL  # the classifier's treatment, under the rule's overrides
    assert classifier.classify(brace.CircuitOpen(name=None, retry_after=1.0)).retries == 10
    assert dict(rule.overrides) == {"retries": 5, "strategy": Strategy.RETRY, "pushback": False}
    assert rule.name == "user:service_down"
    assert "status=[503]" in repr(rule)


def test_a_raising_predicate_counts_as_no_match_and_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    def broken(outcome: object) -> bool:
        raise RuntimeError("predicate bug")

    classifier = ErrorClassifier(rules=[ErrorClassifier.rule(C.TIMEOUT, predicate=broken, name="broken")])
    with caplog.at_level(logging.ERROR, logger="brace"):
        for _ in range(3):
            assert classifier.classify(ConnectionResetError()).category is C.NETWORK_ERROR
    assert [r.message for r in caplog.records] == [
        "brace: the predicate of classifier rule 'broken' raised; it counts as no match"
    ]


def test_user_rules_also_match_what_an_error_wraps() -> None:
    classifier = ErrorClassifier(rules=[ErrorClassifier.rule(C.RATE_LIMITED, types=QuotaError)])
    wrapper = RuntimeError("call failed")
    wrapper.__cause__ = QuotaError()
    assert classifier.classify(wrapper).category is C.RATE_LIMITED


# -- cause chains ---------------------------------------------------------------------


def test_follows_the_cause() -> None:
    try:
        try:
            raise ConnectionResetError("reset")
        except OSError as error:
            raise RuntimeError("fetch failed") from error
    except RuntimeError as error:
        verdict = DEFAULT_CLASSIFIER.classify(error)
    assert (verdict.category, verdict.rule) == (C.NETWORK_ERROR, "builtin:stdlib")
    assert isinstance(verdict.error, RuntimeError)


def test_follows_the_context() -> None:
    try:
        try:
            raise TimeoutError("slow")
        except TimeoutError:
            raise KeyError("cleanup failed")  # noqa: B904 - the implicit context is the point
    except KeyError as error:
        assert DEFAULT_CLASSIFIER.classify(error).category is C.TIMEOUT


def test_cause_before_context() -> None:
    error = RuntimeError()
    error.__cause__ = PermissionError()
    error.__context__ = TimeoutError()
    assert DEFAULT_CLASSIFIER.classify(error).category is C.PERMISSION_DENIED


def test_the_retry_after_of_a_wrapped_response() -> None:
    wrapper = RuntimeError("sync failed")
    wrapper.__cause__ = httpx_status_error(429, {"Retry-After": "12"})
    verdict = DEFAULT_CLASSIFIER.classify(wrapper)
    assert (verdict.category, verdict.status, verdict.retry_after) == (C.RATE_LIMITED, 429, 12.0)


@pytest.mark.parametrize("link", ["__cause__", "__context__"])
def test_cycles_end(link: str) -> None:
    first, second = RuntimeError("a"), ValueError("b")
    setattr(first, link, second)
    setattr(second, link, first)
    assert DEFAULT_CLASSIFIER.classify(first).category is C.UNKNOWN


def _wrapped_in(error: BaseException, depth: int, how: str) -> BaseException:
    """error under `depth` wrappers, linked by __cause__, __context__, urllib's reason, or each in turn."""
    for level in range(depth):
        link = how if how != "mixed" else ("__cause__", "__context__", "reason")[level % 3]
        if link == "reason":
            error = urllib.error.URLError(error)
        else:
            wrapper = RuntimeError(f"wrapper {level}")
            setattr(wrapper, link, error)
            error = wrapper
    return error


@pytest.mark.parametrize("how", ["__cause__", "__context__", "reason", "mixed"])
def test_the_whole_chain_is_walked(how: str) -> None:
    # The walk stopped after 16 errors: a timeout under more wrappers was
    # UNKNOWN, escalated instead of retried.
    error = _wrapped_in(TimeoutError("at the bottom"), 10_000, how)
    verdict = DEFAULT_CLASSIFIER.classify(error)
    assert (verdict.category, verdict.rule) == (C.TIMEOUT, "builtin:stdlib")
    assert verdict.error is error


def test_a_certificate_failure_deep_under_a_connection_error() -> None:
    error = requests.exceptions.ConnectionError("connect failed")
    error.__cause__ = _wrapped_in(ssl.SSLCertVerificationError("self-signed"), 1_000, "mixed")
    assert DEFAULT_CLASSIFIER.classify(error).category is C.AUTH_INVALID


@pytest.mark.parametrize("where", ["top", "bottom"])
def test_a_long_chain_that_cycles_ends(where: str) -> None:
    bottom = RuntimeError("bottom")
    top = _wrapped_in(bottom, 10_000, "mixed")
    bottom.__cause__ = top  # back to the top: nothing in the loop matches
    assert DEFAULT_CLASSIFIER.classify(top if where == "top" else bottom).category is C.UNKNOWN
    bottom.__context__ = TimeoutError("in a branch of the loop")
    assert DEFAULT_CLASSIFIER.classify(top if where == "top" else bottom).category is C.TIMEOUT


@pytest.mark.slow  # reads an endless chain up to its bound: the README's command runs it, the inner loop does not
def test_a_chain_made_up_as_it_is_read_ends() -> None:
    class Endless(Exception):
        """Its reason is a new error every time it is read: a chain with no end."""

        @property
        def reason(self) -> BaseException:
            return Endless()

    # A wrapper whose reason is classified: urllib.error.URLError, by duck typing.
    Endless.__module__, Endless.__name__ = "urllib.error", "URLError"
    assert DEFAULT_CLASSIFIER.classify(Endless()).category is C.UNKNOWN


# -- bad input ------------------------------------------------------------------------

RULE_ERRORS: list[tuple[dict[str, Any], type[Exception], str]] = [
    ({}, ValueError, "a rule must match on at least one of types, predicate, status, errno, message"),
    ({"category": "flaky", "types": KeyError}, ValueError, "category must be a brace.Category or one of 'timeout'"),
    ({"category": 3, "types": KeyError}, TypeError, "category must be a brace.Category"),
    ({"types": 3}, TypeError, "types must be a type or an iterable of types or None, got int"),
    ({"types": []}, ValueError, "types must be a type or an iterable of types (at least one)"),
    ({"types": [KeyError, "x"]}, TypeError, "types must be a type or an iterable of types, got an item of type str"),
    ({"predicate": 3}, TypeError, "predicate must be callable or None, got int"),
    ({"status": 600}, ValueError, "status must be an int from 100 to 599, a range or an iterable of them, got 600"),
    ({"status": range(500, 700)}, ValueError, "status must be an int from 100 to 599"),
    ({"status": "503"}, TypeError, "status must be an int from 100 to 599, a range or an iterable of them, got str"),
    ({"status": [503, True]}, TypeError, "status must be an int from 100 to 599"),
    ({"status": []}, ValueError, "status must be an int from 100 to 599, a range or an iterable of them (at least"),
    ({"errno": "EPIPE"}, TypeError, "errno must be an int"),
    ({"errno": -1}, ValueError, "errno must be an int from 0"),
    ({"message": "("}, ValueError, "message must be a valid regular expression, got '('"),
    ({"message": 3}, TypeError, "message must be a regular expression (str or re.Pattern), got int"),
    ({"message": re.compile(b"x")}, TypeError, "message must be a str pattern"),
    ({"types": KeyError, "name": 3}, TypeError, "name must be a str or None, got int"),
    ({"types": KeyError, "tries": 3}, ValueError, "rule 'user:timeout' has no field 'tries'; the fields are"),
    ({"types": KeyError, "retries": -1}, ValueError, "rule 'user:timeout': retries must be an int from 0 to 2**63 - 1"),
    ({"types": KeyError, "strategy": "pray"}, ValueError,
     "rule 'user:timeout': strategy must be a brace.Strategy or one of 'retry_with_backoff'"),
    ({"types": KeyError, "backoff": 1.0}, TypeError, "rule 'user:timeout': backoff must be a brace.Backoff"),
]


@pytest.mark.parametrize(("kwargs", "error", "message"), RULE_ERRORS)
def test_bad_rules(kwargs: dict[str, Any], error: type[Exception], message: str) -> None:
    kwargs = {"category": C.TIMEOUT} | kwargs
    with pytest.raises(error, match=re.escape(message)):
        ErrorClassifier.rule(**kwargs)


CLASSIFIER_ERRORS: list[tuple[dict[str, Any], type[Exception], str]] = [
    ({"rules": 3}, TypeError, "rules must be an iterable of brace.Rule, got int"),
    ({"rules": [KeyError]}, TypeError, "rules must be an iterable of brace.Rule, got an item of type type"),
    ({"treatments": [1]}, TypeError, "treatments must be a mapping of Category to Treatment or None, got list"),
    ({"treatments": {"slow": {}}}, ValueError, "treatments' keys must be a brace.Category or one of 'timeout'"),
    ({"treatments": {C.TIMEOUT: 3}}, TypeError,
     "treatments['timeout'] must be a brace.Treatment or a mapping of its fields, got int"),
    ({"treatments": {C.TIMEOUT: {"attempts": 3}}}, ValueError,
     "treatments['timeout'] has no field 'attempts'; the fields are transient, retryable, severity, strategy, "
     "retries, backoff, pushback"),
    ({"treatments": {C.TIMEOUT: {"retries": -1}}}, ValueError,
     "treatments['timeout']: retries must be an int from 0 to 2**63 - 1, got -1"),
    ({"treatments": {C.TIMEOUT: {"retries": 2.5}}}, TypeError,
     "treatments['timeout']: retries must be an int from 0 to 2**63 - 1, got float"),
    ({"treatments": {C.TIMEOUT: {"retries": True}}}, TypeError, "retries must be an int from 0 to 2**63 - 1, got bool"),
    ({"treatments": {C.TIMEOUT: {"strategy": "hope"}}}, ValueError,
     "treatments['timeout']: strategy must be a brace.Strategy or one of 'retry_with_backoff', 'wait_for_server'"),
    ({"treatments": {C.TIMEOUT: {"severity": 5}}}, ValueError, "severity must be a brace.Severity, 1 to 4"),
    ({"treatments": {C.TIMEOUT: {"severity": "dire"}}}, ValueError, "severity must be a brace.Severity, 1 to 4"),
    ({"treatments": {C.TIMEOUT: {"backoff": 2}}}, TypeError,
     "treatments['timeout']: backoff must be a brace.Backoff, got int"),
    ({"treatments": {C.TIMEOUT: {"transient": "yes"}}}, TypeError, "transient must be a bool, got str"),
    ({"treatments": {C.TIMEOUT: {"pushback": 1}}}, TypeError, "pushback must be a bool, got int"),
    ({"builtin": "yes"}, TypeError, "builtin must be a bool, got str"),
    ({"pushback_cap": 0}, ValueError, "pushback_cap must be a finite number of seconds from 1e-09 to 4.61169e+09"),
    ({"pushback_cap": "5s"}, TypeError, "pushback_cap must be seconds (float), a timedelta"),
]


@pytest.mark.parametrize(("kwargs", "error", "message"), CLASSIFIER_ERRORS)
def test_bad_classifiers(kwargs: dict[str, Any], error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=re.escape(message)):
        ErrorClassifier(**kwargs)


def test_bad_calls() -> None:
    with pytest.raises(TypeError, match="refreshed must be a bool, got str"):
        DEFAULT_CLASSIFIER.classify(TimeoutError(), refreshed="yes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="category must be a brace.Category or one of 'timeout'"):
        DEFAULT_CLASSIFIER.treatment("slow")
    with pytest.raises(TypeError, match="rule must be a brace.Rule, got function"):
        ErrorClassifier().add_rule(lambda e: True)  # type: ignore[arg-type]


# -- robustness -----------------------------------------------------------------------


def _raise(*args: object) -> Any:
    raise RuntimeError("hostile")


class Hostile(Exception):
    """An exception whose every interesting attribute raises."""

    headers = property(_raise)
    response = property(_raise)
    status_code = property(_raise)
    status = property(_raise)
    errno = property(_raise)
    reason = property(_raise)
    retry_after = property(_raise)
    __str__ = _raise
    __repr__ = _raise


class HostileClass(Exception):
    __class__ = property(_raise)


class NamelessMeta(type):
    @property
    def __name__(cls) -> str:  # type: ignore[override]
        raise RuntimeError("__name__")


class HostileClassAndName(Exception, metaclass=NamelessMeta):
    """isinstance() raises on it (its __class__), and so does its class's __name__."""

    __class__ = property(_raise)


class HostileResponse:
    """A returned value that looks like a response but cannot be read."""

    status_code = 503
    headers = property(_raise)
    __getattr__ = _raise


class OddModule(Exception):
    pass


OddModule.__module__ = 3  # type: ignore[assignment]


class WeirdStatus(Exception):
    status_code = True
    status = 10**6


class MockLike:
    """Has every attribute (like a Mock): each is the object itself."""

    def __getattr__(self, name: str) -> object:
        return self


HOSTILE: dict[str, Callable[[], object]] = {
    "raising attributes": Hostile, "raising __class__": HostileClass,
    "raising __class__ and __name__": HostileClassAndName, "unreadable response": HostileResponse,
    "non-str __module__": OddModule, "odd statuses": WeirdStatus, "mock-like": MockLike, "object": object,
    "None": lambda: None, "int": lambda: 3, "str": lambda: "503", "bytes": lambda: b"\xff",
    "dict": lambda: {"headers": {"Retry-After": "x"}, "status_code": 503},
    "KeyboardInterrupt": KeyboardInterrupt, "SystemExit": lambda: SystemExit(3),
}  # fmt: skip


@pytest.mark.parametrize("make", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_outcomes_are_classified_without_raising(make: Callable[[], object]) -> None:
    # Built in the test: pytest itself would trip over them as parameters.
    outcome = make()
    for refreshed in (False, True):
        verdict = DEFAULT_CLASSIFIER.classify(outcome, refreshed=refreshed)
        assert_consistent(DEFAULT_CLASSIFIER, verdict)
    DEFAULT_CLASSIFIER.is_failure(outcome)


def test_a_hostile_cause_is_skipped() -> None:
    class Wrapper(Exception):
        __cause__ = property(_raise)

    assert DEFAULT_CLASSIFIER.classify(Wrapper()).category is C.UNKNOWN


def _exception(kind: type[BaseException], args: tuple[object, ...], attributes: dict[str, object],
               cause: BaseException | None) -> BaseException:  # fmt: skip
    try:
        error = kind(*args)
    except Exception:
        error = kind.__new__(kind, *args)  # without __init__: its attributes missing
    for name, value in attributes.items():
        try:
            setattr(error, name, value)
        except Exception:
            pass
    error.__cause__ = cause
    return error


scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(), st.text(max_size=20),
                    st.binary(max_size=10))  # fmt: skip
headers = st.dictionaries(st.sampled_from(["Retry-After", "RateLimit", "X-RateLimit-Reset", "x"]), scalars,
                          max_size=3)  # fmt: skip
attribute_values = st.one_of(scalars, headers, st.builds(lambda: Hostile()))
exception_kinds = st.sampled_from([
    Exception, ValueError, OSError, ConnectionError, TimeoutError, ssl.SSLError, socket.gaierror, Hostile,
    httpx.ReadTimeout, httpx.HTTPStatusError, requests.HTTPError, requests.ConnectionError,
    urllib3.exceptions.MaxRetryError, urllib3.exceptions.ResponseError, aiohttp.ClientResponseError,
    brace.CircuitOpen, brace.RateLimited, KeyboardInterrupt,
])  # fmt: skip
exceptions = st.recursive(
    st.builds(_exception, exception_kinds, st.tuples(scalars, scalars),
              st.dictionaries(st.sampled_from(["status", "status_code", "errno", "headers", "reason", "response",
                                               "retry_after", "code"]), attribute_values, max_size=4),
              st.none()),
    lambda inner: st.builds(_exception, exception_kinds, st.tuples(scalars), st.just({}), inner),
    max_leaves=4,
)  # fmt: skip
outcomes = st.one_of(exceptions, scalars, headers, st.builds(lambda: MockLike()))


@pytest.mark.slow  # many examples: the README's command runs it, the inner loop does not
@pytest.mark.filterwarnings("ignore:code property is deprecated:DeprecationWarning")  # aiohttp's, read by duck typing
@settings(max_examples=300, deadline=None)
@given(outcome=outcomes, refreshed=st.booleans())
def test_classify_never_raises_and_is_consistent(outcome: object, refreshed: bool) -> None:
    classifier = ErrorClassifier(rules=[ErrorClassifier.rule(C.TIMEOUT, predicate=_raise, name="hostile")])
    verdict = classifier.classify(outcome, refreshed=refreshed)
    assert_consistent(classifier, verdict)
    assert verdict.error is outcome
    assert verdict.retry_after is None or 0 <= verdict.retry_after <= 300
    assert verdict.status is None or 100 <= verdict.status <= 999
    assert isinstance(verdict.describe(), str)
    assert isinstance(classifier.is_failure(outcome), bool)


def test_delay_is_the_servers_wait_when_honoured_else_the_backoff() -> None:
    constant = brace.Backoff.constant(delay=4.0)
    classifier = ErrorClassifier(treatments={"rate_limited": {"backoff": constant},
                                             "timeout": {"backoff": constant}})  # fmt: skip
    told = classifier.classify(brace.RateLimited(retry_after=9.0, name=None, requested=1, limit=1))
    assert told.retry_after == 9.0
    # Never earlier than told; spread over up to 20% more.
    assert all(9.0 <= told.delay(1) <= 9.0 * 1.2 for _ in range(200))
    assert len({told.delay(1) for _ in range(20)}) > 1
    quiet = ErrorClassifier(treatments={"rate_limited": {"backoff": constant, "pushback": False}})
    assert quiet.classify(brace.RateLimited(retry_after=9.0, name=None, requested=1, limit=1)).delay(1) == 4.0
    assert classifier.classify(TimeoutError()).delay(3) == 4.0


def test_classification_works_in_a_python_without_ssl() -> None:
    # brace.classify does not import ssl (no TLS error exists before ssl is loaded), so a
    # Python built without it classifies too. In a subprocess: this one has ssl loaded.
    import subprocess
    import sys

    script = (
        "import sys\n"
        "sys.modules['ssl'] = None\n"
        "from brace.classify import DEFAULT_CLASSIFIER\n"
        "print(DEFAULT_CLASSIFIER.classify(ConnectionResetError()).category.value,\n"
        "      DEFAULT_CLASSIFIER.classify(OSError(5, 'io')).category.value)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["network_error", "unknown"]


def test_tls_and_resolver_errors_are_recognised_from_their_c_modules() -> None:
    # What the recogniser reads once ssl and socket are loaded (this module imports both).
    assert DEFAULT_CLASSIFIER.classify(ssl.SSLZeroReturnError("closed")).category is Category.NETWORK_ERROR
    assert DEFAULT_CLASSIFIER.classify(socket.herror(1, "unknown host")).category is Category.NETWORK_ERROR


def test_max_attempts_is_the_deprecated_name_of_retries() -> None:
    with pytest.warns(DeprecationWarning, match="max_attempts is deprecated: it is retries now"):
        classifier = ErrorClassifier(treatments={C.TIMEOUT: {"max_attempts": 4}})
    assert classifier.treatment(C.TIMEOUT).retries == 4
    with pytest.warns(DeprecationWarning, match="max_attempts is deprecated"):
        rule = ErrorClassifier.rule(C.TIMEOUT, types=KeyError, max_attempts=2)
    assert dict(rule.overrides) == {"retries": 2}
    with pytest.warns(DeprecationWarning, match="max_attempts is deprecated"):
        assert classifier.classify(TimeoutError()).max_attempts == 4
    with pytest.warns(DeprecationWarning), pytest.raises(TypeError, match="not both"):
        ErrorClassifier(treatments={C.TIMEOUT: {"max_attempts": 4, "retries": 4}})
