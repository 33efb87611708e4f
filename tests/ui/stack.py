"""The real system the dashboard tests drive: one database, an API, a worker and a scheduler
(processes, as in tests/faults), and the tokens the tests sign in with."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from jobserver.auth import create_token
from jobserver.db.definitions import definition_upsert
from jobserver.registry import load_modules
from tests.faults.helpers import Procs
from tests.ui.defs import GATE_DDL

REGISTRY = load_modules(["tests.ui.defs"])
# timings of tests/faults (short leases), no metrics cache, and the pages' streams held open
# as in production (the fault suite's API ends each stream right after its hello)
ENV = {"METRICS_CACHE_TTL_MS": "0", "JOBSERVER_SECRET_KEY": "", "STREAM_MAX_SECONDS": "900"}


@dataclass
class Stack:
    base: str
    tokens: dict[str, str]
    procs: Procs


async def prepare(pool: asyncpg.Pool) -> dict[str, str]:
    """Definitions registered, the gate table, and one token per kind of user."""
    async with pool.acquire() as conn:
        for d in REGISTRY.all():
            await definition_upsert(conn, d.metadata())
        await conn.execute(GATE_DDL)
    return {
        "admin": await create_token(pool, "ui-admin", ["manage_jobs"], "admin"),
        "viewer": await create_token(pool, "ui-viewer", ["view_jobs"], "viewer"),
        "plain": await create_token(pool, "ui-plain", [], "alice"),
    }


async def start(database_url: str, pool: asyncpg.Pool) -> Stack:
    tokens = await prepare(pool)
    procs = Procs(database_url)
    env = {k: v for k, v in ENV.items() if v}
    _, base = await procs.api(env=env)
    procs.start(
        "jobserver.cli.worker",
        "--module",
        "tests.ui.defs",
        name="worker",
        env={"WORKER_ID": "ui-worker-1", **env},
    )
    procs.scheduler("ui-scheduler", env=env)
    return Stack(base, tokens, procs)
