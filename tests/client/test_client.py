"""Client and AsyncClient against the real API on loopback, real PostgreSQL and an in-process
worker: submit, get, wait, cancel, retry, list paging, events, DLQ, queues, runners, and the
typed errors carrying the API's code. The sync client runs in a thread while the test's event
loop serves the API."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from jobserver.client import (
    AsyncClient,
    Client,
    Conflict,
    Forbidden,
    JobserverError,
    NotFound,
    Unauthorized,
    ValidationError,
    WaitTimeout,
    job_spec,
)
from tests.api.conftest import Api
from tests.client.conftest import SLOW, StartWorker, base_url
from tests.waiting import wait_until


async def test_stream_follows_a_job_on_the_real_api(api: Api, start_worker: StartWorker) -> None:
    await start_worker()
    async with AsyncClient(base_url(api), api.tokens["manage"]) as c:
        events = c.stream(max_reconnects=0)
        assert (await asyncio.wait_for(anext(events), 10)).event == "hello"
        job = await c.submit("echo", {"message": "live"}, version=1)

        async def last_status() -> str:
            async for ev in events:
                if ev.job is not None and ev.job.id == job.id and ev.job.is_terminal:
                    return ev.job.status
            return "the stream ended"

        assert await asyncio.wait_for(last_status(), 30) == "succeeded"
        await events.aclose()


async def test_async_submit_wait_events_and_paging(api: Api, start_worker: StartWorker) -> None:
    await start_worker()
    async with AsyncClient(base_url(api), api.tokens["manage"]) as c:
        job = await c.submit("echo", {"message": "hi"}, tags=["first"], version=1)
        assert job.status == "queued" and job.definition_key == "echo" and job.tags == ["first"]
        done = await c.wait(job.id, timeout=30)
        assert done.status == "succeeded" and done.succeeded and done.is_terminal
        assert done.result == {"message": "hi"} and done.finished_at is not None
        assert (await c.get(job.id)).status == "succeeded"

        names = [e.event async for e in c.events(job.id, page_size=1)]  # a page per event
        assert names[0] == "created" and names[-1] == "succeeded" and len(names) >= 3
        assert [e.id async for e in c.events(job.id, limit=2)] == [1, 2]

        ids = [(await c.submit("echo", {"n": i}, tags=["paging"], version=1)).id for i in range(5)]
        listed = [j.id async for j in c.list(tag=["paging"], page_size=2)]  # three pages
        assert listed == ids[::-1]  # newest first
        assert [j.id async for j in c.list(tag=["paging"], page_size=2, limit=3)] == listed[:3]

        again = await c.submit("echo", {"message": "once"}, idempotency_key="k-1", version=1)
        repeat = await c.submit("echo", {"message": "once"}, idempotency_key="k-1", version=1)
        assert repeat.id == again.id
        specs = [job_spec("echo", {"n": n}, idempotency_key=f"b-{n}") for n in range(2)]
        batch = await c.submit_many(specs)
        assert batch.created == 2 and len(batch.job_ids) == 2 and batch.existing == []
        batch2 = await c.submit_many(specs)
        assert batch2.job_ids == batch.job_ids and batch2.created == 0
        assert batch2.existing == [0, 1]


async def test_async_errors_are_typed_and_carry_the_code(api: Api) -> None:
    base = base_url(api)
    async with AsyncClient(base, api.tokens["manage"]) as c:
        with pytest.raises(NotFound) as nf:
            await c.get(str(uuid.uuid4()))
        assert (nf.value.status, nf.value.code) == (404, "not_found")
        assert isinstance(nf.value, JobserverError)

        with pytest.raises(ValidationError) as bad:
            await c.submit("strict", {"name": "x", "count": 99})
        assert bad.value.code == "validation_error" and bad.value.status == 422
        assert bad.value.field == "params.count"
        with pytest.raises(ValidationError) as unknown:
            await c.submit("no.such.definition")
        assert unknown.value.code == "unknown_definition"

        job = await c.submit("echo", {"message": "x"}, version=1)
        await c.cancel(job.id)
        with pytest.raises(Conflict) as conflict:
            await c.cancel(job.id)
        assert conflict.value.code == "invalid_state"
        assert conflict.value.body["jobStatus"] == "cancelled"
    assert await api.job_count() == 1  # the refused submissions wrote nothing

    async with AsyncClient(base, "not-a-token") as c:
        with pytest.raises(Unauthorized) as unauth:
            await c.get(job.id)
        assert (unauth.value.status, unauth.value.code) == (401, "unauthorized")
    async with AsyncClient(base, api.tokens["plain"]) as c:
        with pytest.raises(Forbidden) as forbidden:
            [e async for e in c.dlq_list()]
        assert (forbidden.value.status, forbidden.value.code) == (403, "forbidden")
        with pytest.raises(NotFound):  # another owner's job is not visible
            await c.get(job.id)


def _sync_lifecycle(base: str, token: str) -> None:
    with Client(base, token, poll=(0.05, 0.5)) as c:
        slow = c.submit("process.batch", SLOW)
        wait_until(lambda: c.get(slow.id).status == "running", within=30)
        cancelling = c.cancel(slow.id)
        assert cancelling.status in ("cancelling", "cancelled")
        assert c.wait(slow.id, timeout=30).status == "cancelled"

        failed = c.wait(c.submit("failing", {"reason": "boom"}, max_attempts=1).id, timeout=30)
        assert failed.status == "failed" and "boom" in (failed.last_error or "")
        again = c.retry(failed.id)
        assert again.id != failed.id and again.raw["retriedFrom"] == failed.id
        with pytest.raises(Conflict):
            c.retry(failed.id)  # once per job

        dead = c.wait(c.submit("failing", {"reason": "dlq"}, max_attempts=1).id, timeout=30)
        entry = next(e for e in c.dlq_list() if e.job_id == dead.id)
        shown = c.dlq_get(entry.id)
        assert shown.history and shown.last_error and "dlq" in shown.last_error
        redriven = c.dlq_redrive(entry.id, max_attempts=2)
        assert redriven.redriven_from == entry.id and redriven.dlq.redriven_job_id
        assert c.get(redriven.job_id).max_attempts == 2

        ids = {c.submit("echo", {"n": n}, queue="sync-paging", version=1).id for n in range(3)}
        assert {j.id for j in c.list(queue="sync-paging", page_size=1)} == ids

        later = c.submit("echo", {}, delay_seconds=3600, version=1)
        with pytest.raises(WaitTimeout) as timeout:
            c.wait(later.id, timeout=0.3)
        assert timeout.value.job is not None and timeout.value.job.status == "queued"


async def test_sync_cancel_retry_dlq_and_wait_timeout(api: Api, start_worker: StartWorker) -> None:
    await start_worker()
    await asyncio.to_thread(_sync_lifecycle, base_url(api), api.tokens["manage"])


async def test_queues_and_runners(api: Api, start_worker: StartWorker) -> None:
    await start_worker("w-client")
    await start_worker("w-stop")
    async with AsyncClient(base_url(api), api.tokens["manage"]) as c:
        await c.submit("echo", {}, queue="q-client", delay_seconds=3600, version=1)
        paused = await c.pause_queue("q-client", reason="maintenance")
        assert (paused.queue, paused.paused, paused.changed) == ("q-client", True, True)
        assert set(paused.acknowledged) == {"w-client", "w-stop"}
        queues = {q.name: q async for q in c.queues()}
        assert queues["q-client"].paused is not None
        assert queues["q-client"].counts["scheduled"] == 1
        health = await c.queue_health("q-client")
        assert health.name == "q-client" and health.paused
        assert (health.paused or {}).get("reason") == "maintenance"
        resumed = await c.resume_queue("q-client")
        assert (resumed.paused, resumed.changed) == (False, True)
        assert not (await c.resume_queue("q-client")).changed

        runners = {r.id: r async for r in c.runners()}
        assert {"w-client", "w-stop"} <= set(runners)
        assert runners["w-client"].status == "active"
        pong = await c.ping_runner("w-client", timeout_ms=5000)
        assert pong.answered and pong.ms is not None and pong.reply == {"pong": True}
        stop = await c.shutdown_runner("w-stop", mode="immediate", timeout_ms=5000)
        assert stop.answered and stop.command == "shutdown"
        with pytest.raises(NotFound):
            await c.ping_runner("nobody")
