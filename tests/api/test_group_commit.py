"""Group commit of single submissions: grouping, per-request answers and failures, idempotency
under concurrency, and the POST answer matching the stored job."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg
import pytest

from jobserver.api.group_commit import GroupCommitter
from jobserver.api.keys import GROUP_COMMIT_KEY
from jobserver.db.events import job_events_list
from jobserver.db.jobs import NewJob, job_insert_times
from tests.api.conftest import Api


def new_job(i: int, **fields: Any) -> NewJob:
    return NewJob("echo", 1, 3, {"n": i}, **fields)


async def stored_params(pool: asyncpg.Pool) -> dict[uuid.UUID, Any]:
    rows = await pool.fetch("SELECT id, params FROM jobs")
    return {r["id"]: r["params"] for r in rows}


async def test_concurrent_submissions_share_one_statement(pool: asyncpg.Pool) -> None:
    committer = GroupCommitter()
    jobs = [new_job(i) for i in range(30)]
    # All 30 are queued before the writer first runs, so they form one group.
    answers = await asyncio.gather(*(committer.submit(pool, j) for j in jobs))
    assert (committer.groups, committer.jobs) == (1, 30)
    assert await stored_params(pool) == {j.id: {"n": i} for i, j in enumerate(jobs)}
    created = await pool.fetch("SELECT id, created_at, run_at FROM jobs")
    by_id = {r["id"]: (r["created_at"], r["run_at"]) for r in created}
    assert answers == [by_id[j.id] for j in jobs]  # each caller gets its own job's times
    history = await job_events_list(pool, jobs[7].id)
    assert [(e["event"], e["at"]) for e in history] == [("created", answers[7][0])]


async def test_arrivals_during_a_write_form_the_next_group(pool: asyncpg.Pool) -> None:
    gate, writing = asyncio.Event(), asyncio.Event()
    sizes: list[int] = []

    async def gated_insert(
        p: asyncpg.Pool, jobs: Sequence[NewJob]
    ) -> list[tuple[datetime, datetime]]:
        sizes.append(len(jobs))
        writing.set()
        if len(sizes) == 1:
            await gate.wait()  # hold the first group in flight
        return await job_insert_times(p, jobs)

    committer = GroupCommitter(insert=gated_insert)
    first = asyncio.create_task(committer.submit(pool, new_job(0)))
    await writing.wait()  # the lone job is written at once, without waiting for company
    later = [asyncio.create_task(committer.submit(pool, new_job(i))) for i in range(1, 11)]
    await asyncio.sleep(0)
    assert sizes == [1] and not first.done()
    gate.set()
    await asyncio.gather(first, *later)
    assert sizes == [1, 10]
    assert len(await stored_params(pool)) == 11


async def test_a_failing_job_does_not_fail_its_group(pool: asyncpg.Pool) -> None:
    committer = GroupCommitter()
    good = [new_job(i) for i in range(5)]
    bad = NewJob("echo", 1, 0, {"n": "bad"})  # max_attempts 0 breaks a CHECK constraint
    results = await asyncio.gather(
        *(committer.submit(pool, j) for j in [*good[:2], bad, *good[2:]]),
        return_exceptions=True,
    )
    assert isinstance(results[2], asyncpg.CheckViolationError)
    assert all(isinstance(r, tuple) for i, r in enumerate(results) if i != 2)
    assert set(await stored_params(pool)) == {j.id for j in good}


async def test_duplicate_keys_in_one_group_insert_one_job(pool: asyncpg.Pool) -> None:
    committer = GroupCommitter()
    keyed = [new_job(i, owner="o", idempotency_key="same") for i in range(4)]
    plain = [new_job(10 + i) for i in range(3)]
    results = await asyncio.gather(
        *(committer.submit(pool, j) for j in [*keyed, *plain]), return_exceptions=True
    )
    violations = [r for r in results if isinstance(r, asyncpg.UniqueViolationError)]
    assert len(violations) == 3 and all(isinstance(r, tuple) for r in results[4:])
    assert len(await stored_params(pool)) == 4


async def test_a_lost_database_fails_every_request_of_the_group(pool: asyncpg.Pool) -> None:
    committer = GroupCommitter()
    await pool.close()
    results = await asyncio.gather(
        *(committer.submit(pool, new_job(i)) for i in range(3)), return_exceptions=True
    )
    assert all(isinstance(r, asyncpg.InterfaceError) for r in results), results


async def test_a_caller_gone_before_the_write_is_dropped(pool: asyncpg.Pool) -> None:
    committer = GroupCommitter()
    gone, kept = new_job(0), new_job(1)
    t_gone = asyncio.create_task(committer.submit(pool, gone))
    t_kept = asyncio.create_task(committer.submit(pool, kept))
    await asyncio.sleep(0)  # both queued; the writer is scheduled but has not run
    t_gone.cancel()
    await t_kept
    with pytest.raises(asyncio.CancelledError):
        await t_gone
    assert set(await stored_params(pool)) == {kept.id}


async def test_concurrent_http_submissions_each_get_their_own_job(api: Api) -> None:
    bodies = [{"definitionKey": "echo", "params": {"message": f"m{i}"}} for i in range(40)]
    replies = await asyncio.gather(*(api.call("POST", "/v1/jobs", json=b) for b in bodies))
    assert [r.status for r in replies] == [201] * 40
    assert [r.body["params"] for r in replies] == [b["params"] for b in bodies]
    stored = await stored_params(api.pool)
    assert {uuid.UUID(r.body["jobId"]): r.body["params"] for r in replies} == stored
    committer = api.app[GROUP_COMMIT_KEY]
    assert committer.jobs == 40 and committer.groups <= 40


async def test_idempotency_holds_in_mixed_concurrent_groups(api: Api) -> None:
    body = {"definitionKey": "echo", "params": {"message": "k"}, "idempotencyKey": "mixed"}
    first = await api.call("POST", "/v1/jobs", json=body)
    assert first.status == 201
    other = {**body, "params": {"message": "different"}}
    plain = {"definitionKey": "echo", "params": {"message": "plain"}}
    fresh = {"definitionKey": "echo", "idempotencyKey": "fresh"}
    calls = [body] * 8 + [other] * 4 + [plain] * 8 + [fresh] * 6
    replies = await asyncio.gather(*(api.call("POST", "/v1/jobs", json=b) for b in calls))
    statuses = [r.status for r in replies]
    assert statuses[:8] == [200] * 8
    assert {r.body["jobId"] for r in replies[:8]} == {first.body["jobId"]}
    assert statuses[8:12] == [409] * 4
    assert all(r.body["code"] == "idempotency_conflict" for r in replies[8:12])
    assert statuses[12:20] == [201] * 8
    assert sorted(statuses[20:]) == [200] * 5 + [201]
    assert len({r.body["jobId"] for r in replies[20:]}) == 1
    assert await api.job_count() == 1 + 8 + 1


async def test_submit_answer_matches_the_stored_job(api: Api) -> None:
    j = await api.submit(
        definitionKey="strict",
        definitionVersion=1,
        params={"name": "a", "count": 3, "tags": ["x"], "inner": {"level": "high"}},
        priority=-5,
        maxAttempts=4,
        queue="emails",
        idempotencyKey="same-as-stored",
        runAt="2030-01-02T03:04:05.123456+02:00",
        expiresAt="2030-01-02T05:04:05+02:00",
        timeoutSeconds=12.5,
    )
    got = await api.call("GET", f"/v1/jobs/{j['jobId']}")
    assert got.status == 200
    answer, stored = dict(j), dict(got.body)
    assert answer.pop("queueTimeMs") is not None and stored.pop("queueTimeMs") is not None
    assert stored.pop("queuePosition") == 0 and stored.pop("queuePositionCapped") is False
    assert answer == stored  # (the queue position is the single GET's alone)
