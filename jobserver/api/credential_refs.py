"""Submission checks of the params that name a stored credential (`Definition.credentials`).

A job of `ssh.command` (or any definition declaring `credentials={"credential": "ssh"}`)
names its credential in its params. At submission — `POST /v1/jobs`, `/v1/jobs/batch`,
`/v1/simulate`, schedules — each such param, when given:
- needs a `manage_jobs` principal: credentials are the operators' (only they can list or
  create them), so a plain or outbound token may not run jobs with one (403 `forbidden`
  naming the param);
- must name a stored credential (422 `unknown_credential` naming it, e.g.
  `jobs[2].params.credential`) of the kind the definition wants (422 `validation_error`).
A credential deleted after submission fails the job at run time instead (permanently). One
query for all the names of a request, and none for definitions that name no credential.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from jobserver.api.auth import Principal
from jobserver.api.errors import ApiError, invalid
from jobserver.core.errors import at, format_path
from jobserver.db.conn import ConnOrPool, Queries
from jobserver.db.credentials import credential_kinds

# (the definition's credential params -> kinds, the job's params, where the params sit)
CredentialRefs = tuple[Mapping[str, str], Any, str]


async def check_credential_refs(
    pool: ConnOrPool | Queries, principal: Principal | None, refs: Iterable[CredentialRefs]
) -> None:
    """Raise the 403 or 422 of the first bad credential param among `refs` (see the module
    doc); `principal` None skips the scope check (the route already needs manage_jobs)."""
    named: list[tuple[str, str, str]] = []  # (field, credential name, kind wanted)
    for wanted, params, where in refs:
        if not wanted or not isinstance(params, dict):
            continue
        for param, kind in wanted.items():
            value = params.get(param)
            if isinstance(value, str):
                named.append((format_path((param,), at(where, "params")), value, kind))
    if not named:
        return
    if principal is not None and not principal.can_manage:
        field = named[0][0]
        raise ApiError(
            403,
            "forbidden",
            f"{field}: a job naming a stored credential needs the manage_jobs scope",
            field,
            {"scope": "manage_jobs"},
        )
    kinds = await credential_kinds(pool, sorted({name for _, name, _ in named}))
    for field, name, kind in named:
        found = kinds.get(name)
        if found is None:
            raise invalid(field, f"no stored credential is named {name!r}", "unknown_credential")
        if found != kind:
            raise invalid(field, f"credential {name!r} is of kind {found}, not {kind}")
