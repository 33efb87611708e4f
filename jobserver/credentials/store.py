"""Reading a stored credential in the worker: `await load_credential(pool, name, kind)`.

The one place a secret is decrypted. A job names its credential in its params (never the
secret itself); its definition loads it at run time, so a rotated secret (`PUT
/v1/credentials/{name}`) is used from the next attempt on. Failures are permanent
(`jobserver.credentials.models`): no such credential (`credential_not_found`), one of another
kind (`credential_kind`), no JOBSERVER_SECRET_KEY in this process (`secret_key_missing`), a
secret that does not decrypt (`credential_unreadable`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import asyncpg

from jobserver.credentials.crypto import unseal
from jobserver.credentials.keyring import current_keyring
from jobserver.credentials.models import (
    Credential,
    CredentialKindMismatch,
    CredentialNotFound,
    HostKey,
    SecretKeyMissing,
)
from jobserver.db.credentials import credential_get_sealed


def host_keys_of(raw: Any) -> tuple[HostKey, ...]:
    return tuple(HostKey(fingerprint=k["fingerprint"], key=k.get("key")) for k in raw or ())


def credential_of(row: asyncpg.Record, secret: Mapping[str, str]) -> Credential:
    options = row["options"] or {}
    return Credential(
        name=row["name"],
        kind=row["kind"],
        username=row["username"],
        host_keys=host_keys_of(row["host_keys"]),
        host=options.get("host"),
        port=options.get("port"),
        tls=options.get("tls"),
        private_key=secret.get("privateKey"),
        passphrase=secret.get("passphrase"),
        password=secret.get("password"),
    )


async def load_credential(pool: asyncpg.Pool, name: str, kind: str) -> Credential:
    """The credential `name`, which must be of `kind`, decrypted (see the module doc)."""
    row = await credential_get_sealed(pool, name)
    if row is None:
        raise CredentialNotFound(f"no stored credential is named {name!r}")
    if row["kind"] != kind:
        raise CredentialKindMismatch(f"credential {name!r} is of kind {row['kind']}, not {kind}")
    keyring = current_keyring()
    if keyring is None:
        raise SecretKeyMissing(
            f"credential {name!r} cannot be decrypted: JOBSERVER_SECRET_KEY is not set in"
            " this worker"
        )
    secret = unseal(keyring, name, row["kind"], row["key_id"], bytes(row["secret"]))
    return credential_of(row, secret)
