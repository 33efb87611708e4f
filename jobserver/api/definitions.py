"""Definition handlers (view_jobs): the job definitions registered in the database.

The list is served from the app's definition cache (the whole, small table), paged by
(key, version); `latest` marks the newest version of each key.
"""

from __future__ import annotations

from aiohttp import web

from jobserver.api.jsonio import json_response
from jobserver.api.keys import DEFINITION_CACHE_KEY, POOL_KEY, QUERY_KEY
from jobserver.api.paging import Pager
from jobserver.api.views import definition_json

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
