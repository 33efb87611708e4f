"""`jobserver tokens`: create, list and revoke API tokens.

    jobserver tokens create --name N [--scope view_jobs] [--scope manage_jobs] [--outbound]
                            [--owner O]
    jobserver tokens list
    jobserver tokens revoke NAME

`create` prints the token once (only its hash is stored); the owner defaults to the name.
`--outbound` (the same as `--scope outbound`) lets the token submit jobs whose definitions call
out (`call.api`); without it, or manage_jobs, such a submission is a 403. Names and owners are
letters, digits and `. _ @ + -`; internal owners (`scheduler`, `anonymous`, `system:*`) are
refused (exit 2).
`list` never shows a token, only its first characters. A revoked token stops working within
the API's token cache TTL (a few seconds).
"""

from __future__ import annotations

import argparse
import sys

import asyncpg

from jobserver.auth import OUTBOUND, SCOPES, create_token
from jobserver.cli.common import fail, load_settings, run
from jobserver.db.pool import connect
from jobserver.db.tokens import token_list, token_revoke
from jobserver.owners import token_name_problem


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
    sub.add_parser("list", help="list tokens (never their values)")
    r = sub.add_parser("revoke", help="revoke a token by name")
    r.add_argument("name")
    return p


async def _create(url: str, name: str, scopes: list[str], owner: str) -> str:
    conn = await connect(url)
    try:
        return await create_token(conn, name, scopes, owner)
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


async def _revoke(url: str, name: str) -> bool:
    conn = await connect(url)
    try:
        return await token_revoke(conn, name)
    finally:
        await conn.close()


def _ts(value: object) -> str:
    return value.isoformat(timespec="seconds") if value is not None else "-"  # type: ignore[attr-defined]


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
        token = run(_create(url, name, scopes, owner))
        print(token)
        print(
            f"token {name!r} created (scopes: {', '.join(scopes) or 'submit'});"
            " it is shown only once",
            file=sys.stderr,
        )
    elif args.action == "list":
        rows = run(_list(url))
        print(f"{'NAME':<24} {'PREFIX':<10} {'OWNER':<16} {'SCOPES':<24} {'LAST USED':<25} STATE")
        for r in rows:
            state = f"revoked {_ts(r['revoked_at'])}" if r["revoked_at"] else "active"
            shown = ",".join(r["scopes"]) or "submit"
            print(
                f"{r['name']:<24} {r['prefix'] + '…':<10} {r['owner']:<16} {shown:<24} "
                f"{_ts(r['last_used_at']):<25} {state}"
            )
    else:
        if not run(_revoke(url, args.name)):
            fail(f"no active token named {args.name!r}", 1)
        print(f"token {args.name!r} revoked")


if __name__ == "__main__":
    main()
