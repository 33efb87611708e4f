"""Where mail goes and what it may carry: the SMTP server and the attachment limits.

`SmtpServer` is a frozen dataclass built from the settings (`server_from_settings`): SMTP_HOST,
SMTP_PORT (587), SMTP_USERNAME, SMTP_PASSWORD, SMTP_TLS (`starttls` | `tls` | `none`),
SMTP_FROM, SMTP_TIMEOUT (seconds per command) and SMTP_CA_FILE (a CA bundle to trust). A stored
credential (`credential` of a mail.send job, kind `smtp`) supplies its host, port, TLS mode
and login instead (`MailConfig.server_for`), so the code that sends never reads settings
itself. The password is left out of `repr`, and `describe()` (what
results, errors and logs show) never holds it.

`MailLimits`: MAIL_ATTACHMENT_DIR (where `path` attachments are read from; None: refused) and
MAIL_MAX_ATTACHMENT_BYTES (the total decoded size of one mail's attachments, 10 MiB).

Like the outbound policy, a process reads these once from its environment
(`current_mail_config()`); `configure_mail(...)` sets them instead (tests, embedding).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Literal, cast

if TYPE_CHECKING:
    from jobserver.config import Settings
    from jobserver.credentials.models import Credential

TlsMode = Literal["starttls", "tls", "none"]
DEFAULT_MAX_ATTACHMENT_BYTES = 10 * 1024 * 1024


@dataclass(frozen=True)
class SmtpServer:
    """One SMTP server and how to talk to it."""

    host: str
    port: int = 587
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: TlsMode = "starttls"
    from_address: str | None = None  # the sender of mails that give no `from`
    timeout_seconds: float = 30.0
    ca_file: str | None = None  # a CA bundle (PEM) to trust instead of the system's

    def with_login(
        self,
        *,
        host: str | None = None,
        port: int | None = None,
        tls: TlsMode | None = None,
        username: str | None = None,
        password: str | None = None,
    ) -> SmtpServer:
        """This server with a stored credential's host and login in place of the settings'
        (a None keeps the settings' value)."""
        return dataclasses.replace(
            self,
            host=host if host is not None else self.host,
            port=port if port is not None else self.port,
            tls=tls if tls is not None else self.tls,
            username=username if username is not None else self.username,
            password=password if password is not None else self.password,
        )

    def describe(self) -> dict[str, object]:
        """The server as results and errors show it: never the password."""
        return {
            "host": self.host,
            "port": self.port,
            "tls": self.tls,
            "auth": self.username is not None,
        }


@dataclass(frozen=True)
class MailLimits:
    attachment_dir: str | None = None
    max_attachment_bytes: int = DEFAULT_MAX_ATTACHMENT_BYTES


@dataclass(frozen=True)
class MailConfig:
    server: SmtpServer | None = None  # None: SMTP_HOST unset (a job needs a credential's host)
    limits: MailLimits = MailLimits()
    # SMTP_PORT, SMTP_TLS, SMTP_FROM, SMTP_TIMEOUT and SMTP_CA_FILE without a host: what a
    # stored credential's server gets when SMTP_HOST is unset
    defaults: SmtpServer = SmtpServer(host="")

    def server_for(self, credential: Credential | None) -> SmtpServer | None:
        """The server a job sends through: the settings', with a credential's host and login
        in their place when the job names one; None when neither gives a host."""
        if credential is None:
            return self.server
        base = self.server if self.server is not None else self.defaults
        tls = credential.tls if credential.tls in ("starttls", "tls", "none") else None
        server = base.with_login(
            host=credential.host,
            port=credential.port,
            tls=cast("TlsMode | None", tls),
            username=credential.username,
            password=credential.password,
        )
        return server if server.host else None


def server_from_settings(settings: Settings) -> SmtpServer | None:
    if not settings.smtp_host:
        return None
    return dataclasses.replace(_defaults(settings), host=settings.smtp_host)


def _defaults(settings: Settings) -> SmtpServer:
    return SmtpServer(
        host="",
        port=settings.smtp_port,
        username=settings.smtp_username or None,
        password=settings.smtp_password or None,
        tls=settings.smtp_tls,
        from_address=settings.smtp_from or None,
        timeout_seconds=settings.smtp_timeout,
        ca_file=settings.smtp_ca_file or None,
    )


def mail_config_from_settings(settings: Settings) -> MailConfig:
    return MailConfig(
        server=server_from_settings(settings),
        defaults=_defaults(settings),
        limits=MailLimits(
            attachment_dir=settings.mail_attachment_dir or None,
            max_attachment_bytes=settings.mail_max_attachment_bytes,
        ),
    )


_configured: MailConfig | None = None


def configure_mail(config: MailConfig | None) -> None:
    """Set this process's mail configuration (None: read the environment again on next use)."""
    global _configured
    _configured = config
    _from_env.cache_clear()


@lru_cache(maxsize=1)
def _from_env() -> MailConfig:
    from jobserver.config import Settings

    return mail_config_from_settings(Settings.from_env())


def current_mail_config() -> MailConfig:
    """The configuration `configure_mail` set, else the one read once from the environment."""
    return _configured if _configured is not None else _from_env()
