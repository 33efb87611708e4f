"""Credential handlers (`manage_jobs`): store, list, read, rotate and delete credentials.

`POST /v1/credentials` stores an `ssh` or `smtp` credential: its fields are checked for its
kind (`jobserver.credentials.validate`: a private key asyncssh cannot import is a 422 naming
`privateKey`, a bad host key one naming `hostKeys[i]`), its secret fields are sealed here
(AES-256-GCM under JOBSERVER_SECRET_KEY, bound to the name and kind) and only the sealed bytes
are written. `PUT /v1/credentials/{name}` replaces a credential's fields and secrets (a
rotation; its kind stays, else a 422 naming `kind`); jobs use the new secret from their next
attempt. Answers show the plain fields, the fingerprints, the client key's public half and
which secret fields are stored, never a secret nor the sealed bytes. Lists page by name.

Without JOBSERVER_SECRET_KEY in the API's settings, storing is refused: 503
`secret_key_missing`, before anything is read or written (listing, reading and deleting still
work). A taken name is a 409 naming `name`. `DELETE /v1/credentials/{name}` is a 409 `in_use`
naming the saved jobs and schedules that still name it (`jobserver.api.reference_users`).
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
from aiohttp import web

from jobserver.api.errors import ApiError, invalid, not_found
from jobserver.api.jsonio import json_response
from jobserver.api.keys import (
    BODY_KEY,
    DEFINITION_CACHE_KEY,
    POOL_KEY,
    PRINCIPAL_KEY,
    QUERY_KEY,
    SETTINGS_KEY,
)
from jobserver.api.paging import Pager
from jobserver.api.reference_users import credential_params, refuse_if_named
from jobserver.api.request import name_param
from jobserver.credentials.crypto import seal
from jobserver.credentials.keyring import Keyring, keyring_for
from jobserver.credentials.validate import CheckedCredential, check_credential
from jobserver.db.credentials import (
    credential_delete,
    credential_get,
    credential_insert,
    credential_list,
    credential_lock,
    credential_replace,
)

CREDENTIALS = Pager("credentials", ("str",))


def credential_json(r: Any) -> dict[str, Any]:
    options = r["options"] or {}
    return {
        "name": r["name"],
        "kind": r["kind"],
        "username": r["username"],
        "hostKeys": [
            {"fingerprint": k["fingerprint"], "key": k.get("key")} for k in r["host_keys"] or ()
        ],
        "publicKey": r["public_key"],
        "publicKeyFingerprint": r["public_key_fingerprint"],
        "secrets": list(r["secret_fields"]),
        "host": options.get("host"),
        "port": options.get("port"),
        "tls": options.get("tls"),
        "keyId": r["key_id"],
        "createdAt": r["created_at"],
        "updatedAt": r["updated_at"],
        "createdBy": r["created_by"],
        "updatedBy": r["updated_by"],
    }


def _keyring(request: web.Request) -> Keyring:
    keyring = keyring_for(request.app[SETTINGS_KEY].secret_key)
    if keyring is None:
        raise ApiError(
            503,
            "secret_key_missing",
            "credentials cannot be stored: JOBSERVER_SECRET_KEY is not set on this API"
            " (32 random bytes, urlsafe base64; the workers need the same key)",
        )
    return keyring


def _by(request: web.Request) -> str:
    principal = request[PRINCIPAL_KEY]
    return principal.token_name or principal.owner


async def _sealed(
    keyring: Keyring, name: str, body: dict[str, Any]
) -> tuple[CheckedCredential, str, bytes]:
    """The checked credential and its sealed secret (key import and bcrypt off the loop)."""
    checked = await asyncio.to_thread(check_credential, body)
    kid, sealed = seal(keyring, name, checked.kind, checked.secret)
    return checked, kid, sealed


def _columns(checked: CheckedCredential, kid: str, sealed: bytes) -> dict[str, Any]:
    return {
        "username": checked.username,
        "host_keys": [k.as_json() for k in checked.host_keys],
        "public_key": checked.public_key,
        "public_key_fingerprint": checked.public_key_fingerprint,
        "secret_fields": checked.secret_fields,
        "options": checked.options,
        "key_id": kid,
        "secret": sealed,
    }


async def create_credential(request: web.Request) -> web.Response:
    body: dict[str, Any] = request[BODY_KEY]
    keyring = _keyring(request)
    name = body["name"]
    checked, kid, sealed = await _sealed(keyring, name, body)
    try:
        row = await credential_insert(
            request.app[POOL_KEY],
            name,
            kind=checked.kind,
            by=_by(request),
            **_columns(checked, kid, sealed),
        )
    except asyncpg.UniqueViolationError:
        raise ApiError(409, "conflict", f"credential {name!r} already exists", "name") from None
    return json_response(credential_json(row), status=201)


async def list_credentials(request: web.Request) -> web.Response:
    q = request[QUERY_KEY]
    limit = q.get("limit", 100)
    after = CREDENTIALS.after(q)
    rows = await credential_list(
        request.app[POOL_KEY],
        limit=limit + 1,
        after=None if after is None else after[0],
        kind=q.get("kind"),
    )
    return json_response(CREDENTIALS.page(rows, limit, lambda r: (r["name"],), credential_json))


async def get_credential(request: web.Request) -> web.Response:
    row = await credential_get(request.app[POOL_KEY], name_param(request, "credential"))
    if row is None:
        raise not_found("credential")
    return json_response(credential_json(row))


async def replace_credential(request: web.Request) -> web.Response:
    body: dict[str, Any] = request[BODY_KEY]
    name = name_param(request, "credential")
    keyring = _keyring(request)
    pool = request.app[POOL_KEY]
    current = await credential_get(pool, name)
    if current is None:
        raise not_found("credential")
    if body["kind"] != current["kind"]:
        raise invalid(
            "kind",
            f"credential {name!r} is of kind {current['kind']}: a credential keeps its kind"
            " (delete it and create another)",
        )
    checked, kid, sealed = await _sealed(keyring, name, body)
    row = await credential_replace(
        pool, name, kind=checked.kind, by=_by(request), **_columns(checked, kid, sealed)
    )
    if row is None:  # deleted (or deleted and created again as another kind) meanwhile
        raise not_found("credential")
    return json_response(credential_json(row))


async def delete_credential(request: web.Request) -> web.Response:
    """204; 409 `in_use` while a saved job or schedule names it
    (`jobserver.api.reference_users`)."""
    name = name_param(request, "credential")
    pool = request.app[POOL_KEY]
    infos = await request.app[DEFINITION_CACHE_KEY].infos(pool)
    async with pool.acquire() as conn, conn.transaction():
        kind = await credential_lock(conn, name)
        if kind is None:
            raise not_found("credential")
        await refuse_if_named(conn, credential_params(infos, kind), "credential", name)
        await credential_delete(conn, name)
    return web.Response(status=204)
