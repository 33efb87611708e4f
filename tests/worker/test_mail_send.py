"""`mail.send` in a worker against a real SMTP server (aiosmtpd) on loopback.

The server runs in the test's loop (`tests/worker/smtp_server.py`): plain, with STARTTLS or
TLS (a CA and a certificate made by the test, trusted through SMTP_CA_FILE), with AUTH, and
answering RCPT and DATA as each test tells it. The outbound policy opens 127.0.0.1 only where
a test asks for it (`allow_loopback`); one test proves the denial without it.
"""

from __future__ import annotations

import base64
import logging
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from jobserver.credentials.keyring import Keyring
from jobserver.db.mail_templates import mail_template_insert
from jobserver.mail.config import MailConfig, MailLimits, SmtpServer, configure_mail
from tests.worker.conftest import submit
from tests.worker.credentials import store_credential
from tests.worker.http_receiver import attempt_count, finished
from tests.worker.smtp_server import Sinks, SmtpSink, StartSink, TestCerts

PASSWORD = "pa55-w0rd-never-shown"
FROM = "Jobs <jobs@example.com>"


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> TestCerts:
    return TestCerts.make(tmp_path_factory.mktemp("smtp-certs"))


@pytest.fixture
async def start_sink(certs: TestCerts) -> AsyncIterator[StartSink]:
    async with Sinks(certs) as start:
        yield start


@pytest.fixture
def mail() -> Iterator[Any]:
    """`mail(sink, **server fields)`: point mail.send at `sink`; reset at teardown."""

    def point(sink: SmtpSink, limits: MailLimits | None = None, **fields: Any) -> SmtpServer:
        server = SmtpServer(
            host="127.0.0.1",
            port=sink.port,
            tls=fields.pop("tls", "none"),
            from_address=fields.pop("from_address", FROM),
            timeout_seconds=fields.pop("timeout_seconds", 5.0),
            **fields,
        )
        configure_mail(MailConfig(server=server, limits=limits or MailLimits()))
        return server

    yield point
    configure_mail(None)


async def send(
    db: asyncpg.Pool, start_worker: Any, params: dict[str, Any], **kw: Any
) -> asyncpg.Record:
    [job_id] = await submit(db, "mail.send", [params], **kw)
    await start_worker()
    return await finished(db, job_id)


def part(received: Any, content_type: str) -> Any:
    found = [
        p
        for p in received.message().walk()
        if p.get_content_type() == content_type and not p.is_attachment()
    ]
    assert len(found) == 1, [p.get_content_type() for p in received.message().walk()]
    return found[0]


async def test_a_plain_mail_reaches_the_server_with_bcc_only_in_the_envelope(
    db: asyncpg.Pool, start_worker: Any, start_sink: StartSink, mail: Any, allow_loopback: None
) -> None:
    sink = await start_sink()
    mail(sink)
    row = await send(
        db,
        start_worker,
        {
            "to": ["Ann Example <ann@example.com>", "bob@example.com"],
            "cc": "carol@example.com",
            "bcc": ["Hidden Dave <dave@example.com>"],
            "replyTo": "help@example.com",
            "subject": "Réunion à 15h",
            "text": "Hello Ann,\nsee you.\n",
            "html": "<p>Hello <b>Ann</b></p>",
            "headers": {"X-Campaign": "spring"},
        },
    )
    assert row["status"] == "succeeded", row["last_error"]
    [got] = sink.received
    assert got.mail_from == "jobs@example.com"
    assert got.rcpt_tos == [
        "ann@example.com",
        "bob@example.com",
        "carol@example.com",
        "dave@example.com",
    ]
    assert not got.tls
    msg = got.message()
    assert "Bcc" not in msg and b"dave@example.com" not in got.header_block()
    assert b"Hidden Dave" not in got.data
    assert msg["To"] == "Ann Example <ann@example.com>, bob@example.com"
    assert msg["Cc"] == "carol@example.com"
    assert msg["Reply-To"] == "help@example.com"
    assert msg["From"] == FROM
    assert msg["Subject"] == "Réunion à 15h"
    assert msg["X-Campaign"] == "spring"
    assert msg["Message-ID"].endswith("@example.com>") and msg["Date"]
    assert msg.get_content_type() == "multipart/alternative"
    assert part(got, "text/plain").get_content() == "Hello Ann,\nsee you.\n"
    assert part(got, "text/html").get_content().strip() == "<p>Hello <b>Ann</b></p>"

    result = row["result"]
    assert result["messageId"] == msg["Message-ID"]
    assert result["accepted"] == got.rcpt_tos and result["refused"] == {}
    assert result["size"] == len(got.data)
    assert result["reply"] == {"code": 250, "message": "2.0.0 Message accepted"}
    assert result["server"] == {
        "host": "127.0.0.1",
        "port": sink.port,
        "tls": "none",
        "auth": False,
    }
    assert result["durationMs"] >= 0


async def test_attachments_arrive_byte_for_byte_from_base64_and_from_the_directory(
    db: asyncpg.Pool,
    start_worker: Any,
    start_sink: StartSink,
    mail: Any,
    allow_loopback: None,
    tmp_path: Path,
) -> None:
    sink = await start_sink()
    inline = os.urandom(3000) + b"\x00\r\n\xff"
    on_disk = os.urandom(70_000)
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "q3.pdf").write_bytes(on_disk)
    mail(sink, limits=MailLimits(attachment_dir=str(tmp_path)))
    row = await send(
        db,
        start_worker,
        {
            "to": "ann@example.com",
            "subject": "files",
            "text": "two files",
            "attachments": [
                {
                    "filename": "blob.bin",
                    "contentType": "application/octet-stream",
                    "content": base64.b64encode(inline).decode(),
                },
                {"filename": "Q3 report.pdf", "path": "reports/q3.pdf"},
            ],
        },
    )
    assert row["status"] == "succeeded", row["last_error"]
    [got] = sink.received
    msg = got.message()
    assert msg.get_content_type() == "multipart/mixed"
    files = {a.get_filename(): a for a in msg.iter_attachments()}
    assert files["blob.bin"].get_content() == inline
    assert files["Q3 report.pdf"].get_content() == on_disk
    assert files["Q3 report.pdf"].get_content_type() == "application/pdf"
    assert part(got, "text/plain").get_content().strip() == "two files"
    assert row["result"]["attachments"] == [
        {"filename": "blob.bin", "contentType": "application/octet-stream", "size": len(inline)},
        {"filename": "Q3 report.pdf", "contentType": "application/pdf", "size": len(on_disk)},
    ]
    shown = str(row["result"])  # never the bytes: neither the base64 given nor the file's
    assert base64.b64encode(inline).decode()[:40] not in shown
    assert base64.b64encode(on_disk).decode()[:40] not in shown


async def test_a_path_attachment_cannot_leave_the_directory(
    db: asyncpg.Pool,
    start_worker: Any,
    start_sink: StartSink,
    mail: Any,
    allow_loopback: None,
    tmp_path: Path,
) -> None:
    sink = await start_sink()
    inside = tmp_path / "files"
    inside.mkdir()
    (tmp_path / "secret.txt").write_text("not for mail")
    (inside / "link.txt").symlink_to(tmp_path / "secret.txt")
    mail(sink, limits=MailLimits(attachment_dir=str(inside)))
    cases = ["../secret.txt", "link.txt", "/etc/passwd", "missing.txt"]
    ids = await submit(
        db,
        "mail.send",
        [
            {"to": "a@example.com", "text": "x", "attachments": [{"filename": "f", "path": p}]}
            for p in cases
        ],
    )
    await start_worker()
    for job_id, path in zip(ids, cases, strict=True):
        row = await finished(db, job_id)
        assert row["status"] == "failed", path
        assert "bad_attachment: attachments[0].path" in row["last_error"], row["last_error"]
        assert await attempt_count(db, job_id) == 1  # permanent: no retry
    assert sink.received == []


async def test_a_stored_template_escapes_html_but_not_text(
    db: asyncpg.Pool, start_worker: Any, start_sink: StartSink, mail: Any, allow_loopback: None
) -> None:
    sink = await start_sink()
    mail(sink)
    await mail_template_insert(
        db,
        "welcome",
        "admin",
        subject="Welcome, {{ name }}",
        text="Hi {{ name }}!\n{% for i in items %}- {{ i }}\n{% endfor %}",
        html="<p>Hi {{ name }}!</p><ul>{% for i in items %}<li>{{ i }}</li>{% endfor %}</ul>",
    )
    row = await send(
        db,
        start_worker,
        {
            "to": "ann@example.com",
            "template": "welcome",
            "variables": {"name": "<b>Ann & co</b>", "items": ["a<b", "c"]},
        },
    )
    assert row["status"] == "succeeded", row["last_error"]
    [got] = sink.received
    msg = got.message()
    assert msg["Subject"] == "Welcome, <b>Ann & co</b>"
    assert part(got, "text/plain").get_content() == "Hi <b>Ann & co</b>!\n- a<b\n- c\n"
    assert part(got, "text/html").get_content() == (
        "<p>Hi &lt;b&gt;Ann &amp; co&lt;/b&gt;!</p><ul><li>a&lt;b</li><li>c</li></ul>\n"
    )


async def test_a_missing_variable_or_template_fails_for_good_naming_it(
    db: asyncpg.Pool, start_worker: Any, start_sink: StartSink, mail: Any, allow_loopback: None
) -> None:
    sink = await start_sink()
    mail(sink)
    await mail_template_insert(db, "hello", "admin", subject="Hi", text="Hi {{ name }}")
    missing_var, missing_template = await submit(
        db,
        "mail.send",
        [
            {"to": "a@example.com", "template": "hello", "variables": {}},
            {"to": "a@example.com", "template": "gone"},
        ],
    )
    await start_worker()
    row = await finished(db, missing_var)
    assert row["status"] == "failed"
    assert "mail_template_error: template:" in row["last_error"], row["last_error"]
    assert "'name' is undefined" in row["last_error"]
    row = await finished(db, missing_template)
    assert "unknown_template: template: no mail template named 'gone'" in row["last_error"]
    assert await attempt_count(db, missing_var) == await attempt_count(db, missing_template) == 1
    assert sink.received == []


async def test_placeholders_of_the_params_are_rendered_before_the_mail_is_built(
    db: asyncpg.Pool, start_worker: Any, start_sink: StartSink, mail: Any, allow_loopback: None
) -> None:
    sink = await start_sink()
    mail(sink)
    row = await send(
        db,
        start_worker,
        {
            "to": "{{params.headers.X-To}}",
            "subject": "Job {{job.id}} ({{params.headers.X-To}})",
            "text": "sent on {{$today}}",
            "headers": {"X-To": "ann@example.com"},
        },
    )
    assert row["status"] == "succeeded", row["last_error"]
    [got] = sink.received
    assert got.rcpt_tos == ["ann@example.com"]
    assert got.message()["Subject"] == f"Job {row['id']} (ann@example.com)"


async def test_a_refused_only_recipient_fails_without_retry_with_the_answer(
    db: asyncpg.Pool, start_worker: Any, start_sink: StartSink, mail: Any, allow_loopback: None
) -> None:
    sink = await start_sink()
    sink.refuse["nobody@example.com"] = "550 5.1.1 <nobody@example.com>: no such user"
    mail(sink)
    row = await send(db, start_worker, {"to": "nobody@example.com", "text": "x"}, max_attempts=5)
    assert row["status"] == "failed"
    assert "smtp_rejected: every recipient refused by 127.0.0.1:" in row["last_error"]
    assert "nobody@example.com: 550 5.1.1 <nobody@example.com>: no such user" in row["last_error"]
    assert await attempt_count(db, row["id"]) == 1
    assert sink.received == []


async def test_some_recipients_refused_is_a_success_that_says_so(
    db: asyncpg.Pool, start_worker: Any, start_sink: StartSink, mail: Any, allow_loopback: None
) -> None:
    sink = await start_sink()
    sink.refuse["nobody@example.com"] = "550 5.1.1 no such user"
    mail(sink)
    row = await send(
        db, start_worker, {"to": ["ann@example.com", "nobody@example.com"], "text": "x"}
    )
    assert row["status"] == "succeeded", row["last_error"]
    assert row["result"]["accepted"] == ["ann@example.com"]
    assert row["result"]["refused"] == {
        "nobody@example.com": {"code": 550, "message": "5.1.1 no such user"}
    }
    [got] = sink.received
    assert got.rcpt_tos == ["ann@example.com"]
    assert b"nobody@example.com" in got.header_block()  # the To header names every recipient


async def test_a_451_is_retried_and_then_delivered(
    db: asyncpg.Pool, start_worker: Any, start_sink: StartSink, mail: Any, allow_loopback: None
) -> None:
    sink = await start_sink()
    sink.data_answers = ["451 4.3.0 try again later"]
    mail(sink)
    row = await send(db, start_worker, {"to": "ann@example.com", "text": "x"}, max_attempts=3)
    assert row["status"] == "succeeded", row["last_error"]
    assert row["attempt"] == 2 and sink.data_calls == 2 and len(sink.received) == 1
    first = await db.fetchrow(
        "SELECT outcome, error FROM job_attempts WHERE job_id = $1 AND attempt = 1", row["id"]
    )
    assert first["outcome"] != "succeeded"
    assert "DATA on 127.0.0.1:" in first["error"] and "451 4.3.0 try again later" in first["error"]


async def test_a_greylisted_recipient_is_retried_with_back_off(
    db: asyncpg.Pool, start_worker: Any, start_sink: StartSink, mail: Any, allow_loopback: None
) -> None:
    sink = await start_sink()
    sink.refuse_once["ann@example.com"] = "451 4.7.1 greylisted, try again later"
    mail(sink)
    row = await send(db, start_worker, {"to": "ann@example.com", "text": "x"}, max_attempts=3)
    assert row["status"] == "succeeded", row["last_error"]
    assert row["attempt"] == 2 and len(sink.received) == 1
    first = await db.fetchval(
        "SELECT error FROM job_attempts WHERE job_id = $1 AND attempt = 1", row["id"]
    )
    assert "SmtpTemporary: every recipient refused by 127.0.0.1:" in first
    assert "ann@example.com: 451 4.7.1 greylisted, try again later" in first


async def test_a_5xx_to_data_fails_for_good(
    db: asyncpg.Pool, start_worker: Any, start_sink: StartSink, mail: Any, allow_loopback: None
) -> None:
    sink = await start_sink()
    sink.data_answers = ["554 5.7.1 spam detected"]
    mail(sink)
    row = await send(db, start_worker, {"to": "ann@example.com", "text": "x"}, max_attempts=3)
    assert row["status"] == "failed"
    assert "smtp_rejected: DATA on 127.0.0.1:" in row["last_error"]
    assert row["last_error"].endswith("554 5.7.1 spam detected")
    assert await attempt_count(db, row["id"]) == 1


async def test_starttls_with_the_test_ca_and_auth(
    db: asyncpg.Pool,
    start_worker: Any,
    start_sink: StartSink,
    mail: Any,
    allow_loopback: None,
    certs: TestCerts,
) -> None:
    sink = await start_sink(starttls=True, user="mailer", password=PASSWORD)
    mail(sink, tls="starttls", ca_file=str(certs.ca_file), username="mailer", password=PASSWORD)
    row = await send(db, start_worker, {"to": "ann@example.com", "subject": "tls", "text": "x"})
    assert row["status"] == "succeeded", row["last_error"]
    [got] = sink.received
    assert got.tls and got.login == "mailer"
    assert row["result"]["server"] == {
        "host": "127.0.0.1",
        "port": sink.port,
        "tls": "starttls",
        "auth": True,
    }


async def test_tls_from_the_first_byte(
    db: asyncpg.Pool,
    start_worker: Any,
    start_sink: StartSink,
    mail: Any,
    allow_loopback: None,
    certs: TestCerts,
) -> None:
    sink = await start_sink(implicit_tls=True)
    mail(sink, tls="tls", ca_file=str(certs.ca_file))
    row = await send(db, start_worker, {"to": "ann@example.com", "text": "x"})
    assert row["status"] == "succeeded", row["last_error"]
    assert sink.received[0].tls


async def test_a_wrong_password_fails_once_with_the_535_answer_and_is_never_shown(
    db: asyncpg.Pool,
    start_worker: Any,
    start_sink: StartSink,
    mail: Any,
    allow_loopback: None,
    certs: TestCerts,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    sink = await start_sink(starttls=True, user="mailer", password="the-right-one")
    mail(sink, tls="starttls", ca_file=str(certs.ca_file), username="mailer", password=PASSWORD)
    row = await send(db, start_worker, {"to": "ann@example.com", "text": "x"}, max_attempts=5)
    assert row["status"] == "failed"
    assert "smtp_auth: AUTH as 'mailer' on 127.0.0.1:" in row["last_error"]
    assert "535" in row["last_error"]
    assert await attempt_count(db, row["id"]) == 1
    # aiosmtplib tries each mechanism the server offers (PLAIN, LOGIN): none is retried later
    assert sink.logins and all(who == ("mailer", False) for who in sink.logins)
    assert sink.received == []
    rows = [
        row,
        *await db.fetch("SELECT * FROM job_events WHERE job_id = $1", row["id"]),
        *await db.fetch("SELECT * FROM job_attempts WHERE job_id = $1", row["id"]),
        *await db.fetch("SELECT * FROM dead_letter_jobs"),
    ]
    stored = [
        *(str(dict(r)) for r in rows),
        caplog.text,
        *(r.getMessage() for r in caplog.records),
    ]
    assert not [s for s in stored if PASSWORD in s]
    assert not [s for s in stored if base64.b64encode(PASSWORD.encode()).decode() in s]


async def test_an_untrusted_certificate_fails_for_good_saying_why(
    db: asyncpg.Pool,
    start_worker: Any,
    start_sink: StartSink,
    mail: Any,
    allow_loopback: None,
    certs: TestCerts,
) -> None:
    sink = await start_sink(starttls=True, untrusted=True)
    mail(sink, tls="starttls", ca_file=str(certs.ca_file))
    row = await send(db, start_worker, {"to": "ann@example.com", "text": "x"}, max_attempts=5)
    assert row["status"] == "failed"
    assert "smtp_tls: TLS with 127.0.0.1:" in row["last_error"], row["last_error"]
    assert (
        "certificate verify failed" in row["last_error"]
        or "unable to get local issuer" in (row["last_error"])
    )
    errors = await db.fetch("SELECT error FROM job_attempts WHERE job_id = $1", row["id"])
    assert len(errors) == 1, errors
    assert sink.received == []


async def test_starttls_required_but_not_offered_fails_for_good(
    db: asyncpg.Pool, start_worker: Any, start_sink: StartSink, mail: Any, allow_loopback: None
) -> None:
    sink = await start_sink()
    mail(sink, tls="starttls")
    row = await send(db, start_worker, {"to": "ann@example.com", "text": "x"}, max_attempts=5)
    assert row["status"] == "failed"
    assert "does not offer STARTTLS" in row["last_error"]
    assert "smtp_tls:" in row["last_error"]


async def test_the_policy_refuses_a_loopback_smtp_host_without_the_allowlist(
    db: asyncpg.Pool, start_worker: Any, start_sink: StartSink, mail: Any
) -> None:
    sink = await start_sink()
    mail(sink)
    row = await send(db, start_worker, {"to": "ann@example.com", "text": "x"}, max_attempts=5)
    assert row["status"] == "failed"
    assert "outbound_denied: 127.0.0.1 is loopback" in row["last_error"]
    assert await attempt_count(db, row["id"]) == 1
    assert sink.received == []


async def test_a_server_that_is_not_there_is_retried(
    db: asyncpg.Pool, start_worker: Any, mail: Any, allow_loopback: None
) -> None:
    closed = SmtpSink(port=_closed_port())
    mail(closed)
    row = await send(db, start_worker, {"to": "ann@example.com", "text": "x"}, max_attempts=2)
    assert row["status"] == "failed" and row["attempt"] == 2
    assert f"SmtpUnavailable: connecting to 127.0.0.1:{closed.port}" in row["last_error"]


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_no_smtp_host_fails_for_good(db: asyncpg.Pool, start_worker: Any) -> None:
    configure_mail(MailConfig(server=None))
    try:
        row = await send(db, start_worker, {"to": "ann@example.com", "text": "x"}, max_attempts=3)
    finally:
        configure_mail(None)
    assert row["status"] == "failed"
    assert "smtp_not_configured:" in row["last_error"]
    assert await attempt_count(db, row["id"]) == 1


async def test_a_stored_smtp_credential_gives_the_server_and_the_login(
    db: asyncpg.Pool,
    start_worker: Any,
    start_sink: StartSink,
    allow_loopback: None,
    certs: TestCerts,
    keyring: Keyring,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """No SMTP_HOST: the credential's host, port, TLS mode and login are used, the settings'
    sender and CA still apply, and its password shows nowhere."""
    caplog.set_level(logging.DEBUG)
    sink = await start_sink(starttls=True, user="relay-user", password=PASSWORD)
    defaults = SmtpServer(
        host="", from_address=FROM, timeout_seconds=5.0, ca_file=str(certs.ca_file)
    )
    configure_mail(MailConfig(server=None, defaults=defaults))
    try:
        await store_credential(
            db,
            keyring,
            "relay",
            kind="smtp",
            username="relay-user",
            password=PASSWORD,
            host="127.0.0.1",
            port=sink.port,
            tls="starttls",
        )
        params = {
            "to": "ann@example.com",
            "subject": "via relay",
            "text": "x",
            "credential": "relay",
        }
        row = await send(db, start_worker, params)
    finally:
        configure_mail(None)
    assert row["status"] == "succeeded", row["last_error"]
    [got] = sink.received
    assert got.tls and got.login == "relay-user"
    assert row["result"]["server"] == {
        "host": "127.0.0.1",
        "port": sink.port,
        "tls": "starttls",
        "auth": True,
    }
    assert PASSWORD not in str(dict(row)) and PASSWORD not in caplog.text


async def test_a_credential_deleted_since_submission_fails_for_good(
    db: asyncpg.Pool, start_worker: Any, mail: Any, start_sink: StartSink, keyring: Keyring
) -> None:
    mail(await start_sink())
    row = await send(db, start_worker, {"to": "ann@example.com", "text": "x", "credential": "gone"})
    assert row["status"] == "failed" and "credential_not_found" in row["last_error"]
    assert await attempt_count(db, row["id"]) == 1
