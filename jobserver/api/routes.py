"""The route table: the API modules whose `ROUTES` lists the app registers, in this order.

Add a module here (one line) to publish its routes; access control, body/query validation and
`/openapi.json` all follow from each `Route`.
"""

from __future__ import annotations

import importlib

from jobserver.api.routing import Route

ROUTE_MODULES = [
    "jobserver.api.health",
    "jobserver.api.jobs",
    "jobserver.api.definitions",
    "jobserver.api.openapi",
    "jobserver.api.schedules",
    "jobserver.api.dlq",
    "jobserver.api.runners",
    "jobserver.api.metrics",
    "jobserver.api.prometheus",
]


def all_routes(modules: list[str] | None = None) -> list[Route]:
    routes: list[Route] = []
    for name in modules if modules is not None else ROUTE_MODULES:
        routes.extend(importlib.import_module(name).ROUTES)
    return routes
