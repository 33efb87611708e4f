"""Stored credentials for worker tests: a keyring for this process and `store_credential`,
which stores one through the same checks and sealing as `POST /v1/credentials`."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest

from jobserver.credentials import keyring as keyrings
from jobserver.credentials.crypto import seal
from jobserver.credentials.keyring import Keyring, parse_keyring
from jobserver.credentials.validate import check_credential
from jobserver.db.credentials import credential_insert


def new_secret_key() -> str:
    """A JOBSERVER_SECRET_KEY value: 32 random bytes, urlsafe base64."""
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()


@pytest.fixture
def keyring() -> Iterator[Keyring]:
    """A fresh key for this process (the worker's `current_keyring`), reset afterwards."""
    ring = parse_keyring(new_secret_key())
    keyrings.configure(ring)
    yield ring
    keyrings.configure()


async def store_credential(
    pool: asyncpg.Pool, ring: Keyring, name: str, **body: Any
) -> asyncpg.Record:
    checked = check_credential(body)
    kid, sealed = seal(ring, name, checked.kind, checked.secret)
    return await credential_insert(
        pool,
        name,
        kind=checked.kind,
        username=checked.username,
        host_keys=[k.as_json() for k in checked.host_keys],
        public_key=checked.public_key,
        public_key_fingerprint=checked.public_key_fingerprint,
        secret_fields=checked.secret_fields,
        options=checked.options,
        key_id=kid,
        secret=sealed,
        by="test",
    )
