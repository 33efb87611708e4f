"""The compatibility systems this package serves: name -> (module, default prefix).

Each module has `routes(prefix) -> list[Route]`. Modules are imported only when served.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from jobserver.api.routing import Route
from jobserver.compat.spec import Mount, parse_compat


@dataclass(frozen=True)
class System:
    module: str
    default_prefix: str
    document: str  # the reference document it speaks (shared/reference/)


SYSTEMS: dict[str, System] = {
    "janaah": System("jobserver.compat.janaah", "", "janaah-webhook-jobs.md"),
    "workflow": System("jobserver.compat.workflow", "", "workflow-jobs-api.md"),
    "mojo": System("jobserver.compat.mojo", "", "mojo-jobs-api.md"),
    "gatrix": System("jobserver.compat.gatrix", "/gatrix", "gatrix-job-management.md"),
}


def default_prefixes() -> dict[str, str]:
    return {name: s.default_prefix for name, s in SYSTEMS.items()}


def mounts(value: str) -> list[Mount]:
    """The mounts of a JOBSERVER_COMPAT value (CompatSpecError when malformed)."""
    return parse_compat(value, default_prefixes())


def compat_routes(value: str) -> list[Route]:
    """Every route of the systems `value` serves, under their prefixes."""
    out: list[Route] = []
    for mount in mounts(value):
        module = importlib.import_module(SYSTEMS[mount.name].module)
        out.extend(module.routes(mount.prefix))
    return out
