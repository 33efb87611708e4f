"""`jobserver.publish.enqueue`, the Python producer, checks a job as `POST /v1/jobs` does
(DESIGN invariant 19): the definition's code `check_params` after its params schema, and the
references (a stored credential of the right kind, the definition's `check_stored` hook). A
refused job raises `RuleError` naming the field and the API's code, and inserts nothing, also
inside the caller's transaction (whose own writes the caller then still commits)."""

from __future__ import annotations

import asyncpg
import pytest

from jobserver.core.errors import RuleError
from jobserver.db.mail_templates import mail_template_insert
from jobserver.publish import enqueue
from tests.api.conftest import register_definitions


async def _jobs(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM jobs"))


async def test_a_bad_params_enqueue_raises_and_writes_nothing(pool: asyncpg.Pool) -> None:
    await register_definitions(pool)
    mail = {"to": "ann@example.com", "template": "welcome", "variables": {"name": "Ann"}}
    ssh = {"host": "203.0.113.7", "command": "uptime", "credential": "nope"}
    refused = (
        # the schema accepts it, the code's check_params does not (as the API answers it)
        ("compute.math", {"operation": "fibonacci", "numbers": [10**6] * 100}, "params.numbers"),
        # a stored credential that does not exist
        ("ssh.command", ssh, "params.credential"),
        # mail.send's check_stored: its template must exist
        ("mail.send", mail, "params.template"),
    )
    async with pool.acquire() as conn:
        for key, params, field in refused:
            async with conn.transaction():
                with pytest.raises(RuleError) as e:
                    await enqueue(conn, key, params)
                assert e.value.field == field, (key, e.value)
                assert await _jobs(conn) == 0
        with pytest.raises(RuleError) as e:
            await enqueue(conn, "ssh.command", ssh)
        assert (e.value.code, str(e.value)) == (
            "unknown_credential",
            "params.credential: no stored credential is named 'nope'",
        )
        assert await _jobs(conn) == 0

        # the same jobs, once what they name is stored or within the bounds, go in
        await mail_template_insert(conn, "welcome", "test", subject="Hi", text="Hi {{ name }}")
        async with conn.transaction():
            sent = await enqueue(conn, "mail.send", mail)
            summed = await enqueue(conn, "compute.math", {"operation": "sum", "numbers": [1, 2]})
        rows = await conn.fetch("SELECT id FROM jobs ORDER BY id")
        assert sorted(r["id"] for r in rows) == sorted([sent.id, summed.id])
