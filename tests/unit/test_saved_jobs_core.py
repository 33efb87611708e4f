"""What a saved job stands for, as pure functions: the execute override merge, the submission,
the owned schedule's columns, and a retry of one execution."""

from __future__ import annotations

import datetime as dt
import uuid

from jobserver.core.names import SCHEDULE_NAME
from jobserver.core.saved_jobs import (
    merge_params,
    owned_schedule_columns,
    retried_job,
    schedule_name_for,
    submission_of,
)


def test_overrides_merge_deeply_objects_key_by_key_anything_else_replaces() -> None:
    saved = {
        "url": "https://example.com/a",
        "headers": {"Authorization": "Bearer x", "X-Run": "1"},
        "payload": {"items": [1, 2], "meta": {"a": 1, "b": 2}},
    }
    override = {
        "headers": {"X-Run": "2"},
        "payload": {"items": [3], "meta": {"b": None}},
        "new": True,
    }
    assert merge_params(saved, override) == {
        "url": "https://example.com/a",
        "headers": {"Authorization": "Bearer x", "X-Run": "2"},
        "payload": {"items": [3], "meta": {"a": 1, "b": None}},
        "new": True,
    }
    assert saved["headers"] == {"Authorization": "Bearer x", "X-Run": "1"}  # not modified
    assert merge_params(saved, [1]) == [1]  # not an object: replaces
    assert merge_params([1, 2], {"a": 1}) == {"a": 1}
    assert merge_params(saved, {}) == saved


def test_the_submission_a_saved_job_stands_for() -> None:
    cols = {
        "definition_key": "echo",
        "definition_version": None,
        "max_attempts": 2,
        "timeout_seconds": 30.0,
        "retry_delays": [0.0, 10.0],
        "tags": ["a"],
    }
    assert submission_of(cols, {"m": 1}) == {
        "definitionKey": "echo",
        "params": {"m": 1},
        "maxAttempts": 2,
        "timeoutSeconds": 30.0,
        "retryDelays": [0.0, 10.0],
        "tags": ["a"],
    }


def test_the_owned_schedule_carries_the_job_fields_owner_and_link() -> None:
    sid = uuid.uuid4()
    name = schedule_name_for(sid)
    assert SCHEDULE_NAME.matches(name) and str(sid) in name
    cols = {
        "definition_key": "echo",
        "definition_version": 1,
        "params": {"m": 1},
        "every_seconds": 60,
        "cron": None,
        "timezone": "UTC",
        "max_attempts": None,
        "tags": ["t"],
        "timeout_seconds": 5.0,
        "retry_delays": [1, 2],
    }
    out = owned_schedule_columns(cols, sid, "alice")
    assert out["saved_job_id"] == sid and out["job_owner"] == "alice"
    assert out["retry_delays"] == [1.0, 2.0] and out["timeout_seconds"] == 5.0
    assert out["every_seconds"] == 60 and out["cron"] is None and out["tags"] == ["t"]


def test_a_retry_repeats_the_execution_and_links_to_it() -> None:
    run = {
        "id": uuid.uuid4(),
        "definition_key": "echo",
        "definition_version": 1,
        "max_attempts": 1,
        "params": {"m": 1},
        "queue": "default",
        "priority": 0,
        "owner": "alice",
        "timeout_seconds": None,
        "retry_delays": [5.0],
        "event": None,
        "tags": ["t"],
        "saved_job_id": uuid.uuid4(),
        "schedule_name": "saved-job:x",
        "scheduled_for": dt.datetime.now(dt.UTC),
    }
    job = retried_job(run)
    assert job.retry_of == run["id"] and job.saved_job_id == run["saved_job_id"]
    assert job.schedule_name is None and job.scheduled_for is None  # no fire of the schedule
    assert (job.params, job.owner, job.tags, job.retry_delays) == ({"m": 1}, "alice", ["t"], [5.0])
    assert job.id != run["id"]
