"""`mail.send@1`: one mail per job, sent over SMTP under the outbound policy.

Params:
- `to`, `cc`, `bcc`: one address or a list (`jane@example.com`, `Jane Doe <jane@example.com>`),
  validated (`jobserver.mail.addresses`); at least one recipient in all, at most
  `MAX_RECIPIENTS` together. Bcc recipients are in the SMTP envelope only, never a header;
- `from` (else SMTP_FROM), `replyTo` (one address or a list);
- `subject` and `text` and/or `html` (at least one), or `template`: the name of a stored mail
  template (`/v1/mail-templates`) rendered with `variables` (an object; Jinja2 sandbox, HTML
  part autoescaped, a missing variable fails the attempt naming it). With a template, `text`
  and `html` are refused and a `subject` overrides the template's; `variables` without a
  template are refused;
- `attachments`: `{filename, contentType?, content}` (base64) or `{filename, contentType?,
  path}` (a file under MAIL_ATTACHMENT_DIR; see `jobserver.mail.attachments`), their decoded
  total at most MAIL_MAX_ATTACHMENT_BYTES;
- `headers`: extra headers; structural ones (From, To, Cc, Bcc, Subject, Reply-To, Sender,
  Return-Path, Content-*, MIME-Version, Date, Message-ID) and CR/LF are refused;
- `credential`: the name of a stored `smtp` credential (`/v1/credentials`): its host, port,
  TLS mode, username and password replace SMTP_HOST, SMTP_PORT, SMTP_TLS, SMTP_USERNAME and
  SMTP_PASSWORD for this job (naming one needs manage_jobs; an unknown one is a 422 naming
  `credential`; one deleted since fails the attempt for good);
- `useSources` and `sources`: data sources read before each run, as for `http.request`.

Templating (`jobserver.rendering`): `to`, `cc`, `bcc`, `subject`, `text`, `html`,
`variables`, `replyTo` and `headers` may hold `{{paths}}` and `{{$macros}}`, rendered before
every attempt; what a rendered value must be is checked again then (an address, a header
without CR/LF).

Submission (a 422 naming the field): every rule above that the params alone can tell (an
address, a refused header, bad base64, base64 already over the cap, a path attachment without
MAIL_ATTACHMENT_DIR, a path with `..`), the templates, and that the `template` exists
(`check_stored`). At run time the same failures are permanent (`bad_mail`,
`unknown_template`, `mail_template_error`, `bad_attachment`, `no_sender`); SMTP_HOST unset is
`smtp_not_configured`.

Outcome (`jobserver.outbound.smtp`): the server's answers decide. A 4xx reply (to MAIL, RCPT,
DATA, AUTH) fails the attempt and it is retried with back-off; a 5xx reply, an AUTH refusal
(535) and a TLS failure (an untrusted or mismatched certificate, STARTTLS missing) fail it for
good; a connection error or a timeout is retried; a refused address is `outbound_denied`. The
error carries the server's code and text. When some recipients are refused and others
accepted, the mail went out to those: the attempt succeeds (a retry would send it to them
twice) with the refused ones and their codes in `refused` and a warning logged; only when
every recipient is refused does the attempt fail (retried when a refusal was 4xx).

Result: `messageId`, `from`, `accepted`, `refused` ({address: {code, message}}), `size` (bytes
sent), `reply` (the server's answer to the message: code and text), `server` (host, port, tls,
whether it authenticated), `attachments` (names, types and sizes) and `durationMs`. Never the
password, never the attachments' bytes. Submitting it needs the `outbound` capability.
"""

from __future__ import annotations

import time
from typing import Any

from jobserver.core.errors import RuleError, format_path
from jobserver.core.names import MAIL_TEMPLATE_NAME
from jobserver.credentials.models import CREDENTIAL_NAME
from jobserver.mail.addresses import MAX_RECIPIENTS
from jobserver.mail.config import current_mail_config
from jobserver.registry import ParamsProblem, PermanentError, definition
from jobserver.rendering import check_submission
from jobserver.rendering.context import path_tuple
from jobserver.rendering.job_info import render_job_params

TEMPLATED = ("to", "cc", "bcc", "subject", "text", "html", "variables", "replyTo", "headers")
MAX_ATTACHMENTS = 50
MAX_BODY_CHARS = 10 * 1024 * 1024
ADDRESS_FIELDS = ("from", "to", "cc", "bcc", "replyTo")

ADDRESS: dict[str, Any] = {"type": "string", "minLength": 1, "maxLength": 998}
ADDRESSES: dict[str, Any] = {
    "anyOf": [ADDRESS, {"type": "array", "items": ADDRESS, "maxItems": MAX_RECIPIENTS}]
}
HEADER_NAME = "^[!-9;-~]{1,76}$"  # printable ASCII but the colon (RFC 5322 field names)

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "to": ADDRESSES,
        "cc": ADDRESSES,
        "bcc": ADDRESSES,
        "from": ADDRESS,
        "replyTo": ADDRESSES,
        "subject": {"type": "string", "maxLength": 2000},
        "text": {"type": "string", "maxLength": MAX_BODY_CHARS},
        "html": {"type": "string", "maxLength": MAX_BODY_CHARS},
        "template": MAIL_TEMPLATE_NAME.schema(),
        "variables": {"type": "object"},
        "attachments": {
            "type": "array",
            "maxItems": MAX_ATTACHMENTS,
            "items": {
                "type": "object",
                "required": ["filename"],
                "additionalProperties": False,
                "properties": {
                    "filename": {
                        "type": "string",
                        "minLength": 1,
                        "maxLength": 255,
                        "pattern": "^[^\\x00-\\x1f\\x7f/\\\\]+$",
                    },
                    "contentType": {
                        "type": "string",
                        "maxLength": 255,
                        "pattern": "^(?:application|audio|font|image|message|model|text|video)"
                        "/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*$",
                    },
                    "content": {"type": "string", "description": "base64"},
                    "path": {
                        "type": "string",
                        "minLength": 1,
                        "maxLength": 4096,
                        "description": "relative to MAIL_ATTACHMENT_DIR",
                    },
                },
                "oneOf": [{"required": ["content"]}, {"required": ["path"]}],
            },
        },
        "headers": {
            "type": "object",
            "propertyNames": {"pattern": HEADER_NAME},
            "additionalProperties": {"type": "string", "maxLength": 998},
            "maxProperties": 50,
        },
        "credential": CREDENTIAL_NAME.schema(),
        "useSources": {"type": "boolean"},
        "sources": {"type": "object"},
    },
    "additionalProperties": False,
}


def _is_templated(value: Any) -> bool:
    return isinstance(value, str) and "{{" in value


def _address_problems(params: dict[str, Any]) -> list[ParamsProblem]:
    from jobserver.mail.addresses import AddressError, parse_address

    for field in ADDRESS_FIELDS:
        value = params.get(field)
        items = list(enumerate(value)) if isinstance(value, list) else [(None, value)]
        for i, item in items:
            if item is None or _is_templated(item):
                continue  # checked once rendered
            try:
                parse_address(item)
            except AddressError as e:
                return [((field,) if i is None else (field, i), str(e))]
    return []


def _count(value: Any) -> int:
    if value is None:
        return 0
    return len(value) if isinstance(value, list) else 1


def _shape_problems(params: dict[str, Any]) -> list[ParamsProblem]:
    has_body = "text" in params or "html" in params
    if "template" in params and has_body:
        field = "text" if "text" in params else "html"
        return [((field,), "give a template or text/html bodies, not both")]
    if "template" not in params and not has_body:
        return [(("text",), "give text and/or html, or a template")]
    if "variables" in params and "template" not in params:
        return [(("variables",), "variables are for a template: give template too")]
    recipients = sum(_count(params.get(f)) for f in ("to", "cc", "bcc"))
    if recipients == 0:
        return [(("to",), "at least one recipient is needed in to, cc or bcc")]
    if recipients > MAX_RECIPIENTS:
        return [(("to",), f"{recipients} recipients: at most {MAX_RECIPIENTS} in to, cc and bcc")]
    return []


def _header_problems(params: dict[str, Any]) -> list[ParamsProblem]:
    from jobserver.mail.message import refused_header, unsafe_text

    headers = params.get("headers")
    if not isinstance(headers, dict):
        return []
    for name, value in headers.items():
        why = refused_header(name)
        if why is not None:
            return [(("headers", name), why)]
        if isinstance(value, str) and unsafe_text(value):
            return [(("headers", name), "a header value may not hold CR, LF or NUL")]
    return []


def check_params(params: Any) -> list[ParamsProblem]:
    """What submission can know without the database (see the module docstring)."""
    from jobserver.mail.attachments import submission_problems

    if not isinstance(params, dict):
        return []
    subject = params.get("subject")
    if isinstance(subject, str) and any(c in subject for c in "\r\n\x00"):
        return [(("subject",), "the subject may not hold CR, LF or NUL")]
    for check in (_shape_problems, _address_problems, _header_problems):
        problems = check(params)
        if problems:
            return problems
    problems = submission_problems(params.get("attachments"), current_mail_config().limits)
    return problems or check_submission(params, TEMPLATED)


async def check_stored(params: Any, conn: Any) -> list[ParamsProblem]:
    """The template a submission names must exist (it may still be deleted before the run:
    then the attempt fails for good)."""
    from jobserver.db.mail_templates import mail_template_exists

    name = params.get("template") if isinstance(params, dict) else None
    if isinstance(name, str) and not await mail_template_exists(conn, name):
        return [(("template",), f"no mail template named {name!r}")]
    return []


async def preview(params: Any, conn: Any) -> dict[str, Any]:
    """The dry run: the message a run would send now (headers, envelope, bodies, attachment
    names and sizes), built exactly as a run builds it; a RuleError naming the field for
    what could not be built."""
    from jobserver.mail.compose import ComposeError, compose

    config = current_mail_config()
    default_from = config.server.from_address if config.server is not None else None
    try:
        outgoing = await compose(conn, params, config.limits, default_from)
    except ComposeError as e:
        raise RuleError(format_path(path_tuple(e.field), "params"), e.message, e.code) from None
    return outgoing.summary


async def _rendered(ctx: Any, params: dict[str, Any]) -> dict[str, Any]:
    return await render_job_params(ctx, params, TEMPLATED)


@definition(
    "mail.send",
    1,
    params_schema=SCHEMA,
    default_max_attempts=5,
    timeout_seconds=300,
    outbound=True,
    check_params=check_params,
    templated=TEMPLATED,
    check_stored=check_stored,
    preview=preview,
    credentials={"credential": "smtp"},
    mail_templates=("template",),
)
async def mail_send(params: dict[str, Any], ctx: Any) -> dict[str, Any]:
    """Send one mail over SMTP under the outbound policy; record what the server answered."""
    from jobserver.mail.compose import ComposeError, compose
    from jobserver.outbound.smtp import deliver  # aiosmtplib on first use

    config = current_mail_config()
    credential = None
    if params.get("credential") is not None:
        from jobserver.credentials import load_credential

        credential = await load_credential(ctx.pool, params["credential"], "smtp")
    server = config.server_for(credential)
    if server is None:
        raise PermanentError(
            "SMTP_HOST is not set (nor a host in the job's credential): no server to send mail to",
            "smtp_not_configured",
        )
    started = time.monotonic()
    rendered = await _rendered(ctx, params)
    try:
        outgoing = await compose(ctx.pool, rendered, config.limits, server.from_address)
    except ComposeError as e:
        raise PermanentError(f"{e.field}: {e.message}", e.code) from None
    delivery = await deliver(server, outgoing.sender, outgoing.recipients, outgoing.data)
    if delivery.refused:
        ctx.logger.warning(
            "mail %s sent to %d recipients, refused for %d: %s",
            outgoing.message_id,
            len(delivery.accepted),
            len(delivery.refused),
            ", ".join(f"{a} ({r['code']})" for a, r in delivery.refused.items()),
        )
    else:
        ctx.logger.info(
            "mail %s sent to %d recipients", outgoing.message_id, len(delivery.accepted)
        )
    return {
        "messageId": outgoing.message_id,
        "from": outgoing.summary["from"],
        "accepted": delivery.accepted,
        "refused": delivery.refused,
        "size": len(outgoing.data),
        "reply": delivery.reply,
        "server": server.describe(),
        "attachments": outgoing.summary["attachments"],
        "durationMs": round((time.monotonic() - started) * 1000.0, 3),
    }
