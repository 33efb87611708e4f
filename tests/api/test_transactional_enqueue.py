"""`jobserver.client.transactional`: enqueue inside the caller's transaction, for each kind of
connection it takes (asyncpg; psycopg 3 sync and async; SQLAlchemy Session, Connection,
scoped session, AsyncSession over asyncpg, AsyncConnection over psycopg). The same cases run
on every kind: the job exists if and only if the caller commits, its NOTIFY arrives after the
commit and never before (nor after a rollback), a refused job raises `RuleError` naming the
field and inserts nothing even when the caller then commits, an idempotency key yields one job
across transactions (also when a concurrent transaction commits the key first), and
`enqueue_many` is all or none.

"Not before the commit" is shown with a sentinel: a NOTIFY sent and committed by another
session after the enqueue reaches the listener after anything committed before it, so the
sentinel arriving first proves no job notification was delivered until then."""

from __future__ import annotations

import asyncio
import itertools
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg
import psycopg
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine
from sqlalchemy.orm import Session, scoped_session, sessionmaker

from jobserver.client.transactional import IdempotencyConflict, enqueue, enqueue_many
from jobserver.core.errors import RuleError
from jobserver.db.channels import JOBS_CHANNEL
from jobserver.db.mail_templates import mail_template_insert
from jobserver.db.urls import asyncpg_url
from tests.api.conftest import Api, register_definitions
from tests.waiting import wait_for

KINDS = [
    "asyncpg",
    "psycopg",
    "psycopg-async",
    "sqlalchemy-session",
    "sqlalchemy-connection",
    "sqlalchemy-scoped-session",
    "sqlalchemy-async-session",
    "sqlalchemy-async-connection",
]
SYNC_KINDS = ("psycopg", "sqlalchemy-session", "sqlalchemy-connection", "sqlalchemy-scoped-session")
GOOD = {"name": "ann", "count": 1}
WITHIN = 10.0  # seconds any awaited notification may take before the test fails


def _sa_url(url: str, driver: str) -> str:
    return "postgresql+" + driver + asyncpg_url(url).removeprefix("postgresql")


class Caller:
    """One connection of a kind, in a transaction, driven the same way whatever the kind:
    the calls of a sync one run in a thread, so the event loop (and the listener) runs on."""

    def __init__(self, kind: str, url: str) -> None:
        self.kind = kind
        self.url = url
        self.sync = kind in SYNC_KINDS
        self.target: Any = None
        self.engine: Engine | AsyncEngine | None = None
        self._tx: Any = None

    async def open(self) -> None:
        url, kind = self.url, self.kind
        if kind == "asyncpg":  # a plain connection: no JSON codecs (jsonb arrives as text)
            self.target = await asyncpg.connect(asyncpg_url(url))
            await self._begin()
        elif kind == "psycopg":
            self.target = await asyncio.to_thread(psycopg.connect, asyncpg_url(url))
        elif kind == "psycopg-async":
            self.target = await psycopg.AsyncConnection.connect(asyncpg_url(url))
        elif kind.startswith("sqlalchemy-async"):
            driver = "asyncpg" if kind.endswith("session") else "psycopg"
            engine = self.engine = create_async_engine(_sa_url(url, driver))
            if kind.endswith("session"):
                self.target = AsyncSession(engine)
            else:
                self.target = await engine.connect()
        else:
            sync_engine = self.engine = create_engine(_sa_url(url, "psycopg"))
            if kind == "sqlalchemy-scoped-session":
                # one scope: the calls run in threads of their own (see `call`)
                self.target = scoped_session(sessionmaker(sync_engine), scopefunc=lambda: 0)
            elif kind.endswith("session"):
                self.target = Session(sync_engine)
            else:
                self.target = await asyncio.to_thread(sync_engine.connect)

    async def _begin(self) -> None:
        self._tx = self.target.transaction()
        await self._tx.start()

    async def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """`fn(connection, *args, **kwargs)`, awaited for an async kind."""
        if self.sync:
            return await asyncio.to_thread(fn, self.target, *args, **kwargs)
        return await fn(self.target, *args, **kwargs)

    async def enqueue(self, *args: Any, **kwargs: Any) -> Any:
        return await self.call(enqueue, *args, **kwargs)

    async def enqueue_many(self, *args: Any, **kwargs: Any) -> Any:
        return await self.call(enqueue_many, *args, **kwargs)

    async def write(self, sql: str) -> None:
        """A write of the caller's own, in its transaction."""
        if self.kind == "asyncpg":
            await self.target.execute(sql)
        elif self.kind.startswith("psycopg"):
            await self.call(lambda c: c.execute(sql))
        else:
            await self.call(lambda c: c.execute(text(sql)))

    async def commit(self) -> None:
        if self.kind == "asyncpg":
            await self._tx.commit()
            await self._begin()
        else:
            await self.call(lambda c: c.commit())

    async def rollback(self) -> None:
        if self.kind == "asyncpg":
            await self._tx.rollback()
            await self._begin()
        else:
            await self.call(lambda c: c.rollback())

    async def close(self) -> None:
        await self.call(lambda c: c.close())
        if isinstance(self.engine, AsyncEngine):
            await self.engine.dispose()
        elif self.engine is not None:
            self.engine.dispose()


class Wakeups:
    """A LISTEN session on the channel workers are woken on."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self.received: asyncio.Queue[str] = asyncio.Queue()
        self._tokens = itertools.count()

    def _on_notify(self, conn: Any, pid: int, channel: str, payload: str) -> None:
        self.received.put_nowait(payload)

    async def next(self) -> str:
        return await asyncio.wait_for(self.received.get(), WITHIN)

    async def none_yet(self) -> None:
        """Nothing committed so far woke the workers (see the module doc)."""
        token = f"sentinel-{next(self._tokens)}"
        await self.pool.execute("SELECT pg_notify($1, $2)", JOBS_CHANNEL, token)
        assert await self.next() == token


@pytest.fixture
async def wakeups(pool: asyncpg.Pool, database_url: str) -> AsyncIterator[Wakeups]:
    w = Wakeups(pool)
    conn = await asyncpg.connect(asyncpg_url(database_url))
    await conn.add_listener(JOBS_CHANNEL, w._on_notify)
    yield w
    await conn.close()


@pytest.fixture(params=KINDS)
async def caller(
    request: pytest.FixtureRequest, pool: asyncpg.Pool, database_url: str
) -> AsyncIterator[Caller]:
    await register_definitions(pool)
    await pool.execute("CREATE TABLE orders (id int PRIMARY KEY)")
    c = Caller(request.param, database_url)
    await c.open()
    yield c
    await c.close()


async def _jobs(pool: asyncpg.Pool) -> list[asyncpg.Record]:
    return await pool.fetch("SELECT id, queue, params, owner FROM jobs ORDER BY id")


async def _orders(pool: asyncpg.Pool) -> int:
    return int(await pool.fetchval("SELECT count(*) FROM orders"))


async def test_a_job_exists_and_wakes_workers_only_once_its_transaction_commits(
    caller: Caller, pool: asyncpg.Pool, wakeups: Wakeups
) -> None:
    await caller.write("INSERT INTO orders VALUES (1)")
    done = await caller.enqueue("strict", GOOD, queue="orders", owner="shop")
    assert done.created
    assert await _jobs(pool) == []  # not visible to anyone else yet
    await wakeups.none_yet()
    await caller.commit()
    assert await wakeups.next() == "orders"
    [row] = await _jobs(pool)
    assert (row["id"], row["queue"], row["params"], row["owner"]) == (
        done.id,
        "orders",
        GOOD,
        "shop",
    )
    assert await _orders(pool) == 1


async def test_a_rolled_back_transaction_leaves_no_job_and_wakes_no_one(
    caller: Caller, pool: asyncpg.Pool, wakeups: Wakeups
) -> None:
    await caller.write("INSERT INTO orders VALUES (1)")
    await caller.enqueue("strict", GOOD)
    await caller.enqueue_many([{"definition_key": "echo", "params": {"message": "x"}}] * 2)
    await caller.rollback()
    await wakeups.none_yet()
    assert await _jobs(pool) == []
    assert await _orders(pool) == 0


async def test_a_refused_job_names_its_field_and_inserts_nothing_though_the_caller_commits(
    caller: Caller, pool: asyncpg.Pool, wakeups: Wakeups
) -> None:
    mail = {"to": "ann@example.com", "template": "welcome", "variables": {"name": "Ann"}}
    ssh = {"host": "203.0.113.7", "command": "uptime", "credential": "nope"}
    refused: list[tuple[str, Any, dict[str, Any], str, str]] = [
        ("strict", {"name": "ann", "count": 99}, {}, "params.count", "validation_error"),
        ("nope", {}, {}, "definitionKey", "unknown_definition"),
        ("strict", GOOD, {"version": 9}, "definitionVersion", "unknown_definition"),
        ("strict", GOOD, {"priority": "high"}, "priority", "validation_error"),
        ("strict", GOOD, {"colour": "red"}, "colour", "validation_error"),
        # read through the caller's connection: a stored credential, a mail template
        ("ssh.command", ssh, {}, "params.credential", "unknown_credential"),
        ("mail.send", mail, {}, "params.template", "validation_error"),
    ]
    await caller.write("INSERT INTO orders VALUES (1)")
    for key, params, fields, field, code in refused:
        with pytest.raises(RuleError) as e:
            await caller.enqueue(key, params, **fields)
        assert (e.value.field, e.value.code) == (field, code), (key, e.value)
    with pytest.raises(RuleError) as e:
        await caller.enqueue_many(
            [
                {"definition_key": "strict", "params": GOOD},
                {"definition_key": "strict", "params": {"name": "", "count": 1}},
            ]
        )
    assert e.value.field == "jobs[1].params.name"
    await caller.commit()  # the caller's own write commits; no job came with it
    await wakeups.none_yet()
    assert await _jobs(pool) == []
    assert await _orders(pool) == 1
    # what the refused jobs named, once stored, lets them in
    await mail_template_insert(pool, "welcome", "test", subject="Hi", text="Hi {{ name }}")
    await caller.enqueue("mail.send", mail)
    await caller.commit()
    assert await wakeups.next() == "default"
    assert len(await _jobs(pool)) == 1


async def test_an_idempotency_key_yields_one_job_across_transactions(
    caller: Caller, pool: asyncpg.Pool, wakeups: Wakeups
) -> None:
    first = await caller.enqueue("strict", GOOD, idempotency_key="order-1")
    await caller.commit()
    assert await wakeups.next() == "default"
    again = await caller.enqueue("strict", GOOD, idempotency_key="order-1")
    assert (again.created, again.id) == (False, first.id)
    with pytest.raises(IdempotencyConflict) as e:
        await caller.enqueue("strict", {**GOOD, "count": 2}, idempotency_key="order-1")
    assert (e.value.field, e.value.code) == ("idempotencyKey", "idempotency_conflict")
    await caller.write("INSERT INTO orders VALUES (1)")  # the transaction is still usable
    await caller.commit()
    await wakeups.none_yet()
    assert [r["id"] for r in await _jobs(pool)] == [first.id]
    assert await _orders(pool) == 1
    # another owner's key is its own
    other = await caller.enqueue("strict", GOOD, idempotency_key="order-1", owner="shop")
    await caller.commit()
    assert other.created
    assert len(await _jobs(pool)) == 2


async def test_a_key_committed_meanwhile_by_another_transaction_answers_its_job(
    caller: Caller, pool: asyncpg.Pool
) -> None:
    """The other transaction holds the key uncommitted: the caller's insert waits on it, and
    once it commits, rolls back to its savepoint and answers the stored job; the caller's
    own write in the same transaction still commits."""
    await caller.write("INSERT INTO orders VALUES (1)")
    async with pool.acquire() as other:
        tx = other.transaction()
        await tx.start()
        theirs = await enqueue(other, "strict", GOOD, idempotency_key="k")
        mine = asyncio.ensure_future(caller.enqueue("strict", GOOD, idempotency_key="k"))

        async def waiting() -> bool:
            assert not mine.done(), mine.result()
            return bool(
                await pool.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND wait_event_type = 'Lock' AND query LIKE '%INSERT INTO jobs%'"
                )
            )

        await wait_for(waiting)
        await tx.commit()
    done = await asyncio.wait_for(mine, WITHIN)
    assert (done.created, done.id) == (False, theirs.id)
    await caller.commit()
    assert [r["id"] for r in await _jobs(pool)] == [theirs.id]
    assert await _orders(pool) == 1


async def test_enqueue_many_inserts_all_or_none_with_one_wakeup(
    caller: Caller, pool: asyncpg.Pool, wakeups: Wakeups
) -> None:
    jobs = [
        {"definition_key": "strict", "params": {"name": f"n{i}", "count": i}, "queue": "bulk"}
        for i in range(5)
    ]
    with pytest.raises(RuleError) as e:  # a key twice in one call
        await caller.enqueue_many(
            [{**jobs[0], "idempotency_key": "a"}, {**jobs[1], "idempotency_key": "a"}]
        )
    assert e.value.field == "jobs[1].idempotencyKey"
    stored = await caller.enqueue("strict", GOOD, idempotency_key="b", queue="bulk")
    await caller.commit()
    assert await wakeups.next() == "bulk"
    done = await caller.enqueue_many([*jobs, {**jobs[0], "params": GOOD, "idempotency_key": "b"}])
    assert [d.created for d in done] == [True] * 5 + [False]
    assert done[-1].id == stored.id
    await wakeups.none_yet()
    await caller.commit()
    assert await wakeups.next() == "bulk"  # one NOTIFY for the whole statement
    await wakeups.none_yet()
    assert sorted(r["id"] for r in await _jobs(pool)) == sorted(d.id for d in done)


async def test_an_idempotency_key_means_the_same_to_the_api_and_to_enqueue(api: Api) -> None:
    body = {"definitionKey": "strict", "params": GOOD, "idempotencyKey": "k1"}
    r = await api.call("POST", "/v1/jobs", token="plain", json=body)  # owner alice
    assert r.status == 201, r.body
    async with api.pool.acquire() as conn, conn.transaction():
        again = await enqueue(conn, "strict", GOOD, idempotency_key="k1", owner="alice")
        assert (again.created, str(again.id)) == (False, r.body["id"])
        with pytest.raises(IdempotencyConflict):
            await enqueue(conn, "strict", {**GOOD, "count": 3}, idempotency_key="k1", owner="alice")
        first = await enqueue(conn, "strict", GOOD, idempotency_key="k2", owner="alice")
    r = await api.call("POST", "/v1/jobs", token="plain", json={**body, "idempotencyKey": "k2"})
    assert (r.status, r.body["id"]) == (200, str(first.id))
    assert await api.job_count() == 2


def test_neither_psycopg_nor_sqlalchemy_is_imported_for_an_asyncpg_caller() -> None:
    code = (
        "import sys, jobserver.client.transactional;"
        " print('psycopg' in sys.modules, 'sqlalchemy.ext.asyncio' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"], out.stderr
