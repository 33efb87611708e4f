"""What a job's params name that only the database can vouch for, checked at every place a job
is made from params: a submission, a batch item, a dry run, a schedule, a saved job and its
executions and retries.

Two checks: the stored credentials the params name (`jobserver.api.credential_refs`: they
exist, are of the kind the definition wants, and the principal may use them) and the
definition's own `check_stored` hook (`jobserver.api.stored_checks`: a mail's template
exists). Each answers its first problem as the 4xx naming the field.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from jobserver.api.auth import Principal
from jobserver.api.credential_refs import check_credential_refs
from jobserver.api.definitions_cache import DefinitionInfo
from jobserver.api.stored_checks import check_stored


async def check_references(
    pool: asyncpg.Pool,
    principal: Principal | None,
    info: DefinitionInfo,
    params: Any,
    where: str = "",
) -> None:
    """`principal` None skips the credential scope check (for routes that need manage_jobs)."""
    if info.credentials:
        await check_credential_refs(pool, principal, [(info.credentials, params, where)])
    await check_stored(pool, info, params, where)
