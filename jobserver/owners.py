"""Owners: who a job belongs to, and the internal owners no token can be.

A token's jobs belong to its owner (the token's name unless `--owner` says otherwise); plain
tokens see only their owner's jobs. Jobs that no token submitted belong to internal owners:

- `SCHEDULER` ("system:scheduler"): jobs fired by schedules (cron and the trigger route);
- `ANONYMOUS` ("system:anonymous"): jobs submitted while JOBSERVER_AUTH=disabled;
- `PUBLIC` ("system:public"): the principal of public routes (it submits nothing).

Internal owners carry the `system:` prefix, and a token name or owner may not contain `:`
(`TOKEN_NAME`), so none can be taken. The older internal values (`scheduler`, `anonymous`) and
`public`/`system` are reserved words too: `jobserver tokens create` refuses them, and a token
created before this rule whose owner is one of them (or holds `:`) is refused when it
authenticates (401): it could otherwise read jobs stored under the old internal names. Such a
token is recreated under another name; migration 0003 moves existing jobs to the new values.
"""

from __future__ import annotations

import re

INTERNAL_PREFIX = "system:"
SCHEDULER = INTERNAL_PREFIX + "scheduler"
ANONYMOUS = INTERNAL_PREFIX + "anonymous"
PUBLIC = INTERNAL_PREFIX + "public"

RESERVED_WORDS = frozenset({"scheduler", "anonymous", "public", "system"})

# What a token's name and owner look like: no `:`, no spaces or control characters.
TOKEN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,199}")
TOKEN_NAME_DESCRIPTION = (
    "1-200 characters: letters, digits and . _ @ + - (starting with a letter or digit)"
)


def is_reserved(owner: str) -> bool:
    """An owner no token may have: internal (holds `:`) or a reserved word."""
    return ":" in owner or owner.lower() in RESERVED_WORDS


def token_name_problem(value: str, what: str = "token name") -> str | None:
    """Why `value` cannot be a token's name or owner, or None."""
    if not TOKEN_NAME.fullmatch(value):
        return f"{what} {value!r}: expected {TOKEN_NAME_DESCRIPTION}"
    if is_reserved(value):
        return f"{what} {value!r} is reserved for jobserver's own jobs"
    return None
