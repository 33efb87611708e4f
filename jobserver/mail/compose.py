"""From a `mail.send` job's rendered params to the message it sends: addresses parsed, the
stored template rendered with the job's `variables`, attachments decoded or read, the
`EmailMessage` built. Shared by the worker (each attempt) and the dry run (`POST /v1/simulate`).

What cannot be built raises `ComposeError(field, message, code)`, `field` naming the param
(`to[1]`, `template`, `attachments[0].path`, `headers.X-Tag`): the worker fails the attempt
for good with it, the dry run answers a 422 naming it. Nothing here retries: a template that
is gone or a file that is missing does not come back by waiting.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from jobserver.db.conn import ConnOrPool
from jobserver.db.mail_templates import mail_template_get
from jobserver.mail.addresses import (
    MAX_RECIPIENTS,
    AddressError,
    MailAddress,
    address_list,
    parse_address,
)
from jobserver.mail.attachments import AttachmentError, load
from jobserver.mail.config import MailLimits
from jobserver.mail.message import MessageError, Outgoing, build_message
from jobserver.mail.templates import TemplateParts, TemplateProblem, render_template

ADDRESS_FIELDS = ("to", "cc", "bcc", "replyTo")


class ComposeError(ValueError):
    def __init__(self, field: str, message: str, code: str = "bad_mail") -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
        self.code = code


def _one(value: Any, field: str) -> MailAddress:
    if not isinstance(value, str):
        raise ComposeError(field, f"rendered to {type(value).__name__}, not an address")
    try:
        return parse_address(value)
    except AddressError as e:
        raise ComposeError(field, str(e)) from None


def addresses(params: Mapping[str, Any], field: str) -> list[MailAddress]:
    """The addresses of `field` (one string or a list), each checked; ComposeError naming the
    item (`to[2]`) otherwise."""
    value = params.get(field)
    if isinstance(value, list):
        return [_one(v, f"{field}[{i}]") for i, v in enumerate(value)]
    return [_one(v, field) for v in address_list(value)]


async def _content(conn: ConnOrPool, params: Mapping[str, Any]) -> dict[str, str | None]:
    """subject, text and html: the job's own, or its template's rendered with `variables` (a
    `subject` in the params overrides the template's)."""
    name = params.get("template")
    if name is None:
        return {
            "subject": str(params.get("subject") or ""),
            "text": params.get("text"),
            "html": params.get("html"),
        }
    row = await mail_template_get(conn, str(name))
    if row is None:
        raise ComposeError("template", f"no mail template named {name!r}", "unknown_template")
    variables = params.get("variables") or {}
    if not isinstance(variables, dict):
        raise ComposeError("variables", "rendered to a non-object")
    try:
        parts = await asyncio.to_thread(render_template, TemplateParts.of(row), variables)
    except TemplateProblem as e:
        raise ComposeError(
            "template", f"the {e.field} of {name!r}: {e.reason}", "mail_template_error"
        ) from None
    if params.get("subject") is not None:
        parts["subject"] = str(params["subject"])
    return parts


def _headers(params: Mapping[str, Any]) -> dict[str, str]:
    raw = params.get("headers") or {}
    if not isinstance(raw, dict):
        raise ComposeError("headers", "rendered to a non-object")
    out: dict[str, str] = {}
    for name, value in raw.items():
        if not isinstance(value, str):
            raise ComposeError(f"headers.{name}", "rendered to a non-string")
        out[str(name)] = value
    return out


async def compose(
    conn: ConnOrPool,
    params: Mapping[str, Any],
    limits: MailLimits,
    default_from: str | None,
) -> Outgoing:
    """The message of rendered `params` (see the module docstring)."""
    sender_text = params.get("from") or default_from
    if not sender_text:
        raise ComposeError("from", "no sender: give `from` or set SMTP_FROM", "no_sender")
    try:
        sender = _one(sender_text, "from")
    except ComposeError as e:
        given = "from" if params.get("from") else "SMTP_FROM"
        raise ComposeError("from", f"{given}: {e.message}", "no_sender") from None
    found = {field: addresses(params, field) for field in ADDRESS_FIELDS}
    count = len(found["to"]) + len(found["cc"]) + len(found["bcc"])
    if count == 0:
        raise ComposeError("to", "no recipient in to, cc or bcc")
    if count > MAX_RECIPIENTS:
        raise ComposeError("to", f"{count} recipients: at most {MAX_RECIPIENTS} in to, cc and bcc")
    content = await _content(conn, params)
    headers = _headers(params)
    try:
        attachments = await asyncio.to_thread(load, params.get("attachments"), limits)
    except AttachmentError as e:
        raise ComposeError(e.field, e.message, "bad_attachment") from None
    try:
        return build_message(
            sender=sender,
            to=found["to"],
            cc=found["cc"],
            bcc=found["bcc"],
            reply_to=found["replyTo"],
            subject=content["subject"] or "",
            text=content["text"],
            html=content["html"],
            headers=headers,
            attachments=attachments,
        )
    except MessageError as e:
        raise ComposeError(e.field, e.message) from None
