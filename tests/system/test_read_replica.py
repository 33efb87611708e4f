"""DATABASE_READ_URL against a real streaming replica: a primary cluster of our own and a hot
standby made from it with pg_basebackup (`LocalCluster.standby_of`), both on loopback.

What proves the offload: with the standby's replay paused, a job written since is missing from
(or older in) what the read routes answer to a reader that has written nothing: those answers
came from the replica. What proves the consistency rule: in the same pause, a client that
sends back its write's `X-Jobserver-Lsn` (the Python client does it by itself), or that reads
through the process it wrote through, sees its job (the primary answered after the bounded
wait), and reading a job by id right after submitting it is never a 404. After
`pg_wal_replay_resume()` those reads are the replica's again; with the standby stopped, every
read still answers, from the primary.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from jobserver.api.app import READ_POOL_NAME, create_app
from jobserver.api.keys import POOL_KEY, READ_REPLICA_KEY
from jobserver.api.read_replica import LSN_HEADER, MIN_LSN_HEADER, ReadReplica
from jobserver.auth import create_token
from jobserver.client.aio import AsyncClient
from jobserver.config import Settings
from jobserver.db import migrate
from jobserver.db.pool import create_pool
from jobserver.db.replication import lsn_parse, lsn_text
from jobserver.testing.cluster import LocalCluster
from tests.api.conftest import register_definitions
from tests.waiting import wait_for

pytestmark = pytest.mark.slow

DB = "replicated"
ECHO = {"definitionKey": "echo", "definitionVersion": 1, "params": {"message": "hi"}}


@dataclass
class Clusters:
    primary: LocalCluster
    standby: LocalCluster
    tokens: dict[str, str]

    @property
    def primary_url(self) -> str:
        return self.primary.url(DB)

    @property
    def standby_url(self) -> str:
        return self.standby.url(DB)


@pytest.fixture(scope="module")
def clusters_started() -> Iterator[tuple[LocalCluster, LocalCluster]]:
    primary = LocalCluster(fast=True).start()
    try:
        standby = LocalCluster.standby_of(primary)
        try:
            yield primary, standby
        finally:
            standby.stop()
    finally:
        primary.stop()


@pytest.fixture(scope="module")
async def clusters(clusters_started: tuple[LocalCluster, LocalCluster]) -> Clusters:
    primary, standby = clusters_started
    admin = await asyncpg.connect(primary.url())
    try:
        await admin.execute(f'CREATE DATABASE "{DB}"')
    finally:
        await admin.close()
    await migrate.upgrade_async(primary.url(DB))
    pool = await create_pool(primary.url(DB), Settings(), max_size=2)
    try:
        await register_definitions(pool)
        tokens = {
            "alice": await create_token(pool, "alice", [], "alice"),
            "viewer": await create_token(pool, "viewer", ["view_jobs"], "viewer"),
        }
    finally:
        await pool.close()
    found = Clusters(primary, standby, tokens)
    await caught_up(found)
    return found


async def caught_up(c: Clusters) -> None:
    """Wait until the standby has replayed everything the primary wrote so far."""
    primary = await asyncpg.connect(c.primary_url)
    standby = await asyncpg.connect(c.standby_url)
    try:
        target = await primary.fetchval("SELECT pg_current_wal_insert_lsn()::text")

        async def replayed() -> bool:
            sql = "SELECT pg_last_wal_replay_lsn() >= $1::text::pg_lsn"
            return bool(await standby.fetchval(sql, target))

        await wait_for(replayed, within=30)
    finally:
        await primary.close()
        await standby.close()


@contextlib.asynccontextmanager
async def replay_paused(c: Clusters) -> AsyncIterator[None]:
    """The standby stops replaying (it keeps receiving WAL); resumed on the way out."""
    conn = await asyncpg.connect(c.standby_url)
    try:
        await conn.execute("SELECT pg_wal_replay_pause()")

        async def paused() -> bool:
            return await conn.fetchval("SELECT pg_get_wal_replay_pause_state()") == "paused"

        await wait_for(paused, within=30)
        try:
            yield
        finally:
            await conn.execute("SELECT pg_wal_replay_resume()")
    finally:
        await conn.close()


@dataclass
class Api:
    client: TestClient
    app: web.Application
    tokens: dict[str, str]

    @property
    def replica(self) -> ReadReplica:
        return self.app[READ_REPLICA_KEY]

    async def call(
        self,
        method: str,
        path: str,
        who: str,
        *,
        json: Any = None,
        headers: dict[str, str] | None = None,
        params: Any = None,
    ) -> tuple[int, Any, Any]:
        hdrs = {"Authorization": f"Bearer {self.tokens[who]}", **(headers or {})}
        async with self.client.request(
            method, path, json=json, headers=hdrs, params=params
        ) as resp:
            body = await resp.json() if resp.content_type == "application/json" else None
            assert resp.status != 500, body
            return resp.status, body, resp.headers

    async def submit(self, who: str = "alice", **fields: Any) -> tuple[str, str]:
        status, body, headers = await self.call("POST", "/v1/jobs", who, json={**ECHO, **fields})
        assert status == 201, body
        return body["id"], headers[LSN_HEADER]

    async def job_ids(self, who: str, headers: dict[str, str] | None = None) -> set[str]:
        status, body, _ = await self.call(
            "GET", "/v1/jobs", who, headers=headers, params={"limit": "100"}
        )
        assert status == 200, body
        return {j["id"] for j in body["items"]}


@contextlib.asynccontextmanager
async def api_process(c: Clusters, **overrides: Any) -> AsyncIterator[Api]:
    """An API app as `jobserver-api` builds it (its own pools, primary and replica): each one
    stands for a separate API process (its own per-owner memory)."""
    settings = Settings(
        database_url=c.primary_url,
        database_read_url=c.standby_url,
        host="127.0.0.1",
        worker_id="test-worker",
        **overrides,
    )
    client = TestClient(TestServer(create_app(settings)))
    await client.start_server()
    try:
        yield Api(client, client.app, c.tokens)  # type: ignore[arg-type]
    finally:
        await client.close()


def test_positions_read_and_print_as_postgresql_does() -> None:
    assert lsn_parse("16/B374D848") == (0x16 << 32) | 0xB374D848
    assert lsn_text((0x16 << 32) | 0xB374D848) == "16/B374D848"
    assert lsn_text(0) == "0/0"
    for bad in ("", "16", "16/", "x/1", "123456789/0", "1/2/3"):
        assert lsn_parse(bad) is None, bad


async def test_the_read_routes_are_served_by_the_replica(clusters: Clusters) -> None:
    async with api_process(clusters) as api:
        old, _ = await api.submit(queue="rr-old")
        await caught_up(clusters)
        async with replay_paused(clusters):
            new, _ = await api.submit(queue="rr-new")
            await api.submit(queue="rr-new")
            status, _, _ = await api.call("POST", f"/v1/jobs/{old}/cancel", "alice")
            assert status == 200
            before = api.replica.served
            viewer = "viewer"  # has written nothing: no header, nothing remembered

            ids = await api.job_ids(viewer)
            assert old in ids and new not in ids  # the replica's list
            status, count, _ = await api.call("GET", "/v1/jobs/count", viewer)
            _, primary_count, _ = await api.call(
                "GET", "/v1/jobs/count", viewer, headers=await _after_now(api)
            )
            assert count["total"] == primary_count["total"] - 2

            status, job, _ = await api.call("GET", f"/v1/jobs/{old}", viewer)
            assert status == 200 and job["status"] == "queued"  # cancelled on the primary
            status, events, _ = await api.call("GET", f"/v1/jobs/{old}/events", viewer)
            assert [e["event"] for e in events["items"]] == ["created"]
            status, _, _ = await api.call("GET", f"/v1/jobs/{old}/attempts", viewer)
            assert status == 200

            ttl = {"ttl": "0"}
            _, metrics, _ = await api.call("GET", "/v1/metrics", viewer, params=ttl)
            assert metrics["summary"]["total"] == count["total"]
            assert metrics["summary"]["byStatus"]["cancelled"] == 0
            for path in (
                "/v1/metrics/definitions",
                "/v1/metrics/throughput",
                "/v1/metrics/throughput/minutes",
                "/v1/metrics/performance",
            ):
                status, _, _ = await api.call("GET", path, viewer, params=ttl)
                assert status == 200, path
            _, queues, _ = await api.call("GET", "/v1/queues", viewer, params=ttl)
            names = {q["name"] for q in queues["items"]}
            assert "rr-old" in names and "rr-new" not in names
            _, health, _ = await api.call("GET", "/v1/health", viewer, params=ttl)
            assert "rr-new" not in {q["name"] for q in health["queues"]}
            to_primary = api.replica.to_primary
            status, _, _ = await api.call("GET", "/v1/queues/rr-new/health", viewer, params=ttl)
            assert status == 200  # not on the replica: its 404 was asked again of the primary
            assert api.replica.to_primary == to_primary + 1
            _, stats, _ = await api.call("GET", "/v1/stats", viewer, params=ttl)
            _, fresh, _ = await api.call(
                "GET", "/v1/stats", viewer, params=ttl, headers=await _after_now(api)
            )
            # the replica: old still queued, rr-new's two jobs not there
            assert stats["pending"] == fresh["pending"] - 1

            assert api.replica.served - before == 13  # every read above without a header
            sessions = await _replica_sessions(clusters)
            assert sessions > 0  # the read pool's connections are on the standby


async def _after_now(api: Api) -> dict[str, str]:
    """A header asking for everything committed so far (what makes a read the primary's while
    the replica is paused)."""
    position = await api.replica.commits.after_commit(api.app[POOL_KEY])
    return {MIN_LSN_HEADER: lsn_text(position)}


async def _replica_sessions(c: Clusters) -> int:
    conn = await asyncpg.connect(c.standby_url)
    try:
        n: int = await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", READ_POOL_NAME
        )
        return n
    finally:
        await conn.close()


async def test_a_writer_reads_its_writes_while_the_replica_lags(clusters: Clusters) -> None:
    async with (
        api_process(clusters, read_replica_max_wait_ms=20) as first,
        # no per-owner memory: only the header keeps this process's reads consistent
        api_process(clusters, read_replica_max_wait_ms=20, read_your_writes_window_ms=0) as second,
    ):
        async with replay_paused(clusters):
            job, lsn = await first.submit()
            # the process it wrote through remembers the owner's write: no header needed
            assert job in await first.job_ids("alice")
            status, _, _ = await first.call("GET", f"/v1/jobs/{job}", "alice")
            assert status == 200
            # another process: the header decides
            assert job not in await second.job_ids("alice")
            assert job in await second.job_ids("alice", {MIN_LSN_HEADER: lsn})
            for path in (f"/v1/jobs/{job}", f"/v1/jobs/{job}/events"):
                status, _, _ = await second.call("GET", path, "alice")  # replica 404 -> primary
                assert status == 200, path
            assert first.replica.to_primary >= 2 and second.replica.to_primary >= 3

            # the Python client sends its last position back by itself
            # (through `second`: what makes its reads see the write is the header alone)
            async with AsyncClient(str(second.client.make_url("")), clusters.tokens["alice"]) as c:
                mine = await c.submit("echo", {"message": "client"}, version=1)
                assert c.written.text is not None
                seen = [j.id async for j in c.list(limit=100)]
                assert mine.id in seen
                assert (await c.get(mine.id)).id == mine.id

            # a malformed position is the caller's error, named
            status, body, _ = await second.call(
                "GET", "/v1/jobs", "alice", headers={MIN_LSN_HEADER: "nope"}
            )
            assert status == 422 and body["field"] == MIN_LSN_HEADER

        # replay resumed: once the replica has the write, the header's reads are its own again
        await caught_up(clusters)
        served, to_primary = second.replica.served, second.replica.to_primary
        assert job in await second.job_ids("alice", {MIN_LSN_HEADER: lsn})
        assert second.replica.served == served + 1 and second.replica.to_primary == to_primary


async def test_write_positions_grow_and_a_burst_shares_its_reads(clusters: Clusters) -> None:
    async with api_process(clusters) as api:
        _, first = await api.submit()
        reads = api.replica.commits.reads
        answers = await asyncio.gather(*(api.submit() for _ in range(50)))
        positions = [lsn_parse(lsn) for _, lsn in answers]
        assert all(p is not None and p >= (lsn_parse(first) or 0) for p in positions)
        assert api.replica.commits.reads - reads < 50  # one read serves every write before it
        status, body, headers = await api.call(
            "POST", "/v1/jobs/batch", "alice", json={"jobs": [ECHO, ECHO]}
        )
        assert status == 201 and lsn_parse(headers[LSN_HEADER]) is not None, body


async def test_reads_answer_from_the_primary_while_the_replica_is_down(
    clusters: Clusters,
) -> None:
    async with api_process(clusters) as api:
        await api.call("GET", "/v1/jobs", "viewer")  # a replica connection in the pool
        clusters.standby.stop_server("immediate")
        try:
            job, _ = await api.submit()
            assert job in await api.job_ids("viewer")  # the primary's list: it has the job
            for path in (f"/v1/jobs/{job}", "/v1/jobs/count", "/v1/stats", "/v1/health"):
                status, _, _ = await api.call("GET", path, "viewer", params=None)
                assert status == 200, path
            assert not api.replica.usable()  # left alone for READ_REPLICA_RETRY_MS
        finally:
            clusters.standby.start_server()
        await caught_up(clusters)
