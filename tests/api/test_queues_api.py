"""Queue health and stats routes against real jobs in every state.

The rows are written directly (a stuck job is a running row whose lease has passed; the
SIGSTOP scenario lives with the runner-control tests), each test before its first call, so
the figures are known: the queues, the health of one queue, `/v1/health` and `/v1/stats`
must show them and agree with each other.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import asyncpg
import pytest

from jobserver.api.keys import QUEUE_SNAPSHOTS_KEY
from jobserver.config import ConfigError, Settings
from jobserver.core.names import QUEUE
from jobserver.db.workers import worker_heartbeat, worker_register, worker_set_status
from tests.api.conftest import Api, start_api
from tests.scheduler.helpers import insert_job

FRESH = {"ttl": 0}


async def scheduled(pool: asyncpg.Pool, queue: str, in_seconds: float) -> uuid.UUID:
    """A queued job whose run time is `in_seconds` from now."""
    job_id = await insert_job(pool, queue=queue)
    await pool.execute(
        "UPDATE jobs SET run_at = now() + make_interval(secs => $2) WHERE id = $1",
        job_id,
        in_seconds,
    )
    return job_id


async def held(
    pool: asyncpg.Pool, queue: str, worker: str, claimed_ago: float, lease_offset: float = 60.0
) -> uuid.UUID:
    """A job `worker` claimed `claimed_ago` seconds ago (running, under a lease)."""
    return await insert_job(
        pool,
        status="running",
        queue=queue,
        worker_id=worker,
        created_ago=claimed_ago + 1,
        started_ago=claimed_ago,
        lease_offset=lease_offset,
    )


async def finished(pool: asyncpg.Pool, queue: str, status: str, ago: float, ran: float) -> None:
    await insert_job(
        pool,
        status=status,
        queue=queue,
        created_ago=ago + ran + 1,
        started_ago=ago + ran,
        finished_ago=ago,
    )


async def seed_emails(api: Api) -> dict[str, Any]:
    """`emails`: 3 unclaimed (one waiting 2 minutes), 2 scheduled, worker w1 (live, running 1
    job as of its heartbeat) holding 3 jobs, of which the 2 claimed last are pending; worker
    w2 (gone) holding 1 job whose lease expired 30 s ago (stuck); in the window 8 succeeded
    (runs of 1..8 s) and 2 failed (runs of 10 s); 1 cancelled. `idle`: served by name by w1
    only, no jobs. `old`: one job that succeeded 2 hours ago."""
    p = api.pool
    await insert_job(p, queue="emails", created_ago=120)
    for ago in (10, 5):
        await insert_job(p, queue="emails", created_ago=ago)
    ids = {"scheduled": [await scheduled(p, "emails", s) for s in (600, 3600)]}
    await worker_register(p, "w1", "host-a", 101, ["emails", "idle"], ["echo@1"], 4)
    await worker_heartbeat(p, "w1", 1)
    ids["running"] = [await held(p, "emails", "w1", 30)]
    ids["pending"] = [await held(p, "emails", "w1", 2), await held(p, "emails", "w1", 1)]
    await worker_register(p, "w2", "host-b", 102, None, ["echo@1"], 4)
    await worker_set_status(p, "w2", "gone")
    ids["stuck"] = [await held(p, "emails", "w2", 300, lease_offset=-30)]
    for n in range(1, 9):
        await finished(p, "emails", "succeeded", 60 + n, float(n))
    for n in range(2):
        await finished(p, "emails", "failed", 90 + n, 10.0)
    await finished(p, "emails", "cancelled", 100, 0.5)
    await finished(p, "old", "succeeded", 7200, 1.0)
    return ids


async def test_one_queue_in_every_state(api: Api) -> None:
    ids = await seed_emails(api)
    r = await api.call("GET", "/v1/queues/emails/health", token="view", params=FRESH)
    assert r.status == 200, r.body
    h = r.body
    assert h["name"] == h["queue"] == "emails"
    assert h["counts"] == {
        "total": 3 + 2 + 2 + 2,
        "waiting": 0,
        "unclaimed": 3,
        "pending": 2,
        "scheduled": 2,
        "running": 2,  # w1's executing job and w2's (gone: not buffered, stuck)
        "stuck": 1,
    }
    assert h["countsCapped"] is False
    assert 115 <= h["oldestWaitingSeconds"] < 180 and h["oldestWaitingSince"] < h["checkedAt"]
    # w1 names the queue; w2 serves every queue but is gone, so neither counts it
    assert h["runners"] == {"active": 1, "total": 1}
    [stuck] = h["stuckJobs"]
    assert stuck["id"] == str(ids["stuck"][0]) and stuck["workerId"] == "w2"
    assert stuck["reason"] == "lease_expired"
    m = h["metrics"]
    assert (m["succeeded"], m["failed"], m["windowMinutes"]) == (8, 2, 15)
    assert m["successRate"] == 0.8
    assert m["avgDurationMs"] == pytest.approx((36 + 20) / 10 * 1000, abs=1)
    assert m["p50DurationMs"] == pytest.approx(5500, abs=1)  # 1..8, 10, 10 s
    assert m["p95DurationMs"] == pytest.approx(10000, abs=1)
    assert m["durationSample"] == 10
    assert m["jobsPerMinute"] == round(10 / 15, 3)
    # defaults: failure rate 0.2 >= 0.1 (critical at 0.2), 1 stuck (critical at 2)
    alerts = {a["rule"]: a for a in h["alerts"]}
    assert set(alerts) == {"failure_rate", "stuck"}
    assert alerts["failure_rate"]["severity"] == "critical"
    assert (alerts["failure_rate"]["value"], alerts["failure_rate"]["threshold"]) == (0.2, 0.1)
    assert alerts["stuck"] == {
        "rule": "stuck",
        "severity": "warning",
        "value": 1,
        "threshold": 1,
        "message": "1 stuck jobs (threshold 1)",
    }
    assert h["status"] == "unhealthy"


async def test_the_list_and_the_system_answers_agree(api: Api) -> None:
    await seed_emails(api)
    await insert_job(api.pool, queue="video", created_ago=1)
    listed = await api.call("GET", "/v1/queues", token="view", params=FRESH)
    assert listed.status == 200, listed.body
    queues = {q["name"]: q for q in listed.body["items"]}
    assert list(queues) == ["emails", "idle", "old", "video"] and listed.body["nextCursor"] is None
    assert queues["idle"]["counts"]["total"] == 0 and queues["idle"]["status"] == "healthy"
    assert queues["idle"]["runners"] == {"active": 1, "total": 1}
    assert queues["old"]["counts"]["total"] == 0 and queues["old"]["metrics"]["succeeded"] == 0
    # nobody serves `video` by name and the only worker for every queue is gone
    assert queues["video"]["status"] == "unhealthy"
    assert [a["rule"] for a in queues["video"]["alerts"]] == ["no_runners"]

    health = (await api.call("GET", "/v1/queues/emails/health", token="view")).body
    stats = (await api.call("GET", "/v1/stats", token="view")).body
    system = (await api.call("GET", "/v1/health", token="view")).body
    # the same snapshot (default ttl): one computation, one clock
    assert health["checkedAt"] == stats["checkedAt"] == system["checkedAt"]
    only_health = ("queue", "stuckJobs", "metrics", "oldestWaitingSeconds", "checkedAt")
    assert {k: v for k, v in health.items() if k not in only_health} == {
        k: v for k, v in queues["emails"].items() if k != "metrics"
    }
    assert health["metrics"] == {
        **queues["emails"]["metrics"],
        "p50DurationMs": health["metrics"]["p50DurationMs"],
        "p95DurationMs": health["metrics"]["p95DurationMs"],
        "durationSample": 10,
    }
    counts = [q["counts"] for q in queues.values()]
    assert stats["pending"] == sum(c["unclaimed"] + c["scheduled"] for c in counts) == 6
    assert stats["running"] == sum(c["pending"] + c["running"] for c in counts) == 4
    db_counts = dict(
        await api.pool.fetch(
            "SELECT status, count(*) FROM jobs WHERE status IN ('queued', 'running')"
            " GROUP BY status"
        )
    )
    assert (stats["pending"], stats["running"]) == (db_counts["queued"], db_counts["running"])
    assert (stats["completed"], stats["failed"]) == (8 + 1, 2)
    assert stats["throughput"]["lastHour"] == 8 + 2
    assert stats["throughput"]["lastDay"] == 8 + 2 + 1
    assert stats["throughput"]["lastMinute"] == 0
    assert stats["workers"] == 1 and stats["queueType"] == "postgresql"
    assert stats["avgProcessingTime"] == queues["emails"]["metrics"]["avgDurationMs"]
    assert stats["countsCapped"] is False and stats["queuesTruncated"] is False
    assert {q["name"]: q["status"] for q in system["queues"]} == {
        n: q["status"] for n, q in queues.items()
    }
    assert system["workers"] == {"active": 1, "stopping": 0, "stopped": 0, "gone": 1}
    assert system["database"]["ok"] is True and system["database"]["latencyMs"] >= 0
    assert system["scheduler"] == {
        "ok": False,
        "leader": None,
        "acquiredAt": None,
        "leaseExpiresAt": None,
    }
    assert system["status"] == "unhealthy"


async def test_system_health_names_the_leader(api: Api) -> None:
    await api.pool.execute(
        "INSERT INTO scheduler_leader (name, holder, lease_expires_at)"
        " VALUES ('scheduler', 'sched-1', now() + interval '10 seconds')"
    )
    await worker_register(api.pool, "w1", "h", 1, None, ["echo@1"], 1)
    r = await api.call("GET", "/v1/health", token="view", params=FRESH)
    assert r.status == 200, r.body
    assert r.body["scheduler"]["ok"] is True and r.body["scheduler"]["leader"] == "sched-1"
    assert r.body["status"] == "healthy" and r.body["queues"] == []
    await api.pool.execute(
        "UPDATE scheduler_leader SET lease_expires_at = now() - interval '1 second'"
    )
    r = await api.call("GET", "/v1/health", token="view", params=FRESH)
    assert r.body["scheduler"]["ok"] is False and r.body["scheduler"]["leader"] == "sched-1"
    assert r.body["status"] == "degraded"


@pytest.fixture
async def strict_api(api: Api, settings: Settings) -> AsyncIterator[Api]:
    """The API with low alert thresholds: backlog 3, a 60 s wait, 25 % failures, 2 stuck."""
    tight = replace(
        settings,
        host="127.0.0.1",
        queue_alert_backlog=3,
        queue_alert_wait_seconds=60.0,
        queue_alert_failure_rate=0.25,
        queue_alert_stuck=2,
        queue_count_cap=100,
    )
    client, app = await start_api(tight, api.pool)
    try:
        yield Api(client, app, api.pool, api.tokens)
    finally:
        await client.close()


async def test_each_alert_names_its_rule_value_and_threshold(strict_api: Api) -> None:
    p = strict_api.pool
    await worker_register(p, "w1", "h", 1, None, ["echo@1"], 4)
    # calm: 2 unclaimed, fresh
    await insert_job(p, queue="calm", created_ago=5)
    await insert_job(p, queue="calm", created_ago=5)
    # busy: 6 unclaimed, the oldest waiting 130 s; 3 of 10 failed; 4 stuck (past lease)
    for ago in (130, 20, 10, 5, 5, 5):
        await insert_job(p, queue="busy", created_ago=ago)
    for n in range(10):
        await finished(p, "busy", "failed" if n < 3 else "succeeded", 30 + n, 1.0)
    for n in range(4):
        await held(p, "busy", "w1", 200, lease_offset=-10 - n)
    # rates: 3 of 12 failed is exactly the threshold
    for n in range(12):
        await finished(p, "rates", "failed" if n < 3 else "succeeded", 30 + n, 1.0)
    # few: 5 of 5 failed, but under 10 finished: no failure-rate alert
    for n in range(5):
        await finished(p, "few", "failed", 30 + n, 1.0)

    async def health(name: str) -> dict[str, Any]:
        r = await strict_api.call("GET", f"/v1/queues/{name}/health", params=FRESH)
        assert r.status == 200, r.body
        return r.body

    calm = await health("calm")
    assert calm["alerts"] == [] and calm["status"] == "healthy"
    busy = await health("busy")
    alerts = {a["rule"]: (a["severity"], a["value"], a["threshold"]) for a in busy["alerts"]}
    severity, value, threshold = alerts.pop("oldest_waiting")
    assert (severity, threshold) == ("critical", 60.0) and value >= 130  # >= 2 x 60 s
    assert alerts == {
        "backlog": ("critical", 6, 3),  # 6 >= 2 x 3
        "failure_rate": ("warning", 0.3, 0.25),  # critical from 0.5
        "stuck": ("critical", 4, 2),
    }
    assert busy["status"] == "unhealthy" and busy["counts"]["stuck"] == 4
    assert [j["reason"] for j in busy["stuckJobs"]] == ["lease_expired"] * 4
    since = [j["since"] for j in busy["stuckJobs"]]
    assert since == sorted(since)  # the longest stuck first
    rates = await health("rates")
    assert [(a["rule"], a["severity"], a["value"]) for a in rates["alerts"]] == [
        ("failure_rate", "warning", 0.25)
    ]
    assert rates["status"] == "degraded"
    few = await health("few")
    assert few["alerts"] == [] and few["metrics"]["successRate"] == 0.0


async def test_counts_past_the_cap_are_capped_and_flagged(strict_api: Api) -> None:
    p = strict_api.pool
    await p.execute(
        "INSERT INTO jobs (definition_key, definition_version, queue, max_attempts)"
        " SELECT 'echo', 1, 'bulk', 3 FROM generate_series(1, 150)"
    )
    await worker_register(p, "w1", "h", 1, ["bulk"], ["echo@1"], 4)
    r = await strict_api.call("GET", "/v1/queues/bulk/health", params=FRESH)
    assert r.body["counts"]["unclaimed"] == 100 and r.body["countsCapped"] is True
    assert r.body["counts"]["scheduled"] == 0
    backlog = next(a for a in r.body["alerts"] if a["rule"] == "backlog")
    assert backlog["message"].startswith("at least 100 unclaimed")
    stats = (await strict_api.call("GET", "/v1/stats")).body
    assert stats["pending"] == 100 and stats["countsCapped"] is True


def test_the_backlog_threshold_must_fit_under_the_count_cap() -> None:
    with pytest.raises(ConfigError, match="QUEUE_ALERT_BACKLOG=1001"):
        Settings.from_env({"QUEUE_ALERT_BACKLOG": "1001"})


async def test_pending_are_the_newest_claims_beyond_what_the_worker_runs(api: Api) -> None:
    p = api.pool
    await worker_register(p, "w1", "h", 1, None, ["echo@1"], 2)
    await worker_heartbeat(p, "w1", 2)
    for ago in (50, 40, 30, 20, 10):
        await held(p, "q", "w1", ago)
    counts = (await api.call("GET", "/v1/queues/q/health", params=FRESH)).body["counts"]
    assert (counts["running"], counts["pending"], counts["stuck"]) == (2, 3, 0)
    await worker_set_status(p, "w1", "stopped")  # no longer live: what it holds is not buffered
    counts = (await api.call("GET", "/v1/queues/q/health", params=FRESH)).body["counts"]
    assert (counts["running"], counts["pending"]) == (5, 0)


async def test_a_job_past_its_timeout_is_stuck(api: Api) -> None:
    p = api.pool
    await worker_register(p, "w1", "h", 1, None, ["echo@1"], 2)
    await worker_heartbeat(p, "w1", 2)
    late = await held(p, "t", "w1", 200)
    await held(p, "t", "w1", 100)
    await p.execute("UPDATE jobs SET timeout_seconds = 100 WHERE queue = 't'")  # margin 60 s
    h = (await api.call("GET", "/v1/queues/t/health", params=FRESH)).body
    assert h["counts"]["stuck"] == 1
    [stuck] = h["stuckJobs"]
    assert (stuck["id"], stuck["reason"]) == (str(late), "timeout")


async def test_answers_are_reused_within_the_ttl(api: Api) -> None:
    await insert_job(api.pool, queue="a")
    first = (await api.call("GET", "/v1/stats", params=FRESH)).body
    await insert_job(api.pool, queue="a")
    again = (await api.call("GET", "/v1/stats", params={"ttl": 3600})).body
    assert again == first
    fresh = (await api.call("GET", "/v1/stats", params=FRESH)).body
    assert fresh["pending"] == 2 and fresh["checkedAt"] > first["checkedAt"]


async def test_the_finished_tally_reads_only_what_settled_since(api: Api) -> None:
    p = api.pool
    for ago in (30, 1800, 5400, 23 * 3600, 25 * 3600):
        await finished(p, "t", "succeeded", ago, 1.0)
    stats = (await api.call("GET", "/v1/stats", params=FRESH)).body
    assert stats["throughput"] == {"lastMinute": 1, "lastHour": 2, "lastDay": 4}
    tally = api.app[QUEUE_SNAPSHOTS_KEY].tally
    before = tally.statements
    assert before >= 144  # the first call read the day, ten minutes at a time, and the tail
    stats = (await api.call("GET", "/v1/stats", params=FRESH)).body
    assert stats["throughput"]["lastDay"] == 4
    assert tally.statements - before <= 2  # at most the minute that settled, and the tail


async def test_a_queue_must_exist(api: Api) -> None:
    await insert_job(api.pool, queue="real")
    # the first computes a snapshot, the second finds the queue missing in it (cached)
    for name in ("nope", "nope"):
        r = await api.call("GET", f"/v1/queues/{name}/health", token="view")
        assert (r.status, r.body["code"]) == (404, "not_found"), (name, r.body)
    for name in ("bad%20name", "x" * 101):  # no queue can have such a name
        r = await api.call("GET", f"/v1/queues/{name}/health", token="view")
        assert (r.status, r.body["field"]) == (422, "name"), (name, r.body)
    assert (await api.call("GET", "/v1/queues/real/health", token="view")).status == 200
    r = await api.call("GET", "/v1/queues/real/health", params={"ttl": -1})
    assert r.status == 422 and r.body["field"] == "ttl"


async def test_the_list_pages_by_name(api: Api) -> None:
    for q in ("c", "a", "b"):
        await insert_job(api.pool, queue=q)
    r = await api.call("GET", "/v1/queues", params={"limit": 2, "ttl": 0})
    assert [q["name"] for q in r.body["items"]] == ["a", "b"]
    r = await api.call("GET", "/v1/queues", params={"limit": 2, "cursor": r.body["nextCursor"]})
    assert [q["name"] for q in r.body["items"]] == ["c"] and r.body["nextCursor"] is None


async def test_view_jobs_scope(api: Api) -> None:
    for path in ("/v1/queues", "/v1/stats", "/v1/health"):
        assert (await api.call("GET", path, token="plain")).status == 403
        assert (await api.call("GET", path, token="view")).status == 200


async def test_a_paused_queue_says_so(api: Api) -> None:
    await insert_job(api.pool, queue="mail", created_ago=5)
    r = await api.call(
        "POST", "/v1/queues/mail/pause", json={"reason": "smtp maintenance", "timeoutMs": 100}
    )
    assert r.status == 200, r.body
    # a paused queue with no job is still a queue
    r = await api.call("POST", "/v1/queues/later/pause", json={"timeoutMs": 100})
    assert r.status == 200, r.body
    listed = (await api.call("GET", "/v1/queues", token="view", params=FRESH)).body["items"]
    queues = {q["name"]: q for q in listed}
    assert set(queues) == {"mail", "later"}
    mail = queues["mail"]
    assert mail["paused"]["reason"] == "smtp maintenance" and mail["paused"]["pausedBy"]
    assert "paused" in [a["rule"] for a in mail["alerts"]]
    assert queues["later"]["status"] == "degraded"
    assert [a["rule"] for a in queues["later"]["alerts"]] == ["paused"]
    r = await api.call("POST", "/v1/queues/later/resume", json={"timeoutMs": 100})
    assert r.status == 200, r.body
    listed = (await api.call("GET", "/v1/queues", token="view", params=FRESH)).body["items"]
    assert [q["name"] for q in listed] == ["mail"]
    health = (await api.call("GET", "/v1/queues/mail/health", params=FRESH)).body
    assert health["paused"] == mail["paused"]


async def test_the_document_gives_queue_paths_the_queue_rule(api: Api) -> None:
    """Every `{name}` of a /v1/queues/{name}/... path carries the queue rule as its pattern,
    and the pattern accepts and refuses what the handlers do."""
    doc = (await api.call("GET", "/openapi.json", token=None)).body
    queue_paths = {p: ops for p, ops in doc["paths"].items() if p.startswith("/v1/queues/{name}")}
    assert set(queue_paths) == {
        "/v1/queues/{name}/pause",
        "/v1/queues/{name}/resume",
        "/v1/queues/{name}/health",
    }
    for path, ops in queue_paths.items():
        for method, op in ops.items():
            [param] = [p for p in op["parameters"] if p["in"] == "path"]
            assert param["name"] == "name"
            assert param["schema"]["pattern"] == QUEUE.pattern, (method, path)
    rule = re.compile(QUEUE.pattern.removeprefix("^").removesuffix("$"), re.ASCII)
    await insert_job(api.pool, queue="a.b:c-d_1")
    for name in ("a.b:c-d_1", "q" * 100):
        assert rule.fullmatch(name)
        r = await api.call("GET", f"/v1/queues/{name}/health", token="view", params=FRESH)
        assert r.status in (200, 404), (name, r.body)
    for name, sent in (("café", "caf%C3%A9"), ("a b", "a%20b"), ("q" * 101, "q" * 101)):
        assert not rule.fullmatch(name)
        r = await api.call("GET", f"/v1/queues/{sent}/health", token="view", params=FRESH)
        assert (r.status, r.body["field"]) == (422, "name"), (name, r.body)
