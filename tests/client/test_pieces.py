"""The client's pure parts: back-off and Retry-After, the error classes by status, lenient
models, query building, and the lazy transactional exports."""

from __future__ import annotations

import datetime as dt
import importlib.util

import pytest

import jobserver.client as client
from jobserver.client import calls
from jobserver.client.errors import (
    Conflict,
    JobserverError,
    RateLimited,
    ServerError,
    ValidationError,
    error_for,
    parse_retry_after,
)
from jobserver.client.models import Job
from jobserver.client.retry import RetryPolicy


def test_backoff_doubles_to_its_cap_and_yields_to_retry_after() -> None:
    p = RetryPolicy(base=1.0, cap=4.0, jitter=0.0, retry_after_cap=10.0)
    assert [p.delay(n) for n in (1, 2, 3, 4, 5)] == [1.0, 2.0, 4.0, 4.0, 4.0]
    assert p.delay(1, "7") == 7.0  # the server asked for longer
    assert p.delay(3, "1") == 4.0  # the back-off is longer already
    assert p.delay(1, "3600") == 10.0  # capped
    jittery = RetryPolicy(base=1.0, cap=1.0, jitter=0.2)
    assert all(0.8 <= jittery.delay(1) <= 1.2 for _ in range(50))


def test_retry_after_as_seconds_or_http_date() -> None:
    now = dt.datetime(2026, 1, 1, 12, 0, 0, tzinfo=dt.UTC)
    assert parse_retry_after("5") == 5.0
    assert parse_retry_after("Thu, 01 Jan 2026 12:00:30 GMT", now) == 30.0
    assert parse_retry_after("Thu, 01 Jan 2026 11:00:00 GMT", now) == 0.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


def test_errors_by_status_carry_code_field_and_body() -> None:
    e = error_for(
        422, {"error": "params.count: too big", "code": "validation_error", "field": "params.count"}
    )
    assert isinstance(e, ValidationError) and e.field == "params.count" and e.status == 422
    c = error_for(
        409, {"error": "job is already failed", "code": "invalid_state", "jobStatus": "failed"}
    )
    assert isinstance(c, Conflict) and c.body["jobStatus"] == "failed"
    r = error_for(429, {"error": "quota", "code": "quota_exceeded"}, {"Retry-After": "3"})
    assert isinstance(r, RateLimited) and r.retry_after == 3.0 and r.code == "quota_exceeded"
    s = error_for(502, "<html>bad gateway</html>")
    assert isinstance(s, ServerError) and s.code == "server_error" and "bad gateway" in s.message
    other = error_for(418, None)
    assert type(other) is JobserverError and other.message == "HTTP 418"
    assert "HTTP 409, invalid_state" in str(c)


def test_models_read_leniently_and_keep_the_raw_answer() -> None:
    job = Job.from_json(
        {
            "id": "x",
            "status": "running",
            "progress": {"done": 1, "total": 4, "percent": 25.0},
            "extra": 1,
        }
    )
    assert job.percent == 25.0 and not job.is_terminal and job.raw["extra"] == 1
    assert job.created_at is None and job.tags == [] and job.attempt == 0
    assert Job.from_json({"jobId": "y", "status": "succeeded"}).succeeded


def test_queries_join_lists_and_skip_what_is_unset() -> None:
    paged = calls.list_jobs(status=["failed", "expired"], queue=None, tag=["a", "b"], page_size=5)
    call = paged.call("CUR")
    assert call.params == [
        ("status", "failed,expired"),
        ("tag", "a,b"),
        ("limit", "5"),
        ("cursor", "CUR"),
    ]
    assert calls.get_job("a/b").path == "/v1/jobs/a%2Fb"
    spec = calls.job_spec("echo", {"m": 1}, version=1, delay_seconds=0, extra={"retryDelays": [1]})
    assert spec == {
        "definitionKey": "echo",
        "params": {"m": 1},
        "definitionVersion": 1,
        "delaySeconds": 0,
        "retryDelays": [1],
    }
    assert calls.submit(spec).idempotent is False
    assert calls.submit({**spec, "idempotencyKey": "k"}).idempotent is True


def test_enqueue_is_exported_from_the_transactional_module_when_it_exists() -> None:
    if importlib.util.find_spec("jobserver.client.transactional") is None:
        with pytest.raises(ImportError):
            client.enqueue  # noqa: B018
    else:
        from jobserver.client import transactional

        assert client.enqueue is transactional.enqueue
        assert client.enqueue_many is transactional.enqueue_many
    with pytest.raises(AttributeError):
        client.nothing_here  # noqa: B018
