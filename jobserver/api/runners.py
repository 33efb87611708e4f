"""Runner handlers (view_jobs): the worker processes of the fleet.

Each worker records itself in `workers` at start (host, pid, queues, definitions, concurrency)
and on every heartbeat (last seen, running count); the scheduler marks one not seen for three
heartbeats `gone`. `held` is counted from `jobs` at read time, so it includes jobs the worker
claimed into its local buffer. The list shows live workers first, then the most recently seen;
`queue` keeps the workers that take jobs of that queue (theirs, or they take every queue).
Commands to runners (ping, shutdown, broadcast) are in control.py.
"""

from __future__ import annotations

from aiohttp import web

from jobserver.api.errors import invalid, not_found
from jobserver.api.jsonio import json_response
from jobserver.api.keys import POOL_KEY, QUERY_KEY
from jobserver.api.paging import Pager
from jobserver.api.request import name_param
from jobserver.api.views import runner_json
from jobserver.db.workers import WORKER_STATUSES, worker_get, worker_list

RUNNERS = Pager("runners", ("bool", "datetime", "str"))


async def list_runners(request: web.Request) -> web.Response:
    q = request[QUERY_KEY]
    statuses = q.get("status", [])
    for s in statuses:
        if s not in WORKER_STATUSES:
            raise invalid("status", f"unknown status {s!r}: expected {', '.join(WORKER_STATUSES)}")
    after = RUNNERS.after(q)
    limit = q.get("limit", 100)
    rows = await worker_list(
        request.app[POOL_KEY],
        statuses=sorted(set(statuses)),
        limit=limit + 1,
        after=None if after is None else (after[0], after[1], after[2]),
        queue=q.get("queue"),
    )
    return json_response(
        RUNNERS.page(rows, limit, lambda r: (r["gone"], r["last_seen_at"], r["id"]), runner_json)
    )


async def get_runner(request: web.Request) -> web.Response:
    row = await worker_get(request.app[POOL_KEY], name_param(request, "runner", "id"))
    if row is None:
        raise not_found("runner")
    return json_response(runner_json(row))
