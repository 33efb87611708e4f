"""What a job's params name that only the database can vouch for, checked at every place a job
is made from params: a submission, a batch item, a dry run, a schedule, a saved job and its
executions and retries.

Two checks: the stored credentials the params name (`jobserver.api.credential_refs`: they
exist, are of the kind the definition wants, and the principal may use them) and the
definition's own `check_stored` hook (`jobserver.api.stored_checks`: a mail's template
exists). Each answers its first problem as the 4xx naming the field.

`check_rerun` is what a stored job's params go through when they run again unchanged (a job's
retry, a saved job's execution retry): they were checked when first stored, but the
principal, the definition's code and what the params name may have changed since, so the
capability, the definition's `check_params` and the references are checked again.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from jobserver.api.auth import Principal, require_outbound
from jobserver.api.credential_refs import check_credential_refs
from jobserver.api.definitions_cache import DefinitionInfo
from jobserver.api.stored_checks import check_stored
from jobserver.core.errors import RuleError, format_path
from jobserver.db.conn import ConnOrPool, Queries


async def check_references(
    pool: ConnOrPool | Queries,
    principal: Principal | None,
    info: DefinitionInfo,
    params: Any,
    where: str = "",
) -> None:
    """`principal` None skips the credential scope check (for routes that need manage_jobs)."""
    if info.credentials:
        await check_credential_refs(pool, principal, [(info.credentials, params, where)])
    await check_stored(pool, info, params, where)


async def check_rerun(
    pool: asyncpg.Pool, principal: Principal, info: DefinitionInfo, params: Any
) -> None:
    """Stored `params` of `info` about to run again for `principal` (see the module doc): 403
    without the outbound capability the definition needs, 422 naming the field of the first
    problem `check_params` or the references find."""
    if info.outbound:
        require_outbound(principal, info.key, info.version)
    failure = info.check_params(params)
    if failure is not None:
        raise RuleError(format_path(failure[0], "params"), failure[1])
    await check_references(pool, principal, info, params)
