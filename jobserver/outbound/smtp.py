"""SMTP under the outbound policy, on aiosmtplib: what `mail.send` calls to hand a message over.

`deliver(server, sender, recipients, data)`:
- resolves `server.host` once with `resolve_and_check` and opens the TCP connection itself to
  an address it returned (the first that answers), handing the socket to aiosmtplib, so the
  name is never looked up a second time; TLS still checks the certificate against
  `server.host` (SNI and host name), against SMTP_CA_FILE when set, else the system's CAs;
- `tls`: TLS from the first byte (port 465); `starttls`: a plain connection that must upgrade
  (a server without STARTTLS is a failure, never a silent plain session); `none`: no TLS;
- logs in when the server has a username (AUTH, after TLS);
- sends the envelope itself (MAIL FROM, one RCPT TO per recipient, DATA), so each recipient's
  answer is known: refused ones are reported with their codes, the message goes to the others.

Outcome: a `Delivery` (accepted, refused, the server's answer to DATA, duration). Failures:
- a 5xx answer (MAIL, DATA, every RCPT), an AUTH refusal and a TLS failure (certificate,
  handshake, STARTTLS missing) raise `PermanentError`s (`smtp_rejected`, `smtp_auth`,
  `smtp_tls`): retrying cannot help;
- a 4xx answer raises `SmtpTemporary` and a connection error or timeout `SmtpUnavailable`
  (ordinary exceptions: retried with back-off);
- a refused address is `OutboundDenied` (`outbound_denied`).
Every error message carries the server's code and text and names the server (host:port); the
password is scrubbed from all of them (aiosmtplib itself logs nothing).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import aiosmtplib

from jobserver.mail.config import SmtpServer
from jobserver.outbound.policy import IPAddress, Policy, resolve_and_check
from jobserver.outbound.redact import scrub
from jobserver.registry import PermanentError


class SmtpRejected(PermanentError):
    """A 5xx answer: the server will not take this message."""

    code = "smtp_rejected"


class SmtpAuthFailed(PermanentError):
    code = "smtp_auth"


class SmtpTlsFailed(PermanentError):
    code = "smtp_tls"


class SmtpTemporary(RuntimeError):
    """A 4xx answer: the server asks to try again later (retried with back-off)."""


class SmtpUnavailable(RuntimeError):
    """No answer: the connection failed, broke or timed out (retried with back-off)."""


@dataclass(frozen=True)
class Delivery:
    accepted: list[str]
    refused: dict[str, dict[str, Any]]
    reply: dict[str, Any]  # the server's answer to DATA
    duration_ms: float = 0.0


def tls_context(server: SmtpServer) -> ssl.SSLContext:
    """Certificate and host name checked, against SMTP_CA_FILE when set."""
    try:
        return ssl.create_default_context(cafile=server.ca_file)
    except (OSError, ssl.SSLError) as e:
        raise SmtpTlsFailed(f"cannot load SMTP_CA_FILE {server.ca_file!r}: {e}") from None


class _Session:
    """One delivery's naming and scrubbing: errors say where, never the password."""

    def __init__(self, server: SmtpServer) -> None:
        self.server = server
        self.where = f"{server.host}:{server.port}"
        self.hidden = [server.password] if server.password else []

    def clean(self, text: str) -> str:
        return scrub(text, self.hidden)

    def answer(self, code: int, message: str) -> str:
        return self.clean(f"{code} {message}".strip())

    def by_code(self, what: str, code: int, message: str) -> Exception:
        """A 4xx answer is temporary, a 5xx permanent; anything else (aiosmtplib's -1 for a
        broken exchange) is treated like a lost connection."""
        text = f"{what} on {self.where}: {self.answer(code, message)}"
        if 500 <= code < 600:
            return SmtpRejected(text)
        if 400 <= code < 500:
            return SmtpTemporary(text)
        return SmtpUnavailable(text)

    def unavailable(self, what: str, e: BaseException) -> SmtpUnavailable:
        detail = str(e) or type(e).__name__
        return SmtpUnavailable(f"{what} {self.where} failed: {self.clean(detail)}")

    def tls_failed(self, e: BaseException) -> SmtpTlsFailed:
        return SmtpTlsFailed(f"TLS with {self.where} failed: {self.clean(str(e) or repr(e))}")


def _local_name() -> str:
    """The name this host gives in EHLO: its own, with no DNS lookup (aiosmtplib's default,
    `getfqdn`, can wait seconds on a resolver)."""
    name = socket.gethostname()
    return name if name.isascii() and name.strip() else "localhost"


async def _open_socket(addrs: Sequence[IPAddress], port: int, seconds: float) -> socket.socket:
    """A connected, non-blocking TCP socket to the first of `addrs` that answers."""
    loop = asyncio.get_running_loop()
    last: BaseException | None = None
    for addr in addrs:
        family = socket.AF_INET if addr.version == 4 else socket.AF_INET6
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            async with asyncio.timeout(seconds):
                await loop.sock_connect(sock, (str(addr), port))
        except (OSError, TimeoutError) as e:
            sock.close()
            last = e
            continue
        return sock
    assert last is not None  # resolve_and_check returns at least one address
    raise last


def _tls_error(e: BaseException) -> BaseException | None:
    """The TLS error behind `e` (aiosmtplib wraps some), if that is what it is."""
    seen: BaseException | None = e
    while seen is not None:
        if isinstance(seen, ssl.SSLError | ssl.CertificateError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


async def _greet(client: aiosmtplib.SMTP) -> None:
    """EHLO (HELO for a server without ESMTP) when this session has not greeted yet: the
    extensions it lists decide STARTTLS and AUTH (STARTTLS makes the client forget them)."""
    if client.is_ehlo_or_helo_needed:
        try:
            await client.ehlo()
        except aiosmtplib.SMTPHeloError:
            await client.helo()


async def _connect(
    client: aiosmtplib.SMTP, session: _Session, server: SmtpServer, context: ssl.SSLContext | None
) -> None:
    try:
        await client.connect()
        await _greet(client)
        if context is not None and server.tls == "starttls":
            if not client.supports_extension("starttls"):
                raise SmtpTlsFailed(
                    f"{session.where} does not offer STARTTLS (SMTP_TLS=starttls requires it)"
                )
            await client.starttls(server_hostname=server.host, tls_context=context)
    except PermanentError:
        raise
    except aiosmtplib.SMTPResponseException as e:
        if _tls_error(e) is not None:
            raise session.tls_failed(_tls_error(e) or e) from None
        raise session.by_code("connect", e.code, e.message) from None
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as e:
        tls = _tls_error(e)
        if tls is not None:
            raise session.tls_failed(tls) from None
        raise session.unavailable("connecting to", e) from None


async def _login(client: aiosmtplib.SMTP, session: _Session, server: SmtpServer) -> None:
    if server.username is None:
        return
    try:
        await client.login(server.username, server.password or "")
    except aiosmtplib.SMTPAuthenticationError as e:
        if 400 <= e.code < 500:
            raise session.by_code("AUTH", e.code, e.message) from None
        raise SmtpAuthFailed(
            f"AUTH as {server.username!r} on {session.where} refused: "
            f"{session.answer(e.code, e.message)}"
        ) from None
    except aiosmtplib.SMTPResponseException as e:
        raise session.by_code("AUTH", e.code, e.message) from None
    except aiosmtplib.SMTPException as e:  # no AUTH offered, no mechanism in common
        if isinstance(e, aiosmtplib.SMTPServerDisconnected | aiosmtplib.SMTPTimeoutError):
            raise session.unavailable("AUTH on", e) from None
        raise SmtpAuthFailed(f"AUTH on {session.where}: {session.clean(str(e))}") from None


async def _envelope(
    client: aiosmtplib.SMTP,
    session: _Session,
    sender: str,
    recipients: Sequence[str],
) -> tuple[list[str], dict[str, dict[str, Any]]]:
    await _greet(client)
    try:
        await client.mail(sender)
    except aiosmtplib.SMTPResponseException as e:
        raise session.by_code(f"MAIL FROM:<{sender}>", e.code, e.message) from None
    accepted: list[str] = []
    refused: dict[str, dict[str, Any]] = {}
    for rcpt in recipients:
        try:
            await client.rcpt(rcpt)
        except aiosmtplib.SMTPResponseException as e:
            refused[rcpt] = {"code": e.code, "message": session.clean(e.message)}
        else:
            accepted.append(rcpt)
    if not accepted:
        with contextlib.suppress(Exception):  # the outcome is known already
            await client.rset()
        listed = "; ".join(f"{r}: {a['code']} {a['message']}" for r, a in refused.items())
        text = f"every recipient refused by {session.where}: {listed}"
        if any(400 <= a["code"] < 500 for a in refused.values()):
            raise SmtpTemporary(text)
        raise SmtpRejected(text)
    return accepted, refused


async def deliver(
    server: SmtpServer,
    sender: str,
    recipients: Sequence[str],
    data: bytes,
    *,
    policy: Policy | None = None,
) -> Delivery:
    """Hand `data` to `server` for `recipients` (see the module docstring)."""
    started = time.monotonic()
    session = _Session(server)
    context = tls_context(server) if server.tls != "none" else None
    try:
        addrs = await resolve_and_check(server.host, server.port, policy)
        sock = await _open_socket(addrs, server.port, server.timeout_seconds)
    except PermanentError:
        raise
    except (OSError, TimeoutError) as e:
        raise session.unavailable("connecting to", e) from None
    client = aiosmtplib.SMTP(
        hostname=server.host,  # for TLS only: the socket is connected already
        sock=sock,
        local_hostname=_local_name(),
        use_tls=server.tls == "tls",
        start_tls=False,
        tls_context=context if server.tls == "tls" else None,
        timeout=server.timeout_seconds,
    )
    try:
        await _connect(client, session, server, context)
        await _login(client, session, server)
        accepted, refused = await _envelope(client, session, sender, recipients)
        try:
            reply = await client.data(data)
        except aiosmtplib.SMTPResponseException as e:
            raise session.by_code("DATA", e.code, e.message) from None
        with contextlib.suppress(Exception):  # the outcome is known already
            await client.quit()
    except (PermanentError, SmtpTemporary, SmtpUnavailable):
        raise
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as e:
        raise session.unavailable("talking to", e) from None
    finally:
        # the client's transport owns the socket now and closes it; closing it here too could
        # close a descriptor that already belongs to the next connection
        client.close()
    return Delivery(
        accepted=accepted,
        refused=refused,
        reply={"code": reply.code, "message": session.clean(reply.message)},
        duration_ms=round((time.monotonic() - started) * 1000.0, 3),
    )
