"""Definition handlers (view_jobs): the job definitions registered in the database.

The list is served from the app's definition cache (the whole, small table), paged by
(key, version); `latest` marks the newest version of each key.

`GET /v1/definitions/{key}` is one job type as an admin console shows it: its latest version
(or `?version=N`) with the params schema, description, defaults (`defaultMaxAttempts`,
`timeoutSeconds`, `concurrencyLimit`, `backoff`, and `paramDefaults`: the `default` of each
top-level property of the params schema), the outbound flag, every registered `versions` and
the `templated` params (null when this process does not have the code). An unknown key is a
404 naming it (`field: key`); an unknown version of a known key a 404 naming `version`.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from jobserver.api.errors import ApiError
from jobserver.api.jsonio import json_response
from jobserver.api.keys import DEFINITION_CACHE_KEY, POOL_KEY, QUERY_KEY
from jobserver.api.paging import Pager
from jobserver.api.request import name_param
from jobserver.api.views import definition_json
from jobserver.registry import registry

DEFINITIONS = Pager("definitions", ("str", "int"))


async def list_definitions(request: web.Request) -> web.Response:
    cache = request.app[DEFINITION_CACHE_KEY]
    rows = await cache.rows(request.app[POOL_KEY])  # ordered by key, version
    q = request[QUERY_KEY]
    key = q.get("key")
    after = DEFINITIONS.after(q)
    limit = q.get("limit", 100)
    picked = []
    for r in rows:
        if key is not None and r["key"] != key:
            continue
        if after is not None and (r["key"], r["version"]) <= after:
            continue
        picked.append(r)
        if len(picked) > limit:
            break
    return json_response(
        DEFINITIONS.page(
            picked,
            limit,
            lambda r: (r["key"], r["version"]),
            lambda r: definition_json(r, cache.latest_version(r["key"]) == r["version"]),
        )
    )


def param_defaults(schema: Any) -> dict[str, Any]:
    """The `default` of each top-level property of a params schema ({} without any)."""
    props = schema.get("properties") if isinstance(schema, dict) else None
    if not isinstance(props, dict):
        return {}
    return {k: v["default"] for k, v in props.items() if isinstance(v, dict) and "default" in v}


async def get_definition(request: web.Request) -> web.Response:
    key = name_param(request, "definition")
    version = request[QUERY_KEY].get("version")
    cache = request.app[DEFINITION_CACHE_KEY]
    pool = request.app[POOL_KEY]
    info = await cache.get(pool, key, version)
    if info is None:
        if version is not None and await cache.get(pool, key) is not None:
            raise ApiError(
                404, "not_found", f"definition {key!r} has no version {version}", "version"
            )
        raise ApiError(404, "not_found", f"definition {key!r} not found", "key")
    code = registry.get(info.key, info.version)
    return json_response(
        {
            **definition_json(info.row, cache.latest_version(info.key) == info.version),
            "versions": [r["version"] for r in await cache.rows(pool) if r["key"] == info.key],
            "templated": None if code is None else list(code.templated),
            "paramDefaults": param_defaults(info.params_schema),
        }
    )
