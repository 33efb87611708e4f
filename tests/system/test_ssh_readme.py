"""The README's `ssh.command` block runs as written against real processes: an API and a
worker sharing a JOBSERVER_SECRET_KEY, and the tests' OpenSSH server on loopback (allowed
through OUTBOUND_ALLOW_CIDRS). Each `curl` answers the status its `# -> STATUS` comment says;
then the job has run on the server, and no secret of the block is stored in clear."""

from __future__ import annotations

import asyncio
import base64
import secrets
from pathlib import Path

import asyncpg

from jobserver.auth import create_token
from jobserver.db.definitions import definition_upsert
from jobserver.registry import load_modules
from tests.faults.helpers import Procs
from tests.system.test_readme_examples import block, expected_statuses, run_blocks
from tests.waiting import wait_for
from tests.worker.sshd import Sshd, sshd_fixture  # noqa: F401 (the `sshd` fixture)


async def test_the_ssh_examples_run_as_written(
    pool: asyncpg.Pool, database_url: str, sshd: Sshd, tmp_path: Path
) -> None:
    for d in load_modules().all():
        await definition_upsert(pool, d.metadata())
    token = await create_token(pool, "readme", ["manage_jobs"], "readme")
    key_file = tmp_path / "id_ed25519"
    key_file.write_text(sshd.client_key)
    key_file.chmod(0o600)
    extra = {
        "JOBSERVER_SECRET_KEY": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
        "OUTBOUND_ALLOW_CIDRS": "127.0.0.1/32",
    }
    procs = Procs(database_url)
    try:
        _, base = await procs.api(env=extra)
        procs.start("jobserver.cli.worker", name="worker", env=extra)
        env = {
            "B": base,
            "TOKEN": token,
            "SSH_HOST": "127.0.0.1",
            "SSH_PORT": str(sshd.port),
            "SSH_USER": "root",
            "KEY_FILE": str(key_file),
        }
        out, ran = await asyncio.to_thread(run_blocks, ("ssh",), env, "")
        assert [c.status for c in ran] == expected_statuses(block("ssh")), out

        async def finished() -> asyncpg.Record | None:
            return await pool.fetchrow(
                "SELECT status, result, last_error FROM jobs"
                " WHERE definition_key = 'ssh.command' AND status IN ('succeeded', 'failed')"
            )

        row = await wait_for(finished, within=30)
    finally:
        procs.close()
    assert row["status"] == "succeeded", row["last_error"]
    assert row["result"]["stdout"] == "deploying v42 in /tmp\n"
    assert row["result"]["hostKey"] == sshd.host_fingerprint
    stored = await pool.fetch("SELECT name, secret_fields FROM credentials ORDER BY name")
    assert [(r["name"], r["secret_fields"]) for r in stored] == [("deploy", ["privateKey"])]
    dump = "\n".join(r[0] for r in await pool.fetch("SELECT t::text FROM credentials t"))
    assert sshd.client_key.splitlines()[1] not in dump
