"""`jobserver tokens`: create, list and revoke API tokens.

    jobserver tokens create --name N [--scope view_jobs] [--scope manage_jobs] [--outbound]
                            [--owner O] [--max-running N] [--max-queued N]
    jobserver tokens quotas NAME [--max-running N|default] [--max-queued N|default]
    jobserver tokens list
    jobserver tokens revoke NAME

`create` prints the token once (only its hash is stored); the owner defaults to the name.
`--outbound` (the same as `--scope outbound`) lets the token submit jobs whose definitions call
out (`call.api`); without it, or manage_jobs, such a submission is a 403. Names and owners are
letters, digits and `. _ @ + -`; internal owners (`scheduler`, `anonymous`, `system:*`) are
refused (exit 2).
`--max-running` / `--max-queued` are the owner's quotas: jobs it may have running across the
fleet (claims skip it at its quota, so other owners' jobs start) and queued (a submission past
it is a 429 `quota_exceeded`). Unset, the OWNER_MAX_RUNNING / OWNER_MAX_QUEUED defaults hold;
when several active tokens share an owner, the smallest value holds. `quotas` changes them on
an existing token (`default` clears one); workers see a new running quota within seconds.
`list` never shows a token, only its first characters. A revoked token stops working within
the API's token cache TTL (a few seconds).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

import asyncpg

from jobserver.auth import OUTBOUND, SCOPES, create_token
from jobserver.cli.common import fail, load_settings, run
from jobserver.db.pool import connect
from jobserver.db.tokens import token_list, token_revoke, token_set_quotas
from jobserver.owners import token_name_problem

DEFAULT = "default"


def _quota_or_default(raw: str) -> int | str:
    return DEFAULT if raw == DEFAULT else int(raw)


def _quota_flags(p: argparse.ArgumentParser, kind: Callable[[str], object]) -> None:
    p.add_argument("--max-running", type=kind, help="jobs its owner may have running fleet-wide")
    p.add_argument("--max-queued", type=kind, help="jobs its owner may have queued (429 past it)")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="jobserver tokens", description="Manage API tokens.")
    sub = p.add_subparsers(dest="action", required=True)
    c = sub.add_parser("create", help="create a token and print it once")
    c.add_argument("--name", required=True)
    c.add_argument("--scope", action="append", default=[], choices=SCOPES)
    c.add_argument(
        "--outbound",
        action="store_true",
        help="may submit jobs that make outbound requests (call.api)",
    )
    c.add_argument("--owner", help="owner of the jobs it submits (default: the name)")
    _quota_flags(c, int)
    q = sub.add_parser("quotas", help="change a token's quotas")
    q.add_argument("name")
    _quota_flags(q, _quota_or_default)
    sub.add_parser("list", help="list tokens (never their values)")
    r = sub.add_parser("revoke", help="revoke a token by name")
    r.add_argument("name")
    return p


async def _create(
    url: str, name: str, scopes: list[str], owner: str, quotas: tuple[int | None, int | None]
) -> str:
    conn = await connect(url)
    try:
        return await create_token(
            conn, name, scopes, owner, max_running=quotas[0], max_queued=quotas[1]
        )
    except ValueError as e:
        fail(str(e), 2)
    except asyncpg.UniqueViolationError:
        fail(f"a token named {name!r} already exists", 1)
    finally:
        await conn.close()


async def _list(url: str) -> list[asyncpg.Record]:
    conn = await connect(url)
    try:
        return await token_list(conn)
    finally:
        await conn.close()


async def _set_quotas(url: str, name: str, max_running: object, max_queued: object) -> bool:
    conn = await connect(url)
    try:
        rows = [r for r in await token_list(conn) if r["name"] == name and not r["revoked_at"]]
        if not rows:
            return False
        current = rows[0]

        def pick(given: object, now: int | None) -> int | None:
            if given is None:
                return now  # not given: unchanged
            return None if given == DEFAULT else int(given)  # type: ignore[call-overload]

        return await token_set_quotas(
            conn,
            name,
            pick(max_running, current["max_running"]),
            pick(max_queued, current["max_queued"]),
        )
    finally:
        await conn.close()


async def _revoke(url: str, name: str) -> bool:
    conn = await connect(url)
    try:
        return await token_revoke(conn, name)
    finally:
        await conn.close()


def _ts(value: object) -> str:
    return value.isoformat(timespec="seconds") if value is not None else "-"  # type: ignore[attr-defined]


def _quota(value: int | None) -> str:
    return "default" if value is None else str(value)


def _check_quotas(*values: object) -> None:
    for flag, value in zip(("--max-running", "--max-queued"), values, strict=True):
        if isinstance(value, int) and value < 1:
            fail(f"{flag} must be at least 1 (or 'default')", 2)


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    settings = load_settings()
    url = settings.require_database_url()
    if args.action == "create":
        name = args.name.strip()
        owner = args.owner.strip() if args.owner is not None else name
        problem = token_name_problem(name) or token_name_problem(owner, "token owner")
        if problem is not None:
            fail(problem, 2)
        scopes = sorted(set(args.scope) | ({OUTBOUND} if args.outbound else set()))
        _check_quotas(args.max_running, args.max_queued)
        token = run(_create(url, name, scopes, owner, (args.max_running, args.max_queued)))
        print(token)
        print(
            f"token {name!r} created (scopes: {', '.join(scopes) or 'submit'});"
            " it is shown only once",
            file=sys.stderr,
        )
    elif args.action == "quotas":
        _check_quotas(args.max_running, args.max_queued)
        if not run(_set_quotas(url, args.name, args.max_running, args.max_queued)):
            fail(f"no active token named {args.name!r}", 1)
        print(f"token {args.name!r} quotas changed")
    elif args.action == "list":
        rows = run(_list(url))
        print(
            f"{'NAME':<24} {'PREFIX':<10} {'OWNER':<16} {'SCOPES':<24} {'RUNNING':<8} "
            f"{'QUEUED':<10} {'LAST USED':<25} STATE"
        )
        for r in rows:
            state = f"revoked {_ts(r['revoked_at'])}" if r["revoked_at"] else "active"
            shown = ",".join(r["scopes"]) or "submit"
            print(
                f"{r['name']:<24} {r['prefix'] + '…':<10} {r['owner']:<16} {shown:<24} "
                f"{_quota(r['max_running']):<8} {_quota(r['max_queued']):<10} "
                f"{_ts(r['last_used_at']):<25} {state}"
            )
    else:
        if not run(_revoke(url, args.name)):
            fail(f"no active token named {args.name!r}", 1)
        print(f"token {args.name!r} revoked")


if __name__ == "__main__":
    main()
