"""Mail template handlers: create, list, read, replace, change and delete the named templates
`mail.send` jobs render (`view_jobs` reads, `manage_jobs` writes).

A template is a `subject` and a `text` and/or an `html` part, each a Jinja2 template (see
`jobserver.mail.templates`), with a `description`. Every part is compiled when it is written,
so bad syntax is a 422 naming the part with Jinja's line and message (`html: line 3:
unexpected '}'`), and a template left with neither body is a 422 naming `text`. A taken name is
a 409 naming `name`. `PUT` replaces a template (parts not given are cleared, the description
becomes empty), `PATCH` changes only what it gives (`null` clears `text` or `html`). Writes
record the token's owner in `createdBy`/`updatedBy`. Lists page by name. A delete is a 409
`in_use` naming the saved jobs and schedules that still name the template
(`jobserver.api.reference_users`).
"""

from __future__ import annotations

from typing import Any

import asyncpg
from aiohttp import web

from jobserver.api.errors import ApiError, invalid, not_found
from jobserver.api.jsonio import json_response
from jobserver.api.keys import BODY_KEY, DEFINITION_CACHE_KEY, POOL_KEY, PRINCIPAL_KEY, QUERY_KEY
from jobserver.api.paging import Pager
from jobserver.api.reference_users import refuse_if_named, template_params
from jobserver.api.request import name_param
from jobserver.db.mail_templates import (
    WRITABLE,
    mail_template_delete,
    mail_template_get,
    mail_template_insert,
    mail_template_list,
    mail_template_lock,
    mail_template_update,
)
from jobserver.mail.templates import PARTS, TemplateProblem, check_syntax

TEMPLATES = Pager("mail_templates", ("str",))
WHAT = "mail template"


def template_json(r: asyncpg.Record) -> dict[str, Any]:
    return {
        "name": r["name"],
        "subject": r["subject"],
        "text": r["text"],
        "html": r["html"],
        "description": r["description"],
        "createdAt": r["created_at"],
        "updatedAt": r["updated_at"],
        "createdBy": r["created_by"],
        "updatedBy": r["updated_by"],
    }


def _checked(values: dict[str, Any]) -> dict[str, Any]:
    """The complete set of a template's fields, compiled: 422 naming the first bad part."""
    if values.get("text") is None and values.get("html") is None:
        raise invalid("text", "a template needs a text or an html part (or both)")
    for part in PARTS:
        source = values.get(part)
        if source is not None:
            try:
                check_syntax(part, source)
            except TemplateProblem as e:
                raise invalid(e.field, e.reason) from None
    return {k: values[k] for k in WRITABLE if k in values}


async def create_mail_template(request: web.Request) -> web.Response:
    body: dict[str, Any] = request[BODY_KEY]
    values = _checked({"text": None, "html": None, "description": "", **body})
    try:
        row = await mail_template_insert(
            request.app[POOL_KEY], body["name"], request[PRINCIPAL_KEY].owner, **values
        )
    except asyncpg.UniqueViolationError:
        raise ApiError(
            409, "conflict", f"mail template {body['name']!r} already exists", "name"
        ) from None
    return json_response(template_json(row), status=201)


async def list_mail_templates(request: web.Request) -> web.Response:
    q = request[QUERY_KEY]
    limit = q.get("limit", 20)
    after = TEMPLATES.after(q)
    rows = await mail_template_list(
        request.app[POOL_KEY], limit=limit + 1, after=None if after is None else after[0]
    )
    return json_response(TEMPLATES.page(rows, limit, lambda r: (r["name"],), template_json))


async def get_mail_template(request: web.Request) -> web.Response:
    row = await mail_template_get(request.app[POOL_KEY], name_param(request, WHAT))
    if row is None:
        raise not_found(WHAT)
    return json_response(template_json(row))


async def replace_mail_template(request: web.Request) -> web.Response:
    body: dict[str, Any] = request[BODY_KEY]
    values = _checked({"text": None, "html": None, "description": "", **body})
    row = await mail_template_update(
        request.app[POOL_KEY], name_param(request, WHAT), request[PRINCIPAL_KEY].owner, **values
    )
    if row is None:
        raise not_found(WHAT)
    return json_response(template_json(row))


async def patch_mail_template(request: web.Request) -> web.Response:
    body: dict[str, Any] = request[BODY_KEY]
    name = name_param(request, WHAT)
    async with request.app[POOL_KEY].acquire() as conn, conn.transaction():
        current = await mail_template_get(conn, name, lock=True)
        if current is None:
            raise not_found(WHAT)
        merged = {k: current[k] for k in WRITABLE}
        merged.update(body)
        _checked(merged)
        changes = {k: merged[k] for k in WRITABLE if k in body}
        row = await mail_template_update(conn, name, request[PRINCIPAL_KEY].owner, **changes)
    assert row is not None  # locked above, in this transaction
    return json_response(template_json(row))


async def delete_mail_template(request: web.Request) -> web.Response:
    """204; 409 `in_use` while a saved job or schedule names it
    (`jobserver.api.reference_users`)."""
    name = name_param(request, WHAT)
    pool = request.app[POOL_KEY]
    infos = await request.app[DEFINITION_CACHE_KEY].infos(pool)
    async with pool.acquire() as conn, conn.transaction():
        if not await mail_template_lock(conn, name):
            raise not_found(WHAT)
        await refuse_if_named(conn, template_params(infos), WHAT, name)
        await mail_template_delete(conn, name)
    return web.Response(status=204)
