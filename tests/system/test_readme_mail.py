"""Every curl example of the README's mail section runs, as written, against real processes.

An API and a worker run on a per-test database with SMTP_HOST pointing at an SMTP server on
loopback (aiosmtpd, in this test's loop; allowed through OUTBOUND_ALLOW_CIDRS). The block runs
with bash; each `curl` is followed by its `# -> STATUS` comment, checked in order. Then the
message the server received is checked: the template rendered (HTML escaped, text not), Bcc in
the envelope only, the attachment byte for byte.
"""

from __future__ import annotations

import asyncio

import asyncpg

from jobserver.auth import create_token
from jobserver.db.definitions import definition_upsert
from jobserver.registry import load_modules
from tests.faults.helpers import Procs
from tests.system.test_readme_examples import block, expected_statuses, run_blocks
from tests.waiting import wait_for
from tests.worker.smtp_server import Sinks, SmtpSink


async def test_the_mail_examples_run_as_written(pool: asyncpg.Pool, database_url: str) -> None:
    for d in load_modules().all():
        await definition_upsert(pool, d.metadata())
    token = await create_token(pool, "readme", ["manage_jobs"], "readme")
    async with Sinks() as start:
        await _run(database_url, token, await start())


async def _run(database_url: str, token: str, sink: SmtpSink) -> None:
    extra = {
        "OUTBOUND_ALLOW_CIDRS": "127.0.0.1/32",
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(sink.port),
        "SMTP_TLS": "none",
        "SMTP_FROM": "Jobs <jobs@example.com>",
    }
    procs = Procs(database_url)
    try:
        _, base = await procs.api(env=extra)
        procs.start("jobserver.cli.worker", name="worker", env=extra)
        env = {"B": base, "TOKEN": token}
        out, ran = await asyncio.to_thread(run_blocks, ("mail",), env, "")
        assert [c.status for c in ran] == expected_statuses(block("mail")), out

        async def delivered() -> bool:
            return bool(sink.received)

        await wait_for(delivered, within=30)
    finally:
        procs.close()
    [got] = sink.received
    assert got.mail_from == "jobs@example.com"
    assert got.rcpt_tos == ["ann@example.com", "audit@example.com"]
    msg = got.message()
    assert "Bcc" not in msg and b"audit@example.com" not in got.header_block()
    assert msg["To"] == "Ann Example <ann@example.com>"
    assert msg["Subject"] == "Welcome, Ann & Bob"
    bodies = {
        p.get_content_type(): p.get_content()
        for p in msg.walk()
        if not p.is_multipart() and not p.is_attachment()
    }
    assert bodies["text/plain"] == "Hi Ann & Bob, your plan is Pro.\n"
    assert bodies["text/html"].strip() == "<p>Hi <b>Ann &amp; Bob</b>, your plan is Pro.</p>"
    [attachment] = list(msg.iter_attachments())
    assert attachment.get_filename() == "hello.txt"
    assert attachment.get_content() == "hello world\n"
