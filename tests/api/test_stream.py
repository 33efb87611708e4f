"""GET /v1/stream: job changes as server-sent events, fed by the statements that make them.

Against the real app, PostgreSQL and the statements the worker, the scheduler and the API run
(jobserver/db/*): each change is announced by its own statement while a stream is open, and
only then; a token sees its own jobs; a reconnect resumes from its cursor or is told to resync;
the feed survives its database session being killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any

import aiohttp
import asyncpg
import pytest

from jobserver.api.keys import FEED_HUB_KEY
from jobserver.client.models import StreamEvent
from jobserver.client.sse import SSEDecoder
from jobserver.config import Settings
from jobserver.db import job_runs, maintenance
from jobserver.db.channels import FEED_CHANNEL
from jobserver.db.pool import connect
from tests.api.conftest import Api, start_api
from tests.waiting import wait_for


class Stream:
    """An open GET /v1/stream, read message by message."""

    def __init__(self, resp: aiohttp.ClientResponse) -> None:
        self.resp = resp
        self.decoder = SSEDecoder()
        self.seen: list[StreamEvent] = []

    async def next(self, within: float = 10.0) -> StreamEvent:
        async def read() -> StreamEvent:
            while True:
                line = await self.resp.content.readline()
                if not line:
                    raise EOFError("the stream ended")
                ev = self.decoder.feed(line.decode())
                if ev is not None:
                    self.seen.append(ev)
                    return ev

        return await asyncio.wait_for(read(), within)

    async def until(
        self, check: Callable[[StreamEvent], bool], within: float = 10.0
    ) -> StreamEvent:
        while True:
            ev = await self.next(within)
            if check(ev):
                return ev

    async def job(self, job_id: str, status: str, within: float = 10.0) -> StreamEvent:
        """The first `job` message of `job_id` in `status` (earlier messages are kept)."""
        return await self.until(
            lambda ev: ev.job is not None and ev.job.id == job_id and ev.job.status == status,
            within,
        )


@contextlib.asynccontextmanager
async def open_stream(
    api: Api, token: str = "view", params: Any = None, headers: dict[str, str] | None = None
) -> AsyncIterator[Stream]:
    hdrs = {"Authorization": f"Bearer {api.tokens.get(token, token)}", **(headers or {})}
    resp = await api.client.get("/v1/stream", params=params, headers=hdrs)
    try:
        assert resp.status == 200, await resp.text()
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        s = Stream(resp)
        hello = await s.next()
        assert hello.event == "hello", hello
        yield s
    finally:
        resp.close()


def job_events_of(s: Stream, job_id: str) -> list[str]:
    return [ev.job.status for ev in s.seen if ev.job is not None and ev.job.id == job_id]


async def test_a_token_sees_its_own_jobs_and_view_jobs_sees_all(api: Api) -> None:
    async with open_stream(api, "plain") as alice, open_stream(api, "view") as viewer:
        bobs = (await api.submit("other"))["jobId"]
        alices = (await api.submit("plain"))["jobId"]
        await alice.job(alices, "queued")
        await viewer.job(bobs, "queued")
        await viewer.job(alices, "queued")
        # bob's job was announced before alice's: it would have come first had it leaked
        assert all(ev.job is None or ev.job.id == alices for ev in alice.seen)
        ev = alice.seen[-1]
        assert ev.id and ev.id.startswith(api.app[FEED_HUB_KEY].epoch + "-")
        assert ev.job is not None and ev.job.queue == "default"
        assert ev.job.definition_key == "echo" and ev.job.attempt == 0


async def test_every_statement_that_changes_a_job_announces_it(api: Api, database_url: str) -> None:
    conn = await connect(database_url, server_settings=job_runs.CLAIM_SESSION_SETTINGS)
    writes = await connect(database_url, server_settings=job_runs.WRITE_SESSION_SETTINGS)
    refs = ["echo@1"]
    try:
        async with open_stream(api, "view") as s:
            done = (await api.submit(maxAttempts=1))["jobId"]
            child = (await api.submit(dependsOn=[done]))["jobId"]
            await s.job(child, "waiting")
            # claim -> running, progress, success -> the waiting child is queued (settled)
            (row,) = await job_runs.job_claim_available(conn, "w-feed", 1, refs, None, 60.0)
            assert str(row["id"]) == done
            await s.job(done, "running")
            assert await job_runs.job_progress(writes, "w-feed", row["id"], 1, '{"percent": 40}')
            progress = await s.until(lambda ev: ev.job is not None and ev.job.raw["progress"])
            assert progress.job is not None and progress.job.raw["progress"] == {"percent": 40}
            await job_runs.job_complete_many(writes, "w-feed", [row["id"]], [1], ["1"], [0.0])
            await s.job(done, "succeeded")
            await s.job(child, "queued")
            # a failure for good
            (row,) = await job_runs.job_claim_available(conn, "w-feed", 1, refs, None, 60.0)
            assert str(row["id"]) == child
            fail = job_runs.Failure(row["id"], 1, "failed", "boom", None, 0.0, 1.0, final=True)
            await job_runs.job_fail_many(writes, "w-feed", [fail])
            await s.job(child, "failed")
            # a cancel through the API, and a parent's cancel settling its child
            parent = (await api.submit())["jobId"]
            kid = (await api.submit(dependsOn=[parent]))["jobId"]
            r = await api.call("POST", f"/v1/jobs/{parent}/cancel")
            assert r.status == 200, r.body
            await s.job(parent, "cancelled")
            await s.job(kid, "cancelled")
            # expiry
            late = (await api.submit())["jobId"]
            await api.pool.execute(
                "UPDATE jobs SET expires_at = now() - interval '1 second' WHERE id = $1",
                uuid.UUID(late),
            )
            assert await maintenance.job_expire_queued(writes) == [uuid.UUID(late)]
            await s.job(late, "expired")
            # a lease that ran out: rescued back to queued
            lost = (await api.submit())["jobId"]
            (row,) = await job_runs.job_claim_available(conn, "w-gone", 1, refs, None, 60.0)
            await s.job(lost, "running")
            await api.pool.execute(
                "UPDATE jobs SET lease_expires_at = now() - interval '1 second' WHERE id = $1",
                row["id"],
            )
            assert (await maintenance.job_rescue_expired(writes)).requeued == [row["id"]]
            await s.job(lost, "queued")
            assert job_events_of(s, lost) == ["queued", "running", "queued"]
    finally:
        await conn.close()
        await writes.close()


async def test_a_reconnect_resumes_from_its_cursor_or_is_told_to_resync(api: Api) -> None:
    async with open_stream(api, "view") as s:
        first = (await api.submit())["jobId"]
        cursor = (await s.job(first, "queued")).id
    assert cursor is not None
    # nobody streams, but the feed lingers (LINGER) for the client coming back
    missed = [(await api.submit())["jobId"] for _ in range(3)]
    async with open_stream(api, "view", headers={"Last-Event-ID": cursor}) as s:
        for job_id in missed:
            await s.job(job_id, "queued")
        assert not any(ev.event == "resync" for ev in s.seen)
    for stale in ("nothing", "0123456789ab-5", f"{api.app[FEED_HUB_KEY].epoch}-999999"):
        async with open_stream(api, "view", headers={"Last-Event-ID": stale}) as s:
            assert (await s.next()).event == "resync"


async def test_nothing_is_announced_while_nobody_streams(api: Api, database_url: str) -> None:
    """With no stream open the statements send no feed NOTIFY at all (a listener of the
    channel receives only the sentinel sent after the submissions); with one open the API's
    reader row is live, and it lapses when the last stream closed and the linger passed."""
    got: asyncio.Queue[str] = asyncio.Queue()
    listener = await asyncpg.connect(database_url)
    try:
        await listener.add_listener(FEED_CHANNEL, lambda *a: got.put_nowait(a[3]))
        await api.submit()
        await api.submit()
        await api.pool.execute("SELECT pg_notify($1, 'sentinel')", FEED_CHANNEL)
        assert await asyncio.wait_for(got.get(), 10) == "sentinel"
        assert await api.pool.fetchval("SELECT count(*) FROM job_feed_readers") == 0
        live = "SELECT count(*) FROM job_feed_readers WHERE expires_at > now()"
        api.app[FEED_HUB_KEY].linger_seconds = 0.5
        async with open_stream(api, "view"):
            assert await api.pool.fetchval(live) == 1
            job_id = (await api.submit())["jobId"]
            assert await asyncio.wait_for(got.get(), 10) == job_id

        async def lapsed() -> bool:
            return await api.pool.fetchval(live) == 0

        await wait_for(lapsed)
        await api.submit()
        await api.pool.execute("SELECT pg_notify($1, 'sentinel 2')", FEED_CHANNEL)
        assert await asyncio.wait_for(got.get(), 10) == "sentinel 2"
    finally:
        await listener.close()


async def test_the_feed_survives_its_database_session_being_killed(api: Api) -> None:
    async with open_stream(api, "view") as s:
        hub = api.app[FEED_HUB_KEY]
        assert hub._listener is not None
        pid = hub._listener.backend_pid
        await api.pool.execute("SELECT pg_terminate_backend($1)", pid)
        assert (await s.until(lambda ev: ev.event == "resync")).data["reason"] == (
            "feed reconnected"
        )
        assert hub._listener.backend_pid != pid
        job_id = (await api.submit())["jobId"]
        await s.job(job_id, "queued")


async def test_filters_narrow_what_a_stream_is_told(api: Api) -> None:
    async with (
        open_stream(api, "view", params={"queue": "feed-q"}) as by_queue,
        open_stream(api, "view", params={"status": "cancelled,expired"}) as by_status,
    ):
        other = (await api.submit())["jobId"]
        mine = (await api.submit(queue="feed-q"))["jobId"]
        await by_queue.job(mine, "queued")
        r = await api.call("POST", f"/v1/jobs/{other}/cancel")
        assert r.status == 200, r.body
        await by_status.job(other, "cancelled")
        assert job_events_of(by_queue, other) == []
        assert [ev.job.status for ev in by_status.seen if ev.job] == ["cancelled"]
        async with open_stream(api, "view", params={"jobId": other}) as by_id:
            r = await api.call("POST", "/v1/jobs", json={**_echo(), "queue": "feed-q"})
            assert r.status == 201
            await by_queue.job(r.body["jobId"], "queued")
            assert [ev for ev in by_id.seen if ev.job] == []


async def test_a_job_announced_again_unchanged_is_told_once(api: Api) -> None:
    async with open_stream(api, "view") as s:
        job_id = (await api.submit())["jobId"]
        await s.job(job_id, "queued")
        # as a statement that touches nothing the stream shows would
        await api.pool.execute("SELECT job_feed(ARRAY[$1::uuid])", uuid.UUID(job_id))
        marker = (await api.submit())["jobId"]  # announced after it: read with or after it
        await s.job(marker, "queued")
        assert job_events_of(s, job_id) == ["queued"]
        r = await api.call("POST", f"/v1/jobs/{job_id}/cancel")
        assert r.status == 200, r.body
        await s.job(job_id, "cancelled")  # a change is told
        assert job_events_of(s, job_id) == ["queued", "cancelled"]


def _echo() -> dict[str, Any]:
    return {"definitionKey": "echo", "definitionVersion": 1, "params": {"message": "hi"}}


@pytest.mark.parametrize(
    ("params", "field"),
    [({"jobId": "nope"}, "jobId"), ({"status": "done"}, "status"), ({"since": "x"}, "since")],
)
async def test_bad_filters_are_a_4xx_naming_the_field(
    api: Api, params: dict[str, str], field: str
) -> None:
    r = await api.call("GET", "/v1/stream", params=params)
    assert r.status in (400, 422), r.body
    assert field in r.body["error"]
    assert await api.pool.fetchval("SELECT count(*) FROM job_feed_readers") == 0


async def test_a_stream_needs_a_token(api: Api) -> None:
    r = await api.call("GET", "/v1/stream", token=None)
    assert r.status == 401
    r = await api.call("GET", "/v1/stream", token="not-a-token")
    assert r.status == 401


async def test_a_stream_ends_after_stream_max_seconds(
    settings: Settings, pool: asyncpg.Pool, api: Api
) -> None:
    client, app = await start_api(replace(settings, stream_max_seconds=1), pool)
    try:
        short = Api(client, app, pool, api.tokens)
        async with open_stream(short, "view") as s:
            with pytest.raises(EOFError):  # not a TimeoutError: the server ended it
                await s.next(within=10)
    finally:
        await client.close()
