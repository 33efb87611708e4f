"""`POST /v1/simulate`: the dry run of a submission. It renders what a run would send now
(sources fetched, macros and placeholders filled) and sends nothing, writes nothing.

The body is a job submission (`POST /v1/jobs`), checked exactly as one: the same 422s, the
same 403s (an outbound definition needs the outbound capability, since a dry run reads the
same sources a run would). Rendering problems a submission cannot see — a source that finds
nothing, a missing path in a source's data — are a 422 naming the field too. The answer:
`{"definitionKey", "definitionVersion", "sent": false, "params": <rendered params, secrets
shown as ***>, "payload": <the rendered payload, or body, or null>}`. A definition renders the
params it names `templated` (see `jobserver.registry`); for one without, the params come back
as given. A definition with a `preview` hook shows what it would send as `payload` instead
(`mail.send`: the message's headers, envelope, bodies and attachment names and sizes); what
it cannot build is a 422 naming the field. Checks against the database (`check_stored`: a
mail's template exists) run as for a submission.
"""

from __future__ import annotations

import datetime as dt
from datetime import UTC
from typing import Any

from aiohttp import web

from jobserver.api.auth import require_outbound
from jobserver.api.errors import ApiError
from jobserver.api.jsonio import json_response
from jobserver.api.keys import (
    BODY_KEY,
    DEFINITION_CACHE_KEY,
    POOL_KEY,
    PRINCIPAL_KEY,
    SETTINGS_KEY,
)
from jobserver.api.quotas import check_priority
from jobserver.api.reference_checks import check_references
from jobserver.api.views import shown_params
from jobserver.core.errors import format_path
from jobserver.core.submission import build_job
from jobserver.registry import registry
from jobserver.rendering import render_preview
from jobserver.rendering.context import path_tuple
from jobserver.sources.shared import current_driver
from jobserver.sources.spec import SourceError
from jobserver.templating import TemplateError


def _field(location: str) -> str:
    return format_path(path_tuple(location), "params") if location else "params"


async def simulate(request: web.Request) -> web.Response:
    pool = request.app[POOL_KEY]
    item = request[BODY_KEY]
    principal = request[PRINCIPAL_KEY]
    check_priority(principal, request.app[SETTINGS_KEY], item)
    info = await request.app[DEFINITION_CACHE_KEY].resolve(
        pool, item["definitionKey"], item.get("definitionVersion")
    )
    if info.outbound:
        require_outbound(principal, info.key, info.version)
    job = build_job(item, None, info, principal.owner, dt.datetime.now(UTC))
    await check_references(pool, principal, info, job.params)
    params: dict[str, Any] = job.params
    code = registry.get(info.key, info.version)
    try:
        rendered = await render_preview(
            params,
            code.templated if code is not None else (),
            driver=current_driver(),
            queue=job.queue,
            event=item.get("event"),
            tags=item.get("tags") or (),
        )
    except TemplateError as e:
        raise ApiError(422, e.code, str(e), _field(e.location)) from None
    except SourceError as e:
        raise ApiError(422, "source_error", str(e), _field(e.path)) from None
    if code is not None and code.preview is not None:  # what it would send (mail: the message)
        payload = await code.preview(rendered, pool)
    else:
        payload = rendered.get("payload", rendered.get("body"))
    return json_response(
        {
            "definitionKey": info.key,
            "definitionVersion": info.version,
            "sent": False,
            "params": shown_params(info.key, info.version, rendered),
            "payload": payload,
        }
    )
