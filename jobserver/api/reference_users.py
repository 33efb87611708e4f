"""Who still names a stored credential or mail template: a delete is refused while someone does.

Saved jobs and schedules keep params that make jobs later, so a credential or template they
name must outlive them: `DELETE /v1/credentials/{name}` and `DELETE /v1/mail-templates/{name}`
answer 409 `in_use` while a saved job or a schedule (a plain one, or one declared in code; a
saved job's trigger counts as its saved job) names it in a param its definition declares
(`Definition.credentials` of the credential's kind, `Definition.mail_templates`), for the
definitions this API process has in code, as the submission checks do. The answer names the
first few users, `usedBy` {savedJobs: [{id, name, owner}], schedules: [{name}],
savedJobCount, scheduleCount}; change or delete them first. Jobs already made keep what they
named: one whose credential or template is gone fails at run time, for good.

The caller holds the stored row locked (FOR UPDATE) in the transaction that deletes it.
"""

from __future__ import annotations

from collections.abc import Iterable

from jobserver.api.definitions_cache import DefinitionInfo
from jobserver.api.errors import ApiError
from jobserver.db.conn import Conn
from jobserver.db.saved_jobs import saved_jobs_naming
from jobserver.db.schedules import schedules_naming

SHOWN = 5  # users named in the answer, of each kind


def credential_params(infos: Iterable[DefinitionInfo], kind: str) -> list[tuple[str, str]]:
    """(definition key, param) of every param that names a credential of `kind`."""
    return sorted(
        {(i.key, p) for i in infos for p, wanted in i.credentials.items() if wanted == kind}
    )


def template_params(infos: Iterable[DefinitionInfo]) -> list[tuple[str, str]]:
    """(definition key, param) of every param that names a mail template."""
    return sorted({(i.key, p) for i in infos for p in i.mail_templates})


async def refuse_if_named(conn: Conn, refs: list[tuple[str, str]], what: str, name: str) -> None:
    """409 `in_use` naming the saved jobs and schedules that name `name` in one of `refs`."""
    saved = await saved_jobs_naming(conn, refs, name, SHOWN)
    schedules = await schedules_naming(conn, refs, name, SHOWN)
    if not saved and not schedules:
        return
    saved_n = saved[0]["total"] if saved else 0
    schedules_n = schedules[0]["total"] if schedules else 0
    users = [f"saved job {r['id']}" for r in saved] + [f"schedule {r['name']!r}" for r in schedules]
    more = saved_n + schedules_n - len(users)
    listed = ", ".join(users) + (f" and {more} more" if more > 0 else "")
    raise ApiError(
        409,
        "in_use",
        f"{what} {name!r} is named by {listed}: change or delete them first",
        "name",
        {
            "usedBy": {
                "savedJobs": [
                    {"id": str(r["id"]), "name": r["name"], "owner": r["owner"]} for r in saved
                ],
                "schedules": [{"name": r["name"]} for r in schedules],
                "savedJobCount": saved_n,
                "scheduleCount": schedules_n,
            }
        },
    )
