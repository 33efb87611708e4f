"""Stored credentials at rest: the row holds no secret in clear, only its key decrypts it,
and a sealed secret moved to another row does not decrypt there. `load_credential` (the
worker's read) refuses what it cannot give, each with its own permanent error."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import asyncpg
import asyncssh
import pytest

from jobserver.credentials import (
    CredentialKindMismatch,
    CredentialNotFound,
    CredentialUnreadable,
    SecretKeyMissing,
    load_credential,
)
from jobserver.credentials import keyring as keyrings
from jobserver.credentials.crypto import unseal
from jobserver.credentials.keyring import Keyring, parse_keyring
from jobserver.registry import PermanentError
from tests.worker.credentials import new_secret_key, store_credential

PASSWORD = "s3cret-password-value"


@pytest.fixture
def keyring() -> Iterator[Keyring]:
    """A fresh key for this process (what `load_credential` decrypts with), reset after."""
    ring = parse_keyring(new_secret_key())
    keyrings.configure(ring)
    yield ring
    keyrings.configure()


def _private_key() -> str:
    return asyncssh.generate_private_key("ssh-ed25519").export_private_key().decode()


HOST_KEY = " ".join(
    asyncssh.generate_private_key("ssh-ed25519")
    .convert_to_public()
    .export_public_key()
    .decode()
    .split()[:2]
)


async def _store(pool: asyncpg.Pool, ring: Keyring, name: str = "deploy") -> str:
    key = _private_key()
    await store_credential(
        pool,
        ring,
        name,
        kind="ssh",
        username="deploy",
        privateKey=key,
        password=PASSWORD,
        hostKeys=[HOST_KEY],
    )
    return key


async def test_the_row_holds_neither_the_password_nor_the_key(
    pool: asyncpg.Pool, keyring: Keyring
) -> None:
    key = await _store(pool, keyring)
    row = await pool.fetchrow("SELECT t::text AS text, secret FROM credentials t")
    assert row is not None
    sealed = bytes(row["secret"])
    body = "".join(key.splitlines()[1:-1])  # the key's base64, whatever the line breaks
    for needle in (PASSWORD, key.splitlines()[1], body[:40]):
        assert needle not in row["text"]
        assert needle.encode() not in sealed
    assert b"privateKey" not in sealed  # not even the JSON of the secret fields
    cred = await load_credential(pool, "deploy", "ssh")
    assert cred.password == PASSWORD and cred.private_key == key
    assert PASSWORD not in repr(cred) and key not in repr(cred)


async def test_another_key_cannot_decrypt_it(pool: asyncpg.Pool, keyring: Keyring) -> None:
    await _store(pool, keyring)
    other = parse_keyring(new_secret_key())
    keyrings.configure(other)
    with pytest.raises(CredentialUnreadable, match="does not hold"):
        await load_credential(pool, "deploy", "ssh")
    # the same id with other key bytes (a forged id) fails authentication, not silently
    row = await pool.fetchrow("SELECT key_id, secret FROM credentials")
    assert row is not None
    forged = Keyring(((row["key_id"], other.current[1]),))
    with pytest.raises(CredentialUnreadable, match="does not decrypt"):
        unseal(forged, "deploy", "ssh", row["key_id"], bytes(row["secret"]))


async def test_a_secret_moved_to_another_row_does_not_decrypt(
    pool: asyncpg.Pool, keyring: Keyring
) -> None:
    await _store(pool, keyring, "alpha")
    await _store(pool, keyring, "beta")
    await pool.execute(
        "UPDATE credentials SET secret = (SELECT secret FROM credentials WHERE name = 'alpha')"
        " WHERE name = 'beta'"
    )
    assert (await load_credential(pool, "alpha", "ssh")).password == PASSWORD
    with pytest.raises(CredentialUnreadable, match="copied from another row"):
        await load_credential(pool, "beta", "ssh")


async def test_a_second_key_decrypts_what_the_first_one_sealed(
    pool: asyncpg.Pool, keyring: Keyring
) -> None:
    await _store(pool, keyring, "old")
    old = keyring.current[1]
    rotated = parse_keyring(new_secret_key() + "," + base64.urlsafe_b64encode(old).decode())
    keyrings.configure(rotated)
    assert (await load_credential(pool, "old", "ssh")).password == PASSWORD
    await _store(pool, rotated, "new")
    ids = dict(await pool.fetch("SELECT name, key_id FROM credentials"))
    assert ids["old"] == keyring.current[0] and ids["new"] == rotated.current[0] != ids["old"]


async def test_load_credential_refusals_are_permanent_and_named(
    pool: asyncpg.Pool, keyring: Keyring
) -> None:
    await _store(pool, keyring)
    with pytest.raises(CredentialNotFound, match="no stored credential is named 'nope'"):
        await load_credential(pool, "nope", "ssh")
    with pytest.raises(CredentialKindMismatch, match="of kind ssh, not smtp"):
        await load_credential(pool, "deploy", "smtp")
    keyrings.configure(None)
    with pytest.raises(SecretKeyMissing) as missing:
        await load_credential(pool, "deploy", "ssh")
    assert str(missing.value).startswith("secret_key_missing: credential 'deploy'")
    for error in (CredentialNotFound, CredentialKindMismatch, SecretKeyMissing):
        assert issubclass(error, PermanentError)


async def test_an_smtp_credential_round_trips(pool: asyncpg.Pool, keyring: Keyring) -> None:
    await store_credential(
        pool,
        keyring,
        "mailer",
        kind="smtp",
        username="apikey",
        password=PASSWORD,
        host="smtp.example.com",
        port=587,
        tls="starttls",
    )
    cred = await load_credential(pool, "mailer", "smtp")
    assert (cred.username, cred.password, cred.host, cred.port, cred.tls) == (
        "apikey",
        PASSWORD,
        "smtp.example.com",
        587,
        "starttls",
    )
    assert cred.private_key is None and cred.host_keys == ()
