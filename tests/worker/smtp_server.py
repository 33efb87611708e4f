"""A real SMTP server for the mail tests: aiosmtpd on 127.0.0.1, in the test's own event loop.

`SmtpSink` records every message it accepts (envelope sender and recipients, the raw bytes,
whether the session was TLS, who logged in) and answers as it is told: `refuse` maps a
recipient to an RCPT answer ("550 5.1.1 no such user"; `refuse_once` only the first time),
`data_answers` is a list of answers to
DATA played in order (then 250). `Sinks(certs).start(...)` starts one plain, with STARTTLS (a
test certificate), with TLS from the first byte, and/or with AUTH (aiosmtpd's authenticator:
one user and password); all are closed when the `async with Sinks(...)` block ends.

Certificates are made here with `cryptography`: a CA and a server certificate for 127.0.0.1
and localhost signed by it (`TestCerts.make(dir)`), written as PEM files, so the client trusts
the CA through SMTP_CA_FILE. A second CA gives an untrusted certificate.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email
import email.policy
import ipaddress
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    tls: bool
    login: str | None

    def message(self) -> EmailMessage:
        """The message as a mailbox would store it (line ends as "\n")."""
        unix = self.data.replace(b"\r\n", b"\n")
        parsed = email.message_from_bytes(unix, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed

    def header_block(self) -> bytes:
        return self.data.split(b"\r\n\r\n", 1)[0]


@dataclass
class SmtpSink:
    port: int = 0
    received: list[Received] = field(default_factory=list)
    refuse: dict[str, str] = field(default_factory=dict)
    refuse_once: dict[str, str] = field(default_factory=dict)  # then accepted (greylisting)
    data_answers: list[str] = field(default_factory=list)
    data_calls: int = 0
    logins: list[tuple[str, bool]] = field(default_factory=list)  # (user, accepted)

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        answer = self.refuse.get(address) or self.refuse_once.pop(address, None)
        if answer is not None:
            return answer
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.data_calls += 1
        if self.data_answers:
            answer = self.data_answers.pop(0)
            if not answer.startswith("250"):
                return answer
        content = envelope.original_content or envelope.content
        assert isinstance(content, bytes)
        login = session.auth_data
        self.received.append(
            Received(
                str(envelope.mail_from),
                list(envelope.rcpt_tos),
                content,
                server.transport is not None
                and server.transport.get_extra_info("ssl_object") is not None,
                login.login.decode() if isinstance(login, LoginPassword) else None,
            )
        )
        return "250 2.0.0 Message accepted"


@dataclass(frozen=True)
class TestCerts:
    ca_file: Path  # the CA the client trusts (SMTP_CA_FILE)
    cert_file: Path  # the server's certificate, signed by that CA
    key_file: Path
    other_cert_file: Path  # a certificate of an untrusted CA
    other_key_file: Path

    __test__ = False  # not a test class

    @staticmethod
    def make(directory: Path) -> TestCerts:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        now = dt.datetime.now(dt.UTC)

        def name(cn: str) -> x509.Name:
            return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

        def key() -> ec.EllipticCurvePrivateKey:
            return ec.generate_private_key(ec.SECP256R1())

        def ca(cn: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
            k = key()
            cert = (
                x509.CertificateBuilder()
                .subject_name(name(cn))
                .issuer_name(name(cn))
                .public_key(k.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(minutes=5))
                .not_valid_after(now + dt.timedelta(days=1))
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .add_extension(
                    x509.KeyUsage(
                        digital_signature=True,
                        content_commitment=False,
                        key_encipherment=False,
                        data_encipherment=False,
                        key_agreement=False,
                        key_cert_sign=True,
                        crl_sign=True,
                        encipher_only=False,
                        decipher_only=False,
                    ),
                    critical=True,
                )
                .add_extension(
                    x509.SubjectKeyIdentifier.from_public_key(k.public_key()), critical=False
                )
                .sign(k, hashes.SHA256())
            )
            return cert, k

        def leaf(
            ca_cert: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey
        ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
            k = key()
            cert = (
                x509.CertificateBuilder()
                .subject_name(name("localhost"))
                .issuer_name(ca_cert.subject)
                .public_key(k.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(minutes=5))
                .not_valid_after(now + dt.timedelta(days=1))
                .add_extension(
                    x509.SubjectAlternativeName(
                        [
                            x509.DNSName("localhost"),
                            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                        ]
                    ),
                    critical=False,
                )
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(
                    x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]),
                    critical=False,
                )
                .add_extension(
                    x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                    critical=False,
                )
                .sign(ca_key, hashes.SHA256())
            )
            return cert, k

        def write(path: Path, cert: x509.Certificate | None, k: Any = None) -> Path:
            if cert is not None:
                path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
            else:
                path.write_bytes(
                    k.private_bytes(
                        serialization.Encoding.PEM,
                        serialization.PrivateFormat.PKCS8,
                        serialization.NoEncryption(),
                    )
                )
            return path

        ca_cert, ca_key = ca("jobserver test CA")
        server_cert, server_key = leaf(ca_cert, ca_key)
        other_ca, other_ca_key = ca("an untrusted CA")
        other_cert, other_key = leaf(other_ca, other_ca_key)
        return TestCerts(
            ca_file=write(directory / "ca.pem", ca_cert),
            cert_file=write(directory / "server.pem", server_cert),
            key_file=write(directory / "server.key", None, server_key),
            other_cert_file=write(directory / "other.pem", other_cert),
            other_key_file=write(directory / "other.key", None, other_key),
        )

    def server_context(self, trusted: bool = True) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        if trusted:
            ctx.load_cert_chain(self.cert_file, self.key_file)
        else:
            ctx.load_cert_chain(self.other_cert_file, self.other_key_file)
        return ctx


StartSink = Callable[..., Awaitable[SmtpSink]]


class Sinks:
    """`async with Sinks(certs) as start:` then `await start(starttls=False,
    implicit_tls=False, user=None, password=None, untrusted=False)`: SMTP servers on
    127.0.0.1, all closed on exit."""

    def __init__(self, certs: TestCerts | None = None) -> None:
        self.certs = certs
        self.servers: list[asyncio.Server] = []

    async def __aenter__(self) -> StartSink:
        return self.start

    async def __aexit__(self, *exc: object) -> None:
        for server in self.servers:
            server.close()
            await server.wait_closed()

    async def start(
        self,
        *,
        starttls: bool = False,
        implicit_tls: bool = False,
        user: str | None = None,
        password: str | None = None,
        untrusted: bool = False,
    ) -> SmtpSink:
        sink = SmtpSink()
        tls = None
        if starttls or implicit_tls:
            assert self.certs is not None, "TLS needs the test certificates"
            tls = self.certs.server_context(trusted=not untrusted)

        def authenticate(
            server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
        ) -> AuthResult:
            ok = (
                isinstance(auth_data, LoginPassword)
                and auth_data.login.decode() == user
                and auth_data.password.decode() == password
            )
            sink.logins.append((auth_data.login.decode(), ok))
            return AuthResult(success=ok, handled=False, auth_data=auth_data)

        def protocol() -> SMTP:
            return SMTP(
                sink,
                hostname="smtp.test",
                tls_context=tls if starttls else None,
                require_starttls=starttls,
                authenticator=authenticate if user is not None else None,
                auth_required=user is not None,
                auth_require_tls=starttls or implicit_tls,
                enable_SMTPUTF8=True,
            )

        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            protocol, "127.0.0.1", 0, ssl=tls if implicit_tls else None
        )
        self.servers.append(server)
        sink.port = server.sockets[0].getsockname()[1]
        return sink
