"""`ssh.command` in a worker against a real OpenSSH server on loopback (`tests/worker/sshd.py`).

Every job logs in with a stored credential (sealed as the API seals it); loopback is opened by
the outbound allowlist (`allow_loopback`) except in the test that proves the denial. The
remote commands run on this machine, so a test sees them with `pgrep`: a timed-out or
cancelled command is gone afterwards, descendants included.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from jobserver.credentials.keyring import Keyring
from jobserver.credentials.models import HostKey
from jobserver.db.jobs import job_cancel
from jobserver.outbound import ssh
from tests.worker.conftest import attempts, submit, wait_for
from tests.worker.credentials import store_credential
from tests.worker.http_receiver import attempt_count, finished
from tests.worker.sshd import PASSPHRASE, Sshd, free_port, other_host_key, remote_processes


@pytest.fixture
async def root_key(db: asyncpg.Pool, keyring: Keyring, sshd: Sshd) -> str:
    """A credential logging in as root with the client key, pinning the server's host key."""
    await store_credential(
        db,
        keyring,
        "root-key",
        kind="ssh",
        username="root",
        privateKey=sshd.client_key,
        hostKeys=[sshd.host_key],
    )
    return "root-key"


@pytest.fixture(autouse=True)
def fresh_ssh_settings() -> Any:
    ssh.configure(ssh.SshSettings())
    yield
    ssh.configure(None)


def job_params(sshd: Sshd, credential: str, command: str, **extra: Any) -> dict[str, Any]:
    return {
        "host": "127.0.0.1",
        "port": sshd.port,
        "command": command,
        "credential": credential,
        **extra,
    }


async def run_one(
    db: asyncpg.Pool, start_worker: Any, params: dict[str, Any], **kw: Any
) -> asyncpg.Record:
    [jid] = await submit(db, "ssh.command", [params], **kw)
    await start_worker()
    return await finished(db, jid)


async def ssh_events(db: asyncpg.Pool, job_id: uuid.UUID) -> list[dict[str, Any]]:
    rows = await db.fetch(
        "SELECT details FROM job_events WHERE job_id = $1 AND event = 'custom' ORDER BY id", job_id
    )
    return [r["details"]["data"] for r in rows if r["details"]["name"] == "ssh_command"]


# -- logging in -----------------------------------------------------------------------------------


async def test_key_login_records_stdout_stderr_exit_code_and_duration(
    db: asyncpg.Pool, start_worker: Any, allow_loopback: None, sshd: Sshd, root_key: str
) -> None:
    row = await run_one(
        db, start_worker, job_params(sshd, root_key, "echo to-out; echo to-err >&2; id -un")
    )
    assert row["status"] == "succeeded", row["last_error"]
    result = row["result"]
    assert result["stdout"] == "to-out\nroot\n" and result["stderr"] == "to-err\n"
    assert result["exitCode"] == 0 and result["exitSignal"] is None
    assert result["stdoutBytes"] == 12 and result["stdoutTruncated"] is False
    assert result["hostKey"] == sshd.host_fingerprint
    assert result["address"] == "127.0.0.1" and result["username"] == "root"
    assert result["durationMs"] > 0 and result["timedOut"] is False


async def test_password_login_as_another_user(
    db: asyncpg.Pool, start_worker: Any, allow_loopback: None, sshd: Sshd, keyring: Keyring
) -> None:
    if sshd.user is None or sshd.password is None:
        pytest.skip("no useradd/chpasswd here: no password user")
    await store_credential(
        db,
        keyring,
        "user-password",
        kind="ssh",
        username=sshd.user,
        password=sshd.password,
        hostKeys=[sshd.host_key],
    )
    row = await run_one(db, start_worker, job_params(sshd, "user-password", "id -un"))
    assert row["status"] == "succeeded", row["last_error"]
    assert row["result"]["stdout"] == f"{sshd.user}\n"


async def test_an_encrypted_key_logs_in_with_its_passphrase(
    db: asyncpg.Pool, start_worker: Any, allow_loopback: None, sshd: Sshd, keyring: Keyring
) -> None:
    await store_credential(
        db,
        keyring,
        "locked-key",
        kind="ssh",
        username="root",
        privateKey=sshd.encrypted_key,
        passphrase=PASSPHRASE,
        hostKeys=[sshd.host_key],
    )
    row = await run_one(db, start_worker, job_params(sshd, "locked-key", "echo ok"))
    assert row["status"] == "succeeded", row["last_error"]
    assert row["result"]["stdout"] == "ok\n"


async def test_a_refused_login_fails_at_once(
    db: asyncpg.Pool, start_worker: Any, allow_loopback: None, sshd: Sshd, keyring: Keyring
) -> None:
    wrong = "not-the-password-" + secrets.token_hex(4)
    await store_credential(
        db,
        keyring,
        "wrong-password",
        kind="ssh",
        username="root",
        password=wrong,
        hostKeys=[sshd.host_key],
    )
    row = await run_one(
        db, start_worker, job_params(sshd, "wrong-password", "true"), max_attempts=3
    )
    assert row["status"] == "failed"
    assert "ssh_auth_failed: root@127.0.0.1:" in row["last_error"]
    assert wrong not in row["last_error"]
    assert await attempt_count(db, row["id"]) == 1  # permanent: no retry


# -- host keys -------------------------------------------------------------------------------------


async def test_a_host_key_pinned_by_fingerprint_is_accepted(
    db: asyncpg.Pool, start_worker: Any, allow_loopback: None, sshd: Sshd, keyring: Keyring
) -> None:
    await store_credential(
        db,
        keyring,
        "by-fingerprint",
        kind="ssh",
        username="root",
        privateKey=sshd.client_key,
        hostKeys=[sshd.host_fingerprint],
    )
    row = await run_one(db, start_worker, job_params(sshd, "by-fingerprint", "echo ok"))
    assert row["status"] == "succeeded", row["last_error"]
    assert row["result"]["hostKey"] == sshd.host_fingerprint


async def test_a_wrong_pinned_host_key_is_refused_naming_the_one_offered(
    db: asyncpg.Pool, start_worker: Any, allow_loopback: None, sshd: Sshd, keyring: Keyring
) -> None:
    await store_credential(
        db,
        keyring,
        "wrong-host",
        kind="ssh",
        username="root",
        privateKey=sshd.client_key,
        hostKeys=[other_host_key()],
    )
    marker = f"/tmp/never-{uuid.uuid4().hex}"
    row = await run_one(
        db, start_worker, job_params(sshd, "wrong-host", f"touch {marker}"), max_attempts=3
    )
    assert row["status"] == "failed"
    assert "host_key_mismatch: 127.0.0.1:" in row["last_error"]
    assert sshd.host_fingerprint in row["last_error"]  # the key the server offered
    assert await attempt_count(db, row["id"]) == 1
    assert not await asyncio.to_thread(Path(marker).exists)  # no login, nothing ran


async def test_ssh_known_hosts_adds_trusted_keys(
    db: asyncpg.Pool,
    start_worker: Any,
    allow_loopback: None,
    sshd: Sshd,
    keyring: Keyring,
    tmp_path: Path,
) -> None:
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{sshd.port} {sshd.host_key}\n")
    ssh.configure(ssh.SshSettings(known_hosts=str(known)))
    await store_credential(
        db,
        keyring,
        "pinned-elsewhere",
        kind="ssh",
        username="root",
        privateKey=sshd.client_key,
        hostKeys=[other_host_key()],
    )
    row = await run_one(db, start_worker, job_params(sshd, "pinned-elsewhere", "echo ok"))
    assert row["status"] == "succeeded", row["last_error"]


# -- the outbound policy ---------------------------------------------------------------------------


async def test_ssh_to_loopback_is_refused_without_the_allowlist(
    db: asyncpg.Pool, start_worker: Any, sshd: Sshd, root_key: str
) -> None:
    marker = f"/tmp/never-{uuid.uuid4().hex}"
    row = await run_one(
        db, start_worker, job_params(sshd, root_key, f"touch {marker}"), max_attempts=3
    )
    assert row["status"] == "failed"
    assert "outbound_denied: 127.0.0.1 is loopback" in row["last_error"]
    assert await attempt_count(db, row["id"]) == 1
    assert not await asyncio.to_thread(Path(marker).exists)


async def test_a_refused_connection_is_retried(
    db: asyncpg.Pool, start_worker: Any, allow_loopback: None, sshd: Sshd, root_key: str
) -> None:
    params = {**job_params(sshd, root_key, "true"), "port": free_port()}
    row = await run_one(db, start_worker, params, max_attempts=2)
    assert row["status"] == "failed"
    assert "cannot connect to 127.0.0.1:" in row["last_error"]
    assert await attempt_count(db, row["id"]) == 2


# -- outcomes --------------------------------------------------------------------------------------


async def test_a_non_zero_exit_fails_the_attempt_with_the_stderr_tail(
    db: asyncpg.Pool, start_worker: Any, allow_loopback: None, sshd: Sshd, root_key: str
) -> None:
    row = await run_one(
        db,
        start_worker,
        job_params(sshd, root_key, "echo partial; echo 'disk full' >&2; exit 3"),
        max_attempts=2,
    )
    assert row["status"] == "failed"
    assert row["last_error"].startswith("CommandFailed: exit code 3 from ")
    assert row["last_error"].endswith(": disk full")
    assert await attempt_count(db, row["id"]) == 2  # retried as any failure
    recorded = await ssh_events(db, row["id"])
    assert [e["attempt"] for e in recorded] == [1, 2]
    assert recorded[0]["exitCode"] == 3 and recorded[0]["stdout"] == "partial\n"


async def test_env_and_working_directory_are_set_and_quoted(
    db: asyncpg.Pool, start_worker: Any, allow_loopback: None, sshd: Sshd, root_key: str
) -> None:
    params = job_params(
        sshd,
        root_key,
        'printf "%s|%s|" "$GREETING" "$RAW"; pwd',
        env={"GREETING": "it's {{$today}}", "RAW": "$(touch /tmp/x) `id` ; *"},
        workingDirectory="/tmp",
    )
    row = await run_one(db, start_worker, params)
    assert row["status"] == "succeeded", row["last_error"]
    greeting, raw, cwd = row["result"]["stdout"].split("|")
    assert greeting.startswith("it's 20") and len(greeting) == len("it's 2026-12-02")
    assert raw == "$(touch /tmp/x) `id` ; *"
    assert cwd == "/tmp\n"
    assert row["result"]["command"] == params["command"]  # the job's own command, as rendered


async def test_output_past_the_cap_is_cut_and_counted(
    db: asyncpg.Pool, start_worker: Any, allow_loopback: None, sshd: Sshd, root_key: str
) -> None:
    ssh.configure(ssh.SshSettings(output_cap=1024))
    row = await run_one(
        db, start_worker, job_params(sshd, root_key, "head -c 300000 /dev/zero | tr '\\0' a")
    )
    assert row["status"] == "succeeded", row["last_error"]
    result = row["result"]
    assert result["stdout"] == "a" * 1024
    assert result["stdoutBytes"] == 300000 and result["stdoutTruncated"] is True


async def test_a_timeout_kills_the_remote_command_and_its_children(
    db: asyncpg.Pool, start_worker: Any, allow_loopback: None, sshd: Sshd, root_key: str
) -> None:
    marker = f"3000.{secrets.randbelow(10**9):09d}"  # a unique sleep: `pgrep -f` finds it
    [jid] = await submit(
        db,
        "ssh.command",
        [job_params(sshd, root_key, f"echo started; sleep {marker}; echo never", timeout=3)],
        max_attempts=1,
    )
    await start_worker()
    await wait_for(lambda: _running(marker), within=15)
    row = await finished(db, jid)
    assert row["status"] == "failed"
    assert row["last_error"].startswith("CommandTimedOut: timed out after 3 s")
    await wait_for(lambda: _gone(marker), within=10)
    [recorded] = await ssh_events(db, jid)
    assert recorded["timedOut"] is True and recorded["stdout"] == "started\n"
    assert recorded["exitCode"] is None


async def test_cancelling_the_job_kills_the_remote_command(
    db: asyncpg.Pool, start_worker: Any, allow_loopback: None, sshd: Sshd, root_key: str
) -> None:
    marker = f"3000.{secrets.randbelow(10**9):09d}"
    [jid] = await submit(
        db, "ssh.command", [job_params(sshd, root_key, f"sleep {marker}; echo never")]
    )
    await start_worker()
    await wait_for(lambda: _running(marker), within=15)
    assert (await job_cancel(db, jid, None))["status"] == "cancelling"

    async def cancelled() -> bool:
        return bool(await db.fetchval("SELECT status = 'cancelled' FROM jobs WHERE id = $1", jid))

    await wait_for(cancelled, within=10)
    await wait_for(lambda: _gone(marker), within=10)
    [att] = await attempts(db, jid)
    assert att["outcome"] == "cancelled"


async def test_the_ssh_signal_alone_stops_a_command_where_the_server_allows_it(
    allow_loopback: None, sshd: Sshd
) -> None:
    """Without the watchdog of `ssh.command`'s command line: the signal request does it (a
    non-root login: OpenSSH before 10.0 refuses to signal root sessions)."""
    if sshd.user is None or sshd.password is None:
        pytest.skip("no useradd/chpasswd here: no password user")
    marker = f"3000.{secrets.randbelow(10**9):09d}"
    target = ssh.SshTarget(
        "127.0.0.1", sshd.port, sshd.user, (HostKey(sshd.host_fingerprint, sshd.host_key),)
    )
    try:
        result = await ssh.run_command(
            target,
            ssh.SshAuth(password=sshd.password),
            f"sleep {marker}",
            seconds=2,
            output_cap=1024,
        )
        assert result.timed_out and result.exit_signal == "TERM" and result.exit_code is None
        await wait_for(lambda: _gone(marker), within=5)
    finally:
        for line in remote_processes(marker):
            os.kill(int(line.split()[0]), signal.SIGKILL)  # by pid: left by a failed run


async def _running(marker: str) -> bool:
    return bool(remote_processes(marker))


async def _gone(marker: str) -> bool:
    return not remote_processes(marker)


# -- credentials -----------------------------------------------------------------------------------


async def test_a_credential_deleted_since_submission_fails_for_good(
    db: asyncpg.Pool, start_worker: Any, allow_loopback: None, sshd: Sshd, keyring: Keyring
) -> None:
    row = await run_one(db, start_worker, job_params(sshd, "gone", "true"), max_attempts=3)
    assert row["status"] == "failed"
    assert "credential_not_found: no stored credential is named 'gone'" in row["last_error"]
    assert await attempt_count(db, row["id"]) == 1


async def test_no_secret_is_stored_in_jobs_events_or_attempts(
    db: asyncpg.Pool, start_worker: Any, allow_loopback: None, sshd: Sshd, keyring: Keyring
) -> None:
    password = "pw-" + secrets.token_hex(8)
    await store_credential(
        db,
        keyring,
        "both",
        kind="ssh",
        username="root",
        privateKey=sshd.client_key,
        password=password,
        hostKeys=[sshd.host_key],
    )
    # the command fails, so its record goes to an event and its error to the attempt
    row = await run_one(
        db, start_worker, job_params(sshd, "both", "echo out; exit 1"), max_attempts=1
    )
    assert row["status"] == "failed"
    key_body = sshd.client_key.splitlines()[1]
    for table in ("jobs", "job_events", "job_attempts", "dead_letter_jobs"):
        dump = "\n".join(r[0] for r in await db.fetch(f"SELECT t::text FROM {table} t"))
        assert password not in dump and key_body not in dump, table
