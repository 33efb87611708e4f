"""The message one `mail.send` attempt sends, built with the standard library's `EmailMessage`.

Shape: `text/plain` or `text/html` alone; `multipart/alternative` (text first, then HTML) for
both; wrapped in `multipart/mixed` with the attachments when there are some. Headers: From,
To, Cc (never Bcc), Reply-To, Subject, Date (UTC), a fresh Message-ID on the sender's domain,
MIME-Version, then the job's extra headers. Bcc recipients are in the SMTP envelope only.

Extra headers may not be structural ones (`refused_header`: From, To, Cc, Bcc, Subject,
Reply-To, Sender, Return-Path, Content-*, MIME-Version, Date, Message-ID) nor hold CR, LF or
NUL, so no job can forge the envelope's view of the message or inject a header.

The message is serialized once with CRLF line ends and 7-bit transfer encodings
(`email.policy.SMTP`: bodies that are not ASCII go quoted-printable or base64, headers
RFC 2047-encoded, so no relay needs 8BITMIME or SMTPUTF8); those bytes are what is sent and
measured (`size`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any

from jobserver.mail.addresses import MailAddress
from jobserver.mail.attachments import Attachment

STRUCTURAL_HEADERS = frozenset(
    {
        "from",
        "to",
        "cc",
        "bcc",
        "subject",
        "reply-to",
        "sender",
        "return-path",
        "mime-version",
        "date",
        "message-id",
    }
)


class MessageError(ValueError):
    """A message that cannot be built; `field` names the param at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def refused_header(name: str) -> str | None:
    """Why a job may not set header `name`, or None."""
    key = name.strip().lower()
    if key in STRUCTURAL_HEADERS or key.startswith("content-"):
        return f"header {name!r} is set by mail.send itself and may not be given"
    return None


def unsafe_text(value: str) -> bool:
    """Whether `value` could break out of its header line."""
    return any(c in value for c in "\r\n\x00")


@dataclass(frozen=True)
class Outgoing:
    """A message ready to send: its bytes, envelope and the summary results show."""

    data: bytes
    sender: str
    recipients: tuple[str, ...]
    message_id: str
    summary: dict[str, Any]


# Built with "\n" line ends (so an encoded body decodes to them), written with CRLF; no 8-bit
# body on the wire.
_POLICY = policy.default.clone(cte_type="7bit")
_WIRE = policy.SMTP.clone(cte_type="7bit")


def _unique(addresses: Sequence[MailAddress]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(a.addr_spec for a in addresses))


def build_message(
    *,
    sender: MailAddress,
    to: Sequence[MailAddress],
    cc: Sequence[MailAddress] = (),
    bcc: Sequence[MailAddress] = (),
    reply_to: Sequence[MailAddress] = (),
    subject: str,
    text: str | None,
    html: str | None,
    headers: Mapping[str, str] | None = None,
    attachments: Sequence[Attachment] = (),
    now: dt.datetime | None = None,
) -> Outgoing:
    """The message (see the module docstring). MessageError for a header a job may not set
    or a value that would break its line (checked at submission too, so only rendered values
    get here)."""
    if text is None and html is None:
        raise MessageError("text", "a mail needs a text or an html body")
    if unsafe_text(subject):
        raise MessageError("subject", "holds CR, LF or NUL")
    extra = dict(headers or {})
    for name, value in extra.items():
        why = refused_header(name)
        if why is not None:
            raise MessageError(f"headers.{name}", why)
        if unsafe_text(name) or unsafe_text(value):
            raise MessageError(f"headers.{name}", "holds CR, LF or NUL")
    try:
        return _build(sender, to, cc, bcc, reply_to, subject, text, html, extra, attachments, now)
    except (ValueError, TypeError) as e:  # what the email package refuses
        raise MessageError("params", f"cannot build the message: {e}") from None


def _build(
    sender: MailAddress,
    to: Sequence[MailAddress],
    cc: Sequence[MailAddress],
    bcc: Sequence[MailAddress],
    reply_to: Sequence[MailAddress],
    subject: str,
    text: str | None,
    html: str | None,
    extra: Mapping[str, str],
    attachments: Sequence[Attachment],
    now: dt.datetime | None,
) -> Outgoing:
    msg = EmailMessage(policy=_POLICY)
    msg["From"] = sender.header()
    if to:
        msg["To"] = tuple(a.header() for a in to)
    if cc:
        msg["Cc"] = tuple(a.header() for a in cc)
    if reply_to:
        msg["Reply-To"] = tuple(a.header() for a in reply_to)
    msg["Subject"] = subject
    msg["Date"] = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    message_id = make_msgid(domain=sender.addr_spec.rpartition("@")[2])
    msg["Message-ID"] = message_id
    for name, value in extra.items():
        msg[name] = value
    if text is not None:
        msg.set_content(text)
        if html is not None:
            msg.add_alternative(html, subtype="html")
    else:
        assert html is not None
        msg.set_content(html, subtype="html")
    for a in attachments:
        maintype, _, subtype = a.content_type.partition("/")
        msg.add_attachment(
            a.data, maintype=maintype, subtype=subtype or "octet-stream", filename=a.filename
        )
    data = msg.as_bytes(policy=_WIRE)
    recipients = _unique([*to, *cc, *bcc])
    summary = {
        "messageId": message_id,
        "from": str(sender),
        "to": [str(a) for a in to],
        "cc": [str(a) for a in cc],
        "bcc": [str(a) for a in bcc],
        "replyTo": [str(a) for a in reply_to],
        "subject": subject,
        "headers": {k: str(v) for k, v in msg.items()},
        "envelope": {"sender": sender.addr_spec, "recipients": list(recipients)},
        "text": text,
        "html": html,
        "attachments": [a.summary() for a in attachments],
        "contentType": msg.get_content_type(),
        "size": len(data),
    }
    return Outgoing(data, sender.addr_spec, recipients, message_id, summary)
