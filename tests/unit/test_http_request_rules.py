"""The pure rules of `http.request`: statuses (expected, retryable, Retry-After), header
redaction and scrubbing, and its params hooks (`check_params`, `redact_params`)."""

from __future__ import annotations

import datetime as dt

import pytest

from jobserver.definitions.http_request import check_params, redact_params
from jobserver.outbound.redact import redact_headers, scrub, secret_names, secret_values
from jobserver.outbound.status import expected, retry_after_seconds, retryable

NOW = dt.datetime(2024, 1, 1, 12, 0, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("status", "spec", "ok"),
    [
        (200, None, True),
        (299, None, True),
        (300, None, False),
        (201, 201, True),
        (200, 201, False),
        (204, [200, 204], True),
        (404, [200, 204], False),
        (404, "4xx", True),
        (404, "4XX", True),
        (500, "4xx", False),
        (200, True, False),
        (200, "2xz", False),
    ],
)
def test_expected(status: int, spec: object, ok: bool) -> None:
    assert expected(status, spec) is ok


def test_retryable_statuses() -> None:
    assert [s for s in (400, 401, 404, 408, 409, 429, 500, 502, 599) if retryable(s)] == [
        408,
        429,
        500,
        502,
        599,
    ]


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (None, None),
        ("", None),
        ("soon", None),
        ("-1", None),
        ("1.5", None),
        ("0", 0.0),
        (" 120 ", 120.0),
        ("86400", 3600.0),  # capped at an hour
        ("Mon, 01 Jan 2024 12:00:30 GMT", 30.0),
        ("Mon, 01 Jan 2024 11:00:00 GMT", 0.0),  # in the past: now
        ("Tue, 02 Jan 2024 12:00:00 GMT", 3600.0),
    ],
)
def test_retry_after(value: str | None, seconds: float | None) -> None:
    assert retry_after_seconds(value, NOW) == seconds


def test_headers_are_redacted_by_name_in_any_case() -> None:
    secret = secret_names(["X-Mine"])
    received = [("authorization", "a"), ("X-MINE", "m"), ("Set-Cookie", "1")]
    received += [("Set-Cookie", "2"), ("X-Ok", "v")]
    shown = redact_headers(received, secret)
    assert shown == {"authorization": "***", "X-MINE": "***", "Set-Cookie": "***, ***", "X-Ok": "v"}
    assert secret_names() >= {"authorization", "cookie", "x-api-key", "proxy-authorization"}


def test_secret_values_are_scrubbed_from_text() -> None:
    headers = {"Authorization": "Bearer tok-12345", "X-Ok": "public-value", "Cookie": "ab"}
    values = secret_values(headers, secret_names())
    assert values == ["Bearer tok-12345", "tok-12345"]  # "ab" is too short to scrub
    assert scrub("got Bearer tok-12345 and tok-12345, public-value", values) == (
        "got *** and ***, public-value"
    )


def test_payload_and_body_are_exclusive() -> None:
    assert check_params({"url": "http://x", "payload": 1}) == []
    assert check_params({"url": "http://x", "body": "b"}) == []
    [(path, message)] = check_params({"url": "http://x", "payload": None, "body": "b"})
    assert path == ("body",) and "not both" in message


def test_redact_params_hides_secret_headers_and_keeps_the_rest() -> None:
    params = {
        "url": "http://x",
        "headers": {"Authorization": "t", "x-mine": "m", "X-Ok": "v"},
        "secretHeaders": ["X-Mine"],
    }
    shown = redact_params(params)
    assert shown["headers"] == {"Authorization": "***", "x-mine": "***", "X-Ok": "v"}
    assert params["headers"]["Authorization"] == "t"  # the stored params are not changed
    assert redact_params({"url": "http://x"}) == {"url": "http://x"}
    assert redact_params({"headers": {"Cookie": "c"}, "secretHeaders": "odd"}) == {
        "headers": {"Cookie": "***"},
        "secretHeaders": "odd",
    }
